//! Milesight Development Platform webhook bodies: one event or an array of them.

use serde_json::{Map, Value};

use super::fields::{bad, clip, number, text, time_ms, FieldError};
use crate::domain::{
    Change, Delivery, DeviceIdentity, DeviceSignal, DeviceStatus, NewReading, Quantity, Values,
};

pub const SOURCE: &str = "mdp";

/// Why a body was refused, as (error code, message for the sender).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Json(String),
    Payload(String),
}

impl From<FieldError> for ParseError {
    fn from(e: FieldError) -> Self {
        ParseError::Payload(e.0)
    }
}

/// Parses a body into deliveries; `now_ms` stands in for a missing creation time.
pub fn parse(body: &[u8], now_ms: i64) -> Result<Vec<Delivery>, ParseError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    let events = match value {
        Value::Array(items) => items,
        obj @ Value::Object(_) => vec![obj],
        _ => {
            return Err(ParseError::Payload(
                "body must be an event object or an array of events".into(),
            ))
        }
    };
    if events.is_empty() {
        return Err(ParseError::Payload("the array holds no events".into()));
    }
    events
        .iter()
        .enumerate()
        .map(|(i, event)| parse_event(event, &format!("[{i}]"), now_ms).map_err(ParseError::from))
        .collect()
}

fn parse_event(event: &Value, path: &str, now_ms: i64) -> Result<Delivery, FieldError> {
    let obj = event
        .as_object()
        .ok_or_else(|| bad(format!("{path} must be an object")))?;
    let event_id = text(obj, &["eventId", "eventID"], path)?
        .ok_or_else(|| bad(format!("{path}.eventId is missing")))?;
    let event_type = text(obj, &["eventType"], path)?
        .ok_or_else(|| bad(format!("{path}.eventType is missing")))?;
    let created_ms = time_ms(obj, &["eventCreatedTime"], path)?.unwrap_or(now_ms);
    let mut delivery = Delivery {
        key: Some(format!("mdp:{}", clip(&event_id, 128))),
        source: SOURCE,
        event_type: event_type.clone(),
        detail: None,
        device: None,
        changes: Vec::new(),
    };
    let data = obj.get("data").unwrap_or(&Value::Null);
    match event_type.as_str() {
        "DEVICE_DATA" => device_data(&mut delivery, data, event, path, created_ms)?,
        "WEBHOOK_TEST" | "TASK_DATA" | "SYSTEM_MESSAGES" => delivery.detail = Some(summary(data)),
        other => delivery.detail = Some(format!("unhandled event type {}", clip(other, 64))),
    }
    Ok(delivery)
}

fn summary(data: &Value) -> String {
    match data {
        Value::String(s) => clip(s, 500),
        Value::Null => String::new(),
        other => clip(&other.to_string(), 500),
    }
}

fn device_data(
    d: &mut Delivery,
    data: &Value,
    event: &Value,
    path: &str,
    created_ms: i64,
) -> Result<(), FieldError> {
    let path = format!("{path}.data");
    let data = data
        .as_object()
        .ok_or_else(|| bad(format!("{path} must be an object")))?;
    let profile_path = format!("{path}.deviceProfile");
    let profile = data
        .get("deviceProfile")
        .and_then(Value::as_object)
        .ok_or_else(|| bad(format!("{profile_path} must be an object")))?;
    let device = DeviceIdentity {
        dev_eui: text(profile, &["devEUI", "devEui", "deveui"], &profile_path)?
            .map(|s| s.to_ascii_lowercase()),
        milesight_id: text(profile, &["deviceId", "deviceID"], &profile_path)?,
        name: text(profile, &["name"], &profile_path)?,
        model: text(profile, &["model"], &profile_path)?,
    };
    if !device.is_known() {
        return Err(bad(format!("{profile_path} needs a deviceId or devEUI")));
    }
    let kind =
        text(data, &["type"], &path)?.ok_or_else(|| bad(format!("{path}.type is missing")))?;
    let tsl_id = text(data, &["tslId", "tslID"], &path)?.unwrap_or_default();
    let ts_ms = time_ms(data, &["ts"], &path)?.unwrap_or(created_ms);
    let payload_path = format!("{path}.payload");
    let empty = Map::new();
    let payload = match data.get("payload") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(p)) => p,
        Some(_) => return Err(bad(format!("{payload_path} must be an object"))),
    };
    d.detail = Some(if tsl_id.is_empty() {
        kind.clone()
    } else {
        format!("{kind} {}", clip(&tsl_id, 64))
    });
    let key = d.key.clone().unwrap_or_default();
    let reading =
        |historical: bool, measured_ms: i64, event_type: &str| -> Result<NewReading, FieldError> {
            Ok(NewReading {
                dedup_key: key.clone(),
                source: SOURCE,
                event_type: event_type.to_string(),
                historical,
                measured_ms,
                values: values(payload, &payload_path)?,
                alarms: alarms(payload),
                device_alarms: signals(payload),
                raw: event.to_string(),
            })
        };
    match kind.as_str() {
        "PROPERTY" => d
            .changes
            .push(Change::Reading(reading(false, ts_ms, "DEVICE_DATA")?)),
        "EVENT" if tsl_id == "historical_data" => {
            let at = time_ms(payload, &["timestamp"], &payload_path)?.unwrap_or(ts_ms);
            d.changes
                .push(Change::Reading(reading(true, at, "HISTORICAL_DATA")?));
        }
        "EVENT" => d
            .changes
            .push(Change::Reading(reading(false, ts_ms, "EVENT")?)),
        "ONLINE" => d.changes.push(Change::Status(DeviceStatus::Online)),
        "OFFLINE" => d.changes.push(Change::Status(DeviceStatus::Offline)),
        _ => {}
    }
    d.device = Some(device);
    Ok(())
}

/// Maps every known spelling of the TS302 keys onto our columns.
pub fn values(p: &Map<String, Value>, path: &str) -> Result<Values, FieldError> {
    Ok(Values {
        temperature: number(
            p,
            &[
                "temperature",
                "temperature_left",
                "temperature_chn1",
                "temperature1",
            ],
            path,
        )?,
        temperature2: number(
            p,
            &["temperature_right", "temperature_chn2", "temperature2"],
            path,
        )?,
        humidity: number(
            p,
            &["humidity", "humidity_left", "humidity_chn1", "humidity1"],
            path,
        )?,
        humidity2: number(p, &["humidity_right", "humidity_chn2", "humidity2"], path)?,
        battery: number(p, &["battery", "battery_level"], path)?.map(|b| b.round() as i64),
    })
}

/// Alarm-like keys of a payload, kept as sent.
fn alarms(p: &Map<String, Value>) -> Option<Value> {
    let found: Map<String, Value> = p
        .iter()
        .filter(|(k, _)| k.contains("alarm") || k.as_str() == "event")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!found.is_empty()).then_some(Value::Object(found))
}

/// The device's own alarms as the platform's decoder names them: `temperature_chn1_alarm:
/// "threshold_alarm"` and the like (v1 and v2 spellings). Unknown names are kept in `alarms`
/// only.
fn signals(p: &Map<String, Value>) -> Vec<DeviceSignal> {
    let mut found = Vec::new();
    for (quantity, name) in [
        (Quantity::Temperature, "temperature"),
        (Quantity::Humidity, "humidity"),
    ] {
        for probe in [1, 2] {
            let Some(Value::String(cause)) = p.get(&format!("{name}_chn{probe}_alarm")) else {
                continue;
            };
            let known = cause.ends_with("threshold_alarm")
                || cause.ends_with("threshold_alarm_release")
                || cause == "mutation_alarm";
            if !known {
                continue;
            }
            found.push(DeviceSignal {
                probe,
                quantity,
                cause: cause.chars().take(64).collect(),
                release: cause.ends_with("_release"),
                mutation: cause == "mutation_alarm",
                value: p.get(&format!("{name}_chn{probe}")).and_then(Value::as_f64),
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"eventId":"6167cb40-8e5e-4d53-904f-968928e488a6","eventCreatedTime":"1742872448","eventVersion":"1.0",
 "eventType":"DEVICE_DATA",
 "data":{"deviceProfile":{"deviceId":"1904371063669395457","sn":"6707E04610160001","devEUI":"24D124707E040001",
   "name":"Freezer A","model":"TS302"},"type":"PROPERTY","tslId":"","ts":1742872448000,
   "payload":{"temperature_left":-18.4,"temperature_right":4.1,"battery":93}}}"#;

    #[test]
    fn spec_sample_becomes_one_reading() {
        let ds = parse(SAMPLE.as_bytes(), 0).unwrap();
        assert_eq!(ds.len(), 1);
        let d = &ds[0];
        assert_eq!(
            d.key.as_deref(),
            Some("mdp:6167cb40-8e5e-4d53-904f-968928e488a6")
        );
        let dev = d.device.as_ref().unwrap();
        assert_eq!(dev.dev_eui.as_deref(), Some("24d124707e040001"));
        assert_eq!(dev.milesight_id.as_deref(), Some("1904371063669395457"));
        let Change::Reading(r) = &d.changes[0] else {
            panic!("reading expected")
        };
        assert_eq!(r.values.temperature, Some(-18.4));
        assert_eq!(r.values.temperature2, Some(4.1));
        assert_eq!(r.values.battery, Some(93));
        assert_eq!(r.measured_ms, 1742872448000);
        assert!(r.raw.contains("temperature_left"));
    }

    #[test]
    fn arrays_numbers_and_spellings() {
        let body = r#"[{"eventID":7,"eventCreatedTime":1742872448,"eventType":"DEVICE_DATA","data":{"deviceProfile":{"deviceId":1904371063669395457},"type":"EVENT","tslID":"historical_data","payload":{"timestamp":1742870000,"temperature_chn1":"3.5"}}},
            {"eventId":"t","eventType":"WEBHOOK_TEST","data":"Test Milesight Webhook Successfully."}]"#;
        let ds = parse(body.as_bytes(), 0).unwrap();
        assert_eq!(ds[0].key.as_deref(), Some("mdp:7"));
        assert_eq!(
            ds[0].device.as_ref().unwrap().milesight_id.as_deref(),
            Some("1904371063669395457")
        );
        let Change::Reading(r) = &ds[0].changes[0] else {
            panic!()
        };
        assert!(r.historical);
        assert_eq!(r.measured_ms, 1742870000000);
        assert_eq!(r.values.temperature, Some(3.5));
        assert_eq!(
            ds[1].detail.as_deref(),
            Some("Test Milesight Webhook Successfully.")
        );
        assert!(ds[1].changes.is_empty());
    }

    #[test]
    fn status_events() {
        let body = r#"{"eventId":"s","eventType":"DEVICE_DATA","data":{"deviceProfile":{"devEUI":"AB"},"type":"OFFLINE"}}"#;
        let ds = parse(body.as_bytes(), 0).unwrap();
        assert_eq!(ds[0].changes, vec![Change::Status(DeviceStatus::Offline)]);
    }

    #[test]
    fn bad_bodies_name_the_problem() {
        let cases = [
            ("{", "json"),
            ("[]", "the array holds no events"),
            ("3", "body must be an event object or an array of events"),
            (r#"{"eventType":"DEVICE_DATA"}"#, "[0].eventId is missing"),
            (r#"{"eventId":"a"}"#, "[0].eventType is missing"),
            (
                r#"{"eventId":"a","eventType":"DEVICE_DATA","data":"x"}"#,
                "[0].data must be an object",
            ),
            (
                r#"{"eventId":"a","eventType":"DEVICE_DATA","data":{"deviceProfile":{}}}"#,
                "[0].data.deviceProfile needs a deviceId or devEUI",
            ),
            (
                r#"{"eventId":"a","eventType":"DEVICE_DATA","data":{"deviceProfile":{"devEUI":"a"},"type":"PROPERTY","payload":{"temperature":"hot"}}}"#,
                "[0].data.payload.temperature must be a number",
            ),
            (
                r#"{"eventId":["a"],"eventType":"X"}"#,
                "[0].eventId must be a string",
            ),
        ];
        for (body, want) in cases {
            match parse(body.as_bytes(), 0) {
                Err(ParseError::Json(_)) => assert_eq!(want, "json", "{body}"),
                Err(ParseError::Payload(m)) => assert_eq!(m, want, "{body}"),
                Ok(_) => panic!("accepted {body}"),
            }
        }
    }
}

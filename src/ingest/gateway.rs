//! Milesight gateway (UG6x embedded network server) HTTP forwarding: raw uplinks, whose base64
//! TS302 bytes we decode ourselves, and status / ACK / error notifications.

use base64::Engine;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::fields::{bad, clip, integer, text, to_ms, FieldError, MAX_TIME_MS};
use super::mdp::ParseError;
use super::ts302::{self, DecodeError, Decoded, Variant};
use crate::domain::{
    Change, Delivery, DeviceIdentity, DeviceSignal, DeviceStatus, NewReading, Quantity, Values,
};

pub const SOURCE: &str = "gateway";
/// TS302 application port.
pub const TS302_PORT: i64 = 85;

#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Uplink(Uplink),
    Status {
        device: DeviceIdentity,
        status: DeviceStatus,
        /// Dedup key, from the gateway's time. None without one: a fixed key would take every
        /// later identical status for a retry, and applying a status twice is harmless.
        key: Option<String>,
    },
    /// ACK and error notifications: acknowledged and logged.
    Notice {
        device: Option<DeviceIdentity>,
        kind: String,
        detail: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Uplink {
    pub device: DeviceIdentity,
    pub f_cnt: Option<i64>,
    pub f_port: Option<i64>,
    pub bytes: Vec<u8>,
    pub time_ms: Option<i64>,
    /// The body as received.
    pub raw: String,
}

pub fn parse(body: &[u8]) -> Result<Message, ParseError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    let obj = value
        .as_object()
        .ok_or_else(|| ParseError::Payload("body must be a JSON object".into()))?;
    let dev_eui = text(obj, &["devEUI", "devEui", "deveui"], "body")?;
    let device = dev_eui
        .map(|eui| valid_eui(&eui))
        .transpose()?
        .map(|eui| DeviceIdentity {
            dev_eui: Some(eui),
            milesight_id: None,
            name: text(obj, &["deviceName"], "body").ok().flatten(),
            model: None,
        });
    let time_ms = text(obj, &["time", "gatewayTime"], "body")
        .ok()
        .flatten()
        .and_then(|t| parse_time(&t));
    if let Some(data) = obj.get("data") {
        let device = device.ok_or_else(|| bad("body.devEUI is missing"))?;
        let b64 = data
            .as_str()
            .ok_or_else(|| bad("body.data must be a base64 string"))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| bad("body.data is not valid base64"))?;
        return Ok(Message::Uplink(Uplink {
            device,
            f_cnt: integer(obj, &["fCnt", "fcnt"], "body")?,
            f_port: integer(obj, &["fPort", "fport"], "body")?,
            bytes,
            time_ms,
            raw: value.to_string(),
        }));
    }
    if let Some(status) = text(obj, &["status"], "body")? {
        let device = device.ok_or_else(|| bad("body.devEUI is missing"))?;
        let status = match status.to_ascii_lowercase().as_str() {
            "online" => DeviceStatus::Online,
            "offline" => DeviceStatus::Offline,
            _ => return Err(bad("body.status must be online or offline").into()),
        };
        let eui = device.dev_eui.clone().unwrap_or_default();
        let key = time_ms.map(|when| format!("gws:{eui}:{}:{when}", status.as_str()));
        return Ok(Message::Status {
            device,
            status,
            key,
        });
    }
    let kind = if obj.contains_key("acknowledged") {
        "ACK"
    } else if obj.contains_key("error") {
        "ERROR"
    } else {
        ""
    };
    if kind.is_empty() {
        return Err(bad(
            "body is neither an uplink (data) nor a notification (status, acknowledged, error)",
        )
        .into());
    }
    Ok(Message::Notice {
        device,
        kind: kind.to_string(),
        detail: clip(&value.to_string(), 500),
    })
}

fn valid_eui(eui: &str) -> Result<String, FieldError> {
    let eui = eui.trim().to_ascii_lowercase();
    if eui.len() == 16 && eui.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(eui)
    } else {
        Err(bad("body.devEUI must be 16 hex digits"))
    }
}

/// An RFC 3339 time in milliseconds; None when unreadable or before 1970 (the receive time
/// stands in).
fn parse_time(t: &str) -> Option<i64> {
    let dt = OffsetDateTime::parse(t, &Rfc3339).ok()?;
    i64::try_from(dt.unix_timestamp_nanos() / 1_000_000)
        .ok()
        .filter(|ms| (0..=MAX_TIME_MS).contains(ms))
}

/// The variant to decode with: the device's own setting, else what the bytes prove, else the default.
pub fn choose_variant(device_setting: Option<Variant>, bytes: &[u8], default: Variant) -> Variant {
    device_setting
        .or_else(|| ts302::detect_variant(bytes))
        .unwrap_or(default)
}

/// Turns an uplink into a delivery. Uplinks on other ports are acknowledged without a reading.
pub fn uplink_delivery(u: &Uplink, variant: Variant, now_ms: i64) -> Result<Delivery, DecodeError> {
    let eui = u.device.dev_eui.clone().unwrap_or_default();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&u.bytes);
    let key = format!(
        "gw:{eui}:{}:{b64}",
        u.f_cnt.map(|c| c.to_string()).unwrap_or_default()
    );
    let mut delivery = Delivery {
        key: Some(key.clone()),
        source: SOURCE,
        event_type: "UPLINK".into(),
        detail: Some(format!("fPort {}", u.f_port.unwrap_or(0))),
        device: Some(u.device.clone()),
        changes: Vec::new(),
    };
    if u.f_port.is_some_and(|p| p != TS302_PORT) {
        return Ok(delivery);
    }
    let decoded = ts302::decode(&u.bytes, variant)?;
    if let Some(device) = delivery.device.as_mut() {
        device.model = Some("TS302".into());
    }
    let raw = raw_json(&u.raw, variant, &decoded);
    let live = values(&decoded);
    if !live.is_empty() || !decoded.alarms.is_empty() {
        delivery.changes.push(Change::Reading(NewReading {
            dedup_key: key.clone(),
            source: SOURCE,
            event_type: "UPLINK".into(),
            historical: false,
            measured_ms: u.time_ms.unwrap_or(now_ms),
            values: live,
            alarms: (!decoded.alarms.is_empty())
                .then(|| serde_json::to_value(&decoded.alarms).unwrap_or_default()),
            device_alarms: decoded.alarms.iter().filter_map(signal).collect(),
            raw: raw.clone(),
        }));
    } else {
        // Nothing measured (device info, config reply): still a sign of life.
        delivery.changes.push(Change::Status(DeviceStatus::Online));
    }
    for h in &decoded.history {
        let channels: String = (0..2)
            .filter(|i| {
                h.temperature[*i].is_some() || h.humidity[*i].is_some() || h.magnet[*i].is_some()
            })
            .map(|i| char::from(b'1' + i as u8))
            .collect();
        delivery.changes.push(Change::Reading(NewReading {
            dedup_key: format!("gwh:{eui}:{}:{channels}", h.timestamp),
            source: SOURCE,
            event_type: "HISTORICAL_DATA".into(),
            historical: true,
            measured_ms: to_ms(h.timestamp),
            values: Values {
                temperature: h.temperature[0],
                temperature2: h.temperature[1],
                humidity: h.humidity[0],
                humidity2: h.humidity[1],
                battery: None,
            },
            alarms: None,
            device_alarms: Vec::new(),
            raw: raw.clone(),
        }));
    }
    if let Some(min) = decoded.report_interval_min {
        delivery
            .changes
            .push(Change::ReportInterval(i64::from(min) * 60));
    }
    // After the readings: a back-filled record is stored before the request it answers is
    // marked confirmed, in the same transaction either way.
    let replies = ts302::downlink::reply_pieces(&decoded);
    if !replies.is_empty() {
        delivery.changes.push(Change::DeviceReply(replies));
    }
    Ok(delivery)
}

fn values(d: &Decoded) -> Values {
    Values {
        temperature: d.temperature[0],
        temperature2: d.temperature[1],
        humidity: d.humidity[0],
        humidity2: d.humidity[1],
        battery: d.battery.map(i64::from),
    }
}

/// The stored raw form: the body as received plus what we decoded from it.
fn raw_json(body: &str, variant: Variant, decoded: &Decoded) -> String {
    let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    serde_json::json!({ "body": body, "variant": variant.as_str(), "decoded": decoded }).to_string()
}

/// A decoded TS302 alarm as the alarm lifecycle sees it; `None` for a code no decoder knows.
fn signal(a: &ts302::Alarm) -> Option<DeviceSignal> {
    if a.kind == ts302::AlarmKind::Unknown {
        return None;
    }
    Some(DeviceSignal {
        probe: i64::from(a.channel),
        quantity: match a.quantity {
            ts302::Quantity::Temperature => Quantity::Temperature,
            ts302::Quantity::Humidity => Quantity::Humidity,
        },
        cause: a.kind.as_str().to_string(),
        release: a.is_release(),
        mutation: a.kind == ts302::AlarmKind::MutationAlarm,
        value: a.value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPLINK: &str = r#"{"applicationID":"1","applicationName":"cloud","data":"AXVkA2f7AARnAQE=","devEUI":"24e124136b502217",
 "deviceName":"Cold room 2","fCnt":128,"fPort":85,
 "rxInfo":[{"altitude":0,"latitude":0,"loRaSNR":13.8,"longitude":0,"mac":"24e124fffef54092",
   "name":"Local Gateway","rssi":-51,"time":"2022-12-27T07:21:27.078763Z"}],
 "time":"2022-12-27T07:21:27.078763Z",
 "txInfo":{"adr":true,"codeRate":"4/5","dataRate":{"bandwidth":125,"modulation":"LORA","spreadFactor":7},
   "frequency":868100000}}"#;

    #[test]
    fn spec_uplink_decodes_to_a_reading() {
        let Message::Uplink(u) = parse(UPLINK.as_bytes()).unwrap() else {
            panic!("uplink expected")
        };
        assert_eq!(u.f_cnt, Some(128));
        assert_eq!(u.time_ms, Some(1672125687078));
        let d = uplink_delivery(&u, Variant::V1, 0).unwrap();
        assert_eq!(
            d.key.as_deref(),
            Some("gw:24e124136b502217:128:AXVkA2f7AARnAQE=")
        );
        let Change::Reading(r) = &d.changes[0] else {
            panic!("reading expected")
        };
        assert_eq!(r.values.temperature, Some(25.1));
        assert_eq!(r.values.temperature2, Some(25.7));
        assert_eq!(r.values.battery, Some(100));
        assert_eq!(r.measured_ms, 1672125687078);
        assert!(r.raw.contains("Cold room 2"));
    }

    #[test]
    fn notifications() {
        let m = parse(br#"{"devEUI":"24E124527F418093","deviceName":"WT102","status":"offline","time":"2026-03-12T06:40:13Z"}"#).unwrap();
        let Message::Status {
            device,
            status,
            key,
        } = m
        else {
            panic!()
        };
        assert_eq!(device.dev_eui.as_deref(), Some("24e124527f418093"));
        assert_eq!(status, DeviceStatus::Offline);
        assert_eq!(
            key.as_deref(),
            Some("gws:24e124527f418093:OFFLINE:1773297613000")
        );
        // Without a time (or with one before 1970) there is nothing to tell a retry by.
        for body in [
            r#"{"devEUI":"24E124527F418093","status":"online"}"#,
            r#"{"devEUI":"24E124527F418093","status":"online","time":"1969-12-31T23:59:59Z"}"#,
        ] {
            let Message::Status { key, .. } = parse(body.as_bytes()).unwrap() else {
                panic!()
            };
            assert_eq!(key, None, "{body}");
        }
        assert!(matches!(
            parse(br#"{"devEUI":"24e124527f418093","acknowledged":true}"#).unwrap(),
            Message::Notice { .. }
        ));
    }

    #[test]
    fn replies_become_a_device_reply() {
        // The TS302's report-interval reply (10 min), alone in an uplink.
        let body = r#"{"devEUI":"24e124136b502217","data":"/44ACgA=","fPort":85,"fCnt":9}"#;
        let Message::Uplink(u) = parse(body.as_bytes()).unwrap() else {
            panic!()
        };
        let d = uplink_delivery(&u, Variant::V1, 5).unwrap();
        assert_eq!(
            d.changes,
            [
                Change::Status(DeviceStatus::Online),
                Change::ReportInterval(600),
                Change::DeviceReply(vec![crate::domain::ReplyPiece::ReportInterval(10)]),
            ]
        );
        // A plain reading carries none.
        let Message::Uplink(u) = parse(UPLINK.as_bytes()).unwrap() else {
            panic!()
        };
        let d = uplink_delivery(&u, Variant::V1, 0).unwrap();
        assert!(!d
            .changes
            .iter()
            .any(|c| matches!(c, Change::DeviceReply(_))));
    }

    #[test]
    fn bad_uplinks() {
        assert!(matches!(parse(b"[1]"), Err(ParseError::Payload(_))));
        assert!(
            matches!(parse(br#"{"devEUI":"xyz","data":"AA=="}"#), Err(ParseError::Payload(m)) if m == "body.devEUI must be 16 hex digits")
        );
        assert!(
            matches!(parse(br#"{"devEUI":"24e124136b502217","data":"!!"}"#), Err(ParseError::Payload(m)) if m == "body.data is not valid base64")
        );
        let Message::Uplink(u) =
            parse(br#"{"devEUI":"24e124136b502217","data":"AXU=","fPort":85}"#).unwrap()
        else {
            panic!()
        };
        let err = uplink_delivery(&u, Variant::V1, 0).unwrap_err();
        assert!(err.to_string().contains("offset"), "{err}");
    }
}

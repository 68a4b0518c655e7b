//! The JSON of each SSE message, built once when the event is stored.

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::ingest::model::{DeviceStatus, NewReading};
use crate::store::DeviceRow;

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeviceHead<'a> {
    device_id: String,
    #[serde(rename = "devEUI", skip_serializing_if = "Option::is_none")]
    dev_eui: Option<&'a str>,
    device_name: &'a str,
}

impl<'a> DeviceHead<'a> {
    fn of(d: &'a DeviceRow) -> Self {
        DeviceHead {
            device_id: d.public_id(),
            dev_eui: d.dev_eui.as_deref(),
            device_name: &d.name,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Telemetry<'a> {
    #[serde(flatten)]
    head: DeviceHead<'a>,
    event_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature2: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    humidity: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    humidity2: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    battery: Option<i64>,
    measured_at: i64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    historical: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    alarms: Option<&'a Value>,
}

#[derive(Serialize)]
struct Status<'a> {
    #[serde(flatten)]
    head: DeviceHead<'a>,
    status: &'a str,
}

#[derive(Serialize)]
struct NewDevice<'a> {
    #[serde(flatten)]
    head: DeviceHead<'a>,
    model: &'a str,
}

fn envelope<T: Serialize>(kind: &str, now_ms: i64, data: T) -> String {
    let env = Envelope {
        kind,
        timestamp: now_ms,
        data: Some(data),
        message: None,
    };
    // Serializing plain structs of strings and numbers cannot fail.
    serde_json::to_string(&env).unwrap_or_default()
}

pub const NEW_TELEMETRY: &str = "new_telemetry";
pub const DEVICE_STATUS_CHANGED: &str = "device_status_changed";
pub const NEW_DEVICE: &str = "new_device";

pub fn telemetry_json(device: &DeviceRow, r: &NewReading, now_ms: i64) -> String {
    let v = &r.values;
    envelope(
        NEW_TELEMETRY,
        now_ms,
        Telemetry {
            head: DeviceHead::of(device),
            event_type: &r.event_type,
            temperature: v.temperature,
            temperature2: v.temperature2,
            humidity: v.humidity,
            humidity2: v.humidity2,
            battery: v.battery,
            measured_at: r.measured_ms,
            historical: r.historical,
            alarms: r.alarms.as_ref(),
        },
    )
}

pub fn status_json(device: &DeviceRow, status: DeviceStatus, now_ms: i64) -> String {
    envelope(
        DEVICE_STATUS_CHANGED,
        now_ms,
        Status {
            head: DeviceHead::of(device),
            status: status.as_str(),
        },
    )
}

pub fn new_device_json(device: &DeviceRow, now_ms: i64) -> String {
    envelope(
        NEW_DEVICE,
        now_ms,
        NewDevice {
            head: DeviceHead::of(device),
            model: &device.model,
        },
    )
}

/// An SSE message with an id. The id is a number and the JSON one line, so no field can break
/// the framing (serde_json escapes newlines inside strings).
pub fn encode_frame(id: i64, json: &str) -> Bytes {
    let mut s = String::with_capacity(json.len() + 32);
    s.push_str("id: ");
    s.push_str(&id.to_string());
    s.push_str("\ndata: ");
    s.push_str(json);
    s.push_str("\n\n");
    Bytes::from(s)
}

fn unnumbered(kind: &str, now_ms: i64, message: Option<&str>) -> Bytes {
    let env: Envelope<'_, ()> = Envelope {
        kind,
        timestamp: now_ms,
        data: None,
        message,
    };
    let json = serde_json::to_string(&env).unwrap_or_default();
    Bytes::from(format!("data: {json}\n\n"))
}

pub fn connected_frame(now_ms: i64) -> Bytes {
    unnumbered(
        "connected",
        now_ms,
        Some("Real-time connection established"),
    )
}

pub fn keepalive_frame(now_ms: i64) -> Bytes {
    unnumbered("keepalive", now_ms, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_single_line_json() {
        let f = encode_frame(42, r#"{"type":"x"}"#);
        assert_eq!(&f[..], b"id: 42\ndata: {\"type\":\"x\"}\n\n");
        let c = connected_frame(5);
        assert_eq!(
            &c[..],
            b"data: {\"type\":\"connected\",\"timestamp\":5,\"message\":\"Real-time connection established\"}\n\n"
        );
        assert_eq!(
            &keepalive_frame(7)[..],
            b"data: {\"type\":\"keepalive\",\"timestamp\":7}\n\n"
        );
    }

    #[test]
    fn hostile_names_stay_inside_one_data_line() {
        let d = DeviceRow {
            id: 1,
            dev_eui: Some("24e124707e040001".into()),
            milesight_id: None,
            name: "evil\n\nid: 9\ndata: <script>".into(),
            model: "TS302".into(),
            site_id: None,
            site_name: None,
            status: "ONLINE".into(),
            last_seen_ms: None,
            report_interval_s: None,
            ts302_variant: None,
            created_ms: 0,
        };
        let json = new_device_json(&d, 1);
        assert!(!json.contains('\n'));
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["data"]["deviceName"], "evil\n\nid: 9\ndata: <script>");
        assert_eq!(v["data"]["deviceId"], "24e124707e040001");
    }
}

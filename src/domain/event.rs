//! The event log: every state change is a row whose id is the SSE `id:`, and its JSON, built
//! once when the event is stored (realtime frames it, never re-serializes it).

use serde::Serialize;
use serde_json::Value;

use super::{DeviceRow, DeviceStatus, NewReading};

/// One row of the event log, with the device's current site for scoping.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub device_id: i64,
    pub site_id: Option<i64>,
    pub json: String,
}

#[derive(Serialize)]
pub struct Envelope<'a, T: Serialize> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'a str>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeviceHead<'a> {
    device_id: String,
    #[serde(rename = "devEUI", skip_serializing_if = "Option::is_none")]
    dev_eui: Option<&'a str>,
    device_name: &'a str,
}

impl<'a> DeviceHead<'a> {
    pub(super) fn of(d: &'a DeviceRow) -> Self {
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

pub(super) fn envelope<T: Serialize>(kind: &str, now_ms: i64, data: T) -> String {
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

/// A message without data or id (`connected`, `keepalive`, `resync`), as JSON.
pub fn message_json(kind: &str, now_ms: i64, message: Option<&str>) -> String {
    let env: Envelope<'_, ()> = Envelope {
        kind,
        timestamp: now_ms,
        data: None,
        message,
    };
    serde_json::to_string(&env).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

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

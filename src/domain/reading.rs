//! Readings: as decoded from a webhook, and as stored.

use serde::Serialize;

/// Normalized measurements of one reading; absent when not measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Values {
    pub temperature: Option<f64>,
    pub temperature2: Option<f64>,
    pub humidity: Option<f64>,
    pub humidity2: Option<f64>,
    pub battery: Option<i64>,
}

impl Values {
    pub fn is_empty(&self) -> bool {
        *self == Values::default()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewReading {
    /// Unique per reading; a repeat is acknowledged and not stored again.
    pub dedup_key: String,
    pub source: &'static str,
    /// `DEVICE_DATA` on MDP, `UPLINK` from a gateway.
    pub event_type: String,
    /// A past record (history, retransmission): stored, but does not refresh "last seen".
    pub historical: bool,
    pub measured_ms: i64,
    pub values: Values,
    /// Alarms carried by the reading, as JSON.
    pub alarms: Option<serde_json::Value>,
    /// The same alarms, typed, for the alarm lifecycle.
    pub device_alarms: Vec<DeviceSignal>,
    /// The payload as received (JSON text), so nothing is lost when a new key appears.
    pub raw: String,
}

/// A threshold or mutation alarm the device itself reported (or its release).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSignal {
    /// 1 or 2.
    pub probe: i64,
    pub quantity: super::Quantity,
    /// The device's own name for it (`above_threshold_alarm`, `mutation_alarm`, …).
    pub cause: String,
    pub release: bool,
    /// A sudden change: an event with no release, raised already ended.
    pub mutation: bool,
    pub value: Option<f64>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadingRow {
    pub id: i64,
    pub source: String,
    pub event_type: String,
    pub historical: bool,
    #[serde(rename = "measuredAt")]
    pub measured_ms: i64,
    #[serde(rename = "receivedAt")]
    pub received_ms: i64,
    pub temperature: Option<f64>,
    pub temperature2: Option<f64>,
    pub humidity: Option<f64>,
    pub humidity2: Option<f64>,
    pub battery: Option<i64>,
    #[serde(skip)]
    pub alarms: Option<String>,
    #[serde(skip)]
    pub raw: String,
}

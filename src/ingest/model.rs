//! What a webhook means, independent of which path it came through: the writer stores this.

/// How a device is identified on the wire; unified by devEUI whichever path it came through.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceIdentity {
    /// Lower-case hex devEUI.
    pub dev_eui: Option<String>,
    /// Milesight Development Platform device id (a 19-digit number kept as text).
    pub milesight_id: Option<String>,
    pub name: Option<String>,
    pub model: Option<String>,
}

impl DeviceIdentity {
    pub fn is_known(&self) -> bool {
        self.dev_eui.is_some() || self.milesight_id.is_some()
    }
}

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
    /// The payload as received (JSON text), so nothing is lost when a new key appears.
    pub raw: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    Online,
    Offline,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Online => "ONLINE",
            DeviceStatus::Offline => "OFFLINE",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // nearly every change is a reading; boxing would buy nothing
pub enum Change {
    Reading(NewReading),
    /// The platform or gateway reported a status.
    Status(DeviceStatus),
    /// The device's reporting interval became known (seconds).
    ReportInterval(i64),
}

/// One delivered event (one element of an MDP array, or one gateway post).
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Idempotency key: MDP `eventId`, or devEUI + frame counter for a gateway uplink.
    pub key: Option<String>,
    pub source: &'static str,
    pub event_type: String,
    /// Short note for the admin's webhook health view.
    pub detail: Option<String>,
    pub device: Option<DeviceIdentity>,
    pub changes: Vec<Change>,
}

/// Everything one HTTP request carries: stored in one transaction before it is answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// The signed request's (fingerprint of the secret that signed it, nonce): accepted once.
    pub nonce: Option<(String, String)>,
    pub deliveries: Vec<Delivery>,
}

/// What storing a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    pub accepted: usize,
    pub duplicates: usize,
}

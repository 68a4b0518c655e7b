//! Devices: how the wire names them, their status, and the stored row.

use serde::Serialize;

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

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRow {
    #[serde(skip)]
    pub id: i64,
    #[serde(rename = "devEUI")]
    pub dev_eui: Option<String>,
    #[serde(skip)]
    pub milesight_id: Option<String>,
    pub name: String,
    pub model: String,
    pub site_id: Option<i64>,
    pub site_name: Option<String>,
    pub status: String,
    pub last_seen_ms: Option<i64>,
    pub report_interval_s: Option<i64>,
    pub ts302_variant: Option<String>,
    pub created_ms: i64,
}

impl DeviceRow {
    /// The id browsers see: Milesight's device id when known, else the devEUI.
    pub fn public_id(&self) -> String {
        public_device_id(self.milesight_id.as_deref(), self.dev_eui.as_deref())
    }
}

pub fn public_device_id(milesight_id: Option<&str>, dev_eui: Option<&str>) -> String {
    milesight_id.or(dev_eui).unwrap_or_default().to_string()
}

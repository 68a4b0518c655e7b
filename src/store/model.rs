//! Rows and values the store hands out.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Manager,
    Employee,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Employee => "employee",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "manager" => Some(Role::Manager),
            "employee" => Some(Role::Employee),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub role: String,
    pub disabled: bool,
}

/// A signed-in user as the web layer sees them.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub role: Role,
    pub disabled: bool,
    pub site_ids: Vec<i64>,
}

impl User {
    pub fn scope(&self) -> Scope {
        match self.role {
            Role::Admin => Scope::All,
            _ => Scope::Sites(self.site_ids.clone()),
        }
    }
}

/// Which devices a reader may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Sites(Vec<i64>),
}

impl Scope {
    pub fn allows(&self, site_id: Option<i64>) -> bool {
        match self {
            Scope::All => true,
            Scope::Sites(sites) => site_id.is_some_and(|s| sites.contains(&s)),
        }
    }

    /// SQL condition on a `site_id` column. Site ids are integers from our own database,
    /// so writing them into the SQL text is safe.
    pub(crate) fn sql(&self, column: &str) -> String {
        match self {
            Scope::All => "1=1".to_string(),
            Scope::Sites(sites) if sites.is_empty() => "1=0".to_string(),
            Scope::Sites(sites) => {
                let list: Vec<String> = sites.iter().map(i64::to_string).collect();
                format!("{column} IN ({})", list.join(","))
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
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

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
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

/// One row of the event log, with the device's current site for scoping.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub device_id: i64,
    pub site_id: Option<i64>,
    pub json: String,
}

/// Filters for a telemetry query.
#[derive(Debug, Clone, Copy)]
pub struct TelemetryQuery {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub limit: i64,
}

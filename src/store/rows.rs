//! Rows the store's read queries return (the shared domain rows are in `crate::domain`), and
//! the SQL condition of a scope. They live outside the query files because those are compiled
//! once per database and both must share one type.

use sqlx::FromRow;

use crate::domain::Scope;

/// The newest live (not historical) reading of a device.
#[derive(Debug, Clone, FromRow)]
pub struct LatestReading {
    pub device_id: i64,
    pub measured_ms: i64,
    pub temperature: Option<f64>,
    pub temperature2: Option<f64>,
    pub humidity: Option<f64>,
    pub humidity2: Option<f64>,
    pub battery: Option<i64>,
    pub alarms: Option<String>,
}

/// Averages over one time bucket, for charts.
#[derive(Debug, Clone, FromRow)]
pub struct SeriesPoint {
    pub device_id: i64,
    pub bucket_ms: i64,
    pub temperature: Option<f64>,
    pub temperature2: Option<f64>,
    pub humidity: Option<f64>,
}

/// A reading that carried alarms, with its device.
#[derive(Debug, Clone, FromRow)]
pub struct AlarmReadingRow {
    pub device_name: String,
    pub milesight_id: Option<String>,
    pub dev_eui: Option<String>,
    pub measured_ms: i64,
    pub temperature: Option<f64>,
    pub temperature2: Option<f64>,
    pub alarms: String,
}

/// One stored event, as sent on the stream.
#[derive(Debug, Clone, FromRow)]
pub struct EventLogRow {
    pub id: i64,
    pub json: String,
}

/// One accepted webhook delivery.
#[derive(Debug, Clone, FromRow)]
pub struct DeliveryRow {
    pub source: String,
    pub event_type: String,
    pub received_ms: i64,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, FromRow)]
pub struct UserListRow {
    pub id: i64,
    pub email: String,
    pub role: String,
    pub disabled: bool,
}

#[derive(Debug, Clone, FromRow)]
pub struct UserSiteRow {
    pub user_id: i64,
    pub site_id: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct SiteRow {
    pub id: i64,
    pub name: String,
    /// IANA name; `None`: the server's default.
    pub time_zone: Option<String>,
}

/// A report period marked reviewed.
#[derive(Debug, Clone, FromRow)]
pub struct ReviewRow {
    pub id: i64,
    pub site_id: i64,
    pub from_day: String,
    pub to_day: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub reviewed_by: String,
    pub reviewed_ms: i64,
}

/// A review as the report shows it: whether data of its period arrived after it.
#[derive(Debug, Clone)]
pub struct Review {
    pub row: ReviewRow,
    pub changed_after: bool,
}

#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub role: String,
    pub disabled: bool,
    /// 'C' or 'F' (`TemperatureUnit::code`).
    pub temperature_unit: String,
}

/// Filters for a telemetry query.
#[derive(Debug, Clone, Copy)]
pub struct TelemetryQuery {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub limit: i64,
}

/// SQL condition on a `site_id` column. Site ids are integers from our own database,
/// so writing them into the SQL text is safe.
pub(crate) fn scope_sql(scope: &Scope, column: &str) -> String {
    match scope {
        Scope::All => "1=1".to_string(),
        Scope::Sites(sites) if sites.is_empty() => "1=0".to_string(),
        Scope::Sites(sites) => {
            let list: Vec<String> = sites.iter().map(i64::to_string).collect();
            format!("{column} IN ({})", list.join(","))
        }
    }
}

/// Which alarms a list shows: by start time, newest first.
#[derive(Debug, Clone)]
pub struct AlarmFilter {
    pub open_only: bool,
    pub device_id: Option<i64>,
    pub since_ms: i64,
    pub until_ms: i64,
    pub limit: i64,
}

/// Which audit rows a list shows: newest first.
#[derive(Debug, Clone)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub since_ms: i64,
    pub until_ms: i64,
    pub limit: i64,
}

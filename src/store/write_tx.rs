//! The statements the write path runs inside the transaction a driver opened: the typed ones
//! of ingest (multi-row, SQL in write_statements.rs), and `execute`/`select` for the rest
//! (alarms, rules, the audit trail), whose SQL is written once beside the logic that uses it.

use super::error::{StoreError, StoreResult};
use super::write_statements::{DeliveryClaim, ReadingInsert};
use crate::domain::DeviceRow;

/// A value bound to or read from a statement. Typed, so PostgreSQL gets typed NULLs.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
    Bool(bool),
}

/// The type a column is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Int,
    Real,
    Text,
    Bool,
}

impl Val {
    pub fn int(v: i64) -> Val {
        Val::Int(Some(v))
    }

    pub fn text(v: &str) -> Val {
        Val::Text(Some(v.to_string()))
    }

    pub fn as_int(&self) -> StoreResult<Option<i64>> {
        match self {
            Val::Int(v) => Ok(*v),
            other => Err(mismatch("an integer", other)),
        }
    }

    pub fn as_real(&self) -> StoreResult<Option<f64>> {
        match self {
            Val::Real(v) => Ok(*v),
            Val::Int(v) => Ok(v.map(|v| v as f64)),
            other => Err(mismatch("a number", other)),
        }
    }

    pub fn into_text(self) -> StoreResult<Option<String>> {
        match self {
            Val::Text(v) => Ok(v),
            other => Err(mismatch("text", &other)),
        }
    }

    pub fn as_bool(&self) -> StoreResult<bool> {
        match self {
            Val::Bool(v) => Ok(*v),
            Val::Int(Some(v)) => Ok(*v != 0),
            other => Err(mismatch("a boolean", other)),
        }
    }
}

fn mismatch(wanted: &str, got: &Val) -> StoreError {
    StoreError::Failed(format!("expected {wanted} from the database, got {got:?}").into())
}

/// When a device counts as silent: 3 x its interval (or the default) + the grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfflinePolicy {
    pub default_interval_s: i64,
    pub grace_s: i64,
}

/// An event to append to the log.
pub struct EventInsert {
    pub kind: &'static str,
    pub device_id: i64,
    pub site_id: Option<i64>,
    pub json: String,
}

/// The statements of the write path, run inside the transaction the driver opened. Each
/// returns once the database has answered.
pub trait WriteTx {
    /// Runs a statement; returns the rows it changed.
    fn execute(&mut self, sql: &str, params: &[Val]) -> StoreResult<u64>;
    /// Runs a query; each row's values read as `columns` says.
    fn select(&mut self, sql: &str, params: &[Val], columns: &[Ty]) -> StoreResult<Vec<Vec<Val>>>;

    /// Records (key, nonce) pairs; returns those that were new. The pairs must be distinct.
    fn claim_nonces(
        &mut self,
        pairs: &[(&str, &str)],
        now_ms: i64,
    ) -> StoreResult<Vec<(String, String)>>;
    /// Records delivery keys; returns those not seen before (the others are retries). The keys
    /// must be distinct.
    fn claim_deliveries(
        &mut self,
        claims: &[DeliveryClaim<'_>],
        now_ms: i64,
    ) -> StoreResult<Vec<String>>;
    /// Every device whose devEUI or Milesight id is one of `ids`.
    fn devices_by_identifiers(&mut self, ids: &[&str]) -> StoreResult<Vec<DeviceRow>>;
    fn device_by_id(&mut self, id: i64) -> StoreResult<DeviceRow>;
    fn insert_device(
        &mut self,
        dev_eui: Option<&str>,
        milesight_id: Option<&str>,
        name: &str,
        model: &str,
        now_ms: i64,
    ) -> StoreResult<i64>;
    /// Fills in identifiers the device lacked and renames it; `None` leaves a column as it is.
    fn update_device_identity(
        &mut self,
        id: i64,
        dev_eui: Option<&str>,
        milesight_id: Option<&str>,
        name: Option<&str>,
        model: Option<&str>,
    ) -> StoreResult<()>;
    fn update_device_state(&mut self, device: &DeviceRow) -> StoreResult<()>;
    /// Stores the readings whose key is new; returns those keys.
    fn insert_readings(
        &mut self,
        rows: &[ReadingInsert<'_>],
        now_ms: i64,
    ) -> StoreResult<Vec<String>>;
    /// Devices silent longer than the policy allows that are not OFFLINE yet.
    fn silent_devices(&mut self, now_ms: i64, policy: OfflinePolicy) -> StoreResult<Vec<i64>>;
    /// Appends events; returns their ids, in order.
    fn insert_events(&mut self, events: &[EventInsert], now_ms: i64) -> StoreResult<Vec<i64>>;
}

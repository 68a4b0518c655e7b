//! The statements the write path runs inside the transaction a driver opened: the typed ones
//! of ingest (multi-row, SQL in write_statements.rs), and `execute`/`select` for the rest
//! (alarms, rules, the audit trail), whose SQL is written once beside the logic that uses it.

use super::error::{StoreError, StoreResult};
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

/// A query sent with `WriteTx::select_later`, whose rows `WriteTx::rows` reads.
#[must_use = "a query sent later is read with `rows`"]
pub struct Later {
    pub(super) id: usize,
    pub(super) columns: &'static [Ty],
}

/// An event to append to the log.
pub struct EventInsert {
    pub kind: &'static str,
    pub device_id: i64,
    pub site_id: Option<i64>,
    pub json: String,
}

/// The statements of the write path, run inside the transaction the driver opened. Each
/// returns once the database has answered, but `execute_later` and the statements whose
/// methods return nothing, which a driver may send with the next one. The events are not
/// here: the driver appends them last (`group::Done`).
pub trait WriteTx {
    /// Runs a statement; returns the rows it changed.
    fn execute(&mut self, sql: &str, params: &[Val]) -> StoreResult<u64>;
    /// Runs a statement whose answer nothing reads. A driver may send it with the next
    /// statement it waits for (PostgreSQL pipelines them); a failure is then reported there,
    /// or at the commit, and fails the transaction all the same.
    fn execute_later(&mut self, sql: &str, params: Vec<Val>) -> StoreResult<()> {
        self.execute(sql, &params).map(|_| ())
    }
    /// Runs a query; each row's values read as `columns` says.
    fn select(&mut self, sql: &str, params: &[Val], columns: &[Ty]) -> StoreResult<Vec<Vec<Val>>>;
    /// Sends a query whose rows are read later with `rows`. A driver may send it with others
    /// and wait once for all (PostgreSQL pipelines them); statements run in the order sent.
    fn select_later(
        &mut self,
        sql: &str,
        params: Vec<Val>,
        columns: &'static [Ty],
    ) -> StoreResult<Later>;
    /// The rows of a query sent with `select_later`, each as its columns say.
    fn rows(&mut self, later: Later) -> StoreResult<Vec<Vec<Val>>>;
    /// True when queries sent together cost one wait (PostgreSQL): reading ahead what may not
    /// be needed is then cheaper than a round trip more.
    fn pipelines(&self) -> bool {
        false
    }

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
    /// Devices silent longer than the policy allows that are not OFFLINE yet.
    fn silent_devices(&mut self, now_ms: i64, policy: OfflinePolicy) -> StoreResult<Vec<i64>>;
}

//! The SQLite side of the write path: the statements of `WriteTx` (SQL in write_statements.rs)
//! through rusqlite on the writer's own thread and connection, with cached prepared
//! statements. Through sqlx every statement would be a round trip to sqlx's worker thread (a
//! channel send, a thread wake-up and the result sent back, per row); here a whole group
//! transaction runs without leaving the thread: 2,792–3,305 → 10,141–11,385 webhooks/s in A/B
//! runs (bench/README.md), which is why SQLite has a second driver.

use rusqlite::types::ToSql;
use rusqlite::{Connection, Row};

use std::collections::HashMap;

use super::error::{StoreError, StoreResult};
use super::group::{self, Applied, OfflinePolicy, Work};
use super::write_statements::{self as sql, ROWS_PER_STATEMENT};
use super::write_tx::{EventInsert, Later, Ty, Val, WriteTx};
use crate::domain::DeviceRow;

/// Runs every job in one transaction (`BEGIN IMMEDIATE`: the write lock is taken up front, so
/// ids commit in order). Returns one result per job and the events to publish.
pub fn apply_jobs(
    conn: &mut Connection,
    works: &[&Work],
    now_ms: i64,
    policy: OfflinePolicy,
) -> StoreResult<Applied> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let mut tx = SqliteTx {
        conn: &*conn,
        answered: HashMap::new(),
        sent: 0,
    };
    let applied = group::apply_works(&mut tx, works, now_ms, policy).and_then(|done| {
        let ids = insert_events(conn, &done.events, now_ms)?;
        conn.execute_batch("COMMIT")?;
        Ok(done.numbered(ids))
    });
    if applied.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    applied
}

/// The writer's connection inside its open transaction. A statement costs no round trip
/// here, so a query sent "later" runs at once and its rows wait in `answered`.
struct SqliteTx<'c> {
    conn: &'c Connection,
    answered: HashMap<usize, Vec<Vec<Val>>>,
    sent: usize,
}

/// Runs a statement with these parameters and collects one value per row returned.
fn query_all<T>(
    conn: &Connection,
    sql: &str,
    params: &[&dyn ToSql],
    row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> StoreResult<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// By column name, as `sqlx::FromRow` reads the same row on PostgreSQL.
fn device_row(r: &Row<'_>) -> rusqlite::Result<DeviceRow> {
    Ok(DeviceRow {
        id: r.get("id")?,
        dev_eui: r.get("dev_eui")?,
        milesight_id: r.get("milesight_id")?,
        name: r.get("name")?,
        model: r.get("model")?,
        site_id: r.get("site_id")?,
        site_name: r.get("site_name")?,
        status: r.get("status")?,
        last_seen_ms: r.get("last_seen_ms")?,
        report_interval_s: r.get("report_interval_s")?,
        ts302_variant: r.get("ts302_variant")?,
        created_ms: r.get("created_ms")?,
    })
}

impl ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Val::Int(v) => v.to_sql(),
            Val::Real(v) => v.to_sql(),
            Val::Text(v) => v.to_sql(),
            Val::Bool(v) => v.to_sql(),
        }
    }
}

/// Reads a row's columns as `columns` says.
fn typed_row(r: &Row<'_>, columns: &[Ty]) -> rusqlite::Result<Vec<Val>> {
    columns
        .iter()
        .enumerate()
        .map(|(i, ty)| {
            Ok(match ty {
                Ty::Int => Val::Int(r.get(i)?),
                Ty::Real => Val::Real(r.get(i)?),
                Ty::Text => Val::Text(r.get(i)?),
                Ty::Bool => Val::Bool(r.get(i)?),
            })
        })
        .collect()
}

impl WriteTx for SqliteTx<'_> {
    fn execute(&mut self, sql: &str, params: &[Val]) -> StoreResult<u64> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let params: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
        Ok(stmt.execute(&*params)? as u64)
    }

    fn select(&mut self, sql: &str, params: &[Val], columns: &[Ty]) -> StoreResult<Vec<Vec<Val>>> {
        let params: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
        query_all(self.conn, sql, &params, |r| typed_row(r, columns))
    }

    fn select_later(
        &mut self,
        sql: &str,
        params: Vec<Val>,
        columns: &'static [Ty],
    ) -> StoreResult<Later> {
        let rows = self.select(sql, &params, columns)?;
        self.sent += 1;
        self.answered.insert(self.sent, rows);
        Ok(Later {
            id: self.sent,
            columns,
        })
    }

    fn rows(&mut self, later: Later) -> StoreResult<Vec<Vec<Val>>> {
        self.answered
            .remove(&later.id)
            .ok_or_else(|| StoreError::Failed("rows read twice".into()))
    }

    fn devices_by_identifiers(&mut self, ids: &[&str]) -> StoreResult<Vec<DeviceRow>> {
        let mut found = Vec::new();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let params: Vec<&dyn ToSql> = chunk.iter().map(|id| id as &dyn ToSql).collect();
            let sql = sql::devices_by_identifiers(chunk.len());
            found.extend(query_all(self.conn, &sql, &params, device_row)?);
        }
        Ok(found)
    }

    fn device_by_id(&mut self, id: i64) -> StoreResult<DeviceRow> {
        let mut stmt = self.conn.prepare_cached(&sql::device_by_id())?;
        Ok(stmt.query_row([id], device_row)?)
    }

    fn insert_device(
        &mut self,
        dev_eui: Option<&str>,
        milesight_id: Option<&str>,
        name: &str,
        model: &str,
        now_ms: i64,
    ) -> StoreResult<i64> {
        let mut stmt = self.conn.prepare_cached(sql::INSERT_DEVICE)?;
        let params = rusqlite::params![dev_eui, milesight_id, name, model, now_ms];
        Ok(stmt.query_row(params, |r| r.get(0))?)
    }

    fn update_device_identity(
        &mut self,
        id: i64,
        dev_eui: Option<&str>,
        milesight_id: Option<&str>,
        name: Option<&str>,
        model: Option<&str>,
    ) -> StoreResult<()> {
        let mut stmt = self.conn.prepare_cached(sql::UPDATE_DEVICE_IDENTITY)?;
        stmt.execute(rusqlite::params![dev_eui, milesight_id, name, model, id])?;
        Ok(())
    }

    fn update_device_state(&mut self, device: &DeviceRow) -> StoreResult<()> {
        let mut stmt = self.conn.prepare_cached(sql::UPDATE_DEVICE_STATE)?;
        stmt.execute(rusqlite::params![
            device.status,
            device.last_seen_ms,
            device.report_interval_s,
            device.id
        ])?;
        Ok(())
    }

    fn silent_devices(&mut self, now_ms: i64, policy: OfflinePolicy) -> StoreResult<Vec<i64>> {
        let params: [&dyn ToSql; 3] = [&now_ms, &policy.default_interval_s, &policy.grace_s];
        query_all(self.conn, sql::SILENT_DEVICES, &params, |r| r.get(0))
    }
}

/// Appends the transaction's events; returns their ids, in order.
fn insert_events(conn: &Connection, events: &[EventInsert], now_ms: i64) -> StoreResult<Vec<i64>> {
    let mut ids = Vec::with_capacity(events.len());
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let values = sql::event_values(chunk, now_ms);
        let params: Vec<&dyn ToSql> = values.iter().map(|v| v as &dyn ToSql).collect();
        let sql = sql::insert_events(chunk.len());
        let got = query_all(conn, &sql, &params, |r| r.get(0))?;
        ids.extend(sql::event_ids(got, chunk.len())?);
    }
    Ok(ids)
}

//! The SQLite writer's statements: the same SQL (write_sql.rs) and the same logic (apply.rs) as
//! on PostgreSQL, run through rusqlite on the writer's own thread and connection, with cached
//! prepared statements. Through sqlx every statement would be a round trip to sqlx's worker
//! thread (a channel send, a thread wake-up and the result sent back, per row); here a whole
//! group transaction runs without leaving the thread.

use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rusqlite::types::ToSql;
use rusqlite::{Connection, OpenFlags, Row};

// apply.rs (included below) imports the model and writer types it shares with this file.
use crate::store::model::{public_device_id, DeviceRow};
use crate::store::write_sql::{
    self, DeliveryClaim, EventInsert, ReadingInsert, ROWS_PER_STATEMENT,
};

type Conn = Connection;
type DbResult<T> = rusqlite::Result<T>;

/// Opens the writer's connection to the file the pool uses (created and migrated already).
pub fn open(path: &Path) -> DbResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // As the pool's connections are opened (mod.rs).
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(failure(format!("journal mode is {mode}, not WAL")));
    }
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    conn.set_prepared_statement_cache_capacity(write_sql::STATEMENT_CACHE);
    Ok(conn)
}

fn failure(message: String) -> rusqlite::Error {
    let code = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR);
    rusqlite::Error::SqliteFailure(code, Some(message))
}

/// Runs every job in one transaction (`BEGIN IMMEDIATE`: the write lock is taken up front, so
/// ids commit in order). Returns one result per job and the frames to publish.
pub fn apply_jobs(
    conn: &mut Connection,
    works: &[&Work],
    now_ms: i64,
    policy: OfflinePolicy,
) -> DbResult<Applied> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let applied = ready(apply_works(conn, works, now_ms, policy))
        .and_then(|applied| conn.execute_batch("COMMIT").map(|()| applied));
    if applied.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    applied
}

/// The result of a future that never waits (every statement here runs to completion at once).
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("the SQLite writer's statements never wait"),
    }
}

/// Runs a statement with these parameters and collects one value per row returned.
fn query_all<T>(
    conn: &Connection,
    sql: &str,
    params: &[&dyn ToSql],
    row: impl FnMut(&Row<'_>) -> DbResult<T>,
) -> DbResult<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, row)?;
    rows.collect()
}

fn device_row(r: &Row<'_>) -> DbResult<DeviceRow> {
    Ok(DeviceRow {
        id: r.get(0)?,
        dev_eui: r.get(1)?,
        milesight_id: r.get(2)?,
        name: r.get(3)?,
        model: r.get(4)?,
        site_id: r.get(5)?,
        site_name: r.get(6)?,
        status: r.get(7)?,
        last_seen_ms: r.get(8)?,
        report_interval_s: r.get(9)?,
        ts302_variant: r.get(10)?,
        created_ms: r.get(11)?,
    })
}

// The statements apply.rs calls, as write_queries.rs has them for sqlx. They are `async` only
// to share apply.rs; each completes before returning.

async fn claim_nonces(
    conn: &mut Conn,
    pairs: &[(&str, &str)],
    now_ms: i64,
) -> DbResult<Vec<(String, String)>> {
    let mut claimed = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(ROWS_PER_STATEMENT) {
        let mut params: Vec<&dyn ToSql> = Vec::with_capacity(chunk.len() * 3);
        for (uuid, nonce) in chunk {
            params.extend([uuid as &dyn ToSql, nonce, &now_ms]);
        }
        let sql = write_sql::claim_nonces(chunk.len());
        claimed.extend(query_all(conn, &sql, &params, |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?);
    }
    Ok(claimed)
}

async fn claim_deliveries(
    conn: &mut Conn,
    claims: &[DeliveryClaim<'_>],
    now_ms: i64,
) -> DbResult<Vec<String>> {
    let mut fresh = Vec::with_capacity(claims.len());
    for chunk in claims.chunks(ROWS_PER_STATEMENT) {
        let mut params: Vec<&dyn ToSql> = Vec::with_capacity(chunk.len() * 5);
        for c in chunk {
            params.extend([
                &c.key as &dyn ToSql,
                &c.source,
                &c.event_type,
                &now_ms,
                &c.detail,
            ]);
        }
        let sql = write_sql::claim_deliveries(chunk.len());
        fresh.extend(query_all(conn, &sql, &params, |r| r.get(0))?);
    }
    Ok(fresh)
}

async fn devices_by_identifiers(conn: &mut Conn, ids: &[&str]) -> DbResult<Vec<DeviceRow>> {
    let mut found = Vec::new();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let params: Vec<&dyn ToSql> = chunk.iter().map(|id| id as &dyn ToSql).collect();
        let sql = write_sql::devices_by_identifiers(chunk.len());
        found.extend(query_all(conn, &sql, &params, device_row)?);
    }
    Ok(found)
}

async fn device_by_id(conn: &mut Conn, id: i64) -> DbResult<DeviceRow> {
    conn.prepare_cached(&write_sql::device_by_id())?
        .query_row([id], device_row)
}

async fn insert_device(
    conn: &mut Conn,
    dev_eui: Option<&str>,
    milesight_id: Option<&str>,
    name: &str,
    model: &str,
    now_ms: i64,
) -> DbResult<i64> {
    conn.prepare_cached(write_sql::INSERT_DEVICE)?.query_row(
        rusqlite::params![dev_eui, milesight_id, name, model, now_ms],
        |r| r.get(0),
    )
}

async fn update_device_identity(
    conn: &mut Conn,
    id: i64,
    dev_eui: Option<&str>,
    milesight_id: Option<&str>,
    name: Option<&str>,
    model: Option<&str>,
) -> DbResult<()> {
    conn.prepare_cached(write_sql::UPDATE_DEVICE_IDENTITY)?
        .execute(rusqlite::params![dev_eui, milesight_id, name, model, id])
        .map(|_| ())
}

async fn update_device_state(conn: &mut Conn, device: &DeviceRow) -> DbResult<()> {
    conn.prepare_cached(write_sql::UPDATE_DEVICE_STATE)?
        .execute(rusqlite::params![
            device.status,
            device.last_seen_ms,
            device.report_interval_s,
            device.id
        ])
        .map(|_| ())
}

async fn insert_readings(
    conn: &mut Conn,
    rows: &[ReadingInsert<'_>],
    now_ms: i64,
) -> DbResult<Vec<String>> {
    let mut stored = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut params: Vec<&dyn ToSql> = Vec::with_capacity(chunk.len() * 14);
        for row in chunk {
            let r = row.reading;
            let v = &r.values;
            params.extend([
                &row.device_id as &dyn ToSql,
                &r.dedup_key,
                &r.source,
                &r.event_type,
                &r.historical,
                &r.measured_ms,
                &now_ms,
                &v.temperature,
                &v.temperature2,
                &v.humidity,
                &v.humidity2,
                &v.battery,
                &row.alarms,
                &r.raw,
            ]);
        }
        let sql = write_sql::insert_readings(chunk.len());
        stored.extend(query_all(conn, &sql, &params, |r| r.get(0))?);
    }
    Ok(stored)
}

async fn silent_devices(conn: &mut Conn, now_ms: i64, policy: OfflinePolicy) -> DbResult<Vec<i64>> {
    let params: [&dyn ToSql; 3] = [&now_ms, &policy.default_interval_s, &policy.grace_s];
    query_all(conn, write_sql::SILENT_DEVICES, &params, |r| r.get(0))
}

async fn insert_events(conn: &mut Conn, events: &[EventInsert], now_ms: i64) -> DbResult<Vec<i64>> {
    let mut ids = Vec::with_capacity(events.len());
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let mut params: Vec<&dyn ToSql> = Vec::with_capacity(chunk.len() * 5);
        for e in chunk {
            params.extend([
                &e.kind as &dyn ToSql,
                &e.device_id,
                &e.site_id,
                &now_ms,
                &e.json,
            ]);
        }
        let sql = write_sql::insert_events(chunk.len());
        let got = query_all(conn, &sql, &params, |r| r.get(0))?;
        ids.extend(write_sql::event_ids(got, chunk.len()).map_err(failure)?);
    }
    Ok(ids)
}

include!("apply.rs");

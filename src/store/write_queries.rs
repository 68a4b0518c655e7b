// The write path's statements (SQL in write_sql.rs) through sqlx, for `apply.rs`. Included by
// postgres.rs; SQLite runs the same statements through rusqlite (sqlite_writer.rs).

use crate::store::write_sql::{self as write_sql, DeliveryClaim, EventInsert, ReadingInsert};
use crate::store::write_sql::ROWS_PER_STATEMENT;

type DbResult<T> = sqlx::Result<T>;

/// Records (uuid, nonce) pairs; returns those that were new. The pairs must be distinct.
async fn claim_nonces(
    conn: &mut Conn,
    pairs: &[(&str, &str)],
    now_ms: i64,
) -> DbResult<Vec<(String, String)>> {
    let mut claimed = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(ROWS_PER_STATEMENT) {
        let sql = write_sql::claim_nonces(chunk.len());
        let mut q = sqlx::query_as(&sql);
        for (uuid, nonce) in chunk {
            q = q.bind(*uuid).bind(*nonce).bind(now_ms);
        }
        claimed.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(claimed)
}

/// Records delivery keys; returns those not seen before (the others are retries). The keys
/// must be distinct.
async fn claim_deliveries(
    conn: &mut Conn,
    claims: &[DeliveryClaim<'_>],
    now_ms: i64,
) -> DbResult<Vec<String>> {
    let mut fresh = Vec::with_capacity(claims.len());
    for chunk in claims.chunks(ROWS_PER_STATEMENT) {
        let sql = write_sql::claim_deliveries(chunk.len());
        let mut q = sqlx::query_scalar(&sql);
        for c in chunk {
            q = q
                .bind(c.key)
                .bind(c.source)
                .bind(c.event_type)
                .bind(now_ms)
                .bind(c.detail);
        }
        fresh.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(fresh)
}

/// Every device whose devEUI or Milesight id is one of `ids` (devEUIs and Milesight ids mixed).
async fn devices_by_identifiers(conn: &mut Conn, ids: &[&str]) -> DbResult<Vec<DeviceRow>> {
    let mut found = Vec::new();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let sql = write_sql::devices_by_identifiers(chunk.len());
        let mut q = sqlx::query_as(&sql);
        for id in chunk {
            q = q.bind(*id);
        }
        found.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(found)
}

async fn device_by_id(conn: &mut Conn, id: i64) -> DbResult<DeviceRow> {
    sqlx::query_as(&write_sql::device_by_id())
        .bind(id)
        .fetch_one(conn)
        .await
}

async fn insert_device(
    conn: &mut Conn,
    dev_eui: Option<&str>,
    milesight_id: Option<&str>,
    name: &str,
    model: &str,
    now_ms: i64,
) -> DbResult<i64> {
    sqlx::query_scalar(write_sql::INSERT_DEVICE)
        .bind(dev_eui)
        .bind(milesight_id)
        .bind(name)
        .bind(model)
        .bind(now_ms)
        .fetch_one(conn)
        .await
}

async fn update_device_identity(
    conn: &mut Conn,
    id: i64,
    dev_eui: Option<&str>,
    milesight_id: Option<&str>,
    name: Option<&str>,
    model: Option<&str>,
) -> DbResult<()> {
    sqlx::query(write_sql::UPDATE_DEVICE_IDENTITY)
        .bind(dev_eui)
        .bind(milesight_id)
        .bind(name)
        .bind(model)
        .bind(id)
        .execute(conn)
        .await
        .map(|_| ())
}

async fn update_device_state(conn: &mut Conn, device: &DeviceRow) -> DbResult<()> {
    sqlx::query(write_sql::UPDATE_DEVICE_STATE)
        .bind(&device.status)
        .bind(device.last_seen_ms)
        .bind(device.report_interval_s)
        .bind(device.id)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Stores readings; returns the dedup keys of those stored. The keys must be distinct.
async fn insert_readings(
    conn: &mut Conn,
    rows: &[ReadingInsert<'_>],
    now_ms: i64,
) -> DbResult<Vec<String>> {
    let mut stored = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = write_sql::insert_readings(chunk.len());
        let mut q = sqlx::query_scalar(&sql);
        for row in chunk {
            let r = row.reading;
            q = q
                .bind(row.device_id)
                .bind(&r.dedup_key)
                .bind(r.source)
                .bind(&r.event_type)
                .bind(r.historical)
                .bind(r.measured_ms)
                .bind(now_ms)
                .bind(r.values.temperature)
                .bind(r.values.temperature2)
                .bind(r.values.humidity)
                .bind(r.values.humidity2)
                .bind(r.values.battery)
                .bind(row.alarms.as_deref())
                .bind(&r.raw);
        }
        stored.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(stored)
}

async fn silent_devices(
    conn: &mut Conn,
    now_ms: i64,
    policy: crate::store::writer::OfflinePolicy,
) -> DbResult<Vec<i64>> {
    sqlx::query_scalar(write_sql::SILENT_DEVICES)
        .bind(now_ms)
        .bind(policy.default_interval_s)
        .bind(policy.grace_s)
        .fetch_all(conn)
        .await
}

/// Appends events in order; returns their ids, in the same order (increasing).
async fn insert_events(
    conn: &mut Conn,
    events: &[EventInsert],
    now_ms: i64,
) -> DbResult<Vec<i64>> {
    let mut ids = Vec::with_capacity(events.len());
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let sql = write_sql::insert_events(chunk.len());
        let mut q = sqlx::query_scalar(&sql);
        for e in chunk {
            q = q
                .bind(e.kind)
                .bind(e.device_id)
                .bind(e.site_id)
                .bind(now_ms)
                .bind(&e.json);
        }
        let got = q.fetch_all(&mut *conn).await?;
        ids.extend(write_sql::event_ids(got, chunk.len()).map_err(sqlx::Error::Protocol)?);
    }
    Ok(ids)
}

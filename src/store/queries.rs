// SQL shared by both databases. Included by sqlite.rs and postgres.rs, which define `DB`, `Conn`
// and `begin_write`; placeholders are `$N`, which both accept.

#[allow(unused_imports)]
use crate::store::model::*;
use sqlx::Pool;

const DEVICE_COLUMNS: &str = "d.id, d.dev_eui, d.milesight_id, d.name, d.model, d.site_id, \
     s.name AS site_name, d.status, d.last_seen_ms, d.report_interval_s, d.ts302_variant, d.created_ms \
     FROM devices d LEFT JOIN sites s ON s.id = d.site_id";

pub async fn begin(pool: &Pool<DB>) -> sqlx::Result<sqlx::Transaction<'static, DB>> {
    begin_write(pool).await
}

pub async fn ping(pool: &Pool<DB>) -> sqlx::Result<()> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
}

/// `table` is one of a fixed list of our own table names, never user input.
pub async fn count_rows(pool: &Pool<DB>, table: &'static str) -> sqlx::Result<i64> {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(pool)
        .await
}

// ---- users and sites ----

pub async fn count_users(pool: &Pool<DB>) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(pool)
        .await
}

pub async fn insert_user(
    conn: &mut Conn,
    email: &str,
    password_hash: &str,
    role: &str,
    now_ms: i64,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO users (email, password_hash, role, created_ms) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(email)
    .bind(password_hash)
    .bind(role)
    .bind(now_ms)
    .fetch_one(conn)
    .await
}

pub async fn user_by_email(pool: &Pool<DB>, email: &str) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as("SELECT id, email, password_hash, role, disabled FROM users WHERE email = $1")
        .bind(email)
        .fetch_optional(pool)
        .await
}

pub async fn user_by_id(pool: &Pool<DB>, id: i64) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as("SELECT id, email, password_hash, role, disabled FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn user_site_ids(pool: &Pool<DB>, user_id: i64) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar("SELECT site_id FROM user_sites WHERE user_id = $1 ORDER BY site_id")
        .bind(user_id)
        .fetch_all(pool)
        .await
}

pub async fn site_get_or_create(conn: &mut Conn, name: &str, now_ms: i64) -> sqlx::Result<i64> {
    sqlx::query(
        "INSERT INTO sites (name, created_ms) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    sqlx::query_scalar("SELECT id FROM sites WHERE name = $1")
        .bind(name)
        .fetch_one(conn)
        .await
}

pub async fn add_user_site(conn: &mut Conn, user_id: i64, site_id: i64) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO user_sites (user_id, site_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(user_id)
        .bind(site_id)
        .execute(conn)
        .await
        .map(|_| ())
}

// ---- devices and readings (read side) ----

pub async fn list_devices(pool: &Pool<DB>, scope: &Scope) -> sqlx::Result<Vec<DeviceRow>> {
    let sql = format!(
        "SELECT {DEVICE_COLUMNS} WHERE {} ORDER BY d.name, d.id",
        scope.sql("d.site_id")
    );
    sqlx::query_as(&sql).fetch_all(pool).await
}

/// A device by its public id (Milesight device id or devEUI, any case).
pub async fn device_by_public_id(
    pool: &Pool<DB>,
    public_id: &str,
    scope: &Scope,
) -> sqlx::Result<Option<DeviceRow>> {
    let sql = format!(
        "SELECT {DEVICE_COLUMNS} WHERE (d.milesight_id = $1 OR d.dev_eui = $2) AND {} \
         ORDER BY d.id LIMIT 1",
        scope.sql("d.site_id")
    );
    sqlx::query_as(&sql)
        .bind(public_id)
        .bind(public_id.to_ascii_lowercase())
        .fetch_optional(pool)
        .await
}

pub async fn assign_device(
    conn: &mut Conn,
    device_id: i64,
    site_id: Option<i64>,
) -> sqlx::Result<u64> {
    sqlx::query("UPDATE devices SET site_id = $1 WHERE id = $2")
        .bind(site_id)
        .bind(device_id)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
}

pub async fn telemetry(
    pool: &Pool<DB>,
    device_id: i64,
    q: TelemetryQuery,
) -> sqlx::Result<Vec<ReadingRow>> {
    sqlx::query_as(
        "SELECT id, source, event_type, historical, measured_ms, received_ms, temperature, temperature2, \
         humidity, humidity2, battery, alarms, raw FROM readings \
         WHERE device_id = $1 AND measured_ms >= $2 AND measured_ms <= $3 \
         ORDER BY measured_ms DESC, id DESC LIMIT $4",
    )
    .bind(device_id)
    .bind(q.since_ms.unwrap_or(i64::MIN))
    .bind(q.until_ms.unwrap_or(i64::MAX))
    .bind(q.limit)
    .fetch_all(pool)
    .await
}

// ---- the event log (read side) ----

pub async fn events_after(
    pool: &Pool<DB>,
    after_id: i64,
    up_to_id: i64,
    scope: &Scope,
    limit: i64,
) -> sqlx::Result<Vec<EventRow>> {
    let sql = format!(
        "SELECT id, device_id, site_id, json FROM events WHERE id > $1 AND id <= $2 AND {} ORDER BY id LIMIT $3",
        scope.sql("site_id")
    );
    sqlx::query_as(&sql)
        .bind(after_id)
        .bind(up_to_id)
        .bind(limit)
        .fetch_all(pool)
        .await
}

pub async fn max_event_id(pool: &Pool<DB>) -> sqlx::Result<i64> {
    sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(id) FROM events")
        .fetch_one(pool)
        .await
        .map(|v| v.unwrap_or(0))
}

// ---- the write side (inside one transaction) ----
//
// The writer stores a whole group of webhooks with a few statements, each covering every row of
// its table (multi-row VALUES, at most `ROWS_PER_STATEMENT` rows each), instead of a few
// statements per webhook: on SQLite each statement is a hand-off to sqlx's worker thread, on
// PostgreSQL a network round trip.

/// Rows per multi-row statement. Each row count is its own prepared statement (kept in the
/// connection's statement cache), so this also bounds how many of them there are.
const ROWS_PER_STATEMENT: usize = 32;

/// Prepared statements kept per connection: the multi-row write statements (up to
/// `ROWS_PER_STATEMENT` of each) besides the rest.
pub const STATEMENT_CACHE: usize = 256;

/// `{head} VALUES ($1, …, $cols), (…) {tail}` for `rows` rows.
fn values_sql(head: &str, cols: usize, rows: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * cols * 5 + 16);
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(r * cols + c + 1).to_string());
        }
        sql.push(')');
    }
    sql.push(' ');
    sql.push_str(tail);
    sql
}

/// Records (uuid, nonce) pairs; returns those that were new. The pairs must be distinct.
pub async fn claim_nonces(
    conn: &mut Conn,
    pairs: &[(&str, &str)],
    now_ms: i64,
) -> sqlx::Result<Vec<(String, String)>> {
    let mut claimed = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(ROWS_PER_STATEMENT) {
        let sql = values_sql(
            "INSERT INTO webhook_nonces (webhook_uuid, nonce, seen_ms)",
            3,
            chunk.len(),
            "ON CONFLICT DO NOTHING RETURNING webhook_uuid, nonce",
        );
        let mut q = sqlx::query_as(&sql);
        for (uuid, nonce) in chunk {
            q = q.bind(*uuid).bind(*nonce).bind(now_ms);
        }
        claimed.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(claimed)
}

pub async fn purge_nonces(pool: &Pool<DB>, before_ms: i64) -> sqlx::Result<u64> {
    sqlx::query("DELETE FROM webhook_nonces WHERE seen_ms < $1")
        .bind(before_ms)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
}

/// A delivery key to record, with what the webhook health view shows of it.
pub struct DeliveryClaim<'a> {
    pub key: &'a str,
    pub source: &'a str,
    pub event_type: &'a str,
    pub detail: Option<&'a str>,
}

/// Records delivery keys; returns those not seen before (the others are retries). The keys
/// must be distinct.
pub async fn claim_deliveries(
    conn: &mut Conn,
    claims: &[DeliveryClaim<'_>],
    now_ms: i64,
) -> sqlx::Result<Vec<String>> {
    let mut fresh = Vec::with_capacity(claims.len());
    for chunk in claims.chunks(ROWS_PER_STATEMENT) {
        let sql = values_sql(
            "INSERT INTO deliveries (dedup_key, source, event_type, received_ms, detail)",
            5,
            chunk.len(),
            "ON CONFLICT DO NOTHING RETURNING dedup_key",
        );
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
pub async fn devices_by_identifiers(conn: &mut Conn, ids: &[&str]) -> sqlx::Result<Vec<DeviceRow>> {
    let mut found = Vec::new();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let list = (1..=chunk.len())
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {DEVICE_COLUMNS} WHERE d.dev_eui IN ({list}) OR d.milesight_id IN ({list})"
        );
        let mut q = sqlx::query_as(&sql);
        for id in chunk {
            q = q.bind(*id);
        }
        found.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(found)
}

pub async fn device_by_id(conn: &mut Conn, id: i64) -> sqlx::Result<DeviceRow> {
    let sql = format!("SELECT {DEVICE_COLUMNS} WHERE d.id = $1");
    sqlx::query_as(&sql).bind(id).fetch_one(conn).await
}

pub async fn insert_device(
    conn: &mut Conn,
    dev_eui: Option<&str>,
    milesight_id: Option<&str>,
    name: &str,
    model: &str,
    now_ms: i64,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO devices (dev_eui, milesight_id, name, model, status, created_ms) \
         VALUES ($1, $2, $3, $4, 'ONLINE', $5) RETURNING id",
    )
    .bind(dev_eui)
    .bind(milesight_id)
    .bind(name)
    .bind(model)
    .bind(now_ms)
    .fetch_one(conn)
    .await
}

/// Fills in identity fields learnt later (e.g. the devEUI of an MDP device, a new name).
pub async fn update_device_identity(
    conn: &mut Conn,
    id: i64,
    dev_eui: Option<&str>,
    milesight_id: Option<&str>,
    name: Option<&str>,
    model: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE devices SET dev_eui = COALESCE(dev_eui, $1), milesight_id = COALESCE(milesight_id, $2), \
         name = COALESCE($3, name), model = COALESCE($4, model) WHERE id = $5",
    )
    .bind(dev_eui)
    .bind(milesight_id)
    .bind(name)
    .bind(model)
    .bind(id)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Stores what ingest changes of a device: its status, "last seen" and reporting interval.
/// The row was read in the same write transaction, so these values are the newest.
pub async fn update_device_state(conn: &mut Conn, device: &DeviceRow) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE devices SET status = $1, last_seen_ms = $2, report_interval_s = $3 WHERE id = $4",
    )
    .bind(&device.status)
    .bind(device.last_seen_ms)
    .bind(device.report_interval_s)
    .bind(device.id)
    .execute(conn)
    .await
    .map(|_| ())
}

/// A reading to store, of a known device.
pub struct ReadingInsert<'a> {
    pub device_id: i64,
    pub reading: &'a crate::ingest::model::NewReading,
    /// The reading's alarms as JSON text.
    pub alarms: Option<String>,
}

/// Stores readings; returns the dedup keys of those stored (a key seen before stores nothing).
/// The keys must be distinct.
pub async fn insert_readings(
    conn: &mut Conn,
    rows: &[ReadingInsert<'_>],
    now_ms: i64,
) -> sqlx::Result<Vec<String>> {
    let mut stored = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = values_sql(
            "INSERT INTO readings (device_id, dedup_key, source, event_type, historical, measured_ms, \
             received_ms, temperature, temperature2, humidity, humidity2, battery, alarms, raw)",
            14,
            chunk.len(),
            "ON CONFLICT (dedup_key) DO NOTHING RETURNING dedup_key",
        );
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

pub async fn set_device_variant(
    pool: &Pool<DB>,
    id: i64,
    variant: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE devices SET ts302_variant = $1 WHERE id = $2")
        .bind(variant)
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ())
}

/// Online devices silent for longer than 3 x their interval + the grace period.
pub async fn silent_devices(
    conn: &mut Conn,
    now_ms: i64,
    policy: crate::store::writer::OfflinePolicy,
) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(
        "SELECT id FROM devices WHERE status = 'ONLINE' AND last_seen_ms IS NOT NULL \
         AND last_seen_ms < $1 - (3 * COALESCE(report_interval_s, $2) + $3) * 1000 ORDER BY id",
    )
    .bind(now_ms)
    .bind(policy.default_interval_s)
    .bind(policy.grace_s)
    .fetch_all(conn)
    .await
}

/// An event to append to the log.
pub struct EventInsert {
    pub kind: &'static str,
    pub device_id: i64,
    pub site_id: Option<i64>,
    pub json: String,
}

/// Appends events in order; returns their ids, in the same order (increasing).
pub async fn insert_events(
    conn: &mut Conn,
    events: &[EventInsert],
    now_ms: i64,
) -> sqlx::Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(events.len());
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let sql = values_sql(
            "INSERT INTO events (kind, device_id, site_id, created_ms, json)",
            5,
            chunk.len(),
            "RETURNING id",
        );
        let mut q = sqlx::query_scalar(&sql);
        for e in chunk {
            q = q
                .bind(e.kind)
                .bind(e.device_id)
                .bind(e.site_id)
                .bind(now_ms)
                .bind(&e.json);
        }
        // Both databases number the rows of a VALUES list in order, but RETURNING may list
        // them in any order.
        let mut got: Vec<i64> = q.fetch_all(&mut *conn).await?;
        if got.len() != chunk.len() {
            return Err(sqlx::Error::Protocol(format!(
                "{} events inserted, {} ids returned",
                chunk.len(),
                got.len()
            )));
        }
        got.sort_unstable();
        ids.extend(got);
    }
    Ok(ids)
}

// ---- sessions ----

pub async fn session_load(pool: &Pool<DB>, id: &str, now_ms: i64) -> sqlx::Result<Option<Vec<u8>>> {
    sqlx::query_scalar("SELECT data FROM sessions WHERE id = $1 AND expiry_ms > $2")
        .bind(id)
        .bind(now_ms)
        .fetch_optional(pool)
        .await
}

/// Inserts a new session; false when the id is taken.
pub async fn session_create(
    pool: &Pool<DB>,
    id: &str,
    user_id: Option<i64>,
    data: &[u8],
    expiry_ms: i64,
) -> sqlx::Result<bool> {
    sqlx::query(
        "INSERT INTO sessions (id, user_id, data, expiry_ms) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(user_id)
    .bind(data)
    .bind(expiry_ms)
    .execute(pool)
    .await
    .map(|r| r.rows_affected() == 1)
}

pub async fn session_save(
    pool: &Pool<DB>,
    id: &str,
    user_id: Option<i64>,
    data: &[u8],
    expiry_ms: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO sessions (id, user_id, data, expiry_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO UPDATE SET user_id = EXCLUDED.user_id, data = EXCLUDED.data, \
         expiry_ms = EXCLUDED.expiry_ms",
    )
    .bind(id)
    .bind(user_id)
    .bind(data)
    .bind(expiry_ms)
    .execute(pool)
    .await
    .map(|_| ())
}

pub async fn session_delete(pool: &Pool<DB>, id: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM sessions WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ())
}

pub async fn sessions_purge_expired(pool: &Pool<DB>, now_ms: i64) -> sqlx::Result<u64> {
    sqlx::query("DELETE FROM sessions WHERE expiry_ms <= $1")
        .bind(now_ms)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
}

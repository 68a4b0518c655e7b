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

/// Records a (uuid, nonce) pair; false when it was already used.
pub async fn claim_nonce(
    conn: &mut Conn,
    uuid: &str,
    nonce: &str,
    now_ms: i64,
) -> sqlx::Result<bool> {
    sqlx::query(
        "INSERT INTO webhook_nonces (webhook_uuid, nonce, seen_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(uuid)
    .bind(nonce)
    .bind(now_ms)
    .execute(conn)
    .await
    .map(|r| r.rows_affected() == 1)
}

pub async fn purge_nonces(pool: &Pool<DB>, before_ms: i64) -> sqlx::Result<u64> {
    sqlx::query("DELETE FROM webhook_nonces WHERE seen_ms < $1")
        .bind(before_ms)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
}

/// Records a delivery key; false when it was seen before (a retry).
pub async fn claim_delivery(
    conn: &mut Conn,
    key: &str,
    source: &str,
    event_type: &str,
    now_ms: i64,
    detail: Option<&str>,
) -> sqlx::Result<bool> {
    sqlx::query(
        "INSERT INTO deliveries (dedup_key, source, event_type, received_ms, detail) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(key)
    .bind(source)
    .bind(event_type)
    .bind(now_ms)
    .bind(detail)
    .execute(conn)
    .await
    .map(|r| r.rows_affected() == 1)
}

pub async fn find_device(
    conn: &mut Conn,
    dev_eui: Option<&str>,
    milesight_id: Option<&str>,
) -> sqlx::Result<Option<DeviceRow>> {
    let sql = format!(
        "SELECT {DEVICE_COLUMNS} WHERE d.dev_eui = $1 OR d.milesight_id = $2 \
         ORDER BY (d.dev_eui = $1) DESC, d.id LIMIT 1"
    );
    sqlx::query_as(&sql)
        .bind(dev_eui)
        .bind(milesight_id)
        .fetch_optional(conn)
        .await
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

#[allow(clippy::too_many_arguments)]
pub async fn insert_reading(
    conn: &mut Conn,
    device_id: i64,
    r: &crate::ingest::model::NewReading,
    now_ms: i64,
    alarms: Option<&str>,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "INSERT INTO readings (device_id, dedup_key, source, event_type, historical, measured_ms, received_ms, \
         temperature, temperature2, humidity, humidity2, battery, alarms, raw) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
    )
    .bind(device_id)
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
    .bind(alarms)
    .bind(&r.raw)
    .fetch_optional(conn)
    .await
}

pub async fn set_device_seen(conn: &mut Conn, id: i64, seen_ms: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE devices SET last_seen_ms = CASE WHEN last_seen_ms IS NULL OR last_seen_ms < $1 \
         THEN $1 ELSE last_seen_ms END WHERE id = $2",
    )
    .bind(seen_ms)
    .bind(id)
    .execute(conn)
    .await
    .map(|_| ())
}

pub async fn set_device_status(conn: &mut Conn, id: i64, status: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE devices SET status = $1 WHERE id = $2")
        .bind(status)
        .bind(id)
        .execute(conn)
        .await
        .map(|_| ())
}

pub async fn set_report_interval(conn: &mut Conn, id: i64, secs: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE devices SET report_interval_s = $1 WHERE id = $2")
        .bind(secs)
        .bind(id)
        .execute(conn)
        .await
        .map(|_| ())
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

pub async fn insert_event(
    conn: &mut Conn,
    kind: &str,
    device: &DeviceRow,
    now_ms: i64,
    json: &str,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO events (kind, device_id, site_id, created_ms, json) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(kind)
    .bind(device.id)
    .bind(device.site_id)
    .bind(now_ms)
    .bind(json)
    .fetch_one(conn)
    .await
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

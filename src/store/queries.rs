// SQL shared by both databases. Included by sqlite.rs and postgres.rs, which define `DB`, `Conn`
// and `begin_write`; placeholders are `$N`, which both accept.

#[allow(unused_imports)]
use crate::store::model::*;
use sqlx::Pool;

use crate::store::write_sql::DEVICE_COLUMNS;

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

/// A user and their site ids in one round trip (every request of a signed-in user reads this).
pub async fn user_with_site_ids(
    pool: &Pool<DB>,
    id: i64,
) -> sqlx::Result<Option<(UserRow, Vec<i64>)>> {
    type Row = (i64, String, String, String, bool, Option<i64>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT u.id, u.email, u.password_hash, u.role, u.disabled, us.site_id \
         FROM users u LEFT JOIN user_sites us ON us.user_id = u.id \
         WHERE u.id = $1 ORDER BY us.site_id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let site_ids = rows.iter().filter_map(|r| r.5).collect();
    Ok(rows
        .into_iter()
        .next()
        .map(|(id, email, password_hash, role, disabled, _)| {
            let user = UserRow {
                id,
                email,
                password_hash,
                role,
                disabled,
            };
            (user, site_ids)
        }))
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

// ---- written outside the writer ----

pub async fn purge_nonces(pool: &Pool<DB>, before_ms: i64) -> sqlx::Result<u64> {
    sqlx::query("DELETE FROM webhook_nonces WHERE seen_ms < $1")
        .bind(before_ms)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
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

// ---- sessions ----

pub async fn session_load(pool: &Pool<DB>, id: &str, now_ms: i64) -> sqlx::Result<Option<Vec<u8>>> {
    sqlx::query_scalar("SELECT data FROM sessions WHERE id = $1 AND expiry_ms > $2")
        .bind(id)
        .bind(now_ms)
        .fetch_optional(pool)
        .await
}

/// When a live session expires (ms), or `None` when it is gone or expired (streams follow it).
pub async fn session_expiry(pool: &Pool<DB>, id: &str, now_ms: i64) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT expiry_ms FROM sessions WHERE id = $1 AND expiry_ms > $2")
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

// ---- sign-in attempts (web/throttle.rs) ----

/// Attempts since `since_ms`: (from this address, from it for this account, for this account
/// from anywhere, the oldest from the address, the oldest for the pair). Run inside
/// `begin_login_attempt`, so the count and the insert that follows are one step per address.
pub async fn login_attempt_counts(
    conn: &mut Conn,
    ip: &str,
    email: &str,
    since_ms: i64,
) -> sqlx::Result<(i64, i64, i64, Option<i64>, Option<i64>)> {
    sqlx::query_as(
        "SELECT COALESCE(SUM(CASE WHEN ip = $1 THEN 1 ELSE 0 END), 0), \
         COALESCE(SUM(CASE WHEN ip = $1 AND email = $2 THEN 1 ELSE 0 END), 0), \
         COALESCE(SUM(CASE WHEN email = $2 THEN 1 ELSE 0 END), 0), \
         MIN(CASE WHEN ip = $1 THEN at_ms END), \
         MIN(CASE WHEN ip = $1 AND email = $2 THEN at_ms END) \
         FROM login_attempts WHERE (ip = $1 OR email = $2) AND at_ms > $3",
    )
    .bind(ip)
    .bind(email)
    .bind(since_ms)
    .fetch_one(conn)
    .await
}

pub async fn login_attempt_insert(conn: &mut Conn, ip: &str, email: &str, at_ms: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar("INSERT INTO login_attempts (ip, email, at_ms) VALUES ($1, $2, $3) RETURNING id")
        .bind(ip)
        .bind(email)
        .bind(at_ms)
        .fetch_one(conn)
        .await
}

/// An attempt whose password was never checked (the server was too busy) no longer counts.
pub async fn login_attempt_withdraw(pool: &Pool<DB>, id: i64) -> sqlx::Result<u64> {
    sqlx::query("DELETE FROM login_attempts WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
}

/// A successful sign-in forgives its address and account together (not the address alone).
pub async fn login_attempts_forgive(pool: &Pool<DB>, ip: &str, email: &str) -> sqlx::Result<u64> {
    sqlx::query("DELETE FROM login_attempts WHERE ip = $1 AND email = $2")
        .bind(ip)
        .bind(email)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
}

pub async fn login_attempts_purge(pool: &Pool<DB>, before_ms: i64) -> sqlx::Result<u64> {
    sqlx::query("DELETE FROM login_attempts WHERE at_ms <= $1")
        .bind(before_ms)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
}

// ---- keys shared by the instances (web/csrf.rs) ----

/// The secret called `name`: the stored one, or `secret` if none was stored yet.
pub async fn server_key_get_or_create(
    pool: &Pool<DB>,
    name: &str,
    secret: &[u8],
    now_ms: i64,
) -> sqlx::Result<Vec<u8>> {
    sqlx::query("INSERT INTO server_keys (name, secret, created_ms) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(secret)
        .bind(now_ms)
        .execute(pool)
        .await?;
    sqlx::query_scalar("SELECT secret FROM server_keys WHERE name = $1")
        .bind(name)
        .fetch_one(pool)
        .await
}

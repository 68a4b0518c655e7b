// Browser sessions (tower-sessions records).

pub async fn session_load(pool: &Pool<DB>, id: &str, now_ms: i64) -> sqlx::Result<Option<Vec<u8>>> {
    sqlx::query_scalar("SELECT data FROM sessions WHERE id = $1 AND expiry_ms > $2")
        .bind(id)
        .bind(now_ms)
        .fetch_optional(pool)
        .await
}

/// A live session's data and the user its `user_id` column names, with their site ids, in one
/// query: what opening a stream checks (`Store::stream_session`). `None` when the session is
/// gone, expired, or names no user that exists.
pub async fn session_with_user(
    pool: &Pool<DB>,
    id: &str,
    now_ms: i64,
) -> sqlx::Result<Option<(Vec<u8>, (UserRow, Vec<i64>))>> {
    type Row = (Vec<u8>, i64, String, String, String, bool, String, Option<i64>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT s.data, u.id, u.email, u.password_hash, u.role, u.disabled, u.temperature_unit, \
         us.site_id FROM sessions s JOIN users u ON u.id = s.user_id \
         LEFT JOIN user_sites us ON us.user_id = u.id \
         WHERE s.id = $1 AND s.expiry_ms > $2 ORDER BY us.site_id",
    )
    .bind(id)
    .bind(now_ms)
    .fetch_all(pool)
    .await?;
    // Every row carries the session's data; the first one's is kept.
    let mut data = None;
    let user_rows = rows
        .into_iter()
        .map(|(d, id, email, password_hash, role, disabled, unit, site)| {
            data.get_or_insert(d);
            (id, email, password_hash, role, disabled, unit, site)
        })
        .collect();
    Ok(data.zip(user_and_site_ids(user_rows)))
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

// Browser sessions (tower-sessions records).

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

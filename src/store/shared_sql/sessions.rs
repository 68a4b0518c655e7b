// Browser sessions (tower-sessions records).

pub async fn session_load(pool: &Pool<DB>, id: &str, now_ms: i64) -> sqlx::Result<Option<Vec<u8>>> {
    sqlx::query_scalar("SELECT data FROM sessions WHERE id = $1 AND expiry_ms > $2")
        .bind(id)
        .bind(now_ms)
        .fetch_optional(pool)
        .await
}

/// Live sessions' data and the users their `user_id` columns name, with their site ids, in one
/// query: what opening streams checks (`Store::stream_sessions`). A session that is gone,
/// expired, or names no user that exists is left out.
pub async fn sessions_with_users(
    pool: &Pool<DB>,
    ids: &[String],
    now_ms: i64,
) -> sqlx::Result<Vec<(String, Vec<u8>, (UserRow, Vec<i64>))>> {
    type Row = (String, Vec<u8>, i64, String, String, String, bool, String, Option<i64>);
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let marks: Vec<String> = (2..ids.len() + 2).map(|n| format!("${n}")).collect();
    let sql = format!(
        "SELECT s.id, s.data, u.id, u.email, u.password_hash, u.role, u.disabled, \
         u.temperature_unit, us.site_id FROM sessions s JOIN users u ON u.id = s.user_id \
         LEFT JOIN user_sites us ON us.user_id = u.id \
         WHERE s.id IN ({}) AND s.expiry_ms > $1 ORDER BY s.id, us.site_id",
        marks.join(", ")
    );
    let mut query = sqlx::query_as::<_, Row>(&sql).bind(now_ms);
    for id in ids {
        query = query.bind(id);
    }
    let rows = query.fetch_all(pool).await?;
    // A session's rows are together (one per site of its user), each with its data.
    let mut found = Vec::new();
    let mut rows = rows.into_iter().peekable();
    while let Some((id, data, uid, email, hash, role, disabled, unit, site)) = rows.next() {
        let mut user_rows = vec![(uid, email, hash, role, disabled, unit, site)];
        while let Some(next) = rows.next_if(|r| r.0 == id) {
            user_rows.push((next.2, next.3, next.4, next.5, next.6, next.7, next.8));
        }
        if let Some(user) = user_and_site_ids(user_rows) {
            found.push((id, data, user));
        }
    }
    Ok(found)
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

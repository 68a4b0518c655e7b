// Sign-in attempts (counted per address and account) and the keys all instances share.

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

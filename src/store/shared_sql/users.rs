// Users, sites and who belongs where.

pub async fn begin(pool: &Pool<DB>) -> sqlx::Result<sqlx::Transaction<'static, DB>> {
    begin_write(pool).await
}

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
    sqlx::query_as("SELECT id, email, password_hash, role, disabled, temperature_unit FROM users WHERE email = $1")
        .bind(email)
        .fetch_optional(pool)
        .await
}

pub async fn user_by_id(pool: &Pool<DB>, id: i64) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as("SELECT id, email, password_hash, role, disabled, temperature_unit FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// A user's columns, then one of their site ids (NULL for none): a user joined to their sites.
type UserAndSite = (i64, String, String, String, bool, String, Option<i64>);

/// The user of `rows` (one user, a row per site) and their site ids in the rows' order.
fn user_and_site_ids(rows: Vec<UserAndSite>) -> Option<(UserRow, Vec<i64>)> {
    let site_ids = rows.iter().filter_map(|r| r.6).collect();
    rows.into_iter()
        .next()
        .map(|(id, email, password_hash, role, disabled, temperature_unit, _)| {
            let user = UserRow {
                id,
                email,
                password_hash,
                role,
                disabled,
                temperature_unit,
            };
            (user, site_ids)
        })
}

/// A user and their site ids in one round trip (every request of a signed-in user reads this).
pub async fn user_with_site_ids(
    pool: &Pool<DB>,
    id: i64,
) -> sqlx::Result<Option<(UserRow, Vec<i64>)>> {
    let rows: Vec<UserAndSite> = sqlx::query_as(
        "SELECT u.id, u.email, u.password_hash, u.role, u.disabled, u.temperature_unit, us.site_id \
         FROM users u LEFT JOIN user_sites us ON us.user_id = u.id \
         WHERE u.id = $1 ORDER BY us.site_id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    Ok(user_and_site_ids(rows))
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

pub async fn list_sites(pool: &Pool<DB>) -> sqlx::Result<Vec<SiteRow>> {
    sqlx::query_as("SELECT id, name, time_zone FROM sites ORDER BY name").fetch_all(pool).await
}

pub async fn list_users(pool: &Pool<DB>) -> sqlx::Result<Vec<UserListRow>> {
    sqlx::query_as("SELECT id, email, role, disabled FROM users ORDER BY email").fetch_all(pool).await
}

pub async fn list_user_sites(pool: &Pool<DB>) -> sqlx::Result<Vec<UserSiteRow>> {
    sqlx::query_as("SELECT user_id, site_id FROM user_sites ORDER BY user_id, site_id")
        .fetch_all(pool)
        .await
}

pub async fn set_user_role(conn: &mut Conn, user_id: i64, role: &str) -> sqlx::Result<u64> {
    sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
        .bind(role)
        .bind(user_id)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
}

pub async fn clear_user_sites(conn: &mut Conn, user_id: i64) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM user_sites WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await
        .map(|_| ())
}

pub async fn set_user_disabled(conn: &mut Conn, user_id: i64, disabled: bool) -> sqlx::Result<u64> {
    sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
        .bind(disabled)
        .bind(user_id)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
}

pub async fn set_user_password(conn: &mut Conn, user_id: i64, password_hash: &str) -> sqlx::Result<u64> {
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(password_hash)
        .bind(user_id)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
}

/// Ends a user's sessions, all but `keep` (the admin's own, when changing their own account),
/// in the caller's transaction.
pub async fn end_user_sessions(conn: &mut Conn, user_id: i64, keep: Option<&str>) -> sqlx::Result<u64> {
    sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
        .bind(user_id)
        .bind(keep.unwrap_or(""))
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
}

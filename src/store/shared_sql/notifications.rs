// The outbox's read side and the dispatcher's bookkeeping; webhook endpoints; email opt-in.

const NOTIFICATION_COLUMNS: &str = "id, alarm_id, reason, channel, recipient, endpoint_id, \
     delivery_id, payload, status, attempts, next_attempt_ms, last_result, created_ms, delivered_ms, summary_id";

/// Claims up to `limit` due notifications for `lease_ms`: another dispatcher (another
/// instance) skips them until the lease runs out, so each is sent by one at a time.
pub async fn claim_notifications(
    pool: &Pool<DB>,
    now_ms: i64,
    lease_ms: i64,
    limit: i64,
) -> sqlx::Result<Vec<NotificationRow>> {
    let sql = format!(
        "UPDATE notifications SET claimed_until_ms = $1 WHERE id IN (SELECT id FROM notifications \
         WHERE status = 'pending' AND next_attempt_ms <= $2 \
         AND (claimed_until_ms IS NULL OR claimed_until_ms < $2) ORDER BY id LIMIT $3 {SKIP_LOCKED}) \
         RETURNING {NOTIFICATION_COLUMNS}"
    );
    let mut tx = begin_outbox(pool).await?;
    let rows = sqlx::query_as(&sql)
        .bind(now_ms + lease_ms)
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows)
}

pub async fn list_notifications(pool: &Pool<DB>, limit: i64) -> sqlx::Result<Vec<NotificationRow>> {
    let sql = format!("SELECT {NOTIFICATION_COLUMNS} FROM notifications ORDER BY id DESC LIMIT $1");
    sqlx::query_as(&sql).bind(limit).fetch_all(pool).await
}

pub async fn notifications_of_alarm(pool: &Pool<DB>, alarm_id: i64) -> sqlx::Result<Vec<NotificationRow>> {
    let sql = format!("SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE alarm_id = $1 ORDER BY id");
    sqlx::query_as(&sql).bind(alarm_id).fetch_all(pool).await
}

#[allow(clippy::too_many_arguments)] // one row's columns
pub async fn insert_notification(
    conn: &mut Conn,
    reason: &str,
    channel: &str,
    recipient: &str,
    endpoint_id: Option<i64>,
    delivery_id: &str,
    payload: &str,
    now_ms: i64,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO notifications (reason, channel, recipient, endpoint_id, delivery_id, payload, \
         status, attempts, next_attempt_ms, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7) RETURNING id",
    )
    .bind(reason)
    .bind(channel)
    .bind(recipient)
    .bind(endpoint_id)
    .bind(delivery_id)
    .bind(payload)
    .bind(now_ms)
    .fetch_one(conn)
    .await
}

pub async fn list_webhook_endpoints(pool: &Pool<DB>) -> sqlx::Result<Vec<WebhookEndpoint>> {
    sqlx::query_as(
        "SELECT w.id, w.site_id, s.name AS site_name, w.url, w.secret, w.created_ms, w.created_by \
         FROM webhook_endpoints w JOIN sites s ON s.id = w.site_id ORDER BY s.name, w.id",
    )
    .fetch_all(pool)
    .await
}

pub async fn insert_webhook_endpoint(
    conn: &mut Conn,
    site_id: i64,
    url: &str,
    secret: &str,
    by: &str,
    now_ms: i64,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO webhook_endpoints (site_id, url, secret, created_ms, created_by) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(site_id)
    .bind(url)
    .bind(secret)
    .bind(now_ms)
    .bind(by)
    .fetch_one(conn)
    .await
}

pub async fn delete_webhook_endpoint(conn: &mut Conn, id: i64) -> sqlx::Result<u64> {
    sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
}

pub async fn user_email_alerts(pool: &Pool<DB>, user_id: i64) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar("SELECT email_alerts FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_one(pool)
        .await
}

pub async fn set_user_email_alerts(pool: &Pool<DB>, user_id: i64, on: bool) -> sqlx::Result<u64> {
    sqlx::query("UPDATE users SET email_alerts = $1 WHERE id = $2")
        .bind(on)
        .bind(user_id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
}

pub async fn set_user_temperature_unit(
    pool: &Pool<DB>,
    user_id: i64,
    unit: &str,
) -> sqlx::Result<u64> {
    sqlx::query("UPDATE users SET temperature_unit = $1 WHERE id = $2")
        .bind(unit)
        .bind(user_id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
}

pub async fn email_temperature_unit(pool: &Pool<DB>, email: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT temperature_unit FROM users WHERE email = $1")
        .bind(email)
        .fetch_optional(pool)
        .await
}

pub async fn upsert_push_subscription(
    pool: &Pool<DB>,
    user_id: i64,
    endpoint: &str,
    p256dh: &str,
    auth: &str,
    now_ms: i64,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth, created_ms) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (endpoint) DO UPDATE SET user_id = excluded.user_id, \
         p256dh = excluded.p256dh, auth = excluded.auth RETURNING id",
    )
    .bind(user_id)
    .bind(endpoint)
    .bind(p256dh)
    .bind(auth)
    .bind(now_ms)
    .fetch_one(pool)
    .await
}

/// Keeps a user's newest `keep` subscriptions (a browser re-subscribing adds a row each time).
pub async fn trim_push_subscriptions(pool: &Pool<DB>, user_id: i64, keep: i64) -> sqlx::Result<u64> {
    sqlx::query(
        "DELETE FROM push_subscriptions WHERE user_id = $1 AND id NOT IN \
         (SELECT id FROM push_subscriptions WHERE user_id = $1 ORDER BY id DESC LIMIT $2)",
    )
    .bind(user_id)
    .bind(keep)
    .execute(pool)
    .await
    .map(|r| r.rows_affected())
}

pub async fn push_subscription_by_id(pool: &Pool<DB>, id: i64) -> sqlx::Result<Option<PushSubscriptionRow>> {
    sqlx::query_as("SELECT id, user_id, endpoint, p256dh, auth FROM push_subscriptions WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn delete_push_subscription(pool: &Pool<DB>, id: i64) -> sqlx::Result<u64> {
    sqlx::query("DELETE FROM push_subscriptions WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
}

pub async fn delete_user_push_subscription(pool: &Pool<DB>, user_id: i64, endpoint: &str) -> sqlx::Result<u64> {
    sqlx::query("DELETE FROM push_subscriptions WHERE user_id = $1 AND endpoint = $2")
        .bind(user_id)
        .bind(endpoint)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
}

/// The flood guard, for a claimed alarm notification about to go to `recipient`: what they got
/// in the window (delivered, or claimed before it and being sent now) is counted, and at `max`
/// this one is held for the recipient's summary, which is queued for when the window has room.
/// Returns whether it was held.
#[allow(clippy::too_many_arguments)] // the row, the limit, and the summary's columns
pub async fn fold_if_flooded(
    pool: &Pool<DB>,
    row: &NotificationRow,
    max: i64,
    window_ms: i64,
    summary_delivery_id: &str,
    note: &str,
    now_ms: i64,
) -> sqlx::Result<bool> {
    // Counted with a plain read (a write lock for every send would slow ingest); two
    // instances counting at once may each send one more, which a guard can bear.
    let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), MIN(delivered_ms) FROM notifications \
         WHERE channel = $1 AND recipient = $2 AND reason <> 'test' AND id <> $3 \
         AND ((status = 'delivered' AND delivered_ms > $4) \
           OR (status = 'pending' AND reason <> 'summary' AND claimed_until_ms > $5 AND id < $3))",
    )
    .bind(&row.channel)
    .bind(&row.recipient)
    .bind(row.id)
    .bind(now_ms - window_ms)
    .bind(now_ms)
    .fetch_one(pool)
    .await?;
    if count < max {
        return Ok(false);
    }
    let mut tx = begin_outbox(pool).await?;
    sqlx::query(
        "UPDATE notifications SET status = 'folded', claimed_until_ms = NULL, last_result = $1 \
         WHERE id = $2",
    )
    .bind(note)
    .bind(row.id)
    .execute(&mut *tx)
    .await?;
    let due = oldest.map_or(now_ms + window_ms, |t| t + window_ms).max(now_ms);
    sqlx::query(
        "INSERT INTO notifications (reason, channel, recipient, endpoint_id, delivery_id, payload, \
         status, attempts, next_attempt_ms, created_ms) \
         VALUES ('summary', $1, $2, $3, $4, '{}', 'pending', 0, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(&row.channel)
    .bind(&row.recipient)
    .bind(row.endpoint_id)
    .bind(summary_delivery_id)
    .bind(due)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// What a recipient's summary carries: the first `limit` held notifications, how many are
/// held in all, and the newest one's id.
pub async fn folded_for(
    pool: &Pool<DB>,
    channel: &str,
    recipient: &str,
    limit: i64,
) -> sqlx::Result<(Vec<NotificationRow>, i64, Option<i64>)> {
    let filter = "channel = $1 AND recipient = $2 AND status = 'folded' AND summary_id IS NULL";
    let (total, last): (i64, Option<i64>) =
        sqlx::query_as(&format!("SELECT COUNT(*), MAX(id) FROM notifications WHERE {filter}"))
            .bind(channel)
            .bind(recipient)
            .fetch_one(pool)
            .await?;
    let sql = format!("SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE {filter} ORDER BY id LIMIT $3");
    let rows = sqlx::query_as(&sql)
        .bind(channel)
        .bind(recipient)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    Ok((rows, total, last))
}

/// Marks the held notifications up to `last_id` as carried by the delivered summary.
pub async fn mark_summarized(
    pool: &Pool<DB>,
    summary_id: i64,
    channel: &str,
    recipient: &str,
    last_id: i64,
) -> sqlx::Result<u64> {
    let mut tx = begin_outbox(pool).await?;
    let n = sqlx::query(
        "UPDATE notifications SET summary_id = $1 WHERE channel = $2 AND recipient = $3 \
         AND status = 'folded' AND summary_id IS NULL AND id <= $4",
    )
    .bind(summary_id)
    .bind(channel)
    .bind(recipient)
    .bind(last_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(n)
}

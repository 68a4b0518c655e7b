// Health, counts, housekeeping and the webhook log.

pub async fn ping(pool: &Pool<DB>) -> sqlx::Result<()> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
}

/// `table` is one of a fixed list of our own table names, never user input.
pub async fn count_rows(pool: &Pool<DB>, table: &'static str) -> sqlx::Result<i64> {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(pool)
        .await
}

pub async fn purge_nonces(pool: &Pool<DB>, before_ms: i64) -> sqlx::Result<u64> {
    sqlx::query("DELETE FROM webhook_nonces WHERE seen_ms < $1")
        .bind(before_ms)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
}

/// The newest accepted deliveries; with `notices_only`, only platform messages and tests.
pub async fn recent_deliveries(pool: &Pool<DB>, notices_only: bool, limit: i64) -> sqlx::Result<Vec<DeliveryRow>> {
    let filter = if notices_only {
        "WHERE event_type IN ('WEBHOOK_TEST', 'SYSTEM_MESSAGES', 'TASK_DATA')"
    } else {
        ""
    };
    let sql = format!(
        "SELECT source, event_type, received_ms, detail FROM deliveries {filter} \
         ORDER BY received_ms DESC LIMIT $1"
    );
    sqlx::query_as(&sql).bind(limit).fetch_all(pool).await
}

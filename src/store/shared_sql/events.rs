// The event log (read side: replay and the feeder).

pub async fn events_after(
    pool: &Pool<DB>,
    after_id: i64,
    up_to_id: i64,
    scope: &Scope,
    limit: i64,
) -> sqlx::Result<Vec<EventRow>> {
    let sql = format!(
        "SELECT id, device_id, site_id, json FROM events WHERE id > $1 AND id <= $2 AND {} ORDER BY id LIMIT $3",
        scope_sql(scope, "site_id")
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

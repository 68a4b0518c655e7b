// Site reports: the site's time zone, its readings and alarms of a period, and reviews.

pub async fn site_by_id(pool: &Pool<DB>, id: i64) -> sqlx::Result<Option<SiteRow>> {
    sqlx::query_as("SELECT id, name, time_zone FROM sites WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn set_site_time_zone(conn: &mut Conn, name: &str, tz: Option<&str>) -> sqlx::Result<u64> {
    sqlx::query("UPDATE sites SET time_zone = $1 WHERE name = $2")
        .bind(tz)
        .bind(name)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
}

/// The device's temperature summary buckets in `[since_ms, until_ms)` merged into steps of
/// `step_ms` (UTC), by probe and time. `probe IN (1, 2)` lets both databases walk the primary
/// key per probe.
pub async fn temperature_buckets(
    pool: &Pool<DB>,
    device_id: i64,
    since_ms: i64,
    until_ms: i64,
    step_ms: i64,
) -> sqlx::Result<Vec<ReportBucket>> {
    sqlx::query_as(
        "SELECT device_id, probe, bucket_ms - bucket_ms % $4 AS bucket_ms, \
         MIN(min_value) AS min_value, MAX(max_value) AS max_value, SUM(sum_value) AS sum_value, \
         CAST(SUM(value_count) AS BIGINT) AS value_count \
         FROM reading_summaries WHERE device_id = $1 AND quantity = 'temperature' \
         AND probe IN (1, 2) AND bucket_ms >= $2 AND bucket_ms < $3 \
         GROUP BY 1, 2, 3 ORDER BY 2, 3",
    )
    .bind(device_id)
    .bind(since_ms)
    .bind(until_ms)
    .bind(step_ms)
    .fetch_all(pool)
    .await
}

/// The alarms of the site's devices that were open at some time in `[since_ms, until_ms)`.
pub async fn site_alarms(
    pool: &Pool<DB>,
    site_id: i64,
    since_ms: i64,
    until_ms: i64,
) -> sqlx::Result<Vec<AlarmRow>> {
    sqlx::query_as(
        "SELECT a.id, a.device_id, a.kind, a.quantity, a.probe, a.min, a.max, a.value, a.peak, \
         a.cause, a.started_ms, a.raised_ms, a.active, a.ended_ms, a.acknowledged_by, \
         a.acknowledged_ms, a.comment FROM alarms a JOIN devices d ON d.id = a.device_id \
         WHERE d.site_id = $1 AND a.started_ms < $3 AND (a.ended_ms IS NULL OR a.ended_ms >= $2) \
         ORDER BY a.device_id, a.started_ms, a.id",
    )
    .bind(site_id)
    .bind(since_ms)
    .bind(until_ms)
    .fetch_all(pool)
    .await
}

pub async fn insert_review(conn: &mut Conn, r: &ReviewRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO report_reviews (site_id, from_day, to_day, start_ms, end_ms, reviewed_by, \
         reviewed_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(r.site_id)
    .bind(&r.from_day)
    .bind(&r.to_day)
    .bind(r.start_ms)
    .bind(r.end_ms)
    .bind(&r.reviewed_by)
    .bind(r.reviewed_ms)
    .execute(conn)
    .await
    .map(|_| ())
}

/// The reviews of the site whose period overlaps `[since_ms, until_ms)`, oldest first.
pub async fn site_reviews(
    pool: &Pool<DB>,
    site_id: i64,
    since_ms: i64,
    until_ms: i64,
) -> sqlx::Result<Vec<ReviewRow>> {
    sqlx::query_as(
        "SELECT id, site_id, from_day, to_day, start_ms, end_ms, reviewed_by, reviewed_ms \
         FROM report_reviews WHERE site_id = $1 AND start_ms < $3 AND end_ms > $2 \
         ORDER BY reviewed_ms, id",
    )
    .bind(site_id)
    .bind(since_ms)
    .bind(until_ms)
    .fetch_all(pool)
    .await
}

/// Whether a reading of the site measured in `[since_ms, until_ms)` arrived after `after_ms`,
/// from the summaries (bounds on quarter hours, as report days are).
pub async fn received_after(
    pool: &Pool<DB>,
    site_id: i64,
    since_ms: i64,
    until_ms: i64,
    after_ms: i64,
) -> sqlx::Result<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT s.device_id FROM reading_summaries s JOIN devices d ON d.id = s.device_id \
         WHERE d.site_id = $1 AND s.bucket_ms >= $2 AND s.bucket_ms < $3 \
         AND s.received_ms > $4 LIMIT 1",
    )
    .bind(site_id)
    .bind(since_ms)
    .bind(until_ms)
    .bind(after_ms)
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some())
}

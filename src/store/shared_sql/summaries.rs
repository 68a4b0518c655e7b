// Charts over long ranges: the summary buckets of a device merged into steps of `step_ms`.

/// The device's buckets in `[since_ms, until_ms)` merged per quantity, probe and step (UTC),
/// in that order. `step_ms` is a multiple of the bucket length.
pub async fn chart_buckets(
    pool: &Pool<DB>,
    device_id: i64,
    since_ms: i64,
    until_ms: i64,
    step_ms: i64,
) -> sqlx::Result<Vec<ChartBucket>> {
    sqlx::query_as(
        "SELECT quantity, probe, bucket_ms - bucket_ms % $4 AS start_ms, \
         MIN(min_value) AS min_value, MAX(max_value) AS max_value, \
         SUM(sum_value) AS sum_value, CAST(SUM(value_count) AS BIGINT) AS value_count \
         FROM reading_summaries WHERE device_id = $1 AND bucket_ms >= $2 AND bucket_ms < $3 \
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )
    .bind(device_id)
    .bind(since_ms)
    .bind(until_ms)
    .bind(step_ms)
    .fetch_all(pool)
    .await
}

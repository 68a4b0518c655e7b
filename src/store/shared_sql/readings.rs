// Readings for the dashboards and exports (scoped).

const READING_VALUES: &str =
    "r.measured_ms, r.temperature, r.temperature2, r.humidity, r.humidity2, r.battery, r.alarms";

/// SQL condition for "this device or any": our own integer id, safe to write into the SQL.
fn one_device_sql(device_id: Option<i64>) -> String {
    device_id.map_or_else(|| "1=1".to_string(), |id| format!("r.device_id = {id}"))
}

/// The newest live reading of every device in scope, or of one device (one indexed lookup
/// per device).
pub async fn latest_readings(
    pool: &Pool<DB>,
    scope: &Scope,
    device_id: Option<i64>,
) -> sqlx::Result<Vec<LatestReading>> {
    let sql = format!(
        "SELECT d.id AS device_id, {READING_VALUES} FROM devices d \
         JOIN readings r ON r.id = (SELECT r2.id FROM readings r2 WHERE r2.device_id = d.id \
         AND r2.historical = FALSE ORDER BY r2.measured_ms DESC, r2.id DESC LIMIT 1) WHERE {} AND {}",
        scope_sql(scope, "d.site_id"),
        // On the device, not the reading: one lookup, not one per device.
        device_id.map_or_else(|| "1=1".to_string(), |id| format!("d.id = {id}"))
    );
    sqlx::query_as(&sql).fetch_all(pool).await
}

/// Averages per `bucket_ms` between `since_ms` and `until_ms`, of the devices in scope or of
/// one device.
pub async fn series(
    pool: &Pool<DB>,
    scope: &Scope,
    device_id: Option<i64>,
    since_ms: i64,
    until_ms: i64,
    bucket_ms: i64,
) -> sqlx::Result<Vec<SeriesPoint>> {
    let device = one_device_sql(device_id);
    let sql = format!(
        "SELECT r.device_id, (r.measured_ms / $1) * $1 AS bucket_ms, AVG(r.temperature) AS temperature, \
         AVG(r.temperature2) AS temperature2, AVG(r.humidity) AS humidity \
         FROM readings r JOIN devices d ON d.id = r.device_id \
         WHERE r.measured_ms >= $2 AND r.measured_ms <= $3 AND {device} AND {} \
         GROUP BY r.device_id, (r.measured_ms / $1) * $1 ORDER BY r.device_id, bucket_ms",
        scope_sql(scope, "d.site_id")
    );
    sqlx::query_as(&sql)
        .bind(bucket_ms.max(1))
        .bind(since_ms)
        .bind(until_ms)
        .fetch_all(pool)
        .await
}

/// Readings measured in a time range, of the devices in scope or of one device.
pub async fn count_measured(
    pool: &Pool<DB>,
    scope: &Scope,
    device_id: Option<i64>,
    since_ms: i64,
    until_ms: i64,
) -> sqlx::Result<i64> {
    let device = one_device_sql(device_id);
    let sql = format!(
        "SELECT COUNT(*) FROM readings r JOIN devices d ON d.id = r.device_id \
         WHERE r.measured_ms >= $1 AND r.measured_ms <= $2 AND {device} AND {}",
        scope_sql(scope, "d.site_id")
    );
    sqlx::query_scalar(&sql).bind(since_ms).bind(until_ms).fetch_one(pool).await
}

/// Readings that carried alarms since `since_ms`, newest first.
pub async fn recent_alarms(
    pool: &Pool<DB>,
    scope: &Scope,
    since_ms: i64,
    limit: i64,
) -> sqlx::Result<Vec<AlarmReadingRow>> {
    let sql = format!(
        "SELECT d.name AS device_name, d.milesight_id, d.dev_eui, r.measured_ms, r.temperature, \
         r.temperature2, r.alarms FROM readings r JOIN devices d ON d.id = r.device_id \
         WHERE r.alarms IS NOT NULL AND r.measured_ms >= $1 AND {} \
         ORDER BY r.measured_ms DESC, r.id DESC LIMIT $2",
        scope_sql(scope, "d.site_id")
    );
    sqlx::query_as(&sql).bind(since_ms).bind(limit).fetch_all(pool).await
}

/// The newest stored events in scope, newest first.
pub async fn recent_events(pool: &Pool<DB>, scope: &Scope, limit: i64) -> sqlx::Result<Vec<EventLogRow>> {
    let sql = format!(
        "SELECT e.id, e.json FROM events e JOIN devices d ON d.id = e.device_id WHERE {} \
         ORDER BY e.id DESC LIMIT $1",
        scope_sql(scope, "d.site_id")
    );
    sqlx::query_as(&sql).bind(limit).fetch_all(pool).await
}

/// Readings received since `since_ms` (a day's count on the dashboards).
pub async fn count_readings_since(pool: &Pool<DB>, scope: &Scope, since_ms: i64) -> sqlx::Result<i64> {
    let sql = format!(
        "SELECT COUNT(*) FROM readings r JOIN devices d ON d.id = r.device_id \
         WHERE r.received_ms >= $1 AND {}",
        scope_sql(scope, "d.site_id")
    );
    sqlx::query_scalar(&sql).bind(since_ms).fetch_one(pool).await
}

/// One device's readings in a time range, oldest first (CSV export).
pub async fn readings_between(
    pool: &Pool<DB>,
    device_id: i64,
    since_ms: i64,
    until_ms: i64,
    limit: i64,
) -> sqlx::Result<Vec<ReadingRow>> {
    sqlx::query_as(
        "SELECT id, source, event_type, historical, measured_ms, received_ms, temperature, temperature2, \
         humidity, humidity2, battery, alarms, '' AS raw FROM readings \
         WHERE device_id = $1 AND measured_ms >= $2 AND measured_ms <= $3 \
         ORDER BY measured_ms, id LIMIT $4",
    )
    .bind(device_id)
    .bind(since_ms)
    .bind(until_ms)
    .bind(limit)
    .fetch_all(pool)
    .await
}

// Devices: listing, lookup, placement and decoding settings.

pub async fn list_devices(pool: &Pool<DB>, scope: &Scope) -> sqlx::Result<Vec<DeviceRow>> {
    let sql = format!(
        "SELECT {DEVICE_COLUMNS} WHERE {} ORDER BY d.name, d.id",
        scope_sql(scope, "d.site_id")
    );
    sqlx::query_as(&sql).fetch_all(pool).await
}

/// A device by its public id (Milesight device id or devEUI, any case).
pub async fn device_by_public_id(
    pool: &Pool<DB>,
    public_id: &str,
    scope: &Scope,
) -> sqlx::Result<Option<DeviceRow>> {
    let sql = format!(
        "SELECT {DEVICE_COLUMNS} WHERE (d.milesight_id = $1 OR d.dev_eui = $2) AND {} \
         ORDER BY d.id LIMIT 1",
        scope_sql(scope, "d.site_id")
    );
    sqlx::query_as(&sql)
        .bind(public_id)
        .bind(public_id.to_ascii_lowercase())
        .fetch_optional(pool)
        .await
}

pub async fn assign_device(
    conn: &mut Conn,
    device_id: i64,
    site_id: Option<i64>,
) -> sqlx::Result<u64> {
    sqlx::query("UPDATE devices SET site_id = $1 WHERE id = $2")
        .bind(site_id)
        .bind(device_id)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
}

pub async fn telemetry(
    pool: &Pool<DB>,
    device_id: i64,
    q: TelemetryQuery,
) -> sqlx::Result<Vec<ReadingRow>> {
    sqlx::query_as(
        "SELECT id, source, event_type, historical, measured_ms, received_ms, temperature, temperature2, \
         humidity, humidity2, battery, alarms, raw FROM readings \
         WHERE device_id = $1 AND measured_ms >= $2 AND measured_ms <= $3 \
         ORDER BY measured_ms DESC, id DESC LIMIT $4",
    )
    .bind(device_id)
    .bind(q.since_ms.unwrap_or(i64::MIN))
    .bind(q.until_ms.unwrap_or(i64::MAX))
    .bind(q.limit)
    .fetch_all(pool)
    .await
}

pub async fn set_device_variant(
    pool: &Pool<DB>,
    id: i64,
    variant: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE devices SET ts302_variant = $1 WHERE id = $2")
        .bind(variant)
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ())
}

// Device commands: the reads of the API, and the dispatcher's lease and retry bookkeeping
// (no status change, so no event: those go through the writer).

pub async fn device_commands(pool: &Pool<DB>, device_id: i64, limit: i64) -> sqlx::Result<Vec<CommandRow>> {
    sqlx::query_as(
        "SELECT id, device_id, command, body, downlink_hex, status, requested_by, created_ms, \
         updated_ms, attempts, error FROM commands WHERE device_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(device_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The oldest pending command due for a try and not leased to anyone, if any (a read: most
/// polls find nothing and take no lock).
pub async fn due_command(pool: &Pool<DB>, now_ms: i64) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT id FROM commands WHERE status = 'pending' AND next_attempt_ms <= $1 \
         AND (claimed_until_ms IS NULL OR claimed_until_ms < $1) ORDER BY id LIMIT 1",
    )
    .bind(now_ms)
    .fetch_optional(pool)
    .await
}

/// Leases the command until `until_ms` if it is still pending and unleased: one atomic UPDATE,
/// so of several instances trying at once exactly one gets it (PostgreSQL re-checks the
/// condition on the row a concurrent claim just changed). Returns it with its device's devEUI.
pub async fn claim_command(
    pool: &Pool<DB>,
    id: i64,
    now_ms: i64,
    until_ms: i64,
) -> sqlx::Result<Option<CommandRow>> {
    sqlx::query_as(
        "UPDATE commands SET claimed_until_ms = $1, attempts = attempts + 1 \
         WHERE id = $2 AND status = 'pending' \
         AND (claimed_until_ms IS NULL OR claimed_until_ms < $3) \
         RETURNING id, device_id, command, body, downlink_hex, status, requested_by, created_ms, \
         updated_ms, attempts, error",
    )
    .bind(until_ms)
    .bind(id)
    .bind(now_ms)
    .fetch_optional(pool)
    .await
}

/// A try failed in a way worth retrying: ends the lease, keeps the reason, waits until `next_ms`.
pub async fn retry_command(pool: &Pool<DB>, id: i64, next_ms: i64, error: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE commands SET next_attempt_ms = $1, error = $2, claimed_until_ms = NULL \
         WHERE id = $3 AND status = 'pending'",
    )
    .bind(next_ms)
    .bind(error)
    .bind(id)
    .execute(pool)
    .await
    .map(|_| ())
}

pub async fn device_eui(pool: &Pool<DB>, device_id: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT dev_eui FROM devices WHERE id = $1")
        .bind(device_id)
        .fetch_optional(pool)
        .await
        .map(Option::flatten)
}

// Alarms, rules and the audit trail: the read side, and audit rows written in the caller's
// transaction by the pool's own writes (users, placement, sign-in).

/// Which alarms a list shows.
pub async fn list_alarms(
    pool: &Pool<DB>,
    scope: &Scope,
    filter: &AlarmFilter,
) -> sqlx::Result<Vec<AlarmRow>> {
    let open = if filter.open_only {
        "AND (a.active OR a.acknowledged_ms IS NULL)"
    } else {
        ""
    };
    let device = match filter.device_id {
        Some(id) => format!("AND a.device_id = {id}"),
        None => String::new(),
    };
    let sql = format!(
        "SELECT a.id, a.device_id, a.kind, a.quantity, a.probe, a.min, a.max, a.value, a.peak, \
         a.cause, a.started_ms, a.raised_ms, a.active, a.ended_ms, a.acknowledged_by, \
         a.acknowledged_ms, a.comment FROM alarms a JOIN devices d ON d.id = a.device_id \
         WHERE a.started_ms >= $1 AND a.started_ms <= $2 {open} {device} AND {} \
         ORDER BY a.started_ms DESC, a.id DESC LIMIT $3",
        scope_sql(scope, "d.site_id")
    );
    sqlx::query_as(&sql)
        .bind(filter.since_ms)
        .bind(filter.until_ms)
        .bind(filter.limit)
        .fetch_all(pool)
        .await
}

pub async fn alarm_in_scope(pool: &Pool<DB>, id: i64, scope: &Scope) -> sqlx::Result<Option<AlarmRow>> {
    let sql = format!(
        "SELECT a.id, a.device_id, a.kind, a.quantity, a.probe, a.min, a.max, a.value, a.peak, \
         a.cause, a.started_ms, a.raised_ms, a.active, a.ended_ms, a.acknowledged_by, \
         a.acknowledged_ms, a.comment FROM alarms a JOIN devices d ON d.id = a.device_id \
         WHERE a.id = $1 AND {}",
        scope_sql(scope, "d.site_id")
    );
    sqlx::query_as(&sql).bind(id).fetch_optional(pool).await
}

pub async fn device_rules(pool: &Pool<DB>, device_id: i64) -> sqlx::Result<Vec<RuleRow>> {
    sqlx::query_as(
        "SELECT device_id, quantity, probe, min, max, delay_secs FROM alarm_rules \
         WHERE device_id = $1 ORDER BY quantity DESC, probe",
    )
    .bind(device_id)
    .fetch_all(pool)
    .await
}

pub async fn insert_audit(conn: &mut Conn, e: &AuditEntry, now_ms: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (at_ms, actor, action, target, before, after) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(now_ms)
    .bind(&e.actor)
    .bind(e.action)
    .bind(&e.target)
    .bind(e.before.as_deref())
    .bind(e.after.as_deref())
    .execute(conn)
    .await
    .map(|_| ())
}

pub async fn list_audit(pool: &Pool<DB>, filter: &AuditFilter) -> sqlx::Result<Vec<AuditRow>> {
    let action = if filter.action.is_some() { "AND action = $4" } else { "" };
    let sql = format!(
        "SELECT id, at_ms, actor, action, target, before, after FROM audit_log \
         WHERE at_ms >= $1 AND at_ms <= $2 {action} ORDER BY id DESC LIMIT $3"
    );
    let mut q = sqlx::query_as(&sql)
        .bind(filter.since_ms)
        .bind(filter.until_ms)
        .bind(filter.limit);
    if let Some(a) = &filter.action {
        q = q.bind(a.as_str());
    }
    q.fetch_all(pool).await
}

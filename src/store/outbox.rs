//! The notification outbox, written in the writer's transaction: when an alarm is raised (or
//! escalated) one row per recipient, so the notification exists exactly when the alarm change
//! committed. The dispatcher (`notify`) sends from here.

use super::error::StoreResult;
use super::notifications::Attempt;
use super::write_tx::{Ty, Val, WriteTx};
use crate::domain::{self as domain, AlarmRow, DeviceRow};

/// Enqueues the notifications of an alarm change: email to who should hear of it, and the
/// site's webhooks. `payload` is the JSON a webhook receives. Returns how many.
pub fn enqueue(
    conn: &mut impl WriteTx,
    alarm: &AlarmRow,
    device: &DeviceRow,
    reason: &'static str,
    payload: &str,
    now_ms: i64,
) -> StoreResult<usize> {
    let site = Val::Int(device.site_id);
    // Raised: who may see the device and has email alerts on. Escalated: the site's managers
    // and every admin, whatever they chose.
    let who = if reason == domain::ESCALATED {
        "(u.role = 'admin' OR (u.role = 'manager' AND us.site_id = $1))"
    } else {
        "(u.role = 'admin' OR us.site_id = $1) AND COALESCE(u.email_alerts, u.role <> 'employee')"
    };
    let sql = format!(
        "SELECT DISTINCT u.email FROM users u LEFT JOIN user_sites us ON us.user_id = u.id \
         WHERE u.disabled = FALSE AND {who} ORDER BY u.email"
    );
    let emails = conn.select(&sql, std::slice::from_ref(&site), &[Ty::Text])?;
    // Browsers that opted in, of the same people (push has no setting of its own: subscribing is
    // the choice).
    let push_who = if reason == domain::ESCALATED {
        "(u.role = 'admin' OR (u.role = 'manager' AND us.site_id = $1))"
    } else {
        "(u.role = 'admin' OR us.site_id = $1)"
    };
    let sql = format!(
        "SELECT DISTINCT p.id, p.endpoint FROM push_subscriptions p JOIN users u ON u.id = p.user_id \
         LEFT JOIN user_sites us ON us.user_id = u.id WHERE u.disabled = FALSE AND {push_who} ORDER BY p.id"
    );
    let pushes = conn.select(&sql, std::slice::from_ref(&site), &[Ty::Int, Ty::Text])?;
    let hooks = conn.select(
        "SELECT id, url FROM webhook_endpoints WHERE site_id = $1 ORDER BY id",
        &[site],
        &[Ty::Int, Ty::Text],
    )?;
    let mut n = 0;
    for mut row in emails {
        let email = std::mem::replace(&mut row[0], Val::Text(None)).into_text()?;
        if let Some(email) = email {
            insert(
                conn,
                Some(alarm.id),
                reason,
                domain::EMAIL,
                &email,
                None,
                payload,
                now_ms,
            )?;
            n += 1;
        }
    }
    for mut row in hooks {
        let id = row[0].as_int()?;
        let url = std::mem::replace(&mut row[1], Val::Text(None)).into_text()?;
        if let Some(url) = url {
            insert(
                conn,
                Some(alarm.id),
                reason,
                domain::WEBHOOK,
                &url,
                id,
                payload,
                now_ms,
            )?;
            n += 1;
        }
    }
    for mut row in pushes {
        let id = row[0].as_int()?;
        let endpoint = std::mem::replace(&mut row[1], Val::Text(None)).into_text()?;
        if let Some(endpoint) = endpoint {
            insert(
                conn,
                Some(alarm.id),
                reason,
                domain::PUSH,
                &endpoint,
                id,
                payload,
                now_ms,
            )?;
            n += 1;
        }
    }
    Ok(n)
}

#[allow(clippy::too_many_arguments)] // one row's columns
fn insert(
    conn: &mut impl WriteTx,
    alarm_id: Option<i64>,
    reason: &str,
    channel: &str,
    recipient: &str,
    endpoint_id: Option<i64>,
    payload: &str,
    now_ms: i64,
) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO notifications (alarm_id, reason, channel, recipient, endpoint_id, \
         delivery_id, payload, status, attempts, next_attempt_ms, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $8)",
        &[
            Val::Int(alarm_id),
            Val::text(reason),
            Val::text(channel),
            Val::text(recipient),
            Val::Int(endpoint_id),
            Val::text(&domain::delivery_id(rand::random())),
            Val::text(payload),
            Val::int(now_ms),
        ],
    )?;
    Ok(())
}

/// Unacknowledged alarms raised at or before `raised_before` that were not escalated yet.
pub fn due_for_escalation(
    conn: &mut impl WriteTx,
    raised_before: i64,
) -> StoreResult<Vec<AlarmRow>> {
    let sql = format!(
        "SELECT {} FROM alarms WHERE acknowledged_ms IS NULL AND escalated_ms IS NULL \
         AND raised_ms <= $1 ORDER BY id LIMIT 200",
        super::alarm_sql::ALARM_COLUMNS
    );
    super::alarm_sql::alarms_where(conn, &sql, &[Val::int(raised_before)])
}

pub fn mark_escalated(conn: &mut impl WriteTx, alarm_id: i64, now_ms: i64) -> StoreResult<()> {
    conn.execute(
        "UPDATE alarms SET escalated_ms = $1 WHERE id = $2",
        &[Val::int(now_ms), Val::int(alarm_id)],
    )?;
    Ok(())
}

/// What the result of an attempt is cut to.
const RESULT_CHARS: usize = 500;

/// Records a dispatcher round's attempts, `(notification id, outcome, what came back)`: each
/// notification's status, attempts and last result, and one row per attempt. In the writer's
/// transaction, so a burst of sends shares the ingest's commits instead of holding the write
/// lock (and a flush) of its own between them.
pub fn record_attempts(
    conn: &mut impl WriteTx,
    attempts: &[(i64, Attempt, String)],
    now_ms: i64,
) -> StoreResult<usize> {
    for (id, attempt, text) in attempts {
        let (ok, status, next_attempt_ms) = match *attempt {
            Attempt::Delivered => (true, "delivered", now_ms),
            Attempt::Retry { at_ms } => (false, "pending", at_ms),
            Attempt::Abandon => (false, "abandoned", now_ms),
        };
        let result: String = text.chars().take(RESULT_CHARS).collect();
        conn.execute(
            "UPDATE notifications SET attempts = attempts + 1, last_result = $1, status = $2, \
             next_attempt_ms = $3, claimed_until_ms = NULL, \
             delivered_ms = CASE WHEN $4 THEN $5 ELSE delivered_ms END WHERE id = $6",
            &[
                Val::text(&result),
                Val::text(status),
                Val::int(next_attempt_ms),
                Val::Bool(ok),
                Val::int(now_ms),
                Val::int(*id),
            ],
        )?;
        conn.execute(
            "INSERT INTO notification_attempts (notification_id, at_ms, ok, result) \
             VALUES ($1, $2, $3, $4)",
            &[
                Val::int(*id),
                Val::int(now_ms),
                Val::Bool(ok),
                Val::text(&result),
            ],
        )?;
    }
    Ok(attempts.len())
}

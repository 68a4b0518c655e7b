//! The notification outbox, written in the writer's transaction: when an alarm is raised (or
//! escalated) one row per recipient, so the notification exists exactly when the alarm change
//! committed. The dispatcher (`notify`) sends from here.

use std::collections::hash_map::{Entry, HashMap};
use std::rc::Rc;

use super::error::StoreResult;
use super::notifications::Attempt;
use super::write_statements::{update_from_values, values_sql, ROWS_PER_STATEMENT};
use super::write_tx::{Ty, Val, WriteTx};
use crate::domain::{self as domain, AlarmRow, DeviceRow};

/// The notifications of one write transaction, inserted together before it commits: who
/// hears of a site's alarms is read once per site and reason, and the rows go in with
/// multi-row statements. A burst of alarms otherwise spent three reads and one insert per
/// alarm inside the ingest transaction (bench/README.md, issue 15).
#[derive(Default)]
pub struct Outbox {
    recipients: HashMap<(Option<i64>, &'static str), Recipients>,
    rows: Vec<Row>,
}

/// Who hears of an alarm change at one site.
struct Recipients {
    emails: Vec<String>,
    /// (subscription id, endpoint)
    pushes: Vec<(i64, String)>,
    /// (endpoint id, url)
    hooks: Vec<(i64, String)>,
}

struct Row {
    alarm_id: i64,
    reason: &'static str,
    channel: &'static str,
    recipient: String,
    endpoint_id: Option<i64>,
    payload: Rc<str>,
}

/// Columns bound per notification row (status and attempts are the columns' defaults:
/// pending, 0).
const COLUMNS: usize = 9;

impl Outbox {
    /// Queues the notifications of an alarm change: email to who should hear of it, the site's
    /// webhooks and push subscriptions. `payload` is the JSON a webhook receives. They are
    /// written by `flush`.
    pub fn enqueue(
        &mut self,
        conn: &mut impl WriteTx,
        alarm: &AlarmRow,
        device: &DeviceRow,
        reason: &'static str,
        payload: &str,
    ) -> StoreResult<()> {
        let key = (device.site_id, reason);
        let who = match self.recipients.entry(key) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(new) => new.insert(recipients(conn, device.site_id, reason)?),
        };
        let payload: Rc<str> = payload.into();
        let row = |channel, recipient: &str, endpoint_id| Row {
            alarm_id: alarm.id,
            reason,
            channel,
            recipient: recipient.to_string(),
            endpoint_id,
            payload: payload.clone(),
        };
        let emails = who.emails.iter().map(|e| row(domain::EMAIL, e, None));
        let hooks = who
            .hooks
            .iter()
            .map(|(id, url)| row(domain::WEBHOOK, url, Some(*id)));
        let pushes = who
            .pushes
            .iter()
            .map(|(id, e)| row(domain::PUSH, e, Some(*id)));
        self.rows.extend(emails.chain(hooks).chain(pushes));
        Ok(())
    }

    /// Inserts what was queued, in order; call before the transaction commits.
    pub fn flush(&mut self, conn: &mut impl WriteTx, now_ms: i64) -> StoreResult<()> {
        for chunk in self.rows.chunks(ROWS_PER_STATEMENT) {
            let sql = values_sql(
                "INSERT INTO notifications (alarm_id, reason, channel, recipient, endpoint_id, \
                 delivery_id, payload, next_attempt_ms, created_ms)",
                COLUMNS,
                chunk.len(),
                "",
            );
            let mut params = Vec::with_capacity(chunk.len() * COLUMNS);
            for r in chunk {
                params.extend([
                    Val::int(r.alarm_id),
                    Val::text(r.reason),
                    Val::text(r.channel),
                    Val::text(&r.recipient),
                    Val::Int(r.endpoint_id),
                    Val::text(&domain::delivery_id(rand::random())),
                    Val::text(&r.payload),
                    Val::int(now_ms),
                    Val::int(now_ms),
                ]);
            }
            conn.execute(&sql, &params)?;
        }
        self.rows.clear();
        Ok(())
    }
}

/// Raised: who may see the device and has email alerts on, and their browsers. Escalated: the
/// site's managers and every admin, whatever they chose. Push has no setting of its own:
/// subscribing is the choice.
fn recipients(
    conn: &mut impl WriteTx,
    site_id: Option<i64>,
    reason: &'static str,
) -> StoreResult<Recipients> {
    let site = Val::Int(site_id);
    let escalated = reason == domain::ESCALATED;
    let who = if escalated {
        "(u.role = 'admin' OR (u.role = 'manager' AND us.site_id = $1))"
    } else {
        "(u.role = 'admin' OR us.site_id = $1) AND COALESCE(u.email_alerts, u.role <> 'employee')"
    };
    let sql = format!(
        "SELECT DISTINCT u.email FROM users u LEFT JOIN user_sites us ON us.user_id = u.id \
         WHERE u.disabled = FALSE AND {who} ORDER BY u.email"
    );
    let emails = conn.select(&sql, std::slice::from_ref(&site), &[Ty::Text])?;
    let push_who = if escalated {
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
    Ok(Recipients {
        emails: emails
            .into_iter()
            .filter_map(|mut r| r.pop()?.into_text().transpose())
            .collect::<StoreResult<_>>()?,
        pushes: endpoints(pushes)?,
        hooks: endpoints(hooks)?,
    })
}

/// `(id, text)` rows, those with both.
fn endpoints(rows: Vec<Vec<Val>>) -> StoreResult<Vec<(i64, String)>> {
    let mut out = Vec::with_capacity(rows.len());
    for mut row in rows {
        let text = row.pop().map(Val::into_text).transpose()?.flatten();
        let id = row.first().map(Val::as_int).transpose()?.flatten();
        if let (Some(id), Some(text)) = (id, text) {
            out.push((id, text));
        }
    }
    Ok(out)
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
/// lock (and a flush) of its own between them; two multi-row statements per
/// `ROWS_PER_STATEMENT` attempts rather than two per attempt.
pub fn record_attempts(
    conn: &mut impl WriteTx,
    attempts: &[(i64, Attempt, String)],
    now_ms: i64,
) -> StoreResult<usize> {
    for chunk in attempts.chunks(ROWS_PER_STATEMENT) {
        let mut updates = Vec::with_capacity(chunk.len() * 6);
        let mut inserts = Vec::with_capacity(chunk.len() * 4);
        for (id, attempt, text) in chunk {
            let (ok, status, next_attempt_ms) = match *attempt {
                Attempt::Delivered => (true, "delivered", now_ms),
                Attempt::Retry { at_ms } => (false, "pending", at_ms),
                Attempt::Abandon => (false, "abandoned", now_ms),
            };
            let result: String = text.chars().take(RESULT_CHARS).collect();
            updates.extend([
                Val::int(*id),
                Val::text(&result),
                Val::text(status),
                Val::int(next_attempt_ms),
                Val::Bool(ok),
                Val::int(now_ms),
            ]);
            inserts.extend([
                Val::int(*id),
                Val::int(now_ms),
                Val::Bool(ok),
                Val::Text(Some(result)),
            ]);
        }
        let sql = update_from_values(
            "notifications",
            "attempts = attempts + 1, last_result = v.column2, status = v.column3, \
             next_attempt_ms = v.column4, claimed_until_ms = NULL, \
             delivered_ms = CASE WHEN v.column5 THEN v.column6 ELSE delivered_ms END",
            6,
            chunk.len(),
        );
        conn.execute(&sql, &updates)?;
        let sql = values_sql(
            "INSERT INTO notification_attempts (notification_id, at_ms, ok, result)",
            4,
            chunk.len(),
            "",
        );
        conn.execute(&sql, &inserts)?;
    }
    Ok(attempts.len())
}

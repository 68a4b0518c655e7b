//! The write path's statements for rules, alarms, excursions and the audit trail, written once
//! for both databases over `WriteTx::execute`/`select` (placeholders `$N`; `active` is a
//! boolean on PostgreSQL and 0/1 on SQLite, which both read as a condition).

use super::error::StoreResult;
use super::write_statements::placeholders;
use super::write_tx::{Later, Ty, Val, WriteTx};
use crate::domain::{AlarmRow, AuditEntry, Excursion, Quantity, Rule, RuleRow};

/// `IN ($1, …, $n)`.
fn list(n: usize) -> String {
    format!("({})", placeholders(n))
}

fn ids(devices: &[i64]) -> Vec<Val> {
    devices.iter().map(|d| Val::int(*d)).collect()
}

pub const ALARM_COLUMNS: &str = "id, device_id, kind, quantity, probe, min, max, value, peak, \
     cause, started_ms, raised_ms, active, ended_ms, acknowledged_by, acknowledged_ms, comment";

const ALARM_TYPES: [Ty; 17] = [
    Ty::Int,
    Ty::Int,
    Ty::Text,
    Ty::Text,
    Ty::Int,
    Ty::Real,
    Ty::Real,
    Ty::Real,
    Ty::Real,
    Ty::Text,
    Ty::Int,
    Ty::Int,
    Ty::Bool,
    Ty::Int,
    Ty::Text,
    Ty::Int,
    Ty::Text,
];

fn alarm_row(mut v: Vec<Val>) -> StoreResult<AlarmRow> {
    let text =
        |v: &mut Vec<Val>, i: usize| std::mem::replace(&mut v[i], Val::Text(None)).into_text();
    Ok(AlarmRow {
        id: v[0].as_int()?.unwrap_or_default(),
        device_id: v[1].as_int()?.unwrap_or_default(),
        kind: text(&mut v, 2)?.unwrap_or_default(),
        quantity: text(&mut v, 3)?.unwrap_or_default(),
        probe: v[4].as_int()?.unwrap_or_default(),
        min: v[5].as_real()?,
        max: v[6].as_real()?,
        value: v[7].as_real()?,
        peak: v[8].as_real()?,
        cause: text(&mut v, 9)?,
        started_ms: v[10].as_int()?.unwrap_or_default(),
        raised_ms: v[11].as_int()?.unwrap_or_default(),
        active: v[12].as_bool()?,
        ended_ms: v[13].as_int()?,
        acknowledged_by: text(&mut v, 14)?,
        acknowledged_ms: v[15].as_int()?,
        comment: text(&mut v, 16)?,
    })
}

pub fn rules_of(conn: &mut impl WriteTx, devices: &[i64]) -> StoreResult<Vec<RuleRow>> {
    let sent = send_rules_of(conn, devices)?;
    read_rules(conn, sent)
}

pub fn send_rules_of(conn: &mut impl WriteTx, devices: &[i64]) -> StoreResult<Later> {
    let sql = format!(
        "SELECT device_id, quantity, probe, min, max, delay_secs FROM alarm_rules \
         WHERE device_id IN {} ORDER BY device_id, quantity, probe",
        list(devices.len())
    );
    const TYPES: &[Ty] = &[Ty::Int, Ty::Text, Ty::Int, Ty::Real, Ty::Real, Ty::Int];
    conn.select_later(&sql, ids(devices), TYPES)
}

pub fn read_rules(conn: &mut impl WriteTx, sent: Later) -> StoreResult<Vec<RuleRow>> {
    conn.rows(sent)?
        .into_iter()
        .map(|mut v| {
            Ok(RuleRow {
                device_id: v[0].as_int()?.unwrap_or_default(),
                quantity: std::mem::replace(&mut v[1], Val::Text(None))
                    .into_text()?
                    .unwrap_or_default(),
                probe: v[2].as_int()?.unwrap_or_default(),
                min: v[3].as_real()?,
                max: v[4].as_real()?,
                delay_secs: v[5].as_int()?.unwrap_or_default(),
            })
        })
        .collect()
}

pub fn replace_rules(conn: &mut impl WriteTx, device: i64, rules: &[Rule]) -> StoreResult<()> {
    conn.execute(
        "DELETE FROM alarm_rules WHERE device_id = $1",
        &[Val::int(device)],
    )?;
    for r in rules {
        conn.execute(
            "INSERT INTO alarm_rules (device_id, quantity, probe, min, max, delay_secs) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                Val::int(device),
                Val::text(r.quantity.as_str()),
                Val::int(r.probe),
                Val::Real(r.min),
                Val::Real(r.max),
                Val::int(r.delay_secs),
            ],
        )?;
    }
    Ok(())
}

/// Pending excursions: (device, quantity, probe, excursion).
pub fn excursions_of(
    conn: &mut impl WriteTx,
    devices: &[i64],
) -> StoreResult<Vec<(i64, Quantity, i64, Excursion)>> {
    let sent = send_excursions_of(conn, devices)?;
    read_excursions(conn, sent)
}

pub fn send_excursions_of(conn: &mut impl WriteTx, devices: &[i64]) -> StoreResult<Later> {
    let sql = format!(
        "SELECT device_id, quantity, probe, started_ms, value, peak FROM alarm_excursions \
         WHERE device_id IN {}",
        list(devices.len())
    );
    const TYPES: &[Ty] = &[Ty::Int, Ty::Text, Ty::Int, Ty::Int, Ty::Real, Ty::Real];
    conn.select_later(&sql, ids(devices), TYPES)
}

pub fn read_excursions(
    conn: &mut impl WriteTx,
    sent: Later,
) -> StoreResult<Vec<(i64, Quantity, i64, Excursion)>> {
    let mut found = Vec::new();
    for mut v in conn.rows(sent)? {
        let q = std::mem::replace(&mut v[1], Val::Text(None)).into_text()?;
        let Some(quantity) = q.as_deref().and_then(Quantity::parse) else {
            continue;
        };
        found.push((
            v[0].as_int()?.unwrap_or_default(),
            quantity,
            v[2].as_int()?.unwrap_or_default(),
            Excursion {
                started_ms: v[3].as_int()?.unwrap_or_default(),
                value: v[4].as_real()?.unwrap_or_default(),
                peak: v[5].as_real()?.unwrap_or_default(),
            },
        ));
    }
    Ok(found)
}

pub fn save_excursion(
    conn: &mut impl WriteTx,
    device: i64,
    quantity: Quantity,
    probe: i64,
    excursion: Option<&Excursion>,
) -> StoreResult<()> {
    let key = [
        Val::int(device),
        Val::text(quantity.as_str()),
        Val::int(probe),
    ];
    conn.execute(
        "DELETE FROM alarm_excursions WHERE device_id = $1 AND quantity = $2 AND probe = $3",
        &key,
    )?;
    if let Some(e) = excursion {
        let mut params = key.to_vec();
        params.extend([
            Val::int(e.started_ms),
            Val::Real(Some(e.value)),
            Val::Real(Some(e.peak)),
        ]);
        conn.execute(
            "INSERT INTO alarm_excursions (device_id, quantity, probe, started_ms, value, peak) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &params,
        )?;
    }
    Ok(())
}

/// The newest measuredAt stored per device (before this transaction's readings); devices with
/// none are left out. One MAX per device, not `GROUP BY device_id`: a grouped MAX reads every
/// reading of the device (SQLite and PostgreSQL alike), a lone MAX one index entry.
pub fn newest_readings(conn: &mut impl WriteTx, devices: &[i64]) -> StoreResult<Vec<(i64, i64)>> {
    let sent = send_newest_readings(conn, devices)?;
    read_newest_readings(conn, sent)
}

pub fn send_newest_readings(conn: &mut impl WriteTx, devices: &[i64]) -> StoreResult<Later> {
    let sql = format!(
        "SELECT id, newest FROM (SELECT d.id, \
         (SELECT MAX(r.measured_ms) FROM readings r WHERE r.device_id = d.id) AS newest \
         FROM devices d WHERE d.id IN {}) t WHERE newest IS NOT NULL",
        list(devices.len())
    );
    conn.select_later(&sql, ids(devices), &[Ty::Int, Ty::Int])
}

pub fn read_newest_readings(conn: &mut impl WriteTx, sent: Later) -> StoreResult<Vec<(i64, i64)>> {
    conn.rows(sent)?
        .into_iter()
        .map(|v| {
            Ok((
                v[0].as_int()?.unwrap_or_default(),
                v[1].as_int()?.unwrap_or_default(),
            ))
        })
        .collect()
}

/// One probe's values of a device's readings between two times, in time order.
pub fn readings_window(
    conn: &mut impl WriteTx,
    device: i64,
    quantity: Quantity,
    probe: i64,
    from_ms: i64,
    to_ms: i64,
) -> StoreResult<Vec<(i64, f64)>> {
    let column = match (quantity, probe) {
        (Quantity::Temperature, 1) => "temperature",
        (Quantity::Temperature, _) => "temperature2",
        (Quantity::Humidity, 1) => "humidity",
        (Quantity::Humidity, _) => "humidity2",
    };
    let sql = format!(
        "SELECT measured_ms, {column} FROM readings WHERE device_id = $1 \
         AND measured_ms BETWEEN $2 AND $3 AND {column} IS NOT NULL ORDER BY measured_ms, id"
    );
    let params = [Val::int(device), Val::int(from_ms), Val::int(to_ms)];
    conn.select(&sql, &params, &[Ty::Int, Ty::Real])?
        .into_iter()
        .map(|v| {
            Ok((
                v[0].as_int()?.unwrap_or_default(),
                v[1].as_real()?.unwrap_or_default(),
            ))
        })
        .collect()
}

/// Open alarms (active, or not acknowledged) of these devices.
pub fn send_open_alarms_of(conn: &mut impl WriteTx, devices: &[i64]) -> StoreResult<Later> {
    let sql = format!(
        "SELECT {ALARM_COLUMNS} FROM alarms WHERE device_id IN {} \
         AND (active OR acknowledged_ms IS NULL)",
        list(devices.len())
    );
    conn.select_later(&sql, ids(devices), &ALARM_TYPES)
}

pub fn read_alarms(conn: &mut impl WriteTx, sent: Later) -> StoreResult<Vec<AlarmRow>> {
    conn.rows(sent)?.into_iter().map(alarm_row).collect()
}

/// Alarms by a query selecting `ALARM_COLUMNS`.
pub fn alarms_where(
    conn: &mut impl WriteTx,
    sql: &str,
    params: &[Val],
) -> StoreResult<Vec<AlarmRow>> {
    conn.select(sql, params, &ALARM_TYPES)?
        .into_iter()
        .map(alarm_row)
        .collect()
}

pub fn alarm_by_id(conn: &mut impl WriteTx, id: i64) -> StoreResult<Option<AlarmRow>> {
    let sql = format!("SELECT {ALARM_COLUMNS} FROM alarms WHERE id = $1");
    let mut rows = conn.select(&sql, &[Val::int(id)], &ALARM_TYPES)?;
    rows.pop().map(alarm_row).transpose()
}

/// A threshold alarm of this key whose period overlaps [from, to].
pub fn threshold_alarm_during(
    conn: &mut impl WriteTx,
    device: i64,
    quantity: Quantity,
    probe: i64,
    from_ms: i64,
    to_ms: i64,
) -> StoreResult<Option<AlarmRow>> {
    let sql = format!(
        "SELECT {ALARM_COLUMNS} FROM alarms WHERE device_id = $1 AND kind = 'threshold' \
         AND quantity = $2 AND probe = $3 AND started_ms <= $4 \
         AND (ended_ms IS NULL OR ended_ms >= $5) ORDER BY started_ms LIMIT 1"
    );
    let params = [
        Val::int(device),
        Val::text(quantity.as_str()),
        Val::int(probe),
        Val::int(to_ms),
        Val::int(from_ms),
    ];
    let mut rows = conn.select(&sql, &params, &ALARM_TYPES)?;
    rows.pop().map(alarm_row).transpose()
}

/// Inserts the alarm (its `id` is ignored); returns the id.
pub fn insert_alarm(conn: &mut impl WriteTx, a: &AlarmRow) -> StoreResult<i64> {
    let sql =
        "INSERT INTO alarms (device_id, kind, quantity, probe, min, max, value, peak, cause, \
               started_ms, raised_ms, active, ended_ms) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id";
    let params = [
        Val::int(a.device_id),
        Val::text(&a.kind),
        Val::text(&a.quantity),
        Val::int(a.probe),
        Val::Real(a.min),
        Val::Real(a.max),
        Val::Real(a.value),
        Val::Real(a.peak),
        Val::Text(a.cause.clone()),
        Val::int(a.started_ms),
        Val::int(a.raised_ms),
        Val::Bool(a.active),
        Val::Int(a.ended_ms),
    ];
    let rows = conn.select(sql, &params, &[Ty::Int])?;
    Ok(rows
        .first()
        .map(|v| v[0].as_int())
        .transpose()?
        .flatten()
        .unwrap_or_default())
}

/// Writes every changeable field of the alarm.
pub fn update_alarm(conn: &mut impl WriteTx, a: &AlarmRow) -> StoreResult<()> {
    let sql = "UPDATE alarms SET min = $1, max = $2, value = $3, peak = $4, started_ms = $5, \
               raised_ms = $6, active = $7, ended_ms = $8, acknowledged_by = $9, \
               acknowledged_ms = $10, comment = $11 WHERE id = $12";
    conn.execute(
        sql,
        &[
            Val::Real(a.min),
            Val::Real(a.max),
            Val::Real(a.value),
            Val::Real(a.peak),
            Val::int(a.started_ms),
            Val::int(a.raised_ms),
            Val::Bool(a.active),
            Val::Int(a.ended_ms),
            Val::Text(a.acknowledged_by.clone()),
            Val::Int(a.acknowledged_ms),
            Val::Text(a.comment.clone()),
            Val::int(a.id),
        ],
    )?;
    Ok(())
}

pub fn insert_audit(conn: &mut impl WriteTx, e: &AuditEntry, now_ms: i64) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO audit_log (at_ms, actor, action, target, before, after) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            Val::int(now_ms),
            Val::text(&e.actor),
            Val::text(e.action),
            Val::text(&e.target),
            Val::Text(e.before.clone()),
            Val::Text(e.after.clone()),
        ],
    )?;
    Ok(())
}

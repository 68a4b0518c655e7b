//! The write path's statements for device commands, written once for both databases over
//! `WriteTx::execute`/`select` (placeholders `$N`, first used in order).

use super::error::StoreResult;
use super::write_tx::{Ty, Val, WriteTx};
use crate::domain::{CommandRow, CommandStatus};

pub const COMMAND_COLUMNS: &str = "id, device_id, command, body, downlink_hex, status, \
     requested_by, created_ms, updated_ms, attempts, error";

const COMMAND_TYPES: [Ty; 11] = [
    Ty::Int,
    Ty::Int,
    Ty::Text,
    Ty::Text,
    Ty::Text,
    Ty::Text,
    Ty::Text,
    Ty::Int,
    Ty::Int,
    Ty::Int,
    Ty::Text,
];

fn command_row(mut v: Vec<Val>) -> StoreResult<CommandRow> {
    let mut text = |i: usize| std::mem::replace(&mut v[i], Val::Text(None)).into_text();
    let (command, body, downlink_hex, status, requested_by, error) =
        (text(2)?, text(3)?, text(4)?, text(5)?, text(6)?, text(10)?);
    Ok(CommandRow {
        id: v[0].as_int()?.unwrap_or_default(),
        device_id: v[1].as_int()?.unwrap_or_default(),
        command: command.unwrap_or_default(),
        body: body.unwrap_or_default(),
        downlink_hex: downlink_hex.unwrap_or_default(),
        status: status.unwrap_or_default(),
        requested_by: requested_by.unwrap_or_default(),
        created_ms: v[7].as_int()?.unwrap_or_default(),
        updated_ms: v[8].as_int()?.unwrap_or_default(),
        attempts: v[9].as_int()?.unwrap_or_default(),
        error,
    })
}

/// Stores a new pending command; returns it as stored.
pub fn insert_command(
    conn: &mut impl WriteTx,
    device_id: i64,
    name: &str,
    body: &str,
    downlink_hex: &str,
    by: &str,
    now_ms: i64,
) -> StoreResult<CommandRow> {
    let sql = format!(
        "INSERT INTO commands (device_id, command, body, downlink_hex, requested_by, created_ms, \
         status, updated_ms, next_attempt_ms) VALUES ($1, $2, $3, $4, $5, $6, 'pending', $6, $6) \
         RETURNING {COMMAND_COLUMNS}"
    );
    let params = [
        Val::int(device_id),
        Val::text(name),
        Val::text(body),
        Val::text(downlink_hex),
        Val::text(by),
        Val::int(now_ms),
    ];
    let mut rows = conn.select(&sql, &params, &COMMAND_TYPES)?;
    rows.pop()
        .map(command_row)
        .transpose()?
        .ok_or_else(|| super::StoreError::Failed("INSERT … RETURNING gave no row".into()))
}

pub fn command_by_id(conn: &mut impl WriteTx, id: i64) -> StoreResult<Option<CommandRow>> {
    let sql = format!("SELECT {COMMAND_COLUMNS} FROM commands WHERE id = $1");
    let mut rows = conn.select(&sql, &[Val::int(id)], &COMMAND_TYPES)?;
    rows.pop().map(command_row).transpose()
}

/// The device's pending and sent commands, oldest first.
pub fn open_commands_of(conn: &mut impl WriteTx, device_id: i64) -> StoreResult<Vec<CommandRow>> {
    let sql = format!(
        "SELECT {COMMAND_COLUMNS} FROM commands WHERE device_id = $1 \
         AND status IN ('pending', 'sent') ORDER BY id"
    );
    conn.select(&sql, &[Val::int(device_id)], &COMMAND_TYPES)?
        .into_iter()
        .map(command_row)
        .collect()
}

/// Pending and sent commands created at or before `cutoff_ms`, oldest first.
pub fn open_commands_before(
    conn: &mut impl WriteTx,
    cutoff_ms: i64,
) -> StoreResult<Vec<CommandRow>> {
    let sql = format!(
        "SELECT {COMMAND_COLUMNS} FROM commands WHERE status IN ('pending', 'sent') \
         AND created_ms <= $1 ORDER BY id"
    );
    conn.select(&sql, &[Val::int(cutoff_ms)], &COMMAND_TYPES)?
        .into_iter()
        .map(command_row)
        .collect()
}

/// Moves a command from one of `from` to `to`; false when it was in none of them (another
/// change came first).
pub fn set_status(
    conn: &mut impl WriteTx,
    row: &CommandRow,
    from: &[CommandStatus],
    to: CommandStatus,
) -> StoreResult<bool> {
    let from: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
    let sql = format!(
        "UPDATE commands SET status = $1, error = $2, updated_ms = $3, claimed_until_ms = NULL \
         WHERE id = $4 AND status IN ({})",
        from.join(", ")
    );
    let params = [
        Val::text(to.as_str()),
        Val::Text(row.error.clone()),
        Val::int(row.updated_ms),
        Val::int(row.id),
    ];
    Ok(conn.execute(&sql, &params)? == 1)
}

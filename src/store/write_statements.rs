//! The SQL of the write path, shared by its two drivers: tokio-postgres on PostgreSQL
//! (`write_postgres.rs`) and rusqlite on the SQLite writer thread (`write_sqlite.rs`).
//!
//! A group of webhooks is stored with a few statements, each covering every row of its table
//! (multi-row VALUES, at most `ROWS_PER_STATEMENT` rows each), rather than a few per webhook.
//! Placeholders are `$N`, which both databases accept.

use super::error::{StoreError, StoreResult};
use super::write_tx::{EventInsert, Later, Ty, Val, WriteTx};
use crate::domain::NewReading;

/// Columns of a `DeviceRow`, in its field order.
pub const DEVICE_COLUMNS: &str = "d.id, d.dev_eui, d.milesight_id, d.name, d.model, d.site_id, \
     s.name AS site_name, d.status, d.last_seen_ms, d.report_interval_s, d.ts302_variant, d.created_ms \
     FROM devices d LEFT JOIN sites s ON s.id = d.site_id";

/// Rows per multi-row statement. Each row count is its own prepared statement (kept in the
/// connection's statement cache), so this also bounds how many of them there are.
pub const ROWS_PER_STATEMENT: usize = 32;

/// Prepared statements kept per connection: the multi-row write statements (up to
/// `ROWS_PER_STATEMENT` of each) besides the rest.
pub const STATEMENT_CACHE: usize = 256;

/// `{head} VALUES ($1, …, $cols), (…) {tail}` for `rows` rows.
pub(super) fn values_sql(head: &str, cols: usize, rows: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * cols * 5 + 16);
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(r * cols + c + 1).to_string());
        }
        sql.push(')');
    }
    sql.push(' ');
    sql.push_str(tail);
    sql
}

/// `UPDATE {table} SET {set} FROM (VALUES (…), …) AS v WHERE {table}.id = v.column1` for
/// `rows` rows of `cols` values, the row's id first. `set` names the values `v.column2`, … (a
/// VALUES list's column names in both databases). Every value is in the list, in order: SQLite
/// numbers `$N` in the order they appear.
pub(super) fn update_from_values(table: &str, set: &str, cols: usize, rows: usize) -> String {
    let values = values_sql("", cols, rows, "");
    format!(
        "UPDATE {table} SET {set} FROM ({}) AS v WHERE {table}.id = v.column1",
        values.trim()
    )
}

/// Binds per row: webhook_uuid, nonce, seen_ms. Returns the pairs that were new.
pub fn claim_nonces(rows: usize) -> String {
    values_sql(
        "INSERT INTO webhook_nonces (webhook_uuid, nonce, seen_ms)",
        3,
        rows,
        "ON CONFLICT DO NOTHING RETURNING webhook_uuid, nonce",
    )
}

/// Binds per row: the fields of a `DeliveryClaim`, received_ms after event_type. Returns the keys
/// not seen before.
pub fn claim_deliveries(rows: usize) -> String {
    values_sql(
        "INSERT INTO deliveries (dedup_key, source, event_type, received_ms, detail)",
        5,
        rows,
        "ON CONFLICT DO NOTHING RETURNING dedup_key",
    )
}

/// `$1, $2, …, $n`.
pub(super) fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Binds `ids` identifiers; every device with one of them as devEUI or Milesight id.
pub fn devices_by_identifiers(ids: usize) -> String {
    let list = placeholders(ids);
    format!("SELECT {DEVICE_COLUMNS} WHERE d.dev_eui IN ({list}) OR d.milesight_id IN ({list})")
}

pub fn device_by_id() -> String {
    format!("SELECT {DEVICE_COLUMNS} WHERE d.id = $1")
}

pub const INSERT_DEVICE: &str =
    "INSERT INTO devices (dev_eui, milesight_id, name, model, status, created_ms) \
     VALUES ($1, $2, $3, $4, 'ONLINE', $5) RETURNING id";

/// Fills in identity fields learnt later (e.g. the devEUI of an MDP device, a new name).
pub const UPDATE_DEVICE_IDENTITY: &str =
    "UPDATE devices SET dev_eui = COALESCE(dev_eui, $1), milesight_id = COALESCE(milesight_id, $2), \
     name = COALESCE($3, name), model = COALESCE($4, model) WHERE id = $5";

/// What ingest changes of a device. The row was read in the same write transaction, so the
/// values written are the newest.
pub const UPDATE_DEVICE_STATE: &str =
    "UPDATE devices SET status = $1, last_seen_ms = $2, report_interval_s = $3 WHERE id = $4";

/// Online devices silent for longer than 3 x their interval + the grace period.
/// Binds now_ms, the default interval (s), the grace period (s).
pub const SILENT_DEVICES: &str =
    "SELECT id FROM devices WHERE status = 'ONLINE' AND last_seen_ms IS NOT NULL \
     AND last_seen_ms < $1 - (3 * COALESCE(report_interval_s, $2) + $3) * 1000 ORDER BY id";

/// Binds per row: device_id, then the reading's fields in column order, received_ms after
/// measured_ms. Returns the dedup keys stored (a key stored before stores nothing).
pub fn insert_readings(rows: usize) -> String {
    values_sql(
        "INSERT INTO readings (device_id, dedup_key, source, event_type, historical, measured_ms, \
         received_ms, temperature, temperature2, humidity, humidity2, battery, alarms, raw)",
        14,
        rows,
        "ON CONFLICT (dedup_key) DO NOTHING RETURNING dedup_key",
    )
}

/// Binds per row: kind, device_id, site_id, created_ms, json. Returns the ids, in any order:
/// both databases number the rows of a VALUES list in order, but RETURNING may list them in
/// any order, so the caller sorts them.
pub fn insert_events(rows: usize) -> String {
    values_sql(
        "INSERT INTO events (kind, device_id, site_id, created_ms, json)",
        5,
        rows,
        "RETURNING id",
    )
}

/// A delivery key to record, with what the webhook health view shows of it.
pub struct DeliveryClaim<'a> {
    pub key: &'a str,
    pub source: &'a str,
    pub event_type: &'a str,
    pub detail: Option<&'a str>,
}

/// A reading to store, of a known device.
pub struct ReadingInsert<'a> {
    pub device_id: i64,
    pub reading: &'a NewReading,
    /// The reading's alarms as JSON text.
    pub alarms: Option<String>,
}

/// Sends the claims of (webhook uuid, nonce) pairs (`claim_nonces`); `nonce_pairs` reads the
/// pairs that were new. The pairs must be distinct.
pub fn send_nonce_claims(
    conn: &mut impl WriteTx,
    pairs: &[(&str, &str)],
    now_ms: i64,
) -> StoreResult<Vec<Later>> {
    pairs
        .chunks(ROWS_PER_STATEMENT)
        .map(|chunk| {
            let params = chunk
                .iter()
                .flat_map(|(uuid, nonce)| [Val::text(uuid), Val::text(nonce), Val::int(now_ms)])
                .collect();
            conn.select_later(&claim_nonces(chunk.len()), params, &[Ty::Text, Ty::Text])
        })
        .collect()
}

/// The (webhook uuid, nonce) pairs of these queries' rows.
pub fn nonce_pairs(
    conn: &mut impl WriteTx,
    sent: Vec<Later>,
) -> StoreResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for later in sent {
        for row in conn.rows(later)? {
            let mut row = row.into_iter();
            if let (Some(Val::Text(Some(uuid))), Some(Val::Text(Some(nonce)))) =
                (row.next(), row.next())
            {
                out.push((uuid, nonce));
            }
        }
    }
    Ok(out)
}

/// Takes back delivery keys this transaction claimed (those of a replayed webhook).
pub fn unclaim_deliveries(conn: &mut impl WriteTx, keys: &[&str]) -> StoreResult<()> {
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let list = placeholders(chunk.len());
        let sql = format!("DELETE FROM deliveries WHERE dedup_key IN ({list})");
        conn.execute_later(&sql, chunk.iter().map(|k| Val::text(k)).collect())?;
    }
    Ok(())
}

/// Sends the claims of delivery keys (`claim_deliveries`); `texts` reads the keys that were new.
pub fn send_delivery_claims(
    conn: &mut impl WriteTx,
    claims: &[DeliveryClaim<'_>],
    now_ms: i64,
) -> StoreResult<Vec<Later>> {
    claims
        .chunks(ROWS_PER_STATEMENT)
        .map(|chunk| {
            let mut params = Vec::with_capacity(chunk.len() * 5);
            for c in chunk {
                params.extend([
                    Val::text(c.key),
                    Val::text(c.source),
                    Val::text(c.event_type),
                    Val::int(now_ms),
                    Val::Text(c.detail.map(str::to_string)),
                ]);
            }
            conn.select_later(&claim_deliveries(chunk.len()), params, &[Ty::Text])
        })
        .collect()
}

/// Sends the readings (`insert_readings`); `texts` reads the keys that were stored.
pub fn send_readings(
    conn: &mut impl WriteTx,
    rows: &[ReadingInsert<'_>],
    now_ms: i64,
) -> StoreResult<Vec<Later>> {
    rows.chunks(ROWS_PER_STATEMENT)
        .map(|chunk| {
            let mut params = Vec::with_capacity(chunk.len() * 14);
            for row in chunk {
                let r = row.reading;
                let v = &r.values;
                params.extend([
                    Val::int(row.device_id),
                    Val::text(&r.dedup_key),
                    Val::text(r.source),
                    Val::text(&r.event_type),
                    Val::Bool(r.historical),
                    Val::int(r.measured_ms),
                    Val::int(now_ms),
                    Val::Real(v.temperature),
                    Val::Real(v.temperature2),
                    Val::Real(v.humidity),
                    Val::Real(v.humidity2),
                    Val::Int(v.battery),
                    Val::Text(row.alarms.clone()),
                    Val::text(&r.raw),
                ]);
            }
            conn.select_later(&insert_readings(chunk.len()), params, &[Ty::Text])
        })
        .collect()
}

/// The first column of every row of these queries, as text.
pub fn texts(conn: &mut impl WriteTx, sent: Vec<Later>) -> StoreResult<Vec<String>> {
    let mut out = Vec::new();
    for later in sent {
        for row in conn.rows(later)? {
            if let Some(Val::Text(Some(text))) = row.into_iter().next() {
                out.push(text);
            }
        }
    }
    Ok(out)
}

/// What `insert_events` binds for these events, in its order.
pub fn event_values(events: &[EventInsert], now_ms: i64) -> Vec<Val> {
    let mut params = Vec::with_capacity(events.len() * 5);
    for e in events {
        params.extend([
            Val::text(e.kind),
            Val::int(e.device_id),
            Val::Int(e.site_id),
            Val::int(now_ms),
            Val::text(&e.json),
        ]);
    }
    params
}

/// Checks that an insert numbered every event, and sorts the ids into insertion order.
pub fn event_ids(mut ids: Vec<i64>, inserted: usize) -> StoreResult<Vec<i64>> {
    if ids.len() != inserted {
        let why = format!("{inserted} events inserted, {} ids returned", ids.len());
        return Err(StoreError::Failed(why.into()));
    }
    ids.sort_unstable();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_lists_number_every_placeholder() {
        assert_eq!(
            super::values_sql("INSERT INTO t (a, b)", 2, 2, "RETURNING a"),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) RETURNING a"
        );
        assert!(super::devices_by_identifiers(2)
            .ends_with("WHERE d.dev_eui IN ($1, $2) OR d.milesight_id IN ($1, $2)"));
    }
}

//! Summaries in the write path: the readings a group transaction stored are folded into their
//! quarter-hour buckets in the same transaction (a duplicate stores nothing, so it adds
//! nothing; a back-filled reading lands in its own bucket), and the retention purge, which
//! deletes only readings whose buckets are there. SQL for both databases over `WriteTx`.

use std::collections::HashSet;

use super::error::StoreResult;
use super::write_statements::{values_sql, ReadingInsert, ROWS_PER_STATEMENT};
use super::write_tx::{Val, WriteTx};
use crate::domain::{fold, BUCKET_MS};

/// Binds per row: device_id, quantity, probe, bucket_ms, min, max, sum, count, received_ms.
/// `CASE` rather than MIN/LEAST, which the two databases spell differently.
fn upsert_sql(rows: usize) -> String {
    values_sql(
        "INSERT INTO reading_summaries (device_id, quantity, probe, bucket_ms, min_value, \
         max_value, sum_value, value_count, received_ms)",
        9,
        rows,
        "ON CONFLICT (device_id, quantity, probe, bucket_ms) DO UPDATE SET \
         min_value = CASE WHEN excluded.min_value < reading_summaries.min_value \
         THEN excluded.min_value ELSE reading_summaries.min_value END, \
         max_value = CASE WHEN excluded.max_value > reading_summaries.max_value \
         THEN excluded.max_value ELSE reading_summaries.max_value END, \
         sum_value = reading_summaries.sum_value + excluded.sum_value, \
         value_count = reading_summaries.value_count + excluded.value_count, \
         received_ms = CASE WHEN excluded.received_ms > reading_summaries.received_ms \
         THEN excluded.received_ms ELSE reading_summaries.received_ms END",
    )
}

/// Adds the readings of `rows` whose key is in `stored` (those just inserted) to their buckets.
pub fn add(
    conn: &mut impl WriteTx,
    rows: &[ReadingInsert<'_>],
    stored: &HashSet<&str>,
    now_ms: i64,
) -> StoreResult<()> {
    let folded = fold(
        rows.iter()
            .filter(|r| stored.contains(r.reading.dedup_key.as_str()))
            .map(|r| (r.device_id, r.reading.measured_ms, &r.reading.values)),
        now_ms,
    );
    let buckets: Vec<_> = folded.into_iter().collect();
    for chunk in buckets.chunks(ROWS_PER_STATEMENT) {
        let mut params = Vec::with_capacity(chunk.len() * 9);
        for (k, b) in chunk {
            params.extend([
                Val::int(k.device_id),
                Val::text(k.quantity.as_str()),
                Val::int(k.probe),
                Val::int(k.bucket_ms),
                Val::Real(Some(b.min)),
                Val::Real(Some(b.max)),
                Val::Real(Some(b.sum)),
                Val::int(b.count),
                Val::int(b.received_ms),
            ]);
        }
        conn.execute_later(&upsert_sql(chunk.len()), params)?;
    }
    Ok(())
}

/// A reading may go when each of its values has its bucket (always, by construction; this
/// guards against a summary lost any other way).
fn summarized(column: &str, quantity: &str, probe: i64) -> String {
    format!(
        "(r.{column} IS NULL OR EXISTS (SELECT 1 FROM reading_summaries s \
         WHERE s.device_id = r.device_id AND s.quantity = '{quantity}' AND s.probe = {probe} \
         AND s.bucket_ms = r.measured_ms - r.measured_ms % {BUCKET_MS}))"
    )
}

/// Deletes at most `limit` of the oldest readings measured before `before_ms`; returns how many.
pub fn purge(conn: &mut impl WriteTx, before_ms: i64, limit: i64) -> StoreResult<u64> {
    let guards = [
        summarized("temperature", "temperature", 1),
        summarized("temperature2", "temperature", 2),
        summarized("humidity", "humidity", 1),
        summarized("humidity2", "humidity", 2),
    ]
    .join(" AND ");
    let sql = format!(
        "DELETE FROM readings WHERE id IN (SELECT r.id FROM readings r \
         WHERE r.measured_ms < $1 AND {guards} ORDER BY r.measured_ms LIMIT $2)"
    );
    conn.execute(&sql, &[Val::int(before_ms), Val::int(limit)])
}

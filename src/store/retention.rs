//! `--retention-days`: raw readings older than N days are deleted in small batches through the
//! writer (one short transaction each, between ingest groups; on PostgreSQL under the writer's
//! advisory lock, so instances purge one at a time). Their summaries stay.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio_util::sync::CancellationToken;

use super::group::Work;
use super::writer::{WriteError, Writer};
use crate::domain::now_ms;

/// Readings deleted per statement: a transaction short enough not to hold up ingest.
pub const PURGE_BATCH: i64 = 1000;
/// Pause between batches, which lets queued webhooks through.
const PURGE_PAUSE: Duration = Duration::from_millis(50);
/// How often the purge runs.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Deletes the readings measured before `before_ms`, `batch` at a time; returns how many.
pub async fn purge_readings(
    writer: &Writer,
    before_ms: i64,
    batch: i64,
    pause: Duration,
    shutdown: &CancellationToken,
) -> Result<u64, WriteError> {
    let mut total = 0u64;
    loop {
        let work = Work::PurgeReadings {
            before_ms,
            limit: batch,
        };
        let deleted = writer.submit(work).await?.accepted as u64;
        total += deleted;
        if (deleted as i64) < batch || shutdown.is_cancelled() {
            return Ok(total);
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.cancelled() => return Ok(total),
        }
    }
}

/// Purges readings older than `days` now and every hour until shutdown.
pub fn spawn_retention(writer: Writer, days: u32, purged: Counter, shutdown: CancellationToken) {
    let keep_ms = i64::from(days) * 86_400_000;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            let before_ms = now_ms() - keep_ms;
            match purge_readings(&writer, before_ms, PURGE_BATCH, PURGE_PAUSE, &shutdown).await {
                Ok(n) => {
                    purged.inc_by(n);
                    tracing::info!(deleted = n, days, "purged raw readings past the retention");
                }
                Err(err) => tracing::warn!(error = %err, "retention purge failed"),
            }
        }
    });
}

//! Downlinks: hands pending device commands to the Milesight gateway's HTTP API.
//!
//! Commands are picked from the database, not from memory, so a restart loses none, and each
//! is leased by one instance at a time (`Store::claim_command`, one atomic UPDATE), so several
//! instances on one PostgreSQL database send each command once. The gateway's answer becomes
//! the command's status through the writer (`Work::CommandDispatched`, with its
//! `command_status` event): `sent` when it queued the downlink, `failed` with its answer when it
//! refused it (4xx); a 5xx, a timeout or an unreachable gateway is tried again with backoff
//! (`Store::retry_command`) until the command expires. Delivery is at least once: an instance
//! that dies between the gateway's answer and the status change leaves the lease to run out,
//! and the command is sent again.
//!
//! Sits beside `realtime`: it needs the store and HTTP, and nothing of the web.

pub mod client;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::domain::now_ms;
use crate::ingest::ts302::downlink::FPORT;
use crate::store::{ClaimedCommand, Dispatched, Store, Work, Writer};
pub use client::{encrypt_password, GatewayApi, GatewayClient, Queued};

/// How the dispatcher runs.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    pub api: GatewayApi,
    /// Wait before the first retry; doubled each time, at most `MAX_BACKOFF`.
    pub retry_base: Duration,
}

/// Longest wait between two tries of one command.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How long an instance holds a command it is sending (longer than a sign-in and a queue call).
const LEASE: Duration = Duration::from_secs(60);
/// How often the database is looked at for due commands (retries, other instances' requests).
const POLL: Duration = Duration::from_secs(1);

/// Wakes the dispatcher when a command was stored, so it goes out at once.
#[derive(Debug, Clone)]
pub struct Downlink {
    wake: Arc<Notify>,
}

impl Downlink {
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// The wait before try number `attempts + 1`.
pub fn backoff(attempts: i64, base: Duration) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
    base.saturating_mul(1 << doublings).min(MAX_BACKOFF)
}

/// Starts the dispatcher; it stops on `shutdown`.
pub fn spawn(
    store: Store,
    writer: Writer,
    settings: DispatchSettings,
    shutdown: CancellationToken,
) -> Downlink {
    let wake = Arc::new(Notify::new());
    let handle = Downlink { wake: wake.clone() };
    tokio::spawn(async move {
        let mut client = GatewayClient::new(settings.api.clone());
        loop {
            loop {
                if shutdown.is_cancelled() {
                    return;
                }
                let lease_ms = LEASE.as_millis() as i64;
                match store.claim_command(now_ms(), lease_ms).await {
                    Ok(Some(claimed)) => {
                        deliver(&mut client, &store, &writer, &settings, claimed).await
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading pending commands failed");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    });
    handle
}

async fn deliver(
    client: &mut GatewayClient,
    store: &Store,
    writer: &Writer,
    settings: &DispatchSettings,
    claimed: ClaimedCommand,
) {
    let row = claimed.row;
    let outcome = match claimed.dev_eui.as_deref() {
        // Refused at the API already; a device cannot lose its devEUI, but never send blind.
        None => Queued::Refused("the device has no devEUI to address the downlink to".into()),
        Some(eui) => client.enqueue(eui, &row.downlink(), FPORT).await,
    };
    let result = match outcome {
        Queued::Yes => Dispatched::Sent,
        Queued::Refused(why) => Dispatched::Refused(why),
        Queued::Later(why) => {
            let wait = backoff(row.attempts, settings.retry_base);
            let next = now_ms() + wait.as_millis() as i64;
            tracing::warn!(command = row.id, attempts = row.attempts, error = %why, "downlink will be retried");
            if let Err(e) = store.retry_command(row.id, next, &why).await {
                tracing::warn!(command = row.id, error = %e, "recording the retry failed; the lease runs out instead");
            }
            return;
        }
    };
    let work = Work::CommandDispatched {
        command_id: row.id,
        result,
    };
    if let Err(e) = writer.submit(work).await {
        tracing::error!(command = row.id, error = %e, "recording the gateway's answer failed; the command will be sent again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let base = Duration::from_secs(5);
        let waits: Vec<u64> = (1..=9).map(|a| backoff(a, base).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(backoff(0, base), base);
        assert_eq!(backoff(i64::MAX, base), MAX_BACKOFF);
    }
}

//! PostgreSQL, several instances: every instance feeds its hub from the shared event log, in id
//! order, woken by the store's notifications (and by its own writer). Because ids become visible
//! in increasing order (advisory lock), reading `id > last` never skips an event, so every
//! instance delivers the same events in the same order with the same ids.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::control;
use super::hub::Hub;
use crate::domain::{EventRow, Scope};
use crate::store::{Change, Changes, Publisher, Store, StoreResult};

const PAGE: i64 = 1000;
/// Re-reads the log this often even without a notification (one lost while reconnecting).
const SAFETY_POLL: Duration = Duration::from_secs(1);

/// What this instance's writer is given: the events it commits reach the hub through the log,
/// in order with every other instance's, so the writer only wakes the feeder.
struct WakeFeeder(Arc<Notify>);

impl Publisher for WakeFeeder {
    fn publish(&self, _events: Vec<EventRow>) {
        self.0.notify_one();
    }
}

/// Starts listening; returns the publisher for this instance's writer.
pub async fn spawn(
    store: Store,
    mut changes: Changes,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
) -> Arc<dyn Publisher> {
    let wake = Arc::new(Notify::new());
    let local = wake.clone();
    tokio::spawn(async move {
        let mut poll = tokio::time::interval(SAFETY_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = local.notified() => {}
                _ = poll.tick() => {}
                change = changes.next() => match change {
                    Change::Control(payload) => {
                        control::apply(&hub, &payload);
                        continue;
                    }
                    // A sign-out or a user change announced while away is lost: every stream
                    // checks its session and user now; events are read from the log below.
                    Change::Reconnecting => {
                        tracing::warn!("event listener reconnecting; streams re-check their sessions");
                        hub.recheck();
                    }
                    Change::Events => {}
                },
            }
            if let Err(e) = drain(&store, &hub).await {
                tracing::warn!(error = %e, "reading the event log failed");
            }
        }
    });
    Arc::new(WakeFeeder(wake))
}

/// Publishes every event after the hub's last id, in order.
async fn drain(store: &Store, hub: &Hub) -> StoreResult<()> {
    loop {
        let rows = store
            .events_after(hub.last_id(), i64::MAX, &Scope::All, PAGE)
            .await?;
        hub.publish_events(&rows);
        if (rows.len() as i64) < PAGE {
            return Ok(());
        }
    }
}

//! PostgreSQL, several instances: every instance feeds its hub from the shared event log, in id
//! order, woken by the store's notifications (and by its own writer). Because ids become visible
//! in increasing order (advisory lock), reading `id > last` never skips an event, so every
//! instance delivers the same events in the same order with the same ids.
//!
//! An instance's own commits need no read: its writer hands them over, and when they follow
//! the hub's last id with no id missing (no other instance committed in between, no rolled-back
//! ids) they are published as they are; otherwise the log is read from the last id, which
//! holds them too. The notification of an own commit is then skipped.

use std::sync::{Arc, Mutex, MutexGuard};
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
/// Own events kept for the feeder at most; past it they are dropped and read from the log.
const MAX_OWN: usize = 10_000;

/// What this instance's writer committed and the feeder has not yet taken.
#[derive(Debug, Default)]
struct Own {
    events: Vec<EventRow>,
    /// Some were dropped (the feeder fell behind): read the log.
    dropped: bool,
}

/// What this instance's writer is given: its commits' events, kept for the feeder.
#[derive(Default)]
struct FromWriter {
    own: Mutex<Own>,
    wake: Notify,
}

impl FromWriter {
    fn own(&self) -> MutexGuard<'_, Own> {
        self.own.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&self) -> Own {
        std::mem::take(&mut *self.own())
    }
}

impl Publisher for FromWriter {
    fn publish(&self, events: Vec<EventRow>) {
        {
            let mut own = self.own();
            if own.events.len() + events.len() > MAX_OWN {
                own.events = Vec::new();
                own.dropped = true;
            } else {
                own.events.extend(events);
            }
        }
        self.wake.notify_one();
    }
}

/// Starts listening; returns the publisher for this instance's writer.
pub async fn spawn(
    store: Store,
    mut changes: Changes,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
) -> Arc<dyn Publisher> {
    let writer = Arc::new(FromWriter::default());
    let local = writer.clone();
    tokio::spawn(async move {
        let mut poll = tokio::time::interval(SAFETY_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let read_log = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = local.wake.notified() => !publish_own(&hub, local.take()),
                _ = poll.tick() => true,
                change = changes.next() => match change {
                    Change::Control(payload) => {
                        control::apply(&hub, &payload);
                        false
                    }
                    // A sign-out or a user change announced while away is lost: every stream
                    // checks its session and user now; events are read from the log below.
                    Change::Reconnecting => {
                        tracing::warn!("event listener reconnecting; streams re-check their sessions");
                        hub.recheck();
                        true
                    }
                    // This instance's own commit: its events came from the writer.
                    Change::Events { own } => !own,
                },
            };
            if read_log {
                if let Err(e) = drain(&store, &hub).await {
                    tracing::warn!(error = %e, "reading the event log failed");
                }
            }
        }
    });
    writer
}

/// Publishes the writer's events that follow the hub's last id, if none is missing between;
/// false when the log must be read instead.
fn publish_own(hub: &Hub, own: Own) -> bool {
    if own.dropped {
        return false;
    }
    let last = hub.last_id();
    // In id order: those at or below the last id were read from the log already.
    let fresh = &own.events[own.events.partition_point(|e| e.id <= last)..];
    let unbroken = fresh.iter().zip(last + 1..).all(|(e, id)| e.id == id);
    if unbroken {
        hub.publish_events(fresh);
    }
    unbroken
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: i64) -> EventRow {
        EventRow {
            id,
            device_id: 1,
            site_id: None,
            json: format!("{{\"n\":{id}}}"),
        }
    }

    fn own(ids: &[i64]) -> Own {
        Own {
            events: ids.iter().copied().map(event).collect(),
            dropped: false,
        }
    }

    #[test]
    fn own_events_that_follow_the_last_id_are_published_without_a_read() {
        let hub = Hub::new(16, 0);
        let mut rx = hub.subscribe();
        assert!(publish_own(&hub, own(&[1, 2, 3])));
        assert_eq!(hub.last_id(), 3);
        for id in 1..=3 {
            let msg = rx.try_recv().unwrap();
            assert!(matches!(msg, super::super::message::HubMessage::Event(f) if f.id == id));
        }
    }

    #[test]
    fn a_missing_id_before_or_among_own_events_means_reading_the_log() {
        let hub = Hub::new(16, 0);
        // Another instance's event 1 has not been read yet.
        assert!(!publish_own(&hub, own(&[2, 3])));
        assert_eq!(hub.last_id(), 0);
        // A rolled-back id between two of this instance's commits.
        assert!(!publish_own(&hub, own(&[1, 2, 4])));
        assert_eq!(hub.last_id(), 0, "nothing is published when one is missing");
    }

    #[test]
    fn own_events_read_from_the_log_already_are_not_published_twice() {
        let hub = Hub::new(16, 0);
        hub.publish_events(&[event(1), event(2)]);
        let mut rx = hub.subscribe();
        assert!(publish_own(&hub, own(&[1, 2, 3])));
        let msg = rx.try_recv().unwrap();
        assert!(matches!(msg, super::super::message::HubMessage::Event(f) if f.id == 3));
        assert!(rx.try_recv().is_err());
        assert!(
            publish_own(&hub, own(&[2, 3])),
            "all read already: nothing to do"
        );
    }

    #[test]
    fn the_writer_drops_its_events_past_the_bound_and_the_log_is_read() {
        let writer = FromWriter::default();
        writer.publish((1..=MAX_OWN as i64).map(event).collect());
        assert_eq!(writer.own().events.len(), MAX_OWN);
        writer.publish(vec![event(MAX_OWN as i64 + 1)]);
        let taken = writer.take();
        assert!(taken.dropped && taken.events.is_empty());
        assert!(!publish_own(&Hub::new(16, 0), taken));
        assert!(!writer.take().dropped, "taking resets it");
    }
}

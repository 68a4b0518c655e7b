//! Wake-ups for streams that carry only some events.
//!
//! A stream following a few devices, or scoped to a few sites, would otherwise be woken by every
//! broadcast only to drop most of them (a million wake-ups a second in the soak for 30,000
//! deliveries). Such a stream waits on its own gate instead of on the channel; the hub opens the
//! gates an event concerns. The stream still reads the channel itself, in order, with the same
//! cursor and lag rules, so a missed or late wake-up can delay an event but never lose one: every
//! gate is also opened for control messages, and swept open before the channel could overwrite
//! what a quiet stream has not read.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::frames::Frame;
use crate::domain::Scope;

/// Batches longer than this open every gate instead of being matched gate by gate.
const MATCH_AT_MOST: usize = 64;

/// What one stream may carry.
#[derive(Debug, Clone)]
pub struct Filter {
    pub scope: Scope,
    pub devices: Option<HashSet<i64>>,
}

impl Filter {
    pub fn allows(&self, device_id: i64, site_id: Option<i64>) -> bool {
        self.scope.allows(site_id) && self.devices.as_ref().is_none_or(|d| d.contains(&device_id))
    }

    /// Every event passes: nothing to gain from a gate.
    pub fn takes_everything(&self) -> bool {
        matches!(self.scope, Scope::All) && self.devices.is_none()
    }
}

/// One stream's gate; dropping it unregisters the stream.
pub struct Gate {
    gates: Arc<Gates>,
    id: u64,
    notify: Arc<Notify>,
}

impl Gate {
    /// Call before subscribing to the channel (see `Gates::add`).
    pub fn new(gates: &Arc<Gates>, filter: Arc<Filter>) -> Gate {
        let (id, notify) = gates.add(filter);
        Gate {
            gates: gates.clone(),
            id,
            notify,
        }
    }

    /// Until the hub opens the gate (at once if it was opened since the last call).
    pub async fn opened(&self) {
        self.notify.notified().await;
    }

    /// The stream stopped reading with more perhaps queued: look again at once.
    pub fn reopen(&self) {
        self.notify.notify_one();
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.gates.remove(self.id);
    }
}

struct Entry {
    filter: Arc<Filter>,
    notify: Arc<Notify>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    gated: HashMap<u64, Entry>,
    /// Events published since every gate was last opened.
    since_sweep: usize,
}

/// The gates of one hub.
#[derive(Default)]
pub struct Gates {
    registry: Mutex<Registry>,
}

impl Gates {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        // A panic elsewhere while holding it leaves the map consistent: keep going.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a stream; register before subscribing to the channel, so every event the
    /// stream's receiver holds was either published before (read by its first drain) or opens
    /// its gate.
    pub fn add(&self, filter: Arc<Filter>) -> (u64, Arc<Notify>) {
        let notify = Arc::new(Notify::new());
        let mut r = self.lock();
        r.next_id += 1;
        let id = r.next_id;
        r.gated.insert(
            id,
            Entry {
                filter,
                notify: notify.clone(),
            },
        );
        (id, notify)
    }

    pub fn remove(&self, id: u64) {
        self.lock().gated.remove(&id);
    }

    /// Opens the gates `frames` concern; all of them once `sweep_every` events have gone by.
    pub fn published(&self, frames: &[Arc<Frame>], sweep_every: usize) {
        let mut r = self.lock();
        r.since_sweep += frames.len();
        // A long batch (a feeder catching up) would cost more to match than the wake-ups save.
        if r.since_sweep >= sweep_every || frames.len() > MATCH_AT_MOST {
            r.since_sweep = 0;
            open_all(&r);
            return;
        }
        for entry in r.gated.values() {
            if frames
                .iter()
                .any(|f| entry.filter.allows(f.device_id, f.site_id))
            {
                entry.notify.notify_one();
            }
        }
    }

    /// Control messages (sign-out, user changes, shutdown) concern every stream.
    pub fn open_all(&self) {
        open_all(&self.lock());
    }

    /// Streams registered.
    pub fn count(&self) -> usize {
        self.lock().gated.len()
    }
}

impl std::fmt::Debug for Gates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gates")
            .field("gated", &self.count())
            .finish()
    }
}

fn open_all(r: &Registry) {
    for entry in r.gated.values() {
        entry.notify.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(device_id: i64, site_id: Option<i64>) -> Arc<Frame> {
        Arc::new(Frame {
            id: 1,
            device_id,
            site_id,
            bytes: Bytes::new(),
        })
    }

    fn opened(n: &Notify) -> bool {
        use std::future::Future;
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let fut = std::pin::pin!(n.notified());
        fut.poll(&mut cx).is_ready()
    }

    #[test]
    fn only_the_gates_an_event_concerns_open() {
        let gates = Gates::default();
        let device_7 = Filter {
            scope: Scope::All,
            devices: Some([7].into()),
        };
        let site_2 = Filter {
            scope: Scope::Sites(vec![2]),
            devices: None,
        };
        let (_, a) = gates.add(Arc::new(device_7));
        let (b_id, b) = gates.add(Arc::new(site_2));
        gates.published(&[frame(7, Some(1))], 100);
        assert!(opened(&a));
        assert!(!opened(&b), "device 7 is in site 1, not 2");
        gates.published(&[frame(8, Some(2)), frame(9, None)], 100);
        assert!(!opened(&a));
        assert!(opened(&b));
        gates.remove(b_id);
        assert_eq!(gates.count(), 1);
    }

    #[test]
    fn every_gate_opens_for_control_messages_and_sweeps() {
        let gates = Gates::default();
        let quiet = Filter {
            scope: Scope::Sites(vec![5]),
            devices: None,
        };
        let (_, n) = gates.add(Arc::new(quiet));
        gates.open_all();
        assert!(opened(&n));
        gates.published(&[frame(1, Some(1))], 3);
        gates.published(&[frame(1, Some(1))], 3);
        assert!(!opened(&n));
        gates.published(&[frame(1, Some(1))], 3);
        assert!(opened(&n), "swept open after 3 events");
    }
}

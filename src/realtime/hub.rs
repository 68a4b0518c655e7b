//! The in-process event hub: one broadcast channel of pre-encoded frames shared by every stream.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::broadcast;

use super::batch::Batched;
use super::coalesce::Coalesce;
use super::direct::{ShardStats, Shards};
use super::frames::Frame;
use super::gate::Gates;
pub use super::message::HubMessage;
use super::passes::Passes;
use crate::domain::{EventRow, Role, Scope, User};
use crate::store::sessions::StreamSession;
use crate::store::{Publisher, StoreError};

/// Counters for `/api/realtime/stats`, registered as-is with `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Open streams per role.
    pub clients: Family<RoleLabel, Gauge>,
    pub events_published: Counter,
    pub frames_sent: Counter,
    pub replays: Counter,
    /// Streams told to reload instead of replaying more than `--max-replay-events`.
    pub resyncs: Counter,
    pub replayed_events: Counter,
    /// Times a stream fell behind the channel and caught up from the database.
    pub lagged: Counter,
    pub lagging_now: Gauge,
    /// Streams a shard thread writes to directly (see `direct.rs`).
    pub direct_now: Gauge,
}

impl Stats {
    pub fn role_slot(&self, role: Role) -> Gauge {
        self.clients
            .get_or_create(&RoleLabel {
                role: role.as_str(),
            })
            .clone()
    }

    pub fn total_clients(&self) -> usize {
        [Role::Admin, Role::Manager, Role::Employee]
            .into_iter()
            .map(|r| self.role_slot(r).get().max(0) as usize)
            .sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RoleLabel {
    pub role: &'static str,
}

#[derive(Debug)]
pub struct Hub {
    tx: broadcast::Sender<HubMessage>,
    last_id: AtomicI64,
    closed: AtomicBool,
    /// Streams that carry only some events wait here (see `gate.rs`).
    pub gates: Arc<Gates>,
    /// Every gate is opened after this many events, half the channel's capacity, so a quiet
    /// gated stream reads the channel before it is overwritten.
    sweep_every: usize,
    /// Database reads of reconnecting and lagging streams run at most this many at a time, so
    /// a reconnect storm queues here instead of draining the pool for ingest and timing out.
    pub replay_slots: tokio::sync::Semaphore,
    /// Sessions checked within the last second, for opening streams (see `passes.rs`).
    pub passes: Passes,
    /// Reads of reconnecting streams, shared by those who ask at once (see `coalesce.rs`).
    pub shared: SharedReads,
    /// Threads that write events straight to caught-up streams, once started (`direct.rs`).
    pub direct: std::sync::OnceLock<Shards>,
    pub stats: Stats,
}

/// What a reconnecting stream reads, shared per key: the newest event id, a replay page after
/// an id in a scope, whether a session is active, a user; and the sessions of streams opened
/// without a pass, many in one read.
#[derive(Debug, Default)]
pub struct SharedReads {
    pub newest: Coalesce<(), Shared<i64>>,
    pub events: Coalesce<(i64, Scope), Shared<Arc<Vec<EventRow>>>>,
    pub sessions: Coalesce<String, Shared<bool>>,
    pub users: Coalesce<i64, Shared<Option<Arc<User>>>>,
    /// Sessions of streams opened without a pass, read together (see `batch.rs`).
    pub stream_sessions: Batched<String, Shared<StreamSession>>,
}

/// A shared read's result.
pub type Shared<T> = Result<T, Arc<StoreError>>;

/// Replay reads at once (the PostgreSQL pool holds 16 connections).
const REPLAY_SLOTS: usize = 6;

impl Hub {
    /// `last_id` is the newest stored event id at start.
    pub fn new(capacity: usize, last_id: i64) -> Arc<Hub> {
        let capacity = capacity.max(16);
        let (tx, _) = broadcast::channel(capacity);
        Arc::new(Hub {
            tx,
            last_id: AtomicI64::new(last_id),
            closed: AtomicBool::new(false),
            gates: Arc::default(),
            sweep_every: capacity / 2,
            replay_slots: tokio::sync::Semaphore::new(REPLAY_SLOTS),
            passes: Passes::default(),
            shared: SharedReads::default(),
            direct: std::sync::OnceLock::new(),
            stats: Stats::default(),
        })
    }

    /// Starts the shard threads that write events to caught-up streams (once; later calls
    /// change nothing). Without them every stream is written by its own task.
    pub fn start_direct(&self, threads: usize) -> std::io::Result<()> {
        if self.direct.get().is_some() {
            return Ok(());
        }
        let stats = ShardStats {
            frames_sent: self.stats.frames_sent.clone(),
        };
        let shards = Shards::start(threads, || self.subscribe(), &stats)?;
        let _ = self.direct.set(shards);
        Ok(())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<HubMessage> {
        self.tx.subscribe()
    }

    /// Id of the newest event handed to the streams.
    pub fn last_id(&self) -> i64 {
        self.last_id.load(Ordering::Acquire)
    }

    /// Publishes committed frames; callers pass them in id order.
    pub fn publish_frames(&self, frames: Vec<Frame>) {
        let mut sent = Vec::with_capacity(frames.len());
        for frame in frames {
            let id = frame.id;
            self.last_id.fetch_max(id, Ordering::AcqRel);
            self.stats.events_published.inc();
            let frame = Arc::new(frame);
            // No receivers is fine: the event is in the database for later replay.
            let receivers = self.tx.send(HubMessage::Event(frame.clone())).unwrap_or(0);
            tracing::debug!(event_id = id, receivers, "broadcast");
            sent.push(frame);
        }
        self.gates.published(&sent, self.sweep_every);
    }

    /// Events the writer committed (SQLite) or the feeder read (PostgreSQL), in id order:
    /// each is framed here, once, for every stream.
    pub fn publish_events(&self, events: &[EventRow]) {
        self.publish_frames(events.iter().map(Frame::encode).collect());
    }

    pub fn end_session(&self, session_id: &str) {
        self.passes.forget_session(session_id);
        let _ = self.tx.send(HubMessage::EndSession(session_id.into()));
        self.gates.open_all();
    }

    pub fn end_user(&self, user_id: i64) {
        self.passes.forget_user(user_id);
        let _ = self.tx.send(HubMessage::EndUser(user_id));
        self.gates.open_all();
    }

    pub fn recheck(&self) {
        self.passes.forget_all();
        let _ = self.tx.send(HubMessage::Recheck);
        self.gates.open_all();
    }

    /// Ends every stream. Streams learn it from the channel, so none polls a shared token per
    /// event; one that lagged past the message, or subscribed after it, sees `is_closed`.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let _ = self.tx.send(HubMessage::Shutdown);
        self.gates.open_all();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// A single instance (SQLite): the writer hands committed events straight to the hub.
impl Publisher for Hub {
    fn publish(&self, events: Vec<EventRow>) {
        self.publish_events(&events);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_is_sent_to_subscribers_and_seen_by_later_ones() {
        let hub = Hub::new(16, 0);
        let mut before = hub.subscribe();
        assert!(!hub.is_closed());
        hub.close();
        assert!(matches!(before.try_recv(), Ok(HubMessage::Shutdown)));
        let mut after = hub.subscribe();
        assert!(after.try_recv().is_err(), "sent before it subscribed");
        assert!(hub.is_closed(), "so it must check the flag");
    }
}

//! Direct delivery: shard threads write each event straight to the sockets of the streams that
//! are caught up, as the bench's floor does, instead of waking one task per stream per event.
//!
//! A stream's task hands its socket to a shard once it has read everything queued for it on
//! the channel (`Link::enter`). From then on the shard, reading the channel itself, writes the
//! stream's events with one non-blocking write each, advancing the stream's cursor under the
//! same lock, and the task sleeps. It wakes for its keepalives and its session's expiry, and when
//! the shard calls it: the socket was full (the task flushes what the shard kept, under the
//! stall deadline), a control message concerns it, or the shard fell behind the channel or kept
//! too much (the task takes the stream back and catches up from the database, as a lagging
//! stream does). Nothing is lost: an event is either at or below the cursor (written, kept or
//! filtered out) or read later by the task from the database.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::Receiver;
use tokio::sync::Notify;

use super::gate::Filter;
use super::message::HubMessage;

/// Messages a shard handles per pass over its streams (their frames go out in one write).
const BATCH: usize = 64;
/// Bytes kept for a full socket before the stream is handed back to its task.
const MAX_PENDING: usize = 256 * 1024;
/// Streams waiting to join a shard before the waiting list drops those already gone.
const PRUNE_WAITING_AT: usize = 1024;

/// A socket the shard can write to from its own thread without waiting.
pub trait Wire: Send + Sync + 'static {
    /// One non-blocking write from the shard's thread (`WouldBlock` when the socket is full),
    /// as lean as the socket allows: it need not tell the task's wait (`poll_writable`).
    fn send(&self, bytes: &[u8]) -> io::Result<usize>;
    /// One non-blocking write from the task, which then waits on `poll_writable` if the
    /// socket was full.
    fn try_write(&self, bytes: &[u8]) -> io::Result<usize>;
    /// Ready when the socket may take more (may be ready once more after a full `send`).
    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// What the server hands a stream it may write to directly (a request extension).
#[derive(Clone)]
pub struct DirectWire {
    pub wire: Arc<dyn Wire>,
    /// How long kept bytes may wait for a socket that takes nothing (`--stall-secs`).
    pub stall: Duration,
    pub stalls: Counter,
}

/// Why a shard called a stream's task.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Calls {
    end: bool,
    recheck: bool,
    take_back: bool,
}

#[derive(Default)]
struct State {
    /// None once the task is gone (the socket is then closed by the server, not held here).
    wire: Option<Arc<dyn Wire>>,
    /// The shard writes this stream's events.
    direct: bool,
    /// The newest event id handled for this stream (written, kept or filtered out).
    cursor: i64,
    /// What a full socket did not take; flushed by the task before anything else is written.
    pending: BytesMut,
    /// When `pending` stopped draining.
    pending_since: Option<tokio::time::Instant>,
    calls: Calls,
    /// Counted in the direct-streams gauge.
    counted: bool,
}

struct Sink {
    /// Every event passes the filter (most streams): no need to look at it.
    everything: bool,
    filter: Arc<Filter>,
    session_id: Arc<str>,
    user_id: i64,
    notify: Notify,
    state: Mutex<State>,
    /// What only the task uses: kept here so an idle stream's own state stays one pointer.
    shard: Arc<Shard>,
    stall: Duration,
    stalls: Counter,
    gauge: Gauge,
}

impl Sink {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One shard thread's door: the streams waiting to join it, and whether it still runs.
#[derive(Default)]
struct Shard {
    waiting: Mutex<Waiting>,
    /// Cleared if the thread panicked: its streams were handed back and no more join.
    alive: AtomicBool,
}

#[derive(Default)]
struct Waiting {
    sinks: Vec<Arc<Sink>>,
    /// Length at which the list next drops streams already gone (doubling, so a reconnect
    /// storm on a quiet hub costs linear time, not quadratic).
    prune_at: usize,
}

impl Shard {
    fn waiting(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The shard threads of one hub.
#[derive(Default)]
pub struct Shards {
    shards: Vec<Arc<Shard>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for Shards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shards")
            .field("threads", &self.shards.len())
            .finish()
    }
}

/// Counters a shard updates.
#[derive(Clone)]
pub struct ShardStats {
    pub frames_sent: Counter,
}

impl Shards {
    /// Starts `threads` shard threads, each with its own subscription; they end with the
    /// channel or at its shutdown message.
    pub fn start(
        threads: usize,
        subscribe: impl Fn() -> Receiver<HubMessage>,
        stats: &ShardStats,
    ) -> io::Result<Shards> {
        let mut shards = Vec::new();
        for n in 0..threads.max(1) {
            let shard = Arc::new(Shard::default());
            shard.alive.store(true, Ordering::Release);
            let (rx, own, stats) = (subscribe(), shard.clone(), stats.clone());
            std::thread::Builder::new()
                .name(format!("sensorcast-shard-{n}"))
                .spawn(move || {
                    super::shard_priority::lower_this_thread();
                    guard(rx, &own, &stats)
                })?;
            shards.push(shard);
        }
        Ok(Shards {
            shards,
            next: AtomicUsize::new(0),
        })
    }

    /// A link for one stream, dealt to the shards in turn; None when none was started.
    pub fn link(
        &self,
        wire: DirectWire,
        filter: Arc<Filter>,
        session_id: Arc<str>,
        user_id: i64,
        gauge: &Gauge,
    ) -> Option<Link> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let shard = self.shards.get(turn % self.shards.len().max(1))?;
        if !shard.alive.load(Ordering::Acquire) {
            return None;
        }
        let sink = Arc::new(Sink {
            everything: filter.takes_everything(),
            filter,
            session_id,
            user_id,
            notify: Notify::new(),
            state: Mutex::new(State {
                wire: Some(wire.wire),
                ..State::default()
            }),
            shard: shard.clone(),
            stall: wire.stall,
            stalls: wire.stalls,
            gauge: gauge.clone(),
        });
        let mut waiting = shard.waiting();
        // A shard picks its newcomers up at its next pass; until then streams come and go.
        if waiting.sinks.len() >= waiting.prune_at.max(PRUNE_WAITING_AT) {
            waiting.sinks.retain(|s| s.lock().wire.is_some());
            waiting.prune_at = 2 * waiting.sinks.len();
        }
        waiting.sinks.push(sink.clone());
        drop(waiting);
        Some(Link { sink })
    }
}

/// Runs a shard; should it panic, its streams are handed back to their tasks (which catch up
/// from the database) and none joins it again.
fn guard(rx: Receiver<HubMessage>, shard: &Shard, stats: &ShardStats) {
    let mut sinks: Vec<Arc<Sink>> = Vec::new();
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run(rx, shard, &mut sinks, stats)
    }));
    if ran.is_ok() {
        return;
    }
    tracing::error!("a shard thread panicked; its streams go back to their tasks");
    shard.alive.store(false, Ordering::Release);
    sinks.append(&mut shard.waiting().sinks);
    let back = Calls {
        take_back: true,
        ..Calls::default()
    };
    for sink in &sinks {
        let mut st = sink.lock();
        if st.direct {
            call(sink, &mut st, back);
        }
    }
}

/// One shard's thread: each message (or batch of them) to each of its direct streams.
fn run(
    mut rx: Receiver<HubMessage>,
    shard: &Shard,
    sinks: &mut Vec<Arc<Sink>>,
    stats: &ShardStats,
) {
    let mut batch: Vec<HubMessage> = Vec::with_capacity(BATCH);
    // Reused for every stream that gets several frames in one write.
    let mut joined: Vec<u8> = Vec::new();
    loop {
        batch.clear();
        let mut lagged = false;
        let mut closed = false;
        match rx.blocking_recv() {
            Ok(msg) => batch.push(msg),
            Err(RecvError::Lagged(_)) => lagged = true,
            Err(RecvError::Closed) => closed = true,
        }
        while batch.len() < BATCH && !lagged && !closed {
            match rx.try_recv() {
                Ok(msg) => batch.push(msg),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Lagged(_)) => lagged = true,
                Err(TryRecvError::Closed) => closed = true,
            }
        }
        sinks.append(&mut shard.waiting().sinks);
        let ending = closed || batch.iter().any(|m| matches!(m, HubMessage::Shutdown));
        let pass = Pass {
            batch: &batch,
            lagged,
            ending,
        };
        let mut sent = 0u64;
        sinks.retain(|sink| deliver(sink, &pass, &mut joined, &mut sent));
        stats.frames_sent.inc_by(sent);
        if ending {
            return;
        }
    }
}

/// One pass of a shard over its streams.
struct Pass<'a> {
    batch: &'a [HubMessage],
    /// The shard's receiver fell behind after the batch: every stream is handed back.
    lagged: bool,
    /// The channel closed or the server is stopping: every stream ends.
    ending: bool,
}

/// Handles a pass for one stream; false once the stream is gone (dropped from the shard).
/// A lone frame is written from the shared bytes as they are, without touching their count
/// (the shard threads would pass that cache line between cores for every stream).
fn deliver(sink: &Sink, pass: &Pass<'_>, joined: &mut Vec<u8>, sent: &mut u64) -> bool {
    let mut guard = sink.lock();
    let st = &mut *guard;
    let Some(wire) = st.wire.as_deref() else {
        return false;
    };
    if !st.direct {
        return true;
    }
    // A lone frame stays `single`; a second one moves both into `joined`.
    let mut single: Option<&[u8]> = None;
    joined.clear();
    let mut calls = Calls {
        end: pass.ending,
        ..Calls::default()
    };
    for msg in pass.batch {
        match msg {
            HubMessage::Event(frame) if frame.id > st.cursor => {
                st.cursor = frame.id;
                if sink.everything || sink.filter.allows(frame.device_id, frame.site_id) {
                    match single.take() {
                        None if joined.is_empty() => single = Some(&frame.bytes),
                        first => {
                            joined.extend_from_slice(first.unwrap_or_default());
                            joined.extend_from_slice(&frame.bytes);
                        }
                    }
                }
            }
            HubMessage::Event(_) => {}
            HubMessage::EndSession(id) => calls.end |= **id == *sink.session_id,
            HubMessage::EndUser(id) => calls.end |= *id == sink.user_id,
            HubMessage::Recheck => calls.recheck = true,
            HubMessage::Shutdown => calls.end = true,
        }
        if calls.end {
            break;
        }
    }
    if calls.end {
        // As a task does: what was gathered with the end is not sent.
        return call(sink, st, calls);
    }
    let bytes = single.unwrap_or(&joined[..]);
    if !bytes.is_empty() {
        match write_or_keep(&mut st.pending, wire, bytes, Wire::send) {
            Ok(true) => *sent += 1,
            Ok(false) => calls.take_back |= st.pending.len() > MAX_PENDING,
            Err(_) => calls.end = true,
        }
    }
    calls.take_back |= pass.lagged;
    if !st.pending.is_empty() && st.pending_since.is_none() {
        // Newly full: the task waits for the socket and flushes.
        st.pending_since = Some(tokio::time::Instant::now());
        sink.notify.notify_one();
    }
    if calls != Calls::default() {
        call(sink, st, calls);
    }
    true
}

/// Records why the task is called and wakes it; the stream stops being direct unless it only
/// has to re-check its session.
fn call(sink: &Sink, st: &mut State, calls: Calls) -> bool {
    if calls.end || calls.take_back {
        st.direct = false;
    }
    st.calls.end |= calls.end;
    st.calls.recheck |= calls.recheck;
    st.calls.take_back |= calls.take_back;
    sink.notify.notify_one();
    true
}

/// Writes `bytes` after anything kept; true when the socket took all of it, false when some is
/// kept for the task to flush.
fn write_or_keep(
    pending: &mut BytesMut,
    wire: &dyn Wire,
    bytes: &[u8],
    write: fn(&dyn Wire, &[u8]) -> io::Result<usize>,
) -> io::Result<bool> {
    if !pending.is_empty() {
        pending.extend_from_slice(bytes);
        return Ok(false);
    }
    let mut at = 0;
    while at < bytes.len() {
        match write(wire, &bytes[at..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if at == bytes.len() {
        return Ok(true);
    }
    pending.extend_from_slice(&bytes[at..]);
    Ok(false)
}

/// What a stream's task is told when a shard calls it.
#[derive(Debug)]
pub enum Called {
    /// Its session or user ended, the server is stopping, or the socket failed.
    End,
    /// Taken back: send `pending`, then catch up from the database after `cursor`.
    TakeBack { cursor: i64, pending: Bytes },
    /// Re-check the session (control messages may have been missed); still direct.
    Recheck,
    /// Nothing to do but look at what is kept (flush it).
    Nothing,
}

/// A stream task's side of its link to a shard; dropping it takes the stream out.
pub struct Link {
    sink: Arc<Sink>,
}

impl Link {
    /// Hands the stream to the shard if nothing is queued for it on `rx` (read first, then
    /// try again): under the stream's lock, every message the shard has not yet handled for it
    /// is still ahead of `rx`, so it is either read by the task or written by the shard.
    pub fn enter(&self, rx: &Receiver<HubMessage>, cursor: i64) -> bool {
        let sink = &*self.sink;
        let mut st = sink.lock();
        if !rx.is_empty() || st.wire.is_none() || !st.pending.is_empty() {
            return false;
        }
        if !sink.shard.alive.load(Ordering::Acquire) {
            return false;
        }
        st.direct = true;
        st.cursor = cursor;
        st.calls = Calls::default();
        count(sink, &mut st, true);
        true
    }

    /// Until a shard calls (at once if it did since the last call).
    pub async fn called(&self) {
        self.sink.notify.notified().await;
    }

    /// Why the shard called, taking the stream back if it said so.
    pub fn answer(&self) -> Called {
        let sink = &*self.sink;
        let mut st = sink.lock();
        let calls = std::mem::take(&mut st.calls);
        if calls.end {
            st.direct = false;
            count(sink, &mut st, false);
            return Called::End;
        }
        // A recheck asked for with a take-back is covered: the catch-up checks the session
        // before every page.
        if calls.take_back {
            st.direct = false;
            st.pending_since = None;
            let (cursor, pending) = (st.cursor, std::mem::take(&mut st.pending).freeze());
            count(sink, &mut st, false);
            return Called::TakeBack { cursor, pending };
        }
        if calls.recheck {
            return Called::Recheck;
        }
        Called::Nothing
    }

    /// Whether bytes are kept for a full socket.
    pub fn has_pending(&self) -> bool {
        !self.sink.lock().pending.is_empty()
    }

    /// Writes what is kept as the socket takes it; an error when it fails or takes nothing for
    /// the stall deadline (counted as a stall, as the server counts its own).
    pub async fn flush(&self) -> io::Result<()> {
        loop {
            let (wire, since) = {
                let st = self.sink.lock();
                if st.pending.is_empty() {
                    return Ok(());
                }
                let wire = st.wire.clone().ok_or(io::ErrorKind::NotConnected)?;
                (wire, st.pending_since)
            };
            // Measured from the last progress, so a slow reader that keeps reading stays.
            let deadline = since.unwrap_or_else(tokio::time::Instant::now) + self.sink.stall;
            let writable = std::future::poll_fn(|cx| wire.poll_writable(cx));
            match tokio::time::timeout_at(deadline, writable).await {
                Ok(ready) => ready?,
                Err(_) => {
                    self.sink.stalls.inc();
                    return Err(io::ErrorKind::TimedOut.into());
                }
            }
            {
                let mut st = self.sink.lock();
                let st = &mut *st;
                match wire.try_write(&st.pending) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        st.pending.advance(n);
                        st.pending_since = match st.pending.is_empty() {
                            true => None,
                            false => Some(tokio::time::Instant::now()),
                        };
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// Writes a frame of the task's own (a keepalive) while the shard holds the stream; false
    /// when the socket failed. A frame that does not fit is kept behind what already is.
    pub fn send_own(&self, frame: &Bytes) -> bool {
        let mut guard = self.sink.lock();
        let st = &mut *guard;
        let Some(wire) = st.wire.as_deref() else {
            return false;
        };
        if st.pending.len() > MAX_PENDING {
            return true;
        }
        match write_or_keep(&mut st.pending, wire, frame, Wire::try_write) {
            Ok(_) => {
                if !st.pending.is_empty() && st.pending_since.is_none() {
                    st.pending_since = Some(tokio::time::Instant::now());
                }
                true
            }
            Err(_) => false,
        }
    }
}

/// Keeps the direct-streams gauge in step with `direct` (under the stream's lock).
fn count(sink: &Sink, st: &mut State, direct: bool) {
    if st.counted != direct {
        st.counted = direct;
        match direct {
            true => sink.gauge.inc(),
            false => sink.gauge.dec(),
        };
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let mut st = self.sink.lock();
        st.wire = None;
        st.direct = false;
        // The shard may hold the sink until its next pass: it keeps nothing big meanwhile.
        st.pending = BytesMut::new();
        count(&self.sink, &mut st, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Scope;
    use crate::realtime::frames::Frame;

    /// A socket that takes up to `room` bytes, then is full until given more.
    #[derive(Default)]
    struct Pipe {
        taken: Mutex<Vec<u8>>,
        room: AtomicUsize,
        broken: AtomicBool,
    }

    impl Pipe {
        fn with_room(room: usize) -> Arc<Pipe> {
            let pipe = Arc::new(Pipe::default());
            pipe.room.store(room, Ordering::SeqCst);
            pipe
        }

        fn text(&self) -> String {
            String::from_utf8(self.taken.lock().unwrap().clone()).unwrap()
        }
    }

    impl Wire for Pipe {
        fn send(&self, bytes: &[u8]) -> io::Result<usize> {
            if self.broken.load(Ordering::SeqCst) {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            let n = bytes.len().min(self.room.load(Ordering::SeqCst));
            if n == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.room.fetch_sub(n, Ordering::SeqCst);
            self.taken.lock().unwrap().extend_from_slice(&bytes[..n]);
            Ok(n)
        }

        fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
            self.send(bytes)
        }

        fn poll_writable(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            match self.room.load(Ordering::SeqCst) {
                0 => Poll::Pending,
                _ => Poll::Ready(Ok(())),
            }
        }
    }

    fn event(id: i64, site_id: Option<i64>) -> HubMessage {
        HubMessage::Event(Arc::new(Frame {
            id,
            device_id: 1,
            site_id,
            bytes: Bytes::from(format!("id: {id}\n\n")),
        }))
    }

    /// A shard with no thread (the test delivers), a link on it, and its sink.
    fn linked(pipe: &Arc<Pipe>, scope: Scope) -> (Link, Arc<Sink>) {
        linked_with(pipe, scope, Duration::from_secs(5))
    }

    fn linked_with(pipe: &Arc<Pipe>, scope: Scope, stall: Duration) -> (Link, Arc<Sink>) {
        let shard = Arc::new(Shard::default());
        shard.alive.store(true, Ordering::SeqCst);
        let shards = Shards {
            shards: vec![shard.clone()],
            next: AtomicUsize::new(0),
        };
        let wire = DirectWire {
            wire: pipe.clone(),
            stall,
            stalls: Counter::default(),
        };
        let filter = Arc::new(Filter {
            scope,
            devices: None,
        });
        let link = shards
            .link(wire, filter, "s1".into(), 7, &Gauge::default())
            .expect("a shard");
        let sink = shard.waiting().sinks.pop().expect("waiting");
        (link, sink)
    }

    fn deliver_with(sink: &Sink, batch: &[HubMessage], lagged: bool) -> (bool, u64) {
        let pass = Pass {
            batch,
            lagged,
            ending: false,
        };
        let mut sent = 0;
        let kept = deliver(sink, &pass, &mut vec![b'?'; 3], &mut sent);
        (kept, sent)
    }

    fn pass(sink: &Sink, batch: &[HubMessage]) -> (bool, u64) {
        deliver_with(sink, batch, false)
    }

    #[test]
    fn a_stream_is_handed_over_only_with_nothing_unread() {
        let (tx, rx) = tokio::sync::broadcast::channel(16);
        let pipe = Pipe::with_room(1 << 20);
        let (link, sink) = linked(&pipe, Scope::All);
        tx.send(event(1, None)).unwrap();
        assert!(!link.enter(&rx, 0), "an event is still queued for the task");
        assert_eq!(
            pass(&sink, &[event(1, None)]),
            (true, 0),
            "not written twice"
        );
        let mut rx = rx;
        rx.try_recv().unwrap();
        assert!(link.enter(&rx, 1));
        assert_eq!(link.sink.gauge.get(), 1);
        drop(link);
        assert!(
            !pass(&sink, &[event(2, None)]).0,
            "gone: dropped by the shard"
        );
        assert_eq!(pipe.text(), "");
    }

    #[test]
    fn events_go_out_once_in_order_and_filtered() {
        let (_tx, rx) = tokio::sync::broadcast::channel::<HubMessage>(16);
        let pipe = Pipe::with_room(1 << 20);
        let (link, sink) = linked(&pipe, Scope::Sites(vec![3]));
        assert!(link.enter(&rx, 2));
        let batch = [event(1, Some(3)), event(3, Some(3)), event(4, Some(9))];
        assert_eq!(pass(&sink, &batch), (true, 1), "one write for the batch");
        assert_eq!(
            pass(&sink, &[event(3, Some(3)), event(5, Some(3))]),
            (true, 1)
        );
        assert_eq!(
            pipe.text(),
            "id: 3\n\nid: 5\n\n",
            "at or below the cursor, or another site's: not sent"
        );
        assert!(matches!(link.answer(), Called::Nothing));
    }

    #[tokio::test]
    async fn a_full_socket_keeps_the_rest_for_the_task_to_flush() {
        let (_tx, rx) = tokio::sync::broadcast::channel::<HubMessage>(16);
        let pipe = Pipe::with_room(10);
        let (link, sink) = linked(&pipe, Scope::All);
        assert!(link.enter(&rx, 0));
        assert_eq!(pass(&sink, &[event(1, None), event(2, None)]), (true, 0));
        assert!(link.has_pending());
        assert!(
            link.send_own(&Bytes::from_static(b": k\n\n")),
            "kept behind"
        );
        assert_eq!(pass(&sink, &[event(3, None)]), (true, 0));
        assert!(matches!(link.answer(), Called::Nothing), "still direct");
        pipe.room.store(1 << 20, Ordering::SeqCst);
        link.flush().await.expect("flushed");
        assert!(!link.has_pending());
        assert_eq!(pipe.text(), "id: 1\n\nid: 2\n\n: k\n\nid: 3\n\n");
        assert_eq!(
            pass(&sink, &[event(4, None)]),
            (true, 1),
            "written directly again"
        );
    }

    #[tokio::test]
    async fn a_socket_that_takes_nothing_stalls_the_flush() {
        let (_tx, rx) = tokio::sync::broadcast::channel::<HubMessage>(16);
        let pipe = Pipe::with_room(3);
        let (link, sink) = linked_with(&pipe, Scope::All, Duration::from_millis(50));
        assert!(link.enter(&rx, 0));
        pass(&sink, &[event(1, None)]);
        let err = link.flush().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(link.sink.stalls.get(), 1);
    }

    #[test]
    fn too_much_kept_or_a_lag_hands_the_stream_back_at_its_cursor() {
        let (_tx, rx) = tokio::sync::broadcast::channel::<HubMessage>(16);
        let pipe = Pipe::with_room(0);
        let (link, sink) = linked(&pipe, Scope::All);
        assert!(link.enter(&rx, 0));
        let big = HubMessage::Event(Arc::new(Frame {
            id: 1,
            device_id: 1,
            site_id: None,
            bytes: Bytes::from(vec![b'x'; MAX_PENDING + 1]),
        }));
        pass(&sink, &[big]);
        match link.answer() {
            Called::TakeBack { cursor, pending } => {
                assert_eq!((cursor, pending.len()), (1, MAX_PENDING + 1));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(pass(&sink, &[event(2, None)]), (true, 0), "the task's now");
        assert_eq!(link.sink.gauge.get(), 0);

        let pipe = Pipe::with_room(1 << 20);
        let (link, sink) = linked(&pipe, Scope::All);
        assert!(link.enter(&rx, 4));
        deliver_with(&sink, &[event(5, None)], true);
        match link.answer() {
            Called::TakeBack { cursor, pending } => assert_eq!((cursor, pending.len()), (5, 0)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            pipe.text(),
            "id: 5\n\n",
            "what came before the lag was written"
        );
    }

    #[test]
    fn control_messages_end_or_recheck_the_streams_they_concern() {
        let (_tx, rx) = tokio::sync::broadcast::channel::<HubMessage>(16);
        let pipe = Pipe::with_room(1 << 20);
        let (link, sink) = linked(&pipe, Scope::All);
        assert!(link.enter(&rx, 0));
        pass(
            &sink,
            &[HubMessage::EndSession("s2".into()), HubMessage::EndUser(8)],
        );
        assert!(
            matches!(link.answer(), Called::Nothing),
            "not this stream's"
        );
        pass(&sink, &[HubMessage::Recheck]);
        assert!(matches!(link.answer(), Called::Recheck));
        pass(
            &sink,
            &[
                event(1, None),
                HubMessage::EndSession("s1".into()),
                event(2, None),
            ],
        );
        assert!(matches!(link.answer(), Called::End));
        assert_eq!(pipe.text(), "", "nothing gathered with the end is sent");

        for end in [HubMessage::EndUser(7), HubMessage::Shutdown] {
            let (link, sink) = linked(&pipe, Scope::All);
            assert!(link.enter(&rx, 0));
            pass(&sink, &[end]);
            assert!(matches!(link.answer(), Called::End));
        }
        let (link, sink) = linked(&pipe, Scope::All);
        assert!(link.enter(&rx, 0));
        pipe.broken.store(true, Ordering::SeqCst);
        pass(&sink, &[event(3, None)]);
        assert!(
            matches!(link.answer(), Called::End),
            "a failed socket ends it"
        );
    }
}

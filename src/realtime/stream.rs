//! The stream engine: what one SSE stream sends, from the hub and the event log (the HTTP
//! handler that authenticates and answers is `web::realtime`).
//!
//! Subscribe first, then replay from the database, then follow the hub: a frame is sent only if
//! its id is above the stream's cursor, so the seam between replay and live has no gap and no
//! duplicate. A stream that falls behind the channel catches up from the database the same way.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::Instant;

use super::direct::{Called, DirectWire, Link};
use super::frames::{connected_frame, encode_frame, keepalive_frame, resync_frame, Frame};
use super::gate::{Filter, Gate};
use super::hub::{Hub, HubMessage};
use super::limits::StreamPermit;
use crate::domain::{now_ms, Role};
use crate::store::{Store, StoreResult};

/// Rows fetched per replay query.
const REPLAY_PAGE: i64 = 1000;
/// Frames queued for one stream are sent together, up to this many bytes per write.
const COALESCE_BYTES: usize = 64 * 1024;
/// How long a stream keeps retrying a read the database is too busy for, before it ends (the
/// browser then reconnects from its Last-Event-ID): ending at once would turn a busy moment in
/// a reconnect storm into another storm.
const RETRY_FOR: Duration = Duration::from_secs(20);

/// The next message: straight from the channel, or once the stream's gate opens (`None`: the
/// gate opened but nothing was queued).
async fn next_message(
    rx: Option<&mut tokio::sync::broadcast::Receiver<HubMessage>>,
    gate: Option<&Gate>,
) -> Option<Result<HubMessage, RecvError>> {
    // A stream a shard writes holds no receiver.
    let Some(rx) = rx else {
        return std::future::pending().await;
    };
    let Some(gate) = gate else {
        return Some(rx.recv().await);
    };
    gate.opened().await;
    queued(rx)
}

/// What is already queued on the channel, as `recv` would say it; `None` when nothing is.
fn queued(
    rx: &mut tokio::sync::broadcast::Receiver<HubMessage>,
) -> Option<Result<HubMessage, RecvError>> {
    match rx.try_recv() {
        Ok(msg) => Some(Ok(msg)),
        Err(TryRecvError::Empty) => None,
        Err(TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
        Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
    }
}

/// What woke a stream's task: its shard called (while a shard writes the stream), or a
/// message came (while the task reads the channel itself).
enum Woken {
    Called,
    Message(Option<Result<HubMessage, RecvError>>),
}

/// One wait for either, as a stream only ever waits for one of them: its state is the larger
/// wait's, not both (it is part of every idle stream's).
async fn woken(
    link: Option<&Link>,
    direct: bool,
    rx: Option<&mut tokio::sync::broadcast::Receiver<HubMessage>>,
    gate: Option<&Gate>,
) -> Woken {
    match (direct, link) {
        (true, Some(link)) => {
            link.called().await;
            Woken::Called
        }
        (true, None) => std::future::pending().await,
        (false, _) => Woken::Message(next_message(rx, gate).await),
    }
}

/// Writes what a shard kept for a full socket (boxed: only a stream with a full socket pays
/// for the wait's state).
async fn flush(link: Option<&Link>) -> std::io::Result<()> {
    match link {
        Some(link) => Box::pin(link.flush()).await,
        None => std::future::pending().await,
    }
}

/// Counts a stream as lagging for as long as it lives, however the stream ends.
struct Lagging(prometheus_client::metrics::gauge::Gauge);

impl Lagging {
    fn start(gauge: &prometheus_client::metrics::gauge::Gauge) -> Lagging {
        gauge.inc();
        Lagging(gauge.clone())
    }
}

impl Drop for Lagging {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Frames for one write: a lone frame is sent as the shared bytes themselves (no copy); several
/// are joined into one buffer, so a stream that is behind gets them in one write.
#[derive(Default)]
struct Batch {
    single: Option<Bytes>,
    joined: BytesMut,
}

impl Batch {
    fn push(&mut self, frame: &Bytes) {
        if self.single.is_none() && self.joined.is_empty() {
            self.single = Some(frame.clone());
            return;
        }
        if let Some(first) = self.single.take() {
            self.joined.extend_from_slice(&first);
        }
        self.joined.extend_from_slice(frame);
    }

    fn len(&self) -> usize {
        self.single.as_ref().map_or(self.joined.len(), Bytes::len)
    }

    fn finish(self) -> Bytes {
        self.single.unwrap_or_else(|| self.joined.freeze())
    }
}

/// How a stream paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Between keepalive messages.
    pub keepalive: Duration,
    /// Longest replay: further behind, the stream sends `resync` and goes on live.
    pub max_replay: i64,
}

/// Who a stream is for, as checked when it was opened.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub filter: Arc<Filter>,
    pub user_id: i64,
    pub role: Role,
    pub session_id: String,
    /// When the session expires unless renewed (ms since the epoch; 0: ask the store).
    pub expires_at_ms: i64,
    /// `hub.passes.epoch()` before the access was checked.
    pub checked_epoch: u64,
}

/// The stream's bytes: `connected`, then the replay after `last_id` (if given), then live
/// events and keepalives until the subscriber's access ends, the client leaves or the server
/// stops. The permit is held for as long as the stream lives. With `direct`, a shard thread
/// writes the stream's events once it is caught up (`direct.rs`).
pub fn open(
    hub: Arc<Hub>,
    store: Store,
    pace: Pace,
    subscriber: Subscriber,
    permit: StreamPermit,
    last_id: Option<i64>,
    direct: Option<DirectWire>,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send {
    let ctx = StreamCtx {
        hub,
        store,
        pace,
        filter: subscriber.filter,
        user_id: subscriber.user_id,
        role: subscriber.role,
        session_id: subscriber.session_id.into(),
        expires_at_ms: subscriber.expires_at_ms,
        checked_epoch: subscriber.checked_epoch,
        permit,
    };
    // Boxed: the generator would otherwise hold the context twice (moved in, then bound).
    Box::new(ctx).run(last_id, direct)
}

struct StreamCtx {
    hub: Arc<Hub>,
    store: Store,
    pace: Pace,
    filter: Arc<Filter>,
    user_id: i64,
    role: Role,
    /// Shared with the stream's link to a shard.
    session_id: Arc<str>,
    /// When the session expires unless renewed (ms since the epoch).
    expires_at_ms: i64,
    checked_epoch: u64,
    permit: StreamPermit,
}

/// The instant `at_ms` (ms since the epoch) falls on, bounded so a far date cannot overflow.
fn instant_of(at_ms: i64) -> Instant {
    const MAX_WAIT_MS: i64 = 30 * 24 * 3600 * 1000;
    let left = (at_ms - now_ms()).clamp(0, MAX_WAIT_MS);
    Instant::now() + Duration::from_millis(left as u64)
}

enum Verdict {
    /// Until the session's expiry (ms).
    Allowed(i64),
    Denied,
    /// The database could not tell.
    Unknown,
}

enum Next {
    Send(Bytes),
    /// Fell behind the channel: send what was already taken, then read the database.
    CatchUp(Bytes),
    /// Control messages may have been lost: send what was taken, then re-check the session.
    Recheck(Bytes),
    /// The session's known expiry came: end unless it was renewed meanwhile.
    Expiry,
    /// A session check finished.
    Checked(Verdict),
    End,
}

impl StreamCtx {
    fn run(
        self: Box<Self>,
        last_id: Option<i64>,
        direct: Option<DirectWire>,
    ) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send {
        async_stream::stream! {
            let this = self;
            let _permit = &this.permit;
            let hub = this.hub.clone();
            // A stream that carries only some events is woken only by those (gate.rs); its gate
            // exists before it subscribes, so whatever its receiver holds has opened the gate.
            let gate = (!this.filter.takes_everything()).then(|| Gate::new(&hub.gates, this.filter.clone()));
            // Subscribe before reading the database, so nothing committed in between is missed.
            let rx = hub.subscribe();
            let newest = match last_id {
                Some(_) => Box::pin(this.newest_id()).await,
                None => hub.last_id(),
            };
            // An id from the future (a reset database) would hide live events: clamp it.
            let mut cursor = last_id.map_or(newest, |id| id.min(newest));
            // Subscribed now, so a sign-out from here on reaches this stream; one announced
            // between the check of the request and the subscription would be lost: checked
            // again if any came meanwhile, and always by a replay (a reconnect, as after a
            // sign-out elsewhere).
            let announced = hub.passes.epoch() != this.checked_epoch;
            if (announced || last_id.is_some()) && !Box::pin(this.still_authorized()).await {
                return;
            }
            yield Ok(connected_frame(now_ms()));
            if last_id.is_some_and(|id| newest.saturating_sub(id) > this.pace.max_replay) {
                // Too far behind to replay: the page reloads its data and follows from here.
                hub.stats.resyncs.inc();
                cursor = newest;
                yield Ok(resync_frame(newest, now_ms()));
            } else if last_id.is_some() {
                hub.stats.replays.inc();
                loop {
                    match Box::pin(this.replay_page(&mut cursor)).await {
                        Ok(Some(chunk)) => yield Ok(chunk),
                        Ok(None) => break,
                        Err(()) => return,
                    }
                }
            }
            // The next keepalive and the session's expiry share one timer (set to the earlier
            // of the two that counts): an idle stream holds one timer entry, none boxed.
            let period = this.pace.keepalive;
            let mut keepalive_at = Instant::now() + period;
            let mut expiry_at = instant_of(this.expires_at_ms);
            let timer = tokio::time::sleep_until(keepalive_at.min(expiry_at));
            tokio::pin!(timer);
            // Shutdown arrives on `rx` (HubMessage::Shutdown); this covers having missed it.
            if hub.is_closed() {
                return;
            }
            // Store reads are boxed (above and in this loop): held inline, the largest would size
            // every idle stream's state. A session check runs beside the stream, so keepalives and events go on while the
            // database is slow or away; a recheck asked for during one runs after it.
            let mut check: Option<futures_util::future::BoxFuture<'_, Verdict>> = None;
            let mut check_again = false;
            // Served by the server's own transport: once caught up, a shard thread writes the
            // events (direct.rs) and this task sleeps until called, holding no receiver.
            let link = direct.and_then(|wire| {
                let shards = hub.direct.get()?;
                shards.link(wire, this.filter.clone(), this.session_id.clone(), this.user_id, &hub.stats.direct_now)
            });
            let mut rx = Some(rx);
            let mut direct = false;
            loop {
                if let (false, Some(l), Some(r)) = (direct, link.as_ref(), rx.as_ref()) {
                    if l.enter(r, cursor) {
                        direct = true;
                        // Dropped while it holds nothing unread (a receiver left unread would
                        // walk the whole channel when dropped).
                        rx = None;
                    } else if let Some(gate) = &gate {
                        // Unread messages its gate was not opened for: read them now, then
                        // hand the stream over.
                        gate.reopen();
                    }
                }
                // The expiry does not count while a session check runs (its verdict moves it).
                let due = match check {
                    None => keepalive_at.min(expiry_at),
                    Some(_) => keepalive_at,
                };
                if timer.deadline() != due {
                    timer.as_mut().reset(due);
                }
                let expiry_first = due < keepalive_at;
                let next = tokio::select! {
                    biased;
                    verdict = async { check.as_mut().expect("guarded").await }, if check.is_some() => {
                        Next::Checked(verdict)
                    }
                    woken = woken(link.as_ref(), direct, rx.as_mut(), gate.as_ref()) => match woken {
                        Woken::Called => match link.as_ref().map(Link::answer) {
                            Some(Called::TakeBack { cursor: at, pending }) => {
                                // Subscribed before reading the database, as at the start.
                                direct = false;
                                cursor = at;
                                rx = Some(hub.subscribe());
                                Next::CatchUp(pending)
                            }
                            Some(Called::Recheck) => Next::Recheck(Bytes::new()),
                            Some(Called::Nothing) => Next::Send(Bytes::new()),
                            Some(Called::End) | None => Next::End,
                        },
                        Woken::Message(msg) => match (msg, rx.as_mut()) {
                            (Some(msg), Some(rx)) => this.on_message(msg, rx, &mut cursor),
                            _ => Next::Send(Bytes::new()),
                        },
                    },
                    flushed = flush(link.as_ref()), if direct && link.as_ref().is_some_and(Link::has_pending) => {
                        match flushed {
                            Ok(()) => Next::Send(Bytes::new()),
                            Err(_) => Next::End,
                        }
                    }
                    () = &mut timer => if expiry_first {
                        Next::Expiry
                    } else {
                        // Missed beats are skipped, not sent in a burst.
                        keepalive_at = Instant::now() + period;
                        match link.as_ref().filter(|_| direct) {
                            Some(link) if link.send_own(&keepalive_frame(now_ms())) => {
                                hub.stats.frames_sent.inc();
                                Next::Send(Bytes::new())
                            }
                            Some(_) => Next::End,
                            None => Next::Send(keepalive_frame(now_ms())),
                        }
                    },
                };
                match next {
                    Next::Send(bytes) if bytes.is_empty() => {}
                    Next::Send(bytes) => {
                        hub.stats.frames_sent.inc();
                        // A batch may stop at its size limit with more queued.
                        if let Some(gate) = &gate {
                            gate.reopen();
                        }
                        yield Ok(bytes);
                    }
                    Next::CatchUp(pending) => {
                        if !pending.is_empty() {
                            yield Ok(pending);
                        }
                        hub.stats.lagged.inc();
                        let _lagging = Lagging::start(&hub.stats.lagging_now);
                        // Control messages can be lost in a lag: re-check the session before
                        // every page, so a sign-out during a long catch-up still ends it.
                        let mut failed = false;
                        while !failed {
                            // The shutdown message may have been among those missed.
                            if hub.is_closed() || !Box::pin(this.still_authorized()).await {
                                failed = true;
                                break;
                            }
                            match Box::pin(this.replay_page(&mut cursor)).await {
                                Ok(Some(chunk)) => yield Ok(chunk),
                                Ok(None) => break,
                                Err(()) => failed = true,
                            }
                        }
                        if failed {
                            // The browser reconnects and replays from its Last-Event-ID.
                            return;
                        }
                        // Whatever queued on the channel during the catch-up is read next.
                        if let Some(gate) = &gate {
                            gate.reopen();
                        }
                    }
                    Next::Recheck(pending) => {
                        if !pending.is_empty() {
                            yield Ok(pending);
                        }
                        // A check already running may have read what the recheck is about
                        // before it changed: one more after it.
                        match check {
                            Some(_) => check_again = true,
                            None => check = Some(Box::pin(this.verdict())),
                        }
                        if let Some(gate) = &gate {
                            gate.reopen();
                        }
                    }
                    Next::Expiry => check = Some(Box::pin(this.verdict())),
                    Next::Checked(verdict) => {
                        check = None;
                        match verdict {
                            // Renewed by a request since: follow the new expiry.
                            Verdict::Allowed(at) => {
                                expiry_at = instant_of(at);
                                if std::mem::take(&mut check_again) {
                                    check = Some(Box::pin(this.verdict()));
                                }
                            }
                            Verdict::Denied => return,
                            // The database could not tell: ask again soon, not never.
                            Verdict::Unknown => {
                                check_again = false;
                                expiry_at = Instant::now() + Duration::from_secs(1);
                            }
                        }
                    }
                    Next::End => return,
                }
            }
        }
    }

    /// Handles one hub message and drains whatever else is queued, into one write.
    fn on_message(
        &self,
        first: Result<HubMessage, RecvError>,
        rx: &mut tokio::sync::broadcast::Receiver<HubMessage>,
        cursor: &mut i64,
    ) -> Next {
        let mut buf = Batch::default();
        let mut msg = first;
        loop {
            match msg {
                Ok(HubMessage::Event(frame)) => self.take(&frame, cursor, &mut buf),
                Ok(HubMessage::EndSession(id)) if *id == *self.session_id => return Next::End,
                Ok(HubMessage::EndUser(id)) if id == self.user_id => return Next::End,
                Ok(HubMessage::Recheck) => return Next::Recheck(buf.finish()),
                Ok(HubMessage::Shutdown) => return Next::End,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => return Next::CatchUp(buf.finish()),
                Err(RecvError::Closed) => return Next::End,
            }
            if buf.len() >= COALESCE_BYTES {
                break;
            }
            msg = match queued(rx) {
                Some(m) => m,
                None => break,
            };
        }
        Next::Send(buf.finish())
    }

    fn take(&self, frame: &Arc<Frame>, cursor: &mut i64, buf: &mut Batch) {
        if frame.id <= *cursor {
            return;
        }
        *cursor = frame.id;
        if self.filter.allows(frame.device_id, frame.site_id) {
            buf.push(&frame.bytes);
        }
    }

    /// A read of the event log or the sessions, through one of the hub's replay slots; an
    /// unavailable database is retried with backoff for up to `RETRY_FOR`, other errors are not.
    async fn read<T, F, Fut>(&self, what: &'static str, op: F) -> StoreResult<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = StoreResult<T>>,
    {
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            let result = {
                // The semaphore is never closed.
                let _slot = self.hub.replay_slots.acquire().await;
                op().await
            };
            match result {
                Err(e)
                    if e.is_unavailable()
                        && started.elapsed() + pause < RETRY_FOR
                        && !self.hub.is_closed() =>
                {
                    tracing::debug!(error = %e, what, "database busy; a stream retries");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }

    /// Sends the next page of stored events after the cursor; `None` when caught up.
    async fn replay_page(&self, cursor: &mut i64) -> Result<Option<Bytes>, ()> {
        let scope = &self.filter.scope;
        let after = *cursor;
        let rows = self
            .hub
            .shared
            .events
            .read((after, scope.clone()), || async {
                let page = self.read("replay", || {
                    self.store.events_after(after, i64::MAX, scope, REPLAY_PAGE)
                });
                page.await.map(Arc::new).map_err(Arc::new)
            })
            .await
            .map_err(|e| tracing::warn!(error = %e, "replay failed; ending the stream"))?;
        let Some(last) = rows.last() else {
            return Ok(None);
        };
        *cursor = last.id;
        let mut buf = BytesMut::new();
        let mut sent = 0u64;
        for row in rows
            .iter()
            .filter(|r| self.filter.allows(r.device_id, r.site_id))
        {
            buf.extend_from_slice(&encode_frame(row.id, &row.json));
            sent += 1;
        }
        self.hub.stats.replayed_events.inc_by(sent);
        Ok(Some(buf.freeze()))
    }

    /// The newest stored event id (the hub may trail the log briefly on PostgreSQL). If the log
    /// cannot be read, the hub's: never an id past the log's, which would skip what comes next.
    async fn newest_id(&self) -> i64 {
        let stored = self
            .hub
            .shared
            .newest
            .read((), || async {
                let newest = self.read("newest id", || self.store.max_event_id());
                newest.await.map_err(Arc::new)
            })
            .await;
        if let Err(e) = &stored {
            tracing::warn!(error = %e, "could not read the newest event id; using the hub's");
        }
        stored.unwrap_or(0).max(self.hub.last_id())
    }

    /// Whether the stream may go on: its session still exists (and until when) and its user's
    /// role and sites are those it began with.
    async fn verdict(&self) -> Verdict {
        let expiry = self.store.session_expiry(&self.session_id).await;
        let at = match expiry {
            Ok(Some(at)) => at,
            Ok(None) => return Verdict::Denied,
            Err(e) => {
                tracing::warn!(error = %e, "could not re-check a stream's session");
                return Verdict::Unknown;
            }
        };
        match self.store.user(self.user_id).await {
            Ok(Some(user)) if user.role == self.role && user.scope() == self.filter.scope => {
                Verdict::Allowed(at)
            }
            Ok(_) => Verdict::Denied,
            Err(_) => Verdict::Unknown,
        }
    }

    /// The session still exists and the user's role and sites are those the stream began with
    /// (a database that stays unavailable past `RETRY_FOR` counts as no).
    async fn still_authorized(&self) -> bool {
        let shared = &self.hub.shared;
        let active = shared.sessions.read(self.session_id.to_string(), || async {
            let active = self.read("session", || self.store.session_active(&self.session_id));
            active.await.map_err(Arc::new)
        });
        if !matches!(active.await, Ok(true)) {
            return false;
        }
        let user = shared.users.read(self.user_id, || async {
            let user = self.read("user", || self.store.user(self.user_id));
            user.await.map(|u| u.map(Arc::new)).map_err(Arc::new)
        });
        match user.await {
            Ok(Some(user)) => user.role == self.role && user.scope() == self.filter.scope,
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(error = %e, "could not re-check a stream's user; ending it");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_frame_is_not_copied_and_several_are_joined_in_order() {
        let (a, b) = (
            Bytes::from_static(b"id: 1\n\n"),
            Bytes::from_static(b"id: 2\n\n"),
        );
        let mut one = Batch::default();
        one.push(&a);
        assert_eq!(one.len(), a.len());
        assert_eq!(one.finish().as_ptr(), a.as_ptr(), "shared, not copied");
        let mut two = Batch::default();
        two.push(&a);
        two.push(&b);
        two.push(&a);
        assert_eq!(two.len(), 3 * a.len());
        assert_eq!(&two.finish()[..], b"id: 1\n\nid: 2\n\nid: 1\n\n");
        assert!(Batch::default().finish().is_empty());
    }
}

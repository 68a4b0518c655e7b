//! The listener: one accept loop in front of hyper.
//!
//! Where: connections are accepted and sniffed on the streams runtime. One whose first request
//! is a complete, bodiless `GET /api/realtime` (the sniffer reads just enough of it to tell)
//! stays there, on the thread that accepted it, and is served by the stream transport: `raw`
//! (the default) writes the response head, then the shared frame buffers straight to the
//! socket, close-delimited; `hyper` (`--stream-transport hyper`) serves the same connection
//! through hyper instead, for A/B runs and as a fallback. Everything else moves to hyper on the
//! main runtime, with the bytes already read put back in front: heads the sniffer does not
//! take (a body, odd headers, too large) and stream requests on a reused keep-alive connection
//! (as a pooling proxy sends some) among them.
//!
//! Why: a stream is held for hours and mostly idle, so it should cost a socket and its state,
//! not hyper's per-connection buffers; a reconnect storm opens thousands a second, so each
//! should be registered with one reactor and handled by one thread, not handed between two;
//! and fanning an event out to many thousands of streams must never starve the webhooks that
//! produce the events (they are served on the other runtime).
//!
//! On every connection, both ways: a slot under `--max-connections` (over it: 503 at once), one
//! deadline for the first request head (sniffer and hyper together), a body and a total deadline
//! per request, and a write deadline (`--stall-secs`) for a client that reads nothing.

mod fd_table;
mod limits;
mod nodelay;
mod raw;
#[doc(hidden)]
pub mod sniff;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::web::state::{AppState, Settings, StreamTransport};
use limits::{BodyDeadline, Slot, Slots, WriteDeadline};
use nodelay::NoDelay;
use sniff::{Prefixed, Sniffed};

/// Serves until `state.shutdown` is cancelled, then ends every stream, lets in-flight requests
/// finish, and returns within `grace` even if a client does not let go.
///
/// With a streams runtime, connections are accepted and sniffed there: a stream (most
/// connections in a reconnect storm) is then served on the thread that accepted it, its socket
/// registered once, and only other connections move to the caller's runtime.
pub async fn serve(state: AppState, listener: TcpListener, grace: Duration) -> io::Result<()> {
    let store = state.store.clone();
    let slots = fd_table::grow(&listener, state.settings.max_connections);
    tracing::debug!(slots, "file table grown");
    let streams = StreamRuntime::start(state.settings.stream_threads)?;
    let result = match streams.handle() {
        None => accept_loop(state, listener, grace, None).await,
        Some(handle) => {
            let listener = listener.into_std().and_then(|l| {
                let _inside = handle.enter();
                TcpListener::from_std(l)
            })?;
            let accepting = accept_loop(state, listener, grace, Some(Handle::current()));
            match handle.spawn(accepting).await {
                Ok(result) => result,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => Err(io::Error::other(e)),
            }
        }
    };
    drop(streams);
    store.close().await;
    result
}

/// Accepts until shutdown, then waits (at most `grace`) for the connections to end. `http` is
/// the runtime hyper serves on, when it is not this one.
async fn accept_loop(
    state: AppState,
    listener: TcpListener,
    grace: Duration,
    http: Option<Handle>,
) -> io::Result<()> {
    let shutdown = state.shutdown.clone();
    let limits = Limits::from(&*state.settings);
    let metrics = state.metrics.clone();
    let slots = Slots::new(
        state.settings.max_connections,
        metrics.connections.clone(),
        metrics.connections_refused.clone(),
    );
    let app = crate::web::router(state.clone());
    let tracker = TaskTracker::new();
    let mut nodelay = NoDelay::on_listener(&listener);
    loop {
        let (sock, addr) = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    accept_failed(e, &shutdown).await;
                    continue;
                }
            },
        };
        let Some(slot) = slots.take() else {
            limits::refuse(&sock);
            continue;
        };
        nodelay.accepted(&sock);
        let conn = Connection {
            app: app.clone(),
            state: state.clone(),
            addr,
            http: http.clone(),
            tracker: tracker.clone(),
            shutdown: shutdown.clone(),
            limits,
            stalls: metrics.stalled_clients.clone(),
            _slot: slot,
        };
        tracker.spawn(conn.run(sock));
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            ?grace,
            "connections still open after the grace period; closing anyway"
        );
    }
    Ok(())
}

/// Out of file descriptors and the like: wait a moment rather than spin.
async fn accept_failed(e: io::Error, shutdown: &CancellationToken) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; retrying in 1 s");
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        _ = shutdown.cancelled() => {}
    }
}

/// The deadlines and the stream transport, copied out of the settings once.
#[derive(Debug, Clone, Copy)]
struct Limits {
    head: Duration,
    body: Duration,
    request: Duration,
    stall: Duration,
    transport: StreamTransport,
}

impl From<&Settings> for Limits {
    fn from(s: &Settings) -> Limits {
        Limits {
            head: s.head_timeout,
            body: s.body_timeout,
            request: s.request_timeout,
            stall: s.stall,
            transport: s.stream_transport,
        }
    }
}

struct Connection {
    app: Router,
    /// For a stream answered from its pass without the router (`raw::answer`).
    state: AppState,
    addr: SocketAddr,
    /// Where everything but a stream is served, if not on this runtime.
    http: Option<Handle>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    limits: Limits,
    stalls: Counter,
    _slot: Slot,
}

impl Connection {
    async fn run(self, mut sock: TcpStream) {
        let head_by = Instant::now() + self.limits.head;
        let sniffed = tokio::select! {
            sniffed = sniff::sniff(&mut sock, self.addr, head_by) => sniffed,
            _ = self.shutdown.cancelled() => return,
        };
        match sniffed {
            Sniffed::Stream(request, read) => self.stream(sock, request, read, head_by),
            Sniffed::Other(read) => self.elsewhere(sock, read, head_by).await,
            // Dropped, as hyper drops a connection whose head is late.
            Sniffed::Late => {}
        }
    }

    /// Serves a stream on this runtime, in a task of its own that holds only what the stream
    /// needs for its life (its size is every idle stream's cost); this one ends here.
    fn stream(self, sock: TcpStream, request: Box<Request<Body>>, read: Bytes, head_by: Instant) {
        let tracker = self.tracker.clone();
        match self.limits.transport {
            StreamTransport::Raw => {
                let Connection {
                    app,
                    state,
                    limits,
                    stalls,
                    _slot,
                    ..
                } = self;
                let sock = WriteDeadline::new(raw::Shared::new(sock), limits.stall, stalls);
                let serving = raw::serve(sock, request, app, state, limits.request, _slot);
                tracker.spawn(serving);
            }
            StreamTransport::Hyper => {
                tracker.spawn(Box::pin(self.http(Prefixed::new(read, sock), head_by)));
            }
        }
    }

    /// Moves anything else to hyper's runtime (its socket to that runtime's reactor).
    async fn elsewhere(self, sock: TcpStream, read: Bytes, head_by: Instant) {
        let tracker = self.tracker.clone();
        let Some(handle) = self.http.clone() else {
            // Already on hyper's runtime: served by this task (boxed, so the task stays small).
            return Box::pin(self.http(Prefixed::new(read, sock), head_by)).await;
        };
        // Registered with that runtime's reactor, here, with its context entered.
        let sock = sock.into_std().and_then(|sock| {
            let _inside = handle.enter();
            TcpStream::from_std(sock)
        });
        match sock {
            Ok(sock) => {
                let serving = Box::pin(self.http(Prefixed::new(read, sock), head_by));
                tracker.spawn_on(serving, &handle);
            }
            Err(e) => tracing::debug!(error = %e, "could not hand a connection over"),
        }
    }

    /// Serves a connection through hyper; its first head must be in by `head_by`.
    async fn http<I>(self, io: I, head_by: Instant)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            app,
            addr,
            shutdown,
            limits,
            stalls,
            _slot,
            ..
        } = self;
        let started = Arc::new(AtomicBool::new(false));
        let service = {
            let started = started.clone();
            hyper::service::service_fn(move |request| {
                started.store(true, Ordering::Relaxed);
                respond(app.clone(), addr, limits, request)
            })
        };
        let io = WriteDeadline::new(io, limits.stall, stalls);
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.head)
            .serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        // Hyper's header timer starts afresh; the time the sniffer waited counts too.
        let first_head = tokio::time::sleep_until(head_by);
        tokio::pin!(first_head);
        let (mut first_pending, mut closing) = (true, false);
        let result = loop {
            tokio::select! {
                result = conn.as_mut() => break result,
                _ = &mut first_head, if first_pending => {
                    if !started.load(Ordering::Relaxed) {
                        return;
                    }
                    first_pending = false;
                }
                _ = shutdown.cancelled(), if !closing => {
                    // Idle connections close now; a request under way is answered first.
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}

/// One request through the router, within its body and total deadlines.
async fn respond(
    app: Router,
    addr: SocketAddr,
    limits: Limits,
    request: Request<Incoming>,
) -> Result<Response, Infallible> {
    let api = request.uri().path().starts_with("/api/");
    let (mut parts, body) = request.into_parts();
    // Sign-in throttling keys on the peer (or, from a local proxy, its header).
    parts.extensions.insert(ConnectInfo(addr));
    let (body, arrival) = BodyDeadline::new(body, limits.body);
    let request = Request::from_parts(parts, Body::new(body));
    // Until the response head: a stream's body then goes on as long as it lives.
    let answered = match tokio::time::timeout(limits.request, app.oneshot(request)).await {
        Ok(Ok(response)) => Some(response),
        Ok(Err(never)) => match never {},
        Err(_) => None,
    };
    Ok(match answered {
        Some(response) if !arrival.late() => response,
        None if !arrival.incomplete() => limits::answer_too_slow(api),
        _ => limits::body_too_slow(api),
    })
}

/// The runtime event streams live on; shut down without blocking, wherever it is dropped.
struct StreamRuntime(Option<tokio::runtime::Runtime>);

impl StreamRuntime {
    fn start(threads: usize) -> io::Result<StreamRuntime> {
        if threads == 0 {
            return Ok(StreamRuntime(None));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("sensorcast-streams")
            .enable_all()
            .build()?;
        Ok(StreamRuntime(Some(runtime)))
    }

    fn handle(&self) -> Option<Handle> {
        self.0.as_ref().map(|rt| rt.handle().clone())
    }
}

impl Drop for StreamRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

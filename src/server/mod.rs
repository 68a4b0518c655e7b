//! The listener: one accept loop; event streams on their own runtime without hyper, everything
//! else through hyper on the main one.
//!
//! Why: a stream is held for hours and mostly idle, so it should cost a socket and its state,
//! not hyper's per-connection buffers; and fanning an event out to many thousands of streams
//! must never starve the webhooks that produce the events.

mod raw;
mod sniff;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::web::state::AppState;
use sniff::{Prefixed, Sniffed};

/// Longest a client may take to send a request head; also how long an idle keep-alive
/// connection stays open (a proxy's upstream keep-alive must be shorter: deploy/nginx.conf).
const HEAD_PATIENCE: Duration = Duration::from_secs(30);

/// Serves until `state.shutdown` is cancelled, then ends every stream, lets in-flight requests
/// finish, and returns within `grace` even if a client does not let go.
pub async fn serve(state: AppState, listener: TcpListener, grace: Duration) -> io::Result<()> {
    let shutdown = state.shutdown.clone();
    let store = state.store.clone();
    let streams = StreamRuntime::start(state.settings.stream_threads)?;
    let app = crate::web::router(state);
    let tracker = TaskTracker::new();
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
        // Frames are small and must leave at once, not wait for the previous one's ACK.
        let _ = sock.set_nodelay(true);
        let conn = Connection {
            app: app.clone(),
            addr,
            streams: streams.handle(),
            tracker: tracker.clone(),
            shutdown: shutdown.clone(),
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
    drop(streams);
    store.close().await;
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

struct Connection {
    app: Router,
    addr: SocketAddr,
    streams: Option<Handle>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Connection {
    async fn run(self, mut sock: TcpStream) {
        let sniffed = tokio::select! {
            sniffed = sniff::sniff(&mut sock, self.addr, HEAD_PATIENCE) => sniffed,
            _ = self.shutdown.cancelled() => return,
        };
        match sniffed {
            Sniffed::Stream(request) => self.stream(sock, *request).await,
            Sniffed::Other(read) => self.http(Prefixed::new(read, sock)).await,
        }
    }

    /// Moves the socket to the streams runtime (its own reactor) and serves it there.
    async fn stream(self, sock: TcpStream, request: Request<Body>) {
        let Some(handle) = self.streams else {
            return raw::serve(sock, request, self.app).await;
        };
        let sock = match sock.into_std() {
            Ok(sock) => sock,
            Err(e) => return tracing::debug!(error = %e, "could not hand a stream over"),
        };
        let app = self.app;
        self.tracker.spawn_on(
            async move {
                match TcpStream::from_std(sock) {
                    Ok(sock) => raw::serve(sock, request, app).await,
                    Err(e) => tracing::debug!(error = %e, "could not take a stream over"),
                }
            },
            &handle,
        );
    }

    async fn http(self, io: Prefixed) {
        let (app, addr) = (self.app, self.addr);
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            // Sign-in throttling keys on the peer (or, from a local proxy, its header).
            request.extensions_mut().insert(ConnectInfo(addr));
            app.clone().oneshot(request.map(Body::new))
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEAD_PATIENCE)
            .serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let result = tokio::select! {
            result = conn.as_mut() => result,
            _ = self.shutdown.cancelled() => {
                // Idle connections close now; a request under way is answered first.
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
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

//! What one connection may cost: a slot under `--max-connections`, a deadline on each request
//! body, and one on each write, so that a client that reads nothing is let go.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// At most one "limit reached" line per this many milliseconds.
const WARN_EVERY_MS: u64 = 10_000;

/// Open connections under a cap (0: none).
pub struct Slots {
    max: usize,
    open: Gauge,
    refused: Counter,
    since: std::time::Instant,
    /// Milliseconds after `since` of the last warning, plus one (0: never warned).
    warned: AtomicU64,
}

/// One open connection; its slot is given back on drop, however the connection ends.
pub struct Slot(Arc<Slots>);

impl Slots {
    pub fn new(max: usize, open: Gauge, refused: Counter) -> Arc<Slots> {
        Arc::new(Slots {
            max,
            open,
            refused,
            since: std::time::Instant::now(),
            warned: AtomicU64::new(0),
        })
    }

    /// A slot, or `None` (counted and logged) when all are taken.
    pub fn take(self: &Arc<Self>) -> Option<Slot> {
        let before = self.open.inc();
        if self.max != 0 && usize::try_from(before).unwrap_or(0) >= self.max {
            self.open.dec();
            self.refused.inc();
            self.warn();
            return None;
        }
        Some(Slot(self.clone()))
    }

    fn warn(&self) {
        let now = self.since.elapsed().as_millis() as u64 + 1;
        let last = self.warned.load(Ordering::Relaxed);
        if last != 0 && now < last + WARN_EVERY_MS {
            return;
        }
        if self
            .warned
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            tracing::warn!(
                max_connections = self.max,
                refused_so_far = self.refused.get(),
                "connection limit reached: new connections are answered 503 (--max-connections)"
            );
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.dec();
    }
}

/// Answers a connection over the cap without reading it or giving it a task: the answer fits
/// in the empty send buffer of a new socket, so one non-blocking write sends it.
pub fn refuse(sock: &TcpStream) {
    static ANSWER: LazyLock<Vec<u8>> = LazyLock::new(|| {
        let body = r#"{"error":"too_many_connections","message":"The server holds as many connections as it allows; retry shortly."}"#;
        format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
             retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    });
    let _ = sock.try_write(&ANSWER);
}

/// An error answer made here, outside the router (JSON on `/api/*`, as everywhere there).
pub fn answer(status: StatusCode, code: &str, message: &str, api: bool) -> Response {
    let (content_type, body) = if api {
        let json = serde_json::json!({ "error": code, "message": message });
        ("application/json", json.to_string())
    } else {
        ("text/plain; charset=utf-8", message.to_string())
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if status == StatusCode::REQUEST_TIMEOUT {
        // The rest of the body may still be on its way: this connection cannot be reused.
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

pub fn body_too_slow(api: bool) -> Response {
    answer(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        "The request did not arrive in time.",
        api,
    )
}

pub fn answer_too_slow(api: bool) -> Response {
    answer(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "The server took too long to answer; retry.",
        api,
    )
}

const READING: u8 = 0;
const DONE: u8 = 1;
const LATE: u8 = 2;

/// Whether a request body arrived: shared between the body and whoever answers the request.
#[derive(Clone)]
pub struct Arrival(Option<Arc<AtomicU8>>);

impl Arrival {
    /// The body was still being read when its deadline passed.
    pub fn late(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed) == LATE)
    }

    /// Some of the body has not arrived (or was never asked for).
    pub fn incomplete(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed) != DONE)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

/// A request body that must have arrived by a deadline; past it, reading it fails.
pub struct BodyDeadline {
    inner: Incoming,
    /// `None` for an empty body (most requests): nothing to wait for.
    timer: Option<Pin<Box<Sleep>>>,
    arrival: Arrival,
}

impl BodyDeadline {
    pub fn new(inner: Incoming, patience: Duration) -> (BodyDeadline, Arrival) {
        let arrival = Arrival((!inner.is_end_stream()).then(|| Arc::new(AtomicU8::new(READING))));
        let timer = arrival
            .0
            .is_some()
            .then(|| Box::pin(tokio::time::sleep(patience)));
        let body = BodyDeadline {
            inner,
            timer,
            arrival: arrival.clone(),
        };
        (body, arrival)
    }

    fn mark(&self, state: u8) {
        if let Some(s) = &self.arrival.0 {
            s.store(state, Ordering::Relaxed);
        }
    }
}

impl HttpBody for BodyDeadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.mark(DONE);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                if this.inner.is_end_stream() {
                    this.mark(DONE);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Pending => {
                if let Some(timer) = &mut this.timer {
                    ready!(timer.as_mut().poll(cx));
                    this.mark(LATE);
                    return Poll::Ready(Some(Err(BodyTimedOut.into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection whose writes fail once one has made no progress for `patience`: the client
/// has read nothing for that long and the socket's buffers are full. A client that reads, however
/// slowly, makes room now and then and is not cut off.
pub struct WriteDeadline<T> {
    inner: T,
    patience: Duration,
    /// Reused from one blocked write to the next; created the first time a write blocks.
    timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
    stalled: bool,
    stalls: Counter,
}

impl<T> WriteDeadline<T> {
    pub fn new(inner: T, patience: Duration, stalls: Counter) -> Self {
        WriteDeadline {
            inner,
            patience,
            timer: None,
            waiting: false,
            stalled: false,
            stalls,
        }
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// How long a write may wait for the client to read.
    pub fn patience(&self) -> Duration {
        self.patience
    }

    pub fn stalls(&self) -> &Counter {
        &self.stalls
    }

    /// Passes a write's progress on; a write that is pending starts (or goes on) waiting.
    fn watch<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if polled.is_ready() {
            self.waiting = false;
            return polled;
        }
        if !self.waiting {
            self.waiting = true;
            let deadline = Instant::now() + self.patience;
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        if let Some(timer) = &mut self.timer {
            ready!(timer.as_mut().poll(cx));
        }
        self.stalled = true;
        self.stalls.inc();
        Poll::Ready(Err(stalled()))
    }
}

fn stalled() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the client read nothing for --stall-secs",
    )
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.stalled {
            return Poll::Ready(Err(stalled()));
        }
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.stalled {
            return Poll::Ready(Err(stalled()));
        }
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.stalled {
            return Poll::Ready(Err(stalled()));
        }
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn slots_hold_the_cap_and_come_back() {
        let (open, refused) = (Gauge::default(), Counter::default());
        let slots = Slots::new(2, open.clone(), refused.clone());
        let a = slots.take().expect("first");
        let _b = slots.take().expect("second");
        assert!(slots.take().is_none());
        assert!(slots.take().is_none());
        assert_eq!((open.get(), refused.get()), (2, 2));
        drop(a);
        assert_eq!(open.get(), 1);
        assert!(slots.take().is_some());
        let unlimited = Slots::new(0, Gauge::default(), Counter::default());
        let many: Vec<_> = (0..100).filter_map(|_| unlimited.take()).collect();
        assert_eq!(many.len(), 100);
    }

    #[tokio::test]
    async fn a_write_nobody_reads_fails_after_the_patience() {
        let (near, _far) = tokio::io::duplex(64);
        let stalls = Counter::default();
        let mut io = WriteDeadline::new(near, Duration::from_millis(200), stalls.clone());
        let started = std::time::Instant::now();
        let err = io.write_all(&[7u8; 1024]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert!(io.write_all(b"x").await.is_err(), "stays failed");
        assert_eq!(stalls.get(), 1, "counted once");
    }

    #[tokio::test]
    async fn a_slow_reader_is_not_cut_off() {
        let (near, mut far) = tokio::io::duplex(64);
        let stalls = Counter::default();
        let mut io = WriteDeadline::new(near, Duration::from_millis(200), stalls.clone());
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            while got.len() < 1024 {
                tokio::time::sleep(Duration::from_millis(30)).await;
                let n = far.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            got
        });
        let started = std::time::Instant::now();
        io.write_all(&[7u8; 1024]).await.expect("written, slowly");
        assert!(
            started.elapsed() > Duration::from_millis(200),
            "longer than the patience in all"
        );
        assert_eq!(reader.await.unwrap(), vec![7u8; 1024]);
        assert_eq!(stalls.get(), 0);
    }
}

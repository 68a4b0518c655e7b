//! Serves one event-stream request on a bare socket.
//!
//! The request goes through the same router as every other (sessions, limits, metrics, headers);
//! only the bytes on the wire are ours: the response head, then each batch of frames written
//! straight from the shared buffers, and `Connection: close` instead of chunked framing. Per
//! idle stream this holds a socket and the stream's state, not hyper's read and write buffers.
//! Every write is under the stall deadline (`WriteDeadline`), the answer under the request one.
//!
//! The socket is shared with the stream engine (`Shared`, handed over with an answer from a
//! pass or a session read, or as a request extension through the router): once a stream is
//! caught up, a shard thread writes its events to the socket itself (`realtime::direct`), and
//! the pump below only waits for the client to leave.

use std::future::Future;
use std::io;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request};
use axum::Router;
use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::BodyExt;
use hyper::body::Frame;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceExt;

use super::limits::{self, Slot, WriteDeadline};
use crate::realtime::direct::{DirectWire, Wire};
use crate::web::realtime::FromPass;
use crate::web::state::AppState;

type Socket = WriteDeadline<Shared>;

/// A stream's socket, written by this task (the head, replays, catch-ups) and by a shard
/// thread (live events), never both at once (`realtime::direct` holds a lock for each write).
pub struct Shared(Arc<TcpStream>);

impl Shared {
    pub fn new(sock: TcpStream) -> Shared {
        Shared(Arc::new(sock))
    }

    /// The socket as the engine writes it.
    fn wire(&self) -> Arc<dyn Wire> {
        self.0.clone()
    }
}

impl Deref for Shared {
    type Target = TcpStream;

    fn deref(&self) -> &TcpStream {
        &self.0
    }
}

impl Wire for TcpStream {
    /// Straight to the socket, past the runtime's readiness (one cache line fewer per event):
    /// a full socket leaves the readiness set, so the task's next `try_write` finds it full
    /// and only then waits.
    fn send(&self, bytes: &[u8]) -> io::Result<usize> {
        // MSG_NOSIGNAL: a reset socket is an error here, never a signal to the process.
        socket2::SockRef::from(self).send_with_flags(bytes, libc::MSG_NOSIGNAL)
    }

    fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        TcpStream::try_write(self, bytes)
    }

    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_write_ready(cx)
    }
}

impl AsyncWrite for Shared {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                done => return Poll::Ready(done),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Sends FIN once the engine has let go of the socket (it has when the stream ended);
    /// otherwise the socket closes when the last holder drops it.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Arc::get_mut(&mut self.get_mut().0) {
            Some(sock) => Pin::new(sock).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

/// Error answers (401, 429, …) are small; anything larger is cut.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Serves the request; `slot` (the connection's place under the cap) is held until the end.
/// The state kept while a stream lives is the socket, the body and the pump: the answer's
/// parts (the router's future, the response head) are done with and freed first.
pub fn serve(
    mut sock: Socket,
    request: Box<Request<Body>>,
    app: Router,
    state: AppState,
    patience: Duration,
    slot: Slot,
) -> impl Future<Output = ()> + Send + 'static {
    // What only the answer needs (the request, the router, the state) lives in its own box,
    // freed once answered: a future's arguments would stay in its state as long as it runs.
    let answering = Box::pin(async move {
        let body = answer(&mut sock, request, app, state, patience).await;
        (sock, body)
    });
    async move {
        let (mut sock, body) = answering.await;
        if let Some(body) = body {
            pump(&mut sock, body).await;
        }
        let _ = sock.shutdown().await;
        drop(slot);
    }
}

/// Answers the request: a whole answer (refusals) is written and `None` returned; a stream's
/// head and first frame are written and its body returned.
async fn answer(
    sock: &mut Socket,
    // Boxed until here: unboxed by the caller, the empty box would live as long as the stream.
    mut request: Box<Request<Body>>,
    app: Router,
    state: AppState,
    patience: Duration,
) -> Option<Body> {
    // The socket, offered to the engine so a shard can write the stream's live events.
    let direct = DirectWire {
        wire: sock.get_ref().wire(),
        stall: sock.patience(),
        stalls: sock.stalls().clone(),
    };
    // A stream with a fresh pass is answered at once; one without, after a read of its session
    // and user; anything else through the router (the socket as a request extension), until
    // the response head, as every other request.
    let response = match crate::web::realtime::answer_from_pass(&state, &request, &direct) {
        FromPass::Answered(response) => response,
        passed => {
            let answering = async {
                // Read from the request before the read: a request is not shared across awaits.
                // Boxed: only a stream without a pass pays for the read's state.
                if let FromPass::NoPass(plain) = passed {
                    let read = crate::web::realtime::answer_from_session(&state, plain, &direct);
                    if let Some(response) = Box::pin(read).await {
                        return response;
                    }
                }
                request.extensions_mut().insert(direct);
                match app.oneshot(*request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            };
            match tokio::time::timeout(patience, answering).await {
                Ok(response) => response,
                Err(_) => limits::answer_too_slow(true),
            }
        }
    };
    drop(state);
    let (parts, mut body) = response.into_parts();
    let streaming = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !streaming {
        let bytes = match http_body_util::Limited::new(body, MAX_ANSWER_BYTES)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(_) => Bytes::new(),
        };
        let mut out = head(&parts, Some(bytes.len()));
        out.extend_from_slice(&bytes);
        let _ = sock.write_all(&out).await;
        return None;
    }
    // The head and the first frame (`connected`, ready at once) in one write.
    let mut out = head(&parts, None);
    if let Some(Some(Ok(frame))) = body.frame().now_or_never() {
        if let Ok(data) = frame.into_data() {
            out.extend_from_slice(&data);
        }
    }
    sock.write_all(&out).await.ok()?;
    Some(body)
}

/// Writes the body's batches as they come until it ends or the client goes away. Only the bytes
/// are held across a write (not the frame they came in): this state is every stream's.
async fn pump(sock: &mut Socket, mut body: Body) {
    loop {
        let data = tokio::select! {
            biased;
            frame = body.frame() => match frame.map(|f| f.map(Frame::into_data)) {
                Some(Ok(Ok(data))) => data,
                Some(Ok(Err(_))) => continue,
                Some(Err(_)) | None => return,
            },
            // A browser sends nothing after its request: readable means it closed (or reset).
            ready = sock.get_ref().readable() => match ready.map(|()| closed(sock.get_ref())) {
                Ok(false) => continue,
                Ok(true) | Err(_) => return,
            },
        };
        if sock.write_all(&data).await.is_err() {
            return;
        }
    }
}

/// Whether a socket the runtime found readable was closed by the client.
fn closed(sock: &TcpStream) -> bool {
    let mut probe = [0u8; 64];
    match sock.try_read(&mut probe) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    }
}

/// Status line and headers; hop-by-hop framing is ours to set.
fn head(parts: &axum::http::response::Parts, length: Option<usize>) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let status = parts.status;
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    write_headers(&mut out, &parts.headers);
    if !parts.headers.contains_key(header::DATE) {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(n) = length {
        out.extend_from_slice(format!("content-length: {n}\r\n").as_bytes());
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out
}

fn write_headers(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        if [
            header::CONNECTION,
            header::TRANSFER_ENCODING,
            header::CONTENT_LENGTH,
        ]
        .contains(name)
            || name.as_str() == "keep-alive"
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{Response, StatusCode};

    #[test]
    fn the_head_sets_its_own_framing() {
        let mut response = Response::new(());
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        h.insert(header::CONTENT_LENGTH, "999".parse().unwrap());
        h.insert(header::CONNECTION, "keep-alive".parse().unwrap());
        let (parts, ()) = response.into_parts();
        let text = String::from_utf8(head(&parts, Some(12))).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
            "{text}"
        );
        assert!(text.contains("content-type: application/json\r\n"));
        assert!(text.contains("content-length: 12\r\n"));
        assert!(!text.contains("999") && !text.contains("keep-alive"));
        assert!(text.contains("\r\ndate: "));
        assert!(text.ends_with("connection: close\r\n\r\n"));
    }
}

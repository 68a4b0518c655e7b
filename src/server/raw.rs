//! Serves one event-stream request on a bare socket.
//!
//! The request goes through the same router as every other (sessions, limits, metrics, headers);
//! only the bytes on the wire are ours: the response head, then each batch of frames written
//! straight from the shared buffers, and `Connection: close` instead of chunked framing. Per
//! idle stream this holds a socket and the stream's state, not hyper's read and write buffers.
//! Every write is under the stall deadline (`WriteDeadline`), the answer under the request one.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request};
use axum::Router;
use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tower::ServiceExt;

use super::limits::{self, Slot, WriteDeadline};
use crate::web::state::AppState;

type Socket = WriteDeadline<TcpStream>;

/// Error answers (401, 429, …) are small; anything larger is cut.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Serves the request; `slot` (the connection's place under the cap) is held until the end.
/// The state kept while a stream lives is the socket, the body and the pump: the answer's
/// parts (the router's future, the response head) are done with and freed first.
pub async fn serve(
    mut sock: Socket,
    request: Box<Request<Body>>,
    app: Router,
    state: AppState,
    patience: Duration,
    slot: Slot,
) {
    if let Some(body) = Box::pin(answer(&mut sock, request, app, state, patience)).await {
        pump(&mut sock, body).await;
    }
    let _ = sock.shutdown().await;
    drop(slot);
}

/// Answers the request: a whole answer (refusals) is written and `None` returned; a stream's
/// head and first frame are written and its body returned.
async fn answer(
    sock: &mut Socket,
    // Boxed until here: unboxed by the caller, the empty box would live as long as the stream.
    request: Box<Request<Body>>,
    app: Router,
    state: AppState,
    patience: Duration,
) -> Option<Body> {
    // A stream with a fresh pass is answered at once; anything else through the router, until
    // the response head, as every other request.
    let response = match crate::web::realtime::answer_from_pass(&state, &request) {
        Some(response) => response,
        None => match tokio::time::timeout(patience, app.oneshot(*request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(never)) => match never {},
            Err(_) => limits::answer_too_slow(true),
        },
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

/// Writes the body's batches as they come until it ends or the client goes away.
async fn pump(sock: &mut Socket, mut body: Body) {
    loop {
        tokio::select! {
            biased;
            frame = body.frame() => match frame {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if sock.write_all(&data).await.is_err() {
                            return;
                        }
                    }
                }
                Some(Err(_)) | None => return,
            },
            // A browser sends nothing after its request: readable means it closed (or reset).
            ready = sock.get_ref().readable() => {
                if ready.is_err() {
                    return;
                }
                let mut probe = [0u8; 64];
                match sock.get_ref().try_read(&mut probe) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
        }
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

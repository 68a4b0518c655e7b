//! Reads just enough of a new connection to tell an event stream from everything else.
//!
//! A connection whose first request is `GET /api/realtime` is served by the stream transport
//! (`raw`: no hyper buffers held for hours); anything else goes to hyper with the bytes already
//! read put back.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderName, HeaderValue, Method, Request, Version};
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

const STREAM_PATH: &[u8] = b"GET /api/realtime";
/// A stream request's head is small; a larger one is left to hyper (which answers 431).
const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

pub enum Sniffed {
    /// A complete, bodiless `GET /api/realtime` request, and its bytes (for hyper to read).
    Stream(Box<Request<Body>>, Bytes),
    /// Anything else: the bytes read so far, to be replayed to hyper.
    Other(Bytes),
    /// Neither by the deadline: the head is late.
    Late,
}

/// Reads the first request's head, or as little of it as it takes to see it is not a stream.
pub async fn sniff(sock: &mut TcpStream, addr: SocketAddr, deadline: Instant) -> Sniffed {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        match classify(&buf, addr) {
            Verdict::Stream(request) => return Sniffed::Stream(request, buf.freeze()),
            Verdict::Other => return Sniffed::Other(buf.freeze()),
            Verdict::NeedMore => {}
        }
        match tokio::time::timeout_at(deadline, sock.read_buf(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            Err(_) => return Sniffed::Late,
            // End of input or an error: hyper sees the same and deals with it.
            _ => return Sniffed::Other(buf.freeze()),
        }
    }
}

/// What the first bytes of a connection say (public for the fuzz target).
pub enum Verdict {
    Stream(Box<Request<Body>>),
    Other,
    NeedMore,
}

/// Total and final: a verdict other than `NeedMore` stays the same whatever bytes follow, so
/// it does not depend on how the head was split into reads.
pub fn classify(buf: &[u8], addr: SocketAddr) -> Verdict {
    let seen = buf.len().min(STREAM_PATH.len());
    if buf[..seen] != STREAM_PATH[..seen] {
        return Verdict::Other;
    }
    if buf.len() > STREAM_PATH.len() && !matches!(buf[STREAM_PATH.len()], b' ' | b'?') {
        return Verdict::Other;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    // The limit is on the head, not on what was read: bytes after a complete head (pipelined)
    // do not change the verdict, so it does not depend on how the reads were split.
    match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => Verdict::Other,
        Ok(httparse::Status::Complete(_)) => match to_request(&parsed, addr) {
            Some(request) => Verdict::Stream(Box::new(request)),
            None => Verdict::Other,
        },
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => Verdict::Other,
        Ok(httparse::Status::Partial) => Verdict::NeedMore,
        Err(_) => Verdict::Other,
    }
}

/// The parsed head as a request for the router; `None` for anything unusual (a body, odd
/// headers), which hyper then handles as it handles every other request.
fn to_request(parsed: &httparse::Request<'_, '_>, addr: SocketAddr) -> Option<Request<Body>> {
    let version = match parsed.version? {
        0 => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(parsed.path?)
        .version(version);
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        if name == axum::http::header::CONTENT_LENGTH
            || name == axum::http::header::TRANSFER_ENCODING
        {
            return None;
        }
        request = request.header(name, HeaderValue::from_bytes(h.value).ok()?);
    }
    request
        .extension(ConnectInfo(addr))
        .body(Body::empty())
        .ok()
}

/// A connection with bytes already read put back in front.
pub struct Prefixed {
    prefix: Bytes,
    inner: TcpStream,
}

impl Prefixed {
    pub fn new(prefix: Bytes, inner: TcpStream) -> Self {
        Prefixed { prefix, inner }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.has_remaining() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "127.0.0.1:9".parse().unwrap()
    }

    fn verdict(head: &str) -> &'static str {
        match classify(head.as_bytes(), addr()) {
            Verdict::Stream(_) => "stream",
            Verdict::Other => "other",
            Verdict::NeedMore => "more",
        }
    }

    #[test]
    fn only_a_complete_bodiless_stream_request_is_taken() {
        assert_eq!(verdict(""), "more");
        assert_eq!(verdict("GET /api/re"), "more");
        assert_eq!(verdict("GET /api/realtime HTTP/1.1\r\nHost: x\r\n"), "more");
        assert_eq!(
            verdict("GET /api/realtime HTTP/1.1\r\nHost: x\r\n\r\n"),
            "stream"
        );
        assert_eq!(
            verdict("GET /api/realtime?devices=a,b HTTP/1.0\r\n\r\n"),
            "stream"
        );
        assert_eq!(verdict("POST /api/realtime HTTP/1.1\r\n\r\n"), "other");
        assert_eq!(verdict("GET /api/realtime/stats HTTP/1.1\r\n\r\n"), "other");
        assert_eq!(verdict("GET /login HTTP/1.1\r\n\r\n"), "other");
        assert_eq!(verdict("HEAD /api/realtime HTTP/1.1\r\n\r\n"), "other");
        assert_eq!(
            verdict("GET /api/realtime HTTP/1.1\r\nContent-Length: 3\r\n\r\n"),
            "other"
        );
        assert_eq!(
            verdict("GET /api/realtime HTTP/1.1\r\nbad\r\n\r\n"),
            "other"
        );
    }

    /// The verdict with the whole request it carries, to compare two verdicts.
    fn summary(buf: &[u8]) -> String {
        match classify(buf, addr()) {
            Verdict::Stream(r) => format!("stream {} {:?} {:?}", r.uri(), r.version(), r.headers()),
            Verdict::Other => "other".into(),
            Verdict::NeedMore => "more".into(),
        }
    }

    #[test]
    fn a_stream_head_followed_by_more_bytes_than_a_head_may_have_is_still_a_stream() {
        let mut buf = b"GET /api/realtime HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        let head = summary(&buf);
        buf.resize(MAX_HEAD + 100, b'x');
        assert_eq!(
            summary(&buf),
            head,
            "pipelined bytes do not change the verdict"
        );
        let mut long = b"GET /api/realtime HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_HEAD + 10, b'a');
        long.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            summary(&long),
            "other",
            "a head longer than MAX_HEAD is hyper's"
        );
        assert_eq!(
            summary(&long[..MAX_HEAD]),
            "other",
            "so is its first MAX_HEAD bytes"
        );
    }

    /// Bytes that look like the start of a stream request, so the cases are not all `other`.
    fn near_stream_heads() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let starts = prop::sample::select(vec![
            "",
            "GET /api/realtime",
            "GET /api/realtime HTTP/1.1\r\n",
            "GET /api/realtime?lastEventId=1 HTTP/1.0\r\nHost: a\r\n",
        ]);
        let tail = prop::collection::vec(
            prop::sample::select(b" ?/=aZ:\r\n0H\x00\xff".to_vec()),
            0..48,
        );
        (starts, tail).prop_map(|(s, t)| [s.as_bytes(), &t].concat())
    }

    proptest::proptest! {
        /// What `sniff` relies on: it decides on each prefix read so far, so a decision must not
        /// change with more bytes, and the same bytes always get the same verdict.
        #[test]
        fn a_verdict_is_deterministic_and_final(
            head in near_stream_heads(),
            more in near_stream_heads(),
            split in 0usize..200,
        ) {
            let all = [head.as_slice(), &more].concat();
            let split = split.min(all.len());
            let first = summary(&all[..split]);
            proptest::prop_assert_eq!(&first, &summary(&all[..split]));
            if first != "more" {
                proptest::prop_assert_eq!(first, summary(&all));
            }
        }
    }

    #[test]
    fn the_request_keeps_query_headers_and_peer() {
        let head =
            "GET /api/realtime?lastEventId=7 HTTP/1.1\r\nCookie: a=b\r\nLast-Event-ID: 9\r\n\r\n";
        let Verdict::Stream(request) = classify(head.as_bytes(), addr()) else {
            panic!("not taken");
        };
        assert_eq!(request.uri().query(), Some("lastEventId=7"));
        assert_eq!(request.headers()["cookie"], "a=b");
        assert_eq!(request.headers()["last-event-id"], "9");
        let ConnectInfo(peer) = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .unwrap();
        assert_eq!(*peer, addr());
    }

    #[tokio::test]
    async fn the_prefix_is_read_before_the_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut c = TcpStream::connect(at).await.unwrap();
            tokio::io::AsyncWriteExt::write_all(&mut c, b"world")
                .await
                .unwrap();
        });
        let (sock, _) = listener.accept().await.unwrap();
        let mut io = Prefixed::new(Bytes::from_static(b"hello "), sock);
        let mut all = String::new();
        io.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "hello world");
        client.await.unwrap();
    }
}

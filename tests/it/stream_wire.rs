//! The bytes on the wire, as a proxy sees them: a connection whose first request is
//! `GET /api/realtime` is served by the stream transport (`raw`: without hyper, close-delimited;
//! `hyper`: chunked; same headers, same refusals either way); every other connection, stream
//! requests on a reused one included, through hyper. And the limits on connections: head, body
//! and request deadlines, the connection cap, and clients that stop reading.

use std::time::{Duration, Instant};

use crate::support::sse::{ids, Sse, READ};
use crate::support::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const DEV: &str = "1988618061618307073";
const EUI: &str = "24E124707E040001";

/// Opens a connection and sends `request` in pieces, pausing between them (a head that
/// arrives in several segments must be read whole).
async fn send_in_pieces(app: &TestApp, pieces: &[&str]) -> TcpStream {
    let mut sock = TcpStream::connect(app.addr).await.expect("connect");
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sock.write_all(piece.as_bytes()).await.expect("send");
    }
    sock
}

/// Reads until `text` has been seen; panics after 5 s.
async fn read_until(sock: &mut TcpStream, got: &mut Vec<u8>, text: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(got).contains(text) {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, sock.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no {text:?} within 5 s; got {:?}",
                    String::from_utf8_lossy(got)
                )
            })
            .expect("read");
        assert!(
            n > 0,
            "closed before {text:?}: {:?}",
            String::from_utf8_lossy(got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

/// Reads the whole answer of a connection the server closes.
async fn read_to_close(sock: &mut TcpStream) -> String {
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut all))
        .await
        .expect("the server closes the connection")
        .expect("read");
    String::from_utf8(all).expect("UTF-8")
}

/// Reads one answer with a `content-length` (the connection may stay open).
async fn read_answer(sock: &mut TcpStream) -> String {
    let mut got = Vec::new();
    read_until(sock, &mut got, "\r\n\r\n").await;
    let text = String::from_utf8_lossy(&got).to_string();
    let head_len = text.find("\r\n\r\n").unwrap() + 4;
    let length: usize = text[..head_len]
        .to_ascii_lowercase()
        .lines()
        .find_map(|l| {
            l.strip_prefix("content-length: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("an answer with a length");
    while got.len() < head_len + length {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
            .await
            .expect("the body in time")
            .expect("read");
        assert!(n > 0, "closed within the body");
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got).expect("UTF-8")
}

/// The event-stream bytes of a response body as the transport framed them.
fn sse_body(transport: StreamTransport, body: &[u8]) -> Vec<u8> {
    match transport {
        StreamTransport::Raw => body.to_vec(),
        StreamTransport::Hyper => dechunk(body),
    }
}

/// The data of a chunked body, as far as it arrived (a cut-off last chunk gives what it has).
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let line = std::str::from_utf8(&rest[..eol]).expect("chunk size line");
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("not a chunk size: {line:?}"));
        let data = &rest[eol + 2..];
        out.extend_from_slice(&data[..size.min(data.len())]);
        if size == 0 || data.len() < size + 2 {
            break;
        }
        rest = &data[size + 2..];
    }
    out
}

fn split_head(answer: &str) -> (String, &str) {
    let (head, body) = answer.split_once("\r\n\r\n").expect("a complete head");
    (head.to_ascii_lowercase(), body)
}

async fn clients(app: &TestApp, admin: &reqwest::Client) -> u64 {
    get_json(admin, app.url("/api/realtime/stats")).await["clients"]
        .as_u64()
        .expect("clients")
}

/// `raw`: close-delimited, the frames as they are; `hyper`: chunked, kept alive.
async fn a_fresh_connection_gets_a_stream(backend: Backend, transport: StreamTransport) {
    let app = spawn_or_skip!(backend, transport_args(transport));
    let (_, session) = app.signed_in_cookie(ADMIN_EMAIL, PASSWORD).await;
    let cookie = format!("{SESSION_COOKIE}={session}");
    let admin = app.admin().await;
    let request = format!(
        "GET /api/realtime HTTP/1.1\r\nHost: sensorcast\r\nAccept: text/event-stream\r\nCookie: {cookie}\r\n\r\n"
    );
    let mut sock = send_in_pieces(&app, &["GET /api/rea", &request[12..40], &request[40..]]).await;
    let mut got = Vec::new();
    read_until(&mut sock, &mut got, "\"connected\"").await;
    let text = String::from_utf8_lossy(&got).to_string();
    let (head, body) = split_head(&text);
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    for line in [
        "content-type: text/event-stream",
        "cache-control: no-cache",
        "x-accel-buffering: no",
        "x-request-id: ",
        "date: ",
    ] {
        assert!(head.contains(line), "{line:?} missing from {head}");
    }
    assert!(!head.contains("content-length"), "{head}");
    match transport {
        StreamTransport::Raw => {
            assert!(head.contains("connection: close"), "{head}");
            assert!(!head.contains("transfer-encoding"), "{head}");
        }
        StreamTransport::Hyper => {
            assert!(head.contains("transfer-encoding: chunked"), "{head}");
            assert!(!head.contains("connection: close"), "{head}");
        }
    }
    let body = String::from_utf8(sse_body(transport, body.as_bytes())).expect("UTF-8");
    assert!(
        body.starts_with("data: {\"type\":\"connected\""),
        "{body:?}"
    );
    assert_eq!(clients(&app, &admin).await, 1);
    // Caught up, a raw stream is handed to a shard thread that writes its events itself.
    let direct = || app.state.hub.stats.direct_now.get();
    let want = i64::from(transport == StreamTransport::Raw);
    let started = Instant::now();
    while direct() != want {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "direct: {}",
            direct()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let r = app
        .post_mdp(&mdp_reading("evt-w1", DEV, EUI, 4.5, -18.0))
        .await;
    assert_eq!(r.status(), 200);
    read_until(&mut sock, &mut got, "\"new_telemetry\"").await;
    assert_eq!(direct(), want, "still written by the shard");
    let text = String::from_utf8_lossy(&got).to_string();
    assert!(
        text.contains("\nid: ") || text.contains("\r\n\r\nid: "),
        "events carry ids: {text}"
    );

    // A hang-up frees the stream at once, not at the next keepalive.
    drop(sock);
    let started = Instant::now();
    while clients(&app, &admin).await != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the stream outlived its client"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(direct(), 0);
}
both_backends_and_transports!(a_fresh_connection_gets_a_stream);

/// A stream opened within a second of another of its session is answered from the session's
/// pass, without the router: the same head (but the request id and date), the same events, the
/// same metric; sign-out ends it like the first.
async fn a_stream_answered_without_the_router_is_the_routers_answer(backend: Backend) {
    let app = spawn_or_skip!(backend);
    let (client, session) = app.signed_in_cookie(ADMIN_EMAIL, PASSWORD).await;
    let plain = format!("{SESSION_COOKIE}={session}");
    // The same session as the router reads it, but a cookie header the stream's own reader
    // leaves to the router (a percent sign).
    let odd = format!("x=%41; {plain}");
    let mut heads = Vec::new();
    let mut socks = Vec::new();
    // After one read of the session (no pass yet), from the pass that read kept, by the router.
    for cookie in [&plain, &plain, &odd] {
        let request =
            format!("GET /api/realtime HTTP/1.1\r\nHost: sensorcast\r\nCookie: {cookie}\r\n\r\n");
        let mut sock = send_in_pieces(&app, &[&request]).await;
        let mut got = Vec::new();
        read_until(&mut sock, &mut got, "\"connected\"").await;
        let text = String::from_utf8_lossy(&got).to_string();
        let (head, _) = split_head(&text);
        let mut lines: Vec<String> = head
            .lines()
            .map(|l| match l.split_once(": ") {
                Some((name @ ("x-request-id" | "date"), _)) => format!("{name}: …"),
                _ => l.to_string(),
            })
            .collect();
        lines.sort();
        heads.push(lines);
        socks.push((sock, got));
    }
    assert_eq!(heads[0], heads[2]);
    assert_eq!(heads[1], heads[2]);
    for line in [
        "content-security-policy: default-src 'self'",
        "x-content-type-options: nosniff",
        "cache-control: no-cache",
        "x-request-id: …",
    ] {
        assert!(
            heads[0].iter().any(|l| l.starts_with(line)),
            "{line:?} missing from {:?}",
            heads[0]
        );
    }
    let metrics = reqwest::get(app.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let timed = r#"sensorcast_http_request_duration_seconds_count{method="GET",route="/api/realtime",status="2xx"} 3"#;
    assert!(metrics.contains(timed), "{metrics}");
    for counted in [
        "sensorcast_streams_from_session_total 1\n",
        "sensorcast_streams_from_pass_total 1\n",
    ] {
        assert!(metrics.contains(counted), "{counted:?} in {metrics}");
    }

    let r = app
        .post_mdp(&mdp_reading("evt-pass-1", DEV, EUI, 4.5, -18.0))
        .await;
    assert_eq!(r.status(), 200);
    for (sock, got) in &mut socks {
        read_until(sock, got, "\"new_telemetry\"").await;
    }
    assert_eq!(app.logout(&client).await.status(), 303);
    for (sock, _) in &mut socks {
        let rest = read_to_close(sock).await;
        assert!(!rest.contains("new_telemetry"), "{rest}");
    }
}
both_backends!(a_stream_answered_without_the_router_is_the_routers_answer);

async fn refusals_on_a_fresh_connection_are_complete_answers(
    backend: Backend,
    transport: StreamTransport,
) {
    let app = spawn_or_skip!(backend, transport_args(transport));
    let (_, session) = app.signed_in_cookie(ADMIN_EMAIL, PASSWORD).await;
    let cookie = format!("{SESSION_COOKIE}={session}");
    let unknown = format!(
        "Cookie: {SESSION_COOKIE}={}\r\n",
        tower_sessions::session::Id::default()
    );
    let cases = [
        ("", 401, "unauthorized"),
        ("Cookie: sensorcast_session=forged\r\n", 401, "unauthorized"),
        // Well-formed, but no such session: read, then left to the router.
        (&*unknown, 401, "unauthorized"),
        (
            &*format!("Cookie: {cookie}\r\nLast-Event-ID: soon\r\n"),
            400,
            "invalid_last_event_id",
        ),
    ];
    for (headers, status, code) in cases {
        let request = format!("GET /api/realtime HTTP/1.1\r\nHost: s\r\n{headers}\r\n");
        let mut sock = send_in_pieces(&app, &[&request]).await;
        let answer = read_answer(&mut sock).await;
        let (head, body) = split_head(&answer);
        if transport == StreamTransport::Raw {
            assert!(head.contains("connection: close"), "{head}");
            assert_eq!(
                read_to_close(&mut sock).await,
                "",
                "nothing after the answer"
            );
        }
        assert!(head.starts_with(&format!("http/1.1 {status} ")), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let length = format!("content-length: {}", body.len());
        assert!(head.lines().any(|l| l == length), "{head}");
        let json: serde_json::Value = serde_json::from_str(body).expect("JSON error");
        assert_eq!(json["error"], code, "{body}");
    }
}
both_backends_and_transports!(refusals_on_a_fresh_connection_are_complete_answers);

async fn other_requests_and_reused_connections_go_through_hyper(backend: Backend) {
    let app = spawn_or_skip!(backend);
    let (_, session) = app.signed_in_cookie(ADMIN_EMAIL, PASSWORD).await;
    let cookie = format!("{SESSION_COOKIE}={session}");
    // Shares its first bytes with the stream path, then turns off: replayed to hyper whole.
    let first = format!("devices HTTP/1.1\r\nHost: s\r\nCookie: {cookie}\r\n\r\n");
    let mut sock = send_in_pieces(&app, &["GET /api/", &first]).await;
    let mut got = Vec::new();
    read_until(&mut sock, &mut got, "\r\n\r\n").await;
    let text = String::from_utf8_lossy(&got).to_string();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    let length: usize = text
        .to_ascii_lowercase()
        .lines()
        .find_map(|l| {
            l.strip_prefix("content-length: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("a keep-alive answer has a length");
    let head_len = text.find("\r\n\r\n").unwrap() + 4;
    while got.len() < head_len + length {
        let mut buf = [0u8; 4096];
        let n = sock.read(&mut buf).await.expect("read");
        assert!(n > 0, "connection kept open for the next request");
        got.extend_from_slice(&buf[..n]);
    }
    // The same connection then asks for a stream: hyper serves it, chunked.
    let stream = format!("GET /api/realtime HTTP/1.1\r\nHost: s\r\nCookie: {cookie}\r\n\r\n");
    sock.write_all(stream.as_bytes()).await.expect("send");
    let mut more = Vec::new();
    read_until(&mut sock, &mut more, "\"connected\"").await;
    let text = String::from_utf8_lossy(&more).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200 ok\r\n"), "{text}");
    assert!(text.contains("transfer-encoding: chunked"), "{text}");
    assert!(text.contains("content-type: text/event-stream"), "{text}");
}
both_backends!(other_requests_and_reused_connections_go_through_hyper);

/// Shutdown ends streams on fresh connections and returns within the grace period.
async fn shutdown_ends_streams_of_fresh_connections(backend: Backend, transport: StreamTransport) {
    let app = spawn_or_skip!(backend, transport_args(transport));
    let (_, session) = app.signed_in_cookie(ADMIN_EMAIL, PASSWORD).await;
    let cookie = format!("{SESSION_COOKIE}={session}");
    let request = format!("GET /api/realtime HTTP/1.1\r\nHost: s\r\nCookie: {cookie}\r\n\r\n");
    let mut socks = Vec::new();
    for _ in 0..3 {
        let mut sock = send_in_pieces(&app, &[&request]).await;
        read_until(&mut sock, &mut Vec::new(), "\"connected\"").await;
        socks.push(sock);
    }
    let took = app.shutdown().await;
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    for mut sock in socks {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(2), sock.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(_))), "the server closed the stream");
    }
}
both_backends_and_transports!(shutdown_ends_streams_of_fresh_connections);

// ---------------------------------------------------------------------------------------------
// Deadlines, the connection cap and stalled clients
// ---------------------------------------------------------------------------------------------

/// Everything the server sends until it closes the connection (a reset after the answer counts
/// as closed), and how long that took; panics if it is still open after `limit`.
async fn answer_and_close(
    sock: &mut tokio::net::tcp::OwnedReadHalf,
    limit: Duration,
) -> (String, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    loop {
        let mut buf = [0u8; 4096];
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, sock.read(&mut buf)).await {
            Err(_) => panic!(
                "still open after {limit:?}; got {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    (String::from_utf8_lossy(&got).to_string(), started.elapsed())
}

/// Sends `head` at once, then one byte of `trickle` every `every` until the server hangs up.
async fn trickled(
    app: &TestApp,
    head: &str,
    trickle: &'static [u8],
    every: Duration,
) -> (String, Duration) {
    let sock = TcpStream::connect(app.addr).await.expect("connect");
    let (mut rd, mut wr) = sock.into_split();
    wr.write_all(head.as_bytes()).await.expect("send head");
    let writer = tokio::spawn(async move {
        for byte in trickle.iter().cycle() {
            tokio::time::sleep(every).await;
            if wr.write_all(&[*byte]).await.is_err() {
                break;
            }
        }
    });
    let answer = answer_and_close(&mut rd, Duration::from_secs(15)).await;
    writer.abort();
    answer
}

/// A body trickled a byte a second is cut off at the body deadline (408, connection closed), on
/// a page and on the API; and at the request deadline when that comes first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_is_cut_off_at_its_deadline() {
    for (body_secs, request_secs) in [(2, 60), (60, 2)] {
        let mut args = test_args();
        args.body_timeout_secs = body_secs;
        args.request_timeout_secs = request_secs;
        let app = spawn_or_skip!(Backend::Sqlite, args);
        let login = "POST /login HTTP/1.1\r\nHost: s\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 60000\r\n\r\nemail=";
        let webhook = format!(
            "POST /api/webhooks/milesight/gateway HTTP/1.1\r\nHost: s\r\nX-Sensorcast-Token: {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n[{{\"devEUI\":\""
        );
        let every = Duration::from_secs(1);
        let ((page, page_took), (api, api_took)) = tokio::join!(
            trickled(&app, login, b"a", every),
            trickled(&app, &webhook, b"0", every),
        );
        let case = format!("body deadline {body_secs} s, request deadline {request_secs} s");
        for (what, answer, took) in [("/login", &page, page_took), ("webhook", &api, api_took)] {
            assert!(
                (Duration::from_millis(1_500)..Duration::from_secs(5)).contains(&took),
                "{case}: {what} answered after {took:?}"
            );
            let (head, _) = split_head(answer);
            assert!(
                head.starts_with("http/1.1 408 "),
                "{case}: {what}: {answer}"
            );
            assert!(head.contains("connection: close"), "{case}: {what}: {head}");
        }
        let (head, body) = split_head(&api);
        assert!(head.contains("content-type: application/json"), "{head}");
        let json: Value = serde_json::from_str(body).expect("a JSON error");
        assert_eq!(json["error"], "request_timeout", "{body}");
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(app.snapshot().await, [0, 0, 0, 0], "{case}: nothing stored");
    }
}

/// A head trickled a byte at a time is dropped at the head deadline, whether it looks like a
/// stream all along (the sniffer), turns out not to be one late (the sniffer, then hyper, one
/// deadline for both), or is something else from the start (hyper).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_head_is_dropped_at_the_head_deadline() {
    let mut args = test_args();
    args.head_timeout_secs = 2;
    let app = spawn_or_skip!(Backend::Sqlite, args);
    let every = Duration::from_millis(100);
    let (stream, late, other) = tokio::join!(
        trickled(
            &app,
            "GET /api/realtime HTTP/1.1\r\n",
            b"X-Slow: 1\r\n",
            every
        ),
        trickled(
            &app,
            "",
            b"GET /api/realtime/stats HTTP/1.1\r\nX-Slow: 1\r\n",
            every
        ),
        trickled(&app, "GET /login HTTP/1.1\r\n", b"X-Slow: 1\r\n", every),
    );
    for (what, (answer, took)) in [("stream", stream), ("late", late), ("other", other)] {
        assert!(
            (Duration::from_millis(1_500)..Duration::from_secs(4)).contains(&took),
            "{what}: dropped after {took:?}"
        );
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408 "),
            "{what}: {answer:?}"
        );
    }
    // A prompt client is unaffected.
    let r = reqwest::get(app.url("/login")).await.expect("login page");
    assert_eq!(r.status(), 200);
}

/// The value of a metric without labels, from the app's registry.
fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.state.metrics.render().expect("metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

async fn wait_for_metric(app: &TestApp, name: &str, want: f64) {
    let started = Instant::now();
    while metric(app, name) != want {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{name} is {} after 5 s, not {want}",
            metric(app, name)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Past --max-connections a new connection is answered 503 at once and closed, and counted;
/// once one closes, the next is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_refused_and_counted() {
    let mut args = test_args();
    args.max_connections = 4;
    let app = spawn_or_skip!(Backend::Sqlite, args);
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(app.addr).await.expect("connect"));
    }
    wait_for_metric(&app, "sensorcast_connections", 4.0).await;
    assert_eq!(metric(&app, "sensorcast_connections_refused_total"), 0.0);

    let (mut rd, _wr) = TcpStream::connect(app.addr)
        .await
        .expect("connect")
        .into_split();
    let (answer, took) = answer_and_close(&mut rd, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(1), "refused after {took:?}");
    let (head, body) = split_head(&answer);
    assert!(head.starts_with("http/1.1 503 "), "{answer}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("retry-after: "), "{head}");
    let json: Value = serde_json::from_str(body).expect("a JSON error");
    assert_eq!(json["error"], "too_many_connections", "{body}");
    assert_eq!(metric(&app, "sensorcast_connections_refused_total"), 1.0);
    assert_eq!(metric(&app, "sensorcast_connections"), 4.0);

    drop(idle.pop());
    wait_for_metric(&app, "sensorcast_connections", 3.0).await;
    let r = reqwest::get(app.url("/login")).await.expect("served again");
    assert_eq!(r.status(), 200);
    assert_eq!(metric(&app, "sensorcast_connections_refused_total"), 1.0);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Ids of the complete SSE messages in `body` (a cut-off last one is not dispatched).
fn complete_ids(body: &[u8]) -> Vec<i64> {
    let text = String::from_utf8_lossy(body);
    let mut blocks: Vec<&str> = text.split("\n\n").collect();
    blocks.pop();
    blocks
        .iter()
        .filter_map(|b| b.lines().find_map(|l| l.strip_prefix("id: ")?.parse().ok()))
        .collect()
}

/// Opens a stream on a fresh socket; a small receive buffer, so a client that does not read
/// fills it soon. Returns the socket after the head and the `connected` message were read, and
/// the stream bytes read so far.
async fn raw_stream(
    app: &TestApp,
    cookie: &str,
    receive_buffer: Option<u32>,
) -> (TcpStream, Vec<u8>) {
    let socket = TcpSocket::new_v4().expect("socket");
    if let Some(size) = receive_buffer {
        socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
    }
    let mut sock = socket.connect(app.addr).await.expect("connect");
    let request = format!("GET /api/realtime HTTP/1.1\r\nHost: s\r\nCookie: {cookie}\r\n\r\n");
    sock.write_all(request.as_bytes()).await.expect("send");
    let mut got = Vec::new();
    read_until(&mut sock, &mut got, "\"connected\"").await;
    let head_len = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    (sock, got.split_off(head_len))
}

/// Posts `n` readings of 4 KiB each (50 per webhook).
async fn post_heavy(app: &TestApp, tag: &str, n: usize) {
    let pad = "x".repeat(4_096);
    for start in (0..n).step_by(50) {
        let batch: Vec<Value> = (start..n.min(start + 50))
            .map(|k| {
                let mut ev: Value = serde_json::from_str(&mdp_reading(
                    &format!("{tag}-{k}"),
                    DEV,
                    EUI,
                    k as f64 / 10.0,
                    -18.0,
                ))
                .unwrap();
                ev["data"]["payload"]["alarm_note"] = json!(pad);
                ev
            })
            .collect();
        let r = app.post_mdp(&Value::Array(batch).to_string()).await;
        assert_eq!(r.status(), 200);
    }
}

/// A client that reads nothing while events pile up is closed after --stall-secs, its slot
/// freed and counted, and resumes from its last event when it reconnects; a client that reads
/// in bursts with pauses shorter than that keeps its stream and gets every event.
async fn a_client_that_reads_nothing_is_closed_and_resumes(
    backend: Backend,
    transport: StreamTransport,
) {
    let mut args = transport_args(transport);
    args.stall_secs = 2;
    let app = spawn_or_skip!(backend, args);
    let (_, session) = app.signed_in_cookie(ADMIN_EMAIL, PASSWORD).await;
    let cookie = format!("{SESSION_COOKIE}={session}");
    let admin = app.admin().await;
    let (mut stalled, mut stalled_got) = raw_stream(&app, &cookie, Some(8 * 1024)).await;
    let (slow, mut slow_got) = raw_stream(&app, &cookie, None).await;
    assert_eq!(clients(&app, &admin).await, 2);
    let stalls = metric(&app, "sensorcast_stalled_clients_total");

    let stop = tokio_util::sync::CancellationToken::new();
    let reader = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 1 << 20];
            while !stop.is_cancelled() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                loop {
                    match slow.try_read(&mut buf) {
                        Ok(0) => panic!("the slow reader's stream was closed"),
                        Ok(n) => slow_got.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("the slow reader's stream failed: {e}"),
                    }
                }
            }
            (slow, slow_got)
        })
    };

    // Publish until the stalled stream is gone (its buffers fill, then --stall-secs pass).
    let started = Instant::now();
    let mut round = 0;
    while clients(&app, &admin).await == 2 {
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the stalled stream is still open after {round} rounds ({:?})",
            started.elapsed()
        );
        post_heavy(&app, &format!("stall{round}"), 100).await;
        round += 1;
    }
    let closed_after = started.elapsed();
    post_heavy(&app, "after", 50).await;
    assert_eq!(
        metric(&app, "sensorcast_stalled_clients_total"),
        stalls + 1.0
    );

    // The slow reader is still there and gets everything, in order.
    stop.cancel();
    let (mut slow, mut slow_got) = reader.await.expect("slow reader");
    let stored = app.stored_event_ids().await;
    let last = *stored.last().unwrap();
    let mark = format!("id: {last}\n");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut searched: usize = 0;
    loop {
        let from = searched.saturating_sub(mark.len() + 8);
        if let Some(at) = find(&slow_got[from..], mark.as_bytes()) {
            if find(&slow_got[from + at..], b"\n\n").is_some() {
                break;
            }
        }
        searched = slow_got.len();
        let mut buf = vec![0u8; 1 << 20];
        let n = tokio::time::timeout_at(deadline, slow.read(&mut buf))
            .await
            .expect("the slow reader gets the last event within 20 s")
            .expect("read");
        assert!(n > 0, "the slow reader's stream was closed");
        slow_got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        complete_ids(&sse_body(transport, &slow_got)),
        stored,
        "slow reader"
    );
    assert_eq!(clients(&app, &admin).await, 1);

    // The stalled client gets what was on its way, then the end; it resumes from there.
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match stalled.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => rest.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the stalled stream ends once its buffers are read");
    stalled_got.extend_from_slice(&rest);
    let got = complete_ids(&sse_body(transport, &stalled_got));
    let resume_from = *got.last().expect("events before it stalled");
    assert!(resume_from < last, "the stalled client got everything");
    let before: Vec<i64> = stored
        .iter()
        .copied()
        .filter(|i| *i <= resume_from)
        .collect();
    assert_eq!(got, before, "the stalled client's events, in order");
    let r = admin
        .get(app.url("/api/realtime"))
        .header("last-event-id", resume_from.to_string())
        .send()
        .await
        .expect("reconnect");
    assert_eq!(r.status(), 200);
    let mut sse = Sse::new(r);
    assert_eq!(sse.next_msg().await.kind(), "connected");
    let after: Vec<i64> = stored
        .iter()
        .copied()
        .filter(|i| *i > resume_from)
        .collect();
    assert_eq!(ids(&sse.events_through(last, READ).await), after, "resumed");
    eprintln!(
        "{transport:?}: the stalled stream was closed after {closed_after:?} ({round} rounds of 100 events); {} of {} events had reached it",
        before.len(),
        stored.len()
    );
}
both_backends_and_transports!(a_client_that_reads_nothing_is_closed_and_resumes);

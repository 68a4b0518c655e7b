//! The bytes on the wire, as a proxy sees them: a connection whose first request is
//! `GET /api/realtime` is served without hyper (close-delimited body, same headers, same
//! refusals); every other connection, stream requests on a reused one included, through hyper.

use std::time::{Duration, Instant};

use crate::support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

fn split_head(answer: &str) -> (String, &str) {
    let (head, body) = answer.split_once("\r\n\r\n").expect("a complete head");
    (head.to_ascii_lowercase(), body)
}

async fn clients(app: &TestApp, admin: &reqwest::Client) -> u64 {
    get_json(admin, app.url("/api/realtime/stats")).await["clients"]
        .as_u64()
        .expect("clients")
}

async fn a_fresh_connection_gets_a_close_delimited_stream(backend: Backend) {
    let app = spawn_or_skip!(backend);
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
        "connection: close",
        "x-request-id: ",
        "date: ",
    ] {
        assert!(head.contains(line), "{line:?} missing from {head}");
    }
    assert!(
        !head.contains("transfer-encoding") && !head.contains("content-length"),
        "{head}"
    );
    assert!(
        body.starts_with("data: {\"type\":\"connected\""),
        "{body:?}"
    );
    assert_eq!(clients(&app, &admin).await, 1);

    let r = app
        .post_mdp(&mdp_reading("evt-w1", DEV, EUI, 4.5, -18.0))
        .await;
    assert_eq!(r.status(), 200);
    read_until(&mut sock, &mut got, "\"new_telemetry\"").await;
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
}
both_backends!(a_fresh_connection_gets_a_close_delimited_stream);

async fn refusals_on_a_fresh_connection_are_complete_answers(backend: Backend) {
    let app = spawn_or_skip!(backend);
    let (_, session) = app.signed_in_cookie(ADMIN_EMAIL, PASSWORD).await;
    let cookie = format!("{SESSION_COOKIE}={session}");
    let cases = [
        ("", 401, "unauthorized"),
        ("Cookie: sensorcast_session=forged\r\n", 401, "unauthorized"),
        (
            &*format!("Cookie: {cookie}\r\nLast-Event-ID: soon\r\n"),
            400,
            "invalid_last_event_id",
        ),
    ];
    for (headers, status, code) in cases {
        let request = format!("GET /api/realtime HTTP/1.1\r\nHost: s\r\n{headers}\r\n");
        let mut sock = send_in_pieces(&app, &[&request]).await;
        let answer = read_to_close(&mut sock).await;
        let (head, body) = split_head(&answer);
        assert!(head.starts_with(&format!("http/1.1 {status} ")), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let length = format!("content-length: {}", body.len());
        assert!(head.lines().any(|l| l == length), "{head}");
        let json: serde_json::Value = serde_json::from_str(body).expect("JSON error");
        assert_eq!(json["error"], code, "{body}");
    }
}
both_backends!(refusals_on_a_fresh_connection_are_complete_answers);

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

/// Shutdown ends streams served both ways and returns within the grace period.
async fn shutdown_ends_raw_streams(backend: Backend) {
    let app = spawn_or_skip!(backend);
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
both_backends!(shutdown_ends_raw_streams);

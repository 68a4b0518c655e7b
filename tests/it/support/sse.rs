//! A small SSE client for tests: reads a `text/event-stream` body message by message, the way a
//! browser's EventSource does, with a time limit on every read so no test can hang.

use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::Value;

use super::TestApp;

/// Longest wait for one message when one is expected.
pub const READ: Duration = Duration::from_secs(5);

type BodyStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// One dispatched SSE message.
#[derive(Debug, Clone)]
pub struct Msg {
    pub id: Option<i64>,
    /// How many `data:` lines it had (the contract says exactly one).
    pub data_lines: usize,
    /// The data, as sent.
    pub raw: String,
    pub json: Value,
}

impl Msg {
    pub fn kind(&self) -> &str {
        self.json["type"].as_str().unwrap_or("")
    }

    pub fn device_id(&self) -> &str {
        self.json["data"]["deviceId"].as_str().unwrap_or("")
    }

    pub fn is_keepalive(&self) -> bool {
        self.id.is_none() && self.kind() == "keepalive"
    }
}

/// Reads an `text/event-stream` body: splits it on blank lines and collects `id:` and `data:`.
pub struct Sse {
    body: BodyStream,
    buf: Vec<u8>,
    ended: bool,
    /// Set when the body ended with a transport error rather than cleanly.
    error: Option<String>,
}

impl Sse {
    pub fn new(response: reqwest::Response) -> Sse {
        Sse {
            body: Box::pin(response.bytes_stream()),
            buf: Vec::new(),
            ended: false,
            error: None,
        }
    }

    /// The next complete message, `Ok(None)` once the stream has ended, `Err(())` on timeout.
    pub async fn next_within(&mut self, wait: Duration) -> Result<Option<Msg>, ()> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(msg) = self.parse_one() {
                return Ok(Some(msg));
            }
            if self.ended {
                return Ok(None);
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return Err(()),
                Ok(Some(Ok(chunk))) => self.buf.extend_from_slice(&chunk),
                Ok(Some(Err(e))) => {
                    self.error = Some(e.to_string());
                    self.ended = true;
                }
                Ok(None) => self.ended = true,
            }
        }
    }

    /// Takes one message out of the buffer, if a whole one is there.
    pub fn parse_one(&mut self) -> Option<Msg> {
        loop {
            let end = self.buf.windows(2).position(|w| w == b"\n\n")?;
            let block: Vec<u8> = self.buf.drain(..end + 2).collect();
            let text = std::str::from_utf8(&block[..end]).expect("SSE is UTF-8");
            let mut id = None;
            let mut data: Vec<&str> = Vec::new();
            for line in text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)) {
                if line.is_empty() || line.starts_with(':') {
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "id" => {
                        id = Some(
                            value
                                .parse::<i64>()
                                .unwrap_or_else(|_| panic!("id is not a number: {value:?}")),
                        )
                    }
                    "data" => data.push(value),
                    _ => {}
                }
            }
            if data.is_empty() {
                // A comment or an id-only block dispatches nothing.
                continue;
            }
            let raw = data.join("\n");
            let json: Value = serde_json::from_str(&raw)
                .unwrap_or_else(|e| panic!("data is not JSON ({e}): {raw:?}"));
            return Some(Msg {
                id,
                data_lines: data.len(),
                raw,
                json,
            });
        }
    }

    /// The next message; panics on timeout or end of stream.
    pub async fn next_msg(&mut self) -> Msg {
        match self.next_within(READ).await {
            Ok(Some(m)) => m,
            Ok(None) => panic!("the stream ended (error: {:?})", self.error),
            Err(()) => panic!("no message within {READ:?}"),
        }
    }

    /// The next message that carries an id (skips keepalives).
    pub async fn next_event(&mut self) -> Msg {
        loop {
            let m = self.next_msg().await;
            if m.id.is_some() {
                assert_eq!(m.data_lines, 1, "one data line per message: {m:?}");
                return m;
            }
            assert!(m.is_keepalive(), "unexpected unnumbered message {m:?}");
        }
    }

    /// Numbered events until (and including) the one with id `last`; panics past it.
    pub async fn events_through(&mut self, last: i64, per_read: Duration) -> Vec<Msg> {
        let mut out: Vec<Msg> = Vec::new();
        loop {
            let m = match self.next_within(per_read).await {
                Ok(Some(m)) => m,
                Ok(None) => panic!(
                    "the stream ended after {} events (last id {:?}) before id {last} (error: {:?})",
                    out.len(),
                    out.last().and_then(|m| m.id),
                    self.error
                ),
                Err(()) => panic!(
                    "stalled: {} events within the time limit, last id {:?}, waiting for id {last}",
                    out.len(),
                    out.last().and_then(|m| m.id)
                ),
            };
            let Some(id) = m.id else {
                assert!(m.is_keepalive(), "unexpected unnumbered message {m:?}");
                continue;
            };
            assert!(id <= last, "got id {id} past the last expected id {last}");
            out.push(m);
            if id == last {
                return out;
            }
        }
    }

    /// Asserts that no numbered event arrives within `dur` (keepalives are fine).
    pub async fn expect_quiet(&mut self, dur: Duration) {
        let deadline = Instant::now() + dur;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match self.next_within(left).await {
                Err(()) => return,
                Ok(None) => panic!("the stream ended (error: {:?})", self.error),
                Ok(Some(m)) => assert!(m.is_keepalive(), "expected no event, got {m:?}"),
            }
        }
    }

    /// Asserts that the stream ends cleanly within `within` (keepalives before the end are fine).
    pub async fn expect_end(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_within(left).await {
                Err(()) => panic!("the stream did not end within {within:?}"),
                Ok(None) => {
                    assert_eq!(self.error, None, "the stream ended with a transport error");
                    return;
                }
                Ok(Some(m)) => assert!(m.is_keepalive(), "expected the end, got {m:?}"),
            }
        }
    }
}

pub fn ids(msgs: &[Msg]) -> Vec<i64> {
    msgs.iter().map(|m| m.id.expect("numbered")).collect()
}

pub fn assert_strictly_increasing(ids: &[i64]) {
    for w in ids.windows(2) {
        assert!(w[0] < w[1], "ids not strictly increasing: {ids:?}");
    }
}

/// The GET request of a stream; `last_event_id` goes into the `Last-Event-ID` header.
pub async fn connect(
    app: &TestApp,
    client: &reqwest::Client,
    query: &str,
    last_event_id: Option<&str>,
) -> reqwest::Response {
    let mut req = client
        .get(app.url(&format!("/api/realtime{query}")))
        .header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    tokio::time::timeout(READ, req.send())
        .await
        .expect("stream response headers in time")
        .expect("GET /api/realtime")
}

/// Opens a stream and reads its `connected` message.
pub async fn open(
    app: &TestApp,
    client: &reqwest::Client,
    query: &str,
    last_event_id: Option<&str>,
) -> Sse {
    let r = connect(app, client, query, last_event_id).await;
    let status = r.status();
    if status != 200 {
        let body = r.text().await.unwrap_or_default();
        panic!("GET /api/realtime{query}: {status} {body}");
    }
    let mut sse = Sse::new(r);
    let first = sse.next_msg().await;
    assert_eq!(first.kind(), "connected", "first message: {first:?}");
    assert_eq!(first.id, None, "connected carries no id");
    sse
}

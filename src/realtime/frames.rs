//! SSE framing of the event log's JSON: done once per event, shared by every stream.

use bytes::Bytes;

use crate::domain::{message_json, EventRow};

/// A stored event, encoded once as an SSE message, with what a stream needs to filter it.
#[derive(Debug)]
pub struct Frame {
    pub id: i64,
    pub device_id: i64,
    pub site_id: Option<i64>,
    pub bytes: Bytes,
}

impl Frame {
    pub fn encode(event: &EventRow) -> Frame {
        Frame {
            id: event.id,
            device_id: event.device_id,
            site_id: event.site_id,
            bytes: encode_frame(event.id, &event.json),
        }
    }
}

/// An SSE message with an id. The id is a number and the JSON one line, so no field can break
/// the framing (serde_json escapes newlines inside strings).
pub fn encode_frame(id: i64, json: &str) -> Bytes {
    let mut s = String::with_capacity(json.len() + 32);
    s.push_str("id: ");
    s.push_str(&id.to_string());
    s.push_str("\ndata: ");
    s.push_str(json);
    s.push_str("\n\n");
    Bytes::from(s)
}

fn unnumbered(kind: &str, now_ms: i64, message: Option<&str>) -> Bytes {
    let json = message_json(kind, now_ms, message);
    Bytes::from(format!("data: {json}\n\n"))
}

pub fn connected_frame(now_ms: i64) -> Bytes {
    unnumbered(
        "connected",
        now_ms,
        Some("Real-time connection established"),
    )
}

pub fn keepalive_frame(now_ms: i64) -> Bytes {
    unnumbered("keepalive", now_ms, None)
}

/// Sent instead of a replay too long to be worth it: carries the newest id, so the browser
/// reconnects from there, and tells the page to reload its data.
pub fn resync_frame(newest_id: i64, now_ms: i64) -> Bytes {
    encode_frame(newest_id, &message_json("resync", now_ms, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_single_line_json() {
        let f = encode_frame(42, r#"{"type":"x"}"#);
        assert_eq!(&f[..], b"id: 42\ndata: {\"type\":\"x\"}\n\n");
        let c = connected_frame(5);
        assert_eq!(
            &c[..],
            b"data: {\"type\":\"connected\",\"timestamp\":5,\"message\":\"Real-time connection established\"}\n\n"
        );
        assert_eq!(
            &resync_frame(9, 7)[..],
            b"id: 9\ndata: {\"type\":\"resync\",\"timestamp\":7}\n\n"
        );
        assert_eq!(
            &keepalive_frame(7)[..],
            b"data: {\"type\":\"keepalive\",\"timestamp\":7}\n\n"
        );
    }
}

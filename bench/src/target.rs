//! The two servers under test, as the generator sees them: how to subscribe, how to publish one
//! event, and where the event's marker sits in what a subscriber reads.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::clock::unix_ms;

pub const WEBHOOK_SECRET: &str = "bench-webhook-secret";
pub const WEBHOOK_UUID: &str = "6167cb40-8e5e-4d53-904f-968928e488a6";
/// The channel every nchan subscriber and publish uses.
pub const NCHAN_CHANNEL: &str = "bench";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sensorcast,
    Nchan,
    /// `sensorcast-bench floor`: one write per stream per event and nothing else.
    Floor,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sensorcast => "sensorcast",
            Kind::Nchan => "nchan",
            Kind::Floor => "floor",
        }
    }

    /// What precedes the marker in a frame a subscriber reads: sensorcast re-encodes the
    /// reading (`measuredAt` is the webhook's `ts`); nchan and the floor pass the body through.
    pub fn marker_key(self) -> &'static str {
        match self {
            Kind::Sensorcast => "\"measuredAt\":",
            Kind::Nchan | Kind::Floor => "\"ts\":",
        }
    }
}

/// A running server to measure.
#[derive(Debug, Clone)]
pub struct Target {
    pub kind: Kind,
    pub addr: SocketAddr,
    /// `Cookie:` value of the shared session (sensorcast).
    pub cookie: Option<String>,
}

impl Target {
    pub fn stream_path(&self) -> &'static str {
        match self.kind {
            Kind::Sensorcast => "/api/realtime",
            Kind::Nchan | Kind::Floor => "/sub",
        }
    }

    /// The request that opens one event stream, optionally resuming after `last_event_id`.
    pub fn subscribe_request(&self, last_event_id: Option<&str>) -> String {
        subscribe_request(
            self.addr,
            self.stream_path(),
            self.cookie.as_deref(),
            last_event_id,
        )
    }

    /// The request that publishes one event carrying `marker`.
    pub fn publish_request(&self, marker: u64) -> Vec<u8> {
        self.webhook_request(&mdp_event(marker))
    }

    /// The request that publishes `body` (signed, for sensorcast).
    pub fn webhook_request(&self, body: &str) -> Vec<u8> {
        let mut head = match self.kind {
            Kind::Sensorcast => {
                let ts = (unix_ms() / 1000).to_string();
                let nonce = next_nonce();
                format!(
                    "POST /api/webhooks/milesight HTTP/1.1\r\nHost: {}\r\n\
                     x-msc-request-signature: {}\r\nx-msc-request-timestamp: {ts}\r\n\
                     x-msc-request-nonce: {nonce}\r\nx-msc-webhook-uuid: {WEBHOOK_UUID}\r\n",
                    self.addr,
                    sign(WEBHOOK_SECRET, &ts, &nonce),
                )
            }
            Kind::Nchan | Kind::Floor => format!("POST /pub HTTP/1.1\r\nHost: {}\r\n", self.addr),
        };
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ));
        let mut req = head.into_bytes();
        req.extend_from_slice(body.as_bytes());
        req
    }

    /// Whether a publish answer means "stored and sent on".
    pub fn published(&self, status: u16) -> bool {
        match self.kind {
            Kind::Sensorcast => status == 200,
            Kind::Nchan | Kind::Floor => status == 201 || status == 202,
        }
    }
}

pub fn subscribe_request(
    addr: SocketAddr,
    path: &str,
    cookie: Option<&str>,
    last_event_id: Option<&str>,
) -> String {
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n"
    );
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    if let Some(id) = last_event_id {
        req.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    req.push_str("\r\n");
    req
}

/// One MDP `DEVICE_DATA` `PROPERTY` event of one TS302; `marker` is its unique `ts`.
pub fn mdp_event(marker: u64) -> String {
    let profile = r#""deviceId":"1904371063669395457","sn":"6707E04610160001","devEUI":"24e124707e040001","name":"Bench freezer""#;
    mdp_body(profile, marker)
}

/// The same event from soak device `n` of a fleet (each with its own ids and devEUI).
pub fn fleet_event(n: usize, marker: u64) -> String {
    let profile = format!(
        r#""deviceId":"{}","sn":"6707E0461017{n:04}","devEUI":"{}","name":"Soak freezer {n}""#,
        1_904_371_063_669_400_000u64 + n as u64,
        dev_eui(n)
    );
    mdp_body(&profile, marker)
}

/// A reading of fleet device `n` with this left-probe temperature (to raise or clear alarms).
pub fn fleet_reading(n: usize, marker: u64, left: f64) -> String {
    fleet_event(n, marker).replace(
        r#""temperature_left":-18.4"#,
        &format!(r#""temperature_left":{left:.1}"#),
    )
}

/// devEUI of fleet device `n`.
pub fn dev_eui(n: usize) -> String {
    format!("24e124707e05{n:04x}")
}

/// The fleet devices stream `index` follows: `per_stream` consecutive ones of `devices`.
pub fn followed(index: usize, per_stream: usize, devices: usize) -> Vec<usize> {
    (0..per_stream)
        .map(|j| (index * per_stream + j) % devices.max(1))
        .collect()
}

fn mdp_body(profile: &str, marker: u64) -> String {
    let created = unix_ms() / 1000;
    format!(
        r#"{{"eventId":"bench-{marker}","eventCreatedTime":{created},"eventVersion":"1.0","eventType":"DEVICE_DATA","data":{{"deviceProfile":{{{profile},"model":"TS302"}},"type":"PROPERTY","tslId":"","ts":{marker},"payload":{{"temperature_left":-18.4,"temperature_right":4.1,"battery":93}}}}}}"#
    )
}

/// Lower-case hex HMAC-SHA256(secret, timestamp ‖ nonce), as MDP signs (milesight.md §1).
pub fn sign(secret: &str, timestamp: &str, nonce: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(nonce.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn next_nonce() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}{:08x}{n:08x}", unix_ms(), std::process::id())
}

/// Unique event markers for a whole run: the Unix time in ms at start, plus a counter.
pub struct Markers(AtomicU64);

impl Markers {
    pub fn new() -> Markers {
        Markers(AtomicU64::new(unix_ms()))
    }

    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_spec_vector() {
        assert_eq!(
            sign(
                "mySecretKey",
                "1742872448",
                "0f2c1e6b5a7d4e3f9a8b7c6d5e4f3a2b"
            ),
            "bb7effb105409c969e56c5a5f95a564e4a8e49cda142c5fd6962092b2082e8e9"
        );
    }

    #[test]
    fn fleet_streams_follow_consecutive_devices() {
        assert_eq!(followed(0, 2, 100), vec![0, 1]);
        assert_eq!(followed(51, 2, 100), vec![2, 3]);
        assert_eq!(dev_eui(258), "24e124707e050102");
        let e = fleet_event(258, 1742872448123);
        assert!(e.contains(r#""devEUI":"24e124707e050102""#));
        assert!(e.contains(r#""deviceId":"1904371063669400258""#));
        let key = Kind::Sensorcast.marker_key().replace("measuredAt", "ts");
        assert_eq!(
            crate::sse::marker(e.as_bytes(), key.as_bytes()),
            Some(1742872448123)
        );
    }

    #[test]
    fn the_event_is_json_with_its_marker() {
        let e = mdp_event(1742872448123);
        assert!(
            crate::sse::marker(e.as_bytes(), Kind::Nchan.marker_key().as_bytes())
                == Some(1742872448123)
        );
    }
}

//! Publishing events: paced, back to back, or from many concurrent senders. Every publish
//! waits for its answer; a failed one is counted and the run goes on.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::mono_us;
use crate::http::Conn;
use crate::target::{Markers, Target};

/// One keep-alive connection that publishes events to a target.
pub struct Publisher {
    conn: Conn,
    target: Target,
}

/// One answered publish.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    pub marker: u64,
    /// When the request was written, µs monotonic.
    pub at: u64,
    pub latency_us: u64,
    pub ok: bool,
}

impl Publisher {
    pub fn new(target: &Target) -> Publisher {
        Publisher {
            conn: Conn::new(target.addr),
            target: target.clone(),
        }
    }

    pub async fn publish(&mut self, markers: &Markers) -> Sent {
        let marker = markers.next();
        let request = self.target.publish_request(marker);
        self.send(marker, &request).await
    }

    /// Sends a prepared publish `request` for the event carrying `marker`.
    pub async fn send(&mut self, marker: u64, request: &[u8]) -> Sent {
        let at = mono_us();
        let answer = self.conn.send(request).await;
        let latency_us = mono_us() - at;
        let ok = match answer {
            Ok(r) if self.target.published(r.head.status) => true,
            Ok(r) => {
                eprintln!(
                    "publish answered {}: {}",
                    r.head.status,
                    String::from_utf8_lossy(&r.body)
                );
                false
            }
            Err(e) => {
                eprintln!("publish failed: {e:#}");
                false
            }
        };
        Sent {
            marker,
            at,
            latency_us,
            ok,
        }
    }
}

/// `count` events at `per_sec`, each sent on schedule (or as soon as the previous is answered).
pub async fn paced(target: &Target, markers: &Markers, count: usize, per_sec: f64) -> Vec<Sent> {
    let mut p = Publisher::new(target);
    let period = Duration::from_secs_f64(1.0 / per_sec);
    let start = tokio::time::Instant::now();
    let mut sent = Vec::with_capacity(count);
    for k in 0..count {
        tokio::time::sleep_until(start + period * k as u32).await;
        sent.push(p.publish(markers).await);
    }
    sent
}

/// `count` events, each sent when the previous one is answered, for at most `limit`.
pub async fn back_to_back(
    target: &Target,
    markers: &Markers,
    count: usize,
    limit: Duration,
) -> Vec<Sent> {
    let mut p = Publisher::new(target);
    let deadline = mono_us() + limit.as_micros() as u64;
    let mut sent = Vec::with_capacity(count);
    while sent.len() < count && mono_us() < deadline {
        sent.push(p.publish(markers).await);
    }
    sent
}

/// `senders` connections publishing back to back until `count` events are sent in all or
/// `limit` has passed.
pub async fn concurrent(
    target: &Target,
    markers: &Arc<Markers>,
    senders: usize,
    count: usize,
    limit: Duration,
) -> Vec<Sent> {
    let deadline = mono_us() + limit.as_micros() as u64;
    let left = Arc::new(std::sync::atomic::AtomicUsize::new(count));
    let tasks: Vec<_> = (0..senders)
        .map(|_| {
            let (target, markers, left) = (target.clone(), markers.clone(), left.clone());
            tokio::spawn(async move {
                let mut p = Publisher::new(&target);
                let mut sent = Vec::new();
                while mono_us() < deadline && take_one(&left) {
                    sent.push(p.publish(&markers).await);
                }
                sent
            })
        })
        .collect();
    let mut all = Vec::with_capacity(count.min(1 << 16));
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    all
}

fn take_one(left: &std::sync::atomic::AtomicUsize) -> bool {
    use std::sync::atomic::Ordering;
    left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

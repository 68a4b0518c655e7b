//! The soak's checks on its timed streams, which follow every device: each event they may see
//! arrives once and in order (SSE ids increasing by one, no marker twice, none missing), and
//! how long it took from the webhook being sent.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::reader::Sample;
use crate::stats::Latency;

/// Latencies in 100 µs buckets up to 60 s (the exact maximum is kept aside).
pub struct Histogram {
    buckets: Vec<u32>,
    count: u64,
    max_us: u64,
}

const BUCKET_US: u64 = 100;

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            buckets: vec![0; 600_000],
            count: 0,
            max_us: 0,
        }
    }

    pub fn record(&mut self, us: u64) {
        let last = self.buckets.len() - 1;
        self.buckets[((us / BUCKET_US) as usize).min(last)] += 1;
        self.count += 1;
        self.max_us = self.max_us.max(us);
    }

    /// Nearest-rank quantile in ms (the upper edge of its bucket, at most the maximum).
    fn quantile_ms(&self, q: f64) -> f64 {
        let rank = ((q * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += u64::from(*n);
            if seen >= rank {
                let edge = (i as u64 + 1) * BUCKET_US;
                return edge.min(self.max_us) as f64 / 1000.0;
            }
        }
        self.max_us as f64 / 1000.0
    }

    pub fn latency(&self) -> Option<Latency> {
        (self.count > 0).then(|| Latency {
            p50: self.quantile_ms(0.5),
            p99: self.quantile_ms(0.99),
            max: self.max_us as f64 / 1000.0,
            samples: self.count as usize,
        })
    }
}

/// What one timed stream has read so far.
struct Timed {
    last_id: u64,
    /// Bit k: the event of marker `base + k` was read.
    seen: Vec<u64>,
    read: u64,
}

/// Faults found on the timed streams.
#[derive(Debug, Default, Clone, Copy)]
pub struct Faults {
    /// The same SSE id or marker read again.
    pub twice: u64,
    /// An SSE id lower than one read before.
    pub out_of_order: u64,
    /// Ids skipped between two consecutive events (every timed stream follows every device).
    pub id_gaps: u64,
    /// Markers that no publish of the run carries.
    pub unknown: u64,
}

impl Faults {
    pub fn total(&self) -> u64 {
        self.twice + self.out_of_order + self.id_gaps + self.unknown
    }
}

pub struct Checker {
    base: u64,
    /// Events 0..first were published before the streams opened.
    first: usize,
    len: usize,
    streams: BTreeMap<usize, Timed>,
    pub faults: Faults,
    pub latency: Histogram,
}

impl Checker {
    /// `timed`: the timed streams' indices; markers are `base + k` for k in 0..len.
    pub fn new(timed: impl Iterator<Item = usize>, base: u64, first: usize, len: usize) -> Self {
        let words = len.div_ceil(64);
        let streams = timed
            .map(|i| {
                let t = Timed {
                    last_id: 0,
                    seen: vec![0; words],
                    read: 0,
                };
                (i, t)
            })
            .collect();
        Checker {
            base,
            first,
            len,
            streams,
            faults: Faults::default(),
            latency: Histogram::new(),
        }
    }

    /// Checks samples (in the order each stream read them); returns their latencies in ms.
    pub fn feed(&mut self, samples: &[Sample], sent_at: &[AtomicU64]) -> Vec<f64> {
        let mut ms = Vec::new();
        for s in samples {
            let Some(t) = self.streams.get_mut(&s.stream) else {
                continue;
            };
            let f = &mut self.faults;
            // One fault per frame at most: a frame read again is "twice", not also out of order.
            let (mut twice, mut out_of_order) = (false, false);
            if s.id != 0 {
                match t.last_id {
                    0 => {}
                    last if s.id == last => twice = true,
                    last if s.id < last => out_of_order = true,
                    last => f.id_gaps += s.id - last - 1,
                }
                t.last_id = t.last_id.max(s.id);
            }
            let k = s.marker.wrapping_sub(self.base) as usize;
            let known = s.marker != 0 && (self.first..self.len).contains(&k);
            let (word, bit) = (k / 64, 1u64 << (k % 64));
            twice |= known && t.seen[word] & bit != 0;
            if twice {
                f.twice += 1;
                continue;
            }
            if out_of_order {
                f.out_of_order += 1;
            }
            if s.marker == 0 {
                continue;
            }
            if !known {
                f.unknown += 1;
                continue;
            }
            t.seen[word] |= bit;
            t.read += 1;
            let sent = sent_at[k].load(Ordering::Relaxed);
            if sent > 0 {
                let us = s.at.saturating_sub(sent);
                self.latency.record(us);
                ms.push(us as f64 / 1000.0);
            }
        }
        ms
    }

    /// Whether every timed stream has read at least `n` events of the run.
    pub fn all_read(&self, n: u64) -> bool {
        self.streams.values().all(|t| t.read >= n)
    }

    /// (stream, event) pairs answered 2xx but never read; and pairs read though their webhook
    /// was not answered 2xx (stored, answer lost: not a fault of the stream).
    pub fn missing(&self, ok: &[bool]) -> (u64, u64) {
        let (mut missing, mut unconfirmed) = (0, 0);
        for t in self.streams.values() {
            for (k, ok) in ok.iter().enumerate().skip(self.first) {
                let read = t.seen[k / 64] & (1 << (k % 64)) != 0;
                match (ok, read) {
                    (true, false) => missing += 1,
                    (false, true) => unconfirmed += 1,
                    _ => {}
                }
            }
        }
        (missing, unconfirmed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(stream: usize, marker: u64, id: u64, at: u64) -> Sample {
        Sample {
            stream,
            marker,
            id,
            at,
        }
    }

    #[test]
    fn finds_twice_out_of_order_gaps_and_missing() {
        let sent: Vec<AtomicU64> = (0..10).map(|k| AtomicU64::new(1000 + k)).collect();
        let mut c = Checker::new([0usize, 5].into_iter(), 500, 2, 10);
        let ms = c.feed(
            &[
                sample(0, 502, 7, 3002),
                sample(0, 0, 8, 3003), // a status event: id only
                sample(0, 503, 9, 4003),
                sample(0, 503, 9, 4004),  // twice
                sample(0, 505, 12, 5000), // ids 10 and 11 skipped
                sample(0, 504, 11, 5001), // out of order
                sample(5, 900, 1, 5002),  // unknown marker
                sample(3, 502, 7, 3002),  // not a timed stream
            ],
            &sent,
        );
        assert_eq!(ms, vec![2.0, 3.0, 3.995, 3.997]);
        assert_eq!(c.faults.twice, 1);
        assert_eq!(c.faults.out_of_order, 1);
        assert_eq!(c.faults.id_gaps, 2);
        assert_eq!(c.faults.unknown, 1);
        let mut ok = vec![true; 10];
        ok[9] = false;
        // Stream 0 read 2..=5 of 2..=8; stream 5 read none of 2..=8.
        assert_eq!(c.missing(&ok), (3 + 7, 0));
        assert!(c.all_read(0) && !c.all_read(1));
    }

    #[test]
    fn histogram_quantiles() {
        let mut h = Histogram::new();
        for us in 1..=1000 {
            h.record(us * 10);
        }
        let l = h.latency().unwrap();
        assert_eq!((l.p50, l.p99, l.max, l.samples), (5.1, 10.0, 10.0, 1000));
    }
}

//! Percentiles and the results of one server's run.

use crate::catchup::CatchUp;

/// The value at quantile `q` (0..=1) of `values`, nearest-rank.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub samples: usize,
}

impl Latency {
    /// From latencies in milliseconds.
    pub fn of(mut ms: Vec<f64>) -> Option<Latency> {
        ms.sort_by(f64::total_cmp);
        Some(Latency {
            p50: percentile(&ms, 0.50)?,
            p99: percentile(&ms, 0.99)?,
            max: *ms.last()?,
            samples: ms.len(),
        })
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Ingest {
    pub per_s: f64,
    pub latency: Latency,
    pub failed: usize,
}

impl Ingest {
    /// The rate and latency of the webhooks answered 2xx among `sent` over `elapsed_s`.
    pub fn of(sent: &[crate::publish::Sent], elapsed_s: f64) -> Ingest {
        let ok: Vec<f64> = sent
            .iter()
            .filter(|s| s.ok)
            .map(|s| s.latency_us as f64 / 1000.0)
            .collect();
        Ingest {
            per_s: ok.len() as f64 / elapsed_s,
            failed: sent.len() - ok.len(),
            latency: Latency::of(ok).unwrap_or_default(),
        }
    }
}

/// Everything measured on one server; `None` where a phase failed.
#[derive(Debug, Default)]
pub struct Results {
    pub streams: usize,
    pub setup_per_s: Option<f64>,
    /// Server CPU time per stream opened, during the opening.
    pub cpu_us_per_setup: Option<f64>,
    /// The generator processes' CPU time per stream opened (the same client for every server:
    /// a difference here is work the server's answers cause on the client side).
    pub generator_us_per_setup: Option<f64>,
    /// The machine's idle share while the streams were opened: above zero, the rate was bound
    /// by waiting rather than by CPU.
    pub idle_share_setup: Option<f64>,
    /// The set-up rate and server CPU per set-up with a session per stream (sensorcast, on a
    /// fresh server: every session read from the database).
    pub setup_own_sessions_per_s: Option<f64>,
    pub cpu_us_per_setup_own_sessions: Option<f64>,
    pub setup_failed: usize,
    pub rss_per_stream_kib: Option<f64>,
    pub latency: Option<Latency>,
    /// (timed stream, event) pairs never read.
    pub latency_missing: usize,
    /// Server CPU time per (stream, event) delivered, at 4 events/s and at saturation.
    pub cpu_us_per_delivery_light: Option<f64>,
    pub cpu_us_per_delivery_saturated: Option<f64>,
    pub deliveries_per_s: Option<f64>,
    pub published_per_s: Option<f64>,
    /// Streams that had not read every event when the saturation run timed out.
    pub saturation_short: usize,
    pub max_tried: usize,
    pub max_held: Option<usize>,
    pub max_failed: usize,
    pub max_rss_per_stream_kib: Option<f64>,
    pub broadcast_ms: Option<f64>,
    pub ingest: Option<Ingest>,
    pub ingest_pg: Option<Ingest>,
    pub catch_up: Option<CatchUp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&v, 1.0), Some(100.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}

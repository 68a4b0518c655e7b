//! Webhook health for the admin: counters and the most recent rejected deliveries, kept in
//! memory (a rejected delivery stores nothing in the database).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Serialize;

const KEEP: usize = 50;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejected {
    pub at_ms: i64,
    pub source: &'static str,
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct WebhookLabels {
    source: &'static str,
    result: &'static str,
    code: &'static str,
}

#[derive(Debug, Default)]
pub struct WebhookHealth {
    inner: Mutex<Inner>,
    counters: Family<WebhookLabels, Counter>,
}

#[derive(Debug, Default)]
struct Inner {
    accepted: BTreeMap<&'static str, u64>,
    rejected: BTreeMap<(&'static str, &'static str), u64>,
    recent: VecDeque<Rejected>,
    last_accepted_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthSnapshot {
    pub accepted: BTreeMap<&'static str, u64>,
    pub rejected: Vec<(String, String, u64)>,
    pub recent_rejections: Vec<Rejected>,
    pub last_accepted_ms: Option<i64>,
}

impl WebhookHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere must not take health reporting down with it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The Prometheus counters (shared with the registry).
    pub fn counters(&self) -> Family<WebhookLabels, Counter> {
        self.counters.clone()
    }

    pub fn accepted(&self, source: &'static str) {
        let labels = WebhookLabels {
            source,
            result: "accepted",
            code: "",
        };
        self.counters.get_or_create(&labels).inc();
        let mut inner = self.lock();
        *inner.accepted.entry(source).or_default() += 1;
        inner.last_accepted_ms = Some(crate::domain::now_ms());
    }

    pub fn rejected(&self, source: &'static str, code: &'static str, message: &str) {
        tracing::info!(source, code, message, "webhook rejected");
        let labels = WebhookLabels {
            source,
            result: "rejected",
            code,
        };
        self.counters.get_or_create(&labels).inc();
        let mut inner = self.lock();
        *inner.rejected.entry((source, code)).or_default() += 1;
        if inner.recent.len() == KEEP {
            inner.recent.pop_front();
        }
        inner.recent.push_back(Rejected {
            at_ms: crate::domain::now_ms(),
            source,
            code,
            message: super::fields::clip(message, 300),
        });
    }

    pub fn snapshot(&self) -> HealthSnapshot {
        let inner = self.lock();
        HealthSnapshot {
            accepted: inner.accepted.clone(),
            rejected: inner
                .rejected
                .iter()
                .map(|((s, c), n)| (s.to_string(), c.to_string(), *n))
                .collect(),
            recent_rejections: inner.recent.iter().rev().cloned().collect(),
            last_accepted_ms: inner.last_accepted_ms,
        }
    }
}

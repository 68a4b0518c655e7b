//! `/metrics` in Prometheus (OpenMetrics) text: streams, events, webhooks, replays, lag and
//! request latency. One registry per app instance, so tests running several never mix.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::ingest::health::WebhookHealth;
use crate::realtime::hub::Hub;
use crate::state::AppState;
use crate::web::error::ApiError;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteLabels {
    method: String,
    route: String,
    status: u16,
}

type Latency = Family<RouteLabels, Histogram, fn() -> Histogram>;

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    latency: Latency,
    /// Open connections (the accept loop's slots).
    pub connections: Gauge,
    /// Connections refused at `--max-connections`.
    pub connections_refused: Counter,
    /// Connections closed because the client read nothing for `--stall-secs`.
    pub stalled_clients: Counter,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms .. ~8 s
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Metrics {
    pub fn new(hub: &Hub, health: &WebhookHealth) -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("sensorcast");
        let s = &hub.stats;
        registry.register("streams", "Open SSE streams by role", s.clients.clone());
        registry.register(
            "events_broadcast",
            "Events handed to the hub",
            s.events_published.clone(),
        );
        registry.register(
            "frames_sent",
            "Writes to SSE streams",
            s.frames_sent.clone(),
        );
        registry.register(
            "replays",
            "Streams that replayed from a Last-Event-ID",
            s.replays.clone(),
        );
        registry.register(
            "replayed_events",
            "Events sent from the database (replay and catch-up)",
            s.replayed_events.clone(),
        );
        registry.register(
            "lagged",
            "Times a stream fell behind the channel and caught up from the database",
            s.lagged.clone(),
        );
        registry.register(
            "lagging_streams",
            "Streams catching up right now",
            s.lagging_now.clone(),
        );
        registry.register(
            "webhooks",
            "Webhook requests by source, result and error code",
            health.counters(),
        );
        let latency: Latency = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to response headers",
            latency.clone(),
        );
        let connections = Gauge::default();
        registry.register("connections", "Open connections", connections.clone());
        let connections_refused = Counter::default();
        registry.register(
            "connections_refused",
            "Connections answered 503 at once because --max-connections were open",
            connections_refused.clone(),
        );
        let stalled_clients = Counter::default();
        registry.register(
            "stalled_clients",
            "Connections closed because the client read nothing for --stall-secs",
            stalled_clients.clone(),
        );
        Arc::new(Metrics {
            registry,
            latency,
            connections,
            connections_refused,
            stalled_clients,
        })
    }

    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

pub async fn handler(State(state): State<AppState>) -> Response {
    match state.metrics.render() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

/// Records how long each request took to produce its response head, by route template.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    let labels = RouteLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    state
        .metrics
        .latency
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

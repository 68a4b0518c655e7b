//! `/metrics` in Prometheus (OpenMetrics) text: streams, events, webhooks, replays, lag and
//! request latency. One registry per app instance, so tests running several never mix.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::settings::Settings;
use crate::ingest::health::WebhookHealth;
use crate::realtime::hub::Hub;

/// Every value comes from a fixed set (a route template, not a path; a standard method or
/// "other"; a status class), so no request can add a series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteLabels {
    method: &'static str,
    route: String,
    status: &'static str,
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
    /// Raw readings deleted by the retention purge.
    pub readings_purged: Counter,
    /// Streams answered from their session's pass, without the router.
    pub streams_from_pass: Counter,
    /// Streams answered after one read of their session and user, without the router.
    pub streams_from_session: Counter,
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
            "resyncs",
            "Streams sent resync instead of a replay longer than --max-replay-events",
            s.resyncs.clone(),
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
            "direct_streams",
            "Streams a shard thread writes to directly (caught up, served by the raw transport)",
            s.direct_now.clone(),
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
        let readings_purged = Counter::default();
        registry.register(
            "readings_purged",
            "Raw readings deleted past --retention-days (their summaries are kept)",
            readings_purged.clone(),
        );
        let streams_from_pass = Counter::default();
        registry.register(
            "streams_from_pass",
            "Streams answered from a session checked within the last second, without the router",
            streams_from_pass.clone(),
        );
        let streams_from_session = Counter::default();
        registry.register(
            "streams_from_session",
            "Streams answered after one read of their session and user, without the router",
            streams_from_session.clone(),
        );
        Arc::new(Metrics {
            readings_purged,
            streams_from_pass,
            streams_from_session,
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

pub async fn handler(
    State(metrics): State<Arc<Metrics>>,
    State(settings): State<Arc<Settings>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let peer = peer.map(|Extension(ConnectInfo(addr))| addr);
    if let Some(refused) = refusal(settings.metrics_token.as_deref(), peer, &headers) {
        return refused;
    }
    match metrics.render() {
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

fn method_label(method: &Method) -> &'static str {
    static STANDARD: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::CONNECT,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ];
    STANDARD
        .iter()
        .find(|m| *m == method)
        .map_or("other", Method::as_str)
}

fn status_label(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Who may read the metrics. With `--metrics-token`: its bearer, from anywhere. Without: only
/// a scraper on this machine talking to us directly. A request through a reverse proxy comes
/// from a loopback peer too, but names its client in a forwarding header (nginx always sets
/// one), so a proxy in front never makes the metrics public by accident.
fn refusal(token: Option<&str>, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<Response> {
    if let Some(token) = token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        let (code, message) = match given {
            Some(t) if bool::from(t.as_bytes().ct_eq(token.as_bytes())) => return None,
            Some(_) => ("metrics_token_invalid", "The metrics token does not match."),
            None => (
                "metrics_token_missing",
                "Send the metrics token as Authorization: Bearer TOKEN.",
            ),
        };
        let mut refused = ApiError::unauthorized(code, message).into_response();
        refused.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"metrics\""),
        );
        return Some(refused);
    }
    let local = peer.is_some_and(|p| p.ip().to_canonical().is_loopback());
    let proxied = ["forwarded", "x-forwarded-for", "x-real-ip"]
        .iter()
        .any(|h| headers.contains_key(*h));
    (!local || proxied).then(|| ApiError::forbidden().into_response())
}

/// Records how long each request took to produce its response head, by route template.
/// Also layered on the fallback, where no route matched: those share the route "unmatched".
/// Records one request's time to its response head under its route.
pub fn observe(
    metrics: &Metrics,
    method: &Method,
    route: &str,
    status: StatusCode,
    started: Instant,
) {
    let labels = RouteLabels {
        method: method_label(method),
        route: route.to_string(),
        status: status_label(status),
    };
    metrics
        .latency
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
}

pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    observe(&metrics, &method, &route, response.status(), started);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_a_fixed_set() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let made_up = Method::from_bytes(b"XFOO").unwrap();
        assert_eq!(method_label(&made_up), "other");
        assert_eq!(status_label(StatusCode::OK), "2xx");
        assert_eq!(status_label(StatusCode::PERMANENT_REDIRECT), "3xx");
        assert_eq!(status_label(StatusCode::NOT_FOUND), "4xx");
        assert_eq!(status_label(StatusCode::from_u16(599).unwrap()), "5xx");
    }

    #[test]
    fn metrics_are_for_the_token_or_a_direct_local_peer() {
        let local: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:9000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.1:9000".parse().unwrap();
        let none = HeaderMap::new();
        let status = |r: Option<Response>| r.map_or(200, |r| r.status().as_u16());
        assert_eq!(status(refusal(None, Some(local), &none)), 200);
        assert_eq!(status(refusal(None, Some(mapped), &none)), 200);
        assert_eq!(status(refusal(None, Some(remote), &none)), 403);
        assert_eq!(status(refusal(None, None, &none)), 403);
        let mut proxied = HeaderMap::new();
        proxied.insert("x-forwarded-for", HeaderValue::from_static("192.0.2.9"));
        assert_eq!(status(refusal(None, Some(local), &proxied)), 403);

        let mut bearer = HeaderMap::new();
        bearer.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer s3cret"),
        );
        assert_eq!(status(refusal(Some("s3cret"), Some(remote), &bearer)), 200);
        assert_eq!(status(refusal(Some("other"), Some(local), &bearer)), 401);
        let refused = refusal(Some("s3cret"), Some(local), &none).unwrap();
        assert_eq!(refused.status(), 401);
        assert_eq!(
            refused.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"metrics\""
        );
    }
}

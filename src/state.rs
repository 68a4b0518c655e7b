//! The one application state, and the settings derived from the command line.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use tokio_util::sync::CancellationToken;

use crate::config::{ServeArgs, StreamTransport, WebhookSecrets};
use crate::ingest::health::WebhookHealth;
use crate::ingest::ts302::Variant;
use crate::realtime::hub::Hub;
use crate::realtime::limits::StreamLimits;
use crate::store::writer::Writer;
use crate::store::Db;

/// Settings validated once at start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub webhook_secrets: WebhookSecrets,
    pub gateway_token: Option<String>,
    pub keepalive: Duration,
    pub signature_window_s: i64,
    pub max_body_bytes: usize,
    /// Slowest a webhook request may be (a body trickled byte by byte is cut off with 408).
    pub webhook_timeout: Duration,
    pub ts302_default: Variant,
    pub report_interval_s: i64,
    pub cookie_secure: bool,
    pub stream_threads: usize,
    pub stream_transport: StreamTransport,
    /// Open connections allowed (0: no cap).
    pub max_connections: usize,
    /// For a request head (and an idle keep-alive connection).
    pub head_timeout: Duration,
    /// For a request body, from the end of its head.
    pub body_timeout: Duration,
    /// For any request but a stream, from the end of its head to its answer.
    pub request_timeout: Duration,
    /// Longest a write may wait for a client that reads nothing.
    pub stall: Duration,
}

impl Settings {
    pub fn from_args(args: &ServeArgs) -> Settings {
        Settings {
            webhook_secrets: WebhookSecrets::parse(args.webhook_secret.as_deref()),
            gateway_token: args.gateway_token.clone().filter(|t| !t.is_empty()),
            keepalive: Duration::from_secs(args.keepalive_secs),
            signature_window_s: args.signature_window_secs as i64,
            max_body_bytes: args.max_body_bytes,
            webhook_timeout: Duration::from_secs(args.webhook_timeout_secs),
            ts302_default: args.ts302_variant,
            report_interval_s: args.report_interval_secs,
            cookie_secure: args.cookie_secure,
            stream_threads: args.stream_threads,
            stream_transport: args.stream_transport,
            max_connections: args.max_connections,
            head_timeout: Duration::from_secs(args.head_timeout_secs),
            body_timeout: Duration::from_secs(args.body_timeout_secs),
            request_timeout: Duration::from_secs(args.request_timeout_secs),
            stall: Duration::from_secs(args.stall_secs),
        }
    }
}

#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: Db,
    pub writer: Writer,
    pub hub: Arc<Hub>,
    pub settings: Arc<Settings>,
    pub limits: Arc<StreamLimits>,
    pub health: Arc<WebhookHealth>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Cancelled on shutdown: stops the background tasks, and the hub then ends every stream.
    pub shutdown: CancellationToken,
}

//! The settings the web layer (and the server above it) runs with, validated once at start.

use std::time::Duration;

use super::proxies::TrustedProxies;
use crate::ingest::secrets::WebhookSecrets;
use crate::ingest::ts302::Variant;

/// Settings validated once at start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub webhook_secrets: WebhookSecrets,
    pub gateway_token: Option<String>,
    pub keepalive: Duration,
    /// Longest replay before a stream is told to `resync` instead.
    pub max_replay_events: i64,
    pub signature_window_s: i64,
    pub max_body_bytes: usize,
    /// Slowest a webhook request may be (a body trickled byte by byte is cut off with 408).
    pub webhook_timeout: Duration,
    pub ts302_default: Variant,
    pub report_interval_s: i64,
    /// The time zone of sites without one of their own (`--time-zone`).
    pub time_zone: jiff::tz::TimeZone,
    pub time_zone_name: String,
    pub cookie_secure: bool,
    pub stream_threads: usize,
    pub trusted_proxies: TrustedProxies,
    pub metrics_token: Option<String>,
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
    /// An SMTP server is configured (the admin's notification page says so when not).
    pub smtp_configured: bool,
    /// The flood guard's limit (alarm emails or pushes per person an hour; 0: none), shown to
    /// admins.
    pub notify_max_per_hour: u64,
    /// Accept push subscriptions to plain-HTTP endpoints (only a test's own push service).
    pub push_allow_http: bool,
}

/// How streams are written on the wire (see `src/server/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StreamTransport {
    Raw,
    Hyper,
}

//! The one application state every handler gets.

use std::sync::Arc;

use axum::extract::FromRef;
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
pub use super::settings::{Settings, StreamTransport};
use crate::downlink::Downlink;
use crate::ingest::health::WebhookHealth;
use crate::realtime::hub::Hub;
use crate::realtime::limits::StreamLimits;
use crate::store::{Store, Writer};

#[derive(Clone, FromRef)]
pub struct AppState {
    pub store: Store,
    pub writer: Writer,
    pub hub: Arc<Hub>,
    pub settings: Arc<Settings>,
    pub limits: Arc<StreamLimits>,
    pub health: Arc<WebhookHealth>,
    pub metrics: Arc<Metrics>,
    /// The dispatcher of device commands; `None` when the gateway API is not configured.
    pub downlink: Option<Downlink>,
    /// Cancelled on shutdown: stops the background tasks, and the hub then ends every stream.
    pub shutdown: CancellationToken,
}

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

/// Cloned for every extractor and layer of every request: one reference count, not one per
/// part (a stream set-up spent 5 % of its time cloning and dropping the parts).
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl AppState {
    pub fn new(parts: AppParts) -> AppState {
        AppState(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;
    fn deref(&self) -> &AppParts {
        &self.0
    }
}

impl FromRef<AppState> for Arc<Metrics> {
    fn from_ref(state: &AppState) -> Arc<Metrics> {
        state.metrics.clone()
    }
}

impl FromRef<AppState> for Arc<Settings> {
    fn from_ref(state: &AppState) -> Arc<Settings> {
        state.settings.clone()
    }
}

pub struct AppParts {
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

//! Web: sessions, sign-in, pages, the JSON API and operator endpoints.

pub mod api;
pub mod auth;
pub mod error;
pub mod pages;
pub mod password;

use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::state::AppState;
use crate::store::dispatch;
use crate::store::sessions::DbSessionStore;
use error::ApiError;

pub const SESSION_COOKIE: &str = "sensorcast_session";

/// Routes that need a browser session.
pub fn routes(state: &AppState) -> Router<AppState> {
    let sessions = SessionManagerLayer::new(DbSessionStore::new(state.db.clone()))
        .with_name(SESSION_COOKIE)
        .with_secure(state.settings.cookie_secure)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_expiry(Expiry::OnInactivity(time::Duration::days(7)));
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/admin", get(pages::admin))
        .route("/manager", get(pages::manager))
        .route("/employee", get(pages::employee))
        .route("/api/devices", get(api::devices))
        .route("/api/devices/{device_id}/telemetry", get(api::telemetry))
        .route("/api/realtime", get(crate::realtime::stream::realtime))
        .route("/api/realtime/stats", get(api::realtime_stats))
        .layer(sessions)
}

/// Operator endpoints and static files: no session.
pub fn public_routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/static/realtime.js", get(realtime_js))
        .route("/static/app.css", get(app_css))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    dispatch!(&state.db, |pool, q| q::ping(pool).await).map_err(|e| ApiError::unavailable(e))?;
    Ok(Json(json!({ "status": "ready" })))
}

async fn realtime_js() -> Response {
    static_file(
        "text/javascript; charset=utf-8",
        include_str!("../../static/realtime.js"),
    )
}

async fn app_css() -> Response {
    static_file(
        "text/css; charset=utf-8",
        include_str!("../../static/app.css"),
    )
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// Unknown paths: JSON under /api, plain text elsewhere.
pub async fn not_found(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        ApiError::not_found("endpoint").into_response()
    } else {
        (StatusCode::NOT_FOUND, "Not found").into_response()
    }
}

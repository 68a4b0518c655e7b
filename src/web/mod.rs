//! Web: sessions, sign-in, pages, the JSON API and operator endpoints.

pub mod admin;
pub mod api;
pub mod auth;
pub mod csrf;
pub mod devices;
pub mod error;
pub mod form;
pub mod layout;
pub mod pages;
pub mod password;
pub mod records;
pub mod throttle;
pub mod view;

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{header, HeaderValue, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::json;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::state::AppState;
use crate::store::dispatch;
use crate::store::sessions::DbSessionStore;
use error::{ApiError, PageError};

pub const SESSION_COOKIE: &str = "sensorcast_session";

/// Pages may load only our own script and style, and never be framed.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'";

/// Routes that need a browser session. Every unsafe method passes the anti-forgery guard.
pub fn routes(state: &AppState) -> Router<AppState> {
    let sessions = SessionManagerLayer::new(DbSessionStore::new(state.db.clone()))
        .with_name(SESSION_COOKIE)
        .with_secure(state.settings.cookie_secure)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_expiry(Expiry::OnInactivity(time::Duration::days(7)));
    let csrf_keys = Arc::new(csrf::Keys::new(
        state.db.clone(),
        state.settings.cookie_secure,
    ));
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/admin", get(admin::page))
        .route("/admin/users", post(admin::create_user))
        .route("/admin/users/{id}", post(admin::update_user))
        .route("/admin/users/{id}/disable", post(admin::disable_user))
        .route("/admin/users/{id}/enable", post(admin::enable_user))
        .route(
            "/admin/devices/{device_id}/site",
            post(admin::assign_device),
        )
        .route("/manager", get(pages::manager))
        .route("/employee", get(pages::employee))
        .route("/devices/{device_id}", get(devices::detail))
        .route("/devices/{device_id}/export.csv", get(devices::export_csv))
        .route("/api/me", get(api::me))
        .route("/api/devices", get(api::devices))
        .route("/api/devices/{device_id}/telemetry", get(api::telemetry))
        .route("/api/realtime", get(crate::realtime::stream::realtime))
        .route("/api/realtime/stats", get(api::realtime_stats))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(csrf::guard))
        .layer(sessions)
        .layer(Extension(csrf_keys))
        .layer(middleware::map_response(security_headers))
}

/// Defence in depth for every page: a strict content policy, no framing, no sniffing.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    response
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
    dispatch!(&state.db, |pool, q| q::ping(pool).await).map_err(ApiError::unavailable)?;
    Ok(Json(json!({ "status": "ready" })))
}

const REALTIME_JS: &str = include_str!("../../static/realtime.js");
const APP_CSS: &str = include_str!("../../static/app.css");

/// Changes whenever a static file does, so pages can let browsers cache them.
pub fn asset_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        // FNV-1a: tiny, stable, and enough to tell versions apart.
        let hash = REALTIME_JS
            .bytes()
            .chain(APP_CSS.bytes())
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
        format!("{:08x}", hash as u32)
    })
}

async fn realtime_js() -> Response {
    static_file("text/javascript; charset=utf-8", REALTIME_JS)
}

async fn app_css() -> Response {
    static_file("text/css; charset=utf-8", APP_CSS)
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// A known path asked with the wrong method: JSON under /api, a page elsewhere.
async fn method_not_allowed(uri: Uri) -> Response {
    let status = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    if uri.path().starts_with("/api/") {
        ApiError::new(
            status,
            "method_not_allowed",
            "This endpoint does not take that method.",
        )
        .into_response()
    } else {
        PageError::new(
            status,
            "Not here",
            "This address does not take that kind of request.",
        )
        .into_response()
    }
}

/// Unknown paths: JSON under /api, a page elsewhere.
pub async fn not_found(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        ApiError::not_found("endpoint").into_response()
    } else {
        PageError::not_found().into_response()
    }
}

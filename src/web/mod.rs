//! Web: everything HTTP. Sessions and sign-in, the pages, the JSON API, the webhook endpoints,
//! the `/api/realtime` handler, operator endpoints and metrics, and the one `AppState`.

pub mod accounts;
pub mod admin;
pub mod alarm_forms;
pub mod alarms;
pub mod api;
pub mod audit;
pub mod auth;
pub mod charts;
pub mod commands;
pub mod csrf;
pub mod csv;
pub mod devices;
pub mod error;
pub mod extract;
pub mod flash;
pub mod form;
pub mod layout;
pub mod metrics;
pub mod notifications;
pub mod openapi;
pub mod pages;
pub mod panics;
pub mod password;
pub mod proxies;
pub mod push;
pub mod realtime;
pub mod reports;
pub mod settings;
pub mod state;
pub mod throttle;
pub mod view;
pub mod webhooks;

use std::sync::{Arc, OnceLock};

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::json;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::store::sessions::DbSessionStore;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use error::{ApiError, PageError};
use state::AppState;

pub const SESSION_COOKIE: &str = "sensorcast_session";

/// Pages may load only our own script and style, and never be framed.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'";

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let request_id = axum::http::HeaderName::from_static("x-request-id");
    Router::new()
        .merge(webhooks::routes())
        .merge(routes(&state))
        .merge(public_routes())
        .route("/metrics", axum::routing::get(metrics::handler))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        // Timed too, all under the one route "unmatched".
        .fallback_service(
            axum::routing::any(not_found)
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    metrics::track,
                ))
                .with_state(state.clone()),
        )
        .layer(middleware::from_fn(panics::answer_panics))
        .layer(middleware::map_response(security_headers))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// Each request's log lines carry its method, path and request id.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
}

/// Routes that need a browser session. Every unsafe method passes the anti-forgery guard.
fn routes(state: &AppState) -> Router<AppState> {
    let sessions = SessionManagerLayer::new(DbSessionStore::new(state.store.clone()))
        .with_name(SESSION_COOKIE)
        .with_secure(state.settings.cookie_secure)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_expiry(Expiry::OnInactivity(time::Duration::days(7)));
    let csrf_keys = Arc::new(csrf::Keys::new(
        state.store.clone(),
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
        .route("/admin/audit", get(audit::page))
        .route("/admin/notifications", get(notifications::page))
        .route(
            "/admin/notifications/webhooks",
            post(notifications::add_webhook),
        )
        .route(
            "/admin/notifications/webhooks/{id}/delete",
            post(notifications::remove_webhook),
        )
        .route("/admin/notifications/test", post(notifications::send_test))
        .route(
            "/settings",
            get(notifications::settings).post(notifications::save_settings),
        )
        .route("/admin/audit.csv", get(audit::csv))
        .route("/manager", get(pages::manager))
        .route("/employee", get(pages::employee))
        .route("/devices/{device_id}", get(devices::detail))
        .route("/devices/{device_id}/export.csv", get(devices::export_csv))
        .route(
            "/devices/{device_id}/commands",
            post(commands::request_form),
        )
        .route("/devices/{device_id}/rules", post(alarm_forms::rules))
        .route(
            "/alarms/{alarm_id}/acknowledge",
            post(alarm_forms::acknowledge),
        )
        .route(
            "/admin/sites/{site_id}/timezone",
            post(reports::set_time_zone),
        )
        .route("/sites/{site_id}/report", get(reports::page))
        .route("/sites/{site_id}/report.csv", get(reports::csv))
        .route("/sites/{site_id}/report/review", post(reports::review))
        .route("/api/sites", get(reports::api_sites))
        .route("/api/me", get(api::me))
        .route("/api/devices", get(api::devices))
        .route("/api/devices/{device_id}/telemetry", get(api::telemetry))
        .route("/api/devices/{device_id}/summaries", get(charts::summaries))
        .route(
            "/api/devices/{device_id}/rules",
            get(alarms::rules).put(alarms::put_rules),
        )
        .route(
            "/api/devices/{device_id}/commands",
            get(commands::list).post(commands::request),
        )
        .route("/api/alarms", get(alarms::list))
        .route(
            "/api/alarms/{alarm_id}/acknowledge",
            post(alarms::acknowledge),
        )
        .route("/api/audit", get(audit::api))
        .route("/api/push/key", get(push::key))
        .route(
            "/api/push/subscriptions",
            post(push::subscribe).delete(push::unsubscribe),
        )
        .route("/api/realtime", get(realtime::realtime))
        .route("/api/realtime/stats", get(api::realtime_stats))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(csrf::guard))
        .layer(sessions)
        .layer(Extension(csrf_keys))
}

/// Defence in depth on every response the app gives (pages, JSON, webhooks, errors, static
/// files, streams: the raw stream path writes these too): a strict content policy, no framing,
/// no sniffing. Nothing is cached unless its handler says so (static files; the event stream's
/// `no-cache` is part of the contract): pages and JSON hold one user's data.
pub async fn security_headers(mut response: Response) -> Response {
    secure(response.headers_mut());
    response
}

/// `security_headers`, on a head built outside the router.
pub fn secure(headers: &mut axum::http::HeaderMap) {
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
}

/// Operator endpoints, static files and the API's description: no session.
fn public_routes() -> Router<AppState> {
    Router::new()
        .route("/api/openapi.json", get(openapi::document))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/static/sw.js", get(push::service_worker))
        .route("/static/{version}/{*file}", get(asset))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the database answers and the writer runs (without it no webhook can be stored).
async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    state.store.ping().await.map_err(ApiError::unavailable)?;
    if !state.writer.is_running() {
        return Err(ApiError::unavailable("the writer has stopped"));
    }
    Ok(Json(json!({ "status": "ready" })))
}

const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// A file of static/, embedded: its path there, content type and body.
macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        (
            $path,
            $content_type,
            include_str!(concat!("../../static/", $path)),
        )
    };
}

/// The files under static/, in the binary. The page loads js/main.js as a module; it imports
/// the others.
const ASSETS: &[(&str, &str, &str)] = &[
    asset!("app.css", CSS),
    asset!("js/main.js", JS),
    asset!("js/live.js", JS),
    asset!("js/alarms.js", JS),
    asset!("js/stream.js", JS),
    asset!("js/tabs.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/format.js", JS),
    asset!("js/chart.js", JS),
    asset!("js/push.js", JS),
    asset!("js/commands.js", JS),
];

/// The script modules, for pages to preload them all at once.
pub fn js_modules() -> impl Iterator<Item = &'static str> {
    ASSETS
        .iter()
        .filter(|(_, kind, _)| *kind == JS)
        .map(|(path, ..)| *path)
}

/// Changes whenever a static file does. Pages name it in every static path
/// (`/static/{version}/...`), so module imports such as `./format.js` stay in one version.
pub fn asset_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        // FNV-1a: tiny, stable, and enough to tell versions apart.
        let hash = ASSETS
            .iter()
            .flat_map(|(path, _, body)| path.bytes().chain(body.bytes()))
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
        format!("{:08x}", hash as u32)
    })
}

/// A static file. This build's version may be cached for good: a new build has a new version,
/// so a browser never runs an old module against a new page. Another version (a page from
/// another build, e.g. during a rolling upgrade) gets this build's file, never to be cached.
async fn asset(Path((version, file)): Path<(String, String)>) -> Response {
    let Some((_, content_type, body)) = ASSETS.iter().find(|(path, ..)| *path == file) else {
        return PageError::not_found().into_response();
    };
    let cache = if version == asset_version() {
        "public, max-age=31536000, immutable"
    } else {
        "no-store"
    };
    (
        [
            (header::CONTENT_TYPE, *content_type),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        *body,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn static_files_are_cached_only_in_their_own_version() {
        let current = asset_version().to_string();
        let r = asset(Path((current.clone(), "js/main.js".into()))).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[header::CONTENT_TYPE], JS);
        assert_eq!(
            r.headers()[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        let css = asset(Path((current.clone(), "app.css".into()))).await;
        assert_eq!(css.headers()[header::CONTENT_TYPE], CSS);
        let other = asset(Path(("00000000".into(), "js/format.js".into()))).await;
        assert_eq!(other.status(), 200);
        assert_eq!(other.headers()[header::CACHE_CONTROL], "no-store");
        for missing in ["js/nope.js", "realtime.js", "../Cargo.toml", ""] {
            let r = asset(Path((current.clone(), missing.into()))).await;
            assert_eq!(r.status(), 404, "{missing}");
        }
    }

    /// A module that imports a file the binary does not embed would fail in the browser only.
    #[test]
    fn every_module_import_is_served() {
        let modules: Vec<&str> = js_modules().collect();
        assert!(modules.contains(&"js/main.js"));
        for (path, _, body) in ASSETS.iter().filter(|(_, kind, _)| *kind == JS) {
            for (_, rest) in body
                .match_indices(" from \"./")
                .map(|(i, _)| body.split_at(i + 9))
            {
                let name = rest.split('"').next().unwrap_or_default();
                assert!(
                    modules.contains(&format!("js/{name}").as_str()),
                    "{path} imports ./{name}, which is not in ASSETS"
                );
            }
        }
    }
}

//! sensorcast: Milesight IoT webhooks in, live role-scoped browser dashboards out.
//!
//! Data path: `ingest` (verify → parse → decode) → `store` (one transaction, event log) →
//! `realtime` (hub of pre-encoded frames → SSE streams) → `web` (sessions, pages, JSON).

pub mod config;
pub mod demo;
pub mod ingest;
pub mod metrics;
pub mod realtime;
mod server;
pub mod state;
pub mod store;
pub mod web;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use server::serve;

use config::ServeArgs;
use realtime::hub::Hub;
use realtime::limits::StreamLimits;
use state::{AppState, Settings};
use store::writer::{OfflinePolicy, Publisher, Writer};
use store::{dispatch, Db};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let request_id = axum::http::HeaderName::from_static("x-request-id");
    let ingest = ingest::http::routes();
    Router::new()
        .merge(ingest)
        .merge(web::routes(&state))
        .merge(web::public_routes())
        .route("/metrics", axum::routing::get(metrics::handler))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .fallback(web::not_found)
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

/// Connects the database, creates the first admin if asked, and starts the writer and watchdog.
pub async fn build_state(database_url: &str, args: &ServeArgs) -> anyhow::Result<AppState> {
    let db = Db::connect(database_url).await?;
    bootstrap_admin(&db, args).await?;
    let last_id = dispatch!(&db, |pool, q| q::max_event_id(pool).await)?;
    let hub = Hub::new(args.broadcast_capacity, last_id);
    let shutdown = CancellationToken::new();
    let publisher = match &db {
        Db::Sqlite(_) => Publisher::Direct(hub.clone()),
        Db::Postgres(pool) => Publisher::ViaLog(
            realtime::feeder::spawn(pool.clone(), hub.clone(), shutdown.clone()).await?,
        ),
    };
    let policy = OfflinePolicy {
        default_interval_s: args.report_interval_secs,
        grace_s: args.offline_grace_secs,
    };
    let writer = Writer::spawn(db.clone(), publisher, policy);
    let sweep = Duration::from_secs(args.offline_sweep_secs);
    store::writer::spawn_watchdog(writer.clone(), sweep, shutdown.clone());
    spawn_housekeeping(db.clone(), shutdown.clone());
    tokio::spawn({
        let (hub, shutdown) = (hub.clone(), shutdown.clone());
        async move {
            shutdown.cancelled().await;
            hub.close();
        }
    });
    let health: Arc<ingest::health::WebhookHealth> = Default::default();
    let metrics = metrics::Metrics::new(&hub, &health);
    Ok(AppState {
        db,
        writer,
        hub,
        settings: Arc::new(Settings::from_args(args)),
        limits: StreamLimits::new(args.max_streams_per_user, args.max_streams),
        health,
        metrics,
        shutdown,
    })
}

async fn bootstrap_admin(db: &Db, args: &ServeArgs) -> anyhow::Result<()> {
    let users = dispatch!(db, |pool, q| q::count_users(pool).await)?;
    match (&args.admin_email, &args.admin_password) {
        (Some(email), Some(password)) if users == 0 => {
            store::users::create_user(db, email, password, store::Role::Admin, &[]).await?;
            tracing::info!(%email, "created the first admin");
        }
        (Some(_), None) | (None, Some(_)) => {
            anyhow::bail!("--admin-email and --admin-password go together")
        }
        _ if users == 0 => tracing::warn!(
            "no user exists yet: start with --admin-email and --admin-password, or run `sensorcast user add`"
        ),
        _ => {}
    }
    Ok(())
}

/// Drops expired sessions, old nonces and old sign-in attempts now and then.
fn spawn_housekeeping(db: Db, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            let now = now_ms();
            let cutoff = now - 3_600_000;
            let result = dispatch!(&db, |pool, q| {
                let nonces = q::purge_nonces(pool, cutoff).await;
                let sessions = q::sessions_purge_expired(pool, now).await;
                nonces.and(sessions)
            });
            if let Err(e) = result {
                tracing::warn!(error = %e, "housekeeping failed");
            }
            if let Err(e) = web::throttle::purge(&db).await {
                tracing::warn!(error = %e, "purging old sign-in attempts failed");
            }
        }
    });
}

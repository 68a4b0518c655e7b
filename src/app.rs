//! Assembly: from the command line's settings to a running application — the store, the hub,
//! the writer and its publisher, and the background tasks (the router is `web::router`).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::ServeArgs;
use crate::domain::{now_ms, Role};
use crate::downlink::{self, DispatchSettings, GatewayApi};
use crate::ingest::health::WebhookHealth;
use crate::ingest::secrets::WebhookSecrets;
use crate::notify::NotifySettings;
use crate::realtime::feeder;
use crate::realtime::hub::Hub;
use crate::realtime::limits::StreamLimits;
use crate::store::{OfflinePolicy, Publisher, Store, Writer};
use crate::web::accounts;
use crate::web::metrics::Metrics;
use crate::web::state::{AppParts, AppState, Settings};

pub fn settings(args: &ServeArgs) -> Settings {
    Settings {
        webhook_secrets: WebhookSecrets::parse(args.webhook_secret.as_deref()),
        gateway_token: args.gateway_token.clone().filter(|t| !t.is_empty()),
        keepalive: Duration::from_secs(args.keepalive_secs),
        max_replay_events: args.max_replay_events,
        // Bounded here too, for settings built without the command line.
        signature_window_s: args
            .signature_window_secs
            .min(crate::config::MAX_SIGNATURE_WINDOW_SECS) as i64,
        max_body_bytes: args.max_body_bytes,
        webhook_timeout: Duration::from_secs(args.webhook_timeout_secs),
        ts302_default: args.ts302_variant,
        report_interval_s: args.report_interval_secs,
        time_zone: crate::domain::parse_time_zone(&args.time_zone)
            .unwrap_or(jiff::tz::TimeZone::UTC),
        time_zone_name: args.time_zone.clone(),
        cookie_secure: args.cookie_secure,
        stream_threads: args.stream_threads,
        trusted_proxies: args.trusted_proxies.clone(),
        metrics_token: args.metrics_token.clone().filter(|t| !t.is_empty()),
        stream_transport: args.stream_transport,
        max_connections: args.max_connections,
        head_timeout: Duration::from_secs(args.head_timeout_secs),
        body_timeout: Duration::from_secs(args.body_timeout_secs),
        request_timeout: Duration::from_secs(args.request_timeout_secs),
        stall: Duration::from_secs(args.stall_secs),
        smtp_configured: args.smtp_url.is_some(),
        notify_max_per_hour: args.notify_max_per_hour,
        push_allow_http: args.push_insecure_endpoints,
    }
}

/// Connects the database, creates the first admin if asked, and starts the writer, the
/// feeder (PostgreSQL) and the background tasks.
pub async fn build_state(database_url: &str, args: &ServeArgs) -> anyhow::Result<AppState> {
    let store = Store::open(database_url).await?;
    bootstrap_admin(&store, args).await?;
    let hub = Hub::new(args.broadcast_capacity, store.max_event_id().await?);
    // As many shard threads as stream threads: each writes its share of the caught-up streams.
    hub.start_direct(args.stream_threads.max(1))?;
    let shutdown = CancellationToken::new();
    // Several instances: events reach the hub through the shared log, in one order for all.
    let publisher: Arc<dyn Publisher> = match store.listen().await? {
        Some(changes) => feeder::spawn(store.clone(), changes, hub.clone(), shutdown.clone()).await,
        None => hub.clone(),
    };
    let policy = OfflinePolicy {
        default_interval_s: args.report_interval_secs,
        grace_s: args.offline_grace_secs,
    };
    let writer = Writer::spawn(&store, publisher, policy);
    let sweep = Duration::from_secs(args.offline_sweep_secs);
    let command_timeout = Duration::from_secs(args.command_timeout_mins * 60);
    crate::store::spawn_watchdog(writer.clone(), sweep, command_timeout, shutdown.clone());
    let downlink = gateway_api(args)?.map(|api| {
        let settings = DispatchSettings {
            api,
            retry_base: Duration::from_secs(args.gateway_api_retry_secs),
        };
        downlink::spawn(store.clone(), writer.clone(), settings, shutdown.clone())
    });
    spawn_housekeeping(store.clone(), shutdown.clone());
    let health: Arc<WebhookHealth> = Default::default();
    let metrics = Metrics::new(&hub, &health);
    if args.retention_days > 0 {
        let purged = metrics.readings_purged.clone();
        let days = args.retention_days;
        crate::store::spawn_retention(writer.clone(), days, purged, shutdown.clone());
    }
    let public_url = match &args.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => format!("http://{}", args.listen),
    };
    let notify = NotifySettings {
        smtp_url: args.smtp_url.clone(),
        smtp_from: args.smtp_from.clone(),
        public_url,
        escalate_after: Duration::from_secs(
            args.escalate_after_secs
                .unwrap_or(args.escalate_after_mins * 60),
        ),
        retry_base: Duration::from_secs(args.notify_retry_secs),
        attempt_timeout: Duration::from_secs(args.notify_timeout_secs),
        max_per_window: args.notify_max_per_hour as i64,
        flood_window: Duration::from_secs(args.notify_flood_window_secs),
    };
    crate::notify::spawn(store.clone(), writer.clone(), notify, shutdown.clone()).await?;
    tokio::spawn({
        let (hub, shutdown) = (hub.clone(), shutdown.clone());
        async move {
            shutdown.cancelled().await;
            hub.close();
        }
    });
    Ok(AppState::new(AppParts {
        store,
        writer,
        hub,
        settings: Arc::new(settings(args)),
        limits: StreamLimits::new(args.max_streams_per_user, args.max_streams),
        health,
        metrics,
        downlink,
        shutdown,
    }))
}

/// The gateway API settings, when `--gateway-api-url` is given (then user and password too).
fn gateway_api(args: &ServeArgs) -> anyhow::Result<Option<GatewayApi>> {
    let Some(url) = args
        .gateway_api_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
    else {
        return Ok(None);
    };
    let user = args.gateway_api_user.as_deref().unwrap_or_default();
    let password = args.gateway_api_password.as_deref().unwrap_or_default();
    let api = GatewayApi::new(url, user, password).map_err(anyhow::Error::msg)?;
    tracing::info!(url = %api.url, user = %api.user, "device commands go through the gateway API");
    Ok(Some(api))
}

async fn bootstrap_admin(store: &Store, args: &ServeArgs) -> anyhow::Result<()> {
    let users = store.count_users().await?;
    match (&args.admin_email, &args.admin_password) {
        (Some(email), Some(password)) if users == 0 => {
            accounts::create(store, email, password, Role::Admin, &[], "start-up").await?;
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
fn spawn_housekeeping(store: Store, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            let cutoff = now_ms() - crate::config::NONCE_KEEP_SECS as i64 * 1000;
            let nonces = store.purge_nonces(cutoff).await;
            let sessions = store.purge_expired_sessions().await;
            let attempts = crate::web::throttle::purge(&store).await;
            if let Err(e) = nonces.and(sessions).and(attempts) {
                tracing::warn!(error = %e, "housekeeping failed");
            }
        }
    });
}

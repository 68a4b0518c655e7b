//! PostgreSQL, several instances: every instance feeds its hub from the shared event log, in id
//! order, woken by LISTEN/NOTIFY (and by its own writer). Because ids become visible in
//! increasing order (advisory lock), reading `id > last` never skips an event, so every instance
//! delivers the same events in the same order with the same ids.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::events::encode_frame;
use super::hub::{Frame, Hub};
use crate::store::postgres::{self as q, CONTROL_CHANNEL, EVENTS_CHANNEL};
use crate::store::Scope;

const PAGE: i64 = 1000;
/// Re-reads the log this often even without a notification (one lost while reconnecting).
const SAFETY_POLL: Duration = Duration::from_secs(1);

async fn listen(pool: &PgPool) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener
        .listen_all([EVENTS_CHANNEL, CONTROL_CHANNEL])
        .await?;
    Ok(listener)
}

/// A new listener, retried until it listens (`None` on shutdown).
async fn relisten(pool: &PgPool, shutdown: &CancellationToken) -> Option<PgListener> {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        match listen(pool).await {
            Ok(l) => return Some(l),
            Err(e) => tracing::warn!(error = %e, "event listener could not reconnect; retrying"),
        }
    }
}

/// What the listener said.
enum Heard {
    Control(String),
    Events,
    /// The connection was lost (and made again, or to be made): notifications sent meanwhile
    /// are gone.
    Lost(Option<sqlx::Error>),
    Nothing,
}

/// Starts listening; returns the handle the local writer uses to wake the feeder.
pub async fn spawn(
    pool: PgPool,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
) -> sqlx::Result<Arc<Notify>> {
    let mut listener = listen(&pool).await?;
    let wake = Arc::new(Notify::new());
    let local = wake.clone();
    tokio::spawn(async move {
        let mut poll = tokio::time::interval(SAFETY_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let heard = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = local.notified() => Heard::Nothing,
                _ = poll.tick() => Heard::Nothing,
                // try_recv, not recv: recv reconnects silently, hiding that messages were lost.
                note = listener.try_recv() => match note {
                    Ok(Some(n)) if n.channel() == CONTROL_CHANNEL => Heard::Control(n.payload().to_string()),
                    Ok(Some(_)) => Heard::Events,
                    Ok(None) => Heard::Lost(None),
                    Err(e) => Heard::Lost(Some(e)),
                },
            };
            match heard {
                Heard::Control(payload) => {
                    control(&hub, &payload);
                    continue;
                }
                Heard::Lost(error) => {
                    if let Some(e) = error {
                        tracing::warn!(error = %e, "event listener failed; reconnecting");
                        match relisten(&pool, &shutdown).await {
                            Some(l) => listener = l,
                            None => break,
                        }
                    }
                    // Listening again: a sign-out or a user change announced while away is
                    // lost, so every stream checks its session and user now; events are read
                    // from the log below as always.
                    tracing::warn!("event listener reconnected; streams re-check their sessions");
                    hub.recheck();
                }
                Heard::Events | Heard::Nothing => {}
            }
            if let Err(e) = drain(&pool, &hub).await {
                tracing::warn!(error = %e, "reading the event log failed");
            }
        }
    });
    Ok(wake)
}

/// Publishes every event after the hub's last id, in order.
async fn drain(pool: &PgPool, hub: &Hub) -> sqlx::Result<()> {
    loop {
        let rows = q::events_after(pool, hub.last_id(), i64::MAX, &Scope::All, PAGE).await?;
        let full = rows.len() as i64 == PAGE;
        let frames = rows
            .into_iter()
            .map(|r| Frame {
                id: r.id,
                device_id: r.device_id,
                site_id: r.site_id,
                bytes: encode_frame(r.id, &r.json),
            })
            .collect();
        hub.publish(frames);
        if !full {
            return Ok(());
        }
    }
}

/// `session:<id>` or `user:<id>`.
fn control(hub: &Hub, payload: &str) {
    match payload.split_once(':') {
        Some(("session", id)) => hub.end_session(id),
        Some(("user", id)) => {
            if let Ok(id) = id.parse() {
                hub.end_user(id);
            }
        }
        _ => tracing::debug!(payload, "unknown control message"),
    }
}

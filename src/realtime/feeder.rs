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

/// Starts listening; returns the handle the local writer uses to wake the feeder.
pub async fn spawn(
    pool: PgPool,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
) -> sqlx::Result<Arc<Notify>> {
    let mut listener = PgListener::connect_with(&pool).await?;
    listener
        .listen_all([EVENTS_CHANNEL, CONTROL_CHANNEL])
        .await?;
    let wake = Arc::new(Notify::new());
    let local = wake.clone();
    tokio::spawn(async move {
        let mut poll = tokio::time::interval(SAFETY_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = local.notified() => {}
                _ = poll.tick() => {}
                note = listener.recv() => match note {
                    Ok(n) if n.channel() == CONTROL_CHANNEL => {
                        control(&hub, n.payload());
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "event listener failed; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
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

//! The event log's read side (replay, the feeder, the admin's recent events) and, on PostgreSQL,
//! the notifications that carry new events and stream control between instances.

use std::time::Duration;

use sqlx::postgres::PgListener;

use super::postgres::{announce_control, CONTROL_CHANNEL, EVENTS_CHANNEL};
use super::{dispatch, Db, EventLogRow, Store, StoreResult};
use crate::domain::{EventRow, Scope};

impl Store {
    /// Events after `after_id` (up to `up_to_id`) that the scope may see, in id order.
    pub async fn events_after(
        &self,
        after_id: i64,
        up_to_id: i64,
        scope: &Scope,
        limit: i64,
    ) -> StoreResult<Vec<EventRow>> {
        Ok(dispatch!(&self.db, |pool, q| {
            q::events_after(pool, after_id, up_to_id, scope, limit).await
        })?)
    }

    /// The newest event id (0 for an empty log).
    pub async fn max_event_id(&self) -> StoreResult<i64> {
        Ok(dispatch!(&self.db, |pool, q| q::max_event_id(pool).await)?)
    }

    /// The newest events in scope, newest first (the admin's activity log).
    pub async fn recent_events(&self, scope: &Scope, limit: i64) -> StoreResult<Vec<EventLogRow>> {
        Ok(dispatch!(&self.db, |pool, q| q::recent_events(
            pool, scope, limit
        )
        .await)?)
    }

    /// Tells every instance (this one included) a stream-control message. False when there is
    /// no other instance to tell (SQLite) or it could not be sent: the caller acts locally.
    pub async fn announce_control(&self, payload: &str) -> bool {
        match &self.db {
            Db::Postgres(pool) => match announce_control(pool, payload).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "could not announce to other instances");
                    false
                }
            },
            Db::Sqlite(_) => false,
        }
    }

    /// Starts listening for other instances' events and control messages (PostgreSQL only).
    pub async fn listen(&self) -> StoreResult<Option<Changes>> {
        let Db::Postgres(pool) = &self.db else {
            return Ok(None);
        };
        let mut listener = PgListener::connect_with(pool).await?;
        listener
            .listen_all([EVENTS_CHANNEL, CONTROL_CHANNEL])
            .await?;
        Ok(Some(Changes {
            listener,
            instance: self.instance.to_string(),
        }))
    }
}

/// What another instance (or this one) announced.
#[derive(Debug)]
pub enum Change {
    /// New events were committed; `own` when this instance's writer committed them.
    Events { own: bool },
    /// A stream-control message (sign-out, disabled user, …).
    Control(String),
    /// The connection was lost and is being re-established: anything announced meanwhile
    /// was missed.
    Reconnecting,
}

/// A listening connection; it reconnects by itself.
pub struct Changes {
    listener: PgListener,
    /// This instance's name in what it announces.
    instance: String,
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Changes")
    }
}

impl Changes {
    pub async fn next(&mut self) -> Change {
        match self.listener.try_recv().await {
            Ok(Some(n)) if n.channel() == CONTROL_CHANNEL => {
                Change::Control(n.payload().to_string())
            }
            Ok(Some(n)) => Change::Events {
                own: n.payload() == self.instance,
            },
            // The connection was lost; the next call reconnects.
            Ok(None) => Change::Reconnecting,
            Err(e) => {
                tracing::warn!(error = %e, "event listener failed; reconnecting");
                tokio::time::sleep(Duration::from_millis(200)).await;
                Change::Reconnecting
            }
        }
    }
}

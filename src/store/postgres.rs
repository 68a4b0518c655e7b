//! The shared queries (shared_sql/) compiled for PostgreSQL, and what only PostgreSQL has:
//! the advisory lock that orders event ids, and LISTEN/NOTIFY between instances.

use sqlx::{PgConnection, Postgres};

type DB = Postgres;
type Conn = PgConnection;

/// Event ids must become visible in increasing order across instances: every write transaction
/// takes one transaction-level advisory lock, so transactions that add events commit one at a time.
/// Sent as one simple query: the lock costs no round trip of its own.
pub(super) const BEGIN_WRITE: &str = "BEGIN; SELECT pg_advisory_xact_lock(7311200455)";

pub(super) async fn begin_write(
    pool: &sqlx::Pool<DB>,
) -> sqlx::Result<sqlx::Transaction<'static, DB>> {
    pool.begin_with(BEGIN_WRITE).await
}

/// Counting and recording a sign-in attempt is one step per client address, on every instance:
/// a transaction-level advisory lock on the address (the two-key form, apart from the event lock).
pub(super) async fn begin_login_attempt(
    pool: &sqlx::Pool<DB>,
    ip: &str,
) -> sqlx::Result<sqlx::Transaction<'static, DB>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7311, hashtext($1))")
        .bind(ip)
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Channel on which committed events are announced to every instance.
pub const EVENTS_CHANNEL: &str = "sensorcast_events";
/// Channel for stream control (sign-out, disabled users) across instances.
pub const CONTROL_CHANNEL: &str = "sensorcast_control";

/// What a statement that appends events also returns, so that the commit announces them to every
/// instance listening, this one included, without a round trip of its own (identical
/// notifications of one transaction are delivered once). The payload names the instance that
/// committed them: its own feeder has them from its writer and need not read them back.
pub(super) fn announce_events(instance: u64) -> String {
    format!("pg_notify('{EVENTS_CHANNEL}', '{instance}')")
}

pub async fn announce_control(pool: &sqlx::PgPool, payload: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CONTROL_CHANNEL)
        .bind(payload)
        .execute(pool)
        .await
        .map(|_| ())
}

/// The outbox's own transactions: on SQLite the write lock up front; on PostgreSQL a plain
/// transaction (row locks suffice; the event log's advisory lock is not needed).
async fn begin_outbox(pool: &sqlx::Pool<DB>) -> sqlx::Result<sqlx::Transaction<'static, DB>> {
    pool.begin().await
}

/// Row locks skipped by a claiming query: several instances claim the same outbox (PostgreSQL);
/// SQLite has one writer at a time, so there is nothing to skip.
const SKIP_LOCKED: &str = "FOR UPDATE SKIP LOCKED";

include!("shared_sql/all.rs");

#[cfg(test)]
mod tests {
    #[test]
    fn events_are_announced_on_the_channel_instances_listen_on() {
        let quoted = format!("'{}', '42'", super::EVENTS_CHANNEL);
        assert!(super::announce_events(42).contains(&quoted));
    }
}

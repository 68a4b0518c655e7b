//! The shared queries compiled for PostgreSQL.

use sqlx::{PgConnection, Postgres};

type DB = Postgres;
type Conn = PgConnection;

/// Event ids must become visible in increasing order across instances: every write transaction
/// takes one transaction-level advisory lock, so transactions that add events commit one at a time.
async fn begin_write(pool: &sqlx::Pool<DB>) -> sqlx::Result<sqlx::Transaction<'static, DB>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7311200455)")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Counting and recording a sign-in attempt is one step per client address, on every instance:
/// a transaction-level advisory lock on the address (the two-key form, apart from the event lock).
pub async fn begin_login_attempt(
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

/// Delivered at commit to every instance listening, this one included.
async fn announce_events(conn: &mut Conn) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(EVENTS_CHANNEL)
        .execute(conn)
        .await
        .map(|_| ())
}

pub async fn announce_control(pool: &sqlx::PgPool, payload: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CONTROL_CHANNEL)
        .bind(payload)
        .execute(pool)
        .await
        .map(|_| ())
}

/// Runs every job in one transaction. Returns one result per job and the frames to publish
/// once the transaction has committed.
pub async fn apply_jobs(
    pool: &Pool<DB>,
    works: &[&crate::store::writer::Work],
    now_ms: i64,
    policy: crate::store::writer::OfflinePolicy,
) -> sqlx::Result<Applied> {
    let mut tx = begin_write(pool).await?;
    let (results, frames) = apply_works(&mut tx, works, now_ms, policy).await?;
    if !frames.is_empty() {
        announce_events(&mut tx).await?;
    }
    tx.commit().await?;
    Ok((results, frames))
}

include!("queries.rs");
include!("write_queries.rs");
include!("apply.rs");
include!("admin_queries.rs");

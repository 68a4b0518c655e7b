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

include!("queries.rs");
include!("apply.rs");

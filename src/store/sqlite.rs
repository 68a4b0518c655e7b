//! The shared queries compiled for SQLite.

use sqlx::{Sqlite, SqliteConnection};

type DB = Sqlite;
type Conn = SqliteConnection;

/// Single writer: `BEGIN IMMEDIATE` takes the write lock up front, so a transaction that reads
/// before writing cannot deadlock against another and ids commit in order.
async fn begin_write(pool: &sqlx::Pool<DB>) -> sqlx::Result<sqlx::Transaction<'static, DB>> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// One process owns a SQLite file: its writer publishes straight to its hub.
async fn announce_events(_conn: &mut Conn) -> sqlx::Result<()> {
    Ok(())
}

include!("queries.rs");
include!("apply.rs");
include!("admin_queries.rs");

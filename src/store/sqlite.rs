//! The shared queries (shared_sql/) compiled for SQLite. The writer's own statements run on its
//! thread through rusqlite (`write_sqlite.rs`).

use sqlx::{Sqlite, SqliteConnection};

type DB = Sqlite;
type Conn = SqliteConnection;

/// Single writer: `BEGIN IMMEDIATE` takes the write lock up front, so a transaction that reads
/// before writing cannot deadlock against another and ids commit in order.
async fn begin_write(pool: &sqlx::Pool<DB>) -> sqlx::Result<sqlx::Transaction<'static, DB>> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// Counting and recording a sign-in attempt is one step: the write lock, taken up front.
pub(super) async fn begin_login_attempt(
    pool: &sqlx::Pool<DB>,
    _ip: &str,
) -> sqlx::Result<sqlx::Transaction<'static, DB>> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// The outbox's own transactions: on SQLite the write lock up front; on PostgreSQL a plain
/// transaction (row locks suffice; the event log's advisory lock is not needed).
async fn begin_outbox(pool: &sqlx::Pool<DB>) -> sqlx::Result<sqlx::Transaction<'static, DB>> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// Row locks skipped by a claiming query: several instances claim the same outbox (PostgreSQL);
/// SQLite has one writer at a time, so there is nothing to skip.
const SKIP_LOCKED: &str = "";

include!("shared_sql/all.rs");

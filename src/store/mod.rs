//! Durable storage: SQLite by default, PostgreSQL for several instances.
//!
//! The SQL lives once in `queries.rs`, compiled for each database by `sqlite.rs` and `postgres.rs`;
//! the few dialect differences are the `Dialect` constants there.

mod model;
pub(crate) mod postgres;
pub mod sessions;
pub(crate) mod sqlite;
mod sqlite_writer;
pub mod users;
mod write_sql;
pub mod writer;

#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use model::*;

/// Storage failure; the detail is logged at the boundary, never shown to a client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Invalid(String),
}

impl StoreError {
    /// True when the database could not be reached (as opposed to a bad query or data).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Db(
                sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::WorkerCrashed
            )
        ) || matches!(self, StoreError::Db(sqlx::Error::Database(e)) if is_unavailable_code(e.code().as_deref()))
    }
}

fn is_unavailable_code(code: Option<&str>) -> bool {
    // PostgreSQL class 08 (connection), 57P0x (shutdown); SQLite 5/6 (busy/locked).
    matches!(code, Some(c) if c.starts_with("08") || c.starts_with("57P") || c == "5" || c == "6")
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A connection pool for whichever database the URL named.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same generic code against whichever pool this is:
/// `dispatch!(&db, |pool, q| q::function(pool).await)`.
macro_rules! dispatch {
    ($db:expr, |$pool:ident, $q:ident| $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($pool) => {
                use $crate::store::sqlite as $q;
                $body
            }
            $crate::store::Db::Postgres($pool) => {
                use $crate::store::postgres as $q;
                $body
            }
        }
    };
}
pub(crate) use dispatch;

impl Db {
    pub async fn connect(url: &str) -> StoreResult<Db> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?
                .statement_cache_capacity(write_sql::STATEMENT_CACHE);
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await?;
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
            Ok(Db::Postgres(pool))
        } else if url.contains(":memory:") || url.contains("mode=memory") {
            // The writer opens the file itself (writer.rs), which an in-memory database has not.
            Err(StoreError::Invalid(
                "an in-memory SQLite database is not supported: give a file".into(),
            ))
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true);
            // A SQLite file cannot be "away": a connection is only ever late because the
            // readers are busy (a reconnect storm replaying the log), so wait rather than fail
            // those reads. The writer has a connection of its own (writer.rs).
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await?;
            sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
            Ok(Db::Sqlite(pool))
        } else {
            Err(StoreError::Invalid(
                "database URL must start with sqlite: or postgres://".into(),
            ))
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(p) => p.close().await,
            Db::Postgres(p) => p.close().await,
        }
    }
}

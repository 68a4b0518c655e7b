//! Durable storage: SQLite by default, PostgreSQL for several instances, behind one facade.
//!
//! `Store` is the only way in: typed methods by area (devices.rs, users.rs, events.rs,
//! operations.rs, sessions.rs). The pools and the dialect differences stay in this folder: the
//! SQL is written once (shared_sql/) and compiled for each database by `sqlite.rs` and
//! `postgres.rs`; the write path (writer.rs, group.rs) runs the same group-commit logic on
//! either database through its `WriteTx` statements (write_sqlite.rs, write_postgres.rs).

mod alarm_sql;
mod alarms;
mod checkpoint;
mod command_sql;
mod commands;
mod connect;
mod devices;
mod error;
mod events;
mod group;
mod judging;
mod notifications;
mod operations;
mod outbox;
mod postgres;
mod reports;
mod retention;
mod rows;
pub mod sessions;
mod sign_in;
mod sqlite;
mod summaries;
mod summary_sql;
mod users;
mod write_postgres;
mod write_sqlite;
mod write_statements;
mod write_tx;
mod writer;

#[cfg(test)]
mod tests;

use sqlx::{PgPool, SqlitePool};

pub use commands::ClaimedCommand;
pub use error::{StoreError, StoreResult};
pub use events::{Change, Changes};
pub use group::{Dispatched, OfflinePolicy, Rejection, Work};
pub use notifications::Attempt;
pub use operations::Table;
pub use retention::{purge_readings, spawn_retention, PURGE_BATCH};
pub use rows::*;
pub use sign_in::LoginCounts;
pub use users::{AccessChange, NewUser};
pub use writer::{spawn_watchdog, Publisher, WriteError, Writer};

/// The database, whichever it is. Cheap to clone (the pools are shared).
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    /// Names this process in the events it announces (PostgreSQL), so that it can tell its
    /// own commits from other instances'.
    instance: u64,
}

#[derive(Clone, Debug)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same generic code against whichever pool this is:
/// `dispatch!(&self.db, |pool, q| q::function(pool).await)`. Only the facade uses it.
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
use dispatch;

impl Store {
    /// Connects and migrates: `sqlite://FILE` (created if missing) or `postgres://…`.
    pub async fn open(url: &str) -> StoreResult<Store> {
        let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Db::Postgres(connect::postgres_pool(url).await?)
        } else if url.contains(":memory:") || url.contains("mode=memory") {
            // The writer opens the file itself (writer.rs), which an in-memory database has not.
            return Err(StoreError::Invalid(
                "an in-memory SQLite database is not supported: give a file".into(),
            ));
        } else if url.starts_with("sqlite:") {
            Db::Sqlite(connect::sqlite_pool(url).await?)
        } else {
            return Err(StoreError::Invalid(
                "database URL must start with sqlite: or postgres://".into(),
            ));
        };
        Ok(Store {
            db,
            instance: rand::random(),
        })
    }

    /// True when several instances may share this database (PostgreSQL): events and stream
    /// control then travel through it (`listen`, `announce_control`).
    pub fn is_shared(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
    }

    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite(p) => p.close().await,
            Db::Postgres(p) => p.close().await,
        }
    }
}

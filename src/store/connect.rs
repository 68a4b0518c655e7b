//! How connections are opened: the settings every SQLite connection gets (the pool's and the
//! writer's alike) are listed once here.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{PgPool, SqlitePool};

use super::error::{StoreError, StoreResult};
use super::write_statements::STATEMENT_CACHE;

/// How long a SQLite connection waits for the write lock before reporting busy.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Pragmas of every SQLite connection. WAL lets readers run beside the single writer; `FULL`
/// syncs the WAL at every commit, so a webhook answered 2xx survives a power cut (Milesight does
/// not resend what it saw acknowledged); group commit pays for the flush. No connection
/// checkpoints at commit: a thread of the writer's does (checkpoint.rs).
const SQLITE_PRAGMAS: [(&str, &str); 4] = [
    ("journal_mode", "WAL"),
    ("synchronous", "FULL"),
    ("foreign_keys", "ON"),
    ("wal_autocheckpoint", "0"),
];

pub async fn postgres_pool(url: &str) -> StoreResult<PgPool> {
    let options = PgConnectOptions::from_str(url)?.statement_cache_capacity(STATEMENT_CACHE);
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await?;
    sqlx::migrate!("./migrations/postgres").run(&pool).await?;
    Ok(pool)
}

pub async fn sqlite_pool(url: &str) -> StoreResult<SqlitePool> {
    let mut options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT);
    for (name, value) in SQLITE_PRAGMAS {
        options = options.pragma(name, value);
    }
    // A SQLite file cannot be "away": a connection is only ever late because the readers are
    // busy (a reconnect storm replaying the log), so wait rather than fail those reads. The
    // writer has a connection of its own (write_sqlite.rs).
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await?;
    sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
    Ok(pool)
}

/// The SQLite writer's own connection to the file the pool uses (created and migrated already).
pub fn sqlite_writer(path: &Path) -> StoreResult<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = rusqlite::Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(SQLITE_BUSY_TIMEOUT)?;
    for (name, value) in SQLITE_PRAGMAS {
        // journal_mode answers with the mode now in force, wal_autocheckpoint with its
        // value; the others answer nothing.
        let answer: Option<rusqlite::types::Value> = conn
            .query_row(&format!("PRAGMA {name} = {value}"), [], |r| r.get(0))
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?;
        if let Some(rusqlite::types::Value::Text(mode)) = answer.filter(|_| name == "journal_mode")
        {
            if mode.eq_ignore_ascii_case(value) {
                continue;
            }
            return Err(StoreError::Failed(
                format!("journal mode is {mode}, not {value}").into(),
            ));
        }
    }
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pool_and_writer_connections_get_the_same_settings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.db");
        let pool = sqlite_pool(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let writer = sqlite_writer(&path).unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&pool)
            .await
            .unwrap();
        let writer_mode: String = writer
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!((mode.as_str(), writer_mode.as_str()), ("wal", "wal"));
        // synchronous: 2 is FULL; foreign_keys: 1 is on; no checkpoint at commit.
        for (pragma, expected) in [
            ("synchronous", 2),
            ("foreign_keys", 1),
            ("wal_autocheckpoint", 0),
        ] {
            let sql = format!("PRAGMA {pragma}");
            let pooled: i64 = sqlx::query_scalar(&sql).fetch_one(&pool).await.unwrap();
            let own: i64 = writer.query_row(&sql, [], |r| r.get(0)).unwrap();
            assert_eq!((pooled, own), (expected, expected), "{pragma}");
        }
    }
}

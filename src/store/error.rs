//! The one error type of the store: what went wrong, classified once here from either driver's
//! error, with the driver's error kept as the source for the log. Callers match on the kind and
//! never on a message.

type Source = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or is busy: the caller should retry later (503).
    #[error("database unavailable: {0}")]
    Unavailable(#[source] Source),
    /// A uniqueness rule refused the change (an email or name already taken).
    #[error("conflict: {0}")]
    Conflict(#[source] Source),
    /// The request names something that does not exist or breaks a rule; the text is for people.
    #[error("{0}")]
    Invalid(String),
    /// Anything else: a bug, a broken schema.
    #[error("database failure: {0}")]
    Failed(#[source] Source),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// PostgreSQL class 08 (connection), 57P0x (shutdown), 53 (insufficient resources: disk full,
/// too many connections).
fn pg_unavailable(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P") || code.starts_with("53")
}

/// SQLite's primary result code (the low byte of an extended one): busy, locked, I/O error,
/// full, cannot open.
fn sqlite_unavailable(code: &str) -> bool {
    code.parse::<i32>()
        .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 13 | 14))
}

fn database_unavailable(db: &dyn sqlx::error::DatabaseError) -> bool {
    let Some(code) = db.code() else {
        return false;
    };
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        sqlite_unavailable(&code)
    } else {
        pg_unavailable(&code)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &e {
            E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::Tls(_) | E::WorkerCrashed => {
                StoreError::Unavailable(e.into())
            }
            E::Database(db) if db.is_unique_violation() => StoreError::Conflict(e.into()),
            E::Database(db) if database_unavailable(db.as_ref()) => {
                StoreError::Unavailable(e.into())
            }
            _ => StoreError::Failed(e.into()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            sqlx::migrate::MigrateError::Execute(inner) => inner.into(),
            other => StoreError::Failed(other.into()),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match e.sqlite_error_code() {
            // A full disk or an I/O error may pass (space freed, disk back): a sender should retry.
            Some(
                C::DatabaseBusy
                | C::DatabaseLocked
                | C::CannotOpen
                | C::DiskFull
                | C::SystemIoFailure,
            ) => StoreError::Unavailable(e.into()),
            Some(C::ConstraintViolation) => StoreError::Conflict(e.into()),
            _ => StoreError::Failed(e.into()),
        }
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        use std::error::Error;
        match e.code().map(|c| c.code()) {
            Some("23505") => StoreError::Conflict(e.into()),
            Some(code) if pg_unavailable(code) => StoreError::Unavailable(e.into()),
            Some(_) => StoreError::Failed(e.into()),
            // No SQLSTATE: the connection broke or could not be made (an I/O error underneath),
            // or a value did not convert (a bug).
            None if e.is_closed() || e.source().is_some_and(|s| s.is::<std::io::Error>()) => {
                StoreError::Unavailable(e.into())
            }
            None => StoreError::Failed(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_errors_are_classified_by_kind() {
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(!StoreError::from(sqlx::Error::RowNotFound).is_unavailable());
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert!(StoreError::from(busy).is_unavailable());
        let unique = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
            None,
        );
        assert!(matches!(StoreError::from(unique), StoreError::Conflict(_)));
        let full = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        );
        assert!(
            StoreError::from(full).is_unavailable(),
            "retried once space is freed"
        );
        assert!(sqlite_unavailable("517"), "SQLITE_BUSY_SNAPSHOT is busy");
        assert!(!sqlite_unavailable("2067"), "a unique violation is not");
        assert!(pg_unavailable("08006") && pg_unavailable("53100") && !pg_unavailable("23505"));
    }
}

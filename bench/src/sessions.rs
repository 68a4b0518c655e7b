//! Many sessions of one user, as after a deploy every browser comes back with a cookie of its
//! own. Signing in 10,000 times would take 10,000 password hashes and trip the sign-in
//! throttle, so the signed-in session's row is copied in the server's SQLite database, each copy
//! under a new id drawn and written as the server's session store writes its own.

use std::path::Path;

use anyhow::Context;
use tower_sessions::session::{Id, Record};

/// The cookie's name and the session id of a `Cookie:` value such as `sensorcast_session=…`.
fn split(cookie: &str) -> anyhow::Result<(&str, &str)> {
    cookie
        .split_once('=')
        .filter(|(name, id)| !name.is_empty() && !id.is_empty())
        .context("a session cookie is name=id")
}

/// Copies the session of `cookie` `n` times in the SQLite database at `db`; returns the
/// `Cookie:` value of each copy. The server may be running: the copies go in one transaction,
/// waiting for its writer as any other connection would.
pub fn copy_session(db: &Path, cookie: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let (name, id) = split(cookie)?;
    let mut conn = rusqlite::Connection::open(db).with_context(|| format!("opening {db:?}"))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    let (user_id, data, expiry_ms): (Option<i64>, Vec<u8>, i64) = conn
        .query_row(
            "SELECT user_id, data, expiry_ms FROM sessions WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .context("the signed-in session's row")?;
    // As the server's store reads and writes it (its id is an i128, which serde_json's
    // `Value` cannot hold).
    let mut record: Record = serde_json::from_slice(&data).context("the session's record")?;
    let tx = conn.transaction()?;
    let mut cookies = Vec::with_capacity(n);
    {
        let mut insert = tx.prepare(
            "INSERT INTO sessions (id, user_id, data, expiry_ms) VALUES (?1, ?2, ?3, ?4)",
        )?;
        while cookies.len() < n {
            record.id = Id::default();
            let data = serde_json::to_vec(&record)?;
            let id = record.id.to_string();
            insert.execute(rusqlite::params![id, user_id, data, expiry_ms])?;
            cookies.push(format!("{name}={id}"));
        }
    }
    tx.commit()?;
    Ok(cookies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_splits_into_name_and_id() {
        assert_eq!(
            split("sensorcast_session=abc").unwrap(),
            ("sensorcast_session", "abc")
        );
        assert!(split("sensorcast_session=").is_err());
        assert!(split("no-equals").is_err());
    }

    #[test]
    fn copies_carry_their_own_id_in_row_and_record() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE sessions (id TEXT PRIMARY KEY, user_id INTEGER, data BLOB NOT NULL, \
             expiry_ms INTEGER NOT NULL)",
        )
        .unwrap();
        let first = Record {
            id: Id::default(),
            data: [("user".to_string(), serde_json::json!(7))].into(),
            expiry_date: tower_sessions::cookie::time::OffsetDateTime::UNIX_EPOCH,
        };
        conn.execute(
            "INSERT INTO sessions VALUES (?1, 7, ?2, 99)",
            rusqlite::params![first.id.to_string(), serde_json::to_vec(&first).unwrap()],
        )
        .unwrap();
        let cookies = copy_session(&db, &format!("c={}", first.id), 3).unwrap();
        assert_eq!(cookies.len(), 3);
        for cookie in &cookies {
            let id = cookie.strip_prefix("c=").unwrap();
            let (user, data, expiry): (i64, Vec<u8>, i64) = conn
                .query_row(
                    "SELECT user_id, data, expiry_ms FROM sessions WHERE id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .unwrap();
            let copy: Record = serde_json::from_slice(&data).unwrap();
            assert_eq!(copy.id, id.parse::<Id>().unwrap());
            assert_ne!(copy.id, first.id);
            assert_eq!(copy.data, first.data);
            assert_eq!((user, expiry), (7, 99));
        }
        let count: i64 = conn
            .query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 4);
    }
}

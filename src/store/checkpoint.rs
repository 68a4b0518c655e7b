//! WAL checkpoints off the write path. SQLite's automatic checkpoint runs inside the commit
//! that crosses 1,000 WAL pages, on the connection that committed: the writer, which then
//! copies the WAL into the database and syncs it while every webhook of the next group waits.
//! Every connection has it off (`wal_autocheckpoint = 0`, connect.rs); this thread runs a
//! PASSIVE checkpoint, which never blocks the writer or a reader, every `EVERY`, and once more
//! when the writer stops.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use super::connect;
use super::error::StoreResult;

/// How often the WAL is copied into the database. At ingest rates of thousands of webhooks a
/// second this keeps the WAL to a few MB.
const EVERY: Duration = Duration::from_millis(500);

/// What one checkpoint did: WAL frames in all, and those copied into the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpointed {
    pub busy: bool,
    pub wal_frames: i64,
    pub copied: i64,
}

/// Runs a PASSIVE checkpoint: copies what no reader still needs, waits for nobody.
pub fn checkpoint(conn: &rusqlite::Connection) -> StoreResult<Checkpointed> {
    Ok(conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok(Checkpointed {
            busy: r.get::<_, i64>(0)? != 0,
            wal_frames: r.get(1)?,
            copied: r.get(2)?,
        })
    })?)
}

/// Starts the checkpoint thread for this database file. It ends, after a last checkpoint,
/// when the sender of `stop` is dropped (the writer thread ended).
pub fn spawn(path: PathBuf, stop: Receiver<()>) {
    let started = std::thread::Builder::new()
        .name("sensorcast-checkpoint".into())
        .spawn(move || run(&path, &stop));
    if let Err(e) = started {
        // The WAL then grows until the last connection closes; say so.
        tracing::error!(error = %e, "could not start the WAL checkpoint thread");
    }
}

fn run(path: &Path, stop: &Receiver<()>) {
    let mut conn = None;
    loop {
        let last = matches!(
            stop.recv_timeout(EVERY),
            Err(RecvTimeoutError::Disconnected)
        );
        let opened = match conn.take() {
            Some(c) => Ok(c),
            None => connect::sqlite_writer(path),
        };
        match opened.and_then(|c| checkpoint(&c).map(|done| (c, done))) {
            Ok((c, done)) => {
                tracing::trace!(?done, "WAL checkpoint");
                conn = Some(c);
            }
            // Tried again at the next tick with a fresh connection.
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
        if last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_checkpoint_copies_the_wal_that_commits_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db");
        let _pool = connect::sqlite_pool(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let writer = connect::sqlite_writer(&path).unwrap();
        writer
            .execute_batch("CREATE TABLE t (v TEXT); BEGIN IMMEDIATE;")
            .unwrap();
        for i in 0..3_000 {
            writer
                .execute("INSERT INTO t VALUES (?1)", [format!("{i:0>2000}")])
                .unwrap();
        }
        writer.execute_batch("COMMIT").unwrap();
        // Past the 1,000 pages at which SQLite would have checkpointed by itself.
        let other = connect::sqlite_writer(&path).unwrap();
        let done = checkpoint(&other).unwrap();
        assert!(done.wal_frames > 1_000, "{done:?}");
        assert_eq!(
            (done.busy, done.copied),
            (false, done.wal_frames),
            "{done:?}"
        );
    }
}

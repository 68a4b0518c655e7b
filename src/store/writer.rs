//! The single writer: every change that produces events goes through it. It groups concurrent
//! requests into one transaction (group commit) and hands their committed events, in id order,
//! to a `Publisher` (realtime implements it). A request is answered only after its data is
//! durable. On both databases it is a thread of its own: on SQLite with its own rusqlite
//! connection (a group transaction runs without a hand-off per statement), on PostgreSQL
//! with its own pipelining connection (tokio-postgres) on a current-thread runtime of its own.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::error::{StoreError, StoreResult};
use super::group::{Applied, OfflinePolicy, Rejection, Work};
use super::write_postgres::{PgWriteConn, Waiter};
use super::{checkpoint, connect, write_postgres, write_sqlite, Db, Store};
use crate::domain::{now_ms, EventRow, Outcome};

/// Most jobs committed together; bounds the time one transaction holds the write lock.
const MAX_GROUP: usize = 256;

#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("rejected: {0:?}")]
    Rejected(Rejection),
    /// The commit failed; shared by every job of the group it failed for.
    #[error("{0}")]
    Store(Arc<StoreError>),
    #[error("the writer has stopped")]
    Stopped,
}

/// Where committed events go: called on the writer's thread right after each commit, with the
/// events of that commit in id order. Must not block.
pub trait Publisher: Send + Sync + 'static {
    fn publish(&self, events: Vec<EventRow>);
}

struct Job {
    work: Work,
    reply: oneshot::Sender<Result<Outcome, WriteError>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.work.fmt(f)
    }
}

#[derive(Clone, Debug)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    /// Ingest batches submitted so far: how others (the notification dispatcher) tell that
    /// webhooks are arriving.
    batches: Arc<AtomicU64>,
}

impl Writer {
    /// Starts the writer thread. It ends when every `Writer` handle is dropped.
    pub fn spawn(store: &Store, publisher: Arc<dyn Publisher>, policy: OfflinePolicy) -> Writer {
        let (tx, rx) = mpsc::channel(4 * MAX_GROUP);
        let committer: Box<dyn Committer> = match &store.db {
            Db::Sqlite(pool) => {
                let path = pool.connect_options().get_filename().to_path_buf();
                let (running, stopped) = std::sync::mpsc::channel();
                checkpoint::spawn(path.clone(), stopped);
                Box::new(SqliteCommitter {
                    path,
                    conn: None,
                    _running: running,
                })
            }
            Db::Postgres(pool) => Box::new(PostgresCommitter {
                rt: tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the writer thread"),
                config: write_postgres::writer_config(&pool.connect_options()),
                instance: store.instance,
                conn: None,
            }),
        };
        std::thread::Builder::new()
            .name("sensorcast-writer".into())
            .spawn(move || run(committer, publisher, policy, rx))
            .expect("starting the writer thread");
        Writer {
            tx,
            batches: Arc::default(),
        }
    }

    pub async fn submit(&self, work: Work) -> Result<Outcome, WriteError> {
        if matches!(work, Work::Batch(_)) {
            self.batches.fetch_add(1, Ordering::Relaxed);
        }
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { work, reply })
            .await
            .map_err(|_| WriteError::Stopped)?;
        answer.await.map_err(|_| WriteError::Stopped)?
    }

    /// Jobs queued for the writer and not yet taken.
    pub fn backlog(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Ingest batches submitted since the writer started.
    pub fn batches_submitted(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// False once the writer thread has ended (it panicked, or the server is stopping): no
    /// webhook can be stored, so the instance is not ready.
    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }
}

/// Runs one group transaction to its commit.
trait Committer: Send {
    fn commit(
        &mut self,
        works: &[&Work],
        now_ms: i64,
        policy: OfflinePolicy,
    ) -> StoreResult<Applied>;
}

struct SqliteCommitter {
    path: PathBuf,
    /// Opened on first use (tried again at the next group if opening failed).
    conn: Option<rusqlite::Connection>,
    /// Dropped with the writer: the checkpoint thread then makes its last one and ends.
    _running: std::sync::mpsc::Sender<()>,
}

impl Committer for SqliteCommitter {
    fn commit(
        &mut self,
        works: &[&Work],
        now_ms: i64,
        policy: OfflinePolicy,
    ) -> StoreResult<Applied> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(connect::sqlite_writer(&self.path)?),
        };
        write_sqlite::apply_jobs(conn, works, now_ms, policy)
    }
}

/// On PostgreSQL the writer has a connection of its own, on a runtime of its own: each answer
/// then wakes the writer thread itself, not a worker of the server's runtime that wakes it in
/// turn (about six round trips per group, write_postgres.rs).
struct PostgresCommitter {
    rt: tokio::runtime::Runtime,
    config: tokio_postgres::Config,
    instance: u64,
    /// Opened on first use, and again after a failed commit.
    conn: Option<PgWriteConn>,
}

impl Committer for PostgresCommitter {
    fn commit(
        &mut self,
        works: &[&Work],
        now_ms: i64,
        policy: OfflinePolicy,
    ) -> StoreResult<Applied> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(PgWriteConn::connect(
                Waiter::Own(&self.rt),
                &self.config,
                self.instance,
            )?),
        };
        let applied =
            write_postgres::apply_jobs(Waiter::Own(&self.rt), conn, works, now_ms, policy);
        if applied.is_err() {
            self.conn = None;
        }
        applied
    }
}

type Committed = Result<Vec<Result<Outcome, Rejection>>, WriteError>;

/// The writer thread: each group is one transaction, its events published once committed.
fn run(
    mut committer: Box<dyn Committer>,
    publisher: Arc<dyn Publisher>,
    policy: OfflinePolicy,
    mut rx: mpsc::Receiver<Job>,
) {
    let commit = |committer: &mut Box<dyn Committer>, jobs: &[Job]| -> Committed {
        let works: Vec<&Work> = jobs.iter().map(|j| &j.work).collect();
        let (results, events) = committer
            .commit(&works, now_ms(), policy)
            .map_err(|e| WriteError::Store(Arc::new(e)))?;
        if !events.is_empty() {
            publisher.publish(events);
        }
        Ok(results)
    };
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Some(job) = rx.blocking_recv() {
        group.push(job);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let jobs = std::mem::take(&mut group);
        let result = commit(&mut committer, &jobs);
        for job in answer(jobs, result) {
            let result = commit(&mut committer, std::slice::from_ref(&job));
            answer(vec![job], result);
        }
    }
}

/// Answers the jobs of a group from its commit. Returns the jobs to commit again one by one:
/// one bad job must not fail its neighbours (an unreachable database fails them all alike).
fn answer(jobs: Vec<Job>, committed: Committed) -> Vec<Job> {
    match committed {
        Ok(results) => {
            for (job, result) in jobs.into_iter().zip(results) {
                let _ = job.reply.send(result.map_err(WriteError::Rejected));
            }
            Vec::new()
        }
        Err(WriteError::Store(err)) if jobs.len() > 1 && !err.is_unavailable() => {
            tracing::warn!(error = %err, jobs = jobs.len(), "group commit failed; retrying one by one");
            jobs
        }
        Err(err) => {
            tracing::error!(error = %err, jobs = jobs.len(), "commit failed");
            for job in jobs {
                let _ = job.reply.send(Err(err.clone()));
            }
            Vec::new()
        }
    }
}

/// Periodically marks silent devices OFFLINE, and commands unconfirmed `command_timeout` after
/// they were asked for expired, through the writer.
pub fn spawn_watchdog(
    writer: Writer,
    every: Duration,
    command_timeout: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let timeout_ms = i64::try_from(command_timeout.as_millis()).unwrap_or(i64::MAX);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(err) = writer.submit(Work::MarkSilent).await {
                        tracing::warn!(error = %err, "offline sweep failed");
                    }
                    if let Err(err) = writer.submit(Work::ExpireCommands { timeout_ms }).await {
                        tracing::warn!(error = %err, "command expiry sweep failed");
                    }
                }
                _ = shutdown.cancelled() => break,
            }
        }
    });
}

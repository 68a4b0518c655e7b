//! The single writer: every change that produces events goes through it. It groups concurrent
//! requests into one transaction (group commit) and publishes their frames to the hub in id
//! order once committed. A request is answered only after its data is durable. On SQLite it is
//! a thread with a connection of its own, so a group transaction runs without a hand-off per
//! statement; on PostgreSQL a task on the pool.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use tokio::sync::{mpsc, oneshot, Notify};

use crate::ingest::model::{Batch, Outcome};
use crate::realtime::hub::Hub;
use crate::store::{postgres, sqlite_writer, Db, StoreError};

/// Most jobs committed together; bounds the time one transaction holds the write lock.
const MAX_GROUP: usize = 256;

#[derive(Debug)]
pub enum Work {
    Batch(Batch),
    /// Mark devices that have been silent too long OFFLINE.
    MarkSilent,
}

/// Why a job was refused without a storage failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The signed request's nonce was already used.
    Replayed,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("rejected: {0:?}")]
    Rejected(Rejection),
    /// The database could not be reached: the sender should retry later (503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("storage failed: {0}")]
    Failed(String),
    #[error("the writer has stopped")]
    Stopped,
}

/// When a device counts as silent: 3 x its interval (or the default) + the grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfflinePolicy {
    pub default_interval_s: i64,
    pub grace_s: i64,
}

/// Where committed frames go.
#[derive(Debug, Clone)]
pub enum Publisher {
    /// Single instance (SQLite): straight to this process's hub.
    Direct(Arc<Hub>),
    /// Several instances (PostgreSQL): the feeder reads the log in id order, ours and others'.
    ViaLog(Arc<Notify>),
}

impl Publisher {
    fn publish(&self, frames: Vec<crate::realtime::hub::Frame>) {
        match self {
            Publisher::Direct(hub) => hub.publish(frames),
            Publisher::ViaLog(wake) if !frames.is_empty() => wake.notify_one(),
            Publisher::ViaLog(_) => {}
        }
    }
}

struct Job {
    work: Work,
    reply: oneshot::Sender<Result<Outcome, WriteError>>,
}

#[derive(Clone, Debug)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.work.fmt(f)
    }
}

impl Writer {
    /// Starts the writer: on SQLite a thread of its own with its own connection, on PostgreSQL
    /// a task. It ends when every `Writer` handle is dropped.
    pub fn spawn(db: Db, publisher: Publisher, policy: OfflinePolicy) -> Writer {
        let (tx, rx) = mpsc::channel(4 * MAX_GROUP);
        match db {
            Db::Sqlite(pool) => {
                let path = pool.connect_options().get_filename().to_path_buf();
                std::thread::Builder::new()
                    .name("sensorcast-writer".into())
                    .spawn(move || run_sqlite(path, publisher, policy, rx))
                    .expect("starting the writer thread");
            }
            Db::Postgres(pool) => {
                tokio::spawn(run_postgres(pool, publisher, policy, rx));
            }
        }
        Writer { tx }
    }

    pub async fn submit(&self, work: Work) -> Result<Outcome, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { work, reply })
            .await
            .map_err(|_| WriteError::Stopped)?;
        answer.await.map_err(|_| WriteError::Stopped)?
    }
}

type Committed = Result<Vec<Result<Outcome, Rejection>>, WriteError>;

/// The SQLite writer thread: each group is one transaction run start to end on this thread.
fn run_sqlite(path: PathBuf, hub: Publisher, policy: OfflinePolicy, mut rx: mpsc::Receiver<Job>) {
    let mut conn = None;
    let mut commit = |jobs: &[Job]| -> Committed {
        let conn = match &mut conn {
            Some(conn) => conn,
            None => conn.insert(sqlite_writer::open(&path).map_err(sqlite_error)?),
        };
        let works: Vec<&Work> = jobs.iter().map(|j| &j.work).collect();
        let applied = sqlite_writer::apply_jobs(conn, &works, crate::now_ms(), policy);
        let (results, frames) = applied.map_err(sqlite_error)?;
        hub.publish(frames);
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
        let result = commit(&jobs);
        for job in answer(jobs, result) {
            let result = commit(std::slice::from_ref(&job));
            answer(vec![job], result);
        }
    }
}

fn sqlite_error(e: rusqlite::Error) -> WriteError {
    use rusqlite::ErrorCode::{CannotOpen, DatabaseBusy, DatabaseLocked};
    match e.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked | CannotOpen) => WriteError::Unavailable(e.to_string()),
        _ => WriteError::Failed(e.to_string()),
    }
}

async fn run_postgres(
    pool: PgPool,
    hub: Publisher,
    policy: OfflinePolicy,
    mut rx: mpsc::Receiver<Job>,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
        let jobs = std::mem::take(&mut group);
        let result = commit_postgres(&pool, &hub, &jobs, policy).await;
        for job in answer(jobs, result) {
            let result = commit_postgres(&pool, &hub, std::slice::from_ref(&job), policy).await;
            answer(vec![job], result);
        }
    }
}

async fn commit_postgres(
    pool: &PgPool,
    hub: &Publisher,
    jobs: &[Job],
    policy: OfflinePolicy,
) -> Committed {
    let works: Vec<&Work> = jobs.iter().map(|j| &j.work).collect();
    let applied = postgres::apply_jobs(pool, &works, crate::now_ms(), policy).await;
    let (results, frames) = applied.map_err(|e| {
        let err = StoreError::from(e);
        if err.is_unavailable() {
            WriteError::Unavailable(err.to_string())
        } else {
            WriteError::Failed(err.to_string())
        }
    })?;
    hub.publish(frames);
    Ok(results)
}

/// Answers the jobs of a group from its commit. Returns the jobs to commit again one by one:
/// one bad job must not fail its neighbours.
fn answer(jobs: Vec<Job>, committed: Committed) -> Vec<Job> {
    match committed {
        Ok(results) => {
            for (job, result) in jobs.into_iter().zip(results) {
                let _ = job.reply.send(result.map_err(WriteError::Rejected));
            }
            Vec::new()
        }
        Err(err) if jobs.len() > 1 && !matches!(err, WriteError::Unavailable(_)) => {
            tracing::warn!(error = %err, jobs = jobs.len(), "group commit failed; retrying one by one");
            jobs
        }
        Err(err) => {
            tracing::error!(error = %err, jobs = jobs.len(), "commit failed");
            for job in jobs {
                let _ = job.reply.send(Err(clone_err(&err)));
            }
            Vec::new()
        }
    }
}

fn clone_err(err: &WriteError) -> WriteError {
    match err {
        WriteError::Rejected(r) => WriteError::Rejected(*r),
        WriteError::Unavailable(s) => WriteError::Unavailable(s.clone()),
        WriteError::Failed(s) => WriteError::Failed(s.clone()),
        WriteError::Stopped => WriteError::Stopped,
    }
}

/// Periodically marks silent devices OFFLINE through the writer.
pub fn spawn_watchdog(
    writer: Writer,
    every: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(err) = writer.submit(Work::MarkSilent).await {
                        tracing::warn!(error = %err, "offline sweep failed");
                    }
                }
                _ = shutdown.cancelled() => break,
            }
        }
    });
}

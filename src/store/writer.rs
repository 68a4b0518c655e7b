//! The single writer: every change that produces events goes through one task, which groups
//! concurrent requests into one transaction (group commit) and publishes their frames to the
//! hub in id order once committed. A request is answered only after its data is durable.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Notify};

use crate::ingest::model::{Batch, Outcome};
use crate::realtime::hub::Hub;
use crate::store::{dispatch, Db, StoreError};

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
    /// Starts the writer task. It ends when every `Writer` handle is dropped.
    pub fn spawn(db: Db, publisher: Publisher, policy: OfflinePolicy) -> Writer {
        let (tx, rx) = mpsc::channel(4 * MAX_GROUP);
        tokio::spawn(run(db, publisher, policy, rx));
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

async fn run(db: Db, hub: Publisher, policy: OfflinePolicy, mut rx: mpsc::Receiver<Job>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
        let jobs = std::mem::take(&mut group);
        match commit(&db, &hub, &jobs, policy).await {
            Ok(results) => reply_all(jobs, results),
            Err(err) if jobs.len() > 1 && !matches!(err, WriteError::Unavailable(_)) => {
                // One bad job must not fail its neighbours: retry each on its own.
                tracing::warn!(error = %err, jobs = jobs.len(), "group commit failed; retrying one by one");
                for job in jobs {
                    let result = commit(&db, &hub, std::slice::from_ref(&job), policy).await;
                    match result {
                        Ok(results) => reply_all(vec![job], results),
                        Err(err) => {
                            let _ = job.reply.send(Err(err));
                        }
                    }
                }
            }
            Err(err) => {
                tracing::error!(error = %err, jobs = jobs.len(), "commit failed");
                for job in jobs {
                    let _ = job.reply.send(Err(clone_err(&err)));
                }
            }
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

fn reply_all(jobs: Vec<Job>, results: Vec<Result<Outcome, Rejection>>) {
    for (job, result) in jobs.into_iter().zip(results) {
        let _ = job.reply.send(result.map_err(WriteError::Rejected));
    }
}

async fn commit(
    db: &Db,
    hub: &Publisher,
    jobs: &[Job],
    policy: OfflinePolicy,
) -> Result<Vec<Result<Outcome, Rejection>>, WriteError> {
    let works: Vec<&Work> = jobs.iter().map(|j| &j.work).collect();
    let now = crate::now_ms();
    let applied = dispatch!(db, |pool, q| q::apply_jobs(pool, &works, now, policy).await);
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

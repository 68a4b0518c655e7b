//! Notifications nobody has to be watching for: a dispatcher that sends the outbox (rows the
//! writer added in the alarm's transaction) by email and signed webhooks, at least once, with
//! backoff for 24 h, and records every attempt; and the escalation sweep. Several instances
//! share the outbox: each row is claimed for a lease, so one instance sends it at a time.

mod email;
mod push;
mod render;
mod webhook;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::{self as domain, now_ms, NotificationRow, TemperatureUnit};
use crate::store::{Attempt, Store, Work, Writer};

/// How often the outbox is looked at.
const POLL: Duration = Duration::from_secs(1);
/// How long a claimed notification is ours before another dispatcher may take it.
const LEASE_MS: i64 = 120_000;
/// Notifications sent at once (their attempts are recorded together).
const BATCH: i64 = 64;
/// Longest a round waits for ingest to pause: ingest goes first (a gateway waits on its
/// answer; a notification can be a moment late), but a round is never starved of its turn.
const YIELD_MAX: Duration = Duration::from_secs(1);
/// A pause in ingest this long (no webhook stored or queued) lets a round go.
const QUIET: Duration = Duration::from_millis(10);
/// Longest a notification is retried, from when it was queued.
const GIVE_UP_MS: i64 = 24 * 3_600_000;
/// Held notifications listed in a summary (the rest are counted).
const SUMMARY_ITEMS: i64 = 50;
/// Longest pause between two attempts.
const MAX_RETRY_MS: i64 = 3_600_000;

#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub smtp_url: Option<String>,
    pub smtp_from: String,
    /// Links in notifications start here, without a trailing slash.
    pub public_url: String,
    pub escalate_after: Duration,
    pub retry_base: Duration,
    /// Longest one attempt may take.
    pub attempt_timeout: Duration,
    /// The flood guard: alarm emails and pushes one recipient gets per `flood_window` before
    /// the rest are held for a summary (0: no limit).
    pub max_per_window: i64,
    pub flood_window: Duration,
}

/// Email recipients' temperature units, or why one could not be read.
type Units = HashMap<String, Result<TemperatureUnit, String>>;

struct Dispatcher {
    store: Store,
    writer: Writer,
    settings: NotifySettings,
    http: reqwest::Client,
    mailer: Option<email::Mailer>,
    vapid: p256::SecretKey,
}

/// The VAPID key pair's private half: made by whichever instance starts first, then shared
/// through the database.
pub async fn vapid_key(store: &Store) -> anyhow::Result<p256::SecretKey> {
    let fresh = p256::SecretKey::random(&mut rand::rngs::OsRng).to_bytes();
    let stored = store.server_key("vapid", &fresh).await?;
    p256::SecretKey::from_slice(&stored)
        .map_err(|_| anyhow::anyhow!("the stored VAPID key is broken"))
}

/// Starts the dispatcher and the escalation sweep; both stop at shutdown.
pub async fn spawn(
    store: Store,
    writer: Writer,
    settings: NotifySettings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mailer = match &settings.smtp_url {
        Some(url) => Some(email::Mailer::new(
            url,
            &settings.smtp_from,
            settings.attempt_timeout,
        )?),
        None => None,
    };
    let http = reqwest::Client::builder()
        .timeout(settings.attempt_timeout)
        .connect_timeout(settings.attempt_timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("sensorcast/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let escalate_after = settings.escalate_after;
    let vapid = vapid_key(&store).await?;
    let d = Arc::new(Dispatcher {
        store,
        writer: writer.clone(),
        settings,
        http,
        mailer,
        vapid,
    });
    let stop = shutdown.clone();
    std::thread::Builder::new()
        .name("sensorcast-notify".into())
        .spawn(move || dispatch_at_low_priority(d, stop))?;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30).min(escalate_after));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let before = now_ms() - escalate_after.as_millis() as i64;
                    if let Err(e) = writer.submit(Work::Escalate { raised_before_ms: before }).await {
                        tracing::warn!(error = %e, "escalation sweep failed");
                    }
                }
                _ = shutdown.cancelled() => break,
            }
        }
    });
    Ok(())
}

/// The dispatcher's own thread and runtime, at the lowest OS priority (nice 19; threads it
/// starts inherit it). On a busy machine a webhook's answer waits for CPU behind nothing of
/// ours: sending, rendering and TLS yield to ingest and pages, and catch up when they idle.
fn dispatch_at_low_priority(d: Arc<Dispatcher>, stop: CancellationToken) {
    use thread_priority::{set_current_thread_priority, ThreadPriority};
    if let Err(e) = set_current_thread_priority(ThreadPriority::Min) {
        tracing::warn!(error = ?e, "the notification thread keeps the normal priority");
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "no runtime for the notification dispatcher: nothing is sent");
            return;
        }
    };
    runtime.block_on(async move {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => d.clone().round().await,
                _ = stop.cancelled() => break,
            }
        }
    });
}

impl Dispatcher {
    /// Sends what is due, several at once, until nothing is.
    async fn round(self: Arc<Self>) {
        loop {
            self.let_ingest_go_first().await;
            let due = match self
                .store
                .claim_notifications(now_ms(), LEASE_MS, BATCH)
                .await
            {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the notification outbox");
                    return;
                }
            };
            let n = due.len() as i64;
            let units = Arc::new(self.units_of(&due).await);
            let sends = due.into_iter().map(|row| {
                let (d, units) = (self.clone(), units.clone());
                tokio::spawn(async move { d.send(row, &units).await })
            });
            let mut attempts = Vec::new();
            let mut carried = Vec::new();
            for s in sends.collect::<Vec<_>>() {
                if let Ok(Some((attempt, summary))) = s.await {
                    attempts.push(attempt);
                    carried.extend(summary);
                }
            }
            if let Err(e) = self.writer.submit(Work::RecordAttempts { attempts }).await {
                // The leases run out and a later round sends them again: at least once.
                tracing::warn!(error = %e, "could not record notification attempts");
                return;
            }
            for (summary, last) in carried {
                // Unmarked, they go out again in the next summary: at least once.
                if let Err(e) = self.store.mark_summarized(&summary, last).await {
                    tracing::warn!(error = %e, id = summary.id, "could not mark what a summary carried");
                }
            }
            if n < BATCH {
                return;
            }
        }
    }

    /// Sends one; returns the attempt to record (none when the flood guard held it), and a
    /// delivered summary with the newest notification it carried.
    async fn send(
        &self,
        mut row: NotificationRow,
        units: &Units,
    ) -> Option<((i64, Attempt, String), Option<(NotificationRow, i64)>)> {
        if self.held(&row).await {
            return None;
        }
        // A summary is written when it is sent, from whatever is held by then.
        let mut carried = None;
        if row.reason == domain::SUMMARY {
            match self.summarize(&mut row).await {
                Ok(last) => carried = last,
                Err(e) => {
                    // The lease runs out and a later round tries again.
                    tracing::warn!(error = %e, id = row.id, "could not read the held notifications");
                    return None;
                }
            }
        }
        let result = match row.channel.as_str() {
            domain::EMAIL => match &self.mailer {
                Some(m) => match units.get(&row.recipient) {
                    Some(Ok(unit)) => m.send(&row, &self.settings.public_url, *unit).await,
                    Some(Err(e)) => {
                        Err(Failure::retry(format!("could not read the recipient: {e}")))
                    }
                    None => Err(Failure::retry("the recipient's unit was not read")),
                },
                None => Err(Failure::permanent("no SMTP server configured (--smtp-url)")),
            },
            domain::WEBHOOK => webhook::send(&self.http, &self.store, &row).await,
            domain::PUSH => {
                let url = &self.settings.public_url;
                push::send(&self.http, &self.store, &self.vapid, url, &row).await
            }
            other => Err(Failure::permanent(format!("unknown channel {other}"))),
        };
        let (attempt, text) = match result {
            Ok(text) => (Attempt::Delivered, text),
            Err(f) => (self.after_failure(&row, f.permanent), f.text),
        };
        if attempt == Attempt::Delivered {
            tracing::info!(id = row.id, channel = %row.channel, "notification delivered");
        } else {
            tracing::warn!(id = row.id, channel = %row.channel, result = %text, ?attempt, "notification not delivered");
        }
        let summary = carried
            .filter(|_| attempt == Attempt::Delivered)
            .map(|last| (row.clone(), last));
        Some(((row.id, attempt, text), summary))
    }

    /// The temperature unit of each email recipient of a round, read once per person (a burst
    /// of alarms is mostly a few people's).
    async fn units_of(&self, due: &[NotificationRow]) -> Units {
        let mut units = Units::new();
        for row in due.iter().filter(|r| r.channel == domain::EMAIL) {
            if !units.contains_key(&row.recipient) {
                let unit = self.store.recipient_unit(&row.recipient).await;
                units.insert(row.recipient.clone(), unit.map_err(|e| e.to_string()));
            }
        }
        units
    }

    /// Waits for a pause in ingest (or `YIELD_MAX`): a round's claims and records share the
    /// database's write lock and flushes with the webhooks, and its sends the CPU.
    async fn let_ingest_go_first(&self) {
        let until = tokio::time::Instant::now() + YIELD_MAX;
        loop {
            let seen = self.writer.batches_submitted();
            tokio::time::sleep(QUIET).await;
            let quiet = self.writer.batches_submitted() == seen && self.writer.backlog() == 0;
            if quiet || tokio::time::Instant::now() >= until {
                return;
            }
        }
    }

    /// The flood guard: an alarm email or push past the recipient's limit is held for their
    /// summary. Webhooks (machines) and tests are never held; if counting fails, it is sent.
    async fn held(&self, row: &NotificationRow) -> bool {
        let person = matches!(row.channel.as_str(), domain::EMAIL | domain::PUSH);
        let alarm = matches!(row.reason.as_str(), domain::RAISED | domain::ESCALATED);
        let max = self.settings.max_per_window;
        if !person || !alarm || max == 0 {
            return false;
        }
        let window = self.settings.flood_window.as_millis() as i64;
        match self.store.fold_if_flooded(row, max, window).await {
            Ok(held) => {
                if held {
                    tracing::info!(id = row.id, channel = %row.channel, "notification held for a summary (flood guard)");
                }
                held
            }
            Err(e) => {
                tracing::warn!(error = %e, id = row.id, "the flood guard could not count; sending");
                false
            }
        }
    }

    /// Gives a summary its payload; returns the newest held notification it carries.
    async fn summarize(&self, row: &mut NotificationRow) -> crate::store::StoreResult<Option<i64>> {
        let (held, total, last) = self
            .store
            .folded_for(&row.channel, &row.recipient, SUMMARY_ITEMS)
            .await?;
        let payloads: Vec<&str> = held.iter().map(|r| r.payload.as_str()).collect();
        let limit = self.settings.max_per_window;
        row.payload = render::summary_payload(&payloads, total, limit, now_ms());
        Ok(last)
    }

    fn after_failure(&self, row: &NotificationRow, permanent: bool) -> Attempt {
        let wait = retry_after_ms(self.settings.retry_base, row.attempts);
        let at_ms = now_ms() + wait;
        if permanent || at_ms > row.created_ms + GIVE_UP_MS {
            Attempt::Abandon
        } else {
            Attempt::Retry { at_ms }
        }
    }
}

/// The pause before the next attempt after `attempts` earlier ones: doubling, capped.
fn retry_after_ms(base: Duration, attempts: i64) -> i64 {
    let base = base.as_millis() as i64;
    base.saturating_mul(1 << attempts.clamp(0, 20))
        .min(MAX_RETRY_MS)
}

/// Why a send failed, and whether trying again could help.
#[derive(Debug)]
pub struct Failure {
    pub text: String,
    pub permanent: bool,
}

impl Failure {
    fn retry(text: impl Into<String>) -> Failure {
        Failure {
            text: text.into(),
            permanent: false,
        }
    }

    fn permanent(text: impl Into<String>) -> Failure {
        Failure {
            text: text.into(),
            permanent: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_and_are_capped() {
        let base = Duration::from_secs(10);
        assert_eq!(retry_after_ms(base, 0), 10_000);
        assert_eq!(retry_after_ms(base, 1), 20_000);
        assert_eq!(retry_after_ms(base, 3), 80_000);
        assert_eq!(retry_after_ms(base, 40), MAX_RETRY_MS);
    }
}

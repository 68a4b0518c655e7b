//! Webhooks at a steady rate for the soak: event k is due at k / rate seconds and comes from
//! fleet device k mod devices. Up to `senders` are in flight at once, so one slow answer does
//! not delay the next; only when all are busy does a send start late (and that is counted).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::clock::mono_us;
use crate::publish::{Publisher, Sent};
use crate::target::{fleet_event, Target};

#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Events `first .. first + count` are sent; event k carries marker `base + k`.
    pub first: usize,
    pub count: usize,
    pub base: u64,
    pub per_sec: f64,
    pub devices: usize,
    pub senders: usize,
}

/// How far behind schedule sends started.
#[derive(Debug, Default, Clone, Copy)]
pub struct Lateness {
    pub max_ms: f64,
    /// Sends that started more than one period late (the driver woke late, or waited for a
    /// sender).
    pub late: u64,
    /// Sends that had to wait for a sender (all were busy).
    pub waited: u64,
}

/// Starts sending; every answer arrives on the returned channel. `sent_at[k]` is set to the
/// time event k's request is written (before its answer).
pub fn start(
    target: &Target,
    plan: Plan,
    sent_at: Arc<Vec<AtomicU64>>,
) -> (mpsc::UnboundedReceiver<Sent>, JoinHandle<Lateness>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let target = target.clone();
    let handle = tokio::spawn(async move {
        let permits = Arc::new(Semaphore::new(plan.senders));
        let pool: Arc<Mutex<Vec<Publisher>>> = Arc::default();
        let period = Duration::from_secs_f64(1.0 / plan.per_sec);
        let started = Instant::now();
        let mut lateness = Lateness::default();
        for i in 0..plan.count {
            let due = started + Duration::from_secs_f64(i as f64 / plan.per_sec);
            tokio::time::sleep_until(due).await;
            let permit = match permits.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    lateness.waited += 1;
                    let Ok(p) = permits.clone().acquire_owned().await else {
                        break;
                    };
                    p
                }
            };
            let behind = Instant::now().saturating_duration_since(due);
            lateness.max_ms = lateness.max_ms.max(behind.as_secs_f64() * 1000.0);
            if behind > period {
                lateness.late += 1;
            }
            let k = plan.first + i;
            let (target, pool, sent_at, tx) =
                (target.clone(), pool.clone(), sent_at.clone(), tx.clone());
            tokio::spawn(async move {
                let taken = pool.lock().map(|mut p| p.pop()).ok().flatten();
                let mut publisher = taken.unwrap_or_else(|| Publisher::new(&target));
                let marker = plan.base + k as u64;
                let request = target.webhook_request(&fleet_event(k % plan.devices, marker));
                sent_at[k].store(mono_us(), Ordering::Relaxed);
                let sent = publisher.send(marker, &request).await;
                if let Ok(mut p) = pool.lock() {
                    p.push(publisher);
                }
                let _ = tx.send(sent);
                drop(permit);
            });
        }
        // Every send answered (each is bounded by the request timeout).
        let _ = permits.acquire_many(plan.senders as u32).await;
        lateness
    });
    (rx, handle)
}

//! Argon2id password hashing, run on the blocking pool so it never stalls async threads.
//!
//! Each hash takes ~19 MiB and a core for a while, so at most one per core runs at a time, and
//! sign-in attempts queue for a slot only up to a bound: past it they are refused at once
//! ([`Busy`]) instead of piling up threads and memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use tokio::sync::{Semaphore, SemaphorePermit};

/// Sign-in checks that may wait for a hashing slot, per slot.
const QUEUE_PER_SLOT: usize = 32;

/// Every hashing slot is taken and the queue is full: answer "busy" without hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

struct Slots {
    semaphore: Semaphore,
    size: usize,
    waiting: AtomicUsize,
    running: AtomicUsize,
    peak: AtomicUsize,
}

fn slots() -> &'static Slots {
    static SLOTS: OnceLock<Slots> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let size = std::thread::available_parallelism().map_or(1, |n| n.get());
        Slots {
            semaphore: Semaphore::new(size),
            size,
            waiting: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    })
}

/// How many hashes may run at once (the number of cores).
pub fn slot_count() -> usize {
    slots().size
}

/// The most hashes that ever ran at once in this process (for tests and operators).
pub fn peak_concurrency() -> usize {
    slots().peak.load(Ordering::Relaxed)
}

/// A slot, waiting in a bounded queue when `bounded` (sign-in), else for as long as it takes
/// (an administrator creating a user).
async fn slot(bounded: bool) -> Result<SemaphorePermit<'static>, Busy> {
    let s = slots();
    if let Ok(permit) = s.semaphore.try_acquire() {
        return Ok(permit);
    }
    if bounded && s.waiting.fetch_add(1, Ordering::AcqRel) >= s.size * QUEUE_PER_SLOT {
        s.waiting.fetch_sub(1, Ordering::AcqRel);
        return Err(Busy);
    }
    let permit = s.semaphore.acquire().await.map_err(|_| Busy);
    if bounded {
        s.waiting.fetch_sub(1, Ordering::AcqRel);
    }
    permit
}

/// Runs `f` on the blocking pool while holding a slot.
async fn run<T: Send + 'static>(
    bounded: bool,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Busy> {
    let _permit = slot(bounded).await?;
    let s = slots();
    let now = s.running.fetch_add(1, Ordering::AcqRel) + 1;
    s.peak.fetch_max(now, Ordering::AcqRel);
    let result = tokio::task::spawn_blocking(f).await;
    s.running.fetch_sub(1, Ordering::AcqRel);
    result.map_err(|_| Busy)
}

/// Verified against when the email is unknown, so both paths cost the same.
fn dummy_hash() -> String {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY
        .get_or_init(|| hash_blocking("sensorcast-dummy").unwrap_or_default())
        .clone()
}

pub fn hash_blocking(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

pub async fn hash(password: String) -> Result<String, String> {
    run(false, move || hash_blocking(&password))
        .await
        .map_err(|_| "password hashing failed".to_string())?
}

/// True when `password` matches `hash`; an unknown user checks against a dummy hash.
/// `Err(Busy)` when too many checks are already waiting.
pub async fn verify(hash: Option<String>, password: String) -> Result<bool, Busy> {
    let known = hash.is_some();
    let ok = run(true, move || {
        let hash = hash.unwrap_or_else(dummy_hash);
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await?;
    Ok(known && ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slots are one per process: a test that fills their queue would make another's
    /// checks `Busy`, so these tests take turns.
    static SLOTS_IN_USE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    #[tokio::test]
    async fn round_trip() {
        let _turn = SLOTS_IN_USE.lock().await;
        let h = hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert_eq!(
            verify(Some(h.clone()), "correct horse".into()).await,
            Ok(true)
        );
        assert_eq!(verify(Some(h), "wrong".into()).await, Ok(false));
        assert_eq!(verify(None, "anything".into()).await, Ok(false));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashing_never_runs_on_more_slots_than_cores_and_a_full_queue_is_refused() {
        let _turn = SLOTS_IN_USE.lock().await;
        let h = hash("correct horse".into()).await.unwrap();
        let checks: Vec<_> = (0..slot_count() * (QUEUE_PER_SLOT + 2) + 4)
            .map(|_| tokio::spawn(verify(Some(h.clone()), "wrong".into())))
            .collect();
        let mut busy = 0;
        for c in checks {
            match c.await.unwrap() {
                Ok(ok) => assert!(!ok),
                Err(Busy) => busy += 1,
            }
        }
        assert!(busy > 0, "past the queue, refused at once");
        assert!(peak_concurrency() <= slot_count());
    }
}

//! Slows down password guessing: after too many failed sign-ins for one email, or from one
//! client address, further attempts are refused for a while without checking the password.
//! Kept in memory per instance: a restart forgives, which is acceptable for a rate limit.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed attempts per email within the window before it locks.
pub const EMAIL_LIMIT: usize = 5;
/// Failed attempts per client address; higher, since offices share one address.
pub const IP_LIMIT: usize = 20;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Past this many tracked keys, expired ones are dropped.
const PRUNE_AT: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Email(String),
    Ip(IpAddr),
}

impl Key {
    fn limit(&self, t: &Throttle) -> usize {
        match self {
            Key::Email(_) => t.email_limit,
            Key::Ip(_) => t.ip_limit,
        }
    }
}

#[derive(Debug)]
pub struct Throttle {
    email_limit: usize,
    ip_limit: usize,
    window: Duration,
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(EMAIL_LIMIT, IP_LIMIT, WINDOW)
    }
}

impl Throttle {
    pub fn new(email_limit: usize, ip_limit: usize, window: Duration) -> Self {
        Throttle {
            email_limit,
            ip_limit,
            window,
            failures: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, VecDeque<Instant>>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(wait)` when any key has used up its attempts.
    pub fn check(&self, keys: &[Key]) -> Result<(), Duration> {
        let now = Instant::now();
        let map = self.lock();
        let wait = keys
            .iter()
            .filter_map(|k| {
                let times = map.get(k)?;
                let recent: Vec<&Instant> = times
                    .iter()
                    .filter(|t| now.duration_since(**t) < self.window)
                    .collect();
                // Locked until the oldest failure that still counts leaves the window.
                (recent.len() >= k.limit(self))
                    .then(|| self.window.saturating_sub(now.duration_since(*recent[0])))
            })
            .max();
        wait.map_or(Ok(()), Err)
    }

    pub fn failed(&self, keys: &[Key]) {
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= PRUNE_AT {
            map.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < self.window)
            });
        }
        for key in keys {
            let limit = key.limit(self);
            let times = map.entry(key.clone()).or_default();
            times.retain(|t| now.duration_since(*t) < self.window);
            times.push_back(now);
            while times.len() > limit {
                times.pop_front();
            }
        }
    }

    /// A successful sign-in forgives that email (not the address: others may be guessing).
    pub fn succeeded(&self, email: &str) {
        self.lock().remove(&Key::Email(email.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_the_limit_and_forgives_after_the_window() {
        let t = Throttle::new(3, 5, Duration::from_millis(200));
        let email = [Key::Email("a@x".into())];
        for _ in 0..2 {
            t.failed(&email);
            assert!(t.check(&email).is_ok());
        }
        t.failed(&email);
        let wait = t.check(&email).unwrap_err();
        assert!(wait <= Duration::from_millis(200) && wait > Duration::ZERO);
        assert!(t.check(&[Key::Email("b@x".into())]).is_ok());
        std::thread::sleep(Duration::from_millis(220));
        assert!(t.check(&email).is_ok());
    }

    #[test]
    fn address_limit_spans_emails_and_success_forgives_the_email_only() {
        let t = Throttle::new(3, 4, WINDOW);
        let ip = Key::Ip("192.0.2.7".parse().unwrap());
        for i in 0..4 {
            t.failed(&[Key::Email(format!("u{i}@x")), ip.clone()]);
        }
        assert!(t.check(&[Key::Email("new@x".into()), ip.clone()]).is_err());
        let other_ip = Key::Ip("192.0.2.8".parse().unwrap());
        assert!(t.check(&[Key::Email("new@x".into()), other_ip]).is_ok());

        let email = [Key::Email("c@x".into())];
        t.failed(&email);
        t.failed(&email);
        t.succeeded("c@x");
        t.failed(&email);
        assert!(t.check(&email).is_ok());
    }
}

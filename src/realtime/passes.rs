//! Stream passes: who a session belongs to, as checked against the database within the last
//! second, so a reconnect storm (every tab of a deploy coming back at once) opens its streams
//! without two database reads each.
//!
//! A pass is dropped at once when the hub is told the session or its user ended (on every
//! instance: the control messages reach each one's hub), all are dropped when control messages
//! may have been missed, and none is used after `FRESH_FOR` anyway: a change made behind the
//! hub's back (straight in the database) is seen within that time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::User;

/// How long a checked session is taken on trust.
const FRESH_FOR: Duration = Duration::from_secs(1);
/// Passes held at most; past it, stale ones are swept, and if all are fresh no more are kept
/// (only signed-in sessions get one, so this bounds what many sessions can make us hold).
const MAX_PASSES: usize = 50_000;

#[derive(Debug, Clone)]
pub struct Pass {
    pub user: User,
    /// When the session expires unless renewed (ms since the epoch; 0: unknown).
    pub expires_at_ms: i64,
    checked: Instant,
}

#[derive(Debug, Default)]
pub struct Passes {
    by_session: Mutex<HashMap<String, Pass>>,
    /// Bumped by every sign-out, user change and missed-messages notice, before streams are
    /// told: a stream whose access was checked under an older epoch checks again once it has
    /// subscribed, so an announcement made in between cannot pass it by.
    epoch: AtomicU64,
}

impl Passes {
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The session's pass, if it was checked within `FRESH_FOR` and has not expired.
    pub fn get(&self, session_id: &str, now_ms: i64) -> Option<Pass> {
        let passes = self.lock();
        let pass = passes.get(session_id)?;
        let expired = pass.expires_at_ms != 0 && pass.expires_at_ms <= now_ms;
        (pass.checked.elapsed() < FRESH_FOR && !expired).then(|| pass.clone())
    }

    /// Keeps a pass for a session just checked against the database, unless an announcement
    /// came since the check began (`epoch` is what `epoch()` said before it).
    pub fn keep(&self, session_id: &str, user: User, expires_at_ms: i64, epoch: u64) {
        let mut passes = self.lock();
        if self.epoch() != epoch {
            return;
        }
        if passes.len() >= MAX_PASSES {
            passes.retain(|_, p| p.checked.elapsed() < FRESH_FOR);
            if passes.len() >= MAX_PASSES {
                return;
            }
        }
        let pass = Pass {
            user,
            expires_at_ms,
            checked: Instant::now(),
        };
        passes.insert(session_id.to_string(), pass);
    }

    pub fn forget_session(&self, session_id: &str) {
        let mut passes = self.lock();
        self.bump();
        passes.remove(session_id);
    }

    pub fn forget_user(&self, user_id: i64) {
        let mut passes = self.lock();
        self.bump();
        passes.retain(|_, p| p.user.id != user_id);
    }

    pub fn forget_all(&self) {
        let mut passes = self.lock();
        self.bump();
        passes.clear();
    }

    fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pass>> {
        // A panic while holding it leaves a map that is still consistent.
        self.by_session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Role, TemperatureUnit};

    fn user(id: i64) -> User {
        User {
            id,
            email: format!("u{id}@example.com"),
            role: Role::Manager,
            disabled: false,
            site_ids: vec![1],
            unit: TemperatureUnit::Celsius,
        }
    }

    #[test]
    fn a_pass_is_kept_until_its_session_or_user_ends() {
        let passes = Passes::default();
        passes.keep("s1", user(1), 0, passes.epoch());
        passes.keep("s2", user(1), 0, passes.epoch());
        passes.keep("s3", user(2), 0, passes.epoch());
        assert_eq!(passes.get("s1", 0).map(|p| p.user.id), Some(1));
        passes.forget_session("s1");
        assert!(passes.get("s1", 0).is_none());
        assert!(passes.get("s2", 0).is_some());
        passes.forget_user(1);
        assert!(passes.get("s2", 0).is_none());
        assert!(passes.get("s3", 0).is_some());
        passes.forget_all();
        assert!(passes.get("s3", 0).is_none());
    }

    #[test]
    fn an_announcement_during_the_check_keeps_no_pass() {
        let passes = Passes::default();
        let before = passes.epoch();
        passes.forget_session("other");
        passes.keep("s1", user(1), 0, before);
        assert!(passes.get("s1", 0).is_none());
    }

    #[test]
    fn an_expired_session_or_an_old_check_is_no_pass() {
        let passes = Passes::default();
        passes.keep("s1", user(1), 1_000, passes.epoch());
        assert!(passes.get("s1", 999).is_some());
        assert!(passes.get("s1", 1_000).is_none());
        let mut map = passes.lock();
        map.get_mut("s1").unwrap().checked = Instant::now() - FRESH_FOR;
        drop(map);
        assert!(passes.get("s1", 0).is_none());
    }
}

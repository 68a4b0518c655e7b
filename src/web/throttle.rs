//! Slows down password guessing, counted in the database so every instance sees the same
//! figures. An attempt is recorded before its password is checked, in one step with the count
//! (per client address), so parallel guesses cannot all slip under a limit.
//!
//! - per address and account: after 5 checked attempts within 15 minutes, that pair is refused;
//! - per address: after 20 (offices share one), the address is refused;
//! - per account from anywhere: never refused (a stranger must not lock the owner out), but
//!   each attempt past 5 waits longer first, up to 5 s.
//!
//! A refused attempt adds no row, so one address holds at most 20 rows; housekeeping drops
//! rows older than the window.

use std::net::IpAddr;
use std::time::Duration;

use crate::domain::now_ms;
use crate::store::{LoginCounts, Store, StoreResult};

/// Checked attempts per address and account within the window before that pair is refused.
pub const PAIR_LIMIT: i64 = 5;
/// Checked attempts per client address; higher, since offices share one address.
pub const IP_LIMIT: i64 = 20;
/// Attempts on one account (from anywhere) past which each further one is slowed down.
pub const ACCOUNT_SLOW_AFTER: i64 = 5;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(5);
/// Longest email kept in a row (the form itself may be far longer).
const MAX_EMAIL: usize = 320;

/// What became of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Recorded as `attempt`; check the password after waiting `delay`.
    Admitted { attempt: i64, delay: Duration },
    /// Refused without checking; try again after `wait`.
    Refused { wait: Duration },
}

/// What the refusal is judged on.
type Counts = LoginCounts;

/// `Err(wait)` when the address or the pair has used up its attempts.
fn refusal(c: &Counts, now_ms: i64) -> Option<Duration> {
    let window = WINDOW.as_millis() as i64;
    // Open again once the oldest attempt that counts leaves the window.
    let wait = |oldest: Option<i64>| {
        let left = oldest.map_or(window, |at| (at + window - now_ms).clamp(1_000, window));
        Duration::from_millis(left as u64)
    };
    match (c.ip >= IP_LIMIT, c.pair >= PAIR_LIMIT) {
        (false, false) => None,
        (ip, pair) => {
            let a = ip.then(|| wait(c.ip_oldest_ms));
            let b = pair.then(|| wait(c.pair_oldest_ms));
            a.max(b)
        }
    }
}

/// The wait before checking a password of an account that has had `attempts` recently:
/// nothing at first, then doubling from 100 ms up to 5 s.
pub fn account_delay(attempts: i64) -> Duration {
    if attempts < ACCOUNT_SLOW_AFTER {
        return Duration::ZERO;
    }
    let doublings = (attempts - ACCOUNT_SLOW_AFTER).min(16) as u32;
    (FIRST_DELAY * 2u32.pow(doublings)).min(MAX_DELAY)
}

/// The key an address is counted under: an IPv6 client owns a whole /64, so that is one key.
pub fn address_key(ip: Option<IpAddr>) -> String {
    match ip {
        None => "unknown".into(),
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

fn clip(email: &str) -> &str {
    match email.char_indices().nth(MAX_EMAIL) {
        Some((at, _)) => &email[..at],
        None => email,
    }
}

/// Counts and, unless refused, records one attempt from `ip` on `email`.
pub async fn admit(store: &Store, ip: &str, email: &str) -> StoreResult<Admission> {
    let email = clip(email);
    let now = now_ms();
    let since = now - WINDOW.as_millis() as i64;
    let refuse = |c: &Counts| refusal(c, now).is_some();
    let (counts, attempt) = store.record_login_attempt(ip, email, since, refuse).await?;
    Ok(match (attempt, refusal(&counts, now)) {
        (Some(attempt), _) => Admission::Admitted {
            attempt,
            delay: account_delay(counts.account),
        },
        (None, wait) => Admission::Refused {
            wait: wait.unwrap_or(WINDOW),
        },
    })
}

/// The attempt's password was never checked: it does not count.
pub async fn withdraw(store: &Store, attempt: i64) -> StoreResult<()> {
    store.withdraw_login_attempt(attempt).await
}

/// A successful sign-in forgives that address for that account (not the address as a whole:
/// others behind it may be guessing, nor the account elsewhere).
pub async fn succeeded(store: &Store, ip: &str, email: &str) -> StoreResult<()> {
    store.forgive_login_attempts(ip, clip(email)).await
}

/// Rows that left the window (housekeeping).
pub async fn purge(store: &Store) -> StoreResult<u64> {
    let before = now_ms() - WINDOW.as_millis() as i64;
    store.purge_login_attempts(before).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pair_and_the_address_are_refused_at_their_limits_the_account_never() {
        let now = 10_000_000;
        let fresh = Counts::default();
        assert_eq!(refusal(&fresh, now), None);
        let pair = Counts {
            ip: PAIR_LIMIT,
            pair: PAIR_LIMIT,
            account: 500,
            ip_oldest_ms: Some(now - 60_000),
            pair_oldest_ms: Some(now - 60_000),
        };
        assert_eq!(refusal(&pair, now), Some(WINDOW - Duration::from_secs(60)));
        let address = Counts {
            ip: IP_LIMIT,
            pair: 1,
            account: 1,
            ip_oldest_ms: Some(now - 1_000),
            pair_oldest_ms: Some(now),
        };
        assert_eq!(
            refusal(&address, now),
            Some(WINDOW - Duration::from_secs(1))
        );
        let targeted = Counts {
            account: 10_000,
            ..Counts::default()
        };
        assert_eq!(refusal(&targeted, now), None, "slowed, not locked");
    }

    #[test]
    fn a_targeted_account_is_slowed_more_and_more_up_to_a_bound() {
        assert_eq!(account_delay(0), Duration::ZERO);
        assert_eq!(account_delay(ACCOUNT_SLOW_AFTER - 1), Duration::ZERO);
        assert_eq!(account_delay(ACCOUNT_SLOW_AFTER), FIRST_DELAY);
        assert_eq!(account_delay(ACCOUNT_SLOW_AFTER + 2), FIRST_DELAY * 4);
        assert_eq!(account_delay(i64::MAX), MAX_DELAY);
    }

    #[test]
    fn an_ipv6_client_is_one_key_per_64_and_long_emails_are_clipped() {
        let a = address_key("2001:db8:1:2:aaaa::1".parse().ok());
        let b = address_key("2001:db8:1:2:bbbb::9".parse().ok());
        assert_eq!(a, b);
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(address_key("::ffff:192.0.2.1".parse().ok()), "192.0.2.1");
        assert_eq!(address_key(None), "unknown");
        assert_eq!(clip(&"é".repeat(1000)).chars().count(), MAX_EMAIL);
    }
}

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

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::http::HeaderMap;

use crate::store::{dispatch, Db, StoreResult};

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

/// Figures counted within the window, for one address and account.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    ip: i64,
    pair: i64,
    account: i64,
    ip_oldest_ms: Option<i64>,
    pair_oldest_ms: Option<i64>,
}

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
pub async fn admit(db: &Db, ip: &str, email: &str) -> StoreResult<Admission> {
    let email = clip(email);
    let now = crate::now_ms();
    let since = now - WINDOW.as_millis() as i64;
    let outcome = dispatch!(db, |pool, q| {
        let mut tx = q::begin_login_attempt(pool, ip).await?;
        let (ip_n, pair, account, ip_oldest_ms, pair_oldest_ms) =
            q::login_attempt_counts(&mut tx, ip, email, since).await?;
        let counts = Counts {
            ip: ip_n,
            pair,
            account,
            ip_oldest_ms,
            pair_oldest_ms,
        };
        if let Some(wait) = refusal(&counts, now) {
            tx.rollback().await?;
            return Ok(Admission::Refused { wait });
        }
        let attempt = q::login_attempt_insert(&mut tx, ip, email, now).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(Admission::Admitted {
            attempt,
            delay: account_delay(counts.account),
        })
    })?;
    Ok(outcome)
}

/// The attempt's password was never checked: it does not count.
pub async fn withdraw(db: &Db, attempt: i64) -> StoreResult<()> {
    dispatch!(db, |pool, q| q::login_attempt_withdraw(pool, attempt).await)?;
    Ok(())
}

/// A successful sign-in forgives that address for that account (not the address as a whole:
/// others behind it may be guessing, nor the account elsewhere).
pub async fn succeeded(db: &Db, ip: &str, email: &str) -> StoreResult<()> {
    let email = clip(email);
    dispatch!(db, |pool, q| q::login_attempts_forgive(pool, ip, email)
        .await)?;
    Ok(())
}

/// Rows that left the window (housekeeping).
pub async fn purge(db: &Db) -> StoreResult<u64> {
    let before = crate::now_ms() - WINDOW.as_millis() as i64;
    Ok(dispatch!(db, |pool, q| q::login_attempts_purge(
        pool, before
    )
    .await)?)
}

/// The client's address: the peer, or behind a local reverse proxy (peer on loopback) the
/// address the proxy reports. `None` when the server was started without peer addresses.
pub fn client_ip(peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
    let peer = peer?.ip();
    if !peer.is_loopback() {
        return Some(peer);
    }
    let forwarded = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        // The proxy appends the address it saw: the last entry is the one to trust.
        .and_then(|v| v.rsplit(',').next())
        .or_else(|| headers.get("x-real-ip").and_then(|v| v.to_str().ok()))
        .and_then(|v| v.trim().parse().ok());
    Some(forwarded.unwrap_or(peer))
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

    #[test]
    fn forwarded_address_is_trusted_only_from_loopback() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.4".parse().unwrap(),
        );
        assert_eq!(client_ip(None, &headers), None);
        let local = SocketAddr::from(([127, 0, 0, 1], 5000));
        assert_eq!(
            client_ip(Some(local), &headers),
            "198.51.100.4".parse().ok()
        );
        let remote = SocketAddr::from(([192, 0, 2, 1], 5000));
        assert_eq!(client_ip(Some(remote), &headers), "192.0.2.1".parse().ok());
    }
}

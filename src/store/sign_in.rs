//! Sign-in attempts, counted per address and account in the database so every instance sees
//! the same figures, and the keys all instances share.

use super::{dispatch, Store, StoreResult};
use crate::domain::now_ms;

/// Attempts within the window: from the address, from it on this account, on this account from
/// anywhere, and the oldest of the first two (when their limit frees up).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoginCounts {
    pub ip: i64,
    pub pair: i64,
    pub account: i64,
    pub ip_oldest_ms: Option<i64>,
    pub pair_oldest_ms: Option<i64>,
}

impl Store {
    /// Counts the attempts since `since_ms` from `ip` and on `email` and, unless `refuse` says
    /// so from the counts, records this one (its id is returned) — one step per address on
    /// every instance, so parallel guesses cannot all slip under a limit.
    pub async fn record_login_attempt(
        &self,
        ip: &str,
        email: &str,
        since_ms: i64,
        refuse: impl FnOnce(&LoginCounts) -> bool,
    ) -> StoreResult<(LoginCounts, Option<i64>)> {
        let now = now_ms();
        Ok(dispatch!(&self.db, |pool, q| {
            let mut tx = q::begin_login_attempt(pool, ip).await?;
            let (ip_n, pair, account, ip_oldest_ms, pair_oldest_ms) =
                q::login_attempt_counts(&mut tx, ip, email, since_ms).await?;
            let counts = LoginCounts {
                ip: ip_n,
                pair,
                account,
                ip_oldest_ms,
                pair_oldest_ms,
            };
            if refuse(&counts) {
                tx.rollback().await?;
                return Ok((counts, None));
            }
            let attempt = q::login_attempt_insert(&mut tx, ip, email, now).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>((counts, Some(attempt)))
        })?)
    }

    /// An attempt whose password was never checked no longer counts.
    pub async fn withdraw_login_attempt(&self, attempt: i64) -> StoreResult<()> {
        dispatch!(&self.db, |pool, q| q::login_attempt_withdraw(pool, attempt)
            .await)?;
        Ok(())
    }

    /// Forgets the attempts of this address on this account (a successful sign-in).
    pub async fn forgive_login_attempts(&self, ip: &str, email: &str) -> StoreResult<()> {
        dispatch!(&self.db, |pool, q| q::login_attempts_forgive(
            pool, ip, email
        )
        .await)?;
        Ok(())
    }

    /// Drops attempts made before `before_ms` (housekeeping).
    pub async fn purge_login_attempts(&self, before_ms: i64) -> StoreResult<u64> {
        Ok(dispatch!(&self.db, |pool, q| q::login_attempts_purge(
            pool, before_ms
        )
        .await)?)
    }

    /// The secret called `name`, shared by every instance: the stored one, or `fresh` stored
    /// now if there was none.
    pub async fn server_key(&self, name: &str, fresh: &[u8]) -> StoreResult<Vec<u8>> {
        let now = now_ms();
        Ok(dispatch!(&self.db, |pool, q| q::server_key_get_or_create(
            pool, name, fresh, now
        )
        .await)?)
    }
}

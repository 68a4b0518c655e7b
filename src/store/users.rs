//! Users, sites and who belongs where. Passwords arrive here already hashed: hashing is the
//! web layer's (it bounds how many run at once).

use super::{dispatch, SiteRow, Store, StoreError, StoreResult, UserListRow, UserRow, UserSiteRow};
use crate::domain::{action, now_ms, AuditEntry, Role, TemperatureUnit, User};

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub password_hash: &'a str,
    pub role: Role,
    /// Site names, created on first use.
    pub sites: &'a [String],
    /// Who creates it, for the audit trail.
    pub by: &'a str,
}

/// What an administrator changes of a user's access, at once.
#[derive(Debug, Clone)]
pub struct AccessChange<'a> {
    pub role: Role,
    pub site_ids: &'a [i64],
    /// A new password's hash, if it changes.
    pub password_hash: Option<&'a str>,
    /// End the user's sessions (all but `keep`) in the same transaction.
    pub end_sessions: bool,
    /// The admin's own session, kept when they change their own account.
    pub keep: Option<&'a str>,
    /// Who changes it, for the audit trail.
    pub by: &'a str,
}

impl Store {
    pub async fn count_users(&self) -> StoreResult<i64> {
        Ok(dispatch!(&self.db, |pool, q| q::count_users(pool).await)?)
    }

    /// Creates a user (email lower-cased) in the named sites; `Conflict` if the email is taken.
    pub async fn create_user(&self, user: NewUser<'_>) -> StoreResult<i64> {
        let email = user.email.trim().to_ascii_lowercase();
        if !email.contains('@') {
            return Err(StoreError::Invalid(format!(
                "{email:?} is not an email address"
            )));
        }
        let (role, now) = (user.role.as_str(), now_ms());
        let audit = AuditEntry::new(user.by, action::USER_CREATED, &email)
            .after(serde_json::json!({"email": email, "role": role, "sites": user.sites}));
        Ok(dispatch!(&self.db, |pool, q| {
            let mut tx = q::begin(pool).await?;
            let id = q::insert_user(&mut tx, &email, user.password_hash, role, now).await?;
            for site in user.sites {
                let site_id = q::site_get_or_create(&mut tx, site.trim(), now).await?;
                q::add_user_site(&mut tx, id, site_id).await?;
            }
            q::insert_audit(&mut tx, &audit, now).await?;
            tx.commit().await.map(|()| id)
        })?)
    }

    /// The account with this email (as typed at sign-in, lower-cased), disabled or not.
    pub async fn account_by_email(&self, email: &str) -> StoreResult<Option<UserRow>> {
        Ok(dispatch!(&self.db, |pool, q| q::user_by_email(
            pool, email
        )
        .await)?)
    }

    pub async fn account(&self, id: i64) -> StoreResult<Option<UserRow>> {
        Ok(dispatch!(&self.db, |pool, q| q::user_by_id(pool, id).await)?)
    }

    /// The account with its site ids (disabled or not), in one query.
    pub async fn account_with_sites(&self, id: i64) -> StoreResult<Option<(UserRow, Vec<i64>)>> {
        Ok(dispatch!(&self.db, |pool, q| q::user_with_site_ids(
            pool, id
        )
        .await)?)
    }

    /// A user who may sign in (enabled, known role), with their sites, in one query.
    pub async fn user(&self, id: i64) -> StoreResult<Option<User>> {
        let found = dispatch!(&self.db, |pool, q| q::user_with_site_ids(pool, id).await)?;
        Ok(found.and_then(|(row, site_ids)| signed_in_user(row, site_ids)))
    }

    pub async fn users(&self) -> StoreResult<Vec<UserListRow>> {
        Ok(dispatch!(&self.db, |pool, q| q::list_users(pool).await)?)
    }

    pub async fn user_sites(&self) -> StoreResult<Vec<UserSiteRow>> {
        Ok(dispatch!(&self.db, |pool, q| q::list_user_sites(pool).await)?)
    }

    pub async fn sites(&self) -> StoreResult<Vec<SiteRow>> {
        Ok(dispatch!(&self.db, |pool, q| q::list_sites(pool).await)?)
    }

    /// The site with this name, created if there is none.
    pub async fn site_named(&self, name: &str) -> StoreResult<i64> {
        let now = now_ms();
        Ok(dispatch!(&self.db, |pool, q| {
            let mut tx = q::begin(pool).await?;
            let id = q::site_get_or_create(&mut tx, name, now).await?;
            tx.commit().await.map(|()| id)
        })?)
    }

    /// Sets a user's role, sites and (optionally) password in one transaction.
    pub async fn change_access(&self, user_id: i64, change: AccessChange<'_>) -> StoreResult<()> {
        let role = change.role.as_str();
        let (before, now) = (self.account_with_sites(user_id).await?, now_ms());
        let target = before
            .as_ref()
            .map_or(format!("user {user_id}"), |(u, _)| u.email.clone());
        let access = AuditEntry::new(change.by, action::USER_ACCESS_CHANGED, &target)
            .before(
                before
                    .as_ref()
                    .map(|(u, sites)| serde_json::json!({"role": u.role, "siteIds": sites})),
            )
            .after(serde_json::json!({"role": role, "siteIds": change.site_ids}));
        let password = change
            .password_hash
            .map(|_| AuditEntry::new(change.by, action::USER_PASSWORD_CHANGED, &target));
        Ok(dispatch!(&self.db, |pool, q| {
            let mut tx = q::begin(pool).await?;
            q::insert_audit(&mut tx, &access, now).await?;
            if let Some(entry) = &password {
                q::insert_audit(&mut tx, entry, now).await?;
            }
            q::set_user_role(&mut tx, user_id, role).await?;
            q::clear_user_sites(&mut tx, user_id).await?;
            for site in change.site_ids {
                q::add_user_site(&mut tx, user_id, *site).await?;
            }
            if let Some(hash) = change.password_hash {
                q::set_user_password(&mut tx, user_id, hash).await?;
            }
            if change.end_sessions {
                q::end_user_sessions(&mut tx, user_id, change.keep).await?;
            }
            tx.commit().await
        })?)
    }

    /// Disables a user and ends their sessions in one transaction, or enables them.
    pub async fn set_disabled(&self, user_id: i64, disabled: bool, by: &str) -> StoreResult<()> {
        let target = match self.account(user_id).await? {
            Some(u) => u.email,
            None => format!("user {user_id}"),
        };
        let what = if disabled {
            action::USER_DISABLED
        } else {
            action::USER_ENABLED
        };
        let audit = AuditEntry::new(by, what, &target);
        let now = now_ms();
        Ok(dispatch!(&self.db, |pool, q| {
            let mut tx = q::begin(pool).await?;
            q::insert_audit(&mut tx, &audit, now).await?;
            q::set_user_disabled(&mut tx, user_id, disabled).await?;
            if disabled {
                q::end_user_sessions(&mut tx, user_id, None).await?;
            }
            tx.commit().await
        })?)
    }
}

/// The account as a signed-in user: `None` when it is disabled or its role unknown.
pub(super) fn signed_in_user(row: UserRow, site_ids: Vec<i64>) -> Option<User> {
    if row.disabled {
        return None;
    }
    Role::parse(&row.role).map(|role| User {
        id: row.id,
        email: row.email,
        role,
        disabled: row.disabled,
        site_ids,
        unit: TemperatureUnit::parse(&row.temperature_unit).unwrap_or_default(),
    })
}

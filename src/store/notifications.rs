//! The notification outbox as the dispatcher and the admin pages see it, webhook endpoints, and
//! each user's email opt-in. Rows are added in the alarm's transaction (`outbox.rs`); here they
//! are claimed, their attempts recorded, and listed.

use super::{dispatch, Store, StoreError, StoreResult};
use crate::domain::{
    self as domain, action, check_webhook, now_ms, AuditEntry, NotificationRow,
    PushSubscriptionRow, Role, TemperatureUnit, WebhookEndpoint,
};

/// Browsers one user keeps subscribed; older subscriptions go when a new one comes.
pub const MAX_PUSH_PER_USER: i64 = 10;

/// After a failed attempt: try again (when), or give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    Retry { at_ms: i64 },
    Abandon,
}

impl Store {
    pub async fn claim_notifications(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<NotificationRow>> {
        Ok(dispatch!(&self.db, |pool, q| q::claim_notifications(
            pool, now_ms, lease_ms, limit
        )
        .await)?)
    }

    /// The flood guard (see `fold_if_flooded`): whether `row` was held for a summary.
    pub async fn fold_if_flooded(
        &self,
        row: &NotificationRow,
        max_per_window: i64,
        window_ms: i64,
    ) -> StoreResult<bool> {
        let (now, summary_id) = (now_ms(), domain::delivery_id(rand::random()));
        let note = format!(
            "held by the flood guard ({max_per_window} per {} min); goes out in a summary",
            window_ms / 60_000
        );
        Ok(dispatch!(&self.db, |pool, q| q::fold_if_flooded(
            pool,
            row,
            max_per_window,
            window_ms,
            &summary_id,
            &note,
            now
        )
        .await)?)
    }

    /// What a summary carries: the first `limit` held notifications, their number in all, and
    /// the newest one's id.
    pub async fn folded_for(
        &self,
        channel: &str,
        recipient: &str,
        limit: i64,
    ) -> StoreResult<(Vec<NotificationRow>, i64, Option<i64>)> {
        Ok(dispatch!(&self.db, |pool, q| q::folded_for(
            pool, channel, recipient, limit
        )
        .await)?)
    }

    pub async fn mark_summarized(
        &self,
        summary: &NotificationRow,
        last_id: i64,
    ) -> StoreResult<u64> {
        Ok(dispatch!(&self.db, |pool, q| q::mark_summarized(
            pool,
            summary.id,
            &summary.channel,
            &summary.recipient,
            last_id
        )
        .await)?)
    }

    pub async fn notifications(&self, limit: i64) -> StoreResult<Vec<NotificationRow>> {
        Ok(dispatch!(&self.db, |pool, q| q::list_notifications(
            pool, limit
        )
        .await)?)
    }

    pub async fn notifications_of_alarm(&self, alarm_id: i64) -> StoreResult<Vec<NotificationRow>> {
        Ok(dispatch!(&self.db, |pool, q| q::notifications_of_alarm(
            pool, alarm_id
        )
        .await)?)
    }

    /// Queues a test notification (no alarm) to one recipient; returns its id.
    pub async fn enqueue_test(
        &self,
        channel: &str,
        recipient: &str,
        endpoint_id: Option<i64>,
        payload: &str,
    ) -> StoreResult<i64> {
        let (now, id) = (now_ms(), domain::delivery_id(rand::random()));
        Ok(dispatch!(&self.db, |pool, q| {
            let mut tx = q::begin(pool).await?;
            let n = q::insert_notification(
                &mut tx,
                domain::TEST,
                channel,
                recipient,
                endpoint_id,
                &id,
                payload,
                now,
            )
            .await?;
            tx.commit().await.map(|()| n)
        })?)
    }

    pub async fn webhook_endpoints(&self) -> StoreResult<Vec<WebhookEndpoint>> {
        Ok(dispatch!(&self.db, |pool, q| q::list_webhook_endpoints(
            pool
        )
        .await)?)
    }

    /// Adds an outgoing webhook to a site (created on first use); `Invalid` names the problem.
    pub async fn add_webhook_endpoint(
        &self,
        site: &str,
        url: &str,
        secret: &str,
        by: &str,
    ) -> StoreResult<i64> {
        check_webhook(url, secret).map_err(StoreError::Invalid)?;
        let (url, site, now) = (url.trim(), site.trim(), now_ms());
        if site.is_empty() {
            return Err(StoreError::Invalid("name the site".into()));
        }
        let audit = AuditEntry::new(by, action::WEBHOOK_ADDED, &format!("site {site}"))
            .after(serde_json::json!({ "url": url }));
        Ok(dispatch!(&self.db, |pool, q| {
            let mut tx = q::begin(pool).await?;
            let site_id = q::site_get_or_create(&mut tx, site, now).await?;
            let id = q::insert_webhook_endpoint(&mut tx, site_id, url, secret, by, now).await?;
            q::insert_audit(&mut tx, &audit, now).await?;
            tx.commit().await.map(|()| id)
        })?)
    }

    pub async fn remove_webhook_endpoint(&self, id: i64, by: &str) -> StoreResult<bool> {
        let audit = AuditEntry::new(by, action::WEBHOOK_REMOVED, &format!("webhook {id}"));
        let now = now_ms();
        Ok(dispatch!(&self.db, |pool, q| {
            let mut tx = q::begin(pool).await?;
            let n = q::delete_webhook_endpoint(&mut tx, id).await?;
            if n > 0 {
                q::insert_audit(&mut tx, &audit, now).await?;
            }
            tx.commit().await.map(|()| n > 0)
        })?)
    }

    /// Whether this user gets alarm emails (their choice, else their role's default).
    pub async fn email_alerts(&self, user_id: i64, role: Role) -> StoreResult<bool> {
        let chosen = dispatch!(&self.db, |pool, q| q::user_email_alerts(pool, user_id)
            .await)?;
        Ok(chosen.unwrap_or_else(|| domain::email_alerts_default(role)))
    }

    /// Stores a browser's subscription for this user (a known endpoint moves to them); keeps
    /// their newest `MAX_PUSH_PER_USER`.
    pub async fn add_push_subscription(
        &self,
        user_id: i64,
        endpoint: &str,
        p256dh: &str,
        auth: &str,
    ) -> StoreResult<i64> {
        let now = now_ms();
        Ok(dispatch!(&self.db, |pool, q| {
            let id =
                q::upsert_push_subscription(pool, user_id, endpoint, p256dh, auth, now).await?;
            q::trim_push_subscriptions(pool, user_id, MAX_PUSH_PER_USER).await?;
            Ok::<_, sqlx::Error>(id)
        })?)
    }

    pub async fn push_subscription(&self, id: i64) -> StoreResult<Option<PushSubscriptionRow>> {
        Ok(dispatch!(&self.db, |pool, q| q::push_subscription_by_id(
            pool, id
        )
        .await)?)
    }

    pub async fn remove_push_subscription(&self, id: i64) -> StoreResult<()> {
        dispatch!(&self.db, |pool, q| q::delete_push_subscription(pool, id)
            .await)?;
        Ok(())
    }

    /// Removes this user's subscription of `endpoint`; false if they had none.
    pub async fn unsubscribe_push(&self, user_id: i64, endpoint: &str) -> StoreResult<bool> {
        let n = dispatch!(&self.db, |pool, q| q::delete_user_push_subscription(
            pool, user_id, endpoint
        )
        .await)?;
        Ok(n > 0)
    }

    pub async fn set_email_alerts(&self, user_id: i64, on: bool) -> StoreResult<()> {
        dispatch!(&self.db, |pool, q| q::set_user_email_alerts(
            pool, user_id, on
        )
        .await)?;
        Ok(())
    }

    /// Sets the unit this user reads temperatures in.
    pub async fn set_temperature_unit(
        &self,
        user_id: i64,
        unit: TemperatureUnit,
    ) -> StoreResult<()> {
        dispatch!(&self.db, |pool, q| q::set_user_temperature_unit(
            pool,
            user_id,
            unit.code()
        )
        .await)?;
        Ok(())
    }

    /// The unit of whoever gets an email at this address (°C when nobody has it: an address an
    /// admin typed for a test, say).
    pub async fn recipient_unit(&self, email: &str) -> StoreResult<TemperatureUnit> {
        let code = dispatch!(&self.db, |pool, q| q::email_temperature_unit(pool, email)
            .await)?;
        Ok(code
            .as_deref()
            .and_then(TemperatureUnit::parse)
            .unwrap_or_default())
    }
}

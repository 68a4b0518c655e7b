//! Site reports: a site's time zone, the readings' summaries and the alarms of a report
//! period, and reviews, each recorded with its audit row in one transaction.

use super::{dispatch, Review, ReviewRow, SiteRow, Store, StoreResult};
use crate::domain::{action, now_ms, AlarmRow, AuditEntry, ReportBucket};

impl Store {
    pub async fn site(&self, id: i64) -> StoreResult<Option<SiteRow>> {
        Ok(dispatch!(&self.db, |pool, q| q::site_by_id(pool, id).await)?)
    }

    /// Sets (or clears, `None`) the named site's time zone; false when there is no such site.
    /// The name must have been checked (`domain::parse_time_zone`).
    pub async fn set_site_time_zone(
        &self,
        site: &str,
        tz: Option<&str>,
        by: &str,
    ) -> StoreResult<bool> {
        let audit = crate::domain::AuditEntry::new(
            by,
            crate::domain::action::SITE_TIME_ZONE_CHANGED,
            &format!("site {site}"),
        )
        .after(serde_json::json!({ "timeZone": tz }));
        let now = crate::domain::now_ms();
        Ok(dispatch!(&self.db, |pool, q| {
            let mut tx = q::begin(pool).await?;
            let n = q::set_site_time_zone(&mut tx, site, tz).await?;
            if n > 0 {
                q::insert_audit(&mut tx, &audit, now).await?;
            }
            tx.commit().await.map(|()| n > 0)
        })?)
    }

    /// The device's temperature summary buckets in `[since_ms, until_ms)` merged into steps of
    /// `step_ms`, by probe and time.
    pub async fn temperature_buckets(
        &self,
        device_id: i64,
        since_ms: i64,
        until_ms: i64,
        step_ms: i64,
    ) -> StoreResult<Vec<ReportBucket>> {
        Ok(dispatch!(&self.db, |pool, q| q::temperature_buckets(
            pool, device_id, since_ms, until_ms, step_ms
        )
        .await)?)
    }

    /// The alarms of the site's devices open at some time in `[since_ms, until_ms)`.
    pub async fn site_alarms(
        &self,
        site_id: i64,
        since_ms: i64,
        until_ms: i64,
    ) -> StoreResult<Vec<AlarmRow>> {
        Ok(dispatch!(&self.db, |pool, q| q::site_alarms(
            pool, site_id, since_ms, until_ms
        )
        .await)?)
    }

    /// Records a review of a report period and its audit row, in one transaction.
    pub async fn review_report(&self, review: &ReviewRow, site_name: &str) -> StoreResult<()> {
        let entry = AuditEntry::new(&review.reviewed_by, action::REPORT_REVIEWED, site_name).after(
            serde_json::json!({
                "siteId": review.site_id,
                "from": review.from_day,
                "to": review.to_day,
            }),
        );
        let now = now_ms();
        Ok(dispatch!(&self.db, |pool, q| {
            let mut tx = q::begin(pool).await?;
            q::insert_review(&mut tx, review).await?;
            q::insert_audit(&mut tx, &entry, now).await?;
            tx.commit().await
        })?)
    }

    /// The reviews overlapping `[since_ms, until_ms)`, each with whether a reading of its period
    /// arrived after it (a back-filled reading; read from the summaries, which a purge keeps).
    pub async fn reviews(
        &self,
        site_id: i64,
        since_ms: i64,
        until_ms: i64,
    ) -> StoreResult<Vec<Review>> {
        let rows = dispatch!(&self.db, |pool, q| q::site_reviews(
            pool, site_id, since_ms, until_ms
        )
        .await)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let changed_after = dispatch!(&self.db, |pool, q| q::received_after(
                pool,
                site_id,
                row.start_ms,
                row.end_ms,
                row.reviewed_ms
            )
            .await)?;
            out.push(Review { row, changed_after });
        }
        Ok(out)
    }
}

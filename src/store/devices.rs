//! Devices and their readings: listing, lookup, placement, decoding settings, and the reads of
//! the dashboards and exports. Every read that can leak across sites takes the reader's scope.

use super::{
    dispatch, AlarmReadingRow, LatestReading, SeriesPoint, Store, StoreError, StoreResult,
    TelemetryQuery,
};
use crate::domain::{action, now_ms, AuditEntry, DeviceRow, ReadingRow, Scope};

impl Store {
    pub async fn devices(&self, scope: &Scope) -> StoreResult<Vec<DeviceRow>> {
        Ok(dispatch!(&self.db, |pool, q| q::list_devices(pool, scope).await)?)
    }

    /// A device by Milesight id or devEUI (case-insensitive), if the scope may see it.
    pub async fn device(&self, public_id: &str, scope: &Scope) -> StoreResult<Option<DeviceRow>> {
        Ok(dispatch!(&self.db, |pool, q| q::device_by_public_id(
            pool, public_id, scope
        )
        .await)?)
    }

    /// A device of any site, or an error naming it (for the command line).
    async fn existing_device(&self, public_id: &str) -> StoreResult<DeviceRow> {
        self.device(public_id, &Scope::All)
            .await?
            .ok_or_else(|| StoreError::Invalid(format!("no device {public_id:?}")))
    }

    /// Puts a device (Milesight id or devEUI) into the named site, created on first use.
    pub async fn assign_device_to_site(
        &self,
        public_id: &str,
        site: &str,
        by: &str,
    ) -> StoreResult<i64> {
        let device = self.existing_device(public_id).await?;
        let (site, now) = (site.trim(), now_ms());
        let audit = placed(&device, by, Some(site));
        Ok(dispatch!(&self.db, |pool, q| {
            let mut tx = q::begin(pool).await?;
            let site_id = q::site_get_or_create(&mut tx, site, now).await?;
            q::assign_device(&mut tx, device.id, Some(site_id)).await?;
            q::insert_audit(&mut tx, &audit, now).await?;
            tx.commit().await.map(|()| site_id)
        })?)
    }

    /// Puts a device into an existing site, or (`None`) into none.
    pub async fn place_device(
        &self,
        device: &DeviceRow,
        site: Option<(i64, &str)>,
        by: &str,
    ) -> StoreResult<()> {
        let audit = placed(device, by, site.map(|(_, name)| name));
        let (device_id, site_id, now) = (device.id, site.map(|(id, _)| id), now_ms());
        Ok(dispatch!(&self.db, |pool, q| {
            let mut tx = q::begin(pool).await?;
            q::assign_device(&mut tx, device_id, site_id).await?;
            q::insert_audit(&mut tx, &audit, now).await?;
            tx.commit().await
        })?)
    }

    /// Sets (or with `None` clears) the TS302 protocol variant of a device.
    pub async fn set_device_variant(
        &self,
        public_id: &str,
        variant: Option<&str>,
    ) -> StoreResult<()> {
        let device = self.existing_device(public_id).await?;
        Ok(dispatch!(&self.db, |pool, q| q::set_device_variant(
            pool, device.id, variant
        )
        .await)?)
    }

    pub async fn telemetry(
        &self,
        device_id: i64,
        query: TelemetryQuery,
    ) -> StoreResult<Vec<ReadingRow>> {
        Ok(dispatch!(&self.db, |pool, q| q::telemetry(
            pool, device_id, query
        )
        .await)?)
    }

    /// The newest live reading of each device in scope (or of one device).
    pub async fn latest_readings(
        &self,
        scope: &Scope,
        device_id: Option<i64>,
    ) -> StoreResult<Vec<LatestReading>> {
        Ok(dispatch!(&self.db, |pool, q| q::latest_readings(
            pool, scope, device_id
        )
        .await)?)
    }

    /// Averages per time bucket, for charts.
    pub async fn series(
        &self,
        scope: &Scope,
        device_id: Option<i64>,
        (since_ms, until_ms): (i64, i64),
        bucket_ms: i64,
    ) -> StoreResult<Vec<SeriesPoint>> {
        Ok(dispatch!(&self.db, |pool, q| {
            q::series(pool, scope, device_id, since_ms, until_ms, bucket_ms).await
        })?)
    }

    pub async fn count_measured(
        &self,
        scope: &Scope,
        device_id: Option<i64>,
        (since_ms, until_ms): (i64, i64),
    ) -> StoreResult<i64> {
        Ok(dispatch!(&self.db, |pool, q| {
            q::count_measured(pool, scope, device_id, since_ms, until_ms).await
        })?)
    }

    /// Readings that carried the device's own alarms, newest first.
    pub async fn recent_alarms(
        &self,
        scope: &Scope,
        since_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<AlarmReadingRow>> {
        Ok(dispatch!(&self.db, |pool, q| q::recent_alarms(
            pool, scope, since_ms, limit
        )
        .await)?)
    }

    pub async fn count_readings_since(&self, scope: &Scope, since_ms: i64) -> StoreResult<i64> {
        Ok(dispatch!(&self.db, |pool, q| q::count_readings_since(
            pool, scope, since_ms
        )
        .await)?)
    }

    /// One device's readings in a time range, oldest first (the CSV export).
    pub async fn readings_between(
        &self,
        device_id: i64,
        (since_ms, until_ms): (i64, i64),
        limit: i64,
    ) -> StoreResult<Vec<ReadingRow>> {
        Ok(dispatch!(&self.db, |pool, q| {
            q::readings_between(pool, device_id, since_ms, until_ms, limit).await
        })?)
    }
}

/// The audit row of moving a device to a site (or none).
fn placed(device: &DeviceRow, by: &str, site: Option<&str>) -> AuditEntry {
    let target = format!("device {}", device.public_id());
    AuditEntry::new(by, action::DEVICE_PLACED, &target)
        .before(serde_json::json!({"site": device.site_name}))
        .after(serde_json::json!({"site": site}))
}

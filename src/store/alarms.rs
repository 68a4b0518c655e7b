//! Alarms, rules and the audit trail: the reads of the API and pages, and the audit rows of
//! changes that are not the writer's. Changes of alarms and rules go through the writer
//! (`Work::Acknowledge`, `Work::SetRules`), in the transaction that judges readings.

use super::{dispatch, AlarmFilter, AuditFilter, Store, StoreResult};
use crate::domain::{now_ms, AlarmRow, AuditEntry, AuditRow, DeviceRow, Rule, Scope};

impl Store {
    /// Alarms the scope may see, with their devices.
    pub async fn alarms(
        &self,
        scope: &Scope,
        filter: &AlarmFilter,
    ) -> StoreResult<Vec<(AlarmRow, DeviceRow)>> {
        let alarms = dispatch!(&self.db, |pool, q| q::list_alarms(pool, scope, filter)
            .await)?;
        if alarms.is_empty() {
            return Ok(Vec::new());
        }
        let devices = self.devices(scope).await?;
        Ok(alarms
            .into_iter()
            .filter_map(|a| {
                let d = devices.iter().find(|d| d.id == a.device_id)?.clone();
                Some((a, d))
            })
            .collect())
    }

    /// One alarm, if the scope may see it.
    pub async fn alarm(
        &self,
        id: i64,
        scope: &Scope,
    ) -> StoreResult<Option<(AlarmRow, DeviceRow)>> {
        let found = dispatch!(&self.db, |pool, q| q::alarm_in_scope(pool, id, scope).await)?;
        let Some(alarm) = found else {
            return Ok(None);
        };
        let devices = self.devices(scope).await?;
        Ok(devices
            .into_iter()
            .find(|d| d.id == alarm.device_id)
            .map(|d| (alarm, d)))
    }

    /// A device's rules.
    pub async fn rules(&self, device_id: i64) -> StoreResult<Vec<Rule>> {
        let rows = dispatch!(&self.db, |pool, q| q::device_rules(pool, device_id).await)?;
        Ok(rows.iter().filter_map(|r| r.rule()).collect())
    }

    /// Appends one audit row on its own (sign-in, sign-out: their change is the session's).
    pub async fn audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        let now = now_ms();
        Ok(dispatch!(&self.db, |pool, q| {
            let mut tx = q::begin(pool).await?;
            q::insert_audit(&mut tx, entry, now).await?;
            tx.commit().await
        })?)
    }

    pub async fn audit_trail(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRow>> {
        Ok(dispatch!(&self.db, |pool, q| q::list_audit(pool, filter).await)?)
    }
}

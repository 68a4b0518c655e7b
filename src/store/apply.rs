// Applies ingest batches and watchdog sweeps inside one write transaction. Included next to
// queries.rs by sqlite.rs and postgres.rs.

use crate::ingest::model::{Batch, Change, DeviceIdentity, DeviceStatus, Outcome};
use crate::realtime::events;
use crate::realtime::hub::Frame;
use crate::store::writer::{OfflinePolicy, Rejection, Work};

/// Runs every job in one transaction. Returns one result per job and the frames to publish
/// once the transaction has committed.
pub async fn apply_jobs(
    pool: &Pool<DB>,
    works: &[&Work],
    now_ms: i64,
    policy: OfflinePolicy,
) -> sqlx::Result<(Vec<Result<Outcome, Rejection>>, Vec<Frame>)> {
    let mut tx = begin_write(pool).await?;
    let mut out = Applier {
        frames: Vec::new(),
        now_ms,
    };
    let mut results = Vec::with_capacity(works.len());
    for work in works {
        let result = match work {
            Work::Batch(batch) => out.batch(&mut tx, batch).await?,
            Work::MarkSilent => out.silent(&mut tx, policy).await?,
        };
        results.push(result);
    }
    if !out.frames.is_empty() {
        announce_events(&mut tx).await?;
    }
    tx.commit().await?;
    Ok((results, out.frames))
}

struct Applier {
    frames: Vec<Frame>,
    now_ms: i64,
}

impl Applier {
    async fn batch(
        &mut self,
        conn: &mut Conn,
        batch: &Batch,
    ) -> sqlx::Result<Result<Outcome, Rejection>> {
        if let Some((uuid, nonce)) = &batch.nonce {
            if !claim_nonce(conn, uuid, nonce, self.now_ms).await? {
                return Ok(Err(Rejection::Replayed));
            }
        }
        let mut outcome = Outcome::default();
        for d in &batch.deliveries {
            if let Some(key) = &d.key {
                let fresh = claim_delivery(
                    conn,
                    key,
                    d.source,
                    &d.event_type,
                    self.now_ms,
                    d.detail.as_deref(),
                )
                .await?;
                if !fresh {
                    outcome.duplicates += 1;
                    continue;
                }
            }
            outcome.accepted += 1;
            let Some(identity) = d.device.as_ref().filter(|i| i.is_known()) else {
                continue;
            };
            let mut device = self.resolve_device(conn, identity).await?;
            for change in &d.changes {
                self.change(conn, &mut device, change).await?;
            }
        }
        Ok(Ok(outcome))
    }

    async fn silent(
        &mut self,
        conn: &mut Conn,
        policy: OfflinePolicy,
    ) -> sqlx::Result<Result<Outcome, Rejection>> {
        let ids = silent_devices(conn, self.now_ms, policy).await?;
        for id in &ids {
            let mut device = device_by_id(conn, *id).await?;
            self.set_status(conn, &mut device, DeviceStatus::Offline)
                .await?;
        }
        Ok(Ok(Outcome {
            accepted: ids.len(),
            duplicates: 0,
        }))
    }

    /// Finds the device by devEUI or Milesight id, registering it on first sight.
    async fn resolve_device(
        &mut self,
        conn: &mut Conn,
        id: &DeviceIdentity,
    ) -> sqlx::Result<DeviceRow> {
        let (eui, ms_id) = (id.dev_eui.as_deref(), id.milesight_id.as_deref());
        if let Some(existing) = find_device(conn, eui, ms_id).await? {
            let learns = (existing.dev_eui.is_none() && eui.is_some())
                || (existing.milesight_id.is_none() && ms_id.is_some())
                || id.name.as_deref().is_some_and(|n| n != existing.name)
                || id.model.as_deref().is_some_and(|m| m != existing.model);
            if !learns {
                return Ok(existing);
            }
            // A devEUI or Milesight id already owned by another row stays with that row.
            let eui = eui.filter(|_| existing.dev_eui.is_none());
            let ms_id = ms_id.filter(|_| existing.milesight_id.is_none());
            let taken = find_device(conn, eui, ms_id)
                .await?
                .is_some_and(|o| o.id != existing.id);
            let (eui, ms_id) = if taken { (None, None) } else { (eui, ms_id) };
            update_device_identity(
                conn,
                existing.id,
                eui,
                ms_id,
                id.name.as_deref(),
                id.model.as_deref(),
            )
            .await?;
            return device_by_id(conn, existing.id).await;
        }
        let fallback = public_device_id(ms_id, eui);
        let name = id
            .name
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or(&fallback);
        let model = id.model.as_deref().unwrap_or("");
        let new_id = insert_device(conn, eui, ms_id, name, model, self.now_ms).await?;
        let device = device_by_id(conn, new_id).await?;
        let json = events::new_device_json(&device, self.now_ms);
        self.event(conn, &device, events::NEW_DEVICE, json).await?;
        Ok(device)
    }

    async fn change(
        &mut self,
        conn: &mut Conn,
        device: &mut DeviceRow,
        change: &Change,
    ) -> sqlx::Result<()> {
        match change {
            Change::Reading(r) => {
                let alarms = r.alarms.as_ref().map(|a| a.to_string());
                if insert_reading(conn, device.id, r, self.now_ms, alarms.as_deref())
                    .await?
                    .is_none()
                {
                    return Ok(());
                }
                let json = events::telemetry_json(device, r, self.now_ms);
                self.event(conn, device, events::NEW_TELEMETRY, json)
                    .await?;
                if !r.historical {
                    self.seen(conn, device).await?;
                }
            }
            Change::Status(DeviceStatus::Online) => self.seen(conn, device).await?,
            Change::Status(DeviceStatus::Offline) => {
                self.set_status(conn, device, DeviceStatus::Offline).await?
            }
            Change::ReportInterval(secs) => {
                set_report_interval(conn, device.id, *secs).await?;
                device.report_interval_s = Some(*secs);
            }
        }
        Ok(())
    }

    /// A live message: refresh "last seen" and bring the device back online.
    async fn seen(&mut self, conn: &mut Conn, device: &mut DeviceRow) -> sqlx::Result<()> {
        set_device_seen(conn, device.id, self.now_ms).await?;
        device.last_seen_ms = Some(device.last_seen_ms.unwrap_or(0).max(self.now_ms));
        self.set_status(conn, device, DeviceStatus::Online).await
    }

    async fn set_status(
        &mut self,
        conn: &mut Conn,
        device: &mut DeviceRow,
        status: DeviceStatus,
    ) -> sqlx::Result<()> {
        if device.status == status.as_str() {
            return Ok(());
        }
        set_device_status(conn, device.id, status.as_str()).await?;
        device.status = status.as_str().to_string();
        let json = events::status_json(device, status, self.now_ms);
        self.event(conn, device, events::DEVICE_STATUS_CHANGED, json)
            .await
    }

    async fn event(
        &mut self,
        conn: &mut Conn,
        device: &DeviceRow,
        kind: &str,
        json: String,
    ) -> sqlx::Result<()> {
        let id = insert_event(conn, kind, device, self.now_ms, &json).await?;
        self.frames.push(Frame {
            id,
            device_id: device.id,
            site_id: device.site_id,
            bytes: events::encode_frame(id, &json),
        });
        Ok(())
    }
}

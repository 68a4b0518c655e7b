//! Group commit: applies ingest batches and watchdog sweeps inside one write transaction, the
//! same logic for both databases. It is plain synchronous code over `WriteTx`, which each
//! driver implements (rusqlite on the SQLite writer thread, tokio-postgres on PostgreSQL), so
//! nothing here can wait on anything but a statement. Statements whose answers are read later
//! (`select_later`, `execute_later`) let the PostgreSQL driver send several in one round trip.
//!
//! A group of batches is stored with a fixed number of statements whatever its size: one for the
//! nonces, one for the delivery keys, one to read the devices, one for the readings, one update
//! per device touched and one for the events, which the driver appends last (more only past
//! `ROWS_PER_STATEMENT` rows, or for a device seen for the first time). What one batch does to
//! the next (a nonce or key used twice, a device registered by one and read by the next, a status
//! changed twice) is worked out here in memory, in the order the batches arrived, so the outcome
//! and the events are those of storing the batches one after the other.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use super::alarm_sql;
use super::command_sql;
use super::error::StoreResult;
use super::judging::{AlarmEvent, Judge};
use super::outbox;
use super::summary_sql;
use super::write_statements::{
    self, update_from_values, DeliveryClaim, ReadingInsert, ROWS_PER_STATEMENT,
};
pub use super::write_tx::OfflinePolicy;
use super::write_tx::{EventInsert, Later, Val, WriteTx};
use crate::domain::{
    self as events, action, bounded_error, confirmed_by, public_device_id, AuditEntry, Batch,
    Change, Command, CommandRow, CommandStatus, Delivery, DeviceIdentity, DeviceRow, DeviceStatus,
    EventRow, Outcome, ReplyPiece, Rule, RuleJson, Scope,
};

#[derive(Debug)]
pub enum Work {
    Batch(Batch),
    /// Mark devices that have been silent too long OFFLINE.
    MarkSilent,
    /// Acknowledge an alarm the reader may see, with the corrective action.
    Acknowledge {
        alarm_id: i64,
        scope: Scope,
        by: String,
        comment: String,
    },
    /// Notify again of alarms nobody acknowledged within the escalation time.
    Escalate {
        raised_before_ms: i64,
    },
    /// Replace a device's rules (already checked).
    SetRules {
        device_id: i64,
        rules: Vec<Rule>,
        by: String,
    },
    /// Store a command for a device (checked, encoded as `downlink_hex`, and the person
    /// allowed to), pending; audited. `Outcome::created` is its id.
    RequestCommand {
        device_id: i64,
        command: Command,
        downlink_hex: String,
        by: String,
    },
    /// What the gateway answered to a pending command's downlink.
    CommandDispatched {
        command_id: i64,
        result: Dispatched,
    },
    /// Mark commands still pending or sent `timeout_ms` after they were asked for expired.
    ExpireCommands {
        timeout_ms: i64,
    },
    /// Record a notification round's attempts (`outbox::record_attempts`).
    RecordAttempts {
        attempts: Vec<(i64, super::notifications::Attempt, String)>,
    },
    /// Delete at most `limit` raw readings measured before `before_ms` (their summaries stay).
    /// `Outcome::accepted` is how many went.
    PurgeReadings {
        before_ms: i64,
        limit: i64,
    },
}

/// The gateway's answer to a downlink, as the command's status records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dispatched {
    /// The network server queued it.
    Sent,
    /// It refused it, for this reason (its answer).
    Refused(String),
}

/// Why a job was refused without a storage failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The signed request's nonce was already used.
    Replayed,
    /// No such alarm or device, or not one the reader may see.
    NotFound,
    AlreadyAcknowledged,
}

/// One result per job, and the events to publish once the transaction has committed.
pub type Applied = (Vec<Result<Outcome, Rejection>>, Vec<EventRow>);

/// What a group did, but for its events: the driver appends those as the transaction's last
/// statement (on PostgreSQL sent with the COMMIT) and numbers them with `Done::numbered`.
pub struct Done {
    pub results: Vec<Result<Outcome, Rejection>>,
    /// In the order they happened, which their ids must follow.
    pub events: Vec<EventInsert>,
}

impl Done {
    /// The results, and the events as committed with `ids` (one per event, in order).
    pub fn numbered(self, ids: Vec<i64>) -> Applied {
        let events = self
            .events
            .into_iter()
            .zip(ids)
            .map(|(e, id)| EventRow {
                id,
                device_id: e.device_id,
                site_id: e.site_id,
                json: e.json,
            })
            .collect();
        (self.results, events)
    }
}

/// Applies every job inside the caller's write transaction. Returns one result per job and
/// the events the driver appends last (nothing in the transaction reads the event log).
pub fn apply_works(
    conn: &mut impl WriteTx,
    works: &[&Work],
    now_ms: i64,
    policy: OfflinePolicy,
) -> StoreResult<Done> {
    let mut group = Group {
        now_ms,
        devices: Vec::new(),
        events: Vec::new(),
        judge: Judge::default(),
        commands: HashMap::new(),
    };
    let mut results = Vec::with_capacity(works.len());
    let mut rest = works;
    while !rest.is_empty() {
        // Consecutive batches are stored together; a sweep reads the devices as stored so far.
        let batches: Vec<&Batch> = rest
            .iter()
            .map_while(|w| match w {
                Work::Batch(b) => Some(b),
                _ => None,
            })
            .collect();
        if batches.is_empty() {
            results.push(match rest[0] {
                Work::MarkSilent => group.silent(conn, policy)?,
                Work::Acknowledge {
                    alarm_id,
                    scope,
                    by,
                    comment,
                } => group.acknowledge(conn, *alarm_id, scope, by, comment)?,
                Work::SetRules {
                    device_id,
                    rules,
                    by,
                } => group.set_rules(conn, *device_id, rules, by)?,
                Work::Escalate { raised_before_ms } => group.escalate(conn, *raised_before_ms)?,
                Work::RequestCommand {
                    device_id,
                    command,
                    downlink_hex,
                    by,
                } => group.request_command(conn, *device_id, command, downlink_hex, by)?,
                Work::CommandDispatched { command_id, result } => {
                    group.dispatched(conn, *command_id, result)?
                }
                Work::ExpireCommands { timeout_ms } => group.expire_commands(conn, *timeout_ms)?,
                Work::RecordAttempts { attempts } => Ok(Outcome {
                    accepted: outbox::record_attempts(conn, attempts, now_ms)?,
                    duplicates: 0,
                    created: None,
                }),
                Work::PurgeReadings { before_ms, limit } => Ok(Outcome {
                    accepted: summary_sql::purge(conn, *before_ms, *limit)? as usize,
                    duplicates: 0,
                    created: None,
                }),
                Work::Batch(_) => unreachable!("batches are taken above"),
            });
            rest = &rest[1..];
        } else {
            results.extend(group.batches(conn, &batches)?);
            rest = &rest[batches.len()..];
        }
    }
    group.judge.outbox.flush(conn, now_ms)?;
    Ok(Done {
        results,
        events: group.events,
    })
}

/// What the transaction has done so far. Device rows are read once and changed here; `flush`
/// writes the changed ones.
struct Group {
    now_ms: i64,
    devices: Vec<Device>,
    /// The transaction's events, in order; appended by the driver at the end.
    events: Vec<EventInsert>,
    judge: Judge,
    /// Open commands (pending, sent) of the devices whose replies were matched, oldest first.
    commands: HashMap<i64, Vec<CommandRow>>,
}

struct Device {
    /// The row as of the delivery being turned into events.
    row: DeviceRow,
    /// Its identity as of the last delivery read, which may be further on.
    identity: Identity,
    /// Status, "last seen" or interval changed since the row was read or last written.
    changed: bool,
}

impl Device {
    fn new(row: DeviceRow) -> Device {
        Device {
            identity: Identity {
                dev_eui: row.dev_eui.clone(),
                milesight_id: row.milesight_id.clone(),
                name: row.name.clone(),
                model: row.model.clone(),
            },
            row,
            changed: false,
        }
    }
}

#[derive(Clone)]
struct Identity {
    dev_eui: Option<String>,
    milesight_id: Option<String>,
    name: String,
    model: String,
}

enum Resolved {
    Known,
    /// Registered now: its `new_device` event.
    Registered(String),
    /// Its identity, completed now.
    Learnt(Identity),
}

/// An accepted delivery about a device: which one, the `new_device` event when the delivery
/// registered it, and the identity it completed.
struct Placed<'a> {
    delivery: &'a Delivery,
    device: usize,
    registered: Option<String>,
    learnt: Option<Identity>,
}

impl Group {
    fn batches(
        &mut self,
        conn: &mut impl WriteTx,
        batches: &[&Batch],
    ) -> StoreResult<Vec<Result<Outcome, Rejection>>> {
        // Nonces, delivery keys and devices go together (one round trip on PostgreSQL): the keys
        // and devices of every batch, as if none were replayed. A replayed batch's keys that no
        // other batch names are taken back below, so the group stores what it stored when only
        // live batches claimed keys.
        let nonces = self.send_nonces(conn, batches)?;
        // Delivery keys: the first use of a key claims it, any later one is a retry.
        let mut claims = Vec::new();
        let mut unique = HashSet::new();
        for b in batches {
            for d in &b.deliveries {
                if let Some(key) = d.key.as_deref().filter(|k| unique.insert(*k)) {
                    claims.push(DeliveryClaim {
                        key,
                        source: d.source,
                        event_type: &d.event_type,
                        detail: d.detail.as_deref(),
                    });
                }
            }
        }
        let claimed = write_statements::send_delivery_claims(conn, &claims, self.now_ms)?;
        // Devices: every one a delivery names (a retry's or a replay's too, which is harmless),
        // registered or completed in order below.
        let identities: Vec<&DeviceIdentity> = batches
            .iter()
            .flat_map(|b| &b.deliveries)
            .filter_map(|d| d.device.as_ref().filter(|i| i.is_known()))
            .collect();
        self.load_devices(conn, &identities)?;
        let replayed = self.replayed(conn, batches, nonces)?;
        let fresh = write_statements::texts(conn, claimed)?;
        let mut fresh: HashSet<&str> = fresh.iter().map(String::as_str).collect();
        if replayed.iter().any(|r| *r) {
            let live: HashSet<&str> = batches
                .iter()
                .zip(&replayed)
                .filter(|(_, r)| !**r)
                .flat_map(|(b, _)| &b.deliveries)
                .filter_map(|d| d.key.as_deref())
                .collect();
            let orphans: Vec<&str> = fresh
                .iter()
                .copied()
                .filter(|k| !live.contains(k))
                .collect();
            write_statements::unclaim_deliveries(conn, &orphans)?;
            for key in orphans {
                fresh.remove(key);
            }
        }
        let mut results = Vec::with_capacity(batches.len());
        let mut accepted = Vec::new();
        for (b, replayed) in batches.iter().zip(&replayed) {
            if *replayed {
                results.push(Err(Rejection::Replayed));
                continue;
            }
            let mut outcome = Outcome::default();
            for d in &b.deliveries {
                match d.key.as_deref() {
                    Some(key) if !fresh.remove(key) => outcome.duplicates += 1,
                    _ => {
                        outcome.accepted += 1;
                        accepted.push(d);
                    }
                }
            }
            results.push(Ok(outcome));
        }

        let mut placed = Vec::new();
        for d in accepted {
            if let Some(identity) = d.device.as_ref().filter(|i| i.is_known()) {
                let (device, resolved) = self.resolve_device(conn, identity)?;
                let (registered, learnt) = match resolved {
                    Resolved::Known => (None, None),
                    Resolved::Registered(json) => (Some(json), None),
                    Resolved::Learnt(identity) => (None, Some(identity)),
                };
                placed.push(Placed {
                    delivery: d,
                    device,
                    registered,
                    learnt,
                });
            }
        }

        // Readings: the first with a given key is stored, unless the key was stored before.
        let mut rows = Vec::new();
        let mut unique = HashSet::new();
        for p in &placed {
            for change in &p.delivery.changes {
                if let Change::Reading(r) = change {
                    if unique.insert(r.dedup_key.as_str()) {
                        rows.push(ReadingInsert {
                            device_id: self.devices[p.device].row.id,
                            reading: r,
                            alarms: r.alarms.as_ref().map(|a| a.to_string()),
                        });
                    }
                }
            }
        }
        // Alarm state is read before the readings go in ("late" means older than stored); the
        // readings are sent right behind the last of those reads.
        let judged: Vec<i64> = rows.iter().map(|r| r.device_id).collect();
        let now_ms = self.now_ms;
        let sent = self.judge.load_then(conn, &judged, |conn| {
            write_statements::send_readings(conn, &rows, now_ms)
        })?;
        let stored = write_statements::texts(conn, sent)?;
        let mut stored: HashSet<&str> = stored.iter().map(String::as_str).collect();
        summary_sql::add(conn, &rows, &stored, self.now_ms)?;

        // Events and device changes, in the order the deliveries came.
        for p in placed {
            if let Some(json) = p.registered {
                self.event(p.device, events::NEW_DEVICE, json);
            }
            if let Some(learnt) = p.learnt {
                let row = &mut self.devices[p.device].row;
                row.dev_eui = learnt.dev_eui;
                row.milesight_id = learnt.milesight_id;
                row.name = learnt.name;
                row.model = learnt.model;
            }
            for change in &p.delivery.changes {
                self.change(conn, p.device, change, &mut stored)?;
            }
        }
        self.flush(conn)?;
        Ok(results)
    }

    /// Sends the claims of the batches' nonces (each pair once).
    fn send_nonces(&self, conn: &mut impl WriteTx, batches: &[&Batch]) -> StoreResult<Vec<Later>> {
        let mut unique = HashSet::new();
        let pairs: Vec<(&str, &str)> = batches
            .iter()
            .filter_map(|b| b.nonce.as_ref())
            .map(|(uuid, nonce)| (uuid.as_str(), nonce.as_str()))
            .filter(|pair| unique.insert(*pair))
            .collect();
        write_statements::send_nonce_claims(conn, &pairs, self.now_ms)
    }

    /// True for each batch whose nonce was used already (before, or by an earlier batch of the
    /// group), from the claims `send_nonces` sent.
    fn replayed(
        &self,
        conn: &mut impl WriteTx,
        batches: &[&Batch],
        sent: Vec<Later>,
    ) -> StoreResult<Vec<bool>> {
        let claimed = write_statements::nonce_pairs(conn, sent)?;
        let mut claimed: HashSet<(&str, &str)> = claimed
            .iter()
            .map(|(uuid, nonce)| (uuid.as_str(), nonce.as_str()))
            .collect();
        Ok(batches
            .iter()
            .map(|b| match &b.nonce {
                Some((uuid, nonce)) => !claimed.remove(&(uuid.as_str(), nonce.as_str())),
                None => false,
            })
            .collect())
    }

    fn silent(
        &mut self,
        conn: &mut impl WriteTx,
        policy: OfflinePolicy,
    ) -> StoreResult<Result<Outcome, Rejection>> {
        let ids = conn.silent_devices(self.now_ms, policy)?;
        for id in &ids {
            let device = match self.devices.iter().position(|d| d.row.id == *id) {
                Some(i) => i,
                None => {
                    let row = conn.device_by_id(*id)?;
                    self.devices.push(Device::new(row));
                    self.devices.len() - 1
                }
            };
            self.set_status(conn, device, DeviceStatus::Offline)?;
        }
        self.flush(conn)?;
        Ok(Ok(Outcome {
            accepted: ids.len(),
            ..Outcome::default()
        }))
    }

    /// Reads the devices these identities name that this transaction has not read yet.
    fn load_devices(
        &mut self,
        conn: &mut impl WriteTx,
        identities: &[&DeviceIdentity],
    ) -> StoreResult<()> {
        let mut unique = HashSet::new();
        let ids: Vec<&str> = identities
            .iter()
            .flat_map(|i| [i.dev_eui.as_deref(), i.milesight_id.as_deref()])
            .flatten()
            .filter(|id| unique.insert(*id))
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        for row in conn.devices_by_identifiers(&ids)? {
            if !self.devices.iter().any(|d| d.row.id == row.id) {
                self.devices.push(Device::new(row));
            }
        }
        Ok(())
    }

    /// The device with this devEUI, else the one with this Milesight id.
    fn find(&self, dev_eui: Option<&str>, milesight_id: Option<&str>) -> Option<usize> {
        let by = |id: Option<&str>, column: fn(&Identity) -> Option<&str>| {
            id.and_then(|id| {
                self.devices
                    .iter()
                    .position(|d| column(&d.identity) == Some(id))
            })
        };
        by(dev_eui, |i| i.dev_eui.as_deref())
            .or_else(|| by(milesight_id, |i| i.milesight_id.as_deref()))
    }

    /// Finds the device by devEUI or Milesight id (read by `load_devices`), registering it on
    /// first sight or completing its identity.
    fn resolve_device(
        &mut self,
        conn: &mut impl WriteTx,
        id: &DeviceIdentity,
    ) -> StoreResult<(usize, Resolved)> {
        let (eui, ms_id) = (id.dev_eui.as_deref(), id.milesight_id.as_deref());
        if let Some(i) = self.find(eui, ms_id) {
            let existing = &self.devices[i].identity;
            let learns = (existing.dev_eui.is_none() && eui.is_some())
                || (existing.milesight_id.is_none() && ms_id.is_some())
                || id.name.as_deref().is_some_and(|n| n != existing.name)
                || id.model.as_deref().is_some_and(|m| m != existing.model);
            if !learns {
                return Ok((i, Resolved::Known));
            }
            // A devEUI or Milesight id already owned by another row stays with that row.
            let eui = eui.filter(|_| existing.dev_eui.is_none());
            let ms_id = ms_id.filter(|_| existing.milesight_id.is_none());
            let taken = self.find(eui, ms_id).is_some_and(|o| o != i);
            let (eui, ms_id) = if taken { (None, None) } else { (eui, ms_id) };
            let (name, model) = (id.name.as_deref(), id.model.as_deref());
            let device_id = self.devices[i].row.id;
            conn.update_device_identity(device_id, eui, ms_id, name, model)?;
            // What that UPDATE did.
            let identity = &mut self.devices[i].identity;
            if identity.dev_eui.is_none() {
                identity.dev_eui = eui.map(str::to_string);
            }
            if identity.milesight_id.is_none() {
                identity.milesight_id = ms_id.map(str::to_string);
            }
            if let Some(name) = name {
                identity.name = name.to_string();
            }
            if let Some(model) = model {
                identity.model = model.to_string();
            }
            return Ok((i, Resolved::Learnt(identity.clone())));
        }
        let fallback = public_device_id(ms_id, eui);
        let name = id
            .name
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or(&fallback);
        let model = id.model.as_deref().unwrap_or("");
        let new_id = conn.insert_device(eui, ms_id, name, model, self.now_ms)?;
        let row = conn.device_by_id(new_id)?;
        let json = events::new_device_json(&row, self.now_ms);
        self.devices.push(Device::new(row));
        Ok((self.devices.len() - 1, Resolved::Registered(json)))
    }

    /// `stored`: keys of the readings stored; each one's event is sent once.
    fn change(
        &mut self,
        conn: &mut impl WriteTx,
        device: usize,
        change: &Change,
        stored: &mut HashSet<&str>,
    ) -> StoreResult<()> {
        match change {
            Change::Reading(r) => {
                if !stored.remove(r.dedup_key.as_str()) {
                    return Ok(());
                }
                let json = events::telemetry_json(&self.devices[device].row, r, self.now_ms);
                self.event(device, events::NEW_TELEMETRY, json);
                if !r.historical {
                    self.seen(conn, device)?;
                }
                let alarms = self
                    .judge
                    .reading(conn, &self.devices[device].row, r, self.now_ms)?;
                self.alarm_events(device, alarms);
            }
            Change::Status(DeviceStatus::Online) => self.seen(conn, device)?,
            Change::Status(DeviceStatus::Offline) => {
                self.set_status(conn, device, DeviceStatus::Offline)?
            }
            Change::ReportInterval(secs) => {
                let d = &mut self.devices[device];
                d.row.report_interval_s = Some(*secs);
                d.changed = true;
            }
            Change::DeviceReply(pieces) => self.replies(conn, device, pieces)?,
        }
        Ok(())
    }

    /// The device's open commands, read once per transaction.
    fn open_commands(
        &mut self,
        conn: &mut impl WriteTx,
        device_id: i64,
    ) -> StoreResult<&mut Vec<CommandRow>> {
        match self.commands.entry(device_id) {
            Entry::Occupied(e) => Ok(e.into_mut()),
            Entry::Vacant(e) => Ok(e.insert(command_sql::open_commands_of(conn, device_id)?)),
        }
    }

    /// Keeps the open commands read so far in step with a command's new state.
    fn track(&mut self, row: &CommandRow) {
        if let Some(open) = self.commands.get_mut(&row.device_id) {
            open.retain(|c| c.id != row.id);
            if row.status().is_some_and(CommandStatus::is_open) {
                let at = open.partition_point(|c| c.id < row.id);
                open.insert(at, row.clone());
            }
        }
    }

    /// What an uplink answered: confirms the oldest open command each piece answers.
    fn replies(
        &mut self,
        conn: &mut impl WriteTx,
        device: usize,
        pieces: &[ReplyPiece],
    ) -> StoreResult<()> {
        let device_id = self.devices[device].row.id;
        let open = self.open_commands(conn, device_id)?;
        let requests: Vec<(usize, (Command, Vec<u8>))> = open
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((i, (c.request()?, c.downlink()))))
            .collect();
        let candidates: Vec<(Command, Vec<u8>)> = requests.iter().map(|(_, r)| r.clone()).collect();
        let rows: Vec<CommandRow> = confirmed_by(pieces, &candidates)
            .into_iter()
            .map(|k| open[requests[k].0].clone())
            .collect();
        for mut row in rows {
            row.error = None;
            self.change_status(conn, device, row, CommandStatus::Confirmed)?;
        }
        Ok(())
    }

    /// Moves an open command to `to` (pending only, for `sent` and `failed`), with its event;
    /// nothing when another change came first.
    fn change_status(
        &mut self,
        conn: &mut impl WriteTx,
        device: usize,
        mut row: CommandRow,
        to: CommandStatus,
    ) -> StoreResult<bool> {
        let from: &[CommandStatus] = match to {
            CommandStatus::Sent | CommandStatus::Failed => &[CommandStatus::Pending],
            _ => &[CommandStatus::Pending, CommandStatus::Sent],
        };
        row.updated_ms = self.now_ms;
        if !command_sql::set_status(conn, &row, from, to)? {
            return Ok(false);
        }
        row.status = to.as_str().to_string();
        self.track(&row);
        let json = events::command_status_json(&row, &self.devices[device].row, self.now_ms);
        self.event(device, events::COMMAND_STATUS, json);
        Ok(true)
    }

    fn request_command(
        &mut self,
        conn: &mut impl WriteTx,
        device_id: i64,
        command: &Command,
        downlink_hex: &str,
        by: &str,
    ) -> StoreResult<Result<Outcome, Rejection>> {
        let device = self.device_at(conn, device_id)?;
        let body = serde_json::to_string(command).unwrap_or_default();
        let row = command_sql::insert_command(
            conn,
            device_id,
            command.name(),
            &body,
            downlink_hex,
            by,
            self.now_ms,
        )?;
        self.track(&row);
        let d = &self.devices[device].row;
        let audit = AuditEntry::new(
            by,
            action::COMMAND_SENT,
            &format!("device {}", d.public_id()),
        )
        .after(serde_json::json!({
            "commandId": row.id,
            "request": command,
            "downlink": downlink_hex,
        }));
        alarm_sql::insert_audit(conn, &audit, self.now_ms)?;
        let json = events::command_status_json(&row, d, self.now_ms);
        self.event(device, events::COMMAND_STATUS, json);
        self.flush(conn)?;
        Ok(Ok(Outcome {
            accepted: 1,
            duplicates: 0,
            created: Some(row.id),
        }))
    }

    fn dispatched(
        &mut self,
        conn: &mut impl WriteTx,
        command_id: i64,
        result: &Dispatched,
    ) -> StoreResult<Result<Outcome, Rejection>> {
        let Some(mut row) = command_sql::command_by_id(conn, command_id)? else {
            return Ok(Err(Rejection::NotFound));
        };
        let device = self.device_at(conn, row.device_id)?;
        let to = match result {
            Dispatched::Sent => {
                row.error = None;
                CommandStatus::Sent
            }
            Dispatched::Refused(why) => {
                row.error = Some(bounded_error(why));
                CommandStatus::Failed
            }
        };
        let changed = self.change_status(conn, device, row, to)?;
        self.flush(conn)?;
        Ok(Ok(Outcome {
            accepted: usize::from(changed),
            duplicates: 0,
            created: None,
        }))
    }

    fn expire_commands(
        &mut self,
        conn: &mut impl WriteTx,
        timeout_ms: i64,
    ) -> StoreResult<Result<Outcome, Rejection>> {
        let stale = command_sql::open_commands_before(conn, self.now_ms - timeout_ms)?;
        let minutes = timeout_ms / 60_000;
        let mut expired = 0;
        for mut row in stale {
            let device = self.device_at(conn, row.device_id)?;
            let why = match (row.status(), row.error.as_deref()) {
                (Some(CommandStatus::Pending), Some(last)) => format!(
                    "The gateway did not take it within {minutes} min (last error: {last})."
                ),
                (Some(CommandStatus::Pending), None) => {
                    format!("The gateway did not take it within {minutes} min.")
                }
                _ => format!("No confirmation from the device within {minutes} min."),
            };
            row.error = Some(bounded_error(&why));
            if self.change_status(conn, device, row, CommandStatus::Expired)? {
                expired += 1;
            }
        }
        self.flush(conn)?;
        Ok(Ok(Outcome {
            accepted: expired,
            duplicates: 0,
            created: None,
        }))
    }

    /// A live message: refresh "last seen" and bring the device back online.
    fn seen(&mut self, conn: &mut impl WriteTx, device: usize) -> StoreResult<()> {
        let d = &mut self.devices[device];
        d.row.last_seen_ms = Some(d.row.last_seen_ms.unwrap_or(0).max(self.now_ms));
        d.changed = true;
        self.set_status(conn, device, DeviceStatus::Online)
    }

    fn set_status(
        &mut self,
        conn: &mut impl WriteTx,
        device: usize,
        status: DeviceStatus,
    ) -> StoreResult<()> {
        let d = &mut self.devices[device];
        if d.row.status == status.as_str() {
            return Ok(());
        }
        d.row.status = status.as_str().to_string();
        d.changed = true;
        let json = events::status_json(&d.row, status, self.now_ms);
        self.event(device, events::DEVICE_STATUS_CHANGED, json);
        let alarms = self
            .judge
            .status(conn, &self.devices[device].row, status, self.now_ms)?;
        self.alarm_events(device, alarms);
        Ok(())
    }

    fn alarm_events(&mut self, device: usize, alarms: Vec<AlarmEvent>) {
        for (kind, json) in alarms {
            self.event(device, kind, json);
        }
    }

    /// The device at this id, read into the transaction if it was not.
    fn device_at(&mut self, conn: &mut impl WriteTx, id: i64) -> StoreResult<usize> {
        if let Some(i) = self.devices.iter().position(|d| d.row.id == id) {
            return Ok(i);
        }
        let row = conn.device_by_id(id)?;
        self.devices.push(Device::new(row));
        Ok(self.devices.len() - 1)
    }

    fn acknowledge(
        &mut self,
        conn: &mut impl WriteTx,
        alarm_id: i64,
        scope: &Scope,
        by: &str,
        comment: &str,
    ) -> StoreResult<Result<Outcome, Rejection>> {
        let Some(alarm) = alarm_sql::alarm_by_id(conn, alarm_id)? else {
            return Ok(Err(Rejection::NotFound));
        };
        let device = self.device_at(conn, alarm.device_id)?;
        if !scope.allows(self.devices[device].row.site_id) {
            return Ok(Err(Rejection::NotFound));
        }
        if alarm.acknowledged_ms.is_some() {
            return Ok(Err(Rejection::AlreadyAcknowledged));
        }
        self.judge.load(conn, &[alarm.device_id])?;
        let before = serde_json::json!({"acknowledged": false, "active": alarm.active});
        let alarm = self
            .judge
            .acknowledge(conn, alarm, by, comment, self.now_ms)?;
        let row = &self.devices[device].row;
        let audit = AuditEntry::new(by, action::ALARM_ACKNOWLEDGED, &format!("alarm {alarm_id}"))
            .before(before)
            .after(serde_json::json!({
                "acknowledged": true,
                "comment": comment,
                "device": row.public_id(),
                "kind": alarm.kind,
            }));
        alarm_sql::insert_audit(conn, &audit, self.now_ms)?;
        let json = events::alarm_event_json(events::ALARM_ACKNOWLEDGED, &alarm, row, self.now_ms);
        self.event(device, events::ALARM_ACKNOWLEDGED, json);
        self.flush(conn)?;
        Ok(Ok(Outcome {
            accepted: 1,
            ..Outcome::default()
        }))
    }

    fn escalate(
        &mut self,
        conn: &mut impl WriteTx,
        raised_before_ms: i64,
    ) -> StoreResult<Result<Outcome, Rejection>> {
        let due = outbox::due_for_escalation(conn, raised_before_ms)?;
        for alarm in &due {
            let device = self.device_at(conn, alarm.device_id)?;
            let row = &self.devices[device].row;
            outbox::mark_escalated(conn, alarm.id, self.now_ms)?;
            let payload =
                events::alarm_event_json(events::ALARM_ESCALATED, alarm, row, self.now_ms);
            self.judge
                .outbox
                .enqueue(conn, alarm, row, events::ESCALATED, &payload)?;
        }
        Ok(Ok(Outcome {
            accepted: due.len(),
            ..Outcome::default()
        }))
    }

    fn set_rules(
        &mut self,
        conn: &mut impl WriteTx,
        device_id: i64,
        rules: &[Rule],
        by: &str,
    ) -> StoreResult<Result<Outcome, Rejection>> {
        let device = self.device_at(conn, device_id)?;
        let before: Vec<RuleJson> = alarm_sql::rules_of(conn, &[device_id])?
            .iter()
            .filter_map(|r| r.rule())
            .map(|r| RuleJson::from(&r))
            .collect();
        let after: Vec<RuleJson> = rules.iter().map(RuleJson::from).collect();
        alarm_sql::replace_rules(conn, device_id, rules)?;
        let row = &self.devices[device].row;
        let audit = AuditEntry::new(
            by,
            action::RULES_CHANGED,
            &format!("device {}", row.public_id()),
        )
        .before(&before)
        .after(&after);
        alarm_sql::insert_audit(conn, &audit, self.now_ms)?;
        let alarms =
            self.judge
                .rules_changed(conn, &self.devices[device].row, rules, self.now_ms)?;
        self.alarm_events(device, alarms);
        self.flush(conn)?;
        Ok(Ok(Outcome {
            accepted: rules.len(),
            ..Outcome::default()
        }))
    }

    fn event(&mut self, device: usize, kind: &'static str, json: String) {
        let row = &self.devices[device].row;
        self.events.push(EventInsert {
            kind,
            device_id: row.id,
            site_id: row.site_id,
            json,
        });
    }

    /// Writes the changed devices (the events wait for the end of the transaction).
    fn flush(&mut self, conn: &mut impl WriteTx) -> StoreResult<()> {
        let changed: Vec<&DeviceRow> = self
            .devices
            .iter()
            .filter(|d| d.changed)
            .map(|d| &d.row)
            .collect();
        match changed.as_slice() {
            [] => {}
            [one] => conn.update_device_state(one)?,
            many => {
                for chunk in many.chunks(ROWS_PER_STATEMENT) {
                    update_device_states(conn, chunk)?;
                }
            }
        }
        for d in &mut self.devices {
            d.changed = false;
        }
        Ok(())
    }
}

/// Several devices' state in one statement: a group of webhooks from a fleet changes one row per
/// device, and on PostgreSQL each statement is a round trip.
fn update_device_states(conn: &mut impl WriteTx, rows: &[&DeviceRow]) -> StoreResult<()> {
    let mut params = Vec::with_capacity(rows.len() * 4);
    for d in rows {
        params.extend([
            Val::int(d.id),
            Val::text(&d.status),
            Val::Int(d.last_seen_ms),
            Val::Int(d.report_interval_s),
        ]);
    }
    let sql = update_from_values(
        "devices",
        "status = v.column2, last_seen_ms = v.column3, report_interval_s = v.column4",
        4,
        rows.len(),
    );
    conn.execute_later(&sql, params)
}

//! Alarms at ingest: the group transaction hands every stored reading and status change here,
//! and gets back the alarm events to append to the log. The rules, pending excursions and open
//! alarms of a device are read once per transaction, before its readings are inserted (so
//! "late" means older than what was stored before), and changed here as readings are judged.
//! Which effects a reading has is `domain::judge` (pure); this file stores them.

use std::collections::{HashMap, HashSet};

use super::alarm_sql as sql;
use super::error::StoreResult;
use super::outbox::Outbox;
use super::write_tx::{Later, WriteTx};
use crate::domain::{
    self as domain, past_excursion, AlarmKind, AlarmRow, DeviceRow, DeviceStatus, Effect,
    Excursion, NewReading, Quantity, Rule, Track, Values, BATTERY_CLEAR, BATTERY_LOW,
};

/// How far around a late reading the stored readings are read to rebuild its excursion.
const PAST_WINDOW_MS: i64 = 2 * 86_400_000;

/// An alarm event to append: its kind and JSON.
pub type AlarmEvent = (&'static str, String);

type Key = (i64, Quantity, i64);

#[derive(Default)]
pub struct Judge {
    loaded: HashSet<i64>,
    rules: HashMap<i64, Vec<Rule>>,
    tracks: HashMap<Key, Track>,
    /// Open alarms (active, or not acknowledged) of the loaded devices.
    open: Vec<AlarmRow>,
    newest: HashMap<i64, i64>,
    /// Devices whose newest reading was read (those with rules when loaded).
    tracked: HashSet<i64>,
    /// The notifications of the alarms raised, written before the transaction commits.
    pub outbox: Outbox,
}

/// The value a rule watches, if the reading has it.
fn watched(values: &Values, quantity: Quantity, probe: i64) -> Option<f64> {
    match (quantity, probe) {
        (Quantity::Temperature, 1) => values.temperature,
        (Quantity::Temperature, 2) => values.temperature2,
        (Quantity::Humidity, 1) => values.humidity,
        (Quantity::Humidity, 2) => values.humidity2,
        _ => None,
    }
}

impl Judge {
    /// Reads what judging these devices needs, for those not read yet. Call before their
    /// readings are inserted.
    pub fn load(&mut self, conn: &mut impl WriteTx, devices: &[i64]) -> StoreResult<()> {
        self.load_then(conn, devices, |_| Ok(()))
    }

    /// `load`, with `then` sending what must run after its reads (the readings) before their
    /// answers are read, so a driver that pipelines waits once for both.
    pub fn load_then<W: WriteTx, T>(
        &mut self,
        conn: &mut W,
        devices: &[i64],
        then: impl FnOnce(&mut W) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut fresh: Vec<i64> = devices
            .iter()
            .copied()
            .filter(|d| !self.loaded.contains(d))
            .collect();
        fresh.sort_unstable();
        fresh.dedup();
        // A driver that pipelines reads the newest readings and pending excursions of every
        // device with its rules (a round trip fewer); otherwise only those of devices with
        // rules are read, once the rules are known.
        let ahead = conn.pipelines();
        let mut sent = Vec::new();
        for chunk in fresh.chunks(256) {
            let rules = sql::send_rules_of(conn, chunk)?;
            let open = sql::send_open_alarms_of(conn, chunk)?;
            let tracks = if ahead {
                self.tracked.extend(chunk);
                Some(self.send_tracks(conn, chunk)?)
            } else {
                None
            };
            sent.push((chunk, rules, open, tracks));
        }
        // What must follow the reads goes right behind them: now, with every read sent already,
        // or (below) behind the reads that depend on the rules. `Err` holds it until then.
        let then = if ahead { Ok(then(conn)?) } else { Err(then) };
        let mut tracking = Vec::new();
        for (chunk, rules, open, tracks) in sent {
            for row in sql::read_rules(conn, rules)? {
                if let Some(rule) = row.rule() {
                    self.rules.entry(row.device_id).or_default().push(rule);
                }
            }
            self.open.extend(sql::read_alarms(conn, open)?);
            let ruled: Vec<i64> = chunk
                .iter()
                .copied()
                .filter(|d| self.rules.contains_key(d))
                .collect();
            let tracks = match tracks {
                Some(sent) => Some(sent),
                None if ruled.is_empty() => None,
                None => {
                    self.tracked.extend(&ruled);
                    Some(self.send_tracks(conn, &ruled)?)
                }
            };
            tracking.push((chunk, tracks));
        }
        let done = match then {
            Ok(done) => done,
            Err(then) => then(conn)?,
        };
        for (chunk, reads) in tracking {
            let excursions = match reads {
                Some((newest, excursions)) => {
                    for (device, newest) in sql::read_newest_readings(conn, newest)? {
                        self.newest.insert(device, newest);
                    }
                    sql::read_excursions(conn, excursions)?
                }
                None => Vec::new(),
            };
            for &device in chunk {
                self.loaded.insert(device);
                self.build_tracks(device, &excursions);
            }
        }
        Ok(done)
    }

    /// Sends the reads of these devices' newest reading times and pending excursions.
    fn send_tracks(
        &mut self,
        conn: &mut impl WriteTx,
        devices: &[i64],
    ) -> StoreResult<(Later, Later)> {
        let newest = sql::send_newest_readings(conn, devices)?;
        Ok((newest, sql::send_excursions_of(conn, devices)?))
    }

    /// The newest reading times and the pending excursions of these devices.
    fn read_tracks(
        &mut self,
        conn: &mut impl WriteTx,
        devices: &[i64],
    ) -> StoreResult<Vec<(i64, Quantity, i64, Excursion)>> {
        if devices.is_empty() {
            return Ok(Vec::new());
        }
        for (device, newest) in sql::newest_readings(conn, devices)? {
            self.newest.insert(device, newest);
        }
        self.tracked.extend(devices);
        sql::excursions_of(conn, devices)
    }

    fn build_tracks(&mut self, device: i64, excursions: &[(i64, Quantity, i64, Excursion)]) {
        self.tracks.retain(|(d, _, _), _| *d != device);
        for rule in self.rules.get(&device).into_iter().flatten() {
            let key = (device, rule.quantity, rule.probe);
            let pending = excursions
                .iter()
                .find(|(d, q, p, _)| (*d, *q, *p) == key)
                .map(|(_, _, _, e)| *e);
            let active = self
                .open_threshold(key)
                .filter(|a| a.active)
                .map(|a| Excursion {
                    started_ms: a.started_ms,
                    value: a.value.unwrap_or_default(),
                    peak: a.peak.unwrap_or_default(),
                });
            let track = Track {
                newest_ms: self.newest.get(&device).copied(),
                pending,
                active,
            };
            self.tracks.insert(key, track);
        }
    }

    fn position(&self, device: i64, kind: AlarmKind, quantity: &str, probe: i64) -> Option<usize> {
        self.open.iter().position(|a| {
            a.device_id == device
                && a.kind == kind.as_str()
                && a.quantity == quantity
                && a.probe == probe
        })
    }

    fn open_threshold(&self, (device, q, p): Key) -> Option<&AlarmRow> {
        self.position(device, AlarmKind::Threshold, q.as_str(), p)
            .map(|i| &self.open[i])
    }

    /// Judges a stored reading against the device's rules, battery and own alarms.
    pub fn reading(
        &mut self,
        conn: &mut impl WriteTx,
        device: &DeviceRow,
        r: &NewReading,
        now_ms: i64,
    ) -> StoreResult<Vec<AlarmEvent>> {
        let mut events = Vec::new();
        let rules = self.rules.get(&device.id).cloned().unwrap_or_default();
        for rule in &rules {
            let Some(v) = watched(&r.values, rule.quantity, rule.probe) else {
                continue;
            };
            let key = (device.id, rule.quantity, rule.probe);
            let mut track = self.tracks.get(&key).copied().unwrap_or_default();
            let before = track.pending;
            let effect = domain::judge(rule, &mut track, r.measured_ms, v);
            self.tracks.insert(key, track);
            if track.pending != before {
                sql::save_excursion(
                    conn,
                    device.id,
                    rule.quantity,
                    rule.probe,
                    track.pending.as_ref(),
                )?;
            }
            match effect {
                None => {}
                Some(Effect::Raise {
                    excursion,
                    raised_ms,
                }) => {
                    let a = self.raise(
                        conn,
                        device,
                        rule_alarm(device.id, rule, &excursion, raised_ms),
                    )?;
                    events.push(raised(&mut self.outbox, conn, &a, device, now_ms)?);
                }
                Some(Effect::Peak(peak)) => {
                    if let Some(i) = self.position(
                        device.id,
                        AlarmKind::Threshold,
                        rule.quantity.as_str(),
                        rule.probe,
                    ) {
                        let a = &mut self.open[i];
                        (a.peak, a.min, a.max) = (Some(peak), rule.min, rule.max);
                        sql::update_alarm(conn, a)?;
                    }
                }
                Some(Effect::Clear(ended_ms)) => {
                    if let Some(a) = self.clear(
                        conn,
                        device.id,
                        AlarmKind::Threshold,
                        rule.quantity.as_str(),
                        rule.probe,
                        ended_ms,
                    )? {
                        events.push(event(domain::ALARM_CLEARED, &a, device, now_ms));
                    }
                }
                Some(Effect::Past(ms)) => {
                    events.extend(self.past(conn, device, rule, ms, now_ms)?);
                }
            }
        }
        if let (Some(b), false) = (r.values.battery, r.historical) {
            let open = self.position(device.id, AlarmKind::Battery, "battery", 0);
            let active = open.is_some_and(|i| self.open[i].active);
            if b > BATTERY_CLEAR && active {
                if let Some(a) = self.clear(
                    conn,
                    device.id,
                    AlarmKind::Battery,
                    "battery",
                    0,
                    r.measured_ms,
                )? {
                    events.push(event(domain::ALARM_CLEARED, &a, device, now_ms));
                }
            } else if b <= BATTERY_LOW && !active {
                let mut a = blank(device.id, AlarmKind::Battery, "battery", 0, r.measured_ms);
                a.value = Some(b as f64);
                a.peak = a.value;
                let a = self.raise(conn, device, a)?;
                events.push(raised(&mut self.outbox, conn, &a, device, now_ms)?);
            }
        }
        for s in &r.device_alarms {
            let q = s.quantity.as_str();
            let open = self.position(device.id, AlarmKind::Device, q, s.probe);
            let active = open.is_some_and(|i| self.open[i].active);
            if s.release {
                if active {
                    if let Some(a) = self.clear(
                        conn,
                        device.id,
                        AlarmKind::Device,
                        q,
                        s.probe,
                        r.measured_ms,
                    )? {
                        events.push(event(domain::ALARM_CLEARED, &a, device, now_ms));
                    }
                }
                continue;
            }
            if active {
                continue;
            }
            let mut a = blank(device.id, AlarmKind::Device, q, s.probe, r.measured_ms);
            (a.value, a.peak, a.cause) = (s.value, s.value, Some(s.cause.clone()));
            let a = self.raise(conn, device, a)?;
            events.push(raised(&mut self.outbox, conn, &a, device, now_ms)?);
            if s.mutation {
                // A sudden change has no release: it is over as soon as it is reported.
                if let Some(a) = self.clear(
                    conn,
                    device.id,
                    AlarmKind::Device,
                    q,
                    s.probe,
                    r.measured_ms,
                )? {
                    events.push(event(domain::ALARM_CLEARED, &a, device, now_ms));
                }
            }
        }
        Ok(events)
    }

    /// A device went OFFLINE (raise) or came back (clear).
    pub fn status(
        &mut self,
        conn: &mut impl WriteTx,
        device: &DeviceRow,
        status: DeviceStatus,
        now_ms: i64,
    ) -> StoreResult<Vec<AlarmEvent>> {
        self.load(conn, &[device.id])?;
        let open = self.position(device.id, AlarmKind::Offline, "", 0);
        let active = open.is_some_and(|i| self.open[i].active);
        Ok(match (status, active) {
            (DeviceStatus::Offline, false) => {
                let since = device.last_seen_ms.unwrap_or(now_ms);
                let mut a = blank(device.id, AlarmKind::Offline, "", 0, since);
                a.raised_ms = now_ms;
                let a = self.raise(conn, device, a)?;
                vec![raised(&mut self.outbox, conn, &a, device, now_ms)?]
            }
            (DeviceStatus::Online, true) => self
                .clear(conn, device.id, AlarmKind::Offline, "", 0, now_ms)?
                .map(|a| event(domain::ALARM_CLEARED, &a, device, now_ms))
                .into_iter()
                .collect(),
            _ => Vec::new(),
        })
    }

    /// Raises an alarm: the open one of its key is raised again (one open alarm per key),
    /// else a new one is inserted.
    fn raise(
        &mut self,
        conn: &mut impl WriteTx,
        _device: &DeviceRow,
        new: AlarmRow,
    ) -> StoreResult<AlarmRow> {
        let kind = new.kind().unwrap_or(AlarmKind::Threshold);
        if let Some(i) = self.position(new.device_id, kind, &new.quantity, new.probe) {
            let a = &mut self.open[i];
            a.active = true;
            a.ended_ms = None;
            (a.min, a.max, a.value, a.raised_ms, a.cause) =
                (new.min, new.max, new.value, new.raised_ms, new.cause);
            a.peak = new.peak;
            sql::update_alarm(conn, a)?;
            return Ok(a.clone());
        }
        let mut a = new;
        a.id = sql::insert_alarm(conn, &a)?;
        self.open.push(a.clone());
        Ok(a)
    }

    /// Ends the active alarm of this key; it stays open until acknowledged.
    fn clear(
        &mut self,
        conn: &mut impl WriteTx,
        device: i64,
        kind: AlarmKind,
        quantity: &str,
        probe: i64,
        ended_ms: i64,
    ) -> StoreResult<Option<AlarmRow>> {
        let Some(i) = self
            .position(device, kind, quantity, probe)
            .filter(|i| self.open[*i].active)
        else {
            return Ok(None);
        };
        let a = &mut self.open[i];
        a.active = false;
        a.ended_ms = Some(ended_ms.max(a.started_ms));
        sql::update_alarm(conn, a)?;
        let a = a.clone();
        if a.acknowledged_ms.is_some() {
            self.open.remove(i);
        }
        if kind == AlarmKind::Threshold {
            if let Some(q) = Quantity::parse(quantity) {
                if let Some(t) = self.tracks.get_mut(&(device, q, probe)) {
                    t.active = None;
                }
            }
        }
        Ok(Some(a))
    }

    /// A late reading outside the band, before anything open: rebuilds its excursion from the
    /// stored readings around it; one that lasted the delay is an alarm in the past.
    fn past(
        &mut self,
        conn: &mut impl WriteTx,
        device: &DeviceRow,
        rule: &Rule,
        ms: i64,
        now_ms: i64,
    ) -> StoreResult<Vec<AlarmEvent>> {
        let readings = sql::readings_window(
            conn,
            device.id,
            rule.quantity,
            rule.probe,
            ms - PAST_WINDOW_MS,
            ms + PAST_WINDOW_MS,
        )?;
        let Some(past) = past_excursion(rule, &readings, ms) else {
            return Ok(Vec::new());
        };
        let e = past.excursion;
        let (q, p) = (rule.quantity, rule.probe);
        if let Some(mut known) =
            sql::threshold_alarm_during(conn, device.id, q, p, e.started_ms, past.ended_ms)?
        {
            // Already raised: it may have started earlier or been worse than known.
            known.started_ms = known.started_ms.min(e.started_ms);
            if rule.distance(e.peak) > rule.distance(known.peak.unwrap_or(e.peak)) {
                known.peak = Some(e.peak);
            }
            sql::update_alarm(conn, &known)?;
            if let Some(open) = self.open.iter_mut().find(|a| a.id == known.id) {
                *open = known;
            }
            return Ok(Vec::new());
        }
        let mut a = rule_alarm(device.id, rule, &e, past.raised_ms);
        if let Some(i) = self.position(device.id, AlarmKind::Threshold, q.as_str(), p) {
            // One open alarm per key: the excursion in the past joins the open one.
            let open = &mut self.open[i];
            open.started_ms = open.started_ms.min(e.started_ms);
            if rule.distance(e.peak) > rule.distance(open.peak.unwrap_or(e.peak)) {
                open.peak = Some(e.peak);
            }
            sql::update_alarm(conn, open)?;
            return Ok(Vec::new());
        }
        a.id = sql::insert_alarm(conn, &a)?;
        let raised = raised(&mut self.outbox, conn, &a, device, now_ms)?;
        a.active = false;
        a.ended_ms = Some(past.ended_ms);
        sql::update_alarm(conn, &a)?;
        let cleared = event(domain::ALARM_CLEARED, &a, device, now_ms);
        self.open.push(a);
        Ok(vec![raised, cleared])
    }

    /// Acknowledges an open alarm (the caller checked who may); the alarm after the change.
    pub fn acknowledge(
        &mut self,
        conn: &mut impl WriteTx,
        mut alarm: AlarmRow,
        by: &str,
        comment: &str,
        now_ms: i64,
    ) -> StoreResult<AlarmRow> {
        alarm.acknowledged_by = Some(by.to_string());
        alarm.acknowledged_ms = Some(now_ms);
        alarm.comment = Some(comment.to_string());
        sql::update_alarm(conn, &alarm)?;
        if let Some(i) = self.open.iter().position(|a| a.id == alarm.id) {
            if alarm.active {
                self.open[i] = alarm.clone();
            } else {
                self.open.remove(i);
            }
        }
        Ok(alarm)
    }

    /// The device's rules changed: judge by the new ones from the next reading on. Active
    /// threshold alarms whose rule is gone end now.
    pub fn rules_changed(
        &mut self,
        conn: &mut impl WriteTx,
        device: &DeviceRow,
        rules: &[Rule],
        now_ms: i64,
    ) -> StoreResult<Vec<AlarmEvent>> {
        self.load(conn, &[device.id])?;
        let mut events = Vec::new();
        let orphaned: Vec<(String, i64)> = self
            .open
            .iter()
            .filter(|a| {
                a.device_id == device.id && a.active && a.kind == AlarmKind::Threshold.as_str()
            })
            .filter(|a| {
                !rules
                    .iter()
                    .any(|r| r.quantity.as_str() == a.quantity && r.probe == a.probe)
            })
            .map(|a| (a.quantity.clone(), a.probe))
            .collect();
        for (q, p) in orphaned {
            if let Some(a) = self.clear(conn, device.id, AlarmKind::Threshold, &q, p, now_ms)? {
                events.push(event(domain::ALARM_CLEARED, &a, device, now_ms));
            }
        }
        // Read now if the device had no rules when it was loaded.
        let excursions = if self.tracked.contains(&device.id) {
            sql::excursions_of(conn, &[device.id])?
        } else {
            self.read_tracks(conn, &[device.id])?
        };
        for (d, q, p, _) in &excursions {
            if !rules.iter().any(|r| r.quantity == *q && r.probe == *p) {
                sql::save_excursion(conn, *d, *q, *p, None)?;
            }
        }
        let kept: Vec<_> = excursions
            .into_iter()
            .filter(|(_, q, p, _)| rules.iter().any(|r| r.quantity == *q && r.probe == *p))
            .collect();
        self.rules.insert(device.id, rules.to_vec());
        self.build_tracks(device.id, &kept);
        Ok(events)
    }
}

fn blank(device: i64, kind: AlarmKind, quantity: &str, probe: i64, started_ms: i64) -> AlarmRow {
    AlarmRow {
        id: 0,
        device_id: device,
        kind: kind.as_str().into(),
        quantity: quantity.into(),
        probe,
        min: None,
        max: None,
        value: None,
        peak: None,
        cause: None,
        started_ms,
        raised_ms: started_ms,
        active: true,
        ended_ms: None,
        acknowledged_by: None,
        acknowledged_ms: None,
        comment: None,
    }
}

fn rule_alarm(device: i64, rule: &Rule, e: &Excursion, raised_ms: i64) -> AlarmRow {
    let mut a = blank(
        device,
        AlarmKind::Threshold,
        rule.quantity.as_str(),
        rule.probe,
        e.started_ms,
    );
    (a.min, a.max) = (rule.min, rule.max);
    (a.value, a.peak, a.raised_ms) = (Some(e.value), Some(e.peak), raised_ms);
    a
}

/// The `alarm_raised` event, and its notifications in the same transaction.
fn raised(
    outbox: &mut Outbox,
    conn: &mut impl WriteTx,
    a: &AlarmRow,
    d: &DeviceRow,
    now_ms: i64,
) -> StoreResult<AlarmEvent> {
    let e = event(domain::ALARM_RAISED, a, d, now_ms);
    outbox.enqueue(conn, a, d, domain::RAISED, &e.1)?;
    Ok(e)
}

fn event(kind: &'static str, a: &AlarmRow, d: &DeviceRow, now_ms: i64) -> AlarmEvent {
    (kind, domain::alarm_event_json(kind, a, d, now_ms))
}

//! What templates show: devices with their newest values, chart series, event lines, and the
//! formatting of numbers and times. static/js/format.js formats live updates the same way
//! (tests/data/format-cases.json holds the cases both test).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::domain::{AlarmKind, AlarmRow, ChartBucket, DeviceRow, Rule, TemperatureUnit};
use crate::store::{LatestReading, SeriesPoint};

pub const DAY_MS: i64 = 24 * 3_600_000;

/// A temperature (°C) in the reader's unit: "-18.4 °C", "-1.1 °F".
pub fn temp(v: Option<f64>, unit: TemperatureUnit) -> String {
    v.map_or_else(
        || "–".into(),
        |v| format!("{:.1} {}", unit.from_celsius(v), unit.symbol()),
    )
}

pub fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.0} %"))
}

pub fn battery(v: Option<i64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v} %"))
}

fn datetime(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// Epoch milliseconds, however many references deep a template holds them.
pub trait Millis {
    fn millis(&self) -> i64;
}

impl Millis for i64 {
    fn millis(&self) -> i64 {
        *self
    }
}

impl<T: Millis + ?Sized> Millis for &T {
    fn millis(&self) -> i64 {
        (**self).millis()
    }
}

/// For templates: `<time>` attribute and text of a moment.
pub fn iso_of(ms: impl Millis) -> String {
    iso(ms.millis())
}

pub fn utc_of(ms: impl Millis) -> String {
    utc(ms.millis())
}

/// Machine-readable time for `<time datetime>` and CSV.
pub fn iso(ms: i64) -> String {
    datetime(ms)
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Readable UTC time; the script rewrites it in the browser's time zone.
pub fn utc(ms: i64) -> String {
    datetime(ms)
        .map(|t| {
            format!(
                "{}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_default()
}

pub fn start_of_day_utc(now_ms: i64) -> i64 {
    now_ms - now_ms.rem_euclid(DAY_MS)
}

/// JSON safe inside `<script type="application/json">`: nothing in it can close the element.
pub fn script_json(value: &impl Serialize) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|_| "null".into())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Alarms as stored (an MDP payload's alarm keys, or decoded TS302 alarms) in words.
pub fn describe_alarms(json: &str) -> String {
    match serde_json::from_str::<Value>(json) {
        Ok(v) => describe_alarm_value(&v),
        Err(_) => json.to_string(),
    }
}

fn describe_alarm_value(alarms: &Value) -> String {
    let words = |s: &str| s.replace('_', " ");
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), words);
    match alarms {
        Value::Array(items) => items
            .iter()
            .map(|a| {
                format!(
                    "Probe {} {}: {}",
                    a["channel"],
                    text(&a["quantity"]),
                    text(&a["kind"])
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{}: {}", alarm_key(k), text(v)))
            .collect::<Vec<_>>()
            .join("; "),
        other => text(other),
    }
}

/// `temperature_chn1_alarm` (or `_left_`, `_1_`) → "Probe 1 temperature"; others in words.
fn alarm_key(key: &str) -> String {
    let base = key.strip_suffix("_alarm").unwrap_or(key);
    let probe = |p: &str| match p {
        "chn1" | "left" | "1" => Some(1),
        "chn2" | "right" | "2" => Some(2),
        _ => None,
    };
    match base.split_once('_') {
        Some((quantity, p)) if probe(p).is_some() => {
            format!("Probe {} {quantity}", probe(p).unwrap_or(1))
        }
        _ => key.replace('_', " "),
    }
}

/// A device card or table row.
#[derive(Debug, Clone)]
pub struct DeviceView {
    pub id: String,
    pub name: String,
    pub model: String,
    pub site: Option<String>,
    pub site_id: Option<i64>,
    pub online: bool,
    pub last_seen_ms: Option<i64>,
    pub last: Option<LatestReading>,
    pub unit: TemperatureUnit,
}

impl DeviceView {
    /// An online device with no values yet: what the `<template>` a page clones for a device
    /// that appears live is rendered from.
    pub fn blank(unit: TemperatureUnit) -> DeviceView {
        DeviceView {
            unit,
            id: String::new(),
            name: String::new(),
            model: String::new(),
            site: None,
            site_id: None,
            online: true,
            last_seen_ms: None,
            last: None,
        }
    }

    pub fn build(
        devices: Vec<DeviceRow>,
        latest: Vec<LatestReading>,
        unit: TemperatureUnit,
    ) -> Vec<DeviceView> {
        let mut latest: HashMap<i64, LatestReading> =
            latest.into_iter().map(|r| (r.device_id, r)).collect();
        devices
            .into_iter()
            .map(|d| DeviceView {
                unit,
                id: d.public_id(),
                online: d.status == "ONLINE",
                last: latest.remove(&d.id),
                name: d.name,
                model: d.model,
                site: d.site_name,
                site_id: d.site_id,
                last_seen_ms: d.last_seen_ms,
            })
            .collect()
    }

    pub fn in_site(&self, site: &i64) -> bool {
        self.site_id == Some(*site)
    }

    pub fn status(&self) -> &'static str {
        if self.online {
            "ONLINE"
        } else {
            "OFFLINE"
        }
    }

    pub fn status_label(&self) -> &'static str {
        if self.online {
            "Online"
        } else {
            "Offline"
        }
    }

    pub fn site_label(&self) -> &str {
        self.site.as_deref().unwrap_or("Unassigned")
    }

    pub fn t1(&self) -> String {
        temp(self.last.as_ref().and_then(|r| r.temperature), self.unit)
    }

    pub fn t2(&self) -> String {
        temp(self.last.as_ref().and_then(|r| r.temperature2), self.unit)
    }

    pub fn humidity(&self) -> Option<String> {
        let r = self.last.as_ref()?;
        r.humidity.or(r.humidity2).map(|h| percent(Some(h)))
    }

    pub fn battery(&self) -> String {
        battery(self.last.as_ref().and_then(|r| r.battery))
    }

    pub fn battery_low(&self) -> bool {
        self.last
            .as_ref()
            .and_then(|r| r.battery)
            .is_some_and(|b| b < 20)
    }

    /// When the reading shown was measured (live updates show only newer ones).
    pub fn measured_ms(&self) -> Option<i64> {
        self.last.as_ref().map(|r| r.measured_ms)
    }

    pub fn updated_ms(&self) -> Option<i64> {
        self.last
            .as_ref()
            .map(|r| r.measured_ms)
            .or(self.last_seen_ms)
    }

    pub fn alarm(&self) -> Option<String> {
        let a = self.last.as_ref()?.alarms.as_deref()?;
        Some(describe_alarms(a))
    }
}

/// Fleet figures at the top of a dashboard.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub devices: usize,
    pub online: usize,
    pub offline: usize,
    pub readings_today: i64,
}

impl Stats {
    pub fn of(devices: &[DeviceView], readings_today: i64) -> Stats {
        let online = devices.iter().filter(|d| d.online).count();
        Stats {
            devices: devices.len(),
            online,
            offline: devices.len() - online,
            readings_today,
        }
    }
}

/// Chart series per public device id, in columns: times, probe 1, probe 2, humidity; from
/// summaries also each probe's lowest and highest value per step (the envelope).
#[derive(Debug, Default, Serialize)]
pub struct Series {
    t: Vec<i64>,
    a: Vec<Option<f64>>,
    b: Vec<Option<f64>>,
    h: Vec<Option<f64>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    la: Vec<Option<f64>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ha: Vec<Option<f64>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    lb: Vec<Option<f64>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hb: Vec<Option<f64>>,
}

fn round2(v: Option<f64>) -> Option<f64> {
    v.map(|v| (v * 100.0).round() / 100.0)
}

/// The chart of one device from its summaries (a week or more): the mean per step, and each
/// probe's temperature envelope. `buckets` come ordered by step start.
pub fn summary_chart_json(device: &str, buckets: &[ChartBucket]) -> String {
    let mut s = Series::default();
    for b in buckets {
        if s.t.last() != Some(&b.start_ms) {
            s.t.push(b.start_ms);
            for col in [
                &mut s.a, &mut s.b, &mut s.h, &mut s.la, &mut s.ha, &mut s.lb, &mut s.hb,
            ] {
                col.push(None);
            }
        }
        let i = s.t.len() - 1;
        let mean = round2(Some(b.sum_value / b.value_count.max(1) as f64));
        let (lo, hi) = (round2(Some(b.min_value)), round2(Some(b.max_value)));
        match (b.quantity.as_str(), b.probe) {
            ("temperature", 1) => (s.a[i], s.la[i], s.ha[i]) = (mean, lo, hi),
            ("temperature", 2) => (s.b[i], s.lb[i], s.hb[i]) = (mean, lo, hi),
            ("humidity", 1) => s.h[i] = mean,
            _ => {}
        }
    }
    script_json(&BTreeMap::from([(device, s)]))
}

pub fn chart_json(
    devices: &[DeviceView],
    ids: &[(i64, String)],
    points: Vec<SeriesPoint>,
) -> String {
    let public: HashMap<i64, &str> = ids.iter().map(|(id, p)| (*id, p.as_str())).collect();
    let mut out: BTreeMap<&str, Series> = devices
        .iter()
        .map(|d| (d.id.as_str(), Series::default()))
        .collect();
    let round = round2;
    for p in points {
        let Some(s) = public.get(&p.device_id).and_then(|id| out.get_mut(id)) else {
            continue;
        };
        s.t.push(p.bucket_ms);
        s.a.push(round(p.temperature));
        s.b.push(round(p.temperature2));
        s.h.push(round(p.humidity));
    }
    script_json(&out)
}

/// Points a chart shows per device before readings are averaged into time buckets.
pub const CHART_POINTS: i64 = 300;

/// Bucket width for `count` readings of `devices` devices over `span_ms`: 1 ms (every reading
/// on its own) when they fit, else wide enough to keep each chart near [`CHART_POINTS`].
pub fn bucket_for(span_ms: i64, count: i64, devices: usize) -> i64 {
    if count <= CHART_POINTS * devices.max(1) as i64 {
        1
    } else {
        (span_ms / CHART_POINTS).max(1)
    }
}

/// One line of the live event log.
#[derive(Debug, Clone)]
pub struct EventLine {
    pub id: i64,
    pub kind: String,
    pub label: &'static str,
    pub device_id: String,
    pub device_name: String,
    pub summary: String,
    pub at_ms: i64,
    pub alarm: bool,
}

impl EventLine {
    /// An empty line, for the `<template>` of live log lines.
    pub fn blank() -> EventLine {
        EventLine {
            id: 0,
            kind: String::new(),
            label: "",
            device_id: String::new(),
            device_name: String::new(),
            summary: String::new(),
            at_ms: 0,
            alarm: false,
        }
    }

    /// From the stored SSE JSON; `None` if it is not an event the log shows.
    pub fn parse(id: i64, json: &str, unit: TemperatureUnit) -> Option<EventLine> {
        let v: Value = serde_json::from_str(json).ok()?;
        let d = &v["data"];
        let kind = v["type"].as_str()?.to_string();
        let num = |k: &str| d[k].as_f64();
        let (label, summary) = match kind.as_str() {
            "new_telemetry" => {
                let mut parts = vec![format!(
                    "{} / {}",
                    temp(num("temperature"), unit),
                    temp(num("temperature2"), unit)
                )];
                if let Some(h) = num("humidity") {
                    parts.push(format!("RH {}", percent(Some(h))));
                }
                if let Some(b) = d["battery"].as_i64() {
                    parts.push(format!("battery {b} %"));
                }
                if d["historical"].as_bool() == Some(true) {
                    parts.push("(history)".into());
                }
                if let Some(a) = d.get("alarms").filter(|a| !a.is_null()) {
                    parts.push(describe_alarm_value(a));
                }
                ("Reading", parts.join(" · "))
            }
            "device_status_changed" => ("Status", d["status"].as_str().unwrap_or("").into()),
            "new_device" => ("New device", d["model"].as_str().unwrap_or("").into()),
            _ => return None,
        };
        Some(EventLine {
            id,
            label,
            device_id: d["deviceId"].as_str().unwrap_or("").into(),
            device_name: d["deviceName"].as_str().unwrap_or("").into(),
            summary,
            at_ms: v["timestamp"].as_i64().unwrap_or(0),
            alarm: d.get("alarms").is_some_and(|a| !a.is_null()),
            kind,
        })
    }
}

/// What an alarm is about, in words (the kind's badge).
pub fn alarm_kind_label(kind: &str) -> &'static str {
    match kind {
        "threshold" => "Out of range",
        "device" => "Device alarm",
        "offline" => "Offline",
        "battery" => "Low battery",
        _ => "Alarm",
    }
}

/// The quantity an alarm watches: "Probe 1 temperature", "Battery", "No contact"; a device
/// alarm adds the device's own cause in words.
pub fn alarm_what(
    kind: &str,
    quantity: Option<&str>,
    probe: Option<i64>,
    cause: Option<&str>,
) -> String {
    let words = |s: &str| s.replace('_', " ");
    let base = match (quantity.filter(|q| !q.is_empty()), probe.filter(|p| *p > 0)) {
        (Some(q), Some(p)) => format!("Probe {p} {q}"),
        (Some("battery"), None) => "Battery".to_string(),
        (Some(q), None) => words(q),
        (None, _) if kind == "offline" => "No contact".to_string(),
        (None, _) => String::new(),
    };
    match cause.filter(|c| !c.is_empty()) {
        Some(c) if base.is_empty() => words(c),
        Some(c) => format!("{base} ({})", words(c)),
        None => base,
    }
}

/// A value of an alarm's quantity with its unit; `None` when there is none.
pub fn alarm_amount(
    quantity: Option<&str>,
    v: Option<f64>,
    unit: TemperatureUnit,
) -> Option<String> {
    let v = v.filter(|v| v.is_finite())?;
    Some(match quantity {
        Some("temperature") => temp(Some(v), unit),
        Some("humidity") | Some("battery") => percent(Some(v)),
        _ => format!("{v}"),
    })
}

/// The allowed band: "-25.0 °C to -15.0 °C", "at most -15.0 °C", "at least 2.0 °C".
pub fn alarm_range(
    quantity: Option<&str>,
    min: Option<f64>,
    max: Option<f64>,
    unit: TemperatureUnit,
) -> Option<String> {
    match (
        alarm_amount(quantity, min, unit),
        alarm_amount(quantity, max, unit),
    ) {
        (Some(lo), Some(hi)) => Some(format!("{lo} to {hi}")),
        (None, Some(hi)) => Some(format!("at most {hi}")),
        (Some(lo), None) => Some(format!("at least {lo}")),
        (None, None) => None,
    }
}

/// The texts of an alarm that depend on its values only (shared with static/js/format.js).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmTexts {
    pub kind: &'static str,
    pub what: String,
    pub value: Option<String>,
    /// The worst value, when it reads differently from `value`.
    pub peak: Option<String>,
    pub range: Option<String>,
    pub state: &'static str,
}

/// The facts of an alarm its texts are made of.
pub struct AlarmFacts<'a> {
    pub kind: &'a str,
    pub quantity: Option<&'a str>,
    pub probe: Option<i64>,
    pub cause: Option<&'a str>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub value: Option<f64>,
    pub peak: Option<f64>,
    pub active: bool,
    pub unit: TemperatureUnit,
}

impl AlarmFacts<'_> {
    pub fn texts(&self) -> AlarmTexts {
        let value = alarm_amount(self.quantity, self.value, self.unit);
        let peak =
            alarm_amount(self.quantity, self.peak, self.unit).filter(|p| Some(p) != value.as_ref());
        AlarmTexts {
            kind: alarm_kind_label(self.kind),
            what: alarm_what(self.kind, self.quantity, self.probe, self.cause),
            value,
            peak,
            range: alarm_range(self.quantity, self.min, self.max, self.unit),
            state: if self.active { "Active" } else { "Cleared" },
        }
    }
}

/// An alarm on a dashboard or the device page (templates/partials/alarm_item.html).
#[derive(Debug, Clone)]
pub struct AlarmView {
    pub id: i64,
    pub device_id: String,
    pub device_name: String,
    pub kind: String,
    pub severity: u8,
    pub texts: AlarmTexts,
    pub started_ms: i64,
    pub raised_ms: i64,
    pub active: bool,
    pub ended_ms: Option<i64>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_ms: Option<i64>,
    pub comment: Option<String>,
}

impl AlarmView {
    pub fn of(a: &AlarmRow, d: &DeviceRow, unit: TemperatureUnit) -> AlarmView {
        let quantity = Some(a.quantity.as_str()).filter(|q| !q.is_empty());
        let facts = AlarmFacts {
            kind: &a.kind,
            quantity,
            probe: Some(a.probe).filter(|p| *p > 0),
            cause: a.cause.as_deref(),
            min: a.min,
            max: a.max,
            value: a.value,
            peak: a.peak,
            active: a.active,
            unit,
        };
        AlarmView {
            id: a.id,
            device_id: d.public_id(),
            device_name: d.name.clone(),
            kind: a.kind.clone(),
            severity: a.kind().map_or(0, AlarmKind::severity),
            texts: facts.texts(),
            started_ms: a.started_ms,
            raised_ms: a.raised_ms,
            active: a.active,
            ended_ms: a.ended_ms,
            acknowledged_by: a.acknowledged_by.clone(),
            acknowledged_ms: a.acknowledged_ms,
            comment: a.comment.clone(),
        }
    }

    pub fn list(rows: &[(AlarmRow, DeviceRow)], unit: TemperatureUnit) -> Vec<AlarmView> {
        rows.iter()
            .map(|(a, d)| AlarmView::of(a, d, unit))
            .collect()
    }

    /// Open alarms as the dashboards list them: the most severe first, then the oldest.
    pub fn open_list(rows: &[(AlarmRow, DeviceRow)], unit: TemperatureUnit) -> Vec<AlarmView> {
        let mut v = AlarmView::list(rows, unit);
        sort_open(&mut v);
        v
    }

    /// An empty alarm, for the `<template>` of alarms that arrive live.
    pub fn blank() -> AlarmView {
        AlarmView {
            id: 0,
            device_id: String::new(),
            device_name: String::new(),
            kind: String::new(),
            severity: 0,
            texts: AlarmTexts {
                kind: "",
                what: String::new(),
                value: None,
                peak: None,
                range: None,
                state: "Active",
            },
            started_ms: 0,
            raised_ms: 0,
            active: true,
            ended_ms: None,
            acknowledged_by: None,
            acknowledged_ms: None,
            comment: None,
        }
    }

    pub fn acknowledged(&self) -> bool {
        self.acknowledged_ms.is_some()
    }
}

/// The dashboards' order of open alarms (static/js/alarms.js keeps it live): the most severe
/// first, then the oldest.
pub fn sort_open(v: &mut [AlarmView]) {
    v.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.started_ms.cmp(&b.started_ms))
            .then(a.id.cmp(&b.id))
    });
}

/// One rule of a device, for its page: the read-only table and the chart's band.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleView {
    pub quantity: &'static str,
    pub probe: i64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub delay_secs: i64,
    /// The reader's, for the table; the chart's band (JSON) stays in °C.
    #[serde(skip)]
    pub unit: TemperatureUnit,
}

impl RuleView {
    pub fn of(r: &Rule, unit: TemperatureUnit) -> RuleView {
        RuleView {
            unit,
            quantity: r.quantity.as_str(),
            probe: r.probe,
            min: r.min,
            max: r.max,
            delay_secs: r.delay_secs,
        }
    }

    pub fn blank(unit: TemperatureUnit) -> RuleView {
        RuleView {
            unit,
            quantity: "",
            probe: 0,
            min: None,
            max: None,
            delay_secs: 0,
        }
    }

    pub fn what(&self) -> String {
        alarm_what("threshold", Some(self.quantity), Some(self.probe), None)
    }

    pub fn min_text(&self) -> String {
        alarm_amount(Some(self.quantity), self.min, self.unit).unwrap_or_else(|| "–".into())
    }

    pub fn max_text(&self) -> String {
        alarm_amount(Some(self.quantity), self.max, self.unit).unwrap_or_else(|| "–".into())
    }

    pub fn delay_text(&self) -> String {
        delay_words(self.delay_secs)
    }
}

/// A rule's delay in words: "none", "90 s", "10 min", "1 h 30 min".
pub fn delay_words(secs: i64) -> String {
    if secs <= 0 {
        return "none".into();
    }
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(format!("{h} h"));
    }
    if m > 0 {
        parts.push(format!("{m} min"));
    }
    if s > 0 {
        parts.push(format!("{s} s"));
    }
    parts.join(" ")
}

/// One row of the rules form: a quantity of a probe, with the current rule's values if any.
#[derive(Debug, Clone)]
pub struct RuleField {
    /// Form field prefix: `temperature-1`.
    pub key: String,
    pub what: String,
    pub unit: &'static str,
    pub min: String,
    pub max: String,
    /// The delay in minutes.
    pub delay_min: String,
}

/// The rows of the rules form: every quantity of both probes, filled from `rules`.
/// Temperatures in the reader's `unit` (the form handler reads them back in it).
pub fn rule_fields(rules: &[Rule], unit: TemperatureUnit) -> Vec<RuleField> {
    use crate::domain::Quantity;
    let mut out = Vec::new();
    for (quantity, symbol) in [
        (Quantity::Temperature, unit.symbol()),
        (Quantity::Humidity, "%RH"),
    ] {
        let number = |v: Option<f64>| match quantity {
            Quantity::Temperature => v.map(|v| unit.field(v)).unwrap_or_default(),
            _ => field_number(v),
        };
        for probe in [1, 2] {
            let rule = rules
                .iter()
                .find(|r| r.quantity == quantity && r.probe == probe);
            out.push(RuleField {
                key: format!("{}-{probe}", quantity.as_str()),
                what: alarm_what("threshold", Some(quantity.as_str()), Some(probe), None),
                unit: symbol,
                min: number(rule.and_then(|r| r.min)),
                max: number(rule.and_then(|r| r.max)),
                delay_min: rule
                    .map(|r| field_number(Some(r.delay_secs as f64 / 60.0)))
                    .unwrap_or_default(),
            });
        }
    }
    out
}

/// A device's public id in a path (they are digits or hex; anything else is escaped).
pub fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A number as a form field's value: "-15", "-15.5"; empty for none.
pub fn field_number(v: Option<f64>) -> String {
    v.map(|v| format!("{v}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RuleJson;
    use crate::domain::TemperatureUnit::{Celsius, Fahrenheit};

    #[test]
    fn a_summary_chart_has_means_and_each_probes_envelope() {
        let b = |quantity: &str, probe, start_ms, min_value, max_value, sum_value, value_count| {
            ChartBucket {
                quantity: quantity.into(),
                probe,
                start_ms,
                min_value,
                max_value,
                sum_value,
                value_count,
            }
        };
        let rows = [
            b("temperature", 1, 0, -20.0, -18.0, -57.0, 3),
            b("temperature", 2, 0, 3.0, 5.0, 8.0, 2),
            b("humidity", 1, 0, 40.0, 50.0, 90.0, 2),
            b("temperature", 1, 3_600_000, -19.0, -9.5, -28.5, 2),
        ];
        let got: Value = serde_json::from_str(&summary_chart_json("7", &rows)).unwrap();
        assert_eq!(
            got,
            serde_json::json!({"7": {
                "t": [0, 3_600_000], "a": [-19.0, -14.25], "b": [4.0, null], "h": [45.0, null],
                "la": [-20.0, -19.0], "ha": [-18.0, -9.5], "lb": [3.0, null], "hb": [5.0, null]
            }})
        );
    }

    #[test]
    fn script_json_cannot_close_the_element() {
        let s = script_json(&serde_json::json!({"n": "</script><b>&"}));
        assert!(!s.contains('<') && !s.contains('>') && !s.contains('&'));
        let back: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back["n"], "</script><b>&");
    }

    #[test]
    fn formats() {
        assert_eq!(temp(Some(-18.44), Celsius), "-18.4 °C");
        assert_eq!(temp(Some(-18.44), Fahrenheit), "-1.2 °F");
        assert_eq!(temp(None, Fahrenheit), "–");
        assert_eq!(utc(1_763_007_319_000), "2025-11-13 04:15:19 UTC");
        assert_eq!(iso(1_763_007_319_000), "2025-11-13T04:15:19Z");
        assert_eq!(start_of_day_utc(1_763_007_319_000), 1_762_992_000_000);
        assert_eq!(
            describe_alarms(r#"{"temperature_chn1_alarm":"threshold_alarm","event":"x_y"}"#),
            "event: x y; Probe 1 temperature: threshold alarm"
        );
        assert_eq!(
            describe_alarms(r#"[{"channel":2,"quantity":"temperature","kind":"mutation_alarm"}]"#),
            "Probe 2 temperature: mutation alarm"
        );
    }

    /// The cases static/js/format.js is tested with (tests/e2e/format.test.mjs), so that live
    /// values read exactly as the page's.
    #[test]
    fn formats_shared_with_the_browser() {
        let cases: Value =
            serde_json::from_str(include_str!("../../tests/data/format-cases.json")).unwrap();
        let pairs = |kind: &str| cases[kind].as_array().unwrap().clone();
        for c in pairs("temp") {
            assert_eq!(temp(c[0].as_f64(), Celsius), c[1], "temp {}", c[0]);
        }
        for c in pairs("tempF") {
            assert_eq!(temp(c[0].as_f64(), Fahrenheit), c[1], "temp {} in °F", c[0]);
        }
        for c in pairs("percent") {
            assert_eq!(percent(c[0].as_f64()), c[1], "percent {}", c[0]);
        }
        for c in pairs("battery") {
            assert_eq!(battery(c[0].as_i64()), c[1], "battery {}", c[0]);
        }
        for c in pairs("alarms") {
            assert_eq!(describe_alarm_value(&c[0]), c[1], "alarms {}", c[0]);
        }
        for c in pairs("events") {
            let line = EventLine::parse(1, &c[0].to_string(), Celsius).map(
                |l| serde_json::json!({"label": l.label, "summary": l.summary, "alarm": l.alarm}),
            );
            assert_eq!(line.unwrap_or(Value::Null), c[1], "event {}", c[0]);
        }
    }

    /// The alarm cases static/js/format.js is tested with (tests/e2e/format.test.mjs).
    #[test]
    fn alarm_texts_shared_with_the_browser() {
        let cases: Value =
            serde_json::from_str(include_str!("../../tests/e2e/alarm-cases.json")).unwrap();
        for c in cases["alarms"].as_array().unwrap() {
            let a = &c[0];
            let facts = AlarmFacts {
                kind: a["kind"].as_str().unwrap(),
                quantity: a["quantity"].as_str(),
                probe: a["probe"].as_i64(),
                cause: a["cause"].as_str(),
                min: a["min"].as_f64(),
                max: a["max"].as_f64(),
                value: a["value"].as_f64(),
                peak: a["peak"].as_f64(),
                active: a["active"].as_bool().unwrap(),
                unit: a["unit"]
                    .as_str()
                    .and_then(TemperatureUnit::parse)
                    .unwrap_or_default(),
            };
            assert_eq!(serde_json::to_value(facts.texts()).unwrap(), c[1], "{a}");
        }
        for c in cases["delays"].as_array().unwrap() {
            assert_eq!(delay_words(c[0].as_i64().unwrap()), c[1], "delay {}", c[0]);
        }
    }

    #[test]
    fn open_alarms_most_severe_then_oldest() {
        let alarm = |id, kind: &str, started_ms| AlarmView {
            id,
            kind: kind.into(),
            severity: AlarmKind::parse(kind).map_or(0, AlarmKind::severity),
            started_ms,
            ..AlarmView::blank()
        };
        let mut v = [
            alarm(1, "battery", 1),
            alarm(2, "offline", 5),
            alarm(3, "threshold", 9),
            alarm(4, "device", 3),
            alarm(5, "threshold", 3),
        ];
        sort_open(&mut v);
        assert_eq!(v.map(|a| a.id), [4, 5, 3, 2, 1]);
    }

    #[test]
    fn rule_form_rows() {
        let rule = RuleJson {
            quantity: "temperature".into(),
            probe: 2,
            min: None,
            max: Some(-15.0),
            delay_secs: 90,
        }
        .check()
        .unwrap();
        let rows = rule_fields(&[rule], Celsius);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[1].key, "temperature-2");
        assert_eq!((rows[1].min.as_str(), rows[1].max.as_str()), ("", "-15"));
        assert_eq!(rows[1].delay_min, "1.5");
        assert_eq!(
            (rows[0].max.as_str(), rows[2].what.as_str()),
            ("", "Probe 1 humidity")
        );
        assert_eq!(RuleView::of(&rule, Celsius).delay_text(), "1 min 30 s");
        assert_eq!(RuleView::of(&rule, Celsius).min_text(), "–");
        assert_eq!(RuleView::of(&rule, Fahrenheit).max_text(), "5.0 °F");
        let rows = rule_fields(&[rule], Fahrenheit);
        assert_eq!((rows[1].max.as_str(), rows[1].unit), ("5", "°F"));
    }

    #[test]
    fn event_lines() {
        let json = r#"{"type":"new_telemetry","timestamp":5,"data":{"deviceId":"d1","deviceName":"<b>","temperature":-18.5,"temperature2":4,"battery":93,"alarms":{"x_alarm":"y"}}}"#;
        let l = EventLine::parse(7, json, Celsius).unwrap();
        assert_eq!(l.summary, "-18.5 °C / 4.0 °C · battery 93 % · x alarm: y");
        let f = EventLine::parse(7, json, Fahrenheit).unwrap();
        assert_eq!(f.summary, "-1.3 °F / 39.2 °F · battery 93 % · x alarm: y");
        assert_eq!(
            describe_alarms(r#"{"humidity_right_alarm":"mutation_alarm"}"#),
            "Probe 2 humidity: mutation alarm"
        );
        assert_eq!(l.device_name, "<b>");
        assert!(l.alarm);
        assert!(EventLine::parse(1, r#"{"type":"keepalive","timestamp":1}"#, Celsius).is_none());
    }
}

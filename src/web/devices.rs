//! One device: history chart, recent readings, and CSV export of a time range. Scoped: a
//! device outside the user's sites is "not found", exactly like one that does not exist.

use askama::Template;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use time::macros::format_description;
use time::{Date, PrimitiveDateTime};
use tower_sessions::Session;

use super::alarms::may_edit_rules;
use super::auth::PageUser;
use super::csv::field;
use super::error::PageError;
use super::extract::{PagePath, PageQuery};
use super::flash::{take_flash, Flash};
use super::layout::{render, Layout};
use super::state::AppState;
use super::view::{self, rule_fields, AlarmView, DeviceView, RuleField, RuleView, DAY_MS};
use crate::domain::{
    bucket_of, chart_step, now_ms, DeviceRow, ReadingRow, Role, TemperatureUnit, User,
    CHART_SUMMARY_FROM_MS,
};
use crate::store::{AlarmFilter, SiteRow, TelemetryQuery};

/// Most rows in one CSV file.
pub const EXPORT_MAX_ROWS: i64 = 100_000;
const RECENT_ROWS: i64 = 50;
/// Most alarms the device page lists.
pub const ALARM_HISTORY_MAX: i64 = 200;

const RANGES: [(&str, &str, i64); 4] = [
    ("24h", "24 hours", DAY_MS),
    ("7d", "7 days", 7 * DAY_MS),
    ("30d", "30 days", 30 * DAY_MS),
    ("1y", "year", 365 * DAY_MS),
];

async fn find(state: &AppState, user: &User, device_id: &str) -> Result<DeviceRow, PageError> {
    let scope = user.scope();
    state
        .store
        .device(device_id, &scope)
        .await?
        .ok_or_else(PageError::not_found)
}

#[derive(Deserialize)]
pub struct DetailQuery {
    range: Option<String>,
}

pub struct ReadingLine {
    pub at_ms: i64,
    pub t1: String,
    pub t2: String,
    pub humidity: String,
    pub battery: String,
    pub alarm: Option<String>,
    pub historical: bool,
}

impl ReadingLine {
    /// An empty row, for the `<template>` of live readings.
    pub fn blank() -> ReadingLine {
        ReadingLine {
            at_ms: 0,
            t1: String::new(),
            t2: String::new(),
            humidity: String::new(),
            battery: String::new(),
            alarm: None,
            historical: false,
        }
    }
}

impl ReadingLine {
    pub fn of(r: ReadingRow, unit: TemperatureUnit) -> Self {
        ReadingLine {
            at_ms: r.measured_ms,
            t1: view::temp(r.temperature, unit),
            t2: view::temp(r.temperature2, unit),
            humidity: view::percent(r.humidity.or(r.humidity2)),
            battery: view::battery(r.battery),
            alarm: r.alarms.as_deref().map(view::describe_alarms),
            historical: r.historical,
        }
    }
}

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage {
    layout: Layout,
    device: DeviceView,
    range_label: &'static str,
    /// The chart's step when drawn from summaries (0: every reading).
    step_ms: i64,
    span_ms: i64,
    /// Range links: key and whether it is the one shown.
    ranges: Vec<(&'static str, bool)>,
    chart_json: String,
    readings: Vec<ReadingLine>,
    /// Sites to place the device into (admins only).
    sites: Option<Vec<SiteRow>>,
    export_max: i64,
    flash: Option<Flash>,
    rules: Vec<RuleView>,
    /// The rules for the chart's bands (JSON safe in a `<script>`).
    rules_json: String,
    /// The rows of the rules form, for who may edit the rules.
    rule_form: Option<Vec<RuleField>>,
    /// Every alarm of the device, newest first.
    alarms: Vec<AlarmView>,
    /// This page's path, where its forms return to.
    back: String,
    /// Device commands, for admins and the site's managers.
    commands: Option<super::commands::CommandsPanel>,
}

pub async fn detail(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    session: Session,
    PagePath(device_id): PagePath<String>,
    PageQuery(q): PageQuery<DetailQuery>,
) -> Result<Response, PageError> {
    let last_event_id = state.hub.last_id();
    let row = find(&state, &user, &device_id).await?;
    let (range, range_label, span_ms) = RANGES
        .into_iter()
        .find(|(key, _, _)| Some(*key) == q.range.as_deref())
        .unwrap_or(RANGES[0]);
    let store = &state.store;
    let id = row.id;
    let scope = user.scope();
    // A week or more is drawn from the summaries (kept after raw readings are purged), with
    // each probe's envelope; shorter ranges from the readings themselves.
    let now = now_ms();
    let (points, buckets, step_ms) = if span_ms >= CHART_SUMMARY_FROM_MS {
        let step = chart_step(span_ms);
        let rows = store
            .chart_buckets(id, bucket_of(now - span_ms), now, step)
            .await?;
        (Vec::new(), Some(rows), step)
    } else {
        let points = super::pages::chart_points(store, &scope, Some(id), 1, span_ms).await?;
        (points, None, 0)
    };
    let recent_query = TelemetryQuery {
        since_ms: None,
        until_ms: None,
        limit: RECENT_ROWS,
    };
    let recent = store.telemetry(id, recent_query).await?;
    let latest = store.latest_readings(&scope, Some(id)).await?;
    let sites = if user.role == Role::Admin {
        Some(store.sites().await?)
    } else {
        None
    };
    let rule_rows = store.rules(id).await?;
    let rule_form = may_edit_rules(&user, &row).then(|| rule_fields(&rule_rows, user.unit));
    let rules: Vec<RuleView> = rule_rows
        .iter()
        .map(|r| RuleView::of(r, user.unit))
        .collect();
    let history = AlarmFilter {
        open_only: false,
        device_id: Some(id),
        since_ms: i64::MIN,
        until_ms: i64::MAX,
        limit: ALARM_HISTORY_MAX,
    };
    let alarms = AlarmView::list(&store.alarms(&scope, &history).await?, user.unit);
    let commands = super::commands::panel(&state, &user, &row).await?;
    let ids = [(id, row.public_id())];
    let devices = DeviceView::build(vec![row], latest, user.unit);
    let chart_json = match &buckets {
        Some(rows) => view::summary_chart_json(&ids[0].1, rows),
        None => view::chart_json(&devices, &ids, points),
    };
    let device = devices
        .into_iter()
        .next()
        .ok_or_else(PageError::not_found)?;
    let back = format!("/devices/{}", view::path_segment(&device.id));
    let page = DevicePage {
        layout: Layout::signed_in(&user, &session, &device.name)
            .await?
            .live(last_event_id),
        device,
        range_label,
        span_ms,
        step_ms,
        ranges: RANGES.iter().map(|r| (r.0, r.0 == range)).collect(),
        chart_json,
        readings: recent
            .into_iter()
            .map(|r| ReadingLine::of(r, user.unit))
            .collect(),
        sites,
        export_max: EXPORT_MAX_ROWS,
        flash: take_flash(&session).await,
        rules_json: view::script_json(&rules),
        rules,
        rule_form,
        alarms,
        back,
        commands,
    };
    Ok(render(&page))
}

#[derive(Deserialize)]
pub struct ExportQuery {
    since: Option<String>,
    until: Option<String>,
}

/// A bound of the export range: epoch ms, RFC 3339, or (as UTC) `YYYY-MM-DD` or a
/// `datetime-local` value `YYYY-MM-DDTHH:MM[:SS]`. Empty means open-ended.
fn bound(name: &str, value: Option<&str>) -> Result<Option<i64>, PageError> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(ms) = super::api::parse_time(name, v) {
        return Ok(Some(ms));
    }
    let minutes = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let seconds = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let day = format_description!("[year]-[month]-[day]");
    PrimitiveDateTime::parse(v, &minutes)
        .or_else(|_| PrimitiveDateTime::parse(v, &seconds))
        .or_else(|_| Date::parse(v, &day).map(|d| d.midnight()))
        .map(|t| (t.assume_utc().unix_timestamp_nanos() / 1_000_000) as i64)
        .map(Some)
        .map_err(|_| {
            PageError::new(
                StatusCode::BAD_REQUEST,
                "Invalid time range",
                format!("{name} must be a date and time, e.g. 2025-01-31T08:00."),
            )
        })
}

pub async fn export_csv(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    PagePath(device_id): PagePath<String>,
    PageQuery(q): PageQuery<ExportQuery>,
) -> Result<Response, PageError> {
    let device = find(&state, &user, &device_id).await?;
    let since = bound("since", q.since.as_deref())?;
    let until = bound("until", q.until.as_deref())?;
    let id = device.id;
    let range = (since.unwrap_or(i64::MIN), until.unwrap_or(i64::MAX));
    let rows = state
        .store
        .readings_between(id, range, EXPORT_MAX_ROWS)
        .await?;
    let public = device.public_id();
    let filename: String = public
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let disposition = format!("attachment; filename=\"sensorcast-{filename}.csv\"");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        csv(&public, &device.name, &rows, user.unit),
    )
        .into_response())
}

/// The columns; temperatures are `temperature,temperature2` in °C (as stored, every digit) or
/// `temperature_f,temperature2_f` in °F (to 0.01, which every tenth of a °C is exactly).
fn csv_header(unit: TemperatureUnit) -> String {
    let t = match unit {
        TemperatureUnit::Celsius => "temperature,temperature2",
        TemperatureUnit::Fahrenheit => "temperature_f,temperature2_f",
    };
    format!("device_id,device_name,measured_at,measured_at_ms,received_at,{t},humidity,humidity2,battery,historical,event_type,source,alarms\r\n")
}

fn csv(device_id: &str, name: &str, rows: &[ReadingRow], unit: TemperatureUnit) -> String {
    let header = csv_header(unit);
    let mut out = String::with_capacity(header.len() + rows.len() * 120);
    out.push_str(&header);
    let num = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let degrees = |v: Option<f64>| match unit {
        TemperatureUnit::Celsius => num(v),
        TemperatureUnit::Fahrenheit => v.map(|v| unit.field(v)).unwrap_or_default(),
    };
    for r in rows {
        let fields = [
            field(device_id),
            field(name),
            field(&view::iso(r.measured_ms)),
            r.measured_ms.to_string(),
            field(&view::iso(r.received_ms)),
            degrees(r.temperature),
            degrees(r.temperature2),
            num(r.humidity),
            num(r.humidity2),
            r.battery.map(|b| b.to_string()).unwrap_or_default(),
            r.historical.to_string(),
            field(&r.event_type),
            field(&r.source),
            field(r.alarms.as_deref().unwrap_or("")),
        ];
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

/// A text field: always quoted (RFC 4180), so a spreadsheet splitting on `;` or tabs (as
/// some locales do) still sees one cell, and never read as a formula. Numbers and booleans,
/// which we format ourselves, stay bare.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(field("plain"), "\"plain\"");
        assert_eq!(field(""), "\"\"");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("x;=1+2;y"), "\"x;=1+2;y\"");
        assert_eq!(field("a\tb"), "\"a\tb\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=cmd()"), "\"'=cmd()\"");
        assert_eq!(field("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(field("-1+2"), "\"'-1+2\"");
        assert_eq!(field("\"=1+2"), "\"\"\"=1+2\"");
        assert_eq!(field(r#"{"a":1,"b":2}"#), r#""{""a"":1,""b"":2}""#);
    }

    #[test]
    fn bounds() {
        assert_eq!(bound("since", None).unwrap(), None);
        assert_eq!(bound("since", Some(" ")).unwrap(), None);
        assert_eq!(bound("since", Some("1000")).unwrap(), Some(1000));
        assert_eq!(
            bound("since", Some("2025-01-01")).unwrap(),
            Some(1_735_689_600_000)
        );
        assert_eq!(
            bound("since", Some("2025-01-01T01:00")).unwrap(),
            Some(1_735_693_200_000)
        );
        assert!(bound("since", Some("soon")).is_err());
    }
}

//! Site reports: `GET /api/sites`, the printable report of a period (`/sites/{id}/report`), its
//! CSV, and the review of a period by a manager of the site or an admin. The figures are
//! computed by `domain::device_days` from the readings' summaries and the alarms (so a purge of raw
//! readings changes nothing); days are the site's days.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use super::auth::{Admin, CurrentUser, PageUser};
use super::csv::{download, field};
use super::error::PageError;
use super::extract::{PagePath, PageQuery};
use super::flash::{set_flash, take_flash, Flash};
use super::form::FormData;
use super::layout::{render, Layout};
use super::state::AppState;
use super::view;
use crate::domain::{
    device_days, now_ms, parse_day, parse_time_zone, report_days, report_step, AlarmRow, DeviceDay,
    DeviceRow, ReportDay, Role, TemperatureUnit, User,
};
use crate::store::{Review, ReviewRow, SiteRow};

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SiteJson {
    site_id: i64,
    name: String,
    time_zone: String,
}

/// `GET /api/sites`: the sites the user may see, with their time zones.
#[utoipa::path(get, path = "/api/sites", tag = "sites", security(("session" = [])),
    responses(
        (status = 200, description = "The sites the user may see.", body = Vec<SiteJson>),
        (status = 401, description = "Not signed in: `unauthorized`.", body = super::error::ErrorBody),
        (status = 500, description = "A failure on our side: `internal_error`.", body = super::error::ErrorBody),
        (status = 503, description = "The database is unreachable: `unavailable`.", body = super::error::ErrorBody),
    ))]
pub async fn api_sites(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Vec<SiteJson>>, super::error::ApiError> {
    let scope = user.scope();
    let sites: Vec<SiteJson> = state
        .store
        .sites()
        .await?
        .into_iter()
        .filter(|s| scope.allows(Some(s.id)))
        .map(|s| SiteJson {
            site_id: s.id,
            time_zone: s
                .time_zone
                .unwrap_or_else(|| state.settings.time_zone_name.clone()),
            name: s.name,
        })
        .collect();
    Ok(Json(sites))
}

/// Who may mark a period of the site reviewed: admins and the site's managers.
pub fn may_review(user: &User, site_id: i64) -> bool {
    match user.role {
        Role::Admin => true,
        Role::Manager => user.site_ids.contains(&site_id),
        Role::Employee => false,
    }
}

#[derive(Deserialize, Default)]
pub struct ReportParams {
    from: Option<String>,
    to: Option<String>,
}

fn bad_period(message: impl Into<String>) -> PageError {
    PageError::new(StatusCode::BAD_REQUEST, "Bad report period", message)
}

/// A site the user may see, with its time zone: 404 otherwise, exactly like no site.
async fn site_for(
    state: &AppState,
    user: &User,
    site_id: i64,
) -> Result<(SiteRow, TimeZone), PageError> {
    if !user.scope().allows(Some(site_id)) {
        return Err(PageError::not_found());
    }
    let site = state
        .store
        .site(site_id)
        .await?
        .ok_or_else(PageError::not_found)?;
    let tz = match &site.time_zone {
        Some(name) => parse_time_zone(name).map_err(PageError::internal)?,
        None => state.settings.time_zone.clone(),
    };
    Ok((site, tz))
}

/// The period's days from the query, `from` and `to` both given as `YYYY-MM-DD`.
fn period(
    tz: &TimeZone,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Vec<ReportDay>, PageError> {
    let (Some(from), Some(to)) = (from, to) else {
        return Err(bad_period(
            "Give the period as from=YYYY-MM-DD and to=YYYY-MM-DD.",
        ));
    };
    let from = parse_day(from).map_err(bad_period)?;
    let to = parse_day(to).map_err(bad_period)?;
    report_days(tz, from, to).map_err(bad_period)
}

/// A time in the site's zone, to the minute, with the zone's abbreviation.
fn local(tz: &TimeZone, ms: i64) -> String {
    Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M %Z")
                .to_string()
        })
        .unwrap_or_default()
}

/// A temperature (°C) in the reader's unit, to a tenth, without the symbol (the column says it).
fn degrees(v: Option<f64>, unit: TemperatureUnit) -> String {
    v.map(|v| format!("{:.1}", unit.from_celsius(v)))
        .unwrap_or_default()
}

fn minutes(m: f64) -> String {
    format!("{}", m.round() as i64)
}

fn duration(ms: i64) -> String {
    let m = ms / 60_000;
    if m >= 60 {
        format!("{} h {:02} min", m / 60, m % 60)
    } else {
        format!("{m} min")
    }
}

/// One row of the report's table: a device, a day, a probe.
pub struct DayLine {
    pub device: String,
    pub date: String,
    pub hours: i64,
    pub probe: i64,
    pub min: String,
    pub max: String,
    pub mean: String,
    pub received: i64,
    pub expected: i64,
    pub minutes_out: String,
    pub range: String,
    pub in_range: bool,
}

/// One alarm of the period.
pub struct AlarmLine {
    pub id: i64,
    pub device: String,
    pub what: String,
    pub start: String,
    pub end: String,
    pub duration: String,
    pub peak: String,
    pub acknowledged_by: String,
    pub acknowledged_at: String,
    pub action: String,
}

pub struct ReviewLine {
    pub by: String,
    pub at: String,
    pub period: String,
    pub changed_after: bool,
}

/// The report's figures, for the page and the CSV alike.
pub struct Report {
    pub site: SiteRow,
    pub time_zone: String,
    pub from: String,
    pub to: String,
    pub generated: String,
    pub devices: usize,
    pub days_in_range: usize,
    pub device_days: usize,
    pub excursions: usize,
    pub unacknowledged: usize,
    pub lines: Vec<DayLine>,
    pub alarms: Vec<AlarmLine>,
    pub reviews: Vec<ReviewLine>,
    /// The reader's: every temperature of the report is in it.
    pub unit: TemperatureUnit,
}

fn range_text(rule: Option<(Option<f64>, Option<f64>)>, unit: TemperatureUnit) -> String {
    let (u, t) = (unit.symbol(), |v: f64| unit.field(v));
    match rule {
        None => "no rule".into(),
        Some((Some(a), Some(b))) => format!("{} to {} {u}", t(a), t(b)),
        Some((Some(a), None)) => format!("≥ {} {u}", t(a)),
        Some((None, Some(b))) => format!("≤ {} {u}", t(b)),
        Some((None, None)) => "no rule".into(),
    }
}

fn alarm_line(
    tz: &TimeZone,
    a: &AlarmRow,
    device: &DeviceRow,
    now: i64,
    unit: TemperatureUnit,
) -> AlarmLine {
    let what = match (a.kind.as_str(), a.probe) {
        ("threshold", p) => format!("{} probe {p} outside range", a.quantity),
        (kind, _) => view::alarm_kind_label(kind).to_string(),
    };
    AlarmLine {
        id: a.id,
        device: device.name.clone(),
        what,
        start: local(tz, a.started_ms),
        end: a
            .ended_ms
            .map(|e| local(tz, e))
            .unwrap_or_else(|| "ongoing".into()),
        duration: duration(a.ended_ms.unwrap_or(now) - a.started_ms),
        // The peak column is a temperature's: other alarms (battery, offline) leave it empty.
        peak: match a.quantity.as_str() {
            "temperature" => degrees(a.peak.or(a.value), unit),
            _ => String::new(),
        },
        acknowledged_by: a.acknowledged_by.clone().unwrap_or_default(),
        acknowledged_at: a.acknowledged_ms.map(|t| local(tz, t)).unwrap_or_default(),
        action: a.comment.clone().unwrap_or_default(),
    }
}

/// Reads and computes the report of the site for the days.
async fn build(
    state: &AppState,
    site: SiteRow,
    tz: &TimeZone,
    days: &[ReportDay],
    unit: TemperatureUnit,
) -> Result<Report, PageError> {
    let (start, end) = (days[0].start_ms, days[days.len() - 1].end_ms);
    let store = &state.store;
    let devices = store
        .devices(&crate::domain::Scope::Sites(vec![site.id]))
        .await?;
    let alarms = store.site_alarms(site.id, start, end).await?;
    let reviews = store.reviews(site.id, start, end).await?;
    let now = now_ms();
    let step = report_step(days);
    let mut lines = Vec::new();
    let (mut days_in_range, mut device_day_count) = (0, 0);
    for d in &devices {
        let rules = store.rules(d.id).await?;
        let buckets = store.temperature_buckets(d.id, start, end, step).await?;
        let interval = d
            .report_interval_s
            .unwrap_or(state.settings.report_interval_s);
        let rows: Vec<DeviceDay> =
            device_days(d.id, days, &buckets, &alarms, &rules, interval, now);
        for (row, day) in rows.iter().zip(days) {
            device_day_count += 1;
            if row.probes.iter().all(|p| p.in_range()) {
                days_in_range += 1;
            }
            for p in &row.probes {
                lines.push(DayLine {
                    device: d.name.clone(),
                    date: row.date.to_string(),
                    hours: day.length_ms() / 3_600_000,
                    probe: p.probe,
                    min: degrees(p.min, unit),
                    max: degrees(p.max, unit),
                    mean: degrees(p.mean, unit),
                    received: p.received,
                    expected: p.expected,
                    minutes_out: minutes(p.minutes_out),
                    range: range_text(p.rule, unit),
                    in_range: p.in_range(),
                });
            }
        }
    }
    let alarm_lines: Vec<AlarmLine> = alarms
        .iter()
        .filter_map(|a| {
            let d = devices.iter().find(|d| d.id == a.device_id)?;
            Some(alarm_line(tz, a, d, now, unit))
        })
        .collect();
    Ok(Report {
        time_zone: tz.iana_name().unwrap_or("UTC").to_string(),
        from: days[0].date.to_string(),
        to: days[days.len() - 1].date.to_string(),
        generated: local(tz, now),
        devices: devices.len(),
        days_in_range,
        device_days: device_day_count,
        excursions: alarms.iter().filter(|a| a.kind == "threshold").count(),
        unacknowledged: alarms
            .iter()
            .filter(|a| a.acknowledged_ms.is_none())
            .count(),
        lines,
        alarms: alarm_lines,
        reviews: reviews
            .iter()
            .map(|r: &Review| ReviewLine {
                by: r.row.reviewed_by.clone(),
                at: local(tz, r.row.reviewed_ms),
                period: format!("{} to {}", r.row.from_day, r.row.to_day),
                changed_after: r.changed_after,
            })
            .collect(),
        site,
        unit,
    })
}

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage {
    layout: Layout,
    report: Report,
    may_review: bool,
    flash: Option<Flash>,
}

pub async fn page(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    session: Session,
    PagePath(site_id): PagePath<i64>,
    PageQuery(p): PageQuery<ReportParams>,
) -> Result<Response, PageError> {
    let (site, tz) = site_for(&state, &user, site_id).await?;
    let days = period(&tz, p.from.as_deref(), p.to.as_deref())?;
    let report = build(&state, site, &tz, &days, user.unit).await?;
    let title = format!("Report {}", report.site.name);
    Ok(render(&ReportPage {
        layout: Layout::signed_in(&user, &session, &title).await?,
        may_review: may_review(&user, site_id),
        flash: take_flash(&session).await,
        report,
    }))
}

pub async fn csv(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    PagePath(site_id): PagePath<i64>,
    PageQuery(p): PageQuery<ReportParams>,
) -> Result<Response, PageError> {
    let (site, tz) = site_for(&state, &user, site_id).await?;
    let days = period(&tz, p.from.as_deref(), p.to.as_deref())?;
    let r = build(&state, site, &tz, &days, user.unit).await?;
    // Temperature columns say their unit: min_c … or min_f ….
    let u = r.unit.code().to_ascii_lowercase();
    let mut out = format!(
        "section,site,device,date,hours,probe,min_{u},max_{u},mean_{u},received,expected,\
         minutes_out_of_range,rule,alarm_id,alarm,start,end,duration,peak_{u},acknowledged_by,\
         acknowledged_at,corrective_action\r\n",
    );
    let row = |out: &mut String, cells: &[String]| {
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    };
    let blank = || String::new();
    for l in &r.lines {
        let mut cells = vec![
            field("day"),
            field(&r.site.name),
            field(&l.device),
            l.date.clone(),
            l.hours.to_string(),
            l.probe.to_string(),
            l.min.clone(),
            l.max.clone(),
            l.mean.clone(),
            l.received.to_string(),
            l.expected.to_string(),
            l.minutes_out.clone(),
            field(&l.range),
        ];
        cells.extend(std::iter::repeat_with(blank).take(9));
        row(&mut out, &cells);
    }
    for a in &r.alarms {
        let mut cells = vec![field("alarm"), field(&r.site.name), field(&a.device)];
        cells.extend(std::iter::repeat_with(blank).take(10));
        cells.extend([
            a.id.to_string(),
            field(&a.what),
            field(&a.start),
            field(&a.end),
            field(&a.duration),
            a.peak.clone(),
            field(&a.acknowledged_by),
            field(&a.acknowledged_at),
            field(&a.action),
        ]);
        row(&mut out, &cells);
    }
    let name = format!("sensorcast-report-{}-{}-{}.csv", r.site.id, r.from, r.to);
    Ok(download(&name, out))
}

/// `POST /sites/{id}/report/review` (form: from, to): marks the period reviewed.
pub async fn review(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    session: Session,
    PagePath(site_id): PagePath<i64>,
    Extension(form): Extension<FormData>,
) -> Result<Response, PageError> {
    let (site, tz) = site_for(&state, &user, site_id).await?;
    if !may_review(&user, site_id) {
        return Err(PageError::forbidden(
            "Only admins and the site's managers may mark a report reviewed.",
        ));
    }
    let days = period(&tz, form.get("from"), form.get("to"))?;
    let (from, to) = (
        days[0].date.to_string(),
        days[days.len() - 1].date.to_string(),
    );
    let review = ReviewRow {
        id: 0,
        site_id,
        from_day: from.clone(),
        to_day: to.clone(),
        start_ms: days[0].start_ms,
        end_ms: days[days.len() - 1].end_ms,
        reviewed_by: user.email.clone(),
        reviewed_ms: now_ms(),
    };
    state.store.review_report(&review, &site.name).await?;
    set_flash(&session, true, format!("Marked {from} to {to} reviewed.")).await;
    let to_page = format!("/sites/{site_id}/report?from={from}&to={to}");
    Ok(Redirect::to(&to_page).into_response())
}

/// The first day of this month and today, in `tz` (`YYYY-MM-DD`).
pub fn this_month(tz: &TimeZone) -> (String, String) {
    let today = Timestamp::now().to_zoned(tz.clone()).date();
    (today.first_of_month().to_string(), today.to_string())
}

/// `POST /admin/sites/{id}/timezone` (form: time_zone, empty for the server's): admins only.
pub async fn set_time_zone(
    State(state): State<AppState>,
    Admin(user): Admin,
    session: Session,
    PagePath(site_id): PagePath<i64>,
    Extension(form): Extension<FormData>,
) -> Result<Response, PageError> {
    let site = state
        .store
        .site(site_id)
        .await?
        .ok_or_else(PageError::not_found)?;
    let wanted = form.text("time_zone").map(str::trim);
    let message = match wanted {
        Some(name) => match parse_time_zone(name) {
            Ok(_) => {
                state
                    .store
                    .set_site_time_zone(&site.name, Some(name), &user.email)
                    .await?;
                (true, format!("{} now reports in {name}.", site.name))
            }
            Err(e) => (false, format!("Not saved: {e}.")),
        },
        None => {
            state
                .store
                .set_site_time_zone(&site.name, None, &user.email)
                .await?;
            let default = &state.settings.time_zone_name;
            (
                true,
                format!(
                    "{} now reports in the server's time zone ({default}).",
                    site.name
                ),
            )
        }
    };
    tracing::info!(admin = user.id, site = site_id, "site time zone set");
    set_flash(&session, message.0, message.1).await;
    Ok(Redirect::to("/admin#sites").into_response())
}

/// A link to this month's report of one of the user's sites (the dashboards show them).
pub struct ReportLink {
    pub name: String,
    pub href: String,
}

pub async fn report_links(
    state: &AppState,
    user: &User,
) -> Result<Vec<ReportLink>, crate::store::StoreError> {
    let scope = user.scope();
    let mut links = Vec::new();
    for s in state.store.sites().await? {
        if !scope.allows(Some(s.id)) {
            continue;
        }
        let tz = s
            .time_zone
            .as_deref()
            .and_then(|n| parse_time_zone(n).ok())
            .unwrap_or_else(|| state.settings.time_zone.clone());
        let (from, to) = this_month(&tz);
        links.push(ReportLink {
            href: format!("/sites/{}/report?from={from}&to={to}", s.id),
            name: s.name,
        });
    }
    Ok(links)
}

//! The audit trail for admins: `GET /api/audit`, the page with filters, and its CSV. Read
//! only: there is no route (and no store method) that changes or deletes a row.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use tower_sessions::Session;

use super::api::{parse_limit, parse_time};
use super::auth::{Admin, ApiAdmin};
use super::csv::{download, field};
use super::error::SignedInFailures;
use super::error::{ApiError, ErrorBody, PageError};
use super::extract::{ApiQuery, PageQuery};
use super::layout::{render, Layout};
use super::state::AppState;
use super::view;
use crate::domain::{action, AuditJson, AuditRow};
use crate::store::AuditFilter;

/// Most rows a CSV export holds.
const EXPORT_MAX_ROWS: i64 = 100_000;

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// From this time on: epoch milliseconds, an RFC 3339 time, or a day (`2026-01-31`, UTC).
    #[param(value_type = Option<super::openapi::InstantOrDay>)]
    since: Option<String>,
    /// Up to this time: epoch milliseconds, an RFC 3339 time, or a day (its end, UTC).
    #[param(value_type = Option<super::openapi::InstantOrDay>)]
    until: Option<String>,
    /// Only rows of this action (`rule_set`, `sign_in`, …).
    action: Option<String>,
    /// Most rows answered, newest first (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 10000)]
    limit: Option<String>,
}

fn filter(p: &AuditParams, max: Option<i64>) -> Result<AuditFilter, ApiError> {
    let blank = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let time = |name, v: &Option<String>| {
        blank(v)
            .map(|s| day_or_time(name, &s, name == "until"))
            .transpose()
    };
    let action = blank(&p.action);
    if let Some(a) = &action {
        if !action::ALL.contains(&a.as_str()) {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("action must be one of {}.", action::ALL.join(", ")),
            ));
        }
    }
    Ok(AuditFilter {
        action,
        since_ms: time("since", &p.since)?.unwrap_or(i64::MIN),
        until_ms: time("until", &p.until)?.unwrap_or(i64::MAX),
        limit: match max {
            Some(max) => max,
            None => parse_limit(p.limit.as_deref())?,
        },
    })
}

/// A date from the page's date inputs (the whole day, UTC), or a time as the API takes it.
fn day_or_time(name: &str, s: &str, end_of_day: bool) -> Result<i64, ApiError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    match time::Date::parse(s, &format) {
        Ok(day) => {
            let start = day.midnight().assume_utc().unix_timestamp() * 1000;
            Ok(if end_of_day {
                start + view::DAY_MS - 1
            } else {
                start
            })
        }
        Err(_) => parse_time(name, s),
    }
}

/// `GET /api/audit`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct AuditList<'a> {
    entries: Vec<AuditJson<'a>>,
}

/// The audit trail (admins).
#[utoipa::path(get, path = "/api/audit", tag = "audit", security(("session" = [])),
    params(AuditParams),
    responses(
        (status = 200, description = "Rows, newest first.", body = AuditList),
        (status = 400, description = "A bad query value: `invalid_query`.", body = ErrorBody),
        (status = 403, description = "Not an admin: `forbidden`.", body = ErrorBody),
        SignedInFailures,
    ))]
pub async fn api(
    State(state): State<AppState>,
    _admin: ApiAdmin,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> Result<Response, ApiError> {
    use axum::response::IntoResponse;
    let rows = state.store.audit_trail(&filter(&p, None)?).await?;
    let entries = rows.iter().map(AuditJson::of).collect();
    Ok(Json(AuditList { entries }).into_response())
}

struct AuditLine {
    at: i64,
    actor: String,
    action: String,
    target: String,
    change: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    lines: Vec<AuditLine>,
    actions: &'static [&'static str],
    action: String,
    since: String,
    until: String,
    query: String,
}

/// The before → after of a row, short enough for a table cell.
fn change(r: &AuditRow) -> String {
    match (&r.before, &r.after) {
        (Some(b), Some(a)) => format!("{b} → {a}"),
        (None, Some(a)) => a.clone(),
        (Some(b), None) => format!("{b} → (none)"),
        (None, None) => String::new(),
    }
}

pub async fn page(
    State(state): State<AppState>,
    Admin(user): Admin,
    session: Session,
    PageQuery(p): PageQuery<AuditParams>,
) -> Result<Response, PageError> {
    let f = filter(&p, Some(500))?;
    let rows = state.store.audit_trail(&f).await?;
    let lines = rows
        .iter()
        .map(|r| AuditLine {
            at: r.at_ms,
            actor: r.actor.clone(),
            action: r.action.clone(),
            target: r.target.clone(),
            change: change(r),
        })
        .collect();
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let query = serde_urlencoded(&[
        ("action", text(&p.action)),
        ("since", text(&p.since)),
        ("until", text(&p.until)),
    ]);
    Ok(render(&AuditPage {
        layout: Layout::signed_in(&user, &session, "Audit trail").await?,
        lines,
        actions: action::ALL,
        action: text(&p.action),
        since: text(&p.since),
        until: text(&p.until),
        query,
    }))
}

fn serde_urlencoded(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", super::auth::urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub async fn csv(
    State(state): State<AppState>,
    _admin: Admin,
    PageQuery(p): PageQuery<AuditParams>,
) -> Result<Response, PageError> {
    let rows = state
        .store
        .audit_trail(&filter(&p, Some(EXPORT_MAX_ROWS))?)
        .await?;
    let mut out = String::from("id,at,actor,action,target,before,after\r\n");
    for r in &rows {
        let cells = [
            r.id.to_string(),
            field(&view::iso(r.at_ms)),
            field(&r.actor),
            field(&r.action),
            field(&r.target),
            field(r.before.as_deref().unwrap_or("")),
            field(r.after.as_deref().unwrap_or("")),
        ];
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    Ok(download("sensorcast-audit.csv", out))
}

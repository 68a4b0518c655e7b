//! Alarms and rules over JSON: list, acknowledge, read and replace a device's rules. Changes
//! go through the writer, so they are in the event log and the audit trail in one transaction.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::api::{parse_limit, parse_time};
use super::auth::CurrentUser;
use super::error::{ApiError, ErrorBody};
use super::error::{JsonBodyFailures, SignedInFailures};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::state::AppState;
use crate::domain::{
    check_comment, check_rules, AlarmJson, AlarmRow, DeviceRow, Role, Rule, RuleJson, User,
    MAX_COMMENT_CHARS,
};
use crate::store::{AlarmFilter, Work};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlarmParams {
    /// `true`: open alarms only (active or not yet acknowledged).
    #[param(value_type = Option<bool>)]
    open: Option<String>,
    /// Raised from this time on: epoch milliseconds or an RFC 3339 time.
    #[param(value_type = Option<super::openapi::Instant>)]
    since: Option<String>,
    /// Raised up to this time: epoch milliseconds or an RFC 3339 time.
    #[param(value_type = Option<super::openapi::Instant>)]
    until: Option<String>,
    /// Most alarms answered, newest first (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 10000)]
    limit: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AlarmList<'a> {
    alarms: Vec<AlarmJson<'a>>,
}

/// The filter of `GET /api/alarms` (and the pages): `open=true` for open alarms only.
pub fn alarm_filter(p: &AlarmParams) -> Result<AlarmFilter, ApiError> {
    let open_only = match p.open.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "open must be true or false.",
            ))
        }
    };
    let time = |name, v: &Option<String>| v.as_deref().map(|s| parse_time(name, s)).transpose();
    Ok(AlarmFilter {
        open_only,
        device_id: None,
        since_ms: time("since", &p.since)?.unwrap_or(i64::MIN),
        until_ms: time("until", &p.until)?.unwrap_or(i64::MAX),
        limit: parse_limit(p.limit.as_deref())?,
    })
}

/// Alarms the user may see, newest first.
#[utoipa::path(get, path = "/api/alarms", tag = "alarms", security(("session" = [])),
    params(AlarmParams),
    responses(
        (status = 200, description = "The alarms.", body = AlarmList),
        (status = 400, description = "A bad query value: `invalid_query`.", body = ErrorBody),
        SignedInFailures,
    ))]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(p): ApiQuery<AlarmParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let filter = alarm_filter(&p)?;
    let rows = state.store.alarms(&user.scope(), &filter).await?;
    Ok(Json(list_json(&rows)))
}

pub fn list_json(rows: &[(AlarmRow, DeviceRow)]) -> serde_json::Value {
    let alarms = rows.iter().map(|(a, d)| AlarmJson::of(a, d)).collect();
    serde_json::to_value(AlarmList { alarms }).unwrap_or_default()
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    /// The corrective action taken, 1–1000 characters (required, though the field may be
    /// missing: that is answered `comment_required`).
    comment: Option<String>,
}

/// Acknowledges an alarm with the corrective action taken.
#[utoipa::path(post, path = "/api/alarms/{alarm_id}/acknowledge", tag = "alarms",
    security(("session" = [], "csrf" = [])),
    params(("alarm_id" = i64, Path, description = "The alarm's `alarmId`.")),
    request_body(content = AckBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The alarm after the change.", body = AlarmJson),
        (status = 400, description = "`comment_required`, `invalid_json`, `invalid_path`.", body = ErrorBody),
        (status = 403, description = "Cross-site, or without the session's X-CSRF-Token: `csrf_failed`.", body = ErrorBody),
        (status = 404, description = "No such alarm the user may see: `not_found`.", body = ErrorBody),
        (status = 409, description = "Acknowledged before: `already_acknowledged`.", body = ErrorBody),
        JsonBodyFailures,
        SignedInFailures,
    ))]
pub async fn acknowledge(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(alarm_id): ApiPath<i64>,
    ApiJson(body): ApiJson<AckBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let comment = body.comment.unwrap_or_default();
    let alarm = acknowledge_as(&state, &user, alarm_id, &comment).await?;
    Ok(Json(alarm))
}

/// Acknowledges for this user (pages and JSON alike); the alarm's JSON after the change.
pub async fn acknowledge_as(
    state: &AppState,
    user: &User,
    alarm_id: i64,
    comment: &str,
) -> Result<serde_json::Value, ApiError> {
    let Some(comment) = check_comment(comment) else {
        return Err(ApiError::bad_request(
            "comment_required",
            format!("Write the corrective action taken (1–{MAX_COMMENT_CHARS} characters)."),
        ));
    };
    let work = Work::Acknowledge {
        alarm_id,
        scope: user.scope(),
        by: user.email.clone(),
        comment: comment.to_string(),
    };
    state.writer.submit(work).await?;
    let (a, d) = state
        .store
        .alarm(alarm_id, &user.scope())
        .await?
        .ok_or_else(|| ApiError::not_found("alarm"))?;
    Ok(serde_json::to_value(AlarmJson::of(&a, &d)).unwrap_or_default())
}

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesBody {
    rules: Vec<RuleJson>,
}

/// A device's alarm rules.
#[utoipa::path(get, path = "/api/devices/{device_id}/rules", tag = "alarms",
    security(("session" = [])),
    params(("device_id" = String, Path, description = "Milesight's device id or the devEUI.")),
    responses(
        (status = 200, description = "The device's rules.", body = RulesBody),
        (status = 404, description = "No such device the user may see: `not_found`.", body = ErrorBody),
        SignedInFailures,
    ))]
pub async fn rules(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(device_id): ApiPath<String>,
) -> Result<Json<RulesBody>, ApiError> {
    let device = state
        .store
        .device(&device_id, &user.scope())
        .await?
        .ok_or_else(|| ApiError::not_found("device"))?;
    let rules = state.store.rules(device.id).await?;
    Ok(Json(RulesBody {
        rules: rules.iter().map(RuleJson::from).collect(),
    }))
}

/// Replaces a device's alarm rules (admins, and managers of the device's site).
#[utoipa::path(put, path = "/api/devices/{device_id}/rules", tag = "alarms",
    security(("session" = [], "csrf" = [])),
    params(("device_id" = String, Path, description = "Milesight's device id or the devEUI.")),
    request_body(content = RulesBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The rules now in force.", body = RulesBody),
        (status = 400, description = "A bad rule: `invalid_rule` naming the field; `invalid_json`.", body = ErrorBody),
        (status = 403, description = "Not allowed to edit rules: `forbidden`; cross-site, or without the session's X-CSRF-Token: `csrf_failed`.", body = ErrorBody),
        (status = 404, description = "No such device the user may see: `not_found`.", body = ErrorBody),
        JsonBodyFailures,
        SignedInFailures,
    ))]
pub async fn put_rules(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(device_id): ApiPath<String>,
    ApiJson(body): ApiJson<RulesBody>,
) -> Result<Json<RulesBody>, ApiError> {
    let device = state
        .store
        .device(&device_id, &user.scope())
        .await?
        .ok_or_else(|| ApiError::not_found("device"))?;
    let rules = check_rules(&body.rules).map_err(|e| {
        ApiError::bad_request("invalid_rule", format!("{}: {}", e.field, e.message))
    })?;
    set_rules_as(&state, &user, &device, rules.clone()).await?;
    Ok(Json(RulesBody {
        rules: rules.iter().map(RuleJson::from).collect(),
    }))
}

/// Who may edit a device's rules: admins, and managers of its site.
pub fn may_edit_rules(user: &User, device: &DeviceRow) -> bool {
    match user.role {
        Role::Admin => true,
        Role::Manager => device.site_id.is_some_and(|s| user.site_ids.contains(&s)),
        Role::Employee => false,
    }
}

/// Replaces the rules for this user, who must be allowed to (403 otherwise).
pub async fn set_rules_as(
    state: &AppState,
    user: &User,
    device: &DeviceRow,
    rules: Vec<Rule>,
) -> Result<(), ApiError> {
    if !may_edit_rules(user, device) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Only admins and the site's managers may change rules.",
        ));
    }
    let work = Work::SetRules {
        device_id: device.id,
        rules,
        by: user.email.clone(),
    };
    state.writer.submit(work).await?;
    Ok(())
}

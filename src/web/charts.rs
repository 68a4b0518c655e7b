//! `GET /api/devices/{deviceId}/summaries?since=&until=`: a device's readings over a long range
//! as min / max / mean / count per step, read from the summaries (kept after a purge). A week
//! or more is merged into steps of at least an hour (`domain::chart_step`); the JSON stays in °C.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::api::parse_time;
use super::auth::CurrentUser;
use super::error::SignedInFailures;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiPath, ApiQuery};
use super::state::AppState;
use crate::domain::{bucket_of, chart_step, now_ms, ChartBucket};

/// The range when none is given, and the longest accepted.
const DEFAULT_RANGE_MS: i64 = 30 * 86_400_000;
const MAX_RANGE_MS: i64 = 400 * 86_400_000;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryParams {
    /// From this time on: epoch milliseconds or an RFC 3339 time (default: 30 days before `until`).
    #[param(value_type = Option<super::openapi::Instant>)]
    since: Option<String>,
    /// Up to this time: epoch milliseconds or an RFC 3339 time (default: now).
    #[param(value_type = Option<super::openapi::Instant>)]
    until: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PointJson {
    quantity: String,
    probe: i64,
    start_ms: i64,
    min: f64,
    max: f64,
    mean: f64,
    count: i64,
}

impl From<ChartBucket> for PointJson {
    fn from(b: ChartBucket) -> Self {
        PointJson {
            mean: b.sum_value / b.value_count.max(1) as f64,
            quantity: b.quantity,
            probe: b.probe,
            start_ms: b.start_ms,
            min: b.min_value,
            max: b.max_value,
            count: b.value_count,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SummariesJson {
    device_id: String,
    since_ms: i64,
    until_ms: i64,
    step_ms: i64,
    points: Vec<PointJson>,
}

/// A device's readings over a long range, per step.
#[utoipa::path(get, path = "/api/devices/{device_id}/summaries", tag = "devices",
    security(("session" = [])),
    params(("device_id" = String, Path, description = "Milesight's device id or the devEUI."), SummaryParams),
    responses(
        (status = 200, description = "min / max / mean / count per step.", body = SummariesJson),
        (status = 400, description = "A bad range: `invalid_query`.", body = ErrorBody),
        (status = 404, description = "No such device the user may see: `not_found`.", body = ErrorBody),
        SignedInFailures,
    ))]
pub async fn summaries(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(device_id): ApiPath<String>,
    ApiQuery(p): ApiQuery<SummaryParams>,
) -> Result<Json<SummariesJson>, ApiError> {
    let until = match p.until.as_deref() {
        Some(s) => parse_time("until", s)?,
        None => now_ms(),
    };
    let since = match p.since.as_deref() {
        Some(s) => parse_time("since", s)?,
        None => until.saturating_sub(DEFAULT_RANGE_MS),
    };
    // Checked: a stranger's `since` of -2^63 must not overflow the span.
    let span = until.checked_sub(since).unwrap_or(i64::MAX);
    if since >= until || span > MAX_RANGE_MS {
        return Err(ApiError::bad_request(
            "invalid_query",
            "since must be before until, at most 400 days apart.",
        ));
    }
    let device = state
        .store
        .device(&device_id, &user.scope())
        .await?
        .ok_or_else(|| ApiError::not_found("device"))?;
    let step = chart_step(until - since);
    // Buckets are whole: the one holding `since` is included.
    let rows = state
        .store
        .chart_buckets(device.id, bucket_of(since), until, step)
        .await?;
    Ok(Json(SummariesJson {
        device_id: device.public_id(),
        since_ms: since,
        until_ms: until,
        step_ms: step,
        points: rows.into_iter().map(PointJson::from).collect(),
    }))
}

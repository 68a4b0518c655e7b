//! JSON read API, scoped to what the signed-in user may see.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::auth::ApiAdmin;
use super::auth::CurrentUser;
use super::error::SignedInFailures;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiPath, ApiQuery};
use super::state::AppState;
use crate::domain::{DeviceRow, ReadingRow, Role};
use crate::store::TelemetryQuery;

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 10_000;

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceJson {
    device_id: String,
    #[serde(flatten)]
    row: DeviceRow,
}

impl From<DeviceRow> for DeviceJson {
    fn from(row: DeviceRow) -> Self {
        DeviceJson {
            device_id: row.public_id(),
            row,
        }
    }
}

/// The devices the user may see.
#[utoipa::path(get, path = "/api/devices", tag = "devices", security(("session" = [])),
    responses(
        (status = 200, description = "The devices the user may see.", body = Vec<DeviceJson>),
        SignedInFailures,
    ))]
pub async fn devices(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Vec<DeviceJson>>, ApiError> {
    let scope = user.scope();
    let rows = state.store.devices(&scope).await?;
    Ok(Json(rows.into_iter().map(DeviceJson::from).collect()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TelemetryParams {
    /// From this time on: epoch milliseconds or an RFC 3339 time.
    #[param(value_type = Option<super::openapi::Instant>)]
    since: Option<String>,
    /// Up to this time: epoch milliseconds or an RFC 3339 time.
    #[param(value_type = Option<super::openapi::Instant>)]
    until: Option<String>,
    /// Most readings answered, newest first (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 10000)]
    limit: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadingJson {
    #[serde(flatten)]
    row: ReadingRow,
    #[serde(skip_serializing_if = "Option::is_none")]
    alarms: Option<Value>,
    /// The delivery as received: admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<Value>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TelemetryJson {
    device_id: String,
    readings: Vec<ReadingJson>,
}

/// A device's readings.
#[utoipa::path(get, path = "/api/devices/{device_id}/telemetry", tag = "devices",
    security(("session" = [])),
    params(("device_id" = String, Path, description = "Milesight's device id or the devEUI."), TelemetryParams),
    responses(
        (status = 200, description = "The device's readings, newest first.", body = TelemetryJson),
        (status = 400, description = "A bad query value: `invalid_query`, `invalid_path`.", body = ErrorBody),
        (status = 404, description = "No such device the user may see: `not_found`.", body = ErrorBody),
        SignedInFailures,
    ))]
pub async fn telemetry(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(device_id): ApiPath<String>,
    ApiQuery(p): ApiQuery<TelemetryParams>,
) -> Result<Json<TelemetryJson>, ApiError> {
    let query = TelemetryQuery {
        since_ms: p
            .since
            .as_deref()
            .map(|s| parse_time("since", s))
            .transpose()?,
        until_ms: p
            .until
            .as_deref()
            .map(|s| parse_time("until", s))
            .transpose()?,
        limit: parse_limit(p.limit.as_deref())?,
    };
    let scope = user.scope();
    let device = state
        .store
        .device(&device_id, &scope)
        .await?
        .ok_or_else(|| ApiError::not_found("device"))?;
    let rows = state.store.telemetry(device.id, query).await?;
    let with_raw = user.role == Role::Admin;
    let readings = rows
        .into_iter()
        .map(|row| ReadingJson {
            alarms: row
                .alarms
                .as_deref()
                .and_then(|a| serde_json::from_str(a).ok()),
            raw: with_raw
                .then(|| serde_json::from_str(&row.raw).ok())
                .flatten(),
            row,
        })
        .collect();
    Ok(Json(TelemetryJson {
        device_id: device.public_id(),
        readings,
    }))
}

/// The times a query may name: RFC 3339's years 0000 to 9999, in epoch milliseconds. Beyond
/// them the arithmetic on a range (a default span, a bucket's start) could overflow.
pub const EARLIEST_MS: i64 = -62_167_219_200_000;
pub const LATEST_MS: i64 = 253_402_300_799_999;

/// Epoch milliseconds or an RFC 3339 time, within years 0000 to 9999.
pub(super) fn parse_time(name: &str, s: &str) -> Result<i64, ApiError> {
    let ms = match s.trim().parse::<i64>() {
        Ok(ms) => Some(ms),
        Err(_) => OffsetDateTime::parse(s.trim(), &Rfc3339)
            .ok()
            .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()),
    };
    ms.filter(|ms| (EARLIEST_MS..=LATEST_MS).contains(ms))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!(
                    "{name} must be epoch milliseconds or an RFC 3339 time (years 0000 to 9999)."
                ),
            )
        })
}

pub(super) fn parse_limit(s: Option<&str>) -> Result<i64, ApiError> {
    match s {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => match s.trim().parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(
                "invalid_query",
                format!("limit must be between 1 and {MAX_LIMIT}."),
            )),
        },
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    email: String,
    role: Role,
}

/// Who is signed in: the page script asks when its stream is refused, to tell a sign-out
/// from a server that is away.
#[utoipa::path(get, path = "/api/me", tag = "session", security(("session" = [])),
    responses(
        (status = 200, description = "The signed-in user.", body = Me),
        SignedInFailures,
    ))]
pub async fn me(CurrentUser(user): CurrentUser) -> Json<Me> {
    Json(Me {
        email: user.email,
        role: user.role,
    })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RealtimeStats {
    clients: usize,
    /// Open streams per role (`admin`, `manager`, `employee`).
    #[serde(rename = "clientsByRole")]
    #[schema(value_type = std::collections::BTreeMap<String, u64>)]
    clients_by_role: serde_json::Map<String, Value>,
    #[serde(rename = "eventsPublished")]
    events_published: u64,
    #[serde(rename = "framesSent")]
    frames_sent: u64,
    replays: u64,
    #[serde(rename = "replayedEvents")]
    replayed_events: u64,
    #[serde(rename = "laggedTimes")]
    lagged: u64,
    #[serde(rename = "laggingClients")]
    lagging_now: usize,
    #[serde(rename = "lastEventId")]
    last_event_id: i64,
}

/// The event streams' figures, for operators.
#[utoipa::path(get, path = "/api/realtime/stats", tag = "realtime", security(("session" = [])),
    responses(
        (status = 200, description = "Stream figures.", body = RealtimeStats),
        (status = 403, description = "Not an admin: `forbidden`.", body = ErrorBody),
        SignedInFailures,
    ))]
pub async fn realtime_stats(
    State(state): State<AppState>,
    _admin: ApiAdmin,
) -> Result<Json<RealtimeStats>, ApiError> {
    let s = &state.hub.stats;
    let mut by_role = serde_json::Map::new();
    for role in [Role::Admin, Role::Manager, Role::Employee] {
        by_role.insert(role.as_str().into(), s.role_slot(role).get().into());
    }
    Ok(Json(RealtimeStats {
        clients: s.total_clients(),
        clients_by_role: by_role,
        events_published: s.events_published.get(),
        frames_sent: s.frames_sent.get(),
        replays: s.replays.get(),
        replayed_events: s.replayed_events.get(),
        lagged: s.lagged.get(),
        lagging_now: s.lagging_now.get().max(0) as usize,
        last_event_id: state.hub.last_id(),
    }))
}

//! Device commands over JSON: ask for one (admins, and managers of the device's site), list a
//! device's commands (anyone who may see it). A command is checked and encoded here, stored
//! pending through the writer (audited, with its `command_status` event), and then sent by the
//! dispatcher (`crate::downlink`); its later statuses come as `command_status` events too.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use tower_sessions::Session;

use super::auth::{CurrentUser, PageUser};
use super::error::{ApiError, ErrorBody, PageError};
use super::error::{JsonBodyFailures, SignedInFailures};
use super::extract::{ApiJson, ApiPath, PagePath};
use super::flash::set_flash;
use super::form::FormData;
use super::state::AppState;
use crate::domain::{Command, CommandJson, DeviceRow, Role, TemperatureUnit, User};
use crate::ingest::ts302::downlink;
use crate::store::Work;

/// Most commands a list shows.
const LIST_LIMIT: i64 = 200;

/// Who may send commands to a device: admins, and managers of its site.
pub fn may_command(user: &User, device: &DeviceRow) -> bool {
    match user.role {
        Role::Admin => true,
        Role::Manager => device.site_id.is_some_and(|s| user.site_ids.contains(&s)),
        Role::Employee => false,
    }
}

async fn visible_device(state: &AppState, user: &User, id: &str) -> Result<DeviceRow, ApiError> {
    state
        .store
        .device(id, &user.scope())
        .await?
        .ok_or_else(|| ApiError::not_found("device"))
}

/// The model commands are encoded for; a device of unknown model is taken for one.
fn is_ts302(device: &DeviceRow) -> bool {
    let model = device.model.trim();
    model.is_empty() || model.to_ascii_uppercase().contains("TS302")
}

/// A command stored, to be sent.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommandAccepted {
    command_id: i64,
    /// Always `pending` here; later statuses come as `command_status` events.
    #[schema(example = "pending")]
    status: &'static str,
}

/// Asks for a command (admins, and managers of the device's site).
#[utoipa::path(post, path = "/api/devices/{device_id}/commands", tag = "commands",
    security(("session" = [], "csrf" = [])),
    params(("device_id" = String, Path, description = "Milesight's device id or the devEUI.")),
    request_body(content = Command, content_type = "application/json"),
    responses(
        (status = 202, description = "Stored pending; the dispatcher sends it.", body = CommandAccepted),
        (status = 400, description = "`invalid_command` naming the field; `invalid_json`.", body = ErrorBody),
        (status = 403, description = "Not allowed to send commands: `forbidden`; cross-site, or without the session's X-CSRF-Token: `csrf_failed`.", body = ErrorBody),
        (status = 404, description = "No such device the user may see: `not_found`.", body = ErrorBody),
        (status = 409, description = "Cannot be delivered: `downlink_not_configured`, `device_has_no_eui`, `unsupported_device`.", body = ErrorBody),
        JsonBodyFailures,
        SignedInFailures,
    ))]
pub async fn request(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(device_id): ApiPath<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<CommandAccepted>), ApiError> {
    let id = submit(&state, &user, &device_id, body).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(CommandAccepted {
            command_id: id,
            status: "pending",
        }),
    ))
}

/// Checks, encodes and stores a command for this user (JSON and the page's form alike);
/// returns its id.
pub async fn submit(
    state: &AppState,
    user: &User,
    device_id: &str,
    body: Value,
) -> Result<i64, ApiError> {
    let device = visible_device(state, user, device_id).await?;
    if !may_command(user, &device) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Only admins and the site's managers may send commands to a device.",
        ));
    }
    let Some(dispatcher) = state.downlink.clone() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "downlink_not_configured",
            "Commands cannot be delivered: the gateway API is not configured \
             (--gateway-api-url, --gateway-api-user, --gateway-api-password).",
        ));
    };
    let command = parse_command(body)?;
    command
        .validate()
        .map_err(|e| ApiError::bad_request("invalid_command", format!("{}: {e}.", e.field())))?;
    if device.dev_eui.is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "device_has_no_eui",
            "This device's devEUI is not known yet, so the gateway cannot address it.",
        ));
    }
    if !is_ts302(&device) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "unsupported_device",
            format!(
                "Commands exist for the TS302 only, not for a {}.",
                device.model
            ),
        ));
    }
    let variant = device
        .ts302_variant
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(state.settings.ts302_default);
    let downlink_hex = downlink::encode_hex(&command, variant)
        .map_err(|e| ApiError::bad_request("invalid_command", format!("{}: {e}.", e.field())))?;
    let work = Work::RequestCommand {
        device_id: device.id,
        command,
        downlink_hex,
        by: user.email.clone(),
    };
    let outcome = state.writer.submit(work).await?;
    dispatcher.wake();
    outcome
        .created
        .ok_or_else(|| ApiError::internal("a stored command without an id"))
}

/// `POST /devices/{deviceId}/commands`: the device page's form without JavaScript; back to the
/// page with what happened in words.
pub async fn request_form(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    session: Session,
    PagePath(device_id): PagePath<String>,
    Extension(form): Extension<FormData>,
) -> Result<Response, PageError> {
    let body = form_command(&form, user.unit);
    let back = format!(
        "/devices/{}#commands",
        super::view::path_segment(&device_id)
    );
    match submit(&state, &user, &device_id, body).await {
        Ok(id) => {
            set_flash(
                &session,
                true,
                format!("Command {id} queued for the device."),
            )
            .await
        }
        Err(e) if e.status == StatusCode::NOT_FOUND => return Err(PageError::not_found()),
        Err(e) if e.status.is_client_error() => set_flash(&session, false, e.message.clone()).await,
        Err(e) => return Err(e.into()),
    }
    Ok(Redirect::to(&back).into_response())
}

/// The command JSON the form's fields describe (numbers as numbers; empty fields left out).
/// Thresholds are typed in the form's unit (its `unit` field; else the reader's) and sent in °C.
fn form_command(form: &FormData, reader: TemperatureUnit) -> Value {
    let unit = form
        .text("unit")
        .and_then(TemperatureUnit::parse)
        .unwrap_or(reader);
    let mut body = serde_json::Map::new();
    body.insert("command".into(), json!(form.text("command").unwrap_or("")));
    for field in ["minutes", "probe", "min", "max"] {
        if let Some(v) = form.text(field) {
            let threshold = field == "min" || field == "max";
            let n = v.parse::<f64>().ok().and_then(|n| {
                if n.fract() == 0.0 && !threshold {
                    Some(json!(n as i64))
                } else if threshold {
                    serde_json::Number::from_f64(unit.to_celsius(n)).map(Value::Number)
                } else {
                    serde_json::Number::from_f64(n).map(Value::Number)
                }
            });
            body.insert(field.into(), n.unwrap_or_else(|| json!(v)));
        }
    }
    for field in ["from", "to"] {
        if let Some(v) = form.text(field) {
            // datetime-local (UTC when the page has no script to convert) or epoch ms.
            let ms = v.parse::<i64>().ok().or_else(|| {
                let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
                time::PrimitiveDateTime::parse(v, &fmt)
                    .ok()
                    .map(|t| (t.assume_utc().unix_timestamp_nanos() / 1_000_000) as i64)
            });
            body.insert(
                field.into(),
                ms.map(|m| json!(m)).unwrap_or_else(|| json!(v)),
            );
        }
    }
    Value::Object(body)
}

/// The command in a request body, or a refusal naming what is wrong with it.
fn parse_command(body: Value) -> Result<Command, ApiError> {
    // serde names the field of a missing or unknown one, not of one of the wrong type.
    let mistyped = body.as_object().and_then(|o| {
        ["minutes", "probe", "min", "max", "from", "to"]
            .into_iter()
            .find(|f| o.get(*f).is_some_and(|v| !v.is_number() && !v.is_null()))
    });
    serde_json::from_value(body).map_err(|e| {
        let message = match mistyped {
            Some(field) => format!("{field}: must be a number ({e})."),
            None => format!("The command is not valid: {e}."),
        };
        ApiError::bad_request("invalid_command", message)
    })
}

/// `GET /api/devices/{deviceId}/commands`.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommandList<'a> {
    /// Newest first, at most 200.
    commands: Vec<CommandJson<'a>>,
    /// Whether this user may send commands to the device.
    can_command: bool,
    /// Whether the gateway API is configured (without it commands cannot be delivered).
    configured: bool,
}

/// A device's commands (anyone who may see the device).
#[utoipa::path(get, path = "/api/devices/{device_id}/commands", tag = "commands",
    security(("session" = [])),
    params(("device_id" = String, Path, description = "Milesight's device id or the devEUI.")),
    responses(
        (status = 200, description = "The device's commands.", body = CommandList),
        (status = 404, description = "No such device the user may see: `not_found`.", body = ErrorBody),
        SignedInFailures,
    ))]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(device_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let device = visible_device(&state, &user, &device_id).await?;
    let rows = state.store.commands(device.id, LIST_LIMIT).await?;
    let commands = rows.iter().map(|c| CommandJson::of(c, &device)).collect();
    Ok(Json(CommandList {
        commands,
        can_command: may_command(&user, &device),
        configured: state.downlink.is_some(),
    })
    .into_response())
}

/// One command as the device page shows it.
pub struct CommandLine {
    pub id: i64,
    pub command: String,
    /// The arguments as sent, in words (`10 min`, `probe 1: -25 to -15`).
    pub detail: String,
    pub status: String,
    pub requested_by: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub error: Option<String>,
}

impl CommandLine {
    /// An empty row, for the page's `<template>`.
    pub fn blank() -> CommandLine {
        CommandLine {
            id: 0,
            command: String::new(),
            detail: String::new(),
            status: String::new(),
            requested_by: String::new(),
            created_ms: 0,
            updated_ms: 0,
            error: None,
        }
    }
}

/// The device page's commands panel: for who may send commands.
pub struct CommandsPanel {
    pub configured: bool,
    pub lines: Vec<CommandLine>,
}

/// The arguments of a command, short, for a table cell; thresholds in the reader's unit.
pub fn detail_of(body: &str, unit: TemperatureUnit) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_default();
    let num = |k: &str| v[k].as_f64().map(|n| format!("{n}"));
    let degrees = |k: &str| v[k].as_f64().map(|c| unit.field(c));
    match v["command"].as_str().unwrap_or("") {
        "set_report_interval" => num("minutes")
            .map(|m| format!("{m} min"))
            .unwrap_or_default(),
        "set_threshold" => {
            let range = match (degrees("min"), degrees("max")) {
                (None, None) => "off".to_string(),
                (lo, hi) => format!(
                    "{} to {} {}",
                    lo.unwrap_or_else(|| "…".into()),
                    hi.unwrap_or_else(|| "…".into()),
                    unit.symbol()
                ),
            };
            format!("probe {}: {range}", v["probe"])
        }
        "fetch_history" => {
            let t = |k: &str| super::view::iso(v[k].as_i64().unwrap_or_default());
            format!("{} to {}", t("from"), t("to"))
        }
        _ => String::new(),
    }
}

pub async fn panel(
    state: &AppState,
    user: &User,
    device: &DeviceRow,
) -> Result<Option<CommandsPanel>, ApiError> {
    if !may_command(user, device) {
        return Ok(None);
    }
    let rows = state.store.commands(device.id, 50).await?;
    let lines = rows
        .into_iter()
        .map(|c| CommandLine {
            id: c.id,
            detail: detail_of(&c.body, user.unit),
            command: c.command,
            status: c.status,
            requested_by: c.requested_by,
            created_ms: c.created_ms,
            updated_ms: c.updated_ms,
            error: c.error,
        })
        .collect();
    Ok(Some(CommandsPanel {
        configured: state.downlink.is_some(),
        lines,
    }))
}

//! Device commands over JSON: ask for one (admins, and managers of the device's site), list a
//! device's commands (anyone who may see it). A command is checked and encoded here, stored
//! pending through the writer (audited, with its `command_status` event), and then sent by the
//! dispatcher (`crate::downlink`); its later statuses come as `command_status` events too.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::auth::CurrentUser;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath};
use super::state::AppState;
use crate::domain::{Command, CommandJson, DeviceRow, Role, User};
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

pub async fn request(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(device_id): ApiPath<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let device = visible_device(&state, &user, &device_id).await?;
    if !may_command(&user, &device) {
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
    let id = outcome
        .created
        .ok_or_else(|| ApiError::internal("a stored command without an id"))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "commandId": id, "status": "pending" })),
    ))
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

pub async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(device_id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let device = visible_device(&state, &user, &device_id).await?;
    let rows = state.store.commands(device.id, LIST_LIMIT).await?;
    let commands: Vec<CommandJson<'_>> = rows.iter().map(|c| CommandJson::of(c, &device)).collect();
    Ok(Json(json!({
        "commands": commands,
        "canCommand": may_command(&user, &device),
        "configured": state.downlink.is_some(),
    })))
}

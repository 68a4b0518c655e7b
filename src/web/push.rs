//! Web Push opt-in: the VAPID public key for `pushManager.subscribe`, and a browser's
//! subscription stored (checked first: an https endpoint, a P-256 key, a 16-byte secret) or
//! removed. The service worker that shows the notifications is `/static/sw.js`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::auth::CurrentUser;
use super::error::ApiError;
use super::extract::ApiJson;
use super::state::AppState;
use crate::domain::{check_subscription, to_b64url, vapid_public_key, PushSubscriptionJson};

pub async fn key(
    State(state): State<AppState>,
    CurrentUser(_user): CurrentUser,
) -> Result<Json<serde_json::Value>, ApiError> {
    let fresh = p256::SecretKey::random(&mut rand::rngs::OsRng).to_bytes();
    let private = state.store.server_key("vapid", &fresh).await?;
    let public =
        vapid_public_key(&private).ok_or_else(|| ApiError::internal("broken VAPID key"))?;
    Ok(Json(serde_json::json!({ "publicKey": to_b64url(&public) })))
}

pub async fn subscribe(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(sub): ApiJson<PushSubscriptionJson>,
) -> Result<Response, ApiError> {
    check_subscription(&sub, state.settings.push_allow_http)
        .map_err(|why| ApiError::bad_request("invalid_subscription", why))?;
    let id = state
        .store
        .add_push_subscription(
            user.id,
            sub.endpoint.trim(),
            sub.keys.p256dh.trim(),
            sub.keys.auth.trim(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "subscriptionId": id })),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct Unsubscribe {
    endpoint: String,
}

pub async fn unsubscribe(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<Unsubscribe>,
) -> Result<StatusCode, ApiError> {
    if state
        .store
        .unsubscribe_push(user.id, body.endpoint.trim())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("subscription"))
    }
}

/// `GET /static/sw.js`: at a fixed path (a service worker's URL must not change between
/// versions), revalidated rather than cached for a year.
pub async fn service_worker() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../../static/sw.js"),
    )
        .into_response()
}

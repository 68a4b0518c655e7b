//! Web Push opt-in: the VAPID public key for `pushManager.subscribe`, and a browser's
//! subscription stored (checked first: an https endpoint, a P-256 key, a 16-byte secret) or
//! removed. The service worker that shows the notifications is `/static/sw.js`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::CurrentUser;
use super::error::{ApiError, ErrorBody};
use super::error::{JsonBodyFailures, SignedInFailures};
use super::extract::ApiJson;
use super::state::AppState;
use crate::domain::{check_subscription, to_b64url, vapid_public_key, PushSubscriptionJson};

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushKey {
    /// The VAPID public key, base64url, for `pushManager.subscribe`.
    public_key: String,
}

/// The server's VAPID public key.
#[utoipa::path(get, path = "/api/push/key", tag = "push", security(("session" = [])),
    responses(
        (status = 200, description = "The key.", body = PushKey),
        SignedInFailures,
    ))]
pub async fn key(
    State(state): State<AppState>,
    CurrentUser(_user): CurrentUser,
) -> Result<Json<PushKey>, ApiError> {
    let fresh = p256::SecretKey::random(&mut rand::rngs::OsRng).to_bytes();
    let private = state.store.server_key("vapid", &fresh).await?;
    let public =
        vapid_public_key(&private).ok_or_else(|| ApiError::internal("broken VAPID key"))?;
    Ok(Json(PushKey {
        public_key: to_b64url(&public),
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subscribed {
    subscription_id: i64,
}

/// Stores this browser's push subscription for the signed-in user.
#[utoipa::path(post, path = "/api/push/subscriptions", tag = "push",
    security(("session" = [], "csrf" = [])),
    request_body(content = PushSubscriptionJson, content_type = "application/json"),
    responses(
        (status = 201, description = "Stored (again, for a known endpoint).", body = Subscribed),
        (status = 400, description = "`invalid_subscription`, `invalid_json`.", body = ErrorBody),
        (status = 403, description = "Cross-site, or without the session's X-CSRF-Token: `csrf_failed`.", body = ErrorBody),
        JsonBodyFailures,
        SignedInFailures,
    ))]

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
        Json(Subscribed {
            subscription_id: id,
        }),
    )
        .into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct Unsubscribe {
    /// The subscription's endpoint URL, as stored.
    endpoint: String,
}

/// Removes one of the signed-in user's push subscriptions.
#[utoipa::path(delete, path = "/api/push/subscriptions", tag = "push",
    security(("session" = [], "csrf" = [])),
    request_body(content = Unsubscribe, content_type = "application/json"),
    responses(
        (status = 204, description = "Removed."),
        (status = 400, description = "`invalid_json`.", body = ErrorBody),
        (status = 403, description = "Cross-site, or without the session's X-CSRF-Token: `csrf_failed`.", body = ErrorBody),
        (status = 404, description = "No such subscription of this user: `not_found`.", body = ErrorBody),
        JsonBodyFailures,
        SignedInFailures,
    ))]
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

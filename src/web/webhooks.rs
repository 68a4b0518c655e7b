//! The webhook endpoints: authenticate, read a bounded body, parse (ingest), store (the
//! writer), answer.

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::error::{ApiError, ErrorBody};
use super::extract::ApiQuery;
use super::state::AppState;
use crate::domain::{now_ms, Batch, Change, Delivery, Outcome, Scope};
use crate::ingest::gateway::{self, Message};
use crate::ingest::mdp::{self, ParseError};
use crate::ingest::signature::{self, SignatureError, SignedHeaders};
use crate::ingest::ts302::Variant;
use crate::store::Work;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/webhooks/milesight",
            post(mdp_webhook)
                .get(mdp_probe)
                .head(mdp_probe)
                .options(mdp_probe),
        )
        .route(
            "/api/webhooks/milesight/gateway",
            post(gateway_webhook)
                .get(gateway_probe)
                .head(gateway_probe)
                .options(gateway_probe),
        )
        // Another method: the JSON error contract, not an empty 405.
        .method_not_allowed_fallback(super::method_not_allowed)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Probed {
    #[schema(example = "ok")]
    status: &'static str,
}

/// MDP may probe the callback URL before use.
#[utoipa::path(method(get, head, options), path = "/api/webhooks/milesight", tag = "webhooks",
    responses((status = 200, description = "The URL is served.", body = Probed)))]
pub(crate) async fn mdp_probe() -> Json<Probed> {
    Json(Probed { status: "ok" })
}

/// The same for the gateway's URL.
#[utoipa::path(method(get, head, options), path = "/api/webhooks/milesight/gateway",
    tag = "webhooks",
    responses((status = 200, description = "The URL is served.", body = Probed)))]
pub(crate) async fn gateway_probe() -> Json<Probed> {
    Json(Probed { status: "ok" })
}

/// A delivery taken: how many of its events were new.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Accepted {
    #[schema(example = "success")]
    result: &'static str,
    accepted: usize,
    duplicates: usize,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// What both webhooks may answer besides their own 400 and 401, listed once.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a description of answers, never built
enum WebhookFailures {
    /// The body did not arrive in time: `request_timeout`.
    #[response(status = 408)]
    Timeout(ErrorBody<'static>),
    /// The body is too large: `payload_too_large`.
    #[response(status = 413)]
    TooLarge(ErrorBody<'static>),
    /// The body is not JSON: `unsupported_media_type`.
    #[response(status = 415)]
    NotJson(ErrorBody<'static>),
    /// A failure on our side: `internal_error`.
    #[response(status = 500)]
    Internal(ErrorBody<'static>),
    /// The database or the writer is unavailable: `unavailable`.
    #[response(status = 503)]
    Unavailable(ErrorBody<'static>),
}

/// A signed Milesight Development Platform webhook (its four `x-msc-*` headers).
#[utoipa::path(post, path = "/api/webhooks/milesight", tag = "webhooks",
    params(
        ("x-msc-request-signature" = Option<String>, Header, description = "HMAC-SHA256 of the timestamp and nonce, under the webhook secret."),
        ("x-msc-webhook-uuid" = Option<String>, Header, description = "The webhook's uuid."),
        ("x-msc-request-timestamp" = Option<String>, Header, description = "Epoch seconds."),
        ("x-msc-request-nonce" = Option<String>, Header, description = "Used once."),
    ),
    request_body(content = serde_json::Value, content_type = "application/json",
        description = "One MDP event or an array of them."),
    responses(
        (status = 200, description = "Stored (duplicates counted, not stored twice).", body = Accepted),
        (status = 400, description = "`invalid_json`, `invalid_payload`, `invalid_timestamp`, `request_expired`.", body = ErrorBody),
        (status = 401, description = "`signature_missing`, `signature_invalid`, `request_replayed`, `webhook_secret_not_configured`.", body = ErrorBody),
        WebhookFailures,
    ))]
pub(crate) async fn mdp_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Accepted>, ApiError> {
    let result = mdp_inner(&state, &headers, body).await;
    record(&state, mdp::SOURCE, result)
}

async fn mdp_inner(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Outcome, ApiError> {
    let signed = SignedHeaders {
        signature: header(headers, signature::SIGNATURE),
        uuid: header(headers, signature::UUID),
        timestamp: header(headers, signature::TIMESTAMP),
        nonce: header(headers, signature::NONCE),
    };
    let s = &state.settings;
    let nonce = signature::verify(
        &s.webhook_secrets,
        signed,
        now_ms() / 1000,
        s.signature_window_s,
    )
    .map_err(signature_error)?;
    let body = read_json_body(state, headers, body).await?;
    let deliveries = mdp::parse(&body, now_ms()).map_err(parse_error)?;
    store(
        state,
        Batch {
            nonce: Some(nonce),
            deliveries,
        },
    )
    .await
}

fn signature_error(e: SignatureError) -> ApiError {
    match e {
        SignatureError::NotConfigured => ApiError::unauthorized(
            "webhook_secret_not_configured",
            "Signed webhooks are refused until the server is given the webhook secret (MILESIGHT_WEBHOOK_SECRET).",
        ),
        SignatureError::Missing(h) => ApiError::unauthorized("signature_missing", format!("Header {h} is missing.")),
        SignatureError::BadTimestamp => ApiError::bad_request(
            "invalid_timestamp",
            format!("Header {} must be epoch seconds.", signature::TIMESTAMP),
        ),
        SignatureError::Expired => ApiError::bad_request(
            "request_expired",
            "The request timestamp is outside the accepted window; check the clocks.",
        ),
        SignatureError::Invalid => ApiError::unauthorized("signature_invalid", "The request signature does not match."),
    }
}

fn parse_error(e: ParseError) -> ApiError {
    match e {
        ParseError::Json(m) => {
            ApiError::bad_request("invalid_json", format!("The body is not valid JSON: {m}"))
        }
        ParseError::Payload(m) => ApiError::bad_request("invalid_payload", m),
    }
}

/// A refused body is read and dropped up to this size before the 413 is sent: a sender still
/// writing would otherwise meet a connection reset instead of the answer (nginx's "lingering
/// close" does the same).
const DISCARD_AT_MOST: usize = 16 * 1024 * 1024;

async fn discard(mut body: Body) {
    use http_body_util::BodyExt;
    let mut seen = 0;
    while let Some(Ok(frame)) = body.frame().await {
        seen += frame.data_ref().map_or(0, |d| d.len());
        if seen >= DISCARD_AT_MOST {
            break;
        }
    }
}

/// Checks the content type and reads at most the configured number of bytes.
async fn read_json_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, ApiError> {
    let content_type = header(headers, header::CONTENT_TYPE.as_str()).unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime != "application/json" && !mime.ends_with("+json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the body as application/json.",
        ));
    }
    let limit = state.settings.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("The body is larger than {limit} bytes."),
        )
    };
    let declared =
        header(headers, header::CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        let _ = tokio::time::timeout(state.settings.webhook_timeout, discard(body)).await;
        return Err(too_large());
    }
    let read = tokio::time::timeout(state.settings.webhook_timeout, to_bytes(body, limit));
    let Ok(read) = read.await else {
        return Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "The body did not arrive in time.",
        ));
    };
    read.map_err(|e| {
        let over = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if over {
            too_large()
        } else {
            ApiError::bad_request("body_unreadable", "The request body could not be read.")
        }
    })
}

async fn store(state: &AppState, batch: Batch) -> Result<Outcome, ApiError> {
    Ok(state.writer.submit(Work::Batch(batch)).await?)
}

fn record(
    state: &AppState,
    source: &'static str,
    result: Result<Outcome, ApiError>,
) -> Result<Json<Accepted>, ApiError> {
    match result {
        Ok(outcome) => {
            state.health.accepted(source);
            Ok(Json(Accepted {
                result: "success",
                accepted: outcome.accepted,
                duplicates: outcome.duplicates,
            }))
        }
        Err(err) => {
            state.health.rejected(source, err.code, &err.message);
            Err(err)
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TokenQuery {
    /// The gateway token, for gateways that cannot send the header.
    token: Option<String>,
}

/// A UG6x gateway's HTTP uplink or notice.
#[utoipa::path(post, path = "/api/webhooks/milesight/gateway", tag = "webhooks",
    security((), ("gateway_token" = [])),
    params(TokenQuery),
    request_body(content = serde_json::Value, content_type = "application/json",
        description = "The gateway's uplink, status or notice JSON."),
    responses(
        (status = 200, description = "Stored (a duplicate counted, not stored twice).", body = Accepted),
        (status = 400, description = "`invalid_json`, `invalid_payload`, `undecodable_payload`.", body = ErrorBody),
        (status = 401, description = "`token_missing`, `token_invalid`, `gateway_token_not_configured`.", body = ErrorBody),
        WebhookFailures,
    ))]
pub(crate) async fn gateway_webhook(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<TokenQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Accepted>, ApiError> {
    let result = gateway_inner(&state, &headers, q.token.as_deref(), body).await;
    record(&state, gateway::SOURCE, result)
}

async fn gateway_inner(
    state: &AppState,
    headers: &HeaderMap,
    query_token: Option<&str>,
    body: Body,
) -> Result<Outcome, ApiError> {
    let Some(expected) = state.settings.gateway_token.as_deref() else {
        return Err(ApiError::unauthorized(
            "gateway_token_not_configured",
            "Gateway uplinks are refused until the server is given a token (MILESIGHT_GATEWAY_TOKEN).",
        ));
    };
    let given = header(headers, "x-sensorcast-token")
        .or(query_token)
        .ok_or_else(|| {
            ApiError::unauthorized(
                "token_missing",
                "Send the token in X-Sensorcast-Token or ?token=.",
            )
        })?;
    if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        return Err(ApiError::unauthorized(
            "token_invalid",
            "The gateway token does not match.",
        ));
    }
    let body = read_json_body(state, headers, body).await?;
    let delivery = match gateway::parse(&body).map_err(parse_error)? {
        Message::Uplink(u) => {
            let eui = u.device.dev_eui.clone().unwrap_or_default();
            let setting = device_variant(state, &eui).await?;
            let variant = gateway::choose_variant(setting, &u.bytes, state.settings.ts302_default);
            gateway::uplink_delivery(&u, variant, now_ms()).map_err(|e| {
                ApiError::bad_request(
                    "undecodable_payload",
                    format!("TS302 bytes could not be decoded ({variant:?}): {e}"),
                )
            })?
        }
        Message::Status {
            device,
            status,
            key,
        } => Delivery {
            key,
            source: gateway::SOURCE,
            event_type: status.as_str().into(),
            detail: None,
            device: Some(device),
            changes: vec![Change::Status(status)],
        },
        // ACK / error notices are logged and acknowledged; they register no device.
        Message::Notice { kind, detail, .. } => {
            tracing::info!(kind, detail, "gateway notice");
            Delivery {
                key: None,
                source: gateway::SOURCE,
                event_type: kind,
                detail: Some(detail),
                device: None,
                changes: vec![],
            }
        }
    };
    store(
        state,
        Batch {
            nonce: None,
            deliveries: vec![delivery],
        },
    )
    .await
}

async fn device_variant(state: &AppState, eui: &str) -> Result<Option<Variant>, ApiError> {
    let device = state.store.device(eui, &Scope::All).await?;
    Ok(device
        .and_then(|d| d.ts302_variant)
        .and_then(|v| v.parse().ok()))
}

//! Extractors whose refusals keep to our error contract: a bad path or query value on `/api/*`
//! answers `{"error","message"}` JSON (a page answers an error page), never axum's plain text.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::StatusCode;

use super::error::{ApiError, PageError};

/// `Query` for JSON endpoints.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// `Path` for JSON endpoints.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// `Json` bodies for JSON endpoints.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `Path` for pages and forms.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(PageError))]
pub struct PagePath<T>(pub T);

/// `Query` for pages.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(PageError))]
pub struct PageQuery<T>(pub T);

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::bad_request(
            "invalid_query",
            format!("The query is not valid: {}", e.body_text()),
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        ApiError::bad_request(
            "invalid_path",
            format!("The address is not valid: {}", e.body_text()),
        )
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        // Not the body's JSON at fault: keep the status axum chose, as the webhooks answer.
        match e.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Send the body as application/json.",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => payload_too_large(),
            _ => ApiError::bad_request(
                "invalid_json",
                format!(
                    "The body is not valid JSON for this request: {}",
                    e.body_text()
                ),
            ),
        }
    }
}

/// 413 for a JSON endpoint's body.
pub fn payload_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "The body is larger than this endpoint accepts.",
    )
}

impl From<QueryRejection> for PageError {
    fn from(e: QueryRejection) -> Self {
        ApiError::from(e).into()
    }
}

impl From<PathRejection> for PageError {
    fn from(e: PathRejection) -> Self {
        // A malformed id names nothing that exists.
        PageError::new(StatusCode::NOT_FOUND, "Not found", e.body_text())
    }
}

//! The one error type of the HTTP boundary: logs the detail, shows the client a code and a sentence.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::store::{Rejection, StoreError, WriteError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// The body of every error on `/api/*`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// A machine code (`not_found`, `invalid_query`, …).
    error: &'a str,
    /// A sentence for a person.
    message: &'a str,
}

/// The failures every signed-in JSON operation may answer besides its own, listed once.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a description of answers, never built
pub enum SignedInFailures {
    /// Not signed in: `unauthorized`.
    #[response(status = 401)]
    Unauthorized(ErrorBody<'static>),
    /// A failure on our side: `internal_error`.
    #[response(status = 500)]
    Internal(ErrorBody<'static>),
    /// The database is unreachable: `unavailable`.
    #[response(status = 503)]
    Unavailable(ErrorBody<'static>),
}

/// The failures of every operation that reads a JSON body, listed once.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a description of answers, never built
pub enum JsonBodyFailures {
    /// The body is too large: `payload_too_large`.
    #[response(status = 413)]
    TooLarge(ErrorBody<'static>),
    /// The body is not JSON: `unsupported_media_type`.
    #[response(status = 415)]
    NotJson(ErrorBody<'static>),
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn not_signed_in() -> Self {
        Self::unauthorized("unauthorized", "Sign in first.")
    }

    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "You may not see this.")
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("No such {what}."),
        )
    }

    /// A failure on our side: the detail goes to the log only.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Something went wrong on our side.",
        )
    }

    /// The database is unreachable: senders should retry.
    pub fn unavailable(detail: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %detail, "database unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The service is temporarily unavailable; retry later.",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code,
            message: &self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => ApiError::unavailable(e),
            _ => ApiError::internal(e),
        }
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Rejected(Rejection::Replayed) => ApiError::unauthorized(
                "request_replayed",
                "This signature (webhook uuid and nonce) was already used.",
            ),
            WriteError::Rejected(Rejection::NotFound) => ApiError::not_found("alarm"),
            WriteError::Rejected(Rejection::AlreadyAcknowledged) => ApiError::new(
                StatusCode::CONFLICT,
                "already_acknowledged",
                "This alarm was already acknowledged.",
            ),
            WriteError::Store(e) if e.is_unavailable() => ApiError::unavailable(e),
            WriteError::Store(e) => ApiError::internal(e),
            WriteError::Stopped => ApiError::unavailable("writer stopped (shutting down)"),
        }
    }
}

/// An error on an HTML page: the fitting status, shown as a page a person can act on.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub title: &'static str,
    pub message: String,
}

impl PageError {
    pub fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> Self {
        PageError {
            status,
            title,
            message: message.into(),
        }
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is nothing at this address, or you may not see it.",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Not allowed", message)
    }

    /// A failure on our side: the detail goes to the log only.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        ApiError::internal(detail).into()
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        let title = match e.status {
            StatusCode::NOT_FOUND => return PageError::not_found(),
            StatusCode::SERVICE_UNAVAILABLE => "Temporarily unavailable",
            s if s.is_server_error() => "Something went wrong",
            _ => "Request refused",
        };
        PageError::new(e.status, title, e.message)
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

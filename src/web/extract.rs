//! Extractors whose refusals keep to our error contract: a bad path or query value on `/api/*`
//! answers `{"error","message"}` JSON (a page answers an error page), never axum's plain text;
//! and the administrator guard, so no handler repeats the role check.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;

use super::auth::{CurrentUser, PageUser};
use super::error::{ApiError, PageError};
use super::state::AppState;
use crate::domain::{Role, User};

/// `Query` for JSON endpoints.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// `Path` for JSON endpoints.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

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

/// A signed-in administrator, for pages and forms: others get 403, strangers the sign-in page.
pub struct Admin(pub User);

impl FromRequestParts<AppState> for Admin {
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        let PageUser(user) = PageUser::from_request_parts(parts, state).await?;
        if user.role != Role::Admin {
            return Err(PageError::forbidden(
                "This page is for administrators. Your dashboard is one click away.",
            )
            .into_response());
        }
        Ok(Admin(user))
    }
}

/// A signed-in administrator, for JSON endpoints: 401 or 403 JSON otherwise.
pub struct ApiAdmin(pub User);

impl FromRequestParts<AppState> for ApiAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
        if user.role != Role::Admin {
            return Err(ApiError::forbidden());
        }
        Ok(ApiAdmin(user))
    }
}

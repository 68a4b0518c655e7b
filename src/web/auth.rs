//! Sign-in, sign-out and the signed-in user extractors.

use askama::Template;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use tower_sessions::Session;

use super::error::ApiError;
use super::password;
use crate::state::AppState;
use crate::store::sessions::USER_ID_KEY;
use crate::store::{dispatch, Db, Role, User};

/// The signed-in user, for JSON endpoints: 401 JSON otherwise.
pub struct CurrentUser(pub User);

/// The signed-in user, for pages: a redirect to the sign-in form otherwise.
pub struct PageUser(pub User);

async fn signed_in(parts: &mut Parts, state: &AppState) -> Result<Option<User>, ApiError> {
    let session = Session::from_request_parts(parts, state)
        .await
        .map_err(|(_, m)| ApiError::internal(m))?;
    let user_id: Option<i64> = session
        .get(USER_ID_KEY)
        .await
        .map_err(|e| ApiError::internal(e))?;
    let Some(user_id) = user_id else {
        return Ok(None);
    };
    load_user(&state.db, user_id).await
}

pub async fn load_user(db: &Db, user_id: i64) -> Result<Option<User>, ApiError> {
    let row = dispatch!(db, |pool, q| q::user_by_id(pool, user_id).await)?;
    let Some(row) = row.filter(|u| !u.disabled) else {
        return Ok(None);
    };
    let Some(role) = Role::parse(&row.role) else {
        return Ok(None);
    };
    let site_ids = dispatch!(db, |pool, q| q::user_site_ids(pool, user_id).await)?;
    Ok(Some(User {
        id: row.id,
        email: row.email,
        role,
        disabled: row.disabled,
        site_ids,
    }))
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        signed_in(parts, state)
            .await?
            .map(CurrentUser)
            .ok_or_else(ApiError::not_signed_in)
    }
}

impl FromRequestParts<AppState> for PageUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match signed_in(parts, state).await {
            Ok(Some(user)) => Ok(PageUser(user)),
            Ok(None) => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                let target = format!("/login?next={}", urlencode(next));
                Err(Redirect::to(&target).into_response())
            }
            Err(e) => Err(e.into_response()),
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Only a local path may follow sign-in: never another site (`//evil`, `/\evil`, `https://`).
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.starts_with("/login") =>
        {
            n
        }
        _ => "/",
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    error: Option<&'a str>,
    next: &'a str,
    email: &'a str,
}

fn render(t: &impl Template, status: StatusCode) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

pub async fn login_form(axum::extract::Query(q): axum::extract::Query<NextQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    render(
        &LoginPage {
            error: None,
            next,
            email: "",
        },
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    next: Option<String>,
}

pub async fn login(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<LoginForm>,
) -> Response {
    let email = form.email.trim().to_ascii_lowercase();
    let next = safe_next(form.next.as_deref()).to_string();
    let row = match dispatch!(&state.db, |pool, q| q::user_by_email(pool, &email).await) {
        Ok(row) => row,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let active = row.filter(|r| !r.disabled);
    let ok = password::verify(
        active.as_ref().map(|r| r.password_hash.clone()),
        form.password,
    )
    .await;
    let Some(user) = active.filter(|_| ok) else {
        tracing::info!(email = %email, "failed sign-in");
        let page = LoginPage {
            error: Some("Wrong email or password."),
            next: &next,
            email: &email,
        };
        return render(&page, StatusCode::UNAUTHORIZED);
    };
    // A fresh session id at sign-in defeats session fixation.
    if let Err(e) = session.cycle_id().await {
        return ApiError::internal(e).into_response();
    }
    if let Err(e) = session.insert(USER_ID_KEY, user.id).await {
        return ApiError::internal(e).into_response();
    }
    tracing::info!(user_id = user.id, "signed in");
    Redirect::to(&next).into_response()
}

pub async fn logout(State(state): State<AppState>, session: Session) -> Response {
    if let Some(id) = session.id() {
        crate::realtime::control::end_session(&state, &id.to_string()).await;
    }
    if let Err(e) = session.flush().await {
        return ApiError::internal(e).into_response();
    }
    Redirect::to("/login").into_response()
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_is_local_only() {
        assert_eq!(safe_next(Some("/admin")), "/admin");
        for bad in [
            "//evil.example",
            "/\\evil",
            "https://evil.example",
            "evil",
            "/login?next=/x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }
}

//! Sign-in, sign-out and the signed-in user extractors.

use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use serde::Deserialize;
use tower_sessions::Session;

use super::csrf;
use super::error::{ApiError, PageError};
use super::form::FormData;
use super::layout::{render, Layout};
use super::password;
use super::throttle::{self, client_ip, Admission};
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
    let user_id: Option<i64> = session.get(USER_ID_KEY).await.map_err(session_error)?;
    let Some(user_id) = user_id else {
        return Ok(None);
    };
    let user = load_user(&state.db, user_id).await?;
    if user.is_some() {
        renew_if_due(&session).await?;
    }
    Ok(user)
}

/// Session key: when the session's lifetime was last extended (ms since the epoch).
pub const RENEWED_AT_KEY: &str = "renewed_at";
/// How often a session in use is extended to the full inactivity period (one write a day, not
/// one per request; tower-sessions saves only a modified session).
const RENEW_EVERY_MS: i64 = 24 * 3600 * 1000;

fn renewal_due(renewed_at: Option<i64>, now: i64) -> bool {
    renewed_at.is_none_or(|at| now - at >= RENEW_EVERY_MS || at > now)
}

/// Marks the session modified once a day, so it is saved with a fresh expiry and cookie.
async fn renew_if_due(session: &Session) -> Result<(), ApiError> {
    let now = crate::now_ms();
    let renewed_at: Option<i64> = session.get(RENEWED_AT_KEY).await.map_err(session_error)?;
    if renewal_due(renewed_at, now) {
        session
            .insert(RENEWED_AT_KEY, now)
            .await
            .map_err(session_error)?;
    }
    Ok(())
}

/// A session store failure: 503 when the database is unreachable, else 500.
fn session_error(e: tower_sessions::session::Error) -> ApiError {
    let text = e.to_string();
    if text.contains(crate::store::sessions::UNAVAILABLE) {
        ApiError::unavailable(text)
    } else {
        ApiError::internal(text)
    }
}

pub async fn load_user(db: &Db, user_id: i64) -> Result<Option<User>, ApiError> {
    let found = dispatch!(db, |pool, q| q::user_with_site_ids(pool, user_id).await)?;
    let Some((row, site_ids)) = found.filter(|(u, _)| !u.disabled) else {
        return Ok(None);
    };
    let Some(role) = Role::parse(&row.role) else {
        return Ok(None);
    };
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
                // Only a page can be returned to; a form's address cannot be fetched.
                let next = match parts.method {
                    axum::http::Method::GET => parts.uri.path_and_query().map(|p| p.as_str()),
                    _ => None,
                }
                .unwrap_or("/");
                let target = if next == "/" {
                    "/login".to_string()
                } else {
                    format!("/login?next={}", urlencode(next))
                };
                Err(Redirect::to(&target).into_response())
            }
            Err(e) => Err(PageError::from(e).into_response()),
        }
    }
}

/// Admin pages and forms: anyone else gets a 403 page.
pub fn require_admin(user: &User) -> Result<(), PageError> {
    if user.role == Role::Admin {
        Ok(())
    } else {
        Err(PageError::forbidden(
            "This page is for administrators. Your dashboard is one click away.",
        ))
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
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
                && !n.chars().any(char::is_control)
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
    layout: Layout,
    error: Option<&'a str>,
    next: &'a str,
    email: &'a str,
}

/// The sign-in form; its anti-forgery token is stateless until sign-in (csrf.rs), so showing
/// it writes nothing.
async fn login_page(
    session: &Session,
    keys: &csrf::Keys,
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<&str>,
    next: &str,
    email: &str,
) -> Response {
    let token = match csrf::form_token(session, keys, headers).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let page = LoginPage {
        layout: Layout::with_csrf("Sign in", token.token.clone()),
        error,
        next,
        email,
    };
    token.attach((status, render(&page)).into_response())
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

pub async fn login_form(
    State(state): State<AppState>,
    session: Session,
    Extension(keys): Extension<Arc<csrf::Keys>>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    // Already signed in: straight to the dashboard.
    if let Ok(Some(id)) = session.get::<i64>(USER_ID_KEY).await {
        if let Ok(Some(_)) = load_user(&state.db, id).await {
            return Redirect::to(safe_next(q.next.as_deref())).into_response();
        }
    }
    login_page(
        &session,
        &keys,
        &headers,
        StatusCode::OK,
        None,
        safe_next(q.next.as_deref()),
        "",
    )
    .await
}

pub async fn login(
    State(state): State<AppState>,
    session: Session,
    Extension(keys): Extension<Arc<csrf::Keys>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Extension(form): Extension<FormData>,
) -> Response {
    let email = form.get("email").unwrap_or("").trim().to_ascii_lowercase();
    let next = safe_next(form.get("next")).to_string();
    let address = throttle::address_key(client_ip(peer.map(|p| (p.0).0), &headers));

    // Counted before the password is checked, so parallel guesses cannot outrun the count.
    let attempt = match throttle::admit(&state.db, &address, &email).await {
        Ok(Admission::Admitted { attempt, delay }) => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            attempt
        }
        Ok(Admission::Refused { wait }) => {
            tracing::warn!(email = %email, "sign-in throttled");
            let minutes = wait.as_secs().div_ceil(60).max(1);
            let message =
                format!("Too many failed sign-ins. Wait {minutes} min before trying again.");
            let response = login_page(
                &session,
                &keys,
                &headers,
                StatusCode::TOO_MANY_REQUESTS,
                Some(&message),
                &next,
                &email,
            )
            .await;
            return with_retry_after(response, wait.as_secs().max(1));
        }
        Err(e) => return PageError::from(e).into_response(),
    };

    let row = match dispatch!(&state.db, |pool, q| q::user_by_email(pool, &email).await) {
        Ok(row) => row,
        Err(e) => return PageError::from(e).into_response(),
    };
    let active = row.filter(|r| !r.disabled);
    let checked = password::verify(
        active.as_ref().map(|r| r.password_hash.clone()),
        form.get("password").unwrap_or("").to_string(),
    )
    .await;
    let ok = match checked {
        Ok(ok) => ok,
        Err(password::Busy) => {
            if let Err(e) = throttle::withdraw(&state.db, attempt).await {
                tracing::warn!(error = %e, "could not withdraw an unchecked sign-in attempt");
            }
            tracing::warn!("sign-in refused: every password check slot is busy");
            let response = login_page(
                &session,
                &keys,
                &headers,
                StatusCode::SERVICE_UNAVAILABLE,
                Some("The server is busy. Try again in a moment."),
                &next,
                &email,
            )
            .await;
            return with_retry_after(response, 1);
        }
    };
    let Some(user) = active.filter(|_| ok) else {
        tracing::info!(email = %email, "failed sign-in");
        return login_page(
            &session,
            &keys,
            &headers,
            StatusCode::UNAUTHORIZED,
            Some("Wrong email or password."),
            &next,
            &email,
        )
        .await;
    };
    if let Err(e) = throttle::succeeded(&state.db, &address, &email).await {
        tracing::warn!(error = %e, "could not forgive the sign-in attempts");
    }
    // A fresh session id (against session fixation) and a fresh anti-forgery token.
    let signed_in = async {
        session.cycle_id().await.map_err(PageError::internal)?;
        session
            .insert(USER_ID_KEY, user.id)
            .await
            .map_err(PageError::internal)?;
        session
            .insert(RENEWED_AT_KEY, crate::now_ms())
            .await
            .map_err(PageError::internal)?;
        csrf::rotate(&session).await
    };
    if let Err(e) = signed_in.await {
        return e.into_response();
    }
    tracing::info!(user_id = user.id, "signed in");
    csrf::clear_nonce(&keys, Redirect::to(&next).into_response())
}

fn with_retry_after(mut response: Response, secs: u64) -> Response {
    if let Ok(v) = secs.to_string().parse() {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

pub async fn logout(State(state): State<AppState>, session: Session) -> Response {
    if let Some(id) = session.id() {
        crate::realtime::control::end_session(&state, &id.to_string()).await;
    }
    if let Err(e) = session.flush().await {
        return PageError::internal(e).into_response();
    }
    Redirect::to("/login").into_response()
}

#[cfg(test)]
mod tests {
    use super::{renewal_due, safe_next, urlencode, RENEW_EVERY_MS};

    #[test]
    fn a_session_is_renewed_once_a_day_not_per_request() {
        let now = 1_000 * RENEW_EVERY_MS;
        assert!(
            renewal_due(None, now),
            "sessions from before the key existed"
        );
        assert!(!renewal_due(Some(now), now));
        assert!(!renewal_due(Some(now - RENEW_EVERY_MS + 1), now));
        assert!(renewal_due(Some(now - RENEW_EVERY_MS), now));
        assert!(
            renewal_due(Some(now + 60_000), now),
            "a time from the future is not trusted"
        );
    }

    #[test]
    fn next_is_local_only() {
        assert_eq!(safe_next(Some("/admin")), "/admin");
        assert_eq!(safe_next(Some("/devices/1?x=2")), "/devices/1?x=2");
        for bad in [
            "//evil.example",
            "/\\evil",
            "https://evil.example",
            "evil",
            "/login?next=/x",
            "/\t/evil.example",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn next_is_fully_encoded() {
        assert_eq!(
            urlencode("/devices/a b?x=1&y"),
            "%2Fdevices%2Fa%20b%3Fx%3D1%26y"
        );
    }
}

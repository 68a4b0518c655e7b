//! Sign-in, sign-out and the signed-in user extractors.

use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use serde::Deserialize;
use tower_sessions::Session;

use super::csrf;
use super::error::{ApiError, PageError};
use super::extract::PageQuery;
use super::form::FormData;
use super::layout::{render, Layout};
use super::password;
use super::state::AppState;
use super::throttle::{self, Admission};
use crate::domain::{action, AuditEntry, Role, User};
use crate::store::sessions::USER_ID_KEY;

/// The signed-in user, for JSON endpoints: 401 JSON otherwise.
pub struct CurrentUser(pub User);

/// The signed-in user, for pages: a redirect to the sign-in form otherwise.
pub struct PageUser(pub User);

async fn signed_in(parts: &mut Parts, state: &AppState) -> Result<Option<User>, ApiError> {
    let session = Session::from_request_parts(parts, state)
        .await
        .map_err(|(_, m)| ApiError::internal(m))?;
    session_user(&session, state).await
}

/// The session's user, read from the database (the session renewed when due).
pub async fn session_user(session: &Session, state: &AppState) -> Result<Option<User>, ApiError> {
    let user_id: Option<i64> = match session.get(USER_ID_KEY).await {
        Ok(id) => id,
        Err(e) => return Err(session_failure(state, e).await),
    };
    let Some(user_id) = user_id else {
        return Ok(None);
    };
    let user = state.store.user(user_id).await?;
    if user.is_some() {
        if let Err(e) = renew_if_due(session).await {
            return Err(session_failure(state, e).await);
        }
    }
    Ok(user)
}

/// Session key: when the session's lifetime was last extended (ms since the epoch).
pub const RENEWED_AT_KEY: &str = "renewed_at";
/// How often a session in use is extended to the full inactivity period (one write a day, not
/// one per request; tower-sessions saves only a modified session).
const RENEW_EVERY_MS: i64 = 24 * 3600 * 1000;

pub(super) fn renewal_due(renewed_at: Option<i64>, now: i64) -> bool {
    renewed_at.is_none_or(|at| now - at >= RENEW_EVERY_MS || at > now)
}

/// Marks the session modified once a day, so it is saved with a fresh expiry and cookie.
async fn renew_if_due(session: &Session) -> Result<(), tower_sessions::session::Error> {
    let now = crate::domain::now_ms();
    let renewed_at: Option<i64> = session.get(RENEWED_AT_KEY).await?;
    if renewal_due(renewed_at, now) {
        session.insert(RENEWED_AT_KEY, now).await?;
    }
    Ok(())
}

/// A session store failure: 503 when the database is unreachable (asked, not guessed from the
/// error's text, which is all tower-sessions keeps), else 500.
async fn session_failure(state: &AppState, e: tower_sessions::session::Error) -> ApiError {
    match state.store.ping().await {
        Err(unreachable) if unreachable.is_unavailable() => ApiError::unavailable(e),
        _ => ApiError::internal(e),
    }
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

/// A signed-in administrator, for pages and forms: others get 403, strangers the sign-in page.
pub struct Admin(pub User);

impl FromRequestParts<AppState> for Admin {
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
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

pub(super) fn urlencode(s: &str) -> String {
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
    PageQuery(q): PageQuery<NextQuery>,
) -> Response {
    // Already signed in: straight to the dashboard.
    if let Ok(Some(id)) = session.get::<i64>(USER_ID_KEY).await {
        if let Ok(Some(_)) = state.store.user(id).await {
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
    let address = throttle::address_key(
        state
            .settings
            .trusted_proxies
            .client_ip(peer.map(|p| (p.0).0), &headers),
    );

    // Counted before the password is checked, so parallel guesses cannot outrun the count.
    let attempt = match throttle::admit(&state.store, &address, &email).await {
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

    let row = match state.store.account_by_email(&email).await {
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
            if let Err(e) = throttle::withdraw(&state.store, attempt).await {
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
        // Bounded like the attempts themselves: the throttle admits only a few per window.
        audit(
            &state,
            AuditEntry::new(&email, action::SIGN_IN_FAILED, &address),
        )
        .await;
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
    if let Err(e) = throttle::succeeded(&state.store, &address, &email).await {
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
            .insert(RENEWED_AT_KEY, crate::domain::now_ms())
            .await
            .map_err(PageError::internal)?;
        csrf::rotate(&session).await
    };
    if let Err(e) = signed_in.await {
        return e.into_response();
    }
    tracing::info!(user_id = user.id, "signed in");
    audit(
        &state,
        AuditEntry::new(&user.email, action::SIGN_IN, &address),
    )
    .await;
    csrf::clear_nonce(&keys, Redirect::to(&next).into_response())
}

fn with_retry_after(mut response: Response, secs: u64) -> Response {
    if let Ok(v) = secs.to_string().parse() {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// Appends an audit row; a failure is logged (the sign-in itself has happened).
async fn audit(state: &AppState, entry: AuditEntry) {
    if let Err(e) = state.store.audit(&entry).await {
        tracing::warn!(error = %e, action = entry.action, "could not write the audit row");
    }
}

pub async fn logout(State(state): State<AppState>, session: Session) -> Response {
    if let Ok(Some(user_id)) = session.get::<i64>(USER_ID_KEY).await {
        if let Ok(Some(account)) = state.store.account(user_id).await {
            audit(
                &state,
                AuditEntry::new(&account.email, action::SIGN_OUT, "session"),
            )
            .await;
        }
    }
    if let Some(id) = session.id() {
        crate::realtime::control::end_session(&state.store, &state.hub, &id.to_string()).await;
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

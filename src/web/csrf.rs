//! Anti-forgery for every state-changing browser request: a per-session token (hidden form
//! field `csrf` or header `X-CSRF-Token`) compared in constant time, and refusal of requests
//! another site started (Origin/Referer, Sec-Fetch-Site).

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use subtle::ConstantTimeEq;
use tower_sessions::Session;

use super::error::PageError;
use super::form::FormData;

/// Name of the hidden form field.
pub const FIELD: &str = "csrf";
const HEADER: &str = "x-csrf-token";
const SESSION_KEY: &str = "csrf";
/// Largest form body read (our forms are a few hundred bytes).
const MAX_FORM_BYTES: usize = 64 * 1024;

fn fresh() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The session's token, created on first use (also for signed-out visitors of the sign-in form).
pub async fn token(session: &Session) -> Result<String, PageError> {
    if let Some(t) = session
        .get::<String>(SESSION_KEY)
        .await
        .map_err(PageError::internal)?
    {
        return Ok(t);
    }
    rotate(session).await
}

/// A new token: at sign-in, so a token seen before cannot be used after.
pub async fn rotate(session: &Session) -> Result<String, PageError> {
    let t = fresh();
    session
        .insert(SESSION_KEY, &t)
        .await
        .map_err(PageError::internal)?;
    Ok(t)
}

/// Middleware: unsafe methods need a same-origin request and the session's token. A form body
/// is parsed once here and handed on as a [`FormData`] extension.
pub async fn guard(request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    if !same_origin(request.headers()) {
        tracing::info!(path = %request.uri().path(), "cross-origin form refused");
        return refused();
    }
    let Some(session) = request.extensions().get::<Session>().cloned() else {
        return PageError::internal("csrf guard outside the session layer").into_response();
    };
    let expected = match session.get::<String>(SESSION_KEY).await {
        Ok(t) => t,
        Err(e) => return PageError::internal(e).into_response(),
    };
    let (mut parts, body) = request.into_parts();
    let bytes = match to_bytes(body, MAX_FORM_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return PageError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Form too large",
                "That form sent more than this server accepts.",
            )
            .into_response()
        }
    };
    let form = if is_form(&parts.headers) {
        FormData::parse(&bytes)
    } else {
        FormData::default()
    };
    let sent = parts
        .headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .or_else(|| form.get(FIELD));
    let valid = match (expected.as_deref(), sent) {
        (Some(e), Some(s)) => bool::from(e.as_bytes().ct_eq(s.as_bytes())),
        _ => false,
    };
    if !valid {
        tracing::info!(path = %parts.uri.path(), "missing or wrong anti-forgery token");
        let mut page = refused();
        if expected.is_none() && !sends_session_cookie(&parts.headers) {
            page = PageError::new(
                StatusCode::FORBIDDEN,
                "Form expired",
                "Your browser did not send this site's cookie with the form. Allow cookies for this \
                 site and try again. (Operators: on plain HTTP other than localhost, start the \
                 server with --cookie-secure false.)",
            )
            .into_response();
        }
        return page;
    }
    parts.extensions.insert(form);
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn refused() -> Response {
    PageError::new(
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form is out of date or came from another site. Go back, reload the page and try again.",
    )
    .into_response()
}

fn sends_session_cookie(headers: &HeaderMap) -> bool {
    let cookie = format!("{}=", super::SESSION_COOKIE);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(';').any(|c| c.trim_start().starts_with(&cookie)))
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// False when the browser says another site started this request. Browsers send Origin (or at
/// least Referer) on form posts; a request with neither still needs the token.
fn same_origin(headers: &HeaderMap) -> bool {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(fetch_site, Some("cross-site" | "same-site")) {
        return false;
    }
    let source = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .map(|v| v.to_str().unwrap_or("null"));
    let Some(source) = source else {
        return true;
    };
    let Some(authority) = authority_of(source) else {
        return false;
    };
    // Behind a proxy, Host may be rewritten; a browser cannot forge X-Forwarded-Host cross-site.
    [header::HOST.as_str(), "x-forwarded-host"]
        .iter()
        .filter_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .any(|host| strip_default_port(host).eq_ignore_ascii_case(&authority))
}

/// `host[:port]` of an absolute http(s) URL, without a default port.
fn authority_of(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    (!authority.is_empty() && !authority.contains('@'))
        .then(|| strip_default_port(authority).to_string())
}

fn strip_default_port(host: &str) -> &str {
    host.strip_suffix(":80")
        .or_else(|| host.strip_suffix(":443"))
        .unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn same_origin_rules() {
        let host = ("host", "dash.example:8443");
        assert!(same_origin(&headers(&[host])));
        assert!(same_origin(&headers(&[
            host,
            ("origin", "https://dash.example:8443")
        ])));
        assert!(same_origin(&headers(&[
            host,
            ("referer", "https://dash.example:8443/admin?x=1")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "https://evil.example")
        ])));
        assert!(!same_origin(&headers(&[host, ("origin", "null")])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "https://dash.example:8443@evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:3000"),
            ("x-forwarded-host", "dash.example"),
            ("origin", "https://dash.example")
        ])));
        assert!(same_origin(&headers(&[
            ("host", "dash.example:443"),
            ("origin", "https://dash.example")
        ])));
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let (a, b) = (fresh(), fresh());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
    }
}

//! Anti-forgery for every state-changing browser request: a token (hidden form field `csrf` or
//! header `X-CSRF-Token`) compared in constant time, and refusal of requests another site
//! started (Origin/Referer, Sec-Fetch-Site).
//!
//! Signed in, the token is random and kept in the session. Before that (the sign-in form) it is
//! stateless, so an anonymous visit writes nothing: the browser holds a random nonce in a cookie
//! of its own, and the token is an HMAC of that nonce under a key all instances share (made once
//! and kept in the database). Another site can neither read the cookie nor compute the token.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::sync::OnceCell;
use tower_sessions::cookie::Cookie;
use tower_sessions::Session;

use super::error::{ApiError, PageError};
use super::form::FormData;
use crate::store::Store;

/// Name of the hidden form field.
pub const FIELD: &str = "csrf";
const HEADER: &str = "x-csrf-token";
const SESSION_KEY: &str = "csrf";
/// The cookie holding a signed-out browser's nonce.
pub const NONCE_COOKIE: &str = "sensorcast_csrf";
/// Name of the shared key in `server_keys`.
const KEY_NAME: &str = "csrf-v1";
/// Largest form body read (our forms are a few hundred bytes).
const MAX_FORM_BYTES: usize = 64 * 1024;

fn fresh() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The key for signed-out tokens, loaded (or made) on first use, and the cookie settings.
#[derive(Debug)]
pub struct Keys {
    store: Store,
    secure: bool,
    key: OnceCell<Vec<u8>>,
}

impl Keys {
    pub fn new(store: Store, secure_cookie: bool) -> Keys {
        Keys {
            store,
            secure: secure_cookie,
            key: OnceCell::new(),
        }
    }

    async fn key(&self) -> Result<&[u8], PageError> {
        let key = self
            .key
            .get_or_try_init(|| async {
                let mut fresh = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut fresh);
                self.store
                    .server_key(KEY_NAME, &fresh)
                    .await
                    .map_err(PageError::from)
            })
            .await?;
        Ok(key)
    }
}

/// The token a signed-out browser's nonce earns.
fn signed_out_token(key: &[u8], nonce: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"sensorcast sign-in form\0");
    mac.update(nonce.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// The nonce cookie the request carries, if well formed.
fn nonce_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v.to_string()))
        .filter_map(Result::ok)
        .find(|c| c.name() == NONCE_COOKIE)
        .map(|c| c.value().to_string())
        .filter(|v| {
            v.len() == 43
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A form's token, and the cookie to set with the page when the browser needs a new nonce.
pub struct FormToken {
    pub token: String,
    set_cookie: Option<String>,
}

impl FormToken {
    /// Adds the nonce cookie, if one was made, to the page.
    pub fn attach(&self, mut response: Response) -> Response {
        if let Some(c) = self.set_cookie.as_ref().and_then(|c| c.parse().ok()) {
            response.headers_mut().append(header::SET_COOKIE, c);
        }
        response
    }
}

/// The token for the forms of a page: the session's when it has one (signed in), else the
/// stateless one of the browser's nonce (made now if it has none). Writes nothing.
pub async fn form_token(
    session: &Session,
    keys: &Keys,
    headers: &HeaderMap,
) -> Result<FormToken, PageError> {
    if let Some(token) = session_token(session).await? {
        return Ok(FormToken {
            token,
            set_cookie: None,
        });
    }
    let (nonce, set_cookie) = match nonce_of(headers) {
        Some(n) => (n, None),
        None => {
            let n = fresh();
            let cookie = Cookie::build((NONCE_COOKIE, n.clone()))
                .path("/")
                .http_only(true)
                .secure(keys.secure)
                .same_site(tower_sessions::cookie::SameSite::Lax)
                .build();
            (n, Some(cookie.to_string()))
        }
    };
    Ok(FormToken {
        token: signed_out_token(keys.key().await?, &nonce),
        set_cookie,
    })
}

/// Clears the nonce cookie (at sign-in: the signed-out token must not outlive it).
pub fn clear_nonce(keys: &Keys, mut response: Response) -> Response {
    let cookie = Cookie::build((NONCE_COOKIE, ""))
        .path("/")
        .http_only(true)
        .secure(keys.secure)
        .max_age(time::Duration::ZERO)
        .build();
    if let Ok(v) = cookie.to_string().parse() {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

async fn session_token(session: &Session) -> Result<Option<String>, PageError> {
    session
        .get::<String>(SESSION_KEY)
        .await
        .map_err(PageError::internal)
}

/// The session's token, created on first use (signed-in pages).
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
    let api = request.uri().path().starts_with("/api/");
    if !same_origin(request.headers()) {
        tracing::info!(path = %request.uri().path(), "cross-origin form refused");
        return refused(api);
    }
    let Some(session) = request.extensions().get::<Session>().cloned() else {
        return PageError::internal("csrf guard outside the session layer").into_response();
    };
    let Some(keys) = request.extensions().get::<Arc<Keys>>().cloned() else {
        return PageError::internal("csrf guard without its keys").into_response();
    };
    let expected = match expected_token(&session, &keys, request.headers()).await {
        Ok(t) => t,
        Err(e) if api => return api_error(e).into_response(),
        Err(e) => return e.into_response(),
    };
    let (mut parts, body) = request.into_parts();
    let bytes = match to_bytes(body, MAX_FORM_BYTES).await {
        Ok(b) => b,
        // The JSON error contract holds for an oversized `/api/*` body too.
        Err(_) if api => return super::extract::payload_too_large().into_response(),
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
        let mut page = refused(api);
        if expected.is_none()
            && !api
            && !sends_cookie(&parts.headers, super::SESSION_COOKIE)
            && !sends_cookie(&parts.headers, NONCE_COOKIE)
        {
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

/// The token this request must carry: the session's, else the one its nonce cookie earns.
async fn expected_token(
    session: &Session,
    keys: &Keys,
    headers: &HeaderMap,
) -> Result<Option<String>, PageError> {
    if let Some(t) = session_token(session).await? {
        return Ok(Some(t));
    }
    match nonce_of(headers) {
        Some(nonce) => Ok(Some(signed_out_token(keys.key().await?, &nonce))),
        None => Ok(None),
    }
}

/// A failure reading the session or the key, as the JSON error contract on `/api/*` (the
/// message is already the client's sentence; the detail was logged).
fn api_error(e: PageError) -> ApiError {
    let code = if e.status == StatusCode::SERVICE_UNAVAILABLE {
        "unavailable"
    } else {
        "internal_error"
    };
    ApiError::new(e.status, code, e.message)
}

/// 403: as the JSON error contract on `/api/*`, as a page elsewhere.
fn refused(api: bool) -> Response {
    if api {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf_failed",
            "Missing or wrong anti-forgery token: send the page's token in X-CSRF-Token.",
        )
        .into_response();
    }
    PageError::new(
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form is out of date or came from another site. Go back, reload the page and try again.",
    )
    .into_response()
}

fn sends_cookie(headers: &HeaderMap, name: &str) -> bool {
    let cookie = format!("{name}=");
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
    fn a_signed_out_token_depends_on_the_key_and_the_nonce() {
        let (n1, n2) = (fresh(), fresh());
        let t = signed_out_token(b"key one", &n1);
        assert_eq!(t, signed_out_token(b"key one", &n1));
        assert_ne!(t, signed_out_token(b"key two", &n1));
        assert_ne!(t, signed_out_token(b"key one", &n2));
        assert_eq!(t.len(), 43);
        let h = headers(&[("cookie", &format!("a=b; {NONCE_COOKIE}={n1}; c=d"))]);
        assert_eq!(nonce_of(&h), Some(n1));
        let bad = headers(&[("cookie", &format!("{NONCE_COOKIE}=short"))]);
        assert_eq!(nonce_of(&bad), None);
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let (a, b) = (fresh(), fresh());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
    }
}

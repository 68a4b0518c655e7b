//! `GET /api/realtime`: authenticates the browser, reads its query, takes a stream permit and
//! answers with the stream the engine (`realtime::stream`) produces.

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::Response;
use axum::Extension;
use serde::Deserialize;
use tower_sessions::Session;

use super::auth::{renewal_due, session_user, RENEWED_AT_KEY};
use super::error::SignedInFailures;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiQuery;
use super::state::AppState;
use crate::domain::{now_ms, Scope, User};
use crate::realtime::direct::DirectWire;
use crate::realtime::gate::Filter;
use crate::realtime::limits::{LimitReached, StreamPermit};
use crate::realtime::stream::{self, Pace, Subscriber};
use crate::store::sessions::{EXPIRES_AT_KEY, USER_ID_KEY};
use crate::store::Store;

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RealtimeQuery {
    /// Only these devices (Milesight ids or devEUIs, comma-separated).
    devices: Option<String>,
    /// Replay stored events after this id (for clients that cannot send `Last-Event-ID`).
    #[serde(rename = "lastEventId")]
    #[param(value_type = Option<i64>)]
    last_event_id: Option<String>,
}

/// The Server-Sent Events stream (never ends: not fuzzed).
#[utoipa::path(get, path = "/api/realtime", tag = "realtime", security(("session" = [])),
    params(RealtimeQuery,
        ("Last-Event-ID" = Option<i64>, Header, description = "Replay stored events after this id.")),
    responses(
        (status = 200, description = "`text/event-stream`: one JSON line per event (see the contract).",
            content_type = "text/event-stream", body = String),
        (status = 400, description = "`invalid_last_event_id`, `invalid_query`.", body = ErrorBody),
        (status = 429, description = "Too many open streams: `too_many_streams`.", body = ErrorBody),
        SignedInFailures,
    ))]
pub async fn realtime(
    State(state): State<AppState>,
    session: Session,
    ApiQuery(q): ApiQuery<RealtimeQuery>,
    headers: HeaderMap,
    direct: Option<Extension<DirectWire>>,
) -> Result<Response, ApiError> {
    let checked_epoch = state.hub.passes.epoch();
    let session_id = session.id().map(|id| id.to_string());
    let (user, expires_at_ms) =
        signed_in(&state, &session, session_id.as_deref(), checked_epoch).await?;
    let last_id = last_event_id(&headers, q.last_event_id.as_deref())?;
    let scope = user.scope();
    let devices = match q
        .devices
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(list) => Some(resolve_devices(&state.store, &scope, list).await?),
    };
    let permit = state
        .limits
        .acquire(&state.hub, user.id, user.role)
        .map_err(|l| {
            let message = match l {
                LimitReached::User => {
                    "You have too many open live connections; close a tab and retry."
                }
                LimitReached::Total => {
                    "The server holds as many live connections as it allows; retry later."
                }
            };
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_streams", message)
        })?;
    let subscriber = Subscriber {
        filter: Arc::new(Filter { scope, devices }),
        user_id: user.id,
        role: user.role,
        session_id: session_id.unwrap_or_default(),
        expires_at_ms,
        checked_epoch,
    };
    let direct = direct.map(|Extension(wire)| wire);
    Ok(stream_response(&state, subscriber, permit, last_id, direct))
}

/// The stream's answer: its head, and its body from the engine (written directly by a shard
/// once caught up, when the server's transport offers its socket: `direct`).
fn stream_response(
    state: &AppState,
    subscriber: Subscriber,
    permit: StreamPermit,
    last_id: Option<i64>,
    direct: Option<DirectWire>,
) -> Response {
    let pace = Pace {
        keepalive: state.settings.keepalive,
        max_replay: state.settings.max_replay_events,
    };
    let body = stream::open(
        state.hub.clone(),
        state.store.clone(),
        pace,
        subscriber,
        permit,
        last_id,
        direct,
    );
    let mut response = Response::new(Body::from_stream(body));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// A stream request answered without the router, from the pass of a session checked within
/// the last second (`passes`): in a reconnect storm most are, and the router's layers (the
/// session and cookie machinery above all) were a quarter of a stream's set-up (bench/README.md).
/// The answer is the router's: the same checks, head, security headers, request id and
/// metric. Otherwise `NoPass` with the request read, for `answer_from_session`, or `Router`
/// when anything needs the router: a device filter (a database read), a query or
/// Last-Event-ID it refuses, or no stream permit left (its 429).
pub fn answer_from_pass(
    state: &AppState,
    request: &Request<Body>,
    direct: &DirectWire,
) -> FromPass {
    let started = std::time::Instant::now();
    let checked_epoch = state.hub.passes.epoch();
    let Some(plain) = plain_stream(request) else {
        return FromPass::Router;
    };
    let Some(pass) = state.hub.passes.get(&plain.session_id, now_ms()) else {
        return FromPass::NoPass(plain);
    };
    let checked = Checked {
        session_id: plain.session_id,
        user: pass.user,
        expires_at_ms: pass.expires_at_ms,
        epoch: checked_epoch,
    };
    match answer_checked(state, direct, checked, plain.last_id, started) {
        Some(response) => {
            state.metrics.streams_from_pass.inc();
            FromPass::Answered(response)
        }
        None => FromPass::Router,
    }
}

/// What `answer_from_pass` did with a request.
pub enum FromPass {
    Answered(Response),
    /// A plain stream request whose session has no pass: the request as read.
    NoPass(PlainStream),
    Router,
}

/// A stream request whose session has no pass (`FromPass::NoPass`: the first of each browser in a
/// reconnect storm after a deploy), checked with one read of the session and its user instead
/// of the router's layers and its two reads (the session, then the user); the pass is kept for
/// the next. The answer is the router's. None when the router must answer: no permit left (its
/// 429), no such session or user (its 401), the session's daily renewal due (the router saves
/// it), or a failed read (its 503).
pub async fn answer_from_session(
    state: &AppState,
    stream: PlainStream,
    direct: &DirectWire,
) -> Option<Response> {
    let started = std::time::Instant::now();
    let epoch = state.hub.passes.epoch();
    let PlainStream {
        session_id,
        last_id,
    } = stream;
    // Read with the sessions of every stream that asked meanwhile (each browser after a
    // deploy has its own): one query for all of them.
    let read = |ids: Vec<String>| {
        let store = state.store.clone();
        async move { store.stream_sessions(&ids).await }
    };
    let session = state
        .hub
        .shared
        .stream_sessions
        .get(session_id.clone(), read);
    let (record, user) = session.await?.ok()??;
    let data = &record.data;
    // As the router reads it: the record's user, who must be the one its row names.
    let user_id = data.get(USER_ID_KEY)?.as_i64()?;
    let user = user.filter(|u| u.id == user_id)?;
    let renewed_at = data.get(RENEWED_AT_KEY).and_then(serde_json::Value::as_i64);
    if renewal_due(renewed_at, now_ms()) {
        return None;
    }
    let expires_at_ms = data
        .get(EXPIRES_AT_KEY)
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(0);
    state
        .hub
        .passes
        .keep(&session_id, user.clone(), expires_at_ms, epoch);
    let checked = Checked {
        session_id,
        user,
        expires_at_ms,
        epoch,
    };
    let response = answer_checked(state, direct, checked, last_id, started)?;
    state.metrics.streams_from_session.inc();
    Some(response)
}

/// A session checked: by a pass or a read begun under `epoch`.
struct Checked {
    session_id: String,
    user: User,
    expires_at_ms: i64,
    epoch: u64,
}

/// A stream request the router need not answer (`plain_stream`).
pub struct PlainStream {
    session_id: String,
    last_id: Option<i64>,
}

/// The session id and Last-Event-ID of a stream request the router need not answer: a session
/// cookie read as the router reads it, no device filter, nothing in the query it refuses.
fn plain_stream(request: &Request<Body>) -> Option<PlainStream> {
    let session_id = session_cookie(request.headers())?;
    let q = match request.uri().query() {
        None => RealtimeQuery::default(),
        Some(_) => {
            axum::extract::Query::<RealtimeQuery>::try_from_uri(request.uri())
                .ok()?
                .0
        }
    };
    if q.devices.as_deref().is_some_and(|d| !d.trim().is_empty()) {
        return None;
    }
    let last_id = last_event_id(request.headers(), q.last_event_id.as_deref()).ok()?;
    Some(PlainStream {
        session_id,
        last_id,
    })
}

/// The router's answer for a checked session: the stream, or None when no permit is left.
fn answer_checked(
    state: &AppState,
    direct: &DirectWire,
    checked: Checked,
    last_id: Option<i64>,
    started: std::time::Instant,
) -> Option<Response> {
    let user = checked.user;
    let permit = state.limits.acquire(&state.hub, user.id, user.role).ok()?;
    let subscriber = Subscriber {
        filter: Arc::new(Filter {
            scope: user.scope(),
            devices: None,
        }),
        user_id: user.id,
        role: user.role,
        session_id: checked.session_id,
        expires_at_ms: checked.expires_at_ms,
        checked_epoch: checked.epoch,
    };
    let direct = Some(direct.clone());
    let mut response = stream_response(state, subscriber, permit, last_id, direct);
    super::secure(response.headers_mut());
    let id = uuid::Uuid::new_v4().to_string();
    if let Ok(id) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", id);
    }
    super::metrics::observe(
        &state.metrics,
        &axum::http::Method::GET,
        "/api/realtime",
        response.status(),
        started,
    );
    Some(response)
}

/// The session id of the request's session cookie, as tower-sessions reads it (the last one
/// of that name, a well-formed id, in its canonical form); None for anything unusual (a
/// percent-encoded value), which the router then reads.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    let mut found = None;
    for header in headers.get_all(header::COOKIE) {
        for pair in header.to_str().ok()?.split(';') {
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            if name.contains('%') || value.contains('%') {
                return None;
            }
            if name.trim() == super::SESSION_COOKIE {
                found = Some(value.trim());
            }
        }
    }
    let id: tower_sessions::session::Id = found?.parse().ok()?;
    Some(id.to_string())
}

/// The stream's user and session expiry: from a pass checked within the last second if there
/// is one (a reconnect storm opens thousands of streams a second), else from the database.
async fn signed_in(
    state: &AppState,
    session: &Session,
    id: Option<&str>,
    epoch: u64,
) -> Result<(User, i64), ApiError> {
    if let Some(pass) = id.and_then(|id| state.hub.passes.get(id, now_ms())) {
        return Ok((pass.user, pass.expires_at_ms));
    }
    let user = session_user(session, state)
        .await?
        .ok_or_else(ApiError::not_signed_in)?;
    // Sessions saved before the expiry was kept in them: 0, so the stream asks at once.
    let expires_at_ms = session
        .get::<i64>(EXPIRES_AT_KEY)
        .await
        .ok()
        .flatten()
        .unwrap_or(0);
    if let Some(id) = id {
        state
            .hub
            .passes
            .keep(id, user.clone(), expires_at_ms, epoch);
    }
    Ok((user, expires_at_ms))
}

fn last_event_id(headers: &HeaderMap, query: Option<&str>) -> Result<Option<i64>, ApiError> {
    let raw = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(query);
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s.parse::<i64>().map(Some).map_err(|_| {
            ApiError::bad_request(
                "invalid_last_event_id",
                "Last-Event-ID must be an event id (a number).",
            )
        }),
    }
}

/// The ids of the listed devices (Milesight ids or devEUIs) that the scope may see.
async fn resolve_devices(
    store: &Store,
    scope: &Scope,
    list: &str,
) -> Result<HashSet<i64>, ApiError> {
    let wanted: HashSet<String> = list
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    let visible = store.devices(scope).await?;
    Ok(visible
        .into_iter()
        .filter(|d| {
            let ids = [d.milesight_id.as_deref(), d.dev_eui.as_deref()];
            ids.into_iter()
                .flatten()
                .any(|id| wanted.contains(&id.to_ascii_lowercase()))
        })
        .map(|d| d.id)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookies(values: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::COOKIE, HeaderValue::from_bytes(v).unwrap());
        }
        headers
    }

    #[test]
    fn the_session_cookie_is_read_as_tower_sessions_reads_it() {
        let (a, b) = (
            tower_sessions::session::Id::default().to_string(),
            tower_sessions::session::Id::default().to_string(),
        );
        let name = crate::web::SESSION_COOKIE;
        let one = format!("theme=dark; {name}={a}");
        assert_eq!(session_cookie(&cookies(&[one.as_bytes()])), Some(a.clone()));
        // The last of that name wins, across headers and around spaces.
        let two = format!("{name}={a}");
        let three = format!("x=1;  {name} = {b} ");
        let headers = cookies(&[two.as_bytes(), three.as_bytes()]);
        assert_eq!(session_cookie(&headers), Some(b));
        // Anything the router reads otherwise is left to it.
        for odd in [
            format!("{name}=%41{a}"),
            format!("{name}={a}x"),
            format!("{name}=\"{a}\""),
            format!("other={a}"),
        ] {
            assert_eq!(session_cookie(&cookies(&[odd.as_bytes()])), None, "{odd}");
        }
        let non_ascii = format!("{name}={a}; n=\u{e9}");
        assert_eq!(session_cookie(&cookies(&[non_ascii.as_bytes()])), None);
        assert_eq!(session_cookie(&HeaderMap::new()), None);
    }
}

//! A stand-in for the Milesight gateway's HTTP API (there is no gateway here), as Milesight
//! documents it: `POST /api/internal/login` takes the user and the AES-128-CBC encrypted,
//! base64 password and answers a JWT; `POST /api/devices/{devEUI}/queue` takes ChirpStack v3's
//! `{"deviceQueueItem": {…}}` with `Authorization: Bearer <jwt>` and answers `{"fCnt": N}`.
//! It records every queue item it took and can be told to answer the next queue requests with
//! 401 (the token expired), 500 or 400.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

pub const GW_USER: &str = "admin";
pub const GW_PASSWORD: &str = "secret";
/// `GW_PASSWORD` encrypted as the gateway expects, computed outside our code:
/// `printf secret | openssl enc -aes-128-cbc -K 3131…31 -iv 3232…32 | base64`.
pub const GW_PASSWORD_SEALED: &str = "uAnm9CbV4HNquBOSohVHKQ==";

/// One queue item the gateway took.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    /// The devEUI in the path.
    pub path_eui: String,
    /// The `deviceQueueItem` object.
    pub item: Value,
}

#[derive(Default)]
struct Inner {
    issued: u64,
    /// Tokens still valid.
    valid: Vec<String>,
    logins: usize,
    refused_logins: usize,
    queued: Vec<Queued>,
    /// Answers for the next queue requests, before any normal one.
    script: VecDeque<u16>,
    /// Queue requests seen, answered or not.
    queue_requests: usize,
}

type Shared = Arc<Mutex<Inner>>;

pub struct FakeGateway {
    pub addr: SocketAddr,
    inner: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl FakeGateway {
    pub async fn start() -> FakeGateway {
        let inner: Shared = Default::default();
        let app = Router::new()
            .route("/api/internal/login", post(login))
            .route("/api/devices/{eui}/queue", post(queue))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake gateway");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGateway { addr, inner, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What it queued, in order.
    pub fn queued(&self) -> Vec<Queued> {
        self.inner.lock().unwrap().queued.clone()
    }

    pub fn logins(&self) -> usize {
        self.inner.lock().unwrap().logins
    }

    pub fn refused_logins(&self) -> usize {
        self.inner.lock().unwrap().refused_logins
    }

    pub fn queue_requests(&self) -> usize {
        self.inner.lock().unwrap().queue_requests
    }

    /// The next queue request is answered with `status` (401 also invalidates every token, as
    /// an expired session would).
    pub fn answer_next(&self, status: u16) {
        self.inner.lock().unwrap().script.push_back(status);
    }
}

impl Drop for FakeGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn login(State(inner): State<Shared>, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    let mut g = inner.lock().unwrap();
    if body["username"] != GW_USER || body["password"] != GW_PASSWORD_SEALED {
        g.refused_logins += 1;
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "authentication failed", "code": 16})),
        );
    }
    g.logins += 1;
    g.issued += 1;
    let jwt = format!("eyJ.test-token-{}", g.issued);
    g.valid.push(jwt.clone());
    (StatusCode::OK, Json(json!({ "jwt": jwt })))
}

async fn queue(
    State(inner): State<Shared>,
    Path(eui): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let mut g = inner.lock().unwrap();
    g.queue_requests += 1;
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !g.valid.iter().any(|t| t == token) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "authentication failed: token is expired", "code": 16})),
        );
    }
    match g.script.pop_front() {
        Some(401) => {
            g.valid.clear();
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "authentication failed: token is expired", "code": 16})),
            );
        }
        Some(500) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": "network-server unavailable", "code": 14})),
            )
        }
        Some(400) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "object does not exist", "code": 5})),
            )
        }
        Some(other) => {
            let status = StatusCode::from_u16(other).expect("a status");
            return (status, Json(json!({"error": "scripted", "code": 2})));
        }
        None => {}
    }
    let item = &body["deviceQueueItem"];
    if !item.is_object() || item["fPort"].as_u64().is_none() || item["data"].as_str().is_none() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid deviceQueueItem", "code": 3})),
        );
    }
    g.queued.push(Queued {
        path_eui: eui,
        item: item.clone(),
    });
    let f_cnt = g.queued.len();
    (StatusCode::OK, Json(json!({ "fCnt": f_cnt })))
}

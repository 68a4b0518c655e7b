//! A webhook receiver that never answers: each attempt runs out at `--notify-timeout-secs`, is
//! recorded as timed out, and is tried again with the same delivery id until the receiver
//! answers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};

use super::{DEV, EUI};
use crate::support::*;

const SECRET_16: &str = "receiver-secret-0123";

/// Holds the first two requests without an answer (as a hung receiver does); then 200.
async fn silent_twice() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let state = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap| {
            let state = state.clone();
            async move {
                let id = headers
                    .get("x-sensorcast-delivery")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let n = {
                    let mut seen = state.lock().unwrap();
                    seen.push(id);
                    seen.len()
                };
                if n <= 2 {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

async fn a_receiver_that_never_answers_is_timed_out_and_retried(backend: Backend) {
    let mut args = test_args();
    args.notify_timeout_secs = 1;
    args.notify_retry_secs = 1;
    let app = spawn_or_skip!(backend, args);
    let seed = mdp_reading("seed", DEV, EUI, -20.0, -20.0);
    assert_eq!(app.post_mdp(&seed).await.status(), 200);
    app.assign(DEV, "North").await;
    let (url, seen) = silent_twice().await;
    app.state
        .store
        .add_webhook_endpoint("North", &url, SECRET_16, "test")
        .await
        .expect("add webhook");
    app.rule_at_most(DEV, -15.0).await;
    let hot = mdp_reading("hot", DEV, EUI, -9.5, -20.0);
    assert_eq!(app.post_mdp(&hot).await.status(), 200);

    let mut hook = None;
    for _ in 0..300 {
        let rows = app.state.store.notifications(20).await.unwrap();
        hook = rows
            .into_iter()
            .find(|n| n.channel == "webhook" && n.status == "delivered");
        if hook.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hook = hook.expect("delivered once the receiver answers");
    assert_eq!(hook.attempts, 3, "two timed out, the third answered");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        seen.iter().all(|d| *d == hook.delivery_id),
        "one delivery id: {seen:?}"
    );
    let timed_out = query_ids(
        app.db(),
        &format!(
            "SELECT id FROM notification_attempts WHERE notification_id = {} \
             AND ok = FALSE AND result = 'timed out' ORDER BY id",
            hook.id
        ),
    )
    .await;
    assert_eq!(timed_out.len(), 2, "each timeout is recorded");
}
both_backends!(a_receiver_that_never_answers_is_timed_out_and_retried);

//! Notifications end to end, with real peers: a real SMTP server (aiosmtpd) receives the alarm
//! emails; a webhook receiver in the test checks each signature and answers 500 twice before
//! 200; escalation notifies the site's managers and the admins again; an SMTP server that is
//! down delays delivery and loses nothing; bad endpoints and SMTP URLs are refused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use crate::support::binary::Binary;
use crate::support::smtp::{self, SmtpServer};
use crate::support::*;
use sensorcast::domain::Role;

const DEVICE: &str = "1988618061618400201";
const EUI: &str = "24e124707e080201";
const SECRET_16: &str = "receiver-secret-0123";

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, String, String)>>>);

/// A webhook receiver: records (delivery id, signature, body); each delivery id gets 500 twice,
/// then 200.
async fn receiver() -> (String, Received) {
    let got = Received::default();
    let state = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let state = state.clone();
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                let id = h("x-sensorcast-delivery");
                let mut all = state.0.lock().unwrap();
                all.push((id.clone(), h("x-sensorcast-signature"), body));
                let tries = all.iter().filter(|(d, _, _)| *d == id).count();
                if tries < 3 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

fn sign(body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(SECRET_16.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn reading(event: &str, t1: f64) -> String {
    let now = sensorcast::domain::now_ms();
    json!([{"eventId": event, "eventCreatedTime": (now / 1000).to_string(), "eventType": "DEVICE_DATA",
        "data": {"deviceProfile": {"deviceId": DEVICE, "devEUI": EUI, "name": "Freezer N", "model": "TS302"},
                 "type": "PROPERTY", "tslId": "", "ts": now, "payload": {"temperature_left": t1}}}])
    .to_string()
}

async fn set_rule(app: &TestApp) {
    app.rule_at_most(DEVICE, -15.0).await;
}

async fn wait_until<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn emails_webhooks_and_escalation(backend: Backend) {
    let Some(smtp) = SmtpServer::start(0).await else {
        return;
    };
    let mut args = test_args();
    args.smtp_url = Some(smtp.url());
    args.notify_retry_secs = 1;
    args.escalate_after_secs = Some(3);
    args.public_url = Some("https://sc.example".into());
    let app = spawn_or_skip!(backend, args);
    assert_eq!(app.post_mdp(&reading("seed", -20.0)).await.status(), 200);
    app.assign(DEVICE, "North").await;
    app.add_user("m@north.test", Role::Manager, &["North"])
        .await;
    app.add_user("quiet@north.test", Role::Employee, &["North"])
        .await;
    app.add_user("keen@north.test", Role::Employee, &["North"])
        .await;
    app.add_user("m@south.test", Role::Manager, &["South"])
        .await;
    let keen = app.browser_as("keen@north.test", PASSWORD).await;
    let csrf = app.page_csrf(&keen).await;
    let r = keen
        .post(app.url("/settings"))
        .form(&[("csrf", csrf.as_str()), ("email_alerts", "on")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let (url, received) = receiver().await;
    app.state
        .store
        .add_webhook_endpoint("North", &url, SECRET_16, "test")
        .await
        .expect("add webhook");
    set_rule(&app).await;

    assert_eq!(app.post_mdp(&reading("hot", -9.5)).await.status(), 200);
    // Email: the admin, the site's manager, and the employee who opted in.
    let mails = smtp.wait_for(3).await;
    let mut to: Vec<String> = mails.iter().map(|m| smtp::recipient(m)).collect();
    to.sort();
    assert_eq!(
        to,
        ["admin@example.com", "keen@north.test", "m@north.test"],
        "{mails:?}"
    );
    let m = &mails[0];
    assert!(m.contains("Subject: Alarm: Freezer N"), "{m}");
    assert!(
        m.contains("https://sc.example/devices/") && m.contains(DEVICE),
        "a link: {m}"
    );
    assert!(
        m.contains("text/html") && m.contains("text/plain"),
        "both bodies: {m}"
    );

    // The webhook: three attempts of one delivery, each signed, the third accepted.
    let raised_attempts = || -> Vec<(String, String, String)> {
        let all = received.0.lock().unwrap();
        all.iter()
            .filter(|(_, _, b)| b.contains("\"alarm_raised\""))
            .cloned()
            .collect()
    };
    wait_until("three webhook attempts", || raised_attempts().len() >= 3).await;
    let got = raised_attempts();
    let first = &got[0];
    assert_eq!(got.len(), 3, "three attempts, then accepted: {got:?}");
    assert!(
        got.iter().all(|(id, _, _)| *id == first.0),
        "one delivery id: {got:?}"
    );
    for (_, signature, body) in &got {
        assert_eq!(signature, &sign(body), "signed with the secret");
    }
    let body: Value = serde_json::from_str(&first.2).unwrap();
    assert_eq!(body["type"], "alarm_raised");
    assert_eq!(body["data"]["deviceId"], DEVICE);
    let alarm_id = body["data"]["alarmId"].as_i64().unwrap();
    let rows = app
        .state
        .store
        .notifications_of_alarm(alarm_id)
        .await
        .unwrap();
    let mut hook = None;
    for _ in 0..100 {
        let rows = app
            .state
            .store
            .notifications_of_alarm(alarm_id)
            .await
            .unwrap();
        hook = rows
            .into_iter()
            .find(|n| n.channel == "webhook" && n.status == "delivered");
        if hook.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hook = hook.expect("the webhook notification is delivered");
    assert_eq!(hook.attempts, 3);
    assert_eq!(hook.delivery_id, first.0);
    let raised =
        |n: &&sensorcast::domain::NotificationRow| n.channel == "email" && n.reason == "raised";
    assert_eq!(rows.iter().filter(raised).count(), 3);

    // Nobody acknowledges: after 3 s the site's managers and the admins hear again, once.
    let mails = smtp.wait_for(5).await;
    let escalated: Vec<String> = mails
        .iter()
        .filter(|m| m.contains("Subject: Still unacknowledged"))
        .map(|m| smtp::recipient(m))
        .collect();
    let mut escalated = escalated;
    escalated.sort();
    assert_eq!(
        escalated,
        ["admin@example.com", "m@north.test"],
        "{mails:?}"
    );
    wait_until("the escalated webhook", || {
        received
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|(_, _, b)| b.contains("alarm_escalated"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(smtp.messages().len(), 5, "escalated once only");
}
both_backends!(emails_webhooks_and_escalation);

async fn a_mail_server_outage_delays_and_loses_nothing(backend: Backend) {
    let port = free_port();
    let mut args = test_args();
    args.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
    args.notify_retry_secs = 1;
    let app = spawn_or_skip!(backend, args);
    assert_eq!(app.post_mdp(&reading("seed", -20.0)).await.status(), 200);
    set_rule(&app).await;
    assert_eq!(app.post_mdp(&reading("hot", -9.5)).await.status(), 200);
    // The admin's email fails while nothing listens.
    let mut tried = false;
    for _ in 0..100 {
        let rows = app.state.store.notifications(10).await.unwrap();
        if rows
            .iter()
            .any(|n| n.channel == "email" && n.attempts >= 1 && n.status == "pending")
        {
            tried = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        tried,
        "a failed attempt is recorded and the email stays pending"
    );
    let Some(smtp) = SmtpServer::start(port).await else {
        return;
    };
    let mails = smtp.wait_for(1).await;
    assert_eq!(mails.len(), 1, "delivered once the server is back");
    assert_eq!(smtp::recipient(&mails[0]), "admin@example.com");
}
both_backends!(a_mail_server_outage_delays_and_loses_nothing);

async fn bad_endpoints_are_refused(backend: Backend) {
    let app = spawn_or_skip!(backend);
    let store = &app.state.store;
    for (url, secret) in [
        ("ftp://hooks.example.com/x", SECRET_16),
        ("https://", SECRET_16),
        ("hooks.example.com/x", SECRET_16),
        ("https://hooks.example.com/x", "too-short"),
    ] {
        let e = store
            .add_webhook_endpoint("North", url, secret, "test")
            .await;
        assert!(
            matches!(e, Err(sensorcast::store::StoreError::Invalid(_))),
            "{url} {secret}: {e:?}"
        );
    }
    assert!(
        store.webhook_endpoints().await.unwrap().is_empty(),
        "nothing stored"
    );
    // The admin form says why, in words.
    let admin = app.admin().await;
    let csrf = app.page_csrf(&admin).await;
    let r = admin
        .post(app.url("/admin/notifications/webhooks"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("site", "North"),
            ("url", "ftp://x.example"),
            ("secret", SECRET_16),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let page = admin
        .get(app.url("/admin/notifications"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Not added: the URL must start with http:// or https://"),
        "{page}"
    );
    assert!(store.webhook_endpoints().await.unwrap().is_empty());
}
both_backends!(bad_endpoints_are_refused);

/// The nice value of each of `pid`'s threads with this name (Linux: `/proc/PID/task/TID/stat`,
/// field 19).
fn nice_of_threads(pid: u32, name: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("the server's threads") {
        let dir = task.expect("a thread").path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).expect("its stat");
        // After the name in parentheses: state is field 3, nice is field 19.
        let rest = &stat[stat.rfind(')').expect("stat's name") + 2..];
        let nice = rest
            .split(' ')
            .nth(16)
            .expect("field 19")
            .parse()
            .expect("a number");
        found.push(nice);
    }
    found
}

/// The dispatcher yields the CPU to ingest: its thread (and what it starts) runs at nice 19,
/// the writer at the normal priority.
#[tokio::test]
async fn the_dispatcher_runs_at_the_lowest_priority() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("nice.db").display());
    let mut server = Binary::start(&url, free_port(), &dir.path().join("server.log"));
    server.ready().await;
    // Thread names are cut to 15 bytes.
    assert_eq!(nice_of_threads(server.pid(), "sensorcast-noti"), vec![19]);
    assert_eq!(nice_of_threads(server.pid(), "sensorcast-writ"), vec![0]);
}

#[test]
fn a_bad_smtp_url_stops_the_server_naming_the_flag() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sensorcast"))
        .args([
            "--smtp-url",
            "mailto:nobody",
            "--database-url",
            "sqlite:///nonexistent/x.db",
        ])
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run sensorcast");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("--smtp-url"), "{text}");
}

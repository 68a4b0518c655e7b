//! Issue 13: attacks that worked against main, each refused now (every test here failed before
//! its fix).

use crate::support::*;
use sensorcast::ingest::signature;
use serde_json::{json, Value};

const DEVICE_ID: &str = "1904371063669395457";
const EUI: &str = "24D124707E040001";
const MDP_UUID: &str = "6167cb40-8e5e-4d53-904f-968928e488a6";

/// The content policy every response carries.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'";

async fn json_of(r: reqwest::Response) -> Value {
    r.json().await.expect("json body")
}

/// An MDP request with the given signed headers and any webhook uuid (None: no header).
async fn post_mdp_as(
    app: &TestApp,
    uuid: Option<&str>,
    body: &str,
    ts: &str,
    nonce: &str,
    sig: &str,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(app.url("/api/webhooks/milesight"))
        .header("content-type", "application/json")
        .header(signature::SIGNATURE, sig)
        .header(signature::TIMESTAMP, ts)
        .header(signature::NONCE, nonce)
        .body(body.to_string());
    if let Some(uuid) = uuid {
        req = req.header(signature::UUID, uuid);
    }
    req.send().await.expect("post mdp")
}

// ---------------------------------------------------------------------------------------------
// 1. Metric labels come from a fixed set
// ---------------------------------------------------------------------------------------------

fn latency_series(text: &str) -> usize {
    text.lines()
        .filter(|l| l.starts_with("sensorcast_http_request_duration_seconds_count{"))
        .count()
}

async fn metrics_text(app: &TestApp) -> String {
    let r = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_and_paths_add_no_metric_series() {
    let app = spawn_or_skip!(Backend::Sqlite);
    let client = reqwest::Client::new();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let paths = [
        "/login",
        "/api/me",
        "/api/webhooks/milesight",
        "/static/app.css",
    ];
    let send = |i: usize, r: u64| {
        let method = reqwest::Method::from_bytes(format!("X{r:016X}").as_bytes()).unwrap();
        let path = if i % 2 == 0 {
            paths[i % paths.len()].to_string()
        } else {
            format!("/no-such-{r:x}/{i}")
        };
        client.request(method, app.url(&path)).send()
    };
    // Every kind of answer once, so each of its series exists before the count.
    for i in 0..8 {
        let r = next();
        send(i, r).await.unwrap();
    }
    metrics_text(&app).await;
    let before = metrics_text(&app).await;
    for i in 0..1000 {
        let r = next();
        let answer = send(i, r).await.unwrap();
        assert!(answer.status().is_client_error(), "{}", answer.status());
    }
    let after = metrics_text(&app).await;
    assert_eq!(latency_series(&after), latency_series(&before), "{after}");
    assert!(
        after.len() < before.len() + 2048,
        "/metrics grew from {} to {} bytes",
        before.len(),
        after.len()
    );
    for label in [
        r#"method="other""#,
        r#"route="unmatched""#,
        r#"status="4xx""#,
    ] {
        assert!(after.contains(label), "{label} missing: {after}");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. A signature is not replayable under another webhook uuid
// ---------------------------------------------------------------------------------------------

async fn captured_signature_is_refused_under_any_uuid(backend: Backend) {
    let app = spawn_or_skip!(backend);
    let ts = (sensorcast::domain::now_ms() / 1000).to_string();
    let nonce = "captured-nonce-1";
    let sig = signature::sign(SECRET.as_bytes(), &ts, nonce);
    let first = mdp_reading("r-1", DEVICE_ID, EUI, 1.0, 2.0);
    let r = post_mdp_as(&app, Some(MDP_UUID), &first, &ts, nonce, &sig).await;
    assert_eq!(r.status(), 200);
    let stored = app.snapshot().await;

    let upper = MDP_UUID.to_ascii_uppercase();
    let uuids = [
        Some(MDP_UUID),
        Some("u-2"),
        Some("attacker-1"),
        Some(upper.as_str()),
        Some(""),
        None,
    ];
    for (i, uuid) in uuids.into_iter().enumerate() {
        let forged = mdp_reading(&format!("forged-{i}"), DEVICE_ID, EUI, 99.0, 99.0);
        let r = post_mdp_as(&app, uuid, &forged, &ts, nonce, &sig).await;
        assert_eq!(r.status(), 401, "uuid {uuid:?}");
        assert_eq!(
            json_of(r).await["error"],
            "request_replayed",
            "uuid {uuid:?}"
        );
    }
    assert_eq!(app.snapshot().await, stored, "no replay stored anything");
}
both_backends!(captured_signature_is_refused_under_any_uuid);

// ---------------------------------------------------------------------------------------------
// 8c. Client timestamps out of range are refused, without overflow
// ---------------------------------------------------------------------------------------------

async fn extreme_timestamps_are_refused(backend: Backend) {
    let app = spawn_or_skip!(backend);
    let before = app.snapshot().await;
    let now = sensorcast::domain::now_ms() / 1000;
    let body = mdp_reading("t-1", DEVICE_ID, EUI, 1.0, 2.0);
    // now − 2^63 is now + i64::MIN.
    for ts in [now.wrapping_add(i64::MIN), i64::MIN, i64::MAX, i64::MIN + 1] {
        let ts = ts.to_string();
        let nonce = format!("n-{ts}");
        let sig = signature::sign(SECRET.as_bytes(), &ts, &nonce);
        let r = app.post_mdp_signed(&body, &ts, &nonce, &sig).await;
        assert_eq!(r.status(), 400, "signature timestamp {ts}");
        assert_eq!(json_of(r).await["error"], "request_expired", "{ts}");
    }
    // Times inside the body: event creation, reading time, history record time.
    let event = |created: Value, ts: Value, kind: &str, payload: Value| {
        json!({
            "eventId": format!("t-{created}-{ts}"), "eventCreatedTime": created, "eventType": "DEVICE_DATA",
            "data": {"deviceProfile": {"deviceId": DEVICE_ID, "devEUI": EUI},
                     "type": kind, "tslId": if kind == "EVENT" { "historical_data" } else { "" },
                     "ts": ts, "payload": payload}
        })
        .to_string()
    };
    let reading = json!({"temperature_left": 1.0});
    let history = json!({"temperature_left": 1.0, "timestamp": i64::MIN});
    let cases = [
        event(json!(i64::MIN), json!(null), "PROPERTY", reading.clone()),
        event(json!(i64::MAX), json!(null), "PROPERTY", reading.clone()),
        event(
            json!(now.wrapping_add(i64::MIN)),
            json!(null),
            "PROPERTY",
            reading.clone(),
        ),
        event(json!(now), json!(i64::MIN), "PROPERTY", reading.clone()),
        event(json!(now), json!(i64::MAX), "PROPERTY", reading.clone()),
        event(json!(now), json!(i64::MIN.to_string()), "PROPERTY", reading),
        event(json!(now), json!(null), "EVENT", history),
    ];
    for body in cases {
        let r = app.post_mdp(&body).await;
        assert_eq!(r.status(), 400, "{body}");
        assert_eq!(json_of(r).await["error"], "invalid_payload", "{body}");
    }
    assert_eq!(app.snapshot().await, before, "nothing stored");
}
both_backends!(extreme_timestamps_are_refused);

// ---------------------------------------------------------------------------------------------
// 8f. Gateway statuses without a time are never taken for duplicates
// ---------------------------------------------------------------------------------------------

async fn gateway_statuses_without_time_are_each_applied(backend: Backend) {
    let app = spawn_or_skip!(backend);
    let admin = app.admin().await;
    let status =
        |s: &str| format!(r#"{{"devEUI":"{EUI}","deviceName":"Cold room","status":"{s}"}}"#);
    for (s, expected) in [
        ("offline", "OFFLINE"),
        ("offline", "OFFLINE"),
        ("online", "ONLINE"),
        ("offline", "OFFLINE"),
    ] {
        let r = app.post_gateway(&status(s)).await;
        assert_eq!(r.status(), 200);
        let body = json_of(r).await;
        assert_eq!(body["accepted"], 1, "{s}: {body}");
        assert_eq!(body["duplicates"], 0, "{s}: {body}");
        let devices: Value = get_json(&admin, app.url("/api/devices")).await;
        assert_eq!(devices[0]["status"], expected, "after {s}");
    }
}
both_backends!(gateway_statuses_without_time_are_each_applied);

// ---------------------------------------------------------------------------------------------
// 8d. The signature window cannot outlast the remembered nonces
// ---------------------------------------------------------------------------------------------

#[test]
fn a_signature_window_longer_than_nonces_are_kept_is_refused() {
    use clap::Parser;
    use sensorcast::config::Cli;
    for bad in ["1801", "3601", "86400", "0"] {
        let err = Cli::try_parse_from(["sensorcast", "--signature-window-secs", bad])
            .expect_err(bad)
            .to_string();
        assert!(err.contains("--signature-window-secs"), "{err}");
    }
    for good in ["1", "60", "1800"] {
        let cli = Cli::try_parse_from(["sensorcast", "--signature-window-secs", good]).unwrap();
        assert_eq!(cli.serve.signature_window_secs.to_string(), good);
    }
}

// ---------------------------------------------------------------------------------------------
// 8e. X-Forwarded-For is not trusted by default
// ---------------------------------------------------------------------------------------------

async fn forged_forwarded_for_does_not_escape_the_address_limit(backend: Backend) {
    let app = spawn_or_skip!(backend);
    let client = browser();
    let form = client.get(app.url("/login")).send().await.unwrap();
    let token = csrf_in(&form.text().await.unwrap()).unwrap();
    let mut statuses = Vec::new();
    // A fresh email and a fresh "client address" per guess: only the peer's address counts.
    for i in 0..21 {
        let r = client
            .post(app.url("/login"))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .header("x-real-ip", format!("198.51.100.{i}"))
            .form(&[
                ("email", format!("guess{i}@example.com").as_str()),
                ("password", "wrong"),
                ("csrf", &token),
            ])
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert!(statuses[..20].iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(statuses[20], 429, "{statuses:?}");
}
both_backends!(forged_forwarded_for_does_not_escape_the_address_limit);

// ---------------------------------------------------------------------------------------------
// 8b. CSV: every text cell quoted, formulas defused
// ---------------------------------------------------------------------------------------------

async fn csv_text_cells_are_quoted(backend: Backend) {
    let app = spawn_or_skip!(backend);
    let body = json!({
        "eventId": "csv-1", "eventType": "DEVICE_DATA",
        "data": {"deviceProfile": {"deviceId": DEVICE_ID, "devEUI": EUI, "name": "x;=1+2;y"},
                 "type": "PROPERTY", "ts": sensorcast::domain::now_ms(),
                 "payload": {"temperature_left": 1.5}}
    });
    assert_eq!(app.post_mdp(&body.to_string()).await.status(), 200);
    let admin = app.admin().await;
    let r = admin
        .get(app.url(&format!("/devices/{DEVICE_ID}/export.csv")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let row = text.lines().nth(1).expect("one reading");
    assert!(
        row.starts_with(&format!("\"{DEVICE_ID}\",\"x;=1+2;y\",\"")),
        "{row}"
    );
    assert!(row.contains(",1.5,"), "numbers stay bare: {row}");
    assert!(
        row.ends_with(",false,\"DEVICE_DATA\",\"mdp\",\"\""),
        "{row}"
    );
}
both_backends!(csv_text_cells_are_quoted);

// ---------------------------------------------------------------------------------------------
// 8g. Security headers on every response; no-store; /metrics not public
// ---------------------------------------------------------------------------------------------

fn assert_security_headers(what: &str, h: &reqwest::header::HeaderMap) {
    assert_eq!(h["content-security-policy"], CSP, "{what}");
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["referrer-policy"], "same-origin", "{what}");
}

async fn every_response_carries_the_security_headers(backend: Backend) {
    let app = spawn_or_skip!(backend);
    let anon = reqwest::Client::new();
    let admin = app.admin().await;
    let version = sensorcast::web::asset_version();
    let probes: Vec<(&str, reqwest::Response, u16, Option<&str>)> = vec![
        (
            "404 page",
            anon.get(app.url("/no/such/page")).send().await.unwrap(),
            404,
            Some("no-store"),
        ),
        (
            "404 api",
            anon.get(app.url("/api/nope")).send().await.unwrap(),
            404,
            Some("no-store"),
        ),
        (
            "405",
            anon.post(app.url("/healthz")).send().await.unwrap(),
            405,
            Some("no-store"),
        ),
        (
            "static",
            anon.get(app.url(&format!("/static/{version}/app.css")))
                .send()
                .await
                .unwrap(),
            200,
            Some("public, max-age=31536000, immutable"),
        ),
        (
            "script",
            anon.get(app.url(&format!("/static/{version}/js/main.js")))
                .send()
                .await
                .unwrap(),
            200,
            Some("public, max-age=31536000, immutable"),
        ),
        (
            "healthz",
            anon.get(app.url("/healthz")).send().await.unwrap(),
            200,
            Some("no-store"),
        ),
        (
            "metrics",
            anon.get(app.url("/metrics")).send().await.unwrap(),
            200,
            Some("no-store"),
        ),
        (
            "webhook probe",
            anon.get(app.url("/api/webhooks/milesight"))
                .send()
                .await
                .unwrap(),
            200,
            Some("no-store"),
        ),
        (
            "webhook refused",
            anon.post(app.url("/api/webhooks/milesight/gateway"))
                .send()
                .await
                .unwrap(),
            401,
            Some("no-store"),
        ),
        (
            "webhook accepted",
            app.post_mdp(&mdp_reading("h-1", DEVICE_ID, EUI, 1.0, 2.0))
                .await,
            200,
            Some("no-store"),
        ),
        (
            "login page",
            anon.get(app.url("/login")).send().await.unwrap(),
            200,
            Some("no-store"),
        ),
        (
            "api signed out",
            anon.get(app.url("/api/me")).send().await.unwrap(),
            401,
            Some("no-store"),
        ),
        (
            "api me",
            admin.get(app.url("/api/me")).send().await.unwrap(),
            200,
            Some("no-store"),
        ),
        (
            "api devices",
            admin.get(app.url("/api/devices")).send().await.unwrap(),
            200,
            Some("no-store"),
        ),
        (
            "admin page",
            admin.get(app.url("/admin")).send().await.unwrap(),
            200,
            Some("no-store"),
        ),
        (
            "device page",
            admin
                .get(app.url(&format!("/devices/{DEVICE_ID}")))
                .send()
                .await
                .unwrap(),
            200,
            Some("no-store"),
        ),
        (
            "csv",
            admin
                .get(app.url(&format!("/devices/{DEVICE_ID}/export.csv")))
                .send()
                .await
                .unwrap(),
            200,
            Some("no-store"),
        ),
        (
            "stream refused",
            anon.get(app.url("/api/realtime")).send().await.unwrap(),
            401,
            Some("no-store"),
        ),
    ];
    for (what, r, status, cache) in probes {
        assert_eq!(r.status().as_u16(), status, "{what}");
        assert_security_headers(what, r.headers());
        if let Some(cache) = cache {
            assert_eq!(r.headers()["cache-control"], cache, "{what}");
        }
    }
    // The stream (served on the raw path) keeps its contract headers and gets the others too.
    let stream = admin.get(app.url("/api/realtime")).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    let h = stream.headers();
    assert_eq!(h["content-type"], "text/event-stream");
    assert_eq!(h["cache-control"], "no-cache");
    assert_eq!(h["x-accel-buffering"], "no");
    assert_security_headers("stream", h);
}
both_backends!(every_response_carries_the_security_headers);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_without_a_token_are_only_for_direct_local_peers() {
    let app = spawn_or_skip!(Backend::Sqlite);
    let r = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(r.status(), 200, "a local scraper, no proxy in between");
    for header in ["x-forwarded-for", "x-real-ip", "forwarded"] {
        let r = reqwest::Client::new()
            .get(app.url("/metrics"))
            .header(header, "for=203.0.113.9")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "through a proxy ({header})");
        assert_security_headers("metrics refused", r.headers());
        assert_eq!(json_of(r).await["error"], "forbidden");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_token_is_required_when_set() {
    let mut args = test_args();
    args.metrics_token = Some("m-token-1".into());
    let app = spawn_or_skip!(Backend::Sqlite, args);
    let client = reqwest::Client::new();
    let scrape = |auth: Option<&'static str>| {
        let mut req = client
            .get(app.url("/metrics"))
            .header("x-forwarded-for", "203.0.113.9");
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        req.send()
    };
    for (auth, code) in [
        (None, "metrics_token_missing"),
        (Some("Bearer nope"), "metrics_token_invalid"),
        (Some("Basic bS10b2tlbi0x"), "metrics_token_missing"),
    ] {
        let r = scrape(auth).await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"metrics\"");
        assert_security_headers("metrics 401", r.headers());
        assert_eq!(json_of(r).await["error"], code, "{auth:?}");
    }
    let r = scrape(Some("Bearer m-token-1")).await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("sensorcast_events_broadcast_total 0"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_names_the_client_it_forwards() {
    let mut args = test_args();
    args.trusted_proxies = "127.0.0.1, ::1".parse().unwrap();
    let app = spawn_or_skip!(Backend::Sqlite, args);
    let client = browser();
    let form = client.get(app.url("/login")).send().await.unwrap();
    let token = csrf_in(&form.text().await.unwrap()).unwrap();
    let guess = |i: usize, from: &'static str| {
        client
            .post(app.url("/login"))
            .header("x-forwarded-for", format!("192.0.2.77, {from}"))
            .form(&[
                ("email", format!("guess{i}@example.com")),
                ("password", "wrong".to_string()),
                ("csrf", token.clone()),
            ])
            .send()
    };
    for i in 0..20 {
        assert_eq!(
            guess(i, "203.0.113.1").await.unwrap().status(),
            401,
            "guess {i}"
        );
    }
    assert_eq!(guess(20, "203.0.113.1").await.unwrap().status(), 429);
    // Another client behind the same proxy is not held back.
    assert_eq!(guess(21, "203.0.113.2").await.unwrap().status(), 401);
}

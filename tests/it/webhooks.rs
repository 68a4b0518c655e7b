//! Webhooks in, as Milesight sends them; readings back out through the JSON API.

use crate::support::*;
use sensorcast::ingest::signature;
use sensorcast::store::Table;
use serde_json::{json, Value};

const DEVICE_ID: &str = "1904371063669395457";
const EUI: &str = "24D124707E040001";

async fn json_of(r: reqwest::Response) -> Value {
    r.json().await.expect("json body")
}

async fn mdp_reading_is_stored_once_and_read_back(backend: Backend) {
    let app = spawn_or_skip!(backend);
    let body = mdp_reading("6167cb40-0001", DEVICE_ID, EUI, -18.4, 4.1);
    let r = app.post_mdp(&body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        json_of(r).await,
        json!({"result": "success", "accepted": 1, "duplicates": 0})
    );

    // The same eventId again (Milesight retries): acknowledged, not stored twice.
    let r = app.post_mdp(&body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(json_of(r).await["duplicates"], 1);
    assert_eq!(app.count(Table::Readings).await, 1);
    assert_eq!(app.count(Table::Devices).await, 1);
    // new_device + new_telemetry
    assert_eq!(app.count(Table::Events).await, 2);

    let admin = app.admin().await;
    let devices: Value = get_json(&admin, app.url("/api/devices")).await;
    assert_eq!(
        devices[0]["deviceId"], DEVICE_ID,
        "19-digit id stays an exact string"
    );
    assert_eq!(devices[0]["devEUI"], "24d124707e040001");
    assert_eq!(devices[0]["name"], "Freezer A");
    assert_eq!(devices[0]["status"], "ONLINE");

    let t: Value = get_json(
        &admin,
        app.url(&format!("/api/devices/{DEVICE_ID}/telemetry")),
    )
    .await;
    let reading = &t["readings"][0];
    assert_eq!(reading["temperature"], -18.4);
    assert_eq!(reading["temperature2"], 4.1);
    assert_eq!(reading["battery"], 93);
    assert_eq!(
        reading["raw"]["data"]["payload"]["temperature_left"], -18.4,
        "payload kept as received"
    );
    // The devEUI works as an id too, in any case.
    let by_eui = admin
        .get(app.url("/api/devices/24D124707E040001/telemetry"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_eui.status(), 200);
}
both_backends!(mdp_reading_is_stored_once_and_read_back);

async fn mdp_array_status_history_and_test_events(backend: Backend) {
    let app = spawn_or_skip!(backend);
    let now_s = sensorcast::domain::now_ms() / 1000;
    let body = json!([
        {"eventId": "e-1", "eventCreatedTime": now_s, "eventType": "WEBHOOK_TEST", "data": "Test Milesight Webhook Successfully."},
        {"eventID": "e-2", "eventCreatedTime": now_s, "eventType": "DEVICE_DATA",
         "data": {"deviceProfile": {"deviceId": 1904371063669395457u64, "devEUI": EUI, "name": "Freezer A", "model": "TS302"},
                  "type": "OFFLINE", "tslId": ""}},
        {"eventId": "e-3", "eventCreatedTime": now_s, "eventType": "DEVICE_DATA",
         "data": {"deviceProfile": {"deviceId": DEVICE_ID, "devEUI": EUI},
                  "type": "EVENT", "tslId": "historical_data", "payload": {"timestamp": now_s - 3600, "temperature": 5.5}}},
        {"eventId": "e-4", "eventCreatedTime": now_s, "eventType": "TASK_DATA", "data": {"taskId": 1}},
        {"eventId": "e-5", "eventCreatedTime": now_s, "eventType": "SYSTEM_MESSAGES", "data": {"msg": "daily push limit"}}
    ]);
    let r = app.post_mdp(&body.to_string()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(json_of(r).await["accepted"], 5);
    assert_eq!(app.count(Table::Deliveries).await, 5);
    assert_eq!(app.count(Table::Readings).await, 1);

    let admin = app.admin().await;
    let devices: Value = get_json(&admin, app.url("/api/devices")).await;
    // A historical record does not bring an offline device back nor refresh "last seen".
    assert_eq!(devices[0]["status"], "OFFLINE");
    assert_eq!(devices[0]["lastSeenMs"], Value::Null);

    let t: Value = get_json(
        &admin,
        app.url(&format!("/api/devices/{DEVICE_ID}/telemetry")),
    )
    .await;
    assert_eq!(t["readings"][0]["historical"], true);
    assert_eq!(t["readings"][0]["measuredAt"], (now_s - 3600) * 1000);

    // A live reading brings it back online.
    app.post_mdp(&mdp_reading("e-6", DEVICE_ID, EUI, 1.0, 2.0))
        .await;
    let devices: Value = get_json(&admin, app.url("/api/devices")).await;
    assert_eq!(devices[0]["status"], "ONLINE");
    assert!(devices[0]["lastSeenMs"].as_i64().is_some());
}
both_backends!(mdp_array_status_history_and_test_events);

/// Each bad request: its status, its error code, and nothing stored.
async fn bad_mdp_requests_are_refused_and_store_nothing(backend: Backend) {
    let app = spawn_or_skip!(backend);
    let good = mdp_reading("ok-1", DEVICE_ID, EUI, 1.0, 2.0);
    let now = (sensorcast::domain::now_ms() / 1000).to_string();
    let sig = |ts: &str, nonce: &str| signature::sign(SECRET.as_bytes(), ts, nonce);
    let before = app.snapshot().await;

    let cases: Vec<(&str, reqwest::Response, u16, &str)> = vec![
        ("malformed json", app.post_mdp("{\"eventId\":").await, 400, "invalid_json"),
        ("wrong type", app.post_mdp(r#"{"eventId":"x","eventType":"DEVICE_DATA","data":"nope"}"#).await, 400, "invalid_payload"),
        ("missing field", app.post_mdp(r#"{"eventType":"DEVICE_DATA"}"#).await, 400, "invalid_payload"),
        ("non-numeric reading", app.post_mdp(r#"{"eventId":"nn","eventType":"DEVICE_DATA","data":{"deviceProfile":{"devEUI":"aa"},"type":"PROPERTY","payload":{"battery":"lots"}}}"#).await, 400, "invalid_payload"),
        ("bad signature", app.post_mdp_signed(&good, &now, "n-1", &"0".repeat(64)).await, 401, "signature_invalid"),
        ("stale timestamp", {
            let old = (sensorcast::domain::now_ms() / 1000 - 600).to_string();
            app.post_mdp_signed(&good, &old, "n-2", &sig(&old, "n-2")).await
        }, 400, "request_expired"),
        ("missing signature", app.client.post(app.url("/api/webhooks/milesight")).header("content-type", "application/json").body(good.clone()).send().await.unwrap(), 401, "signature_missing"),
        ("wrong content type", {
            reqwest::Client::new().post(app.url("/api/webhooks/milesight"))
                .header("content-type", "text/plain")
                .header(signature::SIGNATURE, sig(&now, "n-3")).header(signature::TIMESTAMP, &now).header(signature::NONCE, "n-3")
                .body(good.clone()).send().await.unwrap()
        }, 415, "unsupported_media_type"),
        ("too large", app.post_mdp(&format!("[{}]", vec![good.as_str(); 8000].join(","))).await, 413, "payload_too_large"),
    ];
    for (what, response, status, code) in cases {
        assert_eq!(response.status().as_u16(), status, "{what}");
        let body = json_of(response).await;
        assert_eq!(body["error"], code, "{what}: {body}");
        assert_no_internal_detail(&body.to_string(), what);
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}"
        );
    }
    assert_eq!(
        app.snapshot().await,
        before,
        "refused requests stored nothing"
    );

    // A captured header set replayed with another body is refused.
    let nonce = "replay-nonce-1";
    let r = app
        .post_mdp_signed(&good, &now, nonce, &sig(&now, nonce))
        .await;
    assert_eq!(r.status(), 200);
    let after_first = app.snapshot().await;
    let other = mdp_reading("ok-2", DEVICE_ID, EUI, 99.0, 99.0);
    let r = app
        .post_mdp_signed(&other, &now, nonce, &sig(&now, nonce))
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(json_of(r).await["error"], "request_replayed");
    assert_eq!(app.snapshot().await, after_first);
}
both_backends!(bad_mdp_requests_are_refused_and_store_nothing);

#[tokio::test]
async fn without_a_secret_signed_webhooks_are_refused() {
    let _turn = shared_turn().await;
    let mut args = test_args();
    args.webhook_secret = None;
    args.gateway_token = None;
    let app = spawn_or_skip!(Backend::Sqlite, args);
    let r = app
        .post_mdp(&mdp_reading("x", DEVICE_ID, EUI, 1.0, 1.0))
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(json_of(r).await["error"], "webhook_secret_not_configured");
    let r = app.post_gateway("{}").await;
    assert_eq!(r.status(), 401);
    assert_eq!(json_of(r).await["error"], "gateway_token_not_configured");
    assert_eq!(app.snapshot().await, [0, 0, 0, 0]);
    // MDP probes the URL with other methods.
    let r = reqwest::get(app.url("/api/webhooks/milesight"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

const UPLINK: &str = r#"{"applicationID":"1","applicationName":"cloud","data":"AXVkA2f7AARnAQE=","devEUI":"24d124707e040001",
 "deviceName":"Cold room 2","fCnt":128,"fPort":85,"rxInfo":[{"mac":"24e124fffef54092","rssi":-51,"loRaSNR":13.8}],
 "time":"2022-12-27T07:21:27.078763Z","txInfo":{"frequency":868100000}}"#;

async fn gateway_uplinks_decode_dedupe_and_unify_with_mdp(backend: Backend) {
    let app = spawn_or_skip!(backend);
    // The same physical device first seen through MDP...
    app.post_mdp(&mdp_reading("m-1", DEVICE_ID, EUI, 1.0, 2.0))
        .await;
    // ...then through a gateway: one device, two readings.
    let r = app.post_gateway(UPLINK).await;
    assert_eq!(r.status(), 200);
    assert_eq!(json_of(r).await["accepted"], 1);
    let r = app.post_gateway(UPLINK).await;
    assert_eq!(
        json_of(r).await["duplicates"],
        1,
        "same devEUI + fCnt is not stored again"
    );
    assert_eq!(app.count(Table::Devices).await, 1);
    assert_eq!(app.count(Table::Readings).await, 2);

    let admin = app.admin().await;
    let t: Value = get_json(
        &admin,
        app.url(&format!("/api/devices/{DEVICE_ID}/telemetry?limit=10")),
    )
    .await;
    let gw = t["readings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["source"] == "gateway")
        .expect("gateway reading");
    assert_eq!(gw["temperature"], 25.1);
    assert_eq!(gw["temperature2"], 25.7);
    assert_eq!(gw["battery"], 100);
    assert_eq!(gw["raw"]["body"]["fCnt"], 128);

    // Status notification from newer firmware.
    let r = app.post_gateway(r#"{"devEUI":"24D124707E040001","deviceName":"Cold room 2","status":"offline","time":"2026-03-12T06:40:13Z"}"#).await;
    assert_eq!(r.status(), 200);
    let devices: Value = get_json(&admin, app.url("/api/devices")).await;
    assert_eq!(devices[0]["status"], "OFFLINE");
    assert_eq!(devices[0]["deviceId"], DEVICE_ID);
}
both_backends!(gateway_uplinks_decode_dedupe_and_unify_with_mdp);

async fn bad_gateway_requests_are_refused_and_store_nothing(backend: Backend) {
    let app = spawn_or_skip!(backend);
    let post = |token: Option<&'static str>, query: &'static str, body: &'static str| {
        let mut req = reqwest::Client::new()
            .post(app.url(&format!("/api/webhooks/milesight/gateway{query}")))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.header("x-sensorcast-token", t);
        }
        req.send()
    };
    let cases = vec![
        (
            "no token",
            post(None, "", UPLINK).await.unwrap(),
            401,
            "token_missing",
        ),
        (
            "wrong token",
            post(Some("nope"), "", UPLINK).await.unwrap(),
            401,
            "token_invalid",
        ),
        (
            "wrong query token",
            post(None, "?token=nope", UPLINK).await.unwrap(),
            401,
            "token_invalid",
        ),
        (
            "truncated frame",
            post(
                Some(TOKEN),
                "",
                r#"{"devEUI":"24d124707e040001","fCnt":1,"fPort":85,"data":"AXVkA2f7"}"#,
            )
            .await
            .unwrap(),
            400,
            "undecodable_payload",
        ),
        (
            "bad base64",
            post(
                Some(TOKEN),
                "",
                r#"{"devEUI":"24d124707e040001","fPort":85,"data":"%%%"}"#,
            )
            .await
            .unwrap(),
            400,
            "invalid_payload",
        ),
        (
            "bad devEUI",
            post(
                Some(TOKEN),
                "",
                r#"{"devEUI":"xyz","fPort":85,"data":"AXVk"}"#,
            )
            .await
            .unwrap(),
            400,
            "invalid_payload",
        ),
        (
            "malformed",
            post(Some(TOKEN), "", "{").await.unwrap(),
            400,
            "invalid_json",
        ),
    ];
    for (what, response, status, code) in cases {
        assert_eq!(response.status().as_u16(), status, "{what}");
        let body = json_of(response).await;
        assert_eq!(body["error"], code, "{what}: {body}");
        assert_no_internal_detail(&body.to_string(), what);
        if what == "truncated frame" {
            assert!(
                body["message"].as_str().unwrap().contains("offset"),
                "{body}"
            );
        }
    }
    assert_eq!(app.snapshot().await, [0, 0, 0, 0]);
    // The token may also come in the query string.
    let r = post(None, "?token=gw-token-123", UPLINK).await.unwrap();
    assert_eq!(r.status(), 200);
}
both_backends!(bad_gateway_requests_are_refused_and_store_nothing);

async fn api_requires_sign_in_and_validates_queries(backend: Backend) {
    let app = spawn_or_skip!(backend);
    let anon = browser();
    let r = anon.get(app.url("/api/devices")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(json_of(r).await["error"], "unauthorized");
    let r = anon.get(app.url("/api/realtime")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/json");

    let wrong = app.login_with(&anon, ADMIN_EMAIL, "wrong password").await;
    assert_eq!(wrong.status(), 401);

    let admin = app.admin().await;
    for i in 0..5 {
        app.post_mdp(&mdp_reading(
            &format!("q-{i}"),
            DEVICE_ID,
            EUI,
            i as f64,
            0.0,
        ))
        .await;
    }
    let t: Value = get_json(
        &admin,
        app.url(&format!("/api/devices/{DEVICE_ID}/telemetry?limit=2")),
    )
    .await;
    let temps: Vec<f64> = t["readings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["temperature"].as_f64().unwrap())
        .collect();
    assert_eq!(temps.len(), 2);
    let all: Value = get_json(
        &admin,
        app.url(&format!("/api/devices/{DEVICE_ID}/telemetry")),
    )
    .await;
    let times: Vec<i64> = all["readings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["measuredAt"].as_i64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    let future = sensorcast::domain::now_ms() + 60_000;
    let none: Value = get_json(
        &admin,
        app.url(&format!(
            "/api/devices/{DEVICE_ID}/telemetry?since={future}"
        )),
    )
    .await;
    assert_eq!(none["readings"], json!([]));
    let until: Value = get_json(
        &admin,
        app.url(&format!(
            "/api/devices/{DEVICE_ID}/telemetry?until=2000-01-01T00:00:00Z"
        )),
    )
    .await;
    assert_eq!(until["readings"], json!([]));

    for bad in ["limit=0", "limit=abc", "since=yesterday"] {
        let r = admin
            .get(app.url(&format!("/api/devices/{DEVICE_ID}/telemetry?{bad}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(json_of(r).await["error"], "invalid_query");
    }
    let r = admin
        .get(app.url("/api/devices/nope/telemetry"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(json_of(r).await["error"], "not_found");

    // Signing out ends API access with that cookie.
    let r = app.logout(&admin).await;
    assert_eq!(r.status(), 303);
    let r = admin.get(app.url("/api/devices")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}
both_backends!(api_requires_sign_in_and_validates_queries);

#[tokio::test]
async fn a_body_trickled_byte_by_byte_is_cut_off() {
    let _turn = shared_turn().await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut args = test_args();
    args.webhook_timeout_secs = 1;
    let app = spawn_or_skip!(Backend::Sqlite, args);
    let ts = (sensorcast::domain::now_ms() / 1000).to_string();
    let sig = signature::sign(SECRET.as_bytes(), &ts, "slow");
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/webhooks/milesight HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\
         x-msc-request-signature: {sig}\r\nx-msc-request-timestamp: {ts}\r\nx-msc-request-nonce: slow\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let trickle = async {
        for b in b"[{\"eventId\":".iter().cycle().take(200) {
            if tcp.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), trickle).await;
    let mut response = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read(&mut response))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&response[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    assert_eq!(app.snapshot().await, [0, 0, 0, 0]);
}

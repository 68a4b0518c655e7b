//! Device commands end to end, against a stand-in for the Milesight gateway's HTTP API
//! (`support::gateway_api`): a manager asks for a command, the dispatcher signs in to the
//! gateway (AES-encrypted password) and queues the TS302 bytes on fPort 85, and the device's
//! answer comes back as a real uplink through the gateway webhook, which confirms it. Each
//! status is a `command_status` event on the stream, scoped by site and replayed after a
//! reconnect; refusals (not configured, employees, other sites, bad arguments) store nothing;
//! gateway failures (expired token, 5xx, 4xx), expiry, back-filled history, and one send per
//! command with two instances on one PostgreSQL database.

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::support::gateway_api::{FakeGateway, GW_PASSWORD, GW_USER};
use crate::support::sse::{self, Msg};
use crate::support::*;
use sensorcast::domain::Role;
use sensorcast::store::{Table, Work};

const EUI: &str = "24e124707e170001";
const OTHER_EUI: &str = "24e124707e170002";
/// A plain TS302 reading: battery 100 %, 24.1 °C.
const READING: &str = "0175640367f100";
const T0: i64 = 1_790_000_000_000;

fn b64(hex_bytes: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(hex::decode(hex_bytes).unwrap())
}

/// A UG6x uplink of `eui` carrying these TS302 bytes, as the gateway posts it.
async fn uplink(app: &TestApp, eui: &str, f_cnt: i64, hex_bytes: &str) {
    let body = json!({
        "applicationID": "1", "applicationName": "cold-chain", "deviceName": "Freezer 7",
        "devEUI": eui, "fCnt": f_cnt, "fPort": 85, "data": b64(hex_bytes),
    });
    let r = app.post_gateway(&body.to_string()).await;
    assert_eq!(
        r.status(),
        200,
        "uplink {hex_bytes}: {}",
        r.text().await.unwrap_or_default()
    );
}

fn gateway_args(gw: &FakeGateway) -> sensorcast::config::ServeArgs {
    let mut args = test_args();
    args.gateway_api_url = Some(gw.url());
    args.gateway_api_user = Some(GW_USER.into());
    args.gateway_api_password = Some(GW_PASSWORD.into());
    args.gateway_api_retry_secs = 1;
    args
}

struct Person {
    client: reqwest::Client,
    csrf: String,
}

struct World {
    gw: FakeGateway,
    app: TestApp,
    manager: Person,
    employee: Person,
    stranger: Person,
}

async fn person(app: &TestApp, email: &str, role: Role, site: &str) -> Person {
    app.add_user(email, role, &[site]).await;
    let client = app.browser_as(email, PASSWORD).await;
    let csrf = app.page_csrf(&client).await;
    Person { client, csrf }
}

/// Two TS302s seen through the gateway, in two sites; a manager and an employee of the
/// first, a manager of the second.
async fn seed(app: &TestApp) -> (Person, Person, Person) {
    uplink(app, EUI, 1, READING).await;
    uplink(app, OTHER_EUI, 1, READING).await;
    app.assign(EUI, "North").await;
    app.assign(OTHER_EUI, "South").await;
    (
        person(app, "m@north.test", Role::Manager, "North").await,
        person(app, "e@north.test", Role::Employee, "North").await,
        person(app, "m@south.test", Role::Manager, "South").await,
    )
}

async fn world(backend: Backend) -> Option<World> {
    let gw = FakeGateway::start().await;
    let app = TestApp::spawn_with(backend, gateway_args(&gw)).await?;
    let (manager, employee, stranger) = seed(&app).await;
    Some(World {
        gw,
        app,
        manager,
        employee,
        stranger,
    })
}

async fn send(app: &TestApp, who: &Person, device: &str, body: Value) -> reqwest::Response {
    who.client
        .post(app.url(&format!("/api/devices/{device}/commands")))
        .header("x-csrf-token", &who.csrf)
        .json(&body)
        .send()
        .await
        .expect("POST command")
}

/// Asks for a command that must be accepted; its id.
async fn send_ok(app: &TestApp, who: &Person, device: &str, body: Value) -> i64 {
    let r = send(app, who, device, body.clone()).await;
    assert_eq!(r.status(), 202, "{body}");
    let v: Value = r.json().await.expect("JSON");
    assert_eq!(v["status"], "pending", "{v}");
    assert_eq!(v.as_object().map(|o| o.len()), Some(2), "{v}");
    v["commandId"].as_i64().expect("a command id")
}

/// The next `command_status` event (others skipped).
async fn next_command(s: &mut sse::Sse) -> Msg {
    loop {
        let m = s.next_event().await;
        if m.kind() == "command_status" {
            return m;
        }
    }
}

/// The next `command_status` event, which must be about `id` and have `status`.
async fn expect_status(s: &mut sse::Sse, id: i64, status: &str) -> Msg {
    let m = next_command(s).await;
    assert_eq!(m.json["data"]["commandId"], id, "{m:?}");
    assert_eq!(m.json["data"]["status"], status, "{m:?}");
    m
}

async fn commands_of(app: &TestApp, who: &Person, device: &str) -> Vec<Value> {
    let v = get_json(
        &who.client,
        app.url(&format!("/api/devices/{device}/commands")),
    )
    .await;
    v["commands"].as_array().cloned().expect("commands")
}

async fn counts(app: &TestApp) -> [i64; 3] {
    [
        app.count(Table::Commands).await,
        app.count(Table::AuditLog).await,
        app.count(Table::Events).await,
    ]
}

async fn round_trip(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let app = &w.app;
    let mut stream = sse::open(app, &w.manager.client, "", None).await;
    let id = send_ok(
        app,
        &w.manager,
        EUI,
        json!({"command": "set_report_interval", "minutes": 10}),
    )
    .await;

    let pending = expect_status(&mut stream, id, "pending").await;
    let data = &pending.json["data"];
    assert_eq!(data["deviceId"], EUI);
    assert_eq!(data["devEUI"], EUI);
    assert_eq!(data["deviceName"], "Freezer 7");
    assert_eq!(data["command"], "set_report_interval");
    assert!(data["at"].as_i64().is_some(), "{data}");
    let sent = expect_status(&mut stream, id, "sent").await;
    assert!(sent.id > pending.id);

    // The gateway got exactly the TS302 bytes for 10 minutes, on fPort 85, after one sign-in.
    let queued = w.gw.queued();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].path_eui, EUI);
    assert_eq!(
        queued[0].item,
        json!({"confirmed": false, "data": b64("ff8e000a00"), "devEUI": EUI, "fPort": 85})
    );
    assert_eq!(queued[0].item["data"], "/44ACgA=");
    assert_eq!((w.gw.logins(), w.gw.refused_logins()), (1, 0));

    // The device answers in a later uplink with its report-interval frame: confirmed.
    uplink(app, EUI, 2, "ff8e000a00").await;
    let confirmed = expect_status(&mut stream, id, "confirmed").await;

    let list = commands_of(app, &w.employee, EUI).await;
    assert_eq!(list.len(), 1);
    let c = &list[0];
    assert_eq!(c["commandId"], id);
    assert_eq!(c["status"], "confirmed");
    assert_eq!(
        c["request"],
        json!({"command": "set_report_interval", "minutes": 10})
    );
    assert_eq!(c["downlink"], "ff8e000a00");
    assert_eq!(c["requestedBy"], "m@north.test");
    assert_eq!(c["attempts"], 1);
    assert_eq!(c["error"], Value::Null);
    assert_eq!(c["at"], confirmed.json["data"]["at"]);
    // The device now reports every 10 minutes (as it said).
    let devices = get_json(&w.manager.client, app.url("/api/devices")).await;
    let d = devices
        .as_array()
        .and_then(|ds| ds.iter().find(|d| d["devEUI"] == EUI).cloned())
        .expect("the device");
    assert_eq!(d["reportIntervalS"], 600, "{d}");

    // A second command: newest first in the list.
    let second = send_ok(app, &w.manager, EUI, json!({"command": "sync_time"})).await;
    expect_status(&mut stream, second, "pending").await;
    expect_status(&mut stream, second, "sent").await;
    let ids: Vec<i64> = commands_of(app, &w.manager, EUI)
        .await
        .iter()
        .map(|c| c["commandId"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [second, id]);

    // Another site's manager sees neither the list nor the events.
    let r = w
        .stranger
        .client
        .get(app.url(&format!("/api/devices/{EUI}/commands")))
        .send()
        .await
        .unwrap();
    assert_json_error(r, 404, "not_found", "another site's device").await;
    let mut stranger = sse::open(app, &w.stranger.client, "", Some("0")).await;
    while let Ok(Some(m)) = stranger.next_within(Duration::from_millis(500)).await {
        assert_ne!(m.kind(), "command_status", "leaked to another site: {m:?}");
    }

    // Reconnecting after the first event replays the statuses, in order, with their ids.
    let after = (pending.id.unwrap() - 1).to_string();
    let mut replay = sse::open(app, &w.employee.client, "", Some(&after)).await;
    for (want, msg) in [
        ("pending", &pending),
        ("sent", &sent),
        ("confirmed", &confirmed),
    ] {
        let m = expect_status(&mut replay, id, want).await;
        assert_eq!(m.id, msg.id);
        assert_eq!(m.raw, msg.raw);
    }

    // Each request is in the audit trail, with who asked and what.
    let admin = app.admin().await;
    let audit = get_json(&admin, app.url("/api/audit?action=command.sent")).await;
    let entries = audit["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{audit}");
    let first = entries
        .iter()
        .find(|e| e["after"]["commandId"] == id)
        .expect("the first request is audited");
    assert_eq!(first["actor"], "m@north.test");
    assert_eq!(first["target"], format!("device {EUI}"));
    assert_eq!(first["after"]["request"]["minutes"], 10);
    assert_eq!(first["after"]["downlink"], "ff8e000a00");
}
both_backends!(round_trip);

async fn refusals_store_nothing(backend: Backend) {
    // Without the gateway API: refused, nothing stored, nothing audited.
    let app = spawn_or_skip!(backend);
    let (manager, _, _) = seed(&app).await;
    let before = counts(&app).await;
    let r = send(
        &app,
        &manager,
        EUI,
        json!({"command": "set_report_interval", "minutes": 10}),
    )
    .await;
    assert_json_error(r, 409, "downlink_not_configured", "no gateway API").await;
    assert_eq!(counts(&app).await, before, "nothing stored");
    let list = get_json(
        &manager.client,
        app.url(&format!("/api/devices/{EUI}/commands")),
    )
    .await;
    assert_eq!(
        list,
        json!({"commands": [], "canCommand": true, "configured": false})
    );
    drop(app);

    let Some(w) = world(backend).await else {
        return;
    };
    let app = &w.app;
    let before = counts(app).await;
    let good = json!({"command": "reboot"});
    let r = send(app, &w.employee, EUI, good.clone()).await;
    assert_json_error(r, 403, "forbidden", "an employee").await;
    let r = send(app, &w.stranger, EUI, good.clone()).await;
    assert_json_error(r, 404, "not_found", "another site's device").await;
    let r = send(app, &w.manager, "24e124707e17ffff", good.clone()).await;
    assert_json_error(r, 404, "not_found", "no such device").await;
    let r = w
        .manager
        .client
        .post(app.url(&format!("/api/devices/{EUI}/commands")))
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_json_error(r, 403, "csrf_failed", "without the anti-forgery token").await;

    let cases = [
        (
            json!({"command": "set_report_interval", "minutes": 0}),
            "minutes",
        ),
        (
            json!({"command": "set_report_interval", "minutes": 1441}),
            "minutes",
        ),
        (
            json!({"command": "set_report_interval", "minutes": "10"}),
            "minutes",
        ),
        (json!({"command": "set_report_interval"}), "minutes"),
        (
            json!({"command": "set_threshold", "probe": 3, "max": 5.0}),
            "probe",
        ),
        (
            json!({"command": "set_threshold", "probe": 1, "min": -15.0, "max": -25.0}),
            "min",
        ),
        (
            json!({"command": "set_threshold", "probe": 1, "minimum": -25.0}),
            "minimum",
        ),
        (
            json!({"command": "fetch_history", "from": T0 + 1000, "to": T0}),
            "from",
        ),
        (
            json!({"command": "fetch_history", "from": -5, "to": T0}),
            "from/to",
        ),
        (json!({"command": "format_disk"}), "format_disk"),
        (json!({"minutes": 10}), "command"),
        (json!([1, 2]), "command"),
    ];
    for (body, field) in cases {
        let r = send(app, &w.manager, EUI, body.clone()).await;
        assert_eq!(r.status(), 400, "{body}");
        let text = r.text().await.unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"], "invalid_command", "{body}: {v}");
        let message = v["message"].as_str().unwrap_or("");
        assert!(
            message.contains(field),
            "{body}: {message:?} names {field:?}"
        );
        assert_no_internal_detail(&text, "a bad command");
    }
    let r = w
        .manager
        .client
        .post(app.url(&format!("/api/devices/{EUI}/commands")))
        .header("x-csrf-token", &w.manager.csrf)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_json_error(r, 400, "invalid_json", "not JSON").await;

    assert_eq!(
        counts(app).await,
        before,
        "refused: nothing stored or audited"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.gw.queue_requests(), 0, "nothing went to the gateway");
    assert_eq!(w.gw.logins(), 0);
}
both_backends!(refusals_store_nothing);

async fn gateway_failures(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let app = &w.app;
    let mut stream = sse::open(app, &w.manager.client, "", None).await;

    // The session expired: 401, one more sign-in, then queued.
    w.gw.answer_next(401);
    let reboot = send_ok(app, &w.manager, EUI, json!({"command": "reboot"})).await;
    expect_status(&mut stream, reboot, "pending").await;
    expect_status(&mut stream, reboot, "sent").await;
    assert_eq!(w.gw.logins(), 2, "signed in again after the 401");
    assert_eq!(w.gw.queued()[0].item["data"], b64("ff10ff"));

    // The gateway could not take it (500): tried again after the backoff, then queued.
    w.gw.answer_next(500);
    let sync = send_ok(app, &w.manager, EUI, json!({"command": "sync_time"})).await;
    expect_status(&mut stream, sync, "pending").await;
    expect_status(&mut stream, sync, "sent").await;
    let c = commands_of(app, &w.manager, EUI).await;
    assert_eq!(c[0]["commandId"], sync);
    assert_eq!(c[0]["attempts"], 2);
    assert_eq!(
        c[0]["error"],
        Value::Null,
        "the retried error is gone once sent"
    );
    assert_eq!(w.gw.queued()[1].item["data"], b64("ff4a00"));

    // The gateway refused it (400): failed, with its answer, and not tried again.
    w.gw.answer_next(400);
    let threshold = send_ok(
        app,
        &w.manager,
        EUI,
        json!({"command": "set_threshold", "probe": 1, "min": -25, "max": -15}),
    )
    .await;
    expect_status(&mut stream, threshold, "pending").await;
    let failed = expect_status(&mut stream, threshold, "failed").await;
    let why = failed.json["data"]["error"].as_str().unwrap_or("");
    assert!(
        why.contains("400") && why.contains("object does not exist"),
        "{why}"
    );
    assert_no_internal_detail(why, "the gateway's refusal");
    let c = commands_of(app, &w.manager, EUI).await;
    assert_eq!(c[0]["status"], "failed");
    assert_eq!(c[0]["error"], why);
    assert_eq!(
        c[0]["downlink"], "ff06cc06ff6aff00000000",
        "v1 bytes by default"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        w.gw.queue_requests(),
        5,
        "401+retry, 500+retry, 400: five requests"
    );
    assert_eq!(w.gw.queued().len(), 2);
}
both_backends!(gateway_failures);

/// A v1 `20 CE` stored record of probe 1 at `at_s`, tenths of a °C.
fn record(at_s: i64, tenths: i16) -> String {
    format!(
        "20ce{}10{}0000",
        hex::encode((at_s as u32).to_le_bytes()),
        hex::encode(tenths.to_le_bytes())
    )
}

async fn replies_confirm_reboot_and_history(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let app = &w.app;
    let mut stream = sse::open(app, &w.manager.client, "", None).await;

    // Reboot: confirmed by the power-on frames the device sends when it rejoins.
    let reboot = send_ok(app, &w.manager, EUI, json!({"command": "reboot"})).await;
    expect_status(&mut stream, reboot, "pending").await;
    expect_status(&mut stream, reboot, "sent").await;
    uplink(app, EUI, 2, READING).await; // an ordinary reading confirms nothing
    uplink(app, EUI, 3, "ff0bffff0101").await;
    expect_status(&mut stream, reboot, "confirmed").await;

    // History after an outage: the device resends its records of the range.
    let (from, to) = (T0, T0 + 3_600_000);
    let fetch = send_ok(
        app,
        &w.manager,
        EUI,
        json!({"command": "fetch_history", "from": from, "to": to}),
    )
    .await;
    expect_status(&mut stream, fetch, "pending").await;
    expect_status(&mut stream, fetch, "sent").await;
    let s = T0 / 1000;
    let expected = format!(
        "fd6c{}{}",
        hex::encode((s as u32).to_le_bytes()),
        hex::encode(((s + 3600) as u32).to_le_bytes())
    );
    assert_eq!(w.gw.queued()[1].item["data"], b64(&expected));

    let readings = app.count(Table::Readings).await;
    let backfill = format!("{}{}", record(s + 600, -200), record(s + 1200, -185));
    uplink(app, EUI, 4, &backfill).await;
    // The records are stored as historical readings, then the request is confirmed.
    let mut seen = Vec::new();
    loop {
        let m = stream.next_event().await;
        if m.kind() == "new_telemetry" {
            assert_eq!(m.json["data"]["historical"], true, "{m:?}");
            seen.push(m.json["data"]["measuredAt"].as_i64().unwrap());
        }
        if m.kind() == "command_status" {
            assert_eq!(m.json["data"]["commandId"], fetch);
            assert_eq!(m.json["data"]["status"], "confirmed");
            break;
        }
    }
    assert_eq!(seen, [T0 + 600_000, T0 + 1_200_000]);
    assert_eq!(app.count(Table::Readings).await, readings + 2);

    // The same records again (the device retransmits): no duplicate, nothing confirmed.
    uplink(app, EUI, 5, &backfill).await;
    stream.expect_quiet(Duration::from_millis(700)).await;
    assert_eq!(app.count(Table::Readings).await, readings + 2);
    let telemetry = get_json(
        &w.manager.client,
        app.url(&format!(
            "/api/devices/{EUI}/telemetry?since={}&until={}",
            T0, to
        )),
    )
    .await;
    let points = telemetry["readings"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(points.len(), 2, "{telemetry}");
}
both_backends!(replies_confirm_reboot_and_history);

async fn unconfirmed_commands_expire(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let app = &w.app;
    let mut stream = sse::open(app, &w.manager.client, "", None).await;
    let interval = send_ok(
        app,
        &w.manager,
        EUI,
        json!({"command": "set_report_interval", "minutes": 15}),
    )
    .await;
    expect_status(&mut stream, interval, "pending").await;
    expect_status(&mut stream, interval, "sent").await;
    // Another interval in the reply is not this command's confirmation.
    uplink(app, EUI, 2, "ff8e000a00").await;
    // A gateway that keeps failing leaves the next command pending, with the reason.
    for _ in 0..20 {
        w.gw.answer_next(500);
    }
    let reboot = send_ok(app, &w.manager, EUI, json!({"command": "reboot"})).await;
    expect_status(&mut stream, reboot, "pending").await;
    let mut waited = 0;
    loop {
        let c = commands_of(app, &w.manager, EUI).await;
        if c[0]["error"].is_string() {
            assert_eq!(c[0]["status"], "pending");
            break;
        }
        waited += 1;
        assert!(waited < 50, "the failed try is recorded: {c:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The sweep (the watchdog's, with --command-timeout-mins): not yet…
    let young = Work::ExpireCommands {
        timeout_ms: 60 * 60_000,
    };
    let outcome = app.state.writer.submit(young).await.expect("sweep");
    assert_eq!(outcome.accepted, 0);
    // …then past the timeout: both expire, oldest first, each with why.
    let outcome = app
        .state
        .writer
        .submit(Work::ExpireCommands { timeout_ms: 0 })
        .await
        .expect("sweep");
    assert_eq!(outcome.accepted, 2);
    let first = expect_status(&mut stream, interval, "expired").await;
    assert!(
        first.json["data"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("No confirmation from the device")),
        "{first:?}"
    );
    let second = expect_status(&mut stream, reboot, "expired").await;
    let why = second.json["data"]["error"].as_str().unwrap_or("");
    assert!(
        why.contains("The gateway did not take it") && why.contains("500"),
        "{why}"
    );

    // A late reply changes nothing, and an expired command is not sent any more.
    uplink(app, EUI, 3, "ff8e000f00").await;
    stream.expect_quiet(Duration::from_millis(1500)).await;
    let statuses: Vec<Value> = commands_of(app, &w.manager, EUI)
        .await
        .iter()
        .map(|c| c["status"].clone())
        .collect();
    assert_eq!(statuses, ["expired", "expired"]);
    assert_eq!(w.gw.queued().len(), 1);
}
both_backends!(unconfirmed_commands_expire);

/// Two instances on one PostgreSQL database poll the same commands: each goes out once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_send_each_command_once() {
    let _turn = shared_turn().await;
    let gw = FakeGateway::start().await;
    let Some(app) = TestApp::spawn_with(Backend::Postgres, gateway_args(&gw)).await else {
        return;
    };
    let peer = app.spawn_peer(gateway_args(&gw)).await;
    let (manager, _, _) = seed(&app).await;
    let mut ids = Vec::new();
    for minutes in 1..=12 {
        let body = json!({"command": "set_report_interval", "minutes": minutes});
        ids.push(send_ok(&app, &manager, EUI, body).await);
    }
    let mut waited = 0;
    loop {
        let c = commands_of(&peer, &manager, EUI).await;
        if c.iter().all(|c| c["status"] == "sent") {
            break;
        }
        waited += 1;
        assert!(waited < 100, "all sent: {c:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let queued = gw.queued();
    assert_eq!(queued.len(), ids.len(), "each command once: {queued:?}");
    let mut data: Vec<String> = queued
        .iter()
        .map(|q| q.item["data"].as_str().unwrap().to_string())
        .collect();
    data.sort();
    data.dedup();
    assert_eq!(data.len(), ids.len());
}

/// The watchdog sweeps with `--offline-sweep-secs` and expires by `--command-timeout-mins`.
async fn the_watchdog_expires_old_commands(backend: Backend) {
    let gw = FakeGateway::start().await;
    let mut args = gateway_args(&gw);
    args.offline_sweep_secs = 1;
    args.command_timeout_mins = 1;
    let app = spawn_or_skip!(backend, args);
    let (manager, _, _) = seed(&app).await;
    let mut stream = sse::open(&app, &manager.client, "", None).await;
    let id = send_ok(&app, &manager, EUI, json!({"command": "reboot"})).await;
    expect_status(&mut stream, id, "pending").await;
    expect_status(&mut stream, id, "sent").await;
    // Asked for two minutes ago, as far as the sweep can tell.
    let old = sensorcast::domain::now_ms() - 2 * 60_000;
    execute(
        app.db(),
        "UPDATE commands SET created_ms = $1 WHERE $2 AND id = $3",
        old,
        true,
        id,
    )
    .await;
    let expired = expect_status(&mut stream, id, "expired").await;
    assert_eq!(
        expired.json["data"]["error"],
        "No confirmation from the device within 1 min."
    );
}
both_backends!(the_watchdog_expires_old_commands);

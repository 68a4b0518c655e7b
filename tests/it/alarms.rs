//! Alarms end to end: rules over JSON, excursions raised by signed webhooks (judged on
//! measuredAt), acknowledgement with the corrective action, clearing, the alarm events on the
//! stream and their replay, scoping by site, bad input refused with nothing stored, and the
//! audit trail that records it all and refuses to be changed.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::sse::{self, Msg};
use crate::support::*;
use sensorcast::domain::Role;
use sensorcast::store::Table;

const DEVICE: &str = "1988618061618400101";
const EUI: &str = "24e124707e070101";
const OTHER: &str = "1988618061618400102";
const OTHER_EUI: &str = "24e124707e070102";
const T0: i64 = 1_790_000_000_000;
const MIN: i64 = 60_000;

/// An MDP reading of `device` measured at `ts_ms` with this payload.
fn reading(event: &str, device: &str, eui: &str, ts_ms: i64, payload: Value) -> String {
    json!([{
        "eventId": event, "eventCreatedTime": (ts_ms / 1000).to_string(), "eventVersion": "1.0",
        "eventType": "DEVICE_DATA",
        "data": {
            "deviceProfile": {"deviceId": device, "devEUI": eui, "name": "Freezer 1", "model": "TS302"},
            "type": "PROPERTY", "tslId": "", "ts": ts_ms, "payload": payload
        }
    }])
    .to_string()
}

async fn post(app: &TestApp, event: &str, ts_ms: i64, t1: f64) {
    let body = reading(
        event,
        DEVICE,
        EUI,
        ts_ms,
        json!({"temperature_left": t1, "battery": 90}),
    );
    let r = app.post_mdp(&body).await;
    assert_eq!(
        r.status(),
        200,
        "reading {event}: {}",
        r.text().await.unwrap_or_default()
    );
}

struct Site {
    manager: reqwest::Client,
    manager_csrf: String,
    employee: reqwest::Client,
    employee_csrf: String,
    stranger: reqwest::Client,
    stranger_csrf: String,
}

/// Two devices in two sites, a manager and an employee of the first, a manager of the second.
async fn two_sites(app: &TestApp) -> Site {
    post(app, "seed-1", T0 - 10 * MIN, -20.0).await;
    let other = reading(
        "seed-2",
        OTHER,
        OTHER_EUI,
        T0,
        json!({"temperature_left": -20.0}),
    );
    assert_eq!(app.post_mdp(&other).await.status(), 200);
    app.assign(DEVICE, "North").await;
    app.assign(OTHER, "South").await;
    app.add_user("m@north.test", Role::Manager, &["North"])
        .await;
    app.add_user("e@north.test", Role::Employee, &["North"])
        .await;
    app.add_user("m@south.test", Role::Manager, &["South"])
        .await;
    let manager = app.browser_as("m@north.test", PASSWORD).await;
    let employee = app.browser_as("e@north.test", PASSWORD).await;
    let stranger = app.browser_as("m@south.test", PASSWORD).await;
    Site {
        manager_csrf: app.page_csrf(&manager).await,
        employee_csrf: app.page_csrf(&employee).await,
        stranger_csrf: app.page_csrf(&stranger).await,
        manager,
        employee,
        stranger,
    }
}

async fn put_rules(
    app: &TestApp,
    client: &reqwest::Client,
    csrf: &str,
    device: &str,
    body: Value,
) -> reqwest::Response {
    app.put_rules(client, csrf, device, &body).await
}

async fn open_alarms(app: &TestApp, client: &reqwest::Client) -> Vec<Value> {
    let v = get_json(client, app.url("/api/alarms?open=true")).await;
    v["alarms"].as_array().cloned().unwrap_or_default()
}

/// The next alarm event on the stream (other events skipped).
async fn next_alarm(s: &mut sse::Sse) -> Msg {
    loop {
        let m = s.next_event().await;
        if m.kind().starts_with("alarm_") {
            return m;
        }
    }
}

const FREEZER_RULE: &str =
    r#"{"rules":[{"quantity":"temperature","probe":1,"max":-15.0,"min":-25.0,"delaySecs":600}]}"#;

async fn excursion_lifecycle(backend: Backend) {
    let app = spawn_or_skip!(backend);
    let site = two_sites(&app).await;
    let rule: Value = serde_json::from_str(FREEZER_RULE).unwrap();
    let r = put_rules(
        &app,
        &site.manager,
        &site.manager_csrf,
        DEVICE,
        rule.clone(),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let got = get_json(
        &site.employee,
        app.url(&format!("/api/devices/{DEVICE}/rules")),
    )
    .await;
    assert_eq!(got, rule, "employees read the rules as set");

    let mut manager = sse::open(&app, &site.manager, "", None).await;
    let mut stranger = sse::open(&app, &site.stranger, "", None).await;
    // Out of range from T0 + 1 min; the delay (10 min) passes at T0 + 11 min.
    post(&app, "r1", T0, -20.0).await;
    post(&app, "r2", T0 + MIN, -10.0).await;
    post(&app, "r3", T0 + 5 * MIN, -11.0).await;
    assert!(
        open_alarms(&app, &site.manager).await.is_empty(),
        "not raised before the delay"
    );
    // A late reading inside the band changes nothing newer.
    post(&app, "late", T0 + 30_000, -20.0).await;
    post(&app, "r4", T0 + 11 * MIN, -12.0).await;
    let raised = next_alarm(&mut manager).await;
    assert_eq!(raised.kind(), "alarm_raised");
    let a = &raised.json["data"];
    assert_eq!(a["kind"], "threshold");
    assert_eq!(a["deviceId"], DEVICE);
    assert_eq!(
        a["startedAt"],
        T0 + MIN,
        "started by the first reading out of range"
    );
    assert_eq!(a["raisedAt"], T0 + 11 * MIN);
    assert_eq!(a["value"], -12.0);
    assert_eq!(a["peak"], -10.0);
    assert_eq!(a["max"], -15.0);
    assert_eq!(a["active"], true);
    assert_eq!(a["acknowledged"], false);
    let id = a["alarmId"].as_i64().expect("an alarm id");
    assert_eq!(open_alarms(&app, &site.employee).await.len(), 1);
    assert!(
        open_alarms(&app, &site.stranger).await.is_empty(),
        "another site's user sees none"
    );

    // Acknowledgement: a comment is required and bounded; another site gets 404.
    let before = app.count(Table::AuditLog).await;
    for (comment, what) in [("", "empty"), ("   ", "blank")] {
        let r = acknowledge_alarm(&app, &site.employee, &site.employee_csrf, id, comment).await;
        assert_json_error(r, 400, "comment_required", what).await;
    }
    let long = "x".repeat(1001);
    let r = acknowledge_alarm(&app, &site.employee, &site.employee_csrf, id, &long).await;
    assert_json_error(r, 400, "comment_required", "1,001 characters").await;
    let r = acknowledge_alarm(&app, &site.stranger, &site.stranger_csrf, id, "not mine").await;
    assert_json_error(r, 404, "not_found", "another site's alarm").await;
    let r = acknowledge_alarm(&app, &site.employee, &site.employee_csrf, 999_999, "none").await;
    assert_json_error(r, 404, "not_found", "no such alarm").await;
    let r = site
        .employee
        .post(app.url(&format!("/api/alarms/{id}/acknowledge")))
        .json(&json!({"comment": "no token"}))
        .send()
        .await
        .unwrap();
    assert_json_error(r, 403, "csrf_failed", "without the anti-forgery token").await;
    assert_eq!(
        app.count(Table::AuditLog).await,
        before,
        "refused: nothing audited"
    );
    assert_eq!(
        open_alarms(&app, &site.manager).await[0]["acknowledged"],
        false
    );

    let r = acknowledge_alarm(
        &app,
        &site.employee,
        &site.employee_csrf,
        id,
        "moved stock to freezer B",
    )
    .await;
    assert_eq!(r.status(), 200);
    let acked = next_alarm(&mut manager).await;
    assert_eq!(acked.kind(), "alarm_acknowledged");
    assert_eq!(acked.json["data"]["acknowledgedBy"], "e@north.test");
    assert_eq!(acked.json["data"]["comment"], "moved stock to freezer B");
    assert_eq!(acked.json["data"]["active"], true, "still out of range");
    let r = acknowledge_alarm(&app, &site.manager, &site.manager_csrf, id, "again").await;
    assert_json_error(r, 409, "already_acknowledged", "a second acknowledgement").await;

    // Back inside (the boundary is inside): cleared, and no longer open.
    post(&app, "r5", T0 + 20 * MIN, -15.0).await;
    let cleared = next_alarm(&mut manager).await;
    assert_eq!(cleared.kind(), "alarm_cleared");
    assert_eq!(cleared.json["data"]["active"], false);
    assert_eq!(cleared.json["data"]["endedAt"], T0 + 20 * MIN);
    assert!(open_alarms(&app, &site.manager).await.is_empty());
    let all = get_json(&site.manager, app.url("/api/alarms")).await;
    assert_eq!(
        all["alarms"].as_array().map(Vec::len),
        Some(1),
        "the closed alarm is listed"
    );

    // The other site's stream saw none of it.
    while let Ok(Some(m)) = stranger.next_within(Duration::from_millis(300)).await {
        assert!(
            !m.kind().starts_with("alarm_"),
            "leaked to another site: {m:?}"
        );
    }
    // Replay after a reconnect: the three alarm events, in order, with their ids.
    let mut replay = sse::open(
        &app,
        &site.employee,
        "",
        Some(&(raised.id.unwrap() - 1).to_string()),
    )
    .await;
    let kinds: Vec<String> = [
        next_alarm(&mut replay).await,
        next_alarm(&mut replay).await,
        next_alarm(&mut replay).await,
    ]
    .iter()
    .map(|m| m.kind().to_string())
    .collect();
    assert_eq!(
        kinds,
        ["alarm_raised", "alarm_acknowledged", "alarm_cleared"]
    );

    // The audit trail: the rule change and the acknowledgement, with who did them.
    let admin = app.admin().await;
    let audit = get_json(&admin, app.url("/api/audit")).await;
    let entries = audit["entries"].as_array().expect("entries");
    let find = |action: &str| entries.iter().find(|e| e["action"] == action).cloned();
    let rules = find("rules.changed").expect("the rule change is audited");
    assert_eq!(rules["actor"], "m@north.test");
    assert_eq!(rules["before"], json!([]));
    assert_eq!(rules["after"][0]["max"], -15.0);
    let ack = find("alarm.acknowledged").expect("the acknowledgement is audited");
    assert_eq!(ack["actor"], "e@north.test");
    assert_eq!(ack["after"]["comment"], "moved stock to freezer B");
    assert!(find("session.sign_in").is_some(), "sign-ins are audited");
    let r = site
        .manager
        .get(app.url("/api/audit"))
        .send()
        .await
        .unwrap();
    assert_json_error(r, 403, "forbidden", "the audit trail is for admins").await;
}
both_backends!(excursion_lifecycle);

async fn bad_rules_are_refused(backend: Backend) {
    let app = spawn_or_skip!(backend);
    let site = two_sites(&app).await;
    let before = (
        app.count(Table::AlarmRules).await,
        app.count(Table::AuditLog).await,
    );
    let rule = |r: Value| json!({ "rules": [r] });
    let cases = [
        (
            rule(json!({"quantity":"temperature","probe":1,"min":5.0,"max":5.0})),
            "min",
        ),
        (
            rule(json!({"quantity":"temperature","probe":1,"min":6.0,"max":5.0})),
            "min",
        ),
        (
            rule(json!({"quantity":"pressure","probe":1,"max":5.0})),
            "quantity",
        ),
        (
            rule(json!({"quantity":"temperature","probe":3,"max":5.0})),
            "probe",
        ),
        (
            rule(json!({"quantity":"temperature","probe":1,"max":5.0,"delaySecs":86401})),
            "delaySecs",
        ),
        (
            rule(json!({"quantity":"temperature","probe":1,"max":5.0,"delaySecs":-1})),
            "delaySecs",
        ),
        (rule(json!({"quantity":"temperature","probe":1})), "min"),
    ];
    for (body, field) in cases {
        let r = put_rules(
            &app,
            &site.manager,
            &site.manager_csrf,
            DEVICE,
            body.clone(),
        )
        .await;
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "invalid_rule", "{body}");
        assert!(
            v["message"].as_str().unwrap_or("").starts_with(field),
            "{body}: {v}"
        );
    }
    let good: Value = serde_json::from_str(FREEZER_RULE).unwrap();
    let r = put_rules(
        &app,
        &site.employee,
        &site.employee_csrf,
        DEVICE,
        good.clone(),
    )
    .await;
    assert_json_error(r, 403, "forbidden", "an employee editing a rule").await;
    let r = put_rules(
        &app,
        &site.stranger,
        &site.stranger_csrf,
        DEVICE,
        good.clone(),
    )
    .await;
    assert_json_error(r, 404, "not_found", "a manager of another site").await;
    let r = put_rules(
        &app,
        &site.manager,
        &site.manager_csrf,
        DEVICE,
        json!({"rules": "x"}),
    )
    .await;
    assert_json_error(r, 400, "invalid_json", "not a rule list").await;
    let after = (
        app.count(Table::AlarmRules).await,
        app.count(Table::AuditLog).await,
    );
    assert_eq!(before, after, "nothing stored, nothing audited");
}
both_backends!(bad_rules_are_refused);

async fn device_battery_and_offline_alarms(backend: Backend) {
    let app = spawn_or_skip!(backend);
    let site = two_sites(&app).await;
    let mut s = sse::open(&app, &site.manager, "", None).await;
    // The TS302's own threshold alarm on probe 2 (v1 spelling), and its release.
    let alarm = json!({"temperature_right": 9.5, "temperature_chn2": 9.5, "temperature_chn2_alarm": "threshold_alarm"});
    let body = reading("dev-1", DEVICE, EUI, T0 + MIN, alarm);
    assert_eq!(app.post_mdp(&body).await.status(), 200);
    let m = next_alarm(&mut s).await;
    assert_eq!(
        (m.kind(), m.json["data"]["kind"].as_str()),
        ("alarm_raised", Some("device"))
    );
    assert_eq!(m.json["data"]["probe"], 2);
    assert_eq!(m.json["data"]["cause"], "threshold_alarm");
    let release =
        json!({"temperature_chn2": 4.0, "temperature_chn2_alarm": "threshold_alarm_release"});
    let body = reading("dev-2", DEVICE, EUI, T0 + 2 * MIN, release);
    assert_eq!(app.post_mdp(&body).await.status(), 200);
    let m = next_alarm(&mut s).await;
    assert_eq!(m.kind(), "alarm_cleared");

    // Battery at 10 % raises, 15 % keeps it, 25 % clears.
    for (n, battery) in [(3, 10), (4, 15), (5, 25)] {
        let body = reading(
            &format!("bat-{n}"),
            DEVICE,
            EUI,
            T0 + n * MIN,
            json!({"battery": battery}),
        );
        assert_eq!(app.post_mdp(&body).await.status(), 200);
    }
    let m = next_alarm(&mut s).await;
    assert_eq!(
        (m.kind(), m.json["data"]["kind"].as_str()),
        ("alarm_raised", Some("battery"))
    );
    let m = next_alarm(&mut s).await;
    assert_eq!(
        (m.kind(), m.json["data"]["kind"].as_str()),
        ("alarm_cleared", Some("battery"))
    );

    // OFFLINE from the platform raises an offline alarm; the next message clears it.
    let offline = json!([{"eventId": "off-1", "eventCreatedTime": T0 / 1000, "eventType": "DEVICE_DATA",
        "data": {"deviceProfile": {"deviceId": DEVICE, "devEUI": EUI}, "type": "OFFLINE", "ts": T0 + 6 * MIN}}]);
    assert_eq!(app.post_mdp(&offline.to_string()).await.status(), 200);
    let m = next_alarm(&mut s).await;
    assert_eq!(
        (m.kind(), m.json["data"]["kind"].as_str()),
        ("alarm_raised", Some("offline"))
    );
    post(&app, "back", T0 + 7 * MIN, -20.0).await;
    let m = next_alarm(&mut s).await;
    assert_eq!(
        (m.kind(), m.json["data"]["kind"].as_str()),
        ("alarm_cleared", Some("offline"))
    );
    // Three alarms, cleared, unacknowledged: still open until someone acknowledges them.
    assert_eq!(open_alarms(&app, &site.employee).await.len(), 3);
}
both_backends!(device_battery_and_offline_alarms);

async fn history_and_rule_changes(backend: Backend) {
    let app = spawn_or_skip!(backend);
    let site = two_sites(&app).await;
    let rule: Value =
        json!({"rules":[{"quantity":"temperature","probe":1,"max":-15.0,"delaySecs":120}]});
    assert_eq!(
        put_rules(&app, &site.manager, &site.manager_csrf, DEVICE, rule)
            .await
            .status(),
        200
    );
    // Live readings, in range, far apart (a gateway outage between them).
    post(&app, "live-1", T0, -20.0).await;
    post(&app, "live-2", T0 + 60 * MIN, -20.0).await;
    // The history of the outage arrives late, in one request: an excursion of 3 minutes.
    let records: Vec<Value> = [(10, -20.0), (11, -12.0), (12, -11.0), (14, -13.0), (15, -18.0)]
        .iter()
        .map(|(m, t)| json!({"eventId": format!("h-{m}"), "eventCreatedTime": (T0 / 1000).to_string(), "eventType": "DEVICE_DATA",
            "data": {"deviceProfile": {"deviceId": DEVICE, "devEUI": EUI}, "type": "EVENT", "tslId": "historical_data",
                     "ts": T0 + 61 * MIN, "payload": {"timestamp": (T0 + m * MIN) / 1000, "temperature_left": t}}}))
        .collect();
    assert_eq!(
        app.post_mdp(&Value::Array(records).to_string())
            .await
            .status(),
        200
    );
    let all = get_json(&site.manager, app.url("/api/alarms")).await;
    let alarms = all["alarms"].as_array().cloned().unwrap_or_default();
    assert_eq!(alarms.len(), 1, "one excursion in the past: {all}");
    let a = &alarms[0];
    assert_eq!(a["startedAt"], T0 + 11 * MIN);
    assert_eq!(
        a["raisedAt"],
        T0 + 14 * MIN,
        "the first reading at start + delay"
    );
    assert_eq!(a["endedAt"], T0 + 15 * MIN);
    assert_eq!(a["peak"], -11.0);
    assert_eq!(a["active"], false);
    // Posting the same history again stores and raises nothing more.
    let n = app.count(Table::Alarms).await;
    post(&app, "live-2", T0 + 60 * MIN, -20.0).await;
    assert_eq!(app.count(Table::Alarms).await, n);

    // An open alarm is judged by a changed rule from the next reading on.
    post(&app, "live-3", T0 + 70 * MIN, -10.0).await;
    post(&app, "live-4", T0 + 73 * MIN, -10.0).await;
    let open = open_alarms(&app, &site.manager).await;
    let active: Vec<&Value> = open.iter().filter(|a| a["active"] == true).collect();
    assert_eq!(active.len(), 1, "{open:?}");
    let wider = json!({"rules":[{"quantity":"temperature","probe":1,"max":-5.0}]});
    assert_eq!(
        put_rules(&app, &site.manager, &site.manager_csrf, DEVICE, wider)
            .await
            .status(),
        200
    );
    post(&app, "live-5", T0 + 74 * MIN, -10.0).await;
    let open = open_alarms(&app, &site.manager).await;
    assert!(
        open.iter().all(|a| a["active"] == false),
        "inside the new rule: cleared"
    );
    let admin = app.admin().await;
    let audit = get_json(&admin, app.url("/api/audit?action=rules.changed")).await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[0]["before"][0]["max"], -15.0,
        "newest first, with what it replaced"
    );
    assert_eq!(entries[0]["after"][0]["max"], -5.0);
}
both_backends!(history_and_rule_changes);

/// Runs a statement behind the server's back, on whichever database it is.
async fn run(db: &Db, sql: &str) -> Result<(), sqlx::Error> {
    match db {
        Db::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
        Db::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
    }
}

async fn the_audit_trail_cannot_be_changed(backend: Backend) {
    let app = spawn_or_skip!(backend);
    let _ = app.admin().await;
    assert!(
        app.count(Table::AuditLog).await > 0,
        "the sign-in is audited"
    );
    let refused = |r: Result<_, sqlx::Error>, what: &str| {
        let e = r.expect_err(what).to_string();
        assert!(e.contains("audit trail cannot be changed"), "{what}: {e}");
    };
    refused(
        run(app.db(), "UPDATE audit_log SET actor = 'x'").await,
        "UPDATE",
    );
    refused(run(app.db(), "DELETE FROM audit_log").await, "DELETE");
    if backend == Backend::Postgres {
        refused(run(app.db(), "TRUNCATE audit_log").await, "TRUNCATE");
    }
    assert!(app.count(Table::AuditLog).await > 0);
}
both_backends!(the_audit_trail_cannot_be_changed);

async fn rules_from_the_command_line(backend: Backend) {
    let app = spawn_or_skip!(backend);
    let site = two_sites(&app).await;
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sensorcast"))
            .args(["--database-url", &app.database_url])
            .args(args)
            .env_remove("RUST_BACKTRACE")
            .output()
            .expect("run sensorcast");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let set = [
        "rule",
        "set",
        "--device",
        DEVICE,
        "--quantity",
        "temperature",
        "--probe",
        "1",
    ];
    let (ok, text) = cli(&[
        &set[..],
        &["--min", "-25", "--max", "-15", "--delay", "10m"],
    ]
    .concat());
    assert!(ok, "{text}");
    let (ok, text) = cli(&[&set[..], &["--min", "-10", "--max", "-15"]].concat());
    assert!(
        !ok && text.contains("min must be below max"),
        "refused in words: {text}"
    );
    let got = get_json(
        &site.employee,
        app.url(&format!("/api/devices/{DEVICE}/rules")),
    )
    .await;
    assert_eq!(got, serde_json::from_str::<Value>(FREEZER_RULE).unwrap());
    let (ok, text) = cli(&["rule", "list", "--device", EUI]);
    assert!(ok && text.contains("\"delaySecs\":600"), "{text}");
    let (ok, text) = cli(&["rule", "clear", "--device", DEVICE]);
    assert!(ok, "{text}");
    let got = get_json(
        &site.employee,
        app.url(&format!("/api/devices/{DEVICE}/rules")),
    )
    .await;
    assert_eq!(got, json!({"rules": []}));
    let admin = app.admin().await;
    let audit = get_json(&admin, app.url("/api/audit?action=rules.changed")).await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "set and clear are audited");
    assert_eq!(entries[0]["actor"], "command line");
}
both_backends!(rules_from_the_command_line);

/// Two instances on one PostgreSQL database: an alarm raised through one is on the other's
/// streams with the same id; an acknowledgement through the other comes back to the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_alarm_lifecycle() {
    let _turn = shared_turn().await;
    let Some(a) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let b = a.spawn_peer(test_args()).await;
    let site = two_sites(&a).await;
    let rule: Value = json!({"rules":[{"quantity":"temperature","probe":1,"max":-15.0}]});
    assert_eq!(
        put_rules(&a, &site.manager, &site.manager_csrf, DEVICE, rule)
            .await
            .status(),
        200
    );
    let manager_on_b = b.browser_as("m@north.test", PASSWORD).await;
    let csrf_on_b = b.page_csrf(&manager_on_b).await;
    let mut on_a = sse::open(&a, &site.employee, "", None).await;
    let mut on_b = sse::open(&b, &manager_on_b, "", None).await;
    post(&a, "hot-a", T0 + MIN, -9.0).await;
    let raised_a = next_alarm(&mut on_a).await;
    let raised_b = next_alarm(&mut on_b).await;
    assert_eq!(raised_a.kind(), "alarm_raised");
    assert_eq!(
        (raised_a.id, &raised_a.raw),
        (raised_b.id, &raised_b.raw),
        "the same event on both"
    );
    let id = raised_b.json["data"]["alarmId"].as_i64().unwrap();
    let r = acknowledge_alarm(
        &b,
        &manager_on_b,
        &csrf_on_b,
        id,
        "door closed, stock checked",
    )
    .await;
    assert_eq!(r.status(), 200);
    let acked = next_alarm(&mut on_a).await;
    assert_eq!(acked.kind(), "alarm_acknowledged");
    assert_eq!(acked.json["data"]["acknowledgedBy"], "m@north.test");
    let r = acknowledge_alarm(&a, &site.employee, &site.employee_csrf, id, "again").await;
    assert_json_error(
        r,
        409,
        "already_acknowledged",
        "acknowledged on the other instance",
    )
    .await;
}

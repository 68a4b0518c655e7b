//! The SSE stream `/api/realtime`, read the way a browser's EventSource reads it: over real HTTP,
//! message by message, with a time limit on every read so that no test can hang.

use std::time::{Duration, Instant};

use crate::support::sse::{assert_strictly_increasing, connect, ids, open, Msg, Sse, READ};
use crate::support::*;
use sensorcast::domain::Role;
use serde_json::{json, Value};

const DEV_A: &str = "1988618061618307073";
const EUI_A: &str = "24E124707E040001";
const DEV_B: &str = "1988618061618307074";
const EUI_B: &str = "24E124707E040002";

// ---------------------------------------------------------------------------------------------
// Data in
// ---------------------------------------------------------------------------------------------

/// One MDP PROPERTY event with a known measurement time.
fn property(event_id: &str, device_id: &str, eui: &str, t1: f64, ts_ms: i64) -> Value {
    json!({
        "eventId": event_id, "eventCreatedTime": ts_ms / 1000, "eventVersion": "1.0",
        "eventType": "DEVICE_DATA",
        "data": {
            "deviceProfile": {"deviceId": device_id, "devEUI": eui, "name": format!("Freezer {device_id}"), "model": "TS302"},
            "type": "PROPERTY", "tslId": "", "ts": ts_ms,
            "payload": {"temperature_left": t1, "temperature_right": 4.0, "battery": 90}
        }
    })
}

fn status_event(event_id: &str, device_id: &str, eui: &str, status: &str) -> Value {
    json!({
        "eventId": event_id, "eventCreatedTime": sensorcast::domain::now_ms() / 1000, "eventType": "DEVICE_DATA",
        "data": {"deviceProfile": {"deviceId": device_id, "devEUI": eui}, "type": status, "tslId": ""}
    })
}

async fn post_ok(app: &TestApp, body: &Value) {
    let r = app.post_mdp(&body.to_string()).await;
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    assert_eq!(status, 200, "webhook refused: {text}");
}

/// Posts `n` readings of one device, `per` MDP events per request, one request at a time.
async fn post_readings(app: &TestApp, tag: &str, device: &str, eui: &str, n: usize, per: usize) {
    post_padded_readings(app, tag, device, eui, n, per, 0).await
}

/// The same, each reading carrying an alarm field of `pad` bytes (which its event repeats), to
/// make the stream's bytes large.
async fn post_padded_readings(
    app: &TestApp,
    tag: &str,
    device: &str,
    eui: &str,
    n: usize,
    per: usize,
    pad: usize,
) {
    let base = sensorcast::domain::now_ms();
    let padding = "x".repeat(pad);
    let mut i = 0;
    while i < n {
        let batch: Vec<Value> = (i..n.min(i + per))
            .map(|k| {
                let at = base + k as i64;
                let mut ev = property(&format!("{tag}-{k}"), device, eui, k as f64 / 10.0, at);
                if pad > 0 {
                    ev["data"]["payload"]["alarm_note"] = json!(padding);
                }
                ev
            })
            .collect();
        i += batch.len();
        post_ok(app, &Value::Array(batch)).await;
    }
}

/// Ids of the events a stream reads, until it has `want` of them or none comes for `READ`.
async fn read_ids(sse: &mut Sse, want: usize) -> Vec<i64> {
    let mut got = Vec::with_capacity(want);
    while got.len() < want {
        match sse.next_within(READ).await {
            Ok(Some(m)) if m.id.is_some() => got.extend(m.id),
            Ok(Some(_)) => {}
            Ok(None) => panic!("a reader's stream ended"),
            // Missing events: stop waiting for them; the caller reports.
            Err(()) => break,
        }
    }
    got
}

async fn stats(app: &TestApp, admin: &reqwest::Client) -> Value {
    let r = admin
        .get(app.url("/api/realtime/stats"))
        .send()
        .await
        .expect("stats");
    assert_eq!(r.status(), 200);
    r.json().await.expect("stats json")
}

// ---------------------------------------------------------------------------------------------
// 1. Order, headers and the JSON of every message type
// ---------------------------------------------------------------------------------------------

async fn every_message_type_in_order_with_its_json(backend: Backend, transport: StreamTransport) {
    let app = spawn_or_skip!(backend, transport_args(transport));
    every_message_type_on(&app).await;
}
both_backends_and_transports!(every_message_type_in_order_with_its_json);

/// `--stream-threads 0`: no streams runtime, so connections are accepted and sniffed on the
/// main runtime and a stream is served by the task that sniffed it, beside pages and webhooks.
async fn one_runtime_serves_every_message_type(backend: Backend) {
    let mut args = test_args();
    args.stream_threads = 0;
    let app = spawn_or_skip!(backend, args);
    every_message_type_on(&app).await;
}
both_backends!(one_runtime_serves_every_message_type);

async fn every_message_type_on(app: &TestApp) {
    let admin = app.admin().await;
    let r = connect(app, &admin, "", None).await;
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["content-type"], "text/event-stream");
    assert_eq!(h["cache-control"], "no-cache");
    assert_eq!(h["x-accel-buffering"], "no");
    let mut sse = Sse::new(r);

    let before = sensorcast::domain::now_ms();
    let connected = sse.next_msg().await;
    assert_eq!(connected.id, None);
    assert_eq!(connected.data_lines, 1);
    assert_eq!(connected.json["type"], "connected");
    assert_eq!(
        connected.json["message"],
        "Real-time connection established"
    );
    let ts = connected.json["timestamp"].as_i64().expect("epoch ms");
    assert!(
        (before - 10_000..=before + 10_000).contains(&ts),
        "timestamp {ts} is epoch milliseconds"
    );

    // A new device: new_device, then its first reading.
    let measured = sensorcast::domain::now_ms() - 1_000;
    let mut reading = property("shape-1", DEV_A, EUI_A, 21.5, measured);
    reading["data"]["deviceProfile"]["name"] = json!("Freezer A");
    reading["data"]["payload"] =
        json!({"temperature_left": 21.5, "temperature_right": 4.1, "battery": 93});
    post_ok(app, &reading).await;

    let new_device = sse.next_event().await;
    assert_eq!(new_device.kind(), "new_device", "{new_device:?}");
    assert!(new_device.json["timestamp"].as_i64().is_some());
    assert_eq!(
        new_device.json["data"],
        json!({"deviceId": DEV_A, "devEUI": EUI_A.to_ascii_lowercase(), "deviceName": "Freezer A", "model": "TS302"})
    );

    let telemetry = sse.next_event().await;
    assert_eq!(telemetry.kind(), "new_telemetry", "{telemetry:?}");
    assert!(telemetry.json["timestamp"].as_i64().is_some());
    assert_eq!(
        telemetry.json["data"],
        json!({
            "deviceId": DEV_A, "devEUI": EUI_A.to_ascii_lowercase(), "deviceName": "Freezer A",
            "eventType": "DEVICE_DATA", "temperature": 21.5, "temperature2": 4.1, "battery": 93,
            "measuredAt": measured
        }),
        "values not measured (humidity) and absent alarms are left out"
    );

    // The device goes offline, and comes back.
    post_ok(app, &status_event("shape-2", DEV_A, EUI_A, "OFFLINE")).await;
    let offline = sse.next_event().await;
    assert_eq!(offline.kind(), "device_status_changed", "{offline:?}");
    assert_eq!(
        offline.json["data"],
        json!({"deviceId": DEV_A, "devEUI": EUI_A.to_ascii_lowercase(), "deviceName": "Freezer A", "status": "OFFLINE"})
    );
    // Going offline raises the offline alarm (its JSON as the contract gives it).
    let alarm = sse.next_event().await;
    assert_eq!(alarm.kind(), "alarm_raised", "{alarm:?}");
    let a = &alarm.json["data"];
    assert_eq!(
        (a["kind"].as_str(), a["deviceId"].as_str()),
        (Some("offline"), Some(DEV_A))
    );
    assert_eq!(
        (a["active"].as_bool(), a["acknowledged"].as_bool()),
        (Some(true), Some(false))
    );
    assert!(a["alarmId"].is_i64() && a["startedAt"].is_i64() && a["raisedAt"].is_i64());
    post_ok(app, &status_event("shape-3", DEV_A, EUI_A, "ONLINE")).await;
    let online = sse.next_event().await;
    assert_eq!(online.kind(), "device_status_changed");
    assert_eq!(online.json["data"]["status"], "ONLINE");
    let cleared = sse.next_event().await;
    assert_eq!(cleared.kind(), "alarm_cleared");
    assert_eq!(
        cleared.json["data"]["alarmId"],
        alarm.json["data"]["alarmId"]
    );
    assert_eq!(cleared.json["data"]["active"], false);

    // Without a Milesight id the deviceId is the lower-case devEUI; alarms are passed on.
    let eui_only = json!({
        "eventId": "shape-4", "eventCreatedTime": sensorcast::domain::now_ms() / 1000, "eventType": "DEVICE_DATA",
        "data": {"deviceProfile": {"devEUI": EUI_B, "name": "Door", "model": "TS302"},
                 "type": "PROPERTY", "ts": measured,
                 "payload": {"temperature_left": -3.25, "humidity": 40.5, "temperature_left_alarm": "threshold alarm"}}
    });
    post_ok(app, &eui_only).await;
    let nd = sse.next_event().await;
    assert_eq!(nd.kind(), "new_device");
    assert_eq!(nd.json["data"]["deviceId"], EUI_B.to_ascii_lowercase());
    let t = sse.next_event().await;
    assert_eq!(t.kind(), "new_telemetry");
    assert_eq!(t.json["data"]["deviceId"], EUI_B.to_ascii_lowercase());
    assert_eq!(t.json["data"]["temperature"], -3.25);
    assert_eq!(t.json["data"]["humidity"], 40.5);
    assert_eq!(
        t.json["data"]["alarms"],
        json!({"temperature_left_alarm": "threshold alarm"})
    );
    assert!(t.json["data"].get("temperature2").is_none());
    assert!(t.json["data"].get("battery").is_none());

    let all = [
        new_device, telemetry, offline, alarm, online, cleared, nd, t,
    ];
    assert_strictly_increasing(&ids(&all));
    assert_eq!(ids(&all), app.stored_event_ids().await);
    sse.expect_quiet(Duration::from_millis(200)).await;
}

// ---------------------------------------------------------------------------------------------
// 2. Keepalive
// ---------------------------------------------------------------------------------------------

async fn keepalive_every_period(backend: Backend) {
    let mut args = test_args();
    args.keepalive_secs = 1;
    let app = spawn_or_skip!(backend, args);
    let admin = app.admin().await;
    let started = Instant::now();
    let mut sse = open(&app, &admin, "", None).await;

    let first = sse
        .next_within(Duration::from_millis(1_500))
        .await
        .expect("a keepalive within 1.5 s")
        .expect("stream open");
    let t1 = started.elapsed();
    assert_eq!(first.kind(), "keepalive", "{first:?}");
    assert_eq!(first.id, None, "keepalive carries no id");
    assert!(first.json["timestamp"].as_i64().is_some());
    assert!(first.json.get("data").is_none());
    assert!(
        t1 >= Duration::from_millis(700),
        "first keepalive came early: {t1:?}"
    );

    let second = sse
        .next_within(Duration::from_millis(1_600))
        .await
        .expect("a second keepalive")
        .expect("stream open");
    let gap = started.elapsed() - t1;
    assert_eq!(second.kind(), "keepalive");
    assert!(
        (Duration::from_millis(600)..=Duration::from_millis(1_500)).contains(&gap),
        "keepalives {gap:?} apart, expected about 1 s"
    );
}
both_backends!(keepalive_every_period);

// ---------------------------------------------------------------------------------------------
// 3. Scope: role, sites and ?devices=
// ---------------------------------------------------------------------------------------------

async fn streams_carry_only_what_the_user_may_see(backend: Backend) {
    let app = spawn_or_skip!(backend);
    app.add_user("emp@example.com", Role::Employee, &["North"])
        .await;
    post_ok(&app, &property("scope-a0", DEV_A, EUI_A, 1.0, 1_000)).await;
    post_ok(&app, &property("scope-b0", DEV_B, EUI_B, 1.0, 1_000)).await;
    app.assign(DEV_A, "North").await;
    app.assign(DEV_B, "South").await;

    let emp = app.browser_as("emp@example.com", PASSWORD).await;
    let mut emp_sse = open(&app, &emp, "", None).await;
    let admin = app.admin().await;
    let mut only_a = open(&app, &admin, &format!("?devices={DEV_A}"), None).await;
    // The devEUI names a device too, in any case.
    let mut only_a_by_eui = open(&app, &admin, &format!("?devices={EUI_A}"), None).await;
    let mut everything = open(&app, &admin, "", None).await;

    // B first, then A: B's event has the lower id, so it would be seen first if it leaked.
    for round in 1..=3 {
        post_ok(
            &app,
            &property(&format!("scope-b{round}"), DEV_B, EUI_B, 2.0, 1_000 + round),
        )
        .await;
        post_ok(
            &app,
            &status_event(&format!("scope-bs{round}"), DEV_B, EUI_B, "OFFLINE"),
        )
        .await;
        post_ok(
            &app,
            &property(&format!("scope-a{round}"), DEV_A, EUI_A, 3.0, 1_000 + round),
        )
        .await;
        for (who, sse) in [
            ("employee", &mut emp_sse),
            ("?devices=id", &mut only_a),
            ("?devices=EUI", &mut only_a_by_eui),
        ] {
            let m = sse.next_event().await;
            assert_eq!(m.kind(), "new_telemetry", "{who}: {m:?}");
            assert_eq!(m.device_id(), DEV_A, "{who} saw device B: {m:?}");
        }
        // The admin sees all of it: B's reading and status changes, then A's reading.
        let mut seen_b = 0;
        loop {
            let m = everything.next_event().await;
            if m.device_id() == DEV_A {
                assert_eq!(m.kind(), "new_telemetry");
                break;
            }
            assert_eq!(m.device_id(), DEV_B, "{m:?}");
            seen_b += 1;
        }
        assert!(seen_b >= 2, "admin saw B's reading and status change");
    }
    for sse in [&mut emp_sse, &mut only_a, &mut only_a_by_eui] {
        sse.expect_quiet(Duration::from_millis(300)).await;
    }

    // Replay is scoped the same way.
    let mut replay = open(&app, &emp, "", Some("0")).await;
    let last_a = app.stored_event_ids().await.into_iter().max().unwrap();
    let replayed = replay.events_through(last_a, READ).await;
    assert!(!replayed.is_empty());
    assert!(
        replayed.iter().all(|m| m.device_id() == DEV_A),
        "employee replay leaked another device: {replayed:?}"
    );

    // An employee asking for a device outside their sites gets nothing of it.
    let mut not_mine = open(&app, &emp, &format!("?devices={DEV_B}"), None).await;
    post_ok(&app, &property("scope-b9", DEV_B, EUI_B, 9.0, 9_000)).await;
    post_ok(&app, &property("scope-a9", DEV_A, EUI_A, 9.0, 9_000)).await;
    not_mine.expect_quiet(Duration::from_millis(500)).await;
}
both_backends!(streams_carry_only_what_the_user_may_see);

// ---------------------------------------------------------------------------------------------
// 4. Last-Event-ID replay
// ---------------------------------------------------------------------------------------------

async fn last_event_id_replays_exactly_the_missed_events(
    backend: Backend,
    transport: StreamTransport,
) {
    let app = spawn_or_skip!(backend, transport_args(transport));
    let admin = app.admin().await;
    let mut live = open(&app, &admin, "", None).await;
    post_readings(&app, "replay", DEV_A, EUI_A, 5, 1).await;
    let first: Vec<Msg> = {
        let mut v = Vec::new();
        for _ in 0..6 {
            v.push(live.next_event().await);
        }
        v
    };
    assert_eq!(first[0].kind(), "new_device");
    let first_ids = ids(&first);
    assert_strictly_increasing(&first_ids);
    drop(live);
    let after = first_ids[1].to_string();

    // Header, and query parameter for clients that cannot set it.
    for (how, query, header) in [
        ("header", String::new(), Some(after.as_str())),
        ("query", format!("?lastEventId={after}"), None),
    ] {
        let mut sse = open(&app, &admin, &query, header).await;
        let stored = app.stored_event_ids().await;
        let got = sse.events_through(*stored.last().unwrap(), READ).await;
        let expected: Vec<i64> = stored.into_iter().filter(|i| *i > first_ids[1]).collect();
        assert_eq!(ids(&got), expected, "{how}");
        for (replayed, original) in got.iter().zip(&first[2..]) {
            assert_eq!(
                replayed.raw, original.raw,
                "{how}: replay sends the same JSON"
            );
        }
        sse.expect_quiet(Duration::from_millis(200)).await;
        // ...then continues live.
        post_readings(&app, &format!("replay-{how}"), DEV_A, EUI_A, 1, 1).await;
        let next = sse.next_event().await;
        assert_eq!(next.kind(), "new_telemetry");
        assert!(next.id.unwrap() > *expected.last().unwrap());
    }

    // Not a number: a JSON 400, not a stream.
    let r = connect(&app, &admin, "", Some("abc")).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_last_event_id");

    // Replay racing live writes: several readers join mid-flight, far behind; each must see
    // every later event exactly once, in order.
    let far_behind = first_ids[1];
    let app = &app;
    let posting = async {
        let writers = (0..5u32).map(|w| async move {
            let (dev, eui) = if w % 2 == 0 {
                (DEV_A, EUI_A)
            } else {
                (DEV_B, EUI_B)
            };
            for k in 0..10u32 {
                let at = 10_000 + i64::from(w * 100 + k);
                let ev = property(&format!("race-{w}-{k}"), dev, eui, f64::from(k), at);
                post_ok(app, &ev).await;
            }
        });
        futures_util::future::join_all(writers).await;
    };
    let joining = async {
        let mut readers = Vec::new();
        for i in 0..5 {
            readers.push(open(app, &admin, "", Some(&far_behind.to_string())).await);
            tokio::time::sleep(Duration::from_millis(5 * i)).await;
        }
        readers
    };
    let ((), readers) = tokio::join!(posting, joining);
    let expected: Vec<i64> = app
        .stored_event_ids()
        .await
        .into_iter()
        .filter(|id| *id > far_behind)
        .collect();
    assert!(expected.len() > 50, "{expected:?}");
    let last = *expected.last().unwrap();
    for (i, mut r) in readers.into_iter().enumerate() {
        let got = ids(&r.events_through(last, READ).await);
        assert_eq!(got, expected, "reader {i}: gap or duplicate");
        r.expect_quiet(Duration::from_millis(100)).await;
    }
    // A fresh reader from 0 sees the whole log.
    let mut all = open(app, &admin, "", Some("0")).await;
    let everything = app.stored_event_ids().await;
    assert_eq!(
        ids(&all.events_through(*everything.last().unwrap(), READ).await),
        everything
    );
}
both_backends_and_transports!(last_event_id_replays_exactly_the_missed_events);

/// Further behind than `--max-replay-events`: `resync` with the newest id instead of the
/// replay, then live events; within the limit, the replay as usual.
async fn a_replay_too_long_is_a_resync(backend: Backend) {
    let mut args = test_args();
    args.max_replay_events = 5;
    let app = spawn_or_skip!(backend, args);
    let admin = app.admin().await;
    post_readings(&app, "resync", DEV_A, EUI_A, 8, 1).await;
    let stored = app.stored_event_ids().await;
    let newest = *stored.last().unwrap();
    assert_eq!(stored.len(), 9, "new_device and 8 readings");

    let mut far = open(&app, &admin, "", Some("0")).await;
    let resync = far.next_msg().await;
    assert_eq!(resync.kind(), "resync", "{resync:?}");
    assert_eq!(
        resync.id,
        Some(newest),
        "the browser goes on from the newest id"
    );
    assert!(resync.json["timestamp"].as_i64().unwrap() > 0);
    far.expect_quiet(Duration::from_millis(200)).await;
    post_readings(&app, "resync-live", DEV_A, EUI_A, 1, 1).await;
    let live = far.next_event().await;
    assert_eq!(live.kind(), "new_telemetry");
    assert_eq!(
        live.id,
        Some(newest + 1),
        "nothing of the skipped log, nothing twice"
    );

    // Five behind is within the limit: replayed.
    let near = (newest - 4).to_string();
    let mut close = open(&app, &admin, "", Some(&near)).await;
    let got = close.events_through(newest + 1, READ).await;
    assert_eq!(ids(&got), ((newest - 3)..=(newest + 1)).collect::<Vec<_>>());
    assert!(got.iter().all(|m| m.kind() != "resync"));
    assert_eq!(
        get_json(&admin, app.url("/api/realtime/stats")).await["replays"],
        1
    );
}
both_backends!(a_replay_too_long_is_a_resync);

// ---------------------------------------------------------------------------------------------
// 5. A stalled reader neither holds others back nor loses events
// ---------------------------------------------------------------------------------------------

async fn stalled_reader_catches_up_without_holding_others_back(backend: Backend) {
    let mut args = test_args();
    args.broadcast_capacity = 16;
    let app = spawn_or_skip!(backend, args);
    let stalled_browser = app.admin().await;
    let active_browser = app.admin().await;
    // Reads its `connected` message (so it is subscribed), then is never read again until later.
    let mut stalled = open(&app, &stalled_browser, "", None).await;
    let mut active = open(&app, &active_browser, "", None).await;

    // 300 readings (plus new_device), read as they come.
    let started = Instant::now();
    let (_, got) = tokio::join!(post_readings(&app, "s1", DEV_A, EUI_A, 300, 50), async {
        let mut v = Vec::new();
        while v.len() < 301 {
            v.push(active.next_event().await);
        }
        v
    });
    let took = started.elapsed();
    let stored = app.stored_event_ids().await;
    assert_eq!(stored.len(), 301);
    assert_eq!(
        ids(&got),
        stored,
        "the active reader got every event, in order"
    );
    assert!(
        took < Duration::from_secs(5),
        "the active reader took {took:?}"
    );
    active.expect_quiet(Duration::from_millis(100)).await;
    drop(active);

    // Enough data (about 7 MB) that the stalled socket's buffers fill up and its stream falls far
    // behind the channel.
    post_padded_readings(&app, "s2", DEV_A, EUI_A, 1_700, 50, 4_096).await;
    // Let any stream work in flight settle before taking the counter.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let replayed_before = app.state.hub.stats.replayed_events.get();

    let stored = app.stored_event_ids().await;
    assert_eq!(stored.len(), 2_001);
    let started = Instant::now();
    let got = stalled.events_through(*stored.last().unwrap(), READ).await;
    let got = ids(&got);
    if got != stored {
        let missing: Vec<i64> = stored
            .iter()
            .copied()
            .filter(|i| !got.contains(i))
            .collect();
        panic!(
            "the stalled reader's events differ: {} received, {} stored, missing {:?}, increasing: {}",
            got.len(),
            stored.len(),
            missing,
            got.windows(2).all(|w| w[0] < w[1])
        );
    }
    let replayed_after = app.state.hub.stats.replayed_events.get();
    assert!(
        replayed_after > replayed_before,
        "the stalled reader did not fall behind the channel (no catch-up from the database); post more"
    );
    eprintln!(
        "stalled reader: {} events in {:?}, {} from the database",
        got.len(),
        started.elapsed(),
        replayed_after - replayed_before
    );
    stalled.expect_quiet(Duration::from_millis(100)).await;
}
both_backends!(stalled_reader_catches_up_without_holding_others_back);

// ---------------------------------------------------------------------------------------------
// 6. Sign-out ends the streams of that session only
// ---------------------------------------------------------------------------------------------

async fn sign_out_ends_the_sessions_streams(backend: Backend, transport: StreamTransport) {
    let app = spawn_or_skip!(backend, transport_args(transport));
    let admin = app.admin().await;
    let other_browser = app.admin().await;
    let mut mine = open(&app, &admin, "", None).await;
    let mut mine_too = open(&app, &admin, "?devices=nothing", None).await;
    let mut other = open(&app, &other_browser, "", None).await;

    let r = app.logout(&admin).await;
    assert_eq!(r.status(), 303);
    mine.expect_end(Duration::from_secs(1)).await;
    mine_too.expect_end(Duration::from_secs(1)).await;

    // The other session of the same user stays live.
    post_ok(&app, &property("logout-1", DEV_A, EUI_A, 1.0, 1_000)).await;
    assert_eq!(other.next_event().await.kind(), "new_device");
    assert_eq!(other.next_event().await.kind(), "new_telemetry");

    // The signed-out browser cannot reopen.
    let r = connect(&app, &admin, "", None).await;
    assert_eq!(r.status(), 401);
}
both_backends_and_transports!(sign_out_ends_the_sessions_streams);

// ---------------------------------------------------------------------------------------------
// 7. Refusals: no session, too many streams
// ---------------------------------------------------------------------------------------------

async fn refused_without_session_or_over_the_caps(backend: Backend, transport: StreamTransport) {
    let mut args = transport_args(transport);
    args.max_streams_per_user = 2;
    args.max_streams = 4;
    let app = spawn_or_skip!(backend, args);

    for (what, client) in [
        ("no cookie", reqwest::Client::new()),
        ("unknown session", {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(
                "cookie",
                "sensorcast_session=AAAAAAAAAAAAAAAAAAAAAA".parse().unwrap(),
            );
            reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .unwrap()
        }),
    ] {
        let r = connect(&app, &client, "", None).await;
        assert_eq!(r.status(), 401, "{what}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("application/json"), "{what}: {ct}");
        let body: Value = r.json().await.expect("JSON body");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: {body}"
        );
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    // Per user.
    let admin = app.admin().await;
    let s1 = open(&app, &admin, "", None).await;
    let _s2 = open(&app, &admin, "", None).await;
    let r = connect(&app, &admin, "", None).await;
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "too_many_streams", "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    // Another browser of the same user counts against the same cap.
    let admin2 = app.admin().await;
    assert_eq!(connect(&app, &admin2, "", None).await.status(), 429);
    assert_eq!(stats(&app, &admin).await["clients"], 2);

    // Another user has their own allowance, up to the server's total.
    app.add_user("emp@example.com", Role::Employee, &["North"])
        .await;
    let emp = app.browser_as("emp@example.com", PASSWORD).await;
    let _e1 = open(&app, &emp, "", None).await;
    let _e2 = open(&app, &emp, "", None).await;
    app.add_user("mgr@example.com", Role::Manager, &["North"])
        .await;
    let mgr = app.browser_as("mgr@example.com", PASSWORD).await;
    let r = connect(&app, &mgr, "", None).await;
    assert_eq!(r.status(), 429, "the total cap of 4 is reached");
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "too_many_streams"
    );

    // Closing a stream frees its slot.
    drop(s1);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let r = connect(&app, &admin, "", None).await;
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 429);
        assert!(
            Instant::now() < deadline,
            "a closed stream still holds its slot after 3 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
both_backends_and_transports!(refused_without_session_or_over_the_caps);

// ---------------------------------------------------------------------------------------------
// 8. Shutdown ends every stream promptly
// ---------------------------------------------------------------------------------------------

async fn shutdown_ends_every_stream(backend: Backend, transport: StreamTransport) {
    let app = spawn_or_skip!(backend, transport_args(transport));
    app.add_user("emp@example.com", Role::Employee, &["North"])
        .await;
    let admin = app.admin().await;
    let emp = app.browser_as("emp@example.com", PASSWORD).await;
    let mut a = open(&app, &admin, "", None).await;
    let mut b = open(&app, &emp, "", Some("0")).await;
    let took = tokio::time::timeout(Duration::from_secs(10), app.shutdown())
        .await
        .expect("shutdown returned");
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    a.expect_end(Duration::from_secs(1)).await;
    b.expect_end(Duration::from_secs(1)).await;
}
both_backends_and_transports!(shutdown_ends_every_stream);

// ---------------------------------------------------------------------------------------------
// 9. Offline detection reaches the stream
// ---------------------------------------------------------------------------------------------

/// The real watchdog, made quick: a device counts as silent after 3 x 1 s (no grace), looked for
/// every second. A keeps quiet and goes OFFLINE; B keeps reporting and stays ONLINE.
async fn silent_device_goes_offline_on_the_stream(backend: Backend) {
    let mut args = test_args();
    args.report_interval_secs = 1;
    args.offline_grace_secs = 0;
    args.offline_sweep_secs = 1;
    let app = spawn_or_skip!(backend, args);
    let admin = app.admin().await;
    let mut sse = open(&app, &admin, "", None).await;
    let started = Instant::now();
    post_ok(&app, &property("silent-a", DEV_A, EUI_A, 1.0, 1_000)).await;
    let mut offline_after = None;
    let mut seen = Vec::new();
    for k in 0..16 {
        post_ok(
            &app,
            &property(&format!("silent-b{k}"), DEV_B, EUI_B, 1.0, 1_000 + k),
        )
        .await;
        let tick = Instant::now() + Duration::from_millis(500);
        loop {
            let left = tick.saturating_duration_since(Instant::now());
            match sse.next_within(left).await {
                Err(()) => break,
                Ok(None) => panic!("the stream ended"),
                Ok(Some(m)) if m.id.is_none() => {}
                Ok(Some(m)) => {
                    if m.kind() == "device_status_changed" {
                        assert_eq!(m.device_id(), DEV_A, "B kept reporting: {m:?}");
                        assert_eq!(m.json["data"]["status"], "OFFLINE");
                        assert!(offline_after.is_none(), "OFFLINE twice: {m:?}");
                        offline_after = Some(started.elapsed());
                    }
                    seen.push(m);
                }
            }
        }
        if offline_after.is_some() && k >= 10 {
            break;
        }
    }
    let after = offline_after.expect("A went OFFLINE within about 8 s of silence");
    assert!(
        after >= Duration::from_secs(3),
        "A went OFFLINE after {after:?}, before 3 x its interval"
    );
    assert_strictly_increasing(&ids(&seen));

    // A live reading brings it back.
    post_ok(&app, &property("silent-a2", DEV_A, EUI_A, 1.0, 2_000)).await;
    let t = sse.next_event().await;
    assert_eq!(t.kind(), "new_telemetry");
    let m = sse.next_event().await;
    assert_eq!(m.kind(), "device_status_changed", "{m:?}");
    assert_eq!(m.device_id(), DEV_A);
    assert_eq!(m.json["data"]["status"], "ONLINE");
}
both_backends!(silent_device_goes_offline_on_the_stream);

// ---------------------------------------------------------------------------------------------
// 10. Readers that keep up lose nothing while bursts overflow the channel
// ---------------------------------------------------------------------------------------------

/// Bursts of 30 events (one webhook each, 4 senders at once) through a channel of 16: every
/// reader falls behind now and then and must catch up from the database without a gap. More
/// worker threads than the other tests, so that streams run while the writer publishes.
async fn readers_lose_nothing_when_bursts_overflow_the_channel(backend: Backend) {
    let mut args = test_args();
    args.broadcast_capacity = 16;
    args.max_streams_per_user = 0;
    let app = spawn_or_skip!(backend, args);
    let browser = app.admin().await;
    let mut readers = Vec::new();
    for _ in 0..12 {
        readers.push(open(&app, &browser, "", None).await);
    }
    let (senders, per_sender) = (4, 1_500);
    let app = &app;
    let posting = async {
        let senders = (0..senders).map(|w| async move {
            let dev = format!("19886180616183071{w:02}");
            let eui = format!("24e124707e0401{w:02}");
            post_readings(app, &format!("burst{w}"), &dev, &eui, per_sender, 30).await
        });
        futures_util::future::join_all(senders).await;
    };
    // Each sender's device adds a new_device event.
    let total = senders * (per_sender + 1);
    let reading = readers.iter_mut().map(|r| read_ids(r, total));
    let ((), got) = tokio::join!(posting, futures_util::future::join_all(reading));
    let stored = app.stored_event_ids().await;
    assert_eq!(stored.len(), total);
    let mut failures = Vec::new();
    for (i, g) in got.iter().enumerate() {
        if *g != stored {
            let missing: Vec<i64> = stored.iter().copied().filter(|x| !g.contains(x)).collect();
            failures.push(format!(
                "reader {i}: {} of {} events, missing {:?}",
                g.len(),
                stored.len(),
                &missing[..missing.len().min(20)]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "gaps (lagged {} times):\n{}",
        app.state.hub.stats.lagged.get(),
        failures.join("\n")
    );
}
both_backends!(
    readers_lose_nothing_when_bursts_overflow_the_channel,
    worker_threads = 6
);

// ---------------------------------------------------------------------------------------------
// 11. Sign-out ends a stream even when the stream had fallen behind
// ---------------------------------------------------------------------------------------------

/// The sign-out message travels on the event channel; a stream that lagged past it must still
/// end, and must not carry events stored after the sign-out.
async fn sign_out_ends_a_stream_that_fell_behind(backend: Backend) {
    let mut args = test_args();
    args.broadcast_capacity = 16;
    let app = spawn_or_skip!(backend, args);
    let browser = app.admin().await;
    let mut stalled = open(&app, &browser, "", None).await;
    // Fill the stalled connection's buffers so its stream blocks.
    post_padded_readings(&app, "lag", DEV_A, EUI_A, 1_700, 50, 4_096).await;
    let before_sign_out = *app.stored_event_ids().await.last().unwrap();
    let r = app.logout(&browser).await;
    assert_eq!(r.status(), 303);
    // Push the sign-out message out of the channel.
    post_readings(&app, "after", DEV_A, EUI_A, 100, 50).await;

    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut delivered, mut after_sign_out) = (0, Vec::new());
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match stalled.next_within(left).await {
            Ok(None) => break,
            Ok(Some(m)) => {
                if let Some(id) = m.id {
                    delivered += 1;
                    if id > before_sign_out {
                        after_sign_out.push(id);
                    }
                }
            }
            Err(()) => panic!(
                "the stream is still open 10 s after sign-out; it delivered {delivered} events, \
                 {} of them stored after the sign-out (ids {:?}...)",
                after_sign_out.len(),
                &after_sign_out[..after_sign_out.len().min(5)]
            ),
        }
    }
    assert!(
        after_sign_out.is_empty(),
        "events stored after sign-out reached the signed-out stream: {after_sign_out:?}"
    );
}
both_backends!(sign_out_ends_a_stream_that_fell_behind);

// ---------------------------------------------------------------------------------------------
// 12. Streams that follow some devices are woken only for them, and still lose nothing
// ---------------------------------------------------------------------------------------------

/// Stored event ids of the devices with these Milesight ids, in order.
async fn stored_event_ids_of(app: &TestApp, milesight_ids: &[&str]) -> Vec<i64> {
    let list = milesight_ids
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",");
    let sql = format!(
        "SELECT e.id FROM events e JOIN devices d ON d.id = e.device_id \
         WHERE d.milesight_id IN ({list}) ORDER BY e.id"
    );
    query_ids(app.db(), &sql).await
}

/// `?devices=` streams wait on a gate, not on the channel. Through bursts that overflow a
/// channel of 16, each reads exactly its devices' events in order; one whose device stays quiet
/// throughout gets its device's next event.
async fn followers_of_some_devices_lose_nothing_through_bursts(backend: Backend) {
    let mut args = test_args();
    args.broadcast_capacity = 16;
    args.max_streams_per_user = 0;
    let app = spawn_or_skip!(backend, args);
    let devices: Vec<(String, String)> = (0..4)
        .map(|w| {
            (
                format!("19886180616183072{w:02}"),
                format!("24e124707e0402{w:02}"),
            )
        })
        .collect();
    for (w, (dev, eui)) in devices.iter().enumerate() {
        post_ok(
            &app,
            &property(&format!("gate-first{w}"), dev, eui, 1.0, 1_000),
        )
        .await;
    }
    let browser = app.admin().await;
    let (d0, d1, d3) = (&devices[0].0, &devices[1].0, &devices[3].0);
    let mut pairs = Vec::new();
    for _ in 0..4 {
        pairs.push(open(&app, &browser, &format!("?devices={d0},{d1}"), None).await);
    }
    let mut quiet = open(&app, &browser, &format!("?devices={d3}"), None).await;
    let before = app.stored_event_ids().await.last().copied().unwrap_or(0);

    let (senders, per_sender) = (3, 600);
    let app = &app;
    let devices = &devices;
    let posting = async {
        let senders = (0..senders).map(|w| async move {
            let (dev, eui) = &devices[w];
            post_readings(app, &format!("gate{w}"), dev, eui, per_sender, 30).await
        });
        futures_util::future::join_all(senders).await;
    };
    let want = 2 * per_sender;
    let reading = pairs.iter_mut().map(|r| read_ids(r, want));
    let ((), got) = tokio::join!(posting, futures_util::future::join_all(reading));
    let expected: Vec<i64> = stored_event_ids_of(app, &[d0, d1])
        .await
        .into_iter()
        .filter(|id| *id > before)
        .collect();
    assert_eq!(expected.len(), want);
    for (i, g) in got.iter().enumerate() {
        assert!(
            *g == expected,
            "follower {i}: {} of {want} events (lagged {} times), first difference at {:?}",
            g.len(),
            app.state.hub.stats.lagged.get(),
            g.iter().zip(&expected).position(|(a, b)| a != b)
        );
    }
    // The quiet follower saw none of the burst, and gets its own device's next event.
    let (dev3, eui3) = &devices[3];
    post_ok(app, &property("gate-quiet", dev3, eui3, 2.0, 2_000)).await;
    let m = quiet.next_event().await;
    assert_eq!(m.device_id(), d3.as_str(), "{m:?}");
    let last = stored_event_ids_of(app, &[d3]).await;
    assert_eq!(
        m.id,
        last.last().copied(),
        "the quiet device's newest event"
    );
    quiet.expect_quiet(Duration::from_millis(300)).await;
}
both_backends!(
    followers_of_some_devices_lose_nothing_through_bursts,
    worker_threads = 6
);

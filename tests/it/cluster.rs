//! Several instances on one PostgreSQL database behave as one: same events, same order, same ids,
//! replay anywhere, sign-out everywhere, offline detection once.

use std::time::Duration;

use crate::support::sse::{assert_strictly_increasing, ids, open, READ};
use crate::support::*;
use sensorcast::store::Table;

const DEV: &str = "1988618061618307073";
const EUI: &str = "24e124707e040001";

async fn post_readings(app: &TestApp, tag: &str) {
    for i in 0..20 {
        let body = mdp_reading(&format!("{tag}-{i}"), DEV, EUI, i as f64, 0.0);
        assert_eq!(app.post_mdp(&body).await.status(), 200);
    }
}

async fn two_instances() -> Option<(TestApp, TestApp)> {
    let a = TestApp::spawn(Backend::Postgres).await?;
    let b = a.spawn_peer(test_args()).await;
    Some((a, b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_instance_streams_every_event_in_the_same_order() {
    let _turn = shared_turn().await;
    let Some((a, b)) = two_instances().await else {
        return;
    };
    let admin = a.admin().await;
    let mut on_a = open(&a, &admin, "", None).await;
    let mut on_b = open(&b, &admin, "", None).await;

    // Webhooks arrive at both instances at once.
    tokio::join!(post_readings(&a, "a"), post_readings(&b, "b"));
    let total = a.count(Table::Events).await;
    assert_eq!(total, 41, "one new_device and 40 readings");

    let from_a = on_a.events_through(total, READ).await;
    let from_b = on_b.events_through(total, READ).await;
    assert_eq!(ids(&from_a), (1..=total).collect::<Vec<_>>());
    assert_eq!(ids(&from_a), ids(&from_b), "same ids in the same order");
    let raw_a: Vec<&str> = from_a.iter().map(|m| m.raw.as_str()).collect();
    let raw_b: Vec<&str> = from_b.iter().map(|m| m.raw.as_str()).collect();
    assert_eq!(raw_a, raw_b, "byte-identical events");

    // A browser that moves to the other instance replays what it missed there.
    let mut moved = open(&b, &admin, "", Some("10")).await;
    let replayed = moved.events_through(total, READ).await;
    assert_eq!(ids(&replayed), (11..=total).collect::<Vec<_>>());
    assert_strictly_increasing(&ids(&replayed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_on_one_instance_ends_streams_on_all() {
    let _turn = shared_turn().await;
    let Some((a, b)) = two_instances().await else {
        return;
    };
    let admin = a.admin().await;
    let mut on_b = open(&b, &admin, "", None).await;
    let r = a.logout(&admin).await;
    assert!(r.status().is_redirection());
    on_b.expect_end(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_device_goes_offline_once_not_once_per_instance() {
    let _turn = shared_turn().await;
    let mut args = test_args();
    args.report_interval_secs = 1;
    args.offline_grace_secs = 0;
    args.offline_sweep_secs = 1;
    let Some(a) = TestApp::spawn_with(Backend::Postgres, args.clone()).await else {
        return;
    };
    let b = a.spawn_peer(args).await;
    let admin = a.admin().await;
    let mut on_a = open(&a, &admin, "", None).await;
    let mut on_b = open(&b, &admin, "", None).await;
    assert_eq!(
        a.post_mdp(&mdp_reading("r-1", DEV, EUI, 1.0, 2.0))
            .await
            .status(),
        200
    );
    // new_device, new_telemetry, then (after 3 s of silence) one device_status_changed and its
    // offline alarm.
    for sse in [&mut on_a, &mut on_b] {
        let got = sse.events_through(3, Duration::from_secs(8)).await;
        assert_eq!(got[2].kind(), "device_status_changed");
        assert_eq!(got[2].json["data"]["status"], "OFFLINE");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for sse in [&mut on_a, &mut on_b] {
        let alarm = sse.events_through(4, Duration::from_secs(8)).await;
        assert_eq!(alarm.last().map(|m| m.kind()), Some("alarm_raised"));
    }
    assert_eq!(a.count(Table::Events).await, 4, "offline detected once");
    assert_eq!(a.count(Table::Alarms).await, 1, "one offline alarm");
}

//! The flood guard with a real SMTP server: past the limit a person's alarm emails are held,
//! and go out together in one summary when the window has room; webhooks are never held.

use std::time::Duration;

use serde_json::json;

use crate::support::smtp::{self, SmtpServer};
use crate::support::*;
use sensorcast::domain::now_ms;

const DEVICE: &str = "1988618061618400301";
const EUI: &str = "24e124707e080301";

/// A reading `i` seconds into the test's minute, so that they are judged in order.
fn reading(event: &str, base_ms: i64, i: i64, t1: f64) -> String {
    let ts = base_ms + i * 1000;
    json!([{"eventId": event, "eventCreatedTime": (ts / 1000).to_string(), "eventType": "DEVICE_DATA",
        "data": {"deviceProfile": {"deviceId": DEVICE, "devEUI": EUI, "name": "Freezer F", "model": "TS302"},
                 "type": "PROPERTY", "tslId": "", "ts": ts, "payload": {"temperature_left": t1}}}])
    .to_string()
}

async fn five_alarms_past_a_limit_of_two_make_one_summary(backend: Backend) {
    let Some(smtp) = SmtpServer::start(0).await else {
        return;
    };
    let mut args = test_args();
    args.smtp_url = Some(smtp.url());
    args.notify_max_per_hour = 2;
    args.notify_flood_window_secs = 8;
    args.public_url = Some("https://sc.example".into());
    let app = spawn_or_skip!(backend, args);
    let base = now_ms() - 60_000;
    assert_eq!(
        app.post_mdp(&reading("seed", base, 0, -20.0))
            .await
            .status(),
        200
    );
    app.rule_at_most(DEVICE, -15.0).await;

    // Five excursions, each raised and cleared: five alarms, five emails due to the admin.
    for i in 0..5 {
        let (hot, cold) = (format!("hot-{i}"), format!("cold-{i}"));
        let r = app.post_mdp(&reading(&hot, base, 1 + 2 * i, -9.5)).await;
        assert_eq!(r.status(), 200);
        let r = app.post_mdp(&reading(&cold, base, 2 + 2 * i, -20.0)).await;
        assert_eq!(r.status(), 200);
    }
    let mails = smtp.wait_for(2).await;
    assert_eq!(mails.len(), 2, "two alarm emails go out at once");
    let mut folded = Vec::new();
    for _ in 0..100 {
        folded = app.state.store.notifications(50).await.unwrap();
        folded.retain(|n| n.status == "folded");
        if folded.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(folded.len(), 3, "three held by the guard");
    assert!(folded
        .iter()
        .all(|n| n.attempts == 0 && n.summary_id.is_none()));
    assert_eq!(
        smtp.messages().len(),
        2,
        "nothing more while the window is full"
    );

    // When the window has room, one summary carries the three.
    let mails = smtp.wait_for(3).await;
    assert_eq!(mails.len(), 3, "the summary arrives");
    let summary = mails
        .iter()
        .map(|m| smtp::unfolded(m))
        .find(|m| m.contains("Subject: 3 more alarm notifications held back"))
        .unwrap_or_else(|| panic!("a summary among {mails:?}"));
    assert_eq!(smtp::recipient(&summary), "admin@example.com");
    let text = summary.split("text/html").next().unwrap();
    assert_eq!(
        text.matches("- Alarm: Freezer F").count(),
        3,
        "one line per held alarm: {summary}"
    );
    assert!(text.contains(&format!("https://sc.example/devices/{DEVICE}")));
    // The round records its attempts (and marks what the summary carried) after its sends.
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = app.state.store.notifications(50).await.unwrap();
        let done = rows.iter().filter(|n| n.summary_id.is_some()).count() == 3;
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = rows
        .iter()
        .find(|n| n.reason == "summary")
        .expect("the summary row");
    assert_eq!(sent.status, "delivered");
    assert_eq!(sent.attempts, 1);
    let carried: Vec<_> = rows
        .iter()
        .filter(|n| n.summary_id == Some(sent.id))
        .collect();
    assert_eq!(carried.len(), 3, "the three are marked as carried");
    assert!(carried.iter().all(|n| n.status == "folded"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(smtp.messages().len(), 3, "and nothing is sent twice");
}
both_backends!(five_alarms_past_a_limit_of_two_make_one_summary);

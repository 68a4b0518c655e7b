//! Operator endpoints: health, readiness and Prometheus metrics that move.

use crate::support::*;

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn scrape(app: &TestApp) -> String {
    let r = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("openmetrics-text"));
    r.text().await.unwrap()
}

async fn health_and_metrics_move(backend: Backend) {
    let app = spawn_or_skip!(backend);
    let r = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    let r = reqwest::get(app.url("/readyz")).await.unwrap();
    assert_eq!(r.status(), 200);

    let before = scrape(&app).await;
    let accepted = r#"sensorcast_webhooks_total{source="mdp",result="accepted",code=""}"#;
    let rejected =
        r#"sensorcast_webhooks_total{source="mdp",result="rejected",code="signature_invalid"}"#;
    assert_eq!(metric(&before, accepted), 0.0);

    app.post_mdp(&mdp_reading(
        "m-1",
        "1904371063669395457",
        "24d124707e040001",
        1.0,
        2.0,
    ))
    .await;
    let now = (sensorcast::domain::now_ms() / 1000).to_string();
    app.post_mdp_signed("{}", &now, "n", &"0".repeat(64)).await;

    let admin = app.admin().await;
    let stream = admin.get(app.url("/api/realtime")).send().await.unwrap();
    assert_eq!(stream.status(), 200);

    let after = scrape(&app).await;
    assert_eq!(metric(&after, accepted), 1.0, "{after}");
    assert_eq!(metric(&after, rejected), 1.0, "{after}");
    assert_eq!(
        metric(&after, "sensorcast_events_broadcast_total"),
        2.0,
        "{after}"
    );
    assert_eq!(
        metric(&after, r#"sensorcast_streams{role="admin"}"#),
        1.0,
        "{after}"
    );
    assert!(
        after.contains(r#"sensorcast_http_request_duration_seconds_count{method="POST",route="/api/webhooks/milesight",status="2xx"} 1"#),
        "{after}"
    );
    drop(stream);
}
both_backends!(health_and_metrics_move);

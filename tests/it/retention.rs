//! Summaries and the retention purge: a site in Asia/Kolkata (days start at 18:30 UTC) with
//! readings over three days, an excursion with its acknowledgement, a duplicate and a
//! back-filled reading; the report's page and CSV are the same before and after the raw
//! readings of two days are purged, the summaries count each reading once in its own quarter
//! hour, and a reading without its summary is never purged.

use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::support::*;
use sensorcast::store::{purge_readings, Table};

const DEVICE: &str = "1988618061618400301";
const EUI: &str = "24e124707e070301";
/// 2026-03-10 00:00 in Asia/Kolkata (+5:30), 2026-03-09 18:30 UTC.
const D0: i64 = 1_773_081_000_000;
const DAY: i64 = 86_400_000;
const MIN: i64 = 60_000;
const RULE: &str =
    r#"{"rules":[{"quantity":"temperature","probe":1,"min":-25.0,"max":-15.0,"delaySecs":0}]}"#;

fn reading(event: &str, ts_ms: i64, t1: f64) -> String {
    json!([{
        "eventId": event, "eventCreatedTime": (ts_ms / 1000).to_string(), "eventVersion": "1.0",
        "eventType": "DEVICE_DATA",
        "data": {
            "deviceProfile": {"deviceId": DEVICE, "devEUI": EUI, "name": "Cold room", "model": "TS302"},
            "type": "PROPERTY", "tslId": "", "ts": ts_ms,
            "payload": {"temperature_left": t1, "battery": 90}
        }
    }])
    .to_string()
}

async fn post(app: &TestApp, event: &str, ts_ms: i64, t1: f64) {
    let r = app.post_mdp(&reading(event, ts_ms, t1)).await;
    assert_eq!(r.status(), 200, "reading {event}");
}

async fn text(client: &reqwest::Client, url: String) -> String {
    let r = client.get(url).send().await.expect("GET");
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// The page without its "generated at" time.
fn without_generated(page: &str) -> String {
    page.lines()
        .filter(|l| !l.contains("generated "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The device's summary points of a range, from the chart API.
async fn points(client: &reqwest::Client, app: &TestApp, since: i64, until: i64) -> Value {
    get_json(
        client,
        app.url(&format!(
            "/api/devices/{DEVICE}/summaries?since={since}&until={until}"
        )),
    )
    .await
}

async fn report_survives_a_purge(backend: Backend) {
    let app = spawn_or_skip!(backend);
    post(&app, "first", D0, -20.0).await;
    app.assign(DEVICE, "North").await;
    let admin = app.admin().await;
    let csrf = app.page_csrf(&admin).await;
    let north = app.state.store.sites().await.unwrap()[0].id;
    let r = admin
        .post(app.url(&format!("/admin/sites/{north}/timezone")))
        .form(&[("csrf", csrf.as_str()), ("time_zone", "Asia/Kolkata")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let rule = serde_json::from_str::<Value>(RULE).unwrap();
    let r = app.put_rules(&admin, &csrf, DEVICE, &rule).await;
    assert_eq!(r.status(), 200);

    // Every 30 minutes for three days; out of range on day 2 from 23:00 to 01:00 (over
    // midnight); the last reading of day 2 is held back and back-filled at the end.
    let mut n = 1;
    for i in 1..(3 * 48) {
        let t = D0 + i * 30 * MIN;
        let out = (D0 + DAY + 23 * 60 * MIN..D0 + 2 * DAY + 60 * MIN).contains(&t);
        if t == D0 + 2 * DAY - 30 * MIN {
            continue;
        }
        post(
            &app,
            &format!("r{i}"),
            t,
            if out { -10.0 } else { -18.0 - (i % 5) as f64 },
        )
        .await;
        n += 1;
    }
    // A duplicate delivery stores nothing and counts nothing.
    post(&app, "r1", D0 + 30 * MIN, -18.0).await;
    post(&app, "late", D0 + 2 * DAY - 30 * MIN, -10.0).await;
    n += 1;
    assert_eq!(app.count(Table::Readings).await, n);

    acknowledge_first_excursion(&app, &admin, &csrf, "door closed").await;

    // Summaries: one reading per quarter hour at :00 and :30, the duplicate not added, the
    // back-filled reading in its own quarter hour.
    let p = points(&admin, &app, D0, D0 + DAY).await;
    assert_eq!(p["stepMs"], 15 * MIN, "a day: quarter hours");
    let day1 = p["points"].as_array().unwrap();
    assert_eq!(day1.len(), 48);
    assert!(day1.iter().all(|p| p["count"] == 1), "{p}");
    assert_eq!(day1[1]["startMs"], D0 + 30 * MIN);
    assert_eq!(day1[1]["mean"], -19.0);
    let late = points(&admin, &app, D0 + 2 * DAY - 30 * MIN, D0 + 2 * DAY).await;
    assert_eq!(late["points"][0]["max"], -10.0, "{late}");
    assert_eq!(late["points"][0]["count"], 1);
    let week = points(&admin, &app, D0 - 4 * DAY, D0 + 3 * DAY).await;
    assert_eq!(week["stepMs"], 60 * MIN, "a week: hours");
    let counted: i64 = week["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["count"].as_i64().unwrap())
        .sum();
    assert_eq!(counted, n);

    let period = "from=2026-03-10&to=2026-03-12";
    let page_url = app.url(&format!("/sites/{north}/report?{period}"));
    let csv_url = app.url(&format!("/sites/{north}/report.csv?{period}"));
    text(&admin, page_url.clone()).await; // shows (and clears) the time zone's flash message
    let (page, csv) = (
        text(&admin, page_url.clone()).await,
        text(&admin, csv_url.clone()).await,
    );
    // min, max; received, expected, minutes out of range (the excursion split at midnight).
    for (day, range, counts) in [
        ("2026-03-10", "-22.0,-18.0", "48,144,0"),
        ("2026-03-11", "-22.0,-10.0", "48,144,60"),
        ("2026-03-12", "-22.0,-10.0", "48,144,60"),
    ] {
        let head = format!("\"day\",\"North\",\"Cold room\",{day},24,1,{range},");
        let line = csv.lines().find(|l| l.starts_with(&head));
        let line = line.unwrap_or_else(|| panic!("the CSV has {head}:\n{csv}"));
        assert!(line.contains(&format!(",{counts},")), "{line}");
    }
    assert!(csv.contains("\"door closed\""));

    // Day 1 and day 2 go: 48 + 48 readings.
    let stop = CancellationToken::new();
    let purged = purge_readings(&app.state.writer, D0 + 2 * DAY, 10, Duration::ZERO, &stop)
        .await
        .expect("purge");
    assert_eq!(purged, 96);
    assert_eq!(app.count(Table::Readings).await, n - 96);
    assert_eq!(text(&admin, csv_url).await, csv, "the CSV is the same");
    assert_eq!(
        without_generated(&text(&admin, page_url).await),
        without_generated(&page),
        "the page is the same"
    );
    assert_eq!(
        points(&admin, &app, D0, D0 + DAY).await["points"],
        p["points"]
    );

    // A reading whose summary is missing stays.
    let bucket = D0 + 2 * DAY + 2 * 60 * MIN;
    execute(
        app.db(),
        "DELETE FROM reading_summaries WHERE bucket_ms = $1 AND ($2 OR NOT $2) AND device_id <> $3",
        bucket,
        true,
        0,
    )
    .await;
    let purged = purge_readings(&app.state.writer, D0 + 3 * DAY, 1000, Duration::ZERO, &stop)
        .await
        .unwrap();
    assert_eq!(purged, n as u64 - 97, "all but the unsummarized one");
    assert_eq!(app.count(Table::Readings).await, 1);
}
both_backends!(report_survives_a_purge);

/// The summaries API refuses what it cannot answer, in its JSON error shape: no session, a
/// device the reader may not see or that does not exist, and ranges that are reversed, too
/// long, unparsable or at the ends of the clock.
async fn summaries_refuse_bad_queries(backend: Backend) {
    let app = spawn_or_skip!(backend);
    post(&app, "one", D0, -20.0).await;
    app.assign(DEVICE, "North").await;
    app.add_user(
        "e@south.test",
        sensorcast::domain::Role::Employee,
        &["South"],
    )
    .await;
    let admin = app.admin().await;
    let path = |q: &str| app.url(&format!("/api/devices/{DEVICE}/summaries{q}"));
    let r = reqwest::Client::new().get(path("")).send().await.unwrap();
    assert_json_error(r, 401, "unauthorized", "no session").await;
    let south = app.browser_as("e@south.test", PASSWORD).await;
    let r = south.get(path("")).send().await.unwrap();
    assert_json_error(r, 404, "not_found", "another site's device").await;
    let r = admin
        .get(app.url("/api/devices/404404/summaries"))
        .send()
        .await
        .unwrap();
    assert_json_error(r, 404, "not_found", "no such device").await;
    let too_long = format!("?since={D0}&until={}", D0 + 401 * DAY);
    let reversed = format!("?since={}&until={D0}", D0 + DAY);
    let bad = [
        reversed.as_str(),
        "?since=5&until=5",
        too_long.as_str(),
        "?since=yesterday",
        "?until=2026-13-01T00:00:00Z",
        "?since=-9223372036854775808",
        "?since=-9223372036854775808&until=9223372036854775807",
        // Found by schema fuzzing: each overflowed (the default span, a bucket's start).
        "?until=-9223372036854775808",
        "?since=-9223372036854775808&until=-9223372036854775000",
        "?since=253402300800000&until=253402300800001",
        "?since=99999999999999999999",
    ];
    for q in bad {
        let r = admin.get(path(q)).send().await.unwrap();
        assert_json_error(r, 400, "invalid_query", q).await;
    }
    // The same device and a valid range answer.
    let ok = format!("?since={D0}&until={}", D0 + DAY);
    let r = admin.get(path(&ok)).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
both_backends!(summaries_refuse_bad_queries);

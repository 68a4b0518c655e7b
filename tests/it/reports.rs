//! The site report end to end: readings with explicit measuredAt over two Europe/Berlin days
//! (the second is the 23-hour day of the spring change), the figures on the page and in the
//! CSV, an alarm with its acknowledgement, scoping by site, the review and its audit row, and a
//! back-filled reading that marks the reviewed period "changed after review".

use serde_json::{json, Value};

use crate::support::*;
use sensorcast::domain::Role;
use sensorcast::store::Table;

const DEVICE: &str = "1988618061618400201";
const EUI: &str = "24e124707e070201";
const OTHER: &str = "1988618061618400202";
const OTHER_EUI: &str = "24e124707e070202";
/// 2026-03-28 00:00 in Berlin (CET, 23:00 UTC the day before); the next day has 23 hours.
const D1: i64 = 1_774_652_400_000;
const D2: i64 = D1 + 24 * HOUR;
const HOUR: i64 = 3_600_000;
const MIN: i64 = 60_000;
const RULE: &str =
    r#"{"rules":[{"quantity":"temperature","probe":1,"min":-25.0,"max":-15.0,"delaySecs":0}]}"#;

fn reading(event: &str, device: &str, eui: &str, ts_ms: i64, t1: f64) -> String {
    json!([{
        "eventId": event, "eventCreatedTime": (ts_ms / 1000).to_string(), "eventVersion": "1.0",
        "eventType": "DEVICE_DATA",
        "data": {
            "deviceProfile": {"deviceId": device, "devEUI": eui, "name": "Freezer 1", "model": "TS302"},
            "type": "PROPERTY", "tslId": "", "ts": ts_ms,
            "payload": {"temperature_left": t1, "battery": 90}
        }
    }])
    .to_string()
}

async fn post(app: &TestApp, event: &str, ts_ms: i64, t1: f64) {
    let r = app.post_mdp(&reading(event, DEVICE, EUI, ts_ms, t1)).await;
    assert_eq!(r.status(), 200, "reading {event}");
}

async fn text(client: &reqwest::Client, url: String) -> (u16, String) {
    let r = client.get(url).send().await.expect("GET");
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

async fn site_report(backend: Backend) {
    let app = spawn_or_skip!(backend);
    post(&app, "r1", D1 + HOUR, -20.0).await;
    let other = reading("o1", OTHER, OTHER_EUI, D1 + HOUR, -20.0);
    assert_eq!(app.post_mdp(&other).await.status(), 200);
    app.assign(DEVICE, "North").await;
    app.assign(OTHER, "South").await;
    // The admin sets North's time zone on the admin page; a name not in the tzdb is refused.
    let admin = app.admin().await;
    let admin_csrf = app.page_csrf(&admin).await;
    let north_id = app.state.store.sites().await.unwrap()[0].id;
    for (tz, saved) in [("Mars/Olympus", false), ("Europe/Berlin", true)] {
        let r = admin
            .post(app.url(&format!("/admin/sites/{north_id}/timezone")))
            .form(&[("csrf", admin_csrf.as_str()), ("time_zone", tz)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{tz}");
        let sites = app.state.store.sites().await.unwrap();
        let north = sites.iter().find(|s| s.name == "North").unwrap();
        assert_eq!(north.time_zone.is_some(), saved, "{tz}");
    }
    app.add_user("m@north.test", Role::Manager, &["North"])
        .await;
    app.add_user("e@north.test", Role::Employee, &["North"])
        .await;
    app.add_user("e@south.test", Role::Employee, &["South"])
        .await;
    let manager = app.browser_as("m@north.test", PASSWORD).await;
    let employee = app.browser_as("e@north.test", PASSWORD).await;
    let stranger = app.browser_as("e@south.test", PASSWORD).await;
    let manager_csrf = app.page_csrf(&manager).await;
    let employee_csrf = app.page_csrf(&employee).await;

    let sites = get_json(&employee, app.url("/api/sites")).await;
    let north = sites[0]["siteId"].as_i64().expect("a site id");
    assert_eq!(
        sites,
        json!([{"siteId": north, "name": "North", "timeZone": "Europe/Berlin"}]),
        "only the user's own sites"
    );
    let (_, dashboard) = text(&employee, app.url("/employee")).await;
    assert!(
        dashboard.contains(&format!("/sites/{north}/report?from=")),
        "the dashboard links the site's report"
    );
    let south = get_json(&stranger, app.url("/api/sites")).await;
    assert_eq!(south[0]["timeZone"], "UTC", "the server's default");

    let rule = serde_json::from_str::<Value>(RULE).unwrap();
    let r = app.put_rules(&manager, &manager_csrf, DEVICE, &rule).await;
    assert_eq!(r.status(), 200);
    // Day 1: out of range from 02:00 to 03:00 (an alarm, acknowledged); day 2 in range.
    post(&app, "r2", D1 + 2 * HOUR, -10.0).await;
    post(&app, "r3", D1 + 2 * HOUR + 30 * MIN, -12.0).await;
    post(&app, "r4", D1 + 3 * HOUR, -20.0).await;
    post(&app, "r5", D2 + HOUR, -18.0).await;
    post(&app, "r6", D2 + 2 * HOUR, -22.0).await;
    acknowledge_first_excursion(&app, &manager, &manager_csrf, "moved stock to freezer B").await;

    let period = "from=2026-03-28&to=2026-03-29";
    let (status, page) = text(
        &employee,
        app.url(&format!("/sites/{north}/report?{period}")),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    for want in [
        "<td>Freezer 1</td><td>2026-03-28</td><td>1</td><td>-20.0</td><td>-10.0</td><td>-15.5</td><td>4 / 144</td><td>60</td>",
        "<td>Freezer 1</td><td>2026-03-29 (23 h)</td><td>1</td><td>-22.0</td><td>-18.0</td><td>-20.0</td><td>2 / 138</td><td>0</td>",
        "<td>2026-03-28 02:00 CET</td><td>2026-03-28 03:00 CET</td><td>1 h 00 min</td><td>-10.0</td><td>m@north.test</td>",
        "moved stock to freezer B",
        "<dt>Days fully in range</dt><dd>1 of 2</dd>",
        "<dt>Excursions</dt><dd>1</dd>",
        "<dt>Unacknowledged alarms</dt><dd>0</dd>",
        "Europe/Berlin",
    ] {
        assert!(page.contains(want), "the page shows {want}:\n{page}");
    }
    assert!(
        !page.contains("Mark this period reviewed"),
        "employees do not review"
    );
    assert!(!page.contains("OTHER") && !page.contains("South"));

    let (status, csv) = text(
        &employee,
        app.url(&format!("/sites/{north}/report.csv?{period}")),
    )
    .await;
    assert_eq!(status, 200);
    assert!(csv.starts_with("section,site,device,date,hours,probe,min_c,max_c,mean_c,received,expected,minutes_out_of_range,"));
    for want in [
        "\"day\",\"North\",\"Freezer 1\",2026-03-28,24,1,-20.0,-10.0,-15.5,4,144,60,",
        "\"day\",\"North\",\"Freezer 1\",2026-03-29,23,1,-22.0,-18.0,-20.0,2,138,0,",
        "\"2026-03-28 02:00 CET\",\"2026-03-28 03:00 CET\",\"1 h 00 min\",-10.0,\"m@north.test\"",
        "\"moved stock to freezer B\"",
    ] {
        assert!(csv.contains(want), "the CSV has {want}:\n{csv}");
    }

    // Another site's employee: not found, page and CSV alike; a bad period is a 400 page.
    for path in [
        format!("/sites/{north}/report?{period}"),
        format!("/sites/{north}/report.csv?{period}"),
        "/sites/999999/report?from=2026-03-28&to=2026-03-29".to_string(),
    ] {
        assert_eq!(text(&stranger, app.url(&path)).await.0, 404, "{path}");
    }
    for bad in [
        "from=2026-03-29&to=2026-03-28",
        "from=2024-01-01&to=2025-01-02",
        "from=2026-02-30&to=2026-03-01",
        "from=2026-03-28",
    ] {
        let (status, _) = text(&employee, app.url(&format!("/sites/{north}/report?{bad}"))).await;
        assert_eq!(status, 400, "{bad}");
    }

    // Review: refused to employees, recorded and audited for the manager.
    let review = |client: &reqwest::Client, csrf: &str| {
        client
            .post(app.url(&format!("/sites/{north}/report/review")))
            .form(&[("csrf", csrf), ("from", "2026-03-28"), ("to", "2026-03-29")])
            .send()
    };
    let audited = app.count(Table::AuditLog).await;
    assert_eq!(
        review(&employee, &employee_csrf).await.unwrap().status(),
        403
    );
    assert_eq!(app.count(Table::AuditLog).await, audited);
    let r = review(&manager, &manager_csrf).await.unwrap();
    assert_eq!(r.status(), 303, "back to the report");
    assert_eq!(app.count(Table::AuditLog).await, audited + 1);
    let trail = get_json(
        &app.admin().await,
        app.url("/api/audit?action=report.reviewed"),
    )
    .await;
    let entry = &trail["entries"][0];
    assert_eq!(entry["actor"], "m@north.test");
    assert_eq!(entry["target"], "North");
    let (_, page) = text(
        &manager,
        app.url(&format!("/sites/{north}/report?{period}")),
    )
    .await;
    assert!(page.contains("reviewed by m@north.test at 20"), "{page}");
    assert!(!page.contains("changed after review"));

    // A reading of the reviewed period arrives later (back-filled): the report says so.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    post(&app, "late", D2 + 3 * HOUR, -19.0).await;
    let (_, page) = text(
        &employee,
        app.url(&format!("/sites/{north}/report?{period}")),
    )
    .await;
    assert!(page.contains("changed after review"), "{page}");
    assert!(page.contains("<td>3 / 138</td>"));
    // A later period without review shows none.
    let (_, page) = text(
        &employee,
        app.url(&format!(
            "/sites/{north}/report?from=2026-04-01&to=2026-04-01"
        )),
    )
    .await;
    assert!(!page.contains("reviewed by"));
}
both_backends!(site_report);

//! °C/°F per user, end to end: a manager who chooses °F reads °F on the dashboard, the device
//! page (values, rules table, rules form), the device CSV, the site report and its CSV, and in
//! the alarm email, while the admin (°C) reads °C and the JSON API stays in °C. A unit that is
//! neither is refused and changes nothing.

use serde_json::Value;

use crate::support::smtp::{self, SmtpServer};
use crate::support::*;
use sensorcast::domain::{Role, TemperatureUnit};

const DEVICE: &str = "1988618061618400301";
const EUI: &str = "24e124707e090301";
const MANAGER: &str = "m@north.test";

async fn page(client: &reqwest::Client, url: String) -> (u16, String) {
    let r = client.get(url).send().await.expect("GET");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

async fn save_settings(
    app: &TestApp,
    client: &reqwest::Client,
    fields: &[(&str, &str)],
) -> (u16, String) {
    let csrf = app.page_csrf(client).await;
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    let r = client
        .post(app.url("/settings"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let (_, body) = page(client, app.url("/settings")).await;
    (status, body)
}

async fn unit_of(app: &TestApp, id: i64) -> TemperatureUnit {
    app.state.store.user(id).await.unwrap().unwrap().unit
}

async fn fahrenheit_for_one_reader(backend: Backend) {
    let Some(smtp) = SmtpServer::start(0).await else {
        return;
    };
    let mut args = test_args();
    args.smtp_url = Some(smtp.url());
    args.public_url = Some("https://sc.example".into());
    let app = spawn_or_skip!(backend, args);
    let r = app
        .post_mdp(&mdp_reading("u1", DEVICE, EUI, -20.0, 3.5))
        .await;
    assert_eq!(r.status(), 200);
    app.assign(DEVICE, "North").await;
    let manager_id = app.add_user(MANAGER, Role::Manager, &["North"]).await;
    let manager = app.browser_as(MANAGER, PASSWORD).await;
    let admin = app.admin().await;

    // °C until chosen otherwise.
    assert_eq!(unit_of(&app, manager_id).await, TemperatureUnit::Celsius);
    let (_, settings) = page(&manager, app.url("/settings")).await;
    assert!(
        settings.contains(r#"value="C" checked"#),
        "°C is preselected: {settings}"
    );

    // A unit that is neither is refused, in words, and nothing changes.
    let (status, body) = save_settings(&app, &manager, &[("unit", "K")]).await;
    assert_eq!(status, 303);
    assert!(body.contains("Not saved: choose °C or °F."), "{body}");
    assert_eq!(unit_of(&app, manager_id).await, TemperatureUnit::Celsius);

    let (status, body) =
        save_settings(&app, &manager, &[("unit", "F"), ("email_alerts", "on")]).await;
    assert_eq!(status, 303);
    assert!(
        body.contains("temperatures in °F") && body.contains(r#"value="F" checked"#),
        "{body}"
    );
    assert_eq!(unit_of(&app, manager_id).await, TemperatureUnit::Fahrenheit);

    // The dashboard and the device page in °F; the admin's in °C.
    let (status, dash) = page(&manager, app.url("/manager")).await;
    assert_eq!(status, 200);
    assert!(dash.contains(r#"data-unit="F""#), "the page script is told");
    assert!(
        dash.contains("-4.0 °F") && dash.contains("38.3 °F"),
        "{dash}"
    );
    assert!(!dash.contains("-20.0 °C"));
    let device_url = app.url(&format!("/devices/{DEVICE}"));
    let (_, admin_page) = page(&admin, device_url.clone()).await;
    assert!(admin_page.contains("-20.0 °C") && !admin_page.contains("°F"));

    // The JSON API stays in °C.
    let telemetry = get_json(
        &manager,
        app.url(&format!("/api/devices/{DEVICE}/telemetry")),
    )
    .await;
    assert_eq!(
        telemetry["readings"][0]["temperature"], -20.0,
        "{telemetry}"
    );

    // The rules form takes °F (its hidden unit field says so); the rule is stored in °C.
    let csrf = app.page_csrf(&manager).await;
    let r = manager
        .post(app.url(&format!("/devices/{DEVICE}/rules")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("unit", "F"),
            ("temperature-1-min", "-13"),
            ("temperature-1-max", "5"),
            ("temperature-1-delay", "0"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let rules = get_json(&manager, app.url(&format!("/api/devices/{DEVICE}/rules"))).await;
    assert_eq!(
        (&rules["rules"][0]["min"], &rules["rules"][0]["max"]),
        (&Value::from(-25.0), &Value::from(-15.0)),
        "{rules}"
    );
    let (_, detail) = page(&manager, device_url.clone()).await;
    assert!(
        detail.contains("-13.0 °F") && detail.contains("5.0 °F"),
        "the rules table in °F: {detail}"
    );
    assert!(
        detail.contains(r#"name="temperature-1-min" value="-13""#)
            && detail.contains(r#"name="temperature-1-max" value="5""#),
        "the form in °F, as typed"
    );

    // The device CSV names its unit.
    let (_, csv) = page(&manager, app.url(&format!("/devices/{DEVICE}/export.csv"))).await;
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .contains(",temperature_f,temperature2_f,"));
    assert!(lines.next().unwrap().contains(",-4,38.3,"), "{csv}");
    let (_, csv) = page(&admin, app.url(&format!("/devices/{DEVICE}/export.csv"))).await;
    assert!(csv.contains(",temperature,temperature2,") && csv.contains(",-20,3.5,"));

    // The report and its CSV.
    let north = app.state.store.sites().await.unwrap()[0].id;
    // Sites keep the server's time zone here: UTC.
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    let period = format!("from={today}&to={today}");
    let (status, report) = page(
        &manager,
        app.url(&format!("/sites/{north}/report?{period}")),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert!(
        report.contains("Min °F") && report.contains("-4.0"),
        "{report}"
    );
    assert!(report.contains("-13 to 5 °F"), "the rule's range: {report}");
    let (_, csv) = page(
        &manager,
        app.url(&format!("/sites/{north}/report.csv?{period}")),
    )
    .await;
    assert!(
        csv.starts_with("section,site,device,date,hours,probe,min_f,max_f,mean_f,"),
        "{csv}"
    );
    assert!(csv.contains(",-4.0,-4.0,-4.0,"), "{csv}");
    let (_, csv) = page(
        &admin,
        app.url(&format!("/sites/{north}/report.csv?{period}")),
    )
    .await;
    assert!(csv.contains(",min_c,") && csv.contains(",-20.0,-20.0,-20.0,"));

    // An alarm: the manager's email in °F, the admin's in °C.
    let r = app
        .post_mdp(&mdp_reading("u2", DEVICE, EUI, -9.5, 3.5))
        .await;
    assert_eq!(r.status(), 200);
    let mails = smtp.wait_for(2).await;
    assert_eq!(mails.len(), 2, "{mails:?}");
    for m in &mails {
        let body = smtp::unfolded(m);
        if smtp::recipient(m) == MANAGER {
            assert!(
                body.contains("14.9 °F") && body.contains("-13.0 to 5.0 °F"),
                "{body}"
            );
            assert!(!body.contains("°C"), "{body}");
        } else {
            assert!(
                body.contains("-9.5 °C") && body.contains("-25.0 to -15.0 °C"),
                "{body}"
            );
        }
    }
}
both_backends!(fahrenheit_for_one_reader);

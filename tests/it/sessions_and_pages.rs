//! The browser side over real HTTP: sign-in and sign-out, throttling, anti-forgery, role pages
//! and what each role's pages, JSON and exports may contain; on SQLite and PostgreSQL.

use std::time::Duration;

use crate::support::*;
use reqwest::header::{HeaderMap, CONTENT_TYPE, LOCATION};
use reqwest::StatusCode;
use sensorcast::domain::Role;
use sensorcast::store::Table;
use serde_json::{json, Value};

const NORTH_ID: &str = "1988618061618300001";
const NORTH_EUI: &str = "24e124707e050001";
const NORTH_NAME: &str = "Freezer North";
const SOUTH_ID: &str = "1988618061618300002";
const SOUTH_EUI: &str = "24e124707e050002";
const SOUTH_NAME: &str = "Fridge South";
const EVIL_ID: &str = "1988618061618300003";
const EVIL_EUI: &str = "24e124707e050003";
const EVIL_NAME: &str = "<script>alert(1)</script>";
const EVIL_ESCAPED: &str = "&#60;script&#62;alert(1)&#60;/script&#62;";
const MANAGER: &str = "manager@example.com";
const EMPLOYEE: &str = "employee@example.com";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// An MDP reading of a named TS302, measured at `ts_ms`.
fn reading(event: &str, id: &str, eui: &str, name: &str, t1: f64, ts_ms: i64) -> String {
    json!({
        "eventId": event, "eventCreatedTime": ts_ms / 1000, "eventVersion": "1.0",
        "eventType": "DEVICE_DATA",
        "data": {
            "deviceProfile": {"deviceId": id, "devEUI": eui, "name": name, "model": "TS302"},
            "type": "PROPERTY", "tslId": "", "ts": ts_ms,
            "payload": {"temperature_left": t1, "temperature_right": 4.0, "battery": 88}
        }
    })
    .to_string()
}

async fn post_reading(app: &TestApp, body: &str) {
    let r = app.post_mdp(body).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
}

/// Devices in two sites and one unplaced device with a hostile name; a manager of both
/// sites and an employee of North.
async fn fleet(app: &TestApp) {
    let now = sensorcast::domain::now_ms();
    post_reading(
        app,
        &reading("n-1", NORTH_ID, NORTH_EUI, NORTH_NAME, -18.4, now),
    )
    .await;
    post_reading(
        app,
        &reading("s-1", SOUTH_ID, SOUTH_EUI, SOUTH_NAME, 3.7, now),
    )
    .await;
    post_reading(app, &reading("e-1", EVIL_ID, EVIL_EUI, EVIL_NAME, 5.0, now)).await;
    app.assign(NORTH_ID, "North").await;
    app.assign(SOUTH_ID, "South").await;
    app.add_user(MANAGER, Role::Manager, &["North", "South"])
        .await;
    app.add_user(EMPLOYEE, Role::Employee, &["North"]).await;
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }
}

async fn page(r: reqwest::Response) -> Page {
    Page {
        status: r.status(),
        headers: r.headers().clone(),
        body: r.text().await.expect("body"),
    }
}

async fn get(app: &TestApp, client: &reqwest::Client, path: &str) -> Page {
    page(client.get(app.url(path)).send().await.expect("get")).await
}

/// Posts a form as a browser on this site would (Origin header included).
async fn post_form(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    fields: &[(&str, &str)],
) -> Page {
    let origin = format!("http://{}", app.addr);
    page(
        client
            .post(app.url(path))
            .header("origin", origin)
            .form(fields)
            .send()
            .await
            .expect("post"),
    )
    .await
}

/// The anti-forgery token of the sign-in form for a fresh client.
async fn login_token(app: &TestApp, client: &reqwest::Client) -> String {
    csrf_in(&get(app, client, "/login").await.body).expect("the sign-in form has a token")
}

// ---------------------------------------------------------------------------------------------
// 1. Sign-in and sign-out
// ---------------------------------------------------------------------------------------------

async fn sign_in_and_out(backend: Backend) {
    let app = spawn_or_skip!(backend);
    let client = browser();
    let form = get(&app, &client, "/login?next=/devices/x").await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains(r#"name="next" value="/devices/x""#));
    // The form starts no session (nothing is stored for a visitor), only a nonce cookie.
    assert_eq!(session_cookie(&form.headers), None);
    let nonce = form
        .headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("sensorcast_csrf="))
        .expect("the form sets its nonce cookie")
        .to_string();
    assert!(nonce.contains("HttpOnly") && nonce.contains("SameSite=Lax"));
    let token = csrf_in(&form.body).unwrap();

    // Wrong password: the form again, with the email kept and no session.
    let wrong = post_form(
        &app,
        &client,
        "/login",
        &[
            ("email", ADMIN_EMAIL),
            ("password", "nope"),
            ("csrf", &token),
        ],
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("Wrong email or password."));
    assert!(wrong.body.contains(&format!(r#"value="{ADMIN_EMAIL}""#)));
    assert_eq!(get(&app, &client, "/").await.status, 303);
    assert_eq!(get(&app, &client, "/").await.location(), "/login");

    let ok = post_form(
        &app,
        &client,
        "/login",
        &[
            ("email", "  Admin@Example.com "),
            ("password", PASSWORD),
            ("csrf", &token),
            ("next", "/devices/x"),
        ],
    )
    .await;
    assert_eq!(ok.status, 303);
    assert_eq!(ok.location(), "/devices/x");
    let after = session_cookie(&ok.headers).expect("a session cookie at sign-in");
    assert!(after.contains("HttpOnly") && after.contains("SameSite=Lax"));

    let home = get(&app, &client, "/").await;
    assert_eq!((home.status.as_u16(), home.location()), (303, "/admin"));
    let again = get(&app, &client, "/login").await;
    assert_eq!((again.status.as_u16(), again.location()), (303, "/"));
    // The token seen before signing in no longer works.
    let stale = post_form(&app, &client, "/logout", &[("csrf", &token)]).await;
    assert_eq!(stale.status, 403);

    let out = app.logout(&client).await;
    assert_eq!(out.status(), 303);
    assert_eq!(out.headers()[LOCATION], "/login");
    let admin = get(&app, &client, "/admin").await;
    assert_eq!(
        (admin.status.as_u16(), admin.location()),
        (303, "/login?next=%2Fadmin")
    );
    assert_eq!(get(&app, &client, "/api/devices").await.status, 401);

    // Never sent to another site after sign-in.
    for evil in ["//evil.example", "https://evil.example/", "/\\evil.example"] {
        let c = browser();
        let token = login_token(&app, &c).await;
        let r = post_form(
            &app,
            &c,
            "/login",
            &[
                ("email", ADMIN_EMAIL),
                ("password", PASSWORD),
                ("csrf", &token),
                ("next", evil),
            ],
        )
        .await;
        assert_eq!((r.status.as_u16(), r.location()), (303, "/"), "{evil}");
    }
}
both_backends!(sign_in_and_out);

/// A session in use is extended once a day (saved with a fresh expiry and cookie), not on every
/// request, and not at all when idle.
async fn sessions_in_use_are_renewed_daily(backend: Backend) {
    use sensorcast::store::sessions::DbSessionStore;
    use tower_sessions::session::Id;
    use tower_sessions::SessionStore;

    let app = spawn_or_skip!(backend);
    let client = browser();
    let ok = app.login_with(&client, ADMIN_EMAIL, PASSWORD).await;
    let cookie = session_cookie(ok.headers()).expect("a session at sign-in");
    let id: Id = cookie
        .trim_start_matches("sensorcast_session=")
        .split(';')
        .next()
        .unwrap()
        .parse()
        .expect("session id");
    // Right after sign-in: no write, no cookie.
    let me = get(&app, &client, "/api/me").await;
    assert_eq!(me.status, 200);
    assert_eq!(session_cookie(&me.headers), None, "no save per request");

    // A day later, with an hour left: the next request extends it to the full period.
    let store = DbSessionStore::new(app.state.store.clone());
    let mut record = store.load(&id).await.unwrap().expect("stored session");
    let day_ago = sensorcast::domain::now_ms() - 25 * 3600 * 1000;
    record.data.insert("renewed_at".into(), json!(day_ago));
    record.expiry_date = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    store.save(&record).await.unwrap();
    let me = get(&app, &client, "/api/me").await;
    assert_eq!(me.status, 200);
    let renewed = session_cookie(&me.headers).expect("a renewed cookie");
    assert!(renewed.contains("Max-Age=604800"), "{renewed}");
    let record = store.load(&id).await.unwrap().expect("still stored");
    let left = record.expiry_date - time::OffsetDateTime::now_utc();
    assert!(left > time::Duration::days(6), "expiry extended: {left}");
    let at = record.data["renewed_at"].as_i64().unwrap();
    assert!(at > day_ago + 24 * 3600 * 1000, "renewal time noted");
}
both_backends!(sessions_in_use_are_renewed_daily);

// ---------------------------------------------------------------------------------------------
// 2. Throttling repeated failures
// ---------------------------------------------------------------------------------------------

async fn repeated_failures_are_throttled(backend: Backend) {
    let app = spawn_or_skip!(backend);
    let client = browser();
    let token = login_token(&app, &client).await;
    let attempt = |password: &'static str, email: &'static str| {
        let (app, client, token) = (&app, &client, token.clone());
        async move {
            post_form(
                app,
                client,
                "/login",
                &[("email", email), ("password", password), ("csrf", &token)],
            )
            .await
        }
    };
    for _ in 0..5 {
        assert_eq!(attempt("guess", ADMIN_EMAIL).await.status, 401);
    }
    // Locked now, even with the right password, and the password is not even checked.
    let locked = attempt(PASSWORD, ADMIN_EMAIL).await;
    assert_eq!(locked.status, 429);
    assert!(locked.body.contains("Too many failed sign-ins"));
    let wait: u64 = locked.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((800..=900).contains(&wait), "retry after {wait}");
    // Other accounts are not locked by it.
    app.add_user(EMPLOYEE, Role::Employee, &[]).await;
    assert_eq!(attempt(PASSWORD, EMPLOYEE).await.status, 303);
}
both_backends!(repeated_failures_are_throttled);

/// Many emails guessed from one address: that address is locked, others are not. The server
/// sees every test client on loopback, as behind a local proxy it is told to trust
/// (--trusted-proxies): X-Forwarded-For names the client.
async fn one_address_guessing_many_emails_is_throttled(backend: Backend) {
    let mut args = test_args();
    args.trusted_proxies = "127.0.0.1, ::1".parse().unwrap();
    let app = spawn_or_skip!(backend, args);
    let client = browser();
    let token = login_token(&app, &client).await;
    let attempt = |email: String, password: &'static str, from: &'static str| {
        let (app, client, token) = (&app, &client, token.clone());
        async move {
            client
                .post(app.url("/login"))
                .header("x-forwarded-for", from)
                .form(&[
                    ("email", email.as_str()),
                    ("password", password),
                    ("csrf", &token),
                ])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let guesses: Vec<_> = (0..20)
        .map(|i| attempt(format!("user{i}@example.com"), "guess", "203.0.113.5"))
        .collect();
    for status in futures_util::future::join_all(guesses).await {
        assert_eq!(status, 401);
    }
    let from_there = attempt(ADMIN_EMAIL.into(), PASSWORD, "203.0.113.5").await;
    assert_eq!(from_there, 429);
    let elsewhere = attempt(ADMIN_EMAIL.into(), PASSWORD, "203.0.113.6").await;
    assert_eq!(elsewhere, 303);
}
both_backends!(one_address_guessing_many_emails_is_throttled);

// ---------------------------------------------------------------------------------------------
// 3. Anti-forgery
// ---------------------------------------------------------------------------------------------

async fn forms_without_the_token_or_from_elsewhere_are_refused(backend: Backend) {
    let app = spawn_or_skip!(backend);
    let creds = [("email", ADMIN_EMAIL), ("password", PASSWORD)];

    // No session at all, a session without the token, a wrong token.
    let r = post_form(&app, &browser(), "/login", &creds).await;
    assert_eq!(r.status, 403);
    assert!(r.content_type().starts_with("text/html"));
    assert!(r.body.contains("Form expired"));
    assert!(
        r.body.contains("--cookie-secure false"),
        "a cookieless browser is told why"
    );
    let client = browser();
    let token = login_token(&app, &client).await;
    assert_eq!(post_form(&app, &client, "/login", &creds).await.status, 403);
    let wrong = [creds[0], creds[1], ("csrf", "x")];
    assert_eq!(post_form(&app, &client, "/login", &wrong).await.status, 403);
    // Another session's token does not fit this one.
    let other = browser();
    let _ = login_token(&app, &other).await;
    let borrowed = [creds[0], creds[1], ("csrf", token.as_str())];
    assert_eq!(
        post_form(&app, &other, "/login", &borrowed).await.status,
        403
    );

    // The right token from another site's page.
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("referer", "https://evil.example/page"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let r = client
            .post(app.url("/login"))
            .header(name, value)
            .form(&borrowed)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{name}: {value}");
    }
    assert_eq!(get(&app, &client, "/").await.location(), "/login");
    // Same origin and the token: in.
    assert_eq!(
        post_form(&app, &client, "/login", &borrowed).await.status,
        303
    );

    // Signed in, the admin forms and sign-out need the token too; nothing changes without it.
    let users = app.count(Table::Users).await;
    let create = [
        ("email", "new@example.com"),
        ("password", PASSWORD),
        ("role", "admin"),
    ];
    assert_eq!(
        post_form(&app, &client, "/admin/users", &create)
            .await
            .status,
        403
    );
    assert_eq!(app.count(Table::Users).await, users);
    assert_eq!(post_form(&app, &client, "/logout", &[]).await.status, 403);
    assert_eq!(get(&app, &client, "/admin").await.status, 200);
    // JSON API errors stay JSON; pages carry the security headers.
    let admin = get(&app, &client, "/admin").await;
    let csp = admin.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(admin.headers["x-frame-options"], "DENY");
}
both_backends!(forms_without_the_token_or_from_elsewhere_are_refused);

// ---------------------------------------------------------------------------------------------
// 4. Role pages
// ---------------------------------------------------------------------------------------------

async fn each_role_lands_on_its_page(backend: Backend) {
    let app = spawn_or_skip!(backend);
    fleet(&app).await;
    let anon = browser();
    for path in ["/admin", "/manager", "/employee", "/devices/x"] {
        let p = get(&app, &anon, path).await;
        assert_eq!(p.status, 303, "{path}");
        assert!(p.location().starts_with("/login?next="), "{path}");
    }
    let admin = app.admin().await;
    let manager = app.browser_as(MANAGER, PASSWORD).await;
    let employee = app.browser_as(EMPLOYEE, PASSWORD).await;
    for (who, client, home) in [
        ("admin", &admin, "/admin"),
        ("manager", &manager, "/manager"),
        ("employee", &employee, "/employee"),
    ] {
        let p = get(&app, client, "/").await;
        assert_eq!((p.status.as_u16(), p.location()), (303, home), "{who}");
        let page = get(&app, client, home).await;
        assert_eq!(page.status, 200, "{who}");
        assert!(page.content_type().starts_with("text/html"));
        assert!(page.body.contains(r#"id="live""#), "{who}: live indicator");
        assert!(
            page.body.contains("data-last-event-id="),
            "{who}: stream start"
        );
    }
    // Another role's dashboard: the admin page is refused, the others send you home.
    for client in [&manager, &employee] {
        let p = get(&app, client, "/admin").await;
        assert_eq!(p.status, 403);
        assert!(p.body.contains("administrators"));
    }
    let p = get(&app, &employee, "/manager").await;
    assert_eq!((p.status.as_u16(), p.location()), (303, "/employee"));
    let p = get(&app, &manager, "/employee").await;
    assert_eq!((p.status.as_u16(), p.location()), (303, "/manager"));
    let p = get(&app, &admin, "/employee").await;
    assert_eq!((p.status.as_u16(), p.location()), (303, "/admin"));
    let p = get(&app, &employee, "/api/realtime/stats").await;
    assert_eq!(p.status, 403);
    assert_eq!(p.json()["error"], "forbidden");
    // Admin forms refuse other roles, token or not.
    let token = app.page_csrf(&manager).await;
    let r = post_form(
        &app,
        &manager,
        &format!("/admin/devices/{EVIL_ID}/site"),
        &[("csrf", &token), ("new_site", "Mine")],
    )
    .await;
    assert_eq!(r.status, 403);
}
both_backends!(each_role_lands_on_its_page);

// ---------------------------------------------------------------------------------------------
// 5. What each role may see
// ---------------------------------------------------------------------------------------------

async fn pages_json_and_exports_stay_in_scope(backend: Backend) {
    let app = spawn_or_skip!(backend);
    fleet(&app).await;
    let admin = app.admin().await;
    let manager = app.browser_as(MANAGER, PASSWORD).await;
    let employee = app.browser_as(EMPLOYEE, PASSWORD).await;

    let emp = get(&app, &employee, "/employee").await.body;
    assert!(emp.contains(NORTH_NAME));
    assert!(emp.contains("-18.4 °C"));
    for hidden in [SOUTH_NAME, SOUTH_ID, EVIL_ID, "alert(1)"] {
        assert!(!emp.contains(hidden), "employee page shows {hidden}");
    }
    assert!(!emp.contains("<form method=\"post\" action=\"/admin"));
    let mgr = get(&app, &manager, "/manager").await.body;
    assert!(mgr.contains(NORTH_NAME) && mgr.contains(SOUTH_NAME));
    assert!(!mgr.contains(EVIL_ID) && !mgr.contains("alert(1)"));
    let adm = get(&app, &admin, "/admin").await.body;
    for shown in [NORTH_NAME, SOUTH_NAME, EVIL_ID, "Unassigned"] {
        assert!(adm.contains(shown), "admin page lacks {shown}");
    }

    let ids = |v: Value| -> Vec<String> {
        let mut ids: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["deviceId"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let api = |c| get(&app, c, "/api/devices");
    assert_eq!(ids(api(&employee).await.json()), [NORTH_ID]);
    assert_eq!(ids(api(&manager).await.json()), [NORTH_ID, SOUTH_ID]);
    assert_eq!(ids(api(&admin).await.json()), [NORTH_ID, SOUTH_ID, EVIL_ID]);

    // Outside the sites is the same as not existing: for pages, exports and JSON.
    for path in [
        format!("/devices/{SOUTH_ID}"),
        format!("/devices/{SOUTH_ID}/export.csv"),
        format!("/devices/{EVIL_ID}"),
        format!("/api/devices/{SOUTH_ID}/telemetry"),
    ] {
        let p = get(&app, &employee, &path).await;
        assert_eq!(p.status, 404, "{path}");
        assert!(!p.body.contains(SOUTH_NAME), "{path}");
    }
    let own = get(&app, &employee, &format!("/devices/{NORTH_ID}")).await;
    assert_eq!(own.status, 200);
    assert!(own.body.contains(NORTH_NAME) && own.body.contains("Recent readings"));
    assert!(
        !own.body.contains("/admin/devices/"),
        "employees cannot place devices"
    );
    let csv = get(&app, &manager, &format!("/devices/{SOUTH_EUI}/export.csv")).await;
    assert_eq!(csv.status, 200);
}
both_backends!(pages_json_and_exports_stay_in_scope);

async fn device_names_from_webhooks_are_escaped(backend: Backend) {
    let app = spawn_or_skip!(backend);
    fleet(&app).await;
    let admin = app.admin().await;
    for path in ["/admin".to_string(), format!("/devices/{EVIL_ID}")] {
        let body = get(&app, &admin, &path).await.body;
        assert!(body.contains(EVIL_ESCAPED), "{path}: escaped name");
        assert!(!body.contains(EVIL_NAME), "{path}: raw name");
    }
    // Put where the manager sees it: the cards and chart data stay inert as well.
    app.assign(EVIL_ID, "North").await;
    let manager = app.browser_as(MANAGER, PASSWORD).await;
    let body = get(&app, &manager, "/manager").await.body;
    assert!(body.contains(EVIL_ESCAPED) && !body.contains(EVIL_NAME));
    let scripts = body.matches("<script").count();
    assert_eq!(
        scripts, 2,
        "only the page's own scripts (chart data, realtime.js)"
    );
}
both_backends!(device_names_from_webhooks_are_escaped);

// ---------------------------------------------------------------------------------------------
// 6. Administration
// ---------------------------------------------------------------------------------------------

/// The id of a site from the admin page's options.
fn site_id(admin_page: &str, name: &str) -> String {
    let end = admin_page
        .find(&format!("\">{name}</option>"))
        .expect("site option");
    let start = admin_page[..end].rfind("value=\"").expect("value") + 7;
    admin_page[start..end].to_string()
}

async fn admins_manage_users_and_place_devices(backend: Backend) {
    let app = spawn_or_skip!(backend);
    fleet(&app).await;
    let admin = app.admin().await;
    let page = get(&app, &admin, "/admin").await.body;
    let token = csrf_in(&page).unwrap();
    let north = site_id(&page, "North");
    let south = site_id(&page, "South");

    // Create a user of North.
    let r = post_form(
        &app,
        &admin,
        "/admin/users",
        &[
            ("csrf", &token),
            ("email", "Ann@Example.com"),
            ("password", "a long password"),
            ("role", "employee"),
            ("site", &north),
        ],
    )
    .await;
    assert_eq!((r.status.as_u16(), r.location()), (303, "/admin#users"));
    let after = get(&app, &admin, "/admin").await.body;
    assert!(after.contains("Created ann@example.com (employee)."));
    assert!(
        !get(&app, &admin, "/admin").await.body.contains("Created"),
        "shown once"
    );
    let ann = app.browser_as("ann@example.com", "a long password").await;
    let body = get(&app, &ann, "/employee").await.body;
    assert!(body.contains(NORTH_NAME) && !body.contains(SOUTH_NAME));

    // A duplicate and a short password are explained, not stored.
    for (email, password, says) in [
        (
            "ann@example.com",
            "another long one",
            "already has an account",
        ),
        ("bob@example.com", "short", "at least 8 characters"),
    ] {
        post_form(
            &app,
            &admin,
            "/admin/users",
            &[
                ("csrf", &token),
                ("email", email),
                ("password", password),
                ("role", "manager"),
            ],
        )
        .await;
        assert!(
            get(&app, &admin, "/admin").await.body.contains(says),
            "{says}"
        );
    }

    // Make her a manager of South: her next page is the manager's, with South only.
    let ann_id = user_id(app.db(), "ann@example.com").await;
    let mut sse = ann
        .get(app.url("/api/realtime"))
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let r = post_form(
        &app,
        &admin,
        &format!("/admin/users/{ann_id}"),
        &[("csrf", &token), ("role", "manager"), ("site", &south)],
    )
    .await;
    assert_eq!(r.status, 303);
    assert!(
        stream_ends(&mut sse).await,
        "open streams end when the scope changes"
    );
    // Her sessions ended with the change: she signs in again, with the new role.
    assert_eq!(get(&app, &ann, "/").await.location(), "/login");
    let ann = app.browser_as("ann@example.com", "a long password").await;
    assert_eq!(get(&app, &ann, "/").await.location(), "/manager");
    let body = get(&app, &ann, "/manager").await.body;
    assert!(body.contains(SOUTH_NAME) && !body.contains(NORTH_NAME));

    // Disable: her session is gone and she cannot sign in; enable: she can again.
    let r = post_form(
        &app,
        &admin,
        &format!("/admin/users/{ann_id}/disable"),
        &[("csrf", &token)],
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(get(&app, &ann, "/manager").await.status, 303);
    let again = browser();
    let r = app
        .login_with(&again, "ann@example.com", "a long password")
        .await;
    assert_eq!(r.status(), 401);
    post_form(
        &app,
        &admin,
        &format!("/admin/users/{ann_id}/enable"),
        &[("csrf", &token)],
    )
    .await;
    app.browser_as("ann@example.com", "a long password").await;

    // An admin cannot lock themselves out.
    let me = user_id(app.db(), ADMIN_EMAIL).await;
    post_form(
        &app,
        &admin,
        &format!("/admin/users/{me}/disable"),
        &[("csrf", &token)],
    )
    .await;
    assert!(get(&app, &admin, "/admin")
        .await
        .body
        .contains("cannot disable your own account"));
    post_form(
        &app,
        &admin,
        &format!("/admin/users/{me}"),
        &[("csrf", &token), ("role", "employee")],
    )
    .await;
    assert_eq!(get(&app, &admin, "/admin").await.status, 200);

    // Place the new device into a new site: it leaves the list of devices to place.
    let before = get(&app, &admin, "/admin").await.body;
    assert!(before.contains(&format!("/admin/devices/{EVIL_ID}/site")));
    let r = post_form(
        &app,
        &admin,
        &format!("/admin/devices/{EVIL_ID}/site"),
        &[("csrf", &token), ("site", ""), ("new_site", "Lab")],
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.location()),
        (303, "/admin#unassigned")
    );
    let after = get(&app, &admin, "/admin").await.body;
    assert!(!after.contains(&format!("action=\"/admin/devices/{EVIL_ID}/site\"")));
    assert!(after.contains("is now in Lab."));
    let devices = get(&app, &admin, "/api/devices").await.json();
    let placed = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["deviceId"] == EVIL_ID)
        .unwrap()
        .clone();
    assert_eq!(placed["siteName"], "Lab");
}
both_backends!(admins_manage_users_and_place_devices);

/// True when the SSE body ends within two seconds.
async fn stream_ends(
    body: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
) -> bool {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Err(_) => return false,
            Ok(None) | Ok(Some(Err(_))) => return true,
            Ok(Some(Ok(_))) => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Device page, CSV export, alarms, error pages
// ---------------------------------------------------------------------------------------------

async fn device_history_export_and_alarms(backend: Backend) {
    let app = spawn_or_skip!(backend);
    fleet(&app).await;
    let now = sensorcast::domain::now_ms();
    let hour = 3_600_000;
    for (i, t) in [(2, -18.9), (3, -18.1)] {
        post_reading(
            &app,
            &reading(
                &format!("n-{i}"),
                NORTH_ID,
                NORTH_EUI,
                NORTH_NAME,
                t,
                now - i * hour,
            ),
        )
        .await;
    }
    let alarm = json!({
        "eventId": "n-alarm", "eventCreatedTime": now / 1000, "eventType": "DEVICE_DATA",
        "data": {"deviceProfile": {"deviceId": NORTH_ID, "devEUI": NORTH_EUI, "name": NORTH_NAME, "model": "TS302"},
            "type": "PROPERTY", "ts": now + 1000,
            "payload": {"temperature_left": -9.5, "temperature_right": 4.0, "temperature_chn1_alarm": "threshold_alarm"}}
    });
    post_reading(&app, &alarm.to_string()).await;

    let manager = app.browser_as(MANAGER, PASSWORD).await;
    let dash = get(&app, &manager, "/manager").await.body;
    assert!(dash.contains("Probe 1 temperature: threshold alarm"));
    assert!(dash.contains(r#"<script type="application/json" id="chart-data">"#));
    assert!(dash.contains(&format!("\"{NORTH_ID}\":{{\"t\":[")));

    let detail = get(&app, &manager, &format!("/devices/{NORTH_ID}?range=7d")).await;
    assert_eq!(detail.status, 200);
    assert!(detail.body.contains("last 7 days"));
    assert!(detail.body.contains("-18.9 °C") && detail.body.contains("-9.5 °C"));

    let csv = get(&app, &manager, &format!("/devices/{NORTH_ID}/export.csv")).await;
    assert_eq!(csv.status, 200);
    assert_eq!(csv.content_type(), "text/csv; charset=utf-8");
    assert!(csv.headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment;"));
    let lines: Vec<&str> = csv.body.lines().collect();
    assert!(lines[0].starts_with("device_id,device_name,measured_at,"));
    assert_eq!(lines.len(), 5, "header and four readings, oldest first");
    assert!(lines[1].contains(",-18.1,") && lines[2].contains(",-18.9,"));
    assert!(lines[3].contains(",-18.4,") && lines[4].contains(",-9.5,"));
    assert!(lines[4].contains("threshold_alarm"));

    let since = now - 150 * 60_000;
    let until = now - 30 * 60_000;
    let csv = get(
        &app,
        &manager,
        &format!("/devices/{NORTH_ID}/export.csv?since={since}&until={until}"),
    )
    .await;
    assert_eq!(
        csv.body.lines().count(),
        2,
        "only the reading two hours ago"
    );
    assert!(csv.body.contains(",-18.9,"));
    let open = get(
        &app,
        &manager,
        &format!("/devices/{NORTH_ID}/export.csv?since=&until=2000-01-01"),
    )
    .await;
    assert_eq!(open.body.lines().count(), 1, "nothing before 2000");
    let bad = get(
        &app,
        &manager,
        &format!("/devices/{NORTH_ID}/export.csv?since=yesterday"),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.content_type().starts_with("text/html"));

    let missing = get(&app, &manager, "/no/such/page").await;
    assert_eq!(missing.status, 404);
    assert!(missing.content_type().starts_with("text/html"));
    assert!(missing.body.contains("Not found"));
    let api = get(&app, &manager, "/api/nope").await;
    assert_eq!(api.status, 404);
    assert_eq!(api.json()["error"], "not_found");
    let wrong_method = get(&app, &manager, "/logout").await;
    assert_eq!(wrong_method.status, 405);
    assert!(wrong_method.content_type().starts_with("text/html"));
    let token = app.page_csrf(&manager).await;
    let api = post_form(&app, &manager, "/api/devices", &[("csrf", &token)]).await;
    assert_eq!(api.status, 405);
    assert_eq!(api.json()["error"], "method_not_allowed");
}
both_backends!(device_history_export_and_alarms);

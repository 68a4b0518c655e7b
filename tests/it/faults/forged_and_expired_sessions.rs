//! Sessions that must get nothing: forged, expired, signed out, disabled (by an admin, or behind
//! the application's back): no stream, no page, no JSON.

use std::time::Duration;

use rand::Rng;

use super::{DEV, EUI};
use crate::support::sse::{Sse, READ};
use crate::support::*;
use sensorcast::domain::Role;

/// Control: this client does see the device, so a refusal below means something.
async fn assert_sees(app: &TestApp, client: &reqwest::Client, what: &str) {
    let r = client.get(app.url("/api/devices")).send().await.unwrap();
    assert_eq!(r.status(), 200, "{what}: the control request");
    assert!(r.text().await.unwrap().contains(DEV), "{what}: control");
}

/// No stream, no page, no JSON: 401 JSON on the API, a redirect to sign-in for pages, and
/// nothing of the device in any answer.
async fn assert_gets_nothing(app: &TestApp, client: &reqwest::Client, what: &str) {
    let r = tokio::time::timeout(
        READ,
        client
            .get(app.url("/api/realtime"))
            .header("accept", "text/event-stream")
            .header("last-event-id", "0")
            .send(),
    )
    .await
    .expect("an answer in time")
    .expect("GET /api/realtime");
    assert_json_error(r, 401, "unauthorized", &format!("{what}: stream")).await;

    for path in [
        "/api/me".to_string(),
        "/api/devices".to_string(),
        format!("/api/devices/{DEV}/telemetry"),
        "/api/realtime/stats".to_string(),
    ] {
        let r = client.get(app.url(&path)).send().await.unwrap();
        assert_json_error(r, 401, "unauthorized", &format!("{what}: {path}")).await;
    }
    for path in [
        "/".to_string(),
        "/admin".to_string(),
        "/manager".to_string(),
        "/employee".to_string(),
        format!("/devices/{DEV}"),
        format!("/devices/{DEV}/export.csv"),
    ] {
        let r = client.get(app.url(&path)).send().await.unwrap();
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = r.text().await.unwrap_or_default();
        assert_eq!(status, 303, "{what}: {path}");
        assert!(
            location.starts_with("/login"),
            "{what}: {path} → {location}"
        );
        for secret in [DEV, EUI, "Freezer A"] {
            assert!(!body.contains(secret), "{what}: {path} shows {secret}");
        }
    }
}

async fn forged_expired_and_disabled_sessions_get_nothing(backend: Backend) {
    let app = spawn_or_skip!(backend);
    assert_eq!(
        app.post_mdp(&mdp_reading("attack-1", DEV, EUI, 1.0, 2.0))
            .await
            .status(),
        200
    );
    app.assign(DEV, "North").await;
    let (admin, admin_cookie) = app.signed_in_cookie(ADMIN_EMAIL, PASSWORD).await;
    assert_sees(&app, &with_cookie(&admin_cookie), "the admin's own cookie").await;

    // Forged: well-formed ids nobody was given, a real one with a character changed, garbage.
    use base64::Engine;
    let random_id = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(rand::thread_rng().gen::<[u8; 16]>());
    let mut tampered: Vec<char> = admin_cookie.chars().collect();
    tampered[5] = if tampered[5] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    for (what, value) in [
        ("a well-formed id nobody was given", random_id),
        ("a real id with one character changed", tampered),
        ("a real id with more after it", format!("{admin_cookie}A")),
        ("not an id", "not-a-session".to_string()),
        ("SQL", "' OR '1'='1".to_string()),
        ("a path", "../../../etc/passwd".to_string()),
        ("4 KiB", "A".repeat(4096)),
    ] {
        assert_gets_nothing(&app, &with_cookie(&value), &format!("forged: {what}")).await;
    }

    // Expired: the session's time is up (its row says so), though the browser still sends it.
    let emp = app
        .add_user("emp@example.com", Role::Employee, &["North"])
        .await;
    let (emp_browser, emp_cookie) = app.signed_in_cookie("emp@example.com", PASSWORD).await;
    assert_sees(&app, &emp_browser, "employee before expiry").await;
    execute(
        app.db(),
        "UPDATE sessions SET expiry_ms = $1 WHERE user_id = $3 AND $2 = $2",
        sensorcast::domain::now_ms() - 1_000,
        false,
        emp,
    )
    .await;
    assert_gets_nothing(&app, &emp_browser, "expired session").await;
    assert_gets_nothing(&app, &with_cookie(&emp_cookie), "expired session cookie").await;

    // Signed out: the cookie captured before sign-out is worth nothing after it.
    let (other_admin, other_cookie) = app.signed_in_cookie(ADMIN_EMAIL, PASSWORD).await;
    assert_eq!(app.logout(&other_admin).await.status(), 303);
    assert_gets_nothing(&app, &with_cookie(&other_cookie), "signed-out cookie").await;
    assert_sees(&app, &admin, "another session of the same admin").await;

    // Disabled by an admin: the open stream ends, the session gets nothing, and enabling the
    // account again does not bring the old session back.
    let ann = app
        .add_user("ann@example.com", Role::Manager, &["North"])
        .await;
    let (ann_browser, ann_cookie) = app.signed_in_cookie("ann@example.com", PASSWORD).await;
    assert_sees(&app, &ann_browser, "manager before being disabled").await;
    let r = ann_browser
        .get(app.url("/api/realtime"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut stream = Sse::new(r);
    assert_eq!(stream.next_msg().await.kind(), "connected");
    let token = app.page_csrf(&admin).await;
    let origin = format!("http://{}", app.addr);
    for action in ["disable", "enable"] {
        let r = admin
            .post(app.url(&format!("/admin/users/{ann}/{action}")))
            .header("origin", &origin)
            .form(&[("csrf", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{action}");
        if action == "disable" {
            stream.expect_end(Duration::from_secs(2)).await;
            assert_gets_nothing(&app, &ann_browser, "disabled user's browser").await;
            assert_gets_nothing(&app, &with_cookie(&ann_cookie), "disabled user's cookie").await;
            let again = browser();
            let r = app.login_with(&again, "ann@example.com", PASSWORD).await;
            assert_eq!(r.status(), 401, "a disabled user cannot sign in");
        }
    }
    assert_gets_nothing(
        &app,
        &with_cookie(&ann_cookie),
        "re-enabled user's old cookie",
    )
    .await;
    let (fresh, _) = app.signed_in_cookie("ann@example.com", PASSWORD).await;
    assert_sees(&app, &fresh, "re-enabled user, signed in again").await;

    // Disabled behind the application's back (its session row left in place): still nothing.
    execute(
        app.db(),
        "UPDATE users SET disabled = $2 WHERE id = $3 AND $1 = $1",
        0,
        true,
        ann,
    )
    .await;
    assert_gets_nothing(&app, &fresh, "disabled user with a live session row").await;
}
both_backends!(forged_expired_and_disabled_sessions_get_nothing);

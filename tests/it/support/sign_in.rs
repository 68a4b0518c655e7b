//! Browsers and signing in: every test signs in through the sign-in form, anti-forgery token
//! included, as a person would.

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "sensorcast_session";

/// A browser-like client: keeps cookies, does not follow redirects (tests look at them). Each
/// request on a new connection, so a stream request is always its connection's first and is
/// served by the stream transport under test (reused connections: stream_wire.rs).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

/// The anti-forgery token in a page's forms (`<input type="hidden" name="csrf" value="…">`).
pub fn csrf_in(html: &str) -> Option<String> {
    const MARK: &str = "name=\"csrf\" value=\"";
    let start = html.find(MARK)? + MARK.len();
    let len = html[start..].find('"')?;
    Some(html[start..start + len].to_string())
}

/// Signs in with `client` through the sign-in form of the server at `base` (a test server, a
/// restarted one, or a proxy in front), anti-forgery token included.
pub async fn sign_in_at(
    base: &str,
    client: &reqwest::Client,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let form = client
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("login form")
        .text()
        .await
        .expect("login form body");
    let token = csrf_in(&form).unwrap_or_default();
    client
        .post(format!("{base}/login"))
        .form(&[("email", email), ("password", password), ("csrf", &token)])
        .send()
        .await
        .expect("login")
}

/// A new browser signed in as `email` to the server at `base`.
pub async fn signed_in_browser(base: &str, email: &str, password: &str) -> reqwest::Client {
    let client = browser();
    let r = sign_in_at(base, &client, email, password).await;
    assert_eq!(r.status(), 303, "sign-in as {email} failed");
    client
}

/// The session cookie a response sets (the whole `Set-Cookie` value), if any.
pub fn session_cookie(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| {
            c.strip_prefix(SESSION_COOKIE)
                .is_some_and(|c| c.starts_with('='))
        })
        .map(str::to_string)
}

/// Only the value of the session cookie a response sets.
pub fn session_value(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let cookie = session_cookie(headers)?;
    let pair = cookie.split(';').next().unwrap_or_default();
    Some(pair[SESSION_COOKIE.len() + 1..].to_string())
}

/// A client that sends exactly this session cookie value and keeps nothing.
pub fn with_cookie(value: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "cookie",
        format!("{SESSION_COOKIE}={value}")
            .parse()
            .expect("cookie header"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// GET with `client` and the body as JSON.
pub async fn get_json(client: &reqwest::Client, url: String) -> serde_json::Value {
    client
        .get(url)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json body")
}

/// Acknowledges the first threshold alarm `client` sees, with `comment` as the corrective
/// action; returns the alarm as `/api/alarms` listed it.
pub async fn acknowledge_first_excursion(
    app: &super::TestApp,
    client: &reqwest::Client,
    csrf: &str,
    comment: &str,
) -> serde_json::Value {
    let alarms = get_json(client, app.url("/api/alarms")).await;
    let alarm = alarms["alarms"]
        .as_array()
        .expect("an alarm list")
        .iter()
        .find(|a| a["kind"] == "threshold")
        .expect("the excursion's alarm")
        .clone();
    let id = alarm["alarmId"].as_i64().expect("an alarm id");
    let r = acknowledge_alarm(app, client, csrf, id, comment).await;
    assert_eq!(r.status(), 200);
    alarm
}

/// POSTs an acknowledgement of alarm `id` with `comment` as the corrective action.
pub async fn acknowledge_alarm(
    app: &super::TestApp,
    client: &reqwest::Client,
    csrf: &str,
    id: i64,
    comment: &str,
) -> reqwest::Response {
    client
        .post(app.url(&format!("/api/alarms/{id}/acknowledge")))
        .header("x-csrf-token", csrf)
        .json(&serde_json::json!({ "comment": comment }))
        .send()
        .await
        .expect("acknowledge")
}

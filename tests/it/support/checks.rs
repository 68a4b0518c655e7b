//! Assertions about error answers, shared by every area.

use serde_json::Value;

/// Error answers name the problem, never our internals (database, driver, SQL, addresses,
/// source paths, panics).
pub fn assert_no_internal_detail(text: &str, what: &str) {
    let lower = text.to_ascii_lowercase();
    for leak in [
        "sqlx",
        "sqlite",
        "postgres",
        "pool",
        "connection refused",
        "error returned from database",
        "select ",
        "insert ",
        "127.0.0.1",
        ".rs:",
        "panicked",
        "stack backtrace",
        "/work/",
        "/home/",
        "/root/",
    ] {
        assert!(
            !lower.contains(leak),
            "{what}: internal detail {leak:?} in {text}"
        );
    }
}

/// A JSON error answer: the status, a JSON content type, the code, a sentence, and none of
/// the internal detail an outage would tempt a server to show.
pub async fn assert_json_error(r: reqwest::Response, status: u16, code: &str, what: &str) {
    assert_eq!(r.status().as_u16(), status, "{what}");
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(ct.starts_with("application/json"), "{what}: {ct}");
    let text = r.text().await.expect("error body");
    let body: Value = serde_json::from_str(&text).expect("JSON error body");
    assert_eq!(body["error"], code, "{what}: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
    assert_no_internal_detail(&text, what);
}

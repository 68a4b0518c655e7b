//! Notifications: who is told of an alarm, through which channel, and the rules for what an
//! admin may configure (webhook URLs and secrets).

use serde::Serialize;

use super::Role;

pub const EMAIL: &str = "email";
pub const WEBHOOK: &str = "webhook";
pub const PUSH: &str = "push";

pub const RAISED: &str = "raised";
pub const ESCALATED: &str = "escalated";
pub const TEST: &str = "test";
/// The notifications the flood guard held for one recipient, sent as one.
pub const SUMMARY: &str = "summary";
/// The status of a notification the flood guard held.
pub const FOLDED: &str = "folded";

/// The event type a webhook receives for an escalation (the alarm's JSON as `data`).
pub const ALARM_ESCALATED: &str = "alarm_escalated";

/// Whether a user gets alarm emails when they have not chosen: admins and managers do.
pub fn email_alerts_default(role: Role) -> bool {
    role != Role::Employee
}

/// Shortest webhook secret accepted (bytes).
pub const MIN_WEBHOOK_SECRET: usize = 16;
/// Longest webhook URL or secret kept.
pub const MAX_WEBHOOK_TEXT: usize = 2000;

/// Why a webhook endpoint is refused, in words.
pub fn check_webhook(url: &str, secret: &str) -> Result<(), String> {
    let url = url.trim();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("the URL must start with http:// or https://")?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') || url.chars().any(char::is_whitespace) {
        return Err("the URL needs a host".into());
    }
    if url.len() > MAX_WEBHOOK_TEXT || secret.len() > MAX_WEBHOOK_TEXT {
        return Err("the URL or secret is too long".into());
    }
    if secret.len() < MIN_WEBHOOK_SECRET {
        return Err(format!(
            "the secret needs at least {MIN_WEBHOOK_SECRET} bytes"
        ));
    }
    Ok(())
}

/// A notification as stored (the outbox row).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NotificationRow {
    pub id: i64,
    pub alarm_id: Option<i64>,
    pub reason: String,
    pub channel: String,
    pub recipient: String,
    pub endpoint_id: Option<i64>,
    pub delivery_id: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub last_result: Option<String>,
    pub created_ms: i64,
    pub delivered_ms: Option<i64>,
    /// Held by the flood guard: the summary that carried it, once sent.
    pub summary_id: Option<i64>,
}

/// An outgoing webhook of a site.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEndpoint {
    pub id: i64,
    pub site_id: i64,
    pub site_name: String,
    pub url: String,
    #[serde(skip)]
    pub secret: String,
    pub created_ms: i64,
    pub created_by: String,
}

/// A random delivery id in the form of a version-4 UUID.
pub fn delivery_id(random: u128) -> String {
    let b = (random & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let h = format!("{b:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_and_secrets_are_checked() {
        let secret = "0123456789abcdef";
        assert!(check_webhook("https://hooks.example.com/a?b=1", secret).is_ok());
        assert!(check_webhook("http://127.0.0.1:9000/x", secret).is_ok());
        for bad in [
            "ftp://x.example",
            "https://",
            "https:///path",
            "example.com",
            "https://a b",
        ] {
            assert!(check_webhook(bad, secret).is_err(), "{bad}");
        }
        assert!(check_webhook("https://x.example", "short").is_err());
    }

    #[test]
    fn delivery_ids_look_like_uuids() {
        let id = delivery_id(u128::MAX);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert_ne!(delivery_id(1), delivery_id(2));
    }
}

//! The audit trail: one row per change a person made (or tried: a failed sign-in), appended in
//! the same transaction as the change and never changed afterwards.

use serde::Serialize;

/// What was done; the `action` column.
pub mod action {
    pub const RULES_CHANGED: &str = "rules.changed";
    pub const ALARM_ACKNOWLEDGED: &str = "alarm.acknowledged";
    pub const USER_CREATED: &str = "user.created";
    pub const USER_ACCESS_CHANGED: &str = "user.access_changed";
    pub const USER_PASSWORD_CHANGED: &str = "user.password_changed";
    pub const USER_DISABLED: &str = "user.disabled";
    pub const USER_ENABLED: &str = "user.enabled";
    pub const DEVICE_PLACED: &str = "device.placed";
    pub const REPORT_REVIEWED: &str = "report.reviewed";
    pub const COMMAND_SENT: &str = "command.sent";
    pub const WEBHOOK_ADDED: &str = "webhook.added";
    pub const SITE_TIME_ZONE_CHANGED: &str = "site.time_zone_changed";
    pub const WEBHOOK_REMOVED: &str = "webhook.removed";
    pub const SIGN_IN: &str = "session.sign_in";
    pub const SIGN_IN_FAILED: &str = "session.sign_in_failed";
    pub const SIGN_OUT: &str = "session.sign_out";

    /// Every action, for the audit page's filter.
    pub const ALL: &[&str] = &[
        RULES_CHANGED,
        ALARM_ACKNOWLEDGED,
        USER_CREATED,
        USER_ACCESS_CHANGED,
        USER_PASSWORD_CHANGED,
        USER_DISABLED,
        USER_ENABLED,
        DEVICE_PLACED,
        REPORT_REVIEWED,
        COMMAND_SENT,
        WEBHOOK_ADDED,
        WEBHOOK_REMOVED,
        SITE_TIME_ZONE_CHANGED,
        SIGN_IN,
        SIGN_IN_FAILED,
        SIGN_OUT,
    ];
}

/// Longest actor or target text kept (a failed sign-in's typed email is the stranger's).
pub const MAX_AUDIT_TEXT: usize = 200;

/// A row to append. `before`/`after` are JSON texts (absent when nothing was there).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub actor: String,
    pub action: &'static str,
    pub target: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

impl AuditEntry {
    pub fn new(actor: &str, action: &'static str, target: &str) -> AuditEntry {
        AuditEntry {
            actor: bounded(actor),
            action,
            target: bounded(target),
            before: None,
            after: None,
        }
    }

    pub fn before(mut self, json: impl Serialize) -> Self {
        self.before = serde_json::to_string(&json).ok();
        self
    }

    pub fn after(mut self, json: impl Serialize) -> Self {
        self.after = serde_json::to_string(&json).ok();
        self
    }
}

fn bounded(s: &str) -> String {
    s.chars().take(MAX_AUDIT_TEXT).collect()
}

/// A stored row, as `GET /api/audit` shows it (`before`/`after` as JSON values).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditJson<'a> {
    pub id: i64,
    pub at: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

impl<'a> AuditJson<'a> {
    pub fn of(r: &'a AuditRow) -> Self {
        let parse = |t: &Option<String>| t.as_deref().and_then(|t| serde_json::from_str(t).ok());
        AuditJson {
            id: r.id,
            at: r.at_ms,
            actor: &r.actor,
            action: &r.action,
            target: &r.target,
            before: parse(&r.before),
            after: parse(&r.after),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strangers_text_is_bounded() {
        let e = AuditEntry::new(&"x".repeat(5000), action::SIGN_IN_FAILED, "login");
        assert_eq!(e.actor.chars().count(), MAX_AUDIT_TEXT);
        let e = e.after(serde_json::json!({"a": 1}));
        assert_eq!(e.after.as_deref(), Some(r#"{"a":1}"#));
    }
}

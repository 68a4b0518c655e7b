//! Ending streams from the outside: sign-out, a disabled user, a changed role or sites.
//! Callers use these rather than the hub, so that with PostgreSQL every instance hears it.

use super::hub::Hub;
use crate::store::Store;

/// Ends every stream opened with this session (sign-out).
pub async fn end_session(store: &Store, hub: &Hub, session_id: &str) {
    // At once here; other instances when the announcement reaches them.
    hub.passes.forget_session(session_id);
    if !store
        .announce_control(&format!("session:{session_id}"))
        .await
    {
        hub.end_session(session_id);
    }
}

/// Ends every stream of this user (disabled, role or sites changed); browsers reconnect with
/// their new scope or are refused.
pub async fn end_user(store: &Store, hub: &Hub, user_id: i64) {
    hub.passes.forget_user(user_id);
    if !store.announce_control(&format!("user:{user_id}")).await {
        hub.end_user(user_id);
    }
}

/// A control message another instance (or this one) announced: `session:<id>` or `user:<id>`.
pub fn apply(hub: &Hub, payload: &str) {
    match payload.split_once(':') {
        Some(("session", id)) => hub.end_session(id),
        Some(("user", id)) => {
            if let Ok(id) = id.parse() {
                hub.end_user(id);
            }
        }
        _ => tracing::debug!(payload, "unknown control message"),
    }
}

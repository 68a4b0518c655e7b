//! Ending streams from the outside: sign-out, a disabled user, a changed role or sites.
//! Handlers call these rather than the hub, so every instance hears it.

use crate::state::AppState;

/// Ends every stream opened with this session (sign-out).
pub async fn end_session(state: &AppState, session_id: &str) {
    state.hub.end_session(session_id);
}

/// Ends every stream of this user (disabled, role or sites changed); browsers reconnect with
/// their new scope or are refused.
pub async fn end_user(state: &AppState, user_id: i64) {
    state.hub.end_user(user_id);
}

//! Ending streams from the outside: sign-out, a disabled user, a changed role or sites.
//! Handlers call these rather than the hub, so that with PostgreSQL every instance hears it.

use crate::state::AppState;
use crate::store::{postgres, Db};

/// Ends every stream opened with this session (sign-out).
pub async fn end_session(state: &AppState, session_id: &str) {
    if !announce(&state.db, &format!("session:{session_id}")).await {
        state.hub.end_session(session_id);
    }
}

/// Ends every stream of this user (disabled, role or sites changed); browsers reconnect with
/// their new scope or are refused.
pub async fn end_user(state: &AppState, user_id: i64) {
    if !announce(&state.db, &format!("user:{user_id}")).await {
        state.hub.end_user(user_id);
    }
}

/// True when the message went out through PostgreSQL (and so reaches this instance too).
async fn announce(db: &Db, payload: &str) -> bool {
    match db {
        Db::Postgres(pool) => match postgres::announce_control(pool, payload).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "could not announce to other instances");
                false
            }
        },
        Db::Sqlite(_) => false,
    }
}

//! What the hub sends every stream (and every shard thread) on its channel.

use std::sync::Arc;

use super::frames::Frame;

#[derive(Debug, Clone)]
pub enum HubMessage {
    Event(Arc<Frame>),
    /// End the streams of one session (sign-out).
    EndSession(Arc<str>),
    /// End every stream of one user (disabled, role or sites changed).
    EndUser(i64),
    /// Control messages may have been missed (the listener reconnected): every stream
    /// re-checks its session and user.
    Recheck,
    /// The server is shutting down: end every stream.
    Shutdown,
}

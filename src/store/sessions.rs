//! tower-sessions store on our own `sessions` table, in whichever database is configured.
//! The user id is kept in its own column so a user's sessions can be found and ended.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, Result};
use tower_sessions::SessionStore;

use super::{dispatch, Store, StoreError};
use crate::domain::{now_ms, User};

/// A live session as opening a stream checks it: its record, and its user if they may sign in.
pub type StreamSession = Option<(Record, Option<User>)>;

/// Session key holding the signed-in user's id.
pub const USER_ID_KEY: &str = "user_id";
/// Session key holding the stored expiry (ms), written at every save: tower-sessions itself
/// only knows "now + the inactivity period", and a stream must end when the session does.
pub const EXPIRES_AT_KEY: &str = "expires_at";

#[derive(Debug, Clone)]
pub struct DbSessionStore {
    store: Store,
}

impl DbSessionStore {
    pub fn new(store: Store) -> Self {
        DbSessionStore { store }
    }
}

impl Store {
    /// Whether this session exists and has not expired (streams re-check it while open).
    pub async fn session_active(&self, session_id: &str) -> super::StoreResult<bool> {
        let now = now_ms();
        let found = dispatch!(&self.db, |pool, q| q::session_load(pool, session_id, now)
            .await)?;
        Ok(found.is_some())
    }

    /// When this session expires (ms), or `None` when it is gone or expired.
    pub async fn session_expiry(&self, session_id: &str) -> super::StoreResult<Option<i64>> {
        let now = now_ms();
        Ok(dispatch!(&self.db, |pool, q| q::session_expiry(
            pool, session_id, now
        )
        .await)?)
    }

    /// What opening streams checks of live sessions, in one query: for each id in `ids`, in
    /// order, the session's record and the user its row names if that user may sign in (the
    /// caller checks it is the record's user); `None` when the session is gone, expired, or
    /// names no user that exists. A failed query fails every id; a record that cannot be read
    /// fails only its own.
    pub async fn stream_sessions(
        &self,
        ids: &[String],
    ) -> Vec<std::result::Result<StreamSession, Arc<StoreError>>> {
        let now = now_ms();
        let found = match dispatch!(&self.db, |pool, q| q::sessions_with_users(pool, ids, now)
            .await)
        {
            Ok(found) => found,
            Err(e) => return vec![Err(Arc::new(e.into())); ids.len()],
        };
        let mut by_id = HashMap::with_capacity(found.len());
        for (id, data, (row, site_ids)) in found {
            let session = serde_json::from_slice::<Record>(&data)
                .map(|record| (record, super::users::signed_in_user(row, site_ids)))
                .map_err(|e| Arc::new(StoreError::Failed(format!("session record: {e}").into())));
            by_id.insert(id, session);
        }
        // An id asked twice gets the same answer twice.
        ids.iter()
            .map(|id| by_id.get(id).cloned().transpose())
            .collect()
    }

    pub async fn purge_expired_sessions(&self) -> super::StoreResult<u64> {
        let now = now_ms();
        Ok(dispatch!(&self.db, |pool, q| q::sessions_purge_expired(
            pool, now
        )
        .await)?)
    }
}

/// tower-sessions' error has only text; the web layer tells an unreachable database apart by
/// asking the store (`Store::ping`), not by reading this text.
fn backend(e: sqlx::Error) -> Error {
    Error::Backend(StoreError::from(e).to_string())
}

fn encode(record: &Record) -> Result<(Vec<u8>, Option<i64>, i64)> {
    let expiry_ms = (record.expiry_date.unix_timestamp_nanos() / 1_000_000) as i64;
    let mut stored = record.clone();
    stored
        .data
        .insert(EXPIRES_AT_KEY.into(), serde_json::json!(expiry_ms));
    let data = serde_json::to_vec(&stored).map_err(|e| Error::Encode(e.to_string()))?;
    let user_id = record.data.get(USER_ID_KEY).and_then(|v| v.as_i64());
    Ok((data, user_id, expiry_ms))
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        loop {
            let (data, user_id, expiry) = encode(record)?;
            let id = record.id.to_string();
            let created = dispatch!(&self.store.db, |pool, q| {
                q::session_create(pool, &id, user_id, &data, expiry).await
            })
            .map_err(backend)?;
            if created {
                return Ok(());
            }
            // Id collision: draw another.
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> Result<()> {
        let (data, user_id, expiry) = encode(record)?;
        let id = record.id.to_string();
        dispatch!(&self.store.db, |pool, q| {
            q::session_save(pool, &id, user_id, &data, expiry).await
        })
        .map_err(backend)
    }

    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        let id = session_id.to_string();
        let now = now_ms();
        let data = dispatch!(&self.store.db, |pool, q| q::session_load(pool, &id, now)
            .await)
        .map_err(backend)?;
        data.map(|d| serde_json::from_slice(&d).map_err(|e| Error::Decode(e.to_string())))
            .transpose()
    }

    async fn delete(&self, session_id: &Id) -> Result<()> {
        let id = session_id.to_string();
        dispatch!(&self.store.db, |pool, q| q::session_delete(pool, &id).await).map_err(backend)
    }
}

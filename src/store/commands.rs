//! Device commands: the API's reads, and what the dispatcher (`crate::downlink`) needs to hand
//! pending commands to the gateway, each by one instance only. Status changes go through the
//! writer (`Work::RequestCommand`, `Work::CommandDispatched`, `Work::ExpireCommands`, and the
//! device's replies in `Work::Batch`), each with its `command_status` event.

use super::{dispatch, Store, StoreResult};
use crate::domain::CommandRow;

/// A pending command leased to this instance, with where to send it.
#[derive(Debug, Clone)]
pub struct ClaimedCommand {
    pub row: CommandRow,
    pub dev_eui: Option<String>,
}

impl Store {
    /// A device's commands, newest first.
    pub async fn commands(&self, device_id: i64, limit: i64) -> StoreResult<Vec<CommandRow>> {
        Ok(dispatch!(&self.db, |pool, q| q::device_commands(
            pool, device_id, limit
        )
        .await)?)
    }

    /// Leases the oldest pending command that is due (`lease_ms` long), if any. Of several
    /// instances polling at once, each command goes to one.
    pub async fn claim_command(
        &self,
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<Option<ClaimedCommand>> {
        // A claim fails only when another instance took that command between the two
        // statements; a few tries are plenty, the next poll finds the rest.
        for _ in 0..8 {
            let Some(id) = dispatch!(&self.db, |pool, q| q::due_command(pool, now_ms).await)?
            else {
                return Ok(None);
            };
            let until = now_ms + lease_ms;
            let claimed = dispatch!(&self.db, |pool, q| q::claim_command(
                pool, id, now_ms, until
            )
            .await)?;
            // Taken by another instance between the two statements: look again.
            let Some(row) = claimed else { continue };
            let device = row.device_id;
            let dev_eui = dispatch!(&self.db, |pool, q| q::device_eui(pool, device).await)?;
            return Ok(Some(ClaimedCommand { row, dev_eui }));
        }
        Ok(None)
    }

    /// Gives a leased command back to be tried again at `next_ms`, keeping why this try failed.
    pub async fn retry_command(&self, id: i64, next_ms: i64, error: &str) -> StoreResult<()> {
        let error = crate::domain::bounded_error(error);
        Ok(dispatch!(&self.db, |pool, q| q::retry_command(
            pool, id, next_ms, &error
        )
        .await)?)
    }
}

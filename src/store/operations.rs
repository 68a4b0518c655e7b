//! Health, row counts, housekeeping and the webhook log.

use super::{dispatch, DeliveryRow, Store, StoreResult};

/// The data tables operators and tests count.
#[derive(Debug, Clone, Copy)]
pub enum Table {
    Devices,
    Readings,
    Events,
    Deliveries,
    Users,
    Sessions,
    LoginAttempts,
    Alarms,
    AlarmRules,
    AuditLog,
    Commands,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Devices => "devices",
            Table::Readings => "readings",
            Table::Events => "events",
            Table::Deliveries => "deliveries",
            Table::Users => "users",
            Table::Sessions => "sessions",
            Table::LoginAttempts => "login_attempts",
            Table::Alarms => "alarms",
            Table::AlarmRules => "alarm_rules",
            Table::AuditLog => "audit_log",
            Table::Commands => "commands",
        }
    }
}

impl Store {
    /// The database answers.
    pub async fn ping(&self) -> StoreResult<()> {
        Ok(dispatch!(&self.db, |pool, q| q::ping(pool).await)?)
    }

    pub async fn count_rows(&self, table: Table) -> StoreResult<i64> {
        let table = table.name();
        Ok(dispatch!(&self.db, |pool, q| q::count_rows(pool, table).await)?)
    }

    /// Forgets webhook nonces seen before `before_ms` (older signatures are refused anyway).
    pub async fn purge_nonces(&self, before_ms: i64) -> StoreResult<u64> {
        Ok(dispatch!(&self.db, |pool, q| q::purge_nonces(
            pool, before_ms
        )
        .await)?)
    }

    /// The newest accepted deliveries, or only the gateway's notices.
    pub async fn recent_deliveries(
        &self,
        notices_only: bool,
        limit: i64,
    ) -> StoreResult<Vec<DeliveryRow>> {
        Ok(dispatch!(&self.db, |pool, q| q::recent_deliveries(
            pool,
            notices_only,
            limit
        )
        .await)?)
    }
}

//! Reading summaries for charts over long ranges (the write side is summary_sql.rs).

use super::{dispatch, Store, StoreResult};
use crate::domain::ChartBucket;

impl Store {
    /// The device's summaries in `[since_ms, until_ms)` merged into steps of `step_ms`, by
    /// quantity, probe and time.
    pub async fn chart_buckets(
        &self,
        device_id: i64,
        since_ms: i64,
        until_ms: i64,
        step_ms: i64,
    ) -> StoreResult<Vec<ChartBucket>> {
        Ok(dispatch!(&self.db, |pool, q| q::chart_buckets(
            pool, device_id, since_ms, until_ms, step_ms
        )
        .await)?)
    }
}

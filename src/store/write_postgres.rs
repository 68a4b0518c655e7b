//! The PostgreSQL side of the write path: the statements of `WriteTx` (SQL in
//! write_statements.rs) through sqlx. The writer runs on a thread of its own, as on SQLite, and
//! waits for each statement with its runtime's `block_on` (`Waiter`): the group logic stays
//! synchronous code, so it cannot await anything but these statements.

use sqlx::{Connection, PgConnection};
use tokio::runtime::{Handle, Runtime};

use super::error::StoreResult;
use super::group::{self, Applied, OfflinePolicy, Work};
use super::postgres;
use super::write_statements::{self as sql, DeliveryClaim, ReadingInsert, ROWS_PER_STATEMENT};
use super::write_tx::{EventInsert, Ty, Val, WriteTx};
use crate::domain::DeviceRow;

/// How the writer's thread waits for a statement. The I/O of a current-thread runtime is driven
/// only by `Runtime::block_on`, so the writer's own runtime is waited on through it; a handle
/// serves a multi-thread runtime, whose workers drive the I/O (the store's tests).
#[derive(Clone, Copy)]
pub enum Waiter<'r> {
    Own(&'r Runtime),
    #[cfg_attr(not(test), allow(dead_code))] // the store's tests
    Shared(&'r Handle),
}

impl Waiter<'_> {
    fn block_on<F: std::future::Future>(self, f: F) -> F::Output {
        match self {
            Waiter::Own(rt) => rt.block_on(f),
            Waiter::Shared(handle) => handle.block_on(f),
        }
    }
}

/// Runs every job in one transaction on `conn`, announcing new events to every instance at
/// commit. Returns one result per job and the events to publish. Call on the writer's thread,
/// never from async code.
pub fn apply_jobs(
    rt: Waiter<'_>,
    conn: &mut PgConnection,
    works: &[&Work],
    now_ms: i64,
    policy: OfflinePolicy,
) -> StoreResult<Applied> {
    let mut tx = rt.block_on(conn.begin_with(postgres::BEGIN_WRITE))?;
    let applied = group::apply_works(&mut PgTx { conn: &mut tx, rt }, works, now_ms, policy)?;
    rt.block_on(tx.commit())?;
    Ok(applied)
}

/// Waits for one statement's future on the writer's thread.
fn run<T>(
    rt: Waiter<'_>,
    statement: impl std::future::Future<Output = sqlx::Result<T>>,
) -> StoreResult<T> {
    Ok(rt.block_on(statement)?)
}

/// The writer's transaction.
struct PgTx<'t> {
    conn: &'t mut PgConnection,
    rt: Waiter<'t>,
}

/// Binds typed values to a query.
fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    params: &'q [Val],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    for p in params {
        q = match p {
            Val::Int(v) => q.bind(*v),
            Val::Real(v) => q.bind(*v),
            Val::Text(v) => q.bind(v.as_deref()),
            Val::Bool(v) => q.bind(*v),
        };
    }
    q
}

/// Reads a row's columns as `columns` says.
fn typed_row(r: &sqlx::postgres::PgRow, columns: &[Ty]) -> sqlx::Result<Vec<Val>> {
    use sqlx::Row;
    columns
        .iter()
        .enumerate()
        .map(|(i, ty)| {
            Ok(match ty {
                Ty::Int => Val::Int(r.try_get(i)?),
                Ty::Real => Val::Real(r.try_get(i)?),
                Ty::Text => Val::Text(r.try_get(i)?),
                Ty::Bool => Val::Bool(r.try_get(i)?),
            })
        })
        .collect()
}

impl WriteTx for PgTx<'_> {
    fn execute(&mut self, sql: &str, params: &[Val]) -> StoreResult<u64> {
        let q = bind_all(sqlx::query(sql), params);
        Ok(run(self.rt, q.execute(&mut *self.conn))?.rows_affected())
    }

    fn select(&mut self, sql: &str, params: &[Val], columns: &[Ty]) -> StoreResult<Vec<Vec<Val>>> {
        let q = bind_all(sqlx::query(sql), params);
        let rows = run(self.rt, q.fetch_all(&mut *self.conn))?;
        Ok(rows
            .iter()
            .map(|r| typed_row(r, columns))
            .collect::<sqlx::Result<_>>()?)
    }

    fn claim_nonces(
        &mut self,
        pairs: &[(&str, &str)],
        now_ms: i64,
    ) -> StoreResult<Vec<(String, String)>> {
        let (conn, rt) = (&mut *self.conn, self.rt);
        run(rt, async move {
            let mut claimed = Vec::with_capacity(pairs.len());
            for chunk in pairs.chunks(ROWS_PER_STATEMENT) {
                let sql = sql::claim_nonces(chunk.len());
                let mut q = sqlx::query_as(&sql);
                for (uuid, nonce) in chunk {
                    q = q.bind(*uuid).bind(*nonce).bind(now_ms);
                }
                claimed.extend(q.fetch_all(&mut *conn).await?);
            }
            Ok(claimed)
        })
    }

    fn claim_deliveries(
        &mut self,
        claims: &[DeliveryClaim<'_>],
        now_ms: i64,
    ) -> StoreResult<Vec<String>> {
        let (conn, rt) = (&mut *self.conn, self.rt);
        run(rt, async move {
            let mut fresh = Vec::with_capacity(claims.len());
            for chunk in claims.chunks(ROWS_PER_STATEMENT) {
                let sql = sql::claim_deliveries(chunk.len());
                let mut q = sqlx::query_scalar(&sql);
                for c in chunk {
                    q = q
                        .bind(c.key)
                        .bind(c.source)
                        .bind(c.event_type)
                        .bind(now_ms)
                        .bind(c.detail);
                }
                fresh.extend(q.fetch_all(&mut *conn).await?);
            }
            Ok(fresh)
        })
    }

    fn devices_by_identifiers(&mut self, ids: &[&str]) -> StoreResult<Vec<DeviceRow>> {
        let (conn, rt) = (&mut *self.conn, self.rt);
        run(rt, async move {
            let mut found = Vec::new();
            for chunk in ids.chunks(ROWS_PER_STATEMENT) {
                let sql = sql::devices_by_identifiers(chunk.len());
                let mut q = sqlx::query_as(&sql);
                for id in chunk {
                    q = q.bind(*id);
                }
                found.extend(q.fetch_all(&mut *conn).await?);
            }
            Ok(found)
        })
    }

    fn device_by_id(&mut self, id: i64) -> StoreResult<DeviceRow> {
        let (conn, rt) = (&mut *self.conn, self.rt);
        run(rt, async move {
            sqlx::query_as(&sql::device_by_id())
                .bind(id)
                .fetch_one(conn)
                .await
        })
    }

    fn insert_device(
        &mut self,
        dev_eui: Option<&str>,
        milesight_id: Option<&str>,
        name: &str,
        model: &str,
        now_ms: i64,
    ) -> StoreResult<i64> {
        let (conn, rt) = (&mut *self.conn, self.rt);
        run(rt, async move {
            sqlx::query_scalar(sql::INSERT_DEVICE)
                .bind(dev_eui)
                .bind(milesight_id)
                .bind(name)
                .bind(model)
                .bind(now_ms)
                .fetch_one(conn)
                .await
        })
    }

    fn update_device_identity(
        &mut self,
        id: i64,
        dev_eui: Option<&str>,
        milesight_id: Option<&str>,
        name: Option<&str>,
        model: Option<&str>,
    ) -> StoreResult<()> {
        let (conn, rt) = (&mut *self.conn, self.rt);
        run(rt, async move {
            sqlx::query(sql::UPDATE_DEVICE_IDENTITY)
                .bind(dev_eui)
                .bind(milesight_id)
                .bind(name)
                .bind(model)
                .bind(id)
                .execute(conn)
                .await
                .map(|_| ())
        })
    }

    fn update_device_state(&mut self, device: &DeviceRow) -> StoreResult<()> {
        let (conn, rt) = (&mut *self.conn, self.rt);
        run(rt, async move {
            sqlx::query(sql::UPDATE_DEVICE_STATE)
                .bind(&device.status)
                .bind(device.last_seen_ms)
                .bind(device.report_interval_s)
                .bind(device.id)
                .execute(conn)
                .await
                .map(|_| ())
        })
    }

    fn insert_readings(
        &mut self,
        rows: &[ReadingInsert<'_>],
        now_ms: i64,
    ) -> StoreResult<Vec<String>> {
        let (conn, rt) = (&mut *self.conn, self.rt);
        run(rt, async move {
            let mut stored = Vec::with_capacity(rows.len());
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let sql = sql::insert_readings(chunk.len());
                let mut q = sqlx::query_scalar(&sql);
                for row in chunk {
                    let r = row.reading;
                    q = q
                        .bind(row.device_id)
                        .bind(&r.dedup_key)
                        .bind(r.source)
                        .bind(&r.event_type)
                        .bind(r.historical)
                        .bind(r.measured_ms)
                        .bind(now_ms)
                        .bind(r.values.temperature)
                        .bind(r.values.temperature2)
                        .bind(r.values.humidity)
                        .bind(r.values.humidity2)
                        .bind(r.values.battery)
                        .bind(row.alarms.as_deref())
                        .bind(&r.raw);
                }
                stored.extend(q.fetch_all(&mut *conn).await?);
            }
            Ok(stored)
        })
    }

    fn silent_devices(&mut self, now_ms: i64, policy: OfflinePolicy) -> StoreResult<Vec<i64>> {
        let (conn, rt) = (&mut *self.conn, self.rt);
        run(rt, async move {
            sqlx::query_scalar(sql::SILENT_DEVICES)
                .bind(now_ms)
                .bind(policy.default_interval_s)
                .bind(policy.grace_s)
                .fetch_all(conn)
                .await
        })
    }

    fn insert_events(&mut self, events: &[EventInsert], now_ms: i64) -> StoreResult<Vec<i64>> {
        let mut ids = Vec::with_capacity(events.len());
        for chunk in events.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "{}, {}",
                sql::insert_events(chunk.len()),
                postgres::ANNOUNCE_EVENTS
            );
            let mut q = sqlx::query_scalar(&sql);
            for e in chunk {
                q = q
                    .bind(e.kind)
                    .bind(e.device_id)
                    .bind(e.site_id)
                    .bind(now_ms)
                    .bind(&e.json);
            }
            let got = run(self.rt, q.fetch_all(&mut *self.conn))?;
            ids.extend(sql::event_ids(got, chunk.len())?);
        }
        Ok(ids)
    }
}

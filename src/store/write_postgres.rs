//! The PostgreSQL side of the write path: the statements of `WriteTx` (SQL in
//! write_statements.rs) through tokio-postgres, on the writer's own connection and thread.
//!
//! tokio-postgres pipelines: a statement is sent when its future is first polled, so several
//! polled in order travel together and the writer waits once for all their answers. Whatever
//! nothing waits for yet goes with the next statement that is waited for: the `BEGIN` with the
//! first one, queries sent with `select_later` with the next wait, write-only statements
//! (`execute_later`, device rows) with the next read, and the events with the `COMMIT`. A group
//! of signed webhooks waits for the database three times instead of eleven (sqlx sends one
//! statement per round trip); each wait is a turn of the backend's to be scheduled on cores
//! the HTTP side keeps busy (bench/README.md).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use bytes::BytesMut;
use sqlx::postgres::PgConnectOptions;
use tokio::runtime::{Handle, Runtime};
use tokio_postgres::config::SslMode;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::{Client, NoTls, Row, Statement};

use super::error::{StoreError, StoreResult};
use super::group::{self, Applied, OfflinePolicy, Work};
use super::postgres;
use super::write_statements::{self as sql, ROWS_PER_STATEMENT, STATEMENT_CACHE};
use super::write_tx::{EventInsert, Later, Ty, Val, WriteTx};
use crate::domain::DeviceRow;

/// How the writer's thread waits for the database. The I/O of a current-thread runtime is
/// driven only by `Runtime::block_on`, so the writer's own runtime is waited on through it; a
/// handle serves a multi-thread runtime, whose workers drive the I/O (the store's tests).
#[derive(Clone, Copy)]
pub enum Waiter<'r> {
    Own(&'r Runtime),
    #[cfg_attr(not(test), allow(dead_code))] // the store's tests
    Shared(&'r Handle),
}

impl Waiter<'_> {
    fn block_on<F: Future>(self, f: F) -> F::Output {
        match self {
            Waiter::Own(rt) => rt.block_on(f),
            Waiter::Shared(handle) => handle.block_on(f),
        }
    }

    fn spawn(self, f: impl Future<Output = ()> + Send + 'static) {
        match self {
            Waiter::Own(rt) => drop(rt.spawn(f)),
            Waiter::Shared(handle) => drop(handle.spawn(f)),
        }
    }
}

/// The writer's connection settings: the pool's (sqlx's), as tokio-postgres takes them. Plain
/// TCP or a Unix socket, as the pool connects (sqlx is built without TLS).
pub fn writer_config(options: &PgConnectOptions) -> tokio_postgres::Config {
    use sqlx::ConnectOptions;
    let mut config = tokio_postgres::Config::new();
    match options.get_socket() {
        Some(dir) => config.host_path(dir),
        None => config.host(options.get_host()),
    };
    config
        .port(options.get_port())
        .user(options.get_username())
        .ssl_mode(SslMode::Disable);
    if let Some(db) = options.get_database() {
        config.dbname(db);
    }
    if let Some(name) = options.get_application_name() {
        config.application_name(name);
    }
    if let Some(o) = options.get_options() {
        config.options(o);
    }
    // sqlx has no getter for the password (from the URL, PGPASSWORD or a pgpass file); its URL
    // form carries it, percent-encoded.
    if let Some(password) = options.to_url_lossy().password() {
        config.password(percent_encoding::percent_decode_str(password).collect::<Vec<u8>>());
    }
    config
}

/// The writer's connection: the client, its prepared statements, and what waits to be sent.
pub struct PgWriteConn {
    client: Client,
    /// By SQL, then by parameter types (the same SQL may be bound with other types of NULL).
    prepared: HashMap<String, Vec<(Vec<Type>, Statement)>>,
    prepared_count: usize,
    /// Sent, in order, ahead of the next statement waited for; a query's rows are kept in
    /// `answered` under its number.
    pending: Vec<(Step, Option<usize>)>,
    answered: HashMap<usize, Vec<Row>>,
    sent: usize,
    /// Times the writer waited for the database (prepares left out).
    round_trips: u64,
    /// What the events' statement also selects to announce them (names this instance).
    announce: String,
}

impl PgWriteConn {
    /// Connects for the instance named `instance` in what it announces.
    pub fn connect(
        rt: Waiter<'_>,
        config: &tokio_postgres::Config,
        instance: u64,
    ) -> StoreResult<PgWriteConn> {
        let (client, connection) = rt.block_on(config.connect(NoTls))?;
        rt.spawn(async move {
            if let Err(err) = connection.await {
                tracing::warn!(error = %err, "the writer's PostgreSQL connection ended");
            }
        });
        Ok(PgWriteConn {
            client,
            prepared: HashMap::new(),
            prepared_count: 0,
            pending: Vec::new(),
            answered: HashMap::new(),
            sent: 0,
            round_trips: 0,
            announce: postgres::announce_events(instance),
        })
    }

    #[cfg(test)]
    pub fn round_trips(&self) -> u64 {
        self.round_trips
    }

    /// The statement for this SQL and these parameters' types, prepared on first use (a round
    /// trip of its own, before anything pending is sent, so the order holds).
    fn statement(&mut self, rt: Waiter<'_>, sql: &str, params: &[Val]) -> StoreResult<Statement> {
        let types: Vec<Type> = params.iter().map(pg_type).collect();
        let known = self
            .prepared
            .get(sql)
            .and_then(|all| all.iter().find(|(t, _)| *t == types));
        if let Some((_, statement)) = known {
            return Ok(statement.clone());
        }
        // Bounded like sqlx's cache; a dropped statement is closed on the server.
        if self.prepared_count >= STATEMENT_CACHE {
            self.prepared.clear();
            self.prepared_count = 0;
        }
        let statement = rt.block_on(self.client.prepare_typed(sql, &types))?;
        self.prepared
            .entry(sql.to_string())
            .or_default()
            .push((types, statement.clone()));
        self.prepared_count += 1;
        Ok(statement)
    }

    /// Sends what is pending, then `steps`, together; waits for every answer. Returns the
    /// answers of `steps`, or the first failure in the order sent.
    fn round_trip(&mut self, rt: Waiter<'_>, steps: Vec<Step>) -> StoreResult<Vec<Answer>> {
        let mut all = std::mem::take(&mut self.pending);
        let earlier = all.len();
        all.extend(steps.into_iter().map(|s| (s, None)));
        self.round_trips += 1;
        let client = &self.client;
        let sending = all.iter().map(|(s, _)| s.send(client)).collect();
        let mut answers = rt.block_on(in_order(sending))?;
        let now = answers.split_off(earlier);
        for ((_, number), answer) in all.iter().zip(answers) {
            if let Some(number) = number {
                self.answered.insert(*number, answer.rows());
            }
        }
        Ok(now)
    }

    /// One query's rows, sent with whatever is pending.
    fn query(&mut self, rt: Waiter<'_>, sql: &str, params: Vec<Val>) -> StoreResult<Vec<Row>> {
        let statement = self.statement(rt, sql, &params)?;
        let answers = self.round_trip(rt, vec![Step::Query(statement, params)])?;
        Ok(answers
            .into_iter()
            .next()
            .map(Answer::rows)
            .unwrap_or_default())
    }

    /// Several queries sent together (a multi-row statement per chunk); their rows in order.
    fn query_chunks(
        &mut self,
        rt: Waiter<'_>,
        chunks: Vec<(String, Vec<Val>)>,
    ) -> StoreResult<Vec<Row>> {
        let mut steps = Vec::with_capacity(chunks.len());
        for (sql, params) in chunks {
            steps.push(Step::Query(self.statement(rt, &sql, &params)?, params));
        }
        let answers = self.round_trip(rt, steps)?;
        Ok(answers.into_iter().flat_map(Answer::rows).collect())
    }

    fn later(&mut self, rt: Waiter<'_>, sql: &str, params: Vec<Val>) -> StoreResult<()> {
        let statement = self.statement(rt, sql, &params)?;
        self.pending.push((Step::Execute(statement, params), None));
        Ok(())
    }

    /// Queues a query; its rows are kept under the number returned.
    fn query_later(&mut self, rt: Waiter<'_>, sql: &str, params: Vec<Val>) -> StoreResult<usize> {
        let statement = self.statement(rt, sql, &params)?;
        self.sent += 1;
        self.pending
            .push((Step::Query(statement, params), Some(self.sent)));
        Ok(self.sent)
    }

    /// The rows of a queued query, sending what is pending if they have not come yet.
    fn rows_of(&mut self, rt: Waiter<'_>, number: usize) -> StoreResult<Vec<Row>> {
        if !self.answered.contains_key(&number) {
            self.round_trip(rt, Vec::new())?;
        }
        self.answered
            .remove(&number)
            .ok_or_else(|| StoreError::Failed("rows read twice".into()))
    }

    /// Appends the events and commits, with whatever is pending, in one round trip. Returns
    /// the events' ids, in order. The events' statement announces them to every instance.
    fn commit_with_events(
        &mut self,
        rt: Waiter<'_>,
        events: &[EventInsert],
        now_ms: i64,
    ) -> StoreResult<Vec<i64>> {
        let mut steps = Vec::new();
        for chunk in events.chunks(ROWS_PER_STATEMENT) {
            let sql = format!("{}, {}", sql::insert_events(chunk.len()), self.announce);
            let params = sql::event_values(chunk, now_ms);
            steps.push(Step::Query(self.statement(rt, &sql, &params)?, params));
        }
        steps.push(Step::Batch("COMMIT"));
        let answers = self.round_trip(rt, steps)?;
        let mut ids = Vec::with_capacity(events.len());
        for (chunk, answer) in events.chunks(ROWS_PER_STATEMENT).zip(answers) {
            let got = answer
                .rows()
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            ids.extend(sql::event_ids(got, chunk.len())?);
        }
        Ok(ids)
    }
}

/// Runs every job in one transaction on `conn`, announcing new events to every instance at
/// commit. Returns one result per job and the events to publish. Call on the writer's thread,
/// never from async code. After a failure the connection may be inside a broken transaction:
/// drop it.
pub fn apply_jobs(
    rt: Waiter<'_>,
    conn: &mut PgWriteConn,
    works: &[&Work],
    now_ms: i64,
    policy: OfflinePolicy,
) -> StoreResult<Applied> {
    conn.pending.clear();
    conn.answered.clear();
    conn.pending
        .push((Step::Batch(postgres::BEGIN_WRITE), None));
    let done = group::apply_works(
        &mut PgTx {
            conn: &mut *conn,
            rt,
        },
        works,
        now_ms,
        policy,
    )?;
    let ids = conn.commit_with_events(rt, &done.events, now_ms)?;
    Ok(done.numbered(ids))
}

/// A statement to send.
enum Step {
    /// A simple query (several statements, no parameters, no rows read).
    Batch(&'static str),
    /// Rows changed wanted.
    Execute(Statement, Vec<Val>),
    /// Rows wanted.
    Query(Statement, Vec<Val>),
}

enum Answer {
    Done,
    Count(u64),
    Rows(Vec<Row>),
}

impl Answer {
    fn rows(self) -> Vec<Row> {
        match self {
            Answer::Rows(rows) => rows,
            Answer::Done | Answer::Count(_) => Vec::new(),
        }
    }
}

type Sending<'a> = Pin<Box<dyn Future<Output = Result<Answer, tokio_postgres::Error>> + Send + 'a>>;

impl Step {
    /// The step's future; its first poll sends it.
    fn send<'a>(&'a self, client: &'a Client) -> Sending<'a> {
        match self {
            Step::Batch(sql) => Box::pin(async move {
                client.batch_execute(sql).await?;
                Ok(Answer::Done)
            }),
            Step::Execute(statement, params) => Box::pin(async move {
                let params = refs(params);
                Ok(Answer::Count(client.execute(statement, &params).await?))
            }),
            Step::Query(statement, params) => Box::pin(async move {
                let params = refs(params);
                Ok(Answer::Rows(client.query(statement, &params).await?))
            }),
        }
    }
}

/// Polls every future in the order given, each until it is done, so each statement is sent
/// before the next; resolves when all have answered, with the first failure in that order (a
/// statement after a failed one fails too: the transaction is aborted).
async fn in_order(mut sending: Vec<Sending<'_>>) -> Result<Vec<Answer>, tokio_postgres::Error> {
    let mut answers: Vec<Option<Result<Answer, tokio_postgres::Error>>> =
        sending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (future, answer) in sending.iter_mut().zip(answers.iter_mut()) {
            if answer.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(a) => *answer = Some(a),
                    Poll::Pending => all = false,
                }
            }
        }
        if all {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    answers.into_iter().flatten().collect()
}

fn refs(params: &[Val]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

/// The type a value is sent as: the same as sqlx binds, so the same SQL means the same.
fn pg_type(v: &Val) -> Type {
    match v {
        Val::Int(_) => Type::INT8,
        Val::Real(_) => Type::FLOAT8,
        Val::Text(_) => Type::TEXT,
        Val::Bool(_) => Type::BOOL,
    }
}

impl ToSql for Val {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Val::Int(v) => v.to_sql(ty, out),
            Val::Real(v) => v.to_sql(ty, out),
            Val::Text(v) => v.to_sql(ty, out),
            Val::Bool(v) => v.to_sql(ty, out),
        }
    }

    /// Statements are prepared with each value's own type (`pg_type`).
    fn accepts(ty: &Type) -> bool {
        [Type::INT8, Type::FLOAT8, Type::TEXT, Type::BOOL].contains(ty)
    }

    to_sql_checked!();
}

/// Reads a row's columns as `columns` says.
fn typed_row(r: &Row, columns: &[Ty]) -> Result<Vec<Val>, tokio_postgres::Error> {
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

/// By column name, as the SQLite driver reads the same row.
fn device_row(r: &Row) -> Result<DeviceRow, tokio_postgres::Error> {
    Ok(DeviceRow {
        id: r.try_get("id")?,
        dev_eui: r.try_get("dev_eui")?,
        milesight_id: r.try_get("milesight_id")?,
        name: r.try_get("name")?,
        model: r.try_get("model")?,
        site_id: r.try_get("site_id")?,
        site_name: r.try_get("site_name")?,
        status: r.try_get("status")?,
        last_seen_ms: r.try_get("last_seen_ms")?,
        report_interval_s: r.try_get("report_interval_s")?,
        ts302_variant: r.try_get("ts302_variant")?,
        created_ms: r.try_get("created_ms")?,
    })
}

/// Each row's first column.
fn firsts<T>(rows: &[Row]) -> StoreResult<Vec<T>>
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    Ok(rows
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?)
}

fn text(v: Option<&str>) -> Val {
    Val::Text(v.map(str::to_string))
}

/// The writer's transaction.
struct PgTx<'t> {
    conn: &'t mut PgWriteConn,
    rt: Waiter<'t>,
}

impl WriteTx for PgTx<'_> {
    fn execute(&mut self, sql: &str, params: &[Val]) -> StoreResult<u64> {
        let statement = self.conn.statement(self.rt, sql, params)?;
        let step = Step::Execute(statement, params.to_vec());
        match self.conn.round_trip(self.rt, vec![step])?.pop() {
            Some(Answer::Count(n)) => Ok(n),
            _ => Err(StoreError::Failed("a statement sent no row count".into())),
        }
    }

    fn execute_later(&mut self, sql: &str, params: Vec<Val>) -> StoreResult<()> {
        self.conn.later(self.rt, sql, params)
    }

    fn select(&mut self, sql: &str, params: &[Val], columns: &[Ty]) -> StoreResult<Vec<Vec<Val>>> {
        let rows = self.conn.query(self.rt, sql, params.to_vec())?;
        Ok(rows
            .iter()
            .map(|r| typed_row(r, columns))
            .collect::<Result<_, _>>()?)
    }

    fn select_later(
        &mut self,
        sql: &str,
        params: Vec<Val>,
        columns: &'static [Ty],
    ) -> StoreResult<Later> {
        let id = self.conn.query_later(self.rt, sql, params)?;
        Ok(Later { id, columns })
    }

    fn rows(&mut self, later: Later) -> StoreResult<Vec<Vec<Val>>> {
        let rows = self.conn.rows_of(self.rt, later.id)?;
        Ok(rows
            .iter()
            .map(|r| typed_row(r, later.columns))
            .collect::<Result<_, _>>()?)
    }

    fn pipelines(&self) -> bool {
        true
    }

    fn devices_by_identifiers(&mut self, ids: &[&str]) -> StoreResult<Vec<DeviceRow>> {
        let chunks = ids
            .chunks(ROWS_PER_STATEMENT)
            .map(|chunk| {
                let params = chunk.iter().map(|id| Val::text(id)).collect();
                (sql::devices_by_identifiers(chunk.len()), params)
            })
            .collect();
        let rows = self.conn.query_chunks(self.rt, chunks)?;
        Ok(rows.iter().map(device_row).collect::<Result<_, _>>()?)
    }

    fn device_by_id(&mut self, id: i64) -> StoreResult<DeviceRow> {
        let rows = self
            .conn
            .query(self.rt, &sql::device_by_id(), vec![Val::int(id)])?;
        match rows.first() {
            Some(row) => Ok(device_row(row)?),
            None => Err(StoreError::Failed(format!("device {id} not found").into())),
        }
    }

    fn insert_device(
        &mut self,
        dev_eui: Option<&str>,
        milesight_id: Option<&str>,
        name: &str,
        model: &str,
        now_ms: i64,
    ) -> StoreResult<i64> {
        let params = vec![
            text(dev_eui),
            text(milesight_id),
            Val::text(name),
            Val::text(model),
            Val::int(now_ms),
        ];
        let rows = self.conn.query(self.rt, sql::INSERT_DEVICE, params)?;
        firsts(&rows)?
            .pop()
            .ok_or_else(|| StoreError::Failed("no id for a new device".into()))
    }

    fn update_device_identity(
        &mut self,
        id: i64,
        dev_eui: Option<&str>,
        milesight_id: Option<&str>,
        name: Option<&str>,
        model: Option<&str>,
    ) -> StoreResult<()> {
        let params = vec![
            text(dev_eui),
            text(milesight_id),
            text(name),
            text(model),
            Val::int(id),
        ];
        self.conn
            .later(self.rt, sql::UPDATE_DEVICE_IDENTITY, params)
    }

    fn update_device_state(&mut self, device: &DeviceRow) -> StoreResult<()> {
        let params = vec![
            Val::text(&device.status),
            Val::Int(device.last_seen_ms),
            Val::Int(device.report_interval_s),
            Val::int(device.id),
        ];
        self.conn.later(self.rt, sql::UPDATE_DEVICE_STATE, params)
    }

    fn silent_devices(&mut self, now_ms: i64, policy: OfflinePolicy) -> StoreResult<Vec<i64>> {
        let params = vec![
            Val::int(now_ms),
            Val::int(policy.default_interval_s),
            Val::int(policy.grace_s),
        ];
        firsts(&self.conn.query(self.rt, sql::SILENT_DEVICES, params)?)
    }
}

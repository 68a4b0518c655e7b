//! Reliability under faults (issue 7): a reconnect storm, a SIGKILL in the middle of 10,000
//! webhooks, PostgreSQL going away and coming back, and sessions that must get nothing (forged,
//! expired, signed out, disabled). Every wait has a time limit, so no test can hang.
//!
//! The heavy tests (storm, crash, outage) take one lock, so that on a small machine they do not
//! compete with each other for the CPU (their time limits assume they run alone).

mod common;

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use common::sse::{Sse, READ};
use common::Db;
use common::*;
use sensorcast::domain::Role;
use sensorcast::ingest::signature;
use sensorcast::store::Table;

/// Storm, crash and outage run one at a time.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const DEV: &str = "1988618061618309001";
const EUI: &str = "24e124707e090001";

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

fn random_hex(bytes: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.gen::<u8>()))
        .collect()
}

/// A signed MDP delivery's headers, kept so that the very same request can be sent again.
#[derive(Debug, Clone)]
struct Signed {
    ts: String,
    nonce: String,
    sig: String,
}

impl Signed {
    fn now() -> Signed {
        let ts = (sensorcast::domain::now_ms() / 1000).to_string();
        let nonce = random_hex(16);
        let sig = signature::sign(SECRET.as_bytes(), &ts, &nonce);
        Signed { ts, nonce, sig }
    }
}

/// Posts a signed MDP body to `base` (`http://host:port`); the status and the JSON answer, or
/// why there was no answer.
async fn post_signed(
    client: &reqwest::Client,
    base: &str,
    body: &str,
    signed: &Signed,
) -> Result<(u16, Value), String> {
    let send = client
        .post(format!("{base}/api/webhooks/milesight"))
        .header("content-type", "application/json")
        .header(signature::SIGNATURE, &signed.sig)
        .header(signature::UUID, "6167cb40-8e5e-4d53-904f-968928e488a6")
        .header(signature::TIMESTAMP, &signed.ts)
        .header(signature::NONCE, &signed.nonce)
        .body(body.to_string())
        .send();
    let response = tokio::time::timeout(Duration::from_secs(20), send)
        .await
        .map_err(|_| "no answer within 20 s".to_string())?
        .map_err(|e| format!("send: {e}"))?;
    let status = response.status().as_u16();
    let text = tokio::time::timeout(Duration::from_secs(20), response.text())
        .await
        .map_err(|_| "no body within 20 s".to_string())?
        .map_err(|e| format!("body: {e}"))?;
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, json))
}

/// Every stored event id, straight from the database.
async fn stored_event_ids(db: &Db) -> Vec<i64> {
    let sql = "SELECT id FROM events ORDER BY id";
    match db {
        Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
        Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
    }
    .expect("read event ids")
}

/// A JSON error answer: the status, a JSON content type, the code, a sentence, and none of
/// the internal detail an outage would tempt a server to show.
async fn assert_json_error(r: reqwest::Response, status: u16, code: &str, what: &str) {
    assert_eq!(r.status().as_u16(), status, "{what}");
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(ct.starts_with("application/json"), "{what}: {ct}");
    let text = r.text().await.expect("error body");
    let body: Value = serde_json::from_str(&text).expect("JSON error body");
    assert_eq!(body["error"], code, "{what}: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
    assert_no_internal_detail(&text, what);
}

fn assert_no_internal_detail(text: &str, what: &str) {
    let lower = text.to_ascii_lowercase();
    for leak in [
        "sqlx",
        "pool",
        "connection refused",
        "127.0.0.1",
        "postgres",
        "sqlite",
        "select ",
        "panicked",
        "error returned from database",
    ] {
        assert!(
            !lower.contains(leak),
            "{what}: internal detail {leak:?} in {text}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Reconnect storm
// ---------------------------------------------------------------------------------------------

const STORM_CLIENTS: usize = 1_000;
const STORM_READINGS: usize = 2_000;
const STORM_PER_REQUEST: usize = 50;
const STORM_SESSIONS: usize = 4;
const STORM_MIN_CUTS: usize = 5;
const STORM_MAX_CUTS: usize = 8;
/// Event ids the data table can hold (a fresh database numbers them from 1).
const STORM_MAX_ID: usize = 4_096;

type BodyStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The index of the first `byte` in `hay`, through std's `memchr` (fast even in a debug build).
fn find_byte(hay: &[u8], byte: u8) -> Option<usize> {
    let mut rest = hay;
    let n = rest.skip_until(byte).ok()?;
    (n > 0 && hay[n - 1] == byte).then(|| n - 1)
}

/// One dispatched message of a `LeanSse`: its id and where its data is in the buffer.
struct Block {
    id: Option<i64>,
    data: std::ops::Range<usize>,
}

/// A lean EventSource for a thousand streams: ids and data bytes, no JSON (the shared `Sse`
/// reader parses every message, too slow for two million messages in a debug build).
struct LeanSse {
    body: BodyStream,
    buf: Vec<u8>,
    /// Start of what has not been dispatched yet.
    pos: usize,
    ended: bool,
    error: Option<String>,
}

impl LeanSse {
    fn new(response: reqwest::Response) -> LeanSse {
        LeanSse {
            body: Box::pin(response.bytes_stream()),
            buf: Vec::with_capacity(64 * 1024),
            pos: 0,
            ended: false,
            error: None,
        }
    }

    fn data(&self, block: &Block) -> &[u8] {
        &self.buf[block.data.clone()]
    }

    /// The next complete message in the buffer, if any (comment-only blocks dispatch nothing).
    fn parse_one(&mut self) -> Result<Option<Block>, String> {
        let mut line_start = self.pos;
        let (mut id, mut data) = (None, None);
        loop {
            let Some(nl) = find_byte(&self.buf[line_start..], b'\n') else {
                return Ok(None);
            };
            let nl = line_start + nl;
            let line = &self.buf[line_start..nl];
            if line.is_empty() {
                self.pos = nl + 1;
                match data {
                    Some(data) => return Ok(Some(Block { id, data })),
                    None => {
                        id = None;
                        line_start = self.pos;
                        continue;
                    }
                }
            }
            if let Some(v) = line.strip_prefix(b"id: ") {
                let v = std::str::from_utf8(v).map_err(|_| "id is not UTF-8".to_string())?;
                id = Some(v.parse().map_err(|_| format!("id {v:?} is not a number"))?);
            } else if line.starts_with(b"data: ") {
                if data.is_some() {
                    return Err("two data lines in one message".into());
                }
                data = Some(line_start + 6..nl);
            } else if !line.starts_with(b":") {
                return Err(format!(
                    "unexpected line {:?}",
                    String::from_utf8_lossy(line)
                ));
            }
            line_start = nl + 1;
        }
    }

    /// The next message; `Ok(None)` once the stream has ended, `Err` on timeout.
    async fn next(&mut self, wait: Duration) -> Result<Option<Block>, String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(block) = self.parse_one()? {
                return Ok(Some(block));
            }
            if self.ended {
                return Ok(None);
            }
            if self.pos > 0 && self.pos * 2 >= self.buf.len() {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return Err("timeout".into()),
                Ok(Some(Ok(chunk))) => self.buf.extend_from_slice(&chunk),
                Ok(Some(Err(e))) => {
                    self.error = Some(e.to_string());
                    self.ended = true;
                }
                Ok(None) => self.ended = true,
            }
        }
    }
}

/// What one storm client saw.
#[derive(Default)]
struct StormReport {
    ids: Vec<i64>,
    cuts: usize,
    /// Reconnections refused (non-200) or failed before a response; retried with backoff.
    refused: Vec<String>,
    /// Streams the server ended (or broke) without being asked to.
    ended_by_server: Vec<String>,
    /// Data of an id that differed from what another client got for it.
    mismatches: usize,
    failure: Option<String>,
}

struct StormShared {
    realtime_url: String,
    /// The last event id, once everything is published (0 until then).
    final_id: AtomicI64,
    /// Clients whose first stream is open.
    connected: AtomicUsize,
    /// The data of each event id, as first received by any client.
    data: Vec<OnceLock<Vec<u8>>>,
}

async fn storm_connect(
    client: &reqwest::Client,
    shared: &StormShared,
    last_id: Option<i64>,
) -> Result<reqwest::Response, String> {
    let mut req = client
        .get(&shared.realtime_url)
        .header("accept", "text/event-stream");
    if let Some(id) = last_id {
        req = req.header("last-event-id", id.to_string());
    }
    let r = tokio::time::timeout(Duration::from_secs(20), req.send())
        .await
        .map_err(|_| "no response headers within 20 s".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    if r.status() != 200 {
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        return Err(format!("{status} {body}"));
    }
    Ok(r)
}

/// One browser tab: reads its stream and cuts it after each of `cut_after` events received
/// (dropping the response, mid-chunk if it happens to be), then reconnects with Last-Event-ID
/// = the last id received, as EventSource does; until it has the last published event.
async fn storm_client(
    client: reqwest::Client,
    shared: Arc<StormShared>,
    mut cut_after: VecDeque<usize>,
    seed: u64,
) -> StormReport {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut report = StormReport {
        ids: Vec::with_capacity(STORM_READINGS + 1),
        ..StormReport::default()
    };
    let mut first = true;
    let mut last_progress = Instant::now();
    'connection: loop {
        let last_id = report.ids.last().copied();
        let response = match storm_connect(&client, &shared, last_id).await {
            Ok(r) => r,
            Err(e) => {
                report.refused.push(e);
                if report.refused.len() > 20 {
                    report.failure = Some(format!("refused 20 times: {:?}", report.refused));
                    return report;
                }
                let backoff = 50 * report.refused.len() as u64;
                tokio::time::sleep(Duration::from_millis(backoff)).await;
                continue;
            }
        };
        let mut sse = LeanSse::new(response);
        loop {
            let block = match sse.next(Duration::from_millis(500)).await {
                Ok(Some(block)) => block,
                Ok(None) => {
                    report.ended_by_server.push(format!(
                        "after id {:?} (error: {:?})",
                        report.ids.last(),
                        sse.error
                    ));
                    continue 'connection;
                }
                Err(e) if e == "timeout" => {
                    let final_id = shared.final_id.load(Ordering::Acquire);
                    if final_id > 0 && report.ids.last() == Some(&final_id) {
                        return report;
                    }
                    if last_progress.elapsed() > Duration::from_secs(30) {
                        report.failure = Some(format!(
                            "stalled for 30 s after {} events (last id {:?}, final id {final_id})",
                            report.ids.len(),
                            report.ids.last()
                        ));
                        return report;
                    }
                    continue;
                }
                Err(e) => {
                    report.failure = Some(e);
                    return report;
                }
            };
            let Some(id) = block.id else {
                let data = sse.data(&block);
                let kind: Value = serde_json::from_slice(data).unwrap_or(Value::Null);
                match kind["type"].as_str() {
                    Some("connected") if first => {
                        first = false;
                        shared.connected.fetch_add(1, Ordering::AcqRel);
                    }
                    Some("connected") | Some("keepalive") => {}
                    _ => {
                        report.failure = Some(format!(
                            "unexpected unnumbered message {:?}",
                            String::from_utf8_lossy(data)
                        ));
                        return report;
                    }
                }
                continue;
            };
            last_progress = Instant::now();
            let Some(slot) = usize::try_from(id).ok().and_then(|i| shared.data.get(i)) else {
                report.failure = Some(format!("event id {id} out of range"));
                return report;
            };
            let data = sse.data(&block);
            if slot.get_or_init(|| data.to_vec()).as_slice() != data {
                report.mismatches += 1;
            }
            report.ids.push(id);
            let final_id = shared.final_id.load(Ordering::Acquire);
            if final_id > 0 && id >= final_id {
                return report;
            }
            if cut_after.front().is_some_and(|n| report.ids.len() >= *n) {
                cut_after.pop_front();
                report.cuts += 1;
                drop(sse);
                let pause = rng.gen_range(0..=20);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                continue 'connection;
            }
        }
    }
}

/// 1,000 streams, each cut at random at least 5 times while 2,000 readings are published:
/// every client ends with every event, in order, none twice, byte for byte as stored.
async fn reconnect_storm_loses_nothing(backend: Backend) {
    let _heavy = HEAVY.lock().await;
    let mut args = test_args();
    args.max_streams_per_user = 0;
    let app = spawn_or_skip!(backend, args);
    let started = Instant::now();
    let browsers = futures_util::future::join_all((0..STORM_SESSIONS).map(|_| app.admin())).await;

    let shared = Arc::new(StormShared {
        realtime_url: app.url("/api/realtime"),
        final_id: AtomicI64::new(0),
        connected: AtomicUsize::new(0),
        data: (0..=STORM_MAX_ID).map(|_| OnceLock::new()).collect(),
    });
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0007);
    let mut clients = Vec::with_capacity(STORM_CLIENTS);
    for i in 0..STORM_CLIENTS {
        let cuts = rng.gen_range(STORM_MIN_CUTS..=STORM_MAX_CUTS);
        // Cut after the n-th event, n in 1..=2000 (of 2,001 events: a new device, then readings).
        let mut cut_after: Vec<usize> = rand::seq::index::sample(&mut rng, STORM_READINGS, cuts)
            .into_iter()
            .map(|n| n + 1)
            .collect();
        cut_after.sort_unstable();
        clients.push(tokio::spawn(storm_client(
            browsers[i % STORM_SESSIONS].clone(),
            shared.clone(),
            cut_after.into(),
            rng.gen(),
        )));
    }

    // Every first stream is open (subscribed) before anything is published.
    let deadline = Instant::now() + Duration::from_secs(60);
    while shared.connected.load(Ordering::Acquire) < STORM_CLIENTS {
        assert!(
            Instant::now() < deadline,
            "only {} of {STORM_CLIENTS} streams opened within 60 s",
            shared.connected.load(Ordering::Acquire)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let opened = started.elapsed();

    let base = sensorcast::domain::now_ms();
    for r in 0..STORM_READINGS / STORM_PER_REQUEST {
        let events: Vec<String> = (0..STORM_PER_REQUEST)
            .map(|k| {
                let n = r * STORM_PER_REQUEST + k;
                let mut ev: Value =
                    serde_json::from_str(&mdp_reading(&format!("storm-{n}"), DEV, EUI, 0.0, 0.0))
                        .unwrap();
                ev["data"]["ts"] = json!(base + n as i64);
                ev["data"]["payload"]["temperature_left"] = json!(n as f64 / 10.0);
                ev.to_string()
            })
            .collect();
        let r = app.post_mdp(&format!("[{}]", events.join(","))).await;
        let status = r.status();
        assert_eq!(status, 200, "{}", r.text().await.unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored = stored_event_ids(app.db()).await;
    assert_eq!(
        stored.len(),
        STORM_READINGS + 1,
        "a new device and the readings"
    );
    let final_id = *stored.last().unwrap();
    assert!(final_id as usize <= STORM_MAX_ID);
    shared.final_id.store(final_id, Ordering::Release);
    let published = started.elapsed();

    // A guard against a hang, not a speed test (each client also fails after 30 s without
    // progress): 1,000 clients replaying ~5 M events on 2 busy cores take most of a minute.
    let reports = tokio::time::timeout(
        Duration::from_secs(240),
        futures_util::future::join_all(clients),
    )
    .await
    .expect("every storm client finished within 240 s");
    let done = started.elapsed();

    let mut failures = Vec::new();
    let (mut cuts, mut refused, mut ended, mut mismatches) = (0, 0, 0, 0);
    for (i, report) in reports.into_iter().enumerate() {
        let report = report.expect("client task");
        cuts += report.cuts;
        refused += report.refused.len();
        ended += report.ended_by_server.len();
        mismatches += report.mismatches;
        if let Some(f) = &report.failure {
            failures.push(format!("client {i}: {f}"));
        } else if report.ids != stored {
            let got: HashSet<i64> = report.ids.iter().copied().collect();
            let missing: Vec<i64> = stored
                .iter()
                .copied()
                .filter(|x| !got.contains(x))
                .collect();
            let twice = report.ids.len() - got.len();
            let ordered = report.ids.windows(2).all(|w| w[0] < w[1]);
            failures.push(format!(
                "client {i}: {} events of {}, missing {:?}, {twice} twice, in order: {ordered}",
                report.ids.len(),
                stored.len(),
                &missing[..missing.len().min(10)]
            ));
        }
        if report.cuts < STORM_MIN_CUTS && report.failure.is_none() {
            failures.push(format!("client {i}: only {} cuts", report.cuts));
        }
        if !report.ended_by_server.is_empty() {
            failures.push(format!(
                "client {i}: the server ended its stream: {:?}",
                report.ended_by_server
            ));
        }
    }
    let stats = &app.state.hub.stats;
    eprintln!(
        "storm ({backend:?}): {STORM_CLIENTS} streams open after {opened:?}, published by \
         {published:?}, all done after {done:?}; {cuts} cuts, {refused} refused reconnects, \
         {ended} ended by the server, {} replays, {} events from the database, {} lags",
        stats.replays.get(),
        stats.replayed_events.get(),
        stats.lagged.get(),
    );
    assert!(
        failures.is_empty(),
        "{} of {STORM_CLIENTS} clients failed:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
    assert_eq!(
        mismatches, 0,
        "clients received different bytes for the same id"
    );
    assert_eq!(refused, 0, "reconnections were refused");

    // What every client got is what a clean reader replaying the whole log gets.
    let mut clean = Sse::new(
        storm_connect(&browsers[0], &shared, Some(0))
            .await
            .expect("a clean stream"),
    );
    assert_eq!(clean.next_msg().await.kind(), "connected");
    let all = clean.events_through(final_id, READ).await;
    assert_eq!(all.len(), stored.len());
    for m in &all {
        let id = m.id.unwrap() as usize;
        assert_eq!(
            shared.data[id].get().map(|d| d.as_slice()),
            Some(m.raw.as_bytes()),
            "event {id}"
        );
    }
}

both_backends!(reconnect_storm_loses_nothing, worker_threads = 4);

// ---------------------------------------------------------------------------------------------
// 2. SIGKILL in the middle of 10,000 webhooks
// ---------------------------------------------------------------------------------------------

const CRASH_WEBHOOKS: usize = 10_000;
const CRASH_SENDERS: usize = 32;
const CRASH_KILL_AFTER: usize = 4_000;

/// The real binary as a child process; killed (SIGKILL) when dropped.
struct Binary {
    child: std::process::Child,
    base: String,
    log: PathBuf,
}

impl Binary {
    fn start(database_url: &str, port: u16, log: &Path) -> Binary {
        let log_file = std::fs::File::create(log).expect("log file");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_sensorcast"))
            .args([
                "--database-url",
                database_url,
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--webhook-secret",
                SECRET,
                "--cookie-secure",
                "false",
                "--admin-email",
                ADMIN_EMAIL,
                "--admin-password",
                PASSWORD,
            ])
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start sensorcast");
        Binary {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log: log.to_path_buf(),
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = log.len().saturating_sub(4_000);
        let start = (start..log.len())
            .find(|i| log.is_char_boundary(*i))
            .unwrap_or(0);
        log[start..].to_string()
    }

    /// Waits until `/readyz` answers 200.
    async fn ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = reqwest::Client::new();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sensorcast exited ({status}):\n{}", self.log_tail());
            }
            let probe = client.get(format!("{}/readyz", self.base)).send();
            if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(2), probe).await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "sensorcast not ready within 60 s:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, and reap the process.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn crash_device(sender: usize) -> (String, String) {
    (
        format!("19886180616183092{sender:02}"),
        format!("24e124707e0902{sender:02}"),
    )
}

fn crash_event_id(n: usize) -> String {
    format!("crash-{n:05}")
}

fn crash_body(n: usize) -> String {
    let (dev, eui) = crash_device(n % CRASH_SENDERS);
    mdp_reading(&crash_event_id(n), &dev, &eui, n as f64 / 100.0, 1.0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Never sent (the server was already gone).
    Unsent,
    /// Sent, but no 2xx answer came back.
    Unanswered,
    /// Answered 2xx: the server promised it is stored.
    Answered,
}

/// A browser signed in to `base` through the sign-in form.
async fn sign_in(base: &str) -> reqwest::Client {
    let client = browser();
    let r = sign_in_at(base, &client, ADMIN_EMAIL, PASSWORD).await;
    assert_eq!(r.status(), 303, "sign-in");
    client
}

/// How many readings each eventId has, read back as an admin through the telemetry API.
async fn stored_readings(base: &str, admin: &reqwest::Client) -> HashMap<String, usize> {
    let mut stored = HashMap::new();
    for sender in 0..CRASH_SENDERS {
        let (dev, _) = crash_device(sender);
        let r = admin
            .get(format!("{base}/api/devices/{dev}/telemetry?limit=10000"))
            .send()
            .await
            .expect("telemetry");
        if r.status() == 404 {
            continue;
        }
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.expect("telemetry JSON");
        for reading in body["readings"].as_array().expect("readings") {
            let id = reading["raw"]["eventId"]
                .as_str()
                .expect("an admin sees the raw event")
                .to_string();
            *stored.entry(id).or_default() += 1;
        }
    }
    stored
}

/// Sends webhooks `todo` (indexes into `bodies`) with `CRASH_SENDERS` senders at once, each
/// signed afresh; each sender stops at its first failure once `stop` is set. Returns the fate
/// and answer of each.
async fn send_all(
    base: &str,
    bodies: &[String],
    todo: &[usize],
    answered: &AtomicUsize,
    stop: &AtomicBool,
) -> Vec<(usize, Fate, Option<Value>, Option<String>)> {
    let senders = (0..CRASH_SENDERS).map(|s| {
        let mine: Vec<usize> = todo
            .iter()
            .copied()
            .skip(s)
            .step_by(CRASH_SENDERS)
            .collect();
        async move {
            let client = reqwest::Client::new();
            let mut out = Vec::with_capacity(mine.len());
            let mut gone = false;
            for n in mine {
                if gone {
                    out.push((n, Fate::Unsent, None, None));
                    continue;
                }
                match post_signed(&client, base, &bodies[n], &Signed::now()).await {
                    Ok((200, body)) => {
                        answered.fetch_add(1, Ordering::AcqRel);
                        out.push((n, Fate::Answered, Some(body), None));
                    }
                    Ok((status, body)) => {
                        out.push((n, Fate::Unanswered, None, Some(format!("{status} {body}"))))
                    }
                    Err(e) => {
                        gone = stop.load(Ordering::Acquire);
                        let why = (!gone).then_some(e);
                        out.push((n, Fate::Unanswered, None, why));
                    }
                }
            }
            out
        }
    });
    futures_util::future::join_all(senders)
        .await
        .into_iter()
        .flatten()
        .collect()
}

async fn sigkill_mid_stream_loses_nothing_and_stores_nothing_twice(backend: Backend) {
    let _heavy = HEAVY.lock().await;
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let logs = tempfile::tempdir().expect("log dir");
    let port = free_port();
    let started = Instant::now();
    let mut server = Binary::start(&db.url, port, &logs.path().join("first.log"));
    server.ready().await;
    let base = server.base.clone();

    // 10,000 webhooks, 8 senders at once; SIGKILL once 4,000 have been answered.
    let all: Vec<usize> = (0..CRASH_WEBHOOKS).collect();
    // A retry sends the same body again (signed anew).
    let bodies: Vec<String> = all.iter().map(|n| crash_body(*n)).collect();
    let answered = AtomicUsize::new(0);
    let killed = AtomicBool::new(false);
    let kill = async {
        let deadline = Instant::now() + Duration::from_secs(120);
        while answered.load(Ordering::Acquire) < CRASH_KILL_AFTER {
            assert!(
                Instant::now() < deadline,
                "only {} webhooks answered within 120 s:\n{}",
                answered.load(Ordering::Acquire),
                server.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // At a random moment of the next group commit, not right after the last answers.
        let pause = rand::thread_rng().gen_range(0..40);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        killed.store(true, Ordering::Release);
        server.kill();
        answered.load(Ordering::Acquire)
    };
    let (results, answered_at_kill) =
        tokio::join!(send_all(&base, &bodies, &all, &answered, &killed), kill);
    let first_run = started.elapsed();
    drop(server);

    let mut fate: Vec<Fate> = vec![Fate::Unsent; CRASH_WEBHOOKS];
    let mut unexpected = Vec::new();
    for (n, f, body, why) in results {
        fate[n] = f;
        if let Some(body) = body {
            assert_eq!(
                (&body["accepted"], &body["duplicates"]),
                (&json!(1), &json!(0)),
                "webhook {n}: {body}"
            );
        }
        if let Some(why) = why {
            unexpected.push(format!("webhook {n}: {why}"));
        }
    }
    let count = |f: Fate| fate.iter().filter(|x| **x == f).count();
    let (n_answered, n_unanswered, n_unsent) = (
        count(Fate::Answered),
        count(Fate::Unanswered),
        count(Fate::Unsent),
    );
    assert!(
        unexpected.is_empty(),
        "before the kill, every webhook is answered 200: {:?}",
        &unexpected[..unexpected.len().min(10)]
    );
    assert!((CRASH_KILL_AFTER..CRASH_WEBHOOKS).contains(&n_answered));
    assert!(
        n_unanswered > 0,
        "senders had webhooks in flight at the kill"
    );

    // Restart on the same database: everything answered 2xx is there.
    let restarted = Instant::now();
    let mut server = Binary::start(&db.url, port, &logs.path().join("second.log"));
    server.ready().await;
    let restart_took = restarted.elapsed();
    let admin = sign_in(&base).await;
    let stored = stored_readings(&base, &admin).await;
    let lost: Vec<usize> = (0..CRASH_WEBHOOKS)
        .filter(|n| fate[*n] == Fate::Answered && !stored.contains_key(&crash_event_id(*n)))
        .collect();
    assert!(
        lost.is_empty(),
        "{} webhooks answered 2xx are not stored after the crash: {:?}",
        lost.len(),
        &lost[..lost.len().min(20)]
    );
    let twice: Vec<&String> = stored
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(k, _)| k)
        .collect();
    assert!(twice.is_empty(), "stored twice: {twice:?}");
    let committed_unanswered = (0..CRASH_WEBHOOKS)
        .filter(|n| fate[*n] != Fate::Answered && stored.contains_key(&crash_event_id(*n)))
        .count();
    assert_eq!(
        stored.len(),
        n_answered + committed_unanswered,
        "nothing but the webhooks sent is stored"
    );

    // The sender retries what was not answered, and (as a sender whose answers were lost
    // would) some that were: every retry is answered 200, nothing is stored twice.
    let retry: Vec<usize> = (0..CRASH_WEBHOOKS)
        .filter(|n| fate[*n] != Fate::Answered || n % 20 == 0)
        .collect();
    let never = AtomicBool::new(false);
    let retried = send_all(&base, &bodies, &retry, &AtomicUsize::new(0), &never).await;
    let mut bad = Vec::new();
    let mut duplicates = 0;
    for (n, f, body, why) in &retried {
        match (f, body) {
            (Fate::Answered, Some(body)) => {
                let (acc, dup) = (
                    body["accepted"].as_u64().unwrap_or(9),
                    body["duplicates"].as_u64().unwrap_or(9),
                );
                duplicates += dup;
                let ok = if fate[*n] == Fate::Answered {
                    (acc, dup) == (0, 1)
                } else {
                    acc + dup == 1
                };
                if !ok {
                    bad.push(format!("retry of webhook {n} ({:?}): {body}", fate[*n]));
                }
            }
            _ => bad.push(format!("retry of webhook {n}: {f:?} {why:?}")),
        }
    }
    assert!(bad.is_empty(), "{:?}", &bad[..bad.len().min(10)]);

    let stored = stored_readings(&base, &admin).await;
    let total: usize = stored.values().sum();
    assert_eq!(total, CRASH_WEBHOOKS, "exactly one reading per webhook");
    assert_eq!(stored.len(), CRASH_WEBHOOKS);
    assert!(stored.values().all(|c| *c == 1));
    assert_eq!(
        duplicates as usize,
        retry.len() - (n_unanswered + n_unsent - committed_unanswered),
        "the retries of stored webhooks were recognised as duplicates"
    );
    // The log's own counts agree.
    let check = sensorcast::store::Store::open(&db.url)
        .await
        .expect("connect to check");
    let readings = check.count_rows(Table::Readings).await.unwrap();
    let deliveries = check.count_rows(Table::Deliveries).await.unwrap();
    check.close().await;
    assert_eq!((readings, deliveries), (10_000, 10_000));
    eprintln!(
        "crash ({backend:?}): killed after {answered_at_kill} answers ({first_run:?}): \
         {n_answered} answered, {n_unanswered} in flight ({committed_unanswered} of those \
         already stored), {n_unsent} unsent; restart took {restart_took:?}; {} retries, \
         {duplicates} recognised as duplicates; total {:?}",
        retry.len(),
        started.elapsed()
    );
    drop(server);
}

both_backends!(sigkill_mid_stream_loses_nothing_and_stores_nothing_twice);

// ---------------------------------------------------------------------------------------------
// 3. PostgreSQL unavailable for a while
// ---------------------------------------------------------------------------------------------

/// A TCP proxy in front of PostgreSQL that can "stop the database": close its listener (new
/// connections are refused) and cut every open connection; and later start it again.
struct Proxy {
    addr: SocketAddr,
    upstream: String,
    running: Option<(
        tokio_util::sync::CancellationToken,
        tokio::task::JoinHandle<()>,
    )>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let mut proxy = Proxy {
            addr,
            upstream,
            running: None,
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let token = tokio_util::sync::CancellationToken::new();
        let upstream = self.upstream.clone();
        let stop = token.clone();
        let accepting = tokio::spawn(async move {
            loop {
                let (mut inbound, _) = tokio::select! {
                    _ = stop.cancelled() => break,
                    accepted = listener.accept() => match accepted {
                        Ok(c) => c,
                        Err(_) => continue,
                    },
                };
                let (upstream, stop) = (upstream.clone(), stop.clone());
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                    // Both sockets close here.
                });
            }
            // The listener closes here: connections are refused from now on.
        });
        self.running = Some((token, accepting));
    }

    /// The database "stops": no new connection, every open one cut.
    async fn stop(&mut self) {
        if let Some((token, accepting)) = self.running.take() {
            token.cancel();
            accepting.await.expect("proxy task");
        }
    }

    /// The database is back, at the same address.
    async fn restart(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("rebind proxy");
        self.serve(listener);
    }
}

/// `postgres://user@host:port` of the test server → (`user@`, `host:port`).
fn pg_authority() -> (String, String) {
    let base = pg_base();
    let rest = base
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(&base)
        .trim_end_matches('/');
    match rest.rsplit_once('@') {
        Some((user, hostport)) => (format!("{user}@"), hostport.to_string()),
        None => (String::new(), rest.to_string()),
    }
}

async fn readyz(client: &reqwest::Client, app: &TestApp) -> reqwest::Response {
    tokio::time::timeout(
        Duration::from_secs(20),
        client.get(app.url("/readyz")).send(),
    )
    .await
    .expect("/readyz answers within 20 s")
    .expect("/readyz")
}

/// The next numbered event of `sse` within `wait` (keepalives are skipped).
async fn next_event_within(sse: &mut Sse, wait: Duration) -> common::sse::Msg {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match sse.next_within(left).await {
            Ok(Some(m)) if m.id.is_some() => return m,
            Ok(Some(m)) => assert!(m.is_keepalive(), "{m:?}"),
            Ok(None) => panic!("the stream ended"),
            Err(()) => panic!("no event within {wait:?}"),
        }
    }
}

/// A server (keepalive every second) on a fresh PostgreSQL database reached through a proxy.
async fn app_behind_proxy() -> Option<(TestApp, Proxy)> {
    let (_direct, name) = fresh_pg_database().await?;
    let (user, upstream) = pg_authority();
    let proxy = Proxy::start(upstream).await;
    let url = format!("postgres://{user}{}/{name}", proxy.addr);
    let mut args = test_args();
    args.keepalive_secs = 1;
    let app = TestApp::spawn_on(Backend::Postgres, &url, args, Some(name)).await;
    Some((app, proxy))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_gets_503_keeps_streams_and_recovers() {
    let _heavy = HEAVY.lock().await;
    let Some((app, mut proxy)) = app_behind_proxy().await else {
        return;
    };
    let admin = app.admin().await;
    let plain = reqwest::Client::new();

    let r = admin.get(app.url("/api/realtime")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut sse = Sse::new(r);
    assert_eq!(sse.next_msg().await.kind(), "connected");
    let reading = |id: &str, t: f64| mdp_reading(id, DEV, EUI, t, 0.0);
    assert_eq!(app.post_mdp(&reading("outage-0", 10.0)).await.status(), 200);
    assert_eq!(next_event_within(&mut sse, READ).await.kind(), "new_device");
    assert_eq!(
        next_event_within(&mut sse, READ).await.kind(),
        "new_telemetry"
    );
    assert_eq!(readyz(&plain, &app).await.status(), 200);

    // The database goes away.
    proxy.stop().await;
    let down = Instant::now();
    let during = reading("outage-1", 11.0);
    let signed = Signed::now();
    let webhook = async {
        let started = Instant::now();
        let r = app
            .post_mdp_signed(&during, &signed.ts, &signed.nonce, &signed.sig)
            .await;
        let took = started.elapsed();
        assert_json_error(r, 503, "unavailable", "webhook while the database is down").await;
        took
    };
    let ready = async {
        let r = readyz(&plain, &app).await;
        assert_json_error(r, 503, "unavailable", "/readyz while the database is down").await;
    };
    let alive = async {
        let r = plain.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 200, "/healthz is liveness, not the database");
    };
    // The open stream stays open and keeps sending keepalives through the outage.
    let stream = async {
        let mut keepalives = 0;
        let until = Instant::now() + Duration::from_secs(7);
        let mut last = Instant::now();
        while Instant::now() < until {
            match sse.next_within(Duration::from_millis(250)).await {
                Ok(Some(m)) => {
                    assert!(m.is_keepalive(), "only keepalives while down: {m:?}");
                    keepalives += 1;
                    last = Instant::now();
                }
                Ok(None) => panic!("the stream ended during the outage ({:?})", down.elapsed()),
                Err(()) => assert!(
                    last.elapsed() < Duration::from_millis(1_600),
                    "no keepalive for 1.6 s during the outage ({:?} into it)",
                    down.elapsed()
                ),
            }
        }
        keepalives
    };
    let (webhook_took, (), (), keepalives) = tokio::join!(webhook, ready, alive, stream);
    assert!(keepalives >= 5, "{keepalives} keepalives in 7 s");
    let outage = down.elapsed();

    // Back: ready again by itself, the retried webhook and a new one are stored and streamed.
    proxy.restart().await;
    let back = Instant::now();
    let ready_after = loop {
        let r = readyz(&plain, &app).await;
        if r.status() == 200 {
            break back.elapsed();
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "/readyz still {} 30 s after the database returned",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The 503 stored nothing (not even the nonce).
    assert_eq!(stored_event_ids(app.db()).await.len(), 2);
    let r = app
        .post_mdp_signed(&during, &signed.ts, &signed.nonce, &signed.sig)
        .await;
    let status = r.status();
    assert_eq!(
        status,
        200,
        "Milesight's retry of the refused delivery (same signed headers) is accepted: {}",
        r.text().await.unwrap_or_default()
    );
    assert_eq!(app.post_mdp(&reading("outage-2", 12.0)).await.status(), 200);
    for t in [11.0, 12.0] {
        let m = next_event_within(&mut sse, Duration::from_secs(10)).await;
        assert_eq!(m.kind(), "new_telemetry", "{m:?}");
        assert_eq!(m.json["data"]["temperature"], t, "{m:?}");
    }
    assert_eq!(app.count(Table::Readings).await, 3);
    let ids = stored_event_ids(app.db()).await;
    assert_eq!(ids.len(), 4);
    eprintln!(
        "outage: 503 after {webhook_took:?}, {keepalives} keepalives while down, database away \
         {outage:?}, ready again {ready_after:?} after it returned"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Forged, expired, signed-out and disabled sessions get nothing
// ---------------------------------------------------------------------------------------------

const SESSION: &str = "sensorcast_session";

/// A browser that keeps its cookies in a jar the test can read.
fn jar_browser() -> (reqwest::Client, Arc<reqwest::cookie::Jar>) {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    (client, jar)
}

/// The session cookie's value in `jar`.
fn session_of(app: &TestApp, jar: &reqwest::cookie::Jar) -> String {
    use reqwest::cookie::CookieStore;
    let url: reqwest::Url = app.url("/").parse().unwrap();
    let cookies = jar.cookies(&url).expect("cookies");
    cookies
        .to_str()
        .unwrap()
        .split("; ")
        .find_map(|c| c.strip_prefix(&format!("{SESSION}=")))
        .expect("a session cookie")
        .to_string()
}

/// A client that sends exactly this session cookie value and keeps nothing.
fn with_cookie(value: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "cookie",
        format!("{SESSION}={value}").parse().expect("cookie header"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn signed_in_as(app: &TestApp, email: &str) -> (reqwest::Client, String) {
    let (client, jar) = jar_browser();
    let r = app.login_with(&client, email, PASSWORD).await;
    assert_eq!(r.status(), 303, "sign-in as {email}");
    let cookie = session_of(app, &jar);
    (client, cookie)
}

/// Control: this client does see the device, so a refusal below means something.
async fn assert_sees(app: &TestApp, client: &reqwest::Client, what: &str) {
    let r = client.get(app.url("/api/devices")).send().await.unwrap();
    assert_eq!(r.status(), 200, "{what}: the control request");
    assert!(r.text().await.unwrap().contains(DEV), "{what}: control");
}

/// No stream, no page, no JSON: 401 JSON on the API, a redirect to sign-in for pages, and
/// nothing of the device in any answer.
async fn assert_gets_nothing(app: &TestApp, client: &reqwest::Client, what: &str) {
    let r = tokio::time::timeout(
        READ,
        client
            .get(app.url("/api/realtime"))
            .header("accept", "text/event-stream")
            .header("last-event-id", "0")
            .send(),
    )
    .await
    .expect("an answer in time")
    .expect("GET /api/realtime");
    assert_json_error(r, 401, "unauthorized", &format!("{what}: stream")).await;

    for path in [
        "/api/me".to_string(),
        "/api/devices".to_string(),
        format!("/api/devices/{DEV}/telemetry"),
        "/api/realtime/stats".to_string(),
    ] {
        let r = client.get(app.url(&path)).send().await.unwrap();
        assert_json_error(r, 401, "unauthorized", &format!("{what}: {path}")).await;
    }
    for path in [
        "/".to_string(),
        "/admin".to_string(),
        "/manager".to_string(),
        "/employee".to_string(),
        format!("/devices/{DEV}"),
        format!("/devices/{DEV}/export.csv"),
    ] {
        let r = client.get(app.url(&path)).send().await.unwrap();
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = r.text().await.unwrap_or_default();
        assert_eq!(status, 303, "{what}: {path}");
        assert!(
            location.starts_with("/login"),
            "{what}: {path} → {location}"
        );
        for secret in [DEV, EUI, "Freezer A"] {
            assert!(!body.contains(secret), "{what}: {path} shows {secret}");
        }
    }
}

async fn execute(db: &Db, sql: &str, value: i64, disabled: bool, id: i64) {
    // `$1` is a number (an expiry), `$2` a flag (disabled), `$3` a row id; each query uses some.
    match db {
        Db::Sqlite(p) => sqlx::query(sql)
            .bind(value)
            .bind(disabled)
            .bind(id)
            .execute(p)
            .await
            .map(|_| ()),
        Db::Postgres(p) => sqlx::query(sql)
            .bind(value)
            .bind(disabled)
            .bind(id)
            .execute(p)
            .await
            .map(|_| ()),
    }
    .expect(sql);
}

async fn forged_expired_and_disabled_sessions_get_nothing(backend: Backend) {
    let app = spawn_or_skip!(backend);
    assert_eq!(
        app.post_mdp(&mdp_reading("attack-1", DEV, EUI, 1.0, 2.0))
            .await
            .status(),
        200
    );
    app.assign(DEV, "North").await;
    let (admin, admin_cookie) = signed_in_as(&app, ADMIN_EMAIL).await;
    assert_sees(&app, &with_cookie(&admin_cookie), "the admin's own cookie").await;

    // Forged: well-formed ids nobody was given, a real one with a character changed, garbage.
    use base64::Engine;
    let random_id = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(rand::thread_rng().gen::<[u8; 16]>());
    let mut tampered: Vec<char> = admin_cookie.chars().collect();
    tampered[5] = if tampered[5] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    for (what, value) in [
        ("a well-formed id nobody was given", random_id),
        ("a real id with one character changed", tampered),
        ("a real id with more after it", format!("{admin_cookie}A")),
        ("not an id", "not-a-session".to_string()),
        ("SQL", "' OR '1'='1".to_string()),
        ("a path", "../../../etc/passwd".to_string()),
        ("4 KiB", "A".repeat(4096)),
    ] {
        assert_gets_nothing(&app, &with_cookie(&value), &format!("forged: {what}")).await;
    }

    // Expired: the session's time is up (its row says so), though the browser still sends it.
    let emp = app
        .add_user("emp@example.com", Role::Employee, &["North"])
        .await;
    let (emp_browser, emp_cookie) = signed_in_as(&app, "emp@example.com").await;
    assert_sees(&app, &emp_browser, "employee before expiry").await;
    execute(
        app.db(),
        "UPDATE sessions SET expiry_ms = $1 WHERE user_id = $3 AND $2 = $2",
        sensorcast::domain::now_ms() - 1_000,
        false,
        emp,
    )
    .await;
    assert_gets_nothing(&app, &emp_browser, "expired session").await;
    assert_gets_nothing(&app, &with_cookie(&emp_cookie), "expired session cookie").await;

    // Signed out: the cookie captured before sign-out is worth nothing after it.
    let (other_admin, other_cookie) = signed_in_as(&app, ADMIN_EMAIL).await;
    assert_eq!(app.logout(&other_admin).await.status(), 303);
    assert_gets_nothing(&app, &with_cookie(&other_cookie), "signed-out cookie").await;
    assert_sees(&app, &admin, "another session of the same admin").await;

    // Disabled by an admin: the open stream ends, the session gets nothing, and enabling the
    // account again does not bring the old session back.
    let ann = app
        .add_user("ann@example.com", Role::Manager, &["North"])
        .await;
    let (ann_browser, ann_cookie) = signed_in_as(&app, "ann@example.com").await;
    assert_sees(&app, &ann_browser, "manager before being disabled").await;
    let r = ann_browser
        .get(app.url("/api/realtime"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut stream = Sse::new(r);
    assert_eq!(stream.next_msg().await.kind(), "connected");
    let token = app.page_csrf(&admin).await;
    let origin = format!("http://{}", app.addr);
    for action in ["disable", "enable"] {
        let r = admin
            .post(app.url(&format!("/admin/users/{ann}/{action}")))
            .header("origin", &origin)
            .form(&[("csrf", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{action}");
        if action == "disable" {
            stream.expect_end(Duration::from_secs(2)).await;
            assert_gets_nothing(&app, &ann_browser, "disabled user's browser").await;
            assert_gets_nothing(&app, &with_cookie(&ann_cookie), "disabled user's cookie").await;
            let (again, _) = jar_browser();
            let r = app.login_with(&again, "ann@example.com", PASSWORD).await;
            assert_eq!(r.status(), 401, "a disabled user cannot sign in");
        }
    }
    assert_gets_nothing(
        &app,
        &with_cookie(&ann_cookie),
        "re-enabled user's old cookie",
    )
    .await;
    let (fresh, _) = signed_in_as(&app, "ann@example.com").await;
    assert_sees(&app, &fresh, "re-enabled user, signed in again").await;

    // Disabled behind the application's back (its session row left in place): still nothing.
    execute(
        app.db(),
        "UPDATE users SET disabled = $2 WHERE id = $3 AND $1 = $1",
        0,
        true,
        ann,
    )
    .await;
    assert_gets_nothing(&app, &fresh, "disabled user with a live session row").await;
}
both_backends!(forged_expired_and_disabled_sessions_get_nothing);

// ---------------------------------------------------------------------------------------------
// 5. Signed-in requests while the database is away
// ---------------------------------------------------------------------------------------------

/// The README: 503 `unavailable` means "database unreachable" (retry later). A browser that
/// reconnects its stream, or loads a page or JSON, during an outage should be told that, not
/// that something broke (500 `internal_error`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_in_requests_during_an_outage_get_503() {
    let _heavy = HEAVY.lock().await;
    let Some((app, mut proxy)) = app_behind_proxy().await else {
        return;
    };
    let admin = app.admin().await;
    let r = admin.get(app.url("/api/devices")).send().await.unwrap();
    assert_eq!(r.status(), 200, "before the outage");
    proxy.stop().await;
    let json = ["/api/realtime", "/api/devices", "/api/me"].map(|path| {
        let (app, admin) = (&app, &admin);
        async move {
            let r = tokio::time::timeout(Duration::from_secs(20), admin.get(app.url(path)).send())
                .await
                .expect("an answer within 20 s")
                .expect("GET");
            (path, r)
        }
    });
    let page = async {
        let r = tokio::time::timeout(Duration::from_secs(20), admin.get(app.url("/admin")).send())
            .await
            .expect("an answer within 20 s")
            .expect("GET /admin");
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        (status, body)
    };
    let (answers, (page_status, page_body)) =
        tokio::join!(futures_util::future::join_all(json), page);
    proxy.restart().await;
    let mut wrong = Vec::new();
    for (path, r) in answers {
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        assert_no_internal_detail(&body, path);
        if status != 503 || !body.contains("\"unavailable\"") {
            wrong.push(format!("{path}: {status} {body}"));
        }
    }
    assert_no_internal_detail(&page_body, "/admin");
    if page_status != 503 {
        wrong.push(format!("/admin: {page_status}"));
    }
    assert!(
        wrong.is_empty(),
        "while the database is away:\n{}",
        wrong.join("\n")
    );
    // And when it is back, the same session works again.
    let back = Instant::now();
    loop {
        let r = admin.get(app.url("/api/devices")).send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(30), "{}", r.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

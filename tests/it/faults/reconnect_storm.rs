//! A reconnect storm: 1,000 streams, each cut at random at least 5 times while 2,000 readings
//! are published, and every client still ends with every event, in order, none twice.

use std::collections::{HashSet, VecDeque};
use std::io::BufRead;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::{DEV, EUI};
use crate::support::sse::{Sse, READ};
use crate::support::*;

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
    let stored = app.stored_event_ids().await;
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

both_backends!(reconnect_storm_loses_nothing, alone, worker_threads = 4);

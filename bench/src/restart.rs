//! Restart (issue 18): streams connected, sensorcast stopped with SIGTERM and started again on
//! the same database and port, webhooks sent while it is down (refused, then retried as a
//! sender does). Every stream reconnects with its `Last-Event-ID`, as an EventSource does.
//! Measured: how long after the server answers again every stream has every event; checked:
//! none missing, none twice, each stream's events in id order.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::catchup::EventStream;
use crate::http::Conn;
use crate::servers::Server;
use crate::sessions::copy_session;
use crate::sse::{event_id, marker};
use crate::stats::percentile;
use crate::target::{Markers, Target};

#[derive(clap::Args)]
pub struct RestartArgs {
    /// Directory holding the release `sensorcast` binary.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Streams held across the restart.
    #[arg(long, default_value_t = 10_000)]
    streams: usize,
    /// Events published before the restart (every stream has them before it).
    #[arg(long, default_value_t = 10)]
    before: usize,
    /// Webhooks sent while the server is down.
    #[arg(long, default_value_t = 100)]
    while_down: usize,
    /// How long a stream waits before it reconnects, in ms; each waits a random part of it
    /// more, so that they do not all come back in the same instant.
    #[arg(long, default_value_t = 1000)]
    retry_ms: u64,
    /// How long a refused webhook waits before it is sent again, in ms.
    #[arg(long, default_value_t = 250)]
    resend_ms: u64,
    /// Loopback source addresses the streams spread over (ephemeral ports per address).
    #[arg(long, default_value_t = 4)]
    sources: u8,
    /// Each stream with a session of its own (copies of the signed-in one), as after a deploy
    /// every browser comes back with its own cookie; otherwise all share one session.
    #[arg(long)]
    session_per_stream: bool,
}

/// What one stream has seen.
#[derive(Default)]
struct Seen {
    /// (event id, marker) of every event with a marker, in the order read.
    events: Vec<(u64, u64)>,
    markers: HashSet<u64>,
    /// When it had `expected` distinct markers.
    complete: Option<Instant>,
    connects: usize,
}

struct Shared {
    seen: Vec<Mutex<Seen>>,
    /// Distinct markers a stream must have to be complete.
    expected: AtomicUsize,
    complete: AtomicUsize,
    connected: AtomicUsize,
}

pub async fn run(args: RestartArgs) -> anyhow::Result<()> {
    let mut server = Server::sensorcast(&args.bin_dir.join("sensorcast"), None).await?;
    let target = server.target.clone();
    let markers = Markers::new();
    // The device exists before the streams open: its `new_device` event is not counted.
    send_until_stored(&target, markers.next(), Duration::ZERO).await?;
    let shared = Arc::new(Shared {
        seen: (0..args.streams).map(|_| Mutex::default()).collect(),
        expected: AtomicUsize::new(args.before),
        complete: AtomicUsize::new(0),
        connected: AtomicUsize::new(0),
    });
    let retry = Duration::from_millis(args.retry_ms);
    let targets = stream_targets(&server, &args)?;
    let tasks: Vec<_> = targets
        .into_iter()
        .enumerate()
        .map(|(i, target)| {
            let source = IpAddr::V4(Ipv4Addr::new(
                127,
                0,
                9,
                10 + (i % args.sources.max(1) as usize) as u8,
            ));
            tokio::spawn(follow(target, source, i, shared.clone(), retry))
        })
        .collect();
    wait_for("every stream to connect", Duration::from_secs(120), || {
        shared.connected.load(Ordering::Relaxed) >= args.streams
    })
    .await?;
    eprintln!("{} streams connected", args.streams);
    for _ in 0..args.before {
        send_until_stored(&target, markers.next(), Duration::ZERO).await?;
    }
    wait_for(
        "the first events on every stream",
        Duration::from_secs(60),
        || shared.complete.load(Ordering::Relaxed) >= args.streams,
    )
    .await?;

    // Down: SIGTERM, then webhooks that are refused until it is back.
    let stop = server.terminate().await?;
    eprintln!("stopped in {} ms", stop.as_millis());
    shared.complete.store(0, Ordering::Relaxed);
    for s in &shared.seen {
        s.lock().unwrap().complete = None;
    }
    shared
        .expected
        .store(args.before + args.while_down, Ordering::Relaxed);
    let down_at = Instant::now();
    let refused = Arc::new(AtomicUsize::new(0));
    let resend = Duration::from_millis(args.resend_ms);
    let senders: Vec<_> = (0..args.while_down)
        .map(|_| {
            let (target, marker, refused) = (target.clone(), markers.next(), refused.clone());
            tokio::spawn(async move {
                let tries = send_until_stored(&target, marker, resend).await?;
                refused.fetch_add(tries - 1, Ordering::Relaxed);
                anyhow::Ok(Instant::now())
            })
        })
        .collect();
    // Each webhook is refused at least once before the server starts again.
    tokio::time::sleep(resend + Duration::from_millis(50)).await;
    server.start_again().await?;
    let up = Instant::now();
    eprintln!(
        "answering again {} ms after SIGTERM's exit",
        down_at.elapsed().as_millis()
    );
    let mut stored_at = up;
    for s in senders {
        stored_at = stored_at.max(s.await??);
    }
    let all = wait_for(
        "every event on every stream",
        Duration::from_secs(60),
        || shared.complete.load(Ordering::Relaxed) >= args.streams,
    )
    .await;
    let until_all = up.elapsed();
    for t in tasks {
        t.abort();
    }
    report(
        &args,
        &shared,
        stop,
        up,
        stored_at,
        refused.load(Ordering::Relaxed),
    );
    server.stop().await;
    all.map(|_| ())
        .map_err(|e| e.context(format!("after {} ms", until_all.as_millis())))
}

/// The target of each stream: the server's, with the shared session or one of its own.
fn stream_targets(server: &Server, args: &RestartArgs) -> anyhow::Result<Vec<Target>> {
    let target = &server.target;
    if !args.session_per_stream {
        return Ok(vec![target.clone(); args.streams]);
    }
    let db = server
        .sqlite_path()
        .context("sessions are copied in a SQLite database")?;
    let cookie = target.cookie.as_deref().context("no session")?;
    let cookies = copy_session(&db, cookie, args.streams)?;
    eprintln!("{} sessions of the signed-in user", cookies.len());
    Ok(cookies
        .into_iter()
        .map(|cookie| Target {
            cookie: Some(cookie),
            ..target.clone()
        })
        .collect())
}

/// One stream, as an EventSource: reconnects after `retry` (plus up to as much again, at
/// random) with the id of the last event it read.
async fn follow(target: Target, source: IpAddr, i: usize, shared: Arc<Shared>, retry: Duration) {
    let mut buf = vec![0u8; 8 * 1024];
    let mut last: Option<String> = None;
    loop {
        if let Ok(mut stream) = EventStream::open(&target, Some(source), last.as_deref()).await {
            let first = {
                let mut seen = shared.seen[i].lock().unwrap();
                seen.connects += 1;
                seen.connects == 1
            };
            if first {
                shared.connected.fetch_add(1, Ordering::Relaxed);
            }
            while let Ok(frames) = stream.next(&mut buf).await {
                for f in frames {
                    let (Some(m), Some(id)) = (
                        marker(&f, target.kind.marker_key().as_bytes()),
                        event_id(&f),
                    ) else {
                        continue;
                    };
                    let mut seen = shared.seen[i].lock().unwrap();
                    seen.events.push((id.parse().unwrap_or(0), m));
                    seen.markers.insert(m);
                    let expected = shared.expected.load(Ordering::Relaxed);
                    if seen.complete.is_none() && seen.markers.len() >= expected {
                        seen.complete = Some(Instant::now());
                        shared.complete.fetch_add(1, Ordering::Relaxed);
                    }
                    drop(seen);
                    last = Some(id);
                }
            }
        }
        let jitter = retry.mul_f64(fastrand_unit(i, shared.seen[i].lock().unwrap().connects));
        tokio::time::sleep(retry + jitter).await;
    }
}

/// A number in [0, 1) from a stream and its attempt (no random crate needed for a spread).
fn fastrand_unit(i: usize, attempt: usize) -> f64 {
    let mut x = (i as u64) << 32 | attempt as u64;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Sends the webhook carrying `marker` until it is stored (signed afresh each time, the same
/// `eventId`), waiting `resend` after each refusal; returns the attempts.
async fn send_until_stored(
    target: &Target,
    marker: u64,
    resend: Duration,
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut tries = 0;
    while Instant::now() < deadline {
        tries += 1;
        let mut conn = Conn::new(target.addr);
        match conn.send(&target.publish_request(marker)).await {
            Ok(r) if target.published(r.head.status) => return Ok(tries),
            _ => tokio::time::sleep(resend.max(Duration::from_millis(10))).await,
        }
    }
    bail!("a webhook was not stored within 120 s ({tries} attempts)")
}

async fn wait_for(
    what: &str,
    limit: Duration,
    done: impl Fn() -> bool,
) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    while !done() {
        if t0.elapsed() > limit {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(t0.elapsed())
}

fn report(
    args: &RestartArgs,
    shared: &Shared,
    stop: Duration,
    up: Instant,
    stored: Instant,
    refused: usize,
) {
    let expected = args.before + args.while_down;
    let (mut missing, mut twice, mut disordered, mut reconnected) = (0, 0, 0, 0);
    let mut after_up = Vec::new();
    for s in &shared.seen {
        let s = s.lock().unwrap();
        missing += expected.saturating_sub(s.markers.len());
        twice += s.events.len() - s.markers.len();
        disordered += s.events.windows(2).filter(|w| w[1].0 <= w[0].0).count();
        reconnected += usize::from(s.connects > 1);
        if let Some(t) = s.complete {
            after_up.push(t.saturating_duration_since(up).as_secs_f64() * 1000.0);
        }
    }
    after_up.sort_by(f64::total_cmp);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let sessions = if args.session_per_stream {
        "a session each"
    } else {
        "one shared session"
    };
    println!("> {} streams ({sessions}), {} events before the restart, {} webhooks while down (resent every {} ms), streams reconnect after {}–{} ms\n",
        args.streams, args.before, args.while_down, args.resend_ms, args.retry_ms, 2 * args.retry_ms);
    println!("| measure | value | target |\n|---|---:|---|");
    println!(
        "| SIGTERM to exit, {} streams open (ms) | {:.0} | |",
        args.streams,
        ms(stop)
    );
    println!("| webhook attempts refused while down | {refused} | |");
    println!(
        "| answering again → every webhook stored (ms) | {:.0} | |",
        ms(stored.saturating_duration_since(up))
    );
    println!(
        "| streams reconnected | {reconnected} of {} | all |",
        args.streams
    );
    println!(
        "| answering again → a stream has every event, p50 (ms) | {:.0} | |",
        percentile(&after_up, 0.50).unwrap_or(f64::NAN)
    );
    println!(
        "| answering again → a stream has every event, p99 (ms) | {:.0} | |",
        percentile(&after_up, 0.99).unwrap_or(f64::NAN)
    );
    println!(
        "| answering again → every stream has every event (ms) | {:.0} | ≤ 3,000 |",
        after_up.last().copied().unwrap_or(f64::NAN)
    );
    println!("| events missing (all streams) | {missing} | 0 |");
    println!("| events read twice | {twice} | 0 |");
    println!("| events out of id order | {disordered} | 0 |");
}

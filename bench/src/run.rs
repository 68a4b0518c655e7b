//! One server's run: every measure in turn, each bounded in count and time.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::catchup;
use crate::clock::mono_us;
use crate::fleet::{Fleet, Layout};
use crate::publish::{self, Publisher, Sent};
use crate::servers::{machine_ticks, Server};
use crate::stats::{Ingest, Latency, Results};
use crate::target::{Markers, Target};

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Streams held during the latency and saturation measures.
    #[arg(long, default_value_t = 10_000)]
    pub streams: usize,
    /// Streams opened for the most-concurrent-streams measure (0 skips it).
    #[arg(long, default_value_t = 19_000)]
    pub max_streams: usize,
    /// Streams per generator process (each process may hold at most 20,000 open files).
    #[arg(long, default_value_t = 5_000)]
    pub per_process: usize,
    /// Streams whose every event is timed, spread evenly over the connection order.
    #[arg(long, default_value_t = 100)]
    pub timed: usize,
    /// Streams each generator process opens at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// The lazy readers' pause after each batch of reads, in ms.
    #[arg(long, default_value_t = 10)]
    pub lazy_ms: u64,
    /// Events sent at 4 per second for the latency measure.
    #[arg(long, default_value_t = 40)]
    pub latency_events: usize,
    /// Events sent back to back for the saturation measure.
    #[arg(long, default_value_t = 500)]
    pub saturation_events: usize,
    /// Seconds of ingest with 16 concurrent senders.
    #[arg(long, default_value_t = 10)]
    pub ingest_secs: u64,
    /// Events a reconnecting client is behind.
    #[arg(long, default_value_t = 10_000)]
    pub behind: usize,
    /// Print each latency event's webhook answer time and its deliveries' spread (stderr).
    #[arg(long)]
    pub per_event: bool,
}

/// Generator processes are this program.
pub fn generator_exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| "sensorcast-bench".into())
}

fn report<T>(what: &str, result: anyhow::Result<T>) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!("  {what} failed: {e:#}");
            None
        }
    }
}

fn step(kind: &str, what: &str) {
    eprintln!("[{kind}] {what}");
}

/// Everything but the most-streams measure, on one server.
pub async fn measure(server: &Server, cfg: &Config, r: &mut Results) {
    let target = &server.target;
    let name = target.kind.name();
    let markers = Arc::new(Markers::new());
    r.streams = cfg.streams;
    // The first event registers the device (and, on sensorcast, emits extra events).
    Publisher::new(target).publish(&markers).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    step(name, &format!("opening {} streams", cfg.streams));
    let rss_before = server.rss_kib();
    if let Some(mut fleet) = report("opening", streams(server, layout(cfg, 1), r).await) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let held = (r.streams - r.setup_failed).max(1);
        let grown = server.rss_kib().saturating_sub(rss_before);
        r.rss_per_stream_kib = Some(grown as f64 / held as f64);
        fan_out(server, &mut fleet, &markers, cfg, r).await;
        fleet.quit().await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    step(name, &format!("catch-up: {} events behind", cfg.behind));
    r.catch_up = report("catch-up", catchup::run(target, &markers, cfg.behind).await);
    // Last, as it floods the server (nchan's resumption misbehaved after such floods).
    step(
        name,
        &format!("ingest: 16 senders for {} s", cfg.ingest_secs),
    );
    r.ingest = Some(ingest(target, &markers, cfg.ingest_secs).await);
}

/// Latency at a light rate, then deliveries at saturation, each with the server's CPU time.
async fn fan_out(
    server: &Server,
    fleet: &mut Fleet,
    markers: &Markers,
    cfg: &Config,
    r: &mut Results,
) {
    light(server, fleet, markers, cfg, r).await;
    let (target, name) = (&server.target, server.target.kind.name());
    step(
        name,
        &format!("saturation: {} events back to back", cfg.saturation_events),
    );
    let cpu = server.cpu_us();
    let delivered = report(
        "saturation",
        saturation(fleet, target, markers, cfg, r).await,
    );
    r.cpu_us_per_delivery_saturated =
        delivered.map(|d| (server.cpu_us() - cpu) as f64 / d.max(1) as f64);
}

/// Latency at 4 events/s, with the server's CPU time per delivery.
async fn light(
    server: &Server,
    fleet: &mut Fleet,
    markers: &Markers,
    cfg: &Config,
    r: &mut Results,
) {
    let (target, name) = (&server.target, server.target.kind.name());
    step(
        name,
        &format!("latency: {} events at 4/s", cfg.latency_events),
    );
    let cpu = server.cpu_us();
    report("latency", latency(fleet, target, markers, cfg, r).await);
    let delivered = (cfg.latency_events * (r.streams - r.setup_failed)) as f64;
    r.cpu_us_per_delivery_light = Some((server.cpu_us() - cpu) as f64 / delivered.max(1.0));
}

/// The floor: the same streams and latency measure, nothing else.
pub async fn floor(server: &Server, cfg: &Config, r: &mut Results) {
    let markers = Markers::new();
    r.streams = cfg.streams;
    step("floor", &format!("opening {} streams", cfg.streams));
    if let Some(mut fleet) = report("opening", streams(server, layout(cfg, 3), r).await) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        light(server, &mut fleet, &markers, cfg, r).await;
        fleet.quit().await;
    }
}

/// The set-up rate when every stream has a session of its own (sensorcast, on a fresh server),
/// as every browser after a deploy: no pass helps, each session is read from the database.
pub async fn own_sessions(server: &Server, cfg: &Config, r: &mut Results) {
    let name = server.target.kind.name();
    step(
        name,
        &format!("opening {} streams, a session each", cfg.streams),
    );
    let opened = async {
        let db = server
            .sqlite_path()
            .context("sessions are copied in a SQLite database")?;
        let cookie = server.target.cookie.clone().context("no session")?;
        let (n, from) = (cfg.streams, db.clone());
        let cookies =
            tokio::task::spawn_blocking(move || crate::sessions::copy_session(&from, &cookie, n))
                .await??;
        let file = db.with_file_name("cookies.txt");
        std::fs::write(&file, cookies.join("\n"))?;
        let layout = Layout {
            cookie_file: Some(file),
            ..layout(cfg, 4)
        };
        let mut fleet = Fleet::spawn(&generator_exe(), &server.target, layout).await?;
        let cpu = server.cpu_us();
        let o = fleet.open().await?;
        let cpu = server.cpu_us() - cpu;
        fleet.quit().await;
        if o.failed > 0 {
            anyhow::bail!("{} of {} streams failed to open", o.failed, cfg.streams);
        }
        let secs = (o.t_last.saturating_sub(o.t_first)) as f64 / 1e6;
        anyhow::Ok((
            o.ok as f64 / secs.max(1e-6),
            cpu as f64 / o.ok.max(1) as f64,
        ))
    };
    if let Some((rate, cpu)) = report("opening with a session each", opened.await) {
        r.setup_own_sessions_per_s = Some(rate);
        r.cpu_us_per_setup_own_sessions = Some(cpu);
    }
}

fn layout(cfg: &Config, subnet: u8) -> Layout {
    Layout {
        streams: cfg.streams,
        per_process: cfg.per_process,
        timed: cfg.timed,
        subnet,
        concurrency: cfg.concurrency,
        lazy_ms: cfg.lazy_ms,
        devices: 0,
        devices_per_stream: 0,
        cookie_file: None,
    }
}

/// The most-streams measure, on a fresh server (so memory freed by earlier streams is not
/// reused and flattering).
pub async fn most_streams(server: &Server, cfg: &Config, r: &mut Results) {
    let name = server.target.kind.name();
    let markers = Markers::new();
    r.max_tried = cfg.max_streams;
    Publisher::new(&server.target).publish(&markers).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    step(name, &format!("holding {} streams", cfg.max_streams));
    let layout = Layout {
        streams: cfg.max_streams,
        ..layout(cfg, 2)
    };
    let result = hold_most(server, layout, &markers, r).await;
    report("most streams", result);
}

async fn streams(server: &Server, layout: Layout, r: &mut Results) -> anyhow::Result<Fleet> {
    let mut fleet = Fleet::spawn(&generator_exe(), &server.target, layout).await?;
    let (cpu, generators, machine) = (server.cpu_us(), fleet.cpu_us(), machine_ticks());
    let o = fleet.open().await?;
    let per = |us: u64| us as f64 / o.ok.max(1) as f64;
    r.cpu_us_per_setup = Some(per(server.cpu_us() - cpu));
    r.generator_us_per_setup = Some(per(fleet.cpu_us() - generators));
    let (idle, total) = machine_ticks();
    let total = total.saturating_sub(machine.1);
    r.idle_share_setup = (total > 0).then(|| idle.saturating_sub(machine.0) as f64 / total as f64);
    r.setup_failed = o.failed;
    let secs = (o.t_last.saturating_sub(o.t_first)) as f64 / 1e6;
    r.setup_per_s = Some(o.ok as f64 / secs.max(1e-6));
    Ok(fleet)
}

async fn latency(
    fleet: &mut Fleet,
    target: &Target,
    markers: &Markers,
    cfg: &Config,
    r: &mut Results,
) -> anyhow::Result<()> {
    let n = cfg.latency_events;
    let timeout = Duration::from_secs(n as u64 / 4 + 30);
    fleet.mark().await?;
    fleet.arm_wait(n as u64, timeout).await?;
    let sent = publish::paced(target, markers, n, 4.0).await;
    fleet.waited(timeout).await?;
    let sent_at: HashMap<u64, u64> = ok_sends(&sent).map(|s| (s.marker, s.at)).collect();
    let samples = fleet.samples().await?;
    let ms: Vec<f64> = samples
        .iter()
        .filter_map(|s| {
            sent_at
                .get(&s.marker)
                .map(|at| s.at.saturating_sub(*at) as f64 / 1000.0)
        })
        .collect();
    if cfg.per_event {
        print_per_event(&sent, &samples);
    }
    let expected = sent_at.len() * fleet.timed;
    r.latency_missing = expected.saturating_sub(ms.len());
    r.latency = Latency::of(ms);
    Ok(())
}

/// Per event: when the webhook was answered and when its timed streams read it, ms after it
/// was sent; shows whether a high p99 is a few slow events or a wide fan-out.
fn print_per_event(sent: &[Sent], samples: &[crate::reader::Sample]) {
    let mut by_marker: HashMap<u64, Vec<u64>> = HashMap::new();
    for s in samples {
        by_marker.entry(s.marker).or_default().push(s.at);
    }
    eprintln!("  event  answered  first  p50  last (ms after sent)");
    for s in ok_sends(sent) {
        let Some(ats) = by_marker.get_mut(&s.marker) else {
            continue;
        };
        ats.sort_unstable();
        let ms = |at: u64| at.saturating_sub(s.at) as f64 / 1000.0;
        eprintln!(
            "  {:>5}  {:>8.2}  {:>5.1}  {:>4.1}  {:>5.1}",
            s.marker,
            s.latency_us as f64 / 1000.0,
            ms(ats[0]),
            ms(ats[ats.len() / 2]),
            ms(ats[ats.len() - 1]),
        );
    }
}

fn ok_sends(sent: &[Sent]) -> impl Iterator<Item = &Sent> {
    sent.iter().filter(|s| s.ok)
}

async fn saturation(
    fleet: &mut Fleet,
    target: &Target,
    markers: &Markers,
    cfg: &Config,
    r: &mut Results,
) -> anyhow::Result<u64> {
    let n = cfg.saturation_events;
    let timeout = Duration::from_secs(180);
    fleet.mark().await?;
    fleet.arm_wait(n as u64, timeout).await?;
    let sent = publish::back_to_back(target, markers, n, timeout).await;
    let published_at = mono_us();
    let w = fleet.waited(timeout).await?;
    let Some(first) = sent.first() else {
        anyhow::bail!("nothing was published");
    };
    let ok = ok_sends(&sent).count();
    r.published_per_s = Some(ok as f64 / ((published_at - first.at) as f64 / 1e6));
    r.saturation_short = w.short;
    let end = if w.short == 0 { w.t_last } else { mono_us() };
    r.deliveries_per_s = Some(w.delivered as f64 / ((end - first.at) as f64 / 1e6));
    if ok < n {
        eprintln!("  saturation: {} of {n} publishes failed", n - ok);
    }
    Ok(w.delivered)
}

async fn hold_most(
    server: &Server,
    layout: Layout,
    markers: &Markers,
    r: &mut Results,
) -> anyhow::Result<()> {
    let target = &server.target;
    let rss_before = server.rss_kib();
    let mut fleet = Fleet::spawn(&generator_exe(), target, layout).await?;
    let o = fleet.open().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grown = server.rss_kib().saturating_sub(rss_before);
    r.max_rss_per_stream_kib = Some(grown as f64 / o.ok.max(1) as f64);
    let timeout = Duration::from_secs(30);
    fleet.mark().await?;
    fleet.arm_wait(1, timeout).await?;
    let sent = Publisher::new(target).publish(markers).await;
    let w = fleet.waited(timeout).await?;
    fleet.quit().await;
    r.max_held = Some(w.reached);
    r.max_failed = o.failed + w.lost + w.short;
    if sent.ok && w.short == 0 {
        r.broadcast_ms = Some(w.t_last.saturating_sub(sent.at) as f64 / 1000.0);
    }
    Ok(())
}

pub async fn ingest(target: &Target, markers: &Arc<Markers>, secs: u64) -> Ingest {
    let started = mono_us();
    let sent =
        publish::concurrent(target, markers, 16, usize::MAX, Duration::from_secs(secs)).await;
    Ingest::of(&sent, (mono_us() - started) as f64 / 1e6)
}

//! `sensorcast-bench soak` (issue 7): sensorcast holding many streams while a fleet of TS302s
//! posts signed webhooks at a steady rate for a long time. Every few seconds it samples the
//! server's memory and CPU, the webhook answers, the streams still open, and checks the timed
//! streams' events; at the end it checks every other stream's event count and reports.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::time::Instant;

use crate::check::Checker;
use crate::clock::unix_ms;
use crate::fleet::{Fleet, Layout};
use crate::http::Conn;
use crate::pace::{self, Plan};
use crate::publish::{Publisher, Sent};
use crate::servers::Server;
use crate::soak_report::{Point, Report};
use crate::stats::Latency;
use crate::target::{fleet_event, followed, Target};

#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// Streams held for the whole run.
    #[arg(long, default_value_t = 10_000)]
    pub streams: usize,
    /// Streams that follow every device, each of their events checked and timed (spread evenly
    /// over the connection order).
    #[arg(long, default_value_t = 100)]
    pub timed: usize,
    /// TS302 devices of the simulated fleet; they post in turn.
    #[arg(long, default_value_t = 100)]
    pub devices: usize,
    /// Devices each other stream follows (`/api/realtime?devices=…`).
    #[arg(long, default_value_t = 2)]
    pub devices_per_stream: usize,
    /// Webhooks per second.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Webhooks in flight at most.
    #[arg(long, default_value_t = 32)]
    pub senders: usize,
    /// How long webhooks are sent, in minutes (warm-up included).
    #[arg(long, default_value_t = 30.0)]
    pub minutes: f64,
    /// The first minutes are warm-up: RSS growth is measured from their end.
    #[arg(long, default_value_t = 5.0)]
    pub warmup_minutes: f64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 10)]
    pub every_secs: u64,
    /// RSS growth after warm-up, in %, at which the run fails.
    #[arg(long, default_value_t = 5.0)]
    pub max_growth: f64,
    /// Streams per generator process.
    #[arg(long, default_value_t = 5_000)]
    pub per_process: usize,
    /// Streams each generator process opens at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// The other streams' readers pause this long after each batch of reads, in ms.
    #[arg(long, default_value_t = 10)]
    pub lazy_ms: u64,
    /// Directory holding the release `sensorcast` binary.
    #[arg(long, default_value = "target/release")]
    pub bin_dir: std::path::PathBuf,
    /// Also write the report (Markdown) to this file.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

pub async fn main(args: SoakArgs) -> anyhow::Result<()> {
    let max_files = crate::raise_open_files();
    if args.per_process + 100 > max_files as usize {
        bail!(
            "--per-process {} needs more than the {max_files} open files allowed",
            args.per_process
        );
    }
    let valid = args.timed >= 1
        && args.timed <= args.streams
        && args.devices >= 1
        && args.rate > 0.0
        && args.senders >= 1
        && args.every_secs >= 1
        && args.warmup_minutes >= 0.0
        && args.minutes * 60.0 >= args.warmup_minutes * 60.0 + args.every_secs as f64;
    if !valid {
        bail!("needs 1 ≤ --timed ≤ --streams, --devices, --rate, --senders, --every-secs ≥ 1 and --minutes past the warm-up by at least one sample");
    }
    let bin = args.bin_dir.join("sensorcast");
    let began = Instant::now();
    let server = Server::sensorcast(&bin, None).await?;
    let result = run(&server, &args).await;
    let log = std::fs::read_to_string(server.log_path()).unwrap_or_default();
    server.stop().await;
    let mut report = result?;
    report.log_lines = log.lines().count();
    report.took_secs = began.elapsed().as_secs_f64();
    for line in log.lines().take(10) {
        eprintln!("  server log: {line}");
    }
    let text = report.render();
    println!("{text}");
    if let Some(path) = &args.out {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    let failures = report.failures();
    if !failures.is_empty() {
        bail!("soak failed: {}", failures.join("; "));
    }
    Ok(())
}

/// What the driver learns from the webhook answers.
struct Answers {
    base: u64,
    /// Event k answered 2xx.
    ok: Vec<bool>,
    per_device: Vec<u64>,
    errors: u64,
    ms: Vec<f64>,
}

impl Answers {
    /// Takes every answer that has arrived; returns (2xx, errors) among them.
    fn take(&mut self, rx: &mut tokio::sync::mpsc::UnboundedReceiver<Sent>) -> (u64, u64) {
        let (mut ok, mut errors) = (0, 0);
        while let Ok(s) = rx.try_recv() {
            let k = (s.marker - self.base) as usize;
            self.ms.push(s.latency_us as f64 / 1000.0);
            if s.ok {
                self.ok[k] = true;
                let devices = self.per_device.len();
                self.per_device[k % devices] += 1;
                ok += 1;
            } else {
                errors += 1;
            }
        }
        self.errors += errors;
        (ok, errors)
    }

    fn ok_count(&self) -> u64 {
        self.ok.iter().filter(|o| **o).count() as u64
    }
}

async fn run(server: &Server, args: &SoakArgs) -> anyhow::Result<Report> {
    let target = &server.target;
    let devices = args.devices;
    let base = unix_ms();
    let count = (args.rate * args.minutes * 60.0).round() as usize;
    let len = devices + count;
    eprintln!("[soak] registering {devices} devices");
    let mut publisher = Publisher::new(target);
    for n in 0..devices {
        let marker = base + n as u64;
        let request = target.webhook_request(&fleet_event(n, marker));
        if !publisher.send(marker, &request).await.ok {
            bail!("registering device {n} failed");
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    eprintln!(
        "[soak] opening {} streams: {} follow every device, the others {} of {devices} each",
        args.streams, args.timed, args.devices_per_stream
    );
    let layout = Layout {
        streams: args.streams,
        per_process: args.per_process,
        timed: args.timed,
        subnet: 3,
        concurrency: args.concurrency,
        lazy_ms: args.lazy_ms,
        devices,
        devices_per_stream: args.devices_per_stream,
        cookie_file: None,
    };
    let mut fleet = Fleet::spawn(&crate::run::generator_exe(), target, layout).await?;
    let opened = fleet.open().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    fleet.mark().await?;
    let sample_every = (args.streams / args.timed).max(1);
    let timed = (0..args.streams).step_by(sample_every);
    let mut report = Report::new(args, opened, server.rss_kib());
    report.timed_streams = timed.len();

    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..len).map(|_| AtomicU64::new(0)).collect());
    let mut checker = Checker::new(timed, base, devices, len);
    let mut answers = Answers {
        base,
        ok: vec![false; len],
        per_device: vec![0; devices],
        errors: 0,
        ms: Vec::new(),
    };
    let plan = Plan {
        first: devices,
        count,
        base,
        per_sec: args.rate,
        devices,
        senders: args.senders,
    };
    eprintln!(
        "[soak] {count} webhooks at {}/s for {} min (warm-up {} min), a sample every {} s",
        args.rate, args.minutes, args.warmup_minutes, args.every_secs
    );
    let (mut rx, pacer) = pace::start(target, plan, sent_at.clone());
    let started = Instant::now();
    report.origin = Some(Point {
        secs: 0.0,
        rss_kib: server.rss_kib(),
        cpu_us: server.cpu_us(),
        ..Point::default()
    });
    let end = started + Duration::from_secs_f64(args.minutes * 60.0);
    let every = Duration::from_secs(args.every_secs);
    let mut metrics = Conn::new(target.addr);
    let mut next = started + every;
    loop {
        tokio::time::sleep_until(next.min(end)).await;
        let (ok, errors) = answers.take(&mut rx);
        let ms = checker.feed(&fleet.samples().await?, &sent_at);
        let m = scrape(&mut metrics, target).await;
        let (anon_kib, file_kib) = server.rss_split_kib();
        let point = Point {
            secs: started.elapsed().as_secs_f64(),
            rss_kib: server.rss_kib(),
            anon_kib,
            file_kib,
            cpu_us: server.cpu_us(),
            ok,
            errors,
            timed_read: ms.len() as u64,
            timed_p99_ms: Latency::of(ms).map(|l| l.p99),
            faults: checker.faults.total(),
            closed: fleet.lost().await?,
            lagged: m.lagged,
            lagging: m.lagging,
            replayed: m.replayed,
        };
        eprintln!("{}", report.line(&point));
        report.points.push(point);
        if Instant::now() >= end {
            break;
        }
        next += every;
    }

    eprintln!("[soak] draining: every answer, then every event on the timed streams");
    let lateness = tokio::time::timeout(Duration::from_secs(60), pacer)
        .await
        .context("webhooks still unanswered 60 s after the end")??;
    answers.take(&mut rx);
    let expected = answers.ok_count();
    let drain_until = Instant::now() + Duration::from_secs(60);
    while !checker.all_read(expected) && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_secs(1)).await;
        checker.feed(&fleet.samples().await?, &sent_at);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    checker.feed(&fleet.samples().await?, &sent_at);
    let (fewer, more) = other_streams(&mut fleet, args, sample_every, &answers).await?;
    report.closed = fleet.lost().await?;
    fleet.quit().await;
    report.finish();

    report.planned = count;
    report.webhooks_ok = expected;
    report.webhook_errors = answers.errors;
    report.answers = Latency::of(std::mem::take(&mut answers.ms));
    report.lateness = lateness;
    report.faults = checker.faults;
    (report.missing, report.unconfirmed) = checker.missing(&answers.ok);
    report.latency = checker.latency.latency();
    (report.streams_fewer, report.streams_more) = (fewer, more);
    Ok(report)
}

/// Streams other than the timed ones that read fewer, or more, events than their devices were
/// answered 2xx for.
async fn other_streams(
    fleet: &mut Fleet,
    args: &SoakArgs,
    sample_every: usize,
    answers: &Answers,
) -> anyhow::Result<(usize, usize)> {
    let (mut fewer, mut more) = (0, 0);
    for (index, frames, _) in fleet.counts().await? {
        if index % sample_every == 0 {
            continue;
        }
        let expected: u64 = followed(index, args.devices_per_stream, args.devices)
            .into_iter()
            .map(|d| answers.per_device[d])
            .sum();
        if frames != expected && fewer + more < 5 {
            eprintln!("  stream {index}: read {frames} events, expected {expected}");
        }
        fewer += usize::from(frames < expected);
        more += usize::from(frames > expected);
    }
    Ok((fewer, more))
}

#[derive(Debug, Default, Clone, Copy)]
struct Scraped {
    lagged: f64,
    lagging: f64,
    replayed: f64,
}

/// The server's own counters of streams that fell behind (zeros when /metrics does not answer).
async fn scrape(conn: &mut Conn, target: &Target) -> Scraped {
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {}\r\n\r\n", target.addr);
    let Ok(r) = conn.send(req.as_bytes()).await else {
        return Scraped::default();
    };
    let text = String::from_utf8_lossy(&r.body);
    Scraped {
        lagged: metric(&text, "sensorcast_lagged_total"),
        lagging: metric(&text, "sensorcast_lagging_streams"),
        replayed: metric(&text, "sensorcast_replayed_events_total"),
    }
}

/// Sum of a metric's samples in Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn metric_sums_labelled_samples() {
        let text = "# TYPE sensorcast_lagged counter\nsensorcast_lagged_total 3\n\
                    sensorcast_streams{role=\"admin\"} 2\nsensorcast_streams{role=\"x\"} 5\n\
                    sensorcast_streams_other 9\n# EOF\n";
        assert_eq!(super::metric(text, "sensorcast_lagged_total"), 3.0);
        assert_eq!(super::metric(text, "sensorcast_streams"), 7.0);
    }
}

//! `sensorcast-bench alarms`: a burst of 10,000 alarms (issue 15). A fleet with a rule on every
//! device posts one out-of-range reading per device with 16 senders, twice per round: once with
//! nobody to notify (the admin's alarm emails off), once with an email per alarm to a mail
//! server (the bench's own sink) and the flood guard off. Prints ingest for both, the p99
//! ratio, and how long the dispatcher took until the sink had every email.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::clock::mono_us;
use crate::http::Conn;
use crate::publish::Publisher;
use crate::rules::put_rules;
use crate::servers::{page_csrf, Server};
use crate::smtp_sink::SmtpSink;
use crate::stats::{percentile, Ingest};
use crate::target::{fleet_reading, Markers, Target};

#[derive(clap::Args)]
pub struct AlarmsArgs {
    /// Directory holding the release `sensorcast` binary.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Devices in the fleet: alarms per burst.
    #[arg(long, default_value_t = 10_000)]
    devices: usize,
    /// Rounds (without, with notifications); the median of each is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Longest wait for a burst's emails, in seconds.
    #[arg(long, default_value_t = 900)]
    deliver_secs: u64,
}

/// Probe 1 above 30 °C is an alarm at once.
const RULE: &str = r#"{"rules":[{"quantity":"temperature","probe":1,"max":30.0}]}"#;
const HOT: f64 = 35.0;
const COLD: f64 = -18.4;

/// One reading from every device, 16 senders at once.
async fn pass(target: &Target, markers: &Arc<Markers>, devices: usize, left: f64) -> Ingest {
    let next = Arc::new(AtomicUsize::new(0));
    let started = mono_us();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (target, markers, next) = (target.clone(), markers.clone(), next.clone());
            tokio::spawn(async move {
                let mut p = Publisher::new(&target);
                let mut out = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= devices {
                        return out;
                    }
                    let marker = markers.next();
                    let request = target.webhook_request(&fleet_reading(n, marker, left));
                    out.push(p.send(marker, &request).await);
                }
            })
        })
        .collect();
    let mut sent = Vec::new();
    for t in tasks {
        sent.extend(t.await.unwrap_or_default());
    }
    Ingest::of(&sent, (mono_us() - started) as f64 / 1e6)
}

/// Turns the admin's alarm emails on or off through `/settings`, as they would.
async fn email_alerts(target: &Target, on: bool) -> anyhow::Result<()> {
    let cookie = target.cookie.clone().context("no session")?;
    let addr = target.addr;
    let mut conn = Conn::new(addr);
    let csrf = page_csrf(&mut conn, target, "/settings").await?;
    let body = if on {
        format!("csrf={csrf}&email_alerts=on")
    } else {
        format!("csrf={csrf}")
    };
    let post = format!(
        "POST /settings HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nCookie: {cookie}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = conn.send(post.as_bytes()).await?;
    if r.head.status != 303 {
        bail!("POST /settings answered {}", r.head.status);
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5).unwrap_or(f64::NAN)
}

fn line(what: &str, rounds: &[Ingest]) {
    let m = |f: fn(&Ingest) -> f64| median(rounds.iter().map(f).collect());
    println!(
        "| {what} | {:.0} | {:.2} | {:.2} | {} |",
        m(|i| i.per_s),
        m(|i| i.latency.p50),
        m(|i| i.latency.p99),
        rounds.iter().map(|i| i.failed).sum::<usize>()
    );
}

pub async fn run(args: AlarmsArgs) -> anyhow::Result<()> {
    let sink = SmtpSink::start().await?;
    let smtp = format!("smtp://127.0.0.1:{}", sink.port);
    let flags = [
        "--smtp-url",
        smtp.as_str(),
        "--notify-max-per-hour",
        "0",
        // Escalations would add a second email per alarm part-way through.
        "--escalate-after-mins",
        "10080",
    ];
    let bin = args.bin_dir.join("sensorcast");
    let server = Server::sensorcast_with(&bin, None, &flags).await?;
    let target = server.target.clone();
    let markers = Arc::new(Markers::new());
    eprintln!("registering {} devices and a rule on each", args.devices);
    let first = pass(&target, &markers, args.devices, COLD).await;
    if first.failed > 0 {
        bail!("{} registrations failed", first.failed);
    }
    put_rules(&target, args.devices, RULE).await?;
    let (mut without, mut with, mut delivery) = (Vec::new(), Vec::new(), Vec::new());
    for r in 1..=args.rounds {
        eprintln!("round {r}: {} alarms, nobody to notify", args.devices);
        email_alerts(&target, false).await?;
        without.push(pass(&target, &markers, args.devices, HOT).await);
        pass(&target, &markers, args.devices, COLD).await;

        eprintln!("round {r}: {} alarms, an email each", args.devices);
        email_alerts(&target, true).await?;
        let expected = sink.received() + args.devices;
        let started = Instant::now();
        with.push(pass(&target, &markers, args.devices, HOT).await);
        let deadline = started + Duration::from_secs(args.deliver_secs);
        while sink.received() < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let took = started.elapsed().as_secs_f64();
        if sink.received() < expected {
            bail!(
                "only {} of {} emails arrived within {} s",
                sink.received() + args.devices - expected,
                args.devices,
                args.deliver_secs
            );
        }
        eprintln!("round {r}: every email delivered after {took:.1} s");
        delivery.push(took);
        pass(&target, &markers, args.devices, COLD).await;
    }
    // Anything beyond one email per alarm would be a duplicate.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let total = sink.received();
    println!(
        "> {} alarms per burst, 16 senders, median of {} rounds, SQLite (synchronous=FULL)\n",
        args.devices, args.rounds
    );
    println!("| burst | webhooks/s | p50 ms | p99 ms | failed |\n|---|---|---|---|---|");
    line("no one to notify", &without);
    line("an email per alarm", &with);
    let p99 = |v: &[Ingest]| median(v.iter().map(|i| i.latency.p99).collect());
    println!(
        "\ningest p99 with notifications / without: {:.2}×",
        p99(&with) / p99(&without)
    );
    let secs = median(delivery);
    println!(
        "every email delivered {secs:.1} s after the burst began ({:.0} emails/s); {total} received for {} alarms",
        args.devices as f64 / secs,
        args.devices * args.rounds
    );
    server.stop().await;
    Ok(())
}

//! `sensorcast-bench rules`: what alarm rules cost at ingest (issue 14). A fleet of devices
//! posts signed webhooks with 16 senders, first with no rules, then with two rules on every
//! device (both probes' temperature, a band every reading stays inside, as in a healthy cold
//! store); the same server and database, so only the rules differ. Prints both and the ratio.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::clock::mono_us;
use crate::http::Conn;
use crate::publish::Publisher;
use crate::servers::{page_csrf, Server};
use crate::stats::Ingest;
use crate::target::{fleet_event, Markers, Target};

#[derive(clap::Args)]
pub struct RulesArgs {
    /// Directory holding the release `sensorcast` binary.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Devices in the fleet.
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Seconds of ingest per measure.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Rounds (without, with) to run; the best of each is reported.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Measure on a fresh database of this PostgreSQL server (created with psql, dropped
    /// afterwards) instead of SQLite.
    #[arg(long)]
    pg_url: Option<String>,
}

/// 16 senders for `secs`, each webhook from the next device of the fleet.
async fn ingest(target: &Target, devices: usize, secs: u64) -> Ingest {
    let markers = Arc::new(Markers::new());
    let next = Arc::new(AtomicUsize::new(0));
    let started = mono_us();
    let deadline = started + secs * 1_000_000;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (target, markers, next) = (target.clone(), markers.clone(), next.clone());
            tokio::spawn(async move {
                let mut p = Publisher::new(&target);
                let mut out = Vec::new();
                while mono_us() < deadline {
                    let n = next.fetch_add(1, Ordering::Relaxed) % devices;
                    let marker = markers.next();
                    let request = target.webhook_request(&fleet_event(n, marker));
                    out.push(p.send(marker, &request).await);
                }
                out
            })
        })
        .collect();
    let mut sent = Vec::new();
    for t in tasks {
        sent.extend(t.await.unwrap_or_default());
    }
    Ingest::of(&sent, (mono_us() - started) as f64 / 1e6)
}

/// Two rules for every fleet device: both probes inside a band every reading stays in.
const TWO_RULES: &str = r#"{"rules":[{"quantity":"temperature","probe":1,"min":-40.0,"max":30.0,"delaySecs":300},{"quantity":"temperature","probe":2,"min":-40.0,"max":30.0,"delaySecs":300}]}"#;

/// Puts `body`'s rules on each fleet device through the JSON API, as an admin would.
pub async fn put_rules(target: &Target, devices: usize, body: &str) -> anyhow::Result<()> {
    let cookie = target.cookie.clone().context("no session")?;
    let addr = target.addr;
    let mut conn = Conn::new(addr);
    let csrf = page_csrf(&mut conn, target, "/admin").await?;
    for n in 0..devices {
        let device = 1_904_371_063_669_400_000u64 + n as u64;
        let req = format!(
            "PUT /api/devices/{device}/rules HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\n\
             Cookie: {cookie}\r\nX-CSRF-Token: {csrf}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let r = conn.send(req.as_bytes()).await?;
        if r.head.status != 200 {
            bail!("PUT rules of device {device} answered {}", r.head.status);
        }
    }
    Ok(())
}

fn line(what: &str, i: &Ingest) {
    println!(
        "| {what} | {:.0} | {:.2} | {:.2} | {} |",
        i.per_s, i.latency.p50, i.latency.p99, i.failed
    );
}

pub async fn run(args: RulesArgs) -> anyhow::Result<()> {
    let Some(server_url) = args.pg_url.clone() else {
        return measure(&args, None, "SQLite (synchronous=FULL)").await;
    };
    let name = format!("sensorcast_rules_{}", std::process::id());
    crate::psql(&server_url, &format!("CREATE DATABASE {name}"))?;
    let url = format!("{}/{name}", server_url.trim_end_matches('/'));
    let result = measure(&args, Some(&url), "PostgreSQL").await;
    crate::psql(
        &server_url,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )?;
    result
}

async fn measure(args: &RulesArgs, database_url: Option<&str>, db: &str) -> anyhow::Result<()> {
    let server = Server::sensorcast(&args.bin_dir.join("sensorcast"), database_url).await?;
    let target = server.target.clone();
    eprintln!("registering {} devices", args.devices);
    let markers = Markers::new();
    let mut p = Publisher::new(&target);
    for n in 0..args.devices {
        let m = markers.next();
        if !p
            .send(m, &target.webhook_request(&fleet_event(n, m)))
            .await
            .ok
        {
            bail!("registering device {n} failed");
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let best = |v: &[Ingest]| -> Ingest {
        let i = v
            .iter()
            .max_by(|a, b| a.per_s.total_cmp(&b.per_s))
            .expect("a round");
        Ingest {
            per_s: i.per_s,
            latency: i.latency,
            failed: i.failed,
        }
    };
    let mut without = Vec::new();
    for r in 0..args.rounds {
        eprintln!("ingest without rules, round {}", r + 1);
        without.push(ingest(&target, args.devices, args.secs).await);
    }
    eprintln!("putting two rules on each device");
    put_rules(&target, args.devices, TWO_RULES).await?;
    let mut with = Vec::new();
    for r in 0..args.rounds {
        eprintln!("ingest with rules, round {}", r + 1);
        with.push(ingest(&target, args.devices, args.secs).await);
    }
    let (a, b) = (best(&without), best(&with));
    println!(
        "> {} devices, 16 senders, {} s per round, best of {} rounds, {db}\n",
        args.devices, args.secs, args.rounds
    );
    println!("| ingest | webhooks/s | p50 ms | p99 ms | failed |\n|---|---|---|---|---|");
    line("no rules", &a);
    line("two rules per device", &b);
    println!("\nwith rules / without: {:.2}×", b.per_s / a.per_s);
    server.stop().await;
    Ok(())
}

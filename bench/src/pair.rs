//! Two instances on PostgreSQL behind nginx (issue 18), against one: nginx runs the site of
//! `deploy/nginx.conf` (ports swapped, no TLS) in front of one instance, then of two sharing a
//! fresh database. Streams open through nginx; webhooks go to the instances in turn, straight
//! (as gateways pointed at either would). Checked: every stream has every event once, in id
//! order; measured: the latency of every delivery at 4 events/s, and how nginx spread streams.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::catchup::EventStream;
use crate::http::Conn;
use crate::servers::{free_port, Server};
use crate::sse::{event_id, marker};
use crate::stats::percentile;
use crate::target::{Markers, Target};

#[derive(clap::Args)]
pub struct PairArgs {
    /// Directory holding the release `sensorcast` binary.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// PostgreSQL server (a fresh database is created for each layout and dropped after).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    pg_url: String,
    /// Streams opened through nginx.
    #[arg(long, default_value_t = 10_000)]
    streams: usize,
    /// Events sent at 4/s.
    #[arg(long, default_value_t = 40)]
    events: usize,
}

/// What one stream read: (event id, marker, when).
type Read = Vec<(u64, u64, Instant)>;

struct Layout {
    instances: usize,
    latencies_ms: Vec<f64>,
    spread: Vec<u64>,
    missing: usize,
    twice: usize,
    disordered: usize,
}

pub async fn run(args: PairArgs) -> anyhow::Result<()> {
    let mut layouts = Vec::new();
    for instances in [1, 2] {
        layouts.push(layout(&args, instances).await?);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    println!(
        "> {} streams through nginx (deploy/nginx.conf), {} events at 4/s, webhooks to the instances in turn; PostgreSQL\n",
        args.streams, args.events
    );
    println!("| behind nginx | streams per instance | p50 ms | p99 ms | max ms | missing | twice | out of order |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for l in &layouts {
        let q = |p| percentile(&l.latencies_ms, p).unwrap_or(f64::NAN);
        let spread: Vec<String> = l.spread.iter().map(u64::to_string).collect();
        println!(
            "| {} instance{} | {} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
            l.instances,
            if l.instances == 1 { "" } else { "s" },
            spread.join(" + "),
            q(0.50),
            q(0.99),
            l.latencies_ms.last().copied().unwrap_or(f64::NAN),
            l.missing,
            l.twice,
            l.disordered
        );
    }
    let p99 = |l: &Layout| percentile(&l.latencies_ms, 0.99).unwrap_or(f64::NAN);
    println!(
        "\np99 with two instances / one: {:.2}× (target ≤ 1.5×)",
        p99(&layouts[1]) / p99(&layouts[0])
    );
    Ok(())
}

async fn layout(args: &PairArgs, instances: usize) -> anyhow::Result<Layout> {
    let db = format!("sensorcast_bench_pair_{}", std::process::id());
    crate::psql(&args.pg_url, &format!("DROP DATABASE IF EXISTS {db}"))?;
    crate::psql(&args.pg_url, &format!("CREATE DATABASE {db}"))?;
    let url = format!("{}/{db}", args.pg_url.trim_end_matches('/'));
    let result = measure(args, instances, &url).await;
    crate::psql(
        &args.pg_url,
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    )?;
    result
}

async fn measure(args: &PairArgs, instances: usize, url: &str) -> anyhow::Result<Layout> {
    let bin = args.bin_dir.join("sensorcast");
    let mut servers = Vec::new();
    for _ in 0..instances {
        servers.push(Server::sensorcast(&bin, Some(url)).await?);
    }
    let upstreams: Vec<SocketAddr> = servers.iter().map(|s| s.target.addr).collect();
    let nginx = Nginx::start(&upstreams).await?;
    // Sessions live in the shared database: the first instance's works through nginx.
    let through = Target {
        addr: nginx.addr,
        ..servers[0].target.clone()
    };
    let markers = Markers::new();
    // The device exists before the streams open.
    publish(&servers[0].target, markers.next()).await?;
    let reads: Arc<Vec<Mutex<Read>>> =
        Arc::new((0..args.streams).map(|_| Mutex::default()).collect());
    let connected = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..args.streams)
        .map(|i| {
            let (target, reads, connected) = (through.clone(), reads.clone(), connected.clone());
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 10, 10 + (i % 4) as u8));
            tokio::spawn(async move {
                let mut stream = EventStream::open(&target, Some(source), None).await?;
                connected.fetch_add(1, Ordering::Relaxed);
                let key = target.kind.marker_key().as_bytes();
                let mut buf = vec![0u8; 8 * 1024];
                loop {
                    let frames = stream.next(&mut buf).await?;
                    let at = Instant::now();
                    let mut read = reads[i].lock().unwrap();
                    for f in frames {
                        if let (Some(m), Some(id)) = (marker(&f, key), event_id(&f)) {
                            read.push((id.parse().unwrap_or(0), m, at));
                        }
                    }
                }
                #[allow(unreachable_code)]
                anyhow::Ok(())
            })
        })
        .collect();
    let t0 = Instant::now();
    while connected.load(Ordering::Relaxed) < args.streams {
        if t0.elapsed() > Duration::from_secs(120) {
            bail!(
                "only {} of {} streams opened through nginx",
                connected.load(Ordering::Relaxed),
                args.streams
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut spread = Vec::new();
    for s in &servers {
        spread.push(clients(&s.target).await?);
    }
    eprintln!(
        "{instances} instance(s): {} streams open, {spread:?} per instance",
        args.streams
    );
    // 4 events a second, to the instances in turn.
    let mut sent = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    for n in 0..args.events {
        tick.tick().await;
        let m = markers.next();
        sent.insert(m, Instant::now());
        publish(&servers[n % instances].target, m).await?;
    }
    // Every stream has every event, or 10 s have passed.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10)
        && reads.iter().any(|r| r.lock().unwrap().len() < args.events)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for t in tasks {
        t.abort();
    }
    let (mut latencies_ms, mut missing, mut twice, mut disordered) = (Vec::new(), 0, 0, 0);
    for r in reads.iter() {
        let r = r.lock().unwrap();
        let mut seen = std::collections::HashSet::new();
        for (_, m, at) in r.iter() {
            if !seen.insert(*m) {
                twice += 1;
            } else if let Some(s) = sent.get(m) {
                latencies_ms.push(at.saturating_duration_since(*s).as_secs_f64() * 1000.0);
            }
        }
        missing += sent.keys().filter(|m| !seen.contains(m)).count();
        disordered += r.windows(2).filter(|w| w[1].0 <= w[0].0).count();
    }
    latencies_ms.sort_by(f64::total_cmp);
    drop(nginx);
    for s in servers {
        s.stop().await;
    }
    Ok(Layout {
        instances,
        latencies_ms,
        spread,
        missing,
        twice,
        disordered,
    })
}

async fn publish(target: &Target, marker: u64) -> anyhow::Result<()> {
    let answer = Conn::new(target.addr)
        .send(&target.publish_request(marker))
        .await?;
    if !target.published(answer.head.status) {
        bail!("a webhook answered {}", answer.head.status);
    }
    Ok(())
}

/// The streams an instance holds (`/api/realtime/stats`).
async fn clients(target: &Target) -> anyhow::Result<u64> {
    let cookie = target.cookie.as_deref().context("no session")?;
    let get = format!(
        "GET /api/realtime/stats HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\n\r\n",
        target.addr
    );
    let r = Conn::new(target.addr).send(get.as_bytes()).await?;
    let body = String::from_utf8_lossy(&r.body);
    let n = body
        .split("\"clients\":")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("stats answered {}: {body}", r.head.status))?;
    Ok(n)
}

/// nginx with the site of deploy/nginx.conf; stopped (workers too) when dropped.
struct Nginx {
    addr: SocketAddr,
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Nginx {
    async fn start(upstreams: &[SocketAddr]) -> anyhow::Result<Nginx> {
        let dir = tempfile::tempdir()?;
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let redirect = free_port()?;
        let p = dir.path().display();
        std::fs::write(
            dir.path().join("site.conf"),
            site(upstreams, addr, redirect)?,
        )?;
        let main = format!(
            "worker_processes 2;\ndaemon off;\npid {p}/nginx.pid;\nerror_log {p}/error.log warn;\n\
             worker_rlimit_nofile 65536;\nevents {{ worker_connections 30000; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n\
             fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n\
             include {p}/site.conf;\n}}\n"
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, main)?;
        let child = std::process::Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .spawn()
            .context("starting nginx")?;
        let nginx = Nginx { addr, child, dir };
        let t0 = Instant::now();
        let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        while t0.elapsed() < Duration::from_secs(30) {
            if matches!(Conn::new(addr).send(req.as_bytes()).await, Ok(r) if r.head.status == 200) {
                return Ok(nginx);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("nginx did not answer /healthz within 30 s")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let conf = self.dir.path().join("nginx.conf");
        let stopped = std::process::Command::new("nginx")
            .arg("-p")
            .arg(self.dir.path())
            .arg("-c")
            .arg(&conf)
            .args(["-s", "stop"])
            .status()
            .is_ok_and(|s| s.success());
        // The master stops its workers before it exits: killing it first would orphan them.
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The deployed site with its marked lines (upstreams, listen, TLS) swapped for this run's.
fn site(upstreams: &[SocketAddr], addr: SocketAddr, redirect: u16) -> anyhow::Result<String> {
    let deployed = include_str!("../../deploy/nginx.conf");
    let mut lines = Vec::new();
    let mut marks = [false; 3];
    for line in deployed.lines() {
        let swap = [
            "# sensorcast-upstream",
            "# sensorcast-listen-http",
            "# sensorcast-listen",
        ]
        .iter()
        .position(|m| line.contains(m));
        match swap {
            Some(0) if !marks[0] => {
                marks[0] = true;
                lines.extend(
                    upstreams
                        .iter()
                        .map(|u| format!("    server {u} max_fails=1 fail_timeout=5s;")),
                );
            }
            Some(1) if !marks[1] => {
                marks[1] = true;
                lines.push(format!("    listen 127.0.0.1:{redirect};"));
            }
            Some(2) if !marks[2] => {
                marks[2] = true;
                lines.push(format!("    listen {addr};"));
            }
            Some(_) => {}
            None if line.contains("# sensorcast-tls") => {}
            // The bench's nginx logs nothing.
            None if line.trim_start().starts_with("access_log") => {
                lines.push("        access_log off;".into())
            }
            None => lines.push(line.to_string()),
        }
    }
    if marks != [true; 3] {
        bail!("deploy/nginx.conf lost its markers");
    }
    Ok(lines.join("\n"))
}

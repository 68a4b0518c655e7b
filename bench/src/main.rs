//! sensorcast-bench: sensorcast side by side with nchan on this machine (README, Performance).
//!
//! `run` is the driver: it starts each server, spreads event streams over generator processes
//! (`hold`, this same program) and loopback source addresses, publishes, measures, and prints
//! one table. `soak` holds streams under a steady webhook rate for a long time and checks memory
//! and every event (issue 7). Everything stays on 127.0.0.0/8 and every loop is bounded in count
//! and time.

mod alarms;
mod catchup;
mod check;
mod clock;
mod fleet;
mod floor;
mod hold;
mod http;
mod pace;
mod pair;
mod publish;
mod reader;
mod report;
mod restart;
mod rules;
mod run;
mod servers;
mod sessions;
mod smtp_sink;
mod soak;
mod soak_report;
mod sse;
mod stats;
mod table;
mod target;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};

use servers::Server;
use stats::Results;

#[derive(Parser)]
#[command(
    name = "sensorcast-bench",
    about = "sensorcast side by side with nchan."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Measure sensorcast and nchan and print the table.
    Run(RunArgs),
    /// What alarm rules cost at ingest: a fleet without rules, then with two per device.
    Rules(rules::RulesArgs),
    /// A burst of 10,000 alarms: ingest with and without an email each, and their delivery.
    Alarms(alarms::AlarmsArgs),
    /// Time the 30-day site report of 20 devices every 10 minutes (172,800 readings).
    Report(report::ReportArgs),
    /// Two instances on PostgreSQL behind nginx, against one: every event once, latency.
    Pair(pair::PairArgs),
    /// Restart with streams open: SIGTERM, webhooks while down, every stream catches up.
    Restart(restart::RestartArgs),
    /// Soak sensorcast: many streams, a steady webhook rate, for a long time (issue 7).
    Soak(soak::SoakArgs),
    /// The floor: a bare fan-out server, one write per stream per event (started by `run`).
    #[command(hide = true)]
    Floor(floor::FloorArgs),
    /// A generator process (started by `run`; commands on stdin).
    #[command(hide = true)]
    Hold(hold::HoldArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Only {
    Sensorcast,
    Nchan,
    /// The floor: latency only.
    Floor,
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    config: run::Config,
    /// Directory holding the release `sensorcast` binary.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Also measure ingest on PostgreSQL: a server URL such as postgres://postgres@127.0.0.1:5432
    /// (a fresh database is created with psql and dropped afterwards).
    #[arg(long)]
    pg_url: Option<String>,
    /// Measure one server only.
    #[arg(long)]
    only: Option<Only>,
    /// Also write the report (Markdown) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    };
    match cli.command {
        Cmd::Hold(args) => hold::main(args),
        Cmd::Floor(args) => floor::main(args),
        Cmd::Run(args) => runtime()?.block_on(run_all(args)),
        Cmd::Soak(args) => runtime()?.block_on(soak::main(args)),
        Cmd::Rules(args) => runtime()?.block_on(rules::run(args)),
        Cmd::Alarms(args) => runtime()?.block_on(alarms::run(args)),
        Cmd::Report(args) => runtime()?.block_on(report::run(args)),
        Cmd::Pair(args) => {
            raise_open_files();
            runtime()?.block_on(pair::run(args))
        }
        Cmd::Restart(args) => {
            raise_open_files();
            runtime()?.block_on(restart::run(args))
        }
    }
}

async fn run_all(args: RunArgs) -> anyhow::Result<()> {
    let max_files = raise_open_files();
    let cfg = &args.config;
    if cfg.per_process + 100 > max_files as usize {
        bail!(
            "--per-process {} needs more than the {max_files} open files allowed",
            cfg.per_process
        );
    }
    let bin = args.bin_dir.join("sensorcast");
    let start = |kind: Only| {
        let bin = bin.clone();
        async move {
            match kind {
                Only::Sensorcast => Server::sensorcast(&bin, None).await,
                Only::Nchan => Server::nchan(max_files).await,
                Only::Floor => Server::floor(&run::generator_exe()).await,
            }
        }
    };
    let mut ours = Results::default();
    let (mut theirs, mut floor) = (None, None);
    for kind in [Only::Sensorcast, Only::Nchan, Only::Floor] {
        if args.only.is_some_and(|o| o != kind) {
            continue;
        }
        let mut results = Results::default();
        let server = start(kind).await?;
        if kind == Only::Floor {
            run::floor(&server, cfg, &mut results).await;
            server.stop().await;
            floor = Some(results);
            continue;
        }
        run::measure(&server, cfg, &mut results).await;
        eprintln!("  (log: {})", server.log_path().display());
        server.stop().await;
        if cfg.max_streams > 0 {
            let server = start(kind).await?;
            run::most_streams(&server, cfg, &mut results).await;
            server.stop().await;
        }
        if kind == Only::Sensorcast && cfg.streams > 0 {
            let server = start(kind).await?;
            run::own_sessions(&server, cfg, &mut results).await;
            server.stop().await;
        }
        match kind {
            Only::Sensorcast => ours = results,
            Only::Nchan => theirs = Some(results),
            Only::Floor => {}
        }
    }
    if let Some(url) = args
        .pg_url
        .as_deref()
        .filter(|_| args.only != Some(Only::Nchan))
    {
        ours.ingest_pg = ingest_on_postgres(&bin, url, cfg.ingest_secs)
            .await
            .map_err(|e| eprintln!("  PostgreSQL ingest failed: {e:#}"))
            .ok();
    }
    let mut report = format!(
        "{}\n\n{}\n{}",
        machine(cfg),
        table::render(&ours, theirs.as_ref()),
        table::notes("sensorcast", &ours)
    );
    if let Some(t) = &theirs {
        report.push_str(&format!("\n{}", table::notes("nchan", t)));
    }
    if let Some(f) = &floor {
        report.push_str(&format!(
            "\n\nThe floor (`sensorcast-bench floor`: one non-blocking write per stream per \
             event from one thread per core, nothing else), same streams and measure:\n\n{}\n{}",
            table::floor(&ours, theirs.as_ref(), f),
            table::notes("floor", f)
        ));
    }
    println!("{report}");
    if let Some(path) = &args.out {
        std::fs::write(path, &report).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Ingest alone, on a fresh PostgreSQL database.
async fn ingest_on_postgres(
    bin: &Path,
    server_url: &str,
    secs: u64,
) -> anyhow::Result<stats::Ingest> {
    let name = format!("sensorcast_bench_{}", std::process::id());
    psql(server_url, &format!("CREATE DATABASE {name}"))?;
    let url = format!("{}/{name}", server_url.trim_end_matches('/'));
    let result = async {
        let server = Server::sensorcast(bin, Some(&url)).await?;
        eprintln!("[sensorcast on PostgreSQL] ingest: 16 senders for {secs} s");
        let markers = Arc::new(target::Markers::new());
        publish::Publisher::new(&server.target)
            .publish(&markers)
            .await;
        let ingest = run::ingest(&server.target, &markers, secs).await;
        server.stop().await;
        anyhow::Ok(ingest)
    }
    .await;
    psql(
        server_url,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )?;
    result
}

fn psql(server_url: &str, sql: &str) -> anyhow::Result<()> {
    let url = format!("{}/postgres", server_url.trim_end_matches('/'));
    let status = std::process::Command::new("psql")
        .args([url.as_str(), "-q", "-c", sql])
        .status()
        .context("running psql")?;
    if !status.success() {
        bail!("psql {sql:?} failed");
    }
    Ok(())
}

/// Raises the soft open-files limit to the hard one (inherited by every child); returns it.
fn raise_open_files() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a valid struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    lim.rlim_cur
}

fn machine(cfg: &run::Config) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    format!(
        "Machine: {cores} cores, {mem_gib:.0} GiB; load generator, servers and driver on the same machine.\n\
         Run: {} streams ({} timed, the rest read lazily every {} ms), {} per generator process; \
         latency over {} events at 4/s; saturation {} events back to back; most streams {}; \
         ingest {} s with 16 senders; catch-up {} events behind.",
        cfg.streams, cfg.timed, cfg.lazy_ms, cfg.per_process, cfg.latency_events,
        cfg.saturation_events, cfg.max_streams, cfg.ingest_secs, cfg.behind
    )
}

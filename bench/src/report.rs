//! `sensorcast-bench report`: the 30-day site report (issue 16). Seeds one site of 20 devices
//! reporting both probes every 10 minutes for 30 days (86,400 uplinks, 172,800 probe readings;
//! one webhook per device-day holding its 144 uplinks as a batch of MDP events), then times GET of the report page, its CSV and a
//! device's 30-day chart summaries, several runs each; prints the median and max. Then one more
//! device with a year of readings every 10 minutes (52,560 uplinks): its 1-year chart, as the
//! device page draws it (`?range=1y`, from summaries) and as JSON. SQLite, and PostgreSQL with
//! `--pg-url`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::clock::{mono_us, unix_ms};
use crate::http::Conn;
use crate::servers::{page_csrf, Server};
use crate::target::{dev_eui, Target};

const DAY_MS: u64 = 86_400_000;

#[derive(clap::Args)]
pub struct ReportArgs {
    /// Directory holding the release `sensorcast` binary.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Also on PostgreSQL: a server URL such as postgres://postgres@127.0.0.1:5432 (a fresh
    /// database is created with psql and dropped afterwards).
    #[arg(long)]
    pg_url: Option<String>,
    #[arg(long, default_value_t = 20)]
    devices: usize,
    #[arg(long, default_value_t = 30)]
    days: u64,
    /// Minutes between two readings of a device.
    #[arg(long, default_value_t = 10)]
    interval_mins: u64,
    /// Timed requests of each kind.
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// Days of history of the one device whose long chart is timed.
    #[arg(long, default_value_t = 365)]
    year_days: u64,
}

fn device_id(n: usize) -> u64 {
    1_904_371_063_669_500_000 + n as u64
}

/// One webhook: device `n`'s readings of the day starting at `day_ms`.
fn day_body(n: usize, day_ms: u64, per_day: u64, step_ms: u64) -> String {
    let events: Vec<String> = (0..per_day)
        .map(|i| {
            let ts = day_ms + i * step_ms;
            // A slow wave inside a freezer's band, different per device.
            let t = -18.0 + ((i as f64 + n as f64) / 12.0).sin() * 2.0;
            format!(
                r#"{{"eventId":"rep-{n}-{ts}","eventCreatedTime":{},"eventVersion":"1.0","eventType":"DEVICE_DATA","data":{{"deviceProfile":{{"deviceId":"{}","devEUI":"{}","name":"Report freezer {n}","model":"TS302"}},"type":"PROPERTY","tslId":"","ts":{ts},"payload":{{"temperature_left":{t:.2},"temperature_right":4.1,"battery":90}}}}}}"#,
                ts / 1000,
                device_id(n),
                dev_eui(4096 + n),
            )
        })
        .collect();
    format!("[{}]", events.join(","))
}

async fn get(conn: &mut Conn, target: &Target, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    let cookie = target.cookie.as_deref().unwrap_or_default();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\n\r\n",
        target.addr
    );
    let r = conn.send(req.as_bytes()).await?;
    Ok((r.head.status, r.body))
}

/// Seeds device `n`'s readings, one webhook per day, from `start_ms` for `days`.
async fn seed_device(
    conn: &mut Conn,
    target: &Target,
    n: usize,
    start_ms: u64,
    days: u64,
    interval_mins: u64,
) -> anyhow::Result<()> {
    let step_ms = interval_mins * 60_000;
    let per_day = DAY_MS / step_ms;
    for d in 0..days {
        let body = day_body(n, start_ms + d * DAY_MS, per_day, step_ms);
        let r = conn.send(&target.webhook_request(&body)).await?;
        if r.head.status != 200 {
            bail!("seeding device {n} day {d} answered {}", r.head.status);
        }
    }
    Ok(())
}

/// Seeds the readings and puts every device in the site "Bench"; returns the site's id.
async fn seed(target: &Target, args: &ReportArgs, start_ms: u64) -> anyhow::Result<i64> {
    let mut conn = Conn::new(target.addr);
    for n in 0..args.devices {
        seed_device(
            &mut conn,
            target,
            n,
            start_ms,
            args.days,
            args.interval_mins,
        )
        .await?;
    }
    let csrf = page_csrf(&mut conn, target, "/admin").await?;
    let cookie = target.cookie.as_deref().unwrap_or_default();
    let addr = target.addr;
    for n in 0..args.devices {
        let body = format!("csrf={csrf}&new_site=Bench");
        let req = format!(
            "POST /admin/devices/{}/site HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\n\
             Cookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n\r\n{body}",
            device_id(n),
            body.len()
        );
        let r = conn.send(req.as_bytes()).await?;
        if r.head.status != 303 {
            bail!("assigning device {n} answered {}", r.head.status);
        }
    }
    let (_, sites) = get(&mut conn, target, "/api/sites").await?;
    let sites = String::from_utf8_lossy(&sites);
    let id = sites
        .split("\"siteId\":")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no site in {sites}"))?;
    Ok(id)
}

/// Median and max of `runs` timed GETs of `path`, in ms; each must answer 200 with `want`.
async fn time(target: &Target, path: &str, runs: usize, want: &str) -> anyhow::Result<(f64, f64)> {
    let mut conn = Conn::new(target.addr);
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = mono_us();
        let (status, body) = get(&mut conn, target, path).await?;
        ms.push((mono_us() - t) as f64 / 1000.0);
        if status != 200 || !String::from_utf8_lossy(&body).contains(want) {
            bail!("GET {path} answered {status} without {want:?}");
        }
    }
    ms.sort_by(f64::total_cmp);
    Ok((ms[ms.len() / 2], ms[ms.len() - 1]))
}

fn date(ms: u64) -> String {
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = (ms / DAY_MS) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

async fn measure(
    bin: &Path,
    url: Option<&str>,
    name: &str,
    args: &ReportArgs,
) -> anyhow::Result<()> {
    let server = Server::sensorcast(bin, url).await?;
    let target = server.target.clone();
    let start_ms = (unix_ms() / DAY_MS - args.days) * DAY_MS;
    let readings = args.devices as u64 * args.days * (DAY_MS / (args.interval_mins * 60_000));
    eprintln!("[{name}] seeding {readings} readings");
    let t = mono_us();
    let site = seed(&target, args, start_ms).await?;
    let seed_s = (mono_us() - t) as f64 / 1e6;
    let period = format!(
        "from={}&to={}",
        date(start_ms),
        date(start_ms + (args.days - 1) * DAY_MS)
    );
    let page = time(
        &target,
        &format!("/sites/{site}/report?{period}"),
        args.runs,
        "Report freezer 0",
    )
    .await?;
    let csv = time(
        &target,
        &format!("/sites/{site}/report.csv?{period}"),
        args.runs,
        "\"day\"",
    )
    .await?;
    let chart_path = format!(
        "/api/devices/{}/summaries?since={start_ms}&until={}",
        device_id(0),
        start_ms + args.days * DAY_MS
    );
    let chart = time(&target, &chart_path, args.runs, "\"stepMs\":3600000").await?;
    // The long chart: one device (outside the site) with `year_days` of history.
    let long = args.devices;
    let year_start = (unix_ms() / DAY_MS - args.year_days) * DAY_MS;
    eprintln!("[{name}] seeding {} days of one device", args.year_days);
    let mut conn = Conn::new(target.addr);
    seed_device(
        &mut conn,
        &target,
        long,
        year_start,
        args.year_days,
        args.interval_mins,
    )
    .await?;
    let year_page = time(
        &target,
        &format!("/devices/{}?range=1y", device_id(long)),
        args.runs,
        "data-step=\"21600000\"",
    )
    .await?;
    let year_json = time(
        &target,
        &format!(
            "/api/devices/{}/summaries?since={year_start}&until={}",
            device_id(long),
            unix_ms()
        ),
        args.runs,
        "\"stepMs\":21600000",
    )
    .await?;
    println!(
        "| {name} | {readings} | {seed_s:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} |",
        page.0, page.1, csv.0, csv.1, chart.0, chart.1, year_page.0, year_page.1, year_json.0, year_json.1
    );
    server.stop().await;
    Ok(())
}

pub async fn run(args: ReportArgs) -> anyhow::Result<()> {
    let bin = args.bin_dir.join("sensorcast");
    println!(
        "> {} devices x {} days, a reading every {} min; median / max of {} runs, ms\n",
        args.devices, args.days, args.interval_mins, args.runs
    );
    println!(
        "| database | uplinks (2 probes each) | seed s | report page | report CSV | 30-day chart of a device | 1-year device page | 1-year chart JSON |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    measure(&bin, None, "SQLite", &args).await?;
    if let Some(server_url) = &args.pg_url {
        let name = format!("sensorcast_report_{}", std::process::id());
        crate::psql(server_url, &format!("CREATE DATABASE {name}"))?;
        let url = format!("{}/{name}", server_url.trim_end_matches('/'));
        let result = measure(&bin, Some(&url), "PostgreSQL", &args).await;
        crate::psql(
            server_url,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )?;
        result?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_civil() {
        assert_eq!(super::date(0), "1970-01-01");
        assert_eq!(super::date(1_774_652_400_000), "2026-03-27");
        assert!(super::day_body(3, 0, 2, 600_000).contains(r#""ts":600000"#));
    }
}

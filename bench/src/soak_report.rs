//! The soak's progress lines, its report (Markdown) and its verdict.

use crate::check::Faults;
use crate::fleet::Opened;
use crate::pace::Lateness;
use crate::soak::SoakArgs;
use crate::stats::Latency;

/// One sample, taken every `--every-secs`; counts are since the previous sample.
#[derive(Debug, Default, Clone, Copy)]
pub struct Point {
    /// Since the first webhook was due.
    pub secs: f64,
    pub rss_kib: u64,
    /// Of it: anonymous (heap), and file-backed or shared.
    pub anon_kib: u64,
    pub file_kib: u64,
    /// The server's CPU time so far.
    pub cpu_us: u64,
    pub ok: u64,
    pub errors: u64,
    pub timed_read: u64,
    pub timed_p99_ms: Option<f64>,
    /// Faults on the timed streams so far.
    pub faults: u64,
    /// Streams closed so far.
    pub closed: usize,
    /// The server's counters (/metrics).
    pub lagged: f64,
    pub lagging: f64,
    pub replayed: f64,
}

pub struct Report {
    args: SoakArgs,
    opened: Opened,
    rss_open_kib: u64,
    load: String,
    load_end: String,
    /// The server's state when the first webhook was due (time 0).
    pub origin: Option<Point>,
    pub timed_streams: usize,
    pub points: Vec<Point>,
    pub planned: usize,
    pub webhooks_ok: u64,
    pub webhook_errors: u64,
    pub answers: Option<Latency>,
    pub lateness: Lateness,
    pub faults: Faults,
    pub missing: u64,
    pub unconfirmed: u64,
    pub latency: Option<Latency>,
    pub streams_fewer: usize,
    pub streams_more: usize,
    pub closed: usize,
    pub log_lines: usize,
    /// From starting the server to stopping it.
    pub took_secs: f64,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn lat(l: Option<Latency>) -> String {
    l.map_or("–".into(), |l| {
        format!("{:.1} / {:.1} / {:.1}", l.p50, l.p99, l.max)
    })
}

impl Report {
    pub fn new(args: &SoakArgs, opened: Opened, rss_open_kib: u64) -> Report {
        Report {
            args: args.clone(),
            opened,
            rss_open_kib,
            load: load_average(),
            load_end: String::new(),
            origin: None,
            timed_streams: 0,
            points: Vec::new(),
            planned: 0,
            webhooks_ok: 0,
            webhook_errors: 0,
            answers: None,
            lateness: Lateness::default(),
            faults: Faults::default(),
            missing: 0,
            unconfirmed: 0,
            latency: None,
            streams_fewer: 0,
            streams_more: 0,
            closed: 0,
            log_lines: 0,
            took_secs: 0.0,
        }
    }

    /// Notes the load average at the end.
    pub fn finish(&mut self) {
        self.load_end = load_average();
    }

    /// The progress line of a sample.
    pub fn line(&self, p: &Point) -> String {
        let prev = self.points.last().or(self.origin.as_ref());
        let cpu = prev.map_or(0.0, |q| cpu_pct(q, p));
        format!(
            "[soak] {:>5.0} s  rss {:.1} MiB (anon {:.1}, file {:.1})  cpu {cpu:.0}%  \
             webhooks +{} ({} errors)  \
             timed +{} read, p99 {} ms, faults {}  closed {}  lagged {} (now {}), replayed {}",
            p.secs,
            mib(p.rss_kib),
            mib(p.anon_kib),
            mib(p.file_kib),
            p.ok,
            p.errors,
            p.timed_read,
            p.timed_p99_ms.map_or("–".into(), |v| format!("{v:.1}")),
            p.faults,
            p.closed,
            p.lagged,
            p.lagging,
            p.replayed
        )
    }

    /// The first sample at or after the end of warm-up, and the last.
    fn warm_and_end(&self) -> Option<(&Point, &Point)> {
        let warm_secs = self.args.warmup_minutes * 60.0;
        let warm = self.points.iter().find(|p| p.secs + 0.5 >= warm_secs)?;
        Some((warm, self.points.last()?))
    }

    fn growth_pct(&self) -> Option<f64> {
        let (warm, end) = self.warm_and_end()?;
        Some((end.rss_kib as f64 - warm.rss_kib as f64) / (warm.rss_kib.max(1) as f64) * 100.0)
    }

    /// Least-squares slope of RSS after warm-up, in MiB per hour.
    fn trend_mib_per_h(&self) -> Option<f64> {
        let (warm, _) = self.warm_and_end()?;
        let pts: Vec<(f64, f64)> = self
            .points
            .iter()
            .filter(|p| p.secs >= warm.secs)
            .map(|p| (p.secs / 3600.0, mib(p.rss_kib)))
            .collect();
        let n = pts.len() as f64;
        if n < 2.0 {
            return None;
        }
        let (mx, my) = (
            pts.iter().map(|p| p.0).sum::<f64>() / n,
            pts.iter().map(|p| p.1).sum::<f64>() / n,
        );
        let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
        let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        (sxx > 0.0).then(|| sxy / sxx)
    }

    /// Why the run failed; empty when it passed.
    pub fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        match self.growth_pct() {
            Some(g) if g >= self.args.max_growth => f.push(format!(
                "RSS grew {g:.2} % after warm-up (limit {} %)",
                self.args.max_growth
            )),
            None => f.push("no sample after warm-up".into()),
            _ => {}
        }
        let mut count = |n: u64, what: &str| {
            if n > 0 {
                f.push(format!("{n} {what}"));
            }
        };
        count(self.webhook_errors, "webhook errors");
        count(self.opened.failed as u64, "streams failed to open");
        count(self.closed as u64, "streams closed during the run");
        count(self.missing, "timed (stream, event) pairs missing");
        count(self.faults.total(), "faults on timed streams");
        count(
            (self.streams_fewer + self.streams_more) as u64,
            "other streams with a wrong event count",
        );
        f
    }

    pub fn render(&self) -> String {
        let mut out = self.setting();
        let mut t = Table(String::from(
            "| measure | value | target | met |\n|---|---:|---|---|\n",
        ));
        let rss = |kib: u64| format!("{:.1}", mib(kib));
        t.info(
            "server RSS, streams open, before the webhooks (MiB)",
            rss(self.rss_open_kib),
        );
        if let Some((warm, end)) = self.warm_and_end() {
            let after = self.points.iter().filter(|p| p.secs >= warm.secs);
            let max = after.map(|p| p.rss_kib).max().unwrap_or(0);
            let growth = self.growth_pct().unwrap_or(0.0);
            let limit = self.args.max_growth;
            let warm_at = format!("server RSS at the end of warm-up, {:.0} s (MiB)", warm.secs);
            t.info(&warm_at, rss(warm.rss_kib));
            t.info(
                &format!("server RSS at the end, {:.0} s (MiB)", end.secs),
                rss(end.rss_kib),
            );
            t.info(
                "of which anonymous (heap); file-backed or shared: warm-up → end (MiB)",
                format!(
                    "{} → {}; {} → {}",
                    rss(warm.anon_kib),
                    rss(end.anon_kib),
                    rss(warm.file_kib),
                    rss(end.file_kib)
                ),
            );
            t.info("server RSS, highest after warm-up (MiB)", rss(max));
            t.row(
                "**RSS growth after warm-up (%)**",
                format!("{growth:.2}"),
                &format!("< {limit} %"),
                Some(growth < limit),
            );
            let trend = self.trend_mib_per_h();
            t.info(
                "RSS trend after warm-up, least squares (MiB/h)",
                trend.map_or("–".into(), |t| format!("{t:.2}")),
            );
            let cpu = cpu_pct(warm, end);
            t.info(
                "server CPU after warm-up (% of one core)",
                format!("{cpu:.0}"),
            );
        }
        let sent = format!("webhooks answered 2xx (of {} sent)", n(self.planned as u64));
        t.info(&sent, n(self.webhooks_ok));
        t.zero(
            "webhook errors (non-2xx, failed, timed out)",
            self.webhook_errors,
        );
        t.info("webhook answer p50 / p99 / max (ms)", lat(self.answers));
        let l = &self.lateness;
        t.info(
            "webhooks sent over a period late; of them waiting for a free sender; most behind (ms)",
            format!("{}; {}; {:.1}", n(l.late), n(l.waited), l.max_ms),
        );
        let opened = format!("streams opened of {}", n(self.args.streams as u64));
        t.info(&opened, n(self.opened.ok as u64));
        t.zero("streams that failed to open", self.opened.failed as u64);
        t.zero("streams closed during the run", self.closed as u64);
        let read = self.latency.map_or(0, |l| l.samples as u64);
        t.info("timed streams: events read", n(read));
        let f = &self.faults;
        t.row(
            "timed: missing / twice / out of order / ids skipped / unknown",
            format!(
                "{} / {} / {} / {} / {}",
                self.missing, f.twice, f.out_of_order, f.id_gaps, f.unknown
            ),
            "0",
            Some(self.missing + f.total() == 0),
        );
        let (fewer, more) = (self.streams_fewer, self.streams_more);
        t.row(
            "other streams with too few / too many events",
            format!("{fewer} / {more}"),
            "0",
            Some(fewer + more == 0),
        );
        t.info(
            "latency, webhook sent → read on a timed stream, p50 / p99 / max (ms)",
            lat(self.latency),
        );
        if let Some(end) = self.points.last() {
            t.info(
                "server: streams that fell behind and caught up from the database; events so sent",
                format!("{}; {}", end.lagged, end.replayed),
            );
        }
        t.info(
            "server log lines (warnings and errors)",
            n(self.log_lines as u64),
        );
        out.push_str(&t.0);
        if self.unconfirmed > 0 {
            out.push_str(&format!(
                "\n{} (stream, event) pairs were read though the webhook's answer was an error.\n",
                self.unconfirmed
            ));
        }
        out.push_str(&self.timeline());
        out
    }

    /// The machine and the run's settings, in words.
    fn setting(&self) -> String {
        let a = &self.args;
        let timed = self.timed_streams;
        let others = a.streams - timed;
        let k = a.devices_per_stream.min(a.devices);
        let per_s = a.rate * (timed as f64 + others as f64 * k as f64 / a.devices as f64);
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        format!(
            "Machine: {cores} cores, load average {} at the start and {} at the end; driver, \
             generators and server on the same machine.\n\
             Run: {} streams: {timed} follow every device and are checked event by event, the \
             other {} follow {k} of the {} devices each (`?devices=`) and are read every {} ms; \
             {} signed MDP webhooks/s from {} TS302s in turn (at most {} in flight) for {} min, \
             the first {} min warm-up; a sample every {} s. About {} deliveries/s. {:.1} min from \
             starting the server to stopping it.\n\n",
            self.load,
            self.load_end,
            n(a.streams as u64),
            n(others as u64),
            a.devices,
            a.lazy_ms,
            a.rate,
            a.devices,
            a.senders,
            a.minutes,
            a.warmup_minutes,
            a.every_secs,
            n(per_s.round() as u64),
            self.took_secs / 60.0
        )
    }

    /// About a dozen samples, the end of warm-up and the last among them; counts and CPU are
    /// over the time since the row before.
    fn timeline(&self) -> String {
        let mut out = String::from(
            "\n| t (s) | RSS (MiB) | anon (MiB) | CPU (%) | webhooks 2xx | errors | timed reads | timed p99, last sample (ms) | streams closed | lagged |\n\
             |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        let stride = (self.points.len() / 12).max(1);
        let warm = self.warm_and_end().map(|(w, _)| w.secs);
        let (mut ok, mut errors, mut reads) = (0, 0, 0);
        let mut prev = self.origin.as_ref();
        for (i, p) in self.points.iter().enumerate() {
            ok += p.ok;
            errors += p.errors;
            reads += p.timed_read;
            let last = i + 1 == self.points.len();
            if !(last || (i + 1) % stride == 0 || Some(p.secs) == warm) {
                continue;
            }
            let cpu = prev.map_or("–".into(), |q| format!("{:.0}", cpu_pct(q, p)));
            out.push_str(&format!(
                "| {:.0} | {:.1} | {:.1} | {cpu} | {} | {errors} | {} | {} | {} | {} |\n",
                p.secs,
                mib(p.rss_kib),
                mib(p.anon_kib),
                n(ok),
                n(reads),
                p.timed_p99_ms.map_or("–".into(), |v| format!("{v:.1}")),
                p.closed,
                p.lagged
            ));
            prev = Some(p);
            (ok, errors, reads) = (0, 0, 0);
        }
        out
    }
}

/// A Markdown table of measure, value, target and whether it is met.
struct Table(String);

impl Table {
    fn row(&mut self, measure: &str, value: String, target: &str, met: Option<bool>) {
        let met = match met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        self.0
            .push_str(&format!("| {measure} | {value} | {target} | {met} |\n"));
    }

    fn info(&mut self, measure: &str, value: String) {
        self.row(measure, value, "", None);
    }

    /// A count that must be zero.
    fn zero(&mut self, measure: &str, count: u64) {
        self.row(measure, n(count), "0", Some(count == 0));
    }
}

/// A count with thousands separators.
fn n(count: u64) -> String {
    crate::table::group_thousands(count as i64)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The server's CPU use between two samples, in % of one core.
fn cpu_pct(from: &Point, to: &Point) -> f64 {
    let secs = (to.secs - from.secs).max(1e-6);
    (to.cpu_us.saturating_sub(from.cpu_us)) as f64 / 1e6 / secs * 100.0
}

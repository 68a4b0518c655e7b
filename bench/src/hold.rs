//! `sensorcast-bench hold`: a generator process. It opens its share of the run's event streams,
//! reads them on two threads (timed and lazy) and answers the driver's commands on stdin:
//!
//! - `open` → `opened OK FAILED T_FIRST_START T_LAST_ESTABLISHED` (µs, monotonic)
//! - `mark` → `marked` (event counts restart from zero)
//! - `wait N TIMEOUT_MS` → `waited REACHED SHORT LOST T_LAST DELIVERED` once every stream has N
//!   events since the mark, or at the timeout
//! - `samples` → `sample INDEX MARKER T ID` lines for the timed streams, then `end`
//! - `counts` → `count INDEX FRAMES OPEN` lines (frames since the mark; OPEN 1 or 0), then `end`
//! - `quit` (or end of input) → exits, closing every stream

use std::io::{BufRead, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::AsyncWriteExt;

use crate::clock::mono_us;
use crate::http;
use crate::reader::{self, Cmd, Stream, WaitResult};

#[derive(Debug, Clone, clap::Args)]
pub struct HoldArgs {
    #[arg(long)]
    pub addr: SocketAddr,
    /// Loopback address to connect from.
    #[arg(long)]
    pub source: IpAddr,
    /// The subscribe request's path.
    #[arg(long)]
    pub path: String,
    #[arg(long)]
    pub cookie: Option<String>,
    /// One `Cookie:` value per line, stream `i` (global index) taking line `i`.
    #[arg(long, conflicts_with = "cookie")]
    pub cookie_file: Option<std::path::PathBuf>,
    /// The lines of `cookie_file`, read at start.
    #[arg(skip)]
    pub cookies: std::sync::Arc<Vec<String>>,
    /// This process opens global stream indices FIRST, FIRST+STEP, … (COUNT of them).
    #[arg(long)]
    pub first: usize,
    #[arg(long)]
    pub step: usize,
    #[arg(long)]
    pub count: usize,
    /// Streams whose global index is a multiple of this are timed.
    #[arg(long)]
    pub sample_every: usize,
    /// Streams being opened at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Text that precedes an event's marker number.
    #[arg(long)]
    pub marker_key: String,
    /// Pause of the lazy reader after each batch of reads, in ms.
    #[arg(long, default_value_t = 10)]
    pub lazy_ms: u64,
    /// Untimed streams follow this many fleet devices each (`?devices=`; 0: every device).
    #[arg(long, default_value_t = 0)]
    pub devices_per_stream: usize,
    /// Devices in the fleet (soak).
    #[arg(long, default_value_t = 0)]
    pub devices: usize,
}

impl HoldArgs {
    /// The subscribe path of stream `index`: timed streams follow everything.
    fn path_of(&self, index: usize) -> String {
        if self.devices_per_stream == 0 || self.devices == 0 || index % self.sample_every == 0 {
            return self.path.clone();
        }
        let euis: Vec<String> =
            crate::target::followed(index, self.devices_per_stream, self.devices)
                .into_iter()
                .map(crate::target::dev_eui)
                .collect();
        format!("{}?devices={}", self.path, euis.join(","))
    }
}

pub fn main(mut args: HoldArgs) -> anyhow::Result<()> {
    if let Some(file) = &args.cookie_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading cookies from {file:?}"))?;
        args.cookies = std::sync::Arc::new(text.lines().map(str::to_string).collect());
    }
    let stdin = std::io::stdin();
    let mut threads: Vec<mpsc::Sender<Cmd>> = Vec::new();
    for line in stdin.lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            ["open"] if threads.is_empty() => {
                let (streams, failed, t0, t1) = open_all(&args)?;
                let ok = streams.len();
                threads = start_readers(streams, &args);
                format!("opened {ok} {failed} {t0} {t1}")
            }
            ["mark"] => {
                for t in &threads {
                    let (tx, rx) = mpsc::channel();
                    let _ = t.send(Cmd::Mark(tx));
                    let _ = rx.recv();
                }
                "marked".into()
            }
            ["wait", n, timeout_ms] => {
                let r = wait(&threads, n.parse()?, timeout_ms.parse()?);
                format!(
                    "waited {} {} {} {} {}",
                    r.reached, r.short, r.lost, r.t_last, r.delivered
                )
            }
            ["samples"] => samples(&threads),
            ["counts"] => counts(&threads),
            ["quit"] => break,
            _ => bail!("unknown command {line:?}"),
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{reply}")?;
        out.flush()?;
    }
    Ok(())
}

fn start_readers(streams: Vec<Stream>, args: &HoldArgs) -> Vec<mpsc::Sender<Cmd>> {
    let (timed, lazy): (Vec<Stream>, Vec<Stream>) = streams
        .into_iter()
        .partition(|s| s.index % args.sample_every == 0);
    let key = args.marker_key.as_bytes().to_vec();
    let pause = Duration::from_millis(args.lazy_ms);
    vec![
        reader::spawn(timed, None, key.clone()),
        reader::spawn(lazy, Some(pause), key),
    ]
}

fn wait(threads: &[mpsc::Sender<Cmd>], n: u64, timeout_ms: u64) -> WaitResult {
    let deadline = mono_us() + timeout_ms * 1000;
    let replies: Vec<_> = threads
        .iter()
        .map(|t| {
            let (reply, rx) = mpsc::channel();
            let _ = t.send(Cmd::Wait { n, deadline, reply });
            rx
        })
        .collect();
    let mut total = WaitResult::default();
    for rx in replies {
        if let Ok(r) = rx.recv() {
            total.reached += r.reached;
            total.short += r.short;
            total.lost += r.lost;
            total.t_last = total.t_last.max(r.t_last);
            total.delivered += r.delivered;
        }
    }
    total
}

fn samples(threads: &[mpsc::Sender<Cmd>]) -> String {
    let mut out = String::new();
    for t in threads {
        let (tx, rx) = mpsc::channel();
        let _ = t.send(Cmd::Samples(tx));
        for s in rx.recv().unwrap_or_default() {
            out.push_str(&format!(
                "sample {} {} {} {}\n",
                s.stream, s.marker, s.at, s.id
            ));
        }
    }
    out.push_str("end");
    out
}

fn counts(threads: &[mpsc::Sender<Cmd>]) -> String {
    let mut out = String::new();
    for t in threads {
        let (tx, rx) = mpsc::channel();
        let _ = t.send(Cmd::Counts(tx));
        for (i, n, open) in rx.recv().unwrap_or_default() {
            out.push_str(&format!("count {i} {n} {}\n", u8::from(open)));
        }
    }
    out.push_str("end");
    out
}

type Opened = (Vec<Stream>, usize, u64, u64);

/// Opens every stream of this process, `concurrency` at a time.
fn open_all(args: &HoldArgs) -> anyhow::Result<Opened> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let next = Arc::new(AtomicUsize::new(0));
        let t0 = mono_us();
        let tasks: Vec<_> = (0..args.concurrency.max(1))
            .map(|_| {
                let (next, args) = (next.clone(), args.clone());
                tokio::spawn(async move {
                    let mut done = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= args.count {
                            break;
                        }
                        let index = args.first + k * args.step;
                        done.push(open_one(&args, index).await);
                    }
                    done
                })
            })
            .collect();
        let (mut streams, mut failed, mut first_error) = (Vec::new(), 0, None);
        for task in tasks {
            for result in task.await? {
                match result {
                    Ok(s) => streams.push(s),
                    Err(e) => {
                        failed += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        if let Some(e) = first_error {
            eprintln!(
                "hold {}: {failed} streams failed, first: {e:#}",
                args.source
            );
        }
        streams.sort_by_key(|s| s.index);
        Ok((streams, failed, t0, mono_us()))
    })
}

async fn open_one(args: &HoldArgs, index: usize) -> anyhow::Result<Stream> {
    let path = args.path_of(index);
    let cookie = match args.cookies.is_empty() {
        true => args.cookie.as_deref(),
        false => Some(args.cookies[index % args.cookies.len()].as_str()),
    };
    let request = crate::target::subscribe_request(args.addr, &path, cookie, None);
    let opening = async {
        let mut sock = http::connect(args.addr, Some(args.source)).await?;
        sock.write_all(request.as_bytes()).await?;
        let (head, early) = http::read_head(&mut sock).await?;
        if head.status != 200 {
            bail!("status {}", head.status);
        }
        let timed = index % args.sample_every == 0;
        let key = args.marker_key.as_bytes();
        let std_sock = sock.into_std()?;
        Ok(Stream::new(
            index,
            std_sock,
            head.chunked(),
            timed,
            &early,
            key,
        ))
    };
    tokio::time::timeout(http::REQUEST_TIMEOUT, opening)
        .await
        .context("opening timed out")?
}

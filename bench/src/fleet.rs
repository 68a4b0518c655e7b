//! The driver's side of the generator processes: start them, send every one the same command,
//! gather their answers.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::reader::Sample;
use crate::target::Target;

struct Proc {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

/// Generator processes holding `streams` event streams of one target between them.
pub struct Fleet {
    procs: Vec<Proc>,
    /// How many of them are timed.
    pub timed: usize,
}

/// How a fleet spreads its streams.
#[derive(Debug, Clone)]
pub struct Layout {
    pub streams: usize,
    pub per_process: usize,
    /// Timed streams, spread evenly over the connection order.
    pub timed: usize,
    /// Source addresses are 127.0.SUBNET.10, .11, … (one per process).
    pub subnet: u8,
    pub concurrency: usize,
    pub lazy_ms: u64,
    /// Fleet devices (soak): untimed streams follow `devices_per_stream` of them each.
    pub devices: usize,
    pub devices_per_stream: usize,
    /// One `Cookie:` value per line, stream `i` taking line `i` (a session per stream);
    /// otherwise every stream has the target's.
    pub cookie_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Opened {
    pub ok: usize,
    pub failed: usize,
    pub t_first: u64,
    pub t_last: u64,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Waited {
    pub reached: usize,
    pub short: usize,
    pub lost: usize,
    pub t_last: u64,
    pub delivered: u64,
}

impl Fleet {
    pub async fn spawn(exe: &Path, target: &Target, layout: Layout) -> anyhow::Result<Fleet> {
        let n = layout.streams;
        let procs_needed = n.div_ceil(layout.per_process.max(1)).max(1);
        let sample_every = (n / layout.timed.max(1)).max(1);
        let mut procs = Vec::new();
        for p in 0..procs_needed {
            let count = (n + procs_needed - 1 - p) / procs_needed;
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, layout.subnet, 10 + p as u8));
            let mut cmd = Command::new(exe);
            cmd.arg("hold")
                .args(["--addr", &target.addr.to_string()])
                .args(["--source", &source.to_string()])
                .args(["--path", target.stream_path()])
                .args(["--first", &p.to_string()])
                .args(["--step", &procs_needed.to_string()])
                .args(["--count", &count.to_string()])
                .args(["--sample-every", &sample_every.to_string()])
                .args(["--concurrency", &layout.concurrency.to_string()])
                .args(["--marker-key", target.kind.marker_key()])
                .args(["--lazy-ms", &layout.lazy_ms.to_string()])
                .args(["--devices", &layout.devices.to_string()])
                .args([
                    "--devices-per-stream",
                    &layout.devices_per_stream.to_string(),
                ]);
            if let Some(file) = &layout.cookie_file {
                cmd.arg("--cookie-file").arg(file);
            } else if let Some(c) = &target.cookie {
                cmd.args(["--cookie", c]);
            }
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .context("starting a generator process")?;
            let stdin = child.stdin.take().context("generator stdin")?;
            let stdout = BufReader::new(child.stdout.take().context("generator stdout")?).lines();
            procs.push(Proc {
                child,
                stdin,
                stdout,
            });
        }
        Ok(Fleet {
            procs,
            timed: n.div_ceil(sample_every),
        })
    }

    /// Sends `line` to every process.
    pub async fn send(&mut self, line: &str) -> anyhow::Result<()> {
        for p in &mut self.procs {
            p.stdin.write_all(format!("{line}\n").as_bytes()).await?;
            p.stdin.flush().await?;
        }
        Ok(())
    }

    /// One answer line from every process, each split into words after `word`.
    async fn answers(&mut self, word: &str, limit: Duration) -> anyhow::Result<Vec<Vec<u64>>> {
        let mut all = Vec::new();
        for p in &mut self.procs {
            let line = tokio::time::timeout(limit, p.stdout.next_line())
                .await
                .with_context(|| format!("no '{word}' answer in {limit:?}"))??
                .context("a generator process ended")?;
            let mut words = line.split_whitespace();
            if words.next() != Some(word) {
                bail!("expected '{word}', got {line:?}");
            }
            all.push(words.map(|w| w.parse().unwrap_or(0)).collect());
        }
        Ok(all)
    }

    /// CPU time of the generator processes so far, in µs.
    pub fn cpu_us(&self) -> u64 {
        let pids: Vec<u32> = self.procs.iter().filter_map(|p| p.child.id()).collect();
        crate::servers::cpu_us_of(&pids)
    }

    pub async fn open(&mut self) -> anyhow::Result<Opened> {
        self.send("open").await?;
        let mut o = Opened {
            t_first: u64::MAX,
            ..Opened::default()
        };
        for a in self.answers("opened", Duration::from_secs(600)).await? {
            o.ok += a[0] as usize;
            o.failed += a[1] as usize;
            o.t_first = o.t_first.min(a[2]);
            o.t_last = o.t_last.max(a[3]);
        }
        Ok(o)
    }

    pub async fn mark(&mut self) -> anyhow::Result<()> {
        self.send("mark").await?;
        self.answers("marked", Duration::from_secs(30)).await?;
        Ok(())
    }

    /// Asks every process to report once each stream has `n` events since the mark; read the
    /// answer with [`Fleet::waited`] (so the wait can be armed before publishing).
    pub async fn arm_wait(&mut self, n: u64, timeout: Duration) -> anyhow::Result<()> {
        self.send(&format!("wait {n} {}", timeout.as_millis()))
            .await
    }

    pub async fn waited(&mut self, timeout: Duration) -> anyhow::Result<Waited> {
        let mut w = Waited::default();
        let limit = timeout + Duration::from_secs(30);
        for a in self.answers("waited", limit).await? {
            w.reached += a[0] as usize;
            w.short += a[1] as usize;
            w.lost += a[2] as usize;
            w.t_last = w.t_last.max(a[3]);
            w.delivered += a[4];
        }
        Ok(w)
    }

    /// Every event read on a timed stream since the last call.
    pub async fn samples(&mut self) -> anyhow::Result<Vec<Sample>> {
        let rows = self.listing("samples", "sample").await?;
        Ok(rows
            .into_iter()
            .map(|r| Sample {
                stream: r[0] as usize,
                marker: r[1],
                at: r[2],
                id: r[3],
            })
            .collect())
    }

    /// (stream index, frames since the mark, still open) of every stream.
    pub async fn counts(&mut self) -> anyhow::Result<Vec<(usize, u64, bool)>> {
        let rows = self.listing("counts", "count").await?;
        Ok(rows
            .into_iter()
            .map(|r| (r[0] as usize, r[1], r[2] == 1))
            .collect())
    }

    /// Streams closed (by the server or an error) since they were opened.
    pub async fn lost(&mut self) -> anyhow::Result<usize> {
        self.arm_wait(0, Duration::ZERO).await?;
        Ok(self.waited(Duration::ZERO).await?.lost)
    }

    /// Sends `command`, then reads `word N N N N` lines (four numbers) from every process up to
    /// its `end` line.
    async fn listing(&mut self, command: &str, word: &str) -> anyhow::Result<Vec<[u64; 4]>> {
        self.send(command).await?;
        let mut all = Vec::new();
        for p in &mut self.procs {
            let reading = async {
                while let Some(line) = p.stdout.next_line().await? {
                    let mut w = line.split_whitespace();
                    match w.next() {
                        Some("end") => return Ok(()),
                        Some(x) if x == word => {
                            let mut row = [0u64; 4];
                            for (slot, v) in row.iter_mut().zip(w) {
                                *slot = v.parse()?;
                            }
                            all.push(row);
                        }
                        _ => bail!("unexpected {line:?}"),
                    }
                }
                bail!("a generator process ended")
            };
            tokio::time::timeout(Duration::from_secs(60), reading)
                .await
                .with_context(|| format!("no complete '{command}' answer in 60 s"))??;
        }
        Ok(all)
    }

    /// Ends every process, closing its streams.
    pub async fn quit(mut self) {
        let _ = self.send("quit").await;
        for p in &mut self.procs {
            let waited = tokio::time::timeout(Duration::from_secs(10), p.child.wait()).await;
            if waited.is_err() {
                let _ = p.child.kill().await;
            }
        }
    }
}

//! Catch-up: a client that reconnects with `Last-Event-ID` while many events behind.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::clock::mono_us;
use crate::http;
use crate::publish::{self, Publisher};
use crate::sse::{event_id, marker, FrameSplitter, Framing};
use crate::target::{Markers, Target};

/// One event stream read by the driver itself.
pub struct EventStream {
    sock: TcpStream,
    framing: Framing,
    splitter: FrameSplitter,
    /// Frames that came with the response head, given by the first `next`.
    early: Vec<Vec<u8>>,
}

impl EventStream {
    /// Opens a stream from `source` (a loopback address; any when none), resuming after
    /// `last_event_id` when given.
    pub async fn open(
        target: &Target,
        source: Option<IpAddr>,
        last_event_id: Option<&str>,
    ) -> anyhow::Result<EventStream> {
        let mut sock = http::connect(target.addr, source).await?;
        let request = target.subscribe_request(last_event_id);
        sock.write_all(request.as_bytes()).await?;
        let (head, early) = http::read_head(&mut sock).await?;
        if head.status != 200 {
            bail!("stream answered {}", head.status);
        }
        let mut s = EventStream {
            sock,
            framing: Framing::new(head.chunked()),
            splitter: FrameSplitter::default(),
            early: Vec::new(),
        };
        let mut frames = Vec::new();
        s.feed(&early, &mut frames);
        s.early = frames;
        Ok(s)
    }

    fn feed(&mut self, wire: &[u8], frames: &mut Vec<Vec<u8>>) -> bool {
        let splitter = &mut self.splitter;
        self.framing
            .feed(wire, |d| splitter.feed(d, |f| frames.push(f.to_vec())))
    }

    /// The frames that arrive with the next read.
    pub async fn next(&mut self, buf: &mut [u8]) -> anyhow::Result<Vec<Vec<u8>>> {
        if !self.early.is_empty() {
            return Ok(std::mem::take(&mut self.early));
        }
        let n = self.sock.read(buf).await?;
        let mut frames = Vec::new();
        if n == 0 || !self.feed(&buf[..n], &mut frames) {
            bail!("the stream ended");
        }
        Ok(frames)
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct CatchUp {
    pub behind: usize,
    pub received: usize,
    pub ms: f64,
}

/// Notes the id of a fresh event, publishes `behind` more, then reconnects from that id and
/// times the arrival of all of them.
pub async fn run(
    target: &Target,
    markers: &Arc<Markers>,
    behind: usize,
) -> anyhow::Result<CatchUp> {
    let limit = Duration::from_secs(60);
    let key = target.kind.marker_key().as_bytes();
    let mut buf = vec![0u8; 256 * 1024];
    // Probe: the id of one event we publish now.
    let mut probe = EventStream::open(target, None, None).await?;
    let sent = Publisher::new(target).publish(markers).await;
    let id = tokio::time::timeout(limit, async {
        loop {
            for f in probe.next(&mut buf).await? {
                if marker(&f, key) == Some(sent.marker) {
                    return event_id(&f).context("the event has no id");
                }
            }
        }
    })
    .await
    .context("the probe event did not arrive")??;
    drop(probe);
    let published = publish::concurrent(target, markers, 16, behind, limit).await;
    let ok = published.iter().filter(|s| s.ok).count();
    if ok < behind {
        bail!("only {ok} of {behind} events were published");
    }
    let t0 = mono_us();
    let mut stream = EventStream::open(target, None, Some(&id)).await?;
    let mut received = 0;
    let reading = tokio::time::timeout(limit, async {
        while received < behind {
            let frames = stream.next(&mut buf).await?;
            received += frames.iter().filter(|f| marker(f, key).is_some()).count();
        }
        anyhow::Ok(())
    })
    .await;
    let ms = (mono_us() - t0) as f64 / 1000.0;
    if let Ok(Err(e)) = reading {
        eprintln!("catch-up stream: {e:#}");
    }
    Ok(CatchUp {
        behind,
        received,
        ms,
    })
}

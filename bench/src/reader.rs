//! Reader threads of a generator process: one epoll loop per thread over many streams.
//!
//! The timed thread reads as soon as data arrives and notes when each event's marker was read.
//! The lazy thread reads whatever is ready, then sleeps, so most streams are read in large,
//! infrequent chunks and the generator's reading neither limits nor flatters the server.

use std::io::{ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::Duration;

use crate::clock::mono_us;
use crate::sse::{event_id, marker, FrameCounter, FrameSplitter, Framing};

/// One event read on a timed stream.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// The stream's global index.
    pub stream: usize,
    /// The event's marker (0: none, such as a status event).
    pub marker: u64,
    /// The SSE id when it is a number (0: none).
    pub id: u64,
    /// When it was read, µs monotonic.
    pub at: u64,
}

/// One open event stream.
pub struct Stream {
    /// Position in the run's global connection order.
    pub index: usize,
    sock: Option<std::net::TcpStream>,
    framing: Framing,
    frames: FrameCounter,
    baseline: u64,
    /// Present on timed streams: whole frames, and each event read.
    timed: Option<(FrameSplitter, Vec<Sample>)>,
}

impl Stream {
    /// `early` holds body bytes that arrived with the response head.
    pub fn new(
        index: usize,
        sock: std::net::TcpStream,
        chunked: bool,
        timed: bool,
        early: &[u8],
        key: &[u8],
    ) -> Stream {
        let mut s = Stream {
            index,
            sock: Some(sock),
            framing: Framing::new(chunked),
            frames: FrameCounter::default(),
            baseline: 0,
            timed: timed.then(|| (FrameSplitter::default(), Vec::new())),
        };
        s.consume(early, key, mono_us());
        s
    }

    fn progress(&self) -> u64 {
        self.frames.count - self.baseline
    }

    /// Feeds body bytes; false when the body has ended.
    fn consume(&mut self, wire: &[u8], key: &[u8], now: u64) -> bool {
        let Stream {
            index,
            framing,
            frames,
            timed,
            ..
        } = self;
        framing.feed(wire, |data| {
            frames.feed(data);
            if let Some((splitter, samples)) = timed.as_mut() {
                splitter.feed(data, |frame| {
                    let m = marker(frame, key).unwrap_or(0);
                    let id = event_id(frame).and_then(|i| i.parse().ok()).unwrap_or(0);
                    if m != 0 || id != 0 {
                        samples.push(Sample {
                            stream: *index,
                            marker: m,
                            id,
                            at: now,
                        });
                    }
                });
            }
        })
    }

    /// Reads everything available; false once the stream has closed.
    fn drain(&mut self, buf: &mut [u8], key: &[u8]) -> bool {
        loop {
            let Some(sock) = self.sock.as_mut() else {
                return false;
            };
            match sock.read(buf) {
                Ok(0) => return false,
                Ok(n) => {
                    if !self.consume(&buf[..n], key, mono_us()) {
                        return false;
                    }
                    if n < buf.len() {
                        return true;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }
}

/// Progress of the streams of a thread towards `n` events each since the last mark.
#[derive(Debug, Default, Clone, Copy)]
pub struct WaitResult {
    pub reached: usize,
    /// Still open and short of `n`.
    pub short: usize,
    /// Closed (by the server or an error) since they were opened.
    pub lost: usize,
    /// When the last stream reached `n` (µs, monotonic).
    pub t_last: u64,
    /// Events received, each stream counting at most `n`.
    pub delivered: u64,
}

pub enum Cmd {
    /// Counts restart from zero.
    Mark(mpsc::Sender<()>),
    Wait {
        n: u64,
        deadline: u64,
        reply: mpsc::Sender<WaitResult>,
    },
    /// Every event read on timed streams since the last `Samples`.
    Samples(mpsc::Sender<Vec<Sample>>),
    /// (stream index, frames since the mark, still open) of every stream.
    Counts(mpsc::Sender<Vec<(usize, u64, bool)>>),
}

struct Waiting {
    n: u64,
    deadline: u64,
    reply: mpsc::Sender<WaitResult>,
    t_last: u64,
}

/// Starts a reader thread; it ends when its command sender is dropped.
pub fn spawn(streams: Vec<Stream>, lazy: Option<Duration>, key: Vec<u8>) -> mpsc::Sender<Cmd> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || run(streams, lazy, key, rx));
    tx
}

fn run(mut streams: Vec<Stream>, lazy: Option<Duration>, key: Vec<u8>, rx: mpsc::Receiver<Cmd>) {
    // SAFETY: plain epoll syscalls on descriptors this thread owns for its whole life.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0, "epoll_create1 failed");
    for (i, s) in streams.iter().enumerate() {
        let fd = s.sock.as_ref().map_or(-1, |s| s.as_raw_fd());
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
            u64: i as u64,
        };
        // SAFETY: `fd` is an open socket owned by `streams`; `ev` is valid for the call.
        unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) };
    }
    let mut lost = 0usize;
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut buf = vec![0u8; 64 * 1024];
    let mut waiting: Option<Waiting> = None;
    let timeout_ms = if lazy.is_some() { 20 } else { 5 };
    loop {
        // SAFETY: `events` has room for `len` entries.
        let n =
            unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, timeout_ms) };
        for ev in events.iter().take(n.max(0) as usize) {
            let s = &mut streams[ev.u64 as usize];
            let before = s.progress();
            let open = s.drain(&mut buf, &key);
            if let Some(w) = waiting.as_mut() {
                if before < w.n && s.progress() >= w.n {
                    w.t_last = mono_us();
                }
            }
            if !open {
                if let Some(sock) = s.sock.take() {
                    // SAFETY: removing a descriptor we registered, before closing it.
                    unsafe {
                        libc::epoll_ctl(
                            ep,
                            libc::EPOLL_CTL_DEL,
                            sock.as_raw_fd(),
                            std::ptr::null_mut(),
                        )
                    };
                    lost += 1;
                }
            }
        }
        if let Some(w) = waiting.take() {
            let r = tally(&streams, w.n, lost, w.t_last);
            if r.short == 0 || mono_us() >= w.deadline {
                let _ = w.reply.send(r);
            } else {
                waiting = Some(w);
            }
        }
        loop {
            match rx.try_recv() {
                Ok(Cmd::Mark(reply)) => {
                    for s in streams.iter_mut() {
                        s.baseline = s.frames.count;
                    }
                    let _ = reply.send(());
                }
                Ok(Cmd::Wait { n, deadline, reply }) => {
                    let t_last = mono_us();
                    waiting = Some(Waiting {
                        n,
                        deadline,
                        reply,
                        t_last,
                    });
                }
                Ok(Cmd::Samples(reply)) => {
                    let all = streams
                        .iter_mut()
                        .filter_map(|s| s.timed.as_mut().map(|(_, v)| std::mem::take(v)))
                        .flatten()
                        .collect();
                    let _ = reply.send(all);
                }
                Ok(Cmd::Counts(reply)) => {
                    let all = streams
                        .iter()
                        .map(|s| (s.index, s.progress(), s.sock.is_some()))
                        .collect();
                    let _ = reply.send(all);
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    // SAFETY: closing our own epoll descriptor.
                    unsafe { libc::close(ep) };
                    return;
                }
            }
        }
        if let (Some(pause), true) = (lazy, n > 0) {
            std::thread::sleep(pause);
        }
    }
}

fn tally(streams: &[Stream], n: u64, lost: usize, t_last: u64) -> WaitResult {
    let mut r = WaitResult {
        lost,
        t_last,
        ..WaitResult::default()
    };
    for s in streams {
        let p = s.progress();
        r.delivered += p.min(n);
        if p >= n {
            r.reached += 1;
        } else if s.sock.is_some() {
            r.short += 1;
        }
    }
    r
}

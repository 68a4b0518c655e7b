//! `sensorcast-bench floor`: the least a fan-out server can do. It answers `GET /sub` with an
//! event-stream head and, for each `POST /pub`, writes `data: BODY` to every stream with one
//! non-blocking `write` each, from one thread per core. No sessions, no storage, no parsing of
//! the event, no async runtime. Its latency at 4 events/s is what the kernel allows on this
//! machine when every stream gets every event in a write of its own, as sensorcast and nchan
//! must; the run reports it beside them so the latency target can be read against it.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

#[derive(Debug, Clone, clap::Args)]
pub struct FloorArgs {
    #[arg(long)]
    pub listen: SocketAddr,
    /// Writer threads (streams are dealt to them in turn).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

/// One subscriber; `pending` holds what a full socket buffer did not take, sent first next time.
struct Sub {
    sock: TcpStream,
    pending: Vec<u8>,
}

impl Sub {
    /// False once the stream is gone.
    fn send(&mut self, frame: &[u8]) -> bool {
        if !self.pending.is_empty() {
            self.pending.extend_from_slice(frame);
            let pending = std::mem::take(&mut self.pending);
            return self.write_or_keep(&pending);
        }
        self.write_or_keep(frame)
    }

    fn write_or_keep(&mut self, bytes: &[u8]) -> bool {
        let mut at = 0;
        while at < bytes.len() {
            match (&self.sock).write(&bytes[at..]) {
                Ok(0) => return false,
                Ok(n) => at += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        self.pending.extend_from_slice(&bytes[at..]);
        true
    }
}

struct Shard {
    subs: Mutex<Vec<Sub>>,
    frames: mpsc::Sender<Arc<[u8]>>,
}

pub fn main(args: FloorArgs) -> anyhow::Result<()> {
    let listener =
        TcpListener::bind(args.listen).with_context(|| format!("binding {}", args.listen))?;
    let shards: Vec<Arc<Shard>> = (0..args.threads.max(1)).map(|_| writer()).collect();
    let mut turn = 0usize;
    for conn in listener.incoming() {
        let Ok(mut sock) = conn else { continue };
        let _ = sock.set_nodelay(true);
        let _ = sock.set_read_timeout(Some(Duration::from_secs(10)));
        let mut buf = Vec::new();
        let Some(head_end) = read_head(&mut sock, &mut buf) else {
            continue;
        };
        let line = request_line(&buf);
        if line.starts_with("GET /sub") {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                        cache-control: no-cache\r\nconnection: close\r\n\r\n";
            if sock.write_all(head.as_bytes()).is_ok() && sock.set_nonblocking(true).is_ok() {
                let shard = &shards[turn % shards.len()];
                turn += 1;
                if let Ok(mut subs) = shard.subs.lock() {
                    subs.push(Sub {
                        sock,
                        pending: Vec::new(),
                    });
                }
            }
        } else if line.starts_with("POST /pub") {
            let shards = shards.clone();
            std::thread::spawn(move || publisher(sock, buf, head_end, &shards));
        } else {
            let _ = sock.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nready\n",
            );
        }
    }
    Ok(())
}

/// A shard of streams and the thread that writes each frame to all of them.
fn writer() -> Arc<Shard> {
    let (tx, rx) = mpsc::channel::<Arc<[u8]>>();
    let shard = Arc::new(Shard {
        subs: Mutex::new(Vec::new()),
        frames: tx,
    });
    let own = shard.clone();
    std::thread::spawn(move || {
        for frame in rx {
            if let Ok(mut subs) = own.subs.lock() {
                subs.retain_mut(|s| s.send(&frame));
            }
        }
    });
    shard
}

/// Serves publishes on one keep-alive connection; `buf` starts with a request head.
fn publisher(mut sock: TcpStream, mut buf: Vec<u8>, mut head_end: usize, shards: &[Arc<Shard>]) {
    let _ = sock.set_read_timeout(None);
    loop {
        let length = content_length(&buf[..head_end]).unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 16 * 1024];
            match sock.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = &buf[head_end..head_end + length];
        let mut frame = Vec::with_capacity(body.len() + 8);
        frame.extend_from_slice(b"data: ");
        frame.extend_from_slice(body);
        frame.extend_from_slice(b"\n\n");
        let frame: Arc<[u8]> = frame.into();
        for shard in shards {
            let _ = shard.frames.send(frame.clone());
        }
        if sock
            .write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
        buf.drain(..head_end + length);
        match read_head(&mut sock, &mut buf) {
            Some(end) => head_end = end,
            None => return,
        }
    }
}

/// Reads until `buf` holds a whole request head; returns where the body starts.
fn read_head(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(i) = memchr::memmem::find(buf, b"\r\n\r\n") {
            return Some(i + 4);
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let mut chunk = [0u8; 4096];
        match sock.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn request_line(buf: &[u8]) -> String {
    let end = memchr::memchr(b'\r', buf).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn content_length(head: &[u8]) -> Option<usize> {
    String::from_utf8_lossy(head).lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_reaches_every_stream_whole_and_in_order() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        std::thread::spawn(move || {
            main(FloorArgs {
                listen: addr,
                threads: 2,
            })
        });
        let connect = || loop {
            if let Ok(s) = TcpStream::connect(addr) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut subs: Vec<TcpStream> = (0..3)
            .map(|_| {
                let mut s = connect();
                s.write_all(b"GET /sub HTTP/1.1\r\nHost: x\r\n\r\n")
                    .unwrap();
                let mut buf = Vec::new();
                read_head(&mut s, &mut buf).unwrap();
                assert!(request_line(&buf).starts_with("HTTP/1.1 200"));
                s
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let mut publisher = connect();
        for body in [r#"{"ts":1}"#, r#"{"ts":2}"#] {
            let req = format!(
                "POST /pub HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            publisher.write_all(req.as_bytes()).unwrap();
            let mut answer = Vec::new();
            read_head(&mut publisher, &mut answer).unwrap();
            assert!(request_line(&answer).starts_with("HTTP/1.1 201"));
        }
        let want = b"data: {\"ts\":1}\n\ndata: {\"ts\":2}\n\n";
        for s in &mut subs {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut got = vec![0u8; want.len()];
            s.read_exact(&mut got).unwrap();
            assert_eq!(&got[..], &want[..]);
        }
    }

    #[test]
    fn content_length_is_found_whatever_its_case() {
        let head = b"POST /pub HTTP/1.1\r\ncontent-LENGTH: 42\r\n\r\n";
        assert_eq!(content_length(head), Some(42));
        assert_eq!(content_length(b"GET / HTTP/1.1\r\n\r\n"), None);
    }
}

//! Reading an SSE response body as it arrives: HTTP/1.1 chunked decoding, counting frames
//! (an SSE message ends with a blank line), and picking a marker number out of a frame.

use memchr::memmem;

/// How the response body is delimited.
#[derive(Debug)]
pub enum Framing {
    /// Bytes until the connection closes.
    Identity,
    Chunked(Chunked),
}

impl Framing {
    pub fn new(chunked: bool) -> Framing {
        if chunked {
            Framing::Chunked(Chunked::default())
        } else {
            Framing::Identity
        }
    }

    /// Passes the body bytes in `wire` to `out`; false once the body has ended.
    pub fn feed(&mut self, wire: &[u8], out: impl FnMut(&[u8])) -> bool {
        match self {
            Framing::Identity => {
                let mut out = out;
                out(wire);
                true
            }
            Framing::Chunked(c) => c.feed(wire, out),
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Size,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// After the last (empty) chunk: trailer lines, then an empty line.
    TrailerStart,
    TrailerLine,
    LastLf,
    Done,
}

/// A streaming decoder of `Transfer-Encoding: chunked`.
#[derive(Debug, Default)]
pub struct Chunked {
    state: State,
    remaining: usize,
}

impl Chunked {
    pub fn feed(&mut self, mut wire: &[u8], mut out: impl FnMut(&[u8])) -> bool {
        while !wire.is_empty() {
            if self.state == State::Data {
                let n = self.remaining.min(wire.len());
                out(&wire[..n]);
                self.remaining -= n;
                wire = &wire[n..];
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let b = wire[0];
            wire = &wire[1..];
            self.state = match (self.state, b) {
                (State::Size, b'\r') => State::SizeLf,
                (State::Size, b';') => State::Extension,
                (State::Size, _) => {
                    let digit = (b as char).to_digit(16).unwrap_or(0) as usize;
                    self.remaining = self.remaining * 16 + digit;
                    State::Size
                }
                (State::Extension, b'\r') => State::SizeLf,
                (State::Extension, _) => State::Extension,
                (State::SizeLf, _) if self.remaining == 0 => State::TrailerStart,
                (State::SizeLf, _) => State::Data,
                (State::DataCr, _) => State::DataLf,
                (State::DataLf, _) => State::Size,
                (State::TrailerStart, b'\r') => State::LastLf,
                (State::TrailerStart | State::TrailerLine, b'\n') => State::TrailerStart,
                (State::TrailerStart | State::TrailerLine, _) => State::TrailerLine,
                (State::LastLf, _) => State::Done,
                (s, _) => s,
            };
            if self.state == State::Done {
                return false;
            }
        }
        self.state != State::Done
    }
}

/// Counts SSE frames in a body stream (each ends with "\n\n"), across read boundaries.
#[derive(Debug, Default)]
pub struct FrameCounter {
    pub count: u64,
    /// The last byte seen was a newline that does not end a frame yet.
    pending_newline: bool,
}

impl FrameCounter {
    pub fn feed(&mut self, data: &[u8]) {
        let mut prev: Option<usize> = None;
        for i in memchr::memchr_iter(b'\n', data) {
            let adjacent = match prev {
                Some(p) => p + 1 == i,
                None => i == 0 && self.pending_newline,
            };
            if adjacent {
                self.count += 1;
                prev = None;
                if i == 0 {
                    self.pending_newline = false;
                }
            } else {
                prev = Some(i);
            }
        }
        self.pending_newline = match prev {
            Some(p) => p + 1 == data.len(),
            None => self.pending_newline && data.is_empty(),
        };
    }
}

/// Collects whole frames (for the timed streams, which look inside each one).
#[derive(Debug, Default)]
pub struct FrameSplitter {
    buf: Vec<u8>,
}

impl FrameSplitter {
    pub fn feed(&mut self, data: &[u8], mut frame: impl FnMut(&[u8])) {
        self.buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(end) = memmem::find(&self.buf[start..], b"\n\n") {
            frame(&self.buf[start..start + end]);
            start += end + 2;
        }
        self.buf.drain(..start);
    }
}

/// The integer after `key` in a frame, e.g. `"ts":` → 1742872448000.
pub fn marker(frame: &[u8], key: &[u8]) -> Option<u64> {
    let at = memmem::find(frame, key)? + key.len();
    let digits = frame[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&frame[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// The value of a frame's `id:` field.
pub fn event_id(frame: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(frame).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("id:"))
        .map(|v| v.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_decode_across_any_split() {
        let wire = b"5\r\nhello\r\n7;x=y\r\n, world\r\n0\r\nX-T: 1\r\n\r\n";
        for split in 0..wire.len() {
            let mut c = Chunked::default();
            let mut out = Vec::new();
            let open = c.feed(&wire[..split], |d| out.extend_from_slice(d));
            let open = open && c.feed(&wire[split..], |d| out.extend_from_slice(d));
            assert_eq!(out, b"hello, world", "split at {split}");
            assert!(!open, "split at {split}");
        }
    }

    #[test]
    fn frames_counted_across_any_split() {
        let body = b"data: a\n\nid: 1\ndata: b\n\nid: 2\ndata: c\n\n";
        for split in 0..body.len() {
            let mut f = FrameCounter::default();
            f.feed(&body[..split]);
            f.feed(&body[split..]);
            assert_eq!(f.count, 3, "split at {split}");
        }
    }

    #[test]
    fn markers_and_ids() {
        let frame = br#"id: 1700000000:3
data: {"type":"x","ts":1742872448000,"more":1}"#;
        assert_eq!(marker(frame, br#""ts":"#), Some(1742872448000));
        assert_eq!(event_id(frame).as_deref(), Some("1700000000:3"));
        let mut s = FrameSplitter::default();
        let mut n = 0;
        s.feed(b"data: a\n\ndata: b\n", |_| n += 1);
        s.feed(b"\n", |f| {
            assert_eq!(f, b"data: b");
            n += 1
        });
        assert_eq!(n, 2);
    }
}

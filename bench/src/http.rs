//! A minimal HTTP/1.1 client over raw TCP: enough for keep-alive requests (webhooks, sign-in,
//! publishing) and for opening event streams, with nothing between us and the socket.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::sse::Framing;

/// Longest any single request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Connects to `addr`, from `source` (a loopback address, any port) when given.
pub async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> anyhow::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = tokio::time::timeout(REQUEST_TIMEOUT, socket.connect(addr))
        .await
        .context("connect timed out")??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Status line and headers of a response.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    fn parse(raw: &[u8]) -> anyhow::Result<Head> {
        let text = std::str::from_utf8(raw).context("response head is not UTF-8")?;
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {status_line:?}"))?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Ok(Head { status, headers })
    }
}

/// Reads up to the end of the response head; returns it and the body bytes read with it.
pub async fn read_head(stream: &mut TcpStream) -> anyhow::Result<(Head, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = memchr::memmem::find(&buf, b"\r\n\r\n") {
            let head = Head::parse(&buf[..end])?;
            return Ok((head, buf[end + 4..].to_vec()));
        }
        if buf.len() > 64 * 1024 {
            bail!("response head too large");
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed before the response head");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A whole response.
#[derive(Debug)]
pub struct Response {
    pub head: Head,
    pub body: Vec<u8>,
}

/// One keep-alive connection for request/response traffic.
pub struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Conn {
        Conn { addr, stream: None }
    }

    /// Sends `request` (a complete HTTP/1.1 message) and reads the whole answer.
    pub async fn send(&mut self, request: &[u8]) -> anyhow::Result<Response> {
        let result = tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(request)).await;
        match result {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.stream = None;
                Err(e)
            }
            Err(_) => {
                self.stream = None;
                bail!("request timed out")
            }
        }
    }

    async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<Response> {
        // A server may close a keep-alive connection that sat idle (sensorcast after 30 s);
        // like any HTTP client, notice that before reusing it rather than fail the request.
        if self.stream.as_ref().is_some_and(|s| !still_open(s)) {
            self.stream = None;
        }
        if self.stream.is_none() {
            self.stream = Some(connect(self.addr, None).await?);
        }
        let stream = self.stream.as_mut().expect("connected above");
        stream.write_all(request).await?;
        let (head, mut body) = read_head(stream).await?;
        let body = if let Some(len) = head.header("content-length") {
            let len: usize = len.parse().context("bad content-length")?;
            while body.len() < len {
                let mut chunk = vec![0u8; len - body.len()];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    bail!("connection closed inside the body");
                }
                body.extend_from_slice(&chunk[..n]);
            }
            body
        } else if head.chunked() {
            read_chunked(stream, body).await?
        } else {
            stream.read_to_end(&mut body).await?;
            self.stream = None;
            body
        };
        if head
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
        {
            self.stream = None;
        }
        Ok(Response { head, body })
    }
}

/// An idle keep-alive connection is still usable: nothing to read, not even its end.
fn still_open(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

async fn read_chunked(stream: &mut TcpStream, first: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    let mut framing = Framing::new(true);
    let mut body = Vec::new();
    let mut open = framing.feed(&first, |d| body.extend_from_slice(d));
    let mut chunk = [0u8; 8192];
    while open {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed inside a chunked body");
        }
        open = framing.feed(&chunk[..n], |d| body.extend_from_slice(d));
    }
    Ok(body)
}

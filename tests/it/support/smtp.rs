//! A real SMTP server for the tests: Python's aiosmtpd (from PyPI; `.ci/run` installs it),
//! writing every message it accepts into a maildir the test reads. Where it is missing the test
//! says so loudly and skips, unless SENSORCAST_REQUIRE_SMTP=1 (CI).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct SmtpServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

fn available() -> bool {
    Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl SmtpServer {
    /// Starts one on `port` (0: a free one), or `None` (loudly) when aiosmtpd is not installed.
    pub async fn start(port: u16) -> Option<SmtpServer> {
        if !available() {
            if std::env::var("SENSORCAST_REQUIRE_SMTP").is_ok_and(|v| v == "1") {
                panic!("SENSORCAST_REQUIRE_SMTP=1 but aiosmtpd is missing: pip install aiosmtpd");
            }
            eprintln!("\n*** SKIPPED: SMTP test — no aiosmtpd (pip install aiosmtpd) ***\n");
            return None;
        }
        let port = if port == 0 { super::free_port() } else { port };
        let dir = tempfile::tempdir().expect("maildir");
        let mut child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("mail"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(SmtpServer { port, dir, child });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("aiosmtpd did not start on port {port}");
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, as text.
    pub fn messages(&self) -> Vec<String> {
        let new: PathBuf = self.dir.path().join("mail").join("new");
        let mut out: Vec<String> = std::fs::read_dir(new)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Waits until at least `n` messages arrived (or 15 s passed); returns them.
    pub async fn wait_for(&self, n: usize) -> Vec<String> {
        for _ in 0..300 {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.messages()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The message's recipient (`X-RcptTo` as aiosmtpd's Mailbox keeps it, or `To`).
pub fn recipient(message: &str) -> String {
    message
        .lines()
        .find_map(|l| l.strip_prefix("To: "))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// The message with quoted-printable undone (soft line breaks joined, `=XX` decoded), so a
/// test can look for a line however the mailer wrapped it.
pub fn unfolded(message: &str) -> String {
    let joined = message.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

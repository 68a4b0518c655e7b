//! The real sensorcast binary as a child process, for tests that kill it (SIGKILL) and start
//! it again on the same database.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{ADMIN_EMAIL, PASSWORD, SECRET};

/// The real binary as a child process; killed (SIGKILL) when dropped.
pub struct Binary {
    child: std::process::Child,
    pub base: String,
    log: PathBuf,
}

impl Binary {
    pub fn start(database_url: &str, port: u16, log: &Path) -> Binary {
        Binary::start_with(database_url, port, log, &[])
    }

    /// The same, with more flags.
    pub fn start_with(database_url: &str, port: u16, log: &Path, extra: &[&str]) -> Binary {
        let log_file = std::fs::File::create(log).expect("log file");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_sensorcast"))
            .args([
                "--database-url",
                database_url,
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--webhook-secret",
                SECRET,
                "--cookie-secure",
                "false",
                "--admin-email",
                ADMIN_EMAIL,
                "--admin-password",
                PASSWORD,
            ])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start sensorcast");
        Binary {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log: log.to_path_buf(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = log.len().saturating_sub(4_000);
        let start = (start..log.len())
            .find(|i| log.is_char_boundary(*i))
            .unwrap_or(0);
        log[start..].to_string()
    }

    /// Waits until `/readyz` answers 200.
    pub async fn ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = reqwest::Client::new();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sensorcast exited ({status}):\n{}", self.log_tail());
            }
            let probe = client.get(format!("{}/readyz", self.base)).send();
            if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(2), probe).await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "sensorcast not ready within 60 s:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, and reap the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        self.kill();
    }
}

//! Starting and stopping the servers under test, each in its own temporary directory, and
//! reading their memory use.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

use crate::http::Conn;
use crate::target::{Kind, Target, NCHAN_CHANNEL, WEBHOOK_SECRET};

const ADMIN_EMAIL: &str = "bench@example.com";
const ADMIN_PASSWORD: &str = "bench password, not secret";
/// Debian's libnginx-mod-nchan.
pub const NCHAN_MODULE: &str = "/usr/lib/nginx/modules/ngx_nchan_module.so";

pub struct Server {
    pub target: Target,
    child: Child,
    dir: tempfile::TempDir,
    /// How to start it again (sensorcast): the program and its arguments.
    command: Option<(PathBuf, Vec<String>)>,
}

/// Starts `cmd` (killed when the server is dropped) and waits until `ready` answers 200.
async fn launch(
    kind: Kind,
    mut cmd: Command,
    dir: tempfile::TempDir,
    addr: SocketAddr,
    ready: &str,
) -> anyhow::Result<Server> {
    let child = cmd
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", kind.name()))?;
    let mut server = Server {
        target: Target {
            kind,
            addr,
            cookie: None,
        },
        child,
        dir,
        command: None,
    };
    server.wait_ready(ready).await?;
    Ok(server)
}

/// A free loopback port (bound, then released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Server {
    /// sensorcast on a fresh database: a temporary SQLite file unless `database_url` is given.
    pub async fn sensorcast(bin: &Path, database_url: Option<&str>) -> anyhow::Result<Server> {
        Server::sensorcast_with(bin, database_url, &[]).await
    }

    /// The same, with more flags.
    pub async fn sensorcast_with(
        bin: &Path,
        database_url: Option<&str>,
        extra: &[&str],
    ) -> anyhow::Result<Server> {
        let dir = tempfile::tempdir()?;
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
        let log = dir.path().join("sensorcast.log");
        let mut args: Vec<String> = vec!["--listen".into(), addr.to_string()];
        args.extend([
            "--database-url".into(),
            database_url.unwrap_or(&sqlite).into(),
        ]);
        args.extend(["--webhook-secret".into(), WEBHOOK_SECRET.into()]);
        args.extend(
            [
                "--admin-email",
                ADMIN_EMAIL,
                "--admin-password",
                ADMIN_PASSWORD,
            ]
            .map(String::from),
        );
        args.extend(["--cookie-secure", "false"].map(String::from));
        args.extend(["--max-streams", "0", "--max-streams-per-user", "0"].map(String::from));
        // No keepalive during a run, so every frame a stream reads is an event.
        args.extend(["--keepalive-secs", "3600"].map(String::from));
        args.extend(extra.iter().map(|a| a.to_string()));
        let cmd = sensorcast_command(bin, &args, &log)?;
        let mut server = launch(Kind::Sensorcast, cmd, dir, addr, "/healthz").await?;
        server.command = Some((bin.to_path_buf(), args));
        server.target.cookie = Some(sign_in(addr).await?);
        Ok(server)
    }

    /// nginx with nchan: 2 workers, one channel, EventSource subscribers.
    pub async fn nchan(max_files: u64) -> anyhow::Result<Server> {
        if !Path::new(NCHAN_MODULE).exists() {
            bail!("{NCHAN_MODULE} is missing: apt-get install -y libnginx-mod-nchan nginx");
        }
        let dir = tempfile::tempdir()?;
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, nginx_conf(dir.path(), addr, max_files))?;
        let mut cmd = Command::new("nginx");
        cmd.arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdout(Stdio::null());
        launch(Kind::Nchan, cmd, dir, addr, "/ready").await
    }

    /// The floor (`sensorcast-bench floor`, this program), one writer thread per core.
    pub async fn floor(exe: &Path) -> anyhow::Result<Server> {
        let dir = tempfile::tempdir()?;
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let log = std::fs::File::create(dir.path().join("floor.log"))?;
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut cmd = Command::new(exe);
        cmd.args(["floor", "--listen", &addr.to_string()])
            .args(["--threads", &threads.to_string()])
            .stdout(log.try_clone()?)
            .stderr(log);
        launch(Kind::Floor, cmd, dir, addr, "/ready").await
    }

    async fn wait_ready(&mut self, path: &str) -> anyhow::Result<()> {
        let started = Instant::now();
        let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.target.addr);
        while started.elapsed() < Duration::from_secs(60) {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited at start ({status})", self.target.kind.name());
            }
            let mut conn = Conn::new(self.target.addr);
            if matches!(conn.send(req.as_bytes()).await, Ok(r) if r.head.status == 200) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("{} did not become ready in 60 s", self.target.kind.name())
    }

    /// Resident memory of the server, its worker processes included, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let Some(pid) = self.child.id() else {
            return 0;
        };
        let mut pids = vec![pid];
        pids.extend(children_of(pid));
        pids.iter().map(|p| status_kib(*p, "VmRSS:")).sum()
    }

    /// The server's own resident memory split as /proc/PID/status does, in KiB: anonymous
    /// (heap, stacks) and file-backed plus shared (mapped files such as SQLite's `-shm`).
    pub fn rss_split_kib(&self) -> (u64, u64) {
        let Some(pid) = self.child.id() else {
            return (0, 0);
        };
        let file = status_kib(pid, "RssFile:") + status_kib(pid, "RssShmem:");
        (status_kib(pid, "RssAnon:"), file)
    }

    /// CPU time used so far by the server and its workers (user + system), in µs.
    pub fn cpu_us(&self) -> u64 {
        let Some(pid) = self.child.id() else {
            return 0;
        };
        let mut pids = vec![pid];
        pids.extend(children_of(pid));
        cpu_us_of(&pids)
    }

    pub fn log_path(&self) -> PathBuf {
        let name = match self.target.kind {
            Kind::Sensorcast => "sensorcast.log",
            Kind::Nchan => "error.log",
            Kind::Floor => "floor.log",
        };
        self.dir.path().join(name)
    }

    /// The SQLite database of a sensorcast started without a database URL.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let (_, args) = self.command.as_ref()?;
        let url = args.iter().skip_while(|a| *a != "--database-url").nth(1)?;
        url.strip_prefix("sqlite://").map(PathBuf::from)
    }

    /// SIGTERM, and waits for the exit (SIGKILL after 10 s); returns how long it took. The
    /// database and the port stay for `start_again`.
    pub async fn terminate(&mut self) -> anyhow::Result<Duration> {
        let t0 = Instant::now();
        if let Some(pid) = self.child.id() {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
            bail!(
                "{} did not stop within 10 s of SIGTERM",
                self.target.kind.name()
            );
        }
        Ok(t0.elapsed())
    }

    /// Starts the same sensorcast again (same port, same database, its log appended) and
    /// returns when `/healthz` answers, probed every 5 ms.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        let (bin, args) = self
            .command
            .as_ref()
            .context("only sensorcast starts again")?;
        let mut cmd = sensorcast_command(bin, args, &self.log_path())?;
        self.child = cmd.kill_on_drop(true).spawn()?;
        let req = format!(
            "GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n",
            self.target.addr
        );
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if let Some(status) = self.child.try_wait()? {
                bail!("sensorcast exited at start ({status})");
            }
            let mut conn = Conn::new(self.target.addr);
            if matches!(conn.send(req.as_bytes()).await, Ok(r) if r.head.status == 200) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        bail!("sensorcast did not answer within 60 s of starting again")
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        let done = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        if done.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

/// sensorcast with `args`, its output appended to `log`.
fn sensorcast_command(bin: &Path, args: &[String], log: &Path) -> anyhow::Result<Command> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env("RUST_LOG", "warn")
        .stdout(log.try_clone()?)
        .stderr(log);
    Ok(cmd)
}

fn nginx_conf(dir: &Path, addr: SocketAddr, max_files: u64) -> String {
    let d = dir.display();
    format!(
        r#"load_module {NCHAN_MODULE};
daemon off;
master_process on;
worker_processes 2;
worker_rlimit_nofile {max_files};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections {max_files};
}}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    nchan_max_reserved_memory 256M;
    server {{
        listen {addr} backlog=4096;
        location = /ready {{ return 200 "ready\n"; }}
        location = /sub {{
            nchan_subscriber eventsource;
            nchan_channel_id {NCHAN_CHANNEL};
            nchan_subscriber_first_message newest;
        }}
        location = /pub {{
            nchan_publisher;
            nchan_channel_id {NCHAN_CHANNEL};
            nchan_message_buffer_length 20000;
            nchan_message_timeout 1h;
        }}
    }}
}}
"#
    )
}

/// Signs in through the form (echoing its hidden fields, such as the anti-forgery token) and
/// returns the `Cookie:` value of the new session.
async fn sign_in(addr: SocketAddr) -> anyhow::Result<String> {
    let mut conn = Conn::new(addr);
    let get = format!("GET /login HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let page = conn.send(get.as_bytes()).await?;
    // Every cookie the form set (the anti-forgery nonce of a signed-out visitor among them).
    let visitor = all_cookies(&page.head);
    let mut fields = hidden_inputs(&String::from_utf8_lossy(&page.body));
    fields.push(("email".into(), ADMIN_EMAIL.into()));
    fields.push(("password".into(), ADMIN_PASSWORD.into()));
    let body = fields
        .iter()
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let cookie = visitor
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "POST /login HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\n{cookie}\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = conn.send(req.as_bytes()).await?;
    if r.head.status != 303 {
        bail!("sign-in answered {}", r.head.status);
    }
    session_cookie(&r.head).context("sign-in set no session cookie")
}

fn all_cookies(head: &crate::http::Head) -> Option<String> {
    let cookies: Vec<&str> = head
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, v)| v.split(';').next())
        .collect();
    (!cookies.is_empty()).then(|| cookies.join("; "))
}

fn session_cookie(head: &crate::http::Head) -> Option<String> {
    head.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| {
            v.split(';')
                .next()
                .filter(|c| c.starts_with("sensorcast_session="))
        })
        .map(str::to_string)
}

/// The anti-forgery token of the signed-in page at `path`, read over `conn`.
pub async fn page_csrf(conn: &mut Conn, target: &Target, path: &str) -> anyhow::Result<String> {
    let cookie = target.cookie.as_deref().context("no session")?;
    let addr = target.addr;
    let get = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\n\r\n");
    let page = conn.send(get.as_bytes()).await?;
    hidden_inputs(&String::from_utf8_lossy(&page.body))
        .into_iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v)
        .with_context(|| format!("no anti-forgery token on {path}"))
}

/// (name, value) of every `<input type="hidden" …>` in a page.
pub fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    let attr = |tag: &str, name: &str| {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        let len = tag[start..].find('"')?;
        Some(tag[start..start + len].to_string())
    };
    html.split("<input")
        .skip(1)
        .filter_map(|rest| {
            let tag = &rest[..rest.find('>')?];
            if attr(tag, "type")? != "hidden" {
                return None;
            }
            Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default()))
        })
        .collect()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A `… kB` field of /proc/PID/status, such as `VmRSS:`.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Fields of /proc/PID/stat after the parenthesised command name.
fn stat_fields(pid: u32) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| Some(s[s.rfind(')')? + 2..].to_string()))
        .map(|rest| rest.split(' ').map(str::to_string).collect())
        .unwrap_or_default()
}

/// CPU time (user and system) of these processes, in µs.
pub fn cpu_us_of(pids: &[u32]) -> u64 {
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    pids.iter().map(|p| cpu_ticks(*p)).sum::<u64>() * 1_000_000 / tick
}

/// Idle and total time of the whole machine so far, in clock ticks (/proc/stat).
pub fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (idle, v.iter().take(8).sum())
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let f = stat_fields(pid);
    // After the name: state is field 3 of stat(5), so utime (14) and stime (15) are 11 and 12.
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// Direct children of `pid` (nginx's workers).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| stat_fields(*p).get(1).and_then(|v| v.parse().ok()) == Some(pid))
        .collect()
}

//! SQLite on a file system that fills up (a small tmpfs): webhooks answer 503 `unavailable`,
//! nothing partial is stored, the server stays up, and once space is freed the next webhook is
//! stored without a restart.
//!
//! Why this is safe: in WAL mode a commit is one append of its pages to the `-wal` file and
//! the database file changes only at a checkpoint, which copies whole committed transactions.
//! A write that hits ENOSPC fails the commit before its commit frame is written, so readers
//! never see it and SQLite rolls it back; a failed checkpoint leaves the WAL as it was.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{DEV, EUI};
use crate::support::binary::Binary;
use crate::support::*;

/// Room for the migrated database and its WAL; the filler takes whatever is left.
const TMPFS_SIZE: &str = "size=16m";
/// Webhooks that may still fit in WAL space SQLite already holds (a WAL restarted after a
/// checkpoint is overwritten in place, without asking the file system for more).
const MAX_BEFORE_FULL: usize = 3_000;

/// A tmpfs mounted on a temporary directory, unmounted when dropped.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    /// None (loudly) when it cannot be mounted here, unless SENSORCAST_REQUIRE_DISKFULL=1.
    fn mount() -> Option<SmallFs> {
        let dir = tempfile::tempdir().expect("mount point");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", TMPFS_SIZE, "tmpfs"])
            .arg(dir.path())
            .output();
        let why = match out {
            Ok(o) if o.status.success() => return Some(SmallFs { dir }),
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => e.to_string(),
        };
        if std::env::var("SENSORCAST_REQUIRE_DISKFULL").is_ok_and(|v| v == "1") {
            panic!("a tmpfs is required (SENSORCAST_REQUIRE_DISKFULL=1) but mount failed: {why}");
        }
        eprintln!(
            "\n*** SKIPPED: disk-full test — cannot mount a tmpfs ({why}); run as root. ***\n"
        );
        None
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        // Lazy: a server killed a moment ago may still hold its files open.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes zeros to `path` until the file system says it is full; the bytes written.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filler: {e}"),
        }
    }
    written
}

async fn count(db: &Db, table: &str) -> i64 {
    query_ids(db, &format!("SELECT count(*) FROM {table}")).await[0]
}

/// Readings, events and deliveries: once the device is known, one of each per stored webhook.
async fn stored(url: &str) -> [i64; 3] {
    let db = Db::connect(url).await;
    let counts = [
        count(&db, "readings").await,
        count(&db, "events").await,
        count(&db, "deliveries").await,
    ];
    if let Db::Sqlite(pool) = db {
        pool.close().await;
    }
    counts
}

/// A signed webhook; its status and body, within 20 s.
async fn send(client: &reqwest::Client, base: &str, n: usize) -> (u16, String) {
    let body = mdp_reading(&format!("full-{n:05}"), DEV, EUI, 5.0, 6.0);
    let s = Signed::now();
    let send = mdp_request(client, base, &body, &s.ts, &s.nonce, &s.sig).send();
    let r = tokio::time::timeout(Duration::from_secs(20), send)
        .await
        .expect("an answer within 20 s")
        .expect("the server answers");
    let status = r.status().as_u16();
    let text = tokio::time::timeout(Duration::from_secs(20), r.text())
        .await
        .expect("a body within 20 s")
        .expect("body");
    (status, text)
}

fn assert_unavailable(status: u16, text: &str, what: &str) {
    assert_eq!(status, 503, "{what}: {text}");
    let body: serde_json::Value = serde_json::from_str(text).expect("JSON error");
    assert_eq!(body["error"], "unavailable", "{what}: {body}");
    assert_no_internal_detail(text, what);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_stores_nothing_partial_and_recovers() {
    let _turn = shared_turn().await;
    let Some(fs) = SmallFs::mount() else {
        return;
    };
    let url = format!("sqlite://{}", fs.path().join("test.db").display());
    let logs = tempfile::tempdir().expect("log dir");
    let mut server = Binary::start(&url, free_port(), &logs.path().join("server.log"));
    server.ready().await;
    let (base, client) = (server.base.clone(), reqwest::Client::new());
    assert_eq!(send(&client, &base, 0).await.0, 200);
    let before = stored(&url).await;
    let plus = |k: i64| before.map(|c| c + k);

    let filler: PathBuf = fs.path().join("filler");
    let filled = fill(&filler);
    assert!(filled > 0, "the filler took the free space");

    // Until the first 503, webhooks may still fit in space SQLite already holds.
    let (mut n, mut answered) = (1, 0);
    let started = Instant::now();
    let (status, text) = loop {
        let (status, text) = send(&client, &base, n).await;
        n += 1;
        if status != 200 {
            break (status, text);
        }
        answered += 1;
        assert!(
            n < MAX_BEFORE_FULL && started.elapsed() < Duration::from_secs(60),
            "{n} webhooks stored on a full disk:\n{}",
            server.log_tail()
        );
    };
    assert_unavailable(status, &text, "the first webhook that does not fit");
    for _ in 0..3 {
        let (status, text) = send(&client, &base, n).await;
        n += 1;
        assert_unavailable(status, &text, "a webhook while the disk is still full");
    }
    let r = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the server stays up");
    assert_eq!(
        stored(&url).await,
        plus(answered),
        "every webhook answered 200 is stored whole, nothing of the others"
    );

    std::fs::remove_file(&filler).expect("remove filler");
    let (status, text) = send(&client, &base, n).await;
    assert_eq!(status, 200, "the next webhook once space is freed: {text}");
    assert_eq!(stored(&url).await, plus(answered + 1));
    eprintln!(
        "disk full: {filled} filler bytes; {} webhooks stored after the filler, then 503; \
         recovered without a restart",
        answered
    );
    drop(server);
}

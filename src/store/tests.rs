//! The write path on both databases: a group of jobs stored in one transaction must give the
//! same answers, rows and events as the same jobs stored one by one.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::group::{OfflinePolicy, Rejection, Work};
use super::notifications::Attempt;
use super::{Db, Store};
use crate::domain::{
    Batch, Change, Delivery, DeviceIdentity, DeviceStatus, EventRow, NewReading, Outcome, Values,
};

const POLICY: OfflinePolicy = OfflinePolicy {
    default_interval_s: 60,
    grace_s: 0,
};

/// A fresh database, removed when dropped (PostgreSQL: None when no server is reachable).
struct TestDb {
    db: Db,
    /// SQLite: the writer's own connection (as writer.rs opens it).
    writer: Option<std::sync::Mutex<rusqlite::Connection>>,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.db");
        let db = Store::open(&format!("sqlite://{}", path.display()))
            .await
            .expect("sqlite")
            .db;
        let writer = super::connect::sqlite_writer(&path).expect("writer connection");
        TestDb {
            db,
            writer: Some(std::sync::Mutex::new(writer)),
            _dir: Some(dir),
            pg_name: None,
        }
    }

    async fn postgres() -> Option<TestDb> {
        let base = std::env::var("SENSORCAST_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        // The maintenance database is only used to create ours: connect without migrating it.
        let admin = match sqlx::PgPool::connect(&format!("{base}/postgres")).await {
            Ok(pool) => pool,
            other => {
                if std::env::var("SENSORCAST_REQUIRE_PG").is_ok_and(|v| v == "1") {
                    panic!("PostgreSQL is required but unreachable at {base}: {other:?}");
                }
                eprintln!("\n*** SKIPPED: PostgreSQL store test — no server at {base}. ***\n");
                return None;
            }
        };
        let name = format!("sensorcast_store_test_{:016x}", rand::random::<u64>());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("create database");
        admin.close().await;
        Some(TestDb {
            db: Store::open(&format!("{base}/{name}"))
                .await
                .expect("postgres")
                .db,
            writer: None,
            _dir: None,
            pg_name: Some(name),
        })
    }

    async fn drop_pg(self) {
        Store {
            db: self.db.clone(),
            instance: 0,
        }
        .close()
        .await;
        if let Some(name) = self.pg_name {
            let base = std::env::var("SENSORCAST_TEST_PG")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
            if let Ok(admin) = sqlx::PgPool::connect(&format!("{base}/postgres")).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&admin)
                    .await;
            }
        }
    }

    async fn apply(
        &self,
        works: &[Work],
        now_ms: i64,
    ) -> (Vec<Result<Outcome, Rejection>>, Vec<EventRow>) {
        let works: Vec<&Work> = works.iter().collect();
        match (&self.db, &self.writer) {
            (Db::Sqlite(_), Some(writer)) => {
                let mut conn = writer.lock().expect("writer connection");
                super::write_sqlite::apply_jobs(&mut conn, &works, now_ms, POLICY).expect("apply")
            }
            // The PostgreSQL writer waits with `block_on`, as on its own thread.
            (Db::Postgres(pool), _) => tokio::task::block_in_place(|| {
                let rt = tokio::runtime::Handle::current();
                let waiter = super::write_postgres::Waiter::Shared(&rt);
                let config = super::write_postgres::writer_config(&pool.connect_options());
                let mut conn = super::write_postgres::PgWriteConn::connect(waiter, &config, 0)
                    .expect("a connection");
                super::write_postgres::apply_jobs(waiter, &mut conn, &works, now_ms, POLICY)
            })
            .expect("apply"),
            _ => unreachable!("a SQLite test database has its writer connection"),
        }
    }

    /// Every table the writer fills, as text, rows in a fixed order. Reading ids are left out:
    /// a key stored already uses up an id when tried again (both databases), so a group, which
    /// tries each key once, leaves fewer gaps.
    async fn dump(&self) -> Vec<String> {
        type DeviceCols = (
            i64,
            Option<String>,
            Option<String>,
            String,
            String,
            String,
            Option<i64>,
            Option<i64>,
        );
        let devices: Vec<DeviceCols> = self
            .fetch(
                "SELECT id, dev_eui, milesight_id, name, model, status, last_seen_ms, \
                 report_interval_s FROM devices ORDER BY id",
            )
            .await;
        let readings: Vec<(i64, String, bool, i64, Option<f64>)> = self
            .fetch(
                "SELECT device_id, dedup_key, historical, received_ms, temperature \
                 FROM readings ORDER BY id",
            )
            .await;
        let events: Vec<(i64, String, i64, i64, String)> = self
            .fetch("SELECT id, kind, device_id, created_ms, json FROM events ORDER BY id")
            .await;
        let deliveries: Vec<(String, i64)> = self
            .fetch("SELECT dedup_key, received_ms FROM deliveries ORDER BY dedup_key")
            .await;
        let nonces: Vec<(String, String, i64)> = self
            .fetch(
                "SELECT webhook_uuid, nonce, seen_ms FROM webhook_nonces \
                 ORDER BY webhook_uuid, nonce",
            )
            .await;
        // On PostgreSQL these tables have no foreign keys (migration 0022): the writer is what
        // keeps them pointing at rows that exist.
        let orphans: Vec<(String, i64)> = self
            .fetch(
                "SELECT 'reading', r.id FROM readings r \
                 LEFT JOIN devices d ON d.id = r.device_id WHERE d.id IS NULL \
                 UNION ALL SELECT 'event', e.id FROM events e \
                 LEFT JOIN devices d ON d.id = e.device_id \
                 LEFT JOIN sites s ON s.id = e.site_id \
                 WHERE d.id IS NULL OR (e.site_id IS NOT NULL AND s.id IS NULL) \
                 UNION ALL SELECT 'summary', s.device_id FROM reading_summaries s \
                 LEFT JOIN devices d ON d.id = s.device_id WHERE d.id IS NULL",
            )
            .await;
        assert!(
            orphans.is_empty(),
            "rows naming no device or site: {orphans:?}"
        );
        let mut out = Vec::new();
        out.extend(devices.iter().map(|r| format!("device {r:?}")));
        out.extend(readings.iter().map(|r| format!("reading {r:?}")));
        out.extend(events.iter().map(|r| format!("event {r:?}")));
        out.extend(deliveries.iter().map(|r| format!("delivery {r:?}")));
        out.extend(nonces.iter().map(|r| format!("nonce {r:?}")));
        out
    }

    /// The event log as (id, json).
    async fn events(&self) -> Vec<(i64, String)> {
        self.fetch("SELECT id, json FROM events ORDER BY id").await
    }

    async fn fetch<T>(&self, sql: &str) -> Vec<T>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + Send
            + Unpin,
    {
        match &self.db {
            Db::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await,
            Db::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await,
        }
        .expect(sql)
    }
}

fn eui(k: u32) -> String {
    format!("24e124707e04000{k}")
}

fn ms_id(k: u32) -> String {
    format!("660000000000000000{k}")
}

fn reading(key: &str, temperature: f64, historical: bool) -> Change {
    Change::Reading(NewReading {
        dedup_key: key.into(),
        source: "mdp",
        event_type: "DEVICE_DATA".into(),
        historical,
        measured_ms: 1_000,
        values: Values {
            temperature: Some(temperature),
            ..Values::default()
        },
        alarms: None,
        device_alarms: Vec::new(),
        raw: "{}".into(),
    })
}

fn delivery(key: Option<&str>, device: DeviceIdentity, changes: Vec<Change>) -> Delivery {
    Delivery {
        key: key.map(str::to_string),
        source: "mdp",
        event_type: "DEVICE_DATA".into(),
        detail: None,
        device: Some(device),
        changes,
    }
}

fn by_eui(k: u32) -> DeviceIdentity {
    DeviceIdentity {
        dev_eui: Some(eui(k)),
        name: Some(format!("probe {k}")),
        model: Some("TS302".into()),
        ..DeviceIdentity::default()
    }
}

fn batch(nonce: Option<&str>, deliveries: Vec<Delivery>) -> Work {
    Work::Batch(Batch {
        nonce: nonce.map(|n| ("uuid-1".to_string(), n.to_string())),
        deliveries,
    })
}

/// A random job over a few devices, keys and nonces, so that jobs of one group often meet.
fn random_work(rng: &mut StdRng) -> Work {
    if rng.gen_ratio(1, 25) {
        return Work::MarkSilent;
    }
    let deliveries = (0..rng.gen_range(1..=3))
        .map(|_| {
            let k = rng.gen_range(0..3);
            let device = DeviceIdentity {
                dev_eui: rng.gen_bool(0.7).then(|| eui(k)),
                milesight_id: rng.gen_bool(0.5).then(|| ms_id(rng.gen_range(0..3))),
                name: match rng.gen_range(0..4) {
                    0 => None,
                    1 => Some(format!("renamed {k}")),
                    _ => Some(format!("probe {k}")),
                },
                model: rng.gen_bool(0.8).then(|| "TS302".to_string()),
            };
            let changes = (0..rng.gen_range(0..=2))
                .map(|_| match rng.gen_range(0..10) {
                    0 => Change::Status(DeviceStatus::Offline),
                    1 => Change::Status(DeviceStatus::Online),
                    2 => Change::ReportInterval(rng.gen_range(1..5) * 60),
                    n => reading(
                        &format!("r{}", rng.gen_range(0..40)),
                        f64::from(rng.gen_range(-200..300)) / 10.0,
                        n == 3,
                    ),
                })
                .collect();
            let key = rng
                .gen_bool(0.9)
                .then(|| format!("k{}", rng.gen_range(0..60)));
            delivery(key.as_deref(), device, changes)
        })
        .collect();
    let nonce = rng
        .gen_bool(0.8)
        .then(|| format!("n{}", rng.gen_range(0..80)));
    batch(nonce.as_deref(), deliveries)
}

async fn grouped_equals_one_by_one(grouped: TestDb, single: TestDb) {
    for seed in 0..4u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut now = 1_000_000 + seed as i64 * 10_000_000;
        let mut ids_seen = 0;
        for _ in 0..12 {
            now += rng.gen_range(1..200) * 1_000;
            let works: Vec<Work> = (0..rng.gen_range(1..=40))
                .map(|_| random_work(&mut rng))
                .collect();
            let (results, frames) = grouped.apply(&works, now).await;
            let mut one_by_one = (Vec::new(), Vec::new());
            for work in works {
                let (r, f) = single.apply(std::slice::from_ref(&work), now).await;
                one_by_one.0.extend(r);
                one_by_one.1.extend(f);
            }
            assert_eq!(
                format!("{results:?}"),
                format!("{:?}", one_by_one.0),
                "seed {seed}"
            );
            assert_eq!(
                format!("{frames:?}"),
                format!("{:?}", one_by_one.1),
                "seed {seed}"
            );
            assert!(frames.iter().all(|f| f.id > ids_seen), "ids increase");
            ids_seen = frames.last().map_or(ids_seen, |f| f.id);
        }
        let (a, b) = (grouped.dump().await, single.dump().await);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x, y, "seed {seed}");
        }
        assert_eq!(a.len(), b.len(), "seed {seed}");
    }
    // The events published are the log's rows.
    let (_, frames) = grouped
        .apply(&[random_work(&mut StdRng::seed_from_u64(9))], 1)
        .await;
    let log = grouped.events().await;
    for f in &frames {
        let (_, json) = log
            .iter()
            .find(|(id, _)| *id == f.id)
            .expect("frame in the log");
        assert_eq!(&f.json, json);
    }
    grouped.drop_pg().await;
    single.drop_pg().await;
}

#[tokio::test]
async fn sqlite_group_equals_one_by_one() {
    grouped_equals_one_by_one(TestDb::sqlite().await, TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_group_equals_one_by_one() {
    let Some(a) = TestDb::postgres().await else {
        return;
    };
    let Some(b) = TestDb::postgres().await else {
        return;
    };
    grouped_equals_one_by_one(a, b).await;
}

async fn one_group_sees_its_own_writes(t: TestDb) {
    let (results, _) = t.apply(&[batch(Some("used"), vec![])], 1_000).await;
    assert_eq!(
        format!("{results:?}"),
        "[Ok(Outcome { accepted: 0, duplicates: 0, created: None })]"
    );
    let works = [
        // A nonce used by an earlier transaction, then one used twice in this group.
        batch(
            Some("used"),
            vec![delivery(
                Some("a"),
                by_eui(1),
                vec![reading("a", 1.0, false)],
            )],
        ),
        batch(
            Some("twice"),
            vec![delivery(
                Some("b"),
                by_eui(1),
                vec![reading("b", 2.0, false)],
            )],
        ),
        batch(
            Some("twice"),
            vec![delivery(
                Some("c"),
                by_eui(1),
                vec![reading("c", 3.0, false)],
            )],
        ),
        // A delivery key used twice: the retry is acknowledged and stores nothing.
        batch(
            Some("n3"),
            vec![delivery(
                Some("b"),
                by_eui(1),
                vec![reading("b2", 4.0, false)],
            )],
        ),
        // Offline, then a reading brings the device back.
        batch(
            Some("n4"),
            vec![delivery(
                Some("d"),
                by_eui(1),
                vec![Change::Status(DeviceStatus::Offline)],
            )],
        ),
        batch(
            Some("n5"),
            vec![delivery(
                Some("e"),
                by_eui(1),
                vec![reading("e", 5.0, false)],
            )],
        ),
        // A second device, known by its Milesight id first, then by both ids.
        batch(
            None,
            vec![delivery(
                Some("f"),
                DeviceIdentity {
                    milesight_id: Some(ms_id(2)),
                    ..by_eui(2)
                }
                .without_eui(),
                vec![reading("f", 6.0, false)],
            )],
        ),
        batch(
            None,
            vec![delivery(
                Some("g"),
                DeviceIdentity {
                    milesight_id: Some(ms_id(2)),
                    ..by_eui(2)
                },
                vec![reading("g", 7.0, true)],
            )],
        ),
    ];
    let (results, frames) = t.apply(&works, 2_000).await;
    let results: Vec<String> = results.iter().map(|r| format!("{r:?}")).collect();
    let ok = |a, d| {
        format!(
            "{:?}",
            Ok::<_, Rejection>(Outcome {
                accepted: a,
                duplicates: d,
                created: None,
            })
        )
    };
    let replayed = format!("{:?}", Err::<Outcome, _>(Rejection::Replayed));
    assert_eq!(
        results,
        [
            replayed.clone(),
            ok(1, 0),
            replayed,
            ok(0, 1),
            ok(1, 0),
            ok(1, 0),
            ok(1, 0),
            ok(1, 0)
        ]
    );
    let kinds: Vec<(i64, String)> = frames
        .iter()
        .map(|f| {
            let text = &f.json;
            let kind = [
                "new_device",
                "new_telemetry",
                "device_status_changed",
                "alarm_raised",
                "alarm_cleared",
            ]
            .into_iter()
            .find(|k| text.contains(&format!("\"type\":\"{k}\"")))
            .unwrap_or("?");
            (f.device_id, kind.to_string())
        })
        .collect();
    let (d1, d2) = (frames[0].device_id, frames[7].device_id);
    // Going offline raises the offline alarm; coming back clears it.
    let expected = [
        (d1, "new_device"),
        (d1, "new_telemetry"),
        (d1, "device_status_changed"),
        (d1, "alarm_raised"),
        (d1, "new_telemetry"),
        (d1, "device_status_changed"),
        (d1, "alarm_cleared"),
        (d2, "new_device"),
        (d2, "new_telemetry"),
        (d2, "new_telemetry"),
    ];
    let expected: Vec<(i64, String)> = expected.iter().map(|(d, k)| (*d, k.to_string())).collect();
    assert_eq!(kinds, expected);
    assert!(frames.windows(2).all(|w| w[0].id < w[1].id));
    let dump = t.dump().await.join("\n");
    assert!(
        dump.contains(&format!("Some(\"{}\"), Some(\"{}\")", eui(2), ms_id(2))),
        "{dump}"
    );
    // A replayed webhook's delivery keys are not kept (they are claimed with the others, then
    // taken back), and its readings are not stored.
    for key in ["a", "c"] {
        assert!(
            !dump.contains(&format!("delivery (\"{key}\"")),
            "{key}: {dump}"
        );
        assert!(
            !dump.contains(&format!("\"{key}\", false")),
            "{key}: {dump}"
        );
    }
    assert!(dump.contains("delivery (\"b\""), "{dump}");
    t.drop_pg().await;
}

impl DeviceIdentity {
    fn without_eui(self) -> DeviceIdentity {
        DeviceIdentity {
            dev_eui: None,
            ..self
        }
    }
}

#[tokio::test]
async fn sqlite_one_group_sees_its_own_writes() {
    one_group_sees_its_own_writes(TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_one_group_sees_its_own_writes() {
    if let Some(t) = TestDb::postgres().await {
        one_group_sees_its_own_writes(t).await;
    }
}

/// More rows than one statement takes, and a sweep between batches.
async fn large_groups(t: TestDb) {
    let works: Vec<Work> = (0..100)
        .map(|i| {
            if i == 50 {
                return Work::MarkSilent;
            }
            let key = format!("k{i}");
            batch(
                Some(&format!("n{i}")),
                vec![delivery(
                    Some(&key),
                    by_eui(i % 7),
                    vec![reading(&key, 1.0, false)],
                )],
            )
        })
        .collect();
    let (results, frames) = t.apply(&works, 1_000).await;
    assert_eq!(
        results
            .iter()
            .filter(|r| matches!(r, Ok(o) if o.accepted == 1))
            .count(),
        99
    );
    // 7 new devices, 99 readings.
    assert_eq!(frames.len(), 7 + 99);
    assert!(frames.windows(2).all(|w| w[0].id < w[1].id));
    let log = t.events().await;
    assert_eq!(log.len(), frames.len());
    for (f, (id, json)) in frames.iter().zip(&log) {
        assert_eq!(f.id, *id);
        assert_eq!(&f.json, json);
    }
    // The devices go silent: one sweep marks all seven offline, each with its offline alarm.
    let (results, frames) = t.apply(&[Work::MarkSilent], 1_000 + 3_600_000).await;
    assert_eq!(
        format!("{results:?}"),
        "[Ok(Outcome { accepted: 7, duplicates: 0, created: None })]"
    );
    assert_eq!(frames.len(), 14);
    t.drop_pg().await;
}

#[tokio::test]
async fn sqlite_large_groups() {
    large_groups(TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_large_groups() {
    if let Some(t) = TestDb::postgres().await {
        large_groups(t).await;
    }
}

/// A round's attempts past one multi-row statement (32): each notification gets its own
/// outcome, and one attempt row each.
async fn recorded_attempts(t: TestDb) {
    let rows: Vec<String> = (1..=40)
        .map(|i| {
            format!("({i}, 'test', 'email', 'r{i}@x.test', 'd{i}', '{{}}', 'pending', 0, 0, 0)")
        })
        .collect();
    let sql = format!(
        "INSERT INTO notifications (id, reason, channel, recipient, delivery_id, payload, status, \
         attempts, next_attempt_ms, created_ms) VALUES {}",
        rows.join(", ")
    );
    match &t.db {
        Db::Sqlite(pool) => sqlx::query(&sql).execute(pool).await.map(|_| ()),
        Db::Postgres(pool) => sqlx::query(&sql).execute(pool).await.map(|_| ()),
    }
    .expect("notifications");
    let outcome = |i: i64| match i % 3 {
        0 => Attempt::Delivered,
        1 => Attempt::Retry { at_ms: 9_000 + i },
        _ => Attempt::Abandon,
    };
    let attempts = (1..=40)
        .map(|i| (i, outcome(i), format!("answer {i}")))
        .collect();
    let (results, _) = t.apply(&[Work::RecordAttempts { attempts }], 5_000).await;
    assert_eq!(
        format!("{results:?}"),
        "[Ok(Outcome { accepted: 40, duplicates: 0, created: None })]"
    );
    type Row = (i64, String, i64, i64, Option<i64>, Option<String>);
    let got: Vec<Row> = t
        .fetch(
            "SELECT id, status, attempts, next_attempt_ms, delivered_ms, last_result \
             FROM notifications ORDER BY id",
        )
        .await;
    let want: Vec<Row> = (1..=40)
        .map(|i| {
            let (status, next, delivered) = match outcome(i) {
                Attempt::Delivered => ("delivered", 5_000, Some(5_000)),
                Attempt::Retry { at_ms } => ("pending", at_ms, None),
                Attempt::Abandon => ("abandoned", 5_000, None),
            };
            (
                i,
                status.into(),
                1,
                next,
                delivered,
                Some(format!("answer {i}")),
            )
        })
        .collect();
    assert_eq!(got, want);
    let logged: Vec<(i64, i64, bool)> = t
        .fetch(
            "SELECT notification_id, at_ms, ok FROM notification_attempts ORDER BY notification_id",
        )
        .await;
    let want: Vec<(i64, i64, bool)> = (1..=40).map(|i| (i, 5_000, i % 3 == 0)).collect();
    assert_eq!(logged, want);
    t.drop_pg().await;
}

#[tokio::test]
async fn sqlite_recorded_attempts() {
    recorded_attempts(TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_recorded_attempts() {
    if let Some(t) = TestDb::postgres().await {
        recorded_attempts(t).await;
    }
}

/// A group of signed webhooks from known devices waits for PostgreSQL three times: the BEGIN,
/// nonces, delivery keys and device read; the judging reads with the readings; device rows,
/// summaries, events and the COMMIT. (Eleven, one per statement, before the writer pipelined.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_group_waits_three_times() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let Db::Postgres(pool) = &t.db else {
        unreachable!("a PostgreSQL test database")
    };
    let group = |round: u32| -> Vec<Work> {
        (0..8)
            .map(|k| {
                let key = format!("r{round}-{k}");
                let nonce = format!("n{round}-{k}");
                let changes = vec![reading(&key, 4.0 + f64::from(k), false)];
                batch(Some(&nonce), vec![delivery(Some(&key), by_eui(k), changes)])
            })
            .collect()
    };
    let (first, second) = (group(1), group(2));
    let waits = tokio::task::block_in_place(|| {
        let rt = tokio::runtime::Handle::current();
        let waiter = super::write_postgres::Waiter::Shared(&rt);
        let config = super::write_postgres::writer_config(&pool.connect_options());
        let mut conn =
            super::write_postgres::PgWriteConn::connect(waiter, &config, 0).expect("a connection");
        let apply = |conn: &mut super::write_postgres::PgWriteConn, works: &[Work]| {
            let works: Vec<&Work> = works.iter().collect();
            super::write_postgres::apply_jobs(waiter, conn, &works, 5_000, POLICY).expect("apply")
        };
        // The first group registers the devices and prepares the statements.
        apply(&mut conn, &first);
        let before = conn.round_trips();
        let (results, events) = apply(&mut conn, &second);
        assert!(results
            .iter()
            .all(|r| r.as_ref().is_ok_and(|o| o.accepted == 1)));
        assert_eq!(events.len(), 8, "one new_telemetry event per webhook");
        conn.round_trips() - before
    });
    assert_eq!(waits, 3);
    let stored = t.dump().await;
    assert_eq!(
        stored.iter().filter(|r| r.starts_with("reading")).count(),
        16
    );
    t.drop_pg().await;
}

/// Sessions read together for opening streams: one answer per id asked, in order, with the
/// user and every site of theirs; gone or expired sessions answer `None`.
async fn stream_sessions(t: TestDb) {
    use tower_sessions::cookie::time::{Duration, OffsetDateTime};
    use tower_sessions::session::{Id, Record};
    use tower_sessions::SessionStore;

    let store = Store {
        db: t.db.clone(),
        instance: 0,
    };
    let user = |email: &'static str, sites: &'static [&'static str]| {
        let store = store.clone();
        async move {
            let sites: Vec<String> = sites.iter().map(|s| s.to_string()).collect();
            let new = super::NewUser {
                email,
                password_hash: "x",
                role: crate::domain::Role::Manager,
                sites: &sites,
                by: "test",
            };
            store.create_user(new).await.expect("a user")
        }
    };
    let (ann, bob) = (
        user("ann@example.com", &["a", "b"]).await,
        user("bob@example.com", &["c"]).await,
    );
    let sessions = super::sessions::DbSessionStore::new(store.clone());
    let session = |user_id: i64, expiry: OffsetDateTime| {
        let sessions = &sessions;
        async move {
            let mut record = Record {
                id: Id::default(),
                data: [(super::sessions::USER_ID_KEY.to_string(), user_id.into())].into(),
                expiry_date: expiry,
            };
            sessions.create(&mut record).await.expect("a session");
            record.id.to_string()
        }
    };
    let later = OffsetDateTime::now_utc() + Duration::hours(1);
    let a = session(ann, later).await;
    let b = session(bob, later).await;
    let gone = session(ann, OffsetDateTime::now_utc() - Duration::hours(1)).await;
    let ids = [a.clone(), "missing".into(), b.clone(), a.clone(), gone];
    let found: Vec<_> = store
        .stream_sessions(&ids)
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("read");
    let users: Vec<Option<(i64, usize)>> = found
        .iter()
        .map(|s| {
            s.as_ref().map(|(_, u)| {
                u.as_ref()
                    .map(|u| (u.id, u.site_ids.len()))
                    .expect("may sign in")
            })
        })
        .collect();
    assert_eq!(
        users,
        [Some((ann, 2)), None, Some((bob, 1)), Some((ann, 2)), None]
    );
    let record_id = |i: usize| found[i].as_ref().map(|(r, _)| r.id.to_string());
    assert_eq!(record_id(0).as_deref(), Some(a.as_str()));
    assert_eq!(record_id(2).as_deref(), Some(b.as_str()));
    assert!(store.stream_sessions(&[]).await.is_empty());
    if t.pg_name.is_some() {
        t.drop_pg().await;
    }
}

#[tokio::test]
async fn sqlite_stream_sessions() {
    stream_sessions(TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_stream_sessions() {
    if let Some(t) = TestDb::postgres().await {
        stream_sessions(t).await;
    }
}

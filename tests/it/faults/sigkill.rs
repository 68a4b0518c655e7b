//! SIGKILL in the middle of 10,000 webhooks: everything answered 2xx is stored after a restart,
//! nothing twice, and the sender's retries are recognised as duplicates.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{json, Value};

use crate::support::binary::Binary;
use crate::support::*;
use sensorcast::store::Table;

const CRASH_WEBHOOKS: usize = 10_000;
const CRASH_SENDERS: usize = 32;
const CRASH_KILL_AFTER: usize = 4_000;

fn crash_device(sender: usize) -> (String, String) {
    (
        format!("19886180616183092{sender:02}"),
        format!("24e124707e0902{sender:02}"),
    )
}

fn crash_event_id(n: usize) -> String {
    format!("crash-{n:05}")
}

fn crash_body(n: usize) -> String {
    let (dev, eui) = crash_device(n % CRASH_SENDERS);
    mdp_reading(&crash_event_id(n), &dev, &eui, n as f64 / 100.0, 1.0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Never sent (the server was already gone).
    Unsent,
    /// Sent, but no 2xx answer came back.
    Unanswered,
    /// Answered 2xx: the server promised it is stored.
    Answered,
}

/// Posts a signed MDP body to `base` (`http://host:port`); the status and the JSON answer, or
/// why there was no answer.
async fn post_signed(
    client: &reqwest::Client,
    base: &str,
    body: &str,
    signed: &Signed,
) -> Result<(u16, Value), String> {
    let send = mdp_request(client, base, body, &signed.ts, &signed.nonce, &signed.sig).send();
    let response = tokio::time::timeout(Duration::from_secs(20), send)
        .await
        .map_err(|_| "no answer within 20 s".to_string())?
        .map_err(|e| format!("send: {e}"))?;
    let status = response.status().as_u16();
    let text = tokio::time::timeout(Duration::from_secs(20), response.text())
        .await
        .map_err(|_| "no body within 20 s".to_string())?
        .map_err(|e| format!("body: {e}"))?;
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, json))
}

/// How many readings each eventId has, read back as an admin through the telemetry API.
async fn stored_readings(base: &str, admin: &reqwest::Client) -> HashMap<String, usize> {
    let mut stored = HashMap::new();
    for sender in 0..CRASH_SENDERS {
        let (dev, _) = crash_device(sender);
        let r = admin
            .get(format!("{base}/api/devices/{dev}/telemetry?limit=10000"))
            .send()
            .await
            .expect("telemetry");
        if r.status() == 404 {
            continue;
        }
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.expect("telemetry JSON");
        for reading in body["readings"].as_array().expect("readings") {
            let id = reading["raw"]["eventId"]
                .as_str()
                .expect("an admin sees the raw event")
                .to_string();
            *stored.entry(id).or_default() += 1;
        }
    }
    stored
}

/// Sends webhooks `todo` (indexes into `bodies`) with `CRASH_SENDERS` senders at once, each
/// signed afresh; each sender stops at its first failure once `stop` is set. Returns the fate
/// and answer of each.
async fn send_all(
    base: &str,
    bodies: &[String],
    todo: &[usize],
    answered: &AtomicUsize,
    stop: &AtomicBool,
) -> Vec<(usize, Fate, Option<Value>, Option<String>)> {
    let senders = (0..CRASH_SENDERS).map(|s| {
        let mine: Vec<usize> = todo
            .iter()
            .copied()
            .skip(s)
            .step_by(CRASH_SENDERS)
            .collect();
        async move {
            let client = reqwest::Client::new();
            let mut out = Vec::with_capacity(mine.len());
            let mut gone = false;
            for n in mine {
                if gone {
                    out.push((n, Fate::Unsent, None, None));
                    continue;
                }
                match post_signed(&client, base, &bodies[n], &Signed::now()).await {
                    Ok((200, body)) => {
                        answered.fetch_add(1, Ordering::AcqRel);
                        out.push((n, Fate::Answered, Some(body), None));
                    }
                    Ok((status, body)) => {
                        out.push((n, Fate::Unanswered, None, Some(format!("{status} {body}"))))
                    }
                    Err(e) => {
                        gone = stop.load(Ordering::Acquire);
                        let why = (!gone).then_some(e);
                        out.push((n, Fate::Unanswered, None, why));
                    }
                }
            }
            out
        }
    });
    futures_util::future::join_all(senders)
        .await
        .into_iter()
        .flatten()
        .collect()
}

async fn sigkill_mid_stream_loses_nothing_and_stores_nothing_twice(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let logs = tempfile::tempdir().expect("log dir");
    let port = free_port();
    let started = Instant::now();
    let mut server = Binary::start(&db.url, port, &logs.path().join("first.log"));
    server.ready().await;
    let base = server.base.clone();

    // 10,000 webhooks, 8 senders at once; SIGKILL once 4,000 have been answered.
    let all: Vec<usize> = (0..CRASH_WEBHOOKS).collect();
    // A retry sends the same body again (signed anew).
    let bodies: Vec<String> = all.iter().map(|n| crash_body(*n)).collect();
    let answered = AtomicUsize::new(0);
    let killed = AtomicBool::new(false);
    let kill = async {
        let deadline = Instant::now() + Duration::from_secs(120);
        while answered.load(Ordering::Acquire) < CRASH_KILL_AFTER {
            assert!(
                Instant::now() < deadline,
                "only {} webhooks answered within 120 s:\n{}",
                answered.load(Ordering::Acquire),
                server.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // At a random moment of the next group commit, not right after the last answers.
        let pause = rand::thread_rng().gen_range(0..40);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        killed.store(true, Ordering::Release);
        server.kill();
        answered.load(Ordering::Acquire)
    };
    let (results, answered_at_kill) =
        tokio::join!(send_all(&base, &bodies, &all, &answered, &killed), kill);
    let first_run = started.elapsed();
    drop(server);

    let mut fate: Vec<Fate> = vec![Fate::Unsent; CRASH_WEBHOOKS];
    let mut unexpected = Vec::new();
    for (n, f, body, why) in results {
        fate[n] = f;
        if let Some(body) = body {
            assert_eq!(
                (&body["accepted"], &body["duplicates"]),
                (&json!(1), &json!(0)),
                "webhook {n}: {body}"
            );
        }
        if let Some(why) = why {
            unexpected.push(format!("webhook {n}: {why}"));
        }
    }
    let count = |f: Fate| fate.iter().filter(|x| **x == f).count();
    let (n_answered, n_unanswered, n_unsent) = (
        count(Fate::Answered),
        count(Fate::Unanswered),
        count(Fate::Unsent),
    );
    assert!(
        unexpected.is_empty(),
        "before the kill, every webhook is answered 200: {:?}",
        &unexpected[..unexpected.len().min(10)]
    );
    assert!((CRASH_KILL_AFTER..CRASH_WEBHOOKS).contains(&n_answered));
    assert!(
        n_unanswered > 0,
        "senders had webhooks in flight at the kill"
    );

    // Restart on the same database: everything answered 2xx is there.
    let restarted = Instant::now();
    let mut server = Binary::start(&db.url, port, &logs.path().join("second.log"));
    server.ready().await;
    let restart_took = restarted.elapsed();
    let admin = signed_in_browser(&base, ADMIN_EMAIL, PASSWORD).await;
    let stored = stored_readings(&base, &admin).await;
    let lost: Vec<usize> = (0..CRASH_WEBHOOKS)
        .filter(|n| fate[*n] == Fate::Answered && !stored.contains_key(&crash_event_id(*n)))
        .collect();
    assert!(
        lost.is_empty(),
        "{} webhooks answered 2xx are not stored after the crash: {:?}",
        lost.len(),
        &lost[..lost.len().min(20)]
    );
    let twice: Vec<&String> = stored
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(k, _)| k)
        .collect();
    assert!(twice.is_empty(), "stored twice: {twice:?}");
    let committed_unanswered = (0..CRASH_WEBHOOKS)
        .filter(|n| fate[*n] != Fate::Answered && stored.contains_key(&crash_event_id(*n)))
        .count();
    assert_eq!(
        stored.len(),
        n_answered + committed_unanswered,
        "nothing but the webhooks sent is stored"
    );

    // The sender retries what was not answered, and (as a sender whose answers were lost
    // would) some that were: every retry is answered 200, nothing is stored twice.
    let retry: Vec<usize> = (0..CRASH_WEBHOOKS)
        .filter(|n| fate[*n] != Fate::Answered || n % 20 == 0)
        .collect();
    let never = AtomicBool::new(false);
    let retried = send_all(&base, &bodies, &retry, &AtomicUsize::new(0), &never).await;
    let mut bad = Vec::new();
    let mut duplicates = 0;
    for (n, f, body, why) in &retried {
        match (f, body) {
            (Fate::Answered, Some(body)) => {
                let (acc, dup) = (
                    body["accepted"].as_u64().unwrap_or(9),
                    body["duplicates"].as_u64().unwrap_or(9),
                );
                duplicates += dup;
                let ok = if fate[*n] == Fate::Answered {
                    (acc, dup) == (0, 1)
                } else {
                    acc + dup == 1
                };
                if !ok {
                    bad.push(format!("retry of webhook {n} ({:?}): {body}", fate[*n]));
                }
            }
            _ => bad.push(format!("retry of webhook {n}: {f:?} {why:?}")),
        }
    }
    assert!(bad.is_empty(), "{:?}", &bad[..bad.len().min(10)]);

    let stored = stored_readings(&base, &admin).await;
    let total: usize = stored.values().sum();
    assert_eq!(total, CRASH_WEBHOOKS, "exactly one reading per webhook");
    assert_eq!(stored.len(), CRASH_WEBHOOKS);
    assert!(stored.values().all(|c| *c == 1));
    assert_eq!(
        duplicates as usize,
        retry.len() - (n_unanswered + n_unsent - committed_unanswered),
        "the retries of stored webhooks were recognised as duplicates"
    );
    // The log's own counts agree.
    let check = sensorcast::store::Store::open(&db.url)
        .await
        .expect("connect to check");
    let readings = check.count_rows(Table::Readings).await.unwrap();
    let deliveries = check.count_rows(Table::Deliveries).await.unwrap();
    check.close().await;
    assert_eq!((readings, deliveries), (10_000, 10_000));
    eprintln!(
        "crash ({backend:?}): killed after {answered_at_kill} answers ({first_run:?}): \
         {n_answered} answered, {n_unanswered} in flight ({committed_unanswered} of those \
         already stored), {n_unsent} unsent; restart took {restart_took:?}; {} retries, \
         {duplicates} recognised as duplicates; total {:?}",
        retry.len(),
        started.elapsed()
    );
    drop(server);
}

both_backends!(
    sigkill_mid_stream_loses_nothing_and_stores_nothing_twice,
    alone
);

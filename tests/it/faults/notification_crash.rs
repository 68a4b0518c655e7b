//! SIGKILL right after an alarm commits: its email sits in the outbox (written in the alarm's
//! transaction) and is delivered, once, when the server is back — with the mail server down
//! until then, so it cannot have gone out before the kill.

use std::time::{Duration, Instant};

use super::{DEV, EUI};
use crate::support::binary::Binary;
use crate::support::smtp::{self, SmtpServer};
use crate::support::*;
use sensorcast::store::Store;

async fn post(client: &reqwest::Client, base: &str, body: &str) -> u16 {
    let s = Signed::now();
    mdp_request(client, base, body, &s.ts, &s.nonce, &s.sig)
        .send()
        .await
        .expect("webhook answered")
        .status()
        .as_u16()
}

async fn an_alarm_email_survives_sigkill_after_the_commit(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let logs = tempfile::tempdir().expect("log dir");
    let smtp_port = free_port();
    let smtp_url = format!("smtp://127.0.0.1:{smtp_port}");
    let flags = ["--smtp-url", smtp_url.as_str(), "--notify-retry-secs", "1"];
    let port = free_port();
    let mut server = Binary::start_with(&db.url, port, &logs.path().join("1.log"), &flags);
    server.ready().await;
    let client = reqwest::Client::new();
    let seed = mdp_reading("seed", DEV, EUI, -20.0, -20.0);
    assert_eq!(post(&client, &server.base, &seed).await, 200);
    let rule = std::process::Command::new(env!("CARGO_BIN_EXE_sensorcast"))
        .args(["--database-url", &db.url, "rule", "set", "--device", DEV])
        .args(["--quantity", "temperature", "--probe", "1", "--max", "-15"])
        .output()
        .expect("run sensorcast rule set");
    assert!(rule.status.success(), "{rule:?}");

    // The alarm commits with its notification; the process dies as the answer arrives.
    let hot = mdp_reading("hot", DEV, EUI, -9.5, -20.0);
    assert_eq!(post(&client, &server.base, &hot).await, 200);
    server.kill();

    let store = Store::open(&db.url).await.expect("open the database");
    let queued = store.notifications(10).await.unwrap();
    let emails: Vec<_> = queued.iter().filter(|n| n.channel == "email").collect();
    assert_eq!(
        emails.len(),
        1,
        "the admin's email is in the outbox: {queued:?}"
    );
    assert_eq!(emails[0].status, "pending", "not sent before the kill");
    let alarm_id = emails[0].alarm_id.expect("an alarm's notification");
    drop(store);

    // Mail server up, server restarted: the email goes out, once.
    let Some(smtp) = SmtpServer::start(smtp_port).await else {
        return;
    };
    let started = Instant::now();
    let mut server = Binary::start_with(&db.url, port, &logs.path().join("2.log"), &flags);
    server.ready().await;
    // A claim cut short by the kill would wait out its two-minute lease; within that, it is sent.
    let mut mails = Vec::new();
    while started.elapsed() < Duration::from_secs(150) && mails.is_empty() {
        mails = smtp.wait_for(1).await;
    }
    assert_eq!(
        mails.len(),
        1,
        "delivered after the restart:\n{}",
        server.log_tail()
    );
    assert_eq!(smtp::recipient(&mails[0]), ADMIN_EMAIL);
    assert!(
        mails[0].contains("Subject: Alarm: Freezer A"),
        "{}",
        mails[0]
    );
    let store = Store::open(&db.url).await.expect("open the database");
    let mut row = None;
    for _ in 0..100 {
        row = store
            .notifications_of_alarm(alarm_id)
            .await
            .unwrap()
            .into_iter()
            .find(|n| n.channel == "email" && n.status == "delivered");
        if row.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(row.is_some(), "recorded as delivered");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(smtp.messages().len(), 1, "and sent once");
    drop(server);
}
both_backends!(an_alarm_email_survives_sigkill_after_the_commit);

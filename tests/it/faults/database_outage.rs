//! PostgreSQL unavailable for a while (a proxy in front of it stops and starts again): webhooks,
//! readiness and signed-in requests answer 503 `unavailable`, open streams keep their keepalives,
//! and everything recovers by itself.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{DEV, EUI};
use crate::support::sse::{Msg, Sse, READ};
use crate::support::*;
use sensorcast::store::Table;

/// A TCP proxy in front of PostgreSQL that can "stop the database": close its listener (new
/// connections are refused) and cut every open connection; and later start it again.
struct Proxy {
    addr: SocketAddr,
    upstream: String,
    running: Option<(
        tokio_util::sync::CancellationToken,
        tokio::task::JoinHandle<()>,
    )>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let mut proxy = Proxy {
            addr,
            upstream,
            running: None,
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let token = tokio_util::sync::CancellationToken::new();
        let upstream = self.upstream.clone();
        let stop = token.clone();
        let accepting = tokio::spawn(async move {
            loop {
                let (mut inbound, _) = tokio::select! {
                    _ = stop.cancelled() => break,
                    accepted = listener.accept() => match accepted {
                        Ok(c) => c,
                        Err(_) => continue,
                    },
                };
                let (upstream, stop) = (upstream.clone(), stop.clone());
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                    // Both sockets close here.
                });
            }
            // The listener closes here: connections are refused from now on.
        });
        self.running = Some((token, accepting));
    }

    /// The database "stops": no new connection, every open one cut.
    async fn stop(&mut self) {
        if let Some((token, accepting)) = self.running.take() {
            token.cancel();
            accepting.await.expect("proxy task");
        }
    }

    /// The database is back, at the same address.
    async fn restart(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("rebind proxy");
        self.serve(listener);
    }
}

/// `postgres://user@host:port` of the test server → (`user@`, `host:port`).
fn pg_authority() -> (String, String) {
    let base = pg_base();
    let rest = base
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(&base)
        .trim_end_matches('/');
    match rest.rsplit_once('@') {
        Some((user, hostport)) => (format!("{user}@"), hostport.to_string()),
        None => (String::new(), rest.to_string()),
    }
}

async fn readyz(client: &reqwest::Client, app: &TestApp) -> reqwest::Response {
    tokio::time::timeout(
        Duration::from_secs(20),
        client.get(app.url("/readyz")).send(),
    )
    .await
    .expect("/readyz answers within 20 s")
    .expect("/readyz")
}

/// The next numbered event of `sse` within `wait` (keepalives are skipped).
async fn next_event_within(sse: &mut Sse, wait: Duration) -> Msg {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match sse.next_within(left).await {
            Ok(Some(m)) if m.id.is_some() => return m,
            Ok(Some(m)) => assert!(m.is_keepalive(), "{m:?}"),
            Ok(None) => panic!("the stream ended"),
            Err(()) => panic!("no event within {wait:?}"),
        }
    }
}

/// A server (keepalive every second) on a fresh PostgreSQL database reached through a proxy.
async fn app_behind_proxy() -> Option<(TestApp, Proxy)> {
    let (_direct, name) = fresh_pg_database().await?;
    let (user, upstream) = pg_authority();
    let proxy = Proxy::start(upstream).await;
    let url = format!("postgres://{user}{}/{name}", proxy.addr);
    let mut args = test_args();
    args.keepalive_secs = 1;
    let app = TestApp::spawn_on(Backend::Postgres, &url, args, Some(name)).await;
    Some((app, proxy))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_gets_503_keeps_streams_and_recovers() {
    let _alone = alone().await;
    let Some((app, mut proxy)) = app_behind_proxy().await else {
        return;
    };
    let admin = app.admin().await;
    let plain = reqwest::Client::new();

    let r = admin.get(app.url("/api/realtime")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut sse = Sse::new(r);
    assert_eq!(sse.next_msg().await.kind(), "connected");
    let reading = |id: &str, t: f64| mdp_reading(id, DEV, EUI, t, 0.0);
    assert_eq!(app.post_mdp(&reading("outage-0", 10.0)).await.status(), 200);
    assert_eq!(next_event_within(&mut sse, READ).await.kind(), "new_device");
    assert_eq!(
        next_event_within(&mut sse, READ).await.kind(),
        "new_telemetry"
    );
    assert_eq!(readyz(&plain, &app).await.status(), 200);

    // The database goes away.
    proxy.stop().await;
    let down = Instant::now();
    let during = reading("outage-1", 11.0);
    let signed = Signed::now();
    let webhook = async {
        let started = Instant::now();
        let r = app
            .post_mdp_signed(&during, &signed.ts, &signed.nonce, &signed.sig)
            .await;
        let took = started.elapsed();
        assert_json_error(r, 503, "unavailable", "webhook while the database is down").await;
        took
    };
    let ready = async {
        let r = readyz(&plain, &app).await;
        assert_json_error(r, 503, "unavailable", "/readyz while the database is down").await;
    };
    let alive = async {
        let r = plain.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 200, "/healthz is liveness, not the database");
    };
    // The open stream stays open and keeps sending keepalives through the outage.
    let stream = async {
        let mut keepalives = 0;
        let until = Instant::now() + Duration::from_secs(7);
        let mut last = Instant::now();
        while Instant::now() < until {
            match sse.next_within(Duration::from_millis(250)).await {
                Ok(Some(m)) => {
                    assert!(m.is_keepalive(), "only keepalives while down: {m:?}");
                    keepalives += 1;
                    last = Instant::now();
                }
                Ok(None) => panic!("the stream ended during the outage ({:?})", down.elapsed()),
                Err(()) => assert!(
                    last.elapsed() < Duration::from_millis(1_600),
                    "no keepalive for 1.6 s during the outage ({:?} into it)",
                    down.elapsed()
                ),
            }
        }
        keepalives
    };
    let (webhook_took, (), (), keepalives) = tokio::join!(webhook, ready, alive, stream);
    assert!(keepalives >= 5, "{keepalives} keepalives in 7 s");
    let outage = down.elapsed();

    // Back: ready again by itself, the retried webhook and a new one are stored and streamed.
    proxy.restart().await;
    let back = Instant::now();
    let ready_after = loop {
        let r = readyz(&plain, &app).await;
        if r.status() == 200 {
            break back.elapsed();
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "/readyz still {} 30 s after the database returned",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The 503 stored nothing (not even the nonce).
    assert_eq!(app.stored_event_ids().await.len(), 2);
    let r = app
        .post_mdp_signed(&during, &signed.ts, &signed.nonce, &signed.sig)
        .await;
    let status = r.status();
    assert_eq!(
        status,
        200,
        "Milesight's retry of the refused delivery (same signed headers) is accepted: {}",
        r.text().await.unwrap_or_default()
    );
    assert_eq!(app.post_mdp(&reading("outage-2", 12.0)).await.status(), 200);
    for t in [11.0, 12.0] {
        let m = next_event_within(&mut sse, Duration::from_secs(10)).await;
        assert_eq!(m.kind(), "new_telemetry", "{m:?}");
        assert_eq!(m.json["data"]["temperature"], t, "{m:?}");
    }
    assert_eq!(app.count(Table::Readings).await, 3);
    let ids = app.stored_event_ids().await;
    assert_eq!(ids.len(), 4);
    eprintln!(
        "outage: 503 after {webhook_took:?}, {keepalives} keepalives while down, database away \
         {outage:?}, ready again {ready_after:?} after it returned"
    );
}

/// The README: 503 `unavailable` means "database unreachable" (retry later). A browser that
/// reconnects its stream, or loads a page or JSON, during an outage should be told that, not
/// that something broke (500 `internal_error`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_in_requests_during_an_outage_get_503() {
    let _alone = alone().await;
    let Some((app, mut proxy)) = app_behind_proxy().await else {
        return;
    };
    let admin = app.admin().await;
    let r = admin.get(app.url("/api/devices")).send().await.unwrap();
    assert_eq!(r.status(), 200, "before the outage");
    proxy.stop().await;
    let json = ["/api/realtime", "/api/devices", "/api/me"].map(|path| {
        let (app, admin) = (&app, &admin);
        async move {
            let r = tokio::time::timeout(Duration::from_secs(20), admin.get(app.url(path)).send())
                .await
                .expect("an answer within 20 s")
                .expect("GET");
            (path, r)
        }
    });
    let page = async {
        let r = tokio::time::timeout(Duration::from_secs(20), admin.get(app.url("/admin")).send())
            .await
            .expect("an answer within 20 s")
            .expect("GET /admin");
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        (status, body)
    };
    let (answers, (page_status, page_body)) =
        tokio::join!(futures_util::future::join_all(json), page);
    proxy.restart().await;
    let mut wrong = Vec::new();
    for (path, r) in answers {
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        assert_no_internal_detail(&body, path);
        if status != 503 || !body.contains("\"unavailable\"") {
            wrong.push(format!("{path}: {status} {body}"));
        }
    }
    assert_no_internal_detail(&page_body, "/admin");
    if page_status != 503 {
        wrong.push(format!("/admin: {page_status}"));
    }
    assert!(
        wrong.is_empty(),
        "while the database is away:\n{}",
        wrong.join("\n")
    );
    // And when it is back, the same session works again.
    let back = Instant::now();
    loop {
        let r = admin.get(app.url("/api/devices")).send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(30), "{}", r.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

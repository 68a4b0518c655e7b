//! Test harness: the real server on port 0 with a fresh database per test, on SQLite or
//! PostgreSQL, plus a client that talks to it like a Milesight sender and a browser.
#![allow(dead_code)]

pub mod sse;

use std::net::SocketAddr;
use std::time::Duration;

use sensorcast::config::ServeArgs;
pub use sensorcast::config::StreamTransport;
use sensorcast::ingest::signature;
use sensorcast::state::AppState;
use sensorcast::store::users::{self, Table};
use sensorcast::store::{Db, Role};

pub const SECRET: &str = "mySecretKey";
pub const TOKEN: &str = "gw-token-123";
pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const PASSWORD: &str = "correct horse battery";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub state: AppState,
    pub client: reqwest::Client,
    pub backend: Backend,
    /// The database URL, so a second instance can share it.
    pub database_url: String,
    _dir: Option<tempfile::TempDir>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    pg_name: Option<String>,
}

/// Base URL of the PostgreSQL server used by tests (trust auth).
pub fn pg_base() -> String {
    std::env::var("SENSORCAST_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Creates a fresh PostgreSQL database, or None (loudly) when no server is reachable.
pub async fn fresh_pg_database() -> Option<(String, String)> {
    use sqlx::Connection;
    let admin_url = format!("{}/postgres", pg_base());
    let conn = tokio::time::timeout(
        Duration::from_secs(5),
        sqlx::PgConnection::connect(&admin_url),
    )
    .await;
    let mut conn = match conn {
        Ok(Ok(c)) => c,
        other => {
            let why = match other {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".into(),
            };
            if std::env::var("SENSORCAST_REQUIRE_PG").is_ok_and(|v| v == "1") {
                panic!("PostgreSQL is required (SENSORCAST_REQUIRE_PG=1) but unreachable at {admin_url}: {why}");
            }
            eprintln!("\n*** SKIPPED: PostgreSQL test — no server at {admin_url} ({why}). Set SENSORCAST_TEST_PG. ***\n");
            return None;
        }
    };
    let name = format!("sensorcast_test_{}", uuid_like());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    Some((format!("{}/{name}", pg_base()), name))
}

fn uuid_like() -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().gen();
    format!("{n:016x}")
}

pub fn test_args() -> ServeArgs {
    let mut args = ServeArgs::for_tests();
    args.webhook_secret = Some(SECRET.into());
    args.gateway_token = Some(TOKEN.into());
    args.admin_email = Some(ADMIN_EMAIL.into());
    args.admin_password = Some(PASSWORD.into());
    args
}

/// `test_args()` with streams written by `transport`.
pub fn transport_args(transport: StreamTransport) -> ServeArgs {
    let mut args = test_args();
    args.stream_transport = transport;
    args
}

impl TestApp {
    /// Starts a server; None when the backend is not available here (already reported).
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, test_args()).await
    }

    pub async fn spawn_with(backend: Backend, args: ServeArgs) -> Option<TestApp> {
        let (url, dir, pg_name) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                (url, Some(dir), None)
            }
            Backend::Postgres => {
                let (url, name) = fresh_pg_database().await?;
                (url, None, Some(name))
            }
        };
        Some(Self::start(backend, &url, args, dir, pg_name).await)
    }

    async fn start(
        backend: Backend,
        url: &str,
        args: ServeArgs,
        dir: Option<tempfile::TempDir>,
        pg_name: Option<String>,
    ) -> TestApp {
        let state = sensorcast::build_state(url, &args)
            .await
            .expect("build state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(sensorcast::serve(
            state.clone(),
            listener,
            Duration::from_secs(3),
        ));
        TestApp {
            addr,
            state,
            client: browser(),
            backend,
            database_url: url.to_string(),
            _dir: dir,
            server: Some(server),
            pg_name,
        }
    }

    /// Another instance on the same database (it does not drop the database when it ends).
    pub async fn spawn_peer(&self, args: ServeArgs) -> TestApp {
        Self::start(self.backend, &self.database_url, args, None, None).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn db(&self) -> &Db {
        &self.state.db
    }

    pub async fn count(&self, table: Table) -> i64 {
        users::count_rows(self.db(), table)
            .await
            .expect("count rows")
    }

    /// Rows in every data table, to assert that a refused request stored nothing.
    pub async fn snapshot(&self) -> [i64; 4] {
        [
            self.count(Table::Devices).await,
            self.count(Table::Readings).await,
            self.count(Table::Events).await,
            self.count(Table::Deliveries).await,
        ]
    }

    /// Posts an MDP body signed now with the test secret and a fresh nonce.
    pub async fn post_mdp(&self, body: &str) -> reqwest::Response {
        let ts = (sensorcast::now_ms() / 1000).to_string();
        let nonce = uuid_like() + &uuid_like();
        self.post_mdp_signed(
            body,
            &ts,
            &nonce,
            &signature::sign(SECRET.as_bytes(), &ts, &nonce),
        )
        .await
    }

    pub async fn post_mdp_signed(
        &self,
        body: &str,
        ts: &str,
        nonce: &str,
        sig: &str,
    ) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.url("/api/webhooks/milesight"))
            .header("content-type", "application/json")
            .header(signature::SIGNATURE, sig)
            .header(signature::UUID, "6167cb40-8e5e-4d53-904f-968928e488a6")
            .header(signature::TIMESTAMP, ts)
            .header(signature::NONCE, nonce)
            .body(body.to_string())
            .send()
            .await
            .expect("post mdp")
    }

    pub async fn post_gateway(&self, body: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.url("/api/webhooks/milesight/gateway"))
            .header("content-type", "application/json")
            .header("x-sensorcast-token", TOKEN)
            .body(body.to_string())
            .send()
            .await
            .expect("post gateway")
    }

    /// Signs in with `client` (which keeps the session cookie) through the sign-in form,
    /// anti-forgery token included.
    pub async fn login_with(
        &self,
        client: &reqwest::Client,
        email: &str,
        password: &str,
    ) -> reqwest::Response {
        sign_in_at(&format!("http://{}", self.addr), client, email, password).await
    }

    /// The anti-forgery token of a signed-in `client`, from its dashboard's forms.
    pub async fn page_csrf(&self, client: &reqwest::Client) -> String {
        let home = client.get(self.url("/")).send().await.expect("home");
        let dashboard = home.headers()[reqwest::header::LOCATION]
            .to_str()
            .expect("redirect")
            .to_string();
        let html = client
            .get(self.url(&dashboard))
            .send()
            .await
            .expect("dashboard")
            .text()
            .await
            .expect("dashboard body");
        csrf_in(&html).expect("a page with forms carries a token")
    }

    /// Signs `client` out through the sign-out form.
    pub async fn logout(&self, client: &reqwest::Client) -> reqwest::Response {
        let token = self.page_csrf(client).await;
        client
            .post(self.url("/logout"))
            .form(&[("csrf", token)])
            .send()
            .await
            .expect("logout")
    }

    /// A new browser signed in as `email`.
    pub async fn browser_as(&self, email: &str, password: &str) -> reqwest::Client {
        let client = browser();
        let r = self.login_with(&client, email, password).await;
        assert_eq!(r.status(), 303, "sign-in as {email} failed");
        client
    }

    pub async fn admin(&self) -> reqwest::Client {
        self.browser_as(ADMIN_EMAIL, PASSWORD).await
    }

    pub async fn add_user(&self, email: &str, role: Role, sites: &[&str]) -> i64 {
        let sites: Vec<String> = sites.iter().map(|s| s.to_string()).collect();
        users::create_user(self.db(), email, PASSWORD, role, &sites)
            .await
            .expect("create user")
    }

    pub async fn assign(&self, device: &str, site: &str) {
        users::assign_device(self.db(), device, site)
            .await
            .expect("assign device")
    }

    /// Stops the server the way SIGTERM does and waits for it to return.
    pub async fn shutdown(mut self) -> Duration {
        let started = std::time::Instant::now();
        self.state.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.await.expect("join").expect("serve");
        }
        started.elapsed()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.state.shutdown.cancel();
        if let Some(name) = self.pg_name.take() {
            // Wait, so a test process never exits leaving its database behind.
            let _ = drop_pg_database(name).join();
        }
    }
}

/// Best effort: drops a test database from a separate thread and runtime (usable in `Drop`).
pub fn drop_pg_database(name: String) -> std::thread::JoinHandle<()> {
    let admin_url = format!("{}/postgres", pg_base());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        if let Ok(rt) = rt {
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut c)
                        .await;
                }
            });
        }
    })
}

/// The anti-forgery token in a page's forms (`<input type="hidden" name="csrf" value="…">`).
pub fn csrf_in(html: &str) -> Option<String> {
    const MARK: &str = "name=\"csrf\" value=\"";
    let start = html.find(MARK)? + MARK.len();
    let len = html[start..].find('"')?;
    Some(html[start..start + len].to_string())
}

/// Signs in with `client` through the sign-in form of the server at `base` (a test server, a
/// restarted one, or a proxy in front), anti-forgery token included.
pub async fn sign_in_at(
    base: &str,
    client: &reqwest::Client,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let form = client
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("login form")
        .text()
        .await
        .expect("login form body");
    let token = csrf_in(&form).unwrap_or_default();
    client
        .post(format!("{base}/login"))
        .form(&[("email", email), ("password", password), ("csrf", &token)])
        .send()
        .await
        .expect("login")
}

/// The session cookie a response sets (the whole `Set-Cookie` value), if any.
pub fn session_cookie(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("sensorcast_session="))
        .map(str::to_string)
}

/// GET with `client` and the body as JSON.
pub async fn get_json(client: &reqwest::Client, url: String) -> serde_json::Value {
    client
        .get(url)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json body")
}

/// A browser-like client: keeps cookies, does not follow redirects (tests look at them). Each
/// request on a new connection, so a stream request is always its connection's first and is
/// served by the stream transport under test (reused connections: tests/wire.rs).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

/// A realistic MDP PROPERTY event for a TS302.
pub fn mdp_reading(event_id: &str, device_id: &str, eui: &str, t1: f64, t2: f64) -> String {
    serde_json::json!({
        "eventId": event_id, "eventCreatedTime": (sensorcast::now_ms() / 1000).to_string(), "eventVersion": "1.0",
        "eventType": "DEVICE_DATA",
        "data": {
            "deviceProfile": {"deviceId": device_id, "sn": "6707E04610160001", "devEUI": eui, "name": "Freezer A", "model": "TS302"},
            "type": "PROPERTY", "tslId": "", "ts": sensorcast::now_ms(),
            "payload": {"temperature_left": t1, "temperature_right": t2, "battery": 93}
        }
    })
    .to_string()
}

/// Runs one async test body against SQLite and against PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        both_backends!($name, worker_threads = 2);
    };
    // More threads, for tests where streams must run while the writer publishes.
    ($name:ident, worker_threads = $n:literal) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = $n)]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = $n)]
            async fn postgres() {
                super::$name($crate::common::Backend::Postgres).await
            }
        }
    };
}

/// Runs one async test body, `async fn name(backend, transport)`, on both backends with
/// streams served by each transport (`--stream-transport raw` and `hyper`).
#[macro_export]
macro_rules! both_backends_and_transports {
    ($name:ident) => {
        both_backends_and_transports!($name, worker_threads = 2);
    };
    ($name:ident, worker_threads = $n:literal) => {
        mod $name {
            use $crate::common::{Backend, StreamTransport};
            #[tokio::test(flavor = "multi_thread", worker_threads = $n)]
            async fn sqlite_raw() {
                super::$name(Backend::Sqlite, StreamTransport::Raw).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = $n)]
            async fn sqlite_hyper() {
                super::$name(Backend::Sqlite, StreamTransport::Hyper).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = $n)]
            async fn postgres_raw() {
                super::$name(Backend::Postgres, StreamTransport::Raw).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = $n)]
            async fn postgres_hyper() {
                super::$name(Backend::Postgres, StreamTransport::Hyper).await
            }
        }
    };
}

/// Spawns the app or returns from the test (a skipped PostgreSQL test already said so).
#[macro_export]
macro_rules! spawn_or_skip {
    ($backend:expr) => {
        match $crate::common::TestApp::spawn($backend).await {
            Some(app) => app,
            None => return,
        }
    };
    ($backend:expr, $args:expr) => {
        match $crate::common::TestApp::spawn_with($backend, $args).await {
            Some(app) => app,
            None => return,
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Fault tests: servers on a database reached some other way (a proxy, a child process)
// ---------------------------------------------------------------------------------------------

impl TestApp {
    /// A server on an existing database at `url` (for instance through a TCP proxy); the
    /// PostgreSQL database `pg_name`, if given, is dropped when the app ends.
    pub async fn spawn_on(
        backend: Backend,
        url: &str,
        args: ServeArgs,
        pg_name: Option<String>,
    ) -> TestApp {
        Self::start(backend, url, args, None, pg_name).await
    }
}

/// A fresh database for a server that the test runs itself (the real binary): a SQLite file in
/// a temporary directory, or a PostgreSQL database dropped (and waited for) when this goes.
pub struct TestDatabase {
    pub url: String,
    pub backend: Backend,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// None when the backend is not available here (already reported).
    pub async fn create(backend: Backend) -> Option<TestDatabase> {
        Some(match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                TestDatabase {
                    url,
                    backend,
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let (url, name) = fresh_pg_database().await?;
                TestDatabase {
                    url,
                    backend,
                    pg_name: Some(name),
                    _dir: None,
                }
            }
        })
    }

    /// The PostgreSQL database's name (None on SQLite).
    pub fn pg_name(&self) -> Option<&str> {
        self.pg_name.as_deref()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            let _ = drop_pg_database(name).join();
        }
    }
}

//! The real server on port 0 with a fresh database per test, on SQLite or PostgreSQL, and a
//! client that talks to it like a Milesight sender and a browser.

use std::net::SocketAddr;
use std::time::Duration;

use sensorcast::config::ServeArgs;
pub use sensorcast::config::StreamTransport;
use sensorcast::domain::Role;
use sensorcast::ingest::signature;
use sensorcast::store::Table;
use sensorcast::web::accounts;
use sensorcast::web::state::AppState;

use super::db::{self, fresh_pg_database, Db};
use super::sign_in::{browser, csrf_in, session_value, sign_in_at, signed_in_browser};

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
    /// The test's own pool on the same database.
    pub sql: Db,
    /// A browser of its own (cookies kept, redirects not followed).
    pub client: reqwest::Client,
    pub backend: Backend,
    /// The database URL, so a second instance can share it.
    pub database_url: String,
    _dir: Option<tempfile::TempDir>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    pg_name: Option<String>,
}

/// `bytes` random bytes in hex.
pub fn random_hex(bytes: usize) -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.gen::<u8>()))
        .collect()
}

/// A signed MDP delivery's headers, kept so that the very same request can be sent again.
#[derive(Debug, Clone)]
pub struct Signed {
    pub ts: String,
    pub nonce: String,
    pub sig: String,
}

impl Signed {
    /// Signed now with the test secret and a fresh nonce.
    pub fn now() -> Signed {
        let ts = (sensorcast::domain::now_ms() / 1000).to_string();
        let nonce = random_hex(16);
        let sig = signature::sign(SECRET.as_bytes(), &ts, &nonce);
        Signed { ts, nonce, sig }
    }
}

/// A POST of an MDP body with these signature headers to the server at `base`.
pub fn mdp_request(
    client: &reqwest::Client,
    base: &str,
    body: &str,
    ts: &str,
    nonce: &str,
    sig: &str,
) -> reqwest::RequestBuilder {
    client
        .post(format!("{base}/api/webhooks/milesight"))
        .header("content-type", "application/json")
        .header(signature::SIGNATURE, sig)
        .header(signature::UUID, "6167cb40-8e5e-4d53-904f-968928e488a6")
        .header(signature::TIMESTAMP, ts)
        .header(signature::NONCE, nonce)
        .body(body.to_string())
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
            sql: Db::connect(url).await,
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

    /// `http://host:port` of this server.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn db(&self) -> &Db {
        &self.sql
    }

    pub async fn count(&self, table: Table) -> i64 {
        self.state
            .store
            .count_rows(table)
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

    /// Every stored event id, straight from the database.
    pub async fn stored_event_ids(&self) -> Vec<i64> {
        db::query_ids(self.db(), "SELECT id FROM events ORDER BY id").await
    }

    /// Posts an MDP body signed now with the test secret and a fresh nonce.
    pub async fn post_mdp(&self, body: &str) -> reqwest::Response {
        let s = Signed::now();
        self.post_mdp_signed(body, &s.ts, &s.nonce, &s.sig).await
    }

    pub async fn post_mdp_signed(
        &self,
        body: &str,
        ts: &str,
        nonce: &str,
        sig: &str,
    ) -> reqwest::Response {
        mdp_request(&reqwest::Client::new(), &self.base(), body, ts, nonce, sig)
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
        sign_in_at(&self.base(), client, email, password).await
    }

    /// A new browser signed in as `email`, and its session cookie's value.
    pub async fn signed_in_cookie(&self, email: &str, password: &str) -> (reqwest::Client, String) {
        let client = browser();
        let r = self.login_with(&client, email, password).await;
        assert_eq!(r.status(), 303, "sign-in as {email}");
        let cookie = session_value(r.headers()).expect("a session cookie at sign-in");
        (client, cookie)
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
        signed_in_browser(&self.base(), email, password).await
    }

    pub async fn admin(&self) -> reqwest::Client {
        self.browser_as(ADMIN_EMAIL, PASSWORD).await
    }

    pub async fn add_user(&self, email: &str, role: Role, sites: &[&str]) -> i64 {
        let sites: Vec<String> = sites.iter().map(|s| s.to_string()).collect();
        accounts::create(&self.state.store, email, PASSWORD, role, &sites, "test")
            .await
            .expect("create user")
    }

    /// PUTs a device's rules (`body` as the API takes it) as `client`, with `csrf`.
    pub async fn put_rules(
        &self,
        client: &reqwest::Client,
        csrf: &str,
        device: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        client
            .put(self.url(&format!("/api/devices/{device}/rules")))
            .header("x-csrf-token", csrf)
            .json(body)
            .send()
            .await
            .expect("PUT rules")
    }

    /// As the admin, one rule on `device`: probe 1's temperature at most `max` (at once).
    pub async fn rule_at_most(&self, device: &str, max: f64) {
        let admin = self.admin().await;
        let csrf = self.page_csrf(&admin).await;
        let body =
            serde_json::json!({"rules": [{"quantity": "temperature", "probe": 1, "max": max}]});
        let r = self.put_rules(&admin, &csrf, device, &body).await;
        assert_eq!(r.status(), 200, "PUT rules of {device}");
    }

    pub async fn assign(&self, device: &str, site: &str) {
        self.state
            .store
            .assign_device_to_site(device, site, "test")
            .await
            .map(|_| ())
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
            let _ = db::drop_pg_database(name).join();
        }
    }
}

/// A realistic MDP PROPERTY event for a TS302.
pub fn mdp_reading(event_id: &str, device_id: &str, eui: &str, t1: f64, t2: f64) -> String {
    serde_json::json!({
        "eventId": event_id, "eventCreatedTime": (sensorcast::domain::now_ms() / 1000).to_string(), "eventVersion": "1.0",
        "eventType": "DEVICE_DATA",
        "data": {
            "deviceProfile": {"deviceId": device_id, "sn": "6707E04610160001", "devEUI": eui, "name": "Freezer A", "model": "TS302"},
            "type": "PROPERTY", "tslId": "", "ts": sensorcast::domain::now_ms(),
            "payload": {"temperature_left": t1, "temperature_right": t2, "battery": 93}
        }
    })
    .to_string()
}

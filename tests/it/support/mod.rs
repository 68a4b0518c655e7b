//! What every area of the integration tests shares: the server harness (`TestApp`), databases,
//! browsers and sign-in, the SSE reader, error-answer checks, and the macros that run a test on
//! each backend.

mod app;
pub mod binary;
mod checks;
mod db;
pub mod gateway_api;
mod sign_in;
pub mod smtp;
pub mod sse;

pub use app::*;
pub use checks::*;
pub use db::*;
pub use sign_in::*;

/// Turns: the heavy tests (reconnect storm, SIGKILL, database outage) run alone in this binary,
/// since their time limits assume the machine is theirs; every other test that starts servers
/// takes a shared turn (tokio's lock is write-preferring, so a waiting heavy test is not starved).
static TURNS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// A shared turn, for a test that starts servers.
pub async fn shared_turn() -> tokio::sync::RwLockReadGuard<'static, ()> {
    TURNS.read().await
}

/// The same, from a test that is not async.
pub fn shared_turn_blocking() -> tokio::sync::RwLockReadGuard<'static, ()> {
    TURNS.blocking_read()
}

/// The whole binary to itself, for a heavy test.
pub async fn alone() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    TURNS.write().await
}

/// A port that was free a moment ago (for a process that binds it itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Runs one async test body against SQLite and against PostgreSQL, each in its turn
/// (`alone` for a heavy test).
macro_rules! both_backends {
    ($name:ident) => {
        both_backends!(@ $name, 2, shared_turn);
    };
    // More threads, for tests where streams must run while the writer publishes.
    ($name:ident, worker_threads = $n:literal) => {
        both_backends!(@ $name, $n, shared_turn);
    };
    ($name:ident, alone) => {
        both_backends!(@ $name, 2, alone);
    };
    ($name:ident, alone, worker_threads = $n:literal) => {
        both_backends!(@ $name, $n, alone);
    };
    (@ $name:ident, $n:literal, $turn:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = $n)]
            async fn sqlite() {
                let _turn = $crate::support::$turn().await;
                super::$name($crate::support::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = $n)]
            async fn postgres() {
                let _turn = $crate::support::$turn().await;
                super::$name($crate::support::Backend::Postgres).await
            }
        }
    };
}

/// Runs one async test body, `async fn name(backend, transport)`, on both backends with
/// streams served by each transport (`--stream-transport raw` and `hyper`), each in a shared turn.
macro_rules! both_backends_and_transports {
    ($name:ident) => {
        mod $name {
            use $crate::support::{shared_turn, Backend, StreamTransport};
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_raw() {
                let _turn = shared_turn().await;
                super::$name(Backend::Sqlite, StreamTransport::Raw).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_hyper() {
                let _turn = shared_turn().await;
                super::$name(Backend::Sqlite, StreamTransport::Hyper).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_raw() {
                let _turn = shared_turn().await;
                super::$name(Backend::Postgres, StreamTransport::Raw).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_hyper() {
                let _turn = shared_turn().await;
                super::$name(Backend::Postgres, StreamTransport::Hyper).await
            }
        }
    };
}

/// Spawns the app or returns from the test (a skipped PostgreSQL test already said so).
macro_rules! spawn_or_skip {
    ($backend:expr) => {
        match $crate::support::TestApp::spawn($backend).await {
            Some(app) => app,
            None => return,
        }
    };
    ($backend:expr, $args:expr) => {
        match $crate::support::TestApp::spawn_with($backend, $args).await {
            Some(app) => app,
            None => return,
        }
    };
}

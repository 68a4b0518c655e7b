//! What every area of the integration tests shares: the server harness (`TestApp`), databases,
//! browsers and sign-in, the SSE reader, error-answer checks, and the macros that run a test on
//! each backend.

mod app;
mod checks;
mod db;
mod sign_in;
pub mod sse;

pub use app::*;
pub use checks::*;
pub use db::*;
pub use sign_in::*;

/// A port that was free a moment ago (for a process that binds it itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Runs one async test body against SQLite and against PostgreSQL.
macro_rules! both_backends {
    ($name:ident) => {
        both_backends!($name, worker_threads = 2);
    };
    // More threads, for tests where streams must run while the writer publishes.
    ($name:ident, worker_threads = $n:literal) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = $n)]
            async fn sqlite() {
                super::$name($crate::support::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = $n)]
            async fn postgres() {
                super::$name($crate::support::Backend::Postgres).await
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

//! sensorcast: Milesight IoT webhooks in, live role-scoped browser dashboards out.
//!
//! Layers, bottom to top; a module uses only those below it (tests/it/layers.rs checks it):
//! `domain` (shared types) → `ingest` (verify, parse, decode) and `store` (SQLite/PostgreSQL
//! behind one facade, the writer) → `realtime` (hub, gates, stream engine) and `downlink`
//! (device commands to the gateway's API) → `web` (HTTP:
//! sessions, pages, JSON, webhooks, the stream handler, `AppState`) → `server` (accept loop) →
//! `app`, `config`, `demo` (assembly, flags, the demo fleet) → the binary.

pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod downlink;
pub mod ingest;
pub mod logging;
pub mod notify;
pub mod realtime;
mod server;
pub mod store;
pub mod web;

pub use app::build_state;
pub use server::serve;
/// The connection sniffer, public for its fuzz target only.
#[doc(hidden)]
pub use server::sniff;

//! The integration tests, in one binary: one module per area, one `support` tree they share.
//! Every test that needs a server starts the real one on port 0 with a fresh database; most run
//! once on SQLite and once on PostgreSQL (`both_backends!`).

#[macro_use]
mod support;

mod access_control;
mod alarms;
mod attacks;
mod behind_nginx;
mod browser_e2e;
mod cluster;
mod commands;
mod faults;
mod flood_guard;
mod health_and_metrics;
mod layers;
mod notifications;
mod parser_properties;
mod push;
mod reports;
mod retention;
mod schema_fuzz;
mod sessions_and_pages;
mod stream;
mod stream_wire;
mod units;
mod webhooks;

//! Ingest: webhook HTTP endpoints → parse → decode → one batch for the writer.

mod fields;
pub mod gateway;
pub mod health;
pub mod http;
pub mod mdp;
pub mod model;
pub mod signature;
pub mod ts302;

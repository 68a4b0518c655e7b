//! Ingest: what a Milesight webhook means. Verify (MDP signatures, the secrets), parse (MDP
//! JSON, gateway uplinks and notifications) and decode (TS302 bytes) into a `domain::Batch`
//! for the store's writer. No HTTP here: `web::webhooks` reads the request and answers it.

mod fields;
pub mod gateway;
pub mod health;
pub mod mdp;
pub mod secrets;
pub mod signature;
pub mod ts302;

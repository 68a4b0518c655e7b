//! Reliability under faults (issue 7), one module per fault. Every wait has a time limit, so no
//! test can hang.
//!
//! The heavy tests (storm, crash, outage) take one lock, so that on a small machine they do not
//! compete with each other for the CPU (their time limits assume they run alone).

mod database_outage;
mod forged_and_expired_sessions;
mod reconnect_storm;
mod sigkill;

/// Storm, crash and outage run one at a time.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const DEV: &str = "1988618061618309001";
const EUI: &str = "24e124707e090001";

//! Reliability under faults (issue 7), one module per fault. Every wait has a time limit, so no
//! test can hang.
//!
//! The heavy tests (storm, crash, outage) run alone (`support::alone`): their time limits assume
//! the machine is theirs.

mod database_outage;
mod disk_full;
mod forged_and_expired_sessions;
mod notification_crash;
mod reconnect_storm;
mod sigkill;
mod silent_receiver;

const DEV: &str = "1988618061618309001";
const EUI: &str = "24e124707e090001";

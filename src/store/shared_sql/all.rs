// SQL written once for both databases: included by sqlite.rs and postgres.rs, which define `DB`,
// `Conn` and `begin_write` (the dialect differences); placeholders are `$N`, which both accept.
// Only the store's facade (store/*.rs) calls these.

#[allow(unused_imports)]
use crate::domain::*;
#[allow(unused_imports)]
use crate::store::rows::*;
use crate::store::write_statements::DEVICE_COLUMNS;
use sqlx::Pool;

include!("operations.rs");
include!("users.rs");
include!("devices.rs");
include!("readings.rs");
include!("events.rs");
include!("sessions.rs");
include!("sign_in.rs");
include!("alarms.rs");
include!("notifications.rs");
include!("commands.rs");
include!("reports.rs");
include!("summaries.rs");

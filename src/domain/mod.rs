//! The bottom layer: the types every other layer shares — devices, readings, the batch a webhook
//! becomes, the commands a device can be sent, the event log's rows and JSON, users, roles and
//! scopes. It imports nothing of ours, so any layer may use it and it never changes because a
//! layer above did.
//!
//! Rows derive `sqlx::FromRow` so the store can read them directly; nothing here talks to a
//! database.

mod alarm;
mod alarm_eval;
mod audit;
mod batch;
mod command;
mod command_status;
mod device;
mod event;
mod notification;
mod push;
mod reading;
mod report;
mod summary;
mod time;
mod unit;
mod user;

pub use alarm::*;
pub use alarm_eval::*;
pub use audit::*;
pub use batch::*;
pub use command::*;
pub use command_status::*;
pub use device::*;
pub use event::*;
pub use notification::*;
pub use push::*;
pub use reading::*;
pub use report::*;
pub use summary::*;
pub use time::now_ms;
pub use unit::*;
pub use user::*;

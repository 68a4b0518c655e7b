//! Realtime: the hub of stored events and the SSE streams that carry them to browsers.

pub mod control;
pub mod events;
pub mod feeder;
pub mod gate;
pub mod hub;
pub mod limits;
pub mod stream;

//! Realtime, the engine: the hub that fans committed events out as pre-encoded SSE frames, the
//! gates that wake only the streams an event concerns, the stream engine (replay, live, catch-up
//! after a lag), stream caps, and, with several instances, the feeder that reads the shared log.
//! It knows nothing of HTTP: `web::realtime` authenticates a browser and serves its stream.

pub mod batch;
pub mod coalesce;
pub mod control;
pub mod direct;
pub mod feeder;
pub mod frames;
pub mod gate;
pub mod hub;
pub mod limits;
pub mod message;
pub mod passes;
pub mod shard_priority;
pub mod stream;

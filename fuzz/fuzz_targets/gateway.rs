//! The gateway body parser and, for uplinks, the TS302 decoding behind it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sensorcast::ingest::gateway::{parse, uplink_delivery, Message};
use sensorcast::ingest::ts302::Variant;

fuzz_target!(|body: &[u8]| {
    if let Ok(Message::Uplink(u)) = parse(body) {
        let _ = uplink_delivery(&u, Variant::V1, 0);
        let _ = uplink_delivery(&u, Variant::V2, 0);
    }
});

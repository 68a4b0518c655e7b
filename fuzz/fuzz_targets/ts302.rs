//! The TS302 decoder on arbitrary bytes, as both protocol variants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sensorcast::ingest::ts302::{decode, detect_variant, Variant};

fuzz_target!(|bytes: &[u8]| {
    for variant in [Variant::V1, Variant::V2] {
        if let Err(e) = decode(bytes, variant) {
            assert!(e.offset <= bytes.len());
        }
    }
    let _ = detect_variant(bytes);
});

//! The MDP webhook body parser on arbitrary bodies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sensorcast::ingest::mdp::parse;

fuzz_target!(|body: &[u8]| {
    let _ = parse(body, 0);
});

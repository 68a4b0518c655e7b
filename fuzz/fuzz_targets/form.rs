//! The urlencoded form parser on arbitrary bodies: re-encoding what it parsed gives the same
//! pairs back, and its output is bounded by its input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sensorcast::web::form::FormData;

/// Escapes what the format uses (`&`, `=`, `+`, `%`), and every other byte when `all`.
fn encode(pairs: &[(String, String)], all: bool) -> Vec<u8> {
    let esc = |s: &str| -> Vec<u8> {
        s.bytes()
            .flat_map(|b| match b {
                b'&' | b'=' | b'+' | b'%' => format!("%{b:02X}").into_bytes(),
                b if all => format!("%{b:02x}").into_bytes(),
                b => vec![b],
            })
            .collect()
    };
    let parts: Vec<Vec<u8>> = pairs
        .iter()
        .map(|(k, v)| [esc(k), b"=".to_vec(), esc(v)].concat())
        .collect();
    parts.join(&b'&')
}

fuzz_target!(|body: &[u8]| {
    let parsed = FormData::parse(body);
    let pairs = parsed.pairs();
    for all in [false, true] {
        assert_eq!(FormData::parse(&encode(pairs, all)).pairs(), pairs);
    }
    assert!(pairs.len() <= body.iter().filter(|b| **b == b'&').count() + 1);
    // Each input byte decodes to at most one byte, or to U+FFFD (three) when not UTF-8.
    let out: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert!(out <= 3 * body.len());
});

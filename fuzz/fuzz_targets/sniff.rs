//! The connection classifier (stream / hyper / more bytes) on arbitrary first bytes: the same
//! bytes always get the same verdict, and a verdict once given holds whatever follows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sensorcast::sniff::{classify, Verdict};

fn summary(buf: &[u8]) -> String {
    let addr = "127.0.0.1:9".parse().unwrap();
    match classify(buf, addr) {
        Verdict::Stream(r) => format!("stream {} {:?} {:?}", r.uri(), r.version(), r.headers()),
        Verdict::Other => "other".into(),
        Verdict::NeedMore => "more".into(),
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks where the first read ends; the rest are the connection's bytes.
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    let split = (cut as usize * bytes.len()) / 255;
    let first = summary(&bytes[..split]);
    assert_eq!(first, summary(&bytes[..split]), "deterministic");
    let all = summary(bytes);
    if first != "more" {
        assert_eq!(first, all, "a verdict on a prefix is final");
    }
    if all.starts_with("stream") {
        assert!(bytes.starts_with(b"GET /api/realtime"));
    }
});

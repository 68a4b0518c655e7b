use super::*;
use serde_json::{Map, Value};
use std::collections::HashSet;

const VECTORS: &str = include_str!("../../../tests/data/ts302-vectors.json");
const TOL: f64 = 1e-9;
const BOTH: [Variant; 2] = [Variant::V1, Variant::V2];

// ---- helpers -----------------------------------------------------------

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn unbase64(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut bits, mut nbits, mut out) = (0u32, 0u32, Vec::new());
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    out
}

fn vectors() -> Vec<(String, Vec<u8>, Value)> {
    let all: Vec<Value> = serde_json::from_str(VECTORS).unwrap();
    all.into_iter()
        .map(|v| {
            let hex = v["hex"].as_str().unwrap().to_owned();
            let bytes = unhex(&hex);
            assert_eq!(
                unbase64(v["base64"].as_str().unwrap()),
                bytes,
                "{hex}: base64 differs"
            );
            (hex, bytes, v)
        })
        .collect()
}

fn ok(hex: &str, variant: Variant) -> Decoded {
    decode(&unhex(hex), variant).unwrap_or_else(|e| panic!("{hex} as {variant}: {e}"))
}

fn err(hex: &str, variant: Variant) -> DecodeError {
    decode(&unhex(hex), variant).expect_err(hex)
}

fn approx(actual: Option<f64>, expected: &Value, what: &str) {
    let e = expected
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: expected a number, got {expected}"));
    let a = actual.unwrap_or_else(|| panic!("{what}: missing, expected {e}"));
    assert!((a - e).abs() < TOL, "{what}: got {a}, expected {e}");
}

/// `temperature_chn2_alarm` -> ("temperature", 2, "_alarm").
fn split_key(key: &str) -> Option<(&str, u8, &str)> {
    let (prefix, rest) = key.split_once("_chn")?;
    let digit = rest.get(..1)?;
    Some((prefix, digit.parse().ok()?, rest.get(1..)?))
}

fn quantity(prefix: &str) -> Quantity {
    match prefix {
        "temperature" => Quantity::Temperature,
        "humidity" => Quantity::Humidity,
        _ => panic!("no quantity {prefix:?}"),
    }
}

fn official_magnet(v: &Value) -> Option<Magnet> {
    match v.as_str() {
        Some("close") => Some(Magnet::Closed),
        Some("open") => Some(Magnet::Open),
        _ => panic!("magnet value {v}"),
    }
}

fn pick<T: Copy>(pair: &[T; 2], channel: u8) -> T {
    pair[usize::from(channel) - 1]
}

fn last_alarm(d: &Decoded, channel: u8, q: Quantity) -> &Alarm {
    d.alarms
        .iter()
        .rev()
        .find(|a| a.channel == channel && a.quantity == q)
        .unwrap_or_else(|| panic!("no alarm for {} chn{channel}", q.as_str()))
}

fn kind_eq(kind: AlarmKind, expected: &Value, what: &str) {
    assert_eq!(Some(kind.as_str()), expected.as_str(), "{what}");
    assert_eq!(
        &serde_json::to_value(kind).unwrap(),
        expected,
        "{what}: serde name"
    );
}

const INFO_KEYS: [&str; 8] = [
    "ipso_version",
    "hardware_version",
    "firmware_version",
    "tsl_version",
    "sn",
    "lorawan_class",
    "device_status",
    "reset_event",
];

/// Every key of an official decoder output must match our decode.
fn check_official(d: &Decoded, exp: &Map<String, Value>, strict: bool, ctx: &str) {
    let info = serde_json::to_value(&d.device_info).unwrap();
    for (key, val) in exp {
        let what = format!("{ctx}: {key}");
        match key.as_str() {
            "battery" => assert_eq!(d.battery.map(u64::from), val.as_u64(), "{what}"),
            "report_interval" => {
                assert_eq!(d.report_interval_min.map(u64::from), val.as_u64(), "{what}")
            }
            "event" => check_events(d, val.as_array().unwrap(), strict, &what),
            "history" => check_history(d, val.as_array().unwrap(), strict, &what),
            k if INFO_KEYS.contains(&k) => assert_eq!(&info[k], val, "{what}"),
            k => match split_key(k) {
                Some(("magnet", n, "")) => {
                    assert_eq!(pick(&d.magnet, n), official_magnet(val), "{what}")
                }
                Some((q, n, "")) => approx(pick(reading_pair(d, quantity(q)), n), val, &what),
                Some((q, n, "_alarm")) => kind_eq(last_alarm(d, n, quantity(q)).kind, val, &what),
                Some((q, n, "_mutation")) => {
                    approx(last_alarm(d, n, quantity(q)).change, val, &what)
                }
                _ => panic!("{what}: official key not mapped by the test"),
            },
        }
    }
    if strict {
        let official: HashSet<&str> = exp.keys().map(String::as_str).collect();
        for key in our_keys(d) {
            assert!(
                official.contains(key.as_str()),
                "{ctx}: we decoded {key}, the official decoder did not"
            );
        }
    }
}

fn reading_pair(d: &Decoded, q: Quantity) -> &[Option<f64>; 2] {
    match q {
        Quantity::Temperature => &d.temperature,
        Quantity::Humidity => &d.humidity,
    }
}

/// The official key names of what we decoded, for the reverse (no extras) check.
fn our_keys(d: &Decoded) -> Vec<String> {
    let mut keys = Vec::new();
    if d.battery.is_some() {
        keys.push("battery".to_owned());
    }
    for n in 1..=2u8 {
        for q in [Quantity::Temperature, Quantity::Humidity] {
            if pick(reading_pair(d, q), n).is_some() {
                keys.push(format!("{}_chn{n}", q.as_str()));
            }
        }
        if pick(&d.magnet, n).is_some() {
            keys.push(format!("magnet_chn{n}"));
        }
    }
    for a in &d.alarms {
        keys.push(format!("{}_chn{}_alarm", a.quantity.as_str(), a.channel));
        if a.change.is_some() {
            keys.push(format!("{}_chn{}_mutation", a.quantity.as_str(), a.channel));
        }
    }
    if !d.sensor_status.is_empty() {
        keys.push("event".to_owned());
    }
    if !d.history.is_empty() {
        keys.push("history".to_owned());
    }
    if d.report_interval_min.is_some() {
        keys.push("report_interval".to_owned());
    }
    let info = serde_json::to_value(&d.device_info).unwrap();
    keys.extend(
        INFO_KEYS
            .iter()
            .filter(|k| !info[**k].is_null())
            .map(|k| k.to_string()),
    );
    keys
}

/// v2 `event[]`: alarms and sensor statuses in frame order.
fn check_events(d: &Decoded, events: &[Value], strict: bool, ctx: &str) {
    let mut alarms = d.alarms.iter();
    let mut statuses = d.sensor_status.iter();
    for ev in events {
        let ev = ev.as_object().unwrap();
        if let Some((key, val)) = ev.iter().find(|(k, _)| k.ends_with("_sensor_status")) {
            let s = statuses
                .next()
                .unwrap_or_else(|| panic!("{ctx}: missing status {key}"));
            let (prefix, n, _) = split_key(key).unwrap();
            assert_eq!(
                (s.channel, s.quantity),
                (n, quantity(prefix)),
                "{ctx}: {key}"
            );
            assert_eq!(Some(s.status.as_str()), val.as_str(), "{ctx}: {key}");
            continue;
        }
        let a = alarms
            .next()
            .unwrap_or_else(|| panic!("{ctx}: missing alarm {ev:?}"));
        for (key, val) in ev {
            let (prefix, n, suffix) = split_key(key).unwrap();
            assert_eq!(
                (a.channel, a.quantity),
                (n, quantity(prefix)),
                "{ctx}: {key}"
            );
            match suffix {
                "" => approx(a.value, val, key),
                "_alarm" => kind_eq(a.kind, val, key),
                "_mutation" => approx(a.change, val, key),
                _ => panic!("{ctx}: event key {key} not mapped"),
            }
        }
        if !ev.keys().any(|k| k.ends_with("_mutation")) {
            assert_eq!(a.change, None, "{ctx}");
        }
    }
    if strict {
        assert!(
            alarms.next().is_none() && statuses.next().is_none(),
            "{ctx}: extra events"
        );
    }
}

/// `history[]`: readings and magnets; the per-record event/alarm annotations are not modelled.
fn check_history(d: &Decoded, records: &[Value], strict: bool, ctx: &str) {
    if strict {
        assert_eq!(d.history.len(), records.len(), "{ctx}");
    }
    assert!(d.history.len() >= records.len(), "{ctx}");
    for (rec, exp) in d.history.iter().zip(records) {
        let exp = exp.as_object().unwrap();
        assert_eq!(Some(rec.timestamp), exp["timestamp"].as_i64(), "{ctx}");
        for n in 1..=2u8 {
            for (q, ours) in [
                ("temperature", &rec.temperature),
                ("humidity", &rec.humidity),
            ] {
                let key = format!("{q}_chn{n}");
                match exp.get(&key) {
                    Some(v) if v.is_number() => approx(pick(ours, n), v, &key),
                    // `over_range` is a string in the official output; no reading for us.
                    Some(Value::String(_)) | None => {
                        assert_eq!(pick(ours, n), None, "{ctx}: {key}")
                    }
                    Some(v) => panic!("{ctx}: {key} = {v}"),
                }
            }
            let key = format!("magnet_chn{n}");
            assert_eq!(
                pick(&rec.magnet, n),
                exp.get(&key).and_then(official_magnet),
                "{ctx}: {key}"
            );
        }
        for key in exp.keys() {
            let modelled =
                key == "timestamp" || split_key(key).is_some_and(|(_, _, s)| s.is_empty());
            let annotation = key.ends_with("_event") || key.ends_with("_alarm");
            assert!(
                modelled || annotation,
                "{ctx}: history key {key} not mapped"
            );
        }
    }
}

/// Structural facts any error must satisfy for the input it came from.
fn check_error(input: &[u8], e: &DecodeError) {
    assert!(!e.to_string().is_empty());
    let header = input.get(e.offset..e.offset + 2);
    match e.kind {
        DecodeErrorKind::Empty => assert!(input.is_empty()),
        DecodeErrorKind::Unknown {
            channel,
            channel_type,
        } => {
            assert_eq!(header, Some(&[channel, channel_type][..]));
        }
        DecodeErrorKind::Truncated { channel, .. } if e.kind.is_header_cut() => {
            assert_eq!(e.offset + 1, input.len(), "{e}");
            assert_eq!(input.get(e.offset), Some(&channel));
        }
        DecodeErrorKind::Truncated {
            channel,
            channel_type,
            needed,
            available,
        } => {
            assert_eq!(header, Some(&[channel, channel_type][..]));
            assert_eq!(e.offset + 2 + available, input.len(), "{e}");
            assert!(available < needed, "{e}");
        }
    }
}

// ---- official vectors ----------------------------------------------------

#[test]
fn official_vectors_match() {
    let mut checked = 0;
    for (hex, bytes, v) in vectors() {
        for variant in BOTH {
            let Some(exp) = v.get(variant.as_str()) else {
                continue;
            };
            let exp = exp.as_object().unwrap();
            let ctx = format!("{hex} as {variant}");
            match decode(&bytes, variant) {
                Ok(d) => {
                    // The official v1 decoder stops at the first v2-only frame; we go on.
                    let strict = !(variant == Variant::V1 && d.v2_only);
                    check_official(&d, exp, strict, &ctx);
                }
                Err(e) => {
                    // `{}` is the official decoder giving up on the first frame.
                    assert!(exp.is_empty(), "{ctx}: {e}");
                    assert_eq!(
                        (e.offset, matches!(e.kind, DecodeErrorKind::Unknown { .. })),
                        (0, true)
                    );
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 22);
}

#[test]
fn vector_specifics() {
    // v1 mutation frame: v2 has no D7 type.
    let d = ok("94d70401820002", Variant::V1);
    assert_eq!(d.alarms[0].change, Some(1.3));
    assert_eq!(
        err("94d70401820002", Variant::V2).kind,
        DecodeErrorKind::Unknown {
            channel: 0x94,
            channel_type: 0xd7
        }
    );
    // Same byte, different meaning per variant.
    let hex = "01756403672701836727010004670801";
    assert_eq!(
        ok(hex, Variant::V1).alarms[0].kind,
        AlarmKind::ThresholdAlarmRelease
    );
    assert!(ok(hex, Variant::V1).alarms[0].is_release());
    assert_eq!(
        ok(hex, Variant::V2).alarms[0].kind,
        AlarmKind::AboveThresholdAlarm
    );
    assert!(!ok(hex, Variant::V2).alarms[0].is_release());
    // v2-only frames decode under v1 too, flagged.
    let d = ok("01755a03679a00039a580204670e01", Variant::V1);
    assert!(d.v2_only);
    assert_eq!(d.humidity, [Some(60.0), None]);
    let d = ok("01755ab3670004671e01", Variant::V1);
    assert!(d.v2_only);
    assert_eq!(d.sensor_status[0].status, "collection_failed");
    // 20 CE is read per variant: same bytes, different fields.
    let v1 = ok("20cec79afa6444bdfff600", Variant::V1);
    let v2 = ok("20cec79afa6444bdfff600", Variant::V2);
    assert_eq!(v1.history[0].temperature, [Some(-6.7), Some(24.6)]);
    assert_eq!(v2.history[0].temperature, [Some(24.6), None]);
    assert_eq!(v2.history[0].humidity, [Some(-6.7), None]);
    assert!(!v1.v2_only && !v2.v2_only);
}

#[test]
fn every_prefix_of_every_vector_decodes_or_errors() {
    for (_, bytes, _) in vectors() {
        for variant in BOTH {
            let full = decode(&bytes, variant);
            for len in 0..=bytes.len() {
                let prefix = &bytes[..len];
                if let Err(e) = decode(prefix, variant) {
                    check_error(prefix, &e);
                    if matches!(e.kind, DecodeErrorKind::Unknown { .. }) {
                        // Cutting bytes off the end cannot create an unknown frame.
                        assert_eq!(full.as_ref().err(), Some(&e));
                    }
                }
            }
        }
    }
}

// ---- frame table ---------------------------------------------------------

/// (channel id, type, data length) of every frame the official decoders know.
fn official_frames(variant: Variant) -> Vec<(u8, u8, usize)> {
    let mut frames = vec![
        (0x01, 0x75, 1),
        (0x03, 0x67, 2),
        (0x04, 0x67, 2),
        (0x03, 0x00, 1),
        (0x04, 0x00, 1),
        (0x83, 0x67, 3),
        (0x84, 0x67, 3),
        (0x20, 0xce, 9),
        // v2-defined, accepted under either variant
        (0x03, 0x9a, 2),
        (0x04, 0x9a, 2),
        (0x83, 0x9a, 3),
        (0x84, 0x9a, 3),
        (0x93, 0x67, 5),
        (0x94, 0x67, 5),
        (0x93, 0x9a, 5),
        (0x94, 0x9a, 5),
        (0xb3, 0x67, 1),
        (0xb4, 0x67, 1),
        (0xb3, 0x9a, 1),
        (0xb4, 0x9a, 1),
        (0x21, 0xce, 9),
        // device info
        (0xff, 0x01, 1),
        (0xff, 0x09, 2),
        (0xff, 0x0a, 2),
        (0xff, 0x0b, 1),
        (0xff, 0x0f, 1),
        (0xff, 0x16, 8),
        (0xff, 0xfe, 1),
        (0xff, 0xff, 2),
        (0xff, 0xa0, 9),
        // history retrieval echoes
        (0xfd, 0x6b, 4),
        (0xfd, 0x6c, 8),
        (0xfd, 0x6d, 1),
    ];
    let replies: [(u8, usize); 23] = [
        (0x02, 2),
        (0x06, 9),
        (0x10, 1),
        (0x17, 2),
        (0x25, 1),
        (0x27, 1),
        (0x28, 1),
        (0x2d, 1),
        (0x35, 8),
        (0x4a, 1),
        (0x68, 1),
        (0x69, 1),
        (0x6a, 3),
        (0x6d, 1),
        (0x7e, 5),
        (0x8e, 3),
        (0x91, 5),
        (0x96, 8),
        (0xbd, 2),
        (0xe9, 1),
        (0xea, 3),
        (0xeb, 1),
        (0xf5, 1),
    ];
    for (ty, len) in replies {
        frames.push((0xfe, ty, len));
        frames.push((0xff, ty, len));
    }
    let ext: [(u8, usize); 8] = [
        (0x31, 1),
        (0x32, 3),
        (0x63, 4),
        (0x66, 1),
        (0x69, 1),
        (0x6f, 1),
        (0x72, 9),
        (0x9a, 2),
    ];
    for (ty, len) in ext {
        frames.push((0xf9, ty, len));
        frames.push((0xf8, ty, len + 1)); // result byte
    }
    if variant == Variant::V1 {
        frames.push((0x93, 0xd7, 5));
        frames.push((0x94, 0xd7, 5));
    }
    frames
}

#[test]
fn frame_lengths_match_official_decoders() {
    for variant in BOTH {
        for (id, ty, len) in official_frames(variant) {
            let mut bytes = vec![id, ty];
            bytes.resize(2 + len, 0);
            // A battery frame right after proves the frame was stepped over exactly.
            bytes.extend([0x01, 0x75, 42]);
            let d = decode(&bytes, variant).unwrap_or_else(|e| panic!("{variant}: {e}"));
            assert_eq!(d.battery, Some(42), "{variant} {id:02x} {ty:02x}");

            let short = &bytes[..2 + len - 1];
            let expected = DecodeErrorKind::Truncated {
                channel: id,
                channel_type: ty,
                needed: len,
                available: len - 1,
            };
            assert_eq!(
                decode(short, variant),
                Err(DecodeError {
                    offset: 0,
                    kind: expected
                })
            );
        }
    }
}

#[test]
fn every_other_header_is_unknown() {
    for variant in BOTH {
        let known: HashSet<(u8, u8)> = official_frames(variant)
            .iter()
            .map(|&(i, t, _)| (i, t))
            .collect();
        for id in 0..=255u8 {
            for ty in 0..=255u8 {
                assert_eq!(
                    classify(id, ty, variant).is_some(),
                    known.contains(&(id, ty)),
                    "{variant} {id:02x} {ty:02x}"
                );
            }
        }
    }
}

// ---- hand-made frames ------------------------------------------------------

#[test]
fn errors_name_the_frame_offset() {
    let e = err("", Variant::V1);
    assert_eq!(
        e,
        DecodeError {
            offset: 0,
            kind: DecodeErrorKind::Empty
        }
    );
    assert_eq!(e.to_string(), "empty payload");

    let e = err("0175640367f100036701", Variant::V1);
    assert_eq!(
        e,
        DecodeError {
            offset: 7,
            kind: DecodeErrorKind::Truncated {
                channel: 0x03,
                channel_type: 0x67,
                needed: 2,
                available: 1
            }
        }
    );
    assert_eq!(
        e.to_string(),
        "truncated frame at offset 7: channel 0x03 type 0x67 needs 2 bytes, 1 left"
    );

    let e = err("0175645512", Variant::V2);
    assert_eq!(
        e,
        DecodeError {
            offset: 3,
            kind: DecodeErrorKind::Unknown {
                channel: 0x55,
                channel_type: 0x12
            }
        }
    );
    assert_eq!(e.to_string(), "unknown channel 0x55 type 0x12 at offset 3");

    let e = err("01756403", Variant::V1);
    assert_eq!(
        e,
        DecodeError {
            offset: 3,
            kind: DecodeErrorKind::header_cut(0x03)
        }
    );
    assert_eq!(
        e.to_string(),
        "truncated frame at offset 3: channel 0x03 has no type byte"
    );

    // A history record cut short after a good frame.
    let e = err("01756420cec79afa6444bdff", Variant::V2);
    assert_eq!(e.offset, 3);
    assert_eq!(
        e.to_string(),
        "truncated frame at offset 3: channel 0x20 type 0xce needs 9 bytes, 7 left"
    );

    // Replies of unknown length are refused, not guessed.
    assert_eq!(
        err("ff8f00", Variant::V1).kind,
        DecodeErrorKind::Unknown {
            channel: 0xff,
            channel_type: 0x8f
        }
    );
    assert_eq!(err("01756ffe0100", Variant::V1).offset, 3);
    assert_eq!(
        err("fefe00", Variant::V2).kind,
        DecodeErrorKind::Unknown {
            channel: 0xfe,
            channel_type: 0xfe
        }
    );
}

#[test]
fn config_replies_are_skipped() {
    // report interval, alarm config, calibration, collection interval, reboot, then battery
    let hex = "ff8e001400 ff06c8e803000000000000 ffea800a00 ff022c01 ff10ff f8310000 01755a";
    let d = ok(&hex.replace(' ', ""), Variant::V1);
    assert_eq!(d.report_interval_min, Some(20));
    assert_eq!(d.battery, Some(90));
    assert!(!d.v2_only);
    // 9A on a reply channel is not humidity.
    let hex = "f89a0a0000017550";
    assert_eq!(detect_variant(&unhex(hex)), None);
    assert!(!ok(hex, Variant::V1).v2_only);
}

#[test]
fn device_info_fields() {
    let d = ok(
        "ff0bffff0101ff166791d19604050005ff090110ff0a0110ff0f02fffe01ffff0102",
        Variant::V2,
    );
    let info = &d.device_info;
    assert_eq!(info.device_status.as_deref(), Some("on"));
    assert_eq!(info.ipso_version.as_deref(), Some("v0.1"));
    assert_eq!(info.sn.as_deref(), Some("6791d19604050005"));
    assert_eq!(info.hardware_version.as_deref(), Some("v1.1"));
    assert_eq!(info.firmware_version.as_deref(), Some("v1.10"));
    assert_eq!(info.lorawan_class.as_deref(), Some("Class C"));
    assert_eq!(info.reset_event.as_deref(), Some("reset"));
    assert_eq!(info.tsl_version.as_deref(), Some("v1.2"));

    let d = ok("ffa0120102030405060708ffa0041122334455667788", Variant::V2);
    assert_eq!(
        d.device_info.sensor_type,
        [Some("MAGNET".to_owned()), Some("SHT4X".to_owned())]
    );
    assert_eq!(
        d.device_info.sensor_sn[1].as_deref(),
        Some("0102030405060708")
    );
    assert_eq!(
        d.device_info.sensor_sn[0].as_deref(),
        Some("1122334455667788")
    );
    // A channel nibble other than 0/1 is stepped over and ignored.
    let d = ok("ffa0210102030405060708", Variant::V2);
    assert_eq!(d.device_info.sensor_type, [None, None]);
}

#[test]
fn v2_alarms_and_statuses() {
    let kinds: Vec<AlarmKind> = (0..=9u8).map(AlarmKind::from_v2).collect();
    let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "above_threshold_alarm",
            "above_threshold_alarm_release",
            "below_threshold_alarm",
            "below_threshold_alarm_release",
            "between_threshold_alarm",
            "between_threshold_alarm_release",
            "outside_threshold_alarm",
            "outside_threshold_alarm_release",
            "mutation_alarm",
            "unknown"
        ]
    );
    let releases: Vec<bool> = kinds.iter().map(AlarmKind::is_release).collect();
    assert_eq!(
        releases,
        [false, true, false, true, false, true, false, true, false, false]
    );
    assert_eq!(AlarmKind::from_v1(1), AlarmKind::ThresholdAlarm);
    assert_eq!(AlarmKind::from_v1(3), AlarmKind::Unknown);

    // humidity alarm, humidity mutation (fifth byte ignored), status of humidity chn2
    let d = ok(
        "849a580202 939aee0232ff00 b49a01 b46705"
            .replace(' ', "")
            .as_str(),
        Variant::V2,
    );
    assert!(d.v2_only);
    assert_eq!(
        d.alarms,
        [
            Alarm {
                channel: 2,
                quantity: Quantity::Humidity,
                kind: AlarmKind::BelowThresholdAlarm,
                value: Some(60.0),
                change: None
            },
            Alarm {
                channel: 1,
                quantity: Quantity::Humidity,
                kind: AlarmKind::MutationAlarm,
                value: Some(75.0),
                change: Some(-20.6)
            },
        ]
    );
    assert_eq!(d.humidity, [Some(75.0), Some(60.0)]);
    let statuses: Vec<(u8, Quantity, &str)> = d
        .sensor_status
        .iter()
        .map(|s| (s.channel, s.quantity, s.status.as_str()))
        .collect();
    assert_eq!(
        statuses,
        [
            (2, Quantity::Humidity, "over_range"),
            (2, Quantity::Temperature, "unknown")
        ]
    );
    // Humidity alarm bytes keep their v2 meaning under v1.
    assert_eq!(
        ok("849a580202", Variant::V1).alarms[0].kind,
        AlarmKind::BelowThresholdAlarm
    );
}

#[test]
fn history_sentinels_never_become_readings() {
    // ch1: humidity -999 (invalid), temperature -1000 (magnet closed)
    let d = ok(
        "20ce00000000 00 19fc 18fc".replace(' ', "").as_str(),
        Variant::V2,
    );
    assert_eq!(
        d.history,
        [HistoryRecord {
            timestamp: 0,
            magnet: [Some(Magnet::Closed), None],
            ..HistoryRecord::default()
        }]
    );
    // ch2: humidity 45.5, temperature -1002 (over range); 21 CE exists only in v2
    let d = ok(
        "21ceffffffff 00 c701 16fc".replace(' ', "").as_str(),
        Variant::V1,
    );
    assert!(d.v2_only);
    assert_eq!(d.history[0].timestamp, 4_294_967_295);
    assert_eq!(d.history[0].temperature, [None, None]);
    assert_eq!(d.history[0].humidity, [None, Some(45.5)]);
    // ch2 magnet open in the humidity slot
    let d = ok(
        "21ce01000000 00 17fc 17fc".replace(' ', "").as_str(),
        Variant::V2,
    );
    assert_eq!(d.history[0].magnet, [None, Some(Magnet::Open)]);
    assert_eq!(d.history[0].temperature, [None, None]);
}

#[test]
fn v1_history_mask() {
    // ch1 nibble 5 (magnet alarm) value 1 -> open; ch2 nibble 6 value 0 -> closed
    let d = ok(
        "20ce0a000000 56 0100 0000".replace(' ', "").as_str(),
        Variant::V1,
    );
    assert_eq!(
        d.history[0].magnet,
        [Some(Magnet::Open), Some(Magnet::Closed)]
    );
    assert_eq!(d.history[0].temperature, [None, None]);
    // ch1 nibble 0 (nothing), ch2 nibble 1 with the -999 sentinel -> nothing
    let d = ok(
        "20ce0a000000 01 f600 19fc".replace(' ', "").as_str(),
        Variant::V1,
    );
    assert_eq!(d.history[0].temperature, [None, None]);
    assert_eq!(d.history[0].magnet, [None, None]);
}

#[test]
fn magnet_values() {
    let d = ok("030000040002", Variant::V1);
    assert_eq!(d.magnet, [Some(Magnet::Closed), None]);
    assert_eq!(serde_json::to_value(Magnet::Closed).unwrap(), "closed");
}

#[test]
fn detect_variant_looks_at_frames() {
    // Vectors with a 9A humidity frame or a B3 status frame.
    let v2 = ["01755a03679a00039a580204670e01", "01755ab3670004671e01"];
    for (hex, bytes, _) in vectors() {
        let expected = v2.contains(&hex.as_str()).then_some(Variant::V2);
        assert_eq!(detect_variant(&bytes), expected, "{hex}");
    }
    // A v2 frame before a broken one still counts.
    assert_eq!(detect_variant(&unhex("039a58025555")), Some(Variant::V2));
    assert_eq!(detect_variant(&[]), None);
    assert_eq!(detect_variant(&unhex("94d70401820002")), None);
}

#[test]
fn variant_names() {
    for (s, v) in [
        ("v1", Variant::V1),
        ("V1", Variant::V1),
        ("v2", Variant::V2),
        ("V2", Variant::V2),
    ] {
        assert_eq!(s.parse::<Variant>(), Ok(v));
    }
    assert!("v3".parse::<Variant>().is_err());
    assert!(" v1".parse::<Variant>().is_err());
    assert_eq!(Variant::V2.as_str(), "v2");
    assert_eq!(serde_json::to_value(Variant::V1).unwrap(), "v1");
    assert_eq!(
        serde_json::from_str::<Variant>("\"v2\"").unwrap(),
        Variant::V2
    );
}

// ---- fuzz ------------------------------------------------------------------

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

#[test]
fn fuzz_never_panics() {
    let frames = official_frames(Variant::V1);
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let (mut decoded, mut failed) = (0u32, 0u32);
    for _ in 0..200_000 {
        let target = (rng.next() % 40) as usize;
        let mut input = Vec::with_capacity(target + 12);
        while input.len() < target {
            // Mostly well-formed frames with random data, so decoding gets deep.
            match rng.next() % 8 {
                0 => input.push(rng.byte()),
                1 => input.extend([rng.byte(), rng.byte()]),
                _ => {
                    let (id, ty, len) = frames[(rng.next() % frames.len() as u64) as usize];
                    input.extend([id, ty]);
                    input.extend((0..len).map(|_| rng.byte()));
                }
            }
        }
        for variant in BOTH {
            match decode(&input, variant) {
                Ok(d) => {
                    decoded += 1;
                    assert!(d
                        .temperature
                        .iter()
                        .chain(&d.humidity)
                        .flatten()
                        .all(|v| v.is_finite()));
                }
                Err(e) => {
                    failed += 1;
                    check_error(&input, &e);
                }
            }
        }
        let _ = detect_variant(&input);
    }
    assert!(
        decoded > 10_000 && failed > 10_000,
        "decoded {decoded}, failed {failed}"
    );
}

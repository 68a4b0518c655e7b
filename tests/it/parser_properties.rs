//! Property tests over the parsers every webhook byte passes through: whatever arrives, they
//! answer with a value or an error and never panic. (The long fuzz runs are in fuzz/.)

use proptest::prelude::*;
use sensorcast::ingest::secrets::WebhookSecrets;
use sensorcast::ingest::signature::{self, SignedHeaders};
use sensorcast::ingest::ts302::{self, Variant};
use sensorcast::ingest::{gateway, mdp};
use serde_json::{json, Value};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-zA-Z0-9_ .:-]{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("DEVICE_DATA"),
            Just("PROPERTY"),
            Just("EVENT"),
            Just("ONLINE"),
            Just("OFFLINE"),
            Just("historical_data"),
            Just("WEBHOOK_TEST"),
            Just("AXVkA2f7AARnAQE="),
            Just("24e124707e040001"),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let keys = prop_oneof![
            Just("eventId".to_string()),
            Just("eventType".to_string()),
            Just("eventCreatedTime".to_string()),
            Just("data".to_string()),
            Just("deviceProfile".to_string()),
            Just("devEUI".to_string()),
            Just("deviceId".to_string()),
            Just("type".to_string()),
            Just("tslId".to_string()),
            Just("payload".to_string()),
            Just("ts".to_string()),
            Just("temperature".to_string()),
            Just("timestamp".to_string()),
            Just("fPort".to_string()),
            Just("fCnt".to_string()),
            Just("status".to_string()),
            "[a-z_]{1,8}".prop_map(String::from),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(keys, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn ts302_decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        for variant in [Variant::V1, Variant::V2] {
            match ts302::decode(&bytes, variant) {
                Ok(d) => {
                    for t in d.temperature.iter().flatten() {
                        prop_assert!(t.is_finite());
                    }
                }
                Err(e) => prop_assert!(e.offset <= bytes.len(), "{e} for {bytes:02x?}"),
            }
        }
        let _ = ts302::detect_variant(&bytes);
    }

    #[test]
    fn parsers_never_panic_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = mdp::parse(&bytes, 0);
        let _ = gateway::parse(&bytes);
    }

    #[test]
    fn parsers_never_panic_on_json(value in arb_json()) {
        let body = value.to_string();
        let _ = mdp::parse(body.as_bytes(), 0);
        if let Ok(gateway::Message::Uplink(u)) = gateway::parse(body.as_bytes()) {
            let _ = gateway::uplink_delivery(&u, Variant::V1, 0);
        }
    }

    #[test]
    fn readings_round_trip(t1 in -40.0f64..125.0, t2 in -40.0f64..125.0, battery in 0u8..=100, id in "[a-f0-9-]{1,36}") {
        let body = json!({"eventId": id, "eventCreatedTime": 1742872448, "eventType": "DEVICE_DATA",
            "data": {"deviceProfile": {"deviceId": "1904371063669395457", "devEUI": "24D124707E040001"},
                     "type": "PROPERTY", "payload": {"temperature_left": t1, "temperature_right": t2, "battery": battery}}});
        let deliveries = mdp::parse(body.to_string().as_bytes(), 0).unwrap();
        let sensorcast::domain::Change::Reading(r) = &deliveries[0].changes[0] else {
            return Err(TestCaseError::fail("reading expected"));
        };
        prop_assert_eq!(r.values.temperature, Some(t1));
        prop_assert_eq!(r.values.temperature2, Some(t2));
        prop_assert_eq!(r.values.battery, Some(i64::from(battery)));
    }

    #[test]
    fn signature_check_never_panics(sig in ".{0,80}", ts in ".{0,14}", nonce in ".{0,40}", now in any::<i64>()) {
        let secrets = WebhookSecrets::parse(Some("mySecretKey"));
        let h = SignedHeaders { signature: Some(&sig), uuid: None, timestamp: Some(&ts), nonce: Some(&nonce) };
        let _ = signature::verify(&secrets, h, now, 60);
    }
}

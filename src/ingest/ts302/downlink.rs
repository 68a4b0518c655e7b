//! Encoder for TS302 configuration downlinks (LoRaWAN fPort 85), and which later uplink
//! answers each one.
//!
//! A downlink is frames `[channel id][channel type][data]`, little-endian, like an uplink. The
//! layouts follow Milesight's official encoders in `Milesight-IoT/SensorDecoders` (read at
//! commit `e79c9d8b25ec66b6aad34c9240cfaa2ccd1353e3`), `ts-series/ts302/ts302-encoder.js` (v1)
//! and `ts-series/ts302-v2/ts302-v2-encoder.js` (v2), cross-checked against the replies the
//! official decoders (`ts302-decoder.js`, `ts302-v2-decoder.js` beside them) read back:
//!
//! | command | bytes | v1 encoder | v2 encoder |
//! | --- | --- | --- | --- |
//! | report interval | `FF 8E 00` + u16 minutes, 1..=1440 | `setReportInterval`, L167–181 | L312–326 |
//! | reboot | `FF 10 FF` | `reboot`, L113–124 | L178–189 |
//! | time sync | `FF 4A 00` (no timestamp) | `syncTime`, L149–160 | L294–305 |
//! | threshold | `FF 06` + ctrl + i16 min + i16 max + `00 00 00 00` | `setTemperatureAlarmConfig`, L353–386 | L606–639 |
//! | history | `FD 6C` + u32 start + u32 end, epoch s | `fetchHistory`, L511–540 | L1221–1250, L250–269 |
//!
//! The threshold control byte is where the generations differ: bits 0–2 the condition
//! (0 off, 1 below min, 2 above max, 3 between, 4 outside), bits 3–5 the channel, bit 6
//! enable. v1 numbers the channels 1 and 2 and has bit 7 "alarm release enable"; v2 numbers
//! them 0 and 1, leaves bit 7 clear, and switches releases for all channels at once with a
//! separate `FF F5` command (v2 encoder L351–363), which is not sent here. Thresholds are
//! tenths of a °C.
//!
//! Neither TS302 encoder has a set-the-clock-to-this-timestamp command: `FF 4A 00` asks the
//! device to synchronise its clock itself (from the network).

use base64::Engine;

use super::{Decoded, Variant};
use crate::domain::{self, Command, CommandError, ReplyPiece};

/// The LoRaWAN port TS302 configuration downlinks are sent on.
pub const FPORT: u8 = 85;

/// Threshold conditions (bits 0–2 of the control byte).
const CONDITION_OFF: u8 = 0;
const CONDITION_BELOW: u8 = 1;
const CONDITION_ABOVE: u8 = 2;
const CONDITION_OUTSIDE: u8 = 4;

/// The bytes of one command for a device of this generation. Validates first
/// ([`Command::validate`]), so nothing out of the device's range is ever encoded.
pub fn encode(cmd: &Command, variant: Variant) -> Result<Vec<u8>, CommandError> {
    cmd.validate()?;
    let bytes = match *cmd {
        Command::SetReportInterval { minutes } => {
            let minutes =
                u16::try_from(minutes).map_err(|_| CommandError::ReportInterval(minutes))?;
            let mut out = vec![0xff, 0x8e, 0x00];
            out.extend(minutes.to_le_bytes());
            out
        }
        Command::Reboot {} => vec![0xff, 0x10, 0xff],
        Command::SyncTime {} => vec![0xff, 0x4a, 0x00],
        Command::SetThreshold { probe, min, max } => threshold(probe, min, max, variant)?,
        Command::FetchHistory { from, to } => {
            let mut out = vec![0xfd, 0x6c];
            out.extend(domain::epoch_seconds(from)?.to_le_bytes());
            out.extend(domain::epoch_seconds(to)?.to_le_bytes());
            out
        }
    };
    Ok(bytes)
}

/// [`encode`], as lowercase hex (what Milesight's documentation shows).
pub fn encode_hex(cmd: &Command, variant: Variant) -> Result<String, CommandError> {
    encode(cmd, variant).map(hex::encode)
}

/// [`encode`], as standard padded base64 (what network servers' downlink APIs take).
pub fn encode_base64(cmd: &Command, variant: Variant) -> Result<String, CommandError> {
    encode(cmd, variant).map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// `FF 06`: only `min` alarms below it, only `max` above it, both outside them, neither
/// switches the alarm off. An absent bound is sent as 0.
fn threshold(
    probe: i64,
    min: Option<f64>,
    max: Option<f64>,
    variant: Variant,
) -> Result<Vec<u8>, CommandError> {
    let low = min.map(domain::celsius_tenths).transpose()?;
    let high = max.map(domain::celsius_tenths).transpose()?;
    let condition = match (low, high) {
        (None, None) => CONDITION_OFF,
        (Some(_), None) => CONDITION_BELOW,
        (None, Some(_)) => CONDITION_ABOVE,
        (Some(_), Some(_)) => CONDITION_OUTSIDE,
    };
    let on = u8::from(condition != CONDITION_OFF);
    let probe_number = u8::try_from(probe).map_err(|_| CommandError::Probe(probe))?;
    let ctrl = match variant {
        // Channel 1|2, and bit 7: report the release when the reading is back in range.
        Variant::V1 => condition | probe_number << 3 | on << 6 | on << 7,
        // Channel 0|1; releases are the separate `FF F5` setting.
        Variant::V2 => condition | (probe_number - 1) << 3 | on << 6,
    };
    let mut out = vec![0xff, 0x06, ctrl];
    out.extend(low.unwrap_or(0).to_le_bytes());
    out.extend(high.unwrap_or(0).to_le_bytes());
    out.extend([0; 4]);
    Ok(out)
}

// ---------------------------------------------------------------------------
// Confirmation
// ---------------------------------------------------------------------------

/// What in a decoded uplink can answer a command, as the store matches it
/// (`domain::confirmed_by`): an `FF 8E` report-interval reply (both generations' official
/// decoders read it as the device's reply), the power-on frame `FF 0B` (part of the
/// information packet a device sends when it joins; after a reboot it rejoins), every stored
/// record (`20 CE` / `21 CE`) by its time, and the configuration frames the device echoed
/// (v2's `handle_downlink_response`: `FF 06` threshold, `FF 4A` time sync, `FD 6C` history).
pub fn reply_pieces(decoded: &Decoded) -> Vec<ReplyPiece> {
    let mut pieces = Vec::new();
    if let Some(minutes) = decoded.report_interval_min {
        pieces.push(ReplyPiece::ReportInterval(minutes));
    }
    if decoded.device_info.device_status.as_deref() == Some("on") {
        pieces.push(ReplyPiece::PowerOn);
    }
    pieces.extend(
        decoded
            .history
            .iter()
            .map(|rec| ReplyPiece::HistoryRecord(rec.timestamp)),
    );
    pieces.extend(decoded.echoes.iter().cloned().map(ReplyPiece::Echo));
    pieces
}

/// Whether this decoded uplink confirms `cmd`, sent to a device of this generation.
pub fn confirms(cmd: &Command, variant: Variant, decoded: &Decoded) -> bool {
    let Ok(bytes) = encode(cmd, variant) else {
        return false;
    };
    reply_pieces(decoded)
        .iter()
        .any(|piece| piece.answers(cmd, &bytes))
}

#[cfg(test)]
mod tests {
    use super::super::decode;
    use super::*;

    const BOTH: [Variant; 2] = [Variant::V1, Variant::V2];

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn interval(minutes: i64) -> Command {
        Command::SetReportInterval { minutes }
    }

    fn threshold(probe: i64, min: Option<f64>, max: Option<f64>) -> Command {
        Command::SetThreshold { probe, min, max }
    }

    fn history(from: i64, to: i64) -> Command {
        Command::FetchHistory { from, to }
    }

    fn hex_of(cmd: &Command, variant: Variant) -> String {
        encode_hex(cmd, variant).unwrap()
    }

    // ---- bytes: the expected hex is what Milesight's encoders produce for the same input ----

    #[test]
    fn report_interval_bytes() {
        for v in BOTH {
            // The encoders' `@example { "report_interval": 20 }`; Milesight's downlink
            // documentation shows the same frame, `ff8e001400`, for 20 minutes.
            assert_eq!(hex_of(&interval(20), v), "ff8e001400");
            assert_eq!(hex_of(&interval(10), v), "ff8e000a00");
            assert_eq!(hex_of(&interval(1), v), "ff8e000100");
            assert_eq!(hex_of(&interval(1440), v), "ff8e00a005");
        }
    }

    #[test]
    fn reboot_and_sync_time_bytes() {
        for v in BOTH {
            assert_eq!(hex_of(&Command::Reboot {}, v), "ff10ff");
            assert_eq!(hex_of(&Command::SyncTime {}, v), "ff4a00");
        }
    }

    #[test]
    fn fetch_history_bytes() {
        for v in BOTH {
            // `fetchHistory`'s `@example`, start 1609459200, end 1609545600 (both encoders).
            assert_eq!(
                hex_of(&history(1_609_459_200_000, 1_609_545_600_000), v),
                "fd6c0066ee5f80b7ef5f"
            );
            // v2's `retrieval_historical_data_by_time_range` example, 1718188800–1718275200.
            assert_eq!(
                hex_of(&history(1_718_188_800_000, 1_718_275_200_000), v),
                "fd6c007b696680cc6a66"
            );
            // Milliseconds are cut down to the second.
            assert_eq!(
                hex_of(&history(1_718_188_800_999, 1_718_275_200_999), v),
                "fd6c007b696680cc6a66"
            );
            assert_eq!(hex_of(&history(0, 0), v), "fd6c0000000000000000");
        }
    }

    #[test]
    fn threshold_bytes_v1() {
        let v = Variant::V1;
        // Outside [-25, -15]: ctrl cc = release | enable | channel 1 | outside.
        let freezer = threshold(1, Some(-25.0), Some(-15.0));
        assert_eq!(hex_of(&freezer, v), "ff06cc06ff6aff00000000");
        let freezer2 = threshold(2, Some(-25.0), Some(-15.0));
        assert_eq!(hex_of(&freezer2, v), "ff06d406ff6aff00000000");
        let below = threshold(1, Some(2.0), None);
        assert_eq!(hex_of(&below, v), "ff06c91400000000000000");
        let above = threshold(2, None, Some(8.0));
        assert_eq!(hex_of(&above, v), "ff06d20000500000000000");
        let tenths = threshold(1, Some(-20.5), Some(30.2));
        assert_eq!(hex_of(&tenths, v), "ff06cc33ff2e0100000000");
        // Off: condition 0, enable and release clear, channel kept.
        assert_eq!(
            hex_of(&threshold(1, None, None), v),
            "ff06080000000000000000"
        );
        assert_eq!(
            hex_of(&threshold(2, None, None), v),
            "ff06100000000000000000"
        );
    }

    #[test]
    fn threshold_bytes_v2() {
        let v = Variant::V2;
        // Outside [-25, -15]: ctrl 44 = enable | channel 0 | outside.
        let freezer = threshold(1, Some(-25.0), Some(-15.0));
        assert_eq!(hex_of(&freezer, v), "ff064406ff6aff00000000");
        let freezer2 = threshold(2, Some(-25.0), Some(-15.0));
        assert_eq!(hex_of(&freezer2, v), "ff064c06ff6aff00000000");
        let below = threshold(2, Some(2.0), None);
        assert_eq!(hex_of(&below, v), "ff06491400000000000000");
        let above = threshold(1, None, Some(8.0));
        assert_eq!(hex_of(&above, v), "ff06420000500000000000");
        let tenths = threshold(2, Some(-20.5), Some(30.2));
        assert_eq!(hex_of(&tenths, v), "ff064c33ff2e0100000000");
        assert_eq!(
            hex_of(&threshold(1, None, None), v),
            "ff06000000000000000000"
        );
        assert_eq!(
            hex_of(&threshold(2, None, None), v),
            "ff06080000000000000000"
        );
    }

    #[test]
    fn threshold_channel_differs_between_variants() {
        // v2's "off, probe 2" is v1's "off, probe 1": the variant must be right.
        assert_eq!(
            encode(&threshold(2, None, None), Variant::V2),
            encode(&threshold(1, None, None), Variant::V1)
        );
        assert_ne!(
            encode(&threshold(1, Some(1.0), None), Variant::V1),
            encode(&threshold(1, Some(1.0), None), Variant::V2)
        );
    }

    #[test]
    fn base64_and_hex_helpers() {
        for v in BOTH {
            assert_eq!(encode_hex(&Command::Reboot {}, v).unwrap(), "ff10ff");
            assert_eq!(encode_base64(&Command::Reboot {}, v).unwrap(), "/xD/");
            assert_eq!(encode_base64(&interval(20), v).unwrap(), "/44AFAA=");
        }
        assert_eq!(FPORT, 85);
    }

    // ---- bad input ----

    #[test]
    fn bad_input_is_a_typed_error() {
        let cases = [
            (interval(0), CommandError::ReportInterval(0)),
            (interval(1441), CommandError::ReportInterval(1441)),
            (interval(-5), CommandError::ReportInterval(-5)),
            (threshold(3, Some(1.0), None), CommandError::Probe(3)),
            (threshold(0, None, None), CommandError::Probe(0)),
            (
                threshold(1, Some(-15.0), Some(-25.0)),
                CommandError::MinNotBelowMax {
                    min: -15.0,
                    max: -25.0,
                },
            ),
            (
                threshold(2, Some(4.0), Some(4.0)),
                CommandError::MinNotBelowMax { min: 4.0, max: 4.0 },
            ),
            (
                threshold(1, None, Some(f64::NEG_INFINITY)),
                CommandError::NotFinite(f64::NEG_INFINITY),
            ),
            (
                threshold(1, Some(5000.0), None),
                CommandError::ThresholdRange(5000.0),
            ),
            (
                history(2_000_000, 1_000_000),
                CommandError::HistoryOrder {
                    from: 2_000_000,
                    to: 1_000_000,
                },
            ),
            (history(-1000, 0), CommandError::HistoryTime(-1000)),
        ];
        for v in BOTH {
            for (cmd, err) in &cases {
                assert_eq!(encode(cmd, v).as_ref(), Err(err), "{cmd:?} {v}");
            }
            let nan = encode(&threshold(1, Some(f64::NAN), None), v);
            assert!(matches!(nan, Err(CommandError::NotFinite(x)) if x.is_nan()));
        }
    }

    // ---- the decoder accepts every frame as a reply ----

    #[test]
    fn decoder_reads_the_frames_back() {
        let commands = [
            interval(20),
            Command::Reboot {},
            Command::SyncTime {},
            threshold(1, Some(-25.0), Some(-15.0)),
            threshold(2, None, None),
            history(1_718_188_800_000, 1_718_275_200_000),
        ];
        for v in BOTH {
            for cmd in &commands {
                let bytes = encode(cmd, v).unwrap();
                let decoded = decode(&bytes, v);
                assert!(decoded.is_ok(), "{cmd:?} {v}: {decoded:?}");
            }
        }
    }

    // ---- confirmation ----

    #[test]
    fn report_interval_is_confirmed_by_its_reply() {
        for v in BOTH {
            let echo = decode(&encode(&interval(20), v).unwrap(), v).unwrap();
            assert_eq!(echo.report_interval_min, Some(20));
            assert_eq!(reply_pieces(&echo), [ReplyPiece::ReportInterval(20)]);
            assert!(confirms(&interval(20), v, &echo));
            assert!(!confirms(&interval(10), v, &echo));
            // A plain reading does not confirm anything.
            let reading = decode(&unhex("0175640367f100"), v).unwrap();
            assert!(reply_pieces(&reading).is_empty());
            assert!(!confirms(&interval(20), v, &reading));
        }
    }

    #[test]
    fn reboot_is_confirmed_by_power_on() {
        // Power on, IPSO version, then a reading.
        let joined = decode(&unhex("ff0bffff01010175640367f100"), Variant::V1).unwrap();
        assert!(confirms(&Command::Reboot {}, Variant::V1, &joined));
        assert_eq!(reply_pieces(&joined), [ReplyPiece::PowerOn]);
        let reading = decode(&unhex("0175640367f100"), Variant::V1).unwrap();
        assert!(!confirms(&Command::Reboot {}, Variant::V1, &reading));
        // The reboot command's own echo (v2 `FF 10`) is no proof that it restarted.
        let echo = decode(&unhex("ff10ff"), Variant::V2).unwrap();
        assert!(!confirms(&Command::Reboot {}, Variant::V2, &echo));
    }

    #[test]
    fn fetch_history_is_confirmed_by_a_record_in_range() {
        // The v1 README's history example: 1694145223, -6.7 °C and 24.6 °C.
        let rec = decode(&unhex("20cec79afa6444bdfff600"), Variant::V1).unwrap();
        assert_eq!(rec.history.len(), 1);
        assert_eq!(
            reply_pieces(&rec),
            [ReplyPiece::HistoryRecord(1_694_145_223)]
        );
        let at = 1_694_145_223_000;
        let v = Variant::V1;
        assert!(confirms(&history(at, at), v, &rec));
        assert!(confirms(&history(at - 3_600_000, at + 999), v, &rec));
        assert!(!confirms(&history(at - 3_600_000, at - 1), v, &rec));
        assert!(!confirms(&history(at + 1000, at + 3_600_000), v, &rec));
    }

    #[test]
    fn echoed_settings_confirm_their_command() {
        let v = Variant::V2;
        let freezer = threshold(1, Some(-25.0), Some(-15.0));
        let history_range = history(1_718_188_800_000, 1_718_275_200_000);
        for cmd in [Command::SyncTime {}, freezer.clone(), history_range.clone()] {
            // v2 echoes the frame it applied; an FE channel counts like FF.
            let bytes = encode(&cmd, v).unwrap();
            let echo = decode(&bytes, v).unwrap();
            assert_eq!(echo.echoes, std::slice::from_ref(&bytes), "{cmd:?}");
            assert!(confirms(&cmd, v, &echo), "{cmd:?}");
            let mut fe = bytes.clone();
            if fe[0] == 0xff {
                fe[0] = 0xfe;
                assert!(confirms(&cmd, v, &decode(&fe, v).unwrap()), "{cmd:?} on FE");
            }
        }
        // Another threshold (probe 2) is not this one's echo.
        let other = decode(
            &encode(&threshold(2, Some(-25.0), Some(-15.0)), v).unwrap(),
            v,
        )
        .unwrap();
        assert!(!confirms(&freezer, v, &other));
        // The time sync echo is read by its type alone, as the official decoder does.
        assert!(confirms(
            &Command::SyncTime {},
            v,
            &decode(&unhex("ff4a01"), v).unwrap()
        ));
        // Echoes do not change what else the uplink says.
        let mixed = decode(&unhex("ff4a000175640367f100"), v).unwrap();
        assert_eq!(mixed.battery, Some(100));
        assert_eq!(mixed.echoes, [unhex("ff4a00")]);
        let raw = serde_json::to_value(&mixed).unwrap();
        assert_eq!(raw["echoes"], serde_json::json!(["ff4a00"]));
        let plain = serde_json::to_value(decode(&unhex("0175640367f100"), v).unwrap()).unwrap();
        assert!(plain.get("echoes").is_none(), "absent when there are none");
    }
}

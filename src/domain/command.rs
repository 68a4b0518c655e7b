//! Configuration commands for a TS302, as the API accepts them, and their validation.
//!
//! This is the device-independent half: what was asked and whether it is acceptable. The bytes
//! a command becomes are `ingest::ts302::downlink`'s business. The limits checked here are the
//! TS302's own (Milesight's encoders in `Milesight-IoT/SensorDecoders`, `ts-series/ts302` and
//! `ts-series/ts302-v2`), so the API can refuse a command before anything is queued, and the
//! encoder relies on a validated command fitting its fields.

use serde::{Deserialize, Serialize};

/// Shortest report interval the device accepts, minutes.
pub const REPORT_INTERVAL_MIN: i64 = 1;
/// Longest report interval the device accepts, minutes (24 h).
pub const REPORT_INTERVAL_MAX: i64 = 1440;

/// One command for one device. JSON: `{"command":"set_report_interval","minutes":10}`,
/// `{"command":"reboot"}`, `{"command":"sync_time"}`,
/// `{"command":"set_threshold","probe":1,"min":-25,"max":-15}`,
/// `{"command":"fetch_history","from":1718188800000,"to":1718275200000}`.
///
/// Fields hold what was sent, unchecked (any JSON integer fits, so a bad value reaches
/// [`Command::validate`] and gets a [`CommandError`] rather than a parse error); unknown
/// fields are refused, so a misspelt `"minimum"` cannot silently clear a threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// How often the device reports, minutes, `1..=1440`.
    SetReportInterval {
        #[schema(minimum = 1, maximum = 1440)]
        minutes: i64,
    },
    /// Braces, not a unit variant: serde checks unknown fields only on struct variants.
    Reboot {},
    /// Ask the device to set its clock (it takes the time from the network, not from us).
    SyncTime {},
    /// The device's own temperature alarm for one probe (1 or 2), °C with 0.1 °C resolution.
    /// Only `min`: alarm below it. Only `max`: alarm above it. Both: alarm outside
    /// `[min, max]`. Neither: the alarm is switched off.
    SetThreshold {
        #[schema(minimum = 1, maximum = 2)]
        probe: i64,
        #[serde(default)]
        min: Option<f64>,
        #[serde(default)]
        max: Option<f64>,
    },
    /// Resend stored records measured between `from` and `to` (epoch milliseconds, both
    /// inclusive; the device counts whole seconds, so both are cut down to a second).
    FetchHistory { from: i64, to: i64 },
}

/// Why a command cannot be sent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    #[error("report interval {0} min is outside 1..=1440")]
    ReportInterval(i64),
    #[error("probe {0} does not exist (1 or 2)")]
    Probe(i64),
    #[error("threshold {0} is not a finite number")]
    NotFinite(f64),
    #[error("threshold {0} °C is outside what the device can hold (-3276.8..=3276.7)")]
    ThresholdRange(f64),
    #[error("threshold min {min} °C must be below max {max} °C (at 0.1 °C resolution)")]
    MinNotBelowMax { min: f64, max: f64 },
    #[error("history time {0} ms is outside what the device can hold (1970 to 2106)")]
    HistoryTime(i64),
    #[error("history range starts at {from} ms, after its end at {to} ms")]
    HistoryOrder { from: i64, to: i64 },
}

impl CommandError {
    /// The JSON field the problem is in, for the API's answer.
    pub fn field(&self) -> &'static str {
        match self {
            CommandError::ReportInterval(_) => "minutes",
            CommandError::Probe(_) => "probe",
            CommandError::NotFinite(_) | CommandError::ThresholdRange(_) => "min/max",
            CommandError::MinNotBelowMax { .. } => "min",
            CommandError::HistoryTime(_) => "from/to",
            CommandError::HistoryOrder { .. } => "from",
        }
    }
}

impl Command {
    /// The command's name in JSON (`set_report_interval`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Command::SetReportInterval { .. } => "set_report_interval",
            Command::Reboot {} => "reboot",
            Command::SyncTime {} => "sync_time",
            Command::SetThreshold { .. } => "set_threshold",
            Command::FetchHistory { .. } => "fetch_history",
        }
    }

    /// Checks every value against the device's limits.
    pub fn validate(&self) -> Result<(), CommandError> {
        match *self {
            Command::SetReportInterval { minutes } => {
                if !(REPORT_INTERVAL_MIN..=REPORT_INTERVAL_MAX).contains(&minutes) {
                    return Err(CommandError::ReportInterval(minutes));
                }
            }
            Command::Reboot {} | Command::SyncTime {} => {}
            Command::SetThreshold { probe, min, max } => {
                if !(1..=2).contains(&probe) {
                    return Err(CommandError::Probe(probe));
                }
                let lo = min.map(celsius_tenths).transpose()?;
                let hi = max.map(celsius_tenths).transpose()?;
                if let (Some(lo), Some(hi), Some(min), Some(max)) = (lo, hi, min, max) {
                    if lo >= hi {
                        return Err(CommandError::MinNotBelowMax { min, max });
                    }
                }
            }
            Command::FetchHistory { from, to } => {
                epoch_seconds(from)?;
                epoch_seconds(to)?;
                if from > to {
                    return Err(CommandError::HistoryOrder { from, to });
                }
            }
        }
        Ok(())
    }
}

/// °C as the device's signed tenths of a degree, rounded to the nearest tenth.
pub fn celsius_tenths(celsius: f64) -> Result<i16, CommandError> {
    if !celsius.is_finite() {
        return Err(CommandError::NotFinite(celsius));
    }
    let scaled = (celsius * 10.0).round();
    if scaled < f64::from(i16::MIN) || scaled > f64::from(i16::MAX) {
        return Err(CommandError::ThresholdRange(celsius));
    }
    // In range and integral, so the cast is exact.
    Ok(scaled as i16)
}

/// Epoch milliseconds as the device's unsigned 32-bit epoch seconds, cut down to a second.
pub fn epoch_seconds(ms: i64) -> Result<u32, CommandError> {
    u32::try_from(ms.div_euclid(1000))
        .ok()
        .filter(|_| ms >= 0)
        .ok_or(CommandError::HistoryTime(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Command, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn json_contract_parses() {
        assert_eq!(
            parse(r#"{"command":"set_report_interval","minutes":10}"#).unwrap(),
            Command::SetReportInterval { minutes: 10 }
        );
        assert_eq!(
            parse(r#"{"command":"reboot"}"#).unwrap(),
            Command::Reboot {}
        );
        assert_eq!(
            parse(r#"{"command":"sync_time"}"#).unwrap(),
            Command::SyncTime {}
        );
        assert_eq!(
            parse(r#"{"command":"set_threshold","probe":1,"min":-25,"max":-15}"#).unwrap(),
            Command::SetThreshold {
                probe: 1,
                min: Some(-25.0),
                max: Some(-15.0)
            }
        );
        assert_eq!(
            parse(r#"{"command":"fetch_history","from":1718188800000,"to":1718275200000}"#)
                .unwrap(),
            Command::FetchHistory {
                from: 1_718_188_800_000,
                to: 1_718_275_200_000
            }
        );
    }

    #[test]
    fn threshold_bounds_may_be_absent_or_null() {
        assert_eq!(
            parse(r#"{"command":"set_threshold","probe":2,"max":8.5}"#).unwrap(),
            Command::SetThreshold {
                probe: 2,
                min: None,
                max: Some(8.5)
            }
        );
        assert_eq!(
            parse(r#"{"command":"set_threshold","probe":2,"min":null,"max":null}"#).unwrap(),
            Command::SetThreshold {
                probe: 2,
                min: None,
                max: None
            }
        );
    }

    #[test]
    fn malformed_json_is_refused() {
        for json in [
            r#"{"command":"set_threshold","probe":1,"minimum":-25}"#,
            r#"{"command":"reboot","now":true}"#,
            r#"{"command":"sync_time","timestamp":1718188800}"#,
            r#"{"command":"format_disk"}"#,
            r#"{"minutes":10}"#,
            r#"{"command":"set_report_interval"}"#,
            r#"{"command":"set_report_interval","minutes":"10"}"#,
            r#"{"command":"fetch_history","from":1}"#,
        ] {
            assert!(parse(json).is_err(), "{json} parsed");
        }
    }

    #[test]
    fn serializes_to_the_same_contract() {
        let cmd = Command::SetReportInterval { minutes: 10 };
        let json = serde_json::to_string(&cmd).unwrap();
        assert_eq!(json, r#"{"command":"set_report_interval","minutes":10}"#);
        assert_eq!(parse(&json).unwrap(), cmd);
        let json = serde_json::to_string(&Command::Reboot {}).unwrap();
        assert_eq!(json, r#"{"command":"reboot"}"#);
        for cmd in [
            Command::Reboot {},
            Command::SyncTime {},
            Command::SetThreshold {
                probe: 1,
                min: None,
                max: Some(-15.5),
            },
            Command::FetchHistory { from: 0, to: 1 },
        ] {
            let json = serde_json::to_string(&cmd).unwrap();
            assert_eq!(parse(&json).unwrap(), cmd, "{json}");
            assert!(json.contains(&format!(r#""command":"{}""#, cmd.name())));
        }
    }

    #[test]
    fn report_interval_range() {
        for minutes in [1, 10, 1440] {
            assert_eq!(Command::SetReportInterval { minutes }.validate(), Ok(()));
        }
        for minutes in [0, -1, 1441, 65_536, i64::MAX] {
            assert_eq!(
                Command::SetReportInterval { minutes }.validate(),
                Err(CommandError::ReportInterval(minutes))
            );
        }
    }

    fn threshold(probe: i64, min: Option<f64>, max: Option<f64>) -> Command {
        Command::SetThreshold { probe, min, max }
    }

    #[test]
    fn threshold_validation() {
        assert_eq!(threshold(1, Some(-25.0), Some(-15.0)).validate(), Ok(()));
        assert_eq!(threshold(2, None, Some(8.0)).validate(), Ok(()));
        assert_eq!(threshold(2, Some(2.0), None).validate(), Ok(()));
        assert_eq!(threshold(1, None, None).validate(), Ok(()));
        for probe in [0, 3, -1] {
            assert_eq!(
                threshold(probe, None, None).validate(),
                Err(CommandError::Probe(probe))
            );
        }
        assert_eq!(
            threshold(1, Some(-15.0), Some(-25.0)).validate(),
            Err(CommandError::MinNotBelowMax {
                min: -15.0,
                max: -25.0
            })
        );
        assert_eq!(
            threshold(1, Some(5.0), Some(5.0)).validate(),
            Err(CommandError::MinNotBelowMax { min: 5.0, max: 5.0 })
        );
        // Distinct as given, equal at the device's resolution.
        assert_eq!(
            threshold(1, Some(5.01), Some(5.04)).validate(),
            Err(CommandError::MinNotBelowMax {
                min: 5.01,
                max: 5.04
            })
        );
        assert!(matches!(
            threshold(1, Some(f64::NAN), None).validate(),
            Err(CommandError::NotFinite(v)) if v.is_nan()
        ));
        assert_eq!(
            threshold(1, None, Some(f64::INFINITY)).validate(),
            Err(CommandError::NotFinite(f64::INFINITY))
        );
        assert_eq!(
            threshold(2, Some(-4000.0), None).validate(),
            Err(CommandError::ThresholdRange(-4000.0))
        );
    }

    #[test]
    fn tenths_round_and_bound() {
        assert_eq!(celsius_tenths(-25.0), Ok(-250));
        assert_eq!(celsius_tenths(30.2), Ok(302));
        assert_eq!(celsius_tenths(0.29), Ok(3));
        assert_eq!(celsius_tenths(-0.04), Ok(0));
        assert_eq!(celsius_tenths(3276.7), Ok(i16::MAX));
        assert_eq!(celsius_tenths(-3276.8), Ok(i16::MIN));
        assert_eq!(
            celsius_tenths(3276.8),
            Err(CommandError::ThresholdRange(3276.8))
        );
    }

    #[test]
    fn history_validation() {
        let ok = Command::FetchHistory {
            from: 1_718_188_800_000,
            to: 1_718_275_200_999,
        };
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(Command::FetchHistory { from: 5, to: 5 }.validate(), Ok(()));
        assert_eq!(
            Command::FetchHistory {
                from: 2000,
                to: 1000
            }
            .validate(),
            Err(CommandError::HistoryOrder {
                from: 2000,
                to: 1000
            })
        );
        assert_eq!(
            Command::FetchHistory { from: -1, to: 1000 }.validate(),
            Err(CommandError::HistoryTime(-1))
        );
        let too_late = (i64::from(u32::MAX) + 1) * 1000;
        assert_eq!(
            Command::FetchHistory {
                from: 0,
                to: too_late
            }
            .validate(),
            Err(CommandError::HistoryTime(too_late))
        );
    }

    #[test]
    fn epoch_seconds_cuts_down() {
        assert_eq!(epoch_seconds(0), Ok(0));
        assert_eq!(epoch_seconds(999), Ok(0));
        assert_eq!(epoch_seconds(1_718_188_800_999), Ok(1_718_188_800));
        assert_eq!(
            epoch_seconds(i64::from(u32::MAX) * 1000 + 999),
            Ok(u32::MAX)
        );
        assert_eq!(epoch_seconds(-1), Err(CommandError::HistoryTime(-1)));
    }
}

//! The site report's figures, computed from readings without a database: days cut in the
//! site's time zone (a day at a daylight-saving change has 23 or 25 hours), and per device,
//! day and probe the min, max, mean, readings received and expected, and minutes out of range.

use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::alarm::{Quantity, Rule};

/// Longest report period, in days.
pub const MAX_REPORT_DAYS: i32 = 366;

/// One day of the period: its date and its bounds `[start_ms, end_ms)` in Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportDay {
    pub date: Date,
    pub start_ms: i64,
    pub end_ms: i64,
}

impl ReportDay {
    pub fn length_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }
}

/// A site's time zone by its IANA name (`Europe/Berlin`), from the bundled database.
pub fn parse_time_zone(name: &str) -> Result<TimeZone, String> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 {
        return Err("a time zone is an IANA name like Europe/Berlin".into());
    }
    TimeZone::get(name).map_err(|_| format!("{name:?} is not a known IANA time zone"))
}

/// A date as `YYYY-MM-DD`.
pub fn parse_day(s: &str) -> Result<Date, String> {
    let s = s.trim();
    if s.len() != 10 {
        return Err(format!("{s:?} is not a date like 2026-03-29"));
    }
    s.parse::<Date>()
        .map_err(|_| format!("{s:?} is not a date like 2026-03-29"))
}

/// Midnight at the start of `date` in `tz`, in Unix milliseconds (the first instant of the
/// day when midnight itself is skipped by a change).
fn day_start_ms(tz: &TimeZone, date: Date) -> Result<i64, String> {
    let zoned = date
        .to_zoned(tz.clone())
        .map_err(|e| format!("{date} has no start in this time zone: {e}"))?;
    Ok(zoned.timestamp().as_millisecond())
}

/// The days from `from` to `to`, both included, in `tz`. Refused: `to` before `from`, or more
/// than `MAX_REPORT_DAYS` days.
pub fn report_days(tz: &TimeZone, from: Date, to: Date) -> Result<Vec<ReportDay>, String> {
    if to < from {
        return Err("the period ends before it starts".into());
    }
    let mut days = Vec::new();
    let mut date = from;
    while date <= to {
        if days.len() as i32 >= MAX_REPORT_DAYS {
            return Err(format!("a report covers at most {MAX_REPORT_DAYS} days"));
        }
        let next = date.tomorrow().map_err(|e| e.to_string())?;
        days.push(ReportDay {
            date,
            start_ms: day_start_ms(tz, date)?,
            end_ms: day_start_ms(tz, next)?,
        });
        date = next;
    }
    Ok(days)
}

/// One reading as the report needs it: when, and the two probes' temperatures.
#[derive(Debug, Clone, Copy, PartialEq, sqlx::FromRow)]
pub struct ReportReading {
    pub device_id: i64,
    pub measured_ms: i64,
    pub temperature: Option<f64>,
    pub temperature2: Option<f64>,
}

impl ReportReading {
    pub fn probe(&self, probe: i64) -> Option<f64> {
        if probe == 2 {
            self.temperature2
        } else {
            self.temperature
        }
    }
}

/// One probe's figures for one day.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeDay {
    pub probe: i64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub received: i64,
    pub expected: i64,
    /// Time counted out of range of the rule, in minutes.
    pub minutes_out: f64,
    /// The rule the day was judged by (none: nothing is out of range).
    pub rule: Option<(Option<f64>, Option<f64>)>,
}

impl ProbeDay {
    /// A day with readings and nothing out of range.
    pub fn in_range(&self) -> bool {
        self.received > 0 && self.minutes_out == 0.0
    }
}

/// One device's day: a `ProbeDay` per probe reported.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceDay {
    pub device_id: i64,
    pub date: Date,
    pub probes: Vec<ProbeDay>,
}

fn outside(value: f64, rule: (Option<f64>, Option<f64>)) -> bool {
    rule.0.is_some_and(|min| value < min) || rule.1.is_some_and(|max| value > max)
}

/// Milliseconds of `[a, b)` inside `[lo, hi)`.
fn overlap(a: i64, b: i64, lo: i64, hi: i64) -> i64 {
    (b.min(hi) - a.max(lo)).max(0)
}

/// The day rows of one device. `readings` are that device's readings of the period ordered by
/// time; `rules` its current rules (only temperature rules count); `interval_s` its report
/// interval. Probe 2 is reported when any reading of the period has it.
///
/// Out of range: the time from a reading to the next one of the same probe counts when the
/// earlier reading was outside the rule, split over the days it spans; after the period's last
/// reading nothing is counted (it is not known).
pub fn device_days(
    device_id: i64,
    days: &[ReportDay],
    readings: &[ReportReading],
    rules: &[Rule],
    interval_s: i64,
) -> Vec<DeviceDay> {
    let interval_ms = interval_s.max(1) * 1000;
    let mut probes = vec![1];
    if readings.iter().any(|r| r.temperature2.is_some()) {
        probes.push(2);
    }
    let mut rows: Vec<DeviceDay> = days
        .iter()
        .map(|d| DeviceDay {
            device_id,
            date: d.date,
            probes: Vec::new(),
        })
        .collect();
    for probe in probes {
        let rule = rules
            .iter()
            .find(|r| r.quantity == Quantity::Temperature && r.probe == probe)
            .map(|r| (r.min, r.max));
        let values: Vec<(i64, f64)> = readings
            .iter()
            .filter_map(|r| r.probe(probe).map(|v| (r.measured_ms, v)))
            .collect();
        let mut out_ms = vec![0i64; days.len()];
        if let Some(rule) = rule {
            for pair in values.windows(2) {
                let ((t0, v0), (t1, _)) = (pair[0], pair[1]);
                if outside(v0, rule) {
                    for (i, d) in days.iter().enumerate() {
                        out_ms[i] += overlap(t0, t1, d.start_ms, d.end_ms);
                    }
                }
            }
        }
        for (i, d) in days.iter().enumerate() {
            let inside: Vec<f64> = values
                .iter()
                .filter(|(t, _)| *t >= d.start_ms && *t < d.end_ms)
                .map(|(_, v)| *v)
                .collect();
            let received = inside.len() as i64;
            let fold = |f: fn(f64, f64) -> f64| inside.iter().copied().reduce(f);
            rows[i].probes.push(ProbeDay {
                probe,
                min: fold(f64::min),
                max: fold(f64::max),
                mean: (received > 0).then(|| inside.iter().sum::<f64>() / received as f64),
                received,
                expected: d.length_ms() / interval_ms,
                minutes_out: out_ms[i] as f64 / 60_000.0,
                rule,
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> TimeZone {
        parse_time_zone("Europe/Berlin").unwrap()
    }

    fn date(s: &str) -> Date {
        parse_day(s).unwrap()
    }

    const HOUR: i64 = 3_600_000;

    #[test]
    fn berlin_days_at_the_changes_have_23_and_25_hours() {
        let spring = report_days(&berlin(), date("2026-03-28"), date("2026-03-30")).unwrap();
        let hours: Vec<i64> = spring.iter().map(|d| d.length_ms() / HOUR).collect();
        assert_eq!(hours, [24, 23, 24]);
        // 2026-03-29 00:00 CET is 2026-03-28 23:00 UTC.
        assert_eq!(spring[1].start_ms, 1_774_738_800_000);
        let autumn = report_days(&berlin(), date("2026-10-25"), date("2026-10-25")).unwrap();
        assert_eq!(autumn[0].length_ms(), 25 * HOUR);
        // 2026-10-25 00:00 CEST is 2026-10-24 22:00 UTC.
        assert_eq!(autumn[0].start_ms, 1_792_879_200_000);
    }

    #[test]
    fn ranges_are_checked() {
        assert!(report_days(&TimeZone::UTC, date("2026-01-02"), date("2026-01-01")).is_err());
        assert!(report_days(&TimeZone::UTC, date("2025-01-01"), date("2026-01-01")).is_ok());
        assert!(report_days(&TimeZone::UTC, date("2024-01-01"), date("2025-01-02")).is_err());
        assert!(parse_day("2026-02-30").is_err());
        assert!(parse_day("2026-2-3").is_err());
        assert!(parse_time_zone("Mars/Olympus").is_err());
        assert!(parse_time_zone("UTC").is_ok());
    }

    fn reading(ms: i64, t1: f64) -> ReportReading {
        ReportReading {
            device_id: 1,
            measured_ms: ms,
            temperature: Some(t1),
            temperature2: None,
        }
    }

    fn rule(min: f64, max: f64) -> Rule {
        Rule {
            quantity: Quantity::Temperature,
            probe: 1,
            min: Some(min),
            max: Some(max),
            delay_secs: 0,
        }
    }

    #[test]
    fn a_table_of_readings_becomes_day_rows_across_the_spring_change() {
        let days = report_days(&berlin(), date("2026-03-28"), date("2026-03-29")).unwrap();
        let (d0, d1) = (days[0].start_ms, days[1].start_ms);
        let readings = [
            reading(d0 + HOUR, -20.0),
            reading(d0 + 2 * HOUR, -10.0), // out: until the next reading, 21 h 30 min later
            reading(d1 - HOUR / 2, -18.0),
            reading(d1 + HOUR, -22.0),
            reading(d1 + 3 * HOUR, -12.0), // out for 1 h
            reading(d1 + 4 * HOUR, -19.0),
        ];
        let rows = device_days(1, &days, &readings, &[rule(-25.0, -15.0)], 600);
        assert_eq!(rows.len(), 2);
        let (a, b) = (&rows[0].probes[0], &rows[1].probes[0]);
        assert_eq!(
            (a.min, a.max, a.received, a.expected),
            (Some(-20.0), Some(-10.0), 3, 144)
        );
        assert_eq!(a.mean, Some(-16.0));
        assert_eq!(a.minutes_out, 21.5 * 60.0);
        assert_eq!(
            (b.min, b.max, b.received, b.expected),
            (Some(-22.0), Some(-12.0), 3, 138)
        );
        assert_eq!(b.minutes_out, 60.0);
        assert!(!a.in_range());
        assert_eq!(rows[0].probes.len(), 1, "no probe 2 without its readings");
    }

    #[test]
    fn an_excursion_over_midnight_is_split_and_the_25_hour_day_expects_150() {
        let days = report_days(&berlin(), date("2026-10-24"), date("2026-10-25")).unwrap();
        let d1 = days[1].start_ms;
        let readings = [
            reading(d1 - HOUR, -5.0),
            reading(d1 + 2 * HOUR, -20.0),
            reading(d1 + 10 * HOUR, -20.0),
        ];
        let rows = device_days(1, &days, &readings, &[rule(-25.0, -15.0)], 600);
        assert_eq!(rows[0].probes[0].minutes_out, 60.0);
        assert_eq!(rows[1].probes[0].minutes_out, 120.0);
        assert_eq!(rows[1].probes[0].expected, 150);
        assert_eq!(rows[0].probes[0].expected, 144);
        // Without a rule nothing is out of range; an empty day has no figures.
        let none = device_days(1, &days, &readings[..1], &[], 600);
        assert_eq!(none[0].probes[0].minutes_out, 0.0);
        assert_eq!(none[1].probes[0].received, 0);
        assert_eq!(none[1].probes[0].mean, None);
    }

    #[test]
    fn probe_2_is_reported_with_its_own_rule() {
        let days = report_days(&TimeZone::UTC, date("2026-01-01"), date("2026-01-01")).unwrap();
        let s = days[0].start_ms;
        let r = |ms, t2| ReportReading {
            device_id: 1,
            measured_ms: ms,
            temperature: Some(4.0),
            temperature2: Some(t2),
        };
        let mut rule2 = rule(0.0, 8.0);
        rule2.probe = 2;
        let rows = device_days(1, &days, &[r(s, 9.0), r(s + HOUR, 5.0)], &[rule2], 1200);
        let p = &rows[0].probes;
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].minutes_out, p[0].rule), (0.0, None));
        assert_eq!((p[1].minutes_out, p[1].expected), (60.0, 72));
    }
}

//! The site report's figures, computed without a database from the readings' summaries and the
//! alarms: days cut in the site's time zone (a day at a daylight-saving change has 23 or 25
//! hours), and per device, day and probe the min, max, mean, readings received and expected,
//! and minutes out of range.

use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::alarm::{AlarmKind, AlarmRow, Quantity, Rule};
use super::summary::BUCKET_MS;

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
/// day when midnight itself is skipped by a change). Refused when it is not on a quarter hour
/// (only old local mean times are not), as days are summed from quarter-hour summaries.
fn day_start_ms(tz: &TimeZone, date: Date) -> Result<i64, String> {
    let zoned = date
        .to_zoned(tz.clone())
        .map_err(|e| format!("{date} has no start in this time zone: {e}"))?;
    let ms = zoned.timestamp().as_millisecond();
    if ms.rem_euclid(BUCKET_MS) != 0 {
        return Err(format!(
            "{date} does not start on a quarter hour in this time zone"
        ));
    }
    Ok(ms)
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

/// The longest step the report can read summaries merged into: a day, an hour, half or a
/// quarter hour, whichever every day boundary of the period is a multiple of (a day for UTC,
/// an hour for Europe/Berlin, half an hour for Asia/Kolkata). Merged buckets then never straddle
/// two days, and the database returns fewer rows.
pub fn report_step(days: &[ReportDay]) -> i64 {
    const STEPS: [i64; 4] = [86_400_000, 3_600_000, 1_800_000, BUCKET_MS];
    STEPS
        .into_iter()
        .find(|s| {
            days.iter()
                .all(|d| d.start_ms % s == 0 && d.end_ms % s == 0)
        })
        .unwrap_or(BUCKET_MS)
}

/// A summary bucket of one probe's temperature, as the report reads it (possibly several
/// merged, `report_step`).
#[derive(Debug, Clone, Copy, PartialEq, sqlx::FromRow)]
pub struct ReportBucket {
    pub device_id: i64,
    pub probe: i64,
    pub bucket_ms: i64,
    pub min_value: f64,
    pub max_value: f64,
    pub sum_value: f64,
    pub value_count: i64,
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
    /// The rule the day is shown with (its current one).
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

/// Milliseconds of `[a, b)` inside `[lo, hi)`.
fn overlap(a: i64, b: i64, lo: i64, hi: i64) -> i64 {
    (b.min(hi) - a.max(lo)).max(0)
}

/// The day rows of one device, from summaries and alarms only (so a purge of raw readings
/// changes nothing). `buckets` are that device's temperature buckets of the period; `alarms`
/// its alarms of the period; `rules` its current rules (shown with each probe); `interval_s`
/// its report interval. Probe 2 is reported when any bucket of the period has it.
///
/// Out of range: the time of the device's temperature threshold alarms of the probe, from the
/// excursion's first reading outside to the first back inside (until `now_ms` while one is
/// active), split over the days it spans. An excursion shorter than the rule's delay raised no
/// alarm and counts nothing.
pub fn device_days(
    device_id: i64,
    days: &[ReportDay],
    buckets: &[ReportBucket],
    alarms: &[AlarmRow],
    rules: &[Rule],
    interval_s: i64,
    now_ms: i64,
) -> Vec<DeviceDay> {
    let interval_ms = interval_s.max(1) * 1000;
    let mut probes = vec![1];
    if buckets.iter().any(|b| b.probe == 2) {
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
        let excursions: Vec<(i64, i64)> = alarms
            .iter()
            .filter(|a| {
                a.device_id == device_id
                    && a.kind() == Some(AlarmKind::Threshold)
                    && a.quantity == Quantity::Temperature.as_str()
                    && a.probe == probe
            })
            .map(|a| (a.started_ms, a.ended_ms.unwrap_or(now_ms.max(a.started_ms))))
            .collect();
        for (i, d) in days.iter().enumerate() {
            let inside = buckets.iter().filter(|b| {
                b.probe == probe && b.bucket_ms >= d.start_ms && b.bucket_ms < d.end_ms
            });
            let (mut min, mut max, mut sum, mut received) = (None::<f64>, None::<f64>, 0.0, 0);
            for b in inside {
                min = Some(min.map_or(b.min_value, |m| m.min(b.min_value)));
                max = Some(max.map_or(b.max_value, |m| m.max(b.max_value)));
                sum += b.sum_value;
                received += b.value_count;
            }
            let out_ms: i64 = excursions
                .iter()
                .map(|&(a, b)| overlap(a, b, d.start_ms, d.end_ms))
                .sum();
            rows[i].probes.push(ProbeDay {
                probe,
                min,
                max,
                mean: (received > 0).then(|| sum / received as f64),
                received,
                expected: d.length_ms() / interval_ms,
                minutes_out: out_ms as f64 / 60_000.0,
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

    fn bucket(ms: i64, probe: i64, values: &[f64]) -> ReportBucket {
        ReportBucket {
            device_id: 1,
            probe,
            bucket_ms: crate::domain::bucket_of(ms),
            min_value: values.iter().copied().fold(f64::INFINITY, f64::min),
            max_value: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            sum_value: values.iter().sum(),
            value_count: values.len() as i64,
        }
    }

    fn alarm(probe: i64, started_ms: i64, ended_ms: Option<i64>) -> AlarmRow {
        AlarmRow {
            id: 1,
            device_id: 1,
            kind: "threshold".into(),
            quantity: "temperature".into(),
            probe,
            min: Some(-25.0),
            max: Some(-15.0),
            value: Some(-10.0),
            peak: Some(-10.0),
            cause: None,
            started_ms,
            raised_ms: started_ms,
            active: ended_ms.is_none(),
            ended_ms,
            acknowledged_by: None,
            acknowledged_ms: None,
            comment: None,
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
    fn buckets_and_alarms_become_day_rows_across_the_spring_change() {
        let days = report_days(&berlin(), date("2026-03-28"), date("2026-03-29")).unwrap();
        let (d0, d1) = (days[0].start_ms, days[1].start_ms);
        let buckets = [
            bucket(d0 + HOUR, 1, &[-20.0, -18.0]),
            bucket(d0 + 2 * HOUR, 1, &[-10.0]),
            bucket(d1 - HOUR / 4, 1, &[-18.0]), // the day's last quarter hour
            bucket(d1, 1, &[-22.0, -12.0, -19.0]),
        ];
        // Out from 02:00 until 21 h 30 min later, over midnight; then 1 h on the second day.
        let alarms = [
            alarm(1, d0 + 2 * HOUR, Some(d1 - HOUR / 2)),
            alarm(1, d1 + 3 * HOUR, Some(d1 + 4 * HOUR)),
        ];
        let rows = device_days(1, &days, &buckets, &alarms, &[rule(-25.0, -15.0)], 600, 0);
        assert_eq!(rows.len(), 2);
        let (a, b) = (&rows[0].probes[0], &rows[1].probes[0]);
        assert_eq!(
            (a.min, a.max, a.received, a.expected),
            (Some(-20.0), Some(-10.0), 4, 144)
        );
        assert_eq!(a.mean, Some(-16.5));
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
    fn an_excursion_over_midnight_is_split_and_an_active_one_counts_until_now() {
        let days = report_days(&berlin(), date("2026-10-24"), date("2026-10-25")).unwrap();
        let d1 = days[1].start_ms;
        let buckets = [
            bucket(d1 - HOUR, 1, &[-5.0]),
            bucket(d1 + 2 * HOUR, 1, &[-20.0]),
        ];
        let ended = [alarm(1, d1 - HOUR, Some(d1 + 2 * HOUR))];
        let rows = device_days(1, &days, &buckets, &ended, &[rule(-25.0, -15.0)], 600, 0);
        assert_eq!(rows[0].probes[0].minutes_out, 60.0);
        assert_eq!(rows[1].probes[0].minutes_out, 120.0);
        assert_eq!(rows[1].probes[0].expected, 150);
        assert_eq!(rows[0].probes[0].expected, 144);
        let active = [alarm(1, d1 + HOUR, None)];
        let rows = device_days(1, &days, &buckets, &active, &[], 600, d1 + 4 * HOUR);
        assert_eq!(rows[1].probes[0].minutes_out, 180.0);
        // Another probe's alarm and an empty day count nothing.
        let rows = device_days(
            1,
            &days,
            &buckets[..1],
            &[alarm(2, d1, None)],
            &[],
            600,
            d1 + HOUR,
        );
        assert_eq!(rows[1].probes[0].minutes_out, 0.0);
        assert_eq!(rows[1].probes[0].received, 0);
        assert_eq!(rows[1].probes[0].mean, None);
    }

    #[test]
    fn probe_2_is_reported_with_its_own_rule() {
        let days = report_days(&TimeZone::UTC, date("2026-01-01"), date("2026-01-01")).unwrap();
        let s = days[0].start_ms;
        let buckets = [
            bucket(s, 1, &[4.0, 4.0]),
            bucket(s, 2, &[9.0]),
            bucket(s + HOUR, 2, &[5.0]),
        ];
        let mut rule2 = rule(0.0, 8.0);
        rule2.probe = 2;
        let alarms = [alarm(2, s, Some(s + HOUR))];
        let rows = device_days(1, &days, &buckets, &alarms, &[rule2], 1200, 0);
        let p = &rows[0].probes;
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].minutes_out, p[0].rule), (0.0, None));
        assert_eq!(
            (p[1].minutes_out, p[1].expected, p[1].received),
            (60.0, 72, 2)
        );
    }

    #[test]
    fn a_half_hour_zone_takes_whole_quarter_hours() {
        let tz = parse_time_zone("Asia/Kolkata").unwrap();
        let days = report_days(&tz, date("2026-01-01"), date("2026-01-02")).unwrap();
        // 2026-01-02 00:00 IST is 2026-01-01 18:30 UTC.
        assert_eq!(days[1].start_ms % BUCKET_MS, 0);
        assert_eq!(days[1].start_ms % HOUR, HOUR / 2);
        assert_eq!(report_step(&days), HOUR / 2);
        let utc = report_days(&TimeZone::UTC, date("2026-03-28"), date("2026-03-29")).unwrap();
        assert_eq!(report_step(&utc), 24 * HOUR);
        let spring = report_days(&berlin(), date("2026-03-28"), date("2026-03-29")).unwrap();
        assert_eq!(report_step(&spring), HOUR);
        let d1 = days[1].start_ms;
        let buckets = [bucket(d1 - 60_000, 1, &[1.0]), bucket(d1, 1, &[2.0])];
        let rows = device_days(1, &days, &buckets, &[], &[], 600, 0);
        assert_eq!(rows[0].probes[0].max, Some(1.0));
        assert_eq!(rows[1].probes[0].min, Some(2.0));
        // Local mean time (before time zones) does not start days on a quarter hour.
        let lmt = report_days(&tz, date("1850-01-01"), date("1850-01-01"));
        assert!(lmt.is_err(), "{lmt:?}");
    }
}

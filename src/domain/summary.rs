//! Summaries of readings: per device, quantity, probe and quarter hour (UTC) the min, max, sum
//! and count of the values. They are kept when raw readings are purged, and reports and long
//! charts read them. A quarter hour rather than an hour because every UTC offset in use is a
//! multiple of 15 minutes (Asia/Kolkata +5:30, Asia/Kathmandu +5:45): any site's day is then a
//! whole number of buckets, and no zone needs the raw readings.

use std::collections::BTreeMap;

use super::alarm::Quantity;
use super::reading::Values;

/// The length of a summary bucket.
pub const BUCKET_MS: i64 = 15 * 60_000;

/// The start of the bucket holding `ms`.
pub fn bucket_of(ms: i64) -> i64 {
    ms - ms.rem_euclid(BUCKET_MS)
}

/// What identifies a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BucketKey {
    pub device_id: i64,
    pub quantity: Quantity,
    pub probe: i64,
    pub bucket_ms: i64,
}

/// One bucket's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub count: i64,
    /// When the newest of its readings arrived.
    pub received_ms: i64,
}

impl Bucket {
    pub fn of(value: f64, received_ms: i64) -> Bucket {
        Bucket {
            min: value,
            max: value,
            sum: value,
            count: 1,
            received_ms,
        }
    }

    /// Both buckets' readings in one.
    pub fn merge(&mut self, other: &Bucket) {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
        self.count += other.count;
        self.received_ms = self.received_ms.max(other.received_ms);
    }

    pub fn mean(&self) -> f64 {
        self.sum / self.count as f64
    }
}

/// The values of a reading by quantity and probe.
pub fn probe_values(v: &Values) -> [(Quantity, i64, Option<f64>); 4] {
    [
        (Quantity::Temperature, 1, v.temperature),
        (Quantity::Temperature, 2, v.temperature2),
        (Quantity::Humidity, 1, v.humidity),
        (Quantity::Humidity, 2, v.humidity2),
    ]
}

/// Folds readings (device, measured, values) received at `received_ms` into buckets.
pub fn fold<'a>(
    readings: impl IntoIterator<Item = (i64, i64, &'a Values)>,
    received_ms: i64,
) -> BTreeMap<BucketKey, Bucket> {
    let mut out = BTreeMap::new();
    for (device_id, measured_ms, values) in readings {
        for (quantity, probe, value) in probe_values(values) {
            let Some(value) = value.filter(|v| v.is_finite()) else {
                continue;
            };
            let key = BucketKey {
                device_id,
                quantity,
                probe,
                bucket_ms: bucket_of(measured_ms),
            };
            let add = Bucket::of(value, received_ms);
            out.entry(key)
                .and_modify(|b: &mut Bucket| b.merge(&add))
                .or_insert(add);
        }
    }
    out
}

/// Charts of a week or more read summaries, merged into steps of at least an hour.
pub const CHART_SUMMARY_FROM_MS: i64 = 7 * 86_400_000;
/// The steps a chart's summaries are merged into, shortest first.
const CHART_STEPS_MS: [i64; 4] = [BUCKET_MS, 3_600_000, 6 * 3_600_000, 86_400_000];
/// Most points per series a chart is sent.
pub const CHART_MAX_POINTS: i64 = 2000;

/// The step for a chart of `range_ms`: the quarter hour below a week, then the shortest of an
/// hour, 6 hours or a day that gives at most `CHART_MAX_POINTS` points.
pub fn chart_step(range_ms: i64) -> i64 {
    let steps = if range_ms < CHART_SUMMARY_FROM_MS {
        &CHART_STEPS_MS[..]
    } else {
        &CHART_STEPS_MS[1..]
    };
    steps
        .iter()
        .copied()
        .find(|s| range_ms / s <= CHART_MAX_POINTS)
        .unwrap_or(CHART_STEPS_MS[3])
}

/// A chart point: one quantity and probe over one step from `start_ms`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ChartBucket {
    pub quantity: String,
    pub probe: i64,
    pub start_ms: i64,
    pub min_value: f64,
    pub max_value: f64,
    pub sum_value: f64,
    pub value_count: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_fold_into_their_quarter_hours() {
        assert_eq!(bucket_of(BUCKET_MS * 4 + 1), BUCKET_MS * 4);
        assert_eq!(bucket_of(BUCKET_MS * 4 - 1), BUCKET_MS * 3);
        let a = Values {
            temperature: Some(-20.0),
            temperature2: Some(4.0),
            ..Values::default()
        };
        let b = Values {
            temperature: Some(-16.0),
            ..Values::default()
        };
        let t = 10 * BUCKET_MS;
        let folded = fold([(1, t, &a), (1, t + 60_000, &b), (1, t + BUCKET_MS, &b)], 7);
        assert_eq!(folded.len(), 3, "two buckets of probe 1, one of probe 2");
        let first = folded[&BucketKey {
            device_id: 1,
            quantity: Quantity::Temperature,
            probe: 1,
            bucket_ms: t,
        }];
        assert_eq!(
            (first.min, first.max, first.count, first.mean()),
            (-20.0, -16.0, 2, -18.0)
        );
        assert_eq!(first.received_ms, 7);
    }

    #[test]
    fn a_week_or_more_is_charted_by_the_hour_or_coarser() {
        const DAY: i64 = 86_400_000;
        assert_eq!(chart_step(DAY), BUCKET_MS);
        assert_eq!(chart_step(7 * DAY), 3_600_000);
        assert_eq!(chart_step(30 * DAY), 3_600_000);
        assert_eq!(chart_step(365 * DAY), 6 * 3_600_000);
        assert_eq!(chart_step(20 * 365 * DAY), DAY);
    }
}

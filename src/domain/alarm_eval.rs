//! Judging readings against a threshold rule, by their measuredAt, as a state machine per
//! device, quantity and probe. Pure: the store loads the state, applies the effects and writes
//! what changed, in the reading's transaction.
//!
//! - In order (measuredAt at or after the newest judged): outside the band starts an excursion
//!   (or extends it); it becomes an alarm with the first reading at or past start + delay (at
//!   once for delay 0); the first reading back inside clears it.
//! - Late (older than the newest judged): it cannot clear anything newer. Outside the band it
//!   raises the open alarm's peak when it falls in that alarm's period; before that, it belongs
//!   to an excursion in the past, which the store rebuilds from the stored readings around it
//!   (`past_excursion`).

use super::Rule;

/// An excursion: when it started, the value that raised it (or started it), the worst value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Excursion {
    pub started_ms: i64,
    pub value: f64,
    pub peak: f64,
}

/// What is known of one (device, quantity, probe) while judging.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Track {
    /// measuredAt of the newest reading judged (or stored before).
    pub newest_ms: Option<i64>,
    /// Outside the band, delay not passed yet.
    pub pending: Option<Excursion>,
    /// The active alarm's excursion.
    pub active: Option<Excursion>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Effect {
    /// Raise an alarm for this excursion, by the reading measured at `raised_ms`.
    Raise {
        excursion: Excursion,
        raised_ms: i64,
    },
    /// The active alarm's worst value so far.
    Peak(f64),
    /// The active alarm ended with the reading measured at this time.
    Clear(i64),
    /// A late reading outside the band, before anything open: an excursion in the past.
    Past(i64),
}

/// Further from the band than `than`?
fn worse(rule: &Rule, v: f64, than: f64) -> bool {
    rule.distance(v) > rule.distance(than)
}

/// Judges one reading; `track` is updated in place.
pub fn judge(rule: &Rule, track: &mut Track, ms: i64, v: f64) -> Option<Effect> {
    let late = track.newest_ms.is_some_and(|n| ms < n);
    let inside = rule.inside(v);
    if late {
        if inside {
            return None;
        }
        if let Some(a) = track.active.as_mut().filter(|a| ms >= a.started_ms) {
            if worse(rule, v, a.peak) {
                a.peak = v;
                return Some(Effect::Peak(v));
            }
            return None;
        }
        if let Some(p) = track.pending.as_mut().filter(|p| ms >= p.started_ms) {
            if worse(rule, v, p.peak) {
                p.peak = v;
            }
            return None;
        }
        return Some(Effect::Past(ms));
    }
    track.newest_ms = Some(ms);
    if inside {
        track.pending = None;
        return track.active.take().map(|_| Effect::Clear(ms));
    }
    if let Some(a) = track.active.as_mut() {
        if worse(rule, v, a.peak) {
            a.peak = v;
            return Some(Effect::Peak(v));
        }
        return None;
    }
    let p = track.pending.get_or_insert(Excursion {
        started_ms: ms,
        value: v,
        peak: v,
    });
    if worse(rule, v, p.peak) {
        p.peak = v;
    }
    if ms - p.started_ms >= rule.delay_secs * 1000 {
        let excursion = Excursion { value: v, ..*p };
        track.pending = None;
        track.active = Some(excursion);
        return Some(Effect::Raise {
            excursion,
            raised_ms: ms,
        });
    }
    None
}

/// An excursion rebuilt from stored readings: it raised an alarm in the past and ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PastAlarm {
    pub excursion: Excursion,
    pub raised_ms: i64,
    /// The first reading back inside.
    pub ended_ms: i64,
}

/// The run of readings outside the band that contains the one measured at `ms`, in `readings`
/// (measuredAt, value; sorted by time, the late reading among them). `None` when the run lasted
/// less than the delay, or no reading inside follows it (it reaches the present, where the
/// open excursion or alarm covers it).
pub fn past_excursion(rule: &Rule, readings: &[(i64, f64)], ms: i64) -> Option<PastAlarm> {
    let at = readings.iter().position(|(t, _)| *t == ms)?;
    let mut first = at;
    while first > 0 && !rule.inside(readings[first - 1].1) {
        first -= 1;
    }
    let mut end = at;
    while end < readings.len() && !rule.inside(readings[end].1) {
        end += 1;
    }
    let ended_ms = readings.get(end)?.0;
    let run = &readings[first..end];
    let started_ms = run[0].0;
    let (raised_ms, value) = *run
        .iter()
        .find(|(t, _)| *t - started_ms >= rule.delay_secs * 1000)?;
    let peak = run
        .iter()
        .map(|(_, v)| *v)
        .fold(run[0].1, |p, v| if worse(rule, v, p) { v } else { p });
    Some(PastAlarm {
        excursion: Excursion {
            started_ms,
            value,
            peak,
        },
        raised_ms,
        ended_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Quantity;

    fn rule(delay_secs: i64) -> Rule {
        Rule {
            quantity: Quantity::Temperature,
            probe: 1,
            min: Some(-25.0),
            max: Some(-15.0),
            delay_secs,
        }
    }

    /// Runs a sequence (seconds, value) through `judge`; returns the effects in order.
    fn run(rule: &Rule, seq: &[(i64, f64)]) -> (Vec<Effect>, Track) {
        let mut track = Track::default();
        let effects = seq
            .iter()
            .filter_map(|(s, v)| judge(rule, &mut track, s * 1000, *v))
            .collect();
        (effects, track)
    }

    fn raise(started_s: i64, value: f64, peak: f64, raised_s: i64) -> Effect {
        Effect::Raise {
            excursion: Excursion {
                started_ms: started_s * 1000,
                value,
                peak,
            },
            raised_ms: raised_s * 1000,
        }
    }

    #[test]
    fn sequences_give_the_expected_alarms() {
        use Effect::*;
        type Case<'a> = (&'a str, i64, &'a [(i64, f64)], &'a [Effect]);
        let cases: &[Case] = &[
            ("in range: nothing", 0, &[(0, -20.0), (60, -18.0)], &[]),
            ("boundaries are inside", 0, &[(0, -15.0), (60, -25.0)], &[]),
            (
                "delay 0 raises at once, clears inside",
                0,
                &[(0, -20.0), (60, -12.0), (120, -10.0), (180, -16.0)],
                &[raise(60, -12.0, -12.0, 60), Peak(-10.0), Clear(180_000)],
            ),
            (
                "shorter than the delay: nothing",
                600,
                &[(0, -12.0), (300, -11.0), (599, -13.0), (660, -20.0)],
                &[],
            ),
            (
                "raised by the first reading at start + delay",
                600,
                &[(0, -12.0), (300, -11.0), (600, -13.0), (900, -14.0)],
                &[raise(0, -13.0, -11.0, 600)],
            ),
            (
                "below the band too",
                0,
                &[(0, -30.0), (60, -26.0), (120, -25.0)],
                &[raise(0, -30.0, -30.0, 0), Clear(120_000)],
            ),
            (
                "a late reading inside does not clear a newer excursion",
                0,
                &[(100, -10.0), (50, -20.0), (160, -11.0)],
                &[raise(100, -10.0, -10.0, 100)],
            ),
            (
                "a late reading in the alarm's period raises its peak",
                0,
                &[(100, -10.0), (200, -11.0), (150, -5.0), (300, -20.0)],
                &[raise(100, -10.0, -10.0, 100), Peak(-5.0), Clear(300_000)],
            ),
            (
                "a late reading outside, before the open excursion, is in the past",
                0,
                &[(100, -20.0), (200, -10.0), (50, -5.0)],
                &[raise(200, -10.0, -10.0, 200), Past(50_000)],
            ),
            (
                "a delay restarts after the band is re-entered",
                300,
                &[
                    (0, -12.0),
                    (200, -20.0),
                    (400, -12.0),
                    (600, -12.0),
                    (700, -12.0),
                ],
                &[raise(400, -12.0, -12.0, 700)],
            ),
        ];
        for (name, delay, seq, want) in cases {
            let (got, _) = run(&rule(*delay), seq);
            assert_eq!(&got, want, "{name}");
        }
    }

    #[test]
    fn history_in_order_gives_the_same_alarms_as_live_readings() {
        // The same readings delivered one by one or as one back-filled batch are judged in
        // measuredAt order either way: the effects are the same.
        let seq = [(0, -20.0), (60, -12.0), (120, -9.0), (180, -18.0)];
        let (live, _) = run(&rule(60), &seq);
        let mut sorted = seq;
        sorted.sort_by_key(|(t, _)| *t);
        let (batch, _) = run(&rule(60), &sorted);
        assert_eq!(live, batch);
        assert_eq!(live.len(), 2);
    }

    #[test]
    fn past_excursions_are_rebuilt_from_stored_readings() {
        let r = rule(120);
        let stored = [
            (0, -20.0),
            (60, -12.0),
            (120, -8.0),
            (180, -13.0),
            (240, -20.0),
            (300, -12.0),
        ];
        let ms: Vec<(i64, f64)> = stored.iter().map(|(s, v)| (s * 1000, *v)).collect();
        let past = past_excursion(&r, &ms, 120_000).unwrap();
        assert_eq!(past.excursion.started_ms, 60_000);
        assert_eq!(past.raised_ms, 180_000);
        assert_eq!(past.excursion.value, -13.0);
        assert_eq!(past.excursion.peak, -8.0);
        assert_eq!(past.ended_ms, 240_000);
        // Shorter than the delay, or reaching the present: none.
        assert_eq!(past_excursion(&rule(600), &ms, 120_000), None);
        assert_eq!(past_excursion(&r, &ms, 300_000), None);
        // Not among the readings: none.
        assert_eq!(past_excursion(&r, &ms, 1), None);
    }
}

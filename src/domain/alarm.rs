//! Alarm rules and alarms: what a rule watches, how it is checked, the stored alarm row and its
//! JSON (the same text for the API and the `alarm_*` events).

use serde::{Deserialize, Serialize};

use super::DeviceRow;

/// A measured quantity a rule can watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantity {
    Temperature,
    Humidity,
}

impl Quantity {
    pub fn as_str(self) -> &'static str {
        match self {
            Quantity::Temperature => "temperature",
            Quantity::Humidity => "humidity",
        }
    }

    pub fn parse(s: &str) -> Option<Quantity> {
        match s {
            "temperature" => Some(Quantity::Temperature),
            "humidity" => Some(Quantity::Humidity),
            _ => None,
        }
    }
}

/// Longest delay a rule may have: a day.
pub const MAX_DELAY_SECS: i64 = 86_400;
/// Most rules one device may have (two quantities × two probes).
pub const MAX_RULES_PER_DEVICE: usize = 4;

/// One rule: a quantity of one probe must stay within [min, max]; `delay_secs` of being
/// outside (by the readings' measuredAt) before an alarm is raised.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub quantity: Quantity,
    pub probe: i64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub delay_secs: i64,
}

/// A rule as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RuleRow {
    pub device_id: i64,
    pub quantity: String,
    pub probe: i64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub delay_secs: i64,
}

impl RuleRow {
    /// The rule; `None` for a row no check would have let in.
    pub fn rule(&self) -> Option<Rule> {
        Some(Rule {
            quantity: Quantity::parse(&self.quantity)?,
            probe: self.probe,
            min: self.min,
            max: self.max,
            delay_secs: self.delay_secs,
        })
    }
}

/// A rule as the API sends and receives it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleJson {
    // The limits `check` enforces, in the OpenAPI document too.
    #[schema(pattern = "^(temperature|humidity)$")]
    pub quantity: String,
    #[schema(minimum = 1, maximum = 2)]
    pub probe: i64,
    #[serde(default)]
    #[schema(minimum = -1000, maximum = 1000)]
    pub min: Option<f64>,
    #[serde(default)]
    #[schema(minimum = -1000, maximum = 1000)]
    pub max: Option<f64>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 86400)]
    pub delay_secs: i64,
}

/// Why a rule is refused: the field and a sentence for the person who wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub field: &'static str,
    pub message: String,
}

impl From<&Rule> for RuleJson {
    fn from(r: &Rule) -> Self {
        RuleJson {
            quantity: r.quantity.as_str().into(),
            probe: r.probe,
            min: r.min,
            max: r.max,
            delay_secs: r.delay_secs,
        }
    }
}

impl RuleJson {
    pub fn check(&self) -> Result<Rule, RuleError> {
        let bad = |field, message: &str| RuleError {
            field,
            message: message.to_string(),
        };
        let quantity = Quantity::parse(&self.quantity)
            .ok_or_else(|| bad("quantity", "quantity must be temperature or humidity"))?;
        if self.probe != 1 && self.probe != 2 {
            return Err(bad("probe", "probe must be 1 or 2"));
        }
        for (field, v) in [("min", self.min), ("max", self.max)] {
            if v.is_some_and(|v| !v.is_finite() || v.abs() > 1000.0) {
                return Err(bad(field, "must be a number between -1000 and 1000"));
            }
        }
        match (self.min, self.max) {
            (None, None) => return Err(bad("min", "a rule needs min, max or both")),
            (Some(lo), Some(hi)) if lo >= hi => return Err(bad("min", "min must be below max")),
            _ => {}
        }
        if !(0..=MAX_DELAY_SECS).contains(&self.delay_secs) {
            return Err(bad("delaySecs", "delaySecs must be between 0 and 86400"));
        }
        Ok(Rule {
            quantity,
            probe: self.probe,
            min: self.min,
            max: self.max,
            delay_secs: self.delay_secs,
        })
    }
}

/// Checks a device's whole rule set: each rule, and at most one per quantity and probe.
pub fn check_rules(rules: &[RuleJson]) -> Result<Vec<Rule>, RuleError> {
    if rules.len() > MAX_RULES_PER_DEVICE {
        return Err(RuleError {
            field: "rules",
            message: "at most one rule per quantity and probe".into(),
        });
    }
    let mut checked: Vec<Rule> = Vec::with_capacity(rules.len());
    for r in rules {
        let rule = r.check()?;
        if checked
            .iter()
            .any(|c| c.quantity == rule.quantity && c.probe == rule.probe)
        {
            return Err(RuleError {
                field: "rules",
                message: "at most one rule per quantity and probe".into(),
            });
        }
        checked.push(rule);
    }
    Ok(checked)
}

impl Rule {
    /// Inside the band: the boundaries themselves are inside.
    pub fn inside(&self, v: f64) -> bool {
        self.min.is_none_or(|lo| v >= lo) && self.max.is_none_or(|hi| v <= hi)
    }

    /// How far outside the band a value is (0 inside).
    pub fn distance(&self, v: f64) -> f64 {
        let below = self.min.map_or(0.0, |lo| lo - v);
        let above = self.max.map_or(0.0, |hi| v - hi);
        below.max(above).max(0.0)
    }
}

/// What raised an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlarmKind {
    Threshold,
    Device,
    Offline,
    Battery,
}

impl AlarmKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmKind::Threshold => "threshold",
            AlarmKind::Device => "device",
            AlarmKind::Offline => "offline",
            AlarmKind::Battery => "battery",
        }
    }

    pub fn parse(s: &str) -> Option<AlarmKind> {
        match s {
            "threshold" => Some(AlarmKind::Threshold),
            "device" => Some(AlarmKind::Device),
            "offline" => Some(AlarmKind::Offline),
            "battery" => Some(AlarmKind::Battery),
            _ => None,
        }
    }

    /// Higher is worse: the dashboards list the worst first.
    pub fn severity(self) -> u8 {
        match self {
            AlarmKind::Threshold | AlarmKind::Device => 3,
            AlarmKind::Offline => 2,
            AlarmKind::Battery => 1,
        }
    }
}

/// Battery alarms: raised at or below this percentage, cleared above `BATTERY_CLEAR`.
pub const BATTERY_LOW: i64 = 10;
pub const BATTERY_CLEAR: i64 = 20;

/// An alarm as stored, with its device for display and scoping.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AlarmRow {
    pub id: i64,
    pub device_id: i64,
    pub kind: String,
    /// `temperature`, `humidity` or `battery`; empty for offline alarms.
    pub quantity: String,
    /// 1 or 2; 0 when the alarm is not about one probe.
    pub probe: i64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub value: Option<f64>,
    pub peak: Option<f64>,
    /// What the device itself reported (`above_threshold_alarm`, …), for device alarms.
    pub cause: Option<String>,
    pub started_ms: i64,
    pub raised_ms: i64,
    pub active: bool,
    pub ended_ms: Option<i64>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_ms: Option<i64>,
    pub comment: Option<String>,
}

impl AlarmRow {
    /// Open: still active, or not yet acknowledged.
    pub fn is_open(&self) -> bool {
        self.active || self.acknowledged_ms.is_none()
    }

    pub fn kind(&self) -> Option<AlarmKind> {
        AlarmKind::parse(&self.kind)
    }
}

/// The alarm's JSON fields (camelCase, as the contract names them).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlarmJson<'a> {
    pub alarm_id: i64,
    pub device_id: String,
    #[serde(rename = "devEUI")]
    pub dev_eui: Option<&'a str>,
    pub device_name: &'a str,
    pub site_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site_name: Option<&'a str>,
    pub kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    pub value: Option<f64>,
    pub peak: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<&'a str>,
    pub started_at: i64,
    pub raised_at: i64,
    pub active: bool,
    pub ended_at: Option<i64>,
    pub acknowledged: bool,
    pub acknowledged_by: Option<&'a str>,
    pub acknowledged_at: Option<i64>,
    pub comment: Option<&'a str>,
}

impl<'a> AlarmJson<'a> {
    pub fn of(a: &'a AlarmRow, d: &'a DeviceRow) -> Self {
        AlarmJson {
            alarm_id: a.id,
            device_id: d.public_id(),
            dev_eui: d.dev_eui.as_deref(),
            device_name: &d.name,
            site_id: d.site_id,
            site_name: d.site_name.as_deref(),
            kind: &a.kind,
            quantity: Some(a.quantity.as_str()).filter(|q| !q.is_empty()),
            probe: Some(a.probe).filter(|p| *p > 0),
            min: a.min,
            max: a.max,
            value: a.value,
            peak: a.peak,
            cause: a.cause.as_deref(),
            started_at: a.started_ms,
            raised_at: a.raised_ms,
            active: a.active,
            ended_at: a.ended_ms,
            acknowledged: a.acknowledged_ms.is_some(),
            acknowledged_by: a.acknowledged_by.as_deref(),
            acknowledged_at: a.acknowledged_ms,
            comment: a.comment.as_deref(),
        }
    }
}

pub const ALARM_RAISED: &str = "alarm_raised";
pub const ALARM_ACKNOWLEDGED: &str = "alarm_acknowledged";
pub const ALARM_CLEARED: &str = "alarm_cleared";

/// The event for an alarm change; its data is the alarm after the change.
pub fn alarm_event_json(kind: &str, a: &AlarmRow, d: &DeviceRow, now_ms: i64) -> String {
    super::event::envelope(kind, now_ms, AlarmJson::of(a, d))
}

/// Longest corrective-action comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 1000;

/// The corrective action, trimmed; `None` when empty or too long.
pub fn check_comment(comment: &str) -> Option<&str> {
    let c = comment.trim();
    (!c.is_empty() && c.chars().count() <= MAX_COMMENT_CHARS).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(q: &str, probe: i64, min: Option<f64>, max: Option<f64>, delay: i64) -> RuleJson {
        RuleJson {
            quantity: q.into(),
            probe,
            min,
            max,
            delay_secs: delay,
        }
    }

    #[test]
    fn bad_rules_name_their_field() {
        let cases = [
            (rule("temperature", 1, Some(5.0), Some(5.0), 0), "min"),
            (rule("temperature", 1, Some(6.0), Some(5.0), 0), "min"),
            (rule("pressure", 1, Some(1.0), None, 0), "quantity"),
            (rule("temperature", 3, Some(1.0), None, 0), "probe"),
            (rule("temperature", 0, Some(1.0), None, 0), "probe"),
            (rule("temperature", 1, Some(1.0), None, -1), "delaySecs"),
            (rule("temperature", 1, Some(1.0), None, 86_401), "delaySecs"),
            (rule("temperature", 1, None, None, 0), "min"),
            (rule("humidity", 2, None, Some(f64::NAN), 0), "max"),
        ];
        for (r, field) in cases {
            assert_eq!(r.check().unwrap_err().field, field, "{r:?}");
        }
        assert!(rule("temperature", 2, None, Some(-15.0), 86_400)
            .check()
            .is_ok());
    }

    #[test]
    fn one_rule_per_quantity_and_probe() {
        let r = rule("temperature", 1, Some(1.0), None, 0);
        assert_eq!(check_rules(&[r.clone(), r]).unwrap_err().field, "rules");
    }

    #[test]
    fn boundaries_are_inside() {
        let r = rule("temperature", 1, Some(-25.0), Some(-15.0), 0)
            .check()
            .unwrap();
        assert!(r.inside(-25.0) && r.inside(-15.0));
        assert!(!r.inside(-14.9) && !r.inside(-25.1));
        assert!((r.distance(-12.0) - 3.0).abs() < 1e-9);
        assert!((r.distance(-27.0) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn comments_are_bounded() {
        assert_eq!(check_comment("  moved stock "), Some("moved stock"));
        assert_eq!(check_comment("   "), None);
        assert!(check_comment(&"é".repeat(1000)).is_some());
        assert!(check_comment(&"é".repeat(1001)).is_none());
    }
}

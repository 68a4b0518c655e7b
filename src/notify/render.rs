//! What an alarm email says, from the alarm event's JSON: what, where, since when, the value
//! and the range, and a link to the device page. Plain text and HTML from askama templates.

use askama::Template;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::domain::TemperatureUnit;

pub struct Email {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Both bodies are drawn from the same fields.
#[derive(Template)]
#[template(path = "email/alarm.txt", escape = "none")]
struct Text<'a> {
    f: &'a Fields,
}

#[derive(Template)]
#[template(path = "email/alarm.html")]
struct Html<'a> {
    f: &'a Fields,
}

struct Fields {
    headline: String,
    device: String,
    site: Option<String>,
    what: String,
    value: Option<String>,
    peak: Option<String>,
    range: Option<String>,
    since: String,
    link: Option<String>,
    settings: Option<String>,
}

fn utc(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// A value of the alarm's quantity in words: temperatures (°C in the payload) in the reader's
/// unit, to a tenth.
fn amount(quantity: &str, v: f64, unit: TemperatureUnit) -> (String, &'static str) {
    match quantity {
        "humidity" => (format!("{v:.1}"), "%RH"),
        "battery" => (format!("{v:.1}"), "%"),
        _ => (format!("{:.1}", unit.from_celsius(v)), unit.symbol()),
    }
}

fn fields(payload: &Value, public_url: &str, unit: TemperatureUnit) -> Fields {
    let kind = payload["type"].as_str().unwrap_or("");
    let a = &payload["data"];
    let text = |k: &str| a[k].as_str().unwrap_or("").to_string();
    let quantity = text("quantity");
    let bare = |v: f64| amount(&quantity, v, unit).0;
    let of = |v: f64| {
        let (n, u) = amount(&quantity, v, unit);
        format!("{n} {u}")
    };
    let number = |k: &str| a[k].as_f64().map(of);
    let what = match text("kind").as_str() {
        "threshold" => format!("{quantity} of probe {} out of range", a["probe"]),
        "device" => format!(
            "the sensor's own alarm ({}) on probe {}",
            text("cause"),
            a["probe"]
        ),
        "offline" => "the device stopped reporting".to_string(),
        "battery" => "battery low".to_string(),
        "" => payload["message"].as_str().unwrap_or("a test").to_string(),
        other => other.to_string(),
    };
    let range = match (a["min"].as_f64(), a["max"].as_f64()) {
        (Some(lo), Some(hi)) => Some(format!("{} to {}", bare(lo), of(hi))),
        (Some(lo), None) => Some(format!("at least {}", of(lo))),
        (None, Some(hi)) => Some(format!("at most {}", of(hi))),
        (None, None) => None,
    };
    let device = text("deviceName");
    let headline = match kind {
        "alarm_escalated" => format!("Still unacknowledged: {device}, {what}"),
        "test" => "Test notification from sensorcast".to_string(),
        _ => format!("Alarm: {device}, {what}"),
    };
    let device_id = text("deviceId");
    Fields {
        headline,
        site: a["siteName"].as_str().map(str::to_string),
        what,
        value: number("value"),
        peak: number("peak").filter(|p| Some(p) != number("value").as_ref()),
        range,
        since: a["startedAt"]
            .as_i64()
            .or(payload["timestamp"].as_i64())
            .map(utc)
            .unwrap_or_default(),
        link: (!device_id.is_empty()).then(|| format!("{public_url}/devices/{device_id}")),
        settings: Some(format!("{public_url}/settings")),
        device: if device.is_empty() {
            "—".into()
        } else {
            device
        },
    }
}

/// A summary of what the flood guard held: one line per alarm notification.
#[derive(Template)]
#[template(path = "email/summary.txt", escape = "none")]
struct SummaryText<'a> {
    s: &'a Summary,
}

#[derive(Template)]
#[template(path = "email/summary.html")]
struct SummaryHtml<'a> {
    s: &'a Summary,
}

struct Summary {
    headline: String,
    limit: i64,
    items: Vec<Fields>,
    more: i64,
    home: String,
    settings: String,
}

/// The payload a summary is sent with: the held notifications' own payloads (the first few),
/// how many were held in all, and the limit that held them.
pub fn summary_payload(items: &[&str], total: i64, limit: i64, now_ms: i64) -> String {
    let items: Vec<Value> = items
        .iter()
        .map(|p| serde_json::from_str(p).unwrap_or_default())
        .collect();
    serde_json::json!({
        "type": "summary",
        "timestamp": now_ms,
        "data": { "count": total, "limit": limit, "items": items },
    })
    .to_string()
}

fn summary(v: &Value, public_url: &str, unit: TemperatureUnit) -> Email {
    let d = &v["data"];
    let items: Vec<Fields> = d["items"]
        .as_array()
        .map(|a| a.iter().map(|i| fields(i, public_url, unit)).collect())
        .unwrap_or_default();
    let total = d["count"].as_i64().unwrap_or(items.len() as i64);
    let s = Summary {
        headline: format!(
            "{total} more alarm notification{} held back",
            if total == 1 { "" } else { "s" }
        ),
        limit: d["limit"].as_i64().unwrap_or(0),
        more: total - items.len() as i64,
        items,
        home: format!("{public_url}/"),
        settings: format!("{public_url}/settings"),
    };
    Email {
        subject: s.headline.clone(),
        text: SummaryText { s: &s }
            .render()
            .unwrap_or_else(|_| s.headline.clone()),
        html: SummaryHtml { s: &s }.render().unwrap_or_default(),
    }
}

/// An alarm (or summary) email from its payload, temperatures in the recipient's `unit`.
pub fn email(payload: &str, public_url: &str, unit: TemperatureUnit) -> Email {
    let v: Value = serde_json::from_str(payload).unwrap_or_default();
    if v["type"] == "summary" {
        return summary(&v, public_url, unit);
    }
    let f = fields(&v, public_url, unit);
    let text = Text { f: &f };
    let html = Html { f: &f };
    Email {
        // A subject is one line, whatever a device name holds.
        subject: f
            .headline
            .replace(['\r', '\n'], " ")
            .chars()
            .take(200)
            .collect(),
        text: text.render().unwrap_or_else(|_| f.headline.clone()),
        html: html.render().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::TemperatureUnit::{Celsius, Fahrenheit};

    #[test]
    fn an_alarm_email_says_what_where_and_since_when() {
        let payload = r#"{"type":"alarm_raised","timestamp":1,"data":{"alarmId":7,"deviceId":"1988","deviceName":"Freezer <A>\nBcc: x","siteName":"North","kind":"threshold","quantity":"temperature","probe":1,"min":-25.0,"max":-15.0,"value":-12.0,"peak":-10.5,"startedAt":1790000000000}}"#;
        let e = super::email(payload, "https://sc.example", Celsius);
        assert!(!e.subject.contains('\n'), "{}", e.subject);
        assert!(e.subject.starts_with("Alarm: Freezer <A>"));
        assert!(
            e.text.contains("-12.0 °C") && e.text.contains("-10.5 °C"),
            "{}",
            e.text
        );
        assert!(e.text.contains("-25.0 to -15.0 °C"));
        assert!(e.text.contains("2026-09-21T"), "{}", e.text);
        assert!(e.text.contains("https://sc.example/devices/1988"));
        assert!(
            e.html.contains("Freezer &#60;A&#62;"),
            "escaped: {}",
            e.html
        );
        let f = super::email(payload, "https://sc.example", Fahrenheit);
        assert!(
            f.text.contains("10.4 °F") && f.text.contains("13.1 °F"),
            "{}",
            f.text
        );
        assert!(f.text.contains("-13.0 to 5.0 °F"), "{}", f.text);
        assert!(f.html.contains("-13.0 to 5.0 °F"), "{}", f.html);
        assert!(!f.text.contains("°C") && !f.html.contains("°C"));
    }

    #[test]
    fn a_summary_lists_what_was_held_and_counts_the_rest() {
        let item = r#"{"type":"alarm_raised","timestamp":1,"data":{"deviceId":"7","deviceName":"Cold <room>","siteName":"North","kind":"offline","startedAt":1790000000000}}"#;
        let payload = super::summary_payload(&[item, item], 5, 20, 2);
        let e = super::email(&payload, "https://sc.example", Celsius);
        assert_eq!(e.subject, "5 more alarm notifications held back");
        assert_eq!(
            e.text
                .matches("- Alarm: Cold <room>, the device stopped reporting (North)")
                .count(),
            2,
            "{}",
            e.text
        );
        assert!(e.text.contains("had 20 within an hour"), "{}", e.text);
        assert!(
            e.text.contains("... and 3 more: https://sc.example/"),
            "{}",
            e.text
        );
        assert!(e.html.contains("Cold &#60;room&#62;"), "{}", e.html);
        assert!(e.html.contains(r#"href="https://sc.example/devices/7""#));
    }
}

//! What an alarm email says, from the alarm event's JSON: what, where, since when, the value
//! and the range, and a link to the device page. Plain text and HTML from askama templates.

use askama::Template;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

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

fn unit(quantity: &str) -> &'static str {
    if quantity == "humidity" {
        " %RH"
    } else if quantity == "battery" {
        " %"
    } else {
        " °C"
    }
}

fn fields(payload: &Value, public_url: &str) -> Fields {
    let kind = payload["type"].as_str().unwrap_or("");
    let a = &payload["data"];
    let text = |k: &str| a[k].as_str().unwrap_or("").to_string();
    let quantity = text("quantity");
    let number = |k: &str| a[k].as_f64().map(|v| format!("{v:.1}{}", unit(&quantity)));
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
        (Some(lo), Some(hi)) => Some(format!("{lo:.1} to {hi:.1}{}", unit(&quantity))),
        (Some(lo), None) => Some(format!("at least {lo:.1}{}", unit(&quantity))),
        (None, Some(hi)) => Some(format!("at most {hi:.1}{}", unit(&quantity))),
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

pub fn email(payload: &str, public_url: &str) -> Email {
    let v: Value = serde_json::from_str(payload).unwrap_or_default();
    let f = fields(&v, public_url);
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
    #[test]
    fn an_alarm_email_says_what_where_and_since_when() {
        let payload = r#"{"type":"alarm_raised","timestamp":1,"data":{"alarmId":7,"deviceId":"1988","deviceName":"Freezer <A>\nBcc: x","siteName":"North","kind":"threshold","quantity":"temperature","probe":1,"min":-25.0,"max":-15.0,"value":-12.0,"peak":-10.5,"startedAt":1790000000000}}"#;
        let e = super::email(payload, "https://sc.example");
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
    }
}

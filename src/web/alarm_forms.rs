//! The page forms for alarms and rules, for browsers without the script (which uses the JSON
//! API): acknowledge an alarm, replace a device's rules. Both do what the JSON handlers do
//! (`alarms::acknowledge_as`, `alarms::set_rules_as`) and redirect back with a flash message.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use tower_sessions::Session;

use super::alarms::{acknowledge_as, set_rules_as};
use super::auth::{safe_next, PageUser};
use super::error::{ApiError, PageError};
use super::extract::PagePath;
use super::flash::set_flash;
use super::form::FormData;
use super::layout::dashboard_path;
use super::state::AppState;
use super::view::{path_segment, rule_fields};
use crate::domain::{check_rules, Quantity, RuleJson, TemperatureUnit, User, MAX_COMMENT_CHARS};

/// Where a form returns to: its `return` field when it is a local page, else the dashboard.
fn back(form: &FormData, user: &User) -> String {
    match form.get("return") {
        Some(r) if safe_next(Some(r)) != "/" => r.to_string(),
        _ => format!("{}#alarms", dashboard_path(user.role)),
    }
}

/// A refusal the person can act on, in words; `None` for failures that make an error page.
fn refusal(e: &ApiError) -> Option<String> {
    match e.status {
        StatusCode::BAD_REQUEST if e.code == "comment_required" => Some(format!(
            "Not acknowledged: write the corrective action taken (1–{MAX_COMMENT_CHARS} characters)."
        )),
        StatusCode::CONFLICT => {
            Some("Not acknowledged: someone already acknowledged this alarm.".into())
        }
        StatusCode::NOT_FOUND => {
            Some("Not acknowledged: that alarm does not exist, or you may not see it.".into())
        }
        StatusCode::FORBIDDEN | StatusCode::BAD_REQUEST => Some(e.message.clone()),
        _ => None,
    }
}

/// `POST /alarms/{alarmId}/acknowledge`: fields `comment` (the corrective action), `return`.
pub async fn acknowledge(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    session: Session,
    PagePath(alarm_id): PagePath<i64>,
    Extension(form): Extension<FormData>,
) -> Result<Response, PageError> {
    let to = back(&form, &user);
    let comment = form.get("comment").unwrap_or("");
    match acknowledge_as(&state, &user, alarm_id, comment).await {
        Ok(alarm) => {
            let name = alarm["deviceName"].as_str().unwrap_or("the device");
            set_flash(&session, true, format!("Acknowledged the alarm of {name}.")).await;
        }
        Err(e) => match refusal(&e) {
            Some(text) => set_flash(&session, false, text).await,
            None => return Err(e.into()),
        },
    }
    Ok(Redirect::to(&to).into_response())
}

/// A number typed into the form: `-15`, `-15.5` or `-15,5`; `Ok(None)` when left empty.
fn number(form: &FormData, name: &str) -> Result<Option<f64>, ()> {
    match form.text(name) {
        None => Ok(None),
        Some(v) => v
            .replace(',', ".")
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Some)
            .ok_or(()),
    }
}

/// The rules of the form's rows (a row with neither min nor max is no rule), or what is wrong
/// with one of them, in words naming the row. Temperatures are in the unit the form was drawn
/// in (its `unit` field; else the reader's), stored in °C.
fn rules_of(form: &FormData, reader: TemperatureUnit) -> Result<Vec<RuleJson>, String> {
    let unit = form
        .text("unit")
        .and_then(TemperatureUnit::parse)
        .unwrap_or(reader);
    let mut rules = Vec::new();
    for field in rule_fields(&[], unit) {
        let (quantity, probe) = field.key.split_once('-').unwrap_or_default();
        let what = &field.what;
        let value = |part: &str, label: &str| {
            number(form, &format!("{}-{part}", field.key))
                .map_err(|()| format!("{what}: {label} must be a number, e.g. -15 or -15.5."))
        };
        let (mut min, mut max) = (value("min", "min")?, value("max", "max")?);
        if quantity == Quantity::Temperature.as_str() {
            min = min.map(|v| unit.to_celsius(v));
            max = max.map(|v| unit.to_celsius(v));
        }
        if min.is_none() && max.is_none() {
            continue;
        }
        let delay_min = value("delay", "the delay (minutes)")?.unwrap_or(0.0);
        let delay_secs = (delay_min * 60.0).round();
        if !(0.0..=86_400.0).contains(&delay_secs) {
            return Err(format!(
                "{what}: the delay must be between 0 and 1440 minutes."
            ));
        }
        let rule = RuleJson {
            quantity: quantity.to_string(),
            probe: probe.parse().unwrap_or(0),
            min,
            max,
            delay_secs: delay_secs as i64,
        };
        rule.check().map_err(|e| {
            let message = e.message.trim_end_matches('.');
            if message.starts_with("must") {
                format!("{what}: {} {message}.", e.field)
            } else {
                format!("{what}: {message}.")
            }
        })?;
        rules.push(rule);
    }
    Ok(rules)
}

/// `POST /devices/{deviceId}/rules`: fields `{quantity}-{probe}-min`, `-max`, `-delay`
/// (minutes) for each row of the form; replaces all the device's rules.
pub async fn rules(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    session: Session,
    PagePath(device_id): PagePath<String>,
    Extension(form): Extension<FormData>,
) -> Result<Response, PageError> {
    let device = state
        .store
        .device(&device_id, &user.scope())
        .await?
        .ok_or_else(PageError::not_found)?;
    let to = format!("/devices/{}#rules", path_segment(&device.public_id()));
    let checked = rules_of(&form, user.unit).and_then(|r| {
        check_rules(&r).map_err(|e| format!("Not saved: {}.", e.message.trim_end_matches('.')))
    });
    let rules = match checked {
        Ok(rules) => rules,
        Err(why) => {
            set_flash(&session, false, format!("Rules not saved. {why}")).await;
            return Ok(Redirect::to(&to).into_response());
        }
    };
    let count = rules.len();
    match set_rules_as(&state, &user, &device, rules).await {
        Ok(()) => {
            let text = match count {
                0 => format!("{} has no rules now.", device.name),
                1 => format!("Saved 1 rule for {}.", device.name),
                n => format!("Saved {n} rules for {}.", device.name),
            };
            set_flash(&session, true, text).await;
        }
        Err(e) if e.status == StatusCode::FORBIDDEN => {
            set_flash(&session, false, format!("Rules not saved. {}", e.message)).await;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Redirect::to(&to).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> FormData {
        FormData::parse(body.as_bytes())
    }

    #[test]
    fn rows_become_rules_and_errors_name_the_row() {
        let rules = rules_of(
            &form(
                "temperature-1-min=&temperature-1-max=-15&temperature-1-delay=10\
                 &temperature-2-min=-25,5&temperature-2-max=-15&humidity-1-delay=5",
            ),
            TemperatureUnit::Celsius,
        )
        .unwrap();
        assert_eq!(rules.len(), 2, "an empty row is no rule, even with a delay");
        assert_eq!(
            (rules[0].max, rules[0].delay_secs, rules[0].probe),
            (Some(-15.0), 600, 1)
        );
        assert_eq!((rules[1].min, rules[1].probe), (Some(-25.5), 2));

        let err = |body: &str| rules_of(&form(body), TemperatureUnit::Celsius).unwrap_err();
        assert_eq!(
            err("temperature-2-min=-10&temperature-2-max=-20"),
            "Probe 2 temperature: min must be below max."
        );
        assert_eq!(
            err("humidity-1-max=cold"),
            "Probe 1 humidity: max must be a number, e.g. -15 or -15.5."
        );
        assert_eq!(
            err("temperature-1-max=1&temperature-1-delay=2000"),
            "Probe 1 temperature: the delay must be between 0 and 1440 minutes."
        );
        assert!(rules_of(&form(""), TemperatureUnit::Celsius)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn temperatures_are_read_in_the_forms_unit() {
        use TemperatureUnit::{Celsius, Fahrenheit};
        let body = "temperature-1-min=-13&temperature-1-max=5&humidity-2-max=80";
        let rules = rules_of(&form(body), Fahrenheit).unwrap();
        assert_eq!((rules[0].min, rules[0].max), (Some(-25.0), Some(-15.0)));
        assert_eq!(
            rules[1].max,
            Some(80.0),
            "humidity is a percentage in any unit"
        );
        // The form says which unit it was drawn in (the reader may have switched since).
        let rules = rules_of(&form(&format!("unit=C&{body}")), Fahrenheit).unwrap();
        assert_eq!(rules[0].min, Some(-13.0));
        let rules = rules_of(&form(&format!("unit=F&{body}")), Celsius).unwrap();
        assert_eq!(rules[0].min, Some(-25.0));
    }
}

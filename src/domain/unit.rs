//! The temperature unit a person reads in. Everything is stored, sent over the JSON API and the
//! event stream in °C; pages, charts, reports, CSV and emails show the reader's own unit.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TemperatureUnit {
    #[default]
    #[serde(rename = "C")]
    Celsius,
    #[serde(rename = "F")]
    Fahrenheit,
}

impl TemperatureUnit {
    /// As stored and as the page script reads it (`data-unit`).
    pub fn code(self) -> &'static str {
        match self {
            TemperatureUnit::Celsius => "C",
            TemperatureUnit::Fahrenheit => "F",
        }
    }

    pub fn parse(code: &str) -> Option<TemperatureUnit> {
        match code {
            "C" => Some(TemperatureUnit::Celsius),
            "F" => Some(TemperatureUnit::Fahrenheit),
            _ => None,
        }
    }

    /// "°C" or "°F".
    pub fn symbol(self) -> &'static str {
        match self {
            TemperatureUnit::Celsius => "°C",
            TemperatureUnit::Fahrenheit => "°F",
        }
    }

    /// A temperature (°C) in this unit. The page script computes `c * 1.8 + 32` with the same
    /// double arithmetic, so both format the same digits.
    pub fn from_celsius(self, celsius: f64) -> f64 {
        match self {
            TemperatureUnit::Celsius => celsius,
            TemperatureUnit::Fahrenheit => celsius * 1.8 + 32.0,
        }
    }

    /// A temperature typed in this unit, in °C. From °F it is rounded to 0.01 °C: a value shown
    /// in °F with two decimals (every tenth of a °C is) comes back exactly as it was stored.
    pub fn to_celsius(self, value: f64) -> f64 {
        match self {
            TemperatureUnit::Celsius => value,
            TemperatureUnit::Fahrenheit => ((value - 32.0) / 1.8 * 100.0).round() / 100.0,
        }
    }

    /// A temperature (°C) as a form field holds it in this unit: as few decimals as it needs,
    /// two at most (a tenth of a °C is a multiple of 0.18 °F).
    pub fn field(self, celsius: f64) -> String {
        let v = self.from_celsius(celsius);
        let text = format!("{:.2}", (v * 100.0).round() / 100.0);
        let text = text.trim_end_matches('0').trim_end_matches('.');
        if text == "-0" {
            "0".into()
        } else {
            text.into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TemperatureUnit::{Celsius, Fahrenheit};
    use super::*;

    #[test]
    fn converts_both_ways() {
        assert_eq!(Fahrenheit.from_celsius(0.0), 32.0);
        assert_eq!(Fahrenheit.from_celsius(100.0), 212.0);
        assert_eq!(Fahrenheit.from_celsius(-40.0), -40.0);
        assert_eq!(Fahrenheit.to_celsius(-4.0), -20.0);
        assert_eq!(Celsius.from_celsius(-18.4), -18.4);
        assert_eq!(Celsius.to_celsius(-18.4), -18.4);
    }

    #[test]
    fn a_field_in_fahrenheit_comes_back_as_stored() {
        // Every tenth of a degree from -60 °C to +60 °C survives a form round trip in °F.
        for tenths in -600..=600 {
            let c = f64::from(tenths) / 10.0;
            let typed: f64 = Fahrenheit.field(c).parse().unwrap();
            assert_eq!(
                Fahrenheit.to_celsius(typed),
                c,
                "{c} °C shown as {typed} °F"
            );
        }
        assert_eq!(Fahrenheit.field(2.3), "36.14");
        assert_eq!(Fahrenheit.field(-17.78), "0");
        assert_eq!(Celsius.field(-25.0), "-25");
        assert_eq!(Celsius.field(2.25), "2.25");
    }

    #[test]
    fn codes() {
        for u in [Celsius, Fahrenheit] {
            assert_eq!(TemperatureUnit::parse(u.code()), Some(u));
        }
        assert_eq!(TemperatureUnit::parse("K"), None);
        assert_eq!(Fahrenheit.symbol(), "°F");
    }
}

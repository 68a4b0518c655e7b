//! Lenient readers for JSON fields whose type varies between Milesight versions.

use serde_json::{Map, Value};

/// A field error, reported to the sender as `invalid_payload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError(pub String);

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn bad(msg: impl Into<String>) -> FieldError {
    FieldError(msg.into())
}

/// A string or an integer, as text (19-digit ids never pass through a float).
pub fn text(
    obj: &Map<String, Value>,
    keys: &[&str],
    path: &str,
) -> Result<Option<String>, FieldError> {
    let Some((key, v)) = first(obj, keys) else {
        return Ok(None);
    };
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.trim().to_string())),
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
        _ => Err(bad(format!("{path}.{key} must be a string"))),
    }
}

/// A number, or a string holding one.
pub fn number(
    obj: &Map<String, Value>,
    keys: &[&str],
    path: &str,
) -> Result<Option<f64>, FieldError> {
    let Some((key, v)) = first(obj, keys) else {
        return Ok(None);
    };
    let n = match v {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n.is_finite() => Ok(Some(n)),
        _ => Err(bad(format!("{path}.{key} must be a number"))),
    }
}

/// An integer, or a string holding one.
pub fn integer(
    obj: &Map<String, Value>,
    keys: &[&str],
    path: &str,
) -> Result<Option<i64>, FieldError> {
    let Some((key, v)) = first(obj, keys) else {
        return Ok(None);
    };
    let n = match v {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    n.map(Some)
        .ok_or_else(|| bad(format!("{path}.{key} must be an integer")))
}

fn first<'a>(obj: &'a Map<String, Value>, keys: &[&'a str]) -> Option<(&'a str, &'a Value)> {
    keys.iter().find_map(|k| obj.get(*k).map(|v| (*k, v)))
}

/// Epoch seconds or milliseconds (told apart by size) to milliseconds.
pub fn to_ms(t: i64) -> i64 {
    // unsigned_abs: `abs` of i64::MIN overflows.
    if t.unsigned_abs() < 100_000_000_000 {
        t.saturating_mul(1000)
    } else {
        t
    }
}

/// Latest time accepted from a sender, 9999-12-31T23:59:59.999Z: every time we keep can be
/// shown as a date and added to without overflow.
pub const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// A time (epoch seconds or milliseconds) in milliseconds, refused outside 1970..=9999.
pub fn time_ms(
    obj: &Map<String, Value>,
    keys: &[&str],
    path: &str,
) -> Result<Option<i64>, FieldError> {
    let Some(t) = integer(obj, keys, path)? else {
        return Ok(None);
    };
    let ms = to_ms(t);
    if (0..=MAX_TIME_MS).contains(&ms) {
        Ok(Some(ms))
    } else {
        let key = first(obj, keys).map_or(keys[0], |(k, _)| k);
        Err(bad(format!(
            "{path}.{key} must be a time between 1970 and 9999 (epoch seconds or milliseconds)"
        )))
    }
}

/// Keeps at most `max` characters of a note for the admin.
pub fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_stay_exact_and_types_are_lenient() {
        let v = json!({"id": 1904371063669395457u64, "t": "21.5", "n": 3, "bad": [1]});
        let o = v.as_object().unwrap();
        assert_eq!(
            text(o, &["id"], "x").unwrap().as_deref(),
            Some("1904371063669395457")
        );
        assert_eq!(number(o, &["t"], "x").unwrap(), Some(21.5));
        assert_eq!(integer(o, &["n"], "x").unwrap(), Some(3));
        assert_eq!(number(o, &["missing", "n"], "x").unwrap(), Some(3.0));
        assert_eq!(
            number(o, &["bad"], "p").unwrap_err().0,
            "p.bad must be a number"
        );
        assert_eq!(to_ms(1742872448), 1742872448000);
        assert_eq!(to_ms(1742872448000), 1742872448000);
        assert_eq!(clip("héllo", 2), "hé…");
        assert_eq!(to_ms(i64::MIN), i64::MIN);
        assert_eq!(to_ms(i64::MAX), i64::MAX);
    }

    #[test]
    fn times_out_of_range_are_refused() {
        let v = json!({"s": 1742872448, "ms": "1742872448000", "zero": 0, "min": i64::MIN,
                       "max": i64::MAX, "neg": -1, "y10k": MAX_TIME_MS + 1, "last": MAX_TIME_MS});
        let o = v.as_object().unwrap();
        assert_eq!(time_ms(o, &["s"], "x").unwrap(), Some(1742872448000));
        assert_eq!(time_ms(o, &["ms"], "x").unwrap(), Some(1742872448000));
        assert_eq!(time_ms(o, &["zero"], "x").unwrap(), Some(0));
        assert_eq!(time_ms(o, &["last"], "x").unwrap(), Some(MAX_TIME_MS));
        assert_eq!(time_ms(o, &["missing"], "x").unwrap(), None);
        for key in ["min", "max", "neg", "y10k"] {
            let err = time_ms(o, &[key], "x").unwrap_err().0;
            assert!(err.starts_with(&format!("x.{key} must be a time")), "{err}");
        }
    }
}

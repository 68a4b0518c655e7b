//! The log subscriber. In text format every field value is escaped: emails, uuids, device
//! names and headers come from clients, and a raw newline in one would forge a log line.

use std::fmt::{self, Write};

use tracing::field::Field;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::{debug_fn, Writer};
use tracing_subscriber::fmt::FormatFields;

/// Starts logging to standard error, as `text` (one line per event) or `json`.
pub fn init(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if format == "json" {
        // JSON strings escape control characters themselves.
        builder.json().init();
    } else {
        builder.fmt_fields(text_fields()).init();
    }
}

/// Formats fields as the default text format does (`message key=value …`), with control
/// characters (newlines, escape sequences, …) in values written as `\n`, `\u{1b}`, ….
pub fn text_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    debug_fn(
        |w: &mut Writer<'_>, field: &Field, value: &dyn fmt::Debug| {
            if field.name() != "message" {
                write!(w, "{}=", field.name())?;
            }
            write!(Escaping(w), "{value:?}")
        },
    )
    .delimited(" ")
}

/// Passes text through, writing control and line-separator characters as escapes.
struct Escaping<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                write!(self.0, "{}", c.escape_default())?;
            } else {
                self.0.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    const FORGED: &str =
        "x@example.com\n2026-12-01T00:00:00Z  INFO sensorcast: signed in user_id=1\r\u{1b}[2K";

    /// What a failed sign-in logs, through `fields` in text format.
    fn log_with<F>(fields: F) -> String
    where
        F: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .fmt_fields(fields)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", path = %"/login\nforged");
            let _in = span.enter();
            tracing::info!(email = %FORGED, header = ?FORGED, "failed sign-in {}", FORGED);
        });
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn client_text_cannot_forge_a_log_line() {
        // The default text format, as main used, writes the newline through.
        let plain = log_with(tracing_subscriber::fmt::format::DefaultFields::new());
        assert!(plain.trim_end().contains('\n'), "{plain}");

        let line = log_with(text_fields());
        assert_eq!(line.matches('\n').count(), 1, "one event, one line: {line}");
        assert!(line.ends_with('\n'));
        assert!(!line.contains(['\r', '\u{1b}']), "{line}");
        assert!(
            line.contains(r"email=x@example.com\n2026-12-01T00:00:00Z  INFO"),
            "{line}"
        );
        assert!(line.contains(r"\r\u{1b}[2K"), "{line}");
        assert!(line.contains("failed sign-in x@example.com\\n"), "{line}");
        assert!(line.contains(r"request{path=/login\nforged}"), "{line}");
    }
}

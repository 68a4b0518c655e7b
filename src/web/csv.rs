//! CSV fields for the exports: quoted, and defused so a spreadsheet never runs a cell as a
//! formula (a device name or comment starting with `=` is text, not code).

pub fn field(s: &str) -> String {
    let defused = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        "'"
    } else {
        ""
    };
    format!("\"{defused}{}\"", s.replace('"', "\"\""))
}

/// A CSV download: its headers and body.
pub fn download(filename: &str, body: String) -> axum::response::Response {
    use axum::http::header;
    use axum::response::IntoResponse;
    let disposition = format!("attachment; filename=\"{filename}\"");
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn formulas_are_defused_and_quotes_doubled() {
        assert_eq!(super::field("=1+1"), "\"'=1+1\"");
        assert_eq!(super::field("a \"b\""), "\"a \"\"b\"\"\"");
    }
}

//! `application/x-www-form-urlencoded` bodies as ordered pairs: admin forms repeat keys
//! (`site=1&site=2`), which `axum::Form` cannot express.

/// Decoded `key=value` pairs in the order sent.
#[derive(Debug, Default, Clone)]
pub struct FormData(Vec<(String, String)>);

impl FormData {
    pub fn parse(body: &[u8]) -> FormData {
        FormData(
            body.split(|b| *b == b'&')
                .filter(|part| !part.is_empty())
                .map(|part| {
                    let mut kv = part.splitn(2, |b| *b == b'=');
                    let key = decode(kv.next().unwrap_or_default());
                    let value = decode(kv.next().unwrap_or_default());
                    (key, value)
                })
                .collect(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `key`, trimmed; `None` when absent or blank.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.get(key).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Every value of `key`.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Percent-decoding with `+` as space; invalid escapes are kept as written.
fn decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < raw.len() => match (hex(raw[i + 1]), hex(raw[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::FormData;

    #[test]
    fn parses_repeated_keys_and_escapes() {
        let f = FormData::parse(b"email=a%40b.c&site=1&site=2&name=Cold+store%20N&bad=%zz&end=%4");
        assert_eq!(f.get("email"), Some("a@b.c"));
        assert_eq!(f.all("site").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(f.get("name"), Some("Cold store N"));
        assert_eq!(f.get("bad"), Some("%zz"));
        assert_eq!(f.get("end"), Some("%4"));
        assert_eq!(f.text("missing"), None);
        assert_eq!(FormData::parse(b"x=%E2%82%AC").get("x"), Some("€"));
    }
}

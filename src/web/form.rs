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

    /// Every pair, in the order sent.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
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
    use proptest::prelude::*;

    /// Escapes only what the format itself uses (`&`, `=`, `+`, `%`); every other byte raw.
    fn encode_minimal(pairs: &[(String, String)]) -> Vec<u8> {
        let esc = |s: &str| -> Vec<u8> {
            s.bytes()
                .flat_map(|b| match b {
                    b'&' | b'=' | b'+' | b'%' => format!("%{b:02X}").into_bytes(),
                    b => vec![b],
                })
                .collect()
        };
        join(pairs, esc)
    }

    /// Escapes every byte, in lower-case hex.
    fn encode_all(pairs: &[(String, String)]) -> Vec<u8> {
        join(pairs, |s| {
            s.bytes()
                .flat_map(|b| format!("%{b:02x}").into_bytes())
                .collect()
        })
    }

    fn reparse(body: Vec<u8>) -> Vec<(String, String)> {
        FormData::parse(&body).pairs().to_vec()
    }

    fn join(pairs: &[(String, String)], esc: impl Fn(&str) -> Vec<u8>) -> Vec<u8> {
        let parts: Vec<Vec<u8>> = pairs
            .iter()
            .map(|(k, v)| [esc(k), b"=".to_vec(), esc(v)].concat())
            .collect();
        parts.join(&b'&')
    }

    proptest! {
        #[test]
        fn encoded_pairs_parse_back_to_themselves(
            pairs in prop::collection::vec((".{0,8}", ".{0,8}"), 0..6),
        ) {
            prop_assert_eq!(reparse(encode_minimal(&pairs)), &pairs[..]);
            prop_assert_eq!(reparse(encode_all(&pairs)), &pairs[..]);
        }

        /// Any body: re-encoding what was parsed gives the same pairs, and the output is
        /// bounded by the input (one pair per `&`-part; a byte becomes at most U+FFFD).
        #[test]
        fn any_body_reparses_the_same_and_is_bounded(
            body in prop::collection::vec(
                prop::sample::select(b"a=&%+2F0e\xff\xc3\xa9".to_vec()), 0..64),
        ) {
            let parsed = FormData::parse(&body);
            let pairs = parsed.pairs();
            prop_assert_eq!(reparse(encode_minimal(pairs)), pairs);
            prop_assert_eq!(reparse(encode_all(pairs)), pairs);
            prop_assert!(pairs.len() <= body.iter().filter(|b| **b == b'&').count() + 1);
            let out: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
            prop_assert!(out <= 3 * body.len());
        }
    }

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

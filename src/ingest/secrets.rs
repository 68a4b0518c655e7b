//! The MDP webhook secrets the server was given, each optionally bound to one webhook uuid.

/// Webhook secrets, each optionally bound to one webhook uuid.
#[derive(Debug, Clone, Default)]
pub struct WebhookSecrets {
    entries: Vec<(Option<String>, Vec<u8>)>,
}

impl WebhookSecrets {
    pub fn parse(spec: Option<&str>) -> Self {
        let entries = spec
            .into_iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|entry| match entry.split_once('=') {
                Some((uuid, secret)) if looks_like_uuid(uuid) => {
                    (Some(uuid.to_ascii_lowercase()), secret.as_bytes().to_vec())
                }
                _ => (None, entry.as_bytes().to_vec()),
            })
            .collect();
        WebhookSecrets { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Secrets to try for a webhook uuid: the ones bound to it, else the unbound ones.
    pub fn candidates<'a>(&'a self, uuid: &str) -> Vec<&'a [u8]> {
        let uuid = uuid.to_ascii_lowercase();
        let bound: Vec<&[u8]> = self
            .entries
            .iter()
            .filter(|(u, _)| u.as_deref() == Some(uuid.as_str()))
            .map(|(_, s)| s.as_slice())
            .collect();
        if !bound.is_empty() {
            return bound;
        }
        self.entries
            .iter()
            .filter(|(u, _)| u.is_none())
            .map(|(_, s)| s.as_slice())
            .collect()
    }
}

fn looks_like_uuid(s: &str) -> bool {
    let hex_digits = s.chars().filter(char::is_ascii_hexdigit).count();
    hex_digits == 32 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_bound_to_uuid_win_over_unbound() {
        let s = WebhookSecrets::parse(Some(
            "plain, 6167cb40-8e5e-4d53-904f-968928e488a6=bound=with=equals",
        ));
        assert_eq!(
            s.candidates("6167CB40-8E5E-4D53-904F-968928E488A6"),
            vec![b"bound=with=equals".as_slice()]
        );
        assert_eq!(s.candidates("other"), vec![b"plain".as_slice()]);
    }

    #[test]
    fn secret_with_equals_but_no_uuid_is_unbound() {
        let s = WebhookSecrets::parse(Some("abc=def"));
        assert_eq!(s.candidates("x"), vec![b"abc=def".as_slice()]);
        assert!(WebhookSecrets::parse(None).is_empty());
    }
}

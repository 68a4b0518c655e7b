//! MDP webhook signatures: HMAC-SHA256(secret, timestamp ‖ nonce), lower-case hex.
//! The body is not signed, so freshness and one-time nonces carry the replay protection.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::secrets::WebhookSecrets;

pub const SIGNATURE: &str = "x-msc-request-signature";
pub const UUID: &str = "x-msc-webhook-uuid";
pub const TIMESTAMP: &str = "x-msc-request-timestamp";
pub const NONCE: &str = "x-msc-request-nonce";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    NotConfigured,
    Missing(&'static str),
    BadTimestamp,
    Expired,
    Invalid,
}

/// The signed headers of one request.
#[derive(Debug, Clone, Copy)]
pub struct SignedHeaders<'a> {
    pub signature: Option<&'a str>,
    pub uuid: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub nonce: Option<&'a str>,
}

pub fn sign(secret: &[u8], timestamp: &str, nonce: &str) -> String {
    hex::encode(mac(secret, timestamp, nonce).finalize().into_bytes())
}

fn mac(secret: &[u8], timestamp: &str, nonce: &str) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(nonce.as_bytes());
    mac
}

/// Names a secret without revealing it: the nonce is remembered per secret, since a signature
/// proves the secret and the nonce, not the webhook uuid header (the uuid only picks which
/// secrets to try, and a replay may send any uuid).
pub fn secret_fingerprint(secret: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"sensorcast nonce scope v1");
    format!("k:{}", hex::encode(&mac.finalize().into_bytes()[..12]))
}

/// Checks a request's signature; returns the (secret fingerprint, nonce) pair to be claimed once.
pub fn verify(
    secrets: &WebhookSecrets,
    h: SignedHeaders<'_>,
    now_s: i64,
    window_s: i64,
) -> Result<(String, String), SignatureError> {
    if secrets.is_empty() {
        return Err(SignatureError::NotConfigured);
    }
    let signature = h.signature.ok_or(SignatureError::Missing(SIGNATURE))?;
    let timestamp = h.timestamp.ok_or(SignatureError::Missing(TIMESTAMP))?;
    let nonce = h.nonce.ok_or(SignatureError::Missing(NONCE))?;
    let uuid = h.uuid.unwrap_or("");
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    // Checked: a timestamp near i64::MIN or MAX must not wrap into the window.
    let age = now_s.checked_sub(ts).map(i64::unsigned_abs);
    if age.is_none_or(|age| age > window_s.unsigned_abs()) {
        return Err(SignatureError::Expired);
    }
    let Ok(given) = hex::decode(signature.trim().to_ascii_lowercase()) else {
        return Err(SignatureError::Invalid);
    };
    // Every candidate is tried, so the time taken does not tell which one matched.
    let matched = secrets
        .candidates(uuid)
        .into_iter()
        .fold(None, |found, secret| {
            let expected = mac(secret, timestamp, nonce).finalize().into_bytes();
            let ok = bool::from(expected.as_slice().ct_eq(&given));
            found.or(ok.then_some(secret))
        });
    let Some(secret) = matched else {
        return Err(SignatureError::Invalid);
    };
    Ok((secret_fingerprint(secret), nonce.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: &str = "1742872448";
    const NONCE_V: &str = "0f2c1e6b5a7d4e3f9a8b7c6d5e4f3a2b";
    const EXPECTED: &str = "bb7effb105409c969e56c5a5f95a564e4a8e49cda142c5fd6962092b2082e8e9";

    fn headers(sig: &str) -> SignedHeaders<'_> {
        SignedHeaders {
            signature: Some(sig),
            uuid: Some("u-1"),
            timestamp: Some(TS),
            nonce: Some(NONCE_V),
        }
    }

    #[test]
    fn spec_test_vector() {
        assert_eq!(sign(b"mySecretKey", TS, NONCE_V), EXPECTED);
    }

    #[test]
    fn verifies_ignoring_hex_case_and_refuses_others() {
        let secrets = WebhookSecrets::parse(Some("mySecretKey"));
        let now = 1742872448 + 10;
        let upper = EXPECTED.to_ascii_uppercase();
        assert!(verify(&secrets, headers(&upper), now, 60).is_ok());
        let (scope, nonce) = verify(&secrets, headers(EXPECTED), now, 60).unwrap();
        assert_eq!(
            (scope.as_str(), nonce.as_str()),
            (secret_fingerprint(b"mySecretKey").as_str(), NONCE_V)
        );
        let wrong = WebhookSecrets::parse(Some("otherKey"));
        assert_eq!(
            verify(&wrong, headers(EXPECTED), now, 60),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            verify(&secrets, headers("zz"), now, 60),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            verify(&secrets, headers(&EXPECTED[..10]), now, 60),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn freshness_window_and_missing_headers() {
        let secrets = WebhookSecrets::parse(Some("mySecretKey"));
        assert_eq!(
            verify(&secrets, headers(EXPECTED), 1742872448 + 61, 60),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            verify(&secrets, headers(EXPECTED), 1742872448 - 61, 60),
            Err(SignatureError::Expired)
        );
        let mut h = headers(EXPECTED);
        h.nonce = None;
        assert_eq!(
            verify(&secrets, h, 1742872448, 60),
            Err(SignatureError::Missing(NONCE))
        );
        let mut h = headers(EXPECTED);
        h.timestamp = Some("soon");
        assert_eq!(
            verify(&secrets, h, 1742872448, 60),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            verify(
                &WebhookSecrets::default(),
                headers(EXPECTED),
                1742872448,
                60
            ),
            Err(SignatureError::NotConfigured)
        );
    }

    #[test]
    fn the_nonce_is_scoped_by_the_secret_not_the_uuid_header() {
        let secrets = WebhookSecrets::parse(Some(
            "mySecretKey, 6167cb40-8e5e-4d53-904f-968928e488a6=bound",
        ));
        let now = 1742872448;
        let scope = |uuid: Option<&'static str>| {
            let mut h = headers(EXPECTED);
            h.uuid = uuid;
            verify(&secrets, h, now, 60).map(|(scope, _)| scope)
        };
        let expected = secret_fingerprint(b"mySecretKey");
        for uuid in [Some("u-1"), Some("U-2"), Some("attacker-1"), Some(""), None] {
            assert_eq!(scope(uuid).as_deref(), Ok(expected.as_str()), "{uuid:?}");
        }
        // The uuid with its own secret is not signed by the shared one.
        assert_eq!(
            scope(Some("6167CB40-8E5E-4D53-904F-968928E488A6")),
            Err(SignatureError::Invalid)
        );
        assert!(!expected.contains("mySecretKey"));
        assert_ne!(expected, secret_fingerprint(b"bound"));
    }

    #[test]
    fn timestamps_far_out_of_range_do_not_wrap_into_the_window() {
        let secrets = WebhookSecrets::parse(Some("mySecretKey"));
        let now: i64 = 1742872448;
        for ts in [now.wrapping_add(i64::MIN), i64::MIN, i64::MIN + 1, i64::MAX] {
            let ts = ts.to_string();
            let sig = sign(b"mySecretKey", &ts, NONCE_V);
            let mut h = headers(&sig);
            h.timestamp = Some(&ts);
            assert_eq!(
                verify(&secrets, h, now, 60),
                Err(SignatureError::Expired),
                "{ts}"
            );
        }
    }
}

//! Web Push subscriptions as browsers send them (`PushSubscription.toJSON()`), checked before
//! anything is stored, and the VAPID key pair's public half.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

/// What `PushSubscription.toJSON()` gives.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct PushSubscriptionJson {
    pub endpoint: String,
    pub keys: PushKeys,
    #[serde(default, rename = "expirationTime")]
    pub expiration_time: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct PushKeys {
    pub p256dh: String,
    pub auth: String,
}

/// Longest endpoint URL kept.
pub const MAX_ENDPOINT: usize = 2000;

/// Base64url, padded or not (browsers send it unpadded).
pub fn b64url(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim().trim_end_matches('=')).ok()
}

pub fn to_b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Why a subscription is refused, in words. `allow_http` only for a test's own push service.
pub fn check_subscription(s: &PushSubscriptionJson, allow_http: bool) -> Result<(), String> {
    let endpoint = s.endpoint.trim();
    let rest = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://").filter(|_| allow_http))
        .ok_or("the endpoint must be an https:// URL")?;
    if rest.split('/').next().unwrap_or("").is_empty() || endpoint.len() > MAX_ENDPOINT {
        return Err("the endpoint needs a host (and at most 2000 characters)".into());
    }
    let key = b64url(&s.keys.p256dh).ok_or("keys.p256dh is not base64url")?;
    if key.len() != 65 || key[0] != 4 || p256::PublicKey::from_sec1_bytes(&key).is_err() {
        return Err("keys.p256dh must be an uncompressed P-256 public key (65 bytes)".into());
    }
    match b64url(&s.keys.auth) {
        Some(auth) if auth.len() == 16 => Ok(()),
        _ => Err("keys.auth must be 16 bytes of base64url".into()),
    }
}

/// The VAPID public key (uncompressed point) of a private scalar, as `GET /api/push/key` gives it.
pub fn vapid_public_key(private: &[u8]) -> Option<Vec<u8>> {
    let secret = p256::SecretKey::from_slice(private).ok()?;
    let point =
        p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
    Some(point.as_bytes().to_vec())
}

/// A stored subscription.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PushSubscriptionRow {
    pub id: i64,
    pub user_id: i64,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(endpoint: &str, p256dh: &str, auth: &str) -> PushSubscriptionJson {
        PushSubscriptionJson {
            endpoint: endpoint.into(),
            keys: PushKeys {
                p256dh: p256dh.into(),
                auth: auth.into(),
            },
            expiration_time: None,
        }
    }

    #[test]
    fn subscriptions_are_checked() {
        // RFC 8291 §5's example keys.
        let ua = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
        let auth = "BTBZMqHH6r4Tts7J_aSIgg";
        assert!(check_subscription(&sub("https://push.example.net/p/1", ua, auth), false).is_ok());
        assert!(check_subscription(&sub("http://push.example.net/p/1", ua, auth), false).is_err());
        assert!(check_subscription(&sub("http://127.0.0.1:9/p", ua, auth), true).is_ok());
        assert!(check_subscription(&sub("https://x/p", &ua[..40], auth), false).is_err());
        assert!(check_subscription(&sub("https://x/p", ua, "AAAA"), false).is_err());
        assert!(check_subscription(&sub("https:///p", ua, auth), false).is_err());
    }

    #[test]
    fn the_public_key_is_an_uncompressed_point() {
        let key = vapid_public_key(&[7u8; 32]).unwrap();
        assert_eq!((key.len(), key[0]), (65, 4));
        assert!(vapid_public_key(&[0u8; 32]).is_none(), "zero is no scalar");
    }
}

//! Web Push: the payload encrypted for the browser as RFC 8291 says (aes128gcm, RFC 8188), and
//! the request signed with our VAPID key (RFC 8292, an ES256 JWT). The push service answers
//! 201; 404 or 410 means the subscription is gone (it is removed).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use hkdf::Hkdf;
use p256::ecdsa::signature::Signer;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use sha2::Sha256;

use super::Failure;
use crate::domain::{b64url, now_ms, to_b64url, NotificationRow, TemperatureUnit};
use crate::store::Store;

/// Record size announced in the header; one record holds the whole (small) message.
const RECORD_SIZE: u32 = 4096;

/// Encrypts `plaintext` for a browser whose subscription has `ua_public` (65 bytes) and `auth`
/// (16 bytes), with our ephemeral key `as_secret` and a random `salt`. RFC 8291 §3.4, RFC 8188.
pub fn encrypt(
    ua_public: &[u8],
    auth: &[u8],
    plaintext: &[u8],
    as_secret: &SecretKey,
    salt: &[u8; 16],
) -> Option<Vec<u8>> {
    let ua = PublicKey::from_sec1_bytes(ua_public).ok()?;
    let as_public = as_secret.public_key().to_encoded_point(false);
    let shared = p256::ecdh::diffie_hellman(as_secret.to_nonzero_scalar(), ua.as_affine());
    let mut key_info = b"WebPush: info\0".to_vec();
    key_info.extend_from_slice(ua_public);
    key_info.extend_from_slice(as_public.as_bytes());
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth), shared.raw_secret_bytes())
        .expand(&key_info, &mut ikm)
        .ok()?;
    let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .ok()?;
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce).ok()?;
    let mut record = plaintext.to_vec();
    record.push(2); // the last (and only) record's delimiter
    let sealed = Aes128Gcm::new_from_slice(&cek)
        .ok()?
        .encrypt(Nonce::from_slice(&nonce), record.as_slice())
        .ok()?;
    let mut body = salt.to_vec();
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(as_public.as_bytes().len() as u8);
    body.extend_from_slice(as_public.as_bytes());
    body.extend_from_slice(&sealed);
    Some(body)
}

/// `Authorization: vapid t=<JWT>, k=<public key>` for a request to `endpoint`'s origin.
pub fn vapid_header(
    private: &SecretKey,
    endpoint: &str,
    subject: &str,
    now_s: i64,
) -> Option<String> {
    let origin = endpoint
        .splitn(4, '/')
        .take(3)
        .collect::<Vec<_>>()
        .join("/");
    let header = to_b64url(br#"{"typ":"JWT","alg":"ES256"}"#);
    let claims = serde_json::json!({ "aud": origin, "exp": now_s + 12 * 3600, "sub": subject });
    let claims = to_b64url(claims.to_string().as_bytes());
    let signing_input = format!("{header}.{claims}");
    let key = p256::ecdsa::SigningKey::from(private);
    let signature: p256::ecdsa::Signature = key.sign(signing_input.as_bytes());
    let public = private.public_key().to_encoded_point(false);
    Some(format!(
        "vapid t={signing_input}.{}, k={}",
        to_b64url(&signature.to_bytes()),
        to_b64url(public.as_bytes())
    ))
}

/// What the browser shows: a title, a line, and the page a click opens.
fn message(payload: &str, public_url: &str) -> Vec<u8> {
    // The title names the device and what is wrong, no value: no unit to choose.
    let mail = super::render::email(payload, public_url, TemperatureUnit::Celsius);
    let v: serde_json::Value = serde_json::from_str(payload).unwrap_or_default();
    let device = v["data"]["deviceId"].as_str().unwrap_or("");
    let url = if device.is_empty() {
        format!("{public_url}/")
    } else {
        format!("{public_url}/devices/{device}")
    };
    let body = v["data"]["siteName"].as_str().unwrap_or("sensorcast");
    serde_json::json!({ "title": mail.subject, "body": body, "url": url })
        .to_string()
        .into_bytes()
}

pub async fn send(
    http: &reqwest::Client,
    store: &Store,
    vapid: &SecretKey,
    public_url: &str,
    row: &NotificationRow,
) -> Result<String, Failure> {
    let Some(sub) = row.endpoint_id else {
        return Err(Failure::permanent("no subscription"));
    };
    let subs = store
        .push_subscription(sub)
        .await
        .map_err(|e| Failure::retry(format!("could not read the subscription: {e}")))?;
    let Some(s) = subs else {
        return Err(Failure::permanent("the browser unsubscribed"));
    };
    let (ua, auth) = match (b64url(&s.p256dh), b64url(&s.auth)) {
        (Some(ua), Some(auth)) => (ua, auth),
        _ => {
            return Err(Failure::permanent(
                "the stored subscription keys are broken",
            ))
        }
    };
    let ephemeral = SecretKey::random(&mut rand::rngs::OsRng);
    let salt: [u8; 16] = rand::random();
    let body = encrypt(
        &ua,
        &auth,
        &message(&row.payload, public_url),
        &ephemeral,
        &salt,
    )
    .ok_or_else(|| Failure::permanent("could not encrypt for this subscription"))?;
    let authorization = vapid_header(vapid, &s.endpoint, public_url, now_ms() / 1000)
        .ok_or_else(|| Failure::permanent("could not sign the VAPID token"))?;
    let answer = http
        .post(&s.endpoint)
        .header("authorization", authorization)
        .header("content-encoding", "aes128gcm")
        .header("content-type", "application/octet-stream")
        .header("ttl", "86400")
        .header("urgency", "high")
        .body(body)
        .send()
        .await;
    match answer {
        Ok(r) if r.status().is_success() => Ok(r.status().to_string()),
        Ok(r) if r.status() == 404 || r.status() == 410 => {
            if let Err(e) = store.remove_push_subscription(s.id).await {
                tracing::warn!(error = %e, "could not remove an expired push subscription");
            }
            Err(Failure::permanent(format!(
                "{}: subscription removed",
                r.status()
            )))
        }
        Ok(r) => Err(Failure::retry(r.status().to_string())),
        Err(e) if e.is_timeout() => Err(Failure::retry("timed out")),
        Err(e) => Err(Failure::retry(format!("not delivered: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8291, Appendix A: the example's keys, salt and message give its exact body.
    #[test]
    fn encrypts_as_rfc_8291_appendix_a() {
        let ua_public = b64url("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4").unwrap();
        let auth = b64url("BTBZMqHH6r4Tts7J_aSIgg").unwrap();
        let as_private = b64url("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw").unwrap();
        let salt: [u8; 16] = b64url("DGv6ra1nlYgDCS1FRnbzlw")
            .unwrap()
            .try_into()
            .unwrap();
        let secret = SecretKey::from_slice(&as_private).unwrap();
        let body = encrypt(
            &ua_public,
            &auth,
            b"When I grow up, I want to be a watermelon",
            &secret,
            &salt,
        )
        .unwrap();
        assert_eq!(
            to_b64url(&body),
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
        );
    }

    #[test]
    fn the_vapid_token_names_the_push_service_origin() {
        let key = SecretKey::from_slice(&[9u8; 32]).unwrap();
        let h = vapid_header(
            &key,
            "https://push.example.net/wpush/v2/abc",
            "https://sc.example",
            1_000,
        )
        .unwrap();
        let jwt = h
            .strip_prefix("vapid t=")
            .unwrap()
            .split(',')
            .next()
            .unwrap();
        let claims = b64url(jwt.split('.').nth(1).unwrap()).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&claims).unwrap();
        assert_eq!(claims["aud"], "https://push.example.net");
        assert_eq!(claims["exp"], 1_000 + 12 * 3600);
    }
}

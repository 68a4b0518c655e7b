//! Outgoing webhooks: the alarm's event JSON, signed `X-Sensorcast-Signature: sha256=<hex
//! HMAC-SHA256 of the body with the endpoint's secret>`, with `X-Sensorcast-Delivery`, the same
//! id on every retry. Any 2xx is delivered.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Failure;
use crate::domain::NotificationRow;
use crate::store::Store;

pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub async fn send(
    http: &reqwest::Client,
    store: &Store,
    row: &NotificationRow,
) -> Result<String, Failure> {
    let endpoints = store
        .webhook_endpoints()
        .await
        .map_err(|e| Failure::retry(format!("could not read the endpoint: {e}")))?;
    let Some(endpoint) = endpoints.iter().find(|e| Some(e.id) == row.endpoint_id) else {
        return Err(Failure::permanent("the webhook was removed"));
    };
    let body = row.payload.as_bytes().to_vec();
    let answer = http
        .post(&endpoint.url)
        .header("content-type", "application/json")
        .header("x-sensorcast-delivery", &row.delivery_id)
        .header("x-sensorcast-signature", signature(&endpoint.secret, &body))
        .body(body)
        .send()
        .await;
    match answer {
        Ok(r) if r.status().is_success() => Ok(format!("{}", r.status())),
        Ok(r) => Err(Failure::retry(format!("{}", r.status()))),
        Err(e) if e.is_timeout() => Err(Failure::retry("timed out")),
        Err(e) => Err(Failure::retry(format!("not delivered: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_is_hmac_sha256_hex() {
        // echo -n '{"a":1}' | openssl dgst -sha256 -hmac 'secret-secret-16'
        assert_eq!(
            super::signature("secret-secret-16", br#"{"a":1}"#),
            "sha256=271795fab2fe353b5c868c04508db4cd96f2cb21ad55a9dd39ff268fdb88ee4c"
        );
    }
}

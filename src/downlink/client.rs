//! The Milesight gateway's own HTTP API, as far as downlinks need it: sign in, then add an item
//! to a device's downlink queue.
//!
//! The UG6x's embedded network server is derived from ChirpStack v3 (sources in README.md,
//! "Device commands"):
//! - `POST {url}/api/internal/login` with `{"username": …, "password": …}` answers
//!   `{"jwt": "…"}`. The password is not sent as typed: Milesight's "UG6x API Documentation"
//!   (2021-04-13, §1.1 Login) has it AES-128-CBC encrypted with the fixed key
//!   `1111111111111111` and IV `2222222222222222`, PKCS#7 padding, then base64.
//! - `POST {url}/api/devices/{devEUI}/queue` with `Authorization: Bearer <jwt>` and ChirpStack
//!   v3's body `{"deviceQueueItem": {"confirmed": false, "data": "<base64>", "devEUI": "…",
//!   "fPort": 85}}` queues the downlink; the device gets it after its next uplink.

use std::time::Duration;

use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
use base64::Engine;
use serde_json::json;

/// The gateway firmware's fixed password-transport key and IV (not a secret of ours).
const LOGIN_KEY: &[u8; 16] = b"1111111111111111";
const LOGIN_IV: &[u8; 16] = b"2222222222222222";

/// Longest wait for one answer of the gateway.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Longest part of a gateway's answer kept in a command's error.
const MAX_ANSWER: usize = 300;

type LoginCipher = cbc::Encryptor<aes::Aes128>;

/// The password as the gateway's login wants it: AES-128-CBC (fixed key and IV), PKCS#7, base64.
pub fn encrypt_password(password: &str) -> String {
    let sealed = LoginCipher::new(LOGIN_KEY.into(), LOGIN_IV.into())
        .encrypt_padded_vec_mut::<Pkcs7>(password.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sealed)
}

/// Where the gateway's API is and who we sign in as.
#[derive(Clone)]
pub struct GatewayApi {
    /// `http://host:port`, without a trailing slash.
    pub url: String,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for GatewayApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayApi")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &"…")
            .finish()
    }
}

impl GatewayApi {
    /// Checks the settings: an `http://` or `https://` URL (the gateway's web server), a user
    /// and a password.
    pub fn new(url: &str, user: &str, password: &str) -> Result<GatewayApi, String> {
        let url = url.trim().trim_end_matches('/');
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| format!("--gateway-api-url {url:?} is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(format!(
                "--gateway-api-url {url:?} must be http(s)://HOST[:PORT]"
            ));
        }
        if user.trim().is_empty() || password.is_empty() {
            return Err(
                "--gateway-api-url needs --gateway-api-user and --gateway-api-password".into(),
            );
        }
        Ok(GatewayApi {
            url: url.to_string(),
            user: user.trim().to_string(),
            password: password.to_string(),
        })
    }
}

/// What became of one downlink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Queued {
    /// The network server queued it.
    Yes,
    /// It refused it (4xx): its answer. Trying again would get the same.
    Refused(String),
    /// It could not take it now (5xx, unreachable, timed out, sign-in failed): try later.
    Later(String),
}

/// A signed-in session with the gateway; signs in again when its token is refused.
pub struct GatewayClient {
    http: reqwest::Client,
    api: GatewayApi,
    jwt: Option<String>,
}

/// The status and the start of the body of an answer, for an error text.
async fn answer(r: reqwest::Response) -> String {
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    let body: String = body.trim().chars().take(MAX_ANSWER).collect();
    if body.is_empty() {
        format!("HTTP {}", status.as_u16())
    } else {
        format!("HTTP {}: {body}", status.as_u16())
    }
}

/// A transport error without our URL (the reason shows in the API's command list).
fn transport(what: &str, e: reqwest::Error) -> Queued {
    let kind = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        e.without_url().to_string()
    };
    Queued::Later(format!("gateway {what}: {kind}"))
}

impl GatewayClient {
    pub fn new(api: GatewayApi) -> GatewayClient {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .unwrap_or_default();
        GatewayClient {
            http,
            api,
            jwt: None,
        }
    }

    async fn login(&mut self) -> Result<String, Queued> {
        let body = json!({
            "username": self.api.user,
            "password": encrypt_password(&self.api.password),
        });
        let r = self
            .http
            .post(format!("{}/api/internal/login", self.api.url))
            .json(&body)
            .send()
            .await
            .map_err(|e| transport("login", e))?;
        if !r.status().is_success() {
            return Err(Queued::Later(format!(
                "gateway login refused ({})",
                answer(r).await
            )));
        }
        let v: serde_json::Value = r
            .json()
            .await
            .map_err(|_| Queued::Later("gateway login answered no JSON".into()))?;
        let jwt = v["jwt"]
            .as_str()
            .filter(|j| !j.is_empty())
            .ok_or_else(|| Queued::Later("gateway login answered without a jwt".into()))?;
        self.jwt = Some(jwt.to_string());
        Ok(jwt.to_string())
    }

    /// Queues `bytes` for the device on `f_port`, signing in first if needed and again once
    /// when the gateway no longer takes the token (401).
    pub async fn enqueue(&mut self, dev_eui: &str, bytes: &[u8], f_port: u8) -> Queued {
        let body = json!({
            "deviceQueueItem": {
                "confirmed": false,
                "data": base64::engine::general_purpose::STANDARD.encode(bytes),
                "devEUI": dev_eui,
                "fPort": f_port,
            }
        });
        let url = format!("{}/api/devices/{dev_eui}/queue", self.api.url);
        for fresh in [false, true] {
            let jwt = match (&self.jwt, fresh) {
                (Some(jwt), false) => jwt.clone(),
                _ => match self.login().await {
                    Ok(jwt) => jwt,
                    Err(later) => return later,
                },
            };
            let sent = self
                .http
                .post(&url)
                .bearer_auth(&jwt)
                .json(&body)
                .send()
                .await;
            let r = match sent {
                Ok(r) => r,
                Err(e) => return transport("queue", e),
            };
            let status = r.status();
            if status.is_success() {
                return Queued::Yes;
            }
            if status == reqwest::StatusCode::UNAUTHORIZED {
                // The token expired (or the gateway restarted): sign in again, once.
                self.jwt = None;
                continue;
            }
            let why = answer(r).await;
            return if status.is_client_error() {
                Queued::Refused(format!("gateway refused the downlink ({why})"))
            } else {
                Queued::Later(format!("gateway could not queue it ({why})"))
            };
        }
        Queued::Later("gateway refused our fresh sign-in token (HTTP 401)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values computed independently, with both
    /// `printf secret | openssl enc -aes-128-cbc -K 3131…31 -iv 3232…32 | base64` and Python's
    /// `cryptography` (AES(b"1111111111111111"), CBC(b"2222222222222222"), PKCS7(128)).
    #[test]
    fn password_is_encrypted_as_the_gateway_expects() {
        assert_eq!(encrypt_password("secret"), "uAnm9CbV4HNquBOSohVHKQ==");
        assert_eq!(encrypt_password("password"), "sI/7ewBCeWunDs6JXXtSHg==");
        // A whole block of input gets a whole block of padding.
        assert_eq!(
            encrypt_password("0123456789abcdef"),
            "ik+C0NwM//by4FYAIJB6aCqLpmBeSSGVvOCCZfVLpWE="
        );
    }

    #[test]
    fn settings_are_checked() {
        let api = GatewayApi::new(" http://192.168.1.1:8080/ ", "admin", "pw").unwrap();
        assert_eq!(api.url, "http://192.168.1.1:8080");
        assert!(
            !format!("{api:?}").contains("pw"),
            "the password stays out of logs"
        );
        for (url, user, pw) in [
            ("192.168.1.1:8080", "admin", "pw"),
            ("ftp://gw", "admin", "pw"),
            ("http://gw", "", "pw"),
            ("http://gw", "admin", ""),
        ] {
            assert!(GatewayApi::new(url, user, pw).is_err(), "{url} {user} {pw}");
        }
    }
}

//! Web Push with the test as the push service: it subscribes with its own P-256 keys as a
//! browser does, receives the push, verifies the VAPID JWT (ES256, audience, key) and decrypts
//! the aes128gcm payload (RFC 8291) with its private key; a 410 removes the subscription; bad
//! subscriptions are refused with nothing stored.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit};
use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hkdf::Hkdf;
use p256::ecdsa::signature::Verifier;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::support::*;
use sensorcast::domain::Role;

const DEVICE: &str = "1988618061618400301";
const EUI: &str = "24e124707e090301";

/// One push received: which endpoint, its headers, its body.
type Push = (String, HeaderMap, Vec<u8>);

#[derive(Clone, Default)]
struct Pushes(Arc<Mutex<Vec<Push>>>);

/// The push service: `/push/ok` takes every push (201), `/push/gone` answers 410.
async fn push_service() -> (String, Pushes) {
    let got = Pushes::default();
    let state = got.clone();
    let app = axum::Router::new().route(
        "/push/{which}",
        axum::routing::post(
            move |axum::extract::Path(which): axum::extract::Path<String>,
                  headers: HeaderMap,
                  body: axum::body::Bytes| {
                let state = state.clone();
                async move {
                    state
                        .0
                        .lock()
                        .unwrap()
                        .push((which.clone(), headers, body.to_vec()));
                    if which == "gone" {
                        StatusCode::GONE
                    } else {
                        StatusCode::CREATED
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, got)
}

struct Browser {
    secret: p256::SecretKey,
    auth: [u8; 16],
}

impl Browser {
    fn new() -> Browser {
        Browser {
            secret: p256::SecretKey::random(&mut rand::rngs::OsRng),
            auth: rand::random(),
        }
    }

    fn public(&self) -> Vec<u8> {
        self.secret
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec()
    }

    fn subscription(&self, endpoint: &str) -> Value {
        json!({"endpoint": endpoint, "expirationTime": null, "keys": {
            "p256dh": URL_SAFE_NO_PAD.encode(self.public()), "auth": URL_SAFE_NO_PAD.encode(self.auth)}})
    }

    /// RFC 8291 §3.4 / RFC 8188 decryption, written here apart from the server's encryption.
    fn decrypt(&self, body: &[u8]) -> Vec<u8> {
        let (salt, rest) = body.split_at(16);
        assert_eq!(&rest[..4], &4096u32.to_be_bytes(), "record size");
        let idlen = rest[4] as usize;
        assert_eq!(idlen, 65, "the key id is the sender's public key");
        let as_public = &rest[5..5 + idlen];
        let sealed = &rest[5 + idlen..];
        let sender = p256::PublicKey::from_sec1_bytes(as_public).expect("a P-256 key");
        let shared =
            p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), sender.as_affine());
        let mut info = b"WebPush: info\0".to_vec();
        info.extend(self.public());
        info.extend(as_public);
        let mut ikm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(&self.auth), shared.raw_secret_bytes())
            .expand(&info, &mut ikm)
            .unwrap();
        let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
        let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
        prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
            .unwrap();
        prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
            .unwrap();
        let mut plain = aes_gcm::Aes128Gcm::new_from_slice(&cek)
            .unwrap()
            .decrypt(aes_gcm::Nonce::from_slice(&nonce), sealed)
            .expect("decrypts with the browser's keys");
        assert_eq!(plain.pop(), Some(2), "one final record");
        plain
    }
}

/// Checks `Authorization: vapid t=<jwt>, k=<key>`: the key is the server's, the signature
/// ES256 over the token, the audience the push service's origin; returns the claims.
fn verify_vapid(headers: &HeaderMap, server_key: &str, origin: &str) -> Value {
    let auth = headers["authorization"].to_str().unwrap();
    let rest = auth
        .strip_prefix("vapid t=")
        .expect("a vapid authorization");
    let (jwt, k) = rest.split_once(", k=").expect("t= and k=");
    assert_eq!(k, server_key, "signed with the key /api/push/key gives");
    let key =
        p256::ecdsa::VerifyingKey::from_sec1_bytes(&URL_SAFE_NO_PAD.decode(k).unwrap()).unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    let sig =
        p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
    key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .expect("a valid ES256 signature");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["aud"], origin);
    assert!(claims["exp"].as_i64().unwrap() > sensorcast::domain::now_ms() / 1000);
    claims
}

fn reading(event: &str, t1: f64) -> String {
    let now = sensorcast::domain::now_ms();
    json!([{"eventId": event, "eventCreatedTime": (now / 1000).to_string(), "eventType": "DEVICE_DATA",
        "data": {"deviceProfile": {"deviceId": DEVICE, "devEUI": EUI, "name": "Freezer P", "model": "TS302"},
                 "type": "PROPERTY", "tslId": "", "ts": now, "payload": {"temperature_left": t1}}}])
    .to_string()
}

async fn subscribe(
    app: &TestApp,
    client: &reqwest::Client,
    csrf: &str,
    body: &Value,
) -> reqwest::Response {
    client
        .post(app.url("/api/push/subscriptions"))
        .header("x-csrf-token", csrf)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn subscriptions(app: &TestApp) -> usize {
    query_ids(app.db(), "SELECT id FROM push_subscriptions")
        .await
        .len()
}

async fn pushed_alarms_decrypt_and_gone_subscriptions_go(backend: Backend) {
    let mut args = test_args();
    args.push_insecure_endpoints = true;
    let app = spawn_or_skip!(backend, args);
    let (base, pushes) = push_service().await;
    assert_eq!(app.post_mdp(&reading("seed", -20.0)).await.status(), 200);
    app.assign(DEVICE, "North").await;
    app.add_user("m@north.test", Role::Manager, &["North"])
        .await;
    let manager = app.browser_as("m@north.test", PASSWORD).await;
    let csrf = app.page_csrf(&manager).await;
    let key = get_json(&manager, app.url("/api/push/key")).await;
    let server_key = key["publicKey"].as_str().unwrap().to_string();
    let browser = Browser::new();
    let r = subscribe(
        &app,
        &manager,
        &csrf,
        &browser.subscription(&format!("{base}/push/ok")),
    )
    .await;
    assert_eq!(r.status(), 201);
    let stale = Browser::new();
    let r = subscribe(
        &app,
        &manager,
        &csrf,
        &stale.subscription(&format!("{base}/push/gone")),
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_eq!(subscriptions(&app).await, 2);

    app.rule_at_most(DEVICE, -15.0).await;
    assert_eq!(app.post_mdp(&reading("hot", -9.0)).await.status(), 200);

    for _ in 0..200 {
        if pushes.0.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = pushes.0.lock().unwrap().clone();
    let (_, headers, body) = got
        .iter()
        .find(|(w, _, _)| w == "ok")
        .expect("a push to the live subscription");
    assert_eq!(headers["content-encoding"], "aes128gcm");
    assert!(headers.contains_key("ttl"));
    verify_vapid(headers, &server_key, &base);
    let message: Value = serde_json::from_slice(&browser.decrypt(body)).unwrap();
    assert!(
        message["title"]
            .as_str()
            .unwrap()
            .starts_with("Alarm: Freezer P"),
        "{message}"
    );
    assert!(
        message["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/devices/{DEVICE}")),
        "{message}"
    );
    // The push service said 410 for the other: it is removed.
    for _ in 0..100 {
        if subscriptions(&app).await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        subscriptions(&app).await,
        1,
        "the expired subscription is removed"
    );
}
both_backends!(pushed_alarms_decrypt_and_gone_subscriptions_go);

async fn bad_subscriptions_are_refused(backend: Backend) {
    let app = spawn_or_skip!(backend);
    let client = app.admin().await;
    let csrf = app.page_csrf(&client).await;
    let b = Browser::new();
    let good = b.subscription("https://push.example.net/p/1");
    let mut http = good.clone();
    http["endpoint"] = json!("http://push.example.net/p/1");
    let mut short_key = good.clone();
    short_key["keys"]["p256dh"] = json!(URL_SAFE_NO_PAD.encode([4u8; 33]));
    let mut short_auth = good.clone();
    short_auth["keys"]["auth"] = json!("AAAA");
    for (body, what) in [
        (http, "plain http"),
        (short_key, "a 33-byte key"),
        (short_auth, "a 3-byte secret"),
    ] {
        let r = subscribe(&app, &client, &csrf, &body).await;
        assert_json_error(r, 400, "invalid_subscription", what).await;
    }
    let r = subscribe(
        &app,
        &client,
        &csrf,
        &json!({"endpoint": "https://x.example/p"}),
    )
    .await;
    assert_json_error(r, 400, "invalid_json", "no keys").await;
    assert_eq!(subscriptions(&app).await, 0, "nothing stored");
    // However often a user subscribes, they keep their newest ten browsers.
    for n in 0..12 {
        let r = subscribe(
            &app,
            &client,
            &csrf,
            &b.subscription(&format!("https://push.example.net/p/{n}")),
        )
        .await;
        assert_eq!(r.status(), 201);
    }
    assert_eq!(subscriptions(&app).await, 10, "bounded per user");
    let r = client.get(app.url("/static/sw.js")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(r.text().await.unwrap().contains("showNotification"));
}
both_backends!(bad_subscriptions_are_refused);

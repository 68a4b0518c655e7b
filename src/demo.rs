//! `--demo`: demo users and sites, and a simulated TS302 fleet that posts signed MDP webhooks to
//! this server over HTTP, exactly as the platform would.

use std::net::SocketAddr;
use std::time::Duration;

use rand::Rng;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::domain::{now_ms, Role};
use crate::ingest::signature;
use crate::store::Store;
use crate::web::accounts;

/// The demo logins (also in the README).
pub const USERS: [(&str, &str, Role, &[&str]); 3] = [
    ("admin@sensorcast.demo", "demo-admin", Role::Admin, &[]),
    (
        "manager@sensorcast.demo",
        "demo-manager",
        Role::Manager,
        &["Cold store North", "Kitchen South"],
    ),
    (
        "employee@sensorcast.demo",
        "demo-employee",
        Role::Employee,
        &["Cold store North"],
    ),
];

struct SimDevice {
    id: &'static str,
    eui: &'static str,
    name: &'static str,
    site: Option<&'static str>,
    base: (f64, f64),
    /// Stops reporting after this many rounds (the device that goes silent).
    silent_after: Option<u32>,
}

const FLEET: [SimDevice; 5] = [
    SimDevice {
        id: "1988618061618307073",
        eui: "24e124707e040001",
        name: "Freezer A",
        site: Some("Cold store North"),
        base: (-18.5, -17.9),
        silent_after: None,
    },
    SimDevice {
        id: "1988618061618307074",
        eui: "24e124707e040002",
        name: "Freezer B",
        site: Some("Cold store North"),
        base: (-20.0, -19.2),
        silent_after: None,
    },
    SimDevice {
        id: "1988618061618307075",
        eui: "24e124707e040003",
        name: "Walk-in fridge",
        site: Some("Kitchen South"),
        base: (3.8, 4.4),
        silent_after: None,
    },
    SimDevice {
        id: "1988618061618307076",
        eui: "24e124707e040004",
        name: "Blast chiller",
        site: Some("Kitchen South"),
        base: (2.5, 1.0),
        silent_after: Some(40),
    },
    SimDevice {
        id: "1988618061618307077",
        eui: "24e124707e040005",
        name: "New sensor (unplaced)",
        site: None,
        base: (6.0, 7.5),
        silent_after: None,
    },
];

/// Creates the demo users when they do not exist yet.
pub async fn seed(store: &Store) {
    for (email, password, role, sites) in USERS {
        let sites: Vec<String> = sites.iter().map(|s| s.to_string()).collect();
        match accounts::create(store, email, password, role, &sites, "demo").await {
            Ok(_) => tracing::info!(email, password, "demo user created"),
            Err(e) => tracing::debug!(email, error = %e, "demo user not created (exists?)"),
        }
    }
}

/// Posts a reading for every simulated device every `every`, until shutdown.
pub fn spawn_fleet(
    store: Store,
    addr: SocketAddr,
    secret: String,
    every: Duration,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let url = format!("http://{addr}/api/webhooks/milesight");
        let mut tick = tokio::time::interval(every);
        let mut round: u32 = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            for (i, d) in FLEET.iter().enumerate() {
                if d.silent_after.is_some_and(|n| round >= n) {
                    continue;
                }
                let body = reading(d, i, round);
                if let Err(e) = post(&client, &url, &secret, &body).await {
                    tracing::warn!(error = %e, "demo post failed");
                }
                if round == 0 {
                    if let Some(site) = d.site {
                        let _ = store.assign_device_to_site(d.id, site, "demo").await;
                    }
                }
            }
            round = round.wrapping_add(1);
        }
    });
}

fn reading(d: &SimDevice, i: usize, round: u32) -> String {
    let mut rng = rand::thread_rng();
    let t = f64::from(round) / 12.0 + i as f64;
    let mut drift = |base: f64, phase: f64| {
        ((base + (t + phase).sin() * 0.6 + rng.gen_range(-0.15..0.15)) * 10.0).round() / 10.0
    };
    let (t1, t2) = (drift(d.base.0, 0.0), drift(d.base.1, 1.3));
    let mut payload = json!({ "temperature_left": t1, "temperature_right": t2, "battery": 100 - (round / 50) as i64 % 40 });
    // Now and then a door left open: a threshold alarm.
    if rng.gen_ratio(1, 25) {
        payload["temperature_left"] = json!(t1 + 6.0);
        payload["temperature_chn1_alarm"] = json!("threshold_alarm");
    }
    let now = now_ms();
    json!({
        "eventId": format!("demo-{}-{now}-{round}", d.eui),
        "eventCreatedTime": now / 1000,
        "eventVersion": "1.0",
        "eventType": "DEVICE_DATA",
        "data": {
            "deviceProfile": { "deviceId": d.id, "devEUI": d.eui, "name": d.name, "model": "TS302" },
            "type": "PROPERTY", "tslId": "", "ts": now, "payload": payload,
        }
    })
    .to_string()
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    body: &str,
) -> Result<(), reqwest::Error> {
    let ts = (now_ms() / 1000).to_string();
    let nonce = format!("{:032x}", rand::thread_rng().gen::<u128>());
    let sig = signature::sign(secret.as_bytes(), &ts, &nonce);
    client
        .post(url)
        .header("content-type", "application/json")
        .header(signature::SIGNATURE, sig)
        .header(signature::UUID, DEMO_WEBHOOK_UUID)
        .header(signature::TIMESTAMP, ts)
        .header(signature::NONCE, nonce)
        .body(body.to_string())
        .send()
        .await?
        .error_for_status()
        .map(|_| ())
}

/// The fleet posts as its own webhook uuid, with a secret of its own bound to it.
pub const DEMO_WEBHOOK_UUID: &str = "00000000-0000-4000-8000-00000000de70";

/// Adds the demo fleet's secret to the configured ones; returns that secret.
pub fn add_demo_secret(configured: &mut Option<String>) -> String {
    let secret = format!("{:032x}", rand::thread_rng().gen::<u128>());
    let entry = format!("{DEMO_WEBHOOK_UUID}={secret}");
    *configured = Some(match configured.take() {
        Some(existing) if !existing.trim().is_empty() => format!("{existing},{entry}"),
        _ => entry,
    });
    secret
}

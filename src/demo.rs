//! `--demo`: demo users and sites, and a simulated TS302 fleet that posts signed MDP webhooks to
//! this server over HTTP, exactly as the platform would.

use std::net::SocketAddr;
use std::time::Duration;

use rand::Rng;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::domain::{check_rules, now_ms, Role, RuleJson, Scope};
use crate::ingest::signature;
use crate::store::{Store, Work, Writer};
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
    /// The band its rules hold both probes to (°C), with the delay.
    band: (f64, f64, i64),
}

const FLEET: [SimDevice; 5] = [
    SimDevice {
        id: "1988618061618307073",
        eui: "24e124707e040001",
        name: "Freezer A",
        band: (-25.0, -15.0, 60),
        site: Some("Cold store North"),
        base: (-18.5, -17.9),
    },
    SimDevice {
        id: "1988618061618307074",
        eui: "24e124707e040002",
        name: "Freezer B",
        band: (-25.0, -15.0, 60),
        site: Some("Cold store North"),
        base: (-20.0, -19.2),
    },
    SimDevice {
        id: "1988618061618307075",
        eui: "24e124707e040003",
        name: "Walk-in fridge",
        band: (0.0, 5.0, 120),
        site: Some("Kitchen South"),
        base: (3.8, 4.4),
    },
    SimDevice {
        id: "1988618061618307076",
        eui: "24e124707e040004",
        name: "Blast chiller",
        band: (-2.0, 8.0, 0),
        site: Some("Kitchen South"),
        base: (2.5, 1.0),
    },
    SimDevice {
        id: "1988618061618307077",
        eui: "24e124707e040005",
        name: "New sensor (unplaced)",
        band: (0.0, 10.0, 0),
        site: None,
        base: (6.0, 7.5),
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

/// The scripted part of the demo, in rounds of a cycle that repeats (at 5 s a round, a cycle
/// is 20 minutes): Freezer A's door is left open (a threshold excursion past its 1-minute
/// delay), the walk-in fridge reports its own threshold alarm and its release, and the blast
/// chiller goes offline and comes back.
const CYCLE: u32 = 240;
const DOOR_OPEN: std::ops::Range<u32> = 12..36;
const DEVICE_ALARM: u32 = 18;
const DEVICE_RELEASE: u32 = 48;
const OFFLINE: std::ops::Range<u32> = 30..60;

/// Posts a reading for every simulated device every `every`, until shutdown; places the
/// devices and gives each its rules on the first round.
pub fn spawn_fleet(
    store: Store,
    writer: Writer,
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
                let body = if d.name == "Blast chiller" && OFFLINE.contains(&(round % CYCLE)) {
                    if round % CYCLE != OFFLINE.start {
                        continue;
                    }
                    offline(d)
                } else {
                    reading(d, i, round)
                };
                if let Err(e) = post(&client, &url, &secret, &body).await {
                    tracing::warn!(error = %e, "demo post failed");
                }
                if round == 0 {
                    if let Some(site) = d.site {
                        let _ = store.assign_device_to_site(d.id, site, "demo").await;
                    }
                    set_rules(&store, &writer, d).await;
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
    let (mut t1, t2) = (drift(d.base.0, 0.0), drift(d.base.1, 1.3));
    let step = round % CYCLE;
    if d.name == "Freezer A" && DOOR_OPEN.contains(&step) {
        // The door left open: warming about 0.4 °C a round, then closed again.
        let open = f64::from(step.min(DOOR_OPEN.end - 8) - DOOR_OPEN.start);
        t1 = ((t1 + 1.0 + open * 0.4) * 10.0).round() / 10.0;
    }
    let battery = 100 - (round / 50) as i64 % 40;
    let mut payload =
        json!({ "temperature_left": t1, "temperature_right": t2, "battery": battery });
    if d.name == "Walk-in fridge" && (step == DEVICE_ALARM || step == DEVICE_RELEASE) {
        // The TS302's own threshold alarm on probe 1, and later its release (v1 names).
        let cause = if step == DEVICE_ALARM {
            "threshold_alarm"
        } else {
            "threshold_alarm_release"
        };
        payload["temperature_chn1"] = json!(t1);
        payload["temperature_chn1_alarm"] = json!(cause);
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

/// The platform's OFFLINE notice for a device.
fn offline(d: &SimDevice) -> String {
    let now = now_ms();
    json!({
        "eventId": format!("demo-offline-{}-{now}", d.eui),
        "eventCreatedTime": now / 1000,
        "eventVersion": "1.0",
        "eventType": "DEVICE_DATA",
        "data": {
            "deviceProfile": { "deviceId": d.id, "devEUI": d.eui, "name": d.name, "model": "TS302" },
            "type": "OFFLINE", "ts": now,
        }
    })
    .to_string()
}

/// Both probes held to the device's band, unless someone has set rules already.
async fn set_rules(store: &Store, writer: &Writer, d: &SimDevice) {
    let Ok(Some(device)) = store.device(d.id, &Scope::All).await else {
        return;
    };
    if store.rules(device.id).await.is_ok_and(|r| !r.is_empty()) {
        return;
    }
    let (min, max, delay_secs) = d.band;
    let rules: Vec<RuleJson> = [1, 2]
        .into_iter()
        .map(|probe| RuleJson {
            quantity: "temperature".into(),
            probe,
            min: Some(min),
            max: Some(max),
            delay_secs,
        })
        .collect();
    let Ok(rules) = check_rules(&rules) else {
        return;
    };
    let work = Work::SetRules {
        device_id: device.id,
        rules,
        by: "demo".into(),
    };
    if let Err(e) = writer.submit(work).await {
        tracing::warn!(error = %e, "demo rules not set");
    }
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

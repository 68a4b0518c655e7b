//! Management commands that change what the writer guards: `sensorcast rule …`. They run the
//! same writer as the server (rules are audited and judged in its transaction); on PostgreSQL
//! the running instances hear of the events it appends at once, on SQLite at their next read.

use std::sync::Arc;

use anyhow::Context;

use crate::config::{RuleCommand, ServeArgs};
use crate::domain::{check_rules, EventRow, RuleJson, Scope};
use crate::store::{OfflinePolicy, Publisher, Store, Work, Writer};

/// The command line's writer publishes nowhere: it has no streams of its own.
struct NoStreams;

impl Publisher for NoStreams {
    fn publish(&self, _events: Vec<EventRow>) {}
}

pub async fn rules(store: &Store, command: RuleCommand, args: &ServeArgs) -> anyhow::Result<()> {
    let device_id = match &command {
        RuleCommand::Set { device, .. }
        | RuleCommand::List { device }
        | RuleCommand::Clear { device } => device.clone(),
    };
    let device = store
        .device(&device_id, &Scope::All)
        .await?
        .with_context(|| format!("no device {device_id:?}"))?;
    let current: Vec<RuleJson> = store
        .rules(device.id)
        .await?
        .iter()
        .map(RuleJson::from)
        .collect();
    let wanted = match command {
        RuleCommand::List { .. } => {
            if current.is_empty() {
                println!("{} has no rules", device.name);
            }
            for r in &current {
                println!("{}", serde_json::to_string(r)?);
            }
            return Ok(());
        }
        RuleCommand::Clear { .. } => Vec::new(),
        RuleCommand::Set {
            quantity,
            probe,
            min,
            max,
            delay,
            ..
        } => {
            let mut rules: Vec<RuleJson> = current
                .into_iter()
                .filter(|r| !(r.quantity == quantity && r.probe == probe))
                .collect();
            rules.push(RuleJson {
                quantity,
                probe,
                min,
                max,
                delay_secs: delay,
            });
            rules
        }
    };
    let checked =
        check_rules(&wanted).map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.message))?;
    let policy = OfflinePolicy {
        default_interval_s: args.report_interval_secs,
        grace_s: args.offline_grace_secs,
    };
    let writer = Writer::spawn(store, Arc::new(NoStreams), policy);
    let work = Work::SetRules {
        device_id: device.id,
        rules: checked,
        by: "command line".into(),
    };
    writer.submit(work).await.context("storing the rules")?;
    println!("{} now has {} rule(s)", device.name, wanted.len());
    Ok(())
}

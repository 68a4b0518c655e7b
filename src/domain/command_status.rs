//! A command's life after it was asked for: its status, the stored row, its JSON (the API's list
//! and the `command_status` event), and which pieces of a later uplink confirm it.
//!
//! The TS302 answers a configuration downlink in a later uplink: an `FF 8E` frame with the
//! report interval now in force, the power-on frame after a reboot (it rejoins), the stored
//! records a history request asked for, and (v2 firmware, per Milesight's `ts302-v2-decoder.js`
//! `handle_downlink_response`) an echo of other settings as it applied them (`FF 06` threshold,
//! `FF 4A` time sync, `FD 6C` history range). Ingest reads those into [`ReplyPiece`]s; the store
//! matches them here against the device's open commands, in the uplink's transaction.

use serde::Serialize;

use super::event::{envelope, DeviceHead};
use super::{Command, DeviceRow};

pub const COMMAND_STATUS: &str = "command_status";

/// Longest error text kept with a command (the gateway's answer, cut down).
pub const MAX_COMMAND_ERROR: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandStatus {
    /// Stored, not yet accepted by the gateway.
    Pending,
    /// The gateway's network server queued the downlink.
    Sent,
    /// The device's reply matched.
    Confirmed,
    /// The gateway refused the downlink (the reason is kept).
    Failed,
    /// No confirmation within `--command-timeout-mins`.
    Expired,
}

impl CommandStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandStatus::Pending => "pending",
            CommandStatus::Sent => "sent",
            CommandStatus::Confirmed => "confirmed",
            CommandStatus::Failed => "failed",
            CommandStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<CommandStatus> {
        [
            CommandStatus::Pending,
            CommandStatus::Sent,
            CommandStatus::Confirmed,
            CommandStatus::Failed,
            CommandStatus::Expired,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// Still waiting for the gateway or for the device.
    pub fn is_open(self) -> bool {
        matches!(self, CommandStatus::Pending | CommandStatus::Sent)
    }
}

/// `text` cut down to [`MAX_COMMAND_ERROR`] characters.
pub fn bounded_error(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= MAX_COMMAND_ERROR {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(MAX_COMMAND_ERROR - 1).collect();
    cut.push('…');
    cut
}

/// A stored command.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CommandRow {
    pub id: i64,
    pub device_id: i64,
    /// The command's name (`set_report_interval`, …).
    pub command: String,
    /// The command's JSON as requested.
    pub body: String,
    /// The downlink bytes, lower-case hex.
    pub downlink_hex: String,
    pub status: String,
    pub requested_by: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub attempts: i64,
    pub error: Option<String>,
}

impl CommandRow {
    /// The command as requested (stored after validation, so it parses).
    pub fn request(&self) -> Option<Command> {
        serde_json::from_str(&self.body).ok()
    }

    /// The bytes that were (or will be) sent.
    pub fn downlink(&self) -> Vec<u8> {
        hex::decode(&self.downlink_hex).unwrap_or_default()
    }

    pub fn status(&self) -> Option<CommandStatus> {
        CommandStatus::parse(&self.status)
    }
}

/// `data` of a `command_status` event.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusData<'a> {
    command_id: i64,
    #[serde(flatten)]
    head: DeviceHead<'a>,
    command: &'a str,
    status: &'a str,
    at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// The `command_status` event of this command as it is now (`at` is when it changed).
pub fn command_status_json(c: &CommandRow, d: &DeviceRow, now_ms: i64) -> String {
    envelope(
        COMMAND_STATUS,
        now_ms,
        StatusData {
            command_id: c.id,
            head: DeviceHead::of(d),
            command: &c.command,
            status: &c.status,
            at: c.updated_ms,
            error: c.error.as_deref(),
        },
    )
}

/// One command in `GET /api/devices/{deviceId}/commands`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommandJson<'a> {
    pub command_id: i64,
    #[serde(flatten)]
    head: DeviceHead<'a>,
    pub command: &'a str,
    /// The whole command as requested (`{"command":"set_report_interval","minutes":10}`).
    pub request: serde_json::Value,
    pub status: &'a str,
    /// When the status last changed.
    pub at: i64,
    pub created_at: i64,
    pub requested_by: &'a str,
    /// The fPort-85 bytes, hex.
    pub downlink: &'a str,
    /// How many times it was offered to the gateway.
    pub attempts: i64,
    pub error: Option<&'a str>,
}

impl<'a> CommandJson<'a> {
    pub fn of(c: &'a CommandRow, d: &'a DeviceRow) -> Self {
        CommandJson {
            command_id: c.id,
            head: DeviceHead::of(d),
            command: &c.command,
            request: serde_json::from_str(&c.body).unwrap_or_default(),
            status: &c.status,
            at: c.updated_ms,
            created_at: c.created_ms,
            requested_by: &c.requested_by,
            downlink: &c.downlink_hex,
            attempts: c.attempts,
            error: c.error.as_deref(),
        }
    }
}

/// What in one uplink can answer a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyPiece {
    /// `FF 8E`: the report interval now in force, minutes.
    ReportInterval(u16),
    /// `FF 0B`: the device powered on (after a reboot it rejoins and says so). It says that
    /// the device restarted, not why.
    PowerOn,
    /// A stored record (`20 CE` / `21 CE`) measured at this epoch second. Records the device
    /// resends on its own (retransmission) look the same.
    HistoryRecord(i64),
    /// A configuration frame the device echoed as it applied it: channel (`FE` written as
    /// `FF`; `FD` for history requests), type, data.
    Echo(Vec<u8>),
}

impl ReplyPiece {
    /// Whether this piece answers `cmd`, which was sent as `downlink`.
    pub fn answers(&self, cmd: &Command, downlink: &[u8]) -> bool {
        match (self, cmd) {
            (ReplyPiece::ReportInterval(m), Command::SetReportInterval { minutes }) => {
                i64::from(*m) == *minutes
            }
            (ReplyPiece::PowerOn, Command::Reboot {}) => true,
            (ReplyPiece::HistoryRecord(s), Command::FetchHistory { from, to }) => {
                (from.div_euclid(1000)..=to.div_euclid(1000)).contains(s)
            }
            // The official v2 decoder reads only the type of this echo, not its data byte.
            (ReplyPiece::Echo(frame), Command::SyncTime {}) => frame.starts_with(&[0xff, 0x4a]),
            (
                ReplyPiece::Echo(frame),
                Command::SetThreshold { .. } | Command::FetchHistory { .. },
            ) => !downlink.is_empty() && frame.as_slice() == downlink,
            _ => false,
        }
    }
}

/// Which of a device's open commands (oldest first, each with the bytes it was sent as) the
/// pieces of one uplink confirm, as indices into `open`. Each piece confirms at most one
/// command, the oldest it answers; each command is confirmed once.
pub fn confirmed_by(pieces: &[ReplyPiece], open: &[(Command, Vec<u8>)]) -> Vec<usize> {
    let mut done = vec![false; open.len()];
    for piece in pieces {
        if let Some(i) = open
            .iter()
            .enumerate()
            .position(|(i, (cmd, bytes))| !done[i] && piece.answers(cmd, bytes))
        {
            done[i] = true;
        }
    }
    done.iter()
        .enumerate()
        .filter_map(|(i, d)| d.then_some(i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(minutes: i64) -> (Command, Vec<u8>) {
        let mut bytes = vec![0xff, 0x8e, 0x00];
        bytes.extend((minutes as u16).to_le_bytes());
        (Command::SetReportInterval { minutes }, bytes)
    }

    #[test]
    fn report_interval_reply_confirms_the_oldest_matching_command() {
        let open = [interval(20), interval(10), interval(10)];
        assert_eq!(confirmed_by(&[ReplyPiece::ReportInterval(10)], &open), [1]);
        assert_eq!(
            confirmed_by(&[ReplyPiece::ReportInterval(5)], &open),
            [0; 0]
        );
        // Two replies in one uplink confirm two commands, oldest first.
        let two = [
            ReplyPiece::ReportInterval(10),
            ReplyPiece::ReportInterval(10),
        ];
        assert_eq!(confirmed_by(&two, &open), [1, 2]);
        assert_eq!(confirmed_by(&[], &open), [0; 0]);
    }

    #[test]
    fn each_command_has_its_own_reply() {
        let history = Command::FetchHistory {
            from: 1_694_145_000_000,
            to: 1_694_146_000_999,
        };
        let threshold = Command::SetThreshold {
            probe: 1,
            min: Some(-25.0),
            max: Some(-15.0),
        };
        let threshold_bytes = hex::decode("ff064406ff6aff00000000").unwrap();
        let open = vec![
            (Command::Reboot {}, vec![0xff, 0x10, 0xff]),
            (
                history.clone(),
                hex::decode("fd6c08996464f09c9a64").unwrap(),
            ),
            (threshold.clone(), threshold_bytes.clone()),
            (Command::SyncTime {}, vec![0xff, 0x4a, 0x00]),
        ];
        assert_eq!(confirmed_by(&[ReplyPiece::PowerOn], &open), [0]);
        // A record inside the range (bounds in whole seconds, inclusive).
        assert_eq!(
            confirmed_by(&[ReplyPiece::HistoryRecord(1_694_145_223)], &open),
            [1]
        );
        assert_eq!(
            confirmed_by(&[ReplyPiece::HistoryRecord(1_694_146_000)], &open),
            [1]
        );
        assert_eq!(
            confirmed_by(&[ReplyPiece::HistoryRecord(1_694_146_001)], &open),
            [0; 0]
        );
        // Many records of one back-fill confirm one request.
        let records: Vec<_> = (0..5)
            .map(|i| ReplyPiece::HistoryRecord(1_694_145_100 + i))
            .collect();
        assert_eq!(confirmed_by(&records, &open), [1]);
        // Echoes: the threshold frame exactly, the time sync by its type.
        assert_eq!(
            confirmed_by(&[ReplyPiece::Echo(threshold_bytes.clone())], &open),
            [2]
        );
        let other_threshold = hex::decode("ff064c06ff6aff00000000").unwrap();
        assert_eq!(
            confirmed_by(&[ReplyPiece::Echo(other_threshold)], &open),
            [0; 0]
        );
        assert_eq!(
            confirmed_by(&[ReplyPiece::Echo(vec![0xff, 0x4a, 0x01])], &open),
            [3]
        );
        // A reply of one kind never confirms another command.
        assert!(!ReplyPiece::PowerOn.answers(&threshold, &threshold_bytes));
        assert!(!ReplyPiece::ReportInterval(10).answers(&Command::Reboot {}, &[]));
        assert!(!ReplyPiece::Echo(vec![0xff, 0x10, 0xff]).answers(&Command::Reboot {}, &[]));
    }

    #[test]
    fn status_names_and_errors() {
        for s in ["pending", "sent", "confirmed", "failed", "expired"] {
            assert_eq!(CommandStatus::parse(s).map(|c| c.as_str()), Some(s));
        }
        assert_eq!(CommandStatus::parse("queued"), None);
        assert!(CommandStatus::Sent.is_open() && !CommandStatus::Expired.is_open());
        let long = "é".repeat(2000);
        assert_eq!(bounded_error(&long).chars().count(), MAX_COMMAND_ERROR);
        assert_eq!(bounded_error("  bad request \n"), "bad request");
    }

    #[test]
    fn status_event_has_the_contract_fields() {
        let c = CommandRow {
            id: 7,
            device_id: 1,
            command: "set_report_interval".into(),
            body: r#"{"command":"set_report_interval","minutes":10}"#.into(),
            downlink_hex: "ff8e000a00".into(),
            status: "sent".into(),
            requested_by: "m@north.test".into(),
            created_ms: 1,
            updated_ms: 2,
            attempts: 1,
            error: None,
        };
        let d = DeviceRow {
            id: 1,
            dev_eui: Some("24e124707e040001".into()),
            milesight_id: None,
            name: "Freezer".into(),
            model: "TS302".into(),
            site_id: None,
            site_name: None,
            status: "ONLINE".into(),
            last_seen_ms: None,
            report_interval_s: None,
            ts302_variant: None,
            created_ms: 0,
        };
        let v: serde_json::Value = serde_json::from_str(&command_status_json(&c, &d, 3)).unwrap();
        assert_eq!(v["type"], "command_status");
        assert_eq!(v["timestamp"], 3);
        assert_eq!(
            v["data"],
            serde_json::json!({"commandId": 7, "deviceId": "24e124707e040001",
                "devEUI": "24e124707e040001", "deviceName": "Freezer",
                "command": "set_report_interval", "status": "sent", "at": 2})
        );
        let list = serde_json::to_value(CommandJson::of(&c, &d)).unwrap();
        assert_eq!(list["request"]["minutes"], 10);
        assert_eq!(list["downlink"], "ff8e000a00");
        assert_eq!(list["error"], serde_json::Value::Null);
    }
}

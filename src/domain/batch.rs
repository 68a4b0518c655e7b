//! What a webhook means, independent of which path it came through: the writer stores this.

use super::{DeviceIdentity, DeviceStatus, NewReading, ReplyPiece};

#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // nearly every change is a reading; boxing would buy nothing
pub enum Change {
    Reading(NewReading),
    /// The platform or gateway reported a status.
    Status(DeviceStatus),
    /// The device's reporting interval became known (seconds).
    ReportInterval(i64),
    /// What in the uplink can answer a command sent to the device (its configuration replies,
    /// a power-on, stored records): matched to the device's open commands.
    DeviceReply(Vec<ReplyPiece>),
}

/// One delivered event (one element of an MDP array, or one gateway post).
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Idempotency key: MDP `eventId`, or devEUI + frame counter for a gateway uplink.
    pub key: Option<String>,
    pub source: &'static str,
    pub event_type: String,
    /// Short note for the admin's webhook health view.
    pub detail: Option<String>,
    pub device: Option<DeviceIdentity>,
    pub changes: Vec<Change>,
}

/// Everything one HTTP request carries: stored in one transaction before it is answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// The signed request's (fingerprint of the secret that signed it, nonce): accepted once.
    pub nonce: Option<(String, String)>,
    pub deliveries: Vec<Delivery>,
}

/// What storing a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    pub accepted: usize,
    pub duplicates: usize,
    /// The id of the row a job created (a command).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<i64>,
}

//! Decoder for Milesight TS302 uplink payloads (LoRaWAN fPort 85).
//!
//! A payload is a run of frames `[channel id][channel type][data]`, little-endian.
//! Two firmware generations exist and are not wire-compatible (the 83/84 alarm
//! byte and the `20 CE` history layout differ), so the caller says which one a
//! device speaks. Layouts follow Milesight's official decoders in
//! `Milesight-IoT/SensorDecoders` (`ts-series/ts302` = v1, `ts-series/ts302-v2` = v2).
//!
//! Unlike the official decoders, every frame's length is known before its data is
//! read: a cut or unknown frame is an error naming the frame's offset, never garbage.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

pub mod downlink;

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

/// Firmware generation of a TS302. Nothing in the bytes says which one sent them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    V1,
    V2,
}

impl Variant {
    pub fn as_str(&self) -> &'static str {
        match self {
            Variant::V1 => "v1",
            Variant::V2 => "v2",
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error from parsing a [`Variant`] name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseVariantError(pub String);

impl fmt::Display for ParseVariantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown TS302 variant {:?} (expected v1 or v2)", self.0)
    }
}

impl std::error::Error for ParseVariantError {}

impl FromStr for Variant {
    type Err = ParseVariantError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("v1") {
            Ok(Variant::V1)
        } else if s.eq_ignore_ascii_case("v2") {
            Ok(Variant::V2)
        } else {
            Err(ParseVariantError(s.to_owned()))
        }
    }
}

/// Everything one payload said. Index 0 of the two-element arrays is channel 1.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Decoded {
    /// Battery level, %.
    pub battery: Option<u8>,
    /// Temperature, °C.
    pub temperature: [Option<f64>; 2],
    /// Relative humidity, %RH (v2 only).
    pub humidity: [Option<f64>; 2],
    /// Magnet contact probe.
    pub magnet: [Option<Magnet>; 2],
    /// Threshold and mutation alarms, in frame order.
    pub alarms: Vec<Alarm>,
    /// Probe faults reported by v2 (`B3`/`B4` frames).
    pub sensor_status: Vec<SensorStatus>,
    /// Stored records (`20 CE` / `21 CE`); their timestamps are in the past.
    pub history: Vec<HistoryRecord>,
    /// Report interval in minutes, from an `FF 8E` reply.
    pub report_interval_min: Option<u16>,
    pub device_info: DeviceInfo,
    /// Configuration frames the device echoed as it applied them, whole (channel, type,
    /// data; an `FE` channel written `FF`): the `FF`/`FE` replies other than the report
    /// interval, and v2's `FD` history-request echoes. They confirm commands
    /// (`domain::ReplyPiece::Echo`).
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "hex_frames")]
    pub echoes: Vec<Vec<u8>>,
    /// Frames only v2 firmware sends were seen (9A humidity, 93/94 67 mutation,
    /// B3/B4 status, 21 CE history); they are decoded whatever the variant.
    pub v2_only: bool,
}

/// Frames as lower-case hex in the stored raw JSON (`["ff4a00"]`), as Milesight shows them.
fn hex_frames<S: serde::Serializer>(frames: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(frames.iter().map(hex::encode))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Magnet {
    Closed,
    Open,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantity {
    Temperature,
    Humidity,
}

impl Quantity {
    pub fn as_str(&self) -> &'static str {
        match self {
            Quantity::Temperature => "temperature",
            Quantity::Humidity => "humidity",
        }
    }
}

/// Alarm types; serialized with the official decoders' strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    // v1
    ThresholdAlarm,
    ThresholdAlarmRelease,
    // v1 and v2
    MutationAlarm,
    // v2
    AboveThresholdAlarm,
    AboveThresholdAlarmRelease,
    BelowThresholdAlarm,
    BelowThresholdAlarmRelease,
    BetweenThresholdAlarm,
    BetweenThresholdAlarmRelease,
    OutsideThresholdAlarm,
    OutsideThresholdAlarmRelease,
    /// A code neither decoder knows; kept so the alarm is not lost.
    Unknown,
}

impl AlarmKind {
    /// v1 alarm byte (83/84 67, 93/94 D7).
    pub fn from_v1(code: u8) -> Self {
        match code {
            0 => AlarmKind::ThresholdAlarmRelease,
            1 => AlarmKind::ThresholdAlarm,
            2 => AlarmKind::MutationAlarm,
            _ => AlarmKind::Unknown,
        }
    }

    /// v2 alarm byte (83/84 67|9A).
    pub fn from_v2(code: u8) -> Self {
        match code {
            0 => AlarmKind::AboveThresholdAlarm,
            1 => AlarmKind::AboveThresholdAlarmRelease,
            2 => AlarmKind::BelowThresholdAlarm,
            3 => AlarmKind::BelowThresholdAlarmRelease,
            4 => AlarmKind::BetweenThresholdAlarm,
            5 => AlarmKind::BetweenThresholdAlarmRelease,
            6 => AlarmKind::OutsideThresholdAlarm,
            7 => AlarmKind::OutsideThresholdAlarmRelease,
            8 => AlarmKind::MutationAlarm,
            _ => AlarmKind::Unknown,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            AlarmKind::ThresholdAlarm => "threshold_alarm",
            AlarmKind::ThresholdAlarmRelease => "threshold_alarm_release",
            AlarmKind::MutationAlarm => "mutation_alarm",
            AlarmKind::AboveThresholdAlarm => "above_threshold_alarm",
            AlarmKind::AboveThresholdAlarmRelease => "above_threshold_alarm_release",
            AlarmKind::BelowThresholdAlarm => "below_threshold_alarm",
            AlarmKind::BelowThresholdAlarmRelease => "below_threshold_alarm_release",
            AlarmKind::BetweenThresholdAlarm => "between_threshold_alarm",
            AlarmKind::BetweenThresholdAlarmRelease => "between_threshold_alarm_release",
            AlarmKind::OutsideThresholdAlarm => "outside_threshold_alarm",
            AlarmKind::OutsideThresholdAlarmRelease => "outside_threshold_alarm_release",
            AlarmKind::Unknown => "unknown",
        }
    }

    pub fn is_release(&self) -> bool {
        matches!(
            self,
            AlarmKind::ThresholdAlarmRelease
                | AlarmKind::AboveThresholdAlarmRelease
                | AlarmKind::BelowThresholdAlarmRelease
                | AlarmKind::BetweenThresholdAlarmRelease
                | AlarmKind::OutsideThresholdAlarmRelease
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alarm {
    /// 1 or 2.
    pub channel: u8,
    pub quantity: Quantity,
    pub kind: AlarmKind,
    /// The reading that raised the alarm.
    pub value: Option<f64>,
    /// Change that raised a mutation alarm.
    pub change: Option<f64>,
}

impl Alarm {
    pub fn is_release(&self) -> bool {
        self.kind.is_release()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SensorStatus {
    /// 1 or 2.
    pub channel: u8,
    pub quantity: Quantity,
    /// `collection_failed`, `over_range`, `under_range` or `unknown`.
    pub status: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HistoryRecord {
    /// Epoch seconds.
    pub timestamp: i64,
    pub temperature: [Option<f64>; 2],
    pub humidity: [Option<f64>; 2],
    pub magnet: [Option<Magnet>; 2],
}

/// Device-information frames (`FF xx`). Strings are formatted like the official decoders'.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeviceInfo {
    pub ipso_version: Option<String>,
    pub hardware_version: Option<String>,
    pub firmware_version: Option<String>,
    pub tsl_version: Option<String>,
    /// Serial number, 16 lowercase hex digits.
    pub sn: Option<String>,
    /// `Class A`, `Class B`, `Class C`, `Class CtoB` or `unknown`.
    pub lorawan_class: Option<String>,
    /// `on` when the device reported power-on (`FF 0B`).
    pub device_status: Option<String>,
    /// `reset` when the device reported a reset (`FF FE`).
    pub reset_event: Option<String>,
    /// Probe type per channel (v2 `FF A0`): `PT100`, `SHT4X`, `DS18B20`, `MAGNET`, `unknown`.
    pub sensor_type: [Option<String>; 2],
    /// Probe serial number per channel (v2 `FF A0`).
    pub sensor_sn: [Option<String>; 2],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Offset of the first byte of the offending frame.
    pub offset: usize,
    pub kind: DecodeErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// The frame needs `needed` data bytes after its two header bytes; `available` are left.
    /// A frame cut inside its header (a lone channel id) is reported as
    /// `channel_type: 0, needed: 2, available: 1`, counting header bytes.
    Truncated {
        channel: u8,
        channel_type: u8,
        needed: usize,
        available: usize,
    },
    Unknown {
        channel: u8,
        channel_type: u8,
    },
    Empty,
}

impl DecodeErrorKind {
    fn header_cut(channel: u8) -> Self {
        DecodeErrorKind::Truncated {
            channel,
            channel_type: 0,
            needed: 2,
            available: 1,
        }
    }

    /// True for a frame cut inside its header; no real frame of type 0 needs 2 bytes.
    fn is_header_cut(&self) -> bool {
        matches!(
            self,
            DecodeErrorKind::Truncated {
                channel_type: 0,
                needed: 2,
                available: 1,
                ..
            }
        )
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let offset = self.offset;
        match &self.kind {
            DecodeErrorKind::Empty => f.write_str("empty payload"),
            DecodeErrorKind::Unknown {
                channel,
                channel_type,
            } => write!(
                f,
                "unknown channel 0x{channel:02x} type 0x{channel_type:02x} at offset {offset}"
            ),
            kind @ DecodeErrorKind::Truncated { channel, .. } if kind.is_header_cut() => {
                write!(
                    f,
                    "truncated frame at offset {offset}: channel 0x{channel:02x} has no type byte"
                )
            }
            DecodeErrorKind::Truncated {
                channel,
                channel_type,
                needed,
                available,
            } => write!(
                f,
                "truncated frame at offset {offset}: channel 0x{channel:02x} type \
                 0x{channel_type:02x} needs {needed} bytes, {available} left"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

// ---------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------

/// Decodes one uplink. Any truncated or unknown frame fails the whole payload, so
/// a misread never reaches storage half-applied.
pub fn decode(bytes: &[u8], variant: Variant) -> Result<Decoded, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError {
            offset: 0,
            kind: DecodeErrorKind::Empty,
        });
    }
    let mut out = Decoded::default();
    walk(bytes, variant, &mut out)?;
    Ok(out)
}

/// Guess: `Some(V2)` if the bytes contain v2-only frames, else `None` (the caller
/// falls back to the configured default). Frames before a bad one still count.
pub fn detect_variant(bytes: &[u8]) -> Option<Variant> {
    let mut seen = Decoded::default();
    // v1 decoding accepts every frame v2 defines, so it sees the most frames.
    let _ = walk(bytes, Variant::V1, &mut seen);
    seen.v2_only.then_some(Variant::V2)
}

fn walk(bytes: &[u8], variant: Variant, out: &mut Decoded) -> Result<(), DecodeError> {
    let mut offset = 0;
    let mut rest = bytes;
    while let Some((&channel, tail)) = rest.split_first() {
        let err = |kind| DecodeError { offset, kind };
        let (&channel_type, tail) = tail
            .split_first()
            .ok_or_else(|| err(DecodeErrorKind::header_cut(channel)))?;
        let frame = classify(channel, channel_type, variant).ok_or_else(|| {
            err(DecodeErrorKind::Unknown {
                channel,
                channel_type,
            })
        })?;
        let needed = frame.len();
        let (data, next) = tail.split_at_checked(needed).ok_or_else(|| {
            err(DecodeErrorKind::Truncated {
                channel,
                channel_type,
                needed,
                available: tail.len(),
            })
        })?;
        if matches!(frame, Frame::Skip(_)) && matches!(channel, 0xfd..=0xff) {
            let written = if channel == 0xfe { 0xff } else { channel };
            let mut echo = vec![written, channel_type];
            echo.extend_from_slice(data);
            out.echoes.push(echo);
        }
        apply(frame, Reader(data), variant, out);
        offset += 2 + needed;
        rest = next;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Frame table
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ch {
    One,
    Two,
}

impl Ch {
    fn number(self) -> u8 {
        match self {
            Ch::One => 1,
            Ch::Two => 2,
        }
    }
}

/// The element of a per-channel pair, without indexing.
fn slot<T>(pair: &mut [T; 2], ch: Ch) -> &mut T {
    let [first, second] = pair;
    match ch {
        Ch::One => first,
        Ch::Two => second,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Info {
    Ipso,
    Hardware,
    Firmware,
    Tsl,
    Serial,
    Class,
    Reset,
    Status,
}

/// What a frame carries; each kind has one fixed data length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    Battery,
    Reading(Ch, Quantity),
    Magnet(Ch),
    Threshold(Ch, Quantity),
    MutationV1(Ch),
    MutationV2(Ch, Quantity),
    Status(Ch, Quantity),
    HistoryV1,
    HistoryV2(Ch),
    Info(Info),
    SensorId,
    ReportInterval,
    /// A configuration reply we only step over.
    Skip(usize),
}

impl Frame {
    fn len(self) -> usize {
        match self {
            Frame::Battery | Frame::Magnet(_) | Frame::Status(..) => 1,
            Frame::Reading(..) => 2,
            Frame::Threshold(..) | Frame::ReportInterval => 3,
            Frame::MutationV1(_) | Frame::MutationV2(..) => 5,
            Frame::HistoryV1 | Frame::HistoryV2(_) | Frame::SensorId => 9,
            Frame::Info(Info::Serial) => 8,
            Frame::Info(Info::Hardware | Info::Firmware | Info::Tsl) => 2,
            Frame::Info(Info::Ipso | Info::Class | Info::Reset | Info::Status) => 1,
            Frame::Skip(n) => n,
        }
    }

    fn v2_only(self) -> bool {
        matches!(
            self,
            Frame::Reading(_, Quantity::Humidity)
                | Frame::Threshold(_, Quantity::Humidity)
                | Frame::MutationV2(..)
                | Frame::Status(..)
                | Frame::HistoryV2(Ch::Two)
        )
    }
}

fn classify(channel: u8, channel_type: u8, variant: Variant) -> Option<Frame> {
    use Quantity::{Humidity, Temperature};
    // Only meaningful for the x3/x4 sensor channels matched below.
    let ch = if channel & 0x0f == 0x04 {
        Ch::Two
    } else {
        Ch::One
    };
    let frame = match (channel, channel_type) {
        (0x01, 0x75) => Frame::Battery,
        (0x03 | 0x04, 0x67) => Frame::Reading(ch, Temperature),
        (0x03 | 0x04, 0x9a) => Frame::Reading(ch, Humidity),
        (0x03 | 0x04, 0x00) => Frame::Magnet(ch),
        (0x83 | 0x84, 0x67) => Frame::Threshold(ch, Temperature),
        (0x83 | 0x84, 0x9a) => Frame::Threshold(ch, Humidity),
        // v2 has no D7 frame: a v2 device sending one is misconfigured, so refuse it.
        (0x93 | 0x94, 0xd7) if variant == Variant::V1 => Frame::MutationV1(ch),
        (0x93 | 0x94, 0x67) => Frame::MutationV2(ch, Temperature),
        (0x93 | 0x94, 0x9a) => Frame::MutationV2(ch, Humidity),
        (0xb3 | 0xb4, 0x67) => Frame::Status(ch, Temperature),
        (0xb3 | 0xb4, 0x9a) => Frame::Status(ch, Humidity),
        (0x20, 0xce) if variant == Variant::V1 => Frame::HistoryV1,
        (0x20, 0xce) => Frame::HistoryV2(Ch::One),
        (0x21, 0xce) => Frame::HistoryV2(Ch::Two),
        (0xff, _) => return device_info(channel_type).or_else(|| reply(channel_type)),
        (0xfe, _) => return reply(channel_type),
        (0xf8 | 0xf9, _) => return ext_reply(channel, channel_type),
        (0xfd, _) => return history_request(channel_type),
        _ => return None,
    };
    Some(frame)
}

fn device_info(channel_type: u8) -> Option<Frame> {
    let info = match channel_type {
        0x01 => Info::Ipso,
        0x09 => Info::Hardware,
        0x0a => Info::Firmware,
        0x0b => Info::Status,
        0x0f => Info::Class,
        0x16 => Info::Serial,
        0xfe => Info::Reset,
        0xff => Info::Tsl,
        0xa0 => return Some(Frame::SensorId),
        _ => return None,
    };
    Some(Frame::Info(info))
}

/// Replies to configuration commands on FE/FF: the union of both decoders' tables
/// (no type has different lengths in v1 and v2).
fn reply(channel_type: u8) -> Option<Frame> {
    let len = match channel_type {
        0x8e => return Some(Frame::ReportInterval),
        0x10 | 0x25 | 0x27 | 0x28 | 0x2d | 0x4a | 0x68 | 0x69 | 0x6d | 0xe9 | 0xeb | 0xf5 => 1,
        0x02 | 0x17 | 0xbd => 2,
        0x6a | 0xea => 3,
        0x7e | 0x91 => 5,
        0x35 | 0x96 => 8,
        0x06 => 9,
        _ => return None,
    };
    Some(Frame::Skip(len))
}

/// v2 extended replies; F8 ones end with a result byte.
fn ext_reply(channel: u8, channel_type: u8) -> Option<Frame> {
    let len: usize = match channel_type {
        0x31 | 0x66 | 0x69 | 0x6f => 1,
        0x9a => 2,
        0x32 => 3,
        0x63 => 4,
        0x72 => 9,
        _ => return None,
    };
    Some(Frame::Skip(len + usize::from(channel == 0xf8)))
}

/// v2 history retrieval echoes (FD 6B/6C/6D).
fn history_request(channel_type: u8) -> Option<Frame> {
    let len = match channel_type {
        0x6b => 4,
        0x6c => 8,
        0x6d => 1,
        _ => return None,
    };
    Some(Frame::Skip(len))
}

// ---------------------------------------------------------------------------
// Frame contents
// ---------------------------------------------------------------------------

/// Sequential little-endian reads over one frame's data. `walk` hands over exactly
/// `Frame::len` bytes, so the zero defaults never fire; they only rule out panics.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.0.split_at_checked(n).unwrap_or((self.0, &[]));
        self.0 = tail;
        head
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        self.take(N).try_into().unwrap_or([0; N])
    }

    fn u8(&mut self) -> u8 {
        u8::from_le_bytes(self.array())
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    fn i16(&mut self) -> i16 {
        i16::from_le_bytes(self.array())
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    fn hex(&mut self, n: usize) -> String {
        self.take(n).iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn scaled(raw: i16, divisor: f64) -> f64 {
    f64::from(raw) / divisor
}

fn magnet(raw: u16) -> Option<Magnet> {
    match raw {
        0 => Some(Magnet::Closed),
        1 => Some(Magnet::Open),
        _ => None,
    }
}

fn reading_mut<'a>(
    temperature: &'a mut [Option<f64>; 2],
    humidity: &'a mut [Option<f64>; 2],
    ch: Ch,
    quantity: Quantity,
) -> &'a mut Option<f64> {
    match quantity {
        Quantity::Temperature => slot(temperature, ch),
        Quantity::Humidity => slot(humidity, ch),
    }
}

impl Decoded {
    fn reading_mut(&mut self, ch: Ch, quantity: Quantity) -> &mut Option<f64> {
        reading_mut(&mut self.temperature, &mut self.humidity, ch, quantity)
    }

    /// Alarm frames also carry the current reading, as the official decoders report it.
    fn push_alarm(
        &mut self,
        ch: Ch,
        quantity: Quantity,
        kind: AlarmKind,
        value: f64,
        change: Option<f64>,
    ) {
        *self.reading_mut(ch, quantity) = Some(value);
        self.alarms.push(Alarm {
            channel: ch.number(),
            quantity,
            kind,
            value: Some(value),
            change,
        });
    }
}

fn apply(frame: Frame, mut r: Reader<'_>, variant: Variant, out: &mut Decoded) {
    out.v2_only |= frame.v2_only();
    match frame {
        Frame::Battery => out.battery = Some(r.u8()),
        Frame::Reading(ch, q) => *out.reading_mut(ch, q) = Some(scaled(r.i16(), 10.0)),
        Frame::Magnet(ch) => *slot(&mut out.magnet, ch) = magnet(r.u8().into()),
        Frame::Threshold(ch, q) => {
            let value = scaled(r.i16(), 10.0);
            let code = r.u8();
            // Humidity alarms exist only in v2, so their byte always has v2 meaning.
            let kind = if variant == Variant::V1 && q == Quantity::Temperature {
                AlarmKind::from_v1(code)
            } else {
                AlarmKind::from_v2(code)
            };
            out.push_alarm(ch, q, kind, value, None);
        }
        Frame::MutationV1(ch) => {
            let value = scaled(r.i16(), 10.0);
            let change = scaled(r.i16(), 100.0);
            let kind = AlarmKind::from_v1(r.u8());
            out.push_alarm(ch, Quantity::Temperature, kind, value, Some(change));
        }
        Frame::MutationV2(ch, q) => {
            // The fifth byte is unused by the official decoder.
            let value = scaled(r.i16(), 10.0);
            let change = scaled(r.i16(), 10.0);
            out.push_alarm(ch, q, AlarmKind::MutationAlarm, value, Some(change));
        }
        Frame::Status(ch, quantity) => out.sensor_status.push(SensorStatus {
            channel: ch.number(),
            quantity,
            status: sensor_status(r.u8()).to_owned(),
        }),
        Frame::HistoryV1 => out.history.push(history_v1(&mut r)),
        Frame::HistoryV2(ch) => out.history.push(history_v2(&mut r, ch)),
        Frame::Info(info) => apply_info(info, &mut r, &mut out.device_info),
        Frame::SensorId => apply_sensor_id(&mut r, &mut out.device_info),
        Frame::ReportInterval => {
            r.take(1); // reserved byte
            out.report_interval_min = Some(r.u16());
        }
        Frame::Skip(_) => {}
    }
}

fn sensor_status(code: u8) -> &'static str {
    match code {
        0 => "collection_failed",
        1 => "over_range",
        2 => "under_range",
        _ => "unknown",
    }
}

/// v1 `20 CE`: time, mask (high nibble ch1, low nibble ch2), ch1 value, ch2 value.
/// Mask 1–4 mean a temperature, 5–6 a magnet state (0 close, 1 open), else nothing.
fn history_v1(r: &mut Reader<'_>) -> HistoryRecord {
    let mut rec = HistoryRecord {
        timestamp: i64::from(r.u32()),
        ..HistoryRecord::default()
    };
    let mask = r.u8();
    for (ch, nibble) in [(Ch::One, mask >> 4), (Ch::Two, mask & 0x0f)] {
        let raw = r.i16();
        match nibble {
            1..=4 => store_history_value(&mut rec, ch, Quantity::Temperature, raw),
            // The magnet state is the same two bytes read unsigned.
            5 | 6 => *slot(&mut rec.magnet, ch) = magnet(u16::from_le_bytes(raw.to_le_bytes())),
            _ => {}
        }
    }
    rec
}

/// v2 `20 CE` / `21 CE`: time, event mask (not modelled), humidity, temperature,
/// for one channel.
fn history_v2(r: &mut Reader<'_>, ch: Ch) -> HistoryRecord {
    let mut rec = HistoryRecord {
        timestamp: i64::from(r.u32()),
        ..HistoryRecord::default()
    };
    r.take(1); // event mask
    let humidity = r.i16();
    let temperature = r.i16();
    store_history_value(&mut rec, ch, Quantity::Temperature, temperature);
    store_history_value(&mut rec, ch, Quantity::Humidity, humidity);
    rec
}

/// History slots hold tenths or a sentinel; sentinels never become readings.
fn store_history_value(rec: &mut HistoryRecord, ch: Ch, quantity: Quantity, raw: i16) {
    match raw {
        -999 | -1002 => {} // invalid / over range
        -1000 => *slot(&mut rec.magnet, ch) = Some(Magnet::Closed),
        -1001 => *slot(&mut rec.magnet, ch) = Some(Magnet::Open),
        _ => {
            *reading_mut(&mut rec.temperature, &mut rec.humidity, ch, quantity) =
                Some(scaled(raw, 10.0))
        }
    }
}

fn apply_info(info: Info, r: &mut Reader<'_>, out: &mut DeviceInfo) {
    match info {
        Info::Ipso => {
            let b = r.u8();
            out.ipso_version = Some(format!("v{}.{}", b >> 4, b & 0x0f));
        }
        Info::Hardware => {
            let [major, minor] = r.array();
            out.hardware_version = Some(format!("v{major:x}.{}", minor >> 4));
        }
        Info::Firmware => {
            let [major, minor] = r.array();
            out.firmware_version = Some(format!("v{major:x}.{minor:x}"));
        }
        Info::Tsl => {
            let [major, minor] = r.array();
            out.tsl_version = Some(format!("v{major}.{minor}"));
        }
        Info::Serial => out.sn = Some(r.hex(8)),
        Info::Class => out.lorawan_class = Some(lorawan_class(r.u8()).to_owned()),
        // The official decoders ignore the data byte of these two events.
        Info::Reset => out.reset_event = Some("reset".to_owned()),
        Info::Status => out.device_status = Some("on".to_owned()),
    }
}

fn lorawan_class(code: u8) -> &'static str {
    match code {
        0 => "Class A",
        1 => "Class B",
        2 => "Class C",
        3 => "Class CtoB",
        _ => "unknown",
    }
}

/// v2 `FF A0`: high nibble channel (0/1), low nibble probe type, 8-byte probe serial.
fn apply_sensor_id(r: &mut Reader<'_>, out: &mut DeviceInfo) {
    let b = r.u8();
    let kind = match b & 0x0f {
        1 => "PT100",
        2 => "SHT4X",
        3 => "DS18B20",
        4 => "MAGNET",
        _ => "unknown",
    };
    let sn = r.hex(8);
    let ch = match b >> 4 {
        0 => Ch::One,
        1 => Ch::Two,
        _ => return,
    };
    *slot(&mut out.sensor_type, ch) = Some(kind.to_owned());
    *slot(&mut out.sensor_sn, ch) = Some(sn);
}

#[cfg(test)]
mod tests;

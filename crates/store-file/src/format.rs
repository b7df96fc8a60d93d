//! The on-disk format: segment headers, batch frames and records. Pure functions over bytes;
//! see `docs/log-format.md` for the layout, its invariants and its version history.
//!
//! Every decoder here takes untrusted bytes and returns an error, never panics.

use rapport_core::{
    AccountId, AdvocacyKind, Channel, CommitmentKey, Envelope, EscalationKey, Event, EventId, NewEvent, Position,
    Severity, StreamVersion, SurveyKey, SurveyScore, Timestamp,
};
use serde::{Deserialize, Serialize};

/// The first eight bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"RAPPORTL";
/// The first four bytes of every batch frame.
pub const FRAME_MAGIC: [u8; 4] = *b"RPB1";
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes in a segment header.
pub const SEGMENT_HEADER_BYTES: usize = 64;
/// Bytes in a frame header.
pub const FRAME_HEADER_BYTES: usize = 40;
/// Bytes before each record's body: its length and its CRC32C.
pub const RECORD_PREFIX_BYTES: usize = 8;
/// The largest record body accepted. The largest valid event encodes to about 4.5 KiB.
pub const RECORD_BYTES_MAX: usize = 16 * 1024;
/// The largest frame payload accepted.
pub const FRAME_PAYLOAD_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Fixed bytes at the end of every record body: `recorded_at` (i64) and `stream_version` (u64).
const RECORD_TAIL_BYTES: usize = 16;

/// Why bytes could not be decoded. `offset` is relative to the start of what was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Where the problem starts.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for DecodeError {}

fn err(offset: usize, reason: impl Into<String>) -> DecodeError {
    DecodeError { offset: offset as u64, reason: reason.into() }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// A segment's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The log's id, the same in every segment of one log.
    pub log_id: [u8; 16],
    /// The position of the first event this segment holds.
    pub base_position: u64,
    /// The segment's number, from 0.
    pub segment_no: u64,
    /// Whether the store keeps a head record (`HEAD`): set by every build that does, so a
    /// deleted head record is noticed (older builds leave the flag byte zero and ignore it).
    pub head_tracked: bool,
}

impl SegmentHeader {
    /// The 64 header bytes.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut b = [0u8; SEGMENT_HEADER_BYTES];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(SEGMENT_HEADER_BYTES as u32).to_le_bytes());
        b[16..32].copy_from_slice(&self.log_id);
        b[32..40].copy_from_slice(&self.base_position.to_le_bytes());
        b[40..48].copy_from_slice(&self.segment_no.to_le_bytes());
        b[48] = u8::from(self.head_tracked);
        let crc = crc32c::crc32c(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a header.
    ///
    /// # Errors
    /// Short input, wrong magic, an unknown version or a bad checksum.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() < SEGMENT_HEADER_BYTES {
            return Err(err(0, format!("segment header is {} bytes, needs {SEGMENT_HEADER_BYTES}", b.len())));
        }
        if b[0..8] != SEGMENT_MAGIC {
            return Err(err(0, "not a rapport segment (bad magic)"));
        }
        if crc32c::crc32c(&b[..60]) != u32_at(b, 60) {
            return Err(err(0, "segment header checksum mismatch"));
        }
        let version = u32_at(b, 8);
        if version != FORMAT_VERSION {
            return Err(err(8, format!("segment format version {version}; this build reads {FORMAT_VERSION}")));
        }
        if u32_at(b, 12) as usize != SEGMENT_HEADER_BYTES {
            return Err(err(12, "unexpected segment header length"));
        }
        let mut log_id = [0u8; 16];
        log_id.copy_from_slice(&b[16..32]);
        Ok(Self { log_id, base_position: u64_at(b, 32), segment_no: u64_at(b, 40), head_tracked: b[48] & 1 == 1 })
    }
}

/// A batch frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Bytes of payload after the header.
    pub payload_len: u32,
    /// The position of the first record.
    pub first_position: u64,
    /// How many records.
    pub count: u32,
    /// The group-commit epoch: frames written before one fsync share it.
    pub epoch: u64,
    /// The payload checksum of the previous frame in the log (0 for the first): a hash chain.
    pub prev_checksum: u32,
    /// CRC32C of the payload.
    pub payload_crc: u32,
}

/// How a frame header failed to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameHeaderError {
    /// Fewer than 40 bytes remain.
    Short,
    /// All zero: preallocated or never-written space, the end of the log.
    Zero,
    /// Not zero but not a valid header (torn or corrupt).
    Invalid,
}

impl FrameHeader {
    /// The 40 header bytes and the header checksum.
    pub fn encode(&self) -> ([u8; FRAME_HEADER_BYTES], u32) {
        let mut b = [0u8; FRAME_HEADER_BYTES];
        b[0..4].copy_from_slice(&FRAME_MAGIC);
        b[4..8].copy_from_slice(&self.payload_len.to_le_bytes());
        b[8..16].copy_from_slice(&self.first_position.to_le_bytes());
        b[16..20].copy_from_slice(&self.count.to_le_bytes());
        b[20..28].copy_from_slice(&self.epoch.to_le_bytes());
        b[28..32].copy_from_slice(&self.prev_checksum.to_le_bytes());
        b[32..36].copy_from_slice(&self.payload_crc.to_le_bytes());
        let crc = crc32c::crc32c(&b[..36]);
        b[36..40].copy_from_slice(&crc.to_le_bytes());
        (b, crc)
    }

    /// Decodes a header and returns it with its checksum. The length is trusted only after
    /// the header's own checksum matches.
    ///
    /// # Errors
    /// [`FrameHeaderError`].
    pub fn decode(b: &[u8]) -> Result<(Self, u32), FrameHeaderError> {
        if b.len() < FRAME_HEADER_BYTES {
            return Err(FrameHeaderError::Short);
        }
        let b = &b[..FRAME_HEADER_BYTES];
        if b.iter().all(|&x| x == 0) {
            return Err(FrameHeaderError::Zero);
        }
        let crc = u32_at(b, 36);
        if b[0..4] != FRAME_MAGIC || crc32c::crc32c(&b[..36]) != crc {
            return Err(FrameHeaderError::Invalid);
        }
        let h = Self {
            payload_len: u32_at(b, 4),
            first_position: u64_at(b, 8),
            count: u32_at(b, 16),
            epoch: u64_at(b, 20),
            prev_checksum: u32_at(b, 28),
            payload_crc: u32_at(b, 32),
        };
        if h.payload_len as usize > FRAME_PAYLOAD_BYTES_MAX || h.count == 0 || h.first_position == 0 {
            return Err(FrameHeaderError::Invalid);
        }
        Ok((h, crc))
    }
}

#[derive(Serialize, Deserialize)]
struct ContentV1<'a> {
    /// The id's 16 bytes, read as one little-endian integer (so the bytes on disk are the
    /// UUID's bytes in order, and decode is one read instead of sixteen).
    #[serde(with = "postcard::fixint::le")]
    id: u128,
    account: &'a str,
    #[serde(with = "postcard::fixint::le")]
    occurred_at: i64,
    #[serde(borrow)]
    event: EventV1<'a>,
}

// Variant order and fields are frozen: version 1 of the format.
#[derive(Serialize, Deserialize)]
enum EventV1<'a> {
    CommitmentMade {
        commitment: &'a str,
        title: &'a str,
        #[serde(with = "postcard::fixint::le")]
        due: i64,
        weight: f64,
    },
    CommitmentRenegotiated {
        commitment: &'a str,
        #[serde(with = "postcard::fixint::le")]
        due: i64,
        reason: Option<&'a str>,
    },
    CommitmentDelivered {
        commitment: &'a str,
        accepted: bool,
    },
    CommitmentCancelled {
        commitment: &'a str,
        reason: Option<&'a str>,
    },
    EscalationRaised {
        escalation: &'a str,
        severity: u8,
        summary: Option<&'a str>,
    },
    EscalationAcknowledged {
        escalation: &'a str,
    },
    EscalationResolved {
        escalation: &'a str,
    },
    EscalationReopened {
        escalation: &'a str,
    },
    SurveyAnswered {
        survey: &'a str,
        measure: u8,
        value: u8,
        comment: Option<&'a str>,
    },
    Touchpoint {
        channel: u8,
    },
    IssueDisclosed {
        summary: Option<&'a str>,
    },
    AdvocacyGiven {
        kind: u8,
    },
}

/// Why an event could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(pub String);

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

/// `e` as the format's serde definition; what [`put_v1`] must encode identically.
#[cfg(test)]
fn to_v1(e: &NewEvent) -> Result<ContentV1<'_>, EncodeError> {
    let event = match &e.event {
        Event::CommitmentMade { commitment, title, due, weight } => {
            EventV1::CommitmentMade { commitment: commitment.as_str(), title, due: due.unix_nanos(), weight: *weight }
        }
        Event::CommitmentRenegotiated { commitment, due, reason } => EventV1::CommitmentRenegotiated {
            commitment: commitment.as_str(),
            due: due.unix_nanos(),
            reason: reason.as_deref(),
        },
        Event::CommitmentDelivered { commitment, accepted } => {
            EventV1::CommitmentDelivered { commitment: commitment.as_str(), accepted: *accepted }
        }
        Event::CommitmentCancelled { commitment, reason } => {
            EventV1::CommitmentCancelled { commitment: commitment.as_str(), reason: reason.as_deref() }
        }
        Event::EscalationRaised { escalation, severity, summary } => EventV1::EscalationRaised {
            escalation: escalation.as_str(),
            severity: severity_code(*severity),
            summary: summary.as_deref(),
        },
        Event::EscalationAcknowledged { escalation } => {
            EventV1::EscalationAcknowledged { escalation: escalation.as_str() }
        }
        Event::EscalationResolved { escalation } => EventV1::EscalationResolved { escalation: escalation.as_str() },
        Event::EscalationReopened { escalation } => EventV1::EscalationReopened { escalation: escalation.as_str() },
        Event::SurveyAnswered { survey, score, comment } => EventV1::SurveyAnswered {
            survey: survey.as_str(),
            measure: measure_code(score),
            value: score.value(),
            comment: comment.as_deref(),
        },
        Event::TouchpointHeld { channel } => EventV1::Touchpoint { channel: channel_code(*channel) },
        Event::IssueDisclosed { summary } => EventV1::IssueDisclosed { summary: summary.as_deref() },
        Event::AdvocacyGiven { kind } => EventV1::AdvocacyGiven { kind: advocacy_code(*kind) },
        other => return Err(EncodeError(format!("event type {} has no format-1 encoding", other.kind()))),
    };
    Ok(ContentV1 {
        id: u128::from_le_bytes(e.id.to_bytes()),
        account: e.account.as_str(),
        occurred_at: e.occurred_at.unix_nanos(),
        event,
    })
}

/// Writes `e`'s [`ContentV1`] to `out` in postcard's encoding, by hand: the same bytes as
/// `postcard::to_extend(&to_v1(e)?, ..)` (a property test compares them over every event
/// type), at about a third of the instructions, since serde's path pushed field by field
/// through a generic writer (6 % of a backfill's instructions). Decoding still goes through
/// postcard and the derived [`ContentV1`], which stays the format's definition.
///
/// postcard's rules used here: integers with `fixint::le` and `f64` as little-endian bytes;
/// `u8` and `bool` as one byte; a `str` as its length (unsigned LEB128) and its bytes; an
/// `Option` as a 0 or 1 byte before the value; an enum variant as its index (LEB128).
fn put_v1(e: &NewEvent, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn text(out: &mut Vec<u8>, s: &str) {
        varint(out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
    fn maybe(out: &mut Vec<u8>, s: Option<&str>) {
        match s {
            None => out.push(0),
            Some(s) => {
                out.push(1);
                text(out, s);
            }
        }
    }
    out.extend_from_slice(&e.id.to_bytes());
    text(out, e.account.as_str());
    out.extend_from_slice(&e.occurred_at.unix_nanos().to_le_bytes());
    // Variant indexes, in `EventV1`'s frozen order.
    match &e.event {
        Event::CommitmentMade { commitment, title, due, weight } => {
            varint(out, 0);
            text(out, commitment.as_str());
            text(out, title);
            out.extend_from_slice(&due.unix_nanos().to_le_bytes());
            out.extend_from_slice(&weight.to_le_bytes());
        }
        Event::CommitmentRenegotiated { commitment, due, reason } => {
            varint(out, 1);
            text(out, commitment.as_str());
            out.extend_from_slice(&due.unix_nanos().to_le_bytes());
            maybe(out, reason.as_deref());
        }
        Event::CommitmentDelivered { commitment, accepted } => {
            varint(out, 2);
            text(out, commitment.as_str());
            out.push(u8::from(*accepted));
        }
        Event::CommitmentCancelled { commitment, reason } => {
            varint(out, 3);
            text(out, commitment.as_str());
            maybe(out, reason.as_deref());
        }
        Event::EscalationRaised { escalation, severity, summary } => {
            varint(out, 4);
            text(out, escalation.as_str());
            out.push(severity_code(*severity));
            maybe(out, summary.as_deref());
        }
        Event::EscalationAcknowledged { escalation } => {
            varint(out, 5);
            text(out, escalation.as_str());
        }
        Event::EscalationResolved { escalation } => {
            varint(out, 6);
            text(out, escalation.as_str());
        }
        Event::EscalationReopened { escalation } => {
            varint(out, 7);
            text(out, escalation.as_str());
        }
        Event::SurveyAnswered { survey, score, comment } => {
            varint(out, 8);
            text(out, survey.as_str());
            out.push(measure_code(score));
            out.push(score.value());
            maybe(out, comment.as_deref());
        }
        Event::TouchpointHeld { channel } => {
            varint(out, 9);
            out.push(channel_code(*channel));
        }
        Event::IssueDisclosed { summary } => {
            varint(out, 10);
            maybe(out, summary.as_deref());
        }
        Event::AdvocacyGiven { kind } => {
            varint(out, 11);
            out.push(advocacy_code(*kind));
        }
        other => return Err(EncodeError(format!("event type {} has no format-1 encoding", other.kind()))),
    }
    Ok(())
}

fn severity_code(s: Severity) -> u8 {
    match s {
        Severity::Low => 0,
        Severity::Medium => 1,
        Severity::High => 2,
        Severity::Critical => 3,
    }
}

fn measure_code(s: &SurveyScore) -> u8 {
    match s {
        SurveyScore::Nps(_) => 0,
        SurveyScore::Csat(_) => 1,
        SurveyScore::Ces(_) => 2,
    }
}

fn channel_code(c: Channel) -> u8 {
    match c {
        Channel::Meeting => 0,
        Channel::Call => 1,
        Channel::Email => 2,
        Channel::Chat => 3,
        Channel::Visit => 4,
    }
}

fn advocacy_code(k: AdvocacyKind) -> u8 {
    match k {
        AdvocacyKind::Referral => 0,
        AdvocacyKind::Reference => 1,
        AdvocacyKind::CaseStudy => 2,
        AdvocacyKind::Review => 3,
    }
}

/// Appends one record (prefix and body) for `e` to `out`.
///
/// # Errors
/// An event type without an encoding, or a record over [`RECORD_BYTES_MAX`].
pub fn encode_record(
    e: &NewEvent,
    recorded_at: Timestamp,
    stream_version: StreamVersion,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_PREFIX_BYTES]);
    let body_start = out.len();
    if let Err(e) = put_v1(e, out) {
        out.truncate(start);
        return Err(e);
    }
    out.extend_from_slice(&recorded_at.unix_nanos().to_le_bytes());
    out.extend_from_slice(&stream_version.0.to_le_bytes());
    let body_len = out.len() - body_start;
    if body_len > RECORD_BYTES_MAX {
        out.truncate(start);
        return Err(EncodeError(format!("record of {body_len} bytes exceeds {RECORD_BYTES_MAX}")));
    }
    let crc = crc32c::crc32c(&out[body_start..]);
    out[start..start + 4].copy_from_slice(&(body_len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Decodes one record body (after its prefix) as the event at `position`.
///
/// # Errors
/// Malformed bytes, or a field that breaks the schema's rules.
pub fn decode_body(body: &[u8], position: Position) -> Result<Envelope, DecodeError> {
    decode_body_with(body, position, &mut |s| AccountId::new(s).map_err(|e| e.to_string()))
}

/// [`decode_body`] with an account interner, so a scan shares one `AccountId` per account.
///
/// # Errors
/// Malformed bytes, or a field that breaks the schema's rules.
pub fn decode_body_with(
    body: &[u8],
    position: Position,
    intern: &mut dyn FnMut(&str) -> Result<AccountId, String>,
) -> Result<Envelope, DecodeError> {
    let (new, recorded_at, stream_version) = decode_parts(body, intern)?;
    Ok(Envelope::new(new, recorded_at, stream_version, position))
}

/// The parts of a record body: the event as submitted, `recorded_at` and the stream version.
///
/// # Errors
/// Malformed bytes, or a field that breaks the schema's rules.
pub fn decode_parts(
    body: &[u8],
    intern: &mut dyn FnMut(&str) -> Result<AccountId, String>,
) -> Result<(NewEvent, Timestamp, StreamVersion), DecodeError> {
    if body.len() < RECORD_TAIL_BYTES {
        return Err(err(0, "record body too short"));
    }
    let split = body.len() - RECORD_TAIL_BYTES;
    let (content_bytes, tail) = body.split_at(split);
    let content: ContentV1<'_> =
        postcard::from_bytes(content_bytes).map_err(|e| err(0, format!("record does not decode: {e}")))?;
    let recorded_at = Timestamp::from_unix_nanos(u64_at(tail, 0) as i64);
    let stream_version = StreamVersion(u64_at(tail, 8));
    let account = intern(content.account).map_err(|e| err(0, format!("account: {e}")))?;
    let new = from_v1(content, account)?;
    Ok((new, recorded_at, stream_version))
}

fn from_v1(c: ContentV1<'_>, account: AccountId) -> Result<NewEvent, DecodeError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| err(0, format!("{what}: {e}"));
    let ck = |s: &str| CommitmentKey::new(s).map_err(|e| bad("commitment", &e));
    let ek = |s: &str| EscalationKey::new(s).map_err(|e| bad("escalation", &e));
    let text = |s: Option<&str>| s.map(str::to_owned);
    let event = match c.event {
        EventV1::CommitmentMade { commitment, title, due, weight } => Event::CommitmentMade {
            commitment: ck(commitment)?,
            title: title.to_owned(),
            due: Timestamp::from_unix_nanos(due),
            weight,
        },
        EventV1::CommitmentRenegotiated { commitment, due, reason } => Event::CommitmentRenegotiated {
            commitment: ck(commitment)?,
            due: Timestamp::from_unix_nanos(due),
            reason: text(reason),
        },
        EventV1::CommitmentDelivered { commitment, accepted } => {
            Event::CommitmentDelivered { commitment: ck(commitment)?, accepted }
        }
        EventV1::CommitmentCancelled { commitment, reason } => {
            Event::CommitmentCancelled { commitment: ck(commitment)?, reason: text(reason) }
        }
        EventV1::EscalationRaised { escalation, severity, summary } => Event::EscalationRaised {
            escalation: ek(escalation)?,
            severity: match severity {
                0 => Severity::Low,
                1 => Severity::Medium,
                2 => Severity::High,
                3 => Severity::Critical,
                s => return Err(err(0, format!("unknown severity code {s}"))),
            },
            summary: text(summary),
        },
        EventV1::EscalationAcknowledged { escalation } => Event::EscalationAcknowledged { escalation: ek(escalation)? },
        EventV1::EscalationResolved { escalation } => Event::EscalationResolved { escalation: ek(escalation)? },
        EventV1::EscalationReopened { escalation } => Event::EscalationReopened { escalation: ek(escalation)? },
        EventV1::SurveyAnswered { survey, measure, value, comment } => Event::SurveyAnswered {
            survey: SurveyKey::new(survey).map_err(|e| bad("survey", &e))?,
            score: match measure {
                0 => SurveyScore::Nps(value),
                1 => SurveyScore::Csat(value),
                2 => SurveyScore::Ces(value),
                m => return Err(err(0, format!("unknown survey measure code {m}"))),
            },
            comment: text(comment),
        },
        EventV1::Touchpoint { channel } => Event::TouchpointHeld {
            channel: match channel {
                0 => Channel::Meeting,
                1 => Channel::Call,
                2 => Channel::Email,
                3 => Channel::Chat,
                4 => Channel::Visit,
                c => return Err(err(0, format!("unknown channel code {c}"))),
            },
        },
        EventV1::IssueDisclosed { summary } => Event::IssueDisclosed { summary: text(summary) },
        EventV1::AdvocacyGiven { kind } => Event::AdvocacyGiven {
            kind: match kind {
                0 => AdvocacyKind::Referral,
                1 => AdvocacyKind::Reference,
                2 => AdvocacyKind::CaseStudy,
                3 => AdvocacyKind::Review,
                k => return Err(err(0, format!("unknown advocacy code {k}"))),
            },
        },
    };
    Ok(NewEvent {
        id: EventId::from_bytes(c.id.to_le_bytes()),
        account,
        occurred_at: Timestamp::from_unix_nanos(c.occurred_at),
        event,
    })
}

/// Splits a frame payload into record bodies, checking each record's length and checksum.
/// Returns each body with its offset inside the payload (of its prefix).
///
/// # Errors
/// A record that overruns the payload, is too large, or fails its checksum; or a record count
/// that does not match.
pub fn split_records(payload: &[u8], count: u32) -> Result<Vec<(usize, &[u8])>, DecodeError> {
    let mut out = Vec::with_capacity(count.min(65_536) as usize);
    let mut at = 0usize;
    while at < payload.len() {
        if payload.len() - at < RECORD_PREFIX_BYTES {
            return Err(err(at, "truncated record prefix"));
        }
        let len = u32_at(payload, at) as usize;
        let crc = u32_at(payload, at + 4);
        if len > RECORD_BYTES_MAX {
            return Err(err(at, format!("record length {len} exceeds {RECORD_BYTES_MAX}")));
        }
        let body_start = at + RECORD_PREFIX_BYTES;
        let Some(body) = payload.get(body_start..body_start + len) else {
            return Err(err(at, "record overruns its frame"));
        };
        if crc32c::crc32c(body) != crc {
            return Err(err(at, "record checksum mismatch"));
        }
        out.push((at, body));
        at = body_start + len;
    }
    if out.len() != count as usize {
        return Err(err(0, format!("frame says {count} records, payload holds {}", out.len())));
    }
    Ok(out)
}

/// Everything one segment file holds, decoded and checked. For `verify` and the fuzz target.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedSegment {
    /// The header.
    pub header: SegmentHeader,
    /// The records, in order.
    pub records: Vec<Envelope>,
    /// The byte offset just past the last valid frame.
    pub valid_len: u64,
}

/// Decodes a whole segment strictly: header, every frame (checksums, positions, the hash chain
/// within the segment) and every record. Zeroed space after the last frame is the end.
///
/// # Errors
/// The first problem, with its byte offset.
pub fn decode_segment(bytes: &[u8]) -> Result<DecodedSegment, DecodeError> {
    let header = SegmentHeader::decode(bytes)?;
    let mut records = Vec::new();
    let mut at = SEGMENT_HEADER_BYTES;
    let mut next = header.base_position;
    let mut prev: Option<u32> = None;
    loop {
        if at == bytes.len() {
            break;
        }
        let (h, _) = match FrameHeader::decode(&bytes[at..]) {
            Ok(x) => x,
            Err(FrameHeaderError::Zero) => {
                if bytes[at..].iter().all(|&b| b == 0) {
                    break;
                }
                return Err(err(at, "zeroed frame header followed by data"));
            }
            Err(FrameHeaderError::Short) => {
                if bytes[at..].iter().all(|&b| b == 0) {
                    break;
                }
                return Err(err(at, "truncated frame header"));
            }
            Err(FrameHeaderError::Invalid) => return Err(err(at, "invalid frame header")),
        };
        if h.first_position != next {
            return Err(err(at, format!("frame starts at position {}, expected {next}", h.first_position)));
        }
        if let Some(p) = prev
            && h.prev_checksum != p
        {
            return Err(err(at, "frame does not chain to the previous frame"));
        }
        let payload_start = at + FRAME_HEADER_BYTES;
        let Some(payload) = bytes.get(payload_start..payload_start + h.payload_len as usize) else {
            return Err(err(at, "frame payload overruns the segment"));
        };
        if crc32c::crc32c(payload) != h.payload_crc {
            return Err(err(at, "frame payload checksum mismatch"));
        }
        let bodies = split_records(payload, h.count).map_err(|e| err(payload_start + e.offset as usize, e.reason))?;
        for (i, (off, body)) in bodies.into_iter().enumerate() {
            let position = Position(next + i as u64);
            let rec = decode_body(body, position)
                .map_err(|e| err(payload_start + off, format!("position {}: {}", position, e.reason)))?;
            records.push(rec);
        }
        next += u64::from(h.count);
        prev = Some(h.payload_crc);
        at = payload_start + h.payload_len as usize;
    }
    Ok(DecodedSegment { header, records, valid_len: at as u64 })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rapport_core::{AccountId, CommitmentKey, EscalationKey, EventId, SurveyKey, Timestamp};

    use super::*;

    fn postcard_bytes(e: &NewEvent) -> Vec<u8> {
        postcard::to_allocvec(&to_v1(e).unwrap()).unwrap()
    }

    fn hand_bytes(e: &NewEvent) -> Vec<u8> {
        let mut out = Vec::new();
        put_v1(e, &mut out).unwrap();
        out
    }

    /// An event of type `ty` (0..12, in `EventV1` order) from raw parts.
    fn event(ty: u8, key: &str, text: &str, maybe: Option<String>, (n, t, w, flag): (u8, i64, f64, bool)) -> Event {
        let (ck, ek, sk) =
            (CommitmentKey::new(key).unwrap(), EscalationKey::new(key).unwrap(), SurveyKey::new(key).unwrap());
        let due = Timestamp::from_unix_nanos(t);
        match ty {
            0 => Event::CommitmentMade { commitment: ck, title: text.to_owned(), due, weight: w },
            1 => Event::CommitmentRenegotiated { commitment: ck, due, reason: maybe },
            2 => Event::CommitmentDelivered { commitment: ck, accepted: flag },
            3 => Event::CommitmentCancelled { commitment: ck, reason: maybe },
            4 => Event::EscalationRaised {
                escalation: ek,
                severity: [Severity::Low, Severity::Medium, Severity::High, Severity::Critical][usize::from(n % 4)],
                summary: maybe,
            },
            5 => Event::EscalationAcknowledged { escalation: ek },
            6 => Event::EscalationResolved { escalation: ek },
            7 => Event::EscalationReopened { escalation: ek },
            8 => Event::SurveyAnswered {
                survey: sk,
                score: [SurveyScore::Nps(n % 11), SurveyScore::Csat(1 + n % 5), SurveyScore::Ces(1 + n % 7)]
                    [usize::from(n % 3)],
                comment: maybe,
            },
            9 => Event::TouchpointHeld {
                channel: [Channel::Meeting, Channel::Call, Channel::Email, Channel::Chat, Channel::Visit]
                    [usize::from(n % 5)],
            },
            10 => Event::IssueDisclosed { summary: maybe },
            _ => Event::AdvocacyGiven {
                kind: [AdvocacyKind::Referral, AdvocacyKind::Reference, AdvocacyKind::CaseStudy, AdvocacyKind::Review]
                    [usize::from(n % 4)],
            },
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn hand_encoding_is_postcards(
            ty in 0u8..12,
            id in 1u128..,
            account in "[a-z0-9-]{1,40}",
            key in "[a-zA-Z0-9_.:é-]{1,40}",
            // Up to 300 bytes, so lengths of one and two LEB128 bytes both occur.
            text in "\\PC{0,150}",
            maybe in proptest::option::of("\\PC{0,150}"),
            n in any::<u8>(),
            t in any::<i64>(),
            w in any::<f64>(),
            flag in any::<bool>(),
        ) {
            let e = NewEvent {
                id: EventId::from_bytes(id.to_be_bytes()),
                account: AccountId::new(&account).unwrap(),
                occurred_at: Timestamp::from_unix_nanos(t.wrapping_mul(3)),
                event: event(ty, &key, &text, maybe, (n, t, w, flag)),
            };
            prop_assert_eq!(hand_bytes(&e), postcard_bytes(&e));
        }
    }

    #[test]
    fn hand_encoding_handles_every_length_boundary() {
        for len in [0, 1, 127, 128, 129, 16_383, 16_384, 16_385, 20_000] {
            let long = "x".repeat(len);
            let e = NewEvent {
                id: EventId::from_bytes([7; 16]),
                account: AccountId::new("acme").unwrap(),
                occurred_at: Timestamp::from_unix_seconds(1),
                event: event(0, "c-1", &long, None, (0, 5, 1.0, false)),
            };
            assert_eq!(hand_bytes(&e), postcard_bytes(&e), "{len}");
            let e = NewEvent { event: event(10, "k", "", Some(long), (0, 0, 1.0, false)), ..e };
            assert_eq!(hand_bytes(&e), postcard_bytes(&e), "{len}");
        }
    }
}

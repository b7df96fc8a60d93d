//! A record body: one event's content and the two fields the store assigns. Written and read
//! by hand, both ways, from one specification (`docs/log-format.md`, "Records"): the encoder
//! [`put_content`] and the decoder [`take_content`] mirror each other field by field, and a
//! property test checks that every event reads back as written.

use rapport_core::{
    AccountId, AdvocacyKind, Channel, CommitmentKey, Envelope, EscalationKey, Event, EventId, NewEvent, Position,
    Severity, StreamVersion, SurveyKey, SurveyScore, Timestamp,
};

use super::{DecodeError, RECORD_BYTES_MAX, RECORD_PREFIX_BYTES, err, u64_at};

/// Fixed bytes at the end of every record body: `recorded_at` (i64) and `stream_version` (u64).
const RECORD_TAIL_BYTES: usize = 16;

/// Why an event could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(pub String);

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

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
    if let Err(e) = put_content(e, out) {
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
    let (content, tail) = body.split_at(body.len() - RECORD_TAIL_BYTES);
    let new = take_content(content, intern)?;
    let recorded_at = Timestamp::from_unix_nanos(u64_at(tail, 0) as i64);
    let stream_version = StreamVersion(u64_at(tail, 8));
    Ok((new, recorded_at, stream_version))
}

// ---------------------------------------------------------------------------------------------
// The content, field by field. Encoding rules (the spec's "content" grammar): the id as its 16
// bytes; i64 and f64 as 8 little-endian bytes; u8 and bool as one byte (a bool is 0 or 1); a
// string as its length in unsigned LEB128 (the shortest form) and its UTF-8 bytes; an optional
// string as a 0 byte, or a 1 byte and the string; the event type as its variant index in
// LEB128, then its fields in the spec's table order.

/// Variant indexes, frozen for version 1 of the format.
mod variant {
    pub(super) const COMMITMENT_MADE: u64 = 0;
    pub(super) const COMMITMENT_RENEGOTIATED: u64 = 1;
    pub(super) const COMMITMENT_DELIVERED: u64 = 2;
    pub(super) const COMMITMENT_CANCELLED: u64 = 3;
    pub(super) const ESCALATION_RAISED: u64 = 4;
    pub(super) const ESCALATION_ACKNOWLEDGED: u64 = 5;
    pub(super) const ESCALATION_RESOLVED: u64 = 6;
    pub(super) const ESCALATION_REOPENED: u64 = 7;
    pub(super) const SURVEY_ANSWERED: u64 = 8;
    pub(super) const TOUCHPOINT: u64 = 9;
    pub(super) const ISSUE_DISCLOSED: u64 = 10;
    pub(super) const ADVOCACY_GIVEN: u64 = 11;
}

/// The one-byte codes of enumerated fields, in the spec's order: index `i` is code `i`.
const SEVERITIES: [Severity; 4] = [Severity::Low, Severity::Medium, Severity::High, Severity::Critical];
const CHANNELS: [Channel; 5] = [Channel::Meeting, Channel::Call, Channel::Email, Channel::Chat, Channel::Visit];
const ADVOCACY: [AdvocacyKind; 4] =
    [AdvocacyKind::Referral, AdvocacyKind::Reference, AdvocacyKind::CaseStudy, AdvocacyKind::Review];

fn code_of<T: PartialEq>(table: &[T], v: &T) -> u8 {
    // Every value of the enums is in its table (the tables list every variant).
    table.iter().position(|t| t == v).unwrap_or(0) as u8
}

fn measure_code(s: &SurveyScore) -> u8 {
    match s {
        SurveyScore::Nps(_) => 0,
        SurveyScore::Csat(_) => 1,
        SurveyScore::Ces(_) => 2,
    }
}

/// Writes `e`'s content to `out`.
fn put_content(e: &NewEvent, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    #[inline]
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    #[inline]
    fn text(out: &mut Vec<u8>, s: &str) {
        varint(out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
    #[inline]
    fn maybe(out: &mut Vec<u8>, s: Option<&str>) {
        match s {
            None => out.push(0),
            Some(s) => {
                out.push(1);
                text(out, s);
            }
        }
    }
    let time = |out: &mut Vec<u8>, t: &Timestamp| out.extend_from_slice(&t.unix_nanos().to_le_bytes());
    out.extend_from_slice(&e.id.to_bytes());
    text(out, e.account.as_str());
    time(out, &e.occurred_at);
    match &e.event {
        Event::CommitmentMade { commitment, title, due, weight } => {
            varint(out, variant::COMMITMENT_MADE);
            text(out, commitment.as_str());
            text(out, title);
            time(out, due);
            out.extend_from_slice(&weight.to_le_bytes());
        }
        Event::CommitmentRenegotiated { commitment, due, reason } => {
            varint(out, variant::COMMITMENT_RENEGOTIATED);
            text(out, commitment.as_str());
            time(out, due);
            maybe(out, reason.as_deref());
        }
        Event::CommitmentDelivered { commitment, accepted } => {
            varint(out, variant::COMMITMENT_DELIVERED);
            text(out, commitment.as_str());
            out.push(u8::from(*accepted));
        }
        Event::CommitmentCancelled { commitment, reason } => {
            varint(out, variant::COMMITMENT_CANCELLED);
            text(out, commitment.as_str());
            maybe(out, reason.as_deref());
        }
        Event::EscalationRaised { escalation, severity, summary } => {
            varint(out, variant::ESCALATION_RAISED);
            text(out, escalation.as_str());
            out.push(code_of(&SEVERITIES, severity));
            maybe(out, summary.as_deref());
        }
        Event::EscalationAcknowledged { escalation } => {
            varint(out, variant::ESCALATION_ACKNOWLEDGED);
            text(out, escalation.as_str());
        }
        Event::EscalationResolved { escalation } => {
            varint(out, variant::ESCALATION_RESOLVED);
            text(out, escalation.as_str());
        }
        Event::EscalationReopened { escalation } => {
            varint(out, variant::ESCALATION_REOPENED);
            text(out, escalation.as_str());
        }
        Event::SurveyAnswered { survey, score, comment } => {
            varint(out, variant::SURVEY_ANSWERED);
            text(out, survey.as_str());
            out.push(measure_code(score));
            out.push(score.value());
            maybe(out, comment.as_deref());
        }
        Event::TouchpointHeld { channel } => {
            varint(out, variant::TOUCHPOINT);
            out.push(code_of(&CHANNELS, channel));
        }
        Event::IssueDisclosed { summary } => {
            varint(out, variant::ISSUE_DISCLOSED);
            maybe(out, summary.as_deref());
        }
        Event::AdvocacyGiven { kind } => {
            varint(out, variant::ADVOCACY_GIVEN);
            out.push(code_of(&ADVOCACY, kind));
        }
        other => return Err(EncodeError(format!("event type {} has no format-1 encoding", other.kind()))),
    }
    Ok(())
}

/// A read's result. The error is boxed: a reader's methods return it through many `?`s, and a
/// pointer-sized error keeps every result in registers on the path that does not fail.
type Read<T> = Result<T, Box<DecodeError>>;

#[cold]
fn fail(offset: usize, reason: impl Into<String>) -> Box<DecodeError> {
    Box::new(err(offset, reason))
}

/// Reads content written by [`put_content`], strictly: every byte must be accounted for, and
/// any other shape (a long-form length, a flag other than 0 or 1, an unknown code) is an
/// error naming its offset in the content.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn bytes(&mut self, n: usize, what: &str) -> Read<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.b.len());
        let Some(end) = end else { return Err(fail(self.at, format!("{what}: the record ends early"))) };
        let out = &self.b[self.at..end];
        self.at = end;
        Ok(out)
    }

    #[inline]
    fn byte(&mut self, what: &str) -> Read<u8> {
        Ok(self.bytes(1, what)?[0])
    }

    #[inline]
    fn eight(&mut self, what: &str) -> Read<[u8; 8]> {
        let mut w = [0u8; 8];
        w.copy_from_slice(self.bytes(8, what)?);
        Ok(w)
    }

    #[inline]
    fn time(&mut self, what: &str) -> Read<Timestamp> {
        Ok(Timestamp::from_unix_nanos(i64::from_le_bytes(self.eight(what)?)))
    }

    /// An unsigned LEB128 integer in its shortest form, at most 64 bits.
    #[inline]
    fn varint(&mut self, what: &str) -> Read<u64> {
        // Nearly every one is a single byte: a length under 128, a variant index.
        match self.b.get(self.at) {
            Some(&byte) if byte < 0x80 => {
                self.at += 1;
                Ok(u64::from(byte))
            }
            _ => self.long_varint(what),
        }
    }

    #[cold]
    fn long_varint(&mut self, what: &str) -> Read<u64> {
        let start = self.at;
        let mut v: u64 = 0;
        let mut shift = 0u32;
        loop {
            let byte = self.byte(what)?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(fail(start, format!("{what}: the integer overflows 64 bits")));
            }
            v |= bits << shift;
            if byte & 0x80 == 0 {
                if byte == 0 && shift > 0 {
                    return Err(fail(start, format!("{what}: the integer is not in its shortest form")));
                }
                return Ok(v);
            }
            shift += 7;
            if shift > 63 {
                return Err(fail(start, format!("{what}: the integer overflows 64 bits")));
            }
        }
    }

    #[inline]
    fn flag(&mut self, what: &str) -> Read<bool> {
        let at = self.at;
        match self.byte(what)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(fail(at, format!("{what}: {other} is neither 0 nor 1"))),
        }
    }

    #[inline]
    fn text(&mut self, what: &str) -> Read<&'a str> {
        let len = self.varint(what)?;
        let at = self.at;
        let len = usize::try_from(len).map_err(|_| fail(at, format!("{what}: length {len} is too large")))?;
        let bytes = self.bytes(len, what)?;
        std::str::from_utf8(bytes).map_err(|e| fail(at, format!("{what}: not UTF-8 ({e})")))
    }

    #[inline]
    fn maybe(&mut self, what: &str) -> Read<Option<String>> {
        Ok(if self.flag(what)? { Some(self.text(what)?.to_owned()) } else { None })
    }

    #[inline]
    fn code<T: Copy>(&mut self, table: &[T], what: &str) -> Read<T> {
        let at = self.at;
        let c = self.byte(what)?;
        table.get(usize::from(c)).copied().ok_or_else(|| fail(at, format!("unknown {what} code {c}")))
    }

    #[inline]
    fn key<K>(&mut self, what: &str, new: impl FnOnce(&str) -> Result<K, rapport_core::ParseIdError>) -> Read<K> {
        let at = self.at;
        new(self.text(what)?).map_err(|e| fail(at, format!("{what}: {e}")))
    }
}

/// Reads the content `put_content` wrote, sharing account ids through `intern`.
fn take_content(b: &[u8], intern: &mut dyn FnMut(&str) -> Result<AccountId, String>) -> Result<NewEvent, DecodeError> {
    read_content(b, intern).map_err(|e| *e)
}

fn read_content(b: &[u8], intern: &mut dyn FnMut(&str) -> Result<AccountId, String>) -> Read<NewEvent> {
    let mut r = Reader { b, at: 0 };
    let mut id = [0u8; 16];
    id.copy_from_slice(r.bytes(16, "id")?);
    let at = r.at;
    let account = intern(r.text("account")?).map_err(|e| fail(at, format!("account: {e}")))?;
    let occurred_at = r.time("occurred_at")?;
    let at = r.at;
    let event = match r.varint("event type")? {
        variant::COMMITMENT_MADE => Event::CommitmentMade {
            commitment: r.key("commitment", CommitmentKey::new)?,
            title: r.text("title")?.to_owned(),
            due: r.time("due")?,
            weight: f64::from_le_bytes(r.eight("weight")?),
        },
        variant::COMMITMENT_RENEGOTIATED => Event::CommitmentRenegotiated {
            commitment: r.key("commitment", CommitmentKey::new)?,
            due: r.time("due")?,
            reason: r.maybe("reason")?,
        },
        variant::COMMITMENT_DELIVERED => Event::CommitmentDelivered {
            commitment: r.key("commitment", CommitmentKey::new)?,
            accepted: r.flag("accepted")?,
        },
        variant::COMMITMENT_CANCELLED => Event::CommitmentCancelled {
            commitment: r.key("commitment", CommitmentKey::new)?,
            reason: r.maybe("reason")?,
        },
        variant::ESCALATION_RAISED => Event::EscalationRaised {
            escalation: r.key("escalation", EscalationKey::new)?,
            severity: r.code(&SEVERITIES, "severity")?,
            summary: r.maybe("summary")?,
        },
        variant::ESCALATION_ACKNOWLEDGED => {
            Event::EscalationAcknowledged { escalation: r.key("escalation", EscalationKey::new)? }
        }
        variant::ESCALATION_RESOLVED => {
            Event::EscalationResolved { escalation: r.key("escalation", EscalationKey::new)? }
        }
        variant::ESCALATION_REOPENED => {
            Event::EscalationReopened { escalation: r.key("escalation", EscalationKey::new)? }
        }
        variant::SURVEY_ANSWERED => {
            let survey = r.key("survey", SurveyKey::new)?;
            let measure: fn(u8) -> SurveyScore =
                r.code(&[SurveyScore::Nps, SurveyScore::Csat, SurveyScore::Ces], "survey measure")?;
            Event::SurveyAnswered { survey, score: measure(r.byte("survey value")?), comment: r.maybe("comment")? }
        }
        variant::TOUCHPOINT => Event::TouchpointHeld { channel: r.code(&CHANNELS, "channel")? },
        variant::ISSUE_DISCLOSED => Event::IssueDisclosed { summary: r.maybe("summary")? },
        variant::ADVOCACY_GIVEN => Event::AdvocacyGiven { kind: r.code(&ADVOCACY, "advocacy")? },
        other => return Err(fail(at, format!("unknown event type {other}"))),
    };
    if r.at != b.len() {
        return Err(fail(r.at, format!("{} bytes after the event's last field", b.len() - r.at)));
    }
    Ok(NewEvent { id: EventId::from_bytes(id), account, occurred_at, event })
}

#[cfg(test)]
mod tests;

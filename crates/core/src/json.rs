//! The canonical JSON form: one flat object per line, `type` first, unknown fields rejected.
//!
//! See `docs/event-format.md` for the contract. Parsing goes through one flat struct that
//! serde fills in a single pass; the typed [`Event`] is then built from it, refusing fields that
//! do not belong to the line's `type`.

use std::borrow::Cow;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::event::{
    AdvocacyKind, Channel, Envelope, Event, EventKind, NewEvent, Severity, SurveyScore, TEXT_BYTES_MAX,
};
use crate::id::{
    AccountId, CommitmentKey, EscalationKey, EventId, Interner, ParseIdError, Position, StreamVersion, SurveyKey,
};
use crate::timestamp::Timestamp;

/// The longest JSON line accepted, in bytes. Generous: the longest valid event is about 25 KiB
/// even with every text byte escaped.
pub const LINE_BYTES_MAX: usize = 64 * 1024;

/// Why a JSON line was refused. Its `Display` reads `field: reason` when a field is at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseEventError {
    /// The line is longer than [`LINE_BYTES_MAX`].
    #[error("line is {len} bytes, more than the {max} allowed")]
    LineTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a JSON object of the right shape (syntax error, wrong type, unknown field).
    #[error("{reason}")]
    Json {
        /// What serde_json said, with the column.
        reason: String,
    },
    /// The `type` is not one of the event types.
    #[error("type: unknown event type {tag:?}")]
    UnknownType {
        /// The tag as given.
        tag: String,
    },
    /// A field the type needs is missing.
    #[error("{field}: missing, required by {kind}")]
    MissingField {
        /// The field.
        field: &'static str,
        /// The event type.
        kind: EventKind,
    },
    /// A known field that does not belong to this type.
    #[error("{field}: not a field of {kind}")]
    FieldNotAllowed {
        /// The field.
        field: &'static str,
        /// The event type.
        kind: EventKind,
    },
    /// A field's value is invalid.
    #[error("{field}: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl ParseEventError {
    /// The field at fault, when one is.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::MissingField { field, .. }
            | Self::FieldNotAllowed { field, .. }
            | Self::InvalidField { field, .. } => Some(field),
            Self::UnknownType { .. } => Some("type"),
            _ => None,
        }
    }
}

#[derive(Deserialize, Default, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct RawLine<'a> {
    #[serde(rename = "type", borrow)]
    ty: Option<Text<'a>>,
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow)]
    account: Option<Text<'a>>,
    #[serde(borrow)]
    occurred_at: Option<Text<'a>>,
    #[serde(borrow)]
    recorded_at: Option<Text<'a>>,
    stream_version: Option<u64>,
    position: Option<u64>,
    #[serde(borrow)]
    commitment: Option<Text<'a>>,
    #[serde(borrow)]
    title: Option<Text<'a>>,
    #[serde(borrow)]
    due: Option<Text<'a>>,
    weight: Option<f64>,
    #[serde(borrow)]
    reason: Option<Text<'a>>,
    accepted: Option<bool>,
    #[serde(borrow)]
    escalation: Option<Text<'a>>,
    #[serde(borrow)]
    severity: Option<Text<'a>>,
    #[serde(borrow)]
    summary: Option<Text<'a>>,
    #[serde(borrow)]
    survey: Option<Text<'a>>,
    nps: Option<i64>,
    csat: Option<i64>,
    ces: Option<i64>,
    #[serde(borrow)]
    comment: Option<Text<'a>>,
    #[serde(borrow)]
    channel: Option<Text<'a>>,
    #[serde(borrow)]
    kind: Option<Text<'a>>,
}

/// A JSON string field that borrows from the line unless it holds escapes. (serde's own
/// `Cow<str>` borrows only as a bare field, never inside an `Option`, so every field of every
/// line would otherwise be a heap allocation.)
#[derive(PartialEq)]
struct Text<'a>(Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Visitor(std::marker::PhantomData))
    }
}

type Parse<T> = Result<T, ParseEventError>;

fn invalid(field: &'static str, reason: impl ToString) -> ParseEventError {
    ParseEventError::InvalidField { field, reason: reason.to_string() }
}

/// Refuses the first of `fields` (name, present) that is present, with `reason`.
fn refuse_present(fields: &[(&'static str, bool)], reason: &str) -> Parse<()> {
    match fields.iter().find(|(_, present)| *present) {
        Some(&(field, _)) => Err(invalid(field, reason)),
        None => Ok(()),
    }
}

impl RawLine<'_> {
    /// The fields a store assigns, each with whether the line has it.
    fn store_assigned(&self) -> [(&'static str, bool); 3] {
        [
            ("recorded_at", self.recorded_at.is_some()),
            ("stream_version", self.stream_version.is_some()),
            ("position", self.position.is_some()),
        ]
    }
}

struct Fields<'r, 'a> {
    raw: &'r RawLine<'a>,
    kind: EventKind,
    interner: std::cell::RefCell<Option<&'r mut Interner>>,
}

impl<'a> Fields<'_, 'a> {
    fn req<'v, T>(&self, field: &'static str, v: &'v Option<T>) -> Parse<&'v T> {
        v.as_ref().ok_or(ParseEventError::MissingField { field, kind: self.kind })
    }

    fn text(&self, field: &'static str, v: &Option<Text<'a>>) -> Parse<Option<String>> {
        match v {
            None => Ok(None),
            Some(s) if s.len() > TEXT_BYTES_MAX => {
                Err(invalid(field, format!("is {} bytes, more than the {TEXT_BYTES_MAX} allowed", s.len())))
            }
            Some(s) => Ok(Some(s.to_string())),
        }
    }

    fn time(&self, field: &'static str, v: &Option<Text<'a>>) -> Parse<Timestamp> {
        Timestamp::parse(self.req(field, v)?).map_err(|e| invalid(field, e))
    }

    /// A key field, its text shared through the interner when there is one.
    fn key<K>(
        &self,
        field: &'static str,
        v: &Option<Text<'a>>,
        new: fn(&str) -> Result<K, ParseIdError>,
        new_in: fn(&str, &mut Interner) -> Result<K, ParseIdError>,
    ) -> Parse<K> {
        let s = self.req(field, v)?;
        match self.interner.borrow_mut().as_deref_mut() {
            Some(i) => new_in(s, i),
            None => new(s),
        }
        .map_err(|e| invalid(field, e))
    }

    fn commitment(&self) -> Parse<CommitmentKey> {
        self.key("commitment", &self.raw.commitment, CommitmentKey::new, CommitmentKey::new_in)
    }

    fn escalation(&self) -> Parse<EscalationKey> {
        self.key("escalation", &self.raw.escalation, EscalationKey::new, EscalationKey::new_in)
    }

    /// Refuses every known field outside `allowed` (a mask of [`field`] bits) that the line
    /// sets, naming the first in [`OPTIONAL_FIELDS`] order.
    fn only(&self, allowed: u32) -> Parse<()> {
        let r = self.raw;
        let present = [
            r.commitment.is_some(),
            r.title.is_some(),
            r.due.is_some(),
            r.weight.is_some(),
            r.reason.is_some(),
            r.accepted.is_some(),
            r.escalation.is_some(),
            r.severity.is_some(),
            r.summary.is_some(),
            r.survey.is_some(),
            r.nps.is_some(),
            r.csat.is_some(),
            r.ces.is_some(),
            r.comment.is_some(),
            r.channel.is_some(),
            r.kind.is_some(),
        ];
        let set = present.iter().enumerate().fold(0u32, |m, (i, &p)| m | (u32::from(p) << i));
        match set & !allowed {
            0 => Ok(()),
            extra => Err(ParseEventError::FieldNotAllowed {
                field: OPTIONAL_FIELDS[extra.trailing_zeros() as usize],
                kind: self.kind,
            }),
        }
    }
}

/// The JSON type of a field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// A string.
    Text,
    /// A number (`weight`).
    Number,
    /// An integer (`nps`, `csat`, `ces`).
    Integer,
    /// `true` or `false` (`accepted`).
    Bool,
}

/// Every field a submitted event may hold, with its JSON type: the canonical form's one field
/// table (`docs/event-format.md`). The CSV importer's columns are these names. The first four
/// are every event's; the rest only some types carry.
pub const SUBMITTED_FIELDS: [(&str, FieldType); 20] = [
    ("type", FieldType::Text),
    ("id", FieldType::Text),
    ("account", FieldType::Text),
    ("occurred_at", FieldType::Text),
    ("commitment", FieldType::Text),
    ("title", FieldType::Text),
    ("due", FieldType::Text),
    ("weight", FieldType::Number),
    ("reason", FieldType::Text),
    ("accepted", FieldType::Bool),
    ("escalation", FieldType::Text),
    ("severity", FieldType::Text),
    ("summary", FieldType::Text),
    ("survey", FieldType::Text),
    ("nps", FieldType::Integer),
    ("csat", FieldType::Integer),
    ("ces", FieldType::Integer),
    ("comment", FieldType::Text),
    ("channel", FieldType::Text),
    ("kind", FieldType::Text),
];

/// The fields that only some event types carry, in the order a refusal names them; bit `i` of
/// a [`Fields::only`] mask stands for the `i`th. A mask rather than a list of names: matching
/// names cost a string comparison per field per line.
const OPTIONAL_FIELDS: [&str; 16] = {
    let mut names = [""; 16];
    let mut i = 0;
    while i < 16 {
        names[i] = SUBMITTED_FIELDS[i + 4].0;
        i += 1;
    }
    names
};

/// The [`Fields::only`] bit of each of [`OPTIONAL_FIELDS`].
mod field {
    pub(super) const COMMITMENT: u32 = 1 << 0;
    pub(super) const TITLE: u32 = 1 << 1;
    pub(super) const DUE: u32 = 1 << 2;
    pub(super) const WEIGHT: u32 = 1 << 3;
    pub(super) const REASON: u32 = 1 << 4;
    pub(super) const ACCEPTED: u32 = 1 << 5;
    pub(super) const ESCALATION: u32 = 1 << 6;
    pub(super) const SEVERITY: u32 = 1 << 7;
    pub(super) const SUMMARY: u32 = 1 << 8;
    pub(super) const SURVEY: u32 = 1 << 9;
    pub(super) const NPS: u32 = 1 << 10;
    pub(super) const CSAT: u32 = 1 << 11;
    pub(super) const CES: u32 = 1 << 12;
    pub(super) const COMMENT: u32 = 1 << 13;
    pub(super) const CHANNEL: u32 = 1 << 14;
    pub(super) const KIND: u32 = 1 << 15;
}

fn parse_severity(s: &str) -> Option<Severity> {
    Some(match s {
        "low" => Severity::Low,
        "medium" => Severity::Medium,
        "high" => Severity::High,
        "critical" => Severity::Critical,
        _ => return None,
    })
}

fn parse_channel(s: &str) -> Option<Channel> {
    Some(match s {
        "meeting" => Channel::Meeting,
        "call" => Channel::Call,
        "email" => Channel::Email,
        "chat" => Channel::Chat,
        "visit" => Channel::Visit,
        _ => return None,
    })
}

fn parse_advocacy(s: &str) -> Option<AdvocacyKind> {
    Some(match s {
        "referral" => AdvocacyKind::Referral,
        "reference" => AdvocacyKind::Reference,
        "case_study" => AdvocacyKind::CaseStudy,
        "review" => AdvocacyKind::Review,
        _ => return None,
    })
}

/// The JSON name of a severity.
pub fn severity_tag(s: Severity) -> &'static str {
    match s {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

/// The JSON name of a channel.
pub fn channel_tag(c: Channel) -> &'static str {
    match c {
        Channel::Meeting => "meeting",
        Channel::Call => "call",
        Channel::Email => "email",
        Channel::Chat => "chat",
        Channel::Visit => "visit",
    }
}

/// The JSON name of an advocacy kind.
pub fn advocacy_tag(k: AdvocacyKind) -> &'static str {
    match k {
        AdvocacyKind::Referral => "referral",
        AdvocacyKind::Reference => "reference",
        AdvocacyKind::CaseStudy => "case_study",
        AdvocacyKind::Review => "review",
    }
}

fn build_event(f: &Fields<'_, '_>) -> Parse<Event> {
    let r = f.raw;
    let event = match f.kind {
        EventKind::CommitmentMade => {
            f.only(field::COMMITMENT | field::TITLE | field::DUE | field::WEIGHT)?;
            let weight = r.weight.unwrap_or(1.0);
            if !(weight.is_finite() && weight > 0.0) {
                return Err(invalid("weight", format!("{weight} is not a finite positive number")));
            }
            Event::CommitmentMade {
                commitment: f.commitment()?,
                title: f
                    .text("title", &r.title)?
                    .ok_or(ParseEventError::MissingField { field: "title", kind: f.kind })?,
                due: f.time("due", &r.due)?,
                weight,
            }
        }
        EventKind::CommitmentRenegotiated => {
            f.only(field::COMMITMENT | field::DUE | field::REASON)?;
            Event::CommitmentRenegotiated {
                commitment: f.commitment()?,
                due: f.time("due", &r.due)?,
                reason: f.text("reason", &r.reason)?,
            }
        }
        EventKind::CommitmentDelivered => {
            f.only(field::COMMITMENT | field::ACCEPTED)?;
            Event::CommitmentDelivered { commitment: f.commitment()?, accepted: r.accepted.unwrap_or(true) }
        }
        EventKind::CommitmentCancelled => {
            f.only(field::COMMITMENT | field::REASON)?;
            Event::CommitmentCancelled { commitment: f.commitment()?, reason: f.text("reason", &r.reason)? }
        }
        EventKind::EscalationRaised => {
            f.only(field::ESCALATION | field::SEVERITY | field::SUMMARY)?;
            let s = f.req("severity", &r.severity)?;
            let severity = parse_severity(s)
                .ok_or_else(|| invalid("severity", format!("{s:?} is not one of low, medium, high, critical")))?;
            Event::EscalationRaised { escalation: f.escalation()?, severity, summary: f.text("summary", &r.summary)? }
        }
        EventKind::EscalationAcknowledged => {
            f.only(field::ESCALATION)?;
            Event::EscalationAcknowledged { escalation: f.escalation()? }
        }
        EventKind::EscalationResolved => {
            f.only(field::ESCALATION)?;
            Event::EscalationResolved { escalation: f.escalation()? }
        }
        EventKind::EscalationReopened => {
            f.only(field::ESCALATION)?;
            Event::EscalationReopened { escalation: f.escalation()? }
        }
        EventKind::SurveyAnswered => {
            f.only(field::SURVEY | field::NPS | field::CSAT | field::CES | field::COMMENT)?;
            let survey = f.key("survey", &r.survey, SurveyKey::new, SurveyKey::new_in)?;
            let score = match (r.nps, r.csat, r.ces) {
                (Some(v), None, None) => (SurveyScore::Nps as fn(u8) -> SurveyScore, "nps", v),
                (None, Some(v), None) => (SurveyScore::Csat as fn(u8) -> SurveyScore, "csat", v),
                (None, None, Some(v)) => (SurveyScore::Ces as fn(u8) -> SurveyScore, "ces", v),
                (None, None, None) => {
                    return Err(invalid("nps", "a survey answer needs exactly one of nps, csat or ces"));
                }
                _ => return Err(invalid("nps", "a survey answer holds exactly one of nps, csat or ces")),
            };
            let (make, field, v) = score;
            let answer = u8::try_from(v).map(make).map_err(|_| invalid(field, format!("{v} is out of range")))?;
            if !answer.in_range() {
                let range = answer.range();
                return Err(invalid(field, format!("{v} is outside {}..={}", range.start(), range.end())));
            }
            Event::SurveyAnswered { survey, score: answer, comment: f.text("comment", &r.comment)? }
        }
        EventKind::TouchpointHeld => {
            f.only(field::CHANNEL)?;
            let s = f.req("channel", &r.channel)?;
            let channel = parse_channel(s)
                .ok_or_else(|| invalid("channel", format!("{s:?} is not one of meeting, call, email, chat, visit")))?;
            Event::TouchpointHeld { channel }
        }
        EventKind::IssueDisclosed => {
            f.only(field::SUMMARY)?;
            Event::IssueDisclosed { summary: f.text("summary", &r.summary)? }
        }
        EventKind::AdvocacyGiven => {
            f.only(field::KIND)?;
            let s = f.req("kind", &r.kind)?;
            let kind = parse_advocacy(s).ok_or_else(|| {
                invalid("kind", format!("{s:?} is not one of referral, reference, case_study, review"))
            })?;
            Event::AdvocacyGiven { kind }
        }
    };
    Ok(event)
}

/// Reads `line`'s fields into `raw`, which must be empty (`RawLine::default()`). Filled in
/// place rather than returned: `RawLine` is over 500 bytes, and moving it out of the scanner
/// and out of here cost two `memcpy` calls a line (3 % of a backfill's instructions).
fn parse_raw<'a>(line: &'a str, raw: &mut RawLine<'a>) -> Parse<()> {
    if line.len() > LINE_BYTES_MAX {
        return Err(ParseEventError::LineTooLong { len: line.len(), max: LINE_BYTES_MAX });
    }
    if !scan_compact(line, raw) {
        *raw = serde_json::from_str(line).map_err(json_error)?;
    }
    Ok(())
}

/// serde_json's message quotes what it refused (an unknown field's name, a value): escaped, so
/// the message stays one line whatever the input holds.
fn json_error(e: serde_json::Error) -> ParseEventError {
    ParseEventError::Json { reason: crate::escape::one_line(&e.to_string()).into_owned() }
}

/// Reads the shape the canonical form writes — one flat object, no whitespace, strings
/// without escapes, plain numbers — without serde's general machinery (about twice as fast).
/// Anything else returns `false` (leaving `raw` partly filled) and goes to serde_json, which
/// accepts it or says why not; so on every line where this returns `true`, `raw` equals what
/// serde_json reads (a property test and the `event_line` fuzz target check it). `raw` must
/// be empty on entry.
fn scan_compact<'a>(line: &'a str, raw: &mut RawLine<'a>) -> bool {
    scan_compact_fields(line, raw).is_some()
}

fn scan_compact_fields<'a>(line: &'a str, raw: &mut RawLine<'a>) -> Option<()> {
    let b = line.as_bytes();
    let mut seen = 0u32;
    if b.first() != Some(&b'{') || b.last() != Some(&b'}') || b.len() < 2 {
        return None;
    }
    let mut i = 1;
    if b.len() == 2 {
        return Some(());
    }
    loop {
        let (key, next) = scan_plain_string(line, i)?;
        if b.get(next) != Some(&b':') {
            return None;
        }
        i = next + 1;
        let bit = match key {
            "type" => 0,
            "id" => 1,
            "account" => 2,
            "occurred_at" => 3,
            "recorded_at" => 4,
            "stream_version" => 5,
            "position" => 6,
            "commitment" => 7,
            "title" => 8,
            "due" => 9,
            "weight" => 10,
            "reason" => 11,
            "accepted" => 12,
            "escalation" => 13,
            "severity" => 14,
            "summary" => 15,
            "survey" => 16,
            "nps" => 17,
            "csat" => 18,
            "ces" => 19,
            "comment" => 20,
            "channel" => 21,
            "kind" => 22,
            _ => return None,
        };
        if seen & (1 << bit) != 0 {
            return None;
        }
        seen |= 1 << bit;
        let end = || b[i..].iter().position(|&c| c == b',' || c == b'}').map(|k| i + k);
        match bit {
            5 | 6 => {
                let end = end()?;
                let v = scan_integer(&b[i..end])?;
                let v = u64::try_from(v).ok()?;
                if bit == 5 {
                    raw.stream_version = Some(v)
                } else {
                    raw.position = Some(v)
                }
                i = end;
            }
            10 => {
                let end = end()?;
                raw.weight = Some(scan_decimal(&line[i..end])?);
                i = end;
            }
            12 => {
                let end = end()?;
                raw.accepted = Some(match &b[i..end] {
                    b"true" => true,
                    b"false" => false,
                    _ => return None,
                });
                i = end;
            }
            17..=19 => {
                let end = end()?;
                let v = Some(scan_integer(&b[i..end])?);
                match bit {
                    17 => raw.nps = v,
                    18 => raw.csat = v,
                    _ => raw.ces = v,
                }
                i = end;
            }
            _ => {
                let (value, next) = scan_plain_string(line, i)?;
                let value = Some(Text(Cow::Borrowed(value)));
                match bit {
                    0 => raw.ty = value,
                    1 => raw.id = value,
                    2 => raw.account = value,
                    3 => raw.occurred_at = value,
                    4 => raw.recorded_at = value,
                    7 => raw.commitment = value,
                    8 => raw.title = value,
                    9 => raw.due = value,
                    11 => raw.reason = value,
                    13 => raw.escalation = value,
                    14 => raw.severity = value,
                    15 => raw.summary = value,
                    16 => raw.survey = value,
                    20 => raw.comment = value,
                    21 => raw.channel = value,
                    _ => raw.kind = value,
                }
                i = next;
            }
        }
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') if i + 1 == b.len() => return Some(()),
            _ => return None,
        }
    }
}

/// Whether the compact scanner, where it reads `line`, reads what serde_json reads. For the
/// property tests and the fuzz target.
#[cfg(any(test, feature = "testing"))]
pub(crate) fn compact_scan_agrees(line: &str) -> bool {
    let mut fast = RawLine::default();
    !scan_compact(line, &mut fast) || serde_json::from_str::<RawLine<'_>>(line).is_ok_and(|slow| slow == fast)
}

/// A string starting at `line[at]` with no escapes or control characters: its contents and
/// the index after its closing quote.
#[inline]
fn scan_plain_string(line: &str, at: usize) -> Option<(&str, usize)> {
    let b = line.as_bytes();
    if b.get(at) != Some(&b'"') {
        return None;
    }
    let len = string_stop(&b[at + 1..])?;
    let end = at + 1 + len;
    // `end` is at an ASCII byte, so both ends are character boundaries.
    (b[end] == b'"').then(|| (&line[at + 1..end], end + 1))
}

/// The index of the first byte of `b` that ends a plain JSON string: a quote, a backslash or
/// a control character (below 0x20).
///
/// Eight bytes at a time: in a little-endian word, `(x - 0x01…01·n) & !x & 0x80…80` flags the
/// bytes below `n` (borrows can only flag bytes above a true hit, so the lowest flag is
/// exact), and a byte equal to `c` is a byte of `x ^ 0x01…01·c` below 1. With it, parsing in
/// a pinned 1 M-line import took about 950 perf samples instead of 1,302 (BENCHMARKS.md).
#[inline]
fn string_stop(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGHS;
    let mut words = b.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let x = u64::from_le_bytes(w);
        let hits = below(x, 0x20) | below(x ^ (ONES * u64::from(b'"')), 1) | below(x ^ (ONES * u64::from(b'\\')), 1);
        if hits != 0 {
            return Some(at + hits.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    words.remainder().iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20).map(|i| at + i)
}

/// A JSON integer of at most 18 digits, without a leading zero (JSON forbids it).
fn scan_integer(b: &[u8]) -> Option<i64> {
    let (negative, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    // serde_json reads `-0` as a float, so it is left to serde_json.
    if digits.is_empty() || digits.len() > 18 || (digits[0] == b'0' && (digits.len() > 1 || negative)) {
        return None;
    }
    let v = digits.iter().try_fold(0i64, |n, &c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')))?;
    Some(if negative { -v } else { v })
}

/// A JSON number with an optional fraction and no exponent (`1`, `-2.5`), as the nearest
/// `f64`: what serde_json gives with `float_roundtrip`.
fn scan_decimal(s: &str) -> Option<f64> {
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (s, None),
    };
    scan_integer(whole.as_bytes())?;
    if let Some(f) = frac
        && (f.is_empty() || !f.bytes().all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    s.parse().ok()
}

/// Builds the event and envelope fields shared by both forms; `id` is `None` when absent.
fn build_new(raw: &RawLine<'_>, interner: Option<&mut Interner>) -> Parse<(Option<EventId>, NewEvent)> {
    // `ok_or_else`: the error's `String` was otherwise built, and freed, for every line.
    let tag = raw.ty.as_deref().ok_or_else(|| ParseEventError::Json { reason: "missing field `type`".into() })?;
    let kind = EventKind::from_tag(tag).ok_or_else(|| ParseEventError::UnknownType { tag: tag.to_owned() })?;
    let f = Fields { raw, kind, interner: std::cell::RefCell::new(interner) };
    let account = f.key("account", &raw.account, AccountId::new, AccountId::new_in)?;
    let occurred_at = f.time("occurred_at", &raw.occurred_at)?;
    let id = match &raw.id {
        None => None,
        Some(s) => Some(s.parse::<EventId>().map_err(|e| invalid("id", e))?),
    };
    let event = build_event(&f)?;
    // The placeholder id is replaced by the caller; nil never escapes.
    let new = NewEvent { id: EventId::from_bytes([0; 16]), account, occurred_at, event };
    Ok((id, new))
}

impl NewEvent {
    /// Parses one line of the canonical JSON form.
    ///
    /// A line without an `id` gets the deterministic v5 id of its canonical content (see
    /// [`EventId::derive`]), so importing the same line twice yields the same event.
    /// Store-assigned fields (`recorded_at`, `stream_version`, `position`) are refused.
    ///
    /// # Errors
    /// [`ParseEventError`] naming the field at fault.
    ///
    /// # Example
    /// ```
    /// use rapport_core::NewEvent;
    /// let e = NewEvent::from_json_line(
    ///     r#"{"type":"touchpoint","account":"acme","occurred_at":"2025-03-01T09:00:00Z","channel":"call"}"#,
    /// )?;
    /// assert_eq!(e.account.as_str(), "acme");
    /// # Ok::<(), rapport_core::ParseEventError>(())
    /// ```
    pub fn from_json_line(line: &str) -> Result<Self, ParseEventError> {
        Self::parse_line(line, None)
    }

    /// Like [`from_json_line`](Self::from_json_line), sharing key texts through `interner`:
    /// for parsing many lines (an import), where most lines repeat an account.
    ///
    /// # Errors
    /// [`ParseEventError`] naming the field at fault.
    pub fn from_json_line_in(line: &str, interner: &mut Interner) -> Result<Self, ParseEventError> {
        Self::parse_line(line, Some(interner))
    }

    fn parse_line(line: &str, interner: Option<&mut Interner>) -> Result<Self, ParseEventError> {
        let mut raw = RawLine::default();
        parse_raw(line, &mut raw)?;
        refuse_present(&raw.store_assigned(), "is assigned by the store and cannot be submitted")?;
        let (id, mut new) = build_new(&raw, interner)?;
        new.id = match id {
            Some(id) => id,
            None => EventId::derive(&new.canonical_content()),
        };
        Ok(new)
    }

    /// Parses an event from its own fields (the form [`to_body_json`](Self::to_body_json)
    /// writes) and the ones a store keeps apart: the type's tag, the id, the account and the
    /// time. The inverse of `to_body_json`, without building the whole line.
    ///
    /// ```
    /// # use rapport_core::{AccountId, EventId, NewEvent, Timestamp};
    /// let e = NewEvent::from_json_line(
    ///     r#"{"type":"touchpoint","account":"acme","occurred_at":"2025-03-06T10:00:00Z","channel":"call"}"#,
    /// )?;
    /// let body = e.to_body_json();
    /// let back = NewEvent::from_body_json("touchpoint", e.id, e.account.clone(), e.occurred_at, &body)?;
    /// assert_eq!(back, e);
    /// # Ok::<(), rapport_core::ParseEventError>(())
    /// ```
    ///
    /// # Errors
    /// [`ParseEventError`]: an unknown tag, a body that is not the type's fields, or a field
    /// that belongs outside the body.
    pub fn from_body_json(
        tag: &str,
        id: EventId,
        account: AccountId,
        occurred_at: Timestamp,
        body: &str,
    ) -> Result<Self, ParseEventError> {
        let mut raw = RawLine::default();
        parse_raw(body, &mut raw)?;
        let apart = [
            ("type", raw.ty.is_some()),
            ("id", raw.id.is_some()),
            ("account", raw.account.is_some()),
            ("occurred_at", raw.occurred_at.is_some()),
        ];
        let reason = "is not one of the event's own fields";
        refuse_present(&apart, reason)?;
        refuse_present(&raw.store_assigned(), reason)?;
        let kind = EventKind::from_tag(tag).ok_or_else(|| ParseEventError::UnknownType { tag: tag.to_owned() })?;
        raw.ty = Some(Text(Cow::Borrowed(tag)));
        let f = Fields { raw: &raw, kind, interner: std::cell::RefCell::new(None) };
        let event = build_event(&f)?;
        Ok(NewEvent { id, account, occurred_at, event })
    }

    /// The canonical JSON line (without a trailing newline).
    pub fn to_json_line(&self) -> String {
        // Serialising our own types into a String cannot fail: every map key is a string.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The canonical JSON of everything but the id: what a derived v5 id is computed from.
    pub fn canonical_content(&self) -> Vec<u8> {
        serde_json::to_vec(&JsonForm { new: self, header: true, with_id: false, stored: None }).unwrap_or_default()
    }

    /// The canonical JSON of the event's own fields: the line without `type`, `id`, `account`
    /// and `occurred_at`, for stores that keep those in columns of their own. The line is
    /// `{"type":…,"id":…,"account":…,"occurred_at":…` followed by the body's fields.
    ///
    /// ```
    /// # use rapport_core::NewEvent;
    /// let e = NewEvent::from_json_line(
    ///     r#"{"type":"touchpoint","account":"acme","occurred_at":"2025-03-06T10:00:00Z","channel":"call"}"#,
    /// )?;
    /// assert_eq!(e.to_body_json(), r#"{"channel":"call"}"#);
    /// # Ok::<(), rapport_core::ParseEventError>(())
    /// ```
    pub fn to_body_json(&self) -> String {
        serde_json::to_string(&JsonForm { new: self, header: false, with_id: false, stored: None }).unwrap_or_default()
    }
}

impl Envelope {
    /// Parses the stored form: the canonical line plus `recorded_at`, `stream_version` and
    /// `position`, all required, as is `id`.
    ///
    /// # Errors
    /// [`ParseEventError`] naming the field at fault.
    pub fn from_json_line(line: &str) -> Result<Self, ParseEventError> {
        let mut raw = RawLine::default();
        parse_raw(line, &mut raw)?;
        let (id, mut new) = build_new(&raw, None)?;
        let kind = new.event.kind();
        let missing = |field| ParseEventError::MissingField { field, kind };
        new.id = id.ok_or(missing("id"))?;
        let recorded_at = Timestamp::parse(raw.recorded_at.as_deref().ok_or(missing("recorded_at"))?)
            .map_err(|e| invalid("recorded_at", e))?;
        let stream_version = StreamVersion(raw.stream_version.ok_or(missing("stream_version"))?);
        let position = Position(raw.position.ok_or(missing("position"))?);
        Ok(Envelope::new(new, recorded_at, stream_version, position))
    }

    /// The stored JSON form (without a trailing newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

struct Stored {
    recorded_at: Timestamp,
    stream_version: StreamVersion,
    position: Position,
}

struct JsonForm<'a> {
    new: &'a NewEvent,
    /// With `type`, `account` and `occurred_at` (and `id` if `with_id`).
    header: bool,
    with_id: bool,
    stored: Option<Stored>,
}

impl Serialize for JsonForm<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.new;
        let mut m = s.serialize_map(None)?;
        if self.header {
            m.serialize_entry("type", n.event.kind().tag())?;
            if self.with_id {
                m.serialize_entry("id", &n.id)?;
            }
            m.serialize_entry("account", &n.account)?;
            m.serialize_entry("occurred_at", &n.occurred_at)?;
        }
        if let Some(st) = &self.stored {
            m.serialize_entry("recorded_at", &st.recorded_at)?;
            m.serialize_entry("stream_version", &st.stream_version)?;
            m.serialize_entry("position", &st.position)?;
        }
        fn opt<M: SerializeMap>(m: &mut M, k: &'static str, v: &Option<String>) -> Result<(), M::Error> {
            match v {
                Some(v) => m.serialize_entry(k, v),
                None => Ok(()),
            }
        }
        match &n.event {
            Event::CommitmentMade { commitment, title, due, weight } => {
                m.serialize_entry("commitment", commitment)?;
                m.serialize_entry("title", title)?;
                m.serialize_entry("due", due)?;
                m.serialize_entry("weight", weight)?;
            }
            Event::CommitmentRenegotiated { commitment, due, reason } => {
                m.serialize_entry("commitment", commitment)?;
                m.serialize_entry("due", due)?;
                opt(&mut m, "reason", reason)?;
            }
            Event::CommitmentDelivered { commitment, accepted } => {
                m.serialize_entry("commitment", commitment)?;
                m.serialize_entry("accepted", accepted)?;
            }
            Event::CommitmentCancelled { commitment, reason } => {
                m.serialize_entry("commitment", commitment)?;
                opt(&mut m, "reason", reason)?;
            }
            Event::EscalationRaised { escalation, severity, summary } => {
                m.serialize_entry("escalation", escalation)?;
                m.serialize_entry("severity", severity_tag(*severity))?;
                opt(&mut m, "summary", summary)?;
            }
            Event::EscalationAcknowledged { escalation }
            | Event::EscalationResolved { escalation }
            | Event::EscalationReopened { escalation } => {
                m.serialize_entry("escalation", escalation)?;
            }
            Event::SurveyAnswered { survey, score, comment } => {
                m.serialize_entry("survey", survey)?;
                m.serialize_entry(score.field(), &score.value())?;
                opt(&mut m, "comment", comment)?;
            }
            Event::TouchpointHeld { channel } => m.serialize_entry("channel", channel_tag(*channel))?,
            Event::IssueDisclosed { summary } => opt(&mut m, "summary", summary)?,
            Event::AdvocacyGiven { kind } => m.serialize_entry("kind", advocacy_tag(*kind))?,
        }
        m.end()
    }
}

impl Serialize for NewEvent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        JsonForm { new: self, header: true, with_id: true, stored: None }.serialize(s)
    }
}

impl Serialize for Envelope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let new = self.to_new_event();
        let stored =
            Stored { recorded_at: self.recorded_at, stream_version: self.stream_version, position: self.position };
        JsonForm { new: &new, header: true, with_id: true, stored: Some(stored) }.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINES: &[&str] = &[
        r#"{"type":"commitment_made","id":"0192f0c1-7a4b-7cde-8f01-23456789ab01","account":"acme","occurred_at":"2025-03-01T09:00:00Z","commitment":"c-17","title":"SSO","due":"2025-04-01T00:00:00Z","weight":1.0}"#,
        r#"{"type":"commitment_renegotiated","id":"0192f0c1-7a4b-7cde-8f01-23456789ab02","account":"acme","occurred_at":"2025-03-20T09:00:00Z","commitment":"c-17","due":"2025-04-15T00:00:00Z","reason":"vendor delay"}"#,
        r#"{"type":"commitment_renegotiated","id":"0192f0c1-7a4b-7cde-8f01-23456789ab12","account":"acme","occurred_at":"2025-03-20T09:00:00Z","commitment":"c-17","due":"2025-04-15T00:00:00Z"}"#,
        r#"{"type":"commitment_delivered","id":"0192f0c1-7a4b-7cde-8f01-23456789ab03","account":"acme","occurred_at":"2025-04-10T09:00:00Z","commitment":"c-17","accepted":true}"#,
        r#"{"type":"commitment_delivered","id":"0192f0c1-7a4b-7cde-8f01-23456789ab13","account":"acme","occurred_at":"2025-04-10T09:00:00Z","commitment":"c-17","accepted":false}"#,
        r#"{"type":"commitment_cancelled","id":"0192f0c1-7a4b-7cde-8f01-23456789ab04","account":"acme","occurred_at":"2025-03-02T09:00:00Z","commitment":"c-18","reason":"descoped"}"#,
        r#"{"type":"escalation_raised","id":"0192f0c1-7a4b-7cde-8f01-23456789ab05","account":"acme","occurred_at":"2025-03-02T09:00:00Z","escalation":"e-3","severity":"high","summary":"outage"}"#,
        r#"{"type":"escalation_raised","id":"0192f0c1-7a4b-7cde-8f01-23456789ab15","account":"acme","occurred_at":"2025-03-02T09:00:00Z","escalation":"e-4","severity":"critical"}"#,
        r#"{"type":"escalation_acknowledged","id":"0192f0c1-7a4b-7cde-8f01-23456789ab06","account":"acme","occurred_at":"2025-03-02T10:00:00Z","escalation":"e-3"}"#,
        r#"{"type":"escalation_resolved","id":"0192f0c1-7a4b-7cde-8f01-23456789ab07","account":"acme","occurred_at":"2025-03-03T10:00:00Z","escalation":"e-3"}"#,
        r#"{"type":"escalation_reopened","id":"0192f0c1-7a4b-7cde-8f01-23456789ab08","account":"acme","occurred_at":"2025-03-04T10:00:00Z","escalation":"e-3"}"#,
        r#"{"type":"survey_answered","id":"0192f0c1-7a4b-7cde-8f01-23456789ab09","account":"acme","occurred_at":"2025-03-05T10:00:00Z","survey":"q1-2025","nps":9,"comment":"great"}"#,
        r#"{"type":"survey_answered","id":"0192f0c1-7a4b-7cde-8f01-23456789ab19","account":"acme","occurred_at":"2025-03-05T10:00:00Z","survey":"q1-2025","csat":4}"#,
        r#"{"type":"survey_answered","id":"0192f0c1-7a4b-7cde-8f01-23456789ab29","account":"acme","occurred_at":"2025-03-05T10:00:00Z","survey":"q1-2025","ces":2}"#,
        r#"{"type":"touchpoint","id":"0192f0c1-7a4b-7cde-8f01-23456789ab0a","account":"acme","occurred_at":"2025-03-06T10:00:00Z","channel":"meeting"}"#,
        r#"{"type":"issue_disclosed","id":"0192f0c1-7a4b-7cde-8f01-23456789ab0b","account":"acme","occurred_at":"2025-03-07T10:00:00Z","summary":"we double-billed"}"#,
        r#"{"type":"issue_disclosed","id":"0192f0c1-7a4b-7cde-8f01-23456789ab1b","account":"acme","occurred_at":"2025-03-07T10:00:00Z"}"#,
        r#"{"type":"advocacy_given","id":"0192f0c1-7a4b-7cde-8f01-23456789ab0c","account":"acme","occurred_at":"2025-03-08T10:00:00.5Z","kind":"case_study"}"#,
    ];

    #[test]
    fn every_type_round_trips_json_event_json() {
        let mut kinds = std::collections::BTreeSet::new();
        for line in LINES {
            let e = NewEvent::from_json_line(line).unwrap_or_else(|err| panic!("{line}: {err}"));
            kinds.insert(e.event.kind());
            assert_eq!(&e.to_json_line(), line);
            // event → JSON → event
            assert_eq!(NewEvent::from_json_line(&e.to_json_line()).unwrap(), e);
        }
        assert_eq!(kinds.len(), EventKind::ALL.len(), "every type is covered");
    }

    #[test]
    fn every_type_round_trips_through_its_body() {
        for line in LINES {
            let e = NewEvent::from_json_line(line).unwrap();
            let body = e.to_body_json();
            assert!(!body.contains("\"account\"") && !body.contains("\"occurred_at\""), "{body}");
            let tag = e.event.kind().tag();
            let back = NewEvent::from_body_json(tag, e.id, e.account.clone(), e.occurred_at, &body).unwrap();
            assert_eq!(back, e);
            // The header fields belong outside the body; another type's tag does not fit it.
            assert!(NewEvent::from_body_json(tag, e.id, e.account.clone(), e.occurred_at, line).is_err());
        }
        let e = NewEvent::from_json_line(LINES[14]).unwrap();
        let body = e.to_body_json();
        let err = NewEvent::from_body_json("escalation_raised", e.id, e.account, e.occurred_at, &body);
        assert!(err.is_err());
    }

    #[test]
    fn envelope_form_round_trips() {
        let e = NewEvent::from_json_line(LINES[0]).unwrap();
        let env = Envelope::new(e, Timestamp::parse("2025-03-01T09:00:01Z").unwrap(), StreamVersion(1), Position(42));
        let line = env.to_json_line();
        assert!(line.contains(r#""recorded_at":"2025-03-01T09:00:01Z","stream_version":1,"position":42"#));
        assert_eq!(Envelope::from_json_line(&line).unwrap(), env);
        // The submission form refuses store-assigned fields.
        assert!(matches!(
            NewEvent::from_json_line(&line),
            Err(ParseEventError::InvalidField { field: "recorded_at", .. })
        ));
    }

    #[test]
    fn defaults_apply() {
        let e = NewEvent::from_json_line(
            r#"{"type":"commitment_made","account":"a","occurred_at":"2025-03-01T09:00:00Z","commitment":"c","title":"t","due":"2025-04-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert!(matches!(e.event, Event::CommitmentMade { weight, .. } if weight == 1.0));
        let d = NewEvent::from_json_line(
            r#"{"type":"commitment_delivered","account":"a","occurred_at":"2025-03-01T09:00:00Z","commitment":"c"}"#,
        )
        .unwrap();
        assert!(matches!(d.event, Event::CommitmentDelivered { accepted: true, .. }));
    }

    #[test]
    fn missing_id_derives_a_stable_v5() {
        let line = r#"{"type":"touchpoint","account":"acme","occurred_at":"2025-03-06T10:00:00Z","channel":"call"}"#;
        let a = NewEvent::from_json_line(line).unwrap();
        let b = NewEvent::from_json_line(
            r#"{"account":"acme","type":"touchpoint","channel":"call","occurred_at":"2025-03-06T11:00:00+01:00"}"#,
        )
        .unwrap();
        assert_eq!(a.id.as_uuid().get_version_num(), 5);
        assert_eq!(a.id, b.id, "the same content in another key order and offset");
        let c = NewEvent::from_json_line(&line.replace("call", "email")).unwrap();
        assert_ne!(a.id, c.id);
    }

    fn err(line: &str) -> ParseEventError {
        NewEvent::from_json_line(line).unwrap_err()
    }

    #[test]
    fn refusals_name_the_field() {
        let base = r#""account":"acme","occurred_at":"2025-03-06T10:00:00Z""#;
        let e = err(&format!(r#"{{"type":"touchpoint",{base},"channel":"call","chanel":"x"}}"#));
        assert!(e.to_string().contains("unknown field `chanel`"), "{e}");
        let e = err(&format!(r#"{{"type":"touchpoint",{base},"channel":"fax"}}"#));
        assert_eq!(e.field(), Some("channel"));
        let e = err(&format!(r#"{{"type":"touchpoint",{base},"channel":"call","weight":2.0}}"#));
        assert!(matches!(e, ParseEventError::FieldNotAllowed { field: "weight", .. }), "{e}");
        // Of several misplaced fields, the first in OPTIONAL_FIELDS order is named, wherever
        // the line puts it.
        let e =
            err(&format!(r#"{{"type":"touchpoint",{base},"kind":"review","channel":"call","summary":"s","due":"x"}}"#));
        assert!(matches!(e, ParseEventError::FieldNotAllowed { field: "due", .. }), "{e}");
        // Each type takes exactly its own fields: every other optional field is refused.
        let own: [(&str, &str); 3] = [
            ("commitment_delivered", r#""commitment":"c","accepted":true"#),
            ("escalation_raised", r#""escalation":"x","severity":"low","summary":"s""#),
            ("advocacy_given", r#""kind":"review""#),
        ];
        for (ty, fields) in own {
            NewEvent::from_json_line(&format!(r#"{{"type":"{ty}",{base},{fields}}}"#)).unwrap();
            for extra in OPTIONAL_FIELDS.iter().filter(|f| !fields.contains(&format!(r#""{f}""#))) {
                let value = match *extra {
                    "weight" | "nps" | "csat" | "ces" => "1",
                    "accepted" => "true",
                    _ => r#""x""#,
                };
                let e = err(&format!(r#"{{"type":"{ty}",{base},{fields},"{extra}":{value}}}"#));
                assert!(
                    matches!(e, ParseEventError::FieldNotAllowed { field, .. } if field == *extra),
                    "{ty} {extra}: {e}"
                );
            }
        }
        let e = err(&format!(r#"{{"type":"touch",{base}}}"#));
        assert!(matches!(e, ParseEventError::UnknownType { .. }));
        let e = err(&format!(r#"{{"type":"survey_answered",{base},"survey":"s","nps":11}}"#));
        assert_eq!(e.to_string(), "nps: 11 is outside 0..=10");
        let e = err(&format!(r#"{{"type":"survey_answered",{base},"survey":"s","nps":9,"csat":4}}"#));
        assert_eq!(e.field(), Some("nps"));
        let e = err(&format!(r#"{{"type":"survey_answered",{base},"survey":"s","ces":-1}}"#));
        assert_eq!(e.field(), Some("ces"));
        let e = err(&format!(r#"{{"type":"escalation_raised",{base},"escalation":"e","severity":"urgent"}}"#));
        assert_eq!(e.field(), Some("severity"));
        let e = err(&format!(r#"{{"type":"escalation_raised",{base},"severity":"low"}}"#));
        assert!(matches!(e, ParseEventError::MissingField { field: "escalation", .. }));
        let e = err(r#"{"type":"touchpoint","account":"acme","occurred_at":"2025-02-30T10:00:00Z","channel":"call"}"#);
        assert_eq!(e.field(), Some("occurred_at"));
        let e = err(r#"{"type":"touchpoint","account":"","occurred_at":"2025-02-03T10:00:00Z","channel":"call"}"#);
        assert_eq!(e.field(), Some("account"));
        let e = err(&format!(r#"{{"type":"issue_disclosed",{base},"summary":"{}"}}"#, "x".repeat(4097)));
        assert_eq!(e.field(), Some("summary"));
        let e = err(&format!(
            r#"{{"type":"commitment_made",{base},"commitment":"c","title":"t","due":"2025-04-01T00:00:00Z","weight":0}}"#
        ));
        assert_eq!(e.field(), Some("weight"));
        let e = err(&format!(r#"{{"type":"touchpoint",{base},"channel":"call","id":"nope"}}"#));
        assert_eq!(e.field(), Some("id"));
        assert!(matches!(err("not json"), ParseEventError::Json { .. }));
        assert!(matches!(err("[1,2]"), ParseEventError::Json { .. }));
        assert!(matches!(err(&" ".repeat(LINE_BYTES_MAX + 1)), ParseEventError::LineTooLong { .. }));
    }

    #[test]
    fn the_compact_scanner_reads_what_serde_reads() {
        let base = r#""account":"acme","occurred_at":"2025-02-03T10:00:00Z""#;
        for line in [
            "{}".to_string(),
            format!(r#"{{"type":"touchpoint",{base},"channel":"call"}}"#),
            format!(r#"{{"type":"touchpoint",{base},"channel":"call","channel":"call"}}"#),
            format!(r#"{{"type":"touchpoint",{base},"channel":"c\u0061ll"}}"#),
            format!(r#"{{ "type":"touchpoint",{base},"channel":"call"}}"#),
            format!(r#"{{"type":"touchpoint",{base},"channel":null}}"#),
            format!(r#"{{"type":"touchpoint",{base},"extra":1}}"#),
            format!(r#"{{"type":"survey_answered",{base},"survey":"s","nps":-0}}"#),
            format!(r#"{{"type":"survey_answered",{base},"survey":"s","nps":07}}"#),
            format!(r#"{{"type":"survey_answered",{base},"survey":"s","nps":7.0}}"#),
            format!(r#"{{"type":"survey_answered",{base},"survey":"s","nps":7}} "#),
            format!(r#"{{"type":"commitment_made",{base},"weight":1.}}"#),
            format!(r#"{{"type":"commitment_made",{base},"weight":-0.25}}"#),
            format!(r#"{{"type":"commitment_made",{base},"weight":0.1000000000000000055511151231257827}}"#),
            format!(r#"{{"type":"commitment_made",{base},"weight":1e3}}"#),
            format!(r#"{{"type":"commitment_delivered",{base},"accepted":tru}}"#),
            format!(r#"{{"type":"commitment_delivered",{base},"accepted":false}}"#),
            format!(r#"{{"type":"issue_disclosed",{base},"summary":"a,b}}c \"q\" é"}}"#),
            format!(r#"{{"type":"issue_disclosed",{base},"summary":"tab	here"}}"#),
            format!(r#"{{"type":"issue_disclosed",{base},"position":18446744073709551615}}"#),
            format!(r#"{{"type":"issue_disclosed",{base},"position":-1}}"#),
            format!(r#"{{"type":"issue_disclosed",{base},}}"#),
            format!(r#"{{"type":"issue_disclosed",{base}}}}}"#),
            r#"{"type""#.to_string(),
            r#"{"type":}"#.to_string(),
            r#"{,}"#.to_string(),
        ] {
            assert!(compact_scan_agrees(&line), "{line}");
        }
        // The common shapes do take the fast path.
        let canonical = format!(
            r#"{{"type":"commitment_made",{base},"commitment":"c","title":"t","due":"2025-04-01T00:00:00Z","weight":1.5}}"#
        );
        assert!(scan_compact(&canonical, &mut RawLine::default()));
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(crate::testing::cases(64)))]

        /// The word-at-a-time search stops where a byte-at-a-time one does, whatever the
        /// bytes (quotes, backslashes, control characters, UTF-8 and bytes near the limits).
        #[test]
        fn string_stop_agrees_with_a_byte_loop(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    4 => 0x20u8..0x7f,
                    1 => proptest::sample::select(vec![b'"', b'\\', 0x00, 0x1f, 0x20, 0x21, 0x5b, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff]),
                    1 => proptest::num::u8::ANY,
                ],
                0..80,
            ),
        ) {
            let expected = bytes.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
            proptest::prop_assert_eq!(string_stop(&bytes), expected);
        }

        #[test]
        fn compact_scanner_agrees_on_canonical_and_mutated_lines(
            events in crate::testing::strategies::arb_account_history(),
            edits in proptest::collection::vec((0usize..4096, 0u8..128), 0..4),
        ) {
            for e in &events {
                let line = e.to_json_line();
                if !line.contains('\\') {
                    proptest::prop_assert!(scan_compact(&line, &mut RawLine::default()), "{}", line);
                }
                proptest::prop_assert!(compact_scan_agrees(&line), "{}", line);
                proptest::prop_assert_eq!(&NewEvent::from_json_line(&line).unwrap(), e);
                let mut bytes = line.clone().into_bytes();
                for &(at, byte) in &edits {
                    let at = at % bytes.len();
                    bytes[at] = byte;
                }
                if let Ok(mutated) = std::str::from_utf8(&bytes) {
                    proptest::prop_assert!(compact_scan_agrees(mutated), "{}", mutated);
                }
            }
        }
    }
}

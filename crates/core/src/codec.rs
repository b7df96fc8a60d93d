//! The binary form of an event: what the file store writes as a record's content
//! (`docs/log-format.md`, "Records") and a runner's checkpoint keeps for the events it holds.
//! Written and read by hand, both ways, from one specification: the encoder [`encode_event`]
//! and the decoder [`decode_event`] mirror each other field by field, and a property test (in
//! the file store, beside the record format) checks that every event reads back as written.

pub use crate::bytes::DecodeError;
use crate::bytes::{Read, Reader, fail, text, varint};
use crate::event::SCHEMA_VERSION_CURRENT;
use crate::meta::read_section;
use crate::profile::read_profile;
use crate::{
    AccountId, AccountRef, AdvocacyKind, Channel, Envelope, Event, EventId, EventRef, KeyRef, MetaRef, Metadata,
    NewEvent, Severity, SurveyScore, Timestamp,
};

// Encoding rules (the spec's "content" grammar): the id as its 16
// bytes; i64 and f64 as 8 little-endian bytes; u8 and bool as one byte (a bool is 0 or 1); a
// string as its length in unsigned LEB128 (the shortest form) and its UTF-8 bytes; an optional
// string as a 0 byte, or a 1 byte and the string; the event type as its type code in LEB128
// (its variant index plus TYPE_CODE_STRIDE times its schema version less one), then its fields
// in the spec's table order, then (schema version 2) the metadata section.

/// Type codes of one schema version are `variant + TYPE_CODE_STRIDE * (version - 1)`: version 1
/// (every record the first builds wrote) is the variant index alone, so those records read as
/// they always did, and each later version takes the next block of 32 codes.
const TYPE_CODE_STRIDE: u64 = 32;

/// Variant indexes, frozen since version 1 of the format.
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
    /// Added at schema version 2: no version-1 code.
    pub(super) const ACCOUNT_PROFILED: u64 = 12;
    /// Added at schema version 2: no version-1 code.
    pub(super) const ASSESSMENT_RECORDED: u64 = 13;
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

/// Appends `e`'s binary form to `out`, its type at the schema version this build writes
/// ([`EventKind::schema_version`](crate::EventKind::schema_version)), metadata included.
pub fn encode_event(e: &NewEvent, out: &mut Vec<u8>) {
    encode_parts(e.id, &e.account, e.occurred_at, &e.event, Some(&e.meta), false, out);
}

/// Appends the binary form of `e`'s stripped form ([`crate::personal`]): as
/// [`encode_event`], with a required text empty, an optional one and the profile's owner
/// absent, and no actor. What a store that seals personal text writes beside the sealed text.
pub fn encode_event_stripped(e: &NewEvent, out: &mut Vec<u8>) {
    encode_parts(e.id, &e.account, e.occurred_at, &e.event, Some(&e.meta), true, out);
}

/// Appends the binary form of the event `e` holds to `out`: its content, as
/// [`encode_event`] writes it; the fields the log assigned are the caller's to keep.
pub fn encode_envelope(e: &Envelope, out: &mut Vec<u8>) {
    encode_parts(e.id, &e.account, e.occurred_at, &e.event, Some(&e.meta), false, out);
}

/// The event needs a later schema version than 1 ([`NewEvent::min_schema_version`]): it
/// carries metadata, or is of a type added since.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotInVersion1 {
    /// It carries metadata.
    #[error("the event carries metadata, which schema version 1 cannot hold")]
    Metadata,
    /// Its type was added after version 1.
    #[error("{0} events were added at schema version 2; version 1 cannot hold them")]
    Type(crate::EventKind),
}

/// Appends `e`'s binary form at schema version 1, the form logs created by earlier builds hold
/// (the file store's format versions 1 and 2 keep writing it, so older builds still read them).
///
/// # Errors
/// [`NotInVersion1`] when `e` carries metadata or is of a type added since; nothing is
/// written then.
pub fn encode_event_v1(e: &NewEvent, out: &mut Vec<u8>) -> Result<(), NotInVersion1> {
    if !e.meta.is_empty() {
        return Err(NotInVersion1::Metadata);
    }
    let kind = e.event.kind();
    if kind.first_schema_version() > 1 {
        return Err(NotInVersion1::Type(kind));
    }
    encode_parts(e.id, &e.account, e.occurred_at, &e.event, None, false, out);
    Ok(())
}

/// `meta`: `None` writes schema version 1 (no metadata section), `Some` the current version.
fn encode_parts(
    id: EventId,
    account: &AccountId,
    occurred_at: Timestamp,
    event: &Event,
    meta: Option<&Metadata>,
    strip: bool,
    out: &mut Vec<u8>,
) {
    let block = match meta {
        None => 0,
        Some(_) => TYPE_CODE_STRIDE * u64::from(SCHEMA_VERSION_CURRENT - 1),
    };
    let code = |out: &mut Vec<u8>, variant: u64| varint(out, variant + block);
    #[inline]
    fn maybe(out: &mut Vec<u8>, s: Option<&str>, strip: bool) {
        match s.filter(|_| !strip) {
            None => out.push(0),
            Some(s) => {
                out.push(1);
                text(out, s);
            }
        }
    }
    let time = |out: &mut Vec<u8>, t: &Timestamp| out.extend_from_slice(&t.unix_nanos().to_le_bytes());
    out.extend_from_slice(&id.to_bytes());
    text(out, account.as_str());
    time(out, &occurred_at);
    match event {
        Event::CommitmentMade { commitment, title, due, weight } => {
            code(out, variant::COMMITMENT_MADE);
            text(out, commitment.as_str());
            text(out, if strip { "" } else { title });
            time(out, due);
            out.extend_from_slice(&weight.to_le_bytes());
        }
        Event::CommitmentRenegotiated { commitment, due, reason } => {
            code(out, variant::COMMITMENT_RENEGOTIATED);
            text(out, commitment.as_str());
            time(out, due);
            maybe(out, reason.as_deref(), strip);
        }
        Event::CommitmentDelivered { commitment, accepted } => {
            code(out, variant::COMMITMENT_DELIVERED);
            text(out, commitment.as_str());
            out.push(u8::from(*accepted));
        }
        Event::CommitmentCancelled { commitment, reason } => {
            code(out, variant::COMMITMENT_CANCELLED);
            text(out, commitment.as_str());
            maybe(out, reason.as_deref(), strip);
        }
        Event::EscalationRaised { escalation, severity, summary } => {
            code(out, variant::ESCALATION_RAISED);
            text(out, escalation.as_str());
            out.push(code_of(&SEVERITIES, severity));
            maybe(out, summary.as_deref(), strip);
        }
        Event::EscalationAcknowledged { escalation } => {
            code(out, variant::ESCALATION_ACKNOWLEDGED);
            text(out, escalation.as_str());
        }
        Event::EscalationResolved { escalation } => {
            code(out, variant::ESCALATION_RESOLVED);
            text(out, escalation.as_str());
        }
        Event::EscalationReopened { escalation } => {
            code(out, variant::ESCALATION_REOPENED);
            text(out, escalation.as_str());
        }
        Event::SurveyAnswered { survey, score, comment } => {
            code(out, variant::SURVEY_ANSWERED);
            text(out, survey.as_str());
            out.push(measure_code(score));
            out.push(score.value());
            maybe(out, comment.as_deref(), strip);
        }
        Event::TouchpointHeld { channel } => {
            code(out, variant::TOUCHPOINT);
            out.push(code_of(&CHANNELS, channel));
        }
        Event::IssueDisclosed { summary } => {
            code(out, variant::ISSUE_DISCLOSED);
            maybe(out, summary.as_deref(), strip);
        }
        Event::AdvocacyGiven { kind } => {
            code(out, variant::ADVOCACY_GIVEN);
            out.push(code_of(&ADVOCACY, kind));
        }
        Event::AccountProfiled { profile } => {
            code(out, variant::ACCOUNT_PROFILED);
            if strip {
                profile.encode_stripped(out);
            } else {
                profile.encode(out);
            }
        }
        Event::AssessmentRecorded { sentiment, reason, valid_until } => {
            code(out, variant::ASSESSMENT_RECORDED);
            out.push(*sentiment);
            text(out, if strip { "" } else { reason });
            match valid_until {
                None => out.push(0),
                Some(t) => {
                    out.push(1);
                    time(out, t);
                }
            }
        }
    }
    match meta {
        Some(meta) if strip => meta.encode_stripped(out),
        Some(meta) => meta.encode(out),
        None => {}
    }
}

/// A key (account id or item key), checked as the owned keys are.
#[inline(always)]
fn key<'a>(r: &mut Reader<'a>, what: &str) -> Read<KeyRef<'a>> {
    let at = r.at;
    KeyRef::new(r.text(what)?).map_err(|e| fail(at, format!("{what}: {e}")))
}

/// The schema version a content's event was written at, read from its type code alone (the
/// rest is not checked): for a reader that must refuse versions a container does not hold.
///
/// # Errors
/// The bytes end before the type code, or it is in the long form.
pub fn schema_version_of(b: &[u8]) -> Result<u32, DecodeError> {
    let mut r = Reader { b, at: 16 };
    let len = r.varint("account").map_err(|e| *e)?;
    r.at = usize::try_from(len)
        .ok()
        .and_then(|n| r.at.checked_add(n))
        .and_then(|at| at.checked_add(8))
        .unwrap_or(usize::MAX);
    let code = r.varint("event type").map_err(|e| *e)?;
    Ok(u32::try_from(code / TYPE_CODE_STRIDE).unwrap_or(u32::MAX).saturating_add(1))
}

/// An event's content read in place by [`decode_content`]: what [`encode_event`] wrote, with
/// the account, keys and text borrowed from the bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Content<'a> {
    /// Its id.
    pub id: EventId,
    /// Its account.
    pub account: AccountRef<'a>,
    /// When it happened.
    pub occurred_at: Timestamp,
    /// What happened.
    pub event: EventRef<'a>,
    /// Its metadata (empty for a record of schema version 1).
    pub meta: MetaRef<'a>,
    /// The schema version of its type the record was written in: older versions were upcast
    /// to the current one ([`EventKind::schema_version`](crate::EventKind::schema_version)).
    pub schema_version: u32,
}

/// Where the bytes being read keep their event's personal text ([`crate::personal`]): what the
/// content may then hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextPlace {
    /// In the content itself (the file store's formats 1 to 3, a runner's checkpoint).
    Content,
    /// Sealed beside the content (a format-4 record with a sealed section): the content holds
    /// the stripped form, its free-text slot empty (`""` where the type requires text, absent
    /// where it is optional), no profile owner, no `actor`.
    Sealed,
    /// Nowhere (a format-4 record without a sealed section): the event has no personal text.
    Nowhere,
}

/// Reads the binary form [`encode_event`] wrote (all of `b`), sharing account ids through
/// `intern`; `place` says where its personal text is kept.
///
/// # Errors
/// Malformed bytes, or a field that breaks the schema's rules, with the offset in `b`.
pub fn decode_event(
    b: &[u8],
    place: TextPlace,
    intern: &mut dyn FnMut(&str) -> Result<AccountId, String>,
) -> Result<NewEvent, DecodeError> {
    let c = decode_content(b, place)?;
    // The account's text was checked; an interner may still refuse it (its own limits).
    let account =
        intern(c.account.as_str()).map_err(|e| DecodeError { offset: 16, reason: format!("account: {e}") })?;
    Ok(NewEvent {
        id: c.id,
        account,
        occurred_at: c.occurred_at,
        event: c.event.to_event(),
        meta: c.meta.to_metadata(),
    })
}

/// Reads the binary form [`encode_event`] wrote (all of `b`) in place: nothing is allocated.
/// The one decoder of the format; [`decode_event`] owns what it reads.
///
/// # Errors
/// Malformed bytes, or a field that breaks the schema's rules, with the offset in `b`.
#[inline]
pub fn decode_content(b: &[u8], place: TextPlace) -> Result<Content<'_>, DecodeError> {
    read_content(b, place).map_err(|e| *e)
}

/// An assessment's fields (of an event that occurred at `occurred_at`), checked by the rules
/// [`check_event`](crate::validate::check_event) applies.
fn read_assessment<'a>(r: &mut Reader<'a>, occurred_at: Timestamp) -> Read<EventRef<'a>> {
    let at = r.at;
    let sentiment = r.byte("sentiment")?;
    if !crate::event::SENTIMENT_RANGE.contains(&sentiment) {
        return Err(fail(at, format!("sentiment: {sentiment} is outside 1..=5")));
    }
    let reason = r.text("reason")?;
    let valid_until = if r.flag("valid_until")? {
        let at = r.at;
        let until = r.time("valid_until")?;
        if until <= occurred_at {
            return Err(fail(at, format!("valid_until: {until} is not after occurred_at {occurred_at}")));
        }
        Some(until)
    } else {
        None
    };
    Ok(EventRef::AssessmentRecorded { sentiment, reason, valid_until })
}

/// A commitment's weight: finite and positive, as every build has admitted.
#[inline]
fn weight(r: &mut Reader<'_>) -> Read<f64> {
    let at = r.at;
    let w = f64::from_le_bytes(r.eight("weight")?);
    if crate::validate::weight_is_valid(w) {
        Ok(w)
    } else {
        Err(fail(at, format!("weight: {w} is not a finite positive number")))
    }
}

/// Personal text where `place` lets none be: out of an erasure's reach.
#[cold]
fn text_in_the_clear(place: TextPlace) -> Box<DecodeError> {
    let reason = match place {
        TextPlace::Sealed => "personal text beside the sealed section (a sealed record holds its event stripped)",
        _ => "personal text in the clear without a sealed section",
    };
    fail(0, reason)
}

/// A type code past the current schema version's block.
#[cold]
fn newer_schema(at: usize, code: u64) -> Box<DecodeError> {
    let version = code / TYPE_CODE_STRIDE + 1;
    fail(
        at,
        format!("event type code {code} is schema version {version}; this build reads 1 to {SCHEMA_VERSION_CURRENT}"),
    )
}

#[inline]
fn read_content(b: &[u8], place: TextPlace) -> Read<Content<'_>> {
    let mut r = Reader { b, at: 0 };
    let mut id = [0u8; 16];
    id.copy_from_slice(r.bytes(16, "id")?);
    let at = r.at;
    let account = r.text("account")?;
    crate::id::check_key(account).map_err(|e| fail(at, format!("account: {e}")))?;
    let account = AccountRef::checked(account);
    let occurred_at = r.time("occurred_at")?;
    let at = r.at;
    let code = r.varint("event type")?;
    if code >= TYPE_CODE_STRIDE * u64::from(SCHEMA_VERSION_CURRENT) {
        return Err(newer_schema(at, code));
    }
    let event = match code % TYPE_CODE_STRIDE {
        variant::COMMITMENT_MADE => EventRef::CommitmentMade {
            commitment: key(&mut r, "commitment")?,
            title: r.text("title")?,
            due: r.time("due")?,
            weight: weight(&mut r)?,
        },
        variant::COMMITMENT_RENEGOTIATED => EventRef::CommitmentRenegotiated {
            commitment: key(&mut r, "commitment")?,
            due: r.time("due")?,
            reason: r.maybe("reason")?,
        },
        variant::COMMITMENT_DELIVERED => {
            EventRef::CommitmentDelivered { commitment: key(&mut r, "commitment")?, accepted: r.flag("accepted")? }
        }
        variant::COMMITMENT_CANCELLED => {
            EventRef::CommitmentCancelled { commitment: key(&mut r, "commitment")?, reason: r.maybe("reason")? }
        }
        variant::ESCALATION_RAISED => EventRef::EscalationRaised {
            escalation: key(&mut r, "escalation")?,
            severity: r.code(&SEVERITIES, "severity")?,
            summary: r.maybe("summary")?,
        },
        variant::ESCALATION_ACKNOWLEDGED => EventRef::EscalationAcknowledged { escalation: key(&mut r, "escalation")? },
        variant::ESCALATION_RESOLVED => EventRef::EscalationResolved { escalation: key(&mut r, "escalation")? },
        variant::ESCALATION_REOPENED => EventRef::EscalationReopened { escalation: key(&mut r, "escalation")? },
        variant::SURVEY_ANSWERED => {
            let survey = key(&mut r, "survey")?;
            let measure: fn(u8) -> SurveyScore =
                r.code(&[SurveyScore::Nps, SurveyScore::Csat, SurveyScore::Ces], "survey measure")?;
            let at = r.at;
            let score = measure(r.byte("survey value")?);
            if !score.in_range() {
                return Err(fail(at, format!("survey value: {} is outside {:?}", score.value(), score.range())));
            }
            EventRef::SurveyAnswered { survey, score, comment: r.maybe("comment")? }
        }
        variant::TOUCHPOINT => EventRef::TouchpointHeld { channel: r.code(&CHANNELS, "channel")? },
        variant::ISSUE_DISCLOSED => EventRef::IssueDisclosed { summary: r.maybe("summary")? },
        variant::ADVOCACY_GIVEN => EventRef::AdvocacyGiven { kind: r.code(&ADVOCACY, "advocacy")? },
        variant::ACCOUNT_PROFILED if code >= TYPE_CODE_STRIDE => {
            EventRef::AccountProfiled { profile: read_profile(&mut r, account.as_str())? }
        }
        variant::ASSESSMENT_RECORDED if code >= TYPE_CODE_STRIDE => read_assessment(&mut r, occurred_at)?,
        other => return Err(fail(at, format!("unknown event type {other} (code {code})"))),
    };
    let meta = if code < TYPE_CODE_STRIDE {
        // The upcast from version 1 to 2: the same fields; version 2 adds metadata, which a
        // version-1 record has none of.
        MetaRef::EMPTY
    } else {
        let start = r.at;
        match r.byte("metadata")? {
            0 => MetaRef::EMPTY,
            flags => {
                read_section(flags, &mut r, None)?;
                MetaRef::encoded(&b[start..r.at])
            }
        }
    };
    if r.at != b.len() {
        return Err(fail(r.at, format!("{} bytes after the event's last field", b.len() - r.at)));
    }
    if place != TextPlace::Content && !crate::personal::content_holds_none(&event, &meta, place == TextPlace::Sealed) {
        return Err(text_in_the_clear(place));
    }
    // Below the bound checked above, so at most the current version.
    let schema_version = (code / TYPE_CODE_STRIDE) as u32 + 1;
    Ok(Content { id: EventId::from_bytes(id), account, occurred_at, event, meta, schema_version })
}

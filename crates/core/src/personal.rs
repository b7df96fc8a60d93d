//! Personal text: the free text of an event (a commitment's title, a renegotiation's or
//! cancellation's reason, an escalation's or disclosure's summary, a survey comment, an
//! assessment's reason, a profile's owner) and who recorded it (metadata `actor`). Scores never
//! read it, so a store may keep it sealed apart from the rest of the event ([`crate::seal`]) and
//! destroy its key to erase it (`docs/privacy.md`).
//!
//! [`PersonalText::take`] takes it out of an event, leaving the event's **stripped form**: a
//! required text (`title`, an assessment's `reason`) empty, an optional one (reasons, summaries,
//! comments, the owner) absent, no actor. [`PersonalText::restore`] puts it back. Every event
//! type holds at most one free-text field, so the personal text is two slots: the text and the
//! actor.

use crate::bytes::{DecodeError, Reader};
use crate::meta::MetaRef;
use crate::{Event, EventRef, Metadata, TEXT_BYTES_MAX, Timestamp};

/// Whether an event's personal text is here ([`Envelope::text`](crate::Envelope::text),
/// [`EnvelopeRef::text`](crate::EnvelopeRef::text)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub enum TextState {
    /// Here as it was recorded (or the event has none).
    #[default]
    Present,
    /// Sealed in the store and not opened by this read: a scan lends events so (folding needs
    /// no text, and opening costs time). The event is in its stripped form; an owned read
    /// (`read_stream`, `read_all`) opens it.
    Withheld,
    /// Erased: the key that sealed it was destroyed (`Ledger::erase`, a retention policy). The
    /// event is in its stripped form for good; everything else about it is as recorded.
    Erased,
}

/// An event's personal text, taken out of it. Its `Debug` shows lengths, never the text.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct PersonalText {
    text: Option<String>,
    actor: Option<String>,
}

impl std::fmt::Debug for PersonalText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonalText")
            .field("text_bytes", &self.text.as_ref().map(String::len))
            .field("actor_bytes", &self.actor.as_ref().map(String::len))
            .finish()
    }
}

/// The event's one free-text field, if its type has one.
enum Slot<'a> {
    Required(&'a mut String),
    Optional(&'a mut Option<String>),
}

fn slot(event: &mut Event) -> Option<Slot<'_>> {
    Some(match event {
        Event::CommitmentMade { title, .. } => Slot::Required(title),
        Event::AssessmentRecorded { reason, .. } => Slot::Required(reason),
        Event::CommitmentRenegotiated { reason, .. } | Event::CommitmentCancelled { reason, .. } => {
            Slot::Optional(reason)
        }
        Event::EscalationRaised { summary, .. } | Event::IssueDisclosed { summary } => Slot::Optional(summary),
        Event::SurveyAnswered { comment, .. } => Slot::Optional(comment),
        Event::AccountProfiled { profile } => Slot::Optional(&mut profile.owner),
        Event::CommitmentDelivered { .. }
        | Event::EscalationAcknowledged { .. }
        | Event::EscalationResolved { .. }
        | Event::EscalationReopened { .. }
        | Event::TouchpointHeld { .. }
        | Event::AdvocacyGiven { .. } => return None,
    })
}

/// Whether a record's content (its event read in place) holds no personal text but what a
/// sealing store leaves in it: beside a sealed section (`sealed`), the stripped form (the
/// free-text slot empty: `""` where [`slot`] is required, absent where optional; no profile
/// owner, no `actor`); without one, none at all (so no type whose text is required). The
/// table is [`slot`]'s, read from a view; the codec checks format-4 records with it.
#[inline]
pub(crate) fn content_holds_none(event: &EventRef<'_>, meta: &MetaRef<'_>, sealed: bool) -> bool {
    // Whether the type requires its text, and whether the content fills the slot.
    let (required, filled) = match event {
        EventRef::CommitmentMade { title: text, .. } | EventRef::AssessmentRecorded { reason: text, .. } => {
            (true, !text.is_empty())
        }
        EventRef::CommitmentRenegotiated { reason: text, .. }
        | EventRef::CommitmentCancelled { reason: text, .. }
        | EventRef::EscalationRaised { summary: text, .. }
        | EventRef::IssueDisclosed { summary: text }
        | EventRef::SurveyAnswered { comment: text, .. } => (false, text.is_some()),
        EventRef::AccountProfiled { profile } => (false, profile.has_owner()),
        EventRef::CommitmentDelivered { .. }
        | EventRef::EscalationAcknowledged { .. }
        | EventRef::EscalationResolved { .. }
        | EventRef::EscalationReopened { .. }
        | EventRef::TouchpointHeld { .. }
        | EventRef::AdvocacyGiven { .. } => (false, false),
    };
    !filled && !meta.has_actor() && (sealed || !required)
}

/// The event's free text ([`Event::text`]) or a profile's owner, if it has either.
fn text_of(event: &Event) -> Option<&str> {
    match event {
        Event::AccountProfiled { profile } => profile.owner.as_deref(),
        _ => event.text().map(|(_, text)| text),
    }
}

/// Writes the two slots of the plaintext form ([`PersonalText::encode`]).
fn write_slots(text: Option<&str>, actor: Option<&str>, out: &mut Vec<u8>) {
    for s in [text, actor] {
        match s {
            None => out.push(0),
            Some(s) => {
                out.push(1);
                crate::bytes::text(out, s);
            }
        }
    }
}

impl PersonalText {
    /// Takes the personal text out of `event` and `meta`, leaving their stripped form.
    pub fn take(event: &mut Event, meta: &mut Metadata) -> Self {
        let text = match slot(event) {
            Some(Slot::Required(s)) => Some(std::mem::take(s)),
            Some(Slot::Optional(s)) => s.take(),
            None => None,
        };
        Self { text, actor: meta.take_actor() }
    }

    /// Puts the text back into `event` and `meta` (their stripped form, as
    /// [`take`](Self::take) left them).
    pub fn restore(self, event: &mut Event, meta: &mut Metadata) {
        match slot(event) {
            Some(Slot::Required(s)) => *s = self.text.unwrap_or_default(),
            Some(Slot::Optional(s)) => *s = self.text,
            None => {}
        }
        if let Some(actor) = self.actor {
            meta.put_actor(actor);
        }
    }

    /// Whether `event` and `meta` hold any personal text (a store that seals text must seal
    /// theirs).
    pub fn is_in(event: &Event, meta: &Metadata) -> bool {
        text_of(event).is_some() || meta.actor().is_some()
    }

    /// Whether `event` and `meta`, as a store that seals text read them from where it keeps
    /// events, hold no personal text in the clear: with their text sealed apart (`sealed`), the
    /// stripped form ([`take`](Self::take)'s); without, none at all. A store refuses an event
    /// that breaks this as damage: text in the clear there is text an erasure, destroying
    /// the sealing key, would never reach.
    pub fn none_in_the_clear(event: &Event, meta: &Metadata, sealed: bool) -> bool {
        content_holds_none(&event.view(), &meta.view(), sealed)
    }

    /// Appends the plaintext form ([`encode`](Self::encode)) of the personal text `event` and
    /// `meta` hold, without taking it out; returns whether there was any (when not, nothing
    /// needs sealing and `out` holds two absent slots).
    pub fn encode_of(event: &Event, meta: &Metadata, out: &mut Vec<u8>) -> bool {
        let (text, actor) = (text_of(event), meta.actor());
        write_slots(text, actor, out);
        text.is_some() || actor.is_some()
    }

    /// Whether there is no text at all (the event needs nothing sealed).
    pub fn is_empty(&self) -> bool {
        self.text.is_none() && self.actor.is_none()
    }

    /// Appends the plaintext form sealed at rest: two slots (the text, the actor), each a `0`
    /// byte when absent or a `1` byte and the string (LEB128 length, UTF-8 bytes).
    pub fn encode(&self, out: &mut Vec<u8>) {
        write_slots(self.text.as_deref(), self.actor.as_deref(), out);
    }

    /// Reads what [`encode`](Self::encode) wrote (all of `bytes`).
    ///
    /// # Errors
    /// Malformed bytes, a text over [`TEXT_BYTES_MAX`], or bytes left over.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader { b: bytes, at: 0 };
        let mut read = |what: &str| -> Result<Option<String>, Box<DecodeError>> {
            let s = r.maybe(what)?;
            match s {
                Some(s) if s.len() > TEXT_BYTES_MAX => {
                    Err(crate::bytes::fail(r.at, format!("{what}: {} bytes, over {TEXT_BYTES_MAX}", s.len())))
                }
                s => Ok(s.map(str::to_owned)),
            }
        };
        let text = read("personal text").map_err(|e| *e)?;
        let actor = read("actor").map_err(|e| *e)?;
        if r.at != bytes.len() {
            return Err(DecodeError { offset: r.at as u64, reason: "bytes after the personal text".into() });
        }
        Ok(Self { text, actor })
    }
}

/// The key month of an instant: whole calendar months (UTC) since January 1970, negative
/// before. A store keeps one key per account and key month of `occurred_at`, so a retention
/// policy erases the text of whole months by destroying their keys.
pub fn key_month(t: Timestamp) -> i32 {
    // Days since the epoch to a civil year and month (the proleptic Gregorian calendar in
    // eras of 400 years, as in Howard Hinnant's `civil_from_days`): one division chain, no
    // calendar library on the path every sealed event takes.
    let days = t.unix_nanos().div_euclid(crate::timestamp::NANOS_PER_DAY) + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    ((year - 1970) * 12 + month - 1) as i32
}

/// The first instant of a key month ([`key_month`]).
pub fn key_month_start(month: i32) -> Timestamp {
    let year = 1970 + month.div_euclid(12);
    let m = (month.rem_euclid(12) + 1) as u8;
    let date = time::Date::from_calendar_date(year, time::Month::try_from(m).unwrap_or(time::Month::January), 1)
        .unwrap_or(time::Date::MIN);
    let nanos = date.midnight().assume_utc().unix_timestamp_nanos();
    Timestamp::from_unix_nanos(i64::try_from(nanos).unwrap_or(i64::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CommitmentKey, Profile, SurveyKey, SurveyScore};

    #[test]
    fn taking_and_restoring_gives_the_event_back() {
        let events = [
            Event::CommitmentMade {
                commitment: CommitmentKey::new("c").unwrap(),
                title: "Ann's SSO".into(),
                due: Timestamp::UNIX_EPOCH,
                weight: 1.0,
            },
            Event::SurveyAnswered { survey: SurveyKey::new("q").unwrap(), score: SurveyScore::Nps(3), comment: None },
            Event::AccountProfiled {
                profile: Box::new(Profile {
                    owner: Some("Bo".into()),
                    tier: Some("gold".into()),
                    ..Profile::default()
                }),
            },
        ];
        for event in events {
            let meta = Metadata::new().with_actor("ann@example.com").unwrap().with_source("crm").unwrap();
            let (mut e, mut m) = (event.clone(), meta.clone());
            let text = PersonalText::take(&mut e, &mut m);
            assert!(!text.is_empty());
            assert_eq!(m.actor(), None);
            assert_eq!(m.source(), Some("crm"));
            let mut bytes = Vec::new();
            text.encode(&mut bytes);
            let mut of = Vec::new();
            assert!(PersonalText::encode_of(&event, &meta, &mut of));
            assert_eq!(of, bytes);
            let back = PersonalText::decode(&bytes).unwrap();
            assert_eq!(back, text);
            back.restore(&mut e, &mut m);
            assert_eq!((e, m), (event, meta));
        }
        assert!(!format!("{:?}", PersonalText { text: Some("secret".into()), actor: None }).contains("secret"));
        assert!(PersonalText::decode(&[0, 0, 0]).is_err());
    }

    #[test]
    fn key_months_start_where_they_say() {
        for s in ["1970-01-01T00:00:00Z", "2024-02-29T23:59:59Z", "1969-12-31T23:59:59Z", "2031-12-01T00:00:00Z"] {
            let t = Timestamp::parse(s).unwrap();
            let m = key_month(t);
            assert!(key_month_start(m) <= t && t < key_month_start(m + 1), "{s}");
        }
        assert_eq!(key_month(Timestamp::parse("1970-02-03T00:00:00Z").unwrap()), 1);
        // Against the calendar library, a day at a time over the supported range's edges and
        // every hour of four years around a leap day.
        let by_library = |t: Timestamp| {
            let d = t.to_offset_date_time();
            (d.year() - 1970) * 12 + i32::from(u8::from(d.month())) - 1
        };
        let day = crate::timestamp::NANOS_PER_DAY;
        for start in
            [Timestamp::MIN, Timestamp::parse("1999-06-01T00:00:00Z").unwrap(), Timestamp::MAX.add_nanos(-4_000 * day)]
        {
            for n in 0..4_000 {
                let t = start.add_nanos(n * day + n % 7 * 3_600_000_000_000);
                assert_eq!(key_month(t), by_library(t), "{t}");
            }
        }
        for h in 0..4 * 366 * 24 {
            let t = Timestamp::parse("2022-01-01T00:00:00Z").unwrap().add_nanos(h * 3_600_000_000_000);
            assert_eq!(key_month(t), by_library(t), "{t}");
        }
        assert_eq!(key_month(Timestamp::MAX), by_library(Timestamp::MAX));
    }
}

//! Writing the canonical and stored JSON forms.

use serde::Serialize;
use serde::ser::SerializeMap;

use super::fields::{advocacy_tag, channel_tag, severity_tag};
use crate::event::{Envelope, Event, NewEvent};
use crate::id::{EventId, Position, StreamVersion};
use crate::meta::Metadata;
use crate::timestamp::Timestamp;

pub(super) struct Stored {
    recorded_at: Timestamp,
    stream_version: StreamVersion,
    position: Position,
}

pub(super) struct JsonForm<'a> {
    pub(super) new: &'a NewEvent,
    /// With `type`, `account` and `occurred_at` (and `id` if `with_id`).
    pub(super) header: bool,
    pub(super) with_id: bool,
    /// With the metadata fields, after the event's own.
    pub(super) with_meta: bool,
    /// With `schema_version` (the type's current one) after the header.
    pub(super) with_version: bool,
    pub(super) stored: Option<Stored>,
}

impl JsonForm<'_> {
    /// Lists the form's entries, in canonical order, into `out`: the one place that says what
    /// a form holds, whether serde writes it ([`Serialize`]) or [`Line`] does.
    fn entries<E: Entries>(&self, out: &mut E) -> Result<(), E::Error> {
        let n = self.new;
        if self.header {
            out.tag("type", n.event.kind().tag())?;
            if self.with_id {
                out.id("id", &n.id)?;
            }
            out.text("account", n.account.as_str())?;
            out.time("occurred_at", &n.occurred_at)?;
            if self.with_version {
                out.scalar("schema_version", &n.event.kind().schema_version())?;
            }
        }
        if let Some(st) = &self.stored {
            out.time("recorded_at", &st.recorded_at)?;
            out.scalar("stream_version", &st.stream_version)?;
            out.scalar("position", &st.position)?;
        }
        fn opt<E: Entries>(out: &mut E, k: &'static str, v: &Option<String>) -> Result<(), E::Error> {
            match v {
                Some(v) => out.text(k, v),
                None => Ok(()),
            }
        }
        match &n.event {
            Event::CommitmentMade { commitment, title, due, weight } => {
                out.text("commitment", commitment.as_str())?;
                out.text("title", title)?;
                out.time("due", due)?;
                out.scalar("weight", weight)?;
            }
            Event::CommitmentRenegotiated { commitment, due, reason } => {
                out.text("commitment", commitment.as_str())?;
                out.time("due", due)?;
                opt(out, "reason", reason)?;
            }
            Event::CommitmentDelivered { commitment, accepted } => {
                out.text("commitment", commitment.as_str())?;
                out.scalar("accepted", accepted)?;
            }
            Event::CommitmentCancelled { commitment, reason } => {
                out.text("commitment", commitment.as_str())?;
                opt(out, "reason", reason)?;
            }
            Event::EscalationRaised { escalation, severity, summary } => {
                out.text("escalation", escalation.as_str())?;
                out.tag("severity", severity_tag(*severity))?;
                opt(out, "summary", summary)?;
            }
            Event::EscalationAcknowledged { escalation }
            | Event::EscalationResolved { escalation }
            | Event::EscalationReopened { escalation } => {
                out.text("escalation", escalation.as_str())?;
            }
            Event::SurveyAnswered { survey, score, comment } => {
                out.text("survey", survey.as_str())?;
                out.scalar(score.field(), &score.value())?;
                opt(out, "comment", comment)?;
            }
            Event::TouchpointHeld { channel } => out.tag("channel", channel_tag(*channel))?,
            Event::IssueDisclosed { summary } => opt(out, "summary", summary)?,
            Event::AdvocacyGiven { kind } => out.tag("kind", advocacy_tag(*kind))?,
            Event::AccountProfiled { profile } => {
                let p = &**profile;
                opt(out, "segment", &p.segment)?;
                opt(out, "tier", &p.tier)?;
                if let Some(arr) = &p.arr {
                    out.scalar("arr", &arr.amount)?;
                    out.text("currency", arr.currency.as_str())?;
                }
                if let Some(parent) = &p.parent {
                    out.text("parent", parent.as_str())?;
                }
                if let Some(l) = p.lifecycle {
                    out.tag("lifecycle", l.tag())?;
                }
                if let Some(t) = &p.renews_at {
                    out.time("renews_at", t)?;
                }
                opt(out, "owner", &p.owner)?;
            }
            Event::AssessmentRecorded { sentiment, reason, valid_until } => {
                out.scalar("sentiment", sentiment)?;
                out.text("reason", reason)?;
                if let Some(t) = valid_until {
                    out.time("valid_until", t)?;
                }
            }
        }
        if self.with_meta && !n.meta.is_empty() {
            for (name, value) in n.meta.texts() {
                if let Some(value) = value {
                    out.text(name, value)?;
                }
            }
            if n.meta.tags().next().is_some() {
                out.tags(&n.meta)?;
            }
        }
        Ok(())
    }

    /// The form as one JSON line, written directly: the same bytes serde_json writes through
    /// [`Serialize`] (a property test holds them equal), without its per-byte string escaping
    /// and formatting machinery, which ran for every id derived.
    pub(super) fn to_line(&self) -> String {
        let mut line = Line { out: String::with_capacity(256), first: true };
        let Ok(()) = self.entries(&mut line);
        if line.first {
            line.out.push('{');
        }
        line.out.push('}');
        line.out
    }
}

/// Where [`JsonForm::entries`] puts each entry. Keys are the forms' own names (plain ASCII,
/// never escaped); `scalar` takes numbers and booleans only.
trait Entries {
    type Error;
    fn text(&mut self, key: &'static str, value: &str) -> Result<(), Self::Error>;
    /// A name of this crate's own (a type's or an enum's tag): plain, never escaped.
    fn tag(&mut self, key: &'static str, value: &'static str) -> Result<(), Self::Error>;
    fn time(&mut self, key: &'static str, value: &Timestamp) -> Result<(), Self::Error>;
    fn id(&mut self, key: &'static str, value: &EventId) -> Result<(), Self::Error>;
    fn scalar<T: Serialize>(&mut self, key: &'static str, value: &T) -> Result<(), Self::Error>;
    fn tags(&mut self, meta: &Metadata) -> Result<(), Self::Error>;
}

/// The entries through serde's map serializer, for every serde format.
struct Serde<M>(M);

impl<M: SerializeMap> Entries for Serde<M> {
    type Error = M::Error;
    fn text(&mut self, key: &'static str, value: &str) -> Result<(), M::Error> {
        self.0.serialize_entry(key, value)
    }
    fn tag(&mut self, key: &'static str, value: &'static str) -> Result<(), M::Error> {
        self.0.serialize_entry(key, value)
    }
    fn time(&mut self, key: &'static str, value: &Timestamp) -> Result<(), M::Error> {
        self.0.serialize_entry(key, value)
    }
    fn id(&mut self, key: &'static str, value: &EventId) -> Result<(), M::Error> {
        self.0.serialize_entry(key, value)
    }
    fn scalar<T: Serialize>(&mut self, key: &'static str, value: &T) -> Result<(), M::Error> {
        self.0.serialize_entry(key, value)
    }
    fn tags(&mut self, meta: &Metadata) -> Result<(), M::Error> {
        self.0.serialize_entry("tags", &TagsForm(meta))
    }
}

/// The entries written as a JSON object into `out`.
struct Line {
    out: String,
    /// No entry written yet.
    first: bool,
}

impl Line {
    fn key(&mut self, key: &'static str) {
        debug_assert!(needs_no_escape(key), "{key:?}");
        self.out.push(if self.first { '{' } else { ',' });
        self.first = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
    }
}

impl Entries for Line {
    type Error = std::convert::Infallible;
    fn text(&mut self, key: &'static str, value: &str) -> Result<(), Self::Error> {
        self.key(key);
        write_json_string(value, &mut self.out);
        Ok(())
    }
    fn tag(&mut self, key: &'static str, value: &'static str) -> Result<(), Self::Error> {
        self.key(key);
        debug_assert!(needs_no_escape(value), "{value:?}");
        self.out.push('"');
        self.out.push_str(value);
        self.out.push('"');
        Ok(())
    }
    fn time(&mut self, key: &'static str, value: &Timestamp) -> Result<(), Self::Error> {
        self.key(key);
        self.out.push('"');
        value.push_rfc3339(&mut self.out);
        self.out.push('"');
        Ok(())
    }
    fn id(&mut self, key: &'static str, value: &EventId) -> Result<(), Self::Error> {
        self.key(key);
        let mut buf = uuid::Uuid::encode_buffer();
        self.out.push('"');
        self.out.push_str(value.as_uuid().hyphenated().encode_lower(&mut buf));
        self.out.push('"');
        Ok(())
    }
    fn scalar<T: Serialize>(&mut self, key: &'static str, value: &T) -> Result<(), Self::Error> {
        self.key(key);
        // Numbers and booleans, formatted by serde_json itself (a float's shortest form, at
        // most 24 bytes), into a buffer on the stack.
        let mut buf = [0u8; 32];
        let mut rest = &mut buf[..];
        if serde_json::to_writer(&mut rest, value).is_ok() {
            let written = 32 - rest.len();
            self.out.push_str(std::str::from_utf8(&buf[..written]).unwrap_or_default());
        } else {
            self.out.push_str(&serde_json::to_string(value).unwrap_or_default());
        }
        Ok(())
    }
    fn tags(&mut self, meta: &Metadata) -> Result<(), Self::Error> {
        self.key("tags");
        let mut first = true;
        for (name, value) in meta.tags() {
            self.out.push(if first { '{' } else { ',' });
            first = false;
            write_json_string(name, &mut self.out);
            self.out.push(':');
            write_json_string(value, &mut self.out);
        }
        self.out.push('}');
        Ok(())
    }
}

/// How serde_json escapes each byte of a string: 0 for none, else the letter after the
/// backslash (`u` for `\u00XX`).
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Whether `s` is written in JSON as it is, between quotes (no control character, quote or
/// backslash). Checked without an early exit, so that the compiler checks many bytes at a
/// time: most strings need no escape.
#[inline]
fn needs_no_escape(s: &str) -> bool {
    s.bytes().fold(true, |plain, b| plain & (b >= 0x20) & (b != b'"') & (b != b'\\'))
}

/// Appends `s` to `out` as a JSON string, escaped exactly as serde_json escapes it (a quote, a
/// backslash and control characters; `\b \f \n \r \t` by letter, the others as `\u00xx`).
pub fn write_json_string(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    if needs_no_escape(s) {
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut rest = s;
    while let Some(at) = rest.bytes().position(|b| ESCAPE[usize::from(b)] != 0) {
        out.push_str(&rest[..at]);
        // An escaped byte is ASCII, so `at + 1` is a character boundary.
        let b = rest.as_bytes()[at];
        out.push('\\');
        match ESCAPE[usize::from(b)] {
            b'u' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
            letter => out.push(char::from(letter)),
        }
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
    out.push('"');
}

impl Serialize for JsonForm<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = Serde(s.serialize_map(None)?);
        self.entries(&mut m)?;
        m.0.end()
    }
}

struct TagsForm<'a>(&'a Metadata);

impl Serialize for TagsForm<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.tags())
    }
}

impl Serialize for NewEvent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        JsonForm { new: self, header: true, with_id: true, with_meta: true, with_version: false, stored: None }
            .serialize(s)
    }
}

/// Gives `f` the stored form of `env`.
fn with_stored_form<T>(env: &Envelope, f: impl FnOnce(&JsonForm<'_>) -> T) -> T {
    let new = env.to_new_event();
    let stored = Stored { recorded_at: env.recorded_at, stream_version: env.stream_version, position: env.position };
    f(&JsonForm { new: &new, header: true, with_id: true, with_meta: true, with_version: false, stored: Some(stored) })
}

/// The stored form of `env` as one JSON line, written directly.
pub(super) fn stored_line(env: &Envelope) -> String {
    with_stored_form(env, |form| form.to_line())
}

impl Serialize for Envelope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        with_stored_form(self, |form| form.serialize(s))
    }
}

/// Reads what [`Serialize`] writes, through the canonical parser: any self-describing format
/// (JSON, and formats serde_json's `Value` can hold) gives the same checks and errors as a JSON
/// line.
impl<'de> serde::Deserialize<'de> for NewEvent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(d)?;
        let line = serde_json::to_string(&value).map_err(D::Error::custom)?;
        NewEvent::from_json_line(&line).map_err(D::Error::custom)
    }
}

/// Reads what [`Serialize`] writes (the stored form), as [`Envelope::from_json_line`] does.
impl<'de> serde::Deserialize<'de> for Envelope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(d)?;
        let line = serde_json::to_string(&value).map_err(D::Error::custom)?;
        Envelope::from_json_line(&line).map_err(D::Error::custom)
    }
}

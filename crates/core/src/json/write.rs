//! Writing the canonical and stored JSON forms.

use serde::Serialize;
use serde::ser::SerializeMap;

use super::fields::{advocacy_tag, channel_tag, severity_tag};
use crate::event::{Envelope, Event, NewEvent};
use crate::id::{Position, StreamVersion};
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
            if self.with_version {
                m.serialize_entry("schema_version", &n.event.kind().schema_version())?;
            }
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
            Event::AccountProfiled { profile } => {
                let p = &**profile;
                opt(&mut m, "segment", &p.segment)?;
                opt(&mut m, "tier", &p.tier)?;
                if let Some(arr) = &p.arr {
                    m.serialize_entry("arr", &arr.amount)?;
                    m.serialize_entry("currency", arr.currency.as_str())?;
                }
                if let Some(parent) = &p.parent {
                    m.serialize_entry("parent", parent)?;
                }
                if let Some(l) = p.lifecycle {
                    m.serialize_entry("lifecycle", l.tag())?;
                }
                if let Some(t) = &p.renews_at {
                    m.serialize_entry("renews_at", t)?;
                }
                opt(&mut m, "owner", &p.owner)?;
            }
            Event::AssessmentRecorded { sentiment, reason, valid_until } => {
                m.serialize_entry("sentiment", sentiment)?;
                m.serialize_entry("reason", reason)?;
                if let Some(t) = valid_until {
                    m.serialize_entry("valid_until", t)?;
                }
            }
        }
        if self.with_meta && !n.meta.is_empty() {
            for (name, value) in n.meta.texts() {
                if let Some(value) = value {
                    m.serialize_entry(name, value)?;
                }
            }
            if n.meta.tags().next().is_some() {
                m.serialize_entry("tags", &TagsForm(&n.meta))?;
            }
        }
        m.end()
    }
}

struct TagsForm<'a>(&'a crate::meta::Metadata);

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

impl Serialize for Envelope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let new = self.to_new_event();
        let stored =
            Stored { recorded_at: self.recorded_at, stream_version: self.stream_version, position: self.position };
        JsonForm { new: &new, header: true, with_id: true, with_meta: true, with_version: false, stored: Some(stored) }
            .serialize(s)
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

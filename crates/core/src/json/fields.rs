//! The field table: which fields exist, their JSON types, which belong to which event type,
//! and the checks a field's value passes (`build.rs` builds the typed event from them).

use std::borrow::Cow;

use serde::Deserialize;

use super::ParseEventError;
use crate::event::{AdvocacyKind, Channel, EventKind, Severity, TEXT_BYTES_MAX};
use crate::id::{CommitmentKey, EscalationKey, Interner, ParseIdError};
use crate::meta::{Metadata, MetadataError, TAGS_MAX};
use crate::timestamp::Timestamp;

#[derive(Deserialize, Default, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLine<'a> {
    #[serde(rename = "type", borrow)]
    pub(super) ty: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) id: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) account: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) occurred_at: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) recorded_at: Option<Text<'a>>,
    pub(super) stream_version: Option<u64>,
    pub(super) position: Option<u64>,
    #[serde(borrow)]
    pub(super) commitment: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) title: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) due: Option<Text<'a>>,
    pub(super) weight: Option<f64>,
    #[serde(borrow)]
    pub(super) reason: Option<Text<'a>>,
    pub(super) accepted: Option<bool>,
    #[serde(borrow)]
    pub(super) escalation: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) severity: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) summary: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) survey: Option<Text<'a>>,
    pub(super) nps: Option<i64>,
    pub(super) csat: Option<i64>,
    pub(super) ces: Option<i64>,
    #[serde(borrow)]
    pub(super) comment: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) channel: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) kind: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) segment: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) tier: Option<Text<'a>>,
    pub(super) arr: Option<f64>,
    #[serde(borrow)]
    pub(super) currency: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) parent: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) lifecycle: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) renews_at: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) owner: Option<Text<'a>>,
    pub(super) sentiment: Option<i64>,
    #[serde(borrow)]
    pub(super) valid_until: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) actor: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) source: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) correlation_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) causation_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) tags: Option<Tags<'a>>,
    pub(super) schema_version: Option<u64>,
}

/// The `tags` object, its entries in the order written; more than [`TAGS_MAX`] entries are
/// refused while reading, before they are kept.
#[derive(Debug, PartialEq, Default)]
pub(super) struct Tags<'a>(pub(super) Vec<(Text<'a>, Text<'a>)>);

impl<'de: 'a, 'a> Deserialize<'de> for Tags<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = Tags<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut m: M) -> Result<Tags<'a>, M::Error> {
                let mut tags = Vec::new();
                while let Some(entry) = m.next_entry::<Text<'a>, Text<'a>>()? {
                    if tags.len() == TAGS_MAX {
                        return Err(serde::de::Error::custom(format_args!("tags: more than the {TAGS_MAX} allowed")));
                    }
                    tags.push(entry);
                }
                Ok(Tags(tags))
            }
        }
        d.deserialize_map(Visitor(std::marker::PhantomData))
    }
}

/// A JSON string field that borrows from the line unless it holds escapes. (serde's own
/// `Cow<str>` borrows only as a bare field, never inside an `Option`, so every field of every
/// line would otherwise be a heap allocation.)
#[derive(PartialEq)]
pub(super) struct Text<'a>(pub(super) Cow<'a, str>);

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

pub(super) type Parse<T> = Result<T, ParseEventError>;

pub(super) fn invalid(field: &'static str, reason: impl ToString) -> ParseEventError {
    ParseEventError::InvalidField { field, reason: reason.to_string() }
}

/// Refuses the first of `fields` (name, present) that is present, with `reason`.
pub(super) fn refuse_present(fields: &[(&'static str, bool)], reason: &str) -> Parse<()> {
    match fields.iter().find(|(_, present)| *present) {
        Some(&(field, _)) => Err(invalid(field, reason)),
        None => Ok(()),
    }
}

impl RawLine<'_> {
    /// The fields a store assigns, each with whether the line has it.
    pub(super) fn store_assigned(&self) -> [(&'static str, bool); 3] {
        [
            ("recorded_at", self.recorded_at.is_some()),
            ("stream_version", self.stream_version.is_some()),
            ("position", self.position.is_some()),
        ]
    }
}

pub(super) struct Fields<'r, 'a> {
    pub(super) raw: &'r RawLine<'a>,
    pub(super) kind: EventKind,
    pub(super) interner: std::cell::RefCell<Option<&'r mut Interner>>,
}

impl<'a> Fields<'_, 'a> {
    pub(super) fn req<'v, T>(&self, field: &'static str, v: &'v Option<T>) -> Parse<&'v T> {
        // A `match`, not `ok_or`: that builds the error for every present field and drops it,
        // through a call, since the error has variants holding strings.
        match v {
            Some(v) => Ok(v),
            None => Err(ParseEventError::MissingField { field, kind: self.kind }),
        }
    }

    pub(super) fn text(&self, field: &'static str, v: &Option<Text<'a>>) -> Parse<Option<String>> {
        match v {
            None => Ok(None),
            Some(s) if s.len() > TEXT_BYTES_MAX => {
                Err(invalid(field, format!("is {} bytes, more than the {TEXT_BYTES_MAX} allowed", s.len())))
            }
            Some(s) => Ok(Some(s.to_string())),
        }
    }

    pub(super) fn time(&self, field: &'static str, v: &Option<Text<'a>>) -> Parse<Timestamp> {
        Timestamp::parse(self.req(field, v)?).map_err(|e| invalid(field, e))
    }

    /// A key field, its text shared through the interner when there is one.
    pub(super) fn key<K>(
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

    pub(super) fn commitment(&self) -> Parse<CommitmentKey> {
        self.key("commitment", &self.raw.commitment, CommitmentKey::new, CommitmentKey::new_in)
    }

    pub(super) fn escalation(&self) -> Parse<EscalationKey> {
        self.key("escalation", &self.raw.escalation, EscalationKey::new, EscalationKey::new_in)
    }

    /// Refuses every known field outside `allowed` (a mask: bit `i` for the `i`th of
    /// [`OPTIONAL_FIELDS`], see [`allowed`]) that the line sets, naming the first in
    /// [`OPTIONAL_FIELDS`] order.
    pub(super) fn only(&self, allowed: u32) -> Parse<()> {
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
            r.segment.is_some(),
            r.tier.is_some(),
            r.arr.is_some(),
            r.currency.is_some(),
            r.parent.is_some(),
            r.lifecycle.is_some(),
            r.renews_at.is_some(),
            r.owner.is_some(),
            r.sentiment.is_some(),
            r.valid_until.is_some(),
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
    /// A number (`weight`, `arr`).
    Number,
    /// An integer (`nps`, `csat`, `ces`, `sentiment`).
    Integer,
    /// `true` or `false` (`accepted`).
    Bool,
    /// An object of string values (`tags`).
    Object,
}

/// Every field a submitted event may hold, with its JSON type: the canonical form's one field
/// table (`docs/event-format.md`). The CSV importer's columns are these names (`tags` as one
/// column per tag, `tags.NAME`). The first four are every event's; the next twenty-six only
/// some types carry; the last six any event may (metadata, and the schema version of its
/// shape).
pub const SUBMITTED_FIELDS: [(&str, FieldType); 36] = [
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
    ("segment", FieldType::Text),
    ("tier", FieldType::Text),
    ("arr", FieldType::Number),
    ("currency", FieldType::Text),
    ("parent", FieldType::Text),
    ("lifecycle", FieldType::Text),
    ("renews_at", FieldType::Text),
    ("owner", FieldType::Text),
    ("sentiment", FieldType::Integer),
    ("valid_until", FieldType::Text),
    ("actor", FieldType::Text),
    ("source", FieldType::Text),
    ("correlation_id", FieldType::Text),
    ("causation_id", FieldType::Text),
    ("tags", FieldType::Object),
    ("schema_version", FieldType::Integer),
];

/// The fields any event may carry beyond its type's own: its metadata
/// ([`meta::FIELDS`](crate::meta::FIELDS)) and `schema_version`.
pub const ENVELOPE_EXTRA_FIELDS: [&str; 6] = {
    let m = crate::meta::FIELDS;
    [m[0], m[1], m[2], m[3], m[4], "schema_version"]
};

/// The fields that only some event types carry, in the order a refusal names them; bit `i` of
/// a [`Fields::only`] mask stands for the `i`th. A mask rather than a list of names: matching
/// names cost a string comparison per field per line.
pub(super) const OPTIONAL_FIELDS: [&str; 26] = {
    let mut names = [""; 26];
    let mut i = 0;
    while i < 26 {
        names[i] = SUBMITTED_FIELDS[i + 4].0;
        i += 1;
    }
    names
};

/// Whether an event type needs one of its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The type refuses a line without it.
    Required,
    /// The type takes it or not.
    Optional,
}

/// Each event type's own fields (after `type`, `id`, `account` and `occurred_at`, which every
/// type has), in canonical order, with whether the type needs each: the one per-type table.
/// The parser refuses every field a type does not list (its masks are built from this table)
/// and `docs/event.schema.json` is generated from it ([`event_schema`](super::event_schema)).
/// A survey answer needs exactly one of `nps`, `csat` and `ces`, each listed as optional. In
/// [`EventKind::ALL`] order.
pub const TYPE_FIELDS: [(EventKind, &[(&str, Need)]); 14] = {
    use Need::{Optional, Required};
    [
        (
            EventKind::CommitmentMade,
            &[("commitment", Required), ("title", Required), ("due", Required), ("weight", Optional)],
        ),
        (EventKind::CommitmentRenegotiated, &[("commitment", Required), ("due", Required), ("reason", Optional)]),
        (EventKind::CommitmentDelivered, &[("commitment", Required), ("accepted", Optional)]),
        (EventKind::CommitmentCancelled, &[("commitment", Required), ("reason", Optional)]),
        (EventKind::EscalationRaised, &[("escalation", Required), ("severity", Required), ("summary", Optional)]),
        (EventKind::EscalationAcknowledged, &[("escalation", Required)]),
        (EventKind::EscalationResolved, &[("escalation", Required)]),
        (EventKind::EscalationReopened, &[("escalation", Required)]),
        (
            EventKind::SurveyAnswered,
            &[("survey", Required), ("nps", Optional), ("csat", Optional), ("ces", Optional), ("comment", Optional)],
        ),
        (EventKind::TouchpointHeld, &[("channel", Required)]),
        (EventKind::IssueDisclosed, &[("summary", Optional)]),
        (EventKind::AdvocacyGiven, &[("kind", Required)]),
        (
            EventKind::AccountProfiled,
            &[
                ("segment", Optional),
                ("tier", Optional),
                ("arr", Optional),
                ("currency", Optional),
                ("parent", Optional),
                ("lifecycle", Optional),
                ("renews_at", Optional),
                ("owner", Optional),
            ],
        ),
        (EventKind::AssessmentRecorded, &[("sentiment", Required), ("reason", Required), ("valid_until", Optional)]),
    ]
};

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Each type's allowed fields as a [`Fields::only`] mask (bit `i` for the `i`th of
/// [`OPTIONAL_FIELDS`]), built from [`TYPE_FIELDS`] when compiling; a name missing from the
/// field table, or the table out of [`EventKind::ALL`] order, fails the build.
const ALLOWED: [u32; 14] = {
    let mut masks = [0u32; 14];
    let mut t = 0;
    while t < TYPE_FIELDS.len() {
        assert!(TYPE_FIELDS[t].0 as usize == t, "TYPE_FIELDS is in EventKind::ALL order");
        let fields = TYPE_FIELDS[t].1;
        let mut j = 0;
        while j < fields.len() {
            let mut i = 0;
            while i < OPTIONAL_FIELDS.len() && !same(OPTIONAL_FIELDS[i], fields[j].0) {
                i += 1;
            }
            assert!(i < OPTIONAL_FIELDS.len(), "every type field is in SUBMITTED_FIELDS");
            masks[t] |= 1 << i;
            j += 1;
        }
        t += 1;
    }
    masks
};

/// The fields `kind` takes, as a [`Fields::only`] mask.
pub(super) const fn allowed(kind: EventKind) -> u32 {
    ALLOWED[kind as usize]
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

fn meta_error(e: MetadataError) -> ParseEventError {
    match e {
        MetadataError::Invalid { field, reason } => invalid(field, reason),
        other => invalid("tags", other),
    }
}

/// The metadata a line carries. With an interner, a line whose metadata (without tags) is the
/// last such line's shares it instead of making its own: an export's lines mostly carry one
/// `source`.
#[inline]
pub(super) fn build_meta(r: &RawLine<'_>, interner: Option<&mut Interner>) -> Parse<Metadata> {
    if r.actor.is_none()
        && r.source.is_none()
        && r.correlation_id.is_none()
        && r.causation_id.is_none()
        && r.tags.is_none()
    {
        return Ok(Metadata::new());
    }
    let Some(interner) = interner.filter(|_| r.tags.is_none()) else { return build_meta_set(r) };
    let last = &interner.last_meta;
    let texts = [&r.actor, &r.source, &r.correlation_id, &r.causation_id];
    let same = last.tags().next().is_none()
        && !last.is_empty()
        && last.texts().iter().zip(texts).all(|((_, kept), read)| *kept == read.as_deref());
    if same {
        return Ok(last.clone());
    }
    let m = build_meta_set(r)?;
    interner.last_meta = m.clone();
    Ok(m)
}

fn build_meta_set(r: &RawLine<'_>) -> Parse<Metadata> {
    let mut m = Metadata::new();
    if let Some(v) = &r.actor {
        m = m.with_actor(&**v).map_err(meta_error)?;
    }
    if let Some(v) = &r.source {
        m = m.with_source(&**v).map_err(meta_error)?;
    }
    if let Some(v) = &r.correlation_id {
        m = m.with_correlation_id(&**v).map_err(meta_error)?;
    }
    if let Some(v) = &r.causation_id {
        m = m.with_causation_id(&**v).map_err(meta_error)?;
    }
    if let Some(tags) = &r.tags {
        for (i, (name, value)) in tags.0.iter().enumerate() {
            if tags.0[..i].iter().any(|(n, _)| **n == **name) {
                return Err(invalid("tags", format!("the tag {:?} is repeated", &**name)));
            }
            m = m.with_tag(&**name, &**value).map_err(meta_error)?;
        }
    }
    Ok(m)
}

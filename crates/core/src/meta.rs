//! Event metadata: who recorded an event (`actor`), which system it came from (`source`), the
//! request or flow it belongs to (`correlation_id`) and the event or command that caused it
//! (`causation_id`), plus a small map of tags. Metadata describes how a fact reached the log,
//! not the fact: it is stored and read back, but it is **not part of an event's content** for
//! idempotency (`docs/event-format.md`, "Metadata"), so the same fact imported from two
//! sources is one event, and the first submission's metadata is the one kept.
//!
//! Every value is checked when it is set, so a [`Metadata`] always holds valid values.
//!
//! ```
//! use rapport_core::Metadata;
//! let meta = Metadata::new().with_actor("ann@vendor.example")?.with_source("helpdesk")?.with_tag("region", "emea")?;
//! assert_eq!(meta.source(), Some("helpdesk"));
//! assert_eq!(meta.tags().collect::<Vec<_>>(), [("region", "emea")]);
//! # Ok::<(), rapport_core::MetadataError>(())
//! ```

use std::sync::Arc;

use crate::bytes::{DecodeError, Read, Reader, fail};

/// The JSON names of the metadata fields, in canonical order.
pub const FIELDS: [&str; 5] = ["actor", "source", "correlation_id", "causation_id", "tags"];

/// The longest `actor`, `source`, `correlation_id`, `causation_id` or tag value, in bytes.
pub const META_TEXT_BYTES_MAX: usize = 256;
/// The most tags an event may carry.
pub const TAGS_MAX: usize = 16;
/// The longest tag name, in bytes.
pub const TAG_NAME_BYTES_MAX: usize = 64;

/// Why a metadata value was refused. `field` is the JSON name (`actor`, `source`,
/// `correlation_id`, `causation_id` or `tags`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// A value breaks its field's rules (empty, too long, a control character).
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// More than [`TAGS_MAX`] tags.
    #[error("tags: more than the {max} allowed")]
    TooManyTags {
        /// The limit.
        max: usize,
    },
}

/// An event's metadata: empty (nothing allocated) or the values set, shared: a clone copies
/// no text (the importer gives every event of a mapping the one `source`), and setting a value
/// copies them first when they are shared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Metadata(Option<Arc<Values>>);

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct Values {
    actor: Option<String>,
    source: Option<String>,
    correlation_id: Option<String>,
    causation_id: Option<String>,
    /// Sorted by name, names unique.
    tags: Vec<(String, String)>,
    /// The binary form of the values above (`docs/log-format.md`, "Metadata"), kept beside
    /// them so that writing a record copies it and a view lends it ([`MetaRef`]); remade by
    /// [`Values::refresh`] whenever a value changes.
    encoded: Vec<u8>,
}

impl Values {
    /// Remakes [`encoded`](Self::encoded): a byte of flags (bit 0 actor, 1 source,
    /// 2 correlation id, 3 causation id, 4 tags), then each value set as a LEB128 length and
    /// its bytes, then (with bit 4) the tag count and each name and value.
    fn refresh(&mut self) {
        use crate::bytes::{text, varint};
        let texts = [&self.actor, &self.source, &self.correlation_id, &self.causation_id];
        let mut flags = u8::from(!self.tags.is_empty()) << 4;
        for (i, v) in texts.iter().enumerate() {
            flags |= u8::from(v.is_some()) << i;
        }
        let out = &mut self.encoded;
        out.clear();
        out.push(flags);
        for v in texts.into_iter().flatten() {
            text(out, v);
        }
        if !self.tags.is_empty() {
            varint(out, self.tags.len() as u64);
            for (n, v) in &self.tags {
                text(out, n);
                text(out, v);
            }
        }
    }
}

/// Which text [`check_text`] checks: it sets the field named in a refusal, the limit, and
/// whether it may be empty.
#[derive(Clone, Copy)]
enum Text<'a> {
    /// The value of `actor`, `source`, `correlation_id` or `causation_id`.
    Value(&'static str),
    /// A tag's name.
    TagName,
    /// The value of the tag of this name.
    TagValue(&'a str),
}

/// A text's rules: at most its limit in bytes, no control characters, and (but a tag's value)
/// not empty. The message is made only on a refusal: records are checked with this on every
/// read.
fn check_text(which: Text<'_>, s: &str) -> Result<(), MetadataError> {
    let (field, max, empty_ok) = match which {
        Text::Value(field) => (field, META_TEXT_BYTES_MAX, false),
        Text::TagName => ("tags", TAG_NAME_BYTES_MAX, false),
        Text::TagValue(_) => ("tags", META_TEXT_BYTES_MAX, true),
    };
    let fail = |reason: String| {
        let what = match which {
            Text::Value(_) => "the value".to_owned(),
            Text::TagName => format!("the tag name {s:?}"),
            Text::TagValue(name) => format!("tag {name:?}"),
        };
        MetadataError::Invalid { field, reason: format!("{what} {reason}") }
    };
    if s.is_empty() && !empty_ok {
        return Err(fail("is empty".into()));
    }
    if s.len() > max {
        return Err(fail(format!("is {} bytes, more than the {max} allowed", s.len())));
    }
    if !crate::bytes::printable_ascii(s.as_bytes())
        && let Some((at, ch)) = s.char_indices().find(|(_, c)| c.is_control())
    {
        return Err(fail(format!("holds the control character {ch:?} at byte {at}")));
    }
    Ok(())
}

impl Metadata {
    /// No metadata.
    pub fn new() -> Self {
        Self(None)
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    fn values(&mut self) -> &mut Values {
        Arc::make_mut(self.0.get_or_insert_with(Arc::default))
    }

    fn set(
        mut self,
        field: &'static str,
        value: String,
        slot: fn(&mut Values) -> &mut Option<String>,
    ) -> Result<Self, MetadataError> {
        check_text(Text::Value(field), &value)?;
        let values = self.values();
        *slot(values) = Some(value);
        values.refresh();
        Ok(self)
    }

    /// Sets who recorded the event: a person or a service account.
    ///
    /// # Errors
    /// Empty, over [`META_TEXT_BYTES_MAX`] bytes, or holding a control character.
    pub fn with_actor(self, actor: impl Into<String>) -> Result<Self, MetadataError> {
        self.set("actor", actor.into(), |v| &mut v.actor)
    }

    /// Sets the system the event came from.
    ///
    /// # Errors
    /// As [`with_actor`](Self::with_actor).
    pub fn with_source(self, source: impl Into<String>) -> Result<Self, MetadataError> {
        self.set("source", source.into(), |v| &mut v.source)
    }

    /// Sets the id of the request or flow the event belongs to.
    ///
    /// # Errors
    /// As [`with_actor`](Self::with_actor).
    pub fn with_correlation_id(self, id: impl Into<String>) -> Result<Self, MetadataError> {
        self.set("correlation_id", id.into(), |v| &mut v.correlation_id)
    }

    /// Sets the id of the event or command that caused this one.
    ///
    /// # Errors
    /// As [`with_actor`](Self::with_actor).
    pub fn with_causation_id(self, id: impl Into<String>) -> Result<Self, MetadataError> {
        self.set("causation_id", id.into(), |v| &mut v.causation_id)
    }

    /// Sets the tag `name` to `value` (replacing its value if it is set). A name is 1 to
    /// [`TAG_NAME_BYTES_MAX`] bytes, a value at most [`META_TEXT_BYTES_MAX`] bytes (it may be
    /// empty), neither with control characters; at most [`TAGS_MAX`] tags.
    ///
    /// # Errors
    /// [`MetadataError`] naming the tag.
    pub fn with_tag(mut self, name: impl Into<String>, value: impl Into<String>) -> Result<Self, MetadataError> {
        let (name, value) = (name.into(), value.into());
        check_text(Text::TagName, &name)?;
        check_text(Text::TagValue(&name), &value)?;
        let values = self.values();
        let tags = &mut values.tags;
        match tags.binary_search_by(|(n, _)| n.as_str().cmp(&name)) {
            Ok(at) => tags[at].1 = value,
            Err(_) if tags.len() == TAGS_MAX => return Err(MetadataError::TooManyTags { max: TAGS_MAX }),
            Err(at) => tags.insert(at, (name, value)),
        }
        values.refresh();
        Ok(self)
    }

    /// Takes the actor out (personal text, [`crate::personal`]); metadata left with nothing
    /// set becomes none.
    pub(crate) fn take_actor(&mut self) -> Option<String> {
        let shared = self.0.as_mut()?;
        // Without an actor there is nothing to take, and nothing to copy.
        shared.actor.as_ref()?;
        let values = Arc::make_mut(shared);
        let actor = values.actor.take()?;
        let empty = [&values.source, &values.correlation_id, &values.causation_id].iter().all(|v| v.is_none())
            && values.tags.is_empty();
        if empty {
            self.0 = None;
        } else {
            values.refresh();
        }
        Some(actor)
    }

    /// Puts back an actor [`take_actor`](Self::take_actor) took (checked when it was set).
    pub(crate) fn put_actor(&mut self, actor: String) {
        let values = self.values();
        values.actor = Some(actor);
        values.refresh();
    }

    /// Who recorded the event.
    pub fn actor(&self) -> Option<&str> {
        self.0.as_ref()?.actor.as_deref()
    }

    /// The system the event came from.
    pub fn source(&self) -> Option<&str> {
        self.0.as_ref()?.source.as_deref()
    }

    /// The request or flow the event belongs to.
    pub fn correlation_id(&self) -> Option<&str> {
        self.0.as_ref()?.correlation_id.as_deref()
    }

    /// The event or command that caused this one.
    pub fn causation_id(&self) -> Option<&str> {
        self.0.as_ref()?.causation_id.as_deref()
    }

    /// The tags, sorted by name.
    pub fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().flat_map(|v| v.tags.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    }

    /// The four text fields with their JSON names, in canonical order.
    pub(crate) fn texts(&self) -> [(&'static str, Option<&str>); 4] {
        [
            (FIELDS[0], self.actor()),
            (FIELDS[1], self.source()),
            (FIELDS[2], self.correlation_id()),
            (FIELDS[3], self.causation_id()),
        ]
    }

    /// This metadata, borrowed.
    pub fn view(&self) -> MetaRef<'_> {
        match &self.0 {
            None => MetaRef::EMPTY,
            Some(v) => MetaRef(&v.encoded),
        }
    }

    /// Appends the binary form (`docs/log-format.md`, "Metadata"; [`Values::refresh`]): the
    /// single byte 0 when nothing is set.
    #[inline]
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match &self.0 {
            None => out.push(0),
            Some(v) => out.extend_from_slice(&v.encoded),
        }
    }

    /// [`encode`](Self::encode) without the actor (the stripped form, [`crate::personal`]).
    pub(crate) fn encode_stripped(&self, out: &mut Vec<u8>) {
        match &self.0 {
            Some(v) if v.actor.is_some() => {
                let mut rest = Self(Some(Arc::clone(v)));
                rest.take_actor();
                rest.encode(out);
            }
            _ => self.encode(out),
        }
    }

    /// The values a record's metadata section set (read by [`read_section`] into this),
    /// with their binary form made again (the same bytes: a section is read only in its one
    /// canonical form).
    fn finish_read(mut self) -> Self {
        if let Some(v) = self.0.as_mut() {
            Arc::make_mut(v).refresh();
        }
        self
    }
}

/// Reads the metadata section [`Metadata::encode`] wrote, after its `flags` byte: checks every
/// value by the rules a [`Metadata`] holds to (without allocating), refuses unknown flag bits
/// and tags out of order or repeated, and sets each value into `keep` when there is one.
pub(crate) fn read_section(flags: u8, r: &mut Reader<'_>, mut keep: Option<&mut Metadata>) -> Read<()> {
    if flags >> 5 != 0 {
        return Err(fail(r.at, format!("metadata: flags {flags:#04x} set unknown bits")));
    }
    // The four text fields, in the flags' bit order (tags, the fifth, below).
    for (i, &field) in FIELDS[..4].iter().enumerate() {
        if flags & (1 << i) != 0 {
            let v = r.text(field)?;
            check_text(Text::Value(field), v).map_err(|e| fail(r.at, e.to_string()))?;
            if let Some(m) = keep.as_deref_mut() {
                let values = m.values();
                let slots =
                    [&mut values.actor, &mut values.source, &mut values.correlation_id, &mut values.causation_id];
                if let Some(slot) = slots.into_iter().nth(i) {
                    *slot = Some(v.to_owned());
                }
            }
        }
    }
    if flags & (1 << 4) != 0 {
        let n = r.varint("tags")?;
        if n == 0 || n > TAGS_MAX as u64 {
            return Err(fail(r.at, format!("tags: {n} tags; a record holds 1 to {TAGS_MAX}")));
        }
        let mut last: Option<&str> = None;
        for _ in 0..n {
            let (name, value) = (r.text("tags")?, r.text("tags")?);
            check_text(Text::TagName, name).map_err(|e| fail(r.at, e.to_string()))?;
            check_text(Text::TagValue(name), value).map_err(|e| fail(r.at, e.to_string()))?;
            if last.is_some_and(|l| l >= name) {
                return Err(fail(r.at, format!("tags: {name:?} is out of order or repeated")));
            }
            last = Some(name);
            if let Some(m) = keep.as_deref_mut() {
                m.values().tags.push((name.to_owned(), value.to_owned()));
            }
        }
    }
    Ok(())
}

/// Reads a metadata section (all of `b`): the bytes a [`MetaRef`] lends, checked when they
/// were read or made.
fn decode(b: &[u8]) -> Result<Metadata, DecodeError> {
    let mut r = Reader { b, at: 0 };
    let mut meta = Metadata::new();
    let flags = r.byte("metadata").map_err(|e| *e)?;
    read_section(flags, &mut r, Some(&mut meta)).map_err(|e| *e)?;
    if r.at != b.len() {
        return Err(DecodeError { offset: r.at as u64, reason: "bytes after the metadata".into() });
    }
    Ok(meta.finish_read())
}

/// An event's metadata borrowed: its binary form, lent by an owned [`Metadata`] or by the
/// record it was read from (checked then, turned into values only when asked), so a pass over
/// the log reads no metadata it does not use.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MetaRef<'a>(&'a [u8]);

impl<'a> MetaRef<'a> {
    /// No metadata.
    pub const EMPTY: Self = Self(&[]);

    /// The binary form of a record's metadata, already checked.
    #[inline]
    pub(crate) fn encoded(bytes: &'a [u8]) -> Self {
        if bytes.first().is_none_or(|&f| f == 0) { Self::EMPTY } else { Self(bytes) }
    }

    /// Whether nothing is set.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether an `actor` is set (personal text, [`crate::personal`]).
    #[inline]
    pub fn has_actor(&self) -> bool {
        // The flags byte's first bit is the first of FIELDS.
        self.0.first().is_some_and(|flags| flags & 1 != 0)
    }

    /// The owned metadata.
    pub fn to_metadata(&self) -> Metadata {
        if self.0.is_empty() {
            return Metadata::new();
        }
        // Checked when it was read or made, so this decodes; an empty value is the answer a
        // failure could only give if the bytes changed under the view, which they cannot.
        let decoded = decode(self.0);
        debug_assert!(decoded.is_ok(), "{decoded:?}");
        decoded.unwrap_or_default()
    }
}

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

/// An event's metadata: empty (nothing allocated) or a box of the values set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Metadata(Option<Box<Values>>);

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct Values {
    actor: Option<String>,
    source: Option<String>,
    correlation_id: Option<String>,
    causation_id: Option<String>,
    /// Sorted by name, names unique.
    tags: Vec<(String, String)>,
}

/// A text value's rules: at most `max` bytes, no control characters, and (unless `empty_ok`)
/// not empty. `tag`: the tag whose name or value this is (for the message, made only on a
/// refusal: records are checked with this on every read).
fn check_text(
    field: &'static str,
    tag: Option<&str>,
    s: &str,
    max: usize,
    empty_ok: bool,
) -> Result<(), MetadataError> {
    let fail = |reason: String| {
        let what = match tag {
            None => "the value".to_owned(),
            Some(name) if max == TAG_NAME_BYTES_MAX => format!("the tag name {name:?}"),
            Some(name) => format!("tag {name:?}"),
        };
        MetadataError::Invalid { field, reason: format!("{what} {reason}") }
    };
    if s.is_empty() && !empty_ok {
        return Err(fail("is empty".into()));
    }
    if s.len() > max {
        return Err(fail(format!("is {} bytes, more than the {max} allowed", s.len())));
    }
    if !s.bytes().all(|b| (0x20..0x7f).contains(&b))
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
        self.0.get_or_insert_with(Box::default)
    }

    fn set(
        mut self,
        field: &'static str,
        value: String,
        slot: fn(&mut Values) -> &mut Option<String>,
    ) -> Result<Self, MetadataError> {
        check_text(field, None, &value, META_TEXT_BYTES_MAX, false)?;
        *slot(self.values()) = Some(value);
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
        check_text("tags", Some(&name), &name, TAG_NAME_BYTES_MAX, false)?;
        check_text("tags", Some(&name), &value, META_TEXT_BYTES_MAX, true)?;
        let tags = &mut self.values().tags;
        match tags.binary_search_by(|(n, _)| n.as_str().cmp(&name)) {
            Ok(at) => tags[at].1 = value,
            Err(_) if tags.len() == TAGS_MAX => return Err(MetadataError::TooManyTags { max: TAGS_MAX }),
            Err(at) => tags.insert(at, (name, value)),
        }
        Ok(self)
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
            ("actor", self.actor()),
            ("source", self.source()),
            ("correlation_id", self.correlation_id()),
            ("causation_id", self.causation_id()),
        ]
    }

    /// This metadata, borrowed.
    pub fn view(&self) -> MetaRef<'_> {
        match &self.0 {
            None => MetaRef(Repr::Empty),
            Some(v) => MetaRef(Repr::Owned(v)),
        }
    }

    /// Appends the binary form (`docs/log-format.md`, "Metadata"): a byte of flags (bit 0
    /// actor, 1 source, 2 correlation id, 3 causation id, 4 tags), then each value set as a
    /// LEB128 length and its bytes, then (with bit 4) the tag count and each name and value.
    #[inline]
    pub(crate) fn encode(&self, out: &mut Vec<u8>, text: fn(&mut Vec<u8>, &str), count: fn(&mut Vec<u8>, u64)) {
        if self.0.is_none() {
            out.push(0);
            return;
        }
        let texts = self.texts();
        let mut flags = 0u8;
        for (i, (_, v)) in texts.iter().enumerate() {
            flags |= u8::from(v.is_some()) << i;
        }
        let tags: &[(String, String)] = self.0.as_ref().map_or(&[], |v| &v.tags);
        flags |= u8::from(!tags.is_empty()) << 4;
        out.push(flags);
        for v in texts.iter().filter_map(|(_, v)| *v) {
            text(out, v);
        }
        if !tags.is_empty() {
            count(out, tags.len() as u64);
            for (n, v) in tags {
                text(out, n);
                text(out, v);
            }
        }
    }
}

/// What [`read_section`] reads values through: a record reader.
pub(crate) trait SectionReader<'a> {
    /// The reader's error.
    type Error;
    /// The next length-prefixed text, as `what`.
    fn text(&mut self, what: &'static str) -> Result<&'a str, Self::Error>;
    /// The next LEB128 count.
    fn count(&mut self, what: &'static str) -> Result<u64, Self::Error>;
    /// An error at the reader's place.
    fn fail(&self, reason: String) -> Self::Error;
}

/// Reads the metadata section [`Metadata::encode`] wrote, after its `flags` byte: checks every
/// value by the rules a [`Metadata`] holds to (without allocating), refuses unknown flag bits
/// and tags out of order or repeated, and sets each value into `keep` when there is one.
pub(crate) fn read_section<'a, R: SectionReader<'a>>(
    flags: u8,
    r: &mut R,
    mut keep: Option<&mut Metadata>,
) -> Result<(), R::Error> {
    if flags >> 5 != 0 {
        return Err(r.fail(format!("metadata: flags {flags:#04x} set unknown bits")));
    }
    const FIELDS: [&str; 4] = ["actor", "source", "correlation_id", "causation_id"];
    for (i, field) in FIELDS.into_iter().enumerate() {
        if flags & (1 << i) != 0 {
            let v = r.text(field)?;
            check_text(field, None, v, META_TEXT_BYTES_MAX, false).map_err(|e| r.fail(e.to_string()))?;
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
        let n = r.count("tags")?;
        if n == 0 || n > TAGS_MAX as u64 {
            return Err(r.fail(format!("tags: {n} tags; a record holds 1 to {TAGS_MAX}")));
        }
        let mut last: Option<&str> = None;
        for _ in 0..n {
            let (name, value) = (r.text("tags")?, r.text("tags")?);
            check_text("tags", Some(name), name, TAG_NAME_BYTES_MAX, false).map_err(|e| r.fail(e.to_string()))?;
            check_text("tags", Some(name), value, META_TEXT_BYTES_MAX, true).map_err(|e| r.fail(e.to_string()))?;
            if last.is_some_and(|l| l >= name) {
                return Err(r.fail(format!("tags: {name:?} is out of order or repeated")));
            }
            last = Some(name);
            if let Some(m) = keep.as_deref_mut() {
                m.values().tags.push((name.to_owned(), value.to_owned()));
            }
        }
    }
    Ok(())
}

/// An event's metadata borrowed: from an owned [`Metadata`], or the binary form a record
/// holds (checked when the record was read, turned into values only when asked), so a pass
/// over the log reads no metadata it does not use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetaRef<'a>(Repr<'a>);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Repr<'a> {
    Empty,
    Owned(&'a Values),
    /// The binary form, checked by [`crate::codec`] (a flags byte that is not zero first).
    Encoded(&'a [u8]),
}

impl Default for MetaRef<'_> {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl<'a> MetaRef<'a> {
    /// No metadata.
    pub const EMPTY: Self = Self(Repr::Empty);

    /// The binary form of a record's metadata, already checked.
    pub(crate) fn encoded(bytes: &'a [u8]) -> Self {
        if bytes.first().is_none_or(|&f| f == 0) { Self::EMPTY } else { Self(Repr::Encoded(bytes)) }
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        matches!(self.0, Repr::Empty)
    }

    /// The owned metadata.
    pub fn to_metadata(&self) -> Metadata {
        match self.0 {
            Repr::Empty => Metadata::new(),
            Repr::Owned(v) => Metadata(Some(Box::new(v.clone()))),
            // Checked when the record was read, so this decodes; an empty value is the answer
            // a failure could only give if the bytes changed under the view, which they cannot.
            Repr::Encoded(b) => crate::codec::decode_metadata(b).unwrap_or_default(),
        }
    }
}

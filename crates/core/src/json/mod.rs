//! The canonical JSON form: one flat object per line, `type` first, unknown fields rejected.
//!
//! See `docs/event-format.md` for the contract. Parsing goes through one flat struct that
//! serde fills in a single pass; the typed [`Event`](crate::Event) is then built from it, refusing fields that
//! do not belong to the line's `type`.

use thiserror::Error;

use std::borrow::Cow;

use crate::event::{Envelope, EventKind, NewEvent};
use crate::id::{AccountId, EventId, Interner, Position, StreamVersion};
use crate::timestamp::Timestamp;
use crate::upcast::{UpcastError, Upcasters};

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
    /// The line is an older (or newer) schema version of its type than this build reads, and
    /// no upcaster took it to the current one (see [`crate::upcast`]).
    #[error("schema_version: {kind} version {version}, and this build reads version {current}")]
    SchemaVersion {
        /// The event type.
        kind: EventKind,
        /// The version the line states.
        version: u64,
        /// The version this build reads.
        current: u32,
    },
    /// An upcaster refused or failed the line.
    #[error("{0}")]
    Upcast(#[from] crate::upcast::UpcastError),
}

impl ParseEventError {
    /// The field at fault, when one is.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::MissingField { field, .. }
            | Self::FieldNotAllowed { field, .. }
            | Self::InvalidField { field, .. } => Some(field),
            Self::UnknownType { .. } => Some("type"),
            Self::SchemaVersion { .. } => Some("schema_version"),
            _ => None,
        }
    }
}

mod build;
mod fields;
mod scan;
mod schema;
#[cfg(test)]
mod tests;
mod write;

use build::build_event;
pub use fields::{
    ENVELOPE_EXTRA_FIELDS, FieldType, Need, SUBMITTED_FIELDS, TYPE_FIELDS, advocacy_tag, channel_tag, severity_tag,
};
use fields::{Fields, Parse, RawLine, Text, build_meta, invalid, refuse_present};
#[cfg(any(test, feature = "testing"))]
pub(crate) use scan::compact_scan_agrees;
use scan::scan_compact;
pub use schema::event_schema;
use write::JsonForm;
pub use write::write_json_string;

/// Reads `line`'s fields into `raw`, which must be empty (`RawLine::default()`). Filled in
/// place rather than returned: `RawLine` is over 500 bytes, and moving it out of the scanner
/// and out of here cost two `memcpy` calls a line. `stored`: whether the line is in the stored
/// form (for the list of fields an unknown field's refusal names).
fn parse_raw<'a>(line: &'a str, raw: &mut RawLine<'a>, stored: bool) -> Parse<()> {
    if line.len() > LINE_BYTES_MAX {
        return Err(ParseEventError::LineTooLong { len: line.len(), max: LINE_BYTES_MAX });
    }
    if !scan_compact(line, raw) {
        *raw = serde_json::from_str(line).map_err(|e| match line.trim_start().as_bytes().first() {
            // serde's word for an array read as an event is about its first element.
            Some(b'[') => ParseEventError::Json {
                reason: "a JSON array, not an event: JSON Lines hold one event object a line".into(),
            },
            _ => match e.classify() {
                // serde names the JSON type it expected, not the field.
                serde_json::error::Category::Data => field_of_wrong_type(line)
                    .map_or_else(|| json_error(e, stored), |reason| ParseEventError::Json { reason }),
                _ => json_error(e, stored),
            },
        })?;
    }
    Ok(())
}

/// serde_json's message quotes what it refused (an unknown field's name, a value): escaped, so
/// the message stays one line whatever the input holds. For an unknown field it lists the
/// fields the form takes: serde's own list names the store-assigned ones, which a submission
/// may not carry (`stored` says whether the form is the stored one, which holds them).
fn json_error(e: serde_json::Error, stored: bool) -> ParseEventError {
    let mut reason = e.to_string();
    if reason.starts_with("unknown field `")
        && let (Some(from), Some(to)) = (reason.rfind(", expected one of "), reason.rfind(" at line "))
        && from < to
    {
        let mut names: Vec<&str> = SUBMITTED_FIELDS.iter().map(|(n, _)| *n).collect();
        if stored {
            names.extend(STORE_ASSIGNED);
        }
        let list: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
        reason = format!("{}, expected one of {}{}", &reason[..from], list.join(", "), &reason[to..]);
    }
    ParseEventError::Json { reason: crate::escape::one_line(&reason).into_owned() }
}

/// The first field of `line` (an object, read again as a map: a refusal's cold path) that
/// holds another JSON type than its field's, named with both: what serde's "invalid type"
/// leaves out. `None` if there is none (serde refused something else).
fn field_of_wrong_type(line: &str) -> Option<String> {
    let serde_json::Value::Object(fields) = serde_json::from_str(line).ok()? else { return None };
    fields.iter().find_map(|(name, value)| {
        let &(_, kind) = SUBMITTED_FIELDS.iter().find(|(n, _)| n == name)?;
        let (fits, expected) = match kind {
            FieldType::Text => (value.is_string(), "a string"),
            FieldType::Number => (value.is_number(), "a number"),
            FieldType::Integer => (value.is_i64() || value.is_u64(), "an integer"),
            FieldType::Bool => (value.is_boolean(), "true or false"),
            FieldType::Object => (value.is_object(), "an object"),
        };
        // `null` is absent for the parser, whatever the field.
        (!fits && !value.is_null()).then(|| {
            let got = match value {
                serde_json::Value::String(s) => format!("the string {}", crate::escape::one_line(&excerpt(s))),
                serde_json::Value::Number(n) => format!("the number {n}"),
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Array(_) => "an array".into(),
                serde_json::Value::Object(_) => "an object".into(),
                serde_json::Value::Null => "null".into(),
            };
            format!("{name}: {expected} is expected, not {got}")
        })
    })
}

/// At most 40 characters of `s`, quoted, with `…` where it was cut.
fn excerpt(s: &str) -> String {
    let shown = crate::escape::first_chars(s, 40);
    format!("{shown:?}{}", if shown.len() < s.len() { "…" } else { "" })
}

/// The fields a store assigns: in the stored form, refused in a submission.
const STORE_ASSIGNED: [&str; 3] = ["recorded_at", "stream_version", "position"];

/// The id a line without one is built with until its own is known: nil, which no line can
/// give (a nil id is refused), so it stands for "absent".
const ABSENT_ID: EventId = EventId::from_bytes([0; 16]);

/// Builds the event and envelope fields shared by both forms; its id is [`ABSENT_ID`] when the
/// line has none. (One struct, not an id beside it: every line's result is moved several times.)
fn build_new(raw: &RawLine<'_>, interner: Option<&mut Interner>) -> Parse<NewEvent> {
    // `ok_or_else`: the error's `String` was otherwise built, and freed, for every line.
    let tag = raw.ty.as_deref().ok_or_else(|| ParseEventError::Json { reason: "missing field `type`".into() })?;
    let kind = EventKind::from_tag(tag).ok_or_else(|| ParseEventError::UnknownType { tag: tag.to_owned() })?;
    check_version(kind, raw.schema_version)?;
    let f = Fields { raw, kind, interner: std::cell::RefCell::new(interner) };
    let account = f.key("account", &raw.account, AccountId::new, AccountId::new_in)?;
    let occurred_at = f.time("occurred_at", &raw.occurred_at)?;
    let id = match &raw.id {
        None => ABSENT_ID,
        Some(s) => s.parse::<EventId>().map_err(|e| invalid("id", e))?,
    };
    let event = build_event(&f)?;
    let meta = build_meta(raw, f.interner.into_inner())?;
    // An absent id is replaced by the caller; nil never escapes.
    Ok(NewEvent { id, account, occurred_at, event, meta })
}

/// A line the parser refused for `refusal`, upcast to the current shape; `None` when no
/// upcaster takes it, so the refusal stands. Any refusal but a line too long to read may be an
/// older shape (its fields are refused as unknown before its type is seen); a current line
/// never gets here.
fn upcast_line(line: &str, refusal: &ParseEventError, upcasters: &Upcasters) -> Parse<Option<String>> {
    if matches!(refusal, ParseEventError::LineTooLong { .. }) {
        return Ok(None);
    }
    let Ok(mut obj) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line) else {
        return Ok(None);
    };
    if !upcasters.takes(&obj) {
        return Ok(None);
    }
    upcasters.upcast(&mut obj)?;
    let out = serde_json::to_string(&obj).map_err(|e| UpcastError::Shape(e.to_string()))?;
    if out.len() > LINE_BYTES_MAX {
        return Err(ParseEventError::LineTooLong { len: out.len(), max: LINE_BYTES_MAX });
    }
    Ok(Some(out))
}

/// A line may state its type's schema version; any but the current one needs an upcaster.
fn check_version(kind: EventKind, version: Option<u64>) -> Parse<()> {
    match version {
        Some(v) if v != u64::from(kind.schema_version()) => {
            Err(ParseEventError::SchemaVersion { kind, version: v, current: kind.schema_version() })
        }
        _ => Ok(()),
    }
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
        Self::from_json_line_with(line, Upcasters::builtin())
    }

    /// Like [`from_json_line`](Self::from_json_line), sharing key texts through `interner`:
    /// for parsing many lines (an import), where most lines repeat an account.
    ///
    /// # Errors
    /// [`ParseEventError`] naming the field at fault.
    pub fn from_json_line_in(line: &str, interner: &mut Interner) -> Result<Self, ParseEventError> {
        Self::from_json_line_in_with(line, interner, Upcasters::builtin())
    }

    /// Like [`from_json_line`](Self::from_json_line), taking a line of an older shape (one
    /// that states an older `schema_version`, or has a `type` only an upcaster knows) through
    /// `upcasters` first. A line in the current shape never reaches them.
    ///
    /// # Errors
    /// [`ParseEventError`] naming the field at fault; [`ParseEventError::Upcast`] when an
    /// upcaster is missing or fails.
    pub fn from_json_line_with(line: &str, upcasters: &Upcasters) -> Result<Self, ParseEventError> {
        match Self::parse_line(line, None) {
            Ok(e) => Ok(e),
            Err(e) => Self::upcast_refused(line, e, None, upcasters),
        }
    }

    /// A refused line again, through `upcasters` when one of them takes it; otherwise the
    /// refusal `e` as it was.
    #[cold]
    fn upcast_refused(
        line: &str,
        e: ParseEventError,
        interner: Option<&mut Interner>,
        upcasters: &Upcasters,
    ) -> Result<Self, ParseEventError> {
        match upcast_line(line, &e, upcasters)? {
            Some(line) => Self::parse_line(&line, interner),
            None => Err(e),
        }
    }

    /// [`from_json_line_with`](Self::from_json_line_with) sharing key texts through
    /// `interner`.
    ///
    /// # Errors
    /// As [`from_json_line_with`](Self::from_json_line_with).
    pub fn from_json_line_in_with(
        line: &str,
        interner: &mut Interner,
        upcasters: &Upcasters,
    ) -> Result<Self, ParseEventError> {
        match Self::parse_line(line, Some(&mut *interner)) {
            Ok(e) => Ok(e),
            Err(e) => Self::upcast_refused(line, e, Some(interner), upcasters),
        }
    }

    fn parse_line(line: &str, interner: Option<&mut Interner>) -> Result<Self, ParseEventError> {
        let mut raw = RawLine::default();
        parse_raw(line, &mut raw, false)?;
        refuse_present(&raw.store_assigned(), "is assigned by the store and cannot be submitted")?;
        let mut new = build_new(&raw, interner)?;
        if new.id == ABSENT_ID {
            new.id = EventId::derive(&new.canonical_content());
        }
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
        parse_raw(body, &mut raw, false)?;
        let apart = [
            ("type", raw.ty.is_some()),
            ("id", raw.id.is_some()),
            ("account", raw.account.is_some()),
            ("occurred_at", raw.occurred_at.is_some()),
            ("schema_version", raw.schema_version.is_some()),
        ];
        let reason = "is not one of the event's own fields";
        refuse_present(&apart, reason)?;
        refuse_present(&raw.store_assigned(), reason)?;
        let kind = EventKind::from_tag(tag).ok_or_else(|| ParseEventError::UnknownType { tag: tag.to_owned() })?;
        raw.ty = Some(Text(Cow::Borrowed(tag)));
        let f = Fields { raw: &raw, kind, interner: std::cell::RefCell::new(None) };
        let event = build_event(&f)?;
        Ok(NewEvent { id, account, occurred_at, event, meta: build_meta(&raw, None)? })
    }

    /// The canonical JSON line (without a trailing newline).
    pub fn to_json_line(&self) -> String {
        JsonForm { new: self, header: true, with_id: true, with_meta: true, with_version: false, stored: None }
            .to_line()
    }

    /// The canonical line stating its type's `schema_version`: what an export writes, so that a
    /// later build, whose type may have moved on, reads it through its upcasters
    /// ([`crate::upcast`]) rather than as its own version. This build reads it as it reads the
    /// line without it.
    ///
    /// ```
    /// # use rapport_core::NewEvent;
    /// let line = r#"{"type":"touchpoint","id":"0195f3a2-7c1e-7000-8000-000000000001","account":"acme","occurred_at":"2025-03-06T10:00:00Z","channel":"call"}"#;
    /// let e = NewEvent::from_json_line(line)?;
    /// let versioned = e.to_json_line_versioned();
    /// assert!(versioned.contains(r#""occurred_at":"2025-03-06T10:00:00Z","schema_version":2,"#));
    /// assert_eq!(NewEvent::from_json_line(&versioned)?, e);
    /// # Ok::<(), rapport_core::ParseEventError>(())
    /// ```
    pub fn to_json_line_versioned(&self) -> String {
        JsonForm { new: self, header: true, with_id: true, with_meta: true, with_version: true, stored: None }.to_line()
    }

    /// The canonical JSON of everything but the id and the metadata: what a derived v5 id is
    /// computed from (so the same fact from two sources derives one id).
    pub fn canonical_content(&self) -> Vec<u8> {
        JsonForm { new: self, header: true, with_id: false, with_meta: false, with_version: false, stored: None }
            .to_line()
            .into_bytes()
    }

    /// The canonical JSON of the event's own fields and its metadata: the line without
    /// `type`, `id`, `account` and `occurred_at`, for stores that keep those in columns of
    /// their own. The line is
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
        JsonForm { new: self, header: false, with_id: false, with_meta: true, with_version: false, stored: None }
            .to_line()
    }
}

impl Envelope {
    /// Parses the stored form: the canonical line plus `recorded_at`, `stream_version` and
    /// `position`, all required, as is `id`.
    ///
    /// # Errors
    /// [`ParseEventError`] naming the field at fault.
    pub fn from_json_line(line: &str) -> Result<Self, ParseEventError> {
        Self::from_json_line_with(line, Upcasters::builtin())
    }

    /// Like [`from_json_line`](Self::from_json_line), taking a line of an older shape through
    /// `upcasters` first (see [`NewEvent::from_json_line_with`]).
    ///
    /// # Errors
    /// As [`NewEvent::from_json_line_with`].
    pub fn from_json_line_with(line: &str, upcasters: &Upcasters) -> Result<Self, ParseEventError> {
        match Self::parse_stored(line) {
            Err(e) => match upcast_line(line, &e, upcasters)? {
                Some(line) => Self::parse_stored(&line),
                None => Err(e),
            },
            parsed => parsed,
        }
    }

    fn parse_stored(line: &str) -> Result<Self, ParseEventError> {
        let mut raw = RawLine::default();
        parse_raw(line, &mut raw, true)?;
        let new = build_new(&raw, None)?;
        let kind = new.event.kind();
        let missing = |field| ParseEventError::MissingField { field, kind };
        if new.id == ABSENT_ID {
            return Err(missing("id"));
        }
        let recorded_at = Timestamp::parse(raw.recorded_at.as_deref().ok_or_else(|| missing("recorded_at"))?)
            .map_err(|e| invalid("recorded_at", e))?;
        let stream_version = StreamVersion(raw.stream_version.ok_or_else(|| missing("stream_version"))?);
        let position = Position(raw.position.ok_or_else(|| missing("position"))?);
        Ok(Envelope::new(new, recorded_at, stream_version, position))
    }

    /// The stored JSON form (without a trailing newline).
    pub fn to_json_line(&self) -> String {
        write::stored_line(self)
    }
}

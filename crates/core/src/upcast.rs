//! Upcasting: reading an older shape of an event as today's type. The log is never rewritten;
//! a record or line of an older schema version is turned into the current one as it is read.
//!
//! Every event type has a schema version ([`EventKind::schema_version`]). Stored records carry
//! theirs: the file store in each record's type code, PostgreSQL in a column. rapport's own
//! older versions are upcast by built-in steps (version 1 to 2 of every type adds metadata,
//! which a version-1 event has none of). For JSON, [`Upcasters`] holds the steps as functions
//! over the line's object, and a service may register its own for the older shapes of its own
//! logs: each step turns the object of one `(type, schema_version)` into the next shape, until
//! the object is a current event. The importer and the JSON reads
//! ([`NewEvent::from_json_line_with`](crate::NewEvent::from_json_line_with),
//! [`Envelope::from_json_line_with`](crate::Envelope::from_json_line_with)) run them; a
//! line already in the current shape never reaches them.
//!
//! An object's version is its `schema_version` field; without one, a rapport type is at its
//! current version and any other `type` at version 1. A step receives the object without
//! `schema_version`, changes it in place (it may rename `type`), and may set `schema_version`
//! on its output; without it the output is read by the same rule. Each step must change the
//! object's `(type, version)`, and a chain of more than [`UPCAST_STEPS_MAX`] steps is refused,
//! so a loop of steps ends in an error.
//!
//! ```
//! use rapport_core::upcast::Upcasters;
//! use rapport_core::NewEvent;
//!
//! // An older service logged NPS answers under a type of its own, with the score as `value`.
//! let mut upcasters = Upcasters::new();
//! upcasters.register("nps_answered", 1, |obj| {
//!     let value = obj.remove("value").ok_or("value: missing")?;
//!     obj.insert("type".into(), "survey_answered".into());
//!     obj.insert("nps".into(), value);
//!     Ok(())
//! })?;
//! let old = r#"{"type":"nps_answered","account":"acme","occurred_at":"2024-05-01T00:00:00Z","survey":"q2","value":9}"#;
//! let e = NewEvent::from_json_line_with(old, &upcasters)?;
//! assert_eq!(e.event.kind().tag(), "survey_answered");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

use crate::event::EventKind;

/// The longest chain of steps one object may take.
pub const UPCAST_STEPS_MAX: usize = 16;

/// One upcasting step: the object of one `(type, version)`, changed in place into the next
/// shape; an `Err` is the reason the object cannot be upcast.
pub type Step = dyn Fn(&mut Map<String, Value>) -> Result<(), String> + Send + Sync;

/// Why an object could not be upcast, or a step not registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpcastError {
    /// A step for this `(type, version)` is registered already (rapport's own included).
    #[error("an upcaster for {tag} version {version} is registered already")]
    Duplicate {
        /// The type.
        tag: String,
        /// The version.
        version: u32,
    },
    /// The `(type, version)` is a current or future rapport event: nothing to upcast from.
    #[error("{tag} version {version} is not older than this build's version {current}: it needs no upcaster")]
    NotOlder {
        /// The type.
        tag: String,
        /// The version.
        version: u32,
        /// The current version of the type.
        current: u32,
    },
    /// No step takes the object's `(type, version)` on.
    #[error("type: no upcaster for {tag} version {version}")]
    Missing {
        /// The type.
        tag: String,
        /// The version.
        version: u64,
    },
    /// A step refused the object.
    #[error("upcasting {tag} version {version}: {reason}")]
    Failed {
        /// The type.
        tag: String,
        /// The version.
        version: u64,
        /// What the step said.
        reason: String,
    },
    /// A step left the object's `(type, version)` as it was, or the chain grew past
    /// [`UPCAST_STEPS_MAX`].
    #[error("upcasting {tag} version {version}: the steps do not reach a current event")]
    NoProgress {
        /// The type.
        tag: String,
        /// The version.
        version: u64,
    },
    /// The line is not a JSON object with a string `type` and an integer `schema_version`.
    #[error("{0}")]
    Shape(String),
}

/// The upcasting steps for JSON objects, by `(type, version)`: rapport's own, and those a
/// service registers. Cheap to share (`Arc` inside each step); see the [module docs](self).
#[derive(Clone)]
pub struct Upcasters {
    steps: HashMap<(String, u32), Arc<Step>>,
}

impl std::fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<_> = self.steps.keys().collect();
        keys.sort();
        f.debug_struct("Upcasters").field("steps", &keys).finish()
    }
}

/// Two registries are equal when they hold the same steps (the same functions, shared).
impl PartialEq for Upcasters {
    fn eq(&self, other: &Self) -> bool {
        self.steps.len() == other.steps.len()
            && self.steps.iter().all(|(k, f)| other.steps.get(k).is_some_and(|g| Arc::ptr_eq(f, g)))
    }
}

impl Eq for Upcasters {}

impl Default for Upcasters {
    fn default() -> Self {
        Self::new()
    }
}

/// rapport's own step from version 1 of every type that has one to version 2: the same fields; version 2
/// adds metadata, so a version-1 object that carries any is refused.
fn v1_to_v2(obj: &mut Map<String, Value>) -> Result<(), String> {
    match crate::meta::FIELDS.iter().find(|f| obj.contains_key(**f)) {
        Some(field) => Err(format!("{field}: schema version 1 has no metadata")),
        None => {
            obj.insert("schema_version".into(), Value::from(2));
            Ok(())
        }
    }
}

impl Upcasters {
    /// rapport's own steps, and room for a service's.
    pub fn new() -> Self {
        let mut steps: HashMap<(String, u32), Arc<Step>> = HashMap::new();
        // The types added at version 2 have no version 1 to step from.
        for kind in EventKind::ALL.into_iter().filter(|k| k.first_schema_version() == 1) {
            steps.insert((kind.tag().to_owned(), 1), Arc::new(v1_to_v2));
        }
        Self { steps }
    }

    /// rapport's own steps, shared: what reads without a registry of their own use.
    pub fn builtin() -> &'static Self {
        static BUILTIN: OnceLock<Upcasters> = OnceLock::new();
        BUILTIN.get_or_init(Self::new)
    }

    /// Registers `step` for objects of type `tag` at `version`.
    ///
    /// # Errors
    /// [`UpcastError::Duplicate`] when a step for the pair exists (rapport's own included);
    /// [`UpcastError::NotOlder`] for a rapport type at its current version or later.
    pub fn register(
        &mut self,
        tag: &str,
        version: u32,
        step: impl Fn(&mut Map<String, Value>) -> Result<(), String> + Send + Sync + 'static,
    ) -> Result<&mut Self, UpcastError> {
        if let Some(kind) = EventKind::from_tag(tag)
            && version >= kind.schema_version()
        {
            return Err(UpcastError::NotOlder { tag: tag.to_owned(), version, current: kind.schema_version() });
        }
        let key = (tag.to_owned(), version);
        if self.steps.contains_key(&key) {
            return Err(UpcastError::Duplicate { tag: tag.to_owned(), version });
        }
        self.steps.insert(key, Arc::new(step));
        Ok(self)
    }

    /// Upcasts `obj` in place until it is a current event (its `schema_version` removed).
    ///
    /// # Errors
    /// [`UpcastError`]: no step for a `(type, version)` on the way, a step that failed or made
    /// no progress, or an object without a string `type`.
    pub fn upcast(&self, obj: &mut Map<String, Value>) -> Result<(), UpcastError> {
        for _ in 0..=UPCAST_STEPS_MAX {
            let (tag, version) = shape(obj)?;
            obj.remove("schema_version");
            if let Some(kind) = EventKind::from_tag(&tag)
                && version == u64::from(kind.schema_version())
            {
                return Ok(());
            }
            let step = u32::try_from(version)
                .ok()
                .and_then(|v| self.steps.get(&(tag.clone(), v)))
                .ok_or_else(|| UpcastError::Missing { tag: tag.clone(), version })?;
            step(obj).map_err(|reason| UpcastError::Failed { tag: tag.clone(), version, reason })?;
            if shape(obj)? == (tag.clone(), version) {
                return Err(UpcastError::NoProgress { tag, version });
            }
        }
        let (tag, version) = shape(obj)?;
        Err(UpcastError::NoProgress { tag, version })
    }

    /// Whether a step takes `obj`'s own `(type, version)`: when none does, an object the
    /// parser refused stays refused as it was.
    pub(crate) fn takes(&self, obj: &Map<String, Value>) -> bool {
        shape(obj).is_ok_and(|(tag, version)| u32::try_from(version).is_ok_and(|v| self.steps.contains_key(&(tag, v))))
    }
}

/// rapport's own upcast for a store that decodes an older version's fields as today's type (a
/// PostgreSQL row keeps its fields as JSON and its version in a column): from `version` to the
/// current version of `e`'s type. From version 1, the same fields, and no metadata (a version-1
/// row that holds any is refused). The binary decoder ([`crate::codec`]) applies the same step
/// to a version-1 record, which has no metadata section to hold any.
///
/// # Errors
/// [`UpcastError::Failed`] for metadata in a version-1 event; [`UpcastError::Missing`] for a
/// version this build does not know (0, or newer than the current one).
pub fn upcast_decoded(version: u32, e: crate::NewEvent) -> Result<crate::NewEvent, UpcastError> {
    let kind = e.event.kind();
    match version {
        1 if !e.meta.is_empty() => Err(UpcastError::Failed {
            tag: kind.tag().to_owned(),
            version: 1,
            reason: "schema version 1 has no metadata".into(),
        }),
        v if v == kind.schema_version() || (v == 1 && kind.first_schema_version() == 1) => Ok(e),
        other => Err(UpcastError::Missing { tag: kind.tag().to_owned(), version: u64::from(other) }),
    }
}

/// An object's `(type, version)` by the module's rule.
fn shape(obj: &Map<String, Value>) -> Result<(String, u64), UpcastError> {
    let tag = match obj.get("type") {
        Some(Value::String(t)) => t.clone(),
        _ => return Err(UpcastError::Shape("type: missing, or not a string".into())),
    };
    let version = match obj.get("schema_version") {
        None => EventKind::from_tag(&tag).map_or(1, |k| u64::from(k.schema_version())),
        Some(v) => v.as_u64().ok_or_else(|| UpcastError::Shape("schema_version: not a whole number".into()))?,
    };
    Ok((tag, version))
}

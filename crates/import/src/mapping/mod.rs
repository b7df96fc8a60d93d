//! Mappings: a jq program (run by the `jaq` crates) that turns each record of a foreign export
//! into zero or more events in the canonical form (`docs/mapping.md`).
//!
//! A [`Mapping`] holds the program's text and is checked when made; each parsing thread
//! compiles its own [`Compiled`] copy (jaq's values are reference-counted, not shared between
//! threads): jaq's filter, and the compiled tree (`compile.rs`, `eval.rs`, `value.rs`) when
//! the program keeps to the part of jq it runs, tried first on each record. A record's
//! outputs are written as JSON and parsed by the canonical parser, so a mapped event is
//! validated, limited and identified exactly as the same line would be.

use std::fmt::Write as _;

mod compile;
mod eval;
#[cfg(any(test, feature = "testing"))]
pub(crate) mod paths;
mod shape;
#[cfg(test)]
mod tests;
mod value;

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data};
use jaq_json::Val;
use rapport_core::escape::one_line;
use rapport_core::upcast::Upcasters;
use rapport_core::{Interner, Metadata, MetadataError, NewEvent};
use thiserror::Error;
use value::{Bail, V};

/// Events one record may become at most (a runaway program stops there, refused).
pub const MAPPED_EVENTS_MAX: usize = 64;

/// The largest mapping program accepted, in bytes.
pub const MAPPING_BYTES_MAX: usize = 1 << 20;

/// jq's functions a mapping may not call (see [`Mapping::compile`]).
const EXCLUDED: [&str; 6] = ["halt", "env", "now", "localtime", "strflocaltime", "stderr_empty"];
/// jq's definitions made of [`EXCLUDED`] functions.
const EXCLUDED_DEFS: [&str; 3] = ["stderr", "halt", "halt_error"];

/// Definitions every mapping may call, beside jq's own (see `docs/mapping.md`).
const PRELUDE: &str = r#"
def from_epoch_s: todate;
def from_epoch_ms: . / 1000 | todate;
def from_local($offset): .[0:10] + "T" + .[11:] + $offset;
"#;

/// Why a mapping could not be made.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MappingError {
    /// The program does not parse or names what jq does not define: `NAME:LINE:COLUMN: what`.
    #[error("mapping {}:{line}:{column}: {reason}", one_line(name))]
    Invalid {
        /// The mapping's name (its file, as given).
        name: String,
        /// The 1-based line of the program.
        line: usize,
        /// The 1-based column (in characters).
        column: usize,
        /// What was wrong.
        reason: String,
    },
    /// The program is longer than [`MAPPING_BYTES_MAX`].
    #[error("mapping {}: {bytes} bytes, at most {MAPPING_BYTES_MAX}", one_line(name))]
    TooLarge {
        /// The mapping's name.
        name: String,
        /// Its size.
        bytes: usize,
    },
    /// Reading the mapping's file failed.
    #[error("mapping {}: {source}", one_line(name))]
    Io {
        /// The mapping's name.
        name: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// A jq program that maps each input record to zero or more canonical events.
///
/// ```
/// use rapport_import::Mapping;
///
/// let m = Mapping::new("calls.jq", r#"{type: "touchpoint", account: .customer, occurred_at: (.at | from_epoch_s), channel: "call"}"#)?;
/// assert_eq!(m.name(), "calls.jq");
/// assert!(Mapping::new("bad.jq", "{type: ").is_err());
/// # Ok::<(), rapport_import::MappingError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    name: String,
    program: String,
    /// What the importer stamps as an event's `source` when the mapping's output has none.
    source: Option<String>,
    /// Whether the program compiles to the compiled path (`compile.rs`).
    compiled: bool,
}

impl Mapping {
    /// A mapping named `name` (for errors) running `program`; checked here.
    ///
    /// # Errors
    /// [`MappingError::Invalid`] naming the line and column, or [`MappingError::TooLarge`].
    pub fn new(name: impl Into<String>, program: impl Into<String>) -> Result<Self, MappingError> {
        let name = name.into();
        // The file's stem (`helpdesk` for `mappings/helpdesk.jq`), when it is a valid source.
        let stem = std::path::Path::new(&name).file_stem().and_then(|s| s.to_str()).unwrap_or(&name);
        let source = Metadata::new().with_source(stem).ok().map(|_| stem.to_owned());
        let mut m = Self { program: program.into(), source, name, compiled: false };
        if m.program.len() > MAPPING_BYTES_MAX {
            return Err(MappingError::TooLarge { name: m.name, bytes: m.program.len() });
        }
        // jaq compiles by recursion: on a thread whose stack the importer sizes, as its own
        // threads are (the caller's may be small).
        let check = |m: &Self| m.compile().map(|c| c.fast.is_some());
        m.compiled = std::thread::scope(|scope| {
            match crate::threads::sized("rapport-mapping").spawn_scoped(scope, || check(&m)) {
                Ok(handle) => handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(source) => Err(MappingError::Io { name: m.name.clone(), source }),
            }
        })?;
        if !m.compiled {
            tracing::info!(
                mapping = %one_line(&m.name),
                "the mapping uses what the compiled path does not run: every record runs in jaq (docs/mapping.md)"
            );
        }
        Ok(m)
    }

    /// Whether the program keeps to the part of jq the importer runs compiled (`docs/mapping.md`,
    /// "How a mapping runs"). When it does not, every record runs in jaq: the same events,
    /// about three times slower.
    ///
    /// ```
    /// use rapport_import::Mapping;
    ///
    /// assert!(Mapping::new("m.jq", r#"{type: "touchpoint", account: .a, occurred_at: (.t | todate), channel: "call"}"#)?.runs_compiled());
    /// assert!(!Mapping::new("m.jq", "reduce .[] as $x (0; . + $x)")?.runs_compiled());
    /// # Ok::<(), rapport_import::MappingError>(())
    /// ```
    pub fn runs_compiled(&self) -> bool {
        self.compiled
    }

    /// The mapping in the file at `path`, named by the path.
    ///
    /// # Errors
    /// [`MappingError`].
    pub fn from_file(path: &std::path::Path) -> Result<Self, MappingError> {
        let name = path.display().to_string();
        let size = std::fs::metadata(path).map_err(|source| MappingError::Io { name: name.clone(), source })?.len();
        if size > MAPPING_BYTES_MAX as u64 {
            return Err(MappingError::TooLarge { name, bytes: usize::try_from(size).unwrap_or(usize::MAX) });
        }
        let program =
            std::fs::read_to_string(path).map_err(|source| MappingError::Io { name: name.clone(), source })?;
        Self::new(name, program)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `source` the importer stamps on each mapped event whose output names none: by
    /// default the stem of the mapping's name (`helpdesk` for `mappings/helpdesk.jq`), or
    /// none when that is not a valid source.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// This mapping stamping `source` instead (see [`source`](Self::source)).
    ///
    /// # Errors
    /// [`MetadataError`] when `source` is not a valid `source` value.
    pub fn with_source(mut self, source: impl Into<String>) -> Result<Self, MetadataError> {
        let source = source.into();
        Metadata::new().with_source(source.as_str())?;
        self.source = Some(source);
        Ok(self)
    }

    /// Compiles the program for one thread.
    pub(crate) fn compile(&self) -> Result<Compiled, MappingError> {
        let code = format!("{PRELUDE}\n{}", self.program);
        let prelude_lines = PRELUDE.lines().count() + 1;
        // Where a slice the loader or compiler names lies in the program (the prelude's lines
        // are not the user's).
        let at = |s: &str, reason: String| {
            let offset = (s.as_ptr() as usize).saturating_sub(code.as_ptr() as usize).min(code.len());
            let before = code.get(..offset).unwrap_or(&code);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            MappingError::Invalid { name: self.name.clone(), line: line.saturating_sub(prelude_lines), column, reason }
        };
        if let Some((offset, reason)) = shape::too_deep(&self.program) {
            let from = code.len() - self.program.len() + offset;
            return Err(at(code.get(from..).unwrap_or_default(), reason));
        }
        // A mapping is a function of its record: nothing that reads the clock, the
        // environment or the local time zone (a re-import would derive other ids), writes to
        // stderr, or ends the process (`halt` exits it); with the definitions built on them.
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs())
            .filter(|d| !EXCLUDED_DEFS.contains(&d.name));
        let funs = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs())
            .filter(|(name, ..)| !EXCLUDED.contains(name));
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let modules = loader.load(&arena, File { code: code.as_str(), path: () }).map_err(|errs| {
            let (_, e) = errs.into_iter().next().expect("a failed load names an error");
            match e {
                jaq_core::load::Error::Io(v) => {
                    let (s, why) = v.into_iter().next().expect("an error");
                    at(s, format!("cannot import {s:?}: {why}"))
                }
                jaq_core::load::Error::Lex(v) => {
                    let (expect, s) = v.into_iter().next().expect("an error");
                    at(s, format!("expected {}", expect.as_str()))
                }
                jaq_core::load::Error::Parse(v) => {
                    let (expect, s) = v.into_iter().next().expect("an error");
                    at(s, format!("expected {}", expect.as_str()))
                }
            }
        })?;
        let filter = Compiler::default().with_funs(funs).compile(modules).map_err(|errs| {
            let (_, undefined) = errs.into_iter().next().expect("a failed compile names an error");
            let (s, what) = undefined.into_iter().next().expect("an error");
            at(s, format!("undefined {} {s}", what.as_str()))
        })?;
        let fast = compile::compile(&code);
        let name = one_line(&self.name).into_owned();
        let stamp = match &self.source {
            // Checked to be a valid source when the mapping was made.
            Some(source) => Metadata::new().with_source(source.as_str()).unwrap_or_default(),
            None => Metadata::new(),
        };
        Ok(Compiled { name, filter, fast, counts: Default::default(), stamp })
    }
}

/// A mapping compiled for one thread: jaq's filter, and the compiled path when the program
/// stays within what it runs (`compile.rs`).
pub(crate) struct Compiled {
    /// The mapping's name, escaped once for one-line errors.
    name: String,
    filter: jaq_core::compile::Filter<jaq_core::Native<data::JustLut<Val>>>,
    /// The program compiled for records run without jaq; `None` runs every record in jaq.
    fast: Option<compile::Node>,
    /// Records the compiled path answered, and records that ran in jaq (logged when dropped).
    counts: std::cell::Cell<(u64, u64)>,
    /// The metadata stamped on an event that has none (the mapping's `source`), made once and
    /// shared; empty stamps nothing. An event with metadata but no `source` gets the source
    /// added.
    pub(crate) stamp: Metadata,
}

/// An input record: a JSON line, or a CSV row with its header.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Record<'r> {
    Json(&'r str),
    Csv(&'r [String], &'r [String]),
}

impl Compiled {
    /// Runs the mapping on one record and parses each output as a canonical line: `f` gets
    /// each event or why it was refused (`mapping NAME: output K: field: reason`, the
    /// program's error, or `not JSON: …`). At most [`MAPPED_EVENTS_MAX`] outputs are taken;
    /// one more is refused.
    ///
    /// The compiled path runs the record first; whenever it is not sure to give jaq's answer
    /// (any error, anything refused) jaq runs it from the start, so what `f` gets is always
    /// what jaq gives.
    pub(crate) fn run(
        &self,
        record: Record<'_>,
        interner: &mut Interner,
        upcasters: &Upcasters,
        f: &mut dyn FnMut(Result<NewEvent, String>),
    ) {
        let (compiled, in_jaq) = self.counts.get();
        if let Some(events) = self.fast.as_ref().and_then(|node| self.run_compiled(node, record, interner, upcasters)) {
            self.counts.set((compiled + 1, in_jaq));
            events.into_iter().for_each(|e| f(Ok(e)));
            return;
        }
        self.counts.set((compiled, in_jaq + 1));
        match jaq_record(record) {
            Ok(value) => self.run_jaq(value, interner, upcasters, f),
            Err(reason) => f(Err(reason)),
        }
    }

    /// The record's events through the compiled path, or `None` to run it in jaq.
    fn run_compiled(
        &self,
        node: &compile::Node,
        record: Record<'_>,
        interner: &mut Interner,
        upcasters: &Upcasters,
    ) -> Option<Vec<NewEvent>> {
        let input = match record {
            Record::Json(text) => V::from_json(text).ok()?,
            Record::Csv(header, row) => V::from_csv(header, row),
        };
        let mut outputs = Vec::new();
        let mut run = eval::Run::default();
        node.run(&mut run, input, &mut |_, v| {
            if outputs.len() == MAPPED_EVENTS_MAX {
                return Err(Bail);
            }
            outputs.push(v);
            Ok(())
        })
        .ok()?;
        // Room for a typical event's line at once.
        let mut line = String::with_capacity(256);
        let mut events = Vec::with_capacity(outputs.len());
        for v in &outputs {
            if !matches!(v, V::Obj(_)) {
                return None;
            }
            line.clear();
            v.write_json(&mut line).ok()?;
            events.push(self.event(&line, interner, upcasters).ok()?);
        }
        Some(events)
    }

    /// One output, written as a JSON line, as its event: parsed by the canonical parser, with
    /// the mapping's `source` stamped when it names none.
    fn event(&self, line: &str, interner: &mut Interner, upcasters: &Upcasters) -> Result<NewEvent, String> {
        let mut e = NewEvent::from_json_line_in_with(line, interner, upcasters).map_err(|e| e.to_string())?;
        if let Some(source) = self.stamp.source().filter(|_| e.meta.source().is_none()) {
            e.meta = if e.meta.is_empty() {
                self.stamp.clone()
            } else {
                std::mem::take(&mut e.meta).with_source(source).map_err(|e| e.to_string())?
            };
        }
        Ok(e)
    }

    /// Runs the record in jaq.
    fn run_jaq(
        &self,
        record: Val,
        interner: &mut Interner,
        upcasters: &Upcasters,
        f: &mut dyn FnMut(Result<NewEvent, String>),
    ) {
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, Vars::new([]));
        let mut text = Vec::new();
        for (k, out) in self.filter.id.run((ctx, record)).enumerate() {
            let name = &self.name;
            if k == MAPPED_EVENTS_MAX {
                f(Err(format!("mapping {name}: more than {MAPPED_EVENTS_MAX} events from one record")));
                return;
            }
            let v = match out {
                Ok(v) => v,
                Err(exn) => {
                    // A string error (`error("why")`) reads as its text, anything else as JSON.
                    // (jaq's own unwrapping exits the process on `halt`, which a mapping cannot
                    // call; anything but an error is refused here all the same.)
                    let why = match exn.get_err().map(jaq_core::Error::into_val) {
                        Ok(Val::TStr(b)) => String::from_utf8_lossy(&b).into_owned(),
                        Ok(other) => other.to_string(),
                        Err(_) => "the program stopped without an error".to_owned(),
                    };
                    f(Err(format!("mapping {name}: output {}: {}", k + 1, one_line(&why))));
                    return;
                }
            };
            if !matches!(v, Val::Obj(_)) {
                let mut shown = String::new();
                let _ = write!(shown, "{v}");
                let shown = rapport_core::escape::first_chars(&shown, 80);
                f(Err(format!("mapping {name}: output {}: not an object: {}", k + 1, one_line(shown))));
                continue;
            }
            text.clear();
            jaq_json::write::write(&mut text, &Default::default(), 0, &v).expect("writing to memory");
            let parsed = std::str::from_utf8(&text)
                .map_err(|e| format!("not UTF-8: {e}"))
                .and_then(|line| self.event(line, interner, upcasters));
            f(parsed.map_err(|e| format!("mapping {name}: output {}: {e}", k + 1)));
        }
    }
}

impl Drop for Compiled {
    fn drop(&mut self) {
        let (compiled, in_jaq) = self.counts.get();
        if compiled + in_jaq > 0 {
            tracing::debug!(mapping = %self.name, compiled, in_jaq, "mapped records, by the path that ran them");
        }
    }
}

/// The record as jaq's value, or why it is not JSON a mapping reads.
fn jaq_record(record: Record<'_>) -> Result<Val, String> {
    match record {
        Record::Json(text) if shape::record_too_deep(text.as_bytes()) => {
            Err(format!("not JSON a mapping reads: nested more than {} deep", shape::RECORD_DEPTH_MAX))
        }
        Record::Json(text) => jaq_json::read::parse_single(text.as_bytes()).map_err(|e| format!("not JSON: {e}")),
        Record::Csv(header, row) => Ok(csv_record(header, row)),
    }
}

/// A CSV row as an object keyed by the header: every cell a string, an empty cell null.
fn csv_record(header: &[String], row: &[String]) -> Val {
    let mut m = jaq_json::Map::default();
    for (name, cell) in header.iter().zip(row) {
        let v = if cell.is_empty() { Val::Null } else { Val::from(cell.clone()) };
        m.insert(Val::from(name.clone()), v);
    }
    Val::obj(m)
}

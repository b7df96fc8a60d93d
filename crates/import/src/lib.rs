//! rapport-import: backfill years of history from old logs into any store.
//!
//! An [`Importer`] reads JSON Lines in the canonical form (`docs/event-format.md`) or CSV with
//! the same field names as columns, or any JSON or CSV export through a jq [`Mapping`]
//! (`docs/mapping.md`; feature `mapping`, on by default), and appends it through the store's
//! contract. It is:
//!
//! - **Atomic by default.** Pass 1 parses every line and validates it against a shadow of the
//!   affected streams, seeded with their committed state and the logged ids the file repeats
//!   (one [`preflight`](rapport_core::BackfillStore::preflight) question to the store per
//!   chunk of lines; none if the store was empty when the import began); any invalid line
//!   fails the import with `FILE:LINE: field: reason`, and nothing is appended. With
//!   [`Importer::skip_invalid`], invalid lines are reported to a rejects sink instead and the
//!   valid ones are appended.
//! - **Idempotent and re-runnable.** A line without an `id` gets a UUID v5 of its canonical
//!   content, so re-importing the same file appends nothing and reports duplicates. An import
//!   killed mid-way leaves the store valid (whole batches only); running it again completes it.
//! - **In file order, or in time order.** Lines are validated as the file lists them; with
//!   [`ImportOptions::sort_by_time`] a file's events are ordered by `occurred_at` first (for
//!   exports listed by kind rather than by time), holding the whole file in memory within
//!   [`ImportOptions::buffer_events_max`].
//! - **Streaming.** Memory stays flat in the file's size: parsed events are kept between the
//!   passes only up to [`ImportOptions::buffer_events_max`]; beyond that the file is read
//!   again, up to the last line pass 1 saw (lines a writer adds meanwhile are left for the
//!   next import; the input must not be edited in place during an import). The shadow
//!   validation state holds an id index of the file's events (about 40 bytes per event) and
//!   the state of the streams it touches.
//! - **Fast.** A second thread reads and splits the input and parses two thirds of it while
//!   the calling thread parses the rest and validates (a mapped import parses that third on a
//!   helper thread: mappings run only on the importer's own threads, whose stack it sizes); the
//!   append pass keeps three batches in flight through
//!   [`append_bulk`](rapport_core::BackfillStore::append_bulk) (PostgreSQL's `COPY` path),
//!   and when it reads the input again, it parses on a thread of its own. Figures are in
//!   `BENCHMARKS.md`.
//!
//! It blocks the calling thread (store calls) and uses one more for reading; async services
//! run it on a blocking thread.
//!
//! [`export_account`] writes one account's events back out in the canonical form.
//!
//! The code: `lib.rs` (the API), `input.rs` (reading and parsing lines), `csv.rs` (the strict
//! CSV reader), `export.rs` (an account's events out), `mapping/` (jq mappings, run compiled or
//! by jaq), `check.rs` (pass 1), `shadow.rs` (the state pass 1 validates against), `lines.rs`
//! (what pass 1 hands pass 2), `append.rs` (pass 2), `threads.rs` (the stack of the
//! importer's own threads).
//!
//! # Example
//! ```
//! use rapport_core::Ledger;
//! use rapport_import::Importer;
//!
//! let ledger = Ledger::memory();
//! let file = "{\"type\":\"touchpoint\",\"account\":\"acme\",\"occurred_at\":\"2025-03-01T09:00:00Z\",\"channel\":\"call\"}\n";
//! let report = Importer::new(&ledger).reader("calls.jsonl", || Ok(file.as_bytes()))?;
//! assert_eq!(report.appended, 1);
//! // Again: nothing new.
//! let again = Importer::new(&ledger).reader("calls.jsonl", || Ok(file.as_bytes()))?;
//! assert_eq!((again.appended, again.duplicates), (0, 1));
//! # Ok::<(), rapport_import::ImportError>(())
//! ```
#![deny(missing_docs)]

use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use rapport_core::escape::one_line;
use rapport_core::upcast::Upcasters;
use rapport_core::{AppendError, BackfillStore, Ledger, NewEvent, ReadError};
use thiserror::Error;

mod append;
mod bom;
mod check;
mod csv;
mod export;
mod input;
mod lines;
#[cfg(feature = "mapping")]
mod mapping;
mod shadow;
mod threads;

pub use export::{ExportError, export_account};
#[cfg(feature = "mapping")]
pub use mapping::{MAPPED_EVENTS_MAX, MAPPING_BYTES_MAX, Mapping, MappingError};

/// Checks for tests and fuzzing (feature `testing`): not part of the importer's API.
#[cfg(feature = "testing")]
pub mod testing {
    pub use crate::mapping::paths::{PROGRAMS, PathCheck};
}

/// The input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// JSON Lines in the canonical form.
    #[default]
    Jsonl,
    /// CSV with a header row naming the canonical fields (see `docs/event-format.md`).
    Csv,
}

/// An import's settings, which an [`Importer`] sets one by one too. By default: JSON Lines,
/// atomic, batches of 10,000 events, up to 1,000,000 parsed events kept between the passes,
/// five minutes of clock skew allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// The input format.
    pub format: Format,
    /// Append the valid lines and report the invalid ones, instead of failing atomically.
    pub skip_invalid: bool,
    /// Events per append.
    pub batch_events: usize,
    /// Parsed events kept in memory between the validation pass and the append pass; a larger
    /// input is read twice instead.
    pub buffer_events_max: usize,
    /// How much later than now an event may say it occurred (see
    /// [`Admission`](rapport_core::validate::Admission)); the store checks again with its own
    /// setting when it appends.
    pub future_skew: std::time::Duration,
    /// Order the input's events by `occurred_at` (ties in input order) before validating and
    /// appending them, for exports that are not in time order. The whole input is then held
    /// in memory, up to [`buffer_events_max`](Self::buffer_events_max) events; a larger one
    /// fails with [`ImportError::TooLargeToSort`] before anything is appended.
    pub sort_by_time: bool,
    /// A mapping each input record goes through (a JSON line, or a CSV row as an object keyed
    /// by its header), yielding the events to import; `None` reads the canonical form.
    #[cfg(feature = "mapping")]
    pub mapping: Option<Mapping>,
    /// What reads lines (and mapped outputs) of an older shape: rapport's own upcasters, and
    /// any a service registered ([`rapport_core::upcast`]).
    pub upcasters: std::sync::Arc<Upcasters>,
    /// Stamp the mapping's [`source`](Mapping::source) on each mapped event that names none.
    /// The [`Importer`] turns it off for a store that holds no metadata (a file store in
    /// format version 1 or 2), which would refuse such events.
    pub stamp_source: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            format: Format::Jsonl,
            skip_invalid: false,
            batch_events: 10_000,
            buffer_events_max: 1_000_000,
            future_skew: rapport_core::validate::FUTURE_SKEW_DEFAULT,
            sort_by_time: false,
            #[cfg(feature = "mapping")]
            mapping: None,
            upcasters: std::sync::Arc::new(Upcasters::builtin().clone()),
            stamp_source: true,
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImportReport {
    /// The source's name, as given.
    pub source: String,
    /// Events read (lines holding an event).
    pub events: u64,
    /// Events appended.
    pub appended: u64,
    /// Events already in the store (or repeated in the input), not appended again.
    pub duplicates: u64,
    /// Lines refused (only with `skip_invalid`; otherwise the import fails).
    pub rejected: u64,
    /// How long it took.
    pub elapsed: Duration,
}

impl ImportReport {
    /// Events read per second.
    pub fn events_per_second(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { self.events as f64 / s } else { 0.0 }
    }

    /// The one-line summary the CLI prints.
    pub fn summary(&self) -> String {
        format!(
            "{}: appended {}, duplicates {}, rejected {}, {:.0} events/s",
            one_line(&self.source),
            self.appended,
            self.duplicates,
            self.rejected,
            self.events_per_second()
        )
    }
}

/// Why an import failed. Nothing was appended unless the variant says so.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ImportError {
    /// An invalid line (atomic mode): `FILE:LINE: field: reason`. Nothing was appended.
    #[error("{}:{line}: {}", one_line(source_name), one_line(reason))]
    Invalid {
        /// The source.
        source_name: String,
        /// The 1-based line.
        line: u64,
        /// `field: reason`.
        reason: String,
    },
    /// Reading the input failed. Nothing was appended if it failed in the validation pass.
    #[error("{}: {source}", one_line(source_name))]
    Io {
        /// The source.
        source_name: String,
        /// The cause.
        source: io::Error,
    },
    /// The store refused or failed an append. `appended` events of this import are in the
    /// store (the batches before the failed one, and any after it the store had already
    /// taken); importing the same input again skips them and appends the rest. Pass 1 checks
    /// every line against the store first, so this means the store changed meanwhile (another
    /// writer) or could not write (a full disk, say).
    #[error(
        "{}:{line}: {}; {appended} events of this import were appended before it stopped, and importing the same input again skips them",
        one_line(source_name),
        append_cause(source)
    )]
    Append {
        /// The source.
        source_name: String,
        /// The line of the event the store refused, or the failed batch's first line when the
        /// cause names no event.
        line: u64,
        /// The cause (boxed: append errors name accounts, events and keys, and an import's
        /// result should stay small).
        source: Box<AppendError>,
        /// Events of this import in the store when it stopped.
        appended: u64,
    },
    /// Reading the store failed.
    #[error("{}: reading the store: {source}", one_line(source_name))]
    Read {
        /// The source.
        source_name: String,
        /// The cause.
        source: ReadError,
    },
    /// Writing the rejects file failed.
    #[error("writing rejects: {0}")]
    Rejects(io::Error),
    /// The mapping did not compile (see [`Mapping`]). Nothing was appended.
    #[cfg(feature = "mapping")]
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// With [`ImportOptions::sort_by_time`], the input held more events than may be held in
    /// memory to sort them. Nothing was appended.
    #[error(
        "{}:{line}: more than {limit} events to order by time (the import's buffer_events_max); split the file or raise the limit",
        one_line(source_name)
    )]
    TooLargeToSort {
        /// The source.
        source_name: String,
        /// The line holding the first event past the limit.
        line: u64,
        /// The limit.
        limit: usize,
    },
}

/// An append's failure as [`ImportError::Append`] shows it: a storage failure names its
/// operation ("append failed: …") already; a refusal is said to be one.
fn append_cause(e: &AppendError) -> String {
    match e {
        AppendError::Storage(s) => s.to_string(),
        refused => format!("append refused: {refused}"),
    }
}

/// Where an import is, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Validation pass: input bytes read so far.
    Validating {
        /// Bytes read.
        bytes: u64,
    },
    /// Append pass: events handed to the store so far.
    Appending {
        /// Events.
        events: u64,
    },
}

/// Imports history into a ledger: set what differs from the defaults, then import a
/// [`file`](Self::file) or a [`reader`](Self::reader).
///
/// By default the input is JSON Lines ([`format`](Self::format)); one invalid line fails the
/// import and nothing is appended ([`skip_invalid`](Self::skip_invalid) appends the rest);
/// refused lines are written nowhere ([`rejects`](Self::rejects)); events go to the store in
/// batches of 10,000 ([`batch_events`](Self::batch_events)); up to 1,000,000 parsed events are
/// kept between the passes, beyond which the input is read again
/// ([`buffer_events_max`](Self::buffer_events_max)); an event may be dated up to five minutes
/// after now ([`future_skew`](Self::future_skew)); nobody hears of progress
/// ([`on_progress`](Self::on_progress)).
///
/// ```
/// use rapport_core::Ledger;
/// use rapport_import::{Format, Importer};
///
/// let ledger = Ledger::memory();
/// let csv = "type,account,occurred_at,channel\ntouchpoint,acme,2025-03-01T09:00:00Z,call\nbad\n";
/// let mut rejects = Vec::new();
/// let report = Importer::new(&ledger)
///     .format(Format::Csv)
///     .skip_invalid(true)
///     .rejects(&mut rejects)
///     .reader("calls.csv", || Ok(csv.as_bytes()))?;
/// assert_eq!((report.appended, report.rejected), (1, 1));
/// assert!(String::from_utf8(rejects)?.contains(r#""line":3"#));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Importer<'a, S> {
    ledger: &'a Ledger<S>,
    options: ImportOptions,
    rejects: Option<&'a mut dyn Write>,
    progress: Option<&'a mut dyn FnMut(Progress)>,
}

impl<S> std::fmt::Debug for Importer<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Importer").field("options", &self.options).finish_non_exhaustive()
    }
}

/// The most events the validation index reserves room for up front.
const SHADOW_RESERVE_MAX: u64 = 4_000_000;

impl<'a, S: BackfillStore> Importer<'a, S> {
    /// An importer into `ledger`, with the defaults above.
    pub fn new(ledger: &'a Ledger<S>) -> Self {
        Self { ledger, options: ImportOptions::default(), rejects: None, progress: None }
    }

    /// Every setting at once.
    pub fn options(mut self, options: ImportOptions) -> Self {
        self.options = options;
        self
    }

    /// The input format (default JSON Lines).
    pub fn format(mut self, format: Format) -> Self {
        self.options.format = format;
        self
    }

    /// Append the valid lines and refuse each invalid one, instead of failing the import
    /// atomically (default `false`).
    pub fn skip_invalid(mut self, skip: bool) -> Self {
        self.options.skip_invalid = skip;
        self
    }

    /// Where refused lines go (with [`skip_invalid`](Self::skip_invalid)): one JSON object a
    /// line with the source, the line number, the reason, and what the line held (`text` for a
    /// line that does not parse, `event` in canonical form for one validation refused).
    /// Default: nowhere.
    pub fn rejects(mut self, sink: &'a mut dyn Write) -> Self {
        self.rejects = Some(sink);
        self
    }

    /// Events per append (default 10,000).
    pub fn batch_events(mut self, n: usize) -> Self {
        self.options.batch_events = n;
        self
    }

    /// Parsed events kept between the passes; a larger input is read twice (default
    /// 1,000,000).
    pub fn buffer_events_max(mut self, n: usize) -> Self {
        self.options.buffer_events_max = n;
        self
    }

    /// How much later than now an event may say it occurred (default five minutes).
    pub fn future_skew(mut self, skew: Duration) -> Self {
        self.options.future_skew = skew;
        self
    }

    /// Each input record goes through `mapping` (default: none, the canonical form); see
    /// [`ImportOptions::mapping`] and `docs/mapping.md`.
    #[cfg(feature = "mapping")]
    pub fn mapping(mut self, mapping: Mapping) -> Self {
        self.options.mapping = Some(mapping);
        self
    }

    /// Reads lines of an older shape through `upcasters` (default: rapport's own); see
    /// [`ImportOptions::upcasters`].
    pub fn upcasters(mut self, upcasters: std::sync::Arc<Upcasters>) -> Self {
        self.options.upcasters = upcasters;
        self
    }

    /// Order the input's events by `occurred_at` before validating them (default `false`);
    /// see [`ImportOptions::sort_by_time`].
    pub fn sort_by_time(mut self, sort: bool) -> Self {
        self.options.sort_by_time = sort;
        self
    }

    /// Called as the import goes (default: nothing).
    pub fn on_progress(mut self, progress: &'a mut dyn FnMut(Progress)) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Imports the file at `path`. See the crate docs.
    ///
    /// # Errors
    /// [`ImportError`].
    pub fn file(self, path: &Path) -> Result<ImportReport, ImportError> {
        let name = path.display().to_string();
        // Canonical lines are over 100 bytes: size the validation index once instead of
        // letting it double (and rehash) its way up, within a bound.
        let hint = std::fs::metadata(path).map(|m| (m.len() / 100).min(SHADOW_RESERVE_MAX) as usize).unwrap_or(0);
        self.run(&name, || std::fs::File::open(path), hint)
    }

    /// Imports from a reader that `open` produces once or twice (a file can be reopened; a
    /// one-shot source such as stdin fits only if it stays within
    /// [`buffer_events_max`](Self::buffer_events_max)). `source_name` names it in reports.
    ///
    /// # Errors
    /// [`ImportError`].
    pub fn reader<R: Read + Send>(
        self,
        source_name: &str,
        open: impl FnMut() -> io::Result<R>,
    ) -> Result<ImportReport, ImportError> {
        self.run(source_name, open, 0)
    }

    fn run<R: Read + Send>(
        self,
        source_name: &str,
        mut open: impl FnMut() -> io::Result<R>,
        events_hint: usize,
    ) -> Result<ImportReport, ImportError> {
        let _span =
            tracing::info_span!("rapport.import", source = %rapport_core::escape::one_line(source_name)).entered();
        let started = Instant::now();
        let mut ignore = |_: Progress| {};
        let progress: &mut dyn FnMut(Progress) = match self.progress {
            Some(p) => p,
            None => &mut ignore,
        };
        let io_err = |source| ImportError::Io { source_name: source_name.to_owned(), source };
        let mut options = self.options;
        if options.stamp_source && self.ledger.store().schema_version_max() < 2 {
            tracing::info!("the store holds no metadata (an older format): no source is stamped");
            options.stamp_source = false;
        }
        let reader = open().map_err(io_err)?;
        let validated =
            check::validate(self.ledger, source_name, reader, &options, self.rejects, progress, events_hint)
                .inspect_err(|e| tracing::warn!(error = %e, "import refused in pass 1"))?;
        tracing::debug!(
            events = validated.events,
            rejected = validated.rejected.len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "pass 1: validated"
        );
        let mut report = ImportReport {
            source: source_name.to_owned(),
            events: validated.events,
            rejected: validated.rejected.len() as u64,
            ..ImportReport::default()
        };
        append::append(self.ledger, source_name, validated, open, &options, &mut report, progress)
            .inspect_err(|e| tracing::warn!(error = %e, "import failed in pass 2"))?;
        report.elapsed = started.elapsed();
        tracing::info!(
            appended = report.appended,
            duplicates = report.duplicates,
            rejected = report.rejected,
            elapsed_ms = report.elapsed.as_secs_f64() * 1e3,
            "imported"
        );
        Ok(report)
    }
}

/// Parses `reader` in `format` without a store: calls `f` with each event-bearing line's
/// number and its event, or `field: reason` for a line that does not parse. What an import's
/// first pass does before validation, for tools that check a file and for fuzzing.
///
/// ```
/// use rapport_import::{Format, parse_each};
///
/// let csv = "type,account,occurred_at,channel\ntouchpoint,acme,2025-03-01T09:00:00Z,call\ntouchpoint,acme,soon,call\n";
/// let mut seen = Vec::new();
/// parse_each("calls.csv", csv.as_bytes(), Format::Csv, &mut |line, parsed| seen.push((line, parsed.is_ok())))?;
/// assert_eq!(seen, [(2, true), (3, false)]);
/// # Ok::<(), rapport_import::ImportError>(())
/// ```
///
/// # Errors
/// Reading failed, or (CSV) the header row is invalid.
pub fn parse_each<R: Read>(
    source_name: &str,
    reader: R,
    format: Format,
    f: &mut dyn FnMut(u64, Result<NewEvent, String>),
) -> Result<(), ImportError> {
    let options = ImportOptions { format, ..ImportOptions::default() };
    input::for_each_event(source_name, reader, &options, &mut |_| {}, &mut |line, parsed| {
        f(line, parsed.map_err(|u| u.reason));
        Ok(())
    })
}

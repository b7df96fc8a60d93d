//! rapport-import: backfill years of history from old logs into any store.
//!
//! [`import`] reads JSON Lines in the canonical form (`docs/event-format.md`) or CSV with the
//! same field names as columns, and appends it through the store's contract. It is:
//!
//! - **Atomic by default.** Pass 1 parses every line and validates it against a shadow of the
//!   affected streams, seeded with their committed state and the logged ids the file repeats
//!   (two questions to the store per chunk of lines; none if the store was empty when the
//!   import began); any invalid line fails the import with
//!   `FILE:LINE: field: reason`, and nothing is appended. With
//!   [`ImportOptions::skip_invalid`], invalid lines are reported to a rejects sink instead and
//!   the valid ones are appended.
//! - **Idempotent and re-runnable.** A line without an `id` gets a UUID v5 of its canonical
//!   content, so re-importing the same file appends nothing and reports duplicates. An import
//!   killed mid-way leaves the store valid (whole batches only); running it again completes it.
//! - **Streaming.** Memory stays flat in the file's size: parsed events are kept between the
//!   passes only up to [`ImportOptions::buffer_events_max`]; beyond that the file is read
//!   again, up to the last line pass 1 saw (lines a writer adds meanwhile are left for the
//!   next import; the input must not be edited in place during an import). The shadow
//!   validation state holds an id index of the file's events (about 40 bytes per event) and
//!   the state of the streams it touches.
//!
//! - **Fast.** A second thread reads and splits the input and parses two thirds of it while
//!   the calling thread parses the rest and validates; the append pass keeps three batches in
//!   flight through [`rapport_core::Store::append_bulk`] (PostgreSQL's
//!   `COPY` path). Figures are in `BENCHMARKS.md`.
//!
//! It blocks the calling thread (store calls) and uses one more for reading; async services
//! run it on a blocking thread.
//!
//! # Example
//! ```
//! use rapport_core::Ledger;
//! use rapport_import::{ImportOptions, import_reader};
//!
//! let ledger = Ledger::memory();
//! let file = "{\"type\":\"touchpoint\",\"account\":\"acme\",\"occurred_at\":\"2025-03-01T09:00:00Z\",\"channel\":\"call\"}\n";
//! let report = import_reader(&ledger, "calls.jsonl", || Ok(file.as_bytes()), &ImportOptions::default(), None, &mut |_| {})?;
//! assert_eq!(report.appended, 1);
//! // Again: nothing new.
//! let again = import_reader(&ledger, "calls.jsonl", || Ok(file.as_bytes()), &ImportOptions::default(), None, &mut |_| {})?;
//! assert_eq!((again.appended, again.duplicates), (0, 1));
//! # Ok::<(), rapport_import::ImportError>(())
//! ```
#![deny(missing_docs)]

use std::collections::{HashSet, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use rapport_core::backend::LogState;
use rapport_core::escape::one_line;
use rapport_core::validate::Admission;
use rapport_core::{
    AccountId, AppendError, AppendOutcome, BackfillStore, EventId, ExpectedVersion, LINE_BYTES_MAX, Ledger, NewEvent,
    Position, ReadError, Timestamp,
};
use thiserror::Error;

mod csv;

/// The input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// JSON Lines in the canonical form.
    #[default]
    Jsonl,
    /// CSV with a header row naming the canonical fields (see `docs/event-format.md`).
    Csv,
}

/// Settings for [`import`]. By default: JSON Lines, atomic, batches of 10,000 events, up to
/// 1,000,000 parsed events kept between the passes, five minutes of clock skew allowed.
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
    /// [`Admission`]); the store checks again with its own
    /// setting when it appends.
    pub future_skew: std::time::Duration,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            format: Format::Jsonl,
            skip_invalid: false,
            batch_events: 10_000,
            buffer_events_max: 1_000_000,
            future_skew: rapport_core::validate::FUTURE_SKEW_DEFAULT,
        }
    }
}

/// One refused line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Its 1-based line number.
    pub line: u64,
    /// `field: reason`.
    pub reason: String,
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
    /// The store refused or failed an append. Earlier batches are in the store; re-running
    /// the import completes it. Pass 1 checks every line against the store first, so this
    /// means the store changed meanwhile (another writer) or could not write.
    #[error("{}:{line}: append failed: {source}", one_line(source_name))]
    Append {
        /// The source.
        source_name: String,
        /// The line of the event the store refused, or the failed batch's first line when the
        /// cause names no event.
        line: u64,
        /// The cause (boxed: append errors name accounts, events and keys, and an import's
        /// result should stay small).
        source: Box<AppendError>,
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

/// Imports a file. See the crate docs.
///
/// # Errors
/// [`ImportError`].
pub fn import<S: BackfillStore>(
    ledger: &Ledger<S>,
    path: &Path,
    options: &ImportOptions,
    rejects: Option<&mut dyn Write>,
    progress: &mut dyn FnMut(Progress),
) -> Result<ImportReport, ImportError> {
    let name = path.display().to_string();
    // Canonical lines are over 100 bytes: size the validation index once instead of letting it
    // double (and rehash) its way up, within a bound on what is reserved up front.
    let events_hint = std::fs::metadata(path).map(|m| (m.len() / 100).min(SHADOW_RESERVE_MAX) as usize).unwrap_or(0);
    import_with(ledger, &name, || std::fs::File::open(path), options, rejects, progress, events_hint)
}

/// The most events the validation index reserves room for up front.
const SHADOW_RESERVE_MAX: u64 = 4_000_000;

/// Imports from a reader that `open` can produce once or twice (a file can be reopened; a
/// one-shot source such as stdin fits only if it stays within `buffer_events_max`).
///
/// Lines are parsed on a second thread while this one validates them; the append pass keeps
/// three batches in flight, so a store that writes on its own thread (the file store) encodes
/// one while it syncs another, and PostgreSQL copies two at once with the third ready.
///
/// # Errors
/// [`ImportError`].
pub fn import_reader<S: BackfillStore, R: Read + Send>(
    ledger: &Ledger<S>,
    source_name: &str,
    open: impl FnMut() -> io::Result<R>,
    options: &ImportOptions,
    rejects: Option<&mut dyn Write>,
    progress: &mut dyn FnMut(Progress),
) -> Result<ImportReport, ImportError> {
    import_with(ledger, source_name, open, options, rejects, progress, 0)
}

fn import_with<S: BackfillStore, R: Read + Send>(
    ledger: &Ledger<S>,
    source_name: &str,
    mut open: impl FnMut() -> io::Result<R>,
    options: &ImportOptions,
    rejects: Option<&mut dyn Write>,
    progress: &mut dyn FnMut(Progress),
    events_hint: usize,
) -> Result<ImportReport, ImportError> {
    let started = Instant::now();
    let io_err = |source| ImportError::Io { source_name: source_name.to_owned(), source };
    let read_err = |source| ImportError::Read { source_name: source_name.to_owned(), source };
    let mut report = ImportReport { source: source_name.to_owned(), ..Default::default() };

    // Pass 1: read on a second thread, parse on both, and validate here against a shadow of
    // the affected streams. Lines are validated in chunks (one shadow `admit` per chunk, and
    // one question to the store about its accounts and ids); a refused chunk is re-checked
    // line by line, to name the first bad line or, with `skip_invalid`, to reject each bad
    // one and keep the rest.
    // A store with no events holds no streams and no ids: pass 1 need not ask it about either
    // (a backfill into a new PostgreSQL database saves a query per chunk of lines).
    let store_empty = pollster::block_on(ledger.store().head()).map_err(read_err)? == Position(0);
    let mut shadow = Shadow {
        state: LogState::with_capacity(events_hint),
        store_empty,
        future_skew: options.future_skew,
        ..Shadow::default()
    };
    let mut refusals =
        Refusals { source_name, skip_invalid: options.skip_invalid, sink: rejects, lines: HashSet::new() };
    let mut buffer = Some(Buffered::default());
    // The last event-bearing line pass 1 saw: a re-read in pass 2 stops there, so lines added
    // to the input meanwhile (a log still being written) are not appended unvalidated.
    let mut last_line = 0u64;
    let reader = open().map_err(io_err)?;
    std::thread::scope(|scope| -> Result<(), ImportError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Chunk, ImportError>>(PARSED_IN_FLIGHT);
        let format = options.format;
        scope.spawn(move || {
            // A closed channel means pass 1 stopped early (it has its error): stop reading.
            let stopped = std::cell::Cell::new(false);
            let send = |msg| {
                tx.send(Ok(msg)).map_err(|_| {
                    stopped.set(true);
                    ImportError::Io { source_name: source_name.to_owned(), source: io::ErrorKind::Interrupted.into() }
                })
            };
            let result = match format {
                // JSON Lines: this thread reads and splits every line and parses two chunks in
                // three; the validating thread parses the third, so both cores parse and
                // finish together (validating costs about half as much as parsing).
                Format::Jsonl => {
                    let mut interner = rapport_core::Interner::default();
                    let mut k = 0u64;
                    split_jsonl(source_name, reader, &mut |_| {}, &mut |chunk| {
                        k += 1;
                        let bytes = chunk.bytes;
                        let msg = if k.is_multiple_of(3) {
                            Chunk::Unparsed(chunk)
                        } else {
                            Chunk::Parsed(Parsed { lines: parse_lines(chunk, &mut interner), bytes })
                        };
                        send(msg)
                    })
                }
                Format::Csv => {
                    let mut chunk = Parsed::default();
                    let bytes = std::cell::Cell::new(0u64);
                    let result = for_each_event(
                        source_name,
                        reader,
                        format,
                        &mut |p| {
                            if let Progress::Validating { bytes: b } = p {
                                bytes.set(b);
                            }
                        },
                        &mut |line, parsed| {
                            chunk.lines.push((line, parsed));
                            if chunk.lines.len() >= PARSE_CHUNK {
                                chunk.bytes = bytes.get();
                                let next = Parsed { lines: Vec::with_capacity(PARSE_CHUNK), bytes: 0 };
                                let msg = Chunk::Parsed(std::mem::replace(&mut chunk, next));
                                send(msg)?;
                            }
                            Ok(())
                        },
                    );
                    chunk.bytes = bytes.get();
                    result.and_then(|()| send(Chunk::Parsed(chunk)))
                }
            };
            if let Err(e) = result
                && !stopped.get()
            {
                let _ = tx.send(Err(e));
            }
        });
        let mut interner = rapport_core::Interner::default();
        let mut pending = Lines::with_capacity(CHECK_CHUNK);
        // Chunks whose questions to the store are in flight, oldest first: a database store
        // answers several at once while earlier chunks are validated.
        let mut asking: VecDeque<(Lines, Asked<'_>)> = VecDeque::new();
        for chunk in rx {
            let parsed = match chunk? {
                Chunk::Parsed(p) => p,
                Chunk::Unparsed(u) => {
                    let bytes = u.bytes;
                    Parsed { lines: parse_lines(u, &mut interner), bytes }
                }
            };
            for (line, parsed) in parsed.lines {
                last_line = line;
                match parsed {
                    Ok(e) => {
                        report.events += 1;
                        pending.lines.push(line);
                        pending.events.push(e);
                        if pending.events.len() >= CHECK_CHUNK {
                            let events = std::mem::replace(&mut pending, Lines::with_capacity(CHECK_CHUNK));
                            let answers = shadow.ask(scope, ledger, &events.events);
                            asking.push_back((events, answers));
                            check_asked(&mut asking, ASKING_MAX, &mut shadow, options, &mut buffer, &mut refusals)
                                .map_err(|e| e.map_read(read_err))?;
                        }
                    }
                    Err(unreadable) => {
                        // Lines before this one are checked first, so errors come out in line order.
                        let events = std::mem::take(&mut pending);
                        let answers = shadow.ask(scope, ledger, &events.events);
                        asking.push_back((events, answers));
                        check_asked(&mut asking, 0, &mut shadow, options, &mut buffer, &mut refusals)
                            .map_err(|e| e.map_read(read_err))?;
                        refusals.refuse(line, unreadable.reason.clone(), Rejected::Text(&unreadable))?;
                    }
                }
            }
            progress(Progress::Validating { bytes: parsed.bytes });
        }
        let answers = shadow.ask(scope, ledger, &pending.events);
        asking.push_back((pending, answers));
        check_asked(&mut asking, 0, &mut shadow, options, &mut buffer, &mut refusals).map_err(|e| e.map_read(read_err))
    })?;
    drop(shadow);
    let rejected_lines = refusals.lines;
    report.rejected = rejected_lines.len() as u64;

    // Pass 2: append in batches, from the buffer or by reading the input again, with two
    // batches in flight: the next one is handed to the store before the previous one is
    // awaited. (A store whose futures start only when polled runs them one after the other.)
    if let Some(buffered) = &buffer {
        ledger.store().reserve(buffered.len);
    }
    let mut appender =
        Appender { ledger, source_name, options, in_flight: VecDeque::new(), batch: Vec::new(), lines: Vec::new() };
    let mut done = 0u64;
    let mut on_outcome = |report: &mut ImportReport, out: AppendOutcome| {
        report.appended += out.appended.len() as u64;
        report.duplicates += out.duplicates.len() as u64;
        done += (out.appended.len() + out.duplicates.len()) as u64;
        progress(Progress::Appending { events: done });
    };
    match buffer {
        Some(buffered) => {
            for chunk in buffered.chunks {
                for (line, e) in chunk.lines.into_iter().zip(chunk.events) {
                    appender.push(line, e, &mut report, &mut on_outcome)?;
                }
            }
        }
        None => {
            let reader = open().map_err(io_err)?;
            let mut ignore = |_: Progress| {};
            for_each_event(source_name, reader, options.format, &mut ignore, &mut |line, parsed| match parsed {
                Ok(e) if line <= last_line && !rejected_lines.contains(&line) => {
                    appender.push(line, e, &mut report, &mut on_outcome)
                }
                _ => Ok(()),
            })?;
        }
    }
    appender.finish(&mut report, &mut on_outcome)?;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Lines per message from the parsing thread.
const PARSE_CHUNK: usize = 1_024;
/// Messages the parsing thread may run ahead by.
const PARSED_IN_FLIGHT: usize = 8;

/// Appends the importer keeps in flight. A store that overlaps consecutive appends
/// (PostgreSQL copies two batches at once) has the next one ready when the oldest commits.
const APPENDS_IN_FLIGHT: usize = 3;
/// Events per shadow validation.
const CHECK_CHUNK: usize = 1_024;
/// Chunks whose questions to the store may be in flight while an earlier one is validated.
const ASKING_MAX: usize = 3;

/// What the store answered about a chunk (see [`Shadow::ask`]).
struct Answers {
    accounts: Vec<AccountId>,
    states: Vec<Option<rapport_core::validate::StreamState>>,
    ids: Vec<EventId>,
    found: Vec<Option<u64>>,
}

/// The store's answers about a chunk, being asked on a thread of their own; `None` when there
/// was nothing to ask.
type Asked<'scope> = Option<std::thread::ScopedJoinHandle<'scope, Result<Answers, ReadError>>>;

/// Why a line was refused before it became an event, with what it held.
struct Unreadable {
    /// `field: reason`.
    reason: String,
    /// The line's bytes (at most [`LINE_BYTES_MAX`] of them), so a rejects file keeps them.
    text: Vec<u8>,
    /// Whether the line was longer than what `text` keeps.
    truncated: bool,
}

impl Unreadable {
    fn new(reason: String, text: &[u8], truncated: bool) -> Self {
        Self { reason, text: text.to_vec(), truncated }
    }
}

/// A line parsed: its event, or why it was refused.
type ParsedLine = Result<NewEvent, Unreadable>;

/// What the reading thread hands over.
enum Chunk {
    Parsed(Parsed),
    Unparsed(Unparsed),
}

/// A run of parsed lines, with the input bytes read up to its end.
#[derive(Default)]
struct Parsed {
    lines: Vec<(u64, ParsedLine)>,
    bytes: u64,
}

/// Events with their line numbers.
#[derive(Default)]
struct Lines {
    lines: Vec<u64>,
    events: Vec<NewEvent>,
}

impl Lines {
    fn with_capacity(n: usize) -> Self {
        Self { lines: Vec::with_capacity(n), events: Vec::with_capacity(n) }
    }
}

/// Validated events kept for the append pass, in chunks (no large reallocation).
#[derive(Default)]
struct Buffered {
    chunks: Vec<Lines>,
    len: usize,
}

/// Why a validation chunk stopped the import.
enum CheckError {
    Refused(ImportError),
    Read(ReadError),
}

impl CheckError {
    fn map_read(self, f: impl FnOnce(ReadError) -> ImportError) -> ImportError {
        match self {
            CheckError::Refused(e) => e,
            CheckError::Read(e) => f(e),
        }
    }
}

impl From<ImportError> for CheckError {
    fn from(e: ImportError) -> Self {
        CheckError::Refused(e)
    }
}

/// Checks the chunks in `asking`, oldest first, until at most `keep` remain in flight.
fn check_asked(
    asking: &mut VecDeque<(Lines, Asked<'_>)>,
    keep: usize,
    shadow: &mut Shadow,
    options: &ImportOptions,
    buffer: &mut Option<Buffered>,
    refusals: &mut Refusals<'_, '_>,
) -> Result<(), CheckError> {
    while asking.len() > keep
        && let Some((events, answers)) = asking.pop_front()
    {
        check(shadow, events, answers, options, buffer, refusals)?;
    }
    Ok(())
}

/// Validates `events` against the shadow and keeps the valid ones; an invalid one fails the
/// import or is recorded as rejected.
fn check(
    shadow: &mut Shadow,
    events: Lines,
    answers: Asked<'_>,
    options: &ImportOptions,
    buffer: &mut Option<Buffered>,
    refusals: &mut Refusals<'_, '_>,
) -> Result<(), CheckError> {
    if let Some(asked) = answers {
        let answers = asked.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        shadow.install(answers.map_err(CheckError::Read)?);
    }
    if events.events.is_empty() {
        return Ok(());
    }
    let keep = |events: Lines, buffer: &mut Option<Buffered>, shadow: &mut Shadow| {
        if let Some(buf) = buffer {
            if buf.len + events.events.len() <= options.buffer_events_max {
                buf.len += events.events.len();
                buf.chunks.push(events);
            } else {
                // The buffer goes: what the shadow found in it, it must now hash.
                shadow.forget_buffer(buf, &events);
                *buffer = None;
            }
        }
    };
    // What the store knows about the chunk was asked once, whichever way it is admitted.
    if events.events.len() > 1 && shadow.admit(&events.events, &events.lines, buffer.as_ref(), None).is_ok() {
        keep(events, buffer, shadow);
        return Ok(());
    }
    // One by one, to name (or reject) exactly the bad lines.
    let mut kept = Lines::with_capacity(events.events.len());
    for (line, e) in events.lines.into_iter().zip(events.events) {
        let one = [e];
        match shadow.admit(&one, &[line], buffer.as_ref(), Some(&kept)) {
            Ok(()) => {
                kept.lines.push(line);
                kept.events.extend(one);
            }
            Err(reason) => refusals.refuse(line, reason, Rejected::Event(&one[0]))?,
        }
    }
    keep(kept, buffer, shadow);
    Ok(())
}

/// The line of the event an append error names, else the batch's first line.
fn refused_line(e: &AppendError, lines: &[(EventId, u64)]) -> u64 {
    let named = match e {
        AppendError::IdConflict { id, .. } => Some(*id),
        AppendError::Invalid(v) => Some(v.event()),
        _ => None,
    };
    named.and_then(|id| lines.iter().find(|(at, _)| *at == id)).or(lines.first()).map_or(0, |&(_, line)| line)
}

/// Where refused lines go: with `skip_invalid`, to the rejects sink and the set of lines the
/// append pass skips; otherwise, the first one fails the import.
struct Refusals<'s, 'w> {
    source_name: &'s str,
    skip_invalid: bool,
    sink: Option<&'w mut dyn Write>,
    lines: HashSet<u64>,
}

/// What a refused line held, for the rejects file.
enum Rejected<'a> {
    /// A line that did not parse: its text.
    Text(&'a Unreadable),
    /// A line whose event validation refused: the event.
    Event(&'a NewEvent),
}

impl Refusals<'_, '_> {
    fn refuse(&mut self, line: u64, reason: String, what: Rejected<'_>) -> Result<(), ImportError> {
        let source_name = self.source_name;
        if !self.skip_invalid {
            return Err(ImportError::Invalid { source_name: source_name.to_owned(), line, reason });
        }
        if let Some(w) = self.sink.as_deref_mut() {
            let mut obj = serde_json::json!({ "source": source_name, "line": line, "reason": reason });
            match what {
                Rejected::Text(u) => {
                    match std::str::from_utf8(&u.text) {
                        Ok(text) => obj["text"] = text.into(),
                        Err(_) => obj["text_hex"] = hex(&u.text).into(),
                    }
                    if u.truncated {
                        obj["truncated"] = true.into();
                    }
                }
                Rejected::Event(e) => {
                    // The event's canonical line: what the line said, re-importable as it is.
                    let event: serde_json::Value = serde_json::from_str(&e.to_json_line()).unwrap_or_default();
                    obj["event"] = event;
                }
            }
            writeln!(w, "{obj}").map_err(ImportError::Rejects)?;
        }
        self.lines.insert(line);
        Ok(())
    }
}

/// Lowercase hexadecimal.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A batch handed to the store, with the id and line of each of its events (to name the line
/// of an event the store refuses).
type InFlight<'l> =
    (std::pin::Pin<Box<dyn Future<Output = Result<AppendOutcome, AppendError>> + Send + 'l>>, Vec<(EventId, u64)>);

/// The append pass: batches of `batch_events`, up to [`APPENDS_IN_FLIGHT`] in flight.
struct Appender<'l, S: BackfillStore> {
    ledger: &'l Ledger<S>,
    source_name: &'l str,
    options: &'l ImportOptions,
    in_flight: VecDeque<InFlight<'l>>,
    batch: Vec<NewEvent>,
    lines: Vec<(EventId, u64)>,
}

impl<'l, S: BackfillStore> Appender<'l, S> {
    fn push(
        &mut self,
        line: u64,
        e: NewEvent,
        report: &mut ImportReport,
        on_outcome: &mut impl FnMut(&mut ImportReport, AppendOutcome),
    ) -> Result<(), ImportError> {
        if self.batch.is_empty() {
            self.batch.reserve(self.options.batch_events.max(1));
            self.lines.reserve(self.options.batch_events.max(1));
        }
        self.lines.push((e.id, line));
        self.batch.push(e);
        if self.batch.len() >= self.options.batch_events.max(1) { self.submit(report, on_outcome) } else { Ok(()) }
    }

    /// Hands the current batch to the store, then waits for the oldest one in flight if
    /// [`APPENDS_IN_FLIGHT`] are (or, with no current batch, if any is).
    fn submit(
        &mut self,
        report: &mut ImportReport,
        on_outcome: &mut impl FnMut(&mut ImportReport, AppendOutcome),
    ) -> Result<(), ImportError> {
        let ending = self.batch.is_empty();
        if !ending {
            let batch = std::mem::take(&mut self.batch);
            self.in_flight.push_back((
                Box::pin(self.ledger.append_bulk(batch)) as std::pin::Pin<Box<dyn Future<Output = _> + Send>>,
                std::mem::take(&mut self.lines),
            ));
        }
        while self.in_flight.len() >= APPENDS_IN_FLIGHT || (ending && !self.in_flight.is_empty()) {
            let Some((future, lines)) = self.in_flight.pop_front() else { break };
            let out = pollster::block_on(future).map_err(|source| ImportError::Append {
                source_name: self.source_name.to_owned(),
                line: refused_line(&source, &lines),
                source: Box::new(source),
            })?;
            on_outcome(report, out);
        }
        Ok(())
    }

    fn finish(
        mut self,
        report: &mut ImportReport,
        on_outcome: &mut impl FnMut(&mut ImportReport, AppendOutcome),
    ) -> Result<(), ImportError> {
        self.submit(report, on_outcome)?;
        self.submit(report, on_outcome)
    }
}

/// The validation state of the streams an import touches, seeded from the store.
#[derive(Default)]
struct Shadow {
    state: LogState,
    /// Accounts whose stream state the store has been asked for; looked up once per event, so
    /// hashed by the keys' precomputed hash rather than SipHash.
    loaded: rapport_core::backend::KeyedSet<AccountId>,
    /// What is known of the event at each shadow position (position 1 first).
    known: Vec<Known>,
    /// The store had no events when the import began.
    store_empty: bool,
    future_skew: std::time::Duration,
}

/// What the shadow knows of the event holding one of its positions, to tell a later line with
/// the same id a duplicate from a conflict: that is decided by content, and fingerprints are
/// keyed hashes (`NewEvent::fingerprint`), paid only when the event itself is not at hand.
#[derive(Debug, Clone, Copy)]
enum Known {
    /// A logged event (the store's fingerprint of it), or one of this import's that the buffer
    /// no longer holds.
    Fingerprint(u64),
    /// One of this import's events, by its line: the buffer holds it (or the chunk being
    /// checked does), and it is compared with whole.
    Line(u64),
}

/// The event of `line` among `chunks` (each in line order, one after another), if there.
fn find_line<'a>(chunks: impl IntoIterator<Item = &'a Lines>, line: u64) -> Option<&'a NewEvent> {
    chunks.into_iter().find_map(|c| {
        c.lines.last().filter(|last| **last >= line)?;
        c.lines.binary_search(&line).ok().map(|k| &c.events[k])
    })
}

impl Shadow {
    /// Asks the store, on a thread of its own, what it knows about `batch`: the committed state
    /// of the streams it is first to touch, and which of its ids are logged, with the logged
    /// event's fingerprint (to tell a duplicate from a conflicting reuse of the id). One
    /// question of each kind per chunk, however the chunk is then admitted; none into a store
    /// that was empty when the import began. [`install`](Self::install) the answers before
    /// admitting the chunk.
    fn ask<'scope, 'env, S: BackfillStore>(
        &mut self,
        scope: &'scope std::thread::Scope<'scope, 'env>,
        ledger: &'env Ledger<S>,
        batch: &[NewEvent],
    ) -> Asked<'scope> {
        if self.store_empty || batch.is_empty() {
            return None;
        }
        let mut accounts: Vec<AccountId> = Vec::new();
        for e in batch {
            if self.loaded.insert(e.account.clone()) {
                accounts.push(e.account.clone());
            }
        }
        // Ids the shadow holds now are known; ids of chunks still in flight are asked again,
        // harmlessly (installing skips what is already recorded).
        let ids: Vec<EventId> = batch.iter().map(|e| e.id).filter(|id| self.state.id_position(id).is_none()).collect();
        Some(scope.spawn(move || {
            // A chunk holds at most CHECK_CHUNK events, far below a call's limit: one call.
            debug_assert!(accounts.len() <= rapport_core::READ_LIMIT_MAX && ids.len() <= rapport_core::READ_LIMIT_MAX);
            let answer = pollster::block_on(ledger.store().preflight(&accounts, &ids))?;
            assert_eq!(
                (answer.states.len(), answer.logged.len()),
                (accounts.len(), ids.len()),
                "a store answers a preflight with one entry per account and per id"
            );
            Ok(Answers { accounts, states: answer.states, ids, found: answer.logged })
        }))
    }

    /// Records what the store answered about a chunk, before the chunk is admitted.
    fn install(&mut self, answers: Answers) {
        for (account, state) in answers.accounts.into_iter().zip(answers.states) {
            if let Some(state) = state {
                self.state.insert_stream(account, state);
            }
        }
        for (id, fingerprint) in answers.ids.into_iter().zip(answers.found) {
            if let Some(fingerprint) = fingerprint {
                let p = Position(self.known.len() as u64 + 1);
                if self.state.note_logged_id(id, p) {
                    self.known.push(Known::Fingerprint(fingerprint));
                }
            }
        }
    }

    /// Turns every reference to an event of `buffer` (or of `last`, the chunk that overflowed
    /// it) into that event's fingerprint, before the buffer is dropped.
    fn forget_buffer(&mut self, buffer: &Buffered, last: &Lines) {
        for k in self.known.iter_mut() {
            if let Known::Line(line) = *k {
                let e = find_line(buffer.chunks.iter().chain([last]), line);
                // Every event a `Line` names was kept: in the buffer, or in `last`.
                let e = e.unwrap_or_else(|| unreachable!("line {line} of the shadow is in no kept chunk"));
                *k = Known::Fingerprint(e.fingerprint());
            }
        }
    }

    /// Checks `batch` (part of a chunk whose answers are installed; `lines` its line numbers)
    /// as one batch and records it; on refusal nothing is recorded and the reason names the
    /// first bad event. `buffer` holds the events kept so far, `kept` those kept so far of the
    /// chunk being checked line by line: where an earlier line with a repeated id is found.
    fn admit(
        &mut self,
        batch: &[NewEvent],
        lines: &[u64],
        buffer: Option<&Buffered>,
        kept: Option<&Lines>,
    ) -> Result<(), String> {
        debug_assert_eq!(batch.len(), lines.len());
        let next = Position(self.known.len() as u64 + 1);
        let known = &self.known;
        let admission = Admission { recorded_at: Timestamp::now(), future_skew: self.future_skew };
        let decided = self.state.admit(batch, ExpectedVersion::Any, next, &admission, |p, x| {
            match known.get((p.0 - 1) as usize) {
                Some(Known::Fingerprint(f)) => *f == x.fingerprint(),
                Some(Known::Line(line)) => {
                    let chunks = buffer.into_iter().flat_map(|b| b.chunks.iter()).chain(kept);
                    let earlier = find_line(chunks, *line);
                    assert!(earlier.is_some(), "line {line} of the shadow is neither buffered nor in this chunk");
                    earlier.is_some_and(|e| e.same_content(x))
                }
                None => false,
            }
        });
        match decided {
            Ok(admitted) => {
                // The new events take the next shadow positions, in batch order: by line while
                // the buffer keeps them, else by fingerprint.
                if buffer.is_some() {
                    self.known.extend(admitted.fresh.iter().map(|&(k, _)| Known::Line(lines[k])));
                } else {
                    self.known.extend(admitted.fresh.iter().map(|&(k, _)| Known::Fingerprint(batch[k].fingerprint())));
                }
                Ok(())
            }
            Err(AppendError::Invalid(v)) => Err(format!("{}: {v}", v.field())),
            Err(AppendError::IdConflict { id, .. }) => {
                Err(format!("id: event {id} already exists with different content"))
            }
            Err(other) => Err(other.to_string()),
        }
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
    for_each_event(source_name, reader, format, &mut |_| {}, &mut |line, parsed| {
        f(line, parsed.map_err(|u| u.reason));
        Ok(())
    })
}

/// Calls `f(line, parsed)` for every event-bearing line: `parsed` is the event or why the
/// line was refused (with its text).
fn for_each_event<R: Read>(
    source_name: &str,
    reader: R,
    format: Format,
    progress: &mut dyn FnMut(Progress),
    f: &mut dyn FnMut(u64, ParsedLine) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let mut interner = rapport_core::Interner::default();
    match format {
        Format::Jsonl => {
            split_jsonl(source_name, reader, &mut |b| progress(Progress::Validating { bytes: b }), &mut |chunk| {
                for (line, parsed) in parse_lines(chunk, &mut interner) {
                    f(line, parsed)?;
                }
                Ok(())
            })?;
        }
        Format::Csv => {
            let io_err = |source| ImportError::Io { source_name: source_name.to_owned(), source };
            let mut r = csv::Reader::new(BufReader::with_capacity(1 << 20, reader));
            let Some(header) = r.next_record().map_err(io_err)? else { return Ok(()) };
            let invalid_header = |reason: String| ImportError::Invalid {
                source_name: source_name.to_owned(),
                line: header.line,
                reason: format!("header: {reason}"),
            };
            let names = header.fields.clone().map_err(invalid_header)?;
            let columns = csv::columns(&names).map_err(invalid_header)?;
            let mut n = 0u64;
            while let Some(record) = r.next_record().map_err(io_err)? {
                n += 1;
                if n.is_multiple_of(4096) {
                    progress(Progress::Validating { bytes: r.bytes() });
                }
                let truncated = record.text.len() >= LINE_BYTES_MAX;
                let parsed = record
                    .fields
                    .and_then(|row| csv::event(&columns, &row, &mut interner))
                    .map_err(|reason| Unreadable::new(reason, &record.text, truncated));
                f(record.line, parsed)?;
            }
            progress(Progress::Validating { bytes: r.bytes() });
        }
    }
    Ok(())
}

/// Lines read but not yet parsed: their bytes one after another, with line numbers.
#[derive(Default)]
struct Unparsed {
    data: Vec<u8>,
    /// Line number, byte range in `data`, and whether the line was longer than the limit (the
    /// range then holds its first [`LINE_BYTES_MAX`] bytes).
    lines: Vec<(u64, std::ops::Range<usize>, bool)>,
    /// Input bytes read up to the end of this chunk.
    bytes: u64,
}

/// Reads JSON Lines in chunks of [`PARSE_CHUNK`] lines, without parsing them; `progress` gets
/// the bytes read so far every 4,096 lines.
fn split_jsonl<R: Read>(
    source_name: &str,
    reader: R,
    progress: &mut dyn FnMut(u64),
    emit: &mut dyn FnMut(Unparsed) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let io_err = |source| ImportError::Io { source_name: source_name.to_owned(), source };
    let mut r = BufReader::with_capacity(1 << 20, reader);
    let mut chunk = Unparsed::default();
    let mut line = 0u64;
    let mut bytes = 0u64;
    loop {
        line += 1;
        let start = chunk.data.len();
        let (n, too_long) = read_line_limited(&mut r, &mut chunk.data, LINE_BYTES_MAX).map_err(io_err)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        if line.is_multiple_of(4096) {
            progress(bytes);
        }
        chunk.lines.push((line, start..chunk.data.len(), too_long));
        if chunk.lines.len() >= PARSE_CHUNK {
            chunk.bytes = bytes;
            // The next chunk starts with room for as many bytes as this one held, so it does
            // not grow by doubling (each doubling copied everything read so far: counted
            // instructions put the copies at 3 % of an import).
            let next = Unparsed {
                data: Vec::with_capacity(chunk.data.len() + chunk.data.len() / 8),
                lines: Vec::with_capacity(PARSE_CHUNK),
                bytes: 0,
            };
            emit(std::mem::replace(&mut chunk, next))?;
        }
    }
    progress(bytes);
    chunk.bytes = bytes;
    if !chunk.lines.is_empty() {
        emit(chunk)?;
    }
    Ok(())
}

/// Parses a chunk of lines: each event-bearing line with its event or the `field: reason` it
/// was refused for. Blank lines are skipped.
fn parse_lines(chunk: Unparsed, interner: &mut rapport_core::Interner) -> Vec<(u64, ParsedLine)> {
    let mut out = Vec::with_capacity(chunk.lines.len());
    for (line, range, too_long) in chunk.lines {
        let bytes = &chunk.data[range];
        if too_long {
            let reason = format!("line is longer than {LINE_BYTES_MAX} bytes");
            out.push((line, Err(Unreadable::new(reason, bytes, true))));
            continue;
        }
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t.trim(),
            Err(e) => {
                out.push((line, Err(Unreadable::new(format!("not UTF-8: {e}"), bytes, false))));
                continue;
            }
        };
        if !text.is_empty() {
            let parsed = NewEvent::from_json_line_in(text, interner);
            out.push((line, parsed.map_err(|e| Unreadable::new(e.to_string(), bytes, false))));
        }
    }
    out
}

/// Appends one line (without its newline) to `buf`, at most `max` bytes of it; returns the
/// bytes consumed (0 at the end) and whether the line was longer than `max` (then its first
/// `max` bytes are kept in `buf` and the rest of it is skipped).
fn read_line_limited(r: &mut impl BufRead, buf: &mut Vec<u8>, max: usize) -> io::Result<(usize, bool)> {
    let start = buf.len();
    let mut consumed = 0;
    let mut too_long = false;
    loop {
        let available = r.fill_buf()?;
        if available.is_empty() {
            return Ok((consumed, too_long));
        }
        let (chunk, done) = match memchr::memchr(b'\n', available) {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        if !too_long {
            let room = max - (buf.len() - start);
            if chunk.len() > room {
                too_long = true;
                buf.extend_from_slice(&chunk[..room]);
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let used = done.unwrap_or(chunk.len());
        consumed += used;
        r.consume(used);
        if done.is_some() {
            return Ok((consumed, too_long));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_skipped_to_their_end() {
        let data = format!("{}\nshort\n", "x".repeat(100));
        let mut r = BufReader::with_capacity(16, data.as_bytes());
        let mut buf = Vec::new();
        assert_eq!(read_line_limited(&mut r, &mut buf, 50).unwrap(), (101, true));
        assert_eq!(buf.len(), 50, "the first 50 bytes are kept");
        buf.clear();
        assert_eq!(read_line_limited(&mut r, &mut buf, 50).unwrap(), (6, false));
        assert_eq!(buf, b"short");
        buf.clear();
        assert_eq!(read_line_limited(&mut r, &mut buf, 50).unwrap(), (0, false));
    }

    #[test]
    fn the_limit_applies_to_each_appended_line() {
        let line = "y".repeat(40);
        let data = format!("{line}\n{line}\n{}\n{line}\n", "z".repeat(60));
        let mut r = BufReader::with_capacity(16, data.as_bytes());
        let mut buf = Vec::new();
        assert_eq!(read_line_limited(&mut r, &mut buf, 50).unwrap(), (41, false));
        assert_eq!(read_line_limited(&mut r, &mut buf, 50).unwrap(), (41, false));
        assert_eq!(buf.len(), 80, "both lines kept although together over the limit");
        assert_eq!(read_line_limited(&mut r, &mut buf, 50).unwrap(), (61, true));
        assert_eq!(buf.len(), 130, "the long line's first 50 bytes kept after the earlier ones");
        assert_eq!(read_line_limited(&mut r, &mut buf, 50).unwrap(), (41, false));
        assert_eq!(buf.len(), 170);
    }
}

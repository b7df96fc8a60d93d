//! rapport-import: backfill years of history from old logs into any store.
//!
//! [`import`] reads JSON Lines in the canonical form (`docs/event-format.md`) or CSV with the
//! same field names as columns, and appends it through the store's contract. It is:
//!
//! - **Atomic by default.** Pass 1 parses every line and validates it against a shadow of the
//!   affected streams (loaded from the store); any invalid line fails the import with
//!   `FILE:LINE: field: reason`, and nothing is appended. With
//!   [`ImportOptions::skip_invalid`], invalid lines are reported to a rejects sink instead and
//!   the valid ones are appended.
//! - **Idempotent and re-runnable.** A line without an `id` gets a UUID v5 of its canonical
//!   content, so re-importing the same file appends nothing and reports duplicates. An import
//!   killed mid-way leaves the store valid (whole batches only); running it again completes it.
//! - **Streaming.** Memory stays flat in the file's size: parsed events are kept between the
//!   passes only up to [`ImportOptions::buffer_events_max`]; beyond that the file is read
//!   again. The shadow validation state holds an id index for the accounts the file touches
//!   (about 40 bytes per event of those accounts).
//!
//! It blocks the calling thread (file reads and store calls); async services run it on a
//! blocking thread.
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

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use rapport_core::{
    AccountId, AppendError, ExpectedVersion, LINE_BYTES_MAX, Ledger, LogState, NewEvent, Position, ReadError, Store,
};
use thiserror::Error;

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
/// 1,000,000 parsed events kept between the passes.
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
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self { format: Format::Jsonl, skip_invalid: false, batch_events: 10_000, buffer_events_max: 1_000_000 }
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
            self.source,
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
    #[error("{source_name}:{line}: {reason}")]
    Invalid {
        /// The source.
        source_name: String,
        /// The 1-based line.
        line: u64,
        /// `field: reason`.
        reason: String,
    },
    /// Reading the input failed. Nothing was appended if it failed in the validation pass.
    #[error("{source_name}: {source}")]
    Io {
        /// The source.
        source_name: String,
        /// The cause.
        source: io::Error,
    },
    /// The store refused or failed an append. Earlier batches (before `line`) are in the
    /// store; re-running the import completes it.
    #[error("{source_name}:{line}: append failed: {source}")]
    Append {
        /// The source.
        source_name: String,
        /// The first line of the failed batch.
        line: u64,
        /// The cause.
        source: AppendError,
    },
    /// Reading the store failed.
    #[error("{source_name}: reading the store: {source}")]
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
pub fn import<S: Store>(
    ledger: &Ledger<S>,
    path: &Path,
    options: &ImportOptions,
    rejects: Option<&mut dyn Write>,
    progress: &mut dyn FnMut(Progress),
) -> Result<ImportReport, ImportError> {
    let name = path.display().to_string();
    import_reader(ledger, &name, || std::fs::File::open(path), options, rejects, progress)
}

/// Imports from a reader that `open` can produce once or twice (a file can be reopened; a
/// one-shot source such as stdin fits only if it stays within `buffer_events_max`).
///
/// # Errors
/// [`ImportError`].
pub fn import_reader<S: Store, R: Read>(
    ledger: &Ledger<S>,
    source_name: &str,
    mut open: impl FnMut() -> io::Result<R>,
    options: &ImportOptions,
    mut rejects: Option<&mut dyn Write>,
    progress: &mut dyn FnMut(Progress),
) -> Result<ImportReport, ImportError> {
    let started = Instant::now();
    let io_err = |source| ImportError::Io { source_name: source_name.to_owned(), source };
    let mut report = ImportReport { source: source_name.to_owned(), ..Default::default() };

    // Pass 1: parse and validate against a shadow of the affected streams. In atomic mode
    // lines are validated in chunks (one shadow `prepare` per chunk); a refused chunk is
    // re-checked line by line to name the first bad line. With `skip_invalid`, line by line.
    let mut shadow = Shadow::default();
    let mut rejected_lines: HashSet<u64> = HashSet::new();
    let mut buffer: Option<Vec<(u64, NewEvent)>> = Some(Vec::new());
    let chunk_max = if options.skip_invalid { 1 } else { 1_024 };
    let mut chunk: Vec<(u64, NewEvent)> = Vec::with_capacity(chunk_max);
    let keep = |events: Vec<(u64, NewEvent)>, buffer: &mut Option<Vec<(u64, NewEvent)>>| {
        if let Some(buf) = buffer {
            if buf.len() + events.len() <= options.buffer_events_max {
                buf.extend(events);
            } else {
                *buffer = None;
            }
        }
    };
    let read_err = |source| ImportError::Read { source_name: source_name.to_owned(), source };
    let mut check_chunk = |chunk: &mut Vec<(u64, NewEvent)>,
                           shadow: &mut Shadow,
                           buffer: &mut Option<Vec<(u64, NewEvent)>>,
                           report: &mut ImportReport,
                           rejects: &mut Option<&mut dyn Write>|
     -> Result<(), ImportError> {
        if chunk.is_empty() {
            return Ok(());
        }
        let events = std::mem::take(chunk);
        if chunk_max > 1 {
            match shadow.admit(ledger, events.iter().map(|(_, e)| e)) {
                Ok(()) => {
                    keep(events, buffer);
                    return Ok(());
                }
                Err(Err(e)) => return Err(read_err(e)),
                Err(Ok(_)) => {}
            }
        }
        // One by one, to name (or reject) exactly the bad lines.
        let mut kept = Vec::with_capacity(events.len());
        for (line, e) in events {
            match shadow.admit(ledger, std::iter::once(&e)) {
                Ok(()) => kept.push((line, e)),
                Err(Err(fatal)) => return Err(read_err(fatal)),
                Err(Ok(reason)) if options.skip_invalid => {
                    reject(rejects, source_name, line, &reason)?;
                    rejected_lines.insert(line);
                    report.rejected += 1;
                }
                Err(Ok(reason)) => {
                    return Err(ImportError::Invalid { source_name: source_name.to_owned(), line, reason });
                }
            }
        }
        keep(kept, buffer);
        Ok(())
    };
    let reader = open().map_err(io_err)?;
    for_each_event(source_name, reader, options.format, progress, &mut |line, parsed| {
        match parsed {
            Ok(e) => {
                report.events += 1;
                chunk.push((line, e));
                if chunk.len() >= chunk_max {
                    check_chunk(&mut chunk, &mut shadow, &mut buffer, &mut report, &mut rejects)?;
                }
                Ok(())
            }
            Err(reason) => {
                // Lines before this one are checked first, so errors come out in line order.
                check_chunk(&mut chunk, &mut shadow, &mut buffer, &mut report, &mut rejects)?;
                if options.skip_invalid {
                    reject(&mut rejects, source_name, line, &reason)?;
                    report.rejected += 1;
                    Ok(())
                } else {
                    Err(ImportError::Invalid { source_name: source_name.to_owned(), line, reason })
                }
            }
        }
    })?;
    check_chunk(&mut chunk, &mut shadow, &mut buffer, &mut report, &mut rejects)?;
    let rejected_lines = std::mem::take(&mut rejected_lines);
    drop(shadow);

    // Pass 2: append in batches, from the buffer or by reading the input again.
    let mut batch: Vec<NewEvent> = Vec::with_capacity(options.batch_events.max(1));
    let mut batch_line = 0u64;
    let mut appended_events = 0u64;
    let mut flush = |batch: &mut Vec<NewEvent>,
                     first_line: u64,
                     report: &mut ImportReport|
     -> Result<(), ImportError> {
        if batch.is_empty() {
            return Ok(());
        }
        let out = pollster::block_on(ledger.append(std::mem::take(batch), ExpectedVersion::Any))
            .map_err(|source| ImportError::Append { source_name: source_name.to_owned(), line: first_line, source })?;
        report.appended += out.appended.len() as u64;
        report.duplicates += out.duplicates.len() as u64;
        appended_events += (out.appended.len() + out.duplicates.len()) as u64;
        progress(Progress::Appending { events: appended_events });
        Ok(())
    };
    let mut push = |line: u64, e: NewEvent, batch: &mut Vec<NewEvent>, report: &mut ImportReport| {
        if batch.is_empty() {
            batch_line = line;
        }
        batch.push(e);
        if batch.len() >= options.batch_events.max(1) { flush(batch, batch_line, report) } else { Ok(()) }
    };
    match buffer {
        Some(events) => {
            for (line, e) in events {
                push(line, e, &mut batch, &mut report)?;
            }
        }
        None => {
            let reader = open().map_err(io_err)?;
            let mut ignore = |_: Progress| {};
            for_each_event(source_name, reader, options.format, &mut ignore, &mut |line, parsed| match parsed {
                Ok(e) if !rejected_lines.contains(&line) => push(line, e, &mut batch, &mut report),
                _ => Ok(()),
            })?;
        }
    }
    let last_line = batch_line;
    flush(&mut batch, last_line, &mut report)?;
    report.elapsed = started.elapsed();
    Ok(report)
}

fn reject(rejects: &mut Option<&mut dyn Write>, source_name: &str, line: u64, reason: &str) -> Result<(), ImportError> {
    if let Some(w) = rejects.as_deref_mut() {
        let obj = serde_json::json!({ "source": source_name, "line": line, "reason": reason });
        writeln!(w, "{obj}").map_err(ImportError::Rejects)?;
    }
    Ok(())
}

/// The validation state of the streams an import touches, seeded from the store.
#[derive(Default)]
struct Shadow {
    state: LogState,
    loaded: HashSet<AccountId>,
    fingerprints: Vec<u64>,
}

impl Shadow {
    /// Checks `events` as one batch and records them; on refusal nothing is recorded.
    /// `Err(Ok(reason))` refuses (the reason names the first bad event); `Err(Err(_))` is fatal.
    fn admit<'e, S: Store>(
        &mut self,
        ledger: &Ledger<S>,
        events: impl Iterator<Item = &'e NewEvent> + Clone,
    ) -> Result<(), Result<String, ReadError>> {
        for e in events.clone() {
            if self.loaded.contains(&e.account) {
                continue;
            }
            self.loaded.insert(e.account.clone());
            let mut stored = Vec::new();
            pollster::block_on(ledger.for_each_in_stream(&e.account, |env| stored.push(env.to_new_event())))
                .map_err(Err)?;
            for s in stored {
                let p = Position(self.fingerprints.len() as u64 + 1);
                self.fingerprints.push(s.fingerprint());
                // The store validated these already; a failure here would only repeat its verdict.
                let _ = self.state.replay(&s, p);
            }
        }
        let batch: Vec<NewEvent> = events.cloned().collect();
        let next = Position(self.fingerprints.len() as u64 + 1);
        let known = &self.fingerprints;
        match self.state.prepare(batch, ExpectedVersion::Any, next, |p, x| {
            known.get((p.0 - 1) as usize).copied() == Some(x.fingerprint())
        }) {
            Ok(prepared) => {
                // The new events take the next shadow positions, in batch order.
                self.fingerprints.extend(prepared.events.iter().map(|(e, _)| e.fingerprint()));
                Ok(())
            }
            Err(AppendError::Invalid(v)) => Err(Ok(format!("{}: {v}", v.field()))),
            Err(AppendError::IdConflict { id, .. }) => {
                Err(Ok(format!("id: event {id} already exists with different content")))
            }
            Err(other) => Err(Ok(other.to_string())),
        }
    }
}

/// Calls `f(line, parsed)` for every event-bearing line: `parsed` is the event or the
/// `field: reason` it was refused for.
fn for_each_event<R: Read>(
    source_name: &str,
    reader: R,
    format: Format,
    progress: &mut dyn FnMut(Progress),
    f: &mut dyn FnMut(u64, Result<NewEvent, String>) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let io_err = |source| ImportError::Io { source_name: source_name.to_owned(), source };
    match format {
        Format::Jsonl => {
            let mut r = BufReader::with_capacity(1 << 20, reader);
            let mut buf = Vec::with_capacity(1024);
            let mut line = 0u64;
            let mut bytes = 0u64;
            loop {
                line += 1;
                buf.clear();
                let (n, too_long) = read_line_limited(&mut r, &mut buf, LINE_BYTES_MAX).map_err(io_err)?;
                if n == 0 {
                    break;
                }
                bytes += n as u64;
                if line.is_multiple_of(4096) {
                    progress(Progress::Validating { bytes });
                }
                if too_long {
                    f(line, Err(format!("line is longer than {LINE_BYTES_MAX} bytes")))?;
                    continue;
                }
                let text = match std::str::from_utf8(&buf) {
                    Ok(t) => t.trim(),
                    Err(e) => {
                        f(line, Err(format!("not UTF-8: {e}")))?;
                        continue;
                    }
                };
                if text.is_empty() {
                    continue;
                }
                f(line, NewEvent::from_json_line(text).map_err(|e| e.to_string()))?;
            }
            progress(Progress::Validating { bytes });
        }
        Format::Csv => {
            let mut r = csv::ReaderBuilder::new().flexible(false).from_reader(reader);
            let headers = r.headers().map_err(|e| csv_err(source_name, e))?.clone();
            const KNOWN: &[&str] = &[
                "type",
                "id",
                "account",
                "occurred_at",
                "commitment",
                "title",
                "due",
                "weight",
                "reason",
                "accepted",
                "escalation",
                "severity",
                "summary",
                "survey",
                "nps",
                "csat",
                "ces",
                "comment",
                "channel",
                "kind",
            ];
            if let Some(bad) = headers.iter().find(|h| !KNOWN.contains(h)) {
                return Err(ImportError::Invalid {
                    source_name: source_name.to_owned(),
                    line: 1,
                    reason: format!("{bad}: unknown column; columns are {}", KNOWN.join(", ")),
                });
            }
            let mut record = csv::StringRecord::new();
            loop {
                let more = r.read_record(&mut record);
                let line = record.position().map(|p| p.line()).unwrap_or(0);
                match more {
                    Ok(false) => break,
                    Ok(true) => {}
                    Err(e) => {
                        f(line, Err(format!("csv: {e}")))?;
                        continue;
                    }
                }
                if line.is_multiple_of(4096) {
                    progress(Progress::Validating { bytes: record.position().map(|p| p.byte()).unwrap_or(0) });
                }
                f(line, csv_event(&headers, &record))?;
            }
        }
    }
    Ok(())
}

fn csv_err(source_name: &str, e: csv::Error) -> ImportError {
    let line = e.position().map(|p| p.line()).unwrap_or(1);
    ImportError::Invalid { source_name: source_name.to_owned(), line, reason: format!("csv: {e}") }
}

/// One CSV row as an event: empty cells are absent; numbers and booleans are typed by column.
fn csv_event(headers: &csv::StringRecord, record: &csv::StringRecord) -> Result<NewEvent, String> {
    let mut obj = serde_json::Map::new();
    for (h, v) in headers.iter().zip(record.iter()) {
        if v.is_empty() {
            continue;
        }
        let value = match h {
            "weight" => {
                serde_json::Value::from(v.parse::<f64>().map_err(|_| format!("weight: {v:?} is not a number"))?)
            }
            "nps" | "csat" | "ces" => {
                serde_json::Value::from(v.parse::<i64>().map_err(|_| format!("{h}: {v:?} is not an integer"))?)
            }
            "accepted" => serde_json::Value::from(match v {
                "true" => true,
                "false" => false,
                _ => return Err(format!("accepted: {v:?} is not true or false")),
            }),
            _ => serde_json::Value::from(v),
        };
        obj.insert(h.to_owned(), value);
    }
    NewEvent::from_json_line(&serde_json::Value::Object(obj).to_string()).map_err(|e| e.to_string())
}

/// Reads one line (without its newline) into `buf`, at most `max` bytes; returns the bytes
/// consumed (0 at the end) and whether the line was longer than `max` (then the rest of it is
/// skipped).
fn read_line_limited(r: &mut impl BufRead, buf: &mut Vec<u8>, max: usize) -> io::Result<(usize, bool)> {
    let mut consumed = 0;
    let mut too_long = false;
    loop {
        let available = r.fill_buf()?;
        if available.is_empty() {
            return Ok((consumed, too_long));
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        if !too_long {
            if buf.len() + chunk.len() > max {
                too_long = true;
                buf.clear();
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
        buf.clear();
        assert_eq!(read_line_limited(&mut r, &mut buf, 50).unwrap(), (6, false));
        assert_eq!(buf, b"short");
        buf.clear();
        assert_eq!(read_line_limited(&mut r, &mut buf, 50).unwrap(), (0, false));
    }
}

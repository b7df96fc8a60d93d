//! The validation pass: every event checked against a shadow of the log before anything is
//! appended (what makes a multi-batch import atomic), in chunks whose questions to the store
//! are asked ahead on threads of their own; refused lines fail the import or go to the rejects.

use std::collections::{HashSet, VecDeque};
use std::io::{Read, Write};

use rapport_core::backend::LogState;
use rapport_core::{BackfillStore, Ledger, NewEvent, Position, ReadError};

use crate::input::{Chunk, PARSED_IN_FLIGHT, Parsed, Records, Unreadable, parse_lines, read_chunks};
use crate::lines::{Buffered, Lines, Places};
use crate::shadow::{Asked, Shadow};
use crate::{ImportError, ImportOptions, Progress};

/// Events per shadow validation.
pub(crate) const CHECK_CHUNK: usize = 1_024;
/// Chunks whose questions to the store may be in flight while an earlier one is validated.
pub(crate) const ASKING_MAX: usize = 3;

/// What the validation pass leaves for the append pass.
pub(crate) struct Validated {
    /// The events to append, when they fitted in the buffer; `None`: read the input again.
    pub(crate) buffer: Option<Buffered>,
    /// The last event-bearing line read: a second reading stops there, so lines added to the
    /// input meanwhile (a log still being written) are not appended unvalidated.
    pub(crate) last_line: u64,
    /// Events refused (with `skip_invalid`), by line and place among the line's events, which
    /// the second reading skips.
    pub(crate) rejected: HashSet<(u64, u32)>,
    /// Event-bearing lines read.
    pub(crate) events: u64,
    /// Events validation admitted: what pass 2 appends.
    pub(crate) admitted: u64,
}

/// Pass 1: read on a second thread, parse on both, and validate here against a shadow of the
/// affected streams. Lines are validated in chunks (one shadow `admit` per chunk, and one
/// question to the store about its accounts and ids); a refused chunk is re-checked line by
/// line, to name the first bad line or, with `skip_invalid`, to reject each bad one and keep
/// the rest.
pub(crate) fn validate<S: BackfillStore, R: Read + Send>(
    ledger: &Ledger<S>,
    source_name: &str,
    reader: R,
    options: &ImportOptions,
    rejects: Option<&mut dyn Write>,
    progress: &mut dyn FnMut(Progress),
    events_hint: usize,
) -> Result<Validated, ImportError> {
    let read_err = |source| ImportError::Read { source_name: source_name.to_owned(), source };
    // A store with no events holds no streams and no ids: pass 1 need not ask it about either
    // (a backfill into a new PostgreSQL database saves a query per chunk of lines).
    let store_empty = pollster::block_on(ledger.store().head()).map_err(read_err)? == Position(0);
    let schema_version_max = ledger.store().schema_version_max();
    let mut shadow =
        Shadow::new(LogState::with_capacity(events_hint), store_empty, options.future_skew, schema_version_max);
    let mut refusals = Refusals {
        source_name,
        skip_invalid: options.skip_invalid,
        sink: rejects,
        lines: HashSet::new(),
        events_refused: 0,
    };
    let mut buffer = Some(Buffered::default());
    let mut last_line = 0u64;
    let mut events = 0u64;
    std::thread::scope(|scope| -> Result<(), ImportError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Chunk, ImportError>>(PARSED_IN_FLIGHT);
        let reading = crate::threads::sized("rapport-import-read").spawn_scoped(scope, move || {
            // A closed channel means pass 1 stopped early (it has its error): stop reading.
            let stopped = std::cell::Cell::new(false);
            let result = read_chunks(source_name, reader, options, &mut |msg| {
                tx.send(Ok(msg)).map_err(|_| {
                    stopped.set(true);
                    ImportError::Io {
                        source_name: source_name.to_owned(),
                        source: std::io::ErrorKind::Interrupted.into(),
                    }
                })
            });
            if let Err(e) = result
                && !stopped.get()
            {
                let _ = tx.send(Err(e));
            }
        });
        reading.map_err(|source| ImportError::Io { source_name: source_name.to_owned(), source })?;
        let mut interner = rapport_core::Interner::default();
        // For the chunks the reader leaves unparsed, made when the first one comes: parsed
        // here, or (a mapping, which runs only on the importer's own threads) on a helper
        // thread while this one waits.
        let mut records: Option<Records> = None;
        let mut helper: Option<Helper> = None;
        let mut pending = Lines::with_capacity(CHECK_CHUNK);
        // Chunks whose questions to the store are in flight, oldest first: a database store
        // answers several at once while earlier chunks are validated.
        let mut asking: VecDeque<(Lines, Asked<'_>)> = VecDeque::new();
        let mut check_up_to =
            |asking: &mut VecDeque<(Lines, Asked<'_>)>, keep, shadow: &mut Shadow, refusals: &mut Refusals<'_, '_>| {
                check_asked(asking, keep, shadow, options, &mut buffer, refusals).map_err(|e| e.map_read(read_err))
            };
        // An event goes into the pending chunk, which is asked about and checked once full (a
        // macro: the chunk's answers borrow the thread scope, which a closure cannot name).
        macro_rules! take {
            ($line:expr, $place:expr, $e:expr) => {
                pending.push($line, $place, $e);
                if pending.events.len() >= CHECK_CHUNK {
                    let chunk = std::mem::replace(&mut pending, Lines::with_capacity(CHECK_CHUNK));
                    let answers = shadow.ask(scope, ledger, &chunk.events);
                    asking.push_back((chunk, answers));
                    check_up_to(&mut asking, ASKING_MAX, &mut shadow, &mut refusals)?;
                }
            };
        }
        // With `sort_by_time`, every event is held here (within `buffer_events_max`) and
        // checked once the input has ended, in time order; unreadable lines are refused as
        // they come, in line order.
        let mut held: Option<Vec<(u64, u32, NewEvent)>> = options.sort_by_time.then(Vec::new);
        let mut places = Places::default();
        for chunk in rx {
            let parsed = match chunk? {
                Chunk::Parsed(p) => p,
                Chunk::Unparsed(u) if mapped(options) => {
                    let helper = match &mut helper {
                        Some(h) => h,
                        None => helper.insert(Helper::spawn(scope, options, source_name)?),
                    };
                    helper.parse(u).map_err(|source| ImportError::Io { source_name: source_name.to_owned(), source })?
                }
                Chunk::Unparsed(u) => {
                    let bytes = u.bytes;
                    let records = match &mut records {
                        Some(r) => r,
                        None => records.insert(Records::new(options)?),
                    };
                    Parsed { lines: parse_lines(u, &mut interner, records), bytes }
                }
            };
            for (line, parsed) in parsed.lines {
                last_line = line;
                let place = places.next(line);
                match parsed {
                    Ok(e) => {
                        events += 1;
                        match &mut held {
                            Some(held) if held.len() >= options.buffer_events_max => {
                                return Err(ImportError::TooLargeToSort {
                                    source_name: source_name.to_owned(),
                                    line,
                                    limit: options.buffer_events_max,
                                });
                            }
                            Some(held) => held.push((line, place, e)),
                            None => {
                                take!(line, place, e);
                            }
                        }
                    }
                    Err(unreadable) => {
                        // Lines before this one are checked first, so errors come out in line order.
                        let chunk = std::mem::take(&mut pending);
                        let answers = shadow.ask(scope, ledger, &chunk.events);
                        asking.push_back((chunk, answers));
                        check_up_to(&mut asking, 0, &mut shadow, &mut refusals)?;
                        refusals.refuse(line, place, unreadable.reason.clone(), Rejected::Text(&unreadable))?;
                    }
                }
            }
            progress(Progress::Validating { bytes: parsed.bytes });
        }
        if let Some(mut held) = held {
            // Stable: events of one instant keep their input order.
            held.sort_by_key(|(_, _, e)| e.occurred_at);
            for (line, place, e) in held {
                take!(line, place, e);
            }
        }
        let answers = shadow.ask(scope, ledger, &pending.events);
        asking.push_back((pending, answers));
        check_up_to(&mut asking, 0, &mut shadow, &mut refusals)
    })?;
    debug_assert!(!options.sort_by_time || buffer.is_some(), "events ordered by time are appended from the buffer");
    let admitted = events - refusals.events_refused;
    Ok(Validated { buffer, last_line, rejected: refusals.lines, events, admitted })
}

/// Whether a mapping turns the records into events.
fn mapped(options: &ImportOptions) -> bool {
    #[cfg(feature = "mapping")]
    return options.mapping.is_some();
    #[cfg(not(feature = "mapping"))]
    return false;
}

/// A thread of the importer's own that parses, one chunk at a time, what the reader left
/// unparsed of a mapped import (the validating thread is the caller's: no mapping runs there).
struct Helper {
    chunks: std::sync::mpsc::SyncSender<crate::input::Unparsed>,
    parsed: std::sync::mpsc::Receiver<Parsed>,
}

impl Helper {
    fn spawn<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        options: &'scope ImportOptions,
        source_name: &str,
    ) -> Result<Self, ImportError> {
        let (chunks, to_parse) = std::sync::mpsc::sync_channel::<crate::input::Unparsed>(1);
        let (done, parsed) = std::sync::mpsc::sync_channel(1);
        crate::threads::sized("rapport-import-parse")
            .spawn_scoped(scope, move || {
                // A compiled mapping stays on its thread. (It compiled on the reader's
                // already; were it to fail here, `parse` reports the thread gone.)
                let Ok(records) = Records::new(options) else { return };
                let mut interner = rapport_core::Interner::default();
                for u in to_parse {
                    let bytes = u.bytes;
                    if done.send(Parsed { lines: parse_lines(u, &mut interner, &records), bytes }).is_err() {
                        return;
                    }
                }
            })
            .map_err(|source| ImportError::Io { source_name: source_name.to_owned(), source })?;
        Ok(Self { chunks, parsed })
    }

    /// The chunk parsed on the helper thread.
    fn parse(&self, u: crate::input::Unparsed) -> std::io::Result<Parsed> {
        let gone = || std::io::Error::other("the importer's parsing thread stopped");
        self.chunks.send(u).map_err(|_| gone())?;
        self.parsed.recv().map_err(|_| gone())
    }
}

/// Why a validation chunk stopped the import.
pub(crate) enum CheckError {
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
pub(crate) fn check_asked(
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
pub(crate) fn check(
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
    if events.events.len() > 1 && shadow.admit(&events.events, 0, buffer.as_ref(), None).is_ok() {
        keep(events, buffer, shadow);
        return Ok(());
    }
    // One by one, to name (or reject) exactly the bad lines.
    let mut kept = Lines::with_capacity(events.events.len());
    for ((line, place), e) in events.lines.into_iter().zip(events.places).zip(events.events) {
        let one = [e];
        match shadow.admit(&one, kept.events.len(), buffer.as_ref(), Some(&kept)) {
            Ok(()) => {
                let [e] = one;
                kept.push(line, place, e);
            }
            Err(reason) => refusals.refuse(line, place, reason, Rejected::Event(&one[0]))?,
        }
    }
    keep(kept, buffer, shadow);
    Ok(())
}

/// Where refused lines go: with `skip_invalid`, to the rejects sink and the set of lines the
/// append pass skips; otherwise, the first one fails the import.
pub(crate) struct Refusals<'s, 'w> {
    source_name: &'s str,
    skip_invalid: bool,
    sink: Option<&'w mut dyn Write>,
    /// Each refused event's line and place among its line's events.
    lines: HashSet<(u64, u32)>,
    /// Refused lines that parsed: events validation refused.
    events_refused: u64,
}

/// What a refused line held, for the rejects file.
pub(crate) enum Rejected<'a> {
    /// A line that did not parse: its text.
    Text(&'a Unreadable),
    /// A line whose event validation refused: the event.
    Event(&'a NewEvent),
}

impl Refusals<'_, '_> {
    fn refuse(&mut self, line: u64, place: u32, reason: String, what: Rejected<'_>) -> Result<(), ImportError> {
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
        if matches!(what, Rejected::Event(_)) {
            self.events_refused += 1;
        }
        self.lines.insert((line, place));
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

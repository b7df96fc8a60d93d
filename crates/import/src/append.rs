//! The append pass: the validated events in batches through
//! [`append_bulk`](rapport_core::BackfillStore::append_bulk), several in flight, from the
//! buffer of the validation pass or by reading the input again.

use std::collections::VecDeque;
use std::io::Read;

use rapport_core::{AppendError, AppendOutcome, BackfillStore, EventId, Ledger, NewEvent};

use crate::check::Validated;
use crate::input::{ParsedLine, for_each_event};
use crate::lines::Places;
use crate::{ImportError, ImportOptions, ImportReport, Progress};

/// Appends the importer keeps in flight. A store that overlaps consecutive appends
/// (PostgreSQL copies two batches at once) has the next one ready when the oldest commits.
const APPENDS_IN_FLIGHT: usize = 3;
/// Lines the reread sends the appending side at once, and batches of them in flight.
const REREAD_BATCH: usize = 4_096;
const REREAD_IN_FLIGHT: usize = 4;
/// Pass 2: appends what `validated` kept, or (when it did not keep it all) reads the input
/// again through `reopen`, skipping refused lines and stopping at the last line validated.
pub(crate) fn append<S: BackfillStore, R: Read + Send>(
    ledger: &Ledger<S>,
    source_name: &str,
    validated: Validated,
    reopen: impl FnOnce() -> std::io::Result<R>,
    options: &ImportOptions,
    report: &mut ImportReport,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), ImportError> {
    if let Some(buffered) = &validated.buffer {
        ledger.store().reserve(buffered.len);
    }
    let mut appender =
        Appender { ledger, source_name, options, in_flight: VecDeque::new(), batch: Vec::new(), lines: Vec::new() };
    let mut done = 0u64;
    // What pass 1 validated, and so what pass 2 must hand the store, event for event.
    let validated_events = validated.admitted;
    let mut on_outcome = |report: &mut ImportReport, out: AppendOutcome| {
        report.appended += out.appended.len() as u64;
        report.duplicates += out.duplicates.len() as u64;
        done += (out.appended.len() + out.duplicates.len()) as u64;
        progress(Progress::Appending { events: done });
    };
    match validated.buffer {
        Some(buffered) => {
            for chunk in buffered.chunks {
                for (line, e) in chunk.lines.into_iter().zip(chunk.events) {
                    appender.push(line, e, report, &mut on_outcome)?;
                }
            }
        }
        None => {
            let io_err = |source| ImportError::Io { source_name: source_name.to_owned(), source };
            let reader = reopen().map_err(io_err)?;
            let (last_line, rejected) = (validated.last_line, &validated.rejected);
            let mut places = Places::default();
            // The file is read and parsed again on a thread of the importer's own (a mapping
            // needs its stack, `threads.rs`), in batches, while this one appends.
            std::thread::scope(|scope| -> Result<(), ImportError> {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(u64, ParsedLine)>>(REREAD_IN_FLIGHT);
                let reading = crate::threads::sized("rapport-import-reread")
                    .spawn_scoped(scope, move || {
                        let mut batch = Vec::with_capacity(REREAD_BATCH);
                        for_each_event(source_name, reader, options, &mut |_| {}, &mut |line, parsed| {
                            batch.push((line, parsed));
                            if batch.len() == REREAD_BATCH {
                                let full = std::mem::replace(&mut batch, Vec::with_capacity(REREAD_BATCH));
                                // A closed channel: the appending side stopped, with its error.
                                tx.send(full).map_err(|_| io_err(std::io::ErrorKind::Interrupted.into()))?;
                            }
                            Ok(())
                        })?;
                        let _ = tx.send(batch);
                        Ok(())
                    })
                    .map_err(io_err)?;
                for (line, parsed) in rx.into_iter().flatten() {
                    let place = places.next(line);
                    match parsed {
                        Ok(e) if line <= last_line && !rejected.contains(&(line, place)) => {
                            appender.push(line, e, report, &mut on_outcome)?;
                        }
                        _ => {}
                    }
                }
                reading.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })?;
        }
    }
    appender.finish(report, &mut on_outcome)?;
    debug_assert_eq!(done, validated_events, "pass 2 appends what pass 1 validated, event for event");
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
            let out = match pollster::block_on(future) {
                Ok(out) => out,
                Err(source) => {
                    // The batches after it were handed to the store already: wait for them,
                    // so the error counts exactly what this import left in the store.
                    for (later, _) in std::mem::take(&mut self.in_flight) {
                        if let Ok(out) = pollster::block_on(later) {
                            on_outcome(report, out);
                        }
                    }
                    return Err(ImportError::Append {
                        source_name: self.source_name.to_owned(),
                        line: refused_line(&source, &lines),
                        source: Box::new(source),
                        appended: report.appended,
                    });
                }
            };
            debug_assert_eq!(
                out.appended.len() + out.duplicates.len(),
                lines.len(),
                "the store answers for every event of a batch"
            );
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

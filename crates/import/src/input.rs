//! Reading the input: JSON Lines split into chunks of lines and parsed (on the reading
//! thread and the validating one), CSV records through [`csv`](mod@crate::csv). Each line yields
//! its event, or why it was refused with the text it held.

use std::io::{self, BufRead, BufReader, Read};

use rapport_core::upcast::Upcasters;
use rapport_core::{LINE_BYTES_MAX, NewEvent};

use crate::csv;
use crate::{Format, ImportError, ImportOptions, Progress};

/// Lines per message from the parsing thread.
pub(crate) const PARSE_CHUNK: usize = 1_024;
/// Messages the parsing thread may run ahead by.
pub(crate) const PARSED_IN_FLIGHT: usize = 8;

/// Why a line was refused before it became an event, with what it held.
pub(crate) struct Unreadable {
    /// `field: reason`.
    pub(crate) reason: String,
    /// The line's bytes (at most [`LINE_BYTES_MAX`] of them), so a rejects file keeps them.
    pub(crate) text: Vec<u8>,
    /// Whether the line was longer than what `text` keeps.
    pub(crate) truncated: bool,
}

impl Unreadable {
    pub(crate) fn new(reason: String, text: &[u8], truncated: bool) -> Self {
        Self { reason, text: text.to_vec(), truncated }
    }
}

/// A line parsed: its event, or why it was refused.
pub(crate) type ParsedLine = Result<NewEvent, Unreadable>;

/// What the reading thread hands over.
pub(crate) enum Chunk {
    Parsed(Parsed),
    Unparsed(Unparsed),
}

/// A run of parsed lines, with the input bytes read up to its end.
#[derive(Default)]
pub(crate) struct Parsed {
    pub(crate) lines: Vec<(u64, ParsedLine)>,
    pub(crate) bytes: u64,
}

/// Reads `reader` on the calling thread (the importer's second one) and hands chunks to
/// `send`: JSON Lines split here, two chunks in three parsed here too and the third left to the
/// validating thread, so both cores parse and finish together (validating costs about half as
/// much as parsing; a mapped import's third goes on to a helper thread of the importer's, the
/// validating thread being the caller's); CSV parsed here whole. Returns when the input ends
/// or `send` refuses.
pub(crate) fn read_chunks<R: Read>(
    source_name: &str,
    reader: R,
    options: &ImportOptions,
    send: &mut dyn FnMut(Chunk) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    match options.format {
        Format::Jsonl => {
            let mut interner = rapport_core::Interner::default();
            let records = Records::new(options)?;
            let mut k = 0u64;
            // Pass 1: an atomic import fails at an over-long line, so it stops reading there.
            let stop_at_long_line = !options.skip_invalid;
            split_jsonl(source_name, reader, stop_at_long_line, &mut |_| {}, &mut |chunk| {
                k += 1;
                let bytes = chunk.bytes;
                let msg = if k.is_multiple_of(3) {
                    Chunk::Unparsed(chunk)
                } else {
                    Chunk::Parsed(Parsed { lines: parse_lines(chunk, &mut interner, &records), bytes })
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
                options,
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
                        send(Chunk::Parsed(std::mem::replace(&mut chunk, next)))?;
                    }
                    Ok(())
                },
            );
            chunk.bytes = bytes.get();
            result.and_then(|()| send(Chunk::Parsed(chunk)))
        }
    }
}

/// Calls `f(line, parsed)` for every event-bearing line: `parsed` is the event or why the
/// line was refused (with its text).
pub(crate) fn for_each_event<R: Read>(
    source_name: &str,
    reader: R,
    options: &ImportOptions,
    progress: &mut dyn FnMut(Progress),
    f: &mut dyn FnMut(u64, ParsedLine) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let mut interner = rapport_core::Interner::default();
    let records = Records::new(options)?;
    match options.format {
        Format::Jsonl => {
            let progress = &mut |b| progress(Progress::Validating { bytes: b });
            split_jsonl(source_name, reader, false, progress, &mut |chunk| {
                for (line, parsed) in parse_lines(chunk, &mut interner, &records) {
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
            // A mapping reads any header (each name once); the canonical form only its own
            // columns (none for a mapping).
            let columns = match records.kind {
                RecordKind::Canonical => csv::columns(&names).map_err(invalid_header)?,
                #[cfg(feature = "mapping")]
                RecordKind::Mapped(_) => {
                    if let Some((i, name)) = names.iter().enumerate().find(|(i, n)| names[..*i].contains(n)) {
                        return Err(invalid_header(format!("{name:?}: the column appears twice (column {})", i + 1)));
                    }
                    Vec::new()
                }
            };
            let mut n = 0u64;
            while let Some(record) = r.next_record().map_err(io_err)? {
                n += 1;
                if n.is_multiple_of(4096) {
                    progress(Progress::Validating { bytes: r.bytes() });
                }
                let truncated = record.text.len() >= LINE_BYTES_MAX;
                let unreadable = |reason| Unreadable::new(reason, &record.text, truncated);
                match &records.kind {
                    RecordKind::Canonical => {
                        let parsed = record
                            .fields
                            .and_then(|row| csv::event(&columns, &row, &mut interner, &records.upcasters))
                            .map_err(unreadable);
                        f(record.line, parsed)?;
                    }
                    #[cfg(feature = "mapping")]
                    RecordKind::Mapped(m) => match &record.fields {
                        Ok(row) => {
                            let mut outputs = Vec::new();
                            let mapped = crate::mapping::Record::Csv(&names, row);
                            m.run(mapped, &mut interner, &records.upcasters, &mut |r| outputs.push(r));
                            for parsed in outputs {
                                f(record.line, parsed.map_err(unreadable))?;
                            }
                        }
                        Err(reason) => f(record.line, Err(unreadable(reason.clone())))?,
                    },
                }
            }
            progress(Progress::Validating { bytes: r.bytes() });
        }
    }
    Ok(())
}

/// Lines read but not yet parsed: their bytes one after another, with line numbers.
#[derive(Default)]
pub(crate) struct Unparsed {
    pub(crate) data: Vec<u8>,
    /// Line number, byte range in `data`, and whether the line was longer than the limit (the
    /// range then holds its first [`LINE_BYTES_MAX`] bytes).
    pub(crate) lines: Vec<(u64, std::ops::Range<usize>, bool)>,
    /// Input bytes read up to the end of this chunk.
    pub(crate) bytes: u64,
}

/// Reads JSON Lines in chunks of [`PARSE_CHUNK`] lines, without parsing them; `progress` gets
/// the bytes read so far every 4,096 lines. With `stop_at_long_line`, a line longer than
/// [`LINE_BYTES_MAX`] ends the reading: its first bytes are emitted (every parser refuses such
/// a line, and an atomic import fails at it), and the rest of the input is never read, so a
/// file of gigabytes without a line break, or an endless stream, is refused at once.
pub(crate) fn split_jsonl<R: Read>(
    source_name: &str,
    reader: R,
    stop_at_long_line: bool,
    progress: &mut dyn FnMut(u64),
    emit: &mut dyn FnMut(Unparsed) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let io_err = |source| ImportError::Io { source_name: source_name.to_owned(), source };
    let mut r = BufReader::with_capacity(1 << 20, reader);
    let mut chunk = Unparsed::default();
    let mut line = 0u64;
    let mut bytes = crate::bom::skip_bom(&mut r).map_err(io_err)?;
    loop {
        line += 1;
        let start = chunk.data.len();
        let (n, too_long) =
            read_line_limited(&mut r, &mut chunk.data, LINE_BYTES_MAX, stop_at_long_line).map_err(io_err)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        if line.is_multiple_of(4096) {
            progress(bytes);
        }
        chunk.lines.push((line, start..chunk.data.len(), too_long));
        if too_long && stop_at_long_line {
            break;
        }
        if chunk.lines.len() >= PARSE_CHUNK {
            chunk.bytes = bytes;
            // The next chunk starts with room for as many bytes as this one held, so it does
            // not grow by doubling, which copies everything read so far (docs/decisions.md).
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

/// What turns an input record into events on one thread: the canonical parser, or a mapping
/// compiled for this thread.
pub(crate) struct Records {
    kind: RecordKind,
    /// What reads an older shape: the options' upcasters.
    upcasters: std::sync::Arc<Upcasters>,
}

enum RecordKind {
    Canonical,
    #[cfg(feature = "mapping")]
    Mapped(crate::mapping::Compiled),
}

impl Records {
    pub(crate) fn new(options: &ImportOptions) -> Result<Self, ImportError> {
        let upcasters = options.upcasters.clone();
        #[cfg(feature = "mapping")]
        if let Some(m) = &options.mapping {
            let mut compiled = m.compile()?;
            if !options.stamp_source {
                compiled.stamp = rapport_core::Metadata::new();
            }
            return Ok(Self { kind: RecordKind::Mapped(compiled), upcasters });
        }
        Ok(Self { kind: RecordKind::Canonical, upcasters })
    }
}

/// Parses a chunk of lines: each event-bearing line with its event or the `field: reason` it
/// was refused for (a mapped line with each of its events, in order). Blank lines are skipped.
pub(crate) fn parse_lines(
    chunk: Unparsed,
    interner: &mut rapport_core::Interner,
    records: &Records,
) -> Vec<(u64, ParsedLine)> {
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
        if text.is_empty() {
            continue;
        }
        match &records.kind {
            RecordKind::Canonical => {
                let parsed = NewEvent::from_json_line_in_with(text, interner, &records.upcasters);
                out.push((line, parsed.map_err(|e| Unreadable::new(e.to_string(), bytes, false))));
            }
            #[cfg(feature = "mapping")]
            RecordKind::Mapped(m) => {
                m.run(crate::mapping::Record::Json(text), interner, &records.upcasters, &mut |parsed| {
                    out.push((line, parsed.map_err(|reason| Unreadable::new(reason, bytes, false))));
                });
            }
        }
    }
    out
}

/// Appends one line (without its newline) to `buf`, at most `max` bytes of it; returns the
/// bytes consumed (0 at the end) and whether the line was longer than `max` (then its first
/// `max` bytes are kept in `buf` and the rest of it is skipped, or, with `stop`, left unread).
fn read_line_limited(r: &mut impl BufRead, buf: &mut Vec<u8>, max: usize, stop: bool) -> io::Result<(usize, bool)> {
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
                if stop {
                    consumed += room;
                    r.consume(room);
                    return Ok((consumed, true));
                }
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
    fn long_lines_are_skipped_to_their_end_or_with_stop_left_unread() {
        let data = format!("{}\nshort\n", "x".repeat(100));
        for stop in [false, true] {
            let mut r = BufReader::with_capacity(16, data.as_bytes());
            let mut buf = Vec::new();
            let consumed = if stop { 50 } else { 101 };
            assert_eq!(read_line_limited(&mut r, &mut buf, 50, stop).unwrap(), (consumed, true));
            assert_eq!(buf.len(), 50, "the first 50 bytes are kept");
            let mut rest = String::new();
            r.read_to_string(&mut rest).unwrap();
            let left = if stop { format!("{}\nshort\n", "x".repeat(50)) } else { "short\n".to_owned() };
            assert_eq!(rest, left, "stop: {stop}");
        }
        let mut r = BufReader::with_capacity(16, "short\n".as_bytes());
        let mut buf = Vec::new();
        assert_eq!(read_line_limited(&mut r, &mut buf, 50, false).unwrap(), (6, false));
        assert_eq!(buf, b"short");
        buf.clear();
        assert_eq!(read_line_limited(&mut r, &mut buf, 50, false).unwrap(), (0, false));
    }

    #[test]
    fn the_limit_applies_to_each_appended_line() {
        let line = "y".repeat(40);
        let data = format!("{line}\n{line}\n{}\n{line}\n", "z".repeat(60));
        let mut r = BufReader::with_capacity(16, data.as_bytes());
        let mut buf = Vec::new();
        assert_eq!(read_line_limited(&mut r, &mut buf, 50, false).unwrap(), (41, false));
        assert_eq!(read_line_limited(&mut r, &mut buf, 50, false).unwrap(), (41, false));
        assert_eq!(buf.len(), 80, "both lines kept although together over the limit");
        assert_eq!(read_line_limited(&mut r, &mut buf, 50, false).unwrap(), (61, true));
        assert_eq!(buf.len(), 130, "the long line's first 50 bytes kept after the earlier ones");
        assert_eq!(read_line_limited(&mut r, &mut buf, 50, false).unwrap(), (41, false));
        assert_eq!(buf.len(), 170);
    }
}

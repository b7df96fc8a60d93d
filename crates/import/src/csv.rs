//! CSV input, read strictly (RFC 4180) and turned into the canonical JSON form, so a row is
//! refused for everything a JSON line is refused for, and for nothing else.
//!
//! - A header row names the columns: each a field of [`SUBMITTED_FIELDS`], each once.
//! - Fields are separated by commas and records end with `\n` or `\r\n`. A field may be
//!   quoted (`"…"`, with `""` for a quote inside), and only a quoted field may hold a comma, a
//!   quote or a line break. A quote anywhere else, text after a closing quote, a lone `\r` and
//!   a quoted field still open at the end of the input are refused.
//! - Every row has as many fields as the header. An empty cell is an absent field; an empty
//!   line is skipped. A UTF-8 byte-order mark before the header is allowed.
//! - A number column holds a JSON number as JSON writes it (no `+`, no leading zeros, no
//!   `NaN` or `inf`), `accepted` holds `true` or `false`; then the row's JSON object is parsed
//!   exactly as a JSON line is.
//! - A record longer than [`LINE_BYTES_MAX`] is refused, as a JSON line is.

use std::io::{self, BufRead};

use rapport_core::json::{FieldType, SUBMITTED_FIELDS};
use rapport_core::upcast::Upcasters;
use rapport_core::{Interner, LINE_BYTES_MAX, NewEvent};

/// One record read: its first line, its fields (or why it was refused) and its text.
pub(crate) struct Record {
    /// The line it starts on (1-based).
    pub(crate) line: u64,
    /// The fields, or why the record is malformed.
    pub(crate) fields: Result<Vec<String>, String>,
    /// The record as it was read, without its line ending (at most [`LINE_BYTES_MAX`] bytes).
    pub(crate) text: Vec<u8>,
}

/// A strict CSV record reader.
pub(crate) struct Reader<R> {
    r: R,
    /// The line the next record starts on.
    line: u64,
    /// Input bytes consumed.
    bytes: u64,
    at_start: bool,
}

/// Where the scanner is inside a record.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: the closing quote, or the first of `""`.
    QuoteInQuoted,
    /// A `\r` outside quotes: only `\n` may follow.
    CarriageReturn,
    /// The record is refused; skip to the end of its line.
    Skipping,
}

impl<R: BufRead> Reader<R> {
    pub(crate) fn new(r: R) -> Self {
        Self { r, line: 1, bytes: 0, at_start: true }
    }

    /// Input bytes consumed so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    fn next_byte(&mut self) -> io::Result<Option<u8>> {
        let buf = self.r.fill_buf()?;
        let Some(&b) = buf.first() else { return Ok(None) };
        self.r.consume(1);
        self.bytes += 1;
        Ok(Some(b))
    }

    /// The next record; `None` at the end of the input. Empty lines are skipped.
    ///
    /// # Errors
    /// Reading failed.
    pub(crate) fn next_record(&mut self) -> io::Result<Option<Record>> {
        if self.at_start {
            self.at_start = false;
            self.bytes += crate::bom::skip_bom(&mut self.r)?;
        }
        loop {
            let first_line = self.line;
            let mut record = Scanner::new(first_line);
            let ended_by_eof = loop {
                let Some(b) = self.next_byte()? else { break true };
                if b == b'\n' {
                    self.line += 1;
                }
                if record.push(b, self.line) {
                    break false;
                }
            };
            match record.finish(ended_by_eof) {
                Scanned::End => return Ok(None),
                Scanned::EmptyLine => continue,
                Scanned::Record { fields, text } => return Ok(Some(Record { line: first_line, fields, text })),
            }
        }
    }
}

/// What scanning one record came to.
enum Scanned {
    /// The input ended before any byte of a record.
    End,
    /// An empty line, which holds no record.
    EmptyLine,
    /// A record: its fields, or why it is refused, and its text without the line ending.
    Record { fields: Result<Vec<String>, String>, text: Vec<u8> },
}

/// One record being scanned, byte by byte.
struct Scanner {
    text: Vec<u8>,
    field: Vec<u8>,
    fields: Vec<Vec<u8>>,
    state: State,
    error: Option<String>,
    len: usize,
    /// The line of the last opening quote, for a field never closed.
    quote_line: u64,
}

impl Scanner {
    fn new(line: u64) -> Self {
        Self {
            text: Vec::new(),
            field: Vec::new(),
            fields: Vec::new(),
            state: State::FieldStart,
            error: None,
            len: 0,
            quote_line: line,
        }
    }

    /// Takes byte `b` (read on `line`); `true` when it ended the record.
    fn push(&mut self, b: u8, line: u64) -> bool {
        self.len += 1;
        if self.state != State::Skipping && self.len > LINE_BYTES_MAX {
            self.error = Some(format!("record is longer than the {LINE_BYTES_MAX} bytes allowed"));
            self.state = State::Skipping;
        }
        if self.text.len() < LINE_BYTES_MAX {
            self.text.push(b);
        }
        let error = &mut self.error;
        let mut refuse = |why: String| {
            error.get_or_insert(why);
            State::Skipping
        };
        self.state = match (self.state, b) {
            (State::Skipping, b'\n') => return true,
            (State::Skipping, _) => State::Skipping,
            (State::Quoted, b'"') => State::QuoteInQuoted,
            (State::Quoted, _) => {
                self.field.push(b);
                State::Quoted
            }
            (State::QuoteInQuoted, b'"') => {
                self.field.push(b'"');
                State::Quoted
            }
            (State::CarriageReturn, b'\n') => {
                self.fields.push(std::mem::take(&mut self.field));
                return true;
            }
            (State::CarriageReturn, _) => refuse("a carriage return not followed by a line feed".into()),
            (State::FieldStart | State::Unquoted | State::QuoteInQuoted, b',') => {
                self.fields.push(std::mem::take(&mut self.field));
                State::FieldStart
            }
            (State::FieldStart | State::Unquoted | State::QuoteInQuoted, b'\n') => {
                self.fields.push(std::mem::take(&mut self.field));
                return true;
            }
            (State::FieldStart | State::Unquoted | State::QuoteInQuoted, b'\r') => State::CarriageReturn,
            (State::FieldStart, b'"') => {
                self.quote_line = line;
                State::Quoted
            }
            (State::QuoteInQuoted, other) => refuse(format!(
                "field {}: {} after a closing quote",
                self.fields.len() + 1,
                rapport_core::escape::one_line(&String::from_utf8_lossy(&[other]))
            )),
            (State::Unquoted, b'"') => refuse(format!(
                "field {}: a quote inside an unquoted field (quote the whole field, and double the quotes in it)",
                self.fields.len() + 1
            )),
            (State::FieldStart | State::Unquoted, _) => {
                self.field.push(b);
                State::Unquoted
            }
        };
        false
    }

    /// The record, once its line ended or the input did (`ended_by_eof`).
    fn finish(mut self, ended_by_eof: bool) -> Scanned {
        while self.text.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            self.text.pop();
        }
        if ended_by_eof {
            match self.state {
                State::Quoted => {
                    let opened = self.quote_line;
                    self.error.get_or_insert(format!("a quoted field opened on line {opened} is never closed"));
                }
                State::CarriageReturn => {
                    self.error.get_or_insert("a carriage return not followed by a line feed".into());
                }
                State::FieldStart if self.fields.is_empty() && self.len == 0 => return Scanned::End,
                State::Skipping => {}
                _ => self.fields.push(self.field),
            }
        }
        if self.error.is_none() && self.fields.len() == 1 && self.fields[0].is_empty() && self.text.is_empty() {
            return if ended_by_eof { Scanned::End } else { Scanned::EmptyLine };
        }
        let fields = match self.error {
            Some(e) => Err(e),
            None => self
                .fields
                .into_iter()
                .enumerate()
                .map(|(i, f)| String::from_utf8(f).map_err(|e| format!("field {}: not UTF-8: {e}", i + 1)))
                .collect(),
        };
        Scanned::Record { fields, text: self.text }
    }
}

/// A CSV column: a field of the canonical form, or one tag (`tags.NAME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Column {
    /// A field of [`SUBMITTED_FIELDS`] with its JSON type (never `tags`).
    Field(&'static str, FieldType),
    /// The tag of this name.
    Tag(String),
}

/// The prefix of a tag's column.
const TAG_COLUMN: &str = "tags.";

/// The columns of a header row, checked: each a known field or a tag column, each once.
///
/// # Errors
/// `column: reason` for the first bad column.
pub(crate) fn columns(header: &[String]) -> Result<Vec<Column>, String> {
    let mut out: Vec<Column> = Vec::with_capacity(header.len());
    for h in header {
        let column = match h.strip_prefix(TAG_COLUMN) {
            Some(tag) if !tag.is_empty() => Column::Tag(tag.to_owned()),
            _ => match SUBMITTED_FIELDS.iter().find(|(n, ty)| *n == h.as_str() && *ty != FieldType::Object) {
                Some(&(name, ty)) => Column::Field(name, ty),
                None => {
                    let known: Vec<&str> = SUBMITTED_FIELDS
                        .iter()
                        .filter(|(_, ty)| *ty != FieldType::Object)
                        .map(|(n, _)| *n)
                        .chain(["tags.NAME"])
                        .collect();
                    return Err(format!("{:?}: unknown column; columns are {}", h, known.join(", ")));
                }
            },
        };
        if out.contains(&column) {
            return Err(format!("{h}: the column appears twice"));
        }
        out.push(column);
    }
    Ok(out)
}

/// Whether `s` is a number as JSON writes it: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// `cell` without the whitespace JSON allows around a value (space, tab, line feed, return).
fn json_trim(cell: &str) -> &str {
    cell.trim_matches([' ', '\t', '\n', '\r'])
}

/// One row as an event: its JSON object, with empty cells left out (its tag columns as the
/// `tags` object), parsed as a JSON line, older shapes through `upcasters`.
///
/// # Errors
/// `field: reason`, as for a JSON line.
pub(crate) fn event(
    columns: &[Column],
    row: &[String],
    interner: &mut Interner,
    upcasters: &Upcasters,
) -> Result<NewEvent, String> {
    if row.len() != columns.len() {
        return Err(format!("the row has {} fields, the header {}", row.len(), columns.len()));
    }
    let mut json = String::with_capacity(row.iter().map(|c| c.len() + 16).sum::<usize>() + 2);
    json.push('{');
    let mut tags = serde_json::Map::new();
    for (column, cell) in columns.iter().zip(row) {
        if cell.is_empty() {
            continue;
        }
        let (name, ty) = match column {
            Column::Field(name, ty) => (*name, *ty),
            Column::Tag(tag) => {
                tags.insert(tag.clone(), serde_json::Value::from(cell.as_str()));
                continue;
            }
        };
        if json.len() > 1 {
            json.push(',');
        }
        json.push('"');
        json.push_str(name);
        json.push_str("\":");
        // Whitespace around a number or a flag is allowed, as JSON allows it around a value.
        let value = json_trim(cell);
        match ty {
            // Serialising a string cannot fail.
            FieldType::Text => json.push_str(&serde_json::to_string(cell).unwrap_or_default()),
            FieldType::Number | FieldType::Integer if is_json_number(value) => json.push_str(value),
            FieldType::Number | FieldType::Integer => {
                return Err(format!("{name}: {:?} is not a number as JSON writes one", cell));
            }
            FieldType::Bool if matches!(value, "true" | "false") => json.push_str(value),
            FieldType::Bool => return Err(format!("{name}: {:?} is not true or false", cell)),
            // `columns` gives the tags object no column of its own.
            FieldType::Object => return Err(format!("{name}: not a column")),
        }
    }
    if !tags.is_empty() {
        if json.len() > 1 {
            json.push(',');
        }
        json.push_str("\"tags\":");
        json.push_str(&serde_json::Value::Object(tags).to_string());
    }
    json.push('}');
    NewEvent::from_json_line_in_with(&json, interner, upcasters).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(input: &str) -> Vec<(u64, Result<Vec<String>, String>)> {
        let mut r = Reader::new(input.as_bytes());
        let mut out = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            out.push((rec.line, rec.fields));
        }
        out
    }

    #[test]
    fn reads_quoted_fields_and_line_endings() {
        let got = records("\u{feff}a,b\r\n\"x,\"\"y\"\"\nz\",2\n\n3,\n");
        assert_eq!(got[0], (1, Ok(vec!["a".into(), "b".into()])));
        assert_eq!(got[1], (2, Ok(vec!["x,\"y\"\nz".into(), "2".into()])));
        assert_eq!(got[2], (5, Ok(vec!["3".into(), String::new()])));
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn refuses_loose_quoting() {
        for (input, why) in [
            ("a,b\"c\n", "quote inside an unquoted"),
            ("\"a\"b,c\n", "after a closing quote"),
            ("a,\"open\n", "never closed"),
            ("a\rb\n", "carriage return"),
        ] {
            let got = records(input);
            assert!(matches!(&got[0].1, Err(e) if e.contains(why)), "{input:?}: {got:?}");
        }
        // A refused record does not swallow the next one.
        let got = records("a\"b,c\nd,e\n");
        assert_eq!(got[1], (2, Ok(vec!["d".into(), "e".into()])));
    }

    #[test]
    fn numbers_are_json_numbers() {
        for ok in ["0", "9", "-1", "1.5", "1e9", "1E-9", "0.25e+3"] {
            assert!(is_json_number(ok), "{ok}");
        }
        for bad in ["", "+9", "009", "NaN", "inf", "-Infinity", ".5", "5.", "1e", "0x10", " 1", "1 "] {
            assert!(!is_json_number(bad), "{bad}");
        }
    }

    #[test]
    fn a_repeated_or_unknown_column_is_refused() {
        let h = |cols: &[&str]| columns(&cols.iter().map(|c| c.to_string()).collect::<Vec<_>>());
        assert!(h(&["type", "account", "weight"]).is_ok());
        assert!(h(&["type", "weight", "weight"]).unwrap_err().contains("twice"));
        assert!(h(&["type", "wieght"]).unwrap_err().contains("unknown column"));
        assert!(h(&["type", "tags"]).unwrap_err().contains("unknown column"), "tags take a column each");
        assert!(h(&["type", "tags.region", "tags.tier"]).is_ok());
        assert!(h(&["type", "tags.region", "tags.region"]).unwrap_err().contains("twice"));
    }
}

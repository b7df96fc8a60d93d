//! Files as the tools that export them write them: a UTF-8 byte-order mark at the start
//! (spreadsheets' "CSV UTF-8", Windows editors), CRLF line ends, blank lines; and the mistake
//! of a JSON array where JSON Lines are expected, named as such.

use rapport_core::Ledger;
use rapport_import::{Format, ImportOptions, Importer};

fn run(text: &[u8], format: Format) -> Result<rapport_import::ImportReport, rapport_import::ImportError> {
    let ledger = Ledger::memory();
    let options = ImportOptions { format, ..ImportOptions::default() };
    Importer::new(&ledger).options(options).reader("export", || Ok(text))
}

const TOUCH: &str = r#"{"type":"touchpoint","account":"acme","occurred_at":"2024-01-01T00:00:00Z","channel":"call"}"#;

#[test]
fn a_byte_order_mark_crlf_and_blank_lines_read_as_plain_lines() {
    let jsonl = format!("\u{feff}{TOUCH}\r\n\r\n{}\r\n", TOUCH.replace("call", "email"));
    assert_eq!(run(jsonl.as_bytes(), Format::Jsonl).unwrap().appended, 2);
    let csv = "\u{feff}type,account,occurred_at,channel\r\ntouchpoint,acme,2024-01-01T00:00:00Z,call\r\n";
    assert_eq!(run(csv.as_bytes(), Format::Csv).unwrap().appended, 1);
    // Lines are still counted from the first: the mark is no line of its own.
    let bad = "\u{feff}type,account,occurred_at,channel\r\ntouchpoint,acme,2024-01-01T00:00:00Z,fax\r\n";
    let err = run(bad.as_bytes(), Format::Csv).unwrap_err().to_string();
    assert!(err.starts_with("export:2: channel:"), "{err}");
    // A mark anywhere else is text, refused where text is not expected.
    let late = format!("{TOUCH}\n\u{feff}{TOUCH}\n");
    assert!(run(late.as_bytes(), Format::Jsonl).unwrap_err().to_string().starts_with("export:2: "));
}

#[test]
fn a_json_array_is_named_as_one() {
    let array = format!("[{TOUCH},\n{TOUCH}]\n");
    let err = run(array.as_bytes(), Format::Jsonl).unwrap_err().to_string();
    assert_eq!(err, "export:1: a JSON array, not an event: JSON Lines hold one event object a line");
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: std::io::Read> std::io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

#[test]
fn an_atomic_import_stops_reading_at_a_line_over_the_limit() {
    // A line, then 32 MiB without a line break (an export written as one line, or a stream
    // that never ends): the import fails at line 2 having read about the limit past it, not
    // the rest. With skip_invalid the line is rejected and reading goes on to the end.
    use std::io::Read;
    use std::sync::{Arc, atomic::AtomicU64, atomic::Ordering};
    const TAIL: u64 = 32 << 20;
    let first = format!("{TOUCH}\n").into_bytes();
    let total = first.len() as u64 + TAIL;
    let import = |options: ImportOptions| {
        let read = Arc::new(AtomicU64::new(0));
        let ledger = Ledger::memory();
        let result = Importer::new(&ledger).options(options).reader("export", || {
            let inner = std::io::Cursor::new(first.clone()).chain(std::io::repeat(b'a').take(TAIL));
            Ok(Counting { inner, read: Arc::clone(&read) })
        });
        (result, read.load(Ordering::Relaxed))
    };
    let (result, read) = import(ImportOptions::default());
    let err = result.unwrap_err().to_string();
    assert!(err.starts_with("export:2: line is longer than"), "{err}");
    assert!(read < 4 << 20, "read {read} of {total} bytes");
    let (result, read) = import(ImportOptions { skip_invalid: true, ..ImportOptions::default() });
    let report = result.unwrap();
    assert_eq!((report.appended, report.rejected, read), (1, 1, total));
}

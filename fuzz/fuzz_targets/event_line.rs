//! Fuzzes the JSON line parser: any input must parse or give an error, never panic, and what
//! parses must round-trip through the canonical form; the parser's fast path must read
//! exactly what serde_json reads.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else { return };
    assert!(rapport_core::testing::compact_scan_agrees(line), "fast path disagrees on {line:?}");
    if let Ok(e) = rapport_core::NewEvent::from_json_line(line) {
        let again = rapport_core::NewEvent::from_json_line(&e.to_json_line()).expect("canonical form parses");
        assert_eq!(again, e);
    }
    let _ = rapport_core::Envelope::from_json_line(line);
});

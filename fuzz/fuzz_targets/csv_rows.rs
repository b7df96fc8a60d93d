//! Fuzzes the CSV reader: any input must parse row by row or give errors, never panic or
//! hang; every row it accepts is an event whose canonical JSON line parses back to the same
//! event (a CSV row means what the JSON line means).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rapport_import::parse_each("fuzz.csv", data, rapport_import::Format::Csv, &mut |_, parsed| {
        if let Ok(e) = parsed {
            let again = rapport_core::NewEvent::from_json_line(&e.to_json_line()).expect("canonical form parses");
            assert_eq!(again, e);
        }
    });
});

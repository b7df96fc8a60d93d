//! Fuzzes the compiled mapping path against jaq: the first byte picks a program (a shipped
//! mapping or one of `rapport_import::testing::PROGRAMS`), the rest is the record. As a JSON
//! record, and as a CSV row (its first line the header, its second the row, cells split at
//! commas), the importer's events (or refusals) must be exactly jaq's alone, and wherever the
//! compiled path answers, its values must be jaq's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rapport_import::testing::{PROGRAMS, PathCheck};

const SHIPPED: [&str; 3] = [
    include_str!("../../examples/mappings/helpdesk.jq"),
    include_str!("../../examples/mappings/crm.jq"),
    include_str!("../../examples/mappings/surveys.jq"),
];

thread_local! {
    static CHECKS: Vec<PathCheck> =
        SHIPPED.iter().chain(PROGRAMS).map(|p| PathCheck::new(p).expect("the program compiles")).collect();
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    CHECKS.with(|checks| {
        let check = &checks[usize::from(pick) % checks.len()];
        if let Err(why) = check.json(text) {
            panic!("JSON record: {why}");
        }
        let mut lines = text.lines();
        let cells = |line: Option<&str>| -> Vec<String> { line.unwrap_or("").split(',').map(String::from).collect() };
        let (header, row) = (cells(lines.next()), cells(lines.next()));
        if let Err(why) = check.csv(&header, &row) {
            panic!("CSV row: {why}");
        }
    });
});

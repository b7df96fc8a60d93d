//! Ids repeated within one import, the earlier event in an earlier chunk than the repeat: each
//! repeat is judged against the very event that took its id (a duplicate when the content is
//! the same), while the import's buffer holds that event and after the buffer is gone.

use rapport_core::{Ledger, MemoryStore};
use rapport_import::{ImportOptions, Importer};

fn run(ledger: &Ledger<MemoryStore>, text: &str, options: ImportOptions) -> rapport_import::ImportReport {
    Importer::new(ledger).options(options).reader("repeats.jsonl", || Ok(text.as_bytes())).unwrap()
}

/// A touchpoint of account `a` at `t` (seconds), with the id its content gives.
fn touchpoint(a: &str, t: i64) -> String {
    let at = rapport_core::Timestamp::from_unix_seconds(t);
    format!("{{\"type\":\"touchpoint\",\"account\":\"{a}\",\"occurred_at\":\"{at}\",\"channel\":\"call\"}}\n")
}

/// With `sort_by_time` the chunks hold events in time order, not line order: the repeat of
/// line 1 (line 1,025) is checked in the chunk after the one holding line 1, whose other
/// events come from later lines but earlier instants.
#[test]
fn a_line_repeated_across_chunks_of_a_sorted_import_is_a_duplicate() {
    let mut input = touchpoint("acme", 1_700_000_000);
    for n in 0..1_023 {
        input.push_str(&touchpoint(&format!("a{n}"), 1_600_000_000 + n));
    }
    input.push_str(&touchpoint("acme", 1_700_000_000));
    let report = run(&Ledger::memory(), &input, ImportOptions { sort_by_time: true, ..ImportOptions::default() });
    assert_eq!((report.events, report.appended, report.duplicates), (1_025, 1_024, 1));
}

/// An export that holds a record twice (exports often do), a mapping making three events of
/// it: each of the second's events is a duplicate of the event of the same place in the
/// first, not of another event of that line.
#[cfg(feature = "mapping")]
#[test]
fn a_record_exported_twice_gives_duplicates_of_each_of_its_events() {
    const TICKETS: &str = r#"
        .account as $a | "t-\(.id)" as $k | (.created | from_epoch_s) as $t
        | {type: "escalation_raised", account: $a, occurred_at: $t, escalation: $k, severity: "high"},
          (.reply // empty | {type: "escalation_acknowledged", account: $a, occurred_at: from_epoch_s, escalation: $k}),
          (.solved // empty | {type: "escalation_resolved", account: $a, occurred_at: from_epoch_s, escalation: $k})
    "#;
    let record = |id: u32, reply: &str, solved: &str| {
        format!("{{\"id\":{id},\"account\":\"acme\",\"created\":1709280000,\"reply\":{reply},\"solved\":{solved}}}\n")
    };
    let first = record(1, "1709281800", "1709290000");
    // Other tickets between the two, so the second is checked in a later chunk than the first.
    let others: String = (10..3_010).map(|n| record(n, "null", "null")).collect();
    let input = format!("{first}{others}{first}");
    let mapped = |buffer_events_max| ImportOptions {
        mapping: Some(rapport_import::Mapping::new("tickets.jq", TICKETS).unwrap()),
        buffer_events_max,
        ..ImportOptions::default()
    };
    let report = run(&Ledger::memory(), &input, mapped(ImportOptions::default().buffer_events_max));
    assert_eq!((report.events, report.appended, report.duplicates), (3_006, 3_003, 3));
    // The same with a buffer too small for the input: what it held is hashed when it goes.
    let report = run(&Ledger::memory(), &input, mapped(2_000));
    assert_eq!((report.events, report.appended, report.duplicates), (3_006, 3_003, 3));
}

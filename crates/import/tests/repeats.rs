//! Ids repeated within one import, the earlier event in an earlier chunk than the repeat: each
//! repeat is judged against the very event that took its id (a duplicate when the content is
//! the same), while the import's buffer holds that event and after the buffer is gone.

use rapport_core::Ledger;
use rapport_import::{ImportOptions, Importer};

fn run<S: rapport_core::BackfillStore>(
    ledger: &Ledger<S>,
    text: &str,
    options: ImportOptions,
) -> rapport_import::ImportReport {
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

mod properties {
    use proptest::prelude::*;
    use rapport_core::testing::synth::{SynthConfig, generate};
    use rapport_core::{Ledger, NewEvent, Position};
    use rapport_import::ImportOptions;
    use rapport_store_file::FileStore;

    /// A directory of its own under the system's temporary one, removed when dropped.
    struct TempDir(std::path::PathBuf);

    impl TempDir {
        fn new() -> Self {
            static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Self(std::env::temp_dir().join(format!("rapport-repeats-{}-{n}", std::process::id())))
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Enough events for several chunks of pass 1 (1,024 events each).
    fn base() -> Vec<NewEvent> {
        let events: Vec<NewEvent> =
            generate(SynthConfig { accounts: 40, months: 10, seed: 3, ..Default::default() }).collect();
        assert!(events.len() > 2_048, "{} events", events.len());
        events
    }

    /// `records` (each a run of consecutive events of `base`), with copies of some inserted
    /// later in the input: record `k` again after record `at`, for each `(k, at)`, `at >= k`;
    /// and after record `at`, for each `(bad, at)` in `refused`, a line that does not parse
    /// (`bad` even) or an event no stream admits (odd).
    fn input(
        records: &[Vec<NewEvent>],
        copies: &[(usize, usize)],
        refused: &[(usize, usize)],
        line: impl Fn(&[NewEvent]) -> String,
    ) -> String {
        let mut out = String::new();
        for (at, record) in records.iter().enumerate() {
            out.push_str(&line(record));
            for &(k, _) in copies.iter().filter(|&&(_, after)| after == at) {
                out.push_str(&line(&records[k]));
            }
            for &(bad, _) in refused.iter().filter(|&&(_, after)| after == at) {
                if bad % 2 == 0 {
                    out.push_str("not json\n");
                } else {
                    // A delivery of a commitment never made, in an account of its own.
                    let e = format!(
                        "{{\"type\":\"commitment_delivered\",\"account\":\"zz-{bad}\",\"occurred_at\":\"2020-02-01T00:00:00Z\",\"commitment\":\"none\",\"accepted\":true}}"
                    );
                    out.push_str(&line(&[NewEvent::from_json_line(&e).unwrap()]));
                }
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: rapport_core::testing::cases(24), ..ProptestConfig::default() })]

        /// However the input repeats its records (mapped, several events to a record, or one
        /// canonical line each), sorted by time or not, with the buffer holding the whole
        /// input or overflowing, with refused lines among them (checked one by one), into a
        /// memory store or a file store that already holds some of the events: every repeat
        /// is a duplicate, every bad line is refused, and the log holds each event once.
        #[test]
        fn prop_repeated_records_are_duplicates_however_the_import_runs(
            sizes in proptest::collection::vec(1usize..=3, 1_200),
            picks in proptest::collection::vec((any::<proptest::sample::Index>(), any::<proptest::sample::Index>()), 0..40),
            bad in proptest::collection::vec(any::<proptest::sample::Index>(), 0..6),
            mapped in any::<bool>(),
            sorted in any::<bool>(),
            small_buffer in any::<bool>(),
            logged_before in 0usize..1_500,
            file_store in any::<bool>(),
        ) {
            let base = base();
            let mut records: Vec<Vec<NewEvent>> = Vec::new();
            let mut rest = &base[..];
            for &n in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                // Unmapped, a line holds one event.
                let n = if mapped { n.min(rest.len()) } else { 1 };
                records.push(rest[..n].to_vec());
                rest = &rest[n..];
            }
            let copies: Vec<(usize, usize)> = picks
                .iter()
                .map(|(k, at)| {
                    let k = k.index(records.len());
                    (k, k + at.index(records.len() - k))
                })
                .collect();
            let refused: Vec<(usize, usize)> =
                bad.iter().enumerate().map(|(n, at)| (n, at.index(records.len()))).collect();
            let text = if mapped {
                let record = |r: &[NewEvent]| {
                    let lines: Vec<String> = r.iter().map(NewEvent::to_json_line).collect();
                    format!("[{}]\n", lines.join(","))
                };
                input(&records, &copies, &refused, record)
            } else {
                input(&records, &copies, &refused, |r| r[0].to_json_line() + "\n")
            };
            let options = ImportOptions {
                mapping: mapped.then(|| rapport_import::Mapping::new("split.jq", ".[]").unwrap()),
                sort_by_time: sorted,
                skip_invalid: true,
                // Sorting holds the whole input; else a small buffer overflows early on.
                buffer_events_max: if small_buffer && !sorted { 1_500 } else { 1_000_000 },
                ..ImportOptions::default()
            };
            // Some of the events in the store already: asked of it chunk by chunk. A file
            // store is closed and opened again in between, so it answers from its id file.
            let before: String = base[..logged_before].iter().map(|e| e.to_json_line() + "\n").collect();
            let (report, logged) = if file_store {
                let dir = TempDir::new();
                super::run(&Ledger::new(FileStore::open(&dir.0).unwrap()), &before, ImportOptions::default());
                let ledger = Ledger::new(FileStore::open(&dir.0).unwrap());
                let report = super::run(&ledger, &text, options);
                (report, ledger.blocking().read_all_page(Position(1), 1_000_000).unwrap())
            } else {
                let ledger = Ledger::memory();
                super::run(&ledger, &before, ImportOptions::default());
                let report = super::run(&ledger, &text, options);
                (report, ledger.blocking().read_all_page(Position(1), 1_000_000).unwrap())
            };
            let repeated: usize = copies.iter().map(|&(k, _)| records[k].len()).sum();
            // Odd `bad`s are events (refused by validation), even ones lines that do not parse.
            let invalid = bad.len() / 2;
            prop_assert_eq!(
                (report.events, report.appended, report.duplicates, report.rejected),
                (
                    (base.len() + repeated + invalid) as u64,
                    (base.len() - logged_before) as u64,
                    (repeated + logged_before) as u64,
                    bad.len() as u64
                )
            );
            let mut logged: Vec<NewEvent> = logged.iter().map(|e| e.to_new_event()).collect();
            let mut expected = base.clone();
            logged.sort_by_key(|e| e.id);
            expected.sort_by_key(|e| e.id);
            prop_assert!(logged.iter().zip(&expected).all(|(a, b)| a.same_content(b)) && logged.len() == expected.len());
        }
    }
}

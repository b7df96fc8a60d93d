//! rapport-import's integration tests on a MemoryStore: atomicity, idempotency, rejects, the
//! re-read path for inputs larger than the buffer, and resuming a cut-short import.

use rapport_core::testing::synth::{SynthConfig, generate};
use rapport_core::{EventKind, Ledger, Position};
use rapport_import::{Format, ImportError, ImportOptions, Importer};

mod common;
use common::{import_reader, jsonl, log, run};

#[test]
fn the_reread_path_matches_the_buffered_path() {
    let text = jsonl(10, 12);
    let a = Ledger::memory();
    let b = Ledger::memory();
    let small = ImportOptions { buffer_events_max: 7, batch_events: 13, ..ImportOptions::default() };
    let ra = run(&a, &text, &ImportOptions::default()).unwrap();
    let rb = run(&b, &text, &small).unwrap();
    assert_eq!((ra.appended, ra.duplicates), (rb.appended, rb.duplicates));
    let (la, lb) = (log(&a), log(&b));
    assert_eq!(la.len(), lb.len());
    assert!(la.iter().zip(&lb).all(|(x, y)| x.same_content(&y.to_new_event())));
}

#[test]
fn an_invalid_line_deep_in_a_chunk_is_named_and_nothing_is_appended() {
    let mut text = jsonl(4, 6);
    let n = text.lines().count();
    text.push_str("{\"type\":\"escalation_resolved\",\"account\":\"acct-1\",\"occurred_at\":\"2024-03-01T00:00:00Z\",\"escalation\":\"never\"}\n");
    text.push_str(&jsonl(1, 1).replace("acct-0", "late"));
    let ledger = Ledger::memory();
    match run(&ledger, &text, &ImportOptions::default()) {
        Err(ImportError::Invalid { line, reason, .. }) => {
            assert_eq!(line as usize, n + 1);
            assert!(reason.starts_with("escalation:"), "{reason}");
        }
        other => panic!("expected an invalid line, got {other:?}"),
    }
    assert!(log(&ledger).is_empty());
}

#[test]
fn a_cut_short_import_resumes_to_the_same_log() {
    let text = jsonl(6, 12);
    let lines: Vec<&str> = text.lines().collect();
    let clean = Ledger::memory();
    run(&clean, &text, &ImportOptions::default()).unwrap();
    for cut in [0, 1, lines.len() / 3, lines.len() - 1] {
        let resumed = Ledger::memory();
        let prefix: String = lines[..cut].iter().map(|l| format!("{l}\n")).collect();
        run(&resumed, &prefix, &ImportOptions::default()).unwrap();
        let report = run(&resumed, &text, &ImportOptions::default()).unwrap();
        assert_eq!(report.duplicates as usize, cut);
        let (a, b) = (log(&clean), log(&resumed));
        assert_eq!(a.len(), b.len());
        assert!(a.iter().zip(&b).all(|(x, y)| x.same_content(&y.to_new_event())), "cut at {cut}");
    }
}

#[test]
fn skip_invalid_reports_each_bad_line_in_order() {
    let text = "garbage\n{\"type\":\"touchpoint\",\"account\":\"a\",\"occurred_at\":\"2024-01-01T00:00:00Z\",\"channel\":\"call\"}\n\n{\"type\":\"touchpoint\"}\n";
    let ledger = Ledger::memory();
    let mut rejects = Vec::new();
    let options = ImportOptions { skip_invalid: true, ..ImportOptions::default() };
    let report =
        import_reader(&ledger, "t.jsonl", || Ok(text.as_bytes()), &options, Some(&mut rejects), &mut |_| {}).unwrap();
    assert_eq!((report.appended, report.rejected), (1, 2));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(rejects).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.iter().map(|v| v["line"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 4]);
}

#[test]
fn csv_rows_and_json_lines_are_the_same_events() {
    let csv = "type,account,occurred_at,channel\ntouchpoint,acme,2024-01-01T00:00:00Z,call\n";
    let json = "{\"type\":\"touchpoint\",\"account\":\"acme\",\"occurred_at\":\"2024-01-01T00:00:00Z\",\"channel\":\"call\"}\n";
    let ledger = Ledger::memory();
    let options = ImportOptions { format: Format::Csv, ..ImportOptions::default() };
    assert_eq!(
        import_reader(&ledger, "t.csv", || Ok(csv.as_bytes()), &options, None, &mut |_| {}).unwrap().appended,
        1
    );
    let again = run(&ledger, json, &ImportOptions::default()).unwrap();
    assert_eq!((again.appended, again.duplicates), (0, 1), "the same derived id");
}

#[test]
fn profiles_and_assessments_import_from_csv_as_from_json() {
    let csv = "type,account,occurred_at,segment,arr,currency,parent,lifecycle,renews_at,sentiment,reason,valid_until\n\
               account_profiled,acme,2024-01-01T00:00:00Z,enterprise,120000.5,EUR,acme-group,adoption,2025-01-01T00:00:00Z,,,\n\
               assessment_recorded,acme,2024-02-01T00:00:00Z,,,,,,,4,\"new sponsor, keen\",2024-03-01T00:00:00Z\n";
    let json = concat!(
        r#"{"type":"account_profiled","account":"acme","occurred_at":"2024-01-01T00:00:00Z","segment":"enterprise","arr":120000.5,"currency":"EUR","parent":"acme-group","lifecycle":"adoption","renews_at":"2025-01-01T00:00:00Z"}"#,
        "\n",
        r#"{"type":"assessment_recorded","account":"acme","occurred_at":"2024-02-01T00:00:00Z","sentiment":4,"reason":"new sponsor, keen","valid_until":"2024-03-01T00:00:00Z"}"#,
        "\n"
    );
    let ledger = Ledger::memory();
    let options = ImportOptions { format: Format::Csv, ..ImportOptions::default() };
    let report = import_reader(&ledger, "t.csv", || Ok(csv.as_bytes()), &options, None, &mut |_| {}).unwrap();
    assert_eq!(report.appended, 2);
    let again = run(&ledger, json, &ImportOptions::default()).unwrap();
    assert_eq!((again.appended, again.duplicates), (0, 2), "the same derived ids");
    // A profile's rules hold in CSV too: an account is not its own parent.
    let own = "type,account,occurred_at,parent\naccount_profiled,acme,2024-01-01T00:00:00Z,acme\n";
    let err = import_reader(&Ledger::memory(), "own.csv", || Ok(own.as_bytes()), &options, None, &mut |_| {});
    assert!(
        err.as_ref().is_err_and(|e| e.to_string().contains("own.csv:2") && e.to_string().contains("parent")),
        "{err:?}"
    );
}

#[test]
fn whitespace_around_a_csv_number_or_flag_is_ignored_as_json_ignores_it() {
    let csv = "type,account,occurred_at,commitment,title,due,weight\n\
               commitment_made,acme,2024-01-01T00:00:00Z,c-1,SSO,2024-02-01T00:00:00Z,\" 1.5\t\"\n";
    let delivered =
        "type,account,occurred_at,commitment,accepted\ncommitment_delivered,acme,2024-01-20T00:00:00Z,c-1, false \n";
    let json = "{\"type\":\"commitment_made\",\"account\":\"acme\",\"occurred_at\":\"2024-01-01T00:00:00Z\",\"commitment\":\"c-1\",\"title\":\"SSO\",\"due\":\"2024-02-01T00:00:00Z\",\"weight\":1.5}\n\
                {\"type\":\"commitment_delivered\",\"account\":\"acme\",\"occurred_at\":\"2024-01-20T00:00:00Z\",\"commitment\":\"c-1\",\"accepted\":false}\n";
    let ledger = Ledger::memory();
    let options = ImportOptions { format: Format::Csv, ..ImportOptions::default() };
    let made = csv.lines().take(2).collect::<Vec<_>>().join("\n") + "\n";
    assert_eq!(
        import_reader(&ledger, "t.csv", || Ok(made.as_bytes()), &options, None, &mut |_| {}).unwrap().appended,
        1
    );
    assert_eq!(
        import_reader(&ledger, "d.csv", || Ok(delivered.as_bytes()), &options, None, &mut |_| {}).unwrap().appended,
        1
    );
    // The same events as the JSON lines with the bare values: duplicates, not conflicts.
    let again = run(&ledger, json, &ImportOptions::default()).unwrap();
    assert_eq!((again.appended, again.duplicates), (0, 2));
    // A number with other characters around it is refused.
    assert!(csv_import("type,account,occurred_at,commitment,title,due,weight\ncommitment_made,acme,2024-01-01T00:00:00Z,c-1,SSO,2024-02-01T00:00:00Z,1.5x\n").is_err());
}

#[test]
fn long_and_non_utf8_lines_among_thousands_are_rejected_by_number() {
    // Several parse chunks (1,024 lines each), parsed on two threads: the rejected lines keep
    // their numbers, and every other line lands as in a clean import.
    let text = jsonl(60, 12);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 3 * 1_024, "{} lines", lines.len());
    let (long_at, bad_at) = (1_500, 2_700);
    let mut bytes = Vec::new();
    for (k, l) in lines.iter().enumerate() {
        if k == long_at {
            bytes.extend_from_slice(format!("{{\"title\":\"{}\"}}\n", "x".repeat(70_000)).as_bytes());
        }
        if k == bad_at {
            bytes.extend_from_slice(b"{\"type\":\"\xff\"}\n");
        }
        bytes.extend_from_slice(l.as_bytes());
        bytes.push(b'\n');
    }
    let ledger = Ledger::memory();
    let mut rejects = Vec::new();
    let options = ImportOptions { skip_invalid: true, ..ImportOptions::default() };
    let report =
        import_reader(&ledger, "t.jsonl", || Ok(bytes.as_slice()), &options, Some(&mut rejects), &mut |_| {}).unwrap();
    assert_eq!((report.appended as usize, report.rejected), (lines.len(), 2));
    let rejected: Vec<serde_json::Value> =
        String::from_utf8(rejects).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let numbers: Vec<u64> = rejected.iter().map(|v| v["line"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [long_at as u64 + 1, bad_at as u64 + 2]);
    assert!(rejected[0]["reason"].as_str().unwrap().contains("longer than"), "{}", rejected[0]);
    assert!(rejected[1]["reason"].as_str().unwrap().contains("UTF-8"), "{}", rejected[1]);
    let clean = Ledger::memory();
    run(&clean, &text, &ImportOptions::default()).unwrap();
    let (a, b) = (log(&clean), log(&ledger));
    assert_eq!(a.len(), b.len());
    assert!(a.iter().zip(&b).all(|(x, y)| x.same_content(&y.to_new_event())));
}

#[test]
fn lines_added_to_the_input_between_the_passes_are_not_appended() {
    // The input is larger than the buffer, so pass 2 reads it again; by then a writer has added
    // lines (one of them invalid). Only the lines pass 1 validated are appended.
    let text = jsonl(4, 6);
    let n = text.lines().count();
    let grown = format!("{text}{}{{\"type\":\"touchpoint\"}}\n", jsonl(1, 1).replace("acct-0", "latecomer"));
    let opened = std::cell::Cell::new(0);
    let ledger = Ledger::memory();
    let options = ImportOptions { buffer_events_max: 7, batch_events: 13, ..ImportOptions::default() };
    let report = import_reader(
        &ledger,
        "t.jsonl",
        || {
            opened.set(opened.get() + 1);
            Ok(if opened.get() == 1 { text.as_bytes() } else { grown.as_bytes() })
        },
        &options,
        None,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(opened.get(), 2, "the re-read path was taken");
    assert_eq!(report.appended as usize, n);
    assert_eq!(log(&ledger).len(), n);
}

/// A file of fresh events with noise mixed in (duplicates of logged events, reused ids of
/// logged, earlier and later lines, steps on unknown commitments), over a store that already
/// holds other accounts' events. Returns the store's events and the file.
fn noisy_file(seed: u64) -> (Vec<rapport_core::NewEvent>, String) {
    use rapport_core::{AccountId, Channel, CommitmentKey, Event, NewEvent};
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut pick = move |n: usize| -> usize {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n.max(1) as u64) as usize
    };
    let index = |e: &NewEvent| e.account.as_str().trim_start_matches("acct-").parse::<u32>().unwrap_or(0);
    let (logged, fresh): (Vec<NewEvent>, Vec<NewEvent>) =
        generate(SynthConfig { accounts: 16, months: 36, seed: 100 + seed, ..Default::default() })
            .partition(|e| index(e) % 2 == 0);
    let touch = |account: &AccountId, at, id| {
        let mut e = NewEvent::new(account.clone(), at, Event::TouchpointHeld { channel: Channel::Email });
        e.id = id;
        e
    };
    let mut lines: Vec<String> = Vec::new();
    for (k, e) in fresh.iter().enumerate() {
        if pick(6) == 0 {
            let noise = match pick(7) {
                0 => logged[pick(logged.len())].clone(),
                // A logged event again an hour later (a new id): on a commitment, refused only
                // by the logged stream's state.
                6 => {
                    let l = &logged[pick(logged.len())];
                    NewEvent::new(l.account.clone(), l.occurred_at.add_nanos(3_600_000_000_000), l.event.clone())
                }
                1 => touch(&e.account, e.occurred_at, logged[pick(logged.len())].id),
                2 if k > 0 => fresh[pick(k)].clone(),
                3 if k > 0 => touch(&e.account, e.occurred_at, fresh[pick(k)].id),
                4 => NewEvent::new(
                    e.account.clone(),
                    e.occurred_at,
                    Event::CommitmentDelivered { commitment: CommitmentKey::new("never").unwrap(), accepted: true },
                ),
                _ => touch(&e.account, e.occurred_at, fresh[k + pick(fresh.len() - k)].id),
            };
            lines.push(noise.to_json_line());
        }
        lines.push(e.to_json_line());
    }
    (logged, lines.iter().map(|l| format!("{l}\n")).collect())
}

#[test]
fn an_import_decides_every_line_as_appending_it_alone_would() {
    // The shadow validation (stream states and logged ids from the store, chunks, questions in
    // flight, line-by-line re-checks) against the store's own verdict on each line in turn:
    // with skip_invalid the same lines are rejected and the logs end up the same; in atomic
    // mode the first of those lines is named and nothing is appended.
    for seed in 0..u64::from(rapport_core::testing::cases(8)) {
        let (logged, text) = noisy_file(seed);
        let with_logged = || {
            let ledger = Ledger::memory();
            ledger.blocking().append(logged.clone(), rapport_core::ExpectedVersion::Any).unwrap();
            ledger
        };
        let reference = with_logged();
        let mut refused = Vec::new();
        for (k, line) in text.lines().enumerate() {
            let e = rapport_core::NewEvent::from_json_line(line).unwrap();
            if reference.blocking().append(vec![e], rapport_core::ExpectedVersion::Any).is_err() {
                refused.push(k as u64 + 1);
            }
        }
        assert!(
            !refused.is_empty() && text.lines().count() > 1_536,
            "seed {seed}: {} lines, {} refused",
            text.lines().count(),
            refused.len()
        );

        let imported = with_logged();
        let buffer_events_max = if seed % 2 == 0 { 1_000_000 } else { 500 };
        let options =
            ImportOptions { skip_invalid: true, batch_events: 97, buffer_events_max, ..ImportOptions::default() };
        let mut rejects = Vec::new();
        import_reader(&imported, "t.jsonl", || Ok(text.as_bytes()), &options, Some(&mut rejects), &mut |_| {}).unwrap();
        let rejected: Vec<u64> = String::from_utf8(rejects)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["line"].as_u64().unwrap())
            .collect();
        assert_eq!(rejected, refused, "seed {seed}: rejected lines");
        let (a, b) = (log(&reference), log(&imported));
        assert_eq!(a.len(), b.len(), "seed {seed}");
        assert!(a.iter().zip(&b).all(|(x, y)| x.same_content(&y.to_new_event())), "seed {seed}: same log");

        let atomic = with_logged();
        match run(&atomic, &text, &ImportOptions::default()) {
            Err(ImportError::Invalid { line, .. }) => assert_eq!(line, refused[0], "seed {seed}"),
            other => panic!("seed {seed}: expected the first refused line, got {other:?}"),
        }
        assert_eq!(log(&atomic).len(), logged.len(), "seed {seed}: nothing appended");
    }
}

#[test]
fn a_forged_twin_earlier_in_the_file_makes_the_later_line_a_conflict_named_by_its_line() {
    // A line crafted to share an unkeyed 64-bit fingerprint with a later line (same id, other
    // title) must not make the later line its duplicate: the later line is refused by number,
    // as invalid input, whether the two are in one chunk or far apart.
    let legit = generate(SynthConfig { accounts: 1, months: 6, seed: 3, ..Default::default() })
        .find(|e| matches!(e.event, rapport_core::Event::CommitmentMade { .. }))
        .unwrap();
    let twin = rapport_core::testing::forged_twin(&legit);
    // The earlier line is found in the buffer of parsed events, or (past a small buffer) by
    // its fingerprint.
    for (filler, buffer) in [(0usize, 1_000_000), (2_000, 1_000_000), (2_000, 100)] {
        let mut text = format!("{}\n", twin.to_json_line());
        text.push_str(&jsonl(30, 12).lines().take(filler).map(|l| format!("{l}\n")).collect::<String>());
        text.push_str(&format!("{}\n", legit.to_json_line()));
        let ledger = Ledger::memory();
        let options = ImportOptions { buffer_events_max: buffer, ..ImportOptions::default() };
        match run(&ledger, &text, &options) {
            Err(ImportError::Invalid { line, reason, .. }) => {
                assert_eq!(line as usize, filler + 2, "filler {filler}");
                assert!(reason.contains("different content"), "{reason}");
            }
            other => panic!("filler {filler}: expected the later line refused, got {other:?}"),
        }
        assert!(log(&ledger).is_empty());
        // Logged first, then imported: refused too.
        let ledger = Ledger::memory();
        ledger.blocking().append(vec![twin.clone()], rapport_core::ExpectedVersion::Any).unwrap();
        let later = format!("{}\n", legit.to_json_line());
        assert!(matches!(run(&ledger, &later, &ImportOptions::default()), Err(ImportError::Invalid { line: 1, .. })));
    }
}

#[test]
fn rejects_keep_what_each_refused_line_held_even_from_a_one_shot_reader() {
    // Unparsable lines keep their text (as read, or as hex when not UTF-8, or their first
    // 64 KiB when longer); lines validation refused keep their event in canonical form. Read
    // once (as from stdin), nothing of a refused line is lost.
    let good =
        "{\"type\":\"touchpoint\",\"account\":\"a\",\"occurred_at\":\"2024-01-01T00:00:00Z\",\"channel\":\"call\"}";
    let unknown_step = "{\"type\":\"escalation_resolved\",\"account\":\"a\",\"occurred_at\":\"2024-01-02T00:00:00+02:00\",\"escalation\":\"e\"}";
    let long = format!("{{\"type\":\"{}\"}}", "x".repeat(70_000));
    let mut input: Vec<u8> = Vec::new();
    for line in [good.as_bytes(), b"not json", unknown_step.as_bytes(), b"\xff\xfe bytes", long.as_bytes()] {
        input.extend_from_slice(line);
        input.push(b'\n');
    }
    let ledger = Ledger::memory();
    let mut rejects = Vec::new();
    let options = ImportOptions { skip_invalid: true, ..ImportOptions::default() };
    let mut once = Some(&input[..]);
    let report = import_reader(
        &ledger,
        "-",
        || once.take().ok_or_else(|| std::io::Error::other("read twice")),
        &options,
        Some(&mut rejects),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!((report.appended, report.rejected), (1, 4));
    let rows: Vec<serde_json::Value> =
        String::from_utf8(rejects).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows[0]["line"], 2);
    assert_eq!(rows[0]["text"], "not json");
    assert_eq!(rows[1]["line"], 3);
    let event = rapport_core::NewEvent::from_json_line(&rows[1]["event"].to_string()).unwrap();
    assert_eq!(event, rapport_core::NewEvent::from_json_line(unknown_step).unwrap(), "the event, re-importable");
    assert_eq!(rows[2]["text_hex"], "fffe206279746573");
    assert_eq!(rows[3]["truncated"], true);
    assert_eq!(rows[3]["text"].as_str().unwrap().len(), rapport_core::LINE_BYTES_MAX);
}

fn csv_import(text: &str) -> Result<rapport_import::ImportReport, ImportError> {
    let options = ImportOptions { format: Format::Csv, ..ImportOptions::default() };
    import_reader(&Ledger::memory(), "t.csv", || Ok(text.as_bytes()), &options, None, &mut |_| {})
}

fn json_import(line: &str) -> Result<rapport_import::ImportReport, ImportError> {
    run(&Ledger::memory(), &format!("{line}\n"), &ImportOptions::default())
}

#[test]
fn csv_refuses_what_json_refuses() {
    let header = "type,account,occurred_at,commitment,title,due,weight";
    let row = |weight: &str| {
        format!("{header}\ncommitment_made,acme,2024-01-01T00:00:00Z,c-1,SSO,2024-02-01T00:00:00Z,{weight}\n")
    };
    let json = |weight: &str| {
        format!(
            "{{\"type\":\"commitment_made\",\"account\":\"acme\",\"occurred_at\":\"2024-01-01T00:00:00Z\",\"commitment\":\"c-1\",\"title\":\"SSO\",\"due\":\"2024-02-01T00:00:00Z\",\"weight\":{weight}}}"
        )
    };
    for weight in ["NaN", "inf", "-Infinity", "1e999", "+9", "009", ".5", "1.", "0x10", "2e6", "0", "-1"] {
        assert!(csv_import(&row(weight)).is_err(), "CSV weight {weight} accepted");
        assert!(json_import(&json(weight)).is_err(), "JSON weight {weight} accepted");
    }
    for weight in ["1", "0.5", "1e2", "2.5E-1"] {
        assert!(csv_import(&row(weight)).is_ok(), "CSV weight {weight} refused");
        assert!(json_import(&json(weight)).is_ok(), "JSON weight {weight} refused");
    }
    let survey = |nps: &str| {
        format!("type,account,occurred_at,survey,nps\nsurvey_answered,acme,2024-01-01T00:00:00Z,q1,{nps}\n")
    };
    for nps in ["+9", "009", "9.0", "1e1", "11", "-1", "nine"] {
        assert!(csv_import(&survey(nps)).is_err(), "CSV nps {nps} accepted");
    }
    assert!(csv_import(&survey("9")).is_ok());
    // Structure: a repeated or unknown column, and loose quoting, are refused with their line.
    let refused_at = |text: &str, want: u64| match csv_import(text) {
        Err(ImportError::Invalid { line, .. }) => assert_eq!(line, want, "{text:?}"),
        other => panic!("{text:?}: {other:?}"),
    };
    refused_at("type,account,occurred_at,channel,channel\ntouchpoint,a,2024-01-01T00:00:00Z,call,email\n", 1);
    refused_at("type,account,occurred_at,chanel\ntouchpoint,a,2024-01-01T00:00:00Z,call\n", 1);
    let good = "touchpoint,a,2024-01-01T00:00:00Z,call\n";
    refused_at(&format!("type,account,occurred_at,channel\n{good}touchpoint,a\"b,2024-01-01T00:00:00Z,call\n"), 3);
    refused_at(&format!("type,account,occurred_at,channel\n{good}\"touchpoint\"x,a,2024-01-01T00:00:00Z,call\n"), 3);
    refused_at(&format!("type,account,occurred_at,channel\n{good}touchpoint,\"a,2024-01-01T00:00:00Z,call\n"), 3);
    refused_at(&format!("type,account,occurred_at,channel\n{good}touchpoint,a,2024-01-01T00:00:00Z\n"), 3);
    // Quoted commas, quotes and line breaks are data; a byte-order mark and CRLF are fine.
    let ok =
        "\u{feff}type,account,occurred_at,summary\r\nissue_disclosed,a,2024-01-01T00:00:00Z,\"x, \"\"y\"\"\nz\"\r\n";
    assert_eq!(csv_import(ok).unwrap().appended, 1);
}

mod csv_against_json {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: rapport_core::testing::cases(256), ..ProptestConfig::default() })]

        /// Any cell in a number column: CSV takes it only when the same JSON line takes it,
        /// as the same event; a text cell always reads as the JSON string of the same text.
        #[test]
        fn prop_a_csv_cell_means_what_the_json_value_means(
            cell in prop_oneof!["[-+0-9.eE]{1,8}", "(NaN|inf|Infinity|-inf|nan|1e999|0x1)", "\\PC{1,12}"],
            text in "\\PC{0,16}",
        ) {
            let header = "type,account,occurred_at,commitment,title,due,weight";
            let quoted = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
            let csv = format!(
                "{header}\ncommitment_made,acme,2024-01-01T00:00:00Z,c-1,{},2024-02-01T00:00:00Z,{}\n",
                quoted(&text),
                quoted(&cell)
            );
            let json = format!(
                "{{\"type\":\"commitment_made\",\"account\":\"acme\",\"occurred_at\":\"2024-01-01T00:00:00Z\",\"commitment\":\"c-1\",\"title\":{},\"due\":\"2024-02-01T00:00:00Z\",\"weight\":{cell}}}",
                serde_json::to_string(&text).unwrap()
            );
            let from_csv = csv_import(&csv).map(|r| r.appended);
            let from_json = json_import(&json).map(|r| r.appended);
            if text.is_empty() {
                // An empty cell is an absent title: refused as missing.
                prop_assert!(from_csv.is_err());
            } else {
                prop_assert_eq!(from_csv.is_ok(), from_json.is_ok(), "csv {:?} json {:?}", from_csv, from_json);
            }
        }
    }
}

/// An export listed by kind rather than by time: every ticket's status change after all the
/// tickets, newest first, as helpdesks write them.
fn out_of_time_order(tickets: usize) -> (String, usize) {
    let mut raised = Vec::new();
    let mut later = Vec::new();
    for t in 0..tickets {
        let day = 1 + t % 27;
        raised.push(format!(
            "{{\"type\":\"escalation_raised\",\"account\":\"acct-{}\",\"occurred_at\":\"2024-03-{day:02}T09:00:00Z\",\"escalation\":\"t-{t}\",\"severity\":\"high\"}}",
            t % 5
        ));
        later.push(format!(
            "{{\"type\":\"escalation_acknowledged\",\"account\":\"acct-{}\",\"occurred_at\":\"2024-03-{day:02}T09:30:00Z\",\"escalation\":\"t-{t}\"}}",
            t % 5
        ));
        later.push(format!(
            "{{\"type\":\"escalation_resolved\",\"account\":\"acct-{}\",\"occurred_at\":\"2024-03-{day:02}T16:00:00Z\",\"escalation\":\"t-{t}\"}}",
            t % 5
        ));
    }
    later.reverse();
    let lines: Vec<String> = raised.into_iter().chain(later).collect();
    let n = lines.len();
    (lines.join("\n") + "\n", n)
}

#[test]
fn sort_by_time_imports_an_export_that_is_not_in_time_order() {
    let (text, n) = out_of_time_order(40);
    // As written, a resolution comes before its acknowledgement: refused, naming a line.
    let plain = Ledger::memory();
    let err = run(&plain, &text, &ImportOptions::default()).unwrap_err();
    assert!(matches!(err, ImportError::Invalid { line, .. } if line > 40), "{err}");
    assert!(log(&plain).is_empty(), "nothing appended");

    let sorted = ImportOptions { sort_by_time: true, batch_events: 7, ..ImportOptions::default() };
    let ledger = Ledger::memory();
    let report = run(&ledger, &text, &sorted).unwrap();
    assert_eq!((report.events, report.appended), (n as u64, n as u64));
    let logged = log(&ledger);
    assert!(logged.windows(2).all(|w| w[0].occurred_at <= w[1].occurred_at), "appended in time order");
    // Idempotent as any import: again, nothing appended.
    let again = run(&ledger, &text, &sorted).unwrap();
    assert_eq!((again.appended, again.duplicates), (0, n as u64));
}

#[test]
fn sort_by_time_keeps_the_input_order_of_events_at_one_instant() {
    // Made and delivered at the same instant: only valid in this order, which sorting keeps.
    let text = "{\"type\":\"touchpoint\",\"account\":\"a\",\"occurred_at\":\"2024-03-02T00:00:00Z\",\"channel\":\"call\"}\n\
        {\"type\":\"commitment_made\",\"account\":\"a\",\"occurred_at\":\"2024-03-01T00:00:00Z\",\"commitment\":\"c\",\"title\":\"t\",\"due\":\"2024-04-01T00:00:00Z\"}\n\
        {\"type\":\"commitment_delivered\",\"account\":\"a\",\"occurred_at\":\"2024-03-01T00:00:00Z\",\"commitment\":\"c\",\"accepted\":true}\n";
    let ledger = Ledger::memory();
    let options = ImportOptions { sort_by_time: true, ..ImportOptions::default() };
    assert_eq!(run(&ledger, text, &options).unwrap().appended, 3);
    let kinds: Vec<EventKind> = log(&ledger).iter().map(|e| e.event.kind()).collect();
    assert_eq!(kinds, [EventKind::CommitmentMade, EventKind::CommitmentDelivered, EventKind::TouchpointHeld]);
}

#[test]
fn sort_by_time_refuses_more_events_than_it_may_hold_and_appends_nothing() {
    let (text, _) = out_of_time_order(4);
    let ledger = Ledger::memory();
    let options = ImportOptions { sort_by_time: true, buffer_events_max: 5, ..ImportOptions::default() };
    let err = run(&ledger, &text, &options).unwrap_err();
    assert!(matches!(err, ImportError::TooLargeToSort { line: 6, limit: 5, .. }), "{err:?}");
    assert!(err.to_string().starts_with("t.jsonl:6: more than 5 events"), "{err}");
    assert!(log(&ledger).is_empty());
}

#[test]
fn sort_by_time_rejects_unreadable_lines_and_orders_the_rest() {
    let (mut text, n) = out_of_time_order(6);
    text.insert_str(0, "{\"type\":\"touchpoint\"\n");
    let ledger = Ledger::memory();
    let options = ImportOptions { sort_by_time: true, skip_invalid: true, ..ImportOptions::default() };
    let mut rejects = Vec::new();
    let report =
        import_reader(&ledger, "t.jsonl", || Ok(text.as_bytes()), &options, Some(&mut rejects), &mut |_| {}).unwrap();
    assert_eq!((report.appended, report.rejected), (n as u64, 1));
    assert!(String::from_utf8(rejects).unwrap().contains("\"line\":1"));
}

#[test]
fn metadata_arrives_through_json_lines_and_csv_columns() {
    let ledger = Ledger::memory();
    let csv = "type,account,occurred_at,channel,actor,source,correlation_id,tags.region,tags.tier\n\
        touchpoint,acme,2025-03-01T09:00:00Z,call,ann,crm,req-1,emea,\n\
        touchpoint,acme,2025-03-02T09:00:00Z,email,,,,,gold\n";
    Importer::new(&ledger).format(Format::Csv).reader("calls.csv", || Ok(csv.as_bytes())).unwrap();
    let json = r#"{"type":"touchpoint","account":"acme","occurred_at":"2025-03-03T09:00:00Z","channel":"visit","causation_id":"evt-7","tags":{"b":"2","a":"1"}}"#;
    Importer::new(&ledger).reader("visit.jsonl", || Ok(json.as_bytes())).unwrap();
    let log = ledger.blocking().read_all_page(Position(1), 10).unwrap();
    let m = &log[0].meta;
    assert_eq!((m.actor(), m.source(), m.correlation_id()), (Some("ann"), Some("crm"), Some("req-1")));
    assert_eq!(m.tags().collect::<Vec<_>>(), [("region", "emea")], "an empty tag cell sets no tag");
    assert_eq!(log[1].meta.tags().collect::<Vec<_>>(), [("tier", "gold")]);
    assert_eq!(log[2].meta.causation_id(), Some("evt-7"));
    assert_eq!(log[2].meta.tags().collect::<Vec<_>>(), [("a", "1"), ("b", "2")], "sorted by name");
    // Limits: too many tags, a control character, a repeated name; each names its line.
    let refused = |line: &str| {
        let err = Importer::new(&Ledger::memory()).reader("bad.jsonl", || Ok(line.as_bytes())).unwrap_err();
        err.to_string()
    };
    let tags: Vec<String> = (0..17).map(|i| format!("\"t{i}\":\"v\"")).collect();
    let many = json.replace(r#"{"b":"2","a":"1"}"#, &format!("{{{}}}", tags.join(",")));
    assert!(refused(&many).contains("bad.jsonl:1: tags: more than the 16 allowed"), "{}", refused(&many));
    let control = json.replace("evt-7", "evt\\u0007");
    assert!(refused(&control).contains("causation_id: the value holds the control character"), "{}", refused(&control));
    let twice = json.replace(r#""a":"1""#, r#""b":"3""#);
    assert!(refused(&twice).contains("tags: the tag \"b\" is repeated"), "{}", refused(&twice));
}

#[test]
fn an_importer_reads_older_shapes_through_the_upcasters_it_is_given() {
    let mut upcasters = rapport_core::upcast::Upcasters::new();
    upcasters
        .register("nps_answered", 1, |obj| {
            let score = obj.remove("score").ok_or("score: missing")?;
            obj.insert("type".into(), "survey_answered".into());
            obj.insert("nps".into(), score);
            Ok(())
        })
        .unwrap();
    let old = "{\"type\":\"nps_answered\",\"account\":\"acme\",\"occurred_at\":\"2025-03-01T09:00:00Z\",\"survey\":\"q1\",\"score\":9}\n\
        {\"type\":\"touchpoint\",\"schema_version\":1,\"account\":\"acme\",\"occurred_at\":\"2025-03-02T09:00:00Z\",\"channel\":\"call\"}\n";
    let ledger = Ledger::memory();
    let refused = Importer::new(&ledger).reader("old.jsonl", || Ok(old.as_bytes())).unwrap_err();
    assert!(refused.to_string().contains("old.jsonl:1:"), "{refused}");
    let report = Importer::new(&ledger)
        .upcasters(std::sync::Arc::new(upcasters))
        .reader("old.jsonl", || Ok(old.as_bytes()))
        .unwrap();
    assert_eq!(report.appended, 2);
    let log = ledger.blocking().read_all_page(Position(1), 10).unwrap();
    assert!(matches!(
        log[0].event,
        rapport_core::Event::SurveyAnswered { score: rapport_core::SurveyScore::Nps(9), .. }
    ));
}

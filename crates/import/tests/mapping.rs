//! Mappings in the importer: a foreign record becomes zero or more canonical events, errors
//! name the line, the mapping and the field, and refusals are exact in both passes.
#![cfg(feature = "mapping")]

use rapport_core::{Ledger, MemoryStore, NewEvent, Position};
use rapport_import::{Format, ImportError, ImportOptions, Importer, MAPPED_EVENTS_MAX, Mapping, MappingError};

/// A ticket becomes raised, acknowledged (if replied) and resolved (if solved).
const TICKETS: &str = r#"
.account as $a | "t-\(.id)" as $k
| {type: "escalation_raised", account: $a, occurred_at: (.created | from_epoch_s), escalation: $k, severity: .sev},
  (.reply // empty | {type: "escalation_acknowledged", account: $a, occurred_at: from_epoch_ms, escalation: $k}),
  (.solved // empty | {type: "escalation_resolved", account: $a, occurred_at: from_local("+02:00"), escalation: $k})
"#;

fn run(
    ledger: &Ledger<MemoryStore>,
    text: &str,
    options: ImportOptions,
) -> Result<rapport_import::ImportReport, ImportError> {
    Importer::new(ledger).options(options).reader("tickets.jsonl", || Ok(text.as_bytes()))
}

fn mapped(program: &str) -> ImportOptions {
    ImportOptions { mapping: Some(Mapping::new("tickets.jq", program).unwrap()), ..ImportOptions::default() }
}

fn log(ledger: &Ledger<MemoryStore>) -> Vec<rapport_core::Envelope> {
    ledger.blocking().read_all_page(Position(1), 1_000_000).unwrap()
}

const EXPORT: &str = "{\"id\":1,\"account\":\"acme\",\"created\":1709280000,\"reply\":1709281800000,\"solved\":\"2024-03-01 14:00:00\",\"sev\":\"high\"}\n\
    {\"id\":2,\"account\":\"acme\",\"created\":1709290000,\"reply\":null,\"solved\":null,\"sev\":\"low\"}\n";

#[test]
fn one_record_becomes_several_events_with_the_ids_of_the_same_lines_unmapped() {
    let ledger = Ledger::memory();
    let report = run(&ledger, EXPORT, mapped(TICKETS)).unwrap();
    assert_eq!((report.events, report.appended), (4, 4));
    let logged = log(&ledger);
    assert_eq!(
        logged[2].occurred_at,
        rapport_core::Timestamp::parse("2024-03-01T12:00:00Z").unwrap(),
        "local time at +02:00"
    );
    // The same events as canonical lines get the same ids: a mapped import and an unmapped
    // one of the same facts are duplicates of each other.
    let lines: String = logged
        .iter()
        .map(|e| e.to_new_event().to_json_line().replace(&format!(",\"id\":\"{}\"", e.id), "") + "\n")
        .collect();
    let plain = Ledger::memory();
    run(&plain, &lines, ImportOptions::default()).unwrap();
    let ids = |l: &Ledger<MemoryStore>| log(l).iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(ids(&plain), ids(&ledger));
    let again = run(&ledger, EXPORT, mapped(TICKETS)).unwrap();
    assert_eq!((again.appended, again.duplicates), (0, 4));
}

#[test]
fn errors_name_the_line_the_mapping_and_the_field() {
    let ledger = Ledger::memory();
    let bad = EXPORT.replace("\"sev\":\"low\"", "\"sev\":\"dire\"");
    let err = run(&ledger, &bad, mapped(TICKETS)).unwrap_err().to_string();
    assert!(err.starts_with("tickets.jsonl:2: mapping tickets.jq: output 1: severity:"), "{err}");
    let err = run(&ledger, "{\"id\":1}\n", mapped(".account | error(\"no account\")")).unwrap_err().to_string();
    assert_eq!(err, "tickets.jsonl:1: mapping tickets.jq: output 1: no account");
    let err = run(&ledger, "{\"id\":1}\n", mapped(".id")).unwrap_err().to_string();
    assert_eq!(err, "tickets.jsonl:1: mapping tickets.jq: output 1: not an object: 1");
    let err = run(&ledger, "not json\n", mapped(".")).unwrap_err().to_string();
    assert!(err.starts_with("tickets.jsonl:1: not JSON"), "{err}");
    let many = format!(
        "range({}) | {{type: \"touchpoint\", account: \"a\", occurred_at: \"2024-01-01T00:00:00Z\", channel: \"call\"}}",
        MAPPED_EVENTS_MAX + 1
    );
    let err = run(&ledger, "{}\n", mapped(&many)).unwrap_err().to_string();
    assert!(err.ends_with(&format!("more than {MAPPED_EVENTS_MAX} events from one record")), "{err}");
    assert!(log(&ledger).is_empty(), "nothing appended by a failed import");
    // A record the mapping turns into nothing is no event.
    let report = run(&ledger, EXPORT, mapped("empty")).unwrap();
    assert_eq!((report.events, report.appended), (0, 0));
}

#[test]
fn a_program_that_does_not_compile_is_named_with_its_line_and_column() {
    let err = Mapping::new("m.jq", "# comment\n.a | frobnicate(1)").unwrap_err();
    assert!(matches!(&err, MappingError::Invalid { line: 2, column: 6, .. }), "{err:?}");
    assert_eq!(err.to_string(), "mapping m.jq:2:6: undefined filter frobnicate");
    let err = Mapping::new("m.jq", "{a: }").unwrap_err();
    assert!(matches!(err, MappingError::Invalid { line: 1, .. }), "{err:?}");
    // A mapping is a function of its record: no clock, environment, local zone, stderr, nor
    // `halt` (which would end the importing process).
    for call in [
        "now",
        "env",
        "$ENV",
        "localtime",
        "strflocaltime(\"%c\")",
        "stderr",
        "halt",
        "halt_error",
        "halt_error(1)",
        "input",
    ] {
        let err = Mapping::new("m.jq", format!("{{t: ({call})}}")).unwrap_err().to_string();
        assert!(err.contains("undefined"), "{call}: {err}");
    }
}

#[test]
fn a_csv_row_is_an_object_keyed_by_its_header_with_empty_cells_null() {
    let csv = "Org,When,Kind,Note\nacme,2024-03-01T09:00:00Z,call,\nacme,2024-03-02T09:00:00Z,,skipped\n";
    let program = "select(.Kind) | {type: \"touchpoint\", account: .Org, occurred_at: .When, channel: .Kind, note: (.Note // \"none\")} | del(.note)";
    let ledger = Ledger::memory();
    let options = ImportOptions { format: Format::Csv, ..mapped(program) };
    let report = Importer::new(&ledger).options(options.clone()).reader("calls.csv", || Ok(csv.as_bytes())).unwrap();
    assert_eq!((report.events, report.appended), (1, 1));
    // Any names, but each once: a repeated one would hide a column.
    let twice = "Org,When,Org\nacme,2024-03-01T09:00:00Z,other\n";
    let err = Importer::new(&ledger).options(options).reader("calls.csv", || Ok(twice.as_bytes())).unwrap_err();
    assert_eq!(err.to_string(), "calls.csv:1: header: \"Org\": the column appears twice (column 3)");
}

#[test]
fn skipped_events_of_a_record_are_the_same_in_the_buffered_and_the_reread_pass() {
    // Record 2's acknowledgement names an escalation never raised: refused alone, its
    // siblings kept, whether pass 2 appends from the buffer or reads the input again.
    let program = r#".account as $a
        | {type: "escalation_raised", account: $a, occurred_at: .t0, escalation: .k, severity: "low"},
          {type: "escalation_acknowledged", account: $a, occurred_at: .t1, escalation: .ack},
          {type: "touchpoint", account: $a, occurred_at: .t1, channel: "call"}"#;
    let text: String = (0..6)
        .map(|i| {
            let ack = if i == 2 { "ghost".to_owned() } else { format!("k{i}") };
            format!("{{\"account\":\"a\",\"k\":\"k{i}\",\"ack\":\"{ack}\",\"t0\":\"2024-01-0{}T00:00:00Z\",\"t1\":\"2024-01-0{}T01:00:00Z\"}}\n", i + 1, i + 1)
        })
        .collect();
    let mut outcomes = Vec::new();
    for buffer in [1_000_000, 4] {
        let ledger = Ledger::memory();
        let options =
            ImportOptions { skip_invalid: true, buffer_events_max: buffer, batch_events: 5, ..mapped(program) };
        let report = run(&ledger, &text, options).unwrap();
        assert_eq!((report.events, report.appended, report.rejected), (18, 17, 1));
        outcomes.push(log(&ledger).iter().map(|e| e.id).collect::<Vec<_>>());
    }
    assert_eq!(outcomes[0], outcomes[1]);
}

#[test]
fn a_mapped_event_is_parsed_and_limited_as_a_canonical_line() {
    let program =
        "{type: \"touchpoint\", account: .a, occurred_at: \"2024-01-01T00:00:00Z\", channel: \"call\", extra: 1}";
    let err = run(&Ledger::memory(), "{\"a\":\"acme\"}\n", mapped(program)).unwrap_err().to_string();
    let canonical = NewEvent::from_json_line("{\"type\":\"touchpoint\",\"account\":\"acme\",\"occurred_at\":\"2024-01-01T00:00:00Z\",\"channel\":\"call\",\"extra\":1}").unwrap_err().to_string();
    assert_eq!(err, format!("tickets.jsonl:1: mapping tickets.jq: output 1: {canonical}"));
}

#[test]
fn mapped_events_carry_the_mapping_as_source_unless_they_name_one() {
    let program = r#"{type: "touchpoint", account: .account, occurred_at: (.created | from_epoch_s), channel: "call"}
        + (if .by then {source: .by, actor: "agent-\(.id)"} else {} end)"#;
    let export = "{\"id\":1,\"account\":\"acme\",\"created\":1709280000,\"by\":null}\n\
        {\"id\":2,\"account\":\"acme\",\"created\":1709290000,\"by\":\"phone-system\"}\n";
    let ledger = Ledger::memory();
    run(&ledger, export, mapped(program)).unwrap();
    let logged = log(&ledger);
    assert_eq!(logged[0].meta.source(), Some("tickets"), "the mapping's file stem");
    assert_eq!((logged[1].meta.source(), logged[1].meta.actor()), (Some("phone-system"), Some("agent-2")));
    // Metadata is not content: the same records through a mapping named otherwise (or with
    // another source) are duplicates, and the log keeps what it had.
    let other = Mapping::new("crm/calls.jq", program).unwrap();
    assert_eq!(other.source(), Some("calls"));
    let other = other.with_source("crm").unwrap();
    let again = run(&ledger, export, ImportOptions { mapping: Some(other), ..ImportOptions::default() }).unwrap();
    assert_eq!((again.appended, again.duplicates), (0, 2));
    assert_eq!(log(&ledger), logged);
    // Stamping can be turned off; a source that breaks the rules is refused when set.
    let plain = Ledger::memory();
    run(&plain, export, ImportOptions { stamp_source: false, ..mapped(program) }).unwrap();
    assert!(log(&plain)[0].meta.is_empty());
    assert!(Mapping::new("t.jq", program).unwrap().with_source("bad\nsource").is_err());
}

#[test]
fn deep_programs_and_records_are_refused_not_overflowed() {
    // jaq recurses once a level: past the limits the program is refused where it goes too
    // deep, and the importing thread (2 MiB of stack) never sees it.
    let deep = format!("# deep\n{}.a{}", "(".repeat(65), ")".repeat(65));
    let err = Mapping::new("m.jq", deep).unwrap_err();
    assert_eq!(err.to_string(), "mapping m.jq:2:65: brackets nested more than 64 deep");
    let chain = vec!["."; 2_000].join(" | ");
    assert!(Mapping::new("m.jq", chain).unwrap_err().to_string().ends_with("more than 1000 operators"));
    // Just within both limits, the import runs on its own threads.
    let touch = r#"{type: "touchpoint", account: "a", occurred_at: "2024-01-01T00:00:00Z", channel: "call"}"#;
    let within = format!("{}{}{touch}{}", "(".repeat(63), ". | ".repeat(990), ")".repeat(63));
    let ledger = Ledger::memory();
    assert_eq!(run(&ledger, "{}\n", mapped(&within)).unwrap().appended, 1);
    let ifs = format!("{}{touch}{}", "if true then ".repeat(500), " end".repeat(500));
    assert_eq!(run(&ledger, "{}\n", mapped(&ifs)).unwrap().duplicates, 1);
    // The same when pass 2 reads the input again (it parses on a thread of its own too), and
    // over enough records that the reader hands every third chunk (1,024 lines) to the
    // importer's helper thread.
    let records: String = (0..4_000).map(|i| format!("{{\"x\":{i}}}\n")).collect();
    for buffer in [usize::MAX, 0] {
        let options = ImportOptions { buffer_events_max: buffer, ..mapped(&ifs) };
        assert_eq!(run(&ledger, &records, options).unwrap().duplicates, 4_000);
    }
    // A record nested deeper than the reader goes is refused, naming its line.
    let record = format!("{{}}\n{}{}\n", "[".repeat(30_000), "]".repeat(30_000));
    let err = run(&ledger, &record, mapped(touch)).unwrap_err().to_string();
    assert_eq!(err, "tickets.jsonl:2: not JSON a mapping reads: nested more than 128 deep");
    let record = format!("{}{}\n", "[".repeat(127), "]".repeat(127));
    assert_eq!(run(&ledger, &record, mapped(touch)).unwrap().duplicates, 1);
}

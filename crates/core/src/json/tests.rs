//! The JSON form's unit tests: every event type round trips, and each refusal names its field.

use super::fields::*;
use super::scan::*;
use super::*;
use crate::event::Event;
const LINES: &[&str] = &[
    r#"{"type":"commitment_made","id":"0192f0c1-7a4b-7cde-8f01-23456789ab01","account":"acme","occurred_at":"2025-03-01T09:00:00Z","commitment":"c-17","title":"SSO","due":"2025-04-01T00:00:00Z","weight":1.0}"#,
    r#"{"type":"commitment_renegotiated","id":"0192f0c1-7a4b-7cde-8f01-23456789ab02","account":"acme","occurred_at":"2025-03-20T09:00:00Z","commitment":"c-17","due":"2025-04-15T00:00:00Z","reason":"vendor delay"}"#,
    r#"{"type":"commitment_renegotiated","id":"0192f0c1-7a4b-7cde-8f01-23456789ab12","account":"acme","occurred_at":"2025-03-20T09:00:00Z","commitment":"c-17","due":"2025-04-15T00:00:00Z"}"#,
    r#"{"type":"commitment_delivered","id":"0192f0c1-7a4b-7cde-8f01-23456789ab03","account":"acme","occurred_at":"2025-04-10T09:00:00Z","commitment":"c-17","accepted":true}"#,
    r#"{"type":"commitment_delivered","id":"0192f0c1-7a4b-7cde-8f01-23456789ab13","account":"acme","occurred_at":"2025-04-10T09:00:00Z","commitment":"c-17","accepted":false}"#,
    r#"{"type":"commitment_cancelled","id":"0192f0c1-7a4b-7cde-8f01-23456789ab04","account":"acme","occurred_at":"2025-03-02T09:00:00Z","commitment":"c-18","reason":"descoped"}"#,
    r#"{"type":"escalation_raised","id":"0192f0c1-7a4b-7cde-8f01-23456789ab05","account":"acme","occurred_at":"2025-03-02T09:00:00Z","escalation":"e-3","severity":"high","summary":"outage"}"#,
    r#"{"type":"escalation_raised","id":"0192f0c1-7a4b-7cde-8f01-23456789ab15","account":"acme","occurred_at":"2025-03-02T09:00:00Z","escalation":"e-4","severity":"critical"}"#,
    r#"{"type":"escalation_acknowledged","id":"0192f0c1-7a4b-7cde-8f01-23456789ab06","account":"acme","occurred_at":"2025-03-02T10:00:00Z","escalation":"e-3"}"#,
    r#"{"type":"escalation_resolved","id":"0192f0c1-7a4b-7cde-8f01-23456789ab07","account":"acme","occurred_at":"2025-03-03T10:00:00Z","escalation":"e-3"}"#,
    r#"{"type":"escalation_reopened","id":"0192f0c1-7a4b-7cde-8f01-23456789ab08","account":"acme","occurred_at":"2025-03-04T10:00:00Z","escalation":"e-3"}"#,
    r#"{"type":"survey_answered","id":"0192f0c1-7a4b-7cde-8f01-23456789ab09","account":"acme","occurred_at":"2025-03-05T10:00:00Z","survey":"q1-2025","nps":9,"comment":"great"}"#,
    r#"{"type":"survey_answered","id":"0192f0c1-7a4b-7cde-8f01-23456789ab19","account":"acme","occurred_at":"2025-03-05T10:00:00Z","survey":"q1-2025","csat":4}"#,
    r#"{"type":"survey_answered","id":"0192f0c1-7a4b-7cde-8f01-23456789ab29","account":"acme","occurred_at":"2025-03-05T10:00:00Z","survey":"q1-2025","ces":2}"#,
    r#"{"type":"touchpoint","id":"0192f0c1-7a4b-7cde-8f01-23456789ab0a","account":"acme","occurred_at":"2025-03-06T10:00:00Z","channel":"meeting"}"#,
    r#"{"type":"issue_disclosed","id":"0192f0c1-7a4b-7cde-8f01-23456789ab0b","account":"acme","occurred_at":"2025-03-07T10:00:00Z","summary":"we double-billed"}"#,
    r#"{"type":"issue_disclosed","id":"0192f0c1-7a4b-7cde-8f01-23456789ab1b","account":"acme","occurred_at":"2025-03-07T10:00:00Z"}"#,
    r#"{"type":"advocacy_given","id":"0192f0c1-7a4b-7cde-8f01-23456789ab0c","account":"acme","occurred_at":"2025-03-08T10:00:00.5Z","kind":"case_study"}"#,
    r#"{"type":"account_profiled","id":"0192f0c1-7a4b-7cde-8f01-23456789ab0d","account":"acme","occurred_at":"2025-01-01T00:00:00Z","segment":"enterprise","tier":"gold","arr":120000.5,"currency":"EUR","parent":"acme-group","lifecycle":"adoption","renews_at":"2026-01-01T00:00:00Z","owner":"Ann Lee"}"#,
    r#"{"type":"account_profiled","id":"0192f0c1-7a4b-7cde-8f01-23456789ab1d","account":"acme","occurred_at":"2025-02-01T00:00:00Z","lifecycle":"expansion"}"#,
    r#"{"type":"assessment_recorded","id":"0192f0c1-7a4b-7cde-8f01-23456789ab0e","account":"acme","occurred_at":"2025-03-09T10:00:00Z","sentiment":2,"reason":"champion left","valid_until":"2025-04-09T10:00:00Z"}"#,
    r#"{"type":"assessment_recorded","id":"0192f0c1-7a4b-7cde-8f01-23456789ab1e","account":"acme","occurred_at":"2025-03-09T10:00:00Z","sentiment":5,"reason":"renewed early"}"#,
];

#[test]
fn every_type_round_trips_json_event_json() {
    let mut kinds = std::collections::BTreeSet::new();
    for line in LINES {
        let e = NewEvent::from_json_line(line).unwrap_or_else(|err| panic!("{line}: {err}"));
        kinds.insert(e.event.kind());
        assert_eq!(&e.to_json_line(), line);
        // event → JSON → event
        assert_eq!(NewEvent::from_json_line(&e.to_json_line()).unwrap(), e);
    }
    assert_eq!(kinds.len(), EventKind::ALL.len(), "every type is covered");
}

#[test]
fn every_type_round_trips_through_its_body() {
    for line in LINES {
        let e = NewEvent::from_json_line(line).unwrap();
        let body = e.to_body_json();
        assert!(!body.contains("\"account\"") && !body.contains("\"occurred_at\""), "{body}");
        let tag = e.event.kind().tag();
        let back = NewEvent::from_body_json(tag, e.id, e.account.clone(), e.occurred_at, &body).unwrap();
        assert_eq!(back, e);
        // The header fields belong outside the body; another type's tag does not fit it.
        assert!(NewEvent::from_body_json(tag, e.id, e.account.clone(), e.occurred_at, line).is_err());
    }
    let e = NewEvent::from_json_line(LINES[14]).unwrap();
    let body = e.to_body_json();
    let err = NewEvent::from_body_json("escalation_raised", e.id, e.account, e.occurred_at, &body);
    assert!(err.is_err());
}

#[test]
fn envelope_form_round_trips() {
    let e = NewEvent::from_json_line(LINES[0]).unwrap();
    let env = Envelope::new(e, Timestamp::parse("2025-03-01T09:00:01Z").unwrap(), StreamVersion(1), Position(42));
    let line = env.to_json_line();
    assert!(line.contains(r#""recorded_at":"2025-03-01T09:00:01Z","stream_version":1,"position":42"#));
    assert_eq!(Envelope::from_json_line(&line).unwrap(), env);
    // The submission form refuses store-assigned fields.
    assert!(matches!(NewEvent::from_json_line(&line), Err(ParseEventError::InvalidField { field: "recorded_at", .. })));
}

#[test]
fn defaults_apply() {
    let e = NewEvent::from_json_line(
        r#"{"type":"commitment_made","account":"a","occurred_at":"2025-03-01T09:00:00Z","commitment":"c","title":"t","due":"2025-04-01T00:00:00Z"}"#,
    )
    .unwrap();
    assert!(matches!(e.event, Event::CommitmentMade { weight, .. } if weight == 1.0));
    let d = NewEvent::from_json_line(
        r#"{"type":"commitment_delivered","account":"a","occurred_at":"2025-03-01T09:00:00Z","commitment":"c"}"#,
    )
    .unwrap();
    assert!(matches!(d.event, Event::CommitmentDelivered { accepted: true, .. }));
}

#[test]
fn missing_id_derives_a_stable_v5() {
    let line = r#"{"type":"touchpoint","account":"acme","occurred_at":"2025-03-06T10:00:00Z","channel":"call"}"#;
    let a = NewEvent::from_json_line(line).unwrap();
    let b = NewEvent::from_json_line(
        r#"{"account":"acme","type":"touchpoint","channel":"call","occurred_at":"2025-03-06T11:00:00+01:00"}"#,
    )
    .unwrap();
    assert_eq!(a.id.as_uuid().get_version_num(), 5);
    assert_eq!(a.id, b.id, "the same content in another key order and offset");
    let c = NewEvent::from_json_line(&line.replace("call", "email")).unwrap();
    assert_ne!(a.id, c.id);
}

fn err(line: &str) -> ParseEventError {
    NewEvent::from_json_line(line).unwrap_err()
}

#[test]
fn refusals_name_the_field() {
    let base = r#""account":"acme","occurred_at":"2025-03-06T10:00:00Z""#;
    let e = err(&format!(r#"{{"type":"touchpoint",{base},"channel":"call","chanel":"x"}}"#));
    assert!(e.to_string().contains("unknown field `chanel`"), "{e}");
    let e = err(&format!(r#"{{"type":"touchpoint",{base},"channel":"fax"}}"#));
    assert_eq!(e.field(), Some("channel"));
    let e = err(&format!(r#"{{"type":"touchpoint",{base},"channel":"call","weight":2.0}}"#));
    assert!(matches!(e, ParseEventError::FieldNotAllowed { field: "weight", .. }), "{e}");
    // Of several misplaced fields, the first in OPTIONAL_FIELDS order is named, wherever
    // the line puts it.
    let e = err(&format!(r#"{{"type":"touchpoint",{base},"kind":"review","channel":"call","summary":"s","due":"x"}}"#));
    assert!(matches!(e, ParseEventError::FieldNotAllowed { field: "due", .. }), "{e}");
    // Each type takes exactly its own fields: every other optional field is refused.
    let own: [(&str, &str); 3] = [
        ("commitment_delivered", r#""commitment":"c","accepted":true"#),
        ("escalation_raised", r#""escalation":"x","severity":"low","summary":"s""#),
        ("advocacy_given", r#""kind":"review""#),
    ];
    for (ty, fields) in own {
        NewEvent::from_json_line(&format!(r#"{{"type":"{ty}",{base},{fields}}}"#)).unwrap();
        for extra in OPTIONAL_FIELDS.iter().filter(|f| !fields.contains(&format!(r#""{f}""#))) {
            let value = match *extra {
                "weight" | "nps" | "csat" | "ces" | "arr" | "sentiment" => "1",
                "accepted" => "true",
                _ => r#""x""#,
            };
            let e = err(&format!(r#"{{"type":"{ty}",{base},{fields},"{extra}":{value}}}"#));
            assert!(
                matches!(e, ParseEventError::FieldNotAllowed { field, .. } if field == *extra),
                "{ty} {extra}: {e}"
            );
        }
    }
    let e = err(&format!(r#"{{"type":"touch",{base}}}"#));
    assert!(matches!(e, ParseEventError::UnknownType { .. }));
    let e = err(&format!(r#"{{"type":"survey_answered",{base},"survey":"s","nps":11}}"#));
    assert_eq!(e.to_string(), "nps: 11 is outside 0..=10");
    let e = err(&format!(r#"{{"type":"survey_answered",{base},"survey":"s","nps":9,"csat":4}}"#));
    assert_eq!(e.field(), Some("nps"));
    let e = err(&format!(r#"{{"type":"survey_answered",{base},"survey":"s","ces":-1}}"#));
    assert_eq!(e.field(), Some("ces"));
    let e = err(&format!(r#"{{"type":"escalation_raised",{base},"escalation":"e","severity":"urgent"}}"#));
    assert_eq!(e.field(), Some("severity"));
    let e = err(&format!(r#"{{"type":"escalation_raised",{base},"severity":"low"}}"#));
    assert!(matches!(e, ParseEventError::MissingField { field: "escalation", .. }));
    let e = err(r#"{"type":"touchpoint","account":"acme","occurred_at":"2025-02-30T10:00:00Z","channel":"call"}"#);
    assert_eq!(e.field(), Some("occurred_at"));
    let e = err(r#"{"type":"touchpoint","account":"","occurred_at":"2025-02-03T10:00:00Z","channel":"call"}"#);
    assert_eq!(e.field(), Some("account"));
    let e = err(&format!(r#"{{"type":"issue_disclosed",{base},"summary":"{}"}}"#, "x".repeat(4097)));
    assert_eq!(e.field(), Some("summary"));
    let e = err(&format!(
        r#"{{"type":"commitment_made",{base},"commitment":"c","title":"t","due":"2025-04-01T00:00:00Z","weight":0}}"#
    ));
    assert_eq!(e.field(), Some("weight"));
    let e = err(&format!(r#"{{"type":"touchpoint",{base},"channel":"call","id":"nope"}}"#));
    assert_eq!(e.field(), Some("id"));
    assert!(matches!(err("not json"), ParseEventError::Json { .. }));
    assert!(matches!(err("[1,2]"), ParseEventError::Json { .. }));
    assert!(matches!(err(&" ".repeat(LINE_BYTES_MAX + 1)), ParseEventError::LineTooLong { .. }));
}

#[test]
fn the_compact_scanner_reads_what_serde_reads() {
    let base = r#""account":"acme","occurred_at":"2025-02-03T10:00:00Z""#;
    for line in [
        "{}".to_string(),
        format!(r#"{{"type":"touchpoint",{base},"channel":"call"}}"#),
        format!(r#"{{"type":"touchpoint",{base},"channel":"call","channel":"call"}}"#),
        format!(r#"{{"type":"touchpoint",{base},"channel":"c\u0061ll"}}"#),
        format!(r#"{{ "type":"touchpoint",{base},"channel":"call"}}"#),
        format!(r#"{{"type":"touchpoint",{base},"channel":null}}"#),
        format!(r#"{{"type":"touchpoint",{base},"extra":1}}"#),
        format!(r#"{{"type":"survey_answered",{base},"survey":"s","nps":-0}}"#),
        format!(r#"{{"type":"survey_answered",{base},"survey":"s","nps":07}}"#),
        format!(r#"{{"type":"survey_answered",{base},"survey":"s","nps":7.0}}"#),
        format!(r#"{{"type":"survey_answered",{base},"survey":"s","nps":7}} "#),
        format!(r#"{{"type":"commitment_made",{base},"weight":1.}}"#),
        format!(r#"{{"type":"commitment_made",{base},"weight":-0.25}}"#),
        format!(r#"{{"type":"commitment_made",{base},"weight":0.1000000000000000055511151231257827}}"#),
        format!(r#"{{"type":"commitment_made",{base},"weight":1e3}}"#),
        format!(r#"{{"type":"commitment_delivered",{base},"accepted":tru}}"#),
        format!(r#"{{"type":"commitment_delivered",{base},"accepted":false}}"#),
        format!(r#"{{"type":"issue_disclosed",{base},"summary":"a,b}}c \"q\" é"}}"#),
        format!(r#"{{"type":"issue_disclosed",{base},"summary":"tab	here"}}"#),
        format!(r#"{{"type":"issue_disclosed",{base},"position":18446744073709551615}}"#),
        format!(r#"{{"type":"issue_disclosed",{base},"position":-1}}"#),
        format!(r#"{{"type":"issue_disclosed",{base},}}"#),
        format!(r#"{{"type":"issue_disclosed",{base}}}}}"#),
        r#"{"type""#.to_string(),
        r#"{"type":}"#.to_string(),
        r#"{,}"#.to_string(),
        format!(r#"{{"type":"touchpoint",{base},"channel":"call","source":"crm","actor":"ana"}}"#),
        format!(r#"{{"type":"touchpoint",{base},"channel":"call","source":"c\u0072m"}}"#),
        format!(r#"{{"type":"touchpoint",{base},"channel":"call","source":7}}"#),
        format!(r#"{{"type":"touchpoint",{base},"channel":"call","correlation_id":"r","causation_id":"c"}}"#),
        format!(r#"{{"type":"touchpoint",{base},"channel":"call","tags":{{}}}}"#),
        format!(r#"{{"type":"touchpoint",{base},"channel":"call","tags":{{"a":"1","b":""}}}}"#),
        format!(r#"{{"type":"touchpoint",{base},"channel":"call","tags":{{"a":"1","a":"2"}}}}"#),
        format!(r#"{{"type":"touchpoint",{base},"channel":"call","tags":{{"a":1}}}}"#),
        format!(r#"{{"type":"touchpoint",{base},"channel":"call","tags":{{"a":{{"b":"c"}}}}}}"#),
        format!(r#"{{"type":"touchpoint",{base},"channel":"call","tags":{{"a":"1",}}}}"#),
        format!(r#"{{"type":"touchpoint",{base},"channel":"call","tags":{{"a""1"}}}}"#),
        format!(r#"{{"type":"touchpoint",{base},"channel":"call","tags":{{"a":"1"}}"#),
        format!(r#"{{"type":"touchpoint",{base},"channel":"call","tags":["a"]}}"#),
        format!(r#"{{"type":"touchpoint",{base},"channel":"call","tags":null}}"#),
        format!(r#"{{"type":"touchpoint",{base},"channel":"call","tags":{{"a":"1"}},"tags":{{}}}}"#),
        format!(r#"{{"type":"touchpoint",{base},"channel":"call","schema_version":2}}"#),
        format!(r#"{{"type":"touchpoint",{base},"channel":"call","schema_version":-1}}"#),
        format!(r#"{{"type":"touchpoint",{base},"channel":"call","schema_version":2.0}}"#),
        format!(r#"{{"type":"touchpoint",{base},"channel":"call","schema_version":"2"}}"#),
    ] {
        assert!(compact_scan_agrees(&line), "{line}");
    }
    // The common shapes do take the fast path, metadata and a stated version included.
    let canonical = format!(
        r#"{{"type":"commitment_made",{base},"commitment":"c","title":"t","due":"2025-04-01T00:00:00Z","weight":1.5}}"#
    );
    assert!(scan_compact(&canonical, &mut RawLine::default()));
    let with_meta = format!(
        r#"{{"type":"touchpoint",{base},"schema_version":2,"channel":"call","actor":"ana","source":"crm","correlation_id":"r","causation_id":"c","tags":{{"a":"1","b":""}}}}"#
    );
    assert!(scan_compact(&with_meta, &mut RawLine::default()));
    let many = (0..=crate::meta::TAGS_MAX).map(|i| format!(r#""t{i}":"v""#)).collect::<Vec<_>>().join(",");
    let too_many = format!(r#"{{"type":"touchpoint",{base},"channel":"call","tags":{{{many}}}}}"#);
    assert!(!scan_compact(&too_many, &mut RawLine::default()), "more tags than allowed go to serde, which says why");
    assert!(NewEvent::from_json_line(&too_many).unwrap_err().to_string().contains("more than the"));
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(crate::testing::cases(64)))]

    /// The word-at-a-time search stops where a byte-at-a-time one does, whatever the
    /// bytes (quotes, backslashes, control characters, UTF-8 and bytes near the limits).
    #[test]
    fn string_stop_agrees_with_a_byte_loop(
        bytes in proptest::collection::vec(
            proptest::prop_oneof![
                4 => 0x20u8..0x7f,
                1 => proptest::sample::select(vec![b'"', b'\\', 0x00, 0x1f, 0x20, 0x21, 0x5b, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff]),
                1 => proptest::num::u8::ANY,
            ],
            0..80,
        ),
    ) {
        let expected = bytes.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        proptest::prop_assert_eq!(string_stop(&bytes), expected);
    }

    #[test]
    fn compact_scanner_agrees_on_canonical_and_mutated_lines(
        events in crate::testing::strategies::arb_account_history(),
        edits in proptest::collection::vec((0usize..4096, 0u8..128), 0..4),
    ) {
        for e in &events {
            scanner_agrees_on(&e.to_json_line(), e, &edits)?;
        }
    }

    /// Lines parsed in a row with one interner (which shares one line's metadata with the
    /// next lines that carry the same) read as each line alone: metadata repeated, changed,
    /// dropped, with tags, and lines refused between them.
    #[test]
    fn shared_metadata_reads_as_each_line_alone(
        events in crate::testing::strategies::arb_account_history(),
        meta in proptest::collection::vec(crate::testing::strategies::arb_metadata(), 1..4),
        picks in proptest::collection::vec(0usize..6, 1..40),
    ) {
        let mut interner = crate::id::Interner::default();
        for (i, e) in events.iter().enumerate() {
            let pick = picks[i % picks.len()];
            let mut e = e.clone();
            e.meta = meta.get(pick).cloned().unwrap_or_default();
            let line = if pick == 5 { "{\"type\":\"touchpoint\",\"source\":\"x\"}".to_owned() } else { e.to_json_line() };
            let alone = NewEvent::from_json_line(&line);
            let shared = NewEvent::from_json_line_in(&line, &mut interner);
            proptest::prop_assert_eq!(&shared, &alone, "{}", line);
            if pick != 5 {
                proptest::prop_assert_eq!(shared.unwrap(), e);
            }
        }
    }

    /// The same with metadata and the stated schema version an export writes.
    #[test]
    fn compact_scanner_agrees_on_lines_with_metadata(
        events in crate::testing::strategies::arb_account_history(),
        meta in proptest::collection::vec(crate::testing::strategies::arb_metadata(), 1..4),
        edits in proptest::collection::vec((0usize..4096, 0u8..128), 0..4),
    ) {
        for (i, e) in events.iter().enumerate() {
            let mut e = e.clone();
            e.meta = meta[i % meta.len()].clone();
            let line = if i % 2 == 0 { e.to_json_line() } else { e.to_json_line_versioned() };
            scanner_agrees_on(&line, &e, &edits)?;
        }
    }
}

/// The compact scanner on `e`'s canonical `line`: it reads it (unless it holds an escape) as
/// serde_json does, and the line parses to `e`; with `edits` made, it still reads what serde
/// reads wherever it answers.
fn scanner_agrees_on(
    line: &str,
    e: &NewEvent,
    edits: &[(usize, u8)],
) -> Result<(), proptest::test_runner::TestCaseError> {
    if !line.contains('\\') {
        proptest::prop_assert!(scan_compact(line, &mut RawLine::default()), "{}", line);
    }
    proptest::prop_assert!(compact_scan_agrees(line), "{}", line);
    proptest::prop_assert_eq!(&NewEvent::from_json_line(line).unwrap(), e);
    let mut bytes = line.as_bytes().to_vec();
    for &(at, byte) in edits {
        let at = at % bytes.len();
        bytes[at] = byte;
    }
    if let Ok(mutated) = std::str::from_utf8(&bytes) {
        proptest::prop_assert!(compact_scan_agrees(mutated), "{}", mutated);
    }
    Ok(())
}

#[test]
fn an_unknown_field_is_refused_naming_only_the_fields_the_form_takes() {
    let line =
        r#"{"type":"touchpoint","account":"a","occurred_at":"2025-01-01T00:00:00Z","channel":"call","chanel":1}"#;
    let submitted = NewEvent::from_json_line(line).unwrap_err().to_string();
    assert!(submitted.starts_with("unknown field `chanel`, expected one of `type`, `id`"), "{submitted}");
    assert!(submitted.contains("`tags`, `schema_version` at line 1 column"), "{submitted}");
    for assigned in STORE_ASSIGNED {
        assert!(!submitted.contains(assigned), "a submission may not carry {assigned}: {submitted}");
    }
    let stored = Envelope::from_json_line(line).unwrap_err().to_string();
    assert!(stored.contains("`schema_version`, `recorded_at`, `stream_version`, `position` at line 1"), "{stored}");
}

#[test]
fn the_scanner_and_the_field_checks_follow_the_one_field_table() {
    // The scanner's bits are RawLine's fields in order: the table's four common fields, the
    // three a store assigns, the fields only some types take, then metadata and
    // `schema_version`.
    let names: Vec<&str> = SUBMITTED_FIELDS[..4]
        .iter()
        .map(|f| f.0)
        .chain(STORE_ASSIGNED)
        .chain(SUBMITTED_FIELDS[4..].iter().map(|f| f.0))
        .collect();
    assert_eq!(names.len(), 39);
    for (bit, name) in names.iter().enumerate() {
        assert_eq!(field_bit(name), Some(bit as u32), "{name}");
    }
    assert_eq!(SUBMITTED_FIELDS[30..].iter().map(|f| f.0).collect::<Vec<_>>(), ENVELOPE_EXTRA_FIELDS);
    for name in ["recorded", "tag", ""] {
        assert_eq!(field_bit(name), None, "{name}");
    }
    // Each type's check allows exactly the fields the per-type table lists for it.
    for (t, (kind, fields)) in TYPE_FIELDS.iter().enumerate() {
        assert_eq!(EventKind::ALL[t], *kind);
        let mask = allowed(*kind);
        let named: Vec<&str> =
            (0..OPTIONAL_FIELDS.len()).filter(|i| mask & (1 << i) != 0).map(|i| OPTIONAL_FIELDS[i]).collect();
        let mut listed: Vec<&str> = fields.iter().map(|f| f.0).collect();
        listed.sort_by_key(|n| OPTIONAL_FIELDS.iter().position(|o| o == n));
        assert_eq!(named, listed, "{kind:?}");
    }
}

#[test]
fn envelopes_and_new_events_deserialise_as_they_serialise() {
    for line in LINES {
        let e = NewEvent::from_json_line(line).unwrap();
        let back: NewEvent = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        let env = Envelope::new(e, Timestamp::from_unix_seconds(1_750_000_000), StreamVersion(3), Position(9));
        let back: Envelope = serde_json::from_str(&serde_json::to_string(&env).unwrap()).unwrap();
        assert_eq!(back, env);
        // Inside another structure too, and refusals keep their message.
        let nested: Vec<Envelope> = serde_json::from_value(serde_json::json!([env])).unwrap();
        assert_eq!(nested, vec![env]);
    }
    let err = serde_json::from_str::<NewEvent>(r#"{"type":"touchpoint","account":"a"}"#).unwrap_err();
    assert!(err.to_string().contains("occurred_at"), "{err}");
}

/// Strings heavy in what JSON escapes: controls, quotes, backslashes, DEL and non-ASCII.
fn arb_awkward_string() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    proptest::collection::vec(
        prop_oneof![
            2 => proptest::char::range('\u{0}', '\u{7f}'),
            1 => proptest::sample::select(vec!['"', '\\', '\u{8}', '\u{c}', '\n', '\r', '\t', '\u{1f}', '\u{7f}', 'é', '\u{2028}', '😀']),
            1 => any::<char>(),
        ],
        0..40,
    )
    .prop_map(|c| c.into_iter().collect())
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(crate::testing::cases(256)))]

    /// The direct string writer escapes exactly as serde_json does.
    #[test]
    fn strings_are_written_as_serde_json_writes_them(s in arb_awkward_string()) {
        let mut out = String::new();
        super::write::write_json_string(&s, &mut out);
        proptest::prop_assert_eq!(out, serde_json::to_string(&s).unwrap());
    }

    /// Every form the canonical writers produce directly is byte for byte what serde_json
    /// writes through `Serialize` (the same entries): derived ids, exports and stored bodies
    /// do not change with the writer.
    #[test]
    fn forms_written_directly_equal_serde_json(
        e in crate::testing::strategies::arb_new_event(),
        meta in crate::testing::strategies::arb_metadata(),
        with_meta: bool,
        nanos in 0i64..1_000_000_000,
        text in arb_awkward_string(),
    ) {
        let mut e = e;
        e.occurred_at = e.occurred_at.add_nanos(nanos);
        if with_meta {
            e.meta = meta;
        }
        // Text the parser would refuse (controls) still writes as serde writes it.
        if let crate::event::Event::CommitmentMade { title, .. } = &mut e.event {
            *title = text;
        }
        for (header, with_id, with_meta, with_version) in
            [(true, true, true, false), (true, true, true, true), (true, false, false, false), (false, false, true, false)]
        {
            let form = write::JsonForm { new: &e, header, with_id, with_meta, with_version, stored: None };
            proptest::prop_assert_eq!(form.to_line(), serde_json::to_string(&form).unwrap());
        }
        proptest::prop_assert_eq!(e.to_json_line(), serde_json::to_string(&e).unwrap());
        let canonical = write::JsonForm { new: &e, header: true, with_id: false, with_meta: false, with_version: false, stored: None };
        proptest::prop_assert_eq!(e.canonical_content(), serde_json::to_vec(&canonical).unwrap());
        let recorded_at = e.occurred_at.add_nanos(nanos / 3 + 1);
        let env = Envelope::new(e, recorded_at, StreamVersion(nanos as u64 % 1_000 + 1), Position(nanos as u64 + 1));
        proptest::prop_assert_eq!(env.to_json_line(), serde_json::to_string(&env).unwrap());
    }
}

/// A field holding another JSON type than its own is named, with what it should hold and what
/// it held; a JSON array is named as one. (serde says only which type it expected, where.)
#[test]
fn a_value_of_the_wrong_json_type_names_its_field() {
    let refusal = |line: &str| NewEvent::from_json_line(line).unwrap_err().to_string();
    let touch = |extra: &str| {
        format!(
            r#"{{"type":"touchpoint","account":"acme","occurred_at":"2025-03-06T10:00:00Z","channel":"call"{extra}}}"#
        )
    };
    let cases = [
        (touch(r#","schema_version":"1""#), r#"schema_version: an integer is expected, not the string "1""#),
        (touch(r#","tags":["a"]"#), "tags: an object is expected, not an array"),
        (
            r#"{"type":"commitment_delivered","account":"acme","occurred_at":"2025-03-06T10:00:00Z","commitment":"c","accepted":"yes"}"#.into(),
            r#"accepted: true or false is expected, not the string "yes""#,
        ),
        (
            r#"{"type":"survey_answered","account":"acme","occurred_at":"2025-03-06T10:00:00Z","survey":"s","nps":9.5}"#.into(),
            "nps: an integer is expected, not the number 9.5",
        ),
        (
            r#"{"type":"touchpoint","account":"acme","occurred_at":1741255200,"channel":"call"}"#.into(),
            "occurred_at: a string is expected, not the number 1741255200",
        ),
    ];
    for (line, says) in cases {
        assert!(refusal(&line).contains(says), "{line}: {}", refusal(&line));
    }
    let long = touch(&format!(r#","source":{{"a":"{}"}}"#, "x".repeat(100)));
    assert!(refusal(&long).contains("source: a string is expected, not an object"), "{}", refusal(&long));
    let weight = r#"{"type":"commitment_made","account":"acme","occurred_at":"2025-03-06T10:00:00Z","commitment":"c","title":"t","due":"2025-04-01T00:00:00Z","weight":"a very long string of words that goes on past forty characters"}"#;
    assert!(
        refusal(weight).ends_with(r#"not the string "a very long string of words that goes on"…"#),
        "{}",
        refusal(weight)
    );
    assert!(refusal(&format!("[{}]", touch(""))).contains("a JSON array, not an event"));
}

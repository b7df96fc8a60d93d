//! The compiled path against jaq: wherever the compiled path answers, its answer is jaq's.

use proptest::prelude::*;

use super::paths::{PROGRAMS, compiled_values, events, jaq_events, jaq_values, same_values};
use super::{Compiled, Mapping, Record, compile};

fn compiled(program: &str) -> Compiled {
    Mapping::new("t.jq", program).expect("mapping").compile().expect("compile")
}

fn shipped(name: &str) -> (Compiled, String) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/mappings");
    let c = Mapping::from_file(&root.join(format!("{name}.jq"))).expect("mapping").compile().expect("compile");
    let data = std::fs::read_dir(&root)
        .expect("examples")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.file_stem().is_some_and(|s| s == name) && p.extension().is_some_and(|e| e != "jq"))
        .expect("sample export");
    (c, std::fs::read_to_string(data).expect("sample"))
}

#[test]
fn every_sample_record_of_the_shipped_mappings_runs_compiled_and_gives_jaqs_events() {
    for name in ["helpdesk", "crm"] {
        let (c, data) = shipped(name);
        assert!(c.fast.is_some(), "{name}.jq compiles");
        assert_eq!(c.counts.get(), (0, 0));
        for line in data.lines() {
            let (ours, fast) = events(&c, Record::Json(line));
            assert!(fast, "{name}: the compiled path runs {line}");
            assert_eq!(ours, jaq_events(&c, Record::Json(line)), "{name}: {line}");
            assert!(ours.iter().all(Result::is_ok), "{name}: {line}: {ours:?}");
        }
        assert_eq!(c.counts.get(), (data.lines().count() as u64, 0), "{name}: every record ran compiled");
    }
    let (c, data) = shipped("surveys");
    assert!(c.fast.is_some(), "surveys.jq compiles");
    let mut reader = crate::csv::Reader::new(data.as_bytes());
    let mut rows = std::iter::from_fn(|| reader.next_record().expect("read")).map(|r| r.fields.expect("row"));
    let header = rows.next().expect("header");
    let mut answered = 0;
    for row in rows {
        let (ours, fast) = events(&c, Record::Csv(&header, &row));
        assert!(fast, "surveys: the compiled path runs {row:?}");
        assert_eq!(ours, jaq_events(&c, Record::Csv(&header, &row)), "surveys: {row:?}");
        answered += ours.len();
    }
    assert!(answered > 10, "the sample has answers");
}

#[test]
fn programs_outside_the_compiled_part_run_in_jaq_alone() {
    for program in [
        "reduce .[] as $x (0; . + $x)",
        "def f: f; f",
        "def f(g): g; f(.a)",
        ".. | numbers",
        ".a |= 1",
        "label $out | 1",
        "try error catch .",
        "[.[] | numbers] | add",
        "@base64 \"\\(.a)\"",
        ". as [$a] | $a",
        "test(\"a\")",
    ] {
        assert!(compiled(program).fast.is_none(), "{program}");
        assert!(!Mapping::new("t.jq", program).unwrap().runs_compiled(), "{program}");
    }
    // A definition shadows the builtin of its name.
    let c = compiled("def length: 7; length");
    assert_eq!(compiled_values(&c, "[]"), Some(vec!["7".to_owned()]));
}

/// A JSON record for the programs: a small object whose fields take odd shapes too.
fn record() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        (-5i64..2_000_000_000_000).prop_map(|n| n.to_string()),
        Just("9223372036854775807".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("-0".to_owned()),
        Just("1.5".to_owned()),
        Just("1e2".to_owned()),
        Just("2.0".to_owned()),
        Just("0".to_owned()),
        Just("\"abcxyz\"".to_owned()),
        Just("\"ABC\"".to_owned()),
        Just("\"é€\"".to_owned()),
        Just("\"a\\\"b\\\\c\\n\"".to_owned()),
        Just("\"12\"".to_owned()),
        Just("\"007\"".to_owned()),
        Just("\"-3\"".to_owned()),
        Just("\"2024-01-03 15:42:00\"".to_owned()),
        Just("\"2024-01-03T15:42:00Z\"".to_owned()),
        Just("\"2024-01-03T15:42:00.25Z\"".to_owned()),
        Just("\"03/01/2024 15:42\"".to_owned()),
        Just("\"\"".to_owned()),
    ];
    let value = scalar.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            proptest::collection::vec(("[abn]", inner), 0..3).prop_map(|kv| {
                let fields: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    });
    proptest::collection::vec(("a|b|n|m|s|t|id|list|a", value), 0..8).prop_map(|kv| {
        // Keys may repeat: jaq keeps the last value at the first place.
        let fields: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", fields.join(","))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(rapport_core::testing::cases(256)))]

    /// Wherever the compiled path answers, jaq answers the same values.
    #[test]
    fn prop_the_compiled_path_answers_as_jaq(text in record(), k in 0..PROGRAMS.len()) {
        let program = PROGRAMS[k];
        let c = compiled(program);
        if let Some(ours) = compiled_values(&c, &text) {
            let theirs = jaq_values(&c, &text);
            prop_assert!(
                theirs.as_ref().is_some_and(|t| same_values(&ours, t)),
                "{program} on {text}: compiled {ours:?}, jaq {theirs:?}"
            );
        }
    }

    /// The shipped mappings on records shaped like theirs, with fields missing or odd: the
    /// events (or refusals) are jaq's. (Each field takes its sample-like value most often, so
    /// many cases are whole sample-like records, which must run compiled.)
    #[test]
    fn prop_shipped_mappings_give_jaqs_events(
        id in prop_oneof![4 => Just("1".to_owned()), 1 => Just("\"x\"".to_owned()), 1 => Just("null".to_owned()), 1 => Just("1.5".to_owned())],
        org in prop_oneof![4 => Just("\"acme\"".to_owned()), 1 => Just("null".to_owned()), 1 => Just("7".to_owned()), 1 => Just("\"a b\"".to_owned())],
        priority in prop_oneof![4 => Just("\"urgent\"".to_owned()), 1 => Just("\"odd\"".to_owned()), 1 => Just("null".to_owned()), 1 => Just("3".to_owned())],
        created in prop_oneof![4 => Just("\"2024-01-03 15:42:00\"".to_owned()), 1 => Just("\"2024-01-03\"".to_owned()), 1 => Just("\"é\"".to_owned()), 1 => Just("5".to_owned())],
        reply in prop_oneof![4 => Just("1704293580000".to_owned()), 1 => Just("null".to_owned()), 1 => Just("\"soon\"".to_owned()), 1 => Just("1704293580123".to_owned()), 1 => Just("1e300".to_owned())],
        solved in prop_oneof![4 => Just("1704315360".to_owned()), 1 => Just("null".to_owned()), 1 => Just("-1".to_owned()), 1 => Just("0".to_owned()), 1 => Just("99999999999999".to_owned())],
    ) {
        let (c, _) = shipped("helpdesk");
        let text = format!(
            r#"{{"ticket":{{"id":{id},"subject":"S","priority":{priority},"created_at":{created},"organization":{{"external_id":{org}}}}},"metrics":{{"first_reply_at_ms":{reply},"solved_at":{solved}}}}}"#
        );
        let (ours, fast) = events(&c, Record::Json(&text));
        // A ticket shaped like the sample's runs compiled (so this cannot pass by deferring).
        let plain = id == "1" && org == "\"acme\"" && priority == "\"urgent\"" && created.len() == 21 && reply == "1704293580000" && solved == "1704315360";
        prop_assert!(fast || !plain, "{} runs compiled", text);
        prop_assert_eq!(ours, jaq_events(&c, Record::Json(&text)), "{}", text);
    }
}

/// Records on which each of [`PROGRAMS`] but `error` answers in the compiled path.
const RECORDS: &[&str] = &[
    r#"{"a":{"b":1},"b":2,"n":1704293580123,"m":3,"s":"abcxyz","t":"2024-01-03 15:42:00","id":7,"list":[1,2,3]}"#,
    r#"{"a":null,"b":"q","n":12,"m":12,"s":"12","t":"2024-01-03T15:42:00Z","list":[]}"#,
    r#"{"a":false,"b":null,"n":5,"m":-4,"s":"ABCXYZ","t":"03/01/2024 15:42","list":[5]}"#,
];

#[test]
fn each_program_of_the_property_runs_compiled_somewhere_and_as_jaq() {
    for program in PROGRAMS.iter().filter(|p| !p.starts_with("error")) {
        let c = compiled(program);
        let mut answered = 0;
        for text in RECORDS {
            if let Some(ours) = compiled_values(&c, text) {
                answered += 1;
                let theirs = jaq_values(&c, text);
                assert!(
                    theirs.as_ref().is_some_and(|t| same_values(&ours, t)),
                    "{program} on {text}: {ours:?} {theirs:?}"
                );
            }
        }
        assert!(answered > 0, "{program} runs compiled on one of the records");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(rapport_core::testing::cases(128)))]

    /// The survey mapping on CSV rows with odd cells (blank, non-numeric, other dates and
    /// questions): the events (or refusals) are jaq's.
    #[test]
    fn prop_csv_rows_give_jaqs_events(
        score in prop_oneof![1 => Just(""), 4 => Just("10"), 1 => Just("3"), 1 => Just("x"), 1 => Just("007"), 1 => Just("-1"), 1 => Just("4.5")],
        question in prop_oneof![4 => Just("How likely are you to recommend us?"), 1 => Just("How satisfied were you?"), 1 => Just("Other")],
        comment in prop_oneof![Just(""), Just("fine"), Just("\"quoted\" é")],
        at in prop_oneof![4 => Just("05/02/2024 16:33"), 1 => Just("2024-02-05"), 1 => Just("31/02/2024 10:00"), 1 => Just("")],
        company in prop_oneof![4 => Just("happyco"), 1 => Just(""), 1 => Just("a b")],
    ) {
        let (c, _) = shipped("surveys");
        let header: Vec<String> = ["Response ID", "Campaign", "Company ID", "Question", "Score", "Comment", "Submitted At"]
            .map(String::from)
            .to_vec();
        let row: Vec<String> = ["1", "2024-q1", company, question, score, comment, at].map(String::from).to_vec();
        let (ours, fast) = events(&c, Record::Csv(&header, &row));
        // A row shaped like the sample's runs compiled (so this cannot pass by deferring).
        let plain = score == "10" && question.starts_with("How likely") && at == "05/02/2024 16:33" && company == "happyco";
        prop_assert!(fast || !plain, "{:?} runs compiled", row);
        prop_assert_eq!(ours, jaq_events(&c, Record::Csv(&header, &row)), "{:?}", row);
    }
}

#[test]
fn the_node_count_is_bounded() {
    // Each level of definitions doubles the inlined body.
    let mut program = String::from("def f0: .a;");
    for i in 1..20 {
        program.push_str(&format!(" def f{i}: f{} + f{};", i - 1, i - 1));
    }
    program.push_str(" f19");
    assert!(compile::compile(&program).is_none());
    assert!(compile::compile("def f0: .a; def f1: f0 + f0; f1").is_some());
}

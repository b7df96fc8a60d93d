//! Upcasting older JSON shapes: a service's own older shape of every event type (a fixture
//! file, and a property test over every type) reads as today's events through the steps it
//! registers; rapport's own version 1 reads through the built-in step; chains that fail, loop
//! or run long are refused with the type and version; a current line never reaches a step.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use rapport_core::testing::strategies::{arb_metadata, arb_new_event};
use rapport_core::upcast::{UPCAST_STEPS_MAX, UpcastError, Upcasters};
use rapport_core::{Envelope, EventKind, NewEvent, ParseEventError, Position, StreamVersion, Timestamp};
use serde_json::{Map, Value, json};

/// The older shape a made-up service logged, in two versions. Version 1:
/// `{"type":"acme.<tag>","schema_version":1,"customer":…,"at":…,"data":{<fields>}}` with the
/// metadata's source as `"origin"`; version 2 renamed `customer` to `account`.
fn legacy(e: &NewEvent) -> String {
    let Value::Object(mut line) = serde_json::from_str::<Value>(&e.to_json_line()).unwrap() else { unreachable!() };
    let mut out = Map::new();
    out.insert("type".into(), json!(format!("acme.{}", e.event.kind().tag())));
    out.insert("schema_version".into(), json!(1));
    out.insert("id".into(), line.remove("id").unwrap());
    out.insert("customer".into(), line.remove("account").unwrap());
    out.insert("at".into(), line.remove("occurred_at").unwrap());
    if let Some(source) = line.remove("source") {
        out.insert("origin".into(), source);
    }
    line.remove("type");
    out.insert("data".into(), Value::Object(line));
    Value::Object(out).to_string()
}

/// The steps that read [`legacy`]: version 1 to 2 renames `customer`; version 2 to today's
/// moves `at`, `origin` and the data's fields up and takes rapport's type.
fn steps() -> Upcasters {
    let mut u = Upcasters::new();
    for kind in EventKind::ALL {
        let tag = format!("acme.{}", kind.tag());
        u.register(&tag, 1, |obj| {
            let customer = obj.remove("customer").ok_or("customer: missing")?;
            obj.insert("account".into(), customer);
            obj.insert("schema_version".into(), json!(2));
            Ok(())
        })
        .unwrap();
        u.register(&tag, 2, move |obj| {
            let Some(Value::Object(data)) = obj.remove("data") else { return Err("data: not an object".into()) };
            let at = obj.remove("at").ok_or("at: missing")?;
            obj.insert("occurred_at".into(), at);
            if let Some(origin) = obj.remove("origin") {
                obj.insert("source".into(), origin);
            }
            obj.extend(data);
            obj.insert("type".into(), json!(kind.tag()));
            Ok(())
        })
        .unwrap();
    }
    u
}

fn fixtures() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(rapport_core::testing::cases(256)))]

    /// Every event type, with any metadata, written in the older shape, reads back as the
    /// event it was, id and metadata included; the stored form too.
    #[test]
    fn every_type_in_an_older_shape_reads_as_todays_event(e in arb_new_event(), meta in arb_metadata()) {
        let e = e.with_meta(meta);
        let u = steps();
        let old = legacy(&e);
        prop_assert_eq!(NewEvent::from_json_line_with(&old, &u).map_err(|e| e.to_string()), Ok(e.clone()));
        // Without the steps the shape is refused as the parser refuses it.
        prop_assert!(NewEvent::from_json_line(&old).is_err());
        // The stored form, with the store's fields beside the older shape's.
        let mut stored: Map<String, Value> = serde_json::from_str(&old).unwrap();
        stored.insert("recorded_at".into(), json!("2030-01-01T00:00:00Z"));
        stored.insert("stream_version".into(), json!(3));
        stored.insert("position".into(), json!(9));
        let env = Envelope::from_json_line_with(&Value::Object(stored).to_string(), &u).unwrap();
        prop_assert_eq!(env, Envelope::new(e, Timestamp::from_unix_seconds(1_893_456_000), StreamVersion(3), Position(9)));
    }

    /// rapport's own version 1: the same fields, no metadata; any event of any type that has a
    /// version 1 (the types added at version 2 refuse it).
    #[test]
    fn rapport_version_1_lines_read_through_the_built_in_step(e in arb_new_event()) {
        let mut line: Map<String, Value> = serde_json::from_str(&e.to_json_line()).unwrap();
        line.insert("schema_version".into(), json!(1));
        let line = Value::Object(line).to_string();
        if e.event.kind().first_schema_version() > 1 {
            let refused = NewEvent::from_json_line(&line);
            prop_assert!(matches!(refused, Err(ParseEventError::SchemaVersion { version: 1, .. })), "{:?}", refused);
            return Ok(());
        }
        prop_assert_eq!(NewEvent::from_json_line(&line), Ok(e.clone()));
        // Stating the current version is the same line.
        let current = line.replace("\"schema_version\":1", "\"schema_version\":2");
        prop_assert_eq!(NewEvent::from_json_line(&current), Ok(e));
    }
}

#[test]
fn the_older_shape_fixture_reads_as_todays_events() {
    // The fixture was written once from the documented examples, with metadata on every
    // other one, through `legacy`; `legacy.expected.jsonl` holds the events it must read as.
    let (old, expected) = (fixtures().join("legacy.jsonl"), fixtures().join("legacy.expected.jsonl"));
    if std::env::var_os("RAPPORT_WRITE_SAMPLES").is_some() {
        let docs = std::fs::read_to_string(fixtures().join("../../../../docs/event-format.md")).unwrap();
        let events: Vec<NewEvent> = docs
            .lines()
            .filter(|l| l.starts_with("{\"type\":"))
            .enumerate()
            .map(|(i, l)| {
                let e = NewEvent::from_json_line(l).unwrap();
                if i % 2 == 0 { e.with_meta(rapport_core::Metadata::new().with_source("acme-v1").unwrap()) } else { e }
            })
            .collect();
        let lines = |f: &dyn Fn(&NewEvent) -> String| events.iter().map(f).collect::<Vec<_>>().join("\n") + "\n";
        std::fs::write(&old, lines(&legacy)).unwrap();
        std::fs::write(&expected, lines(&|e: &NewEvent| e.to_json_line())).unwrap();
    }
    let u = steps();
    let old = std::fs::read_to_string(old).unwrap();
    let expected = std::fs::read_to_string(expected).unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    for (line, want) in old.lines().zip(expected.lines()) {
        let e = NewEvent::from_json_line_with(line, &u).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(e.to_json_line(), want);
        kinds.insert(e.event.kind());
    }
    assert_eq!(kinds.len(), EventKind::ALL.len(), "every type");
}

#[test]
fn a_current_line_never_reaches_a_step() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut u = Upcasters::new();
    let seen = calls.clone();
    u.register("touchpoint", 1, move |_| {
        seen.fetch_add(1, Ordering::Relaxed);
        Err("not wanted".into())
    })
    .unwrap_err(); // rapport's own step holds (touchpoint, 1)
    let seen = calls.clone();
    u.register("call_logged", 1, move |obj| {
        seen.fetch_add(1, Ordering::Relaxed);
        obj.insert("type".into(), json!("touchpoint"));
        obj.insert("channel".into(), json!("call"));
        Ok(())
    })
    .unwrap();
    let line = r#"{"type":"touchpoint","account":"a","occurred_at":"2025-01-01T00:00:00Z","channel":"call"}"#;
    let current = NewEvent::from_json_line_with(line, &u).unwrap();
    // A current line with a mistake is refused as it was, without any step.
    let bad = line.replace("call", "fax");
    assert!(NewEvent::from_json_line_with(&bad, &u).unwrap_err().to_string().starts_with("channel:"));
    assert_eq!(calls.load(Ordering::Relaxed), 0);
    let old = r#"{"type":"call_logged","account":"a","occurred_at":"2025-01-01T00:00:00Z"}"#;
    let upcast = NewEvent::from_json_line_with(old, &u).unwrap();
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    assert_eq!(upcast, current, "the same content, so the same derived id");
}

#[test]
fn steps_that_fail_loop_or_are_missing_are_refused_naming_type_and_version() {
    let mut u = Upcasters::new();
    assert_eq!(
        u.register("touchpoint", 2, |_| Ok(())).unwrap_err(),
        UpcastError::NotOlder { tag: "touchpoint".into(), version: 2, current: 2 }
    );
    assert!(matches!(u.register("touchpoint", 1, |_| Ok(())), Err(UpcastError::Duplicate { version: 1, .. })));
    u.register("fails", 1, |_| Err("the export lost its dates".into())).unwrap();
    u.register("stays", 1, |_| Ok(())).unwrap();
    u.register("loops", 1, |obj| {
        obj.insert("schema_version".into(), json!(2));
        Ok(())
    })
    .unwrap();
    u.register("loops", 2, |obj| {
        obj.insert("schema_version".into(), json!(1));
        Ok(())
    })
    .unwrap();
    u.register("gap", 1, |obj| {
        obj.insert("schema_version".into(), json!(5));
        Ok(())
    })
    .unwrap();
    let refused = |tag: &str| {
        let line = format!(r#"{{"type":"{tag}","account":"a","occurred_at":"2025-01-01T00:00:00Z"}}"#);
        match NewEvent::from_json_line_with(&line, &u) {
            Err(ParseEventError::Upcast(e)) => e,
            other => panic!("{tag}: {other:?}"),
        }
    };
    assert_eq!(refused("fails").to_string(), "upcasting fails version 1: the export lost its dates");
    assert!(matches!(refused("stays"), UpcastError::NoProgress { version: 1, .. }));
    assert!(matches!(refused("loops"), UpcastError::NoProgress { .. }), "{UPCAST_STEPS_MAX} steps at most");
    assert_eq!(refused("gap"), UpcastError::Missing { tag: "gap".into(), version: 5 });
    // A type no step knows is refused as the parser refuses it.
    let unknown = r#"{"type":"nobody","account":"a","occurred_at":"2025-01-01T00:00:00Z"}"#;
    assert!(matches!(NewEvent::from_json_line_with(unknown, &u), Err(ParseEventError::UnknownType { .. })));
    // rapport's version 1 has no metadata.
    let v1 = r#"{"type":"touchpoint","schema_version":1,"account":"a","occurred_at":"2025-01-01T00:00:00Z","channel":"call","actor":"ann"}"#;
    assert!(NewEvent::from_json_line(v1).unwrap_err().to_string().contains("actor: schema version 1 has no metadata"));
    // A version newer than this build's, with no step, is refused naming it.
    let v9 = v1.replace("\"schema_version\":1", "\"schema_version\":9").replace(",\"actor\":\"ann\"", "");
    assert!(matches!(
        NewEvent::from_json_line(&v9),
        Err(ParseEventError::SchemaVersion { version: 9, current: 2, .. })
    ));
}

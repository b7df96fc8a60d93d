//! `docs/event.schema.json`: generated from the parser's tables, it accepts every documented
//! example and refuses what the parser refuses for shape (unknown fields, fields of another
//! type, wrong JSON types, missing fields).

use rapport_core::NewEvent;
use rapport_core::json::event_schema;
use serde_json::Value;

fn docs() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

/// A validator for the keywords the generated schema uses (and no others: an unknown keyword
/// fails the test rather than being skipped).
fn valid(schema: &Value, v: &Value) -> bool {
    schema.as_object().expect("a schema is an object").iter().all(|(k, s)| match k.as_str() {
        "$schema" | "title" | "description" | "format" | "default" => true,
        "type" => {
            let is = |t: &Value| match t.as_str().unwrap() {
                "object" => v.is_object(),
                "string" => v.is_string(),
                "boolean" => v.is_boolean(),
                "number" => v.is_number(),
                "integer" => v.is_i64() || v.is_u64(),
                "null" => v.is_null(),
                other => panic!("type {other}"),
            };
            match s.as_array() {
                Some(any) => any.iter().any(is),
                None => is(s),
            }
        }
        "const" => v == s,
        "enum" => s.as_array().unwrap().contains(v),
        "required" => {
            v.as_object().is_none_or(|o| s.as_array().unwrap().iter().all(|r| o.contains_key(r.as_str().unwrap())))
        }
        "properties" => v
            .as_object()
            .is_none_or(|o| s.as_object().unwrap().iter().all(|(name, sub)| o.get(name).is_none_or(|x| valid(sub, x)))),
        "additionalProperties" => {
            let known = schema.get("properties").and_then(Value::as_object);
            let unknown = |k: &String| known.is_none_or(|p| !p.contains_key(k));
            v.as_object().is_none_or(|o| {
                o.iter().filter(|(k, _)| unknown(k)).all(|(_, x)| match s {
                    Value::Bool(false) => false,
                    sub => valid(sub, x),
                })
            })
        }
        "propertyNames" => v.as_object().is_none_or(|o| o.keys().all(|k| valid(s, &Value::from(k.as_str())))),
        "maxProperties" => v.as_object().is_none_or(|o| o.len() as u64 <= s.as_u64().unwrap()),
        "oneOf" => s.as_array().unwrap().iter().filter(|sub| valid(sub, v)).count() == 1,
        "anyOf" => s.as_array().unwrap().iter().any(|sub| valid(sub, v)),
        "allOf" => s.as_array().unwrap().iter().all(|sub| valid(sub, v)),
        "not" => !valid(s, v),
        "minimum" => v.as_f64().is_none_or(|x| x >= s.as_f64().unwrap()),
        "maximum" => v.as_f64().is_none_or(|x| x <= s.as_f64().unwrap()),
        "exclusiveMinimum" => v.as_f64().is_none_or(|x| x > s.as_f64().unwrap()),
        "minLength" => v.as_str().is_none_or(|x| x.chars().count() as u64 >= s.as_u64().unwrap()),
        "maxLength" => v.as_str().is_none_or(|x| x.chars().count() as u64 <= s.as_u64().unwrap()),
        other => panic!("the test's validator does not know {other}"),
    })
}

/// Every event line in docs/event-format.md's examples.
fn examples() -> Vec<String> {
    let text = std::fs::read_to_string(docs().join("event-format.md")).unwrap();
    let lines: Vec<String> = text.lines().filter(|l| l.starts_with("{\"type\":")).map(str::to_owned).collect();
    assert!(lines.len() >= 12, "every type has an example");
    lines
}

fn parses(v: &Value) -> bool {
    NewEvent::from_json_line(&v.to_string()).is_ok()
}

#[test]
fn the_published_schema_is_the_generated_one() {
    let generated = serde_json::to_string_pretty(&event_schema()).unwrap() + "\n";
    let path = docs().join("event.schema.json");
    if std::env::var_os("RAPPORT_WRITE_SAMPLES").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(committed == generated, "docs/event.schema.json is stale: run this test with RAPPORT_WRITE_SAMPLES=1");
}

#[test]
fn every_documented_example_validates() {
    let schema = event_schema();
    for line in examples() {
        let v: Value = serde_json::from_str(&line).unwrap();
        assert!(parses(&v), "{line}");
        assert!(valid(&schema, &v), "{line}");
    }
}

#[test]
fn the_schema_refuses_what_the_parser_refuses_for_shape() {
    let schema = event_schema();
    let all_fields: Vec<(&str, Value)> = examples()
        .iter()
        .flat_map(|l| serde_json::from_str::<serde_json::Map<String, Value>>(l).unwrap())
        .filter(|(k, _)| k != "type")
        .map(|(k, v)| (rapport_core::json::SUBMITTED_FIELDS.iter().find(|f| f.0 == k).unwrap().0, v))
        .collect();
    let others = [
        Value::from("x"),
        Value::from(7),
        Value::from(1.5),
        Value::from(true),
        Value::Array(vec![]),
        serde_json::json!({}),
    ];
    for line in examples() {
        let event: serde_json::Map<String, Value> = serde_json::from_str(&line).unwrap();
        let check = |v: &serde_json::Map<String, Value>, what: &str, exact: bool| {
            let v = Value::Object(v.clone());
            let (p, s) = (parses(&v), valid(&schema, &v));
            if exact {
                assert_eq!(p, s, "{what}: parser {p}, schema {s}: {v}");
            } else if !p {
                assert!(!s, "{what}: the parser refuses it, the schema takes it: {v}");
            }
        };
        // An unknown field.
        let mut v = event.clone();
        v.insert("extra".into(), Value::from(1));
        check(&v, "unknown field", true);
        for (name, value) in &event {
            // Missing, or null (which the parser reads as absent): both need it, or neither.
            let mut v = event.clone();
            v.remove(name);
            check(&v, &format!("without {name}"), true);
            let mut v = event.clone();
            v.insert(name.clone(), Value::Null);
            check(&v, &format!("{name} null"), name != "type");
            // Another JSON type.
            for other in &others {
                if std::mem::discriminant(other) != std::mem::discriminant(value) || (value.is_i64() && other.is_f64())
                {
                    let mut v = event.clone();
                    v.insert(name.clone(), other.clone());
                    check(&v, &format!("{name} as {other}"), false);
                }
            }
        }
        // A field of another type, with a value of its own JSON type.
        for (name, value) in &all_fields {
            if !event.contains_key(*name) {
                let mut v = event.clone();
                v.insert((*name).into(), value.clone());
                check(&v, &format!("with {name}"), true);
            }
        }
    }
}

#[test]
fn each_enumerated_value_parses() {
    let schema = event_schema();
    for t in schema["oneOf"].as_array().unwrap() {
        let props = t["properties"].as_object().unwrap();
        for (name, p) in props {
            for tag in p["enum"].as_array().into_iter().flatten() {
                let example = examples()
                    .into_iter()
                    .map(|l| serde_json::from_str::<serde_json::Map<String, Value>>(&l).unwrap())
                    .find(|e| e["type"] == t["properties"]["type"]["const"])
                    .unwrap();
                let mut v = example;
                v.insert(name.clone(), tag.clone());
                assert!(parses(&Value::Object(v)), "{name} = {tag}");
            }
        }
    }
}

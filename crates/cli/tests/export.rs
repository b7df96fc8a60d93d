//! `rapport export`: one account's events out in the canonical form, metadata included, and
//! back into another store with the same scores.

mod support;
use support::{Tmp, generated_store, ok, p, rapport, stderr, succeeds};

const AS_OF: &str = "2025-06-01T00:00:00Z";

#[test]
fn export_then_import_into_a_fresh_store_gives_the_same_scores() {
    let tmp = Tmp::new("export");
    let (store, _) = generated_store(&tmp, "4", "12", "9");
    let noted = tmp.join("noted.jsonl");
    std::fs::write(
        &noted,
        r#"{"type":"touchpoint","account":"acct-1","occurred_at":"2024-06-03T10:00:00Z","channel":"call","actor":"dana@example.com","source":"crm","tags":{"region":"emea"}}
"#,
    )
    .unwrap();
    ok(&["import", "--store", p(&store), p(&noted)]);

    let out = tmp.join("acct-1.jsonl");
    let written = succeeds(&["export", "--store", p(&store), "--account", "acct-1", "--out", p(&out)]);
    assert!(stderr(&written).contains("events of acct-1 to"), "{}", stderr(&written));
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text, ok(&["export", "--store", p(&store), "--account", "acct-1"]), "stdout holds the same lines");
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().all(|l| l["account"] == "acct-1" && l["id"].is_string() && l.get("position").is_none()));
    // Each line states its type's schema version, for a later build to upcast.
    assert!(lines.iter().all(|l| l["schema_version"] == 2), "{text}");
    let with_meta = lines.iter().find(|l| l["actor"] == "dana@example.com").expect("the metadata is exported");
    assert_eq!((&with_meta["source"], &with_meta["tags"]["region"]), (&"crm".into(), &"emea".into()));

    // Into a fresh store: the same account scores the same; back into the first: nothing new.
    let fresh = tmp.join("fresh");
    ok(&["import", "--store", p(&fresh), p(&out)]);
    let score = |s: &std::path::Path| {
        ok(&["score", "--store", p(s), "--account", "acct-1", "--as-of", AS_OF, "--format", "json"])
    };
    assert_eq!(score(&store), score(&fresh));
    assert!(ok(&["import", "--store", p(&store), p(&out)]).contains("appended 0"));

    // An account without events, and an output inside the store, are refused.
    let none = rapport(&["export", "--store", p(&store), "--account", "nobody", "--out", p(&tmp.join("n.jsonl"))]);
    assert_eq!(none.status.code(), Some(1));
    assert!(stderr(&none).contains("has no events") && !tmp.join("n.jsonl").exists(), "{}", stderr(&none));
    let inside = rapport(&["export", "--store", p(&store), "--account", "acct-1", "--out", p(&store.join("x.jsonl"))]);
    assert_eq!(inside.status.code(), Some(2), "{}", stderr(&inside));
}

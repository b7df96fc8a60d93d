//! `rapport erase`: an account's personal text erased (scores, `verify` and re-imports
//! unchanged), a retention run, the erasures listed, and what is refused.

mod support;
use support::{Tmp, generated_store, ok, p, rapport, stderr};

const AS_OF: &str = "2025-06-01T00:00:00Z";

/// Every file under `dir` that holds `needle`.
fn holding(dir: &std::path::Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(holding(&path, needle));
        } else if std::fs::read(&path).unwrap().windows(needle.len()).any(|w| w == needle.as_bytes()) {
            found.push(path.display().to_string());
        }
    }
    found
}

#[test]
fn erase_takes_the_text_and_keeps_scores_verify_and_re_imports() {
    let tmp = Tmp::new("erase");
    let (store, history) = generated_store(&tmp, "4", "12", "9");
    let noted = tmp.join("noted.jsonl");
    std::fs::write(
        &noted,
        r#"{"type":"survey_answered","account":"acct-1","occurred_at":"2024-06-03T10:00:00Z","survey":"q-dana","nps":4,"comment":"Dana Secretperson was unhelpful","actor":"dana@example.com"}
"#,
    )
    .unwrap();
    ok(&["import", "--store", p(&store), p(&noted)]);
    let scores = || ok(&["score", "--store", p(&store), "--as-of", AS_OF, "--format", "json", "--no-checkpoint"]);
    let before = scores();
    let export = || ok(&["export", "--store", p(&store), "--account", "acct-1"]);
    assert!(export().contains("Dana Secretperson") && export().contains("dana@example.com"));
    // A runner's checkpoint and the index snapshot beside the log hold none of it either.
    ok(&["checkpoint", "--store", p(&store)]);
    assert!(std::fs::read_dir(store.join("derived")).unwrap().count() >= 2, "a checkpoint and the index snapshot");
    for secret in ["Dana Secretperson", "dana@example.com"] {
        assert_eq!(holding(&store, secret), Vec::<String>::new(), "sealed at rest");
    }

    let erased = ok(&["erase", "--store", p(&store), "--account", "acct-1", "--reason", "request 2026-7"]);
    assert!(erased.starts_with("erased: ") && erased.contains("account acct-1") && erased.contains("request 2026-7"));
    assert_eq!(scores(), before, "scores are unchanged");
    ok(&["verify", "--store", p(&store)]);
    let from_checkpoint = ok(&["score", "--store", p(&store), "--as-of", AS_OF, "--format", "json"]);
    assert_eq!(from_checkpoint, before, "the checkpoint taken before the erasure still answers the same");
    let after = export();
    assert!(!after.contains("Dana") && !after.contains("dana@"), "{after}");
    assert_eq!(after.lines().count(), before_lines(&history, &noted, "acct-1"));
    // The original lines again: every one a duplicate, erased or not.
    for file in [&history, &noted] {
        assert!(ok(&["import", "--store", p(&store), p(file)]).contains("appended 0"));
    }
    let listed = ok(&["erase", "--store", p(&store), "--list"]);
    assert_eq!(listed.lines().count(), 1);
    assert!(listed.contains("account acct-1") && listed.contains("request 2026-7"), "{listed}");

    // A retention run over every account.
    let kept = ok(&["export", "--store", p(&store), "--account", "acct-2"]);
    let retained = ok(&["erase", "--store", p(&store), "--older-than", "1d", "--reason", "retention 1d"]);
    assert!(retained.contains("every account"), "{retained}");
    assert_ne!(ok(&["export", "--store", p(&store), "--account", "acct-2"]), kept, "acct-2's text is gone too");
    assert_eq!(scores(), before);
    assert_eq!(ok(&["erase", "--store", p(&store), "--list"]).lines().count(), 2);

    // Refused, exit 2: no reason, an unknown account, a control character, no store.
    for args in [
        vec!["--account", "acct-1"],
        vec!["--account", "nobody", "--reason", "r"],
        vec!["--account", "acct-1", "--reason", "a\u{7}b"],
    ] {
        let mut all = vec!["erase", "--store", p(&store)];
        all.extend(args.iter().copied());
        let out = rapport(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    let missing = rapport(&["erase", "--store", p(&tmp.join("none")), "--account", "a", "--reason", "r"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(!tmp.join("none").exists(), "erase creates no store");
}

fn before_lines(history: &std::path::Path, noted: &std::path::Path, account: &str) -> usize {
    [history, noted]
        .iter()
        .flat_map(|f| std::fs::read_to_string(f).unwrap().lines().map(str::to_owned).collect::<Vec<_>>())
        .filter(|l| l.contains(&format!("\"account\":\"{account}\"")))
        .count()
}

#[test]
fn erase_works_in_postgres_too() {
    let Some(url) = rapport_core::testing::pg_url() else { return };
    let tmp = Tmp::new("erase-pg");
    // A unique account, so runs sharing the database do not collide.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let account = format!("erase{}x{nanos}", std::process::id());
    let lines = tmp.join("noted.jsonl");
    std::fs::write(
        &lines,
        format!(
            r#"{{"type":"commitment_made","account":"{account}","occurred_at":"2024-06-01T10:00:00Z","commitment":"c-1","title":"Dana's roadmap","due":"2024-07-01T00:00:00Z"}}
{{"type":"survey_answered","account":"{account}","occurred_at":"2024-06-03T10:00:00Z","survey":"q-dana","nps":4,"comment":"Dana Secretperson was unhelpful","actor":"dana@example.com"}}
"#
        ),
    )
    .unwrap();
    assert!(ok(&["import", "--postgres", &url, p(&lines)]).contains("appended 2"));
    let score = || ok(&["score", "--postgres", &url, "--account", &account, "--as-of", AS_OF, "--format", "json"]);
    let export = || ok(&["export", "--postgres", &url, "--account", &account]);
    let before = score();
    assert!(export().contains("Dana Secretperson") && export().contains("dana@example.com"));
    let erased = ok(&["erase", "--postgres", &url, "--account", &account, "--reason", "request pg-7"]);
    assert!(erased.starts_with("erased: ") && erased.contains("request pg-7"), "{erased}");
    assert_eq!(score(), before, "scores are unchanged");
    let after = export();
    assert!(!after.contains("Dana") && !after.contains("dana@"), "{after}");
    assert_eq!(after.lines().count(), 2);
    assert!(ok(&["import", "--postgres", &url, p(&lines)]).contains("appended 0, duplicates 2"));
    assert!(ok(&["erase", "--postgres", &url, "--list"]).contains("request pg-7"));
}

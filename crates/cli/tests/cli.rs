//! End-to-end tests of the `rapport` binary on real temporary stores.

use std::path::{Path, PathBuf};
use std::process::Command;

mod support;
use support::{Tmp, generated_store, ok, p, rapport};

fn generate(tmp: &Tmp, name: &str, accounts: &str, months: &str, seed: &str) -> PathBuf {
    let file = tmp.join(name);
    std::fs::write(&file, ok(&["generate", "--accounts", accounts, "--months", months, "--seed", seed])).unwrap();
    file
}

const AS_OF: &str = "2025-01-15T00:00:00Z";

#[test]
fn import_then_score_then_reimport_is_idempotent() {
    let tmp = Tmp::new("basic");
    let file = generate(&tmp, "h.jsonl", "6", "12", "3");
    let n = std::fs::read_to_string(&file).unwrap().lines().count();
    let store = tmp.join("store");
    let first = ok(&["import", "--store", p(&store), p(&file)]);
    assert!(first.contains(&format!("appended {n}, duplicates 0, rejected 0")), "{first}");
    let table = ok(&["score", "--store", p(&store), "--as-of", AS_OF]);
    assert!(table.starts_with("account"), "{table}");
    assert_eq!(table.lines().filter(|l| l.starts_with("acct-")).count(), 6, "{table}");
    let json = ok(&["score", "--store", p(&store), "--as-of", AS_OF, "--format", "json", "--account", "acct-2"]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["account"], "acct-2");
    assert_eq!(v["model"], "rapport-health/1");
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let want = ["account", "as_of", "evidence", "fingerprint", "health", "model", "profile", "trend", "trust"];
    assert_eq!(keys, want, "{v}");
    assert!(v["profile"]["segment"].is_string() && v["trend"]["direction"].is_string() && v["as_of"] == AS_OF, "{v}");
    for k in ["score", "confidence", "band", "factors"] {
        assert!(v["trust"].get(k).is_some() && v["health"].get(k).is_some(), "{k} in {v}");
    }
    let again = ok(&["import", "--store", p(&store), p(&file)]);
    assert!(again.contains(&format!("appended 0, duplicates {n}")), "{again}");
    assert_eq!(
        ok(&["verify", "--store", p(&store)]).lines().next(),
        Some(format!("ok: {n} events, 6 accounts").as_str())
    );
}

#[test]
fn renewals_list_the_accounts_renewing_within_the_window_most_at_risk_first() {
    let tmp = Tmp::new("renewals");
    // Generated histories start on 2024-01-01 (the CLI's default); the first profiles renew a
    // year on.
    let (store, _) = generated_store(&tmp, "6", "12", "3");
    let as_of = "2024-11-15T00:00:00Z";
    let table = ok(&["renewals", "--store", p(&store), "--as-of", as_of, "--within", "90d"]);
    assert!(table.starts_with("account"), "{table}");
    assert_eq!(table.lines().filter(|l| l.starts_with("acct-")).count(), 6, "{table}");
    let json = ok(&["renewals", "--store", p(&store), "--as-of", as_of, "--format", "json"]);
    let rows: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 6);
    let risk: Vec<f64> = rows.iter().map(|r| r["at_renewal"].as_f64().unwrap()).collect();
    assert!(risk.windows(2).all(|w| w[0] <= w[1]), "most at risk first: {risk:?}");
    assert!(rows.iter().all(|r| r["days_left"].as_f64().unwrap() <= 90.0));
    // A window that holds no renewal says so; a malformed one is a usage error.
    let none = ok(&["renewals", "--store", p(&store), "--as-of", as_of, "--within", "1d"]);
    assert!(none.contains("no account renews within 1 days"), "{none}");
    let out = rapport(&["renewals", "--store", p(&store), "--within", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    // The scores carry the profile as of the instant and health from the evidence alone.
    let json = ok(&["score", "--store", p(&store), "--as-of", as_of, "--format", "json", "--account", "acct-2"]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert!(v["profile"]["segment"].is_string(), "{v}");
    assert!(v["evidence"]["score"].is_number(), "{v}");
    // Every score and factor reports its interval, and whether the band is tentative.
    let interval =
        |x: &serde_json::Value| x["interval"].as_array().map(|a| (a[0].as_f64().unwrap(), a[1].as_f64().unwrap()));
    let (lo, hi) = interval(&v["health"]).unwrap();
    let score = v["health"]["score"].as_f64().unwrap();
    assert!(lo <= score && score <= hi, "{v}");
    assert!(v["health"]["tentative"].is_boolean() && v["trust"]["tentative"].is_boolean());
    for f in v["health"]["factors"].as_array().unwrap().iter().chain(v["trust"]["factors"].as_array().unwrap()) {
        let (lo, hi) = interval(f).unwrap();
        let value = f["value"].as_f64().unwrap();
        assert!(lo <= value + 1e-9 && value <= hi + 1e-9, "{f}");
    }
}

#[test]
fn a_model_file_scores_each_segment_under_its_model_and_says_which() {
    let tmp = Tmp::new("models");
    let (store, _) = generated_store(&tmp, "10", "12", "3");
    let model = tmp.join("model.json");
    std::fs::write(
        &model,
        r#"{"default": {"id": "acme"}, "segments": {"enterprise": {"id": "acme-enterprise", "version": 3}}}"#,
    )
    .unwrap();
    let as_of = "2024-11-15T00:00:00Z";
    let json = ok(&["score", "--store", p(&store), "--as-of", as_of, "--format", "json", "--model", p(&model)]);
    let rows: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 10);
    for r in &rows {
        let want = if r["profile"]["segment"] == "enterprise" { "acme-enterprise/3" } else { "acme/1" };
        assert_eq!(r["model"], want, "{r}");
        assert_eq!(r["health"]["model"], want);
        assert_eq!(r["fingerprint"].as_str().map(str::len), Some(16), "{r}");
    }
    assert!(rows.iter().any(|r| r["model"] == "acme-enterprise/3") && rows.iter().any(|r| r["model"] == "acme/1"));
    // The timeline names the model on its first line.
    let acct = rows.iter().find(|r| r["model"] == "acme-enterprise/3").unwrap()["account"].as_str().unwrap().to_owned();
    let line = ok(&["timeline", "--store", p(&store), "--account", &acct, "--as-of", as_of, "--model", p(&model)]);
    assert!(line.lines().nth(1).is_some_and(|l| l.ends_with("acme-enterprise/3")), "{line}");
    // A model file that is not one is refused before anything is read, naming the file.
    std::fs::write(&model, r#"{"default": {"weights": 1}}"#).unwrap();
    let out = rapport(&["score", "--store", p(&store), "--model", p(&model)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("model.json"));
}

#[test]
fn explain_splits_a_change_by_factor_and_tells_a_model_change_apart() {
    let tmp = Tmp::new("explain");
    let (store, _) = generated_store(&tmp, "5", "12", "4");
    let (from, to) = ("2024-06-01T00:00:00Z", "2024-12-01T00:00:00Z");
    let args = ["explain", "--store", p(&store), "--account", "acct-2", "--from", from, "--to", to];
    let table = ok(&args);
    assert!(table.starts_with(&format!("acct-2: {from} → {to};")), "{table}");
    for line in ["trust ", "health ", "  reliability ", "  engagement "] {
        assert!(table.lines().any(|l| l.starts_with(line)), "no {line:?} in {table}");
    }
    // JSON: the factors add up to each score's change, whose ends are what `score` says.
    let json: serde_json::Value = serde_json::from_str(&ok(&[&args[..], &["--format", "json"]].concat())).unwrap();
    for score in ["trust", "health"] {
        let c = &json[score];
        let sum: f64 = c["factors"].as_array().unwrap().iter().map(|f| f["delta"].as_f64().unwrap()).sum();
        assert!((sum - c["delta"].as_f64().unwrap()).abs() < 1e-9, "{c}");
        for (end, at) in [("from", from), ("to", to)] {
            let s = ok(&["score", "--store", p(&store), "--account", "acct-2", "--as-of", at, "--format", "json"]);
            let s: serde_json::Value = serde_json::from_str(s.trim()).unwrap();
            let (a, b) = (c[end]["score"].as_f64().unwrap(), s[score]["score"].as_f64().unwrap());
            assert!((a - b).abs() < 1e-9, "{score} {end}: {a} vs {b}");
        }
    }
    assert!(json["window_events"].as_u64().unwrap() > 0);
    // Two models at one instant: the change is the model's alone.
    let model = tmp.join("model.json");
    std::fs::write(&model, r#"{"default": {"id": "trusting", "weights": {"trust": 0.8}}}"#).unwrap();
    let base = tmp.join("base.json");
    std::fs::write(&base, "{}").unwrap();
    let explain = ["explain", "--store", p(&store), "--account", "acct-2"];
    let at = [&explain[..], &["--at", to, "--from-model", p(&base), "--model", p(&model)]].concat();
    let json = ok(&[&at[..], &["--format", "json"]].concat());
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["model_from"]["name"], "rapport-health/1");
    assert_eq!(json["model_to"]["name"], "trusting/1");
    for f in json["health"]["factors"].as_array().unwrap() {
        assert_eq!((f["time"].as_f64(), f["events"].as_f64()), (Some(0.0), Some(0.0)), "{f}");
    }
    assert!(ok(&at).lines().next().unwrap().contains("model rapport-health/1 ("), "both models are named");
    // What a backfill changed: the same instant, known before it and after it.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let before = rapport_core::Timestamp::now().to_string();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let old = tmp.join("old.jsonl");
    let line = r#"{"type":"survey_answered","account":"acct-2","occurred_at":"2024-02-01T00:00:00Z","survey":"s-old","nps":1}"#;
    std::fs::write(&old, format!("{line}\n")).unwrap();
    ok(&["import", "--store", p(&store), p(&old)]);
    let backfill = [&explain[..], &["--at", to, "--from-known-at", &before]].concat();
    let json: serde_json::Value = serde_json::from_str(&ok(&[&backfill[..], &["--format", "json"]].concat())).unwrap();
    assert_eq!(json["window_events"], 1, "{json}");
    assert!(
        json["health"]["factors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "nps" && f["events"].as_f64() < Some(0.0))
    );
    assert!(ok(&backfill).contains(&format!("known at {before} → now")));
    let later = [&explain[..], &["--at", to, "--known-at", to, "--from-known-at", &before]].concat();
    refused(&later, 2, "later than the end");

    // Refused: an end before the start, no instant, an account without events.
    refused(&["explain", "--store", p(&store), "--account", "acct-2", "--from", to, "--to", from], 2, "later than");
    refused(&["explain", "--store", p(&store), "--account", "acct-2"], 2, "--from");
    refused(&["explain", "--store", p(&store), "--account", "nobody", "--at", to], 1, "has no events");
}

#[test]
fn a_bad_line_fails_atomically_and_names_the_line() {
    let tmp = Tmp::new("atomic");
    let file = generate(&tmp, "h.jsonl", "3", "6", "1");
    let mut text = std::fs::read_to_string(&file).unwrap();
    let n = text.lines().count();
    text.push_str("{\"type\":\"touchpoint\",\"account\":\"acme\",\"occurred_at\":\"2025-02-30T00:00:00Z\",\"channel\":\"call\"}\n");
    std::fs::write(&file, text).unwrap();
    let store = tmp.join("store");
    let out = rapport(&["import", "--store", p(&store), p(&file)]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("h.jsonl:{}: occurred_at:", n + 1)), "{err}");
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
    assert!(!err.contains("panicked") && !err.contains("Backtrace"));
    // Nothing was appended, so the store this import made is not left behind.
    assert!(!store.exists(), "an empty store made by the failed import");
    // A store that was there stays, as it was.
    ok(&["import", "--store", p(&store), "/dev/null"]);
    let out = rapport(&["import", "--store", p(&store), p(&file)]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        ok(&["verify", "--store", p(&store)]).lines().next(),
        Some("ok: 0 events, 0 accounts"),
        "nothing appended"
    );
}

#[test]
fn skip_invalid_appends_the_rest_and_writes_rejects() {
    let tmp = Tmp::new("skip");
    let file = tmp.join("mixed.jsonl");
    std::fs::write(
        &file,
        concat!(
            "{\"type\":\"touchpoint\",\"account\":\"acme\",\"occurred_at\":\"2025-01-01T00:00:00Z\",\"channel\":\"call\"}\n",
            "{\"type\":\"commitment_delivered\",\"account\":\"acme\",\"occurred_at\":\"2025-01-02T00:00:00Z\",\"commitment\":\"nope\"}\n",
            "not json\n",
            "{\"type\":\"touchpoint\",\"account\":\"acme\",\"occurred_at\":\"2025-01-03T00:00:00Z\",\"channel\":\"email\"}\n",
        ),
    )
    .unwrap();
    let store = tmp.join("store");
    let rejects = tmp.join("rejects.jsonl");
    let out = ok(&["import", "--store", p(&store), p(&file), "--skip-invalid", p(&rejects)]);
    assert!(out.contains("appended 2, duplicates 0, rejected 2"), "{out}");
    let rejected: Vec<serde_json::Value> =
        std::fs::read_to_string(&rejects).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0]["line"], 2);
    assert!(rejected[0]["reason"].as_str().unwrap().starts_with("commitment:"), "{}", rejected[0]);
    assert_eq!(rejected[1]["line"], 3);
}

#[test]
fn outputs_never_overwrite_an_input_or_the_store() {
    let tmp = Tmp::new("rejects-path");
    let file = generate(&tmp, "h.jsonl", "2", "2", "5");
    let before = std::fs::read(&file).unwrap();
    let store = tmp.join("store");
    // The rejects path is the input itself, by its own name and through a hard link.
    let link = tmp.join("link.jsonl");
    std::fs::hard_link(&file, &link).unwrap();
    for rejects in [&file, &link] {
        let out = rapport(&["import", "--store", p(&store), p(&file), "--skip-invalid", p(rejects)]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("is the input file") && err.contains(p(rejects)), "{err}");
        assert_eq!(std::fs::read(&file).unwrap(), before, "the input is untouched");
    }
    // Nor may it land among the store's files, whether the import is to create the store...
    let fresh = tmp.join("fresh");
    let out = rapport(&["import", "--store", p(&fresh), p(&file), "--skip-invalid", p(&fresh.join("r.jsonl"))]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!fresh.exists(), "nothing created");
    // ...or the store exists.
    ok(&["import", "--store", p(&store), p(&file)]);
    let inside = store.join("rejects.jsonl");
    let out = rapport(&["import", "--store", p(&store), p(&file), "--skip-invalid", p(&inside)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("inside the store directory"));
    assert!(!inside.exists());
    // The same for a timeline chart aimed at one of the store's own files.
    let segment = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "rpl"))
        .expect("a segment");
    let kept = std::fs::read(&segment).unwrap();
    let out = rapport(&["timeline", "--store", p(&store), "--account", "acct-0", "--svg", p(&segment)]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read(&segment).unwrap(), kept, "the store's file is untouched");
    assert!(ok(&["verify", "--store", p(&store)]).starts_with("ok: "));
}

#[test]
fn older_history_after_live_events_and_known_at() {
    let tmp = Tmp::new("backfill");
    let live = tmp.join("live.jsonl");
    std::fs::write(
        &live,
        "{\"type\":\"commitment_made\",\"account\":\"acme\",\"occurred_at\":\"2024-12-01T00:00:00Z\",\"commitment\":\"live\",\"title\":\"t\",\"due\":\"2024-12-20T00:00:00Z\"}\n\
         {\"type\":\"commitment_delivered\",\"account\":\"acme\",\"occurred_at\":\"2024-12-10T00:00:00Z\",\"commitment\":\"live\"}\n",
    )
    .unwrap();
    let mut old = String::new();
    for i in 0..5 {
        let m = format!("2024-0{}-01T00:00:00Z", i + 1);
        let due = format!("2024-0{}-15T00:00:00Z", i + 1);
        old.push_str(&format!(
            "{{\"type\":\"commitment_made\",\"account\":\"acme\",\"occurred_at\":\"{m}\",\"commitment\":\"old-{i}\",\"title\":\"t\",\"due\":\"{due}\"}}\n"
        ));
    }
    let old_file = tmp.join("old.jsonl");
    std::fs::write(&old_file, old).unwrap();
    let store = tmp.join("store");
    ok(&["import", "--store", p(&store), p(&live)]);
    let before = ok(&["score", "--store", p(&store), "--as-of", AS_OF, "--format", "json"]);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let known = rapport_core::Timestamp::now().to_string();
    std::thread::sleep(std::time::Duration::from_millis(20));
    ok(&["import", "--store", p(&store), p(&old_file)]);
    let after = ok(&["score", "--store", p(&store), "--as-of", AS_OF, "--format", "json"]);
    let trust =
        |s: &str| serde_json::from_str::<serde_json::Value>(s.trim()).unwrap()["trust"]["score"].as_f64().unwrap();
    assert!(trust(&after) < trust(&before), "the older misses count: {} vs {}", trust(&after), trust(&before));
    let as_known = ok(&["score", "--store", p(&store), "--as-of", AS_OF, "--known-at", &known, "--format", "json"]);
    assert_eq!(as_known, before, "--known-at reproduces the scores known before the backfill");
}

#[test]
fn a_killed_import_completes_on_rerun_with_the_same_scores() {
    let tmp = Tmp::new("kill");
    let file = generate(&tmp, "big.jsonl", "400", "24", "9");
    let store = tmp.join("store");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rapport"))
        .args(["import", "--store", p(&store), p(&file)])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the store holds a segment (on a loaded machine the import may take longer
    // than any fixed wait to make one; a kill before it leaves no store to verify).
    let started = std::time::Instant::now();
    while !store.join("seg-0000000000.rpl").exists() && started.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let _ = child.kill();
    let _ = child.wait();
    ok(&["verify", "--store", p(&store)]);
    ok(&["import", "--store", p(&store), p(&file)]);
    let clean = tmp.join("clean");
    ok(&["import", "--store", p(&clean), p(&file)]);
    let a = ok(&["score", "--store", p(&store), "--as-of", AS_OF, "--format", "json"]);
    let b = ok(&["score", "--store", p(&clean), "--as-of", AS_OF, "--format", "json"]);
    assert_eq!(a, b);
}

#[test]
fn verify_names_the_file_and_offset_of_damage() {
    let tmp = Tmp::new("verify");
    let (store, _) = generated_store(&tmp, "3", "6", "2");
    let seg = store.join("seg-0000000000.rpl");
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    std::fs::write(&seg, bytes).unwrap();
    let out = rapport(&["verify", "--store", p(&store)]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("seg-0000000000.rpl at byte"), "{err}");
    // And scoring refuses to serve it (the damage is not a torn tail: data follows it).
    let out = rapport(&["score", "--store", p(&store), "--as-of", AS_OF]);
    assert!(!out.status.success());
}

#[test]
fn missing_store_is_an_error_for_everything_but_import() {
    let tmp = Tmp::new("missing");
    let store = tmp.join("nope");
    for args in [vec!["score", "--store", p(&store)], vec!["verify", "--store", p(&store)]] {
        let out = rapport(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("no rapport store"), "{args:?}");
    }
    assert!(!store.exists(), "nothing was created");
}

#[test]
fn timeline_writes_a_valid_svg() {
    let tmp = Tmp::new("svg");
    let (store, _) = generated_store(&tmp, "3", "12", "4");
    let svg = tmp.join("acct.svg");
    let table = ok(&["timeline", "--store", p(&store), "--account", "acct-1", "--as-of", AS_OF, "--svg", p(&svg)]);
    assert!(table.lines().count() > 10, "{table}");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(text.trim_end().ends_with("</svg>"));
    assert_eq!(text.matches("<polyline").count(), 2, "trust and health");
    assert!(text.contains("green band") && text.contains("red band"));
    // Well-formed: every element is self-closed or closed.
    let opens = text.matches("<rect").count() + text.matches("<text").count() + text.matches("<circle").count();
    let closes = text.matches("/>").count()
        + text.matches("</text>").count()
        + text.matches("</rect>").count()
        + text.matches("</circle>").count()
        + text.matches("</polyline>").count()
        + text.matches("</svg>").count();
    assert!(closes >= opens, "{opens} opened, {closes} closed");
}

#[test]
fn csv_import_uses_the_documented_columns() {
    let tmp = Tmp::new("csv");
    let file = tmp.join("h.csv");
    std::fs::write(
        &file,
        "type,account,occurred_at,commitment,title,due,weight,accepted,channel,nps,survey\n\
         commitment_made,acme,2024-03-01T00:00:00Z,c-1,SSO,2024-04-01T00:00:00Z,2.0,,,,\n\
         commitment_delivered,acme,2024-03-20T00:00:00Z,c-1,,,,true,,,\n\
         touchpoint,acme,2024-03-21T00:00:00Z,,,,,,call,,\n\
         survey_answered,acme,2024-03-22T00:00:00Z,,,,,,,10,q1\n",
    )
    .unwrap();
    let store = tmp.join("store");
    let out = ok(&["import", "--store", p(&store), "--format", "csv", p(&file)]);
    assert!(out.contains("appended 4"), "{out}");
    // A `.csv` file is CSV without `--format`; `--format jsonl` reads it as JSON Lines.
    assert!(ok(&["import", "--store", p(&store), p(&file)]).contains("appended 0, duplicates 4"));
    let as_json = rapport(&["import", "--store", p(&store), "--format", "jsonl", p(&file)]);
    assert!(String::from_utf8_lossy(&as_json.stderr).contains("h.csv:1: "), "{as_json:?}");
    let bad = tmp.join("bad.csv");
    std::fs::write(&bad, "type,acount\ntouchpoint,acme\n").unwrap();
    let out = rapport(&["import", "--store", p(&store), p(&bad)]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.csv:1: header: \"acount\": unknown column"));
}

#[test]
fn sort_by_time_imports_a_csv_export_listed_by_kind() {
    let tmp = Tmp::new("sorted");
    let file = tmp.join("tickets.csv");
    // The status changes listed before the tickets: only valid once ordered by time.
    std::fs::write(
        &file,
        "type,account,occurred_at,escalation,severity\n\
         escalation_resolved,acme,2024-03-03T09:00:00Z,t-2,\n\
         escalation_resolved,acme,2024-03-01T12:00:00Z,t-1,\n\
         escalation_raised,acme,2024-03-01T09:00:00Z,t-1,high\n\
         escalation_raised,acme,2024-03-02T09:00:00Z,t-2,low\n",
    )
    .unwrap();
    let store = tmp.join("store");
    let plain = rapport(&["import", "--store", p(&store), "--format", "csv", p(&file)]);
    assert_eq!(plain.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&plain.stderr).contains("tickets.csv:2: "), "{plain:?}");
    let out = ok(&["import", "--store", p(&store), "--format", "csv", "--sort-by-time", p(&file)]);
    assert!(out.contains("appended 4, duplicates 0"), "{out}");
    let again = ok(&["import", "--store", p(&store), "--format", "csv", "--sort-by-time", p(&file)]);
    assert!(again.contains("appended 0, duplicates 4"), "{again}");
}

#[test]
fn generate_is_deterministic() {
    let a = ok(&["generate", "--accounts", "2", "--months", "3", "--seed", "7"]);
    let b = ok(&["generate", "--accounts", "2", "--months", "3", "--seed", "7"]);
    assert_eq!(a, b);
    assert!(a.lines().all(|l| rapport_core::NewEvent::from_json_line(l).is_ok()));
}

#[test]
fn postgres_is_an_alternative_to_a_store_directory() {
    let Some(url) = rapport_core::testing::pg_url() else { return };
    let tmp = Tmp::new("pg");
    // Unique accounts, so runs sharing the database do not collide.
    let tag = format!(
        "pg{}x{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    );
    // Unique accounts, and no ids: each line's id is derived from its (now unique) content.
    let text: String = ok(&["generate", "--accounts", "2", "--months", "6", "--seed", "8"])
        .replace("acct-", &format!("{tag}-"))
        .lines()
        .map(|l| match l.find(",\"id\":\"") {
            Some(i) => format!("{}{}\n", &l[..i], &l[i + 44..]),
            None => format!("{l}\n"),
        })
        .collect();
    let file = tmp.join("h.jsonl");
    std::fs::write(&file, &text).unwrap();
    let n = text.lines().count();
    let out = ok(&["import", "--postgres", &url, p(&file)]);
    assert!(out.contains(&format!("appended {n}, duplicates 0")), "{out}");
    let out = ok(&["import", "--postgres", &url, p(&file)]);
    assert!(out.contains(&format!("appended 0, duplicates {n}")), "{out}");
    // The same events score the same in a file store.
    let store = tmp.join("store");
    ok(&["import", "--store", p(&store), p(&file)]);
    let account = format!("{tag}-1");
    let a = ok(&["score", "--postgres", &url, "--account", &account, "--as-of", AS_OF, "--format", "json"]);
    let b = ok(&["score", "--store", p(&store), "--account", &account, "--as-of", AS_OF, "--format", "json"]);
    assert_eq!(a, b);
    let v = ok(&["verify", "--postgres", &url]);
    assert!(v.starts_with("ok: "), "{v}");
}

// ---------------------------------------------------------------------------------------------
// Hardening: outputs, messages, read-only commands, closed pipes, rejects, limits.

fn segment_of(store: &Path) -> PathBuf {
    std::fs::read_dir(store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "rpl"))
        .unwrap()
}

fn refused(args: &[&str], code: i32, says: &str) {
    let out = rapport(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert!(err.contains(says), "{args:?}: {err}");
}

#[test]
fn outputs_are_refused_by_identity_through_links_and_dot_dot() {
    let tmp = Tmp::new("identity");
    let (store, file) = generated_store(&tmp, "2", "2", "5");
    let seg = segment_of(&store);
    let head = store.join("HEAD");
    let kept = (std::fs::read(&seg).unwrap(), std::fs::read(&head).unwrap());
    // A symlink and a hard link to a segment, and a symlink to the head record.
    let sym = tmp.join("x.svg");
    std::os::unix::fs::symlink(&seg, &sym).unwrap();
    let hard = tmp.join("y.svg");
    std::fs::hard_link(&seg, &hard).unwrap();
    let to_head = tmp.join("z.jsonl");
    std::os::unix::fs::symlink(&head, &to_head).unwrap();
    let timeline =
        |out: &Path| ["timeline", "--store", p(&store), "--account", "acct-0", "--svg", p(out)].map(String::from);
    for out in [&sym, &hard] {
        let args = timeline(out);
        refused(&args.iter().map(String::as_str).collect::<Vec<_>>(), 2, "store");
    }
    refused(&["import", "--store", p(&store), p(&file), "--skip-invalid", p(&to_head)], 2, "store");
    // A path through a link to the store directory, and one through `..`.
    let alias = tmp.join("alias");
    std::os::unix::fs::symlink(&store, &alias).unwrap();
    refused(
        &["import", "--store", p(&store), p(&file), "--skip-invalid", p(&alias.join("r.jsonl"))],
        2,
        "inside the store",
    );
    let dotted = tmp.join("store").join("..").join("store").join("r.svg");
    let args = timeline(&dotted);
    refused(&args.iter().map(String::as_str).collect::<Vec<_>>(), 2, "inside the store");
    assert_eq!((std::fs::read(&seg).unwrap(), std::fs::read(&head).unwrap()), kept, "the store is untouched");
    assert!(ok(&["verify", "--store", p(&store)]).starts_with("ok: "));
    // A `..` path into a store the import is about to create, by a route that does not exist.
    let fresh = tmp.join("fresh");
    let via = tmp.join("nowhere").join("..").join("fresh");
    refused(
        &["import", "--store", p(&via), p(&file), "--skip-invalid", p(&fresh.join("r.jsonl"))],
        2,
        "inside the store",
    );
    assert!(!fresh.exists(), "nothing created");
}

#[test]
fn every_error_is_one_line_with_outside_text_escaped() {
    let tmp = Tmp::new("oneline");
    let store = tmp.join("store");
    let forged = "rapport: ok\\u001b[32m done";
    let lines = [
        format!(
            "{{\"type\":\"touchpoint\",\"account\":\"acme\",\"occurred_at\":\"2025-03-01T09:00:00Z\",\"channel\":\"call\",\"x\\n{forged}\":1}}"
        ),
        format!("{{\"type\":\"touch\\n{forged}\",\"account\":\"acme\",\"occurred_at\":\"2025-03-01T09:00:00Z\"}}"),
        format!(
            "{{\"type\":\"touchpoint\",\"account\":\"acme\",\"occurred_at\":\"2025-03-01T09:00:00Z\",\"channel\":\"ca\\r\\n{forged}\"}}"
        ),
        "{\"type\":\"touchpoint\",\"account\":\"ac\\u202eme\",\"occurred_at\":\"bad\\u001b[2J\"}".to_string(),
        "\u{1b}[2J\u{1b}[H not json at all".to_string(),
    ];
    for (k, line) in lines.iter().enumerate() {
        // The file's own name carries a newline too.
        let file = tmp.join(&format!("in\n{k}\u{1b}.jsonl"));
        std::fs::write(&file, format!("{line}\n")).unwrap();
        let out = rapport(&["import", "--store", p(&store), p(&file)]);
        assert_eq!(out.status.code(), Some(3), "line {k}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.matches('\n').count(), 1, "line {k}: one line: {err:?}");
        assert!(!err.trim_end().chars().any(rapport_core::escape::is_unsafe_in_line), "line {k}: {err:?}");
    }
    // CSV cells too.
    let csv = tmp.join("h.csv");
    std::fs::write(
        &csv,
        "type,account,occurred_at,channel\ntouchpoint,acme,2025-01-01T00:00:00Z,\"x\n\u{1b}[31mfake\"\n",
    )
    .unwrap();
    let out = rapport(&["import", "--store", p(&store), "--format", "csv", p(&csv)]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.matches('\n').count(), 1, "{err:?}");
    assert!(!err.trim_end().chars().any(rapport_core::escape::is_unsafe_in_line), "{err:?}");
}

#[test]
fn reading_commands_write_nothing_and_run_beside_a_writer() {
    let tmp = Tmp::new("readonly");
    let file = generate(&tmp, "h.jsonl", "3", "4", "2");
    // An existing empty directory is no store: refused, and left empty.
    let empty = tmp.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    for cmd in [
        &["score", "--store", p(&empty)][..],
        &["verify", "--store", p(&empty)],
        &["timeline", "--store", p(&empty), "--account", "a"],
    ] {
        let out = rapport(cmd);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}");
        assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0, "{cmd:?} created nothing");
    }
    let store = tmp.join("store");
    ok(&["import", "--store", p(&store), p(&file)]);
    // Every file, derived/ (the index snapshot) included, with its bytes.
    let listing = |dir: &Path| {
        let mut v: Vec<(String, Vec<u8>)> = Vec::new();
        for sub in [dir.to_path_buf(), dir.join("derived")] {
            for e in std::fs::read_dir(&sub).unwrap().map(|e| e.unwrap()).filter(|e| e.path().is_file()) {
                v.push((e.path().display().to_string(), std::fs::read(e.path()).unwrap()));
            }
        }
        v.sort();
        v
    };
    // A writer holds the store (its lock taken) while every reading command runs.
    let writer = rapport_store_file::FileStore::open(&store).unwrap();
    let before = listing(&store);
    ok(&["score", "--store", p(&store), "--as-of", AS_OF]);
    ok(&["timeline", "--store", p(&store), "--account", "acct-0", "--as-of", AS_OF]);
    assert!(ok(&["verify", "--store", p(&store)]).starts_with("ok: "));
    ok(&["backup", "--store", p(&store), p(&tmp.join("copy"))]);
    assert_eq!(listing(&store), before, "reading wrote nothing");
    drop(writer);
}

#[test]
fn a_closed_or_full_output_is_reported_never_a_panic() {
    let tmp = Tmp::new("pipes");
    let (store, file) = generated_store(&tmp, "40", "12", "4");
    let full = || std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    for args in [
        &["verify", "--store", p(&store)][..],
        &["score", "--store", p(&store), "--as-of", AS_OF],
        &["generate", "--accounts", "50"],
        &["import", "--store", p(&store), p(&file)],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_rapport")).args(args).stdout(full()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("No space left on device") && !err.contains("panicked"), "{args:?}: {err}");
        // A pipe closed before anything is read: a quiet end.
        let mut child = Command::new(env!("CARGO_BIN_EXE_rapport"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
}

#[test]
fn rejects_never_read_their_own_input_and_keep_each_line() {
    let tmp = Tmp::new("stdin-rejects");
    let store = tmp.join("store");
    let input = "{\"type\":\"touchpoint\",\"account\":\"a\",\"occurred_at\":\"2025-01-01T00:00:00Z\",\"channel\":\"call\"}\nnot json\n";
    // Rejects aimed at standard input while importing standard input: refused, not a hang.
    let mut child = Command::new(env!("CARGO_BIN_EXE_rapport"))
        .args(["import", "--store", p(&store), "--skip-invalid", "/dev/stdin", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "hangs");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(2));
    // From standard input, the rejected line is kept in the rejects file.
    let rejects = tmp.join("rejects.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rapport"))
        .args(["import", "--store", p(&store), "--skip-invalid", p(&rejects), "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    let row: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&rejects).unwrap().trim()).unwrap();
    assert_eq!((row["line"].as_u64(), row["text"].as_str()), (Some(2), Some("not json")));
}

#[test]
fn events_dated_in_the_future_are_refused_unless_the_skew_allows_them() {
    let tmp = Tmp::new("future");
    let store = tmp.join("store");
    let at = |t: &str| {
        format!("{{\"type\":\"touchpoint\",\"account\":\"a\",\"occurred_at\":\"{t}\",\"channel\":\"call\"}}\n")
    };
    let typo = tmp.join("typo.jsonl");
    std::fs::write(&typo, at("2062-03-01T00:00:00Z")).unwrap();
    refused(&["import", "--store", p(&store), p(&typo)], 3, "in the future");
    let soon = rapport_core::Timestamp::now().add_nanos(3_600 * 1_000_000_000);
    let skewed = tmp.join("skewed.jsonl");
    std::fs::write(&skewed, at(&soon.to_string())).unwrap();
    refused(&["import", "--store", p(&store), p(&skewed)], 3, "in the future");
    assert!(ok(&["import", "--store", p(&store), "--future-skew", "2h", p(&skewed)]).contains("appended 1"));
    // Whatever `generate` writes imports: a history ending in the future is refused up front.
    refused(&["generate", "--start", "2199-12-01T00:00:00Z"], 2, "after now");
    refused(&["generate", "--months", "600"], 2, "after now");
}

#[test]
fn postgres_logins_say_what_failed_and_take_the_password_from_the_environment() {
    let Some(url) = rapport_core::testing::pg_url() else { return };
    // postgres://user:password@host:port/db, split to rebuild it in other shapes.
    let (scheme_user, rest) = url.split_once('@').expect("a URL with credentials");
    let (user_part, password) = scheme_user.trim_start_matches("postgres://").split_once(':').expect("a password");
    let bare = format!("postgres://{user_part}@{rest}");
    let db = rest.rsplit_once('/').map(|(_, d)| d).unwrap();
    let run_env = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rapport"));
        c.args(args).env_remove("PGPASSWORD").env_remove("PGPASSFILE");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let score = |u: &str| vec!["score".to_string(), "--postgres".into(), u.to_string(), "--as-of".into(), AS_OF.into()];
    let wrong = format!("postgres://{user_part}:not-the-password@{rest}");
    let out = run_env(&score(&wrong).iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("password authentication failed") && !err.contains("not-the-password"), "{err}");
    let missing = url.replace(&format!("/{db}"), "/no_such_database_here");
    let out = run_env(&score(&missing).iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not exist") && !err.contains(password), "{err}");
    // No password in the URL: PGPASSWORD, or a private password file.
    let args = score(&bare);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert!(run_env(&args, &[("PGPASSWORD", password)]).status.success());
    let tmp = Tmp::new("pgpass");
    let passfile = tmp.join("pgpass");
    std::fs::write(&passfile, format!("# rapport\n*:*:*:{user_part}:{password}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(run_env(&args, &[("PGPASSFILE", p(&passfile))]).status.success());
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(!run_env(&args, &[("PGPASSFILE", p(&passfile))]).status.success(), "a file others can read is not used");
}

#[test]
fn a_conflicting_id_in_postgres_is_invalid_input() {
    let Some(url) = rapport_core::testing::pg_url() else { return };
    // A line crafted to share an unkeyed fingerprint with one 2,000 lines later: the later
    // line is refused as invalid input (exit 3) by its number, and nothing is appended.
    let tmp = Tmp::new("pg-twin");
    let tag = format!("twin{}x{}", std::process::id(), rapport_core::Timestamp::now().unix_nanos());
    let mut legit = rapport_core::testing::synth::generate(rapport_core::testing::synth::SynthConfig {
        accounts: 1,
        months: 6,
        seed: 3,
        ..Default::default()
    })
    .find(|e| matches!(e.event, rapport_core::Event::CommitmentMade { .. }))
    .unwrap();
    legit.account = rapport_core::AccountId::new(&tag).unwrap();
    legit.id = rapport_core::EventId::new_v7();
    let twin = rapport_core::testing::forged_twin(&legit);
    let filler: String = ok(&["generate", "--accounts", "30", "--months", "12", "--seed", "8"])
        .replace("acct-", &format!("{tag}-"))
        .lines()
        .take(2_000)
        .map(|l| match l.find(",\"id\":\"") {
            Some(i) => format!("{}{}\n", &l[..i], &l[i + 44..]),
            None => format!("{l}\n"),
        })
        .collect();
    let file = tmp.join("twin.jsonl");
    std::fs::write(&file, format!("{}\n{filler}{}\n", twin.to_json_line(), legit.to_json_line())).unwrap();
    refused(&["import", "--postgres", &url, p(&file)], 3, "twin.jsonl:2002:");
}

//! End-to-end tests of the `rapport` binary on real temporary stores.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};

struct Tmp(PathBuf);

impl Tmp {
    fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "rapport-cli-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    fn join(&self, s: &str) -> PathBuf {
        self.0.join(s)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rapport(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rapport")).args(args).output().expect("run rapport")
}

fn ok(args: &[&str]) -> String {
    let out = rapport(args);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

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
    for k in ["score", "confidence", "band", "factors"] {
        assert!(v["trust"].get(k).is_some() && v["health"].get(k).is_some(), "{k} in {v}");
    }
    let again = ok(&["import", "--store", p(&store), p(&file)]);
    assert!(again.contains(&format!("appended 0, duplicates {n}")), "{again}");
    assert_eq!(ok(&["verify", "--store", p(&store)]).trim(), format!("ok: {n} events, 6 accounts"));
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
    assert_eq!(ok(&["verify", "--store", p(&store)]).trim(), "ok: 0 events, 0 accounts", "nothing appended");
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
    std::thread::sleep(std::time::Duration::from_millis(400));
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
    let file = generate(&tmp, "h.jsonl", "3", "6", "2");
    let store = tmp.join("store");
    ok(&["import", "--store", p(&store), p(&file)]);
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
    let file = generate(&tmp, "h.jsonl", "3", "12", "4");
    let store = tmp.join("store");
    ok(&["import", "--store", p(&store), p(&file)]);
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
    let bad = tmp.join("bad.csv");
    std::fs::write(&bad, "type,acount\ntouchpoint,acme\n").unwrap();
    let out = rapport(&["import", "--store", p(&store), "--format", "csv", p(&bad)]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.csv:1: acount: unknown column"));
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
    let Ok(url) = std::env::var("RAPPORT_PG_URL") else {
        eprintln!("RAPPORT_PG_URL is unset: skipping");
        return;
    };
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

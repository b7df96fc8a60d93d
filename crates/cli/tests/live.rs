//! The commands on the projection runner: `checkpoint`, `score` from it, and `watch` while
//! another process appends.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rapport_core::Timestamp;

mod support;
use support::{Tmp, generated_store, p, rapport, stderr, stdout, succeeds as ok};

/// Two `score --format json` outputs agree: same accounts and bands, scores within 1e-9.
fn assert_same_scores(a: &str, b: &str) {
    let parse = |s: &str| -> Vec<serde_json::Value> {
        s.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
    };
    let (a, b) = (parse(a), parse(b));
    assert_eq!(a.len(), b.len());
    assert!(!a.is_empty());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["account"], y["account"]);
        for m in ["trust", "health"] {
            assert_eq!(x[m]["band"], y[m]["band"], "{m} of {}", x["account"]);
            let (sx, sy) = (x[m]["score"].as_f64().expect("score"), y[m]["score"].as_f64().expect("score"));
            assert!((sx - sy).abs() < 1e-9, "{m} of {}: {sx} vs {sy}", x["account"]);
        }
    }
}

#[test]
fn a_checkpoint_under_segment_models_answers_score_under_them_and_no_other() {
    let tmp = Tmp::new("segments");
    let (store, _) = generated_store(&tmp, "8", "12", "5");
    let model = tmp.0.join("model.json");
    std::fs::write(
        &model,
        r#"{"segments": {"enterprise": {"id": "big", "weights": {"trust": 0.7}}, "smb": {"id": "small"}}}"#,
    )
    .expect("write");
    let saved = stdout(&ok(&["checkpoint", "--store", p(&store), "--model", p(&model)]));
    assert!(saved.starts_with("checkpoint saved: 8 accounts"), "{saved}");
    let at = Timestamp::now().add_days(1.0).to_string();
    let with = |extra: &[&str]| {
        let args = [&["score", "--store", p(&store), "--as-of", &at, "--format", "json"][..], extra].concat();
        ok(&args)
    };
    let from_checkpoint = with(&["--model", p(&model)]);
    assert!(stderr(&from_checkpoint).contains("scored from the checkpoint"), "{}", stderr(&from_checkpoint));
    let from_log = with(&["--model", p(&model), "--no-checkpoint"]);
    assert_same_scores(&stdout(&from_checkpoint), &stdout(&from_log));
    let models: Vec<String> = stdout(&from_checkpoint)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["model"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(models.iter().any(|m| m == "big/1") && models.iter().any(|m| m != "big/1"), "{models:?}");
    // Under the built-in model the checkpoint is another configuration's: the log answers.
    let builtin = with(&[]);
    assert!(stderr(&builtin).contains("checkpoint not used"), "{}", stderr(&builtin));
}

#[test]
fn score_reads_the_checkpoint_and_only_the_events_after_it() {
    let tmp = Tmp::new("checkpoint");
    let (store, _) = generated_store(&tmp, "6", "12", "3");
    let saved = stdout(&ok(&["checkpoint", "--store", p(&store)]));
    assert!(saved.starts_with("checkpoint saved: 6 accounts"), "{saved}");

    // An instant after the checkpoint's: the checkpoint answers, and equals the whole log's fold.
    let at = Timestamp::now().add_days(1.0).to_string();
    let from_checkpoint = ok(&["score", "--store", p(&store), "--as-of", &at, "--format", "json"]);
    assert!(stderr(&from_checkpoint).contains("scored from the checkpoint"), "{}", stderr(&from_checkpoint));
    let from_log = ok(&["score", "--store", p(&store), "--as-of", &at, "--format", "json", "--no-checkpoint"]);
    assert!(!stderr(&from_log).contains("checkpoint"));
    assert_same_scores(&stdout(&from_checkpoint), &stdout(&from_log));

    // More history after the checkpoint: read as the tail.
    let more = tmp.0.join("more.jsonl");
    let text = stdout(&ok(&["generate", "--accounts", "3", "--months", "6", "--seed", "9"])).replace("acct-", "more-");
    let text: String = text
        .lines()
        .map(|l| match l.find(",\"id\":\"") {
            Some(i) => format!("{}{}\n", &l[..i], &l[i + 44..]),
            None => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&more, text).expect("write");
    ok(&["import", "--store", p(&store), p(&more)]);
    let tail = ok(&["score", "--store", p(&store), "--as-of", &at, "--format", "json"]);
    assert!(
        stderr(&tail).contains("events after it") && !stderr(&tail).contains(" 0 events after it"),
        "{}",
        stderr(&tail)
    );
    let whole = ok(&["score", "--store", p(&store), "--as-of", &at, "--format", "json", "--no-checkpoint"]);
    assert_same_scores(&stdout(&tail), &stdout(&whole));
    assert_eq!(stdout(&tail).lines().count(), 9);

    // An instant before the checkpoint's, or a bitemporal question: the log answers.
    let before = ok(&["score", "--store", p(&store), "--as-of", "2025-01-15T00:00:00Z", "--format", "json"]);
    assert!(stderr(&before).contains("after --as-of: scoring from the log"), "{}", stderr(&before));

    // One account: folded from its own events, not from the checkpoint (which would restore
    // every account's state), and the same as that account's line of the checkpoint's answer.
    let one = ok(&["score", "--store", p(&store), "--as-of", &at, "--format", "json", "--account", "more-1"]);
    assert!(!stderr(&one).contains("checkpoint"), "{}", stderr(&one));
    let line = stdout(&tail).lines().find(|l| l.contains("\"account\":\"more-1\"")).expect("more-1's line").to_owned();
    assert_same_scores(&stdout(&one), &format!("{line}\n"));

    // An account without events is refused, as `timeline` and `explain` refuse it, rather than
    // scored as the prior: a mistyped name would otherwise look like a new account.
    let none = rapport(&["score", "--store", p(&store), "--account", "more-77"]);
    assert_eq!(none.status.code(), Some(1), "{}", stderr(&none));
    assert!(
        stderr(&none).contains("account \"more-77\" has no events") && stdout(&none).is_empty(),
        "{}",
        stderr(&none)
    );
}

/// Reads `child`'s stdout lines on a thread until one satisfies `wanted`, for at most `limit`.
fn wait_for_line(child: &mut Child, limit: Duration, wanted: impl Fn(&str) -> bool + Send + 'static) -> Option<String> {
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if wanted(&line) {
                let _ = tx.send(line);
                return;
            }
        }
    });
    rx.recv_timeout(limit).ok()
}

/// `rapport watch` on `store_args`, its first `commitment_overdue` line for `account` after
/// another process imports a commitment falling due in two seconds.
fn watch_sees_an_overdue_commitment(store_args: &[&str], import_args: &[&str], tmp: &Tmp, account: &str) {
    let mut args = vec!["watch", "--format", "json", "--tick", "100ms"];
    args.extend_from_slice(store_args);
    let mut watch = Command::new(env!("CARGO_BIN_EXE_rapport"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start watch");
    // Give it time to catch up and go live, then append from this (other) process.
    std::thread::sleep(Duration::from_millis(700));
    let now = Timestamp::now();
    let due = now.add_nanos(2_000_000_000);
    let line = format!(
        "{{\"type\":\"commitment_made\",\"account\":\"{account}\",\"occurred_at\":\"{now}\",\"commitment\":\"c-1\",\"title\":\"SSO\",\"due\":\"{due}\"}}\n"
    );
    let file = tmp.0.join(format!("{account}.jsonl"));
    std::fs::write(&file, line).expect("write");
    let mut import = import_args.to_vec();
    import.push(p(&file));
    ok(&import);
    let wanted = account.to_owned();
    let seen = wait_for_line(&mut watch, Duration::from_secs(30), move |l| {
        l.contains("\"commitment_overdue\"") && l.contains(&format!("\"account\":\"{wanted}\""))
    });
    let _ = watch.kill();
    let output = watch.wait_with_output().expect("watch output");
    let seen = seen.unwrap_or_else(|| panic!("no overdue signal; watch said: {}", stderr(&output)));
    let signal: serde_json::Value = serde_json::from_str(&seen).expect("a JSON signal");
    assert_eq!(signal["due"], due.to_string());
    assert_eq!(signal["cause"], "time");
    assert!(stderr(&output).contains("signals from here on"), "{}", stderr(&output));
}

#[test]
fn watch_prints_signals_while_another_process_appends_to_the_file_store() {
    let tmp = Tmp::new("watch");
    let store = tmp.0.join("store");
    let first = tmp.0.join("first.jsonl");
    std::fs::write(
        &first,
        "{\"type\":\"touchpoint\",\"account\":\"w-0\",\"occurred_at\":\"2025-01-01T00:00:00Z\",\"channel\":\"call\"}\n",
    )
    .expect("write");
    ok(&["import", "--store", p(&store), p(&first)]);
    watch_sees_an_overdue_commitment(&["--store", p(&store)], &["import", "--store", p(&store)], &tmp, "w-1");
}

#[test]
fn watch_follows_postgres_too() {
    let Some(url) = rapport_core::testing::pg_url() else { return };
    let tmp = Tmp::new("watch-pg");
    let account = format!("watch{}x{}", std::process::id(), Timestamp::now().unix_nanos());
    watch_sees_an_overdue_commitment(&["--postgres", &url], &["import", "--postgres", &url], &tmp, &account);
}

#[test]
fn backup_copies_a_store_that_verifies_and_scores_the_same() {
    let tmp = Tmp::new("backup");
    let (store, history) = generated_store(&tmp, "4", "6", "5");
    let copy = tmp.0.join("copy");
    let said = stdout(&ok(&["backup", "--store", p(&store), p(&copy)]));
    let n = std::fs::read_to_string(&history).expect("read").lines().count();
    assert!(said.starts_with(&format!("backup: {n} events")) && said.contains("verified"), "{said}");
    assert_eq!(
        stdout(&ok(&["verify", "--store", p(&copy)])).lines().next(),
        Some(format!("ok: {n} events, 4 accounts").as_str())
    );
    let at = "2025-01-15T00:00:00Z";
    let scores = |dir: &Path| stdout(&ok(&["score", "--store", p(dir), "--as-of", at, "--format", "json"]));
    assert_eq!(scores(&store), scores(&copy));
    // Never over an existing directory (a usage error), never inside the store.
    let again = rapport(&["backup", "--store", p(&store), p(&copy)]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(stderr(&again).contains("never overwrites"), "{}", stderr(&again));
    let inside = rapport(&["backup", "--store", p(&store), p(&store.join("b"))]);
    assert_eq!(inside.status.code(), Some(2), "{}", stderr(&inside));
}

/// The value `verify` prints for the head: (position, chain).
fn head_line(verify_out: &str) -> (String, String) {
    let line = verify_out.lines().find(|l| l.starts_with("head: ")).expect("a head line");
    let rest = line.strip_prefix("head: position ").expect("head: position N, chain C");
    let (position, rest) = rest.split_once(", chain ").expect("a chain");
    (position.to_string(), rest.split_whitespace().next().expect("the value").to_string())
}

#[test]
fn verify_prints_the_chain_and_proves_a_recorded_history_later() {
    let tmp = Tmp::new("chain");
    let (store, _) = generated_store(&tmp, "3", "4", "8");
    let first = stdout(&ok(&["verify", "--store", p(&store)]));
    assert!(first.contains("(blake3, format 4)"), "{first}");
    let (position, chain) = head_line(&first);
    assert_eq!(chain.len(), 64);
    // More history later; the recorded prefix is still proved.
    let later = tmp.0.join("later.jsonl");
    std::fs::write(
        &later,
        "{\"type\":\"touchpoint\",\"account\":\"later\",\"occurred_at\":\"2025-06-01T09:00:00Z\",\"channel\":\"call\"}\n",
    )
    .expect("write");
    ok(&["import", "--store", p(&store), p(&later)]);
    let expect = format!("{position}:{chain}");
    let proved = stdout(&ok(&["verify", "--store", p(&store), "--expect", &expect]));
    assert!(proved.contains(&format!("proved: the log up to position {position}")), "{proved}");
    assert_ne!(head_line(&proved).0, position, "the head moved on");
    // Another value is a rewritten history (exit 4); a malformed one a usage error (exit 2).
    let mut other = chain.clone().into_bytes();
    other[0] = if other[0] == b'0' { b'1' } else { b'0' };
    let forged = format!("{position}:{}", String::from_utf8(other).expect("hex"));
    let refused = rapport(&["verify", "--store", p(&store), "--expect", &forged]);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("was rewritten"), "{}", stderr(&refused));
    for bad in ["12", "x:abc", &format!("{position}:abc")] {
        let out = rapport(&["verify", "--store", p(&store), "--expect", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
    }
}

#[test]
fn upgrade_rewrites_a_version_1_store_in_a_new_directory() {
    let tmp = Tmp::new("upgrade");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../store-file/tests/fixtures/v1");
    let old = tmp.0.join("old");
    std::fs::create_dir_all(&old).expect("mkdir");
    for entry in std::fs::read_dir(&fixture).expect("fixture") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), old.join(entry.file_name())).expect("copy");
    }
    let before = stdout(&ok(&["verify", "--store", p(&old)]));
    assert!(before.contains("format 1: not tamper-evident"), "{before}");
    let new = tmp.0.join("new");
    let said = stdout(&ok(&["upgrade", "--store", p(&old), p(&new)]));
    let n = before.lines().next().expect("ok line").split_whitespace().nth(1).expect("count").to_string();
    assert!(said.starts_with(&format!("upgraded: {n} events")), "{said}");
    let after = stdout(&ok(&["verify", "--store", p(&new)]));
    assert_eq!(after.lines().next(), before.lines().next());
    assert_eq!(head_line(&after), head_line(&said));
    let at = "2025-01-15T00:00:00Z";
    let scores = |dir: &Path| stdout(&ok(&["score", "--store", p(dir), "--as-of", at, "--format", "json"]));
    assert_eq!(scores(&old), scores(&new));
    let twice = rapport(&["upgrade", "--store", p(&new), p(&tmp.0.join("again"))]);
    assert_eq!(twice.status.code(), Some(2), "{}", stderr(&twice));
    assert!(stderr(&twice).contains("already in format version 4"), "{}", stderr(&twice));
}

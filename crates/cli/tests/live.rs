//! The commands on the projection runner: `checkpoint`, `score` from it, and `watch` while
//! another process appends.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rapport_core::Timestamp;

mod support;
use support::{Tmp, p, rapport, stderr, stdout, succeeds as ok};

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
fn score_reads_the_checkpoint_and_only_the_events_after_it() {
    let tmp = Tmp::new("checkpoint");
    let store = tmp.0.join("store");
    let history = tmp.0.join("h.jsonl");
    std::fs::write(&history, stdout(&ok(&["generate", "--accounts", "6", "--months", "12", "--seed", "3"])))
        .expect("write");
    ok(&["import", "--store", p(&store), p(&history)]);
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
    let store = tmp.0.join("store");
    let history = tmp.0.join("h.jsonl");
    std::fs::write(&history, stdout(&ok(&["generate", "--accounts", "4", "--months", "6", "--seed", "5"])))
        .expect("write");
    ok(&["import", "--store", p(&store), p(&history)]);
    let copy = tmp.0.join("copy");
    let said = stdout(&ok(&["backup", "--store", p(&store), p(&copy)]));
    let n = std::fs::read_to_string(&history).expect("read").lines().count();
    assert!(said.starts_with(&format!("backup: {n} events")) && said.contains("verified"), "{said}");
    assert_eq!(stdout(&ok(&["verify", "--store", p(&copy)])).trim(), format!("ok: {n} events, 4 accounts"));
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

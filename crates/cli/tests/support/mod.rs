//! What the CLI's test files share: temporary directories and running the binary.

#![allow(dead_code)] // Each test file uses its own part.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};

/// A directory under the system temp dir, removed on drop.
pub(crate) struct Tmp(pub(crate) PathBuf);

impl Tmp {
    pub(crate) fn new(tag: &str) -> Self {
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

    pub(crate) fn join(&self, s: &str) -> PathBuf {
        self.0.join(s)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the binary.
pub(crate) fn rapport(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rapport")).args(args).output().expect("run rapport")
}

/// Runs the binary, which must succeed; its output.
pub(crate) fn succeeds(args: &[&str]) -> Output {
    let out = rapport(args);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Runs the binary, which must succeed; its standard output.
pub(crate) fn ok(args: &[&str]) -> String {
    stdout(&succeeds(args))
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub(crate) fn p(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// A file store in `tmp` holding `rapport generate --accounts A --months M --seed S`, and the
/// generated file.
pub(crate) fn generated_store(tmp: &Tmp, accounts: &str, months: &str, seed: &str) -> (PathBuf, PathBuf) {
    let history = tmp.join("h.jsonl");
    std::fs::write(&history, ok(&["generate", "--accounts", accounts, "--months", months, "--seed", seed])).unwrap();
    let store = tmp.join("store");
    ok(&["import", "--store", p(&store), p(&history)]);
    (store, history)
}

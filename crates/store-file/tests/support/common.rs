//! What the file store's test files share: temporary directories and generated histories.

#![allow(dead_code)] // Each test file uses its own part.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rapport_core::testing::conformance::assert_log_invariants;
use rapport_core::testing::synth::{SynthConfig, generate};
use rapport_core::{Envelope, NewEvent};
use rapport_store_file::FileStore;

/// A directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("rapport-test-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn history(accounts: u32, months: u32, seed: u64) -> Vec<NewEvent> {
    generate(SynthConfig { accounts, months, seed, ..Default::default() }).collect()
}

/// [`history`] without the types added at schema version 2 (profiles, assessments): what a
/// log of format 1 or 2 can hold.
#[allow(dead_code)]
pub(crate) fn history_v1(accounts: u32, months: u32, seed: u64) -> Vec<NewEvent> {
    history(accounts, months, seed).into_iter().filter(|e| e.min_schema_version() == 1).collect()
}

pub(crate) fn contents(store: &FileStore) -> Vec<Envelope> {
    assert_log_invariants(store)
}

/// Copies the files of directory `from` (a fixture store) into `to`, creating it.
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

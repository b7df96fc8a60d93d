//! Online backup: a copy taken while four writers append verifies, opens, and holds a prefix
//! of the log; a backup never overwrites, nor lands inside the store.

#[path = "support/common.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rapport_core::{AccountId, ExpectedVersion, Store};
use rapport_store_file::{BackupError, FileStore, Options, backup, verify};

use common::{TempDir, contents, history};

#[test]
fn a_backup_during_four_writers_verifies_opens_and_holds_a_prefix_of_the_log() {
    let dir = TempDir::new("backup-src");
    let copies = TempDir::new("backup-dest");
    std::fs::create_dir_all(copies.path()).expect("dir");
    // Small segments, so the writers roll over while the copies are taken.
    let store = Arc::new(
        FileStore::open_with(dir.path(), Options { segment_bytes_max: 64 * 1024, ..Options::default() }).expect("open"),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut events = history(6, 24, 40 + w).into_iter().map(|mut e| {
                    e.account = AccountId::new(&format!("w{w}-{}", e.account)).expect("id");
                    e
                });
                let mut n = 0;
                while !stop.load(Ordering::Acquire) {
                    let batch: Vec<_> = events.by_ref().take(5).collect();
                    if batch.is_empty() {
                        break;
                    }
                    n += batch.len();
                    pollster::block_on(store.append(batch, ExpectedVersion::Any)).expect("append");
                }
                n
            })
        })
        .collect();
    let mut reports = Vec::new();
    for k in 0..4 {
        std::thread::sleep(std::time::Duration::from_millis(15));
        let dest = copies.path().join(format!("copy-{k}"));
        let report = if k % 2 == 0 { store.backup(&dest) } else { backup(dir.path(), &dest) }.expect("backup");
        reports.push((dest, report));
    }
    stop.store(true, Ordering::Release);
    let written: usize = writers.into_iter().map(|w| w.join().expect("writer")).sum();
    let log = contents(&store);
    assert_eq!(log.len(), written);
    assert!(reports.iter().any(|(_, r)| r.n_events > 0 && (r.n_events as usize) < written), "copies taken mid-way");
    for (dest, report) in &reports {
        assert_eq!(verify(dest).expect("the copy verifies").n_events, report.n_events);
        let copy = FileStore::open(dest).expect("the copy opens as a store");
        let held = contents(&copy);
        assert_eq!(held.len() as u64, report.n_events);
        assert_eq!(held[..], log[..held.len()], "a prefix of the log, event for event");
        // And it takes appends of its own.
        let more = history(1, 1, 99);
        pollster::block_on(copy.append(more, ExpectedVersion::Any)).expect("append to the copy");
    }
}

#[test]
fn a_backup_never_overwrites_nor_lands_inside_the_store() {
    let dir = TempDir::new("backup-refuse");
    let store = FileStore::open(dir.path()).expect("open");
    pollster::block_on(store.append(history(2, 2, 1), ExpectedVersion::Any)).expect("append");
    let inside = dir.path().join("copy");
    let err = backup(dir.path(), &inside).expect_err("inside the store");
    assert!(matches!(err, BackupError::Destination { .. }) && err.to_string().contains("inside the store"), "{err}");
    assert!(!inside.exists());
    let existing = TempDir::new("backup-existing");
    std::fs::create_dir_all(existing.path()).expect("dir");
    let err = backup(dir.path(), existing.path()).expect_err("exists");
    assert!(err.to_string().contains("never overwrites"), "{err}");
    let missing = TempDir::new("backup-missing");
    let dest = TempDir::new("backup-of-nothing");
    assert!(matches!(backup(missing.path(), dest.path()), Err(BackupError::Open(_))));
    assert!(!dest.path().exists(), "nothing left behind");
}

//! One writer per store, whatever happens to files in its directory. A test binary of its own:
//! it forks (`mkfifo`), and a child forked while another test's store is open holds a copy of
//! that store's lock until it execs, which could make that other test's reopen find the store
//! locked.

#[path = "support/common.rs"]
mod common;

use rapport_store_file::{FileStore, OpenError};

use common::TempDir;

#[test]
fn a_second_writer_is_refused_whatever_happens_to_files_in_the_directory() {
    // The lock is on the directory itself: removing, replacing or linking a file named LOCK
    // (the lock file of builds before) lets no second writer in, and a FIFO there hangs
    // nothing. Another path to the same directory is the same store.
    let dir = TempDir::new("lock");
    let first = FileStore::open(dir.path()).unwrap();
    let lock = dir.path().join("LOCK");
    let refused = |what: &str| match FileStore::open(dir.path()) {
        Err(OpenError::Locked { .. }) => {}
        other => panic!("{what}: expected Locked, got {other:?}"),
    };
    refused("plain");
    let _ = std::fs::remove_file(&lock);
    refused("LOCK removed");
    std::fs::write(&lock, b"").unwrap();
    refused("LOCK recreated");
    std::fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink("/dev/null", &lock).unwrap();
    refused("LOCK a symlink");
    std::fs::remove_file(&lock).unwrap();
    let fifo = std::process::Command::new("mkfifo").arg(&lock).status().unwrap();
    assert!(fifo.success());
    refused("LOCK a FIFO");
    let alias = TempDir::new("lock-alias");
    std::os::unix::fs::symlink(dir.path(), alias.path()).unwrap();
    match FileStore::open(alias.path()) {
        Err(OpenError::Locked { .. }) => {}
        other => panic!("through a symlink to the directory: expected Locked, got {other:?}"),
    }
    let _ = std::fs::remove_file(alias.path());
    drop(first);
    // With the writer gone the store opens (the FIFO is not read).
    FileStore::open(dir.path()).unwrap();
}

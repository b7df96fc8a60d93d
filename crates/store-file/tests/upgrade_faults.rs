//! The explicit upgrade under faults, on the fault-injecting file system: cut short by a crash
//! at every write and fsync point, the source still opens with every event and the copy
//! either refuses to open or holds them all; a failure of the new key file is named as one,
//! and a failed upgrade removes its copy so that the next one can run.

#[path = "support/common.rs"]
mod common;
#[path = "support/faulty.rs"]
mod faulty;

use std::path::Path;
use std::sync::Arc;

use rapport_core::Envelope;
use rapport_store_file::vfs::Vfs;
use rapport_store_file::{FileStore, OpenError, Options, UpgradeError, upgrade_on};

use common::contents;
use faulty::{FaultyVfs, MEM_DIR, TEARS};

/// Where the copy goes, beside the source.
const DEST: &str = "/mem/v4";

/// A file system holding the frozen version-1 store at [`MEM_DIR`], durably.
fn with_v1_store() -> FaultyVfs {
    let vfs = FaultyVfs::new();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1");
    for entry in std::fs::read_dir(&fixture).unwrap() {
        let entry = entry.unwrap();
        vfs.set_bytes(&Path::new(MEM_DIR).join(entry.file_name()), std::fs::read(entry.path()).unwrap());
    }
    vfs
}

/// The events of the store at `dir` on `vfs`, or why it does not open (it is never created).
fn events_at(vfs: &FaultyVfs, dir: &str) -> Result<Vec<Envelope>, OpenError> {
    let options = Options { create_if_missing: false, ..Options::default() };
    FileStore::open_on(Arc::new(vfs.clone()), Path::new(dir), options).map(|s| contents(&s))
}

fn upgrade(vfs: &FaultyVfs) -> Result<rapport_store_file::UpgradeReport, UpgradeError> {
    upgrade_on(Arc::new(vfs.clone()), MEM_DIR, DEST)
}

#[test]
fn a_crash_at_any_point_of_an_upgrade_leaves_the_source_whole_and_no_short_copy() {
    let expected = events_at(&with_v1_store(), MEM_DIR).unwrap();
    assert!(expected.len() > 100, "the fixture holds a history");
    let clean = with_v1_store();
    let before = clean.ops();
    let report = upgrade(&clean).unwrap();
    assert_eq!(report.n_events, expected.len() as u64);
    let ops = clean.ops() - before;
    assert!(events_at(&clean, DEST).unwrap() == expected, "the copy holds the same events");
    assert!(!clean.exists(&Path::new(DEST).join(rapport_store_file::UNFINISHED_FILE)), "the marker is gone");

    let (mut keys_failures, mut unfinished_refused) = (0, 0);
    for n in 1..=ops {
        let vfs = with_v1_store();
        vfs.crash_at(n);
        match upgrade(&vfs) {
            // The crash came after the copy was checked: closing the source (its index
            // snapshot) is not part of the result.
            Ok(report) => assert_eq!(report.n_events, expected.len() as u64),
            Err(UpgradeError::Keys { path, reason }) => {
                assert!(path.ends_with(rapport_store_file::KEYS_FILE) && reason.contains("injected crash"), "{reason}");
                keys_failures += 1;
            }
            // The source's writer open syncs what it read.
            Err(UpgradeError::Open(e)) => assert!(e.to_string().contains("injected crash"), "{e}"),
            Err(UpgradeError::Io { path, source, .. }) => {
                // The copy's files, or its parent directory's sync.
                let ours = path.starts_with(DEST) || Some(path.as_path()) == Path::new(DEST).parent();
                assert!(ours && source.to_string().contains("injected crash"), "{path:?}: {source}");
            }
            Err(other) => panic!("crash at write {n}: the source is sound, yet: {other}"),
        }
        for (k, tear) in TEARS.iter().enumerate() {
            let image = vfs.crash_image(*tear, n * 4 + k as u64);
            let source = events_at(&image, MEM_DIR).unwrap_or_else(|e| panic!("crash at write {n}, {tear:?}: {e}"));
            assert!(source == expected, "crash at write {n}, {tear:?}: the source holds {} events", source.len());
            if !image.exists(Path::new(DEST)) {
                continue;
            }
            match events_at(&image, DEST) {
                Ok(copy) => {
                    assert!(copy == expected, "crash at write {n}, {tear:?}: a copy that opens holds {}", copy.len())
                }
                // Made, but nothing in it yet reached the disk.
                Err(OpenError::Missing { .. }) => {}
                Err(OpenError::Unfinished { .. }) => unfinished_refused += 1,
                Err(other) => panic!("crash at write {n}, {tear:?}: the copy: {other}"),
            }
        }
    }
    assert!(keys_failures > 0, "some of the {ops} writes are the key file's, and name it");
    assert!(unfinished_refused > 0, "some crashes left a copy cut short, refused as unfinished");
}

#[test]
fn a_failed_upgrade_removes_its_copy_and_the_next_one_runs() {
    let vfs = with_v1_store();
    let expected = events_at(&vfs, MEM_DIR).unwrap();
    vfs.fail_syncs_under(&Path::new(DEST).join(rapport_store_file::KEYS_FILE));
    let failed = upgrade(&vfs).unwrap_err();
    assert!(matches!(failed, UpgradeError::Keys { .. }), "{failed}");
    assert!(failed.to_string().starts_with("the upgraded store's key file /mem/v4/KEYS: "), "{failed}");
    assert!(!vfs.exists(Path::new(DEST)), "the partial copy is removed");
    vfs.heal_syncs();
    assert_eq!(upgrade(&vfs).unwrap().n_events, expected.len() as u64);
    assert!(events_at(&vfs, DEST).unwrap() == expected, "the copy holds the source's events");
    assert!(events_at(&vfs, MEM_DIR).unwrap() == expected, "the source is as it was");
}

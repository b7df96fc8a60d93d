//! Copies of a store under faults, on the fault-injecting file system: an upgrade or a backup
//! cut short by a crash at any write or fsync point leaves the source opening with every event
//! and a copy that either refuses to open (unfinished) or holds them all; a failure of an
//! upgrade's new key file is named as one; a failed copy is removed, so the next one runs.

#[path = "support/common.rs"]
mod common;
#[path = "support/faulty.rs"]
mod faulty;

use std::path::Path;
use std::sync::Arc;

use rapport_core::{Envelope, ExpectedVersion, Store};
use rapport_store_file::vfs::Vfs;
use rapport_store_file::{BackupError, BackupKeys, FileStore, OpenError, Options, UpgradeError, backup_on, upgrade_on};

use common::{contents, history};
use faulty::{FaultyVfs, MEM_DIR, TEARS, Tear, open_mem};

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

/// A file system holding a current store at [`MEM_DIR`] (several segments, a key file),
/// closed; and a function giving a copy of it, with nothing pending and no write counted.
fn current_store() -> impl Fn() -> FaultyVfs {
    let vfs = FaultyVfs::new();
    let store = open_mem(&vfs).unwrap();
    pollster::block_on(store.append(history(6, 12, 5), ExpectedVersion::Any)).unwrap();
    drop(store);
    move || vfs.crash_image(Tear::KeepAll, 0)
}

fn backup(vfs: &FaultyVfs) -> Result<rapport_store_file::BackupReport, BackupError> {
    backup_on(Arc::new(vfs.clone()), MEM_DIR, DEST, BackupKeys::Copied)
}

/// After a crash of a copy into [`DEST`] at its `n`-th write: in each crash image the source
/// holds `expected`, and the copy is missing, empty, refused as unfinished, or whole. Returns
/// how many images held a copy refused as unfinished.
fn check_crash_images(vfs: &FaultyVfs, n: u64, expected: &[Envelope]) -> usize {
    let mut unfinished = 0;
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
            Err(OpenError::Unfinished { .. }) => unfinished += 1,
            Err(other) => panic!("crash at write {n}, {tear:?}: the copy: {other}"),
        }
    }
    unfinished
}

/// An I/O failure a crash caused in a copy: the copy's files, or its parent directory's sync
/// (or, for a backup, the sync of the source's last segment).
fn crashed_io(path: &Path, source: &std::io::Error) -> bool {
    let ours = path.starts_with(DEST) || path.starts_with(MEM_DIR) || Some(path) == Path::new(DEST).parent();
    ours && source.to_string().contains("injected crash")
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
            Err(UpgradeError::Io { path, source, .. }) => assert!(crashed_io(&path, &source), "{path:?}: {source}"),
            Err(other) => panic!("crash at write {n}: the source is sound, yet: {other}"),
        }
        unfinished_refused += check_crash_images(&vfs, n, &expected);
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

#[test]
fn a_crash_at_any_point_of_a_backup_leaves_no_short_copy() {
    let with_current_store = current_store();
    let expected = events_at(&with_current_store(), MEM_DIR).unwrap();
    let clean = with_current_store();
    let before = clean.ops();
    assert_eq!(backup(&clean).unwrap().n_events, expected.len() as u64);
    let ops = clean.ops() - before;
    assert!(events_at(&clean, DEST).unwrap() == expected, "the copy holds the same events");
    assert!(!clean.exists(&Path::new(DEST).join(rapport_store_file::UNFINISHED_FILE)), "the marker is gone");

    let mut unfinished_refused = 0;
    for n in 1..=ops {
        let vfs = with_current_store();
        vfs.crash_at(n);
        match backup(&vfs) {
            Ok(report) => {
                panic!("crash at write {n} of {ops}: the backup of {} events reported success", report.n_events)
            }
            Err(BackupError::Io { path, source, .. }) => assert!(crashed_io(&path, &source), "{path:?}: {source}"),
            Err(other) => panic!("crash at write {n}: the source is sound, yet: {other}"),
        }
        unfinished_refused += check_crash_images(&vfs, n, &expected);
    }
    assert!(unfinished_refused > 0, "some crashes left a copy cut short, refused as unfinished");
}

#[test]
fn a_failed_backup_removes_its_copy_and_the_next_one_runs() {
    let vfs = current_store()();
    let expected = events_at(&vfs, MEM_DIR).unwrap();
    vfs.fail_syncs_under(Path::new(DEST));
    let failed = backup(&vfs).unwrap_err();
    assert!(matches!(&failed, BackupError::Io { path, .. } if path.starts_with(DEST)), "{failed}");
    assert!(!vfs.exists(Path::new(DEST)), "the partial copy is removed");
    vfs.heal_syncs();
    assert_eq!(backup(&vfs).unwrap().n_events, expected.len() as u64);
    assert!(events_at(&vfs, DEST).unwrap() == expected, "the copy holds the source's events");
}

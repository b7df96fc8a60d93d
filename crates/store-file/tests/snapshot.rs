//! The index snapshot a clean close saves: the next open loads it and reads only the log after
//! it, and behaves exactly as an open that read everything; a stale one is caught up, and a
//! missing, foreign or damaged one is ignored for a full read.

#[path = "support/common.rs"]
mod common;

use std::path::{Path, PathBuf};

use rapport_core::{AppendError, DerivedStore, ExpectedVersion, NewEvent, Store, StreamVersion};
use rapport_store_file::{FileStore, Options, verify};

use common::{TempDir, contents, history};

fn snapshot(dir: &Path) -> PathBuf {
    dir.join("derived").join("log-index.bin")
}

/// Every file of the derived directory (the snapshot and the id file it names), by name.
fn save_derived_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir.join("derived")).expect("derived") {
        let entry = entry.expect("entry");
        out.push((entry.file_name().to_string_lossy().into_owned(), std::fs::read(entry.path()).expect("read")));
    }
    out
}

/// Puts back what [`save_derived_files`] kept (as a crash before the next clean close leaves it).
fn restore_derived_files(dir: &Path, saved: &[(String, Vec<u8>)]) {
    let derived = dir.join("derived");
    let _ = std::fs::remove_dir_all(&derived);
    std::fs::create_dir_all(&derived).expect("mkdir");
    for (name, bytes) in saved {
        std::fs::write(derived.join(name), bytes).expect("restore");
    }
}

/// The id file in `dir`'s derived directory.
fn id_file(dir: &Path) -> PathBuf {
    let names: Vec<PathBuf> = std::fs::read_dir(dir.join("derived"))
        .expect("derived")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("log-ids-")))
        .collect();
    assert_eq!(names.len(), 1, "one id file: {names:?}");
    names[0].clone()
}

fn append(store: &FileStore, events: &[NewEvent]) {
    for chunk in events.chunks(9) {
        pollster::block_on(store.append(chunk.to_vec(), ExpectedVersion::Any)).expect("append");
    }
}

/// Everything an open builds, compared with a full read of the same log: events, streams,
/// accounts, and the decisions the validation state makes.
fn assert_same_as_a_full_read(store: &FileStore, dir: &Path, probe: &NewEvent) {
    let log = contents(store);
    assert_eq!(verify(dir).expect("verify").n_events, log.len() as u64);
    for account in pollster::block_on(store.accounts(None, 10_000)).expect("accounts") {
        let stream = pollster::block_on(store.read_stream(&account, StreamVersion(1), 100_000)).expect("stream");
        let want: Vec<_> = log.iter().filter(|e| e.account == account).cloned().collect();
        assert_eq!(stream, want, "the stream of {account}");
    }
    // A logged id is a duplicate; the same id with other content a conflict; a new event goes in.
    let again = pollster::block_on(store.append(vec![log[0].to_new_event()], ExpectedVersion::Any)).expect("dup");
    assert_eq!((again.appended.len(), again.duplicates.len()), (0, 1));
    let mut changed = log[1].to_new_event();
    changed.occurred_at = changed.occurred_at.add_nanos(1);
    let conflict = pollster::block_on(store.append(vec![changed], ExpectedVersion::Any));
    assert!(matches!(conflict, Err(AppendError::IdConflict { .. })), "{conflict:?}");
    let stream = pollster::block_on(store.read_stream(&probe.account, StreamVersion(1), 100_000)).expect("stream");
    let version = stream.last().map_or(StreamVersion(0), |e| e.stream_version);
    let outcome = pollster::block_on(store.append(vec![probe.clone()], ExpectedVersion::Exact(version)));
    assert_eq!(outcome.expect("the next version").appended.len(), 1);
}

fn small() -> Options {
    Options { segment_bytes_max: 64 * 1024, ..Options::default() }
}

#[test]
fn an_open_after_a_clean_close_reads_only_what_follows_the_snapshot() {
    let dir = TempDir::new("snapshot");
    let events = history(20, 12, 4);
    let (first, rest) = events.split_at(events.len() - 40);
    let store = FileStore::open_with(dir.path(), small()).expect("open");
    append(&store, first);
    drop(store);
    assert!(snapshot(dir.path()).exists(), "a clean close saves the snapshot");

    // An open and a close that append nothing leave the snapshot as it was.
    let saved = std::fs::metadata(snapshot(dir.path())).and_then(|m| m.modified()).expect("mtime");
    let bytes = std::fs::read(snapshot(dir.path())).expect("snapshot");
    drop(FileStore::open_with(dir.path(), small()).expect("reopen"));
    assert_eq!(std::fs::read(snapshot(dir.path())).expect("snapshot"), bytes);
    assert_eq!(std::fs::metadata(snapshot(dir.path())).and_then(|m| m.modified()).expect("mtime"), saved);

    let store = FileStore::open_with(dir.path(), small()).expect("reopen");
    assert_eq!(store.recovery().from_snapshot, first.len() as u64, "it stood in for the whole log");
    append(&store, &rest[..30]);
    assert_same_as_a_full_read(&store, dir.path(), &rest[30]);
    drop(store);
    // A read-only open uses it too; verify reads everything.
    let reader = FileStore::open_read_only(dir.path()).expect("read-only");
    assert!(reader.recovery().from_snapshot > 0);
}

#[test]
fn a_stale_snapshot_is_caught_up_and_a_foreign_or_damaged_one_is_ignored() {
    let dir = TempDir::new("snapshot-stale");
    let events = history(12, 12, 8);
    let store = FileStore::open_with(dir.path(), small()).expect("open");
    append(&store, &events[..200]);
    drop(store);
    let old = save_derived_files(dir.path());
    let store = FileStore::open_with(dir.path(), small()).expect("open");
    append(&store, &events[200..events.len() - 1]);
    drop(store);
    let all = contents(&FileStore::open_read_only(dir.path()).expect("open"));

    // Stale: it covers 200 events; the rest is read from the log (a crash after more appends).
    restore_derived_files(dir.path(), &old);
    let store = FileStore::open_with(dir.path(), small()).expect("open with a stale snapshot");
    assert_eq!(store.recovery().from_snapshot, 200);
    assert_eq!(contents(&store), all);
    drop(store);

    // Damaged: any flipped byte, and it is read in full.
    let good = std::fs::read(snapshot(dir.path())).expect("snapshot");
    for at in [0, 40, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x20;
        std::fs::write(snapshot(dir.path()), &bad).expect("write");
        let store = FileStore::open_read_only(dir.path()).expect("open with a damaged snapshot");
        assert_eq!(store.recovery().from_snapshot, 0, "byte {at}");
        assert_eq!(contents(&store), all);
    }

    // Foreign: another store's snapshot.
    let other = TempDir::new("snapshot-other");
    let store = FileStore::open(other.path()).expect("open");
    append(&store, &events[..200]);
    drop(store);
    std::fs::copy(snapshot(other.path()), snapshot(dir.path())).expect("copy");
    let store = FileStore::open_with(dir.path(), small()).expect("open with a foreign snapshot");
    assert_eq!(store.recovery().from_snapshot, 0);
    assert_eq!(contents(&store), all);
    // The store's own blob name is reserved.
    let refused = pollster::block_on(store.save_derived("log-index", b"x"));
    assert!(refused.is_err());
    // So are the id files' names, which a close would otherwise replace or remove.
    let refused = pollster::block_on(store.save_derived("log-ids-7", b"x"));
    assert!(refused.is_err());
}

#[test]
fn a_snapshot_ahead_of_the_log_is_not_trusted() {
    let dir = TempDir::new("snapshot-ahead");
    let events = history(6, 12, 2);
    let store = FileStore::open(dir.path()).expect("open");
    append(&store, &events[..60]);
    drop(store);
    // Keep this log, and a snapshot of a later state of it.
    let backup = TempDir::new("snapshot-ahead-copy");
    rapport_store_file::backup(dir.path(), backup.path()).expect("backup");
    let store = FileStore::open(dir.path()).expect("open");
    append(&store, &events[60..120]);
    drop(store);
    std::fs::create_dir_all(backup.path().join("derived")).expect("dir");
    std::fs::copy(snapshot(dir.path()), snapshot(backup.path())).expect("copy");
    let store = FileStore::open(backup.path()).expect("the older log opens");
    assert_eq!(store.recovery().from_snapshot, 0, "the snapshot covers events the log does not hold");
    assert_eq!(contents(&store).len(), 60);
}

#[test]
fn damage_in_the_prefix_a_snapshot_covers_is_found_by_reads_and_verify_never_hidden() {
    let dir = TempDir::new("snapshot-flip");
    let events = history(8, 12, 6);
    let store = FileStore::open(dir.path()).expect("open");
    append(&store, &events[..150]);
    let log = contents(&store);
    drop(store);
    let segment = dir.path().join(rapport_store_file::segment_name(0));
    let mut bytes = std::fs::read(&segment).expect("segment");
    let at = bytes.len() / 3;
    bytes[at] ^= 0x04;
    std::fs::write(&segment, &bytes).expect("write");
    // The open trusts the snapshot for the prefix it covers (it does not read it) ...
    let store = FileStore::open_read_only(dir.path()).expect("open");
    assert_eq!(store.recovery().from_snapshot, 150);
    // ... a read of the damaged record fails naming the segment, and never returns other data ...
    match pollster::block_on(store.read_all(rapport_core::Position(1), 1_000)) {
        Ok(read) => assert_eq!(read, log, "a flip that no record holds"),
        Err(rapport_core::ReadError::Corrupt { location, .. }) => {
            assert!(location.contains(&rapport_store_file::segment_name(0)), "{location}");
        }
        Err(e) => panic!("{e}"),
    }
    // ... and verify, which reads everything, names it.
    let damaged = verify(dir.path()).expect_err("verify finds the flip");
    assert!(damaged.to_string().contains(&rapport_store_file::segment_name(0)), "{damaged}");
}

/// Every event a scan lends from `from`, owned.
fn scan_from(store: &FileStore, from: u64) -> Result<Vec<rapport_core::Envelope>, rapport_core::ReadError> {
    let mut out = Vec::new();
    pollster::block_on(store.scan(rapport_core::Position(from), &mut |e| out.push(e.to_envelope())))?;
    Ok(out)
}

#[test]
fn a_scan_lends_each_event_in_place_across_segments_and_never_damaged_bytes() {
    let dir = TempDir::new("scan-flip");
    let events = history(40, 12, 8);
    let store = FileStore::open_with(dir.path(), small()).expect("open");
    append(&store, &events[..2_500]);
    // What a scan lends: the log's events, personal text withheld.
    let log: Vec<_> = contents(&store).iter().map(rapport_core::Envelope::withheld).collect();
    // Whole frames (of 9 events) and frames entered in the middle, across segments: what
    // reads return. Every seventh start, so every offset into a frame occurs.
    for from in (1..=log.len() as u64 + 1).step_by(7).chain([log.len() as u64 + 1]) {
        assert_eq!(scan_from(&store, from).expect("scan"), log[from as usize - 1..], "a scan from {from}");
    }
    drop(store);
    let segments: Vec<_> = (0..3).map(|i| dir.path().join(rapport_store_file::segment_name(i))).collect();
    assert!(segments.iter().all(|s| s.exists()), "the log spans three segments");
    let clean = std::fs::read(&segments[1]).expect("segment");
    for at in [clean.len() / 5, clean.len() / 3, clean.len() / 2] {
        let mut bytes = clean.clone();
        bytes[at] ^= 0x10;
        std::fs::write(&segments[1], &bytes).expect("write");
        // The snapshot covers the whole log: the open reads none of it.
        let store = FileStore::open_read_only(dir.path()).expect("open");
        let whole = scan_from(&store, 1).expect_err("a scan of the whole log meets the damage");
        assert!(whole.to_string().contains(&rapport_store_file::segment_name(1)), "{whole}");
        // From any position: the damage, named, or exactly the logged events.
        for from in (1..=log.len() as u64).step_by(7) {
            match scan_from(&store, from) {
                Ok(read) => assert_eq!(read, log[from as usize - 1..], "a scan from {from} past a flip at {at}"),
                Err(rapport_core::ReadError::Corrupt { location, .. }) => {
                    assert!(location.contains(&rapport_store_file::segment_name(1)), "{location}");
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
    std::fs::write(&segments[1], &clean).expect("write");
}

/// Damage done to a segment's bytes.
type Damage = fn(&mut Vec<u8>);

#[test]
fn a_torn_tail_after_the_snapshot_is_judged_as_a_full_read_judges_it() {
    // An open from a snapshot reads the last segment only from the sector the snapshot ends
    // in; damage after it must be judged, cut and reported at the same byte as by a full read.
    let dir = TempDir::new("torn-after-snapshot");
    let events = history(20, 12, 9);
    let (first, rest) = events.split_at(events.len() / 2);
    let store = FileStore::open_with(dir.path(), Options::default()).expect("open");
    append(&store, first);
    drop(store);
    // The snapshot and head record of that close, kept: restored below, they make the events
    // appended next an unacknowledged tail that a snapshot stands before.
    let saved_derived = save_derived_files(dir.path());
    let saved_head = std::fs::read(dir.path().join(rapport_store_file::HEAD_FILE)).expect("head");
    let store = FileStore::open_with(dir.path(), Options::default()).expect("reopen");
    append(&store, rest);
    drop(store);
    restore_derived_files(dir.path(), &saved_derived);
    std::fs::write(dir.path().join(rapport_store_file::HEAD_FILE), &saved_head).expect("restore head");
    let segment = dir.path().join(rapport_store_file::segment_name(0));
    let whole = std::fs::read(&segment).expect("segment");
    let damages: [(&str, Damage); 4] = [
        ("cut 1 byte short", |b| b.truncate(b.len() - 1)),
        ("cut 30 bytes short", |b| b.truncate(b.len() - 30)),
        ("cut 300 bytes short", |b| b.truncate(b.len() - 300)),
        ("last sector zeroed", |b| {
            let from = (b.len() - 1) / 512 * 512;
            b[from..].fill(0);
        }),
    ];
    for (what, damage) in damages {
        let mut bytes = whole.clone();
        damage(&mut bytes);
        let opened: Vec<_> = [true, false]
            .into_iter()
            .map(|use_snapshot| {
                let copy = TempDir::new("torn-copy");
                restore_derived_files(copy.path(), &saved_derived);
                let names = [rapport_store_file::HEAD_FILE, rapport_store_file::KEYS_FILE].map(str::to_string);
                for name in names.into_iter().chain([rapport_store_file::segment_name(0)]) {
                    std::fs::copy(dir.path().join(&name), copy.path().join(&name)).expect("copy");
                }
                std::fs::write(copy.path().join(rapport_store_file::segment_name(0)), &bytes).expect("damage");
                let options = Options { index_snapshot: use_snapshot, ..Options::default() };
                let store = FileStore::open_with(copy.path(), options).unwrap_or_else(|e| panic!("{what}: {e}"));
                let report = store.recovery().clone();
                let cut: Vec<(u64, u64)> = report.truncated.iter().map(|(_, at, n)| (*at, *n)).collect();
                (report.from_snapshot, cut, contents(&store))
            })
            .collect();
        let (from_snapshot, cut, log) = &opened[0];
        assert!(*from_snapshot as usize >= first.len(), "{what}: the snapshot was used");
        assert_eq!(opened[1].0, 0, "{what}: the second open read everything");
        assert!(!cut.is_empty(), "{what}: a torn tail is cut");
        assert_eq!(cut, &opened[1].1, "{what}: cut at the same byte");
        assert_eq!(log, &opened[1].2, "{what}: the same events");
        assert!(log.len() >= first.len() && log.len() < events.len(), "{what}: {} events", log.len());
    }
}

#[test]
fn a_read_only_open_passes_over_the_snapshots_validation_state_and_refuses_preflight() {
    use rapport_core::BackfillStore;
    let dir = TempDir::new("reader");
    let events = history(10, 12, 6);
    let store = FileStore::open_with(dir.path(), small()).expect("open");
    append(&store, &events);
    let log = contents(&store);
    drop(store);
    let reader = FileStore::open_read_only(dir.path()).expect("read-only");
    assert_eq!(reader.recovery().from_snapshot, log.len() as u64, "the snapshot stood in for the log");
    assert_eq!(contents(&reader), log);
    for account in pollster::block_on(reader.accounts(None, 1_000)).expect("accounts") {
        let stream = pollster::block_on(reader.read_stream(&account, StreamVersion(1), 10_000)).expect("stream");
        assert_eq!(stream, log.iter().filter(|e| e.account == account).cloned().collect::<Vec<_>>());
    }
    let ids: Vec<_> = log.iter().take(5).map(|e| e.id).collect();
    let refused = pollster::block_on(reader.preflight(&[], &ids));
    assert!(refused.is_err_and(|e| e.to_string().contains("read-only handle")), "preflight needs the writer");
    drop(reader);
    // The writer's open loads the ids and answers.
    let writer = FileStore::open_with(dir.path(), small()).expect("writer");
    let answered = pollster::block_on(writer.preflight(&[], &ids)).expect("preflight");
    assert!(answered.logged.iter().all(Option::is_some), "every logged id is found");
}

#[test]
fn the_ids_are_answered_from_the_id_file_and_a_missing_or_damaged_one_is_rebuilt() {
    let dir = TempDir::new("snapshot-ids");
    let events = history(10, 12, 6);
    let (first, rest) = events.split_at(events.len() - 20);
    let store = FileStore::open_with(dir.path(), small()).expect("open");
    append(&store, first);
    drop(store);
    let ids = id_file(dir.path());
    // Every logged id is found through the file: re-appending the whole log adds nothing, and
    // the same id with other content is a conflict (assert_same_as_a_full_read).
    let store = FileStore::open_with(dir.path(), small()).expect("reopen");
    assert_eq!(store.recovery().from_snapshot, first.len() as u64);
    let again = pollster::block_on(store.append(first[..100].to_vec(), ExpectedVersion::Any)).expect("re-append");
    assert_eq!((again.appended.len(), again.duplicates.len()), (0, 100));
    append(&store, &rest[..10]);
    assert_same_as_a_full_read(&store, dir.path(), &rest[10]);
    drop(store);
    // The close merged the file's ids with those appended since, into a new generation.
    let merged = id_file(dir.path());
    assert_ne!(merged, ids, "a new generation; the old file removed");
    let store = FileStore::open_with(dir.path(), small()).expect("reopen");
    assert!(store.recovery().from_snapshot > first.len() as u64);
    let all = contents(&store);
    let again = pollster::block_on(
        store.append(all.iter().take(500).map(|e| e.to_new_event()).collect(), ExpectedVersion::Any),
    )
    .expect("re-append");
    assert_eq!(again.duplicates.len(), all.len().min(500));
    drop(store);

    // Missing, or damaged anywhere but its data blocks: the snapshot is not used, and the
    // open reads the whole log.
    let good = save_derived_files(dir.path());
    let bytes = std::fs::read(&merged).expect("id file");
    let cases: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("missing", None),
        ("cut short", Some(bytes[..bytes.len() - 1].to_vec())),
        (
            "a flipped bit in its trailer",
            Some({
                let mut b = bytes.clone();
                let at = b.len() - 20;
                b[at] ^= 1;
                b
            }),
        ),
        (
            "a flipped bit in its filter",
            Some({
                let mut b = bytes.clone();
                let at = b.len() - 200;
                b[at] ^= 1;
                b
            }),
        ),
    ];
    for (what, damaged) in cases {
        restore_derived_files(dir.path(), &good);
        match damaged {
            None => std::fs::remove_file(&merged).expect("remove"),
            Some(b) => std::fs::write(&merged, b).expect("damage"),
        }
        let store = FileStore::open_with(dir.path(), small()).expect("open");
        assert_eq!(store.recovery().from_snapshot, 0, "{what}: not used");
        assert_eq!(contents(&store), all, "{what}");
        let again = pollster::block_on(store.append(vec![all[3].to_new_event()], ExpectedVersion::Any)).expect("dup");
        assert_eq!(again.duplicates.len(), 1, "{what}");
    }

    // A flipped bit in a data block: the open uses the snapshot (it reads the blocks only when
    // asked), and a lookup in that block is an error naming the file and byte, never a wrong
    // answer; the next clean close cannot merge it and saves no snapshot.
    restore_derived_files(dir.path(), &good);
    let mut b = bytes.clone();
    b[10] ^= 1;
    std::fs::write(&merged, b).expect("damage");
    let store = FileStore::open_with(dir.path(), small()).expect("open");
    assert!(store.recovery().from_snapshot > 0);
    let mut failed = 0;
    for e in &all {
        match pollster::block_on(store.append(vec![e.to_new_event()], ExpectedVersion::Any)) {
            Ok(outcome) => assert_eq!(outcome.duplicates.len(), 1, "never appended twice"),
            Err(AppendError::Storage(err)) => {
                let text = err.to_string();
                assert!(text.contains("log-ids-") && text.contains("at byte 0"), "{text}");
                failed += 1;
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert!(failed > 0, "ids in the damaged block are errors");
}

/// An event like `e` under a new id (so it is judged by the rules, not as a duplicate).
fn with_new_id(e: &NewEvent, n: u64) -> NewEvent {
    let mut e = e.clone();
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&n.to_be_bytes());
    bytes[8..].copy_from_slice(&0x5eed_u64.to_be_bytes());
    bytes[6] = 0x40 | (bytes[6] & 0x0f);
    bytes[8] = 0x80 | (bytes[8] & 0x3f);
    e.id = rapport_core::EventId::from_bytes(bytes);
    e
}

/// `first` appended to a new store closed cleanly; then that store opened from its snapshot,
/// and a copy of it opened reading the whole log (the two directories, then the two stores).
fn from_snapshot_and_full(name: &str, first: &[NewEvent]) -> (TempDir, TempDir, FileStore, FileStore) {
    let dir = TempDir::new(name);
    let store = FileStore::open_with(dir.path(), small()).expect("open");
    append(&store, first);
    drop(store);
    let copy = TempDir::new(&format!("{name}-copy"));
    common::copy_dir(dir.path(), copy.path());
    let snapshot = FileStore::open_with(dir.path(), small()).expect("from the snapshot");
    assert_eq!(snapshot.recovery().from_snapshot, first.len() as u64);
    let full = FileStore::open_with(copy.path(), Options { index_snapshot: false, ..small() }).expect("full read");
    assert_eq!(full.recovery().from_snapshot, 0);
    (dir, copy, snapshot, full)
}

#[test]
fn a_stream_untouched_since_the_snapshot_decides_as_a_full_read_once_touched() {
    let events = history(12, 18, 21);
    let (first, rest) = events.split_at(events.len() - 120);
    let (dir, _copy, lazy, full) = from_snapshot_and_full("snapshot-lazy", first);
    // The rest of the history (later steps of items made before the snapshot), and logged
    // events again under new ids (an item made twice, a step on a closed item, a step dated
    // before the last one): every decision the same, one event at a time.
    let replayed: Vec<NewEvent> =
        first.iter().step_by(7).enumerate().map(|(k, e)| with_new_id(e, k as u64 + 1)).collect();
    let mut refused = 0;
    let mut appended_again: Vec<&NewEvent> = Vec::new();
    for (k, e) in rest.iter().chain(&replayed).enumerate() {
        let a = pollster::block_on(lazy.append(vec![e.clone()], ExpectedVersion::Any)).map(|o| o.appended.len());
        let b = pollster::block_on(full.append(vec![e.clone()], ExpectedVersion::Any)).map(|o| o.appended.len());
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "event {} of {}", e.id, e.account);
        refused += usize::from(a.is_err());
        if k >= rest.len() && matches!(a, Ok(1)) {
            appended_again.push(e);
        }
    }
    assert!(refused > 10, "the replayed events exercise the rules: {refused} refused");
    assert_eq!(contents(&lazy).len(), contents(&full).len());
    drop(lazy);
    drop(full);
    // The close saved the touched states and copied the untouched ones: a third open decides
    // the same again.
    let again = FileStore::open_with(dir.path(), small()).expect("reopen");
    assert!(again.recovery().from_snapshot > first.len() as u64);
    for e in replayed.iter().take(20) {
        let outcome = pollster::block_on(again.append(vec![e.clone()], ExpectedVersion::Any));
        if let Ok(o) = outcome {
            assert_eq!((o.appended.len(), o.duplicates.len()), (0, 1), "appended before: a duplicate now");
        }
    }
    // Every replayed event the rules let in is a duplicate now (its id in the new id file).
    assert!(!appended_again.is_empty(), "some replayed events pass the rules");
    for e in appended_again {
        let o = pollster::block_on(again.append(vec![e.clone()], ExpectedVersion::Any)).expect("a duplicate");
        assert_eq!((o.appended.len(), o.duplicates.len()), (0, 1), "appended before: a duplicate now");
    }
}

#[test]
fn a_saved_state_changed_under_the_open_store_is_an_error_never_a_wrong_decision() {
    let dir = TempDir::new("snapshot-lazy-damage");
    let events = history(8, 12, 23);
    let (first, rest) = events.split_at(events.len() - 40);
    let store = FileStore::open_with(dir.path(), small()).expect("open");
    append(&store, first);
    drop(store);
    let store = FileStore::open_with(dir.path(), small()).expect("from the snapshot");
    assert!(store.recovery().from_snapshot > 0);
    // One account touched (its state loaded), then the snapshot file zeroed in place.
    let touched = rest[0].account.clone();
    pollster::block_on(store.append(vec![rest[0].clone()], ExpectedVersion::Any)).expect("append");
    let len = std::fs::metadata(snapshot(dir.path())).expect("snapshot").len();
    std::fs::write(snapshot(dir.path()), vec![0u8; len as usize]).expect("zero it");
    let mut failed = 0;
    let others: Vec<NewEvent> =
        first.iter().step_by(13).enumerate().map(|(k, e)| with_new_id(e, k as u64 + 1)).collect();
    for e in rest[1..].iter().chain(&others) {
        match pollster::block_on(store.append(vec![e.clone()], ExpectedVersion::Any)) {
            Ok(_) => assert_eq!(e.account, touched, "only the loaded stream decides"),
            Err(AppendError::Invalid(_)) if e.account == touched => {}
            Err(AppendError::Storage(err)) => {
                let text = err.to_string();
                assert!(text.contains("validation state of account") && text.contains(e.account.as_str()), "{text}");
                failed += 1;
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert!(failed > 0);
}

/// The version of `account`'s last event in `store`.
fn version_of(store: &FileStore, account: &rapport_core::AccountId) -> StreamVersion {
    let stream = pollster::block_on(store.read_stream(account, StreamVersion(1), 100_000)).expect("stream");
    stream.last().map_or(StreamVersion(0), |e| e.stream_version)
}

#[test]
fn states_given_back_at_each_save_decide_as_a_full_read() {
    let events = history(12, 18, 29);
    let (first, rest) = events.split_at(events.len() - 150);
    // Opened from the snapshot, saving every few events (each save gives back the states not
    // changed since its checkpoint); against a full read, which holds every state throughout.
    let (dir, _copy, saving, full) = from_snapshot_and_full("snapshot-give-back", first);
    let replayed: Vec<NewEvent> =
        first.iter().step_by(5).enumerate().map(|(k, e)| with_new_id(e, k as u64 + 1)).collect();
    let (mut refused, mut saves) = (0, 0);
    for (k, e) in rest.iter().chain(&replayed).enumerate() {
        // Every third append states the version it expects: the full read's (right), or one
        // past it (wrong).
        let expected = match k % 3 {
            0 => ExpectedVersion::Any,
            1 => ExpectedVersion::Exact(version_of(&full, &e.account)),
            _ => ExpectedVersion::Exact(StreamVersion(version_of(&full, &e.account).0 + 1)),
        };
        let a = pollster::block_on(saving.append(vec![e.clone()], expected)).map(|o| o.appended.len());
        let b = pollster::block_on(full.append(vec![e.clone()], expected)).map(|o| o.appended.len());
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "event {} of {}, {expected:?}", e.id, e.account);
        refused += usize::from(a.is_err());
        if k % 11 == 10 {
            saving.save_index_snapshot().expect("save");
            saves += 1;
        }
    }
    assert!(refused > 30 && saves > 10, "{refused} refused, {saves} saves");
    let log = |store: &FileStore| -> Vec<_> {
        contents(store).into_iter().map(|e| (e.id, e.account, e.stream_version, e.position)).collect()
    };
    assert_eq!(log(&saving), log(&full));
    drop(saving);
    // And the log it wrote opens from its last snapshot as a full read of it does.
    let again = FileStore::open_with(dir.path(), small()).expect("reopen");
    assert!(again.recovery().from_snapshot > first.len() as u64);
    let touchpoint = first.iter().find(|e| matches!(e.event, rapport_core::Event::TouchpointHeld { .. }));
    assert_same_as_a_full_read(&again, dir.path(), &with_new_id(touchpoint.expect("a touchpoint"), 10_000));
}

/// A file system that runs a hook once, when the index snapshot's temporary file is created:
/// in the middle of a save, after its checkpoint.
struct DuringSave {
    inner: rapport_store_file::vfs::StdVfs,
    hook: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl rapport_store_file::vfs::Vfs for DuringSave {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn entries(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        self.inner.entries(dir)
    }
    fn open_read(&self, path: &Path) -> std::io::Result<Box<dyn rapport_store_file::vfs::ReadFile>> {
        self.inner.open_read(path)
    }
    fn open_append(
        &self,
        path: &Path,
        create_new: bool,
    ) -> std::io::Result<Box<dyn rapport_store_file::vfs::AppendFile>> {
        if path.file_name().is_some_and(|n| n == "log-index.tmp") {
            let hook = self.hook.lock().expect("hook").take();
            if let Some(hook) = hook {
                hook();
            }
        }
        self.inner.open_append(path, create_new)
    }
    fn truncate(&self, path: &Path, len: u64) -> std::io::Result<()> {
        self.inner.truncate(path, len)
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn sync_file(&self, path: &Path) -> std::io::Result<()> {
        self.inner.sync_file(path)
    }
    fn remove_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.remove_dir(dir)
    }
    fn canonicalize(&self, path: &Path) -> std::io::Result<PathBuf> {
        self.inner.canonicalize(path)
    }
    fn lock_dir(&self, dir: &Path) -> std::io::Result<Box<dyn rapport_store_file::vfs::LockGuard>> {
        self.inner.lock_dir(dir)
    }
}

#[test]
fn a_save_gives_back_the_states_it_holds_and_keeps_those_changed_after_its_checkpoint() {
    let dir = TempDir::new("snapshot-give-back-during");
    let events = history(6, 10, 31);
    // The last two events of the first two accounts come after the save.
    let mut accounts: Vec<rapport_core::AccountId> = events.iter().map(|e| e.account.clone()).collect();
    accounts.dedup();
    let (kept, given) = (accounts[0].clone(), accounts[1].clone());
    let last_two = |account: &rapport_core::AccountId| -> Vec<NewEvent> {
        let of: Vec<&NewEvent> = events.iter().filter(|e| &e.account == account).collect();
        of[of.len() - 2..].iter().map(|e| (*e).clone()).collect()
    };
    let (kept_later, given_later) = (last_two(&kept), last_two(&given));
    let first: Vec<NewEvent> = events
        .iter()
        .filter(|e| !kept_later.iter().chain(&given_later).any(|later| later.id == e.id))
        .cloned()
        .collect();
    let vfs =
        std::sync::Arc::new(DuringSave { inner: rapport_store_file::vfs::StdVfs, hook: std::sync::Mutex::new(None) });
    let store = FileStore::open_on(vfs.clone(), dir.path(), small()).expect("open");
    append(&store, &first);
    // `kept` is appended to while the save writes (after its checkpoint), `given` is not.
    let during = {
        let store = store.clone();
        let e = kept_later[0].clone();
        move || {
            pollster::block_on(store.append(vec![e], ExpectedVersion::Any)).expect("an append during the save");
        }
    };
    *vfs.hook.lock().expect("hook") = Some(Box::new(during));
    store.save_index_snapshot().expect("save");
    assert!(vfs.hook.lock().expect("hook").is_none(), "the hook ran during the save");
    // The snapshot just written is zeroed under the open store: a state given back is read
    // from it again (refused, naming the account); the one changed during the save was kept.
    let len = std::fs::metadata(snapshot(dir.path())).expect("snapshot").len();
    std::fs::write(snapshot(dir.path()), vec![0u8; len as usize]).expect("zero it");
    let refused = pollster::block_on(store.append(vec![given_later[0].clone()], ExpectedVersion::Any));
    match refused {
        Err(AppendError::Storage(err)) => {
            let text = err.to_string();
            assert!(text.contains("validation state of account") && text.contains(given.as_str()), "{text}");
        }
        other => panic!("a state given back is read from the snapshot again: {other:?}"),
    }
    pollster::block_on(store.append(vec![kept_later[1].clone()], ExpectedVersion::Any))
        .expect("the state kept decides");
}

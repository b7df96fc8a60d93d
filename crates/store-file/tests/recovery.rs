//! Recovery under faults: a crash at every write and fsync point, torn sectors, bit flips,
//! truncation, lost segments, failing fsyncs, a model-based property test, and crashes while
//! derived state is saved. (Damaged last batches: `last_batch.rs`; frozen stores of earlier
//! builds: `versions.rs`.)

#[path = "support/common.rs"]
mod common;
#[path = "support/faulty.rs"]
mod faulty;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rapport_core::testing::conformance::assert_log_invariants;
use rapport_core::{Envelope, ExpectedVersion, NewEvent, Position, ReadError, Store};
use rapport_store_file::{FileStore, KEYS_FILE, OpenError, Options};

use common::history;

use faulty::{FaultyVfs, MEM_DIR, TEARS, Tear, open_mem, open_mem_with, segment_paths};

/// The scripted workload: batches of mixed sizes over a generated history, enough to roll
/// over segments.
fn workload() -> Vec<Vec<NewEvent>> {
    let events = history(30, 12, 77);
    let mut out = Vec::new();
    let mut at = 0;
    let mut size = 1;
    while at < events.len() && out.len() < 125 {
        let end = (at + size).min(events.len());
        out.push(events[at..end].to_vec());
        at = end;
        size = size % 17 + 3;
    }
    out
}

/// Runs the workload until the first failed append. Returns how many batches were acknowledged.
fn run_workload(vfs: &FaultyVfs, batches: &[Vec<NewEvent>]) -> usize {
    let Ok(store) = open_mem(vfs) else { return 0 };
    let mut acked = 0;
    for b in batches {
        match pollster::block_on(store.append(b.clone(), ExpectedVersion::Any)) {
            Ok(_) => acked += 1,
            Err(_) => break,
        }
    }
    acked
}

fn check_after_crash(image: &FaultyVfs, batches: &[Vec<NewEvent>], acked: usize, what: &str) {
    let store = open_mem(image).unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
    let log = assert_log_invariants(&store);
    let attempted: Vec<&NewEvent> = batches.iter().flatten().collect();
    let n_acked: usize = batches[..acked].iter().map(Vec::len).sum();
    assert!(log.len() >= n_acked, "{what}: {} events, {n_acked} acknowledged", log.len());
    for (env, new) in log.iter().zip(&attempted) {
        assert!(env.same_content(new), "{what}: position {} differs from what was appended", env.position);
    }
    // Batches are atomic: the log ends on a batch boundary.
    let mut boundary = 0;
    let mut boundaries = vec![0];
    for b in batches {
        boundary += b.len();
        boundaries.push(boundary);
    }
    assert!(boundaries.contains(&log.len()), "{what}: {} events is not a batch boundary", log.len());
    // The store still keeps its contract: acknowledged events are duplicates, and a new
    // append lands and survives another reopen.
    let again: Vec<NewEvent> = batches[..acked].iter().flatten().cloned().collect();
    for chunk in again.chunks(1000) {
        let out = pollster::block_on(store.append(chunk.to_vec(), ExpectedVersion::Any)).unwrap();
        assert!(out.appended.is_empty(), "{what}: acknowledged events re-appended");
    }
    let n = log.len();
    let next = batches.iter().flatten().nth(n).cloned();
    if let Some(e) = next {
        pollster::block_on(store.append(vec![e], ExpectedVersion::Any)).unwrap_or_else(|e| panic!("{what}: {e}"));
        drop(store);
        let store = open_mem(image).unwrap_or_else(|e| panic!("{what}: second reopen failed: {e}"));
        assert_eq!(assert_log_invariants(&store).len(), n + 1, "{what}");
    }
}

/// Runs `run` with a crash at each write and fsync operation in `ops`, and checks every image
/// a crash there can leave (every `tear_step`th kind of torn write). Returns how many images.
fn crash_everywhere(
    batches: &[Vec<NewEvent>],
    ops: std::ops::RangeInclusive<u64>,
    tear_step: usize,
    run: fn(&FaultyVfs, &[Vec<NewEvent>]) -> usize,
) -> usize {
    let total_ops = *ops.end();
    let mut points = 0;
    for n in ops {
        let vfs = FaultyVfs::new();
        vfs.crash_at(n);
        let acked = run(&vfs, batches);
        assert!(vfs.has_crashed(), "crash point {n} was reached");
        for (k, tear) in TEARS.iter().enumerate().step_by(tear_step) {
            let image = vfs.crash_image(*tear, n * 4 + k as u64);
            check_after_crash(&image, batches, acked, &format!("crash at op {n}/{total_ops}, {tear:?}"));
            points += 1;
        }
    }
    points
}

#[test]
fn crash_at_every_write_and_fsync_point() {
    let batches = workload();
    let clean = FaultyVfs::new();
    assert_eq!(run_workload(&clean, &batches), batches.len());
    // The workload's events carry personal text: its batches make keys, whose record the
    // writer writes and syncs before their frames, so crash points fall there too.
    let key_file = clean.bytes(&Path::new(MEM_DIR).join(KEYS_FILE)).expect("a key file");
    assert!(key_file.len() > 32 * 48, "{} bytes of keys: the workload makes few", key_file.len());
    let total_ops = clean.ops();
    let points = crash_everywhere(&batches, 1..=total_ops, 1, run_workload);
    assert!(points >= 1_000, "only {points} crash points");
    println!("{points} crash points over {total_ops} write and fsync operations");
}

/// The index snapshot a clean close saves beside the log, if any.
fn snapshot_path(vfs: &FaultyVfs) -> Option<PathBuf> {
    vfs.paths().into_iter().find(|p| p.file_name().is_some_and(|n| n == "log-index.bin"))
}

#[test]
fn bit_flips_in_sealed_segments_are_always_detected() {
    let batches = workload();
    let vfs = FaultyVfs::new();
    run_workload(&vfs, &batches);
    let segments = segment_paths(&vfs);
    assert!(segments.len() >= 2, "the workload seals at least one segment");
    let mut rng = rapport_core::testing::synth::SplitMix64::new(99);
    for trial in 0..300 {
        let image = vfs.crash_image(Tear::KeepAll, trial);
        // An open that reads the whole log (no index snapshot standing in for it; with one,
        // reads and `verify` find the damage, below).
        if let Some(snapshot) = snapshot_path(&image) {
            image.delete(&snapshot);
        }
        let seg = &segments[rng.below(segments.len() as u32 - 1) as usize];
        let mut bytes = image.bytes(seg).unwrap();
        let at = rng.below(bytes.len() as u32) as usize;
        bytes[at] ^= 1 << rng.below(8);
        image.set_bytes(seg, bytes);
        match open_mem(&image) {
            Err(OpenError::Corrupt { segment, offset, .. }) => {
                assert_eq!(&segment, seg, "trial {trial}: names the damaged segment");
                assert!(offset <= at as u64, "trial {trial}: damage at {at} reported at {offset}");
            }
            other => panic!("trial {trial}: flip at {} byte {at} not detected: {other:?}", seg.display()),
        }
    }
}

#[test]
fn bit_flips_under_a_running_store_never_return_wrong_data() {
    let batches = workload();
    let vfs = FaultyVfs::new();
    run_workload(&vfs, &batches);
    let expected = assert_log_invariants(&open_mem(&vfs).unwrap());
    let segments = segment_paths(&vfs);
    let mut rng = rapport_core::testing::synth::SplitMix64::new(7);
    let mut detected = 0;
    for _ in 0..200 {
        let image = vfs.crash_image(Tear::KeepAll, 1);
        let store = open_mem(&image).unwrap();
        let seg = &segments[rng.below(segments.len() as u32) as usize];
        let mut bytes = image.bytes(seg).unwrap();
        let at = 64 + rng.below(bytes.len() as u32 - 64) as usize;
        bytes[at] ^= 1 << rng.below(8);
        image.set_bytes(seg, bytes);
        match pollster::block_on(store.read_all(Position(1), 100_000)) {
            Ok(log) => assert_eq!(log, expected, "a flip at byte {at} returned wrong data"),
            Err(ReadError::Corrupt { location, .. }) => {
                assert!(location.contains(&seg.display().to_string()), "{location}");
                detected += 1;
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert!(detected > 100, "most flips land in records and are detected ({detected})");
}

/// A store rolled over into a small last segment, left open (as a crash leaves it): the
/// head record covers the sealed segment, not the last one's events.
fn store_with_a_small_last_segment() -> (FaultyVfs, FileStore, Vec<Envelope>, PathBuf) {
    let vfs = FaultyVfs::new();
    let store = open_mem(&vfs).unwrap();
    let events = history(30, 12, 5);
    let mut i = 0;
    let mut after_rollover = 0;
    while after_rollover < 6 {
        pollster::block_on(store.append(events[i..i + 4].to_vec(), ExpectedVersion::Any)).unwrap();
        i += 4;
        if segment_paths(&vfs).len() >= 2 {
            after_rollover += 1;
        }
    }
    let full = assert_log_invariants(&store);
    let last = segment_paths(&vfs).pop().unwrap();
    (vfs, store, full, last)
}

#[test]
fn truncation_at_every_byte_of_an_unwitnessed_tail_opens_as_a_prefix() {
    // A crash can leave the last segment cut anywhere after what the head record witnessed.
    let (vfs, store, full, last) = store_with_a_small_last_segment();
    let image = vfs.crash_image(Tear::KeepAll, 0);
    drop(store);
    let bytes = image.bytes(&last).unwrap();
    let withheld: Vec<Envelope> = full.iter().map(Envelope::withheld).collect();
    let mut lengths = std::collections::BTreeSet::new();
    // The new segment's header was durable before the head record named the segment.
    for cut in rapport_store_file::format::SEGMENT_HEADER_BYTES..=bytes.len() {
        let image = image.crash_image(Tear::KeepAll, 0);
        image.set_bytes(&last, bytes[..cut].to_vec());
        // No index snapshot saved at each close: the image has none to open from, and saving
        // one thousands of times judges nothing here.
        let options = Options { index_snapshot: false, ..faulty::small_segments() };
        let store = open_mem_with(&image, options).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        // Every cut: the scan (what folding reads) is a prefix of the log.
        let mut scanned = Vec::new();
        pollster::block_on(store.scan(Position(1), &mut |e| scanned.push(e.to_envelope()))).unwrap();
        assert_eq!(scanned[..], withheld[..scanned.len()], "cut at {cut}: a prefix");
        // Each distinct prefix once, and every 64th cut: every read, whole (text opened), and
        // the log's invariants. An owned read decrypts every text; after every one of the
        // thousands of cuts it was most of this suite's time, and a cut that changes no prefix
        // changes nothing an owned read sees that the scan does not.
        if lengths.insert(scanned.len()) || cut % 64 == 0 {
            let log = assert_log_invariants(&store);
            assert_eq!(log[..], full[..log.len()], "cut at {cut}: a prefix, read whole");
            assert_eq!(log.len(), scanned.len(), "cut at {cut}");
        }
    }
    assert!(lengths.len() > 5, "cuts produce several distinct prefixes: {lengths:?}");
}

#[test]
fn a_log_that_lost_acknowledged_events_is_refused() {
    // After a clean close the head record witnesses every event: cutting the last segment
    // anywhere, or deleting it, is refused by name, by writers and readers alike.
    let (vfs, store, full, last) = store_with_a_small_last_segment();
    drop(store);
    let bytes = vfs.bytes(&last).unwrap();
    for cut in (0..bytes.len()).step_by(7) {
        let image = vfs.crash_image(Tear::KeepAll, 0);
        image.set_bytes(&last, bytes[..cut].to_vec());
        for read_only in [false, true] {
            let opened = if read_only {
                FileStore::open_read_only_on(Arc::new(image.clone()), Path::new(MEM_DIR))
            } else {
                open_mem(&image)
            };
            match opened {
                Err(OpenError::Corrupt { reason, .. }) => {
                    assert!(reason.contains("head record"), "cut at {cut}: {reason}")
                }
                other => panic!("cut at {cut} (read-only {read_only}): {other:?}"),
            }
        }
    }
    let image = vfs.crash_image(Tear::KeepAll, 0);
    image.delete(&last);
    match open_mem(&image) {
        Err(OpenError::Corrupt { segment, reason, .. }) => {
            assert_eq!(segment, last, "names the missing segment");
            assert!(reason.contains("missing"), "{reason}");
        }
        other => panic!("a deleted last segment: {other:?}"),
    }
    // The untouched store still opens whole.
    assert_eq!(assert_log_invariants(&open_mem(&vfs).unwrap()), full);
}

#[test]
fn a_failing_fsync_poisons_the_store() {
    let vfs = FaultyVfs::new();
    let store = open_mem(&vfs).unwrap();
    let events = history(2, 3, 1);
    pollster::block_on(store.append(events[..2].to_vec(), ExpectedVersion::Any)).unwrap();
    vfs.fail_syncs();
    let err = pollster::block_on(store.append(events[2..4].to_vec(), ExpectedVersion::Any)).unwrap_err();
    assert!(err.to_string().contains("fsync"), "{err}");
    assert!(store.is_poisoned());
    // Every later call errors, reads included.
    assert!(pollster::block_on(store.append(events[4..5].to_vec(), ExpectedVersion::Any)).is_err());
    assert!(pollster::block_on(store.read_all(Position(1), 10)).is_err());
    assert!(pollster::block_on(store.head()).is_err());
    drop(store);
    // After a reopen (on healthy storage), the acknowledged events are there.
    let healthy = vfs.crash_image(Tear::DropAll, 0);
    let store = open_mem(&healthy).unwrap();
    assert!(assert_log_invariants(&store).len() >= 2);
}

mod model {
    use super::*;
    use proptest::prelude::*;
    use rapport_core::{AppendError, MemoryStore};

    #[derive(Debug, Clone)]
    enum Op {
        Append {
            len: usize,
        },
        Replay {
            start: usize,
            len: usize,
        },
        /// A logged event with other content under its id: a conflict.
        Conflict {
            at: usize,
        },
        /// A logged event under a new id: judged by its stream's rules (an item made twice,
        /// a step on a closed item, a step dated before the last one, or accepted).
        Again {
            at: usize,
        },
        Reopen,
        /// A crash that leaves the derived files of an earlier clean close (a stale snapshot
        /// and the id file it names) under a log that went on.
        StaleDerived,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (1usize..30).prop_map(|len| Op::Append { len }),
            1 => (0usize..400, 1usize..30).prop_map(|(start, len)| Op::Replay { start, len }),
            1 => (0usize..400).prop_map(|at| Op::Conflict { at }),
            2 => (0usize..400).prop_map(|at| Op::Again { at }),
            2 => Just(Op::Reopen),
            1 => Just(Op::StaleDerived),
        ]
    }

    fn derived_files(vfs: &FaultyVfs) -> Vec<(PathBuf, Vec<u8>)> {
        vfs.paths()
            .into_iter()
            .filter(|p| p.parent().is_some_and(|d| d.ends_with("derived")))
            .filter_map(|p| Some((p.clone(), vfs.bytes(&p)?)))
            .collect()
    }

    /// What an append decided, comparable across stores: appended and duplicate counts, or
    /// the kind of refusal.
    fn verdict(r: Result<rapport_core::AppendOutcome, AppendError>) -> String {
        match r {
            Ok(o) => format!("ok {} {}", o.appended.len(), o.duplicates.len()),
            Err(AppendError::Invalid(e)) => format!("invalid {e}"),
            Err(AppendError::IdConflict { .. }) => "conflict".into(),
            Err(other) => format!("error {other}"),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: rapport_core::testing::cases(24), ..ProptestConfig::default() })]

        /// Random append sequences across reopens, stale snapshots, duplicates, conflicts and
        /// rule checks decide as the in-memory store does, and hold what it holds.
        #[test]
        fn prop_matches_the_memory_store_across_reopens_and_stale_snapshots(ops in proptest::collection::vec(op(), 1..25)) {
            let events = history(6, 12, 13);
            let vfs = FaultyVfs::new();
            let mut store = open_mem(&vfs).unwrap();
            let model = MemoryStore::new();
            let mut logged: Vec<NewEvent> = Vec::new();
            let mut cursor = 0usize;
            let mut saved: Option<Vec<(PathBuf, Vec<u8>)>> = None;
            let mut fresh = 0u64;
            for op in ops {
                let batch = match op {
                    Op::Append { len } => {
                        // Appends walk the history in order so every batch is valid.
                        let end = (cursor + len).min(events.len());
                        let batch = events[cursor..end].to_vec();
                        cursor = end;
                        Some(batch)
                    }
                    Op::Replay { start, len } => {
                        let start = start.min(logged.len());
                        let end = (start + len).min(logged.len());
                        Some(logged[start..end].to_vec())
                    }
                    Op::Conflict { at } if !logged.is_empty() => {
                        let mut e = logged[at % logged.len()].clone();
                        e.occurred_at = e.occurred_at.add_nanos(-1);
                        Some(vec![e])
                    }
                    Op::Again { at } if !logged.is_empty() => {
                        fresh += 1;
                        let mut e = logged[at % logged.len()].clone();
                        let mut id = [0u8; 16];
                        id[..8].copy_from_slice(&fresh.to_be_bytes());
                        id[8..].copy_from_slice(&0xa9a1_u64.to_be_bytes());
                        e.id = rapport_core::EventId::from_bytes(id);
                        Some(vec![e])
                    }
                    Op::Conflict { .. } | Op::Again { .. } => None,
                    Op::Reopen => {
                        drop(store);
                        saved = Some(derived_files(&vfs));
                        store = open_mem(&vfs).unwrap();
                        None
                    }
                    Op::StaleDerived => {
                        drop(store);
                        if let Some(old) = &saved {
                            for (path, _) in derived_files(&vfs) {
                                vfs.delete(&path);
                            }
                            for (path, bytes) in old {
                                vfs.set_bytes(path, bytes.clone());
                            }
                        }
                        store = open_mem(&vfs).unwrap();
                        None
                    }
                };
                if let Some(batch) = batch {
                    let ours = pollster::block_on(store.append(batch.clone(), ExpectedVersion::Any));
                    let theirs = pollster::block_on(model.append(batch.clone(), ExpectedVersion::Any));
                    if let Ok(o) = &theirs {
                        for c in &o.appended {
                            logged.extend(batch.iter().filter(|e| e.id == c.id).cloned());
                        }
                    }
                    prop_assert_eq!(verdict(ours), verdict(theirs));
                }
                let log = pollster::block_on(store.read_all(Position(1), 100_000)).unwrap();
                prop_assert_eq!(log.len(), logged.len());
                for (env, new) in log.iter().zip(&logged) {
                    prop_assert!(env.same_content(new));
                }
            }
        }
    }
}

#[test]
fn a_crash_while_saving_derived_state_leaves_the_old_blob_or_the_new() {
    use rapport_core::DerivedStore;
    let old: Vec<u8> = (0..5_000u32).map(|i| (i % 253) as u8).collect();
    let new: Vec<u8> = (0..7_000u32).map(|i| (i % 241) as u8 ^ 0x5a).collect();
    // How many writes and syncs saving the new blob takes.
    let ops = {
        let vfs = FaultyVfs::new();
        let store = open_mem(&vfs).unwrap();
        pollster::block_on(store.save_derived("runner", &old)).unwrap();
        let before = vfs.ops();
        pollster::block_on(store.save_derived("runner", &new)).unwrap();
        vfs.ops() - before
    };
    assert!(ops >= 4, "{ops} operations");
    let mut images = 0;
    for n in 1..=ops {
        let vfs = FaultyVfs::new();
        let store = open_mem(&vfs).unwrap();
        pollster::block_on(store.save_derived("runner", &old)).unwrap();
        vfs.crash_at(n);
        assert!(pollster::block_on(store.save_derived("runner", &new)).is_err(), "crash point {n} is reached");
        drop(store);
        for (k, tear) in TEARS.iter().enumerate() {
            let image = vfs.crash_image(*tear, n * 4 + k as u64);
            let reopened = open_mem(&image).unwrap_or_else(|e| panic!("crash at {n}, {tear:?}: {e}"));
            let blob = pollster::block_on(reopened.load_derived("runner")).expect("load");
            assert!(
                blob.as_deref() == Some(&old[..]) || blob.as_deref() == Some(&new[..]),
                "crash at {n}/{ops}, {tear:?}: neither the old blob nor the new one ({:?} bytes)",
                blob.map(|b| b.len())
            );
            // And saving again works.
            pollster::block_on(reopened.save_derived("runner", &new)).expect("save after the crash");
            images += 1;
        }
    }
    println!("{images} crash images of a derived-state save");
}

/// The workload in two sessions: the first closes cleanly (an index snapshot and an id file
/// of the first half), the second appends the rest and closes (replacing both). Returns how
/// many batches were acknowledged.
fn run_two_sessions(vfs: &FaultyVfs, batches: &[Vec<NewEvent>]) -> usize {
    let half = batches.len() / 2;
    let acked = run_workload(vfs, &batches[..half]);
    if acked < half {
        return acked;
    }
    acked + run_workload(vfs, &batches[half..])
}

#[test]
fn a_crash_at_every_write_of_a_snapshot_and_id_file_replacement_opens_the_acknowledged_log() {
    let batches = workload();
    let clean = FaultyVfs::new();
    assert_eq!(run_workload(&clean, &batches[..batches.len() / 2]), batches.len() / 2);
    let first_session = clean.ops();
    assert_eq!(run_workload(&clean, &batches[batches.len() / 2..]), batches.len() - batches.len() / 2);
    let total_ops = clean.ops();
    let derived: Vec<String> =
        clean.paths().iter().filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).collect();
    assert!(derived.iter().any(|n| n == "log-ids-2.bin"), "the second close wrote a new id file: {derived:?}");
    assert!(!derived.iter().any(|n| n == "log-ids-1.bin"), "and removed the first: {derived:?}");
    // Every write and fsync of the second session, its close (id file, snapshot, removal of
    // the old id file) included.
    let points = crash_everywhere(&batches, first_session + 1..=total_ops, 1, run_two_sessions);
    assert!(points >= 100, "only {points} crash points");
    println!("{points} crash points over the second session's {} operations", total_ops - first_session);
}

/// The workload with an index snapshot saved while the store runs, halfway, then a clean
/// close. Returns how many batches were acknowledged.
fn run_with_a_live_snapshot(vfs: &FaultyVfs, batches: &[Vec<NewEvent>]) -> usize {
    let Ok(store) = open_mem(vfs) else { return 0 };
    let mut acked = 0;
    for (k, b) in batches.iter().enumerate() {
        if k == batches.len() / 2 && store.save_index_snapshot().is_err() {
            return acked;
        }
        match pollster::block_on(store.append(b.clone(), ExpectedVersion::Any)) {
            Ok(_) => acked += 1,
            Err(_) => break,
        }
    }
    acked
}

#[test]
fn a_snapshot_saved_while_running_stands_in_after_a_crash_and_keeps_every_id() {
    let batches = workload();
    let half: usize = batches[..batches.len() / 2].iter().map(Vec::len).sum();
    let vfs = FaultyVfs::new();
    let store = open_mem(&vfs).unwrap();
    for b in &batches[..batches.len() / 2] {
        pollster::block_on(store.append(b.clone(), ExpectedVersion::Any)).unwrap();
    }
    assert_eq!(store.index_snapshot_at(), 0);
    assert_eq!(store.save_index_snapshot().unwrap(), half as u64);
    assert_eq!(store.index_snapshot_at(), half as u64);
    // A crash right after it: the head record was recorded where the snapshot ends, so the
    // open stands on it (an open refuses a snapshot ahead of the head record).
    let at_save = open_mem(&vfs.crash_image(Tear::KeepAll, 1)).unwrap();
    assert_eq!(at_save.recovery().from_snapshot, half as u64);
    assert_eq!(at_save.index_snapshot_at(), half as u64);
    assert_eq!(assert_log_invariants(&at_save).len(), half);
    drop(at_save);
    // The ids logged before the save left the validation state for the id file: still found.
    let early: Vec<NewEvent> = batches[..batches.len() / 2].iter().flatten().cloned().collect();
    for chunk in early.chunks(500) {
        let out = pollster::block_on(store.append(chunk.to_vec(), ExpectedVersion::Any)).unwrap();
        assert_eq!((out.appended.len(), out.duplicates.len()), (0, chunk.len()));
    }
    let mut changed = early[3].clone();
    changed.occurred_at = changed.occurred_at.add_nanos(1);
    assert!(matches!(
        pollster::block_on(store.append(vec![changed], ExpectedVersion::Any)),
        Err(rapport_core::AppendError::IdConflict { .. })
    ));
    for b in &batches[batches.len() / 2..] {
        pollster::block_on(store.append(b.clone(), ExpectedVersion::Any)).unwrap();
    }
    let all = assert_log_invariants(&store);
    // A crash now (the store never closes): the open stands on the snapshot saved halfway.
    let image = vfs.crash_image(Tear::KeepAll, 0);
    drop(store);
    let reopened = open_mem(&image).unwrap();
    assert_eq!(reopened.recovery().from_snapshot, half as u64);
    assert_eq!(assert_log_invariants(&reopened), all);
    let again: Vec<NewEvent> = batches.iter().flatten().cloned().collect();
    for chunk in again.chunks(1_000) {
        let out = pollster::block_on(reopened.append(chunk.to_vec(), ExpectedVersion::Any)).unwrap();
        assert!(out.appended.is_empty(), "logged events are duplicates, before and after the save");
    }
    // A read-only handle refuses to save one.
    drop(reopened);
    let reader = FileStore::open_read_only_on(Arc::new(image.clone()), Path::new(MEM_DIR)).unwrap();
    assert!(reader.save_index_snapshot().is_err());
}

#[test]
fn appends_go_on_while_a_snapshot_is_saved_and_every_id_stays_found() {
    let batches = workload();
    let vfs = FaultyVfs::new();
    let store = Arc::new(open_mem(&vfs).unwrap());
    let appender = {
        let store = Arc::clone(&store);
        let batches = batches.clone();
        std::thread::spawn(move || {
            for b in &batches {
                pollster::block_on(store.append(b.clone(), ExpectedVersion::Any)).unwrap();
            }
        })
    };
    // Saves while the appender runs: each covers what was committed at its checkpoint.
    let mut saved = Vec::new();
    while !appender.is_finished() {
        saved.push(store.save_index_snapshot().unwrap());
    }
    appender.join().unwrap();
    saved.push(store.save_index_snapshot().unwrap());
    assert!(saved.windows(2).all(|w| w[0] <= w[1]), "saves cover more and more: {saved:?}");
    let all = assert_log_invariants(&store);
    let events: Vec<NewEvent> = batches.iter().flatten().cloned().collect();
    assert_eq!(all.len(), events.len());
    // Ids logged before, during and after each save: all found, as duplicates or conflicts.
    for chunk in events.chunks(500) {
        let out = pollster::block_on(store.append(chunk.to_vec(), ExpectedVersion::Any)).unwrap();
        assert_eq!((out.appended.len(), out.duplicates.len()), (0, chunk.len()));
    }
    for i in [0, events.len() / 3, events.len() - 1] {
        let mut changed = events[i].clone();
        changed.occurred_at = changed.occurred_at.add_nanos(1);
        assert!(matches!(
            pollster::block_on(store.append(vec![changed], ExpectedVersion::Any)),
            Err(rapport_core::AppendError::IdConflict { .. })
        ));
    }
    // A crash now opens on the last save; every id is still found.
    let image = vfs.crash_image(Tear::KeepAll, 0);
    drop(store);
    let reopened = open_mem(&image).unwrap();
    assert_eq!(reopened.recovery().from_snapshot, *saved.last().unwrap());
    assert_eq!(assert_log_invariants(&reopened), all);
    for chunk in events.chunks(1_000) {
        let out = pollster::block_on(reopened.append(chunk.to_vec(), ExpectedVersion::Any)).unwrap();
        assert!(out.appended.is_empty());
    }
}

#[test]
fn a_crash_at_every_write_of_a_snapshot_saved_while_running_opens_the_acknowledged_log() {
    let batches = workload();
    let clean = FaultyVfs::new();
    assert_eq!(run_with_a_live_snapshot(&clean, &batches), batches.len());
    let total_ops = clean.ops();
    let points = crash_everywhere(&batches, 1..=total_ops, 2, run_with_a_live_snapshot);
    assert!(points >= 200, "only {points} crash points");
    println!("{points} crash points over {total_ops} write and fsync operations with a live snapshot");
}

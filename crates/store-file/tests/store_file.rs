//! rapport-store-file's integration tests: the conformance suite, reopening, locking,
//! recovery, and fault injection (crash points, torn sectors, bit flips, truncation, failing
//! fsyncs), plus a model-based property test and a frozen fixture.

#[path = "support/faulty.rs"]
mod faulty;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rapport_core::synth::{SynthConfig, generate};
use rapport_core::testing::Guarded;
use rapport_core::testing::conformance::assert_log_invariants;
use rapport_core::{AccountId, Envelope, ExpectedVersion, Ledger, NewEvent, Position, ReadError, Store};
use rapport_store_file::{Durability, FileStore, OpenError, Options};

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("rapport-test-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A file store in a temporary directory (small segments, so the suite also crosses segment
/// boundaries), for the conformance suite.
fn temp_store() -> Guarded<FileStore, TempDir> {
    let dir = TempDir::new("conf");
    let options = Options { segment_bytes_max: 64 * 1024, ..Options::default() };
    let store = FileStore::open_with(dir.path(), options).expect("open");
    Guarded::new(store, dir)
}

mod conformance {
    rapport_core::conformance_suite!(super::temp_store);
}

fn history(accounts: u32, months: u32, seed: u64) -> Vec<NewEvent> {
    generate(SynthConfig { accounts, months, seed, ..Default::default() }).collect()
}

fn contents(store: &FileStore) -> Vec<Envelope> {
    assert_log_invariants(store)
}

#[test]
fn events_survive_reopen_across_segments() {
    let dir = TempDir::new("reopen");
    let options = Options { segment_bytes_max: 64 * 1024, ..Options::default() };
    let events = history(60, 12, 3);
    let before = {
        let ledger = Ledger::new(FileStore::open_with(dir.path(), options.clone()).unwrap());
        for chunk in events.chunks(97) {
            ledger.blocking().append(chunk.to_vec(), ExpectedVersion::Any).unwrap();
        }
        contents(ledger.store())
    };
    let store = FileStore::open_with(dir.path(), options).unwrap();
    assert!(store.recovery().n_segments > 3, "crossed segments: {:?}", store.recovery());
    assert!(store.recovery().truncated.is_empty());
    let after = contents(&store);
    assert_eq!(before, after);
    assert_eq!(after.len(), events.len());
    // Validation state was rebuilt: the same events are duplicates, and rules still hold.
    let again = pollster::block_on(store.append(events[..50].to_vec(), ExpectedVersion::Any)).unwrap();
    assert_eq!(again.duplicates.len(), 50);
    // A logged id with other content is still a conflict after the reopen.
    let mut forged = events[7].clone();
    forged.occurred_at = forged.occurred_at.add_nanos(1);
    let err = pollster::block_on(store.append(vec![forged], ExpectedVersion::Any)).unwrap_err();
    assert!(matches!(err, rapport_core::AppendError::IdConflict { .. }), "{err}");
    drop(store);
    // `verify` follows the same hash chain across many frames per segment (it once chained
    // header checksums instead of payload checksums and failed on every second frame).
    let report = rapport_store_file::verify(dir.path()).unwrap();
    assert_eq!(report.n_events, events.len() as u64);
}

#[test]
fn a_second_process_is_refused_by_the_lock() {
    let dir = TempDir::new("lock");
    let _first = FileStore::open(dir.path()).unwrap();
    match FileStore::open(dir.path()) {
        Err(OpenError::Locked { .. }) => {}
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[test]
fn a_missing_store_is_refused_when_asked() {
    let dir = TempDir::new("missing");
    let options = Options { create_if_missing: false, ..Options::default() };
    assert!(matches!(FileStore::open_with(dir.path(), options), Err(OpenError::Missing { .. })));
}

#[test]
fn no_sync_durability_still_round_trips() {
    let dir = TempDir::new("nosync");
    let options = Options { durability: Durability::NoSyncMayLoseRecentOnCrash, ..Options::default() };
    let events = history(3, 6, 1);
    {
        let s = FileStore::open_with(dir.path(), options.clone()).unwrap();
        pollster::block_on(s.append(events.clone(), ExpectedVersion::Any)).unwrap();
    }
    assert_eq!(contents(&FileStore::open_with(dir.path(), options).unwrap()).len(), events.len());
}

#[test]
fn dropping_the_store_right_after_an_append_releases_it() {
    // The writer thread lets go of the store before it wakes the appender, so a reopen right
    // after the last handle is dropped never finds the lock still held.
    let dir = TempDir::new("drop-reopen");
    let options = Options { durability: Durability::NoSyncMayLoseRecentOnCrash, ..Options::default() };
    let events = history(20, 12, 2);
    for (round, chunk) in events.chunks(events.len() / 20 + 1).enumerate() {
        let s = FileStore::open_with(dir.path(), options.clone())
            .unwrap_or_else(|e| panic!("reopen in round {round}: {e}"));
        pollster::block_on(s.append(chunk.to_vec(), ExpectedVersion::Any)).unwrap();
    }
    assert_eq!(contents(&FileStore::open_with(dir.path(), options).unwrap()).len(), events.len());
}

#[test]
fn concurrent_single_event_appenders_lose_nothing() {
    let dir = TempDir::new("group");
    let store = Arc::new(FileStore::open(dir.path()).unwrap());
    let events = history(8, 6, 5);
    let per: Vec<Vec<NewEvent>> = {
        let mut by: std::collections::BTreeMap<AccountId, Vec<NewEvent>> = Default::default();
        for e in events.clone() {
            by.entry(e.account.clone()).or_default().push(e);
        }
        by.into_values().collect()
    };
    let handles: Vec<_> = per
        .into_iter()
        .map(|evs| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for e in evs {
                    pollster::block_on(store.append(vec![e], ExpectedVersion::Any)).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(contents(&store).len(), events.len());
}

// ---------------------------------------------------------------------------------------------
// Fault injection.

use faulty::{FaultyVfs, TEARS, Tear};

const MEM_DIR: &str = "/mem/db";

fn small_segments() -> Options {
    Options { segment_bytes_max: 64 * 1024, ..Options::default() }
}

fn open_mem(vfs: &FaultyVfs) -> Result<FileStore, OpenError> {
    FileStore::open_on(Arc::new(vfs.clone()), Path::new(MEM_DIR), small_segments())
}

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

#[test]
fn crash_at_every_write_and_fsync_point() {
    let batches = workload();
    let clean = FaultyVfs::new();
    assert_eq!(run_workload(&clean, &batches), batches.len());
    let total_ops = clean.ops();
    let mut points = 0;
    for n in 1..=total_ops {
        let vfs = FaultyVfs::new();
        vfs.crash_at(n);
        let acked = run_workload(&vfs, &batches);
        assert!(vfs.has_crashed(), "crash point {n} was reached");
        for (k, tear) in TEARS.iter().enumerate() {
            let image = vfs.crash_image(*tear, n * 4 + k as u64);
            check_after_crash(&image, &batches, acked, &format!("crash at op {n}/{total_ops}, {tear:?}"));
            points += 1;
        }
    }
    assert!(points >= 1_000, "only {points} crash points");
    println!("{points} crash points over {total_ops} write and fsync operations");
}

fn segment_paths(vfs: &FaultyVfs) -> Vec<PathBuf> {
    let mut p: Vec<PathBuf> = vfs.paths().into_iter().filter(|p| p.extension().is_some_and(|e| e == "rpl")).collect();
    p.sort();
    p
}

#[test]
fn bit_flips_in_sealed_segments_are_always_detected() {
    let batches = workload();
    let vfs = FaultyVfs::new();
    run_workload(&vfs, &batches);
    let segments = segment_paths(&vfs);
    assert!(segments.len() >= 2, "the workload seals at least one segment");
    let mut rng = rapport_core::synth::SplitMix64::new(99);
    for trial in 0..300 {
        let image = vfs.crash_image(Tear::KeepAll, trial);
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
    let mut rng = rapport_core::synth::SplitMix64::new(7);
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

#[test]
fn truncation_at_every_byte_of_the_last_segment_opens_as_a_prefix() {
    // Fill one segment, then a few batches into the next, so the last segment is small.
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
    drop(store);
    let full = assert_log_invariants(&open_mem(&vfs).unwrap());
    let last = segment_paths(&vfs).pop().unwrap();
    let bytes = vfs.bytes(&last).unwrap();
    let mut lengths = std::collections::BTreeSet::new();
    for cut in 0..=bytes.len() {
        let image = vfs.crash_image(Tear::KeepAll, 0);
        image.set_bytes(&last, bytes[..cut].to_vec());
        let store = open_mem(&image).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let log = assert_log_invariants(&store);
        assert_eq!(log[..], full[..log.len()], "cut at {cut}: a prefix");
        lengths.insert(log.len());
    }
    assert!(lengths.len() > 5, "cuts produce several distinct prefixes: {lengths:?}");
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

    #[derive(Debug, Clone)]
    enum Op {
        Append { len: usize },
        Replay { start: usize, len: usize },
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (1usize..30).prop_map(|len| Op::Append { len }),
            1 => (0usize..400, 1usize..30).prop_map(|(start, len)| Op::Replay { start, len }),
            2 => Just(Op::Reopen),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: rapport_core::testing::cases(24), ..ProptestConfig::default() })]

        /// Random append sequences across reopens match a plain `Vec` model.
        #[test]
        fn prop_matches_a_vec_model_across_reopens(ops in proptest::collection::vec(op(), 1..25)) {
            let events = history(6, 12, 13);
            let vfs = FaultyVfs::new();
            let mut store = open_mem(&vfs).unwrap();
            let mut model: Vec<NewEvent> = Vec::new();
            let mut cursor = 0usize;
            for op in ops {
                match op {
                    Op::Append { len } => {
                        // Appends walk the history in order so every batch is valid.
                        let end = (cursor + len).min(events.len());
                        let batch = events[cursor..end].to_vec();
                        cursor = end;
                        let out = pollster::block_on(store.append(batch.clone(), ExpectedVersion::Any)).unwrap();
                        prop_assert_eq!(out.appended.len(), batch.len());
                        model.extend(batch);
                    }
                    Op::Replay { start, len } => {
                        // Re-sending already-appended events is a no-op.
                        let start = start.min(model.len());
                        let end = (start + len).min(model.len());
                        let out = pollster::block_on(store.append(model[start..end].to_vec(), ExpectedVersion::Any)).unwrap();
                        prop_assert!(out.appended.is_empty());
                    }
                    Op::Reopen => {
                        drop(store);
                        store = open_mem(&vfs).unwrap();
                    }
                }
                let log = pollster::block_on(store.read_all(Position(1), 100_000)).unwrap();
                prop_assert_eq!(log.len(), model.len());
                for (env, new) in log.iter().zip(&model) {
                    prop_assert!(env.same_content(new));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The frozen fixture: a log written by format version 1 must keep opening.

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn the_frozen_v1_fixture_still_opens() {
    let fixture = fixture_dir();
    if std::env::var_os("RAPPORT_WRITE_FIXTURE").is_some() {
        let _ = std::fs::remove_dir_all(&fixture);
        let options = Options { segment_bytes_max: 64 * 1024, ..Options::default() };
        let store = FileStore::open_with(&fixture, options).unwrap();
        for chunk in history(25, 12, 2024).chunks(50) {
            pollster::block_on(store.append(chunk.to_vec(), ExpectedVersion::Any)).unwrap();
        }
        let log = assert_log_invariants(&store);
        drop(store);
        let _ = std::fs::remove_file(fixture.join(rapport_store_file::LOCK_FILE));
        let lines: Vec<String> = log.iter().map(Envelope::to_json_line).collect();
        std::fs::write(fixture.with_extension("jsonl"), lines.join("\n") + "\n").unwrap();
    }
    let tmp = TempDir::new("fixture");
    copy_dir(&fixture, tmp.path());
    let store = FileStore::open_with(tmp.path(), Options { create_if_missing: false, ..Options::default() })
        .unwrap_or_else(|e| panic!("the v1 fixture no longer opens: {e}"));
    assert!(store.recovery().truncated.is_empty(), "{:?}", store.recovery());
    let log = assert_log_invariants(&store);
    let expected = std::fs::read_to_string(fixture.with_extension("jsonl")).unwrap();
    let expected: Vec<Envelope> = expected.lines().map(|l| Envelope::from_json_line(l).unwrap()).collect();
    assert_eq!(log, expected);
    assert!(store.recovery().n_segments >= 2);
}

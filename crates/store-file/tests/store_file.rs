//! rapport-store-file's integration tests: the conformance suite, reopening, locking,
//! read-only opens and concurrency. Recovery, fault injection and the model-based property
//! test are in `recovery.rs`.

#[path = "support/common.rs"]
mod common;

use common::{TempDir, contents, history};

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rapport_core::testing::Guarded;
use rapport_core::{AccountId, ExpectedVersion, Ledger, NewEvent, Store};
use rapport_store_file::{Durability, FileStore, OpenError, Options};

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
fn a_read_only_open_changes_nothing_and_runs_beside_a_writer() {
    let dir = TempDir::new("readonly");
    let snapshot = |dir: &Path| {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap_or_default()))
            .collect();
        files.sort();
        files
    };
    // An empty directory is no store, and stays empty.
    std::fs::create_dir_all(dir.path()).unwrap();
    assert!(matches!(FileStore::open_read_only(dir.path()), Err(OpenError::Missing { .. })));
    assert!(snapshot(dir.path()).is_empty(), "nothing created");
    let writer = FileStore::open(dir.path()).unwrap();
    let events = history(4, 6, 8);
    pollster::block_on(writer.append(events.clone(), ExpectedVersion::Any)).unwrap();
    let before = snapshot(dir.path());
    // Beside the open writer, twice at once: no lock taken, nothing written.
    let a = FileStore::open_read_only(dir.path()).unwrap();
    let b = FileStore::open_read_only(dir.path()).unwrap();
    assert_eq!(contents(&a), contents(&writer));
    assert_eq!(contents(&b).len(), events.len());
    let err = pollster::block_on(a.append(events[..1].to_vec(), ExpectedVersion::Any)).unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    drop((a, b));
    assert_eq!(snapshot(dir.path()), before, "the directory is as it was");
    drop(writer);
    // A torn tail is reported, left in place, and cut by the next writer.
    let seg = dir.path().join(rapport_store_file::segment_name(0));
    let mut bytes = std::fs::read(&seg).unwrap();
    let cut = bytes.len();
    bytes.extend_from_slice(&[0x42; 100]);
    bytes.truncate(cut + 30);
    std::fs::write(&seg, &bytes).unwrap();
    let r = FileStore::open_read_only(dir.path()).unwrap();
    let skipped = r.recovery().skipped.clone().expect("the tail is reported");
    assert_eq!((skipped.offset, skipped.bytes), (cut as u64, 30));
    assert_eq!(contents(&r).len(), events.len());
    assert_eq!(std::fs::read(&seg).unwrap(), bytes, "left in place");
    drop(r);
    let w = FileStore::open(dir.path()).unwrap();
    assert_eq!(w.recovery().truncated.len(), 1);
    assert_eq!(contents(&w).len(), events.len());
}

#[test]
fn read_only_opens_during_appends_see_whole_batches() {
    // A reader racing a writer (frames half written, segments rolling over) reads a prefix of
    // the final log that ends on a batch boundary, and never reports damage.
    let dir = TempDir::new("readonly-race");
    let options = Options { segment_bytes_max: 64 * 1024, ..Options::default() };
    let writer = FileStore::open_with(dir.path(), options).unwrap();
    let events = history(40, 12, 9);
    let batches: Vec<Vec<NewEvent>> = events.chunks(37).map(<[NewEvent]>::to_vec).collect();
    let done = std::sync::atomic::AtomicBool::new(false);
    let seen = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut seen = Vec::new();
            while !done.load(Ordering::SeqCst) {
                let r = FileStore::open_read_only(dir.path()).unwrap_or_else(|e| panic!("read-only open: {e}"));
                seen.push(contents(&r));
            }
            seen
        });
        for b in &batches {
            pollster::block_on(writer.append(b.clone(), ExpectedVersion::Any)).unwrap();
        }
        done.store(true, Ordering::SeqCst);
        reader.join().unwrap()
    });
    let full = contents(&writer);
    assert!(!seen.is_empty());
    for log in &seen {
        assert_eq!(log[..], full[..log.len()]);
        assert!(log.len() % 37 == 0 || log.len() == full.len(), "{} is not a batch boundary", log.len());
    }
}

#[test]
fn a_missing_store_is_refused_when_asked() {
    let dir = TempDir::new("missing");
    let options = Options { create_if_missing: false, ..Options::default() };
    assert!(matches!(FileStore::open_with(dir.path(), options.clone()), Err(OpenError::Missing { .. })));
    // An empty directory holds no store either, and is left empty.
    std::fs::create_dir_all(dir.path()).unwrap();
    assert!(matches!(FileStore::open_with(dir.path(), options), Err(OpenError::Missing { .. })));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
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

mod sparse_offsets {
    //! Reads place every record by walking from an anchor every 64 positions: across record
    //! prefixes, frame headers and segment boundaries. Whatever the batch sizes, every read
    //! (ranges from any position, streams, single events) returns the events appended, on the
    //! live handle (offsets noted by the writer), after a reopen from the index snapshot and
    //! after a reopen that reads the whole log.

    use super::*;
    use proptest::prelude::*;
    use rapport_core::{Envelope, Position, StreamVersion};

    fn check_reads(store: &FileStore, model: &[Envelope], probes: &[(usize, usize)]) -> Result<(), TestCaseError> {
        prop_assert_eq!(&contents(store), model);
        for &(from, limit) in probes {
            let from = from % (model.len() + 2);
            let page = pollster::block_on(store.read_all(Position(from as u64), limit)).unwrap();
            let start = from.max(1) - 1;
            let want: Vec<Envelope> = model.iter().skip(start).take(limit).cloned().collect();
            prop_assert_eq!(page, want, "read_all from {} limit {}", from, limit);
        }
        let mut accounts: Vec<AccountId> = model.iter().map(|e| e.account.clone()).collect();
        accounts.sort();
        accounts.dedup();
        for (k, account) in accounts.iter().enumerate() {
            let from = StreamVersion(1 + k as u64 % 3);
            let got = pollster::block_on(store.read_stream(account, from, 1_000)).unwrap();
            let want: Vec<Envelope> =
                model.iter().filter(|e| &e.account == account && e.stream_version >= from).cloned().collect();
            prop_assert_eq!(got, want, "stream {}", account);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: rapport_core::testing::cases(12), ..ProptestConfig::default() })]

        #[test]
        fn prop_every_read_finds_the_records_the_sparse_offsets_place(
            sizes in proptest::collection::vec(prop_oneof![Just(1usize), 1usize..8, 1usize..300, Just(2_000usize)], 1..40),
            probes in proptest::collection::vec((0usize..20_000, 1usize..400), 1..12),
            seed in 0u64..1_000,
        ) {
            let dir = TempDir::new("sparse");
            let options = Options { segment_bytes_max: 64 * 1024, ..Options::default() };
            let events = history(40, 12, seed);
            let store = FileStore::open_with(dir.path(), options.clone()).unwrap();
            let (mut at, mut batches) = (0, 0);
            for size in sizes {
                if at >= events.len() {
                    break;
                }
                let end = (at + size).min(events.len());
                pollster::block_on(store.append(events[at..end].to_vec(), ExpectedVersion::Any)).unwrap();
                at = end;
                batches += 1;
            }
            let model = contents(&store);
            prop_assert_eq!(model.len(), at);
            check_reads(&store, &model, &probes)?;
            drop(store);
            let reopened = FileStore::open_with(dir.path(), options.clone()).unwrap();
            prop_assert_eq!(reopened.recovery().from_snapshot, model.len() as u64);
            // Long logs of several batches cross segments (64 KiB hold about 700 events; one
            // batch is one frame, never split, so a single batch stays in one segment).
            prop_assert!(model.len() < 2_000 || batches == 1 || reopened.recovery().n_segments >= 2);
            check_reads(&reopened, &model, &probes)?;
            drop(reopened);
            let whole = FileStore::open_with(dir.path(), Options { index_snapshot: false, ..options }).unwrap();
            prop_assert_eq!(whole.recovery().from_snapshot, 0);
            check_reads(&whole, &model, &probes)?;
        }
    }
}

/// A store is made only in a missing or empty directory (or a volume's root, which holds
/// `lost+found`): a directory holding other files and no store is refused, naming one of them,
/// and left as it was. An existing store opens whatever else its directory holds.
#[test]
fn a_new_store_is_made_only_in_a_missing_or_empty_directory() {
    let tmp = TempDir::new("foreign");
    let with = |name: &str, file: &str, is_dir: bool| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        if is_dir {
            std::fs::create_dir_all(dir.join(file)).unwrap();
        } else {
            std::fs::write(dir.join(file), b"notes").unwrap();
        }
        dir
    };
    for (dir, holds) in [(with("notes", "readme.txt", false), "readme.txt"), (with("repo", ".git", true), ".git")] {
        match FileStore::open(&dir) {
            Err(e @ OpenError::NotAStore { .. }) => {
                assert!(e.to_string().contains(&format!("({holds:?}) and no rapport store")), "{e}");
            }
            other => panic!("{}: expected NotAStore, got {other:?}", dir.display()),
        }
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, [holds], "nothing made in {}", dir.display());
    }
    // A volume's root, and an empty directory, become stores.
    drop(FileStore::open(with("volume", "lost+found", true)).unwrap());
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    drop(FileStore::open(&empty).unwrap());
    // A store opens with a file of someone else's beside it.
    std::fs::write(empty.join("NOTES.txt"), b"ours").unwrap();
    drop(FileStore::open(&empty).unwrap());
}

/// A path that names a file is refused as one, by every kind of open, and the file is left as
/// it was: a file store is a directory.
#[test]
fn a_file_given_as_the_store_is_refused_as_a_file() {
    let tmp = TempDir::new("afile");
    std::fs::create_dir_all(tmp.path()).unwrap();
    let file = tmp.path().join("events.jsonl");
    std::fs::write(&file, b"{}\n").unwrap();
    let opens: [(&str, Result<FileStore, OpenError>); 3] = [
        ("writer", FileStore::open(&file)),
        ("read-only", FileStore::open_read_only(&file)),
        ("following", FileStore::open_following(&file, std::time::Duration::from_millis(10))),
    ];
    for (what, opened) in opens {
        match opened {
            Err(e @ OpenError::NotADirectory { .. }) => {
                assert!(
                    e.to_string().starts_with(&format!("{} is a file, not a rapport store", file.display())),
                    "{e}"
                );
            }
            other => panic!("{what}: expected NotADirectory, got {other:?}"),
        }
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"{}\n");
}

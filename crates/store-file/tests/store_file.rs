//! rapport-store-file's integration tests: the conformance suite, reopening, locking,
//! recovery, and fault injection (crash points, torn sectors, bit flips, truncation, failing
//! fsyncs), plus a model-based property test and a frozen fixture.

mod faulty;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rapport_core::synth::{SynthConfig, generate};
use rapport_core::testing::conformance::assert_log_invariants;
use rapport_core::{
    AccountId, AppendError, AppendOutcome, Envelope, ExpectedVersion, Ledger, NewEvent, Position, ReadError, Store,
    StreamVersion,
};
use rapport_store_file::{Durability, FileStore, OpenError, Options};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("rapport-test-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A file store in a temporary directory, for the conformance suite.
pub struct TempStore {
    store: FileStore,
    _dir: TempDir,
}

impl TempStore {
    pub fn new() -> Self {
        let dir = TempDir::new("conf");
        // Small segments so the suite also crosses segment boundaries.
        let options = Options { segment_bytes_max: 64 * 1024, ..Options::default() };
        let store = FileStore::open_with(dir.path(), options).expect("open");
        Self { store, _dir: dir }
    }
}

impl Store for TempStore {
    fn append(&self, batch: Vec<NewEvent>, expected: ExpectedVersion) -> impl Future<Output = Result<AppendOutcome, AppendError>> + Send {
        self.store.append(batch, expected)
    }
    fn read_stream(&self, account: &AccountId, from: StreamVersion, limit: usize) -> impl Future<Output = Result<Vec<Envelope>, ReadError>> + Send {
        self.store.read_stream(account, from, limit)
    }
    fn read_all(&self, from: Position, limit: usize) -> impl Future<Output = Result<Vec<Envelope>, ReadError>> + Send {
        self.store.read_all(from, limit)
    }
    fn accounts(&self, after: Option<&AccountId>, limit: usize) -> impl Future<Output = Result<Vec<AccountId>, ReadError>> + Send {
        self.store.accounts(after, limit)
    }
    fn head(&self) -> impl Future<Output = Result<Position, ReadError>> + Send {
        self.store.head()
    }
}

mod conformance {
    rapport_core::conformance_suite!(super::TempStore::new);
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
fn concurrent_appenders_share_fsyncs() {
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

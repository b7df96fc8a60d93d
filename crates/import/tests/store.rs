//! rapport-import's integration tests of the store's side of an import: asking it about a
//! file's ids and streams, another writer changing it between the passes, and an append that
//! fails.

use rapport_core::{Ledger, MemoryStore, Position, Store};
use rapport_import::{ImportError, ImportOptions};

mod common;
use common::{import_reader, jsonl, log, run};

/// The `k`-th line of `text` (0-based) as an event, and a different event of another account
/// that reuses its id.
fn id_thief(text: &str, k: usize) -> rapport_core::NewEvent {
    let victim = rapport_core::NewEvent::from_json_line(text.lines().nth(k).unwrap()).unwrap();
    let mut thief = rapport_core::NewEvent::new(
        rapport_core::AccountId::new("elsewhere").unwrap(),
        victim.occurred_at,
        rapport_core::Event::TouchpointHeld { channel: rapport_core::Channel::Email },
    );
    thief.id = victim.id;
    thief
}

#[test]
fn an_id_logged_for_an_account_the_file_does_not_touch_is_refused_before_any_append() {
    // The file spans many batches; its last line reuses the id of an event that another
    // account's stream already holds. The shadow does not load that stream, so only asking the
    // store about the file's ids finds it: nothing may be appended, and the line is named.
    let text = jsonl(4, 6);
    let n = text.lines().count();
    let ledger = Ledger::memory();
    ledger.blocking().append(vec![id_thief(&text, n - 1)], rapport_core::ExpectedVersion::Any).unwrap();
    let options = ImportOptions { batch_events: 13, ..ImportOptions::default() };
    match run(&ledger, &text, &options) {
        Err(ImportError::Invalid { line, reason, .. }) => {
            assert_eq!(line as usize, n);
            assert!(reason.starts_with("id:") && reason.contains("different content"), "{reason}");
        }
        other => panic!("expected the reused id to be refused, got {other:?}"),
    }
    assert_eq!(log(&ledger).len(), 1, "nothing of the file was appended");

    // With skip_invalid, that line alone is rejected.
    let options = ImportOptions { skip_invalid: true, ..options };
    let report = run(&ledger, &text, &options).unwrap();
    assert_eq!((report.appended as usize, report.rejected), (n - 1, 1));
}

/// A memory store that, on the first bulk append, lets "another writer" slip `sneak` in
/// first, counts the importer's preflight questions, and can fail one bulk append as a full
/// disk would (`fail_bulk`: its number, from 0).
struct Probe {
    inner: MemoryStore,
    sneak: std::sync::Mutex<Option<rapport_core::NewEvent>>,
    asked: std::sync::atomic::AtomicUsize,
    fail_bulk: Option<usize>,
    bulk_appends: std::sync::atomic::AtomicUsize,
}

impl Probe {
    fn new(inner: MemoryStore, sneak: Option<rapport_core::NewEvent>) -> Self {
        Self {
            inner,
            sneak: std::sync::Mutex::new(sneak),
            asked: std::sync::atomic::AtomicUsize::new(0),
            fail_bulk: None,
            bulk_appends: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl rapport_core::Store for Probe {
    fn append(
        &self,
        batch: Vec<rapport_core::NewEvent>,
        expected: rapport_core::ExpectedVersion,
    ) -> impl Future<Output = Result<rapport_core::AppendOutcome, rapport_core::AppendError>> + Send {
        self.inner.append(batch, expected)
    }

    fn read_stream(
        &self,
        account: &rapport_core::AccountId,
        from: rapport_core::StreamVersion,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<rapport_core::Envelope>, rapport_core::ReadError>> + Send {
        self.inner.read_stream(account, from, limit)
    }

    fn read_all(
        &self,
        from: Position,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<rapport_core::Envelope>, rapport_core::ReadError>> + Send {
        self.inner.read_all(from, limit)
    }

    fn accounts(
        &self,
        after: Option<&rapport_core::AccountId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<rapport_core::AccountId>, rapport_core::ReadError>> + Send {
        self.inner.accounts(after, limit)
    }

    fn head(&self) -> impl Future<Output = Result<Position, rapport_core::ReadError>> + Send {
        self.inner.head()
    }

    fn wait_past(&self, after: Position) -> impl Future<Output = Result<Position, rapport_core::ReadError>> + Send {
        self.inner.wait_past(after)
    }
}

impl rapport_core::BackfillStore for Probe {
    fn preflight(
        &self,
        accounts: &[rapport_core::AccountId],
        ids: &[rapport_core::EventId],
    ) -> impl Future<Output = Result<rapport_core::Preflight, rapport_core::ReadError>> + Send {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.preflight(accounts, ids)
    }

    fn append_bulk(
        &self,
        batch: Vec<rapport_core::NewEvent>,
    ) -> impl Future<Output = Result<rapport_core::AppendOutcome, rapport_core::AppendError>> + Send {
        if let Some(e) = self.sneak.lock().unwrap().take() {
            pollster::block_on(self.inner.append(vec![e], rapport_core::ExpectedVersion::Any)).unwrap();
        }
        let n = self.bulk_appends.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let answer: std::pin::Pin<Box<dyn Future<Output = _> + Send>> = if Some(n) == self.fail_bulk {
            let full = std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device");
            Box::pin(std::future::ready(Err(rapport_core::AppendError::Storage(rapport_core::StorageError::new(
                "append",
                format!("write: {full}"),
            )))))
        } else {
            Box::pin(self.inner.append_bulk(batch))
        };
        answer
    }
}

#[test]
fn a_conflict_the_store_finds_in_the_append_pass_names_its_line() {
    // Another writer takes an id of the file between the passes: the batch holding it fails,
    // and the error names that line, not the batch's first.
    let text = jsonl(4, 6);
    let k = 20;
    let store = Probe::new(MemoryStore::new(), Some(id_thief(&text, k)));
    let ledger = Ledger::new(store);
    let options = ImportOptions { batch_events: 13, ..ImportOptions::default() };
    match import_reader(&ledger, "t.jsonl", || Ok(text.as_bytes()), &options, None, &mut |_| {}) {
        Err(ImportError::Append { line, source, .. })
            if matches!(*source, rapport_core::AppendError::IdConflict { .. }) =>
        {
            assert_eq!(line as usize, k + 1);
        }
        other => panic!("expected the second batch to conflict, got {other:?}"),
    }
}

#[test]
fn skip_invalid_asks_the_store_once_per_chunk_not_once_per_line() {
    // A store that already holds events, and a file of several chunks with a bad line in each:
    // every chunk is re-checked line by line, but the store is asked about each chunk's ids
    // once (a database store answers each question with a query).
    let text = jsonl(60, 12);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 3 * 1_024, "{} lines", lines.len());
    let mut bad = Vec::new();
    let mut input = String::new();
    for (k, l) in lines.iter().enumerate() {
        if k % 1_000 == 500 {
            input.push_str("{\"type\":\"touchpoint\"}\n");
            bad.push(k);
        }
        input.push_str(l);
        input.push('\n');
    }
    let inner = MemoryStore::new();
    let live = rapport_core::NewEvent::new(
        rapport_core::AccountId::new("live").unwrap(),
        rapport_core::Timestamp::from_unix_seconds(1_735_689_600),
        rapport_core::Event::TouchpointHeld { channel: rapport_core::Channel::Call },
    );
    pollster::block_on(rapport_core::Store::append(&inner, vec![live], rapport_core::ExpectedVersion::Any)).unwrap();
    let ledger = Ledger::new(Probe::new(inner, None));
    let options = ImportOptions { skip_invalid: true, ..ImportOptions::default() };
    let report = import_reader(&ledger, "t.jsonl", || Ok(input.as_bytes()), &options, None, &mut |_| {}).unwrap();
    assert_eq!((report.appended as usize, report.rejected as usize), (lines.len(), bad.len()));
    let asked = ledger.store().asked.load(std::sync::atomic::Ordering::Relaxed);
    let chunks = input.lines().count().div_ceil(1_024);
    assert!(asked <= chunks + bad.len(), "{asked} questions for {chunks} chunks");
}

#[test]
fn a_store_that_fails_mid_import_is_left_with_what_the_error_counts_and_a_rerun_completes_it() {
    // The fifth batch fails as on a full disk, while the batches after it are in flight (they
    // depend on no event of it: one touchpoint an account): the error names the batch's first
    // line and counts every event the import left in the store, and importing the file again
    // appends exactly the rest.
    let n = 200;
    let text: String = (0..n)
        .map(|k| {
            let account = rapport_core::AccountId::new(&format!("acct-{k}")).unwrap();
            let at = rapport_core::Timestamp::from_unix_seconds(1_735_689_600 + k as i64);
            let e = rapport_core::NewEvent::new(
                account,
                at,
                rapport_core::Event::TouchpointHeld { channel: rapport_core::Channel::Call },
            );
            e.to_json_line() + "\n"
        })
        .collect();
    let options = ImportOptions { batch_events: 13, ..ImportOptions::default() };
    let mut store = Probe::new(MemoryStore::new(), None);
    store.fail_bulk = Some(4);
    let ledger = Ledger::new(store);
    let err = import_reader(&ledger, "t.jsonl", || Ok(text.as_bytes()), &options, None, &mut |_| {}).unwrap_err();
    let held = log(&ledger).len() as u64;
    let shown = err.to_string();
    match err {
        ImportError::Append { line, source, appended, .. } => {
            assert_eq!(line, 4 * 13 + 1);
            assert!(matches!(*source, rapport_core::AppendError::Storage(_)), "{source:?}");
            assert_eq!(appended, held, "the error counts what the store holds");
            assert!(held > 4 * 13, "the batches in flight after the failed one were waited for: {held}");
        }
        other => panic!("expected the fifth batch to fail, got {other:?}"),
    }
    assert!(shown.starts_with("t.jsonl:53: append failed: write: No space left on device; "), "{shown}");
    assert!(shown.contains(&format!("{held} events of this import were appended")), "{shown}");

    let report = run(&ledger, &text, &options).unwrap();
    assert_eq!((report.appended, report.duplicates), (n as u64 - held, held));
    let clean = Ledger::memory();
    run(&clean, &text, &options).unwrap();
    // The same events as one clean import (the failed batch's now after the batches that
    // were in flight behind it).
    let (mut a, mut b) = (log(&clean), log(&ledger));
    a.sort_by_key(|e| e.id);
    b.sort_by_key(|e| e.id);
    assert_eq!(a.len(), b.len());
    assert!(a.iter().zip(&b).all(|(x, y)| x.same_content(&y.to_new_event())), "the same events as one clean import");
}

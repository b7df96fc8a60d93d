//! [`FileStore`]: the handle, the append decision, and the store contract. Opening is in
//! `open.rs`, reads in `read.rs`, the writer thread in `writer.rs`.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rapport_core::validate::Admission;
use rapport_core::{
    AccountId, AppendError, AppendOutcome, BackfillStore, Committed, Envelope, EnvelopeRef, EventId, ExpectedVersion,
    NewEvent, Position, Preflight, ReadError, StorageError, Store, StreamVersion, Timestamp,
};

use crate::index::{Core, InFlight};
use crate::job::{AppendFuture, Completion, Job, Pending, ToWriter};
use crate::options::RecoveryReport;
use crate::shared::Shared;
use crate::sync::lock;

/// The embedded, durable, append-only segment log. `Send + Sync`; clone it cheaply to share.
///
/// See the crate docs for the guarantees and `docs/log-format.md` for the format.
#[derive(Clone)]
pub struct FileStore {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.shared.dir)
            .field("head", &self.shared.committed.load(Ordering::Acquire))
            .finish()
    }
}

impl FileStore {
    /// How many accounts have events.
    pub fn n_accounts(&self) -> u64 {
        self.shared.index.read().unwrap_or_else(|p| p.into_inner()).accounts.len() as u64
    }

    /// Whether this handle was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.shared.lock.is_none()
    }

    /// What recovery did when this store was opened.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.shared.recovery
    }

    /// The last position the index snapshot on disk covers, as this open loaded it or as
    /// this handle last saved it (0: none).
    pub fn index_snapshot_at(&self) -> u64 {
        self.shared.snapshot_at.load(Ordering::Acquire)
    }

    /// Saves the index snapshot now, while the store runs, so that an open after a crash
    /// reads only the log written after this point (a clean close saves one too; without
    /// either, an open reads everything since the last one). Returns the last position it
    /// covers.
    ///
    /// Appends wait only while the checkpoint is taken: the writer makes everything written
    /// durable and records the head record there, and the snapshot's contents are copied (each
    /// touched account's state serialized, the indexes, the ids held). The id file (the
    /// previous one merged with the ids logged since) and the snapshot are then written while
    /// appends go on; appends keep finding the ids being written in memory until the new file
    /// answers for them. Then every account's validation state the store holds that has not
    /// changed since the checkpoint is given back (read from the new snapshot when the account
    /// is next touched), so a writer that saves now and then holds the states of the accounts
    /// touched since the last save, not of every account it ever touched (docs/scaling.md).
    /// One save runs at a time. It blocks the calling thread for about as long
    /// as writing those files takes (BENCHMARKS.md, "Reads in place" and "Index snapshot while
    /// running"); call it from a thread that may wait.
    ///
    /// ```
    /// # use rapport_core::{ExpectedVersion, Store, testing::synth::{generate, SynthConfig}};
    /// # let dir = std::env::temp_dir().join(format!("rapport-doc-save-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// let store = rapport_store_file::FileStore::open(&dir)?;
    /// let events: Vec<_> = generate(SynthConfig { accounts: 3, months: 2, seed: 1, ..Default::default() }).collect();
    /// pollster::block_on(store.append(events.clone(), ExpectedVersion::Any))?;
    /// assert_eq!(store.save_index_snapshot()?, events.len() as u64);
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// A read-only handle, a poisoned store, snapshots turned off
    /// ([`Options::index_snapshot`](crate::Options::index_snapshot)), or a failure to write the
    /// files (the snapshot on disk is then the one before). A head record that cannot be
    /// recorded, or an id file that does not open once written, poisons the store.
    pub fn save_index_snapshot(&self) -> Result<u64, StorageError> {
        const OPERATION: &str = "save the index snapshot";
        if self.is_read_only() {
            return Err(StorageError::new(OPERATION, "the store is open read-only"));
        }
        self.check_poison(OPERATION)?;
        let sh = &*self.shared;
        if !sh.options.index_snapshot {
            return Err(StorageError::new(OPERATION, "index snapshots are turned off (Options::index_snapshot)"));
        }
        let _one_at_a_time = lock(&sh.saving);
        // 1. Under the core lock (no append is decided meanwhile; the writer needs only the
        //    index): the checkpoint, and the snapshot taken there, copied.
        let (mut prepared, old) = {
            let core = lock(&sh.core);
            let (tx, rx) = std::sync::mpsc::channel();
            let sent = lock(&sh.sender).as_ref().is_some_and(|s| s.send(ToWriter::Checkpoint(tx)).is_ok());
            let stopped = || StorageError::new(OPERATION, "the writer has stopped");
            if !sent {
                return Err(stopped());
            }
            let extent = match rx.recv() {
                Ok(Ok(extent)) => extent,
                Ok(Err(why)) => {
                    sh.poison(format!("a checkpoint: {why}"));
                    return Err(StorageError::new(OPERATION, why));
                }
                Err(_) => return Err(stopped()),
            };
            self.check_poison(OPERATION)?;
            let index = sh.index.read().unwrap_or_else(|p| p.into_inner());
            let prepared =
                crate::snapshot::prepare(extent, &core, &index).map_err(|why| StorageError::new(OPERATION, why))?;
            (prepared, core.logged_ids.clone())
        };
        // 2. With no lock, appends going on: the id file and the snapshot written. The ids
        //    prepared stay in the validation state meanwhile, so appends still find them.
        let written = crate::snapshot::write(&*sh.vfs, &sh.dir, sh.log_id, &mut prepared, old.as_deref(), true)
            .map_err(|why| StorageError::new(OPERATION, why))?;
        let at = written.ids;
        let file = match crate::id_file::IdFile::open(&*sh.vfs, &sh.dir, sh.log_id, at) {
            Ok(file) => Arc::new(file),
            Err(why) => {
                let why = format!("the id file just written does not open: {why}");
                sh.poison(why.clone());
                return Err(StorageError::new(OPERATION, why));
            }
        };
        // 3. Under the core lock again: the new file answers for every id up to the
        //    checkpoint, which leave the validation state; later ones stay. The new snapshot
        //    answers for every account's state: a state held still at its checkpoint version
        //    is the snapshot's, and is given back (read again when the account is next
        //    touched); one changed since stays.
        {
            let mut core = lock(&sh.core);
            core.logged_ids = Some(file);
            core.state.forget_ids_through(Position(prepared.position()));
            if let Some(saved) = written.saved_states {
                core.saved_states = Some(saved);
                for (account, version) in &written.held {
                    if core.state.stream(account).is_some_and(|s| s.version() == *version) {
                        core.state.forget_stream(account);
                    }
                }
            }
        }
        crate::id_file::remove_others(&*sh.vfs, &sh.dir, Some(at.generation));
        let extent_position = prepared.position();
        sh.snapshot_at.store(extent_position, Ordering::Release);
        Ok(extent_position)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Whether an I/O failure has poisoned the store (every call now errors until reopened).
    pub fn is_poisoned(&self) -> bool {
        self.shared.poisoned.get().is_some()
    }

    pub(crate) fn check_poison(&self, operation: &'static str) -> Result<(), StorageError> {
        match self.shared.poisoned.get() {
            Some(why) => Err(StorageError::new(operation, format!("store is poisoned and must be reopened: {why}"))),
            None => Ok(()),
        }
    }

    fn submit(&self, batch: Vec<NewEvent>, expected: ExpectedVersion) -> Result<AppendFuture, AppendError> {
        if self.is_read_only() {
            return Err(AppendError::Storage(StorageError::new("append", "the store is open read-only")));
        }
        self.check_poison("append")?;
        let sh = &*self.shared;
        let held = self.schema_version_max();
        if let Some(e) = batch.iter().find(|e| e.min_schema_version() > held) {
            let version = sh.recovery.format_version;
            let what = if e.meta.is_empty() {
                format!("it is an {} event, a type", e.event.kind())
            } else {
                "it carries metadata, which".to_owned()
            };
            return Err(AppendError::Unsupported {
                id: e.id,
                reason: format!(
                    "{what} a format-version-{version} log cannot hold; upgrade the store to version {} (`rapport upgrade`)",
                    crate::format::FORMAT_VERSION
                ),
            });
        }
        let mut guard = lock(&sh.core);
        let core = &mut *guard;
        let next = Position(core.next_position);
        let recorded_at = Timestamp::now().max(core.last_recorded);
        let admission = Admission { recorded_at, future_skew: sh.options.future_skew };
        let committed = sh.committed.load(Ordering::Acquire);
        while core.in_flight.front().is_some_and(|f| f.first + f.events.len() as u64 - 1 <= committed) {
            core.in_flight.pop_front();
        }
        // Ids only the id file holds are told to the validation state first (most new ids
        // pass its filter without a read), and streams whose state is still in the index
        // snapshot are loaded.
        if let Err(why) = core.note_logged(batch.iter().map(|e| &e.id)) {
            return Err(AppendError::Storage(StorageError::new("look up logged ids", why)));
        }
        if let Err(why) = core.load_streams(batch.iter().map(|e| &e.account)) {
            return Err(AppendError::Storage(StorageError::new("load a stream's validation state", why)));
        }
        // A reused id is judged by content: against the logged event, read back from disk
        // (rare: duplicates are retries and re-imports, which an importer filters first), or
        // against the event still on its way there.
        let mut read_failure: Option<ReadError> = None;
        let Core { state, in_flight, .. } = core;
        let decided = state.prepare(batch, expected, next, &admission, |p, e| {
            if let Some(f) = in_flight.iter().find(|f| f.first <= p.0 && p.0 < f.first + f.events.len() as u64) {
                return f.events[(p.0 - f.first) as usize].0.same_content(e);
            }
            match self.read_scattered(&[p.0]) {
                Ok(logged) => logged.first().is_some_and(|l| l.same_content(e)),
                Err(err) => {
                    read_failure = Some(err);
                    false
                }
            }
        });
        let mut prepared = match (decided, read_failure) {
            (Ok(prepared), _) => prepared,
            (Err(_), Some(err)) => return Err(AppendError::Storage(StorageError::new("read a logged event", err))),
            (Err(e), None) => return Err(e),
        };
        if prepared.events.is_empty() {
            return Ok(AppendFuture::Ready(Some(Ok(AppendOutcome {
                appended: Vec::new(),
                duplicates: prepared.duplicates.clone(),
            }))));
        }
        // Personal text sealed, under keys made here if need be (a log of format 4): the
        // writer makes them durable before the frame.
        let sealed = if sh.recovery.format_version >= crate::format::FORMAT_VERSION {
            match crate::sealing::seal(&sh.keys, &prepared.events) {
                Ok(sealed) => sealed,
                Err(why) => {
                    sh.poison(format!("seal personal text: {why}"));
                    return Err(AppendError::Storage(StorageError::new("seal personal text", why)));
                }
            }
        } else {
            crate::sealing::Sealed::default()
        };
        let mut outcome = AppendOutcome {
            appended: Vec::with_capacity(prepared.events.len()),
            duplicates: prepared.duplicates.clone(),
        };
        // The streams index learns the positions now (readers only look up to the committed
        // head); record offsets follow from the writer thread, which encodes the frame.
        {
            let mut index = sh.index.write().unwrap_or_else(|p| p.into_inner());
            for (k, (e, version)) in prepared.events.iter().enumerate() {
                let position = next.0 + k as u64;
                index.note_account(&e.account, position);
                outcome.appended.push(Committed {
                    id: e.id,
                    stream_version: *version,
                    position: Position(position),
                    recorded_at,
                });
            }
        }
        core.next_position += prepared.events.len() as u64;
        core.last_recorded = recorded_at;
        let done = Completion::default();
        let events = Arc::new(std::mem::take(&mut prepared.events));
        core.in_flight.push_back(InFlight { first: next.0, events: Arc::clone(&events) });
        let job = Job { events, sealed, first_position: next.0, recorded_at, done: done.clone(), outcome };
        let sent = lock(&sh.sender).as_ref().map(|tx| tx.send(ToWriter::Append(job)).is_ok()).unwrap_or(false);
        drop(guard);
        if !sent {
            let why = "the writer thread has stopped".to_string();
            let _ = sh.poisoned.set(why.clone());
            return Err(AppendError::Storage(StorageError::new("append", why)));
        }
        Ok(AppendFuture::Waiting(Pending(done)))
    }
}

/// The most events [`BackfillStore::reserve`] makes room for at once.
const RESERVE_EVENTS_MAX: usize = 16_000_000;

impl Store for FileStore {
    fn append(
        &self,
        batch: Vec<NewEvent>,
        expected: ExpectedVersion,
    ) -> impl Future<Output = Result<AppendOutcome, AppendError>> + Send {
        match self.submit(batch, expected) {
            Ok(f) => f,
            Err(e) => AppendFuture::Ready(Some(Err(e))),
        }
    }

    fn read_stream(
        &self,
        account: &AccountId,
        from: StreamVersion,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Envelope>, ReadError>> + Send {
        std::future::ready(self.read_stream_now(account, from, limit))
    }

    fn read_all(&self, from: Position, limit: usize) -> impl Future<Output = Result<Vec<Envelope>, ReadError>> + Send {
        std::future::ready(self.read_all_now(from, limit))
    }

    fn accounts(
        &self,
        after: Option<&AccountId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AccountId>, ReadError>> + Send {
        std::future::ready(self.accounts_now(after, limit))
    }

    /// The current version in format versions 3 and 4; 1 in a log of version 1 or 2 (until
    /// upgraded).
    fn schema_version_max(&self) -> u32 {
        if self.shared.recovery.format_version >= crate::format::FORMAT_VERSION_3 {
            rapport_core::EventKind::AdvocacyGiven.schema_version()
        } else {
            1
        }
    }

    fn head(&self) -> impl Future<Output = Result<Position, ReadError>> + Send {
        std::future::ready(
            self.check_poison("head")
                .map(|()| Position(self.shared.committed.load(Ordering::Acquire)))
                .map_err(ReadError::from),
        )
    }

    /// Decodes each record in place from a reused read buffer: nothing is allocated per
    /// event. The whole pass runs when this is called, on the calling thread (as every read of
    /// this store does); an async service runs a long one on a blocking thread.
    fn scan<'a>(
        &'a self,
        from: Position,
        visit: &'a mut (dyn FnMut(&EnvelopeRef<'_>) + Send),
    ) -> impl Future<Output = Result<Position, ReadError>> + Send + 'a {
        std::future::ready(self.scan_now(from, visit))
    }

    /// Reads in place, as [`scan`](Self::scan) does, on the calling thread.
    fn scan_stream<'a>(
        &'a self,
        account: &'a AccountId,
        visit: &'a mut (dyn FnMut(&EnvelopeRef<'_>) + Send),
    ) -> impl Future<Output = Result<(), ReadError>> + Send + 'a {
        std::future::ready(self.scan_stream_now(account, visit))
    }

    async fn wait_past(&self, after: Position) -> Result<Position, ReadError> {
        self.check_poison("wait for appends")?;
        let head = self.shared.watch.head();
        if self.is_read_only() && !self.shared.following.load(Ordering::Acquire) && head <= after {
            return Err(ReadError::Storage(StorageError::new(
                "wait for appends",
                format!(
                    "a read-only handle sees the log as it was when opened or last refreshed (head {head}); it waits for no appends unless opened following"
                ),
            )));
        }
        self.shared
            .watch
            .wait_past(after)
            .await
            .map_err(|closed| ReadError::Storage(StorageError::new("wait for appends", closed.0)))
    }
}

impl BackfillStore for FileStore {
    fn preflight(
        &self,
        accounts: &[AccountId],
        ids: &[EventId],
    ) -> impl Future<Output = Result<Preflight, ReadError>> + Send {
        std::future::ready(self.preflight_now(accounts, ids))
    }

    fn reserve(&self, events: usize) {
        // Bounded: a hint must not make the store allocate without limit.
        let events = events.min(RESERVE_EVENTS_MAX);
        lock(&self.shared.core).state.reserve(events);
        self.shared.index.write().unwrap_or_else(|p| p.into_inner()).offsets.reserve(events);
    }
}

impl rapport_core::DerivedStore for FileStore {
    fn log_id(&self) -> [u8; 16] {
        self.shared.log_id
    }

    /// Writes on the calling thread (bounded by the blob's size); an async host saving a
    /// large checkpoint moves the call to a blocking thread.
    fn save_derived(&self, name: &str, bytes: &[u8]) -> impl Future<Output = Result<(), StorageError>> + Send {
        std::future::ready(self.save_derived_now(name, bytes))
    }

    fn load_derived(&self, name: &str) -> impl Future<Output = Result<Option<Vec<u8>>, ReadError>> + Send {
        std::future::ready(self.load_derived_now(name))
    }
}

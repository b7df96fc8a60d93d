//! [`FileStore`]: open and recover a log directory, append through a group-commit writer
//! thread, and read committed batches.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

use rapport_core::backend::KeyedMap;
use rapport_core::backend::{LogState, StreamState};
use rapport_core::{
    AccountId, AppendError, AppendOutcome, BackfillStore, Committed, Envelope, EventId, ExpectedVersion, NewEvent,
    Position, Preflight, READ_LIMIT_MAX, ReadError, StorageError, Store, StreamVersion, Timestamp,
};

use rapport_core::validate::{Admission, FUTURE_SKEW_DEFAULT};

use crate::format::{self, RECORD_BYTES_MAX, RECORD_PREFIX_BYTES, SEGMENT_HEADER_BYTES, SegmentHeader};
use crate::head::{self, HEAD_FILE, HeadRecord};
use crate::recovery;
use crate::vfs::{LockGuard, ReadFile, StdVfs, Vfs};
use crate::writer::{AppendFuture, Completion, Job, Pending, Writer, writer_loop};

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// After the batch and its data are on stable storage (`fdatasync`). The default.
    #[default]
    Sync,
    /// As soon as the batch is handed to the operating system, without `fdatasync`. Faster, and
    /// **a crash or power loss may lose recently acknowledged events** (never corrupt older
    /// ones: recovery still truncates a torn tail). For tests and throwaway data.
    NoSyncMayLoseRecentOnCrash,
}

/// Settings for [`FileStore::open_with`]. By default: durable (`Durability::Sync`), 256 MiB
/// segments, the directory created if missing, five minutes of clock skew allowed
/// ([`FUTURE_SKEW_DEFAULT`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// When appends are acknowledged.
    pub durability: Durability,
    /// A segment is sealed and a new one started once it would grow past this many bytes.
    /// At least 64 KiB; at most 4 GiB.
    pub segment_bytes_max: u64,
    /// Create the directory (and a new log) if it does not exist.
    pub create_if_missing: bool,
    /// How much later than its `recorded_at` a new event may say it occurred
    /// ([`Admission`]); later ones are refused with
    /// [`ValidationError::OccursInTheFuture`](rapport_core::ValidationError::OccursInTheFuture).
    pub future_skew: std::time::Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            durability: Durability::Sync,
            segment_bytes_max: 256 * 1024 * 1024,
            create_if_missing: true,
            future_skew: FUTURE_SKEW_DEFAULT,
        }
    }
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The directory does not exist and `create_if_missing` is off.
    #[error("no rapport store at {dir}")]
    Missing {
        /// The directory.
        dir: PathBuf,
    },
    /// Another writer (this process or another) has the store open.
    #[error("the store at {dir} is open for writing elsewhere (its directory is locked)")]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// Damage that recovery must not repair: it is in a sealed segment, valid data follows
    /// it, no torn write explains it, or the log lost events its head record says were
    /// acknowledged. `segment` names the file (a segment, or `HEAD`).
    #[error("damaged log: {segment} at byte {offset}: {reason}")]
    Corrupt {
        /// The segment file.
        segment: PathBuf,
        /// The byte offset of the damage.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The options are out of range.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// An I/O error, naming what was being done.
    #[error("{operation} {path}: {source}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// What recovery did on open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Torn tails cut off: the segment, the offset it was cut at, and the bytes dropped.
    pub truncated: Vec<(PathBuf, u64, u64)>,
    /// A read-only open's report of the end of the last segment it did not read: a batch a
    /// writer was still writing, or a torn tail its next open will cut.
    pub skipped: Option<Skipped>,
    /// Events found in the log.
    pub n_events: u64,
    /// Segments found.
    pub n_segments: u64,
}

/// Bytes at the end of the log a read-only open left unread (see [`RecoveryReport::skipped`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The last segment.
    pub segment: PathBuf,
    /// Where the readable log ends in it.
    pub offset: u64,
    /// How many bytes follow.
    pub bytes: u64,
    /// What they hold.
    pub reason: String,
}

/// The embedded, durable, append-only segment log. `Send + Sync`; clone it cheaply to share.
///
/// See the crate docs for the guarantees and `docs/log-format.md` for the format.
#[derive(Clone)]
pub struct FileStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.shared.dir)
            .field("head", &self.shared.committed.load(Ordering::Acquire))
            .finish()
    }
}

pub(crate) struct Shared {
    pub(crate) vfs: Arc<dyn Vfs>,
    pub(crate) log_id: [u8; 16],
    pub(crate) dir: PathBuf,
    pub(crate) options: Options,
    core: Mutex<Core>,
    pub(crate) index: RwLock<Index>,
    pub(crate) committed: AtomicU64,
    pub(crate) poisoned: OnceLock<String>,
    readers: RwLock<Vec<Option<Arc<dyn ReadFile>>>>,
    /// The writer thread's queue; `None` when read-only.
    sender: Mutex<Option<Sender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    recovery: RecoveryReport,
    /// The writer's lock on the directory; `None` when read-only.
    lock: Option<Box<dyn LockGuard>>,
}

impl Shared {
    #[allow(clippy::too_many_arguments)] // One call site per open mode; named fields below.
    fn new(
        vfs: Arc<dyn Vfs>,
        log_id: [u8; 16],
        dir: &Path,
        options: Options,
        scan: recovery::Scan,
        recovery: RecoveryReport,
        sender: Option<Sender<Job>>,
        lock: Option<Box<dyn LockGuard>>,
    ) -> Arc<Self> {
        let n_segments = scan.index.segments.len();
        let committed = AtomicU64::new(scan.head());
        Arc::new(Self {
            vfs,
            log_id,
            dir: dir.to_path_buf(),
            options,
            core: Mutex::new(scan.core),
            index: RwLock::new(scan.index),
            committed,
            poisoned: OnceLock::new(),
            readers: RwLock::new(vec![None; n_segments]),
            sender: Mutex::new(sender),
            writer: Mutex::new(None),
            recovery,
            lock,
        })
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish what it has and exit.
        if let Ok(mut s) = self.sender.lock() {
            s.take();
        }
        // The writer itself may hold the last reference; it cannot wait for itself.
        if let Ok(mut w) = self.writer.lock()
            && let Some(handle) = w.take()
            && handle.thread().id() != std::thread::current().id()
        {
            let _ = handle.join();
        }
    }
}

pub(crate) struct Core {
    pub(crate) state: LogState,
    /// Appends handed to the writer and not yet committed, oldest first: what a duplicate of
    /// one of their events is compared with (committed events are read back from disk).
    pub(crate) in_flight: std::collections::VecDeque<InFlight>,
    pub(crate) next_position: u64,
    pub(crate) last_recorded: Timestamp,
}

/// An append on its way to disk: its first position and its events.
pub(crate) struct InFlight {
    first: u64,
    events: Arc<Vec<(NewEvent, StreamVersion)>>,
}

#[derive(Default)]
pub(crate) struct Index {
    pub(crate) segments: Vec<PathBuf>,
    /// Per position - 1: `(segment << 40) | offset of the record's prefix`.
    pub(crate) offsets: Vec<u64>,
    streams: KeyedMap<AccountId, Vec<u64>>,
    accounts: BTreeMap<AccountId, u64>,
    /// Every account by its stable hash, so decoding shares one `AccountId` per account. The
    /// stable hash is public, so anyone can aim texts at chosen values: the map is seeded.
    interned: KeyedMap<u64, AccountId>,
}

impl Index {
    pub(crate) fn note_account(&mut self, account: &AccountId, position: u64) {
        match self.streams.get_mut(account) {
            Some(s) => s.push(position),
            None => {
                self.streams.insert(account.clone(), vec![position]);
                self.accounts.insert(account.clone(), position);
                self.interned.entry(account.stable_hash()).or_insert_with(|| account.clone());
            }
        }
    }

    pub(crate) fn intern(&self, s: &str) -> Result<AccountId, String> {
        match self.interned.get(&rapport_core::id::stable_hash(s)) {
            Some(a) if a.as_str() == s => Ok(a.clone()),
            _ => AccountId::new(s).map_err(|e| e.to_string()),
        }
    }
}

const OFFSET_BITS: u32 = 40;

pub(crate) fn pack(segment: u64, offset: u64) -> u64 {
    (segment << OFFSET_BITS) | offset
}

fn unpack(v: u64) -> (u64, u64) {
    (v >> OFFSET_BITS, v & ((1 << OFFSET_BITS) - 1))
}

/// The file name of segment `n`.
pub fn segment_name(n: u64) -> String {
    format!("seg-{n:010}.rpl")
}

/// The number of segment file `name`, if it is one.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?.strip_suffix(".rpl")?.parse().ok()
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock is a bug elsewhere; the store poisons itself on I/O errors
    // explicitly, so recovering the guard does not hide a half-done write.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn io_err<'a>(operation: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> OpenError + 'a {
    move |source| OpenError::Io { operation, path: path.to_path_buf(), source }
}

/// Creates `dir` and any missing parents, and makes each new directory's entry durable (a
/// power loss must not take away a store whose appends were acknowledged).
fn create_dir_durably(vfs: &dyn Vfs, dir: &Path) -> Result<(), OpenError> {
    let mut missing: Vec<&Path> = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at.filter(|d| !d.as_os_str().is_empty() && !vfs.exists(d)) {
        missing.push(d);
        at = d.parent();
    }
    vfs.create_dir_all(dir).map_err(io_err("create directory", dir))?;
    for d in missing.iter().rev() {
        let parent = d.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        vfs.sync_dir(parent).map_err(io_err("fsync directory", parent))?;
    }
    Ok(())
}

/// The store's head record, or `None`; a head record that cannot be read or trusted is
/// damage, refused.
fn read_head(vfs: &dyn Vfs, dir: &Path) -> Result<Option<HeadRecord>, OpenError> {
    head::read(vfs, dir).map_err(|(path, reason)| OpenError::Corrupt { segment: path, offset: 0, reason })
}

impl FileStore {
    /// Opens (or creates) the store in `dir` with default options.
    ///
    /// # Errors
    /// [`OpenError`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_with(dir, Options::default())
    }

    /// Opens (or creates) the store in `dir`.
    ///
    /// # Errors
    /// [`OpenError`].
    pub fn open_with(dir: impl AsRef<Path>, options: Options) -> Result<Self, OpenError> {
        Self::open_on(Arc::new(StdVfs), dir.as_ref(), options)
    }

    /// Opens the store on a custom file-system layer (for fault-injection tests).
    ///
    /// # Errors
    /// [`OpenError`].
    pub fn open_on(vfs: Arc<dyn Vfs>, dir: &Path, options: Options) -> Result<Self, OpenError> {
        if !(64 * 1024..=4 * 1024 * 1024 * 1024).contains(&options.segment_bytes_max) {
            return Err(OpenError::InvalidOptions(format!(
                "segment_bytes_max {} is outside 64 KiB..=4 GiB",
                options.segment_bytes_max
            )));
        }
        if !vfs.exists(dir) {
            if !options.create_if_missing {
                return Err(OpenError::Missing { dir: dir.to_path_buf() });
            }
            create_dir_durably(&*vfs, dir)?;
        }
        let guard = match vfs.lock_dir(dir) {
            Ok(g) => g,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(OpenError::Locked { dir: dir.to_path_buf() });
            }
            Err(e) => return Err(OpenError::Io { operation: "lock", path: dir.to_path_buf(), source: e }),
        };
        let head = read_head(&*vfs, dir)?;
        let mut scan = recovery::scan(&*vfs, dir, head.as_ref())?;
        let mut truncated = Vec::new();
        if let Some(tail) = &scan.tail {
            if tail.reason != "zeroed space" {
                log::warn!(
                    "{}: torn tail at byte {} ({}); truncating {} bytes",
                    tail.segment.display(),
                    tail.offset,
                    tail.reason,
                    tail.bytes
                );
            }
            vfs.truncate(&tail.segment, tail.offset).map_err(io_err("truncate", &tail.segment))?;
            truncated.push((tail.segment.clone(), tail.offset, tail.bytes));
        }
        let log_id = scan.log_id.unwrap_or_else(|| *uuid::Uuid::new_v4().as_bytes());
        // A fresh log, or a last segment whose header was torn: (re)write its header.
        if scan.numbers.is_empty() || scan.segment_len == 0 {
            let n = scan.numbers.last().copied().unwrap_or(0);
            let path = dir.join(segment_name(n));
            if scan.numbers.is_empty() {
                scan.numbers.push(0);
                scan.index.segments.push(path.clone());
            }
            let header =
                SegmentHeader { log_id, base_position: scan.core.next_position, segment_no: n, head_tracked: true };
            let mut f = vfs.open_append(&path, !vfs.exists(&path)).map_err(io_err("create segment", &path))?;
            f.append(&header.encode()).map_err(io_err("write segment header", &path))?;
            f.sync_data().map_err(io_err("fsync segment", &path))?;
            vfs.sync_dir(dir).map_err(io_err("fsync directory", dir))?;
            scan.segment_len = SEGMENT_HEADER_BYTES as u64;
        }
        let current = scan.index.segments.last().cloned().unwrap_or_else(|| dir.join(segment_name(0)));
        let mut file = vfs.open_append(&current, false).map_err(io_err("open segment", &current))?;
        // What was read may still sit unsynced in the page cache (a crashed writer's last
        // group): made durable before the head record calls it acknowledged.
        file.sync_data().map_err(io_err("fsync segment", &current))?;
        let record = scan.head_record(log_id);
        if head != Some(record) {
            head::write(&*vfs, dir, &record).map_err(|(operation, source)| OpenError::Io {
                operation,
                path: dir.join(HEAD_FILE),
                source,
            })?;
        }
        let n_events = scan.head();
        let recovery =
            RecoveryReport { truncated, skipped: None, n_events, n_segments: scan.index.segments.len() as u64 };
        let writer = Writer {
            file,
            vfs: Arc::clone(&vfs),
            dir: dir.to_path_buf(),
            log_id,
            epoch: scan.last_epoch + 1,
            segment_no: scan.numbers.last().copied().unwrap_or(0),
            segment_len: scan.segment_len,
            prev_payload_crc: scan.prev_payload_crc,
            written: n_events,
            synced: n_events,
            synced_chain: scan.prev_payload_crc,
            failed: false,
            frame: Vec::new(),
        };
        let (tx, rx) = mpsc::channel::<Job>();
        let shared = Shared::new(vfs, log_id, dir, options, scan, recovery, Some(tx), Some(guard));
        let weak = Arc::downgrade(&shared);
        let handle = std::thread::Builder::new()
            .name("rapport-writer".into())
            .spawn(move || writer_loop(weak, rx, writer))
            .map_err(io_err("spawn writer thread", dir))?;
        *lock(&shared.writer) = Some(handle);
        Ok(Self { shared })
    }

    /// Opens the store in `dir` for reading only: no lock (a writer may be appending), no
    /// writes, no recovery. It reads up to the last complete batch; a torn or unfinished
    /// batch at the end is left as it is and reported in [`RecoveryReport::skipped`]. Damage
    /// anywhere else is refused as on a writer's open. Appends fail.
    ///
    /// # Errors
    /// [`OpenError::Missing`] when `dir` holds no store; [`OpenError::Corrupt`]; I/O errors.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_read_only_on(Arc::new(StdVfs), dir.as_ref())
    }

    /// [`open_read_only`](Self::open_read_only) on a custom file-system layer.
    ///
    /// # Errors
    /// [`OpenError`].
    pub fn open_read_only_on(vfs: Arc<dyn Vfs>, dir: &Path) -> Result<Self, OpenError> {
        if !vfs.exists(dir) {
            return Err(OpenError::Missing { dir: dir.to_path_buf() });
        }
        // The head record first: a writer renames a new one in only after the segments it
        // names exist, so what the listing finds next is at least as new.
        let head = read_head(&*vfs, dir)?;
        let scan = recovery::scan(&*vfs, dir, head.as_ref())?;
        let Some(log_id) = scan.log_id else {
            return Err(OpenError::Missing { dir: dir.to_path_buf() });
        };
        let skipped = scan.tail.as_ref().map(|t| Skipped {
            segment: t.segment.clone(),
            offset: t.offset,
            bytes: t.bytes,
            reason: t.reason.clone(),
        });
        let recovery = RecoveryReport {
            truncated: Vec::new(),
            skipped,
            n_events: scan.head(),
            n_segments: scan.index.segments.len() as u64,
        };
        let shared = Shared::new(vfs, log_id, dir, Options::default(), scan, recovery, None, None);
        Ok(Self { shared })
    }

    /// How many accounts have events.
    pub fn n_accounts(&self) -> u64 {
        lock(&self.shared.core).state.n_accounts() as u64
    }

    /// Whether this handle was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.shared.lock.is_none()
    }

    /// What recovery did when this store was opened.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.shared.recovery
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Whether an I/O failure has poisoned the store (every call now errors until reopened).
    pub fn is_poisoned(&self) -> bool {
        self.shared.poisoned.get().is_some()
    }

    fn check_poison(&self, operation: &'static str) -> Result<(), StorageError> {
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
        let mut guard = lock(&sh.core);
        let core = &mut *guard;
        let next = Position(core.next_position);
        let recorded_at = Timestamp::now().max(core.last_recorded);
        let admission = Admission { recorded_at, future_skew: sh.options.future_skew };
        let committed = sh.committed.load(Ordering::Acquire);
        while core.in_flight.front().is_some_and(|f| f.first + f.events.len() as u64 - 1 <= committed) {
            core.in_flight.pop_front();
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
            match self.read_positions(&[p.0]) {
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
                outcome.appended.push(Committed { id: e.id, stream_version: *version, position: Position(position) });
            }
        }
        core.next_position += prepared.events.len() as u64;
        core.last_recorded = recorded_at;
        let done = Completion::default();
        let events = Arc::new(std::mem::take(&mut prepared.events));
        core.in_flight.push_back(InFlight { first: next.0, events: Arc::clone(&events) });
        let job = Job { events, first_position: next.0, recorded_at, done: done.clone(), outcome };
        let sent = lock(&sh.sender).as_ref().map(|tx| tx.send(job).is_ok()).unwrap_or(false);
        drop(guard);
        if !sent {
            let why = "the writer thread has stopped".to_string();
            let _ = sh.poisoned.set(why.clone());
            return Err(AppendError::Storage(StorageError::new("append", why)));
        }
        Ok(AppendFuture::Waiting(Pending(done)))
    }

    fn reader(&self, segment: u64) -> Result<Arc<dyn ReadFile>, ReadError> {
        let sh = &*self.shared;
        if let Some(Some(r)) = sh.readers.read().unwrap_or_else(|p| p.into_inner()).get(segment as usize) {
            return Ok(Arc::clone(r));
        }
        let path =
            sh.index.read().unwrap_or_else(|p| p.into_inner()).segments.get(segment as usize).cloned().ok_or_else(
                || ReadError::Corrupt { location: format!("segment {segment}"), reason: "unknown segment".into() },
            )?;
        let f: Arc<dyn ReadFile> =
            Arc::from(sh.vfs.open_read(&path).map_err(|e| StorageError::new("open segment for reading", e))?);
        let mut readers = sh.readers.write().unwrap_or_else(|p| p.into_inner());
        if readers.len() <= segment as usize {
            readers.resize(segment as usize + 1, None);
        }
        readers[segment as usize] = Some(Arc::clone(&f));
        Ok(f)
    }

    /// Reads the events at `positions` (ascending, all committed), reading contiguous runs in
    /// one go and checking every record's checksum.
    fn read_positions(&self, positions: &[u64]) -> Result<Vec<Envelope>, ReadError> {
        let offsets: Vec<u64> = {
            let index = self.shared.index.read().unwrap_or_else(|p| p.into_inner());
            positions.iter().map(|p| index.offsets.get((*p - 1) as usize).copied().unwrap_or(u64::MAX)).collect()
        };
        let mut out = Vec::with_capacity(positions.len());
        let mut i = 0;
        while i < positions.len() {
            let (seg, start) = unpack(offsets[i]);
            // Extend the run while records stay in this segment and close together.
            let mut j = i + 1;
            while j < positions.len() {
                let (s, o) = unpack(offsets[j]);
                if s != seg || o < start || o - start > 4 * 1024 * 1024 {
                    break;
                }
                j += 1;
            }
            let (_, last) = unpack(offsets[j - 1]);
            let want = (last - start) as usize + RECORD_PREFIX_BYTES + RECORD_BYTES_MAX;
            let file = self.reader(seg)?;
            let mut buf = vec![0u8; want];
            let mut got = 0usize;
            while got < want {
                let n = file
                    .read_at(&mut buf[got..], start + got as u64)
                    .map_err(|e| StorageError::new("read segment", e))?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            buf.truncate(got);
            // The index lock is taken for decoding only (to share account ids), never across I/O.
            let index = self.shared.index.read().unwrap_or_else(|p| p.into_inner());
            let location = |off: u64| {
                let name = index.segments.get(seg as usize).map(|p| p.display().to_string()).unwrap_or_default();
                format!("{name} byte {off}")
            };
            for k in i..j {
                let (_, off) = unpack(offsets[k]);
                let rel = (off - start) as usize;
                let corrupt = |reason: &str| ReadError::Corrupt { location: location(off), reason: reason.to_string() };
                let prefix = buf.get(rel..rel + RECORD_PREFIX_BYTES).ok_or_else(|| corrupt("record prefix missing"))?;
                let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
                let crc = u32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
                if len > RECORD_BYTES_MAX {
                    return Err(corrupt("record length out of range"));
                }
                let body = buf
                    .get(rel + RECORD_PREFIX_BYTES..rel + RECORD_PREFIX_BYTES + len)
                    .ok_or_else(|| corrupt("record body missing"))?;
                if crc32c::crc32c(body) != crc {
                    return Err(corrupt("record checksum mismatch"));
                }
                let rec = format::decode_body_with(body, Position(positions[k]), &mut |s| index.intern(s))
                    .map_err(|e| corrupt(&e.reason))?;
                out.push(rec);
            }
            i = j;
        }
        Ok(out)
    }

    fn read_all_now(&self, from: Position, limit: usize) -> Result<Vec<Envelope>, ReadError> {
        self.check_poison("read")?;
        let head = self.shared.committed.load(Ordering::Acquire);
        let first = from.0.max(1);
        if first > head || limit == 0 {
            return Ok(Vec::new());
        }
        let last = head.min(first + limit.min(READ_LIMIT_MAX) as u64 - 1);
        let positions: Vec<u64> = (first..=last).collect();
        self.read_positions(&positions)
    }

    fn read_stream_now(
        &self,
        account: &AccountId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<Envelope>, ReadError> {
        self.check_poison("read")?;
        let head = self.shared.committed.load(Ordering::Acquire);
        let positions: Vec<u64> = {
            let index = self.shared.index.read().unwrap_or_else(|p| p.into_inner());
            match index.streams.get(account) {
                None => return Ok(Vec::new()),
                Some(list) => {
                    let skip = from.0.saturating_sub(1).min(list.len() as u64) as usize;
                    list[skip..].iter().copied().take_while(|p| *p <= head).take(limit.min(READ_LIMIT_MAX)).collect()
                }
            }
        };
        self.read_positions(&positions)
    }

    /// `account`'s stream state replayed from its committed events (the decision state may
    /// be ahead of them while an append is in flight).
    fn committed_stream_state(&self, account: &AccountId) -> Result<Option<StreamState>, ReadError> {
        let mut state: Option<StreamState> = None;
        let mut from = StreamVersion::FIRST;
        loop {
            let page = self.read_stream_now(account, from, READ_LIMIT_MAX)?;
            let Some(last) = page.last() else { return Ok(state) };
            from = StreamVersion(last.stream_version.0 + 1);
            for e in &page {
                // Validated when appended: applied as they are.
                let _ = state.get_or_insert_with(StreamState::default).apply(&e.to_new_event());
            }
        }
    }

    fn preflight_now(&self, accounts: &[AccountId], ids: &[EventId]) -> Result<Preflight, ReadError> {
        self.check_poison("preflight")?;
        // The decision state also holds appends handed to the writer and not yet durable: only
        // what is at or below the committed head counts, so streams are read back when an
        // append is in flight, and logged events are read back from disk.
        let (states, found, in_flight) = {
            let core = lock(&self.shared.core);
            let committed = self.shared.committed.load(Ordering::Acquire);
            let in_flight = core.next_position - 1 > committed;
            let states: Vec<Option<StreamState>> =
                accounts.iter().take(READ_LIMIT_MAX).map(|a| core.state.stream(a).cloned()).collect();
            let at = |id| core.state.id_position(id).filter(|p| p.0 <= committed);
            let found: Vec<(usize, u64)> =
                ids.iter().take(READ_LIMIT_MAX).enumerate().filter_map(|(i, id)| Some((i, at(id)?.0))).collect();
            (states, found, in_flight)
        };
        let states = if in_flight {
            accounts.iter().take(READ_LIMIT_MAX).map(|a| self.committed_stream_state(a)).collect::<Result<_, _>>()?
        } else {
            states
        };
        let mut by_position = found;
        by_position.sort_unstable_by_key(|&(_, p)| p);
        let positions: Vec<u64> = by_position.iter().map(|&(_, p)| p).collect();
        let logged_events = self.read_positions(&positions)?;
        let mut logged = vec![None; ids.len().min(READ_LIMIT_MAX)];
        for ((i, _), e) in by_position.into_iter().zip(logged_events) {
            logged[i] = Some(e.to_new_event().fingerprint());
        }
        Ok(Preflight { states, logged })
    }

    fn accounts_now(&self, after: Option<&AccountId>, limit: usize) -> Result<Vec<AccountId>, ReadError> {
        self.check_poison("read")?;
        let head = self.shared.committed.load(Ordering::Acquire);
        let index = self.shared.index.read().unwrap_or_else(|p| p.into_inner());
        let range = match after {
            None => index.accounts.range::<AccountId, _>(..),
            Some(a) => index.accounts.range::<AccountId, _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
        };
        Ok(range.filter(|(_, first)| **first <= head).map(|(a, _)| a.clone()).take(limit.min(READ_LIMIT_MAX)).collect())
    }
}

/// The most events [`Store::reserve`] makes room for at once.
const RESERVE_EVENTS_MAX: usize = 16_000_000;

impl Shared {
    pub(crate) fn poison(&self, why: String) {
        log::error!("{}: poisoning the store: {why}", self.dir.display());
        let _ = self.poisoned.set(why);
    }
}

// ---------------------------------------------------------------------------------------------

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

    fn head(&self) -> impl Future<Output = Result<Position, ReadError>> + Send {
        std::future::ready(
            self.check_poison("head")
                .map(|()| Position(self.shared.committed.load(Ordering::Acquire)))
                .map_err(ReadError::from),
        )
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

//! [`FileStore`]: open and recover a log directory, append through a group-commit writer
//! thread, and read committed batches.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::task::{Context, Poll, Waker};

use rapport_core::fast_hash::{FastHashMap, SeededHashMap};
use rapport_core::{
    AccountId, AppendError, AppendOutcome, Committed, Envelope, EventId, ExpectedVersion, LogState, NewEvent, Position,
    READ_LIMIT_MAX, ReadError, StorageError, Store, StreamVersion, Timestamp,
};

use crate::format::{
    self, FRAME_HEADER_BYTES, FrameHeader, FrameHeaderError, RECORD_BYTES_MAX, RECORD_PREFIX_BYTES,
    SEGMENT_HEADER_BYTES, SegmentHeader,
};
use crate::vfs::{AppendFile, LockGuard, ReadFile, StdVfs, Vfs, read_exact_at};

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
/// segments, the directory created if missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// When appends are acknowledged.
    pub durability: Durability,
    /// A segment is sealed and a new one started once it would grow past this many bytes.
    /// At least 64 KiB; at most 4 GiB.
    pub segment_bytes_max: u64,
    /// Create the directory (and a new log) if it does not exist.
    pub create_if_missing: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self { durability: Durability::Sync, segment_bytes_max: 256 * 1024 * 1024, create_if_missing: true }
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
    /// Another process holds the store's lock.
    #[error("the store at {dir} is in use by another process (lock file {lock})")]
    Locked {
        /// The directory.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// Damage that recovery must not repair: valid data follows it, or it is in a sealed
    /// segment.
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
    /// Events found in the log.
    pub n_events: u64,
    /// Segments found.
    pub n_segments: u64,
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

struct Shared {
    vfs: Arc<dyn Vfs>,
    log_id: [u8; 16],
    dir: PathBuf,
    options: Options,
    core: Mutex<Core>,
    index: RwLock<Index>,
    committed: AtomicU64,
    poisoned: OnceLock<String>,
    readers: RwLock<Vec<Option<Arc<dyn ReadFile>>>>,
    sender: Mutex<Option<Sender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    recovery: RecoveryReport,
    _lock: Box<dyn LockGuard>,
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

struct Core {
    state: LogState,
    /// Per position - 1: the event's structural fingerprint (`NewEvent::fingerprint`), to tell
    /// a duplicate from a conflicting reuse of its id.
    fingerprints: Vec<u64>,
    next_position: u64,
    last_recorded: Timestamp,
}

#[derive(Default)]
struct Index {
    segments: Vec<PathBuf>,
    /// Per position - 1: `(segment << 40) | offset of the record's prefix`.
    offsets: Vec<u64>,
    streams: FastHashMap<AccountId, Vec<u64>>,
    accounts: BTreeMap<AccountId, u64>,
    /// Every account by its stable hash, so decoding shares one `AccountId` per account. The
    /// stable hash is public, so anyone can aim texts at chosen values: the map is seeded.
    interned: SeededHashMap<u64, AccountId>,
}

impl Index {
    fn note_account(&mut self, account: &AccountId, position: u64) {
        match self.streams.get_mut(account) {
            Some(s) => s.push(position),
            None => {
                self.streams.insert(account.clone(), vec![position]);
                self.accounts.insert(account.clone(), position);
                self.interned.entry(account.stable_hash()).or_insert_with(|| account.clone());
            }
        }
    }

    fn intern(&self, s: &str) -> Result<AccountId, String> {
        match self.interned.get(&rapport_core::id::stable_hash(s)) {
            Some(a) if a.as_str() == s => Ok(a.clone()),
            _ => AccountId::new(s).map_err(|e| e.to_string()),
        }
    }
}

const OFFSET_BITS: u32 = 40;

fn pack(segment: u64, offset: u64) -> u64 {
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

/// The name of the lock file.
pub const LOCK_FILE: &str = "LOCK";

/// A decided append on its way to the writer thread, which encodes it into one frame.
struct Job {
    events: Vec<(NewEvent, StreamVersion)>,
    first_position: u64,
    recorded_at: Timestamp,
    done: Completion,
    outcome: AppendOutcome,
}

/// What the writer thread owns: the current segment file and where the log's tail stands.
struct Writer {
    file: Box<dyn AppendFile>,
    /// The sync epoch stamped on the frames of the next group.
    epoch: u64,
    segment_no: u64,
    segment_len: u64,
    prev_payload_crc: u32,
    /// Reused frame buffer.
    frame: Vec<u8>,
}

// ---------------------------------------------------------------------------------------------
// A one-shot completion the writer thread fills in and the append future waits on.

#[derive(Default)]
struct Slot {
    result: Option<Result<AppendOutcome, AppendError>>,
    waker: Option<Waker>,
}

#[derive(Clone, Default)]
struct Completion(Arc<Mutex<Slot>>);

impl Completion {
    fn complete(&self, result: Result<AppendOutcome, AppendError>) {
        let waker = {
            let mut slot = lock(&self.0);
            slot.result = Some(result);
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

struct Pending(Completion);

impl Future for Pending {
    type Output = Result<AppendOutcome, AppendError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = lock(&(self.0).0);
        match slot.result.take() {
            Some(r) => Poll::Ready(r),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// The append future: either decided at submission or waiting on the writer.
enum AppendFuture {
    Ready(Option<Result<AppendOutcome, AppendError>>),
    Waiting(Pending),
}

impl Future for AppendFuture {
    type Output = Result<AppendOutcome, AppendError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            AppendFuture::Ready(r) => Poll::Ready(r.take().unwrap_or_else(|| Ok(AppendOutcome::default()))),
            AppendFuture::Waiting(p) => Pin::new(p).poll(cx),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock is a bug elsewhere; the store poisons itself on I/O errors
    // explicitly, so recovering the guard does not hide a half-done write.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn io_err<'a>(operation: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> OpenError + 'a {
    move |source| OpenError::Io { operation, path: path.to_path_buf(), source }
}

// ---------------------------------------------------------------------------------------------
// Open and recovery.

struct Scan {
    core: Core,
    index: Index,
    truncated: Vec<(PathBuf, u64, u64)>,
    segment_no: u64,
    segment_len: u64,
    prev_payload_crc: u32,
}

impl Scan {
    fn intern(&mut self, s: &str) -> Result<AccountId, String> {
        self.index.intern(s)
    }
}

fn read_whole(vfs: &dyn Vfs, path: &Path) -> Result<Vec<u8>, OpenError> {
    let f = vfs.open_read(path).map_err(io_err("open", path))?;
    let len = f.size().map_err(io_err("stat", path))?;
    let mut buf = vec![0u8; len as usize];
    read_exact_at(&*f, &mut buf, 0).map_err(io_err("read", path))?;
    Ok(buf)
}

/// Whether a torn write could explain damage in `bytes[at..end]`: a crash leaves unwritten
/// sectors as zeros (or the file short), never other bytes. Damage in a frame that is complete
/// and has no all-zero 512-byte sector is bit rot in synced data.
fn torn_plausible(bytes: &[u8], at: usize, end: usize) -> bool {
    const SECTOR: usize = 512;
    if end > bytes.len() {
        return true;
    }
    let mut s = at / SECTOR * SECTOR;
    while s < end {
        let e = (s + SECTOR).min(bytes.len());
        if bytes[s.max(at)..e].iter().all(|&b| b == 0) && e > s.max(at) {
            return true;
        }
        s += SECTOR;
    }
    false
}

/// Where a valid frame header lies in `bytes` from `from` on with an epoch above
/// `epoch_bound`, which proves the frames before it were synced.
fn synced_frame_after(bytes: &[u8], from: usize, epoch_bound: u64) -> Option<usize> {
    let mut at = from;
    while at + FRAME_HEADER_BYTES <= bytes.len() {
        if bytes[at..at + 4] == format::FRAME_MAGIC
            && let Ok((h, _)) = FrameHeader::decode(&bytes[at..])
            && h.epoch > epoch_bound
        {
            return Some(at);
        }
        at += 1;
    }
    None
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
            vfs.create_dir_all(dir).map_err(io_err("create directory", dir))?;
        }
        let lock_path = dir.join(LOCK_FILE);
        let guard = match vfs.lock(&lock_path) {
            Ok(g) => g,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(OpenError::Locked { dir: dir.to_path_buf(), lock: lock_path });
            }
            Err(e) => return Err(OpenError::Io { operation: "lock", path: lock_path, source: e }),
        };
        let mut numbers: Vec<u64> =
            vfs.list(dir).map_err(io_err("list", dir))?.iter().filter_map(|n| parse_segment_name(n)).collect();
        numbers.sort_unstable();
        for (i, n) in numbers.iter().enumerate() {
            if *n != i as u64 {
                return Err(OpenError::Corrupt {
                    segment: dir.join(segment_name(i as u64)),
                    offset: 0,
                    reason: format!("segment {i} is missing (found {})", segment_name(*n)),
                });
            }
        }
        // About one event per 64 bytes of segment: reserve the id index once, not by doubling.
        let estimate: u64 = numbers
            .iter()
            .filter_map(|n| vfs.open_read(&dir.join(segment_name(*n))).ok().and_then(|f| f.size().ok()))
            .sum::<u64>()
            / 64;
        let mut scan = Scan {
            core: Core {
                state: LogState::with_capacity(estimate.min(1 << 28) as usize),
                fingerprints: Vec::new(),
                next_position: 1,
                last_recorded: Timestamp::from_unix_nanos(i64::MIN),
            },
            index: Index::default(),
            truncated: Vec::new(),
            segment_no: 0,
            segment_len: 0,
            prev_payload_crc: 0,
        };
        let mut log_id: Option<[u8; 16]> = None;
        let mut last_epoch = 0u64;
        let mut stop_after: Option<usize> = None;
        for (i, n) in numbers.iter().enumerate() {
            let path = dir.join(segment_name(*n));
            let bytes = read_whole(&*vfs, &path)?;
            let is_last = i + 1 == numbers.len();
            let header = match SegmentHeader::decode(&bytes) {
                Ok(h) => h,
                Err(e) if is_last && (bytes.iter().all(|&b| b == 0) || bytes.len() < SEGMENT_HEADER_BYTES) => {
                    // A segment whose creation was cut short: nothing in it was acknowledged.
                    log::warn!("{}: incomplete segment header ({}), rewriting it", path.display(), e);
                    scan.truncated.push((path.clone(), 0, bytes.len() as u64));
                    vfs.truncate(&path, 0).map_err(io_err("truncate", &path))?;
                    stop_after = Some(i);
                    scan.index.segments.push(path);
                    scan.segment_no = *n;
                    scan.segment_len = 0;
                    break;
                }
                Err(e) => return Err(OpenError::Corrupt { segment: path, offset: e.offset, reason: e.reason }),
            };
            let corrupt = |offset: u64, reason: String| OpenError::Corrupt { segment: path.clone(), offset, reason };
            if log_id.is_some_and(|id| id != header.log_id) {
                return Err(corrupt(16, "segment belongs to another log".into()));
            }
            log_id = Some(header.log_id);
            if header.segment_no != *n || header.base_position != scan.core.next_position {
                return Err(corrupt(
                    32,
                    format!(
                        "segment header says segment {} from position {}, expected segment {n} from {}",
                        header.segment_no, header.base_position, scan.core.next_position
                    ),
                ));
            }
            scan.index.segments.push(path.clone());
            scan.segment_no = *n;
            let mut at = SEGMENT_HEADER_BYTES;
            // Damage that a torn write could explain: its offset, what is wrong, and the epoch
            // of the damaged frame when its header is intact.
            let damage: Option<(usize, String, Option<u64>)> = loop {
                if at == bytes.len() {
                    break None;
                }
                let (h, _) = match FrameHeader::decode(&bytes[at..]) {
                    Ok(x) => x,
                    Err(FrameHeaderError::Zero) if bytes[at..].iter().all(|&b| b == 0) => {
                        break Some((at, "zeroed space".into(), None));
                    }
                    Err(FrameHeaderError::Zero) => {
                        break Some((at, "zeroed frame header followed by data".into(), None));
                    }
                    Err(FrameHeaderError::Short) => break Some((at, "truncated frame header".into(), None)),
                    Err(FrameHeaderError::Invalid) if torn_plausible(&bytes, at, bytes.len()) => {
                        break Some((at, "invalid frame header".into(), None));
                    }
                    Err(FrameHeaderError::Invalid) => {
                        return Err(corrupt(at as u64, "invalid frame header, and no torn write explains it".into()));
                    }
                };
                // A whole, checksummed header in the wrong place is never a torn write.
                if h.first_position != scan.core.next_position {
                    return Err(corrupt(
                        at as u64,
                        format!("frame starts at position {}, expected {}", h.first_position, scan.core.next_position),
                    ));
                }
                if h.prev_checksum != scan.prev_payload_crc {
                    return Err(corrupt(at as u64, "frame does not chain to the previous frame".into()));
                }
                let start = at + FRAME_HEADER_BYTES;
                let Some(payload) = bytes.get(start..start + h.payload_len as usize) else {
                    break Some((at, "frame payload overruns the segment".into(), Some(h.epoch)));
                };
                if crc32c::crc32c(payload) != h.payload_crc {
                    if !torn_plausible(&bytes, at, start + h.payload_len as usize) {
                        return Err(corrupt(
                            at as u64,
                            "frame payload checksum mismatch, and no torn write explains it".into(),
                        ));
                    }
                    break Some((at, "frame payload checksum mismatch".into(), Some(h.epoch)));
                }
                // From here on the frame is whole and checksummed: any problem is a bug or
                // deliberate tampering, never a torn write, so it is reported, not repaired.
                let bodies =
                    format::split_records(payload, h.count).map_err(|e| corrupt(start as u64 + e.offset, e.reason))?;
                for (k, (off, body)) in bodies.into_iter().enumerate() {
                    let position = Position(h.first_position + k as u64);
                    let record_at = (start + off) as u64;
                    let (new, recorded_at, version) = format::decode_parts(body, &mut |s| scan.intern(s))
                        .map_err(|e| corrupt(record_at, format!("position {position}: {}", e.reason)))?;
                    scan.index_event(&new, position, recorded_at, version, *n, record_at)
                        .map_err(|reason| corrupt(record_at, reason))?;
                }
                scan.prev_payload_crc = h.payload_crc;
                last_epoch = last_epoch.max(h.epoch);
                at = start + h.payload_len as usize;
            };
            scan.segment_len = at as u64;
            if let Some((offset, reason, damaged_epoch)) = damage {
                // The writer syncs a segment before it creates the next one, so damage in any
                // segment but the last hit synced, acknowledged data.
                if !is_last {
                    return Err(corrupt(offset as u64, format!("{reason} in a sealed segment")));
                }
                // A torn final write leaves damage followed only by frames of its own unsynced
                // group. A later frame from a later sync epoch proves the damaged bytes had been
                // synced: corruption of acknowledged data.
                let bound = damaged_epoch.unwrap_or(last_epoch + 1);
                if let Some(o) = synced_frame_after(&bytes, offset + 1, bound) {
                    return Err(corrupt(
                        offset as u64,
                        format!("{reason}, and acknowledged data follows (a frame from a later sync at byte {o})"),
                    ));
                }
                let dropped = bytes.len() as u64 - offset as u64;
                if reason != "zeroed space" {
                    log::warn!("{}: torn tail at byte {offset} ({reason}); truncating {dropped} bytes", path.display());
                }
                if dropped > 0 {
                    vfs.truncate(&path, offset as u64).map_err(io_err("truncate", &path))?;
                    scan.truncated.push((path.clone(), offset as u64, dropped));
                }
                stop_after = Some(i);
                break;
            }
        }
        if let Some(i) = stop_after {
            // Segments after the stop were emptied; reuse the first empty one as current only
            // if the stop segment itself was emptied.
            numbers.truncate(i + 1);
            scan.index.segments.truncate(i + 1);
        }
        let log_id = match log_id {
            Some(id) => id,
            None => *uuid::Uuid::new_v4().as_bytes(),
        };
        // A fresh log, or a last segment whose header was torn: (re)write its header.
        if numbers.is_empty() || scan.segment_len == 0 {
            let n = numbers.last().copied().unwrap_or(0);
            let path = dir.join(segment_name(n));
            if numbers.is_empty() {
                scan.index.segments.push(path.clone());
            }
            let header = SegmentHeader { log_id, base_position: scan.core.next_position, segment_no: n };
            let mut f = vfs.open_append(&path, numbers.is_empty()).map_err(io_err("create segment", &path))?;
            f.append(&header.encode()).map_err(io_err("write segment header", &path))?;
            f.sync_data().map_err(io_err("fsync segment", &path))?;
            vfs.sync_dir(dir).map_err(io_err("fsync directory", dir))?;
            scan.segment_no = n;
            scan.segment_len = SEGMENT_HEADER_BYTES as u64;
        }
        let current = scan.index.segments.last().cloned().unwrap_or_else(|| dir.join(segment_name(0)));
        let file = vfs.open_append(&current, false).map_err(io_err("open segment", &current))?;
        let n_events = scan.core.next_position - 1;
        let recovery =
            RecoveryReport { truncated: scan.truncated, n_events, n_segments: scan.index.segments.len() as u64 };
        let (tx, rx) = mpsc::channel::<Job>();
        let n_segments = scan.index.segments.len();
        let writer = Writer {
            file,
            epoch: last_epoch + 1,
            segment_no: scan.segment_no,
            segment_len: scan.segment_len,
            prev_payload_crc: scan.prev_payload_crc,
            frame: Vec::new(),
        };
        let shared = Arc::new(Shared {
            vfs,
            log_id,
            dir: dir.to_path_buf(),
            options,
            core: Mutex::new(scan.core),
            index: RwLock::new(scan.index),
            committed: AtomicU64::new(n_events),
            poisoned: OnceLock::new(),
            readers: RwLock::new(vec![None; n_segments]),
            sender: Mutex::new(Some(tx)),
            writer: Mutex::new(None),
            recovery,
            _lock: guard,
        });
        let weak = Arc::downgrade(&shared);
        let handle = std::thread::Builder::new()
            .name("rapport-writer".into())
            .spawn(move || writer_loop(weak, rx, writer))
            .map_err(io_err("spawn writer thread", dir))?;
        *lock(&shared.writer) = Some(handle);
        Ok(Self { shared })
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
        self.check_poison("append")?;
        let sh = &*self.shared;
        let mut guard = lock(&sh.core);
        let core = &mut *guard;
        let next = Position(core.next_position);
        let fingerprints = &core.fingerprints;
        let mut prepared = core.state.prepare(batch, expected, next, |p, e| {
            fingerprints.get((p.0 - 1) as usize).is_some_and(|&stored| stored == e.fingerprint())
        })?;
        if prepared.events.is_empty() {
            return Ok(AppendFuture::Ready(Some(Ok(AppendOutcome {
                appended: Vec::new(),
                duplicates: prepared.duplicates.clone(),
            }))));
        }
        let recorded_at = Timestamp::now().max(core.last_recorded);
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
        core.fingerprints.extend(prepared.events.iter().map(|(e, _)| e.fingerprint()));
        core.next_position += prepared.events.len() as u64;
        core.last_recorded = recorded_at;
        let done = Completion::default();
        let events = std::mem::take(&mut prepared.events);
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

impl Scan {
    fn index_event(
        &mut self,
        e: &NewEvent,
        position: Position,
        recorded_at: Timestamp,
        stored_version: StreamVersion,
        segment: u64,
        record_at: u64,
    ) -> Result<(), String> {
        let version = self.core.state.replay(e, position).map_err(|err| format!("position {position}: {err}"))?;
        if version != stored_version {
            return Err(format!(
                "position {position}: stored stream version {stored_version} but the stream is at {version}"
            ));
        }
        self.core.fingerprints.push(e.fingerprint());
        self.core.next_position = position.0 + 1;
        self.core.last_recorded = self.core.last_recorded.max(recorded_at);
        self.index.offsets.push(pack(segment, record_at));
        self.index.note_account(&e.account, position.0);
        Ok(())
    }
}

impl Shared {
    fn poison(&self, why: String) {
        log::error!("{}: poisoning the store: {why}", self.dir.display());
        let _ = self.poisoned.set(why);
    }
}

// ---------------------------------------------------------------------------------------------
// The writer thread: group commit.

/// The most events [`Store::reserve`] makes room for at once.
const RESERVE_EVENTS_MAX: usize = 16_000_000;

/// The most events one group writes before it syncs (about 16 MiB of frames at most).
const GROUP_EVENTS_MAX: usize = 200_000;

fn writer_loop(shared: std::sync::Weak<Shared>, rx: Receiver<Job>, mut w: Writer) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        let mut events = group[0].events.len();
        while events < GROUP_EVENTS_MAX {
            match rx.try_recv() {
                Ok(job) => {
                    events += job.events.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        let Some(sh) = shared.upgrade() else {
            for job in group {
                job.done.complete(Err(AppendError::Storage(StorageError::new("append", "the store was closed"))));
            }
            return;
        };
        let outcome: Result<(), String> = match sh.poisoned.get() {
            Some(why) => Err(format!("store is poisoned: {why}")),
            None => {
                let result = write_group(&sh, &mut w, &group);
                w.epoch += 1;
                match result {
                    Ok(offsets) => {
                        // Offsets first, then the head: a reader that sees the head finds
                        // every record.
                        sh.index.write().unwrap_or_else(|p| p.into_inner()).offsets.extend(offsets);
                        let last = group.last().map(|j| j.first_position + j.events.len() as u64 - 1).unwrap_or(0);
                        sh.committed.store(last, Ordering::Release);
                        Ok(())
                    }
                    Err(why) => {
                        sh.poison(why.clone());
                        Err(why)
                    }
                }
            }
        };
        // Let go of the events and of the store before waking anyone: an appender that drops
        // the last handle right after its append must find the store closed (its lock file
        // released) when the drop returns, so the writer must not hold a reference then.
        let done: Vec<(Completion, AppendOutcome)> = group.into_iter().map(|j| (j.done, j.outcome)).collect();
        drop(sh);
        for (completion, appended) in done {
            completion.complete(match &outcome {
                Ok(()) => Ok(appended),
                Err(why) => Err(AppendError::Storage(StorageError::new("append", why.clone()))),
            });
        }
    }
}

/// Encodes, writes and (with `Durability::Sync`) syncs a group of jobs; returns the packed
/// offset of every record written, in position order.
fn write_group(sh: &Shared, w: &mut Writer, group: &[Job]) -> Result<Vec<u64>, String> {
    let mut dirty = false;
    let mut offsets = Vec::with_capacity(group.iter().map(|j| j.events.len()).sum());
    for job in group {
        // Encode: records go straight after a header placeholder.
        let frame = &mut w.frame;
        frame.clear();
        frame.resize(FRAME_HEADER_BYTES, 0);
        let mut rel_offsets = Vec::with_capacity(job.events.len());
        for (e, version) in &job.events {
            rel_offsets.push(frame.len() as u64);
            // Validated events always encode (every field is within the record's limits); a
            // failure here is a bug, and poisons the store rather than writing a bad frame.
            format::encode_record(e, job.recorded_at, *version, frame)
                .map_err(|err| format!("encode position {}: {err}", job.first_position))?;
        }
        let payload_crc = crc32c::crc32c(&frame[FRAME_HEADER_BYTES..]);
        let frame_len = frame.len() as u64;
        if w.segment_len + frame_len > sh.options.segment_bytes_max && w.segment_len > SEGMENT_HEADER_BYTES as u64 {
            // Seal the current segment before moving on, whatever the durability setting:
            // recovery relies on every segment but the last being synced. Frames after the
            // seal carry a new epoch.
            if dirty {
                w.file.sync_data().map_err(|e| format!("fsync segment before rollover: {e}"))?;
                w.epoch += 1;
            }
            w.segment_no += 1;
            let path = sh.dir.join(segment_name(w.segment_no));
            let h = SegmentHeader { log_id: sh.log_id, base_position: job.first_position, segment_no: w.segment_no };
            let mut f = sh.vfs.open_append(&path, true).map_err(|e| format!("create {}: {e}", path.display()))?;
            f.append(&h.encode()).map_err(|e| format!("write header of {}: {e}", path.display()))?;
            f.sync_data().map_err(|e| format!("fsync {}: {e}", path.display()))?;
            sh.vfs.sync_dir(&sh.dir).map_err(|e| format!("fsync directory {}: {e}", sh.dir.display()))?;
            w.file = f;
            w.segment_len = SEGMENT_HEADER_BYTES as u64;
            sh.index.write().unwrap_or_else(|p| p.into_inner()).segments.push(path);
        }
        let header = FrameHeader {
            payload_len: (frame.len() - FRAME_HEADER_BYTES) as u32,
            first_position: job.first_position,
            count: job.events.len() as u32,
            epoch: w.epoch,
            prev_checksum: w.prev_payload_crc,
            payload_crc,
        };
        let frame = &mut w.frame;
        frame[..FRAME_HEADER_BYTES].copy_from_slice(&header.encode().0);
        w.file.append(frame).map_err(|e| format!("write: {e}"))?;
        dirty = true;
        offsets.extend(rel_offsets.iter().map(|r| pack(w.segment_no, w.segment_len + r)));
        w.segment_len += frame_len;
        w.prev_payload_crc = payload_crc;
    }
    if dirty && sh.options.durability == Durability::Sync {
        w.file.sync_data().map_err(|e| format!("fsync: {e}"))?;
    }
    Ok(offsets)
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

    fn reserve(&self, events: usize) {
        // Bounded: a hint must not make the store allocate without limit.
        let events = events.min(RESERVE_EVENTS_MAX);
        let mut core = lock(&self.shared.core);
        core.state.reserve(events);
        core.fingerprints.reserve(events);
        drop(core);
        self.shared.index.write().unwrap_or_else(|p| p.into_inner()).offsets.reserve(events);
    }

    fn accounts_exist(&self, accounts: &[AccountId]) -> impl Future<Output = Result<Vec<bool>, ReadError>> + Send {
        let result = self.check_poison("accounts_exist").map_err(ReadError::from).map(|()| {
            let committed = self.shared.committed.load(Ordering::Acquire);
            let index = self.shared.index.read().unwrap_or_else(|p| p.into_inner());
            accounts
                .iter()
                .take(READ_LIMIT_MAX)
                .map(|a| index.streams.get(a).and_then(|s| s.first()).is_some_and(|&p| p <= committed))
                .collect()
        });
        std::future::ready(result)
    }

    fn find_ids(&self, ids: &[EventId]) -> impl Future<Output = Result<Vec<Option<u64>>, ReadError>> + Send {
        let result = self.check_poison("find_ids").map_err(ReadError::from).map(|()| {
            // The id index also holds events handed to the writer and not yet durable: only
            // those at or below the committed head count.
            let core = lock(&self.shared.core);
            let committed = self.shared.committed.load(Ordering::Acquire);
            ids.iter()
                .take(READ_LIMIT_MAX)
                .map(|id| {
                    let p = core.state.id_position(id).filter(|p| p.0 <= committed)?;
                    core.fingerprints.get((p.0 - 1) as usize).copied()
                })
                .collect()
        });
        std::future::ready(result)
    }

    fn head(&self) -> impl Future<Output = Result<Position, ReadError>> + Send {
        std::future::ready(
            self.check_poison("head")
                .map(|()| Position(self.shared.committed.load(Ordering::Acquire)))
                .map_err(ReadError::from),
        )
    }
}

//! [`Shared`]: what every handle of one open store shares with the others and with the writer
//! thread.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use rapport_core::watch::HeadWatch;

use crate::format::Chain;
use crate::index::{Core, Index};
use crate::job::ToWriter;
use crate::options::{Options, RecoveryReport};
use crate::recovery;
use crate::snapshot::{self, Extent};
use crate::vfs::{LockGuard, ReadFile, Vfs};

pub(crate) struct Shared {
    pub(crate) vfs: Arc<dyn Vfs>,
    pub(crate) log_id: [u8; 16],
    pub(crate) dir: PathBuf,
    pub(crate) options: Options,
    pub(crate) core: Mutex<Core>,
    pub(crate) index: RwLock<Index>,
    pub(crate) committed: AtomicU64,
    /// The last position the index snapshot on disk covers (as loaded, or as last saved).
    pub(crate) snapshot_at: AtomicU64,
    /// Held while `FileStore::save_index_snapshot` runs: one save at a time.
    pub(crate) saving: Mutex<()>,
    /// The committed head again, for subscribers to wait on (published right after
    /// `committed`).
    pub(crate) watch: HeadWatch,
    pub(crate) poisoned: OnceLock<String>,
    pub(crate) readers: RwLock<Vec<Option<Arc<dyn ReadFile>>>>,
    /// The writer thread's queue; `None` when read-only.
    pub(crate) sender: Mutex<Option<Sender<ToWriter>>>,
    pub(crate) writer: Mutex<Option<std::thread::JoinHandle<Option<Extent>>>>,
    pub(crate) recovery: RecoveryReport,
    /// The writer's lock on the directory; `None` when read-only.
    pub(crate) lock: Option<Box<dyn LockGuard>>,
    /// How far a read-only handle has read the log; `None` for a writer's handle.
    pub(crate) follow: Mutex<Option<FollowState>>,
    /// Whether a thread keeps this read-only handle following the log.
    pub(crate) following: AtomicBool,
    /// The keys that seal personal text, and the erasures (`crate::keys`). Appends that
    /// make keys hold the append lock (`core`) while they do; an erasure holds both.
    pub(crate) keys: RwLock<crate::keys::Keys>,
}

impl Shared {
    #[allow(clippy::too_many_arguments)] // One call site per open mode; named fields below.
    pub(crate) fn new(
        vfs: Arc<dyn Vfs>,
        log_id: [u8; 16],
        dir: &Path,
        options: Options,
        scan: recovery::Scan,
        recovery: RecoveryReport,
        keys: crate::keys::Keys,
        sender: Option<Sender<ToWriter>>,
        lock: Option<Box<dyn LockGuard>>,
    ) -> Arc<Self> {
        let n_segments = scan.index.segments.len();
        let committed = AtomicU64::new(scan.head());
        let watch = HeadWatch::new(rapport_core::Position(scan.head()));
        Arc::new(Self {
            vfs,
            log_id,
            dir: dir.to_path_buf(),
            options,
            core: Mutex::new(scan.core),
            index: RwLock::new(scan.index),
            committed,
            snapshot_at: AtomicU64::new(recovery.from_snapshot),
            saving: Mutex::new(()),
            watch,
            poisoned: OnceLock::new(),
            readers: RwLock::new(vec![None; n_segments]),
            sender: Mutex::new(sender),
            writer: Mutex::new(None),
            recovery,
            lock,
            follow: Mutex::new(None),
            following: AtomicBool::new(false),
            keys: RwLock::new(keys),
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
        let handle = self.writer.get_mut().ok().and_then(Option::take);
        if let Some(handle) = handle
            && handle.thread().id() != std::thread::current().id()
            && let Ok(Some(extent)) = handle.join()
            && self.poisoned.get().is_none()
            && self.options.index_snapshot
            // The snapshot on disk still covers everything: nothing to save.
            && extent.position != self.snapshot_at.load(Ordering::Acquire)
        {
            // Closed cleanly: save the indexes, so the next open reads only what follows.
            let core = self.core.get_mut().unwrap_or_else(|p| p.into_inner());
            let index = self.index.get_mut().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = snapshot::save(&*self.vfs, &self.dir, self.log_id, extent, core, index) {
                tracing::warn!(dir = %self.dir.display(), "index snapshot not saved: {e}");
            }
        }
    }
}

impl Shared {
    pub(crate) fn poison(&self, why: String) {
        tracing::error!("{}: poisoning the store: {why}", self.dir.display());
        self.watch.close(format!("store is poisoned and must be reopened: {why}"));
        let _ = self.poisoned.set(why);
    }
}

/// Where a follower has read to: the last segment it knows, how many of its bytes it has read
/// (0: not even its header), and the chain and sync epoch of the last frame.
#[derive(Debug, Clone)]
pub(crate) struct FollowState {
    pub(crate) segment: u64,
    pub(crate) len: u64,
    pub(crate) version: u32,
    pub(crate) chain: Chain,
    pub(crate) last_epoch: u64,
    /// Bytes read at a time ([`recovery::WINDOW_BYTES`]; a frame larger than that whole).
    pub(crate) window: usize,
}

impl FollowState {
    pub(crate) fn after(scan: &recovery::Scan) -> Self {
        Self {
            segment: scan.numbers.last().copied().unwrap_or(0),
            len: scan.segment_len,
            version: scan.version,
            chain: scan.chain,
            last_epoch: scan.last_epoch,
            window: recovery::WINDOW_BYTES,
        }
    }
}

//! Opening a store: for writing (lock, recover, make the tail and the head record durable,
//! start the writer thread) or for reading only.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use crate::format::{SEGMENT_HEADER_BYTES, SegmentHeader};
use crate::head::{self, HEAD_FILE, HeadRecord};
use crate::index::segment_name;
use crate::job::ToWriter;
use crate::keys::{Keys, KeysError};
use crate::options::{OpenError, Options, RecoveryReport, Skipped, io_err, list_err};
use crate::recovery;
use crate::shared::{FollowState, Shared};
use crate::store::FileStore;
use crate::sync::lock;
use crate::vfs::{StdVfs, Vfs};
use crate::writer::{Writer, writer_loop};

/// Whether `name`, at the top of a store's directory, is one of the store's own (or one a
/// file system puts at the root of a volume).
fn ours(name: &str) -> bool {
    use crate::keys::{KEYS_FILE, KEYS_TMP_FILE};
    matches!(
        name,
        HEAD_FILE | head::HEAD_TMP_FILE | KEYS_FILE | KEYS_TMP_FILE | crate::blob::DERIVED_DIR | crate::vfs::LOCK_FILE
    ) || crate::index::parse_segment_name(name).is_some()
        || name == "lost+found"
}

/// Refuses to make a store in `dir`, which holds none (no head record, no segment), when it
/// holds other files: `--store .` in the wrong directory, or a path mistyped as another
/// program's, would scatter a store among its files. A missing or empty directory is made
/// one; an existing store is opened whatever else its directory holds (and never listed
/// here: the scan has found it).
fn refuse_foreign(vfs: &dyn Vfs, dir: &Path) -> Result<(), OpenError> {
    let names = vfs.entries(dir).map_err(list_err(dir))?;
    match names.into_iter().find(|n| !ours(n)) {
        Some(holds) => Err(OpenError::NotAStore { dir: dir.to_path_buf(), holds }),
        None => Ok(()),
    }
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

/// The key file of a log of format 4 (none before: its text is in the clear).
fn open_keys(vfs: &dyn Vfs, dir: &Path, log_id: [u8; 16], version: u32, writable: bool) -> Result<Keys, OpenError> {
    if version < crate::format::FORMAT_VERSION {
        return Ok(Keys::empty(log_id));
    }
    Keys::open(vfs, dir, log_id, writable).map_err(keys_failed(dir))
}

/// What reading or writing the key file of the store in `dir` found, as an open's error: the
/// file system's failure as such, damage as damage.
fn keys_failed(dir: &Path) -> impl FnOnce(KeysError) -> OpenError + '_ {
    move |e| {
        let path = dir.join(crate::keys::KEYS_FILE);
        match e {
            KeysError::Io(operation, source) => OpenError::Io { operation, path, source },
            KeysError::Damaged(reason) => OpenError::Corrupt { segment: path, offset: 0, reason },
        }
    }
}

impl FileStore {
    /// Opens (or creates) the store in `dir` with default options. A new store is made only
    /// in a missing or empty directory: one that holds other files and no store is refused
    /// ([`OpenError::NotAStore`]).
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
        let _span = tracing::info_span!("rapport.open", dir = %dir.display(), read_only = false).entered();
        let started = std::time::Instant::now();
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
        // The key file of the log the head record names is read on a thread of its own while
        // the log is scanned: the two are independent, and each is about half of an open.
        let (scan, early_keys) = std::thread::scope(|s| {
            let early = head.as_ref().filter(|h| h.version >= crate::format::FORMAT_VERSION).and_then(|h| {
                let (vfs, log_id) = (&*vfs, h.log_id);
                let reading = std::thread::Builder::new().name("rapport-open-keys".into());
                // Unable to start a thread: the keys are read after the scan.
                reading.spawn_scoped(s, move || Keys::read(vfs, dir, log_id)).ok()
            });
            let scan = recovery::scan(&*vfs, dir, head.as_ref(), options.index_snapshot, true);
            (scan, early.map(|t| t.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))))
        });
        let mut scan = scan?;
        if head.is_none() && scan.numbers.is_empty() {
            // No store here yet (nothing above wrote): the directory is about to become one.
            if !options.create_if_missing {
                return Err(OpenError::Missing { dir: dir.to_path_buf() });
            }
            refuse_foreign(&*vfs, dir)?;
        }
        let truncated = cut_torn_tail(&*vfs, &scan)?;
        let log_id = scan.log_id.unwrap_or_else(|| *uuid::Uuid::new_v4().as_bytes());
        start_segment_if_needed(&*vfs, dir, log_id, &mut scan)?;
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
        let recovery = RecoveryReport {
            truncated,
            skipped: None,
            n_events,
            n_segments: scan.index.segments.len() as u64,
            from_snapshot: scan.from_snapshot,
            format_version: scan.version,
            head_chain: scan.chain,
        };
        tracing::info!(
            events = n_events,
            segments = recovery.n_segments,
            truncated_bytes = recovery.truncated.iter().map(|t| t.2).sum::<u64>(),
            from_snapshot = recovery.from_snapshot,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "opened: log recovered"
        );
        let keys = match early_keys {
            // Read for the log the scan found (else, or if the read failed, read again now and
            // report what that finds).
            Some(Ok((mut keys, end)))
                if head.as_ref().is_some_and(|h| h.log_id == log_id && h.version == scan.version) =>
            {
                keys.make_writable(&*vfs, dir, end).map_err(keys_failed(dir))?;
                keys
            }
            _ => open_keys(&*vfs, dir, log_id, scan.version, true)?,
        };
        let writer = Writer::resume(file, Arc::clone(&vfs), dir, log_id, &scan);
        let (tx, rx) = mpsc::channel::<ToWriter>();
        let shared = Shared::new(vfs, log_id, dir, options, scan, recovery, keys, Some(tx), Some(guard));
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
    /// The handle keeps no validation state (it decides no append): it loads neither the ids
    /// nor the streams' rule state an index snapshot holds, and checks the records it reads
    /// for checksums, the hash chain, positions and stream versions without re-running the
    /// rules ([`verify`](crate::verify()) does). So it opens in a fraction of a writer's time
    /// and memory, and refuses `preflight` (a backfill needs the writer's handle). It reads the
    /// key file only when a read first needs a key (an owned read of sealed text, or
    /// [`erasures`](rapport_core::erase::ErasingStore::erasures)); scans never do, and a
    /// damaged key file is reported by such a read.
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
        Self::open_read_only_with(vfs, dir, true, false)
    }

    /// The read-only open; `snapshot`: whether an index snapshot may stand in for the log it
    /// covers; `validate`: whether every record read is validated against the rules (`verify`
    /// reads everything and validates it).
    pub(crate) fn open_read_only_with(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        snapshot: bool,
        validate: bool,
    ) -> Result<Self, OpenError> {
        let _span = tracing::info_span!("rapport.open", dir = %dir.display(), read_only = true).entered();
        if !vfs.exists(dir) {
            return Err(OpenError::Missing { dir: dir.to_path_buf() });
        }
        // The head record first: a writer renames a new one in only after the segments it
        // names exist, so what the listing finds next is at least as new.
        let head = read_head(&*vfs, dir)?;
        // A read-only handle decides no append: it keeps no validation state (ids, streams'
        // rules), except for `verify`, which validates everything it reads.
        let scan = recovery::scan(&*vfs, dir, head.as_ref(), snapshot, validate)?;
        let Some(log_id) = scan.log_id else {
            return Err(OpenError::Missing { dir: dir.to_path_buf() });
        };
        // Zeros to the end of the last segment are space a writer preallocated, not a batch.
        let skipped = scan.tail.as_ref().filter(|t| t.reason != "zeroed space").map(|t| Skipped {
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
            from_snapshot: scan.from_snapshot,
            format_version: scan.version,
            head_chain: scan.chain,
        };
        let follow = FollowState::after(&scan);
        // The key file is read when a read first needs a key ([`FileStore::read_positions`]):
        // scans and scores never do. `verify` reads it now, to check it.
        let keys = if validate || scan.version < crate::format::FORMAT_VERSION {
            open_keys(&*vfs, dir, log_id, scan.version, false)?
        } else {
            Keys::unread(log_id)
        };
        let shared = Shared::new(vfs, log_id, dir, Options::default(), scan, recovery, keys, None, None);
        *lock(&shared.follow) = Some(follow);
        Ok(Self { shared })
    }
}

/// Cuts the torn tail recovery found, if any: what a crash left unacknowledged. Returns what
/// was cut, for the [`RecoveryReport`].
fn cut_torn_tail(vfs: &dyn Vfs, scan: &recovery::Scan) -> Result<Vec<(PathBuf, u64, u64)>, OpenError> {
    let Some(tail) = &scan.tail else { return Ok(Vec::new()) };
    if tail.reason != "zeroed space" {
        tracing::warn!(
            "{}: torn tail at byte {} ({}); truncating {} bytes",
            tail.segment.display(),
            tail.offset,
            tail.reason,
            tail.bytes
        );
    }
    vfs.truncate(&tail.segment, tail.offset).map_err(io_err("truncate", &tail.segment))?;
    Ok(vec![(tail.segment.clone(), tail.offset, tail.bytes)])
}

/// A fresh log, or a last segment whose header was torn: writes (or rewrites) its header
/// durably, with the directory entry.
fn start_segment_if_needed(
    vfs: &dyn Vfs,
    dir: &Path,
    log_id: [u8; 16],
    scan: &mut recovery::Scan,
) -> Result<(), OpenError> {
    if !scan.numbers.is_empty() && scan.segment_len != 0 {
        return Ok(());
    }
    let n = scan.numbers.last().copied().unwrap_or(0);
    let path = dir.join(segment_name(n));
    if scan.numbers.is_empty() {
        scan.numbers.push(0);
        scan.index.segments.push(path.clone());
    }
    let header = SegmentHeader {
        version: scan.version,
        log_id,
        base_position: scan.core.next_position,
        segment_no: n,
        head_tracked: true,
    };
    let mut f = vfs.open_append(&path, !vfs.exists(&path)).map_err(io_err("create segment", &path))?;
    f.append(&header.encode()).map_err(io_err("write segment header", &path))?;
    f.sync_data().map_err(io_err("fsync segment", &path))?;
    vfs.sync_dir(dir).map_err(io_err("fsync directory", dir))?;
    scan.segment_len = SEGMENT_HEADER_BYTES as u64;
    Ok(())
}

//! [`backup`]: a consistent, verified copy of a store while a writer keeps appending.
//!
//! The copy is a prefix of the log. A read-only open reads the log up to its last whole batch;
//! the source's last segment is synced (so every byte read is durable there too, and a crash
//! of the source cannot lose what the backup holds); the sealed segments are copied whole and
//! the last one up to the end of that batch, each synced; a head record naming that position
//! is written last. The copy is then verified like any store, and must hold exactly the events
//! read. A writer appending meanwhile only adds bytes after the copied extent, which the copy
//! never reads. Derived state (`derived/`) is left out: it is rebuilt from the log, and a
//! checkpoint of the source may cover positions the copy does not hold. The key file is copied
//! after the segments (or left out on request, [`BackupKeys`]). Until the copy is whole it
//! holds [`UNFINISHED_FILE`](crate::UNFINISHED_FILE), so a backup a crash cut short is
//! refused by every open.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::copy::{self, Failed, Refused, check_destination};
use crate::head::{self, HeadRecord};
use crate::index::segment_name;
use crate::options::OpenError;
use crate::store::FileStore;
use crate::sync::lock;
use crate::verify::{VerifyError, verify_on};
use crate::vfs::{StdVfs, Vfs, read_at_most};

/// Bytes a backup copies at a time.
const COPY_CHUNK: usize = 1 << 20;

/// What a backup copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The events in the copy: the source's log up to this position.
    pub n_events: u64,
    /// Segments copied.
    pub n_segments: u64,
    /// Bytes copied.
    pub bytes: u64,
}

/// Why a backup was not made. A failed backup removes what it wrote.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The source could not be opened.
    #[error("opening the store to back up: {0}")]
    Open(#[from] OpenError),
    /// The destination exists (a backup never overwrites) or lies inside the source, or the
    /// source inside it.
    #[error("backup destination {path}: {reason}")]
    Destination {
        /// The destination.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading the source or writing the copy failed.
    #[error("{operation} {path}: {source}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The copy does not verify, or holds other than the events read.
    #[error("the copy at {path} does not verify: {reason}")]
    Verify {
        /// The copy.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

fn io<'a>(operation: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BackupError + 'a {
    move |source| BackupError::Io { operation, path: path.to_path_buf(), source }
}

impl From<Failed> for BackupError {
    fn from(Failed { operation, path, source }: Failed) -> Self {
        BackupError::Io { operation, path, source }
    }
}

impl FileStore {
    /// A consistent, verified copy of this store's log in `dest` (a directory that must not
    /// exist), made while appends go on. See [`backup`].
    ///
    /// # Errors
    /// [`BackupError`].
    pub fn backup(&self, dest: impl AsRef<Path>) -> Result<BackupReport, BackupError> {
        backup(self.dir(), dest)
    }
}

/// Copies the store in `src` to `dest` (a directory that must not exist), consistently and
/// while a writer, in this process or another, keeps appending; then verifies the copy. The
/// copy holds the log up to the last batch written when it began, every byte of it durable in
/// the source too. It takes no lock and writes nothing to the source.
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("rapport-backup-doc-{}", std::process::id()));
/// # let dest = dir.with_extension("bak");
/// use rapport_core::{ExpectedVersion, NewEvent, Store};
/// let store = rapport_store_file::FileStore::open(&dir)?;
/// let e = NewEvent::from_json_line(r#"{"type":"touchpoint","account":"acme","occurred_at":"2025-03-01T09:00:00Z","channel":"call"}"#)?;
/// pollster::block_on(store.append(vec![e], ExpectedVersion::Any))?;
/// let report = rapport_store_file::backup(&dir, &dest)?;
/// assert_eq!(report.n_events, 1);
/// assert_eq!(rapport_store_file::verify(&dest)?.n_events, 1);
/// # drop(store);
/// # std::fs::remove_dir_all(&dir)?;
/// # std::fs::remove_dir_all(&dest)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`BackupError`]; a failed backup removes the directory it created.
pub fn backup(src: impl AsRef<Path>, dest: impl AsRef<Path>) -> Result<BackupReport, BackupError> {
    backup_with(src, dest, BackupKeys::Copied)
}

/// Whether a backup copies the key file (`KEYS`, the keys that seal personal text; see
/// `docs/privacy.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackupKeys {
    /// The copy holds the key file as it was once the segments were copied: a whole store.
    Copied,
    /// The copy holds no key file: its events and scores read, its personal text does not
    /// (a read that needs it fails, naming the missing key) until a key file is put beside
    /// it. Keep the key file in a backup of its own, kept for a shorter time, so an erasure
    /// reaches every backup once that one expires.
    LeftOut,
}

/// [`backup`], saying whether the copy holds the key file.
///
/// # Errors
/// [`BackupError`]; a failed backup removes the directory it created.
pub fn backup_with(
    src: impl AsRef<Path>,
    dest: impl AsRef<Path>,
    keys: BackupKeys,
) -> Result<BackupReport, BackupError> {
    backup_on(Arc::new(StdVfs), src, dest, keys)
}

/// [`backup_with`] on the file system `vfs` (as [`FileStore::open_on`] opens a store on one):
/// the source, the copy and its check all go through it. A backup a crash cut short leaves a
/// copy every open refuses ([`OpenError::Unfinished`]): remove it and back up again.
///
/// # Errors
/// [`BackupError`]; a failed backup removes the directory it created.
pub fn backup_on(
    vfs: Arc<dyn Vfs>,
    src: impl AsRef<Path>,
    dest: impl AsRef<Path>,
    keys: BackupKeys,
) -> Result<BackupReport, BackupError> {
    let (src, dest) = (src.as_ref(), dest.as_ref());
    let _span = tracing::info_span!("rapport.backup", src = %src.display(), dest = %dest.display()).entered();
    let started = std::time::Instant::now();
    let store = FileStore::open_read_only_on(Arc::clone(&vfs), src)?;
    check_destination(&*vfs, src, dest).map_err(|refused| match refused {
        Refused::Because(reason) => BackupError::Destination { path: dest.to_path_buf(), reason: reason.into() },
        Refused::Io(failed) => failed.into(),
    })?;
    let result = copy::begin(&*vfs, dest, "rapport backup")
        .map_err(BackupError::from)
        .and_then(|()| copy_log(&*vfs, &store, dest, keys))
        .and_then(|report| check_copy(Arc::clone(&vfs), dest, report));
    match &result {
        Ok(report) => tracing::info!(
            events = report.n_events,
            bytes = report.bytes,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "backup made and verified"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "backup failed; removing the partial copy");
            copy::discard(&*vfs, dest);
        }
    }
    result
}

/// Copies the segments up to the extent the read-only open read, then the head record.
fn copy_log(vfs: &dyn Vfs, store: &FileStore, dest: &Path, keys: BackupKeys) -> Result<BackupReport, BackupError> {
    let sh = &*store.shared;
    let follow = lock(&sh.follow).clone().ok_or_else(|| BackupError::Verify {
        path: dest.to_path_buf(),
        reason: "the source handle is not read-only".into(),
    })?;
    let n_events = sh.committed.load(std::sync::atomic::Ordering::Acquire);
    // A last segment whose header was not written yet holds nothing to copy.
    let last = if follow.len == 0 { follow.segment.checked_sub(1) } else { Some(follow.segment) };
    let mut bytes = 0;
    if let Some(last) = last {
        for n in 0..=last {
            let from = sh.dir.join(segment_name(n));
            let to = dest.join(segment_name(n));
            let extent = (n == last).then_some(follow.len);
            bytes += copy_file(vfs, &from, &to, extent)?;
        }
    }
    let record = HeadRecord {
        version: follow.version,
        log_id: sh.log_id,
        last_segment: last.unwrap_or(0),
        position: n_events,
        chain: follow.chain,
    };
    // The key file after the segments: every key a copied record names was durable before
    // the record was written, so it is in the file read now.
    let key_file = sh.dir.join(crate::keys::KEYS_FILE);
    if keys == BackupKeys::Copied && vfs.exists(&key_file) {
        bytes += copy_file(vfs, &key_file, &dest.join(crate::keys::KEYS_FILE), None)?;
    }
    if last.is_some() {
        head::write(vfs, dest, &record).map_err(|(operation, e)| io(operation, dest)(e))?;
    }
    // Every file is synced: the copy is whole, and the marker goes.
    copy::finish(vfs, dest)?;
    Ok(BackupReport { n_events, n_segments: last.map_or(0, |l| l + 1), bytes })
}

/// Copies `from` to `to` (the first `extent` bytes, or all of a sealed segment or the key
/// file), syncing the source first so every byte copied is durable there, then the copy.
fn copy_file(vfs: &dyn Vfs, from: &Path, to: &Path, extent: Option<u64>) -> Result<u64, BackupError> {
    if extent.is_some() {
        // The last segment may hold a batch written and not yet synced by its writer.
        vfs.sync_file(from).map_err(io("sync", from))?;
    }
    let source = vfs.open_read(from).map_err(io("open", from))?;
    let len = match extent {
        Some(len) => len,
        None => source.size().map_err(io("stat", from))?,
    };
    let mut copy = vfs.open_append(to, true).map_err(io("create", to))?;
    let mut buf = vec![0; COPY_CHUNK.min(usize::try_from(len).unwrap_or(COPY_CHUNK))];
    let mut copied = 0u64;
    while copied < len {
        let want = usize::try_from(len - copied).map_or(buf.len(), |left| left.min(buf.len()));
        let n = read_at_most(&*source, &mut buf[..want], copied).map_err(io("read", from))?;
        if n == 0 {
            return Err(BackupError::Io {
                operation: "copy",
                path: from.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("{copied} of {len} bytes")),
            });
        }
        copy.append(&buf[..n]).map_err(io("write", to))?;
        copied += n as u64;
    }
    copy.sync_data().map_err(io("sync", to))?;
    Ok(copied)
}

/// The copy opens, verifies, and holds exactly the events read.
fn check_copy(vfs: Arc<dyn Vfs>, dest: &Path, report: BackupReport) -> Result<BackupReport, BackupError> {
    let fail = |reason: String| BackupError::Verify { path: dest.to_path_buf(), reason };
    if report.n_segments == 0 {
        return Ok(report);
    }
    let verified = verify_on(vfs, dest).map_err(|e| match e {
        VerifyError::Damaged { file, offset, reason } => fail(format!("{} at byte {offset}: {reason}", file.display())),
        other => fail(other.to_string()),
    })?;
    if verified.n_events != report.n_events || verified.skipped.is_some() {
        return Err(fail(format!(
            "it holds {} events, {} were read{}",
            verified.n_events,
            report.n_events,
            if verified.skipped.is_some() { ", and bytes it could not read" } else { "" }
        )));
    }
    Ok(report)
}

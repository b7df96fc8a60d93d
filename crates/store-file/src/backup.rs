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
//! after the segments (or left out on request, [`BackupKeys`]).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::head::{self, HeadRecord};
use crate::index::segment_name;
use crate::options::OpenError;
use crate::store::FileStore;
use crate::sync::lock;
use crate::verify::{VerifyError, verify};
use crate::vfs::{StdVfs, Vfs};

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
    let (src, dest) = (src.as_ref(), dest.as_ref());
    let _span = tracing::info_span!("rapport.backup", src = %src.display(), dest = %dest.display()).entered();
    let started = std::time::Instant::now();
    let store = FileStore::open_read_only(src)?;
    check_destination(&StdVfs, src, dest).map_err(|refused| match refused {
        Refused::Because(reason) => BackupError::Destination { path: dest.to_path_buf(), reason: reason.into() },
        Refused::Io { operation, path, source } => BackupError::Io { operation, path, source },
    })?;
    std::fs::create_dir_all(dest).map_err(io("create", dest))?;
    let result = copy_log(&store, dest, keys).and_then(|report| check_copy(dest, report));
    match &result {
        Ok(report) => tracing::info!(
            events = report.n_events,
            bytes = report.bytes,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "backup made and verified"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "backup failed; removing the partial copy");
            let _ = std::fs::remove_dir_all(dest);
        }
    }
    result
}

/// Why a directory a copy of the store would be written to (a backup's, an upgrade's) was
/// refused; each caller turns it into its own error.
pub(crate) enum Refused {
    /// What is wrong with the directory.
    Because(&'static str),
    /// It could not be looked at.
    Io { operation: &'static str, path: PathBuf, source: std::io::Error },
}

/// Refuses a destination that exists, lies inside the store `src` or holds it.
pub(crate) fn check_destination(vfs: &dyn Vfs, src: &Path, dest: &Path) -> Result<(), Refused> {
    let resolve = |path: &Path| {
        vfs.canonicalize(path).map_err(|source| Refused::Io { operation: "resolve", path: path.into(), source })
    };
    if vfs.exists(dest) || dest.symlink_metadata().is_ok() {
        return Err(Refused::Because("exists; a copy never overwrites"));
    }
    let src = resolve(src)?;
    // The destination does not exist yet: resolve its parent.
    let parent = resolve(dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))?;
    let dest = parent.join(dest.file_name().ok_or(Refused::Because("names no directory"))?);
    if dest.starts_with(&src) {
        return Err(Refused::Because("lies inside the store"));
    }
    if src.starts_with(&dest) {
        return Err(Refused::Because("holds the store"));
    }
    Ok(())
}

/// Copies the segments up to the extent the read-only open read, then the head record.
fn copy_log(store: &FileStore, dest: &Path, keys: BackupKeys) -> Result<BackupReport, BackupError> {
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
            bytes += copy_segment(&from, &to, extent)?;
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
    if keys == BackupKeys::Copied && key_file.exists() {
        bytes += copy_segment(&key_file, &dest.join(crate::keys::KEYS_FILE), None)?;
    }
    if last.is_some() {
        head::write(&StdVfs, dest, &record).map_err(|(operation, e)| io(operation, dest)(e))?;
    }
    std::fs::File::open(dest).and_then(|d| d.sync_all()).map_err(io("sync directory", dest))?;
    Ok(BackupReport { n_events, n_segments: last.map_or(0, |l| l + 1), bytes })
}

/// Copies `from` to `to` (the first `extent` bytes, or all of a sealed segment), syncing the
/// source first so every byte copied is durable there, then the copy.
fn copy_segment(from: &Path, to: &Path, extent: Option<u64>) -> Result<u64, BackupError> {
    let source = std::fs::File::open(from).map_err(io("open", from))?;
    if extent.is_some() {
        // The last segment may hold a batch written and not yet synced by its writer.
        source.sync_data().map_err(io("sync", from))?;
    }
    let len = match extent {
        Some(len) => len,
        None => source.metadata().map_err(io("stat", from))?.len(),
    };
    let mut copy = std::fs::OpenOptions::new().write(true).create_new(true).open(to).map_err(io("create", to))?;
    let copied = std::io::copy(&mut source.take(len), &mut copy).map_err(io("copy to", to))?;
    if copied != len {
        return Err(BackupError::Io {
            operation: "copy",
            path: from.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("{copied} of {len} bytes")),
        });
    }
    copy.flush().map_err(io("write", to))?;
    copy.sync_all().map_err(io("sync", to))?;
    Ok(copied)
}

/// The copy opens, verifies, and holds exactly the events read.
fn check_copy(dest: &Path, report: BackupReport) -> Result<BackupReport, BackupError> {
    let fail = |reason: String| BackupError::Verify { path: dest.to_path_buf(), reason };
    if report.n_segments == 0 {
        return Ok(report);
    }
    let verified = verify(dest).map_err(|e| match e {
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

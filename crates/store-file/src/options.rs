//! What a caller chooses when opening a [`FileStore`](crate::FileStore), and what opening
//! can refuse or report.

use std::io;
use std::path::{Path, PathBuf};

use rapport_core::validate::FUTURE_SKEW_DEFAULT;

use crate::format::Chain;

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

/// Settings for [`FileStore::open_with`](crate::FileStore::open_with). By default: durable (`Durability::Sync`), 256 MiB
/// segments, the directory created if missing, five minutes of clock skew allowed
/// ([`FUTURE_SKEW_DEFAULT`]), the index snapshot kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// When appends are acknowledged.
    pub durability: Durability,
    /// A segment is sealed and a new one started once it would grow past this many bytes.
    /// At least 64 KiB; at most 4 GiB.
    pub segment_bytes_max: u64,
    /// Create the directory (and a new log) if it holds no store: it does not exist, or is
    /// empty (an existing directory becomes a new store only when empty,
    /// [`OpenError::NotAStore`]). Off, a directory without a store is
    /// [`OpenError::Missing`].
    pub create_if_missing: bool,
    /// How much later than its `recorded_at` a new event may say it occurred
    /// ([`Admission`](rapport_core::validate::Admission)); later ones are refused with
    /// [`ValidationError::OccursInTheFuture`](rapport_core::ValidationError::OccursInTheFuture).
    pub future_skew: std::time::Duration,
    /// Save the indexes at a clean close (`derived/log-index.bin`, with the ids in
    /// `derived/log-ids-N.bin`) and load them at the next open instead of reading the log they
    /// cover (see `docs/log-format.md`, "The index snapshot"). On by default; off, every open
    /// reads the whole log (and a close saves nothing).
    pub index_snapshot: bool,
    /// Write zeros ahead of small appends (1 MiB at a time) so that their fdatasync changes no
    /// file size, which costs about a third less on the disks measured (BENCHMARKS.md,
    /// "Single-event appends"). A clean close and every segment rollover cut the zeros; a
    /// crash leaves them, and they are the end of the log to every reader. On by default.
    pub preallocate: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            durability: Durability::Sync,
            segment_bytes_max: 256 * 1024 * 1024,
            create_if_missing: true,
            future_skew: FUTURE_SKEW_DEFAULT,
            index_snapshot: true,
            preallocate: true,
        }
    }
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The directory does not exist, or holds no store, and `create_if_missing` is off.
    #[error("no rapport store at {dir}")]
    Missing {
        /// The directory.
        dir: PathBuf,
    },
    /// The path names a file, not a directory: a file store is a directory of files.
    #[error("{path} is a file, not a rapport store: a file store is a directory (give the directory's path)")]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The directory holds other files and no store: a new store is made only in a missing or
    /// empty directory.
    #[error(
        "{dir} holds other files ({holds:?}) and no rapport store: a new store is made only in a missing or empty directory"
    )]
    NotAStore {
        /// The directory.
        dir: PathBuf,
        /// One of the files it holds (the first listed that is not a store's).
        holds: String,
    },
    /// The directory is a copy of a store (a backup's or an upgrade's) that was never
    /// finished: it still holds the [`UNFINISHED_FILE`](crate::UNFINISHED_FILE) the copy
    /// removes last.
    #[error(
        "{dir} is a copy of a store that was never finished (it holds {marker}): remove the directory and make the copy again"
    )]
    Unfinished {
        /// The directory.
        dir: PathBuf,
        /// The marker's name.
        marker: &'static str,
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
    /// The events an index snapshot stood in for (saved at the last clean close; the log was
    /// read only after them); 0 when the whole log was read.
    pub from_snapshot: u64,
    /// The log's format version (`docs/log-format.md`): 2 for a log created by this build,
    /// 1 for an older one until it is upgraded ([`upgrade`](crate::upgrade())).
    pub format_version: u32,
    /// The chain value after the last event read ([`Chain::START`] for an empty log). In a
    /// version-2 log it is a BLAKE3 hash over the whole history up to that event: record it,
    /// and a later `verify` proves that history was not rewritten.
    pub head_chain: Chain,
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

pub(crate) fn io_err<'a>(operation: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> OpenError + 'a {
    move |source| OpenError::Io { operation, path: path.to_path_buf(), source }
}

/// A failure to list the store's directory `dir`, as an open's error: a path that names a
/// file is said to be one.
pub(crate) fn list_err(dir: &Path) -> impl FnOnce(io::Error) -> OpenError + '_ {
    move |source| match source.kind() {
        io::ErrorKind::NotADirectory => OpenError::NotADirectory { path: dir.to_path_buf() },
        _ => OpenError::Io { operation: "list", path: dir.to_path_buf(), source },
    }
}

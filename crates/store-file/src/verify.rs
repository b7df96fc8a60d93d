//! [`verify`]: a read-only check of a whole store — every checksum, the hash chain, gapless
//! positions and every validation rule — that names the file and byte offset of any damage.

use std::path::{Path, PathBuf};

use rapport_core::{LogState, Position};

use crate::format::{self, SEGMENT_HEADER_BYTES, SegmentHeader};
use crate::store::{LOCK_FILE, parse_segment_name, segment_name};
use crate::vfs::{StdVfs, Vfs, read_exact_at};

/// A healthy store's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events.
    pub n_events: u64,
    /// Accounts.
    pub n_accounts: u64,
    /// Segments.
    pub n_segments: u64,
}

/// Why a store failed verification.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// There is no store in the directory.
    #[error("no rapport store at {0}")]
    Missing(PathBuf),
    /// Another process has the store open.
    #[error("the store at {0} is in use by another process; verify needs it idle")]
    Locked(PathBuf),
    /// Damage, with the file and byte offset where it starts.
    #[error("damaged: {file} at byte {offset}: {reason}")]
    Damaged {
        /// The segment file.
        file: PathBuf,
        /// The byte offset.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The store could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Checks the store in `dir` without changing it. A torn tail that the next open would
/// truncate is reported as damage too.
///
/// # Errors
/// [`VerifyError`].
pub fn verify(dir: &Path) -> Result<VerifyReport, VerifyError> {
    let vfs = StdVfs;
    if !dir.is_dir() {
        return Err(VerifyError::Missing(dir.to_path_buf()));
    }
    let _lock = vfs.lock(&dir.join(LOCK_FILE)).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock => VerifyError::Locked(dir.to_path_buf()),
        _ => VerifyError::Io { path: dir.join(LOCK_FILE), source: e },
    })?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| VerifyError::Io { path, source }
    };
    let mut numbers: Vec<u64> = vfs.list(dir).map_err(io(dir))?.iter().filter_map(|n| parse_segment_name(n)).collect();
    numbers.sort_unstable();
    if numbers.is_empty() {
        return Err(VerifyError::Missing(dir.to_path_buf()));
    }
    let mut state = LogState::new();
    let mut next = 1u64;
    let mut log_id = None;
    for (i, n) in numbers.iter().enumerate() {
        let path = dir.join(segment_name(i as u64));
        let damaged = |offset: u64, reason: String| VerifyError::Damaged { file: path.clone(), offset, reason };
        if *n != i as u64 {
            return Err(damaged(0, format!("segment {i} is missing")));
        }
        let f = vfs.open_read(&path).map_err(io(&path))?;
        let len = f.size().map_err(io(&path))?;
        let mut bytes = vec![0u8; len as usize];
        read_exact_at(&*f, &mut bytes, 0).map_err(io(&path))?;
        if bytes.len() >= SEGMENT_HEADER_BYTES
            && let Ok(h) = SegmentHeader::decode(&bytes)
        {
            {
                if log_id.is_some_and(|id| id != h.log_id) {
                    return Err(damaged(16, "segment belongs to another log".into()));
                }
                log_id = Some(h.log_id);
                if h.base_position != next {
                    return Err(damaged(
                        32,
                        format!("segment starts at position {}, expected {next}", h.base_position),
                    ));
                }
            }
        }
        let seg = format::decode_segment(&bytes).map_err(|e| damaged(e.offset, e.reason))?;
        if seg.valid_len != len {
            return Err(damaged(seg.valid_len, "zeroed space after the last frame".into()));
        }
        for e in &seg.records {
            let version = state
                .replay(&e.to_new_event(), Position(next))
                .map_err(|err| damaged(0, format!("position {next}: {err}")))?;
            if version != e.stream_version {
                return Err(damaged(
                    0,
                    format!("position {next}: stream version {} should be {version}", e.stream_version),
                ));
            }
            next += 1;
        }
    }
    Ok(VerifyReport { n_events: next - 1, n_accounts: state.n_accounts() as u64, n_segments: numbers.len() as u64 })
}

//! [`verify`]: a read-only check of a whole store — every checksum, the hash chain, gapless
//! positions, every validation rule and the head record — that names the file and byte offset
//! of any damage.

use std::path::{Path, PathBuf};

use crate::format::{
    Chain, FORMAT_VERSION_1, FrameHeader, FrameHeaderError, SEGMENT_HEADER_BYTES, SegmentHeader, frame_header_bytes,
};
use crate::options::{OpenError, Skipped};
use crate::store::FileStore;
use crate::vfs::{StdVfs, Vfs, read_exact_at};

/// A healthy store's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events.
    pub n_events: u64,
    /// Accounts.
    pub n_accounts: u64,
    /// Segments.
    pub n_segments: u64,
    /// Bytes after the last complete batch that were not read: a batch a writer is still
    /// writing, or a torn tail the next writer's open will cut. Never acknowledged data.
    pub skipped: Option<Skipped>,
    /// The log's format version: 2 chains frames by BLAKE3, 1 by CRC32C (not tamper-evident;
    /// see [`upgrade`](crate::upgrade())).
    pub format_version: u32,
    /// The chain value after the last event (position `n_events`). In a version-2 log it
    /// stands for the whole history up to there: an operator who records it (with the
    /// position) can later check with [`chain_at`] that this prefix was not rewritten.
    pub head_chain: Chain,
}

/// Why a store failed verification.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// There is no store in the directory.
    #[error("no rapport store at {0}")]
    Missing(PathBuf),
    /// Damage, with the file and byte offset where it starts.
    #[error("damaged: {file} at byte {offset}: {reason}")]
    Damaged {
        /// The segment file (or the head record).
        file: PathBuf,
        /// The byte offset.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The store could not be read.
    #[error("{0}")]
    Open(OpenError),
    /// No batch ends at the position asked about ([`chain_at`]): the chain has a value only
    /// where a batch (frame) ends.
    #[error("no batch ends at position {position} (the nearest batch end read is {last_end})")]
    NoFrameEnd {
        /// The position asked about.
        position: u64,
        /// The end of the batch that holds it, or of the last batch in the log.
        last_end: u64,
    },
}

/// Checks the store in `dir` without changing it or taking its lock, so it runs beside a
/// writer: it reads up to the last complete batch (reporting what follows in
/// [`VerifyReport::skipped`]), with every check an open makes.
///
/// # Errors
/// [`VerifyError`].
pub fn verify(dir: &Path) -> Result<VerifyReport, VerifyError> {
    verify_on(std::sync::Arc::new(StdVfs), dir)
}

/// [`verify`] on the file system `vfs`.
pub(crate) fn verify_on(vfs: std::sync::Arc<dyn Vfs>, dir: &Path) -> Result<VerifyReport, VerifyError> {
    // Every record is read: an index snapshot, which stands in for the log on an open, does not
    // here.
    let store = FileStore::open_read_only_with(vfs, dir, false, true).map_err(|e| match e {
        OpenError::Missing { dir } => VerifyError::Missing(dir),
        OpenError::Corrupt { segment, offset, reason } => VerifyError::Damaged { file: segment, offset, reason },
        other => VerifyError::Open(other),
    })?;
    let recovery = store.recovery();
    Ok(VerifyReport {
        n_events: recovery.n_events,
        n_accounts: store.n_accounts(),
        n_segments: recovery.n_segments,
        skipped: recovery.skipped.clone(),
        format_version: recovery.format_version,
        head_chain: recovery.head_chain,
    })
}

/// The chain value after the frame that ends at `position` in the store in `dir`, read from
/// the frame headers alone (each header's own checksum is checked, nothing more): run
/// [`verify`] first, which checks every frame's chain, then compare this with a value recorded
/// earlier. Equal values for a version-2 log mean the log up to `position` is the history that
/// was recorded; a version-1 log's CRC32C chain proves nothing against a deliberate edit.
///
/// # Errors
/// [`VerifyError::Missing`]; [`VerifyError::Damaged`] when a header does not decode;
/// [`VerifyError::NoFrameEnd`] when no frame ends at `position` (it lies inside a batch, or
/// past the end of the log).
pub fn chain_at(dir: &Path, position: u64) -> Result<Chain, VerifyError> {
    if position == 0 {
        return Ok(Chain::START);
    }
    let vfs = StdVfs;
    let numbers = crate::recovery::segment_numbers(&vfs, dir).map_err(|e| match e {
        OpenError::Corrupt { segment, offset, reason } => VerifyError::Damaged { file: segment, offset, reason },
        other => VerifyError::Open(other),
    })?;
    if numbers.is_empty() {
        return Err(VerifyError::Missing(dir.to_path_buf()));
    }
    let mut last_end = 0;
    for n in numbers {
        let path = dir.join(crate::index::segment_name(n));
        let damaged = |offset: u64, reason: String| VerifyError::Damaged { file: path.clone(), offset, reason };
        let file = vfs.open_read(&path).map_err(|e| damaged(0, e.to_string()))?;
        let size = file.size().map_err(|e| damaged(0, e.to_string()))?;
        let mut head = [0u8; SEGMENT_HEADER_BYTES];
        read_exact_at(&*file, &mut head, 0).map_err(|e| damaged(0, e.to_string()))?;
        let header = SegmentHeader::decode(&head).map_err(|e| damaged(e.offset, e.reason))?;
        let header_len = frame_header_bytes(header.version);
        let mut at = SEGMENT_HEADER_BYTES as u64;
        let mut buf = vec![0u8; header_len];
        while at + header_len as u64 <= size {
            read_exact_at(&*file, &mut buf, at).map_err(|e| damaged(at, e.to_string()))?;
            let h = match FrameHeader::decode(&buf, header.version) {
                Ok(h) => h,
                Err(FrameHeaderError::Zero) => break,
                Err(e) => return Err(damaged(at, format!("frame header does not decode ({e:?})"))),
            };
            // Version 2 keeps the value after the frame in its header; version 1 keeps the
            // value before it, and the value after is the frame's own payload checksum.
            let chain = if header.version == FORMAT_VERSION_1 { Chain::crc(h.payload_crc) } else { h.link };
            last_end = h.first_position + u64::from(h.count) - 1;
            if last_end >= position {
                return if last_end == position {
                    Ok(chain)
                } else {
                    Err(VerifyError::NoFrameEnd { position, last_end })
                };
            }
            at += (header_len + h.payload_len as usize) as u64;
        }
    }
    Err(VerifyError::NoFrameEnd { position, last_end })
}

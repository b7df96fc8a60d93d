//! [`verify`]: a read-only check of a whole store — every checksum, the hash chain, gapless
//! positions, every validation rule and the head record — that names the file and byte offset
//! of any damage.

use std::path::{Path, PathBuf};

use crate::options::{OpenError, Skipped};
use crate::store::FileStore;

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
}

/// Checks the store in `dir` without changing it or taking its lock, so it runs beside a
/// writer: it reads up to the last complete batch (reporting what follows in
/// [`VerifyReport::skipped`]), with every check an open makes.
///
/// # Errors
/// [`VerifyError`].
pub fn verify(dir: &Path) -> Result<VerifyReport, VerifyError> {
    // Every record is read: an index snapshot, which stands in for the log on an open, does not
    // here.
    let store =
        FileStore::open_read_only_with(std::sync::Arc::new(crate::vfs::StdVfs), dir, false).map_err(|e| match e {
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
    })
}

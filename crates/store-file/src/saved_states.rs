//! [`SavedStates`]: the streams' validation states an index snapshot holds, left in the
//! snapshot file and decoded one account at a time, when an append, a preflight or the
//! replay of the log after the snapshot first touches that account. A writer's memory after
//! open then holds, per account, where its state lies, not the state (which keeps every
//! commitment and escalation key the account used, and so grows with its events).
//!
//! A save while the store runs replaces them by the states of the snapshot it wrote
//! (`snapshot::write`, noted from the bytes it sealed) and gives back each state held that has
//! not changed since the save's checkpoint (`FileStore::save_index_snapshot`): a writer then
//! holds only the states of accounts touched since the last save.
//!
//! Invariants: every account the snapshot covers has an entry; an entry's bytes are checked
//! against the CRC32C taken when the snapshot was loaded or written before they are decoded;
//! an account whose state the validation state holds is never read from here (the held state
//! is newer or the same); a state is given back only when it is the snapshot's (its stream
//! version the one at the snapshot's checkpoint).

use std::path::PathBuf;

use rapport_core::AccountId;
use rapport_core::backend::{KeyedMap, StreamState};

use crate::vfs::{ReadFile, read_exact_at};

/// Where one account's state lies in the snapshot file, and its checksum.
#[derive(Debug, Clone, Copy)]
pub(crate) struct At {
    offset: u64,
    len: u32,
    crc: u32,
}

impl At {
    /// A state of `len` bytes at byte `offset` of the file, with the CRC32C of its bytes.
    ///
    /// # Errors
    /// A state longer than a state may be.
    pub(crate) fn new(account: &AccountId, offset: u64, len: usize, crc: u32) -> Result<Self, String> {
        let len = u32::try_from(len).map_err(|_| format!("the state of account {account} is too large"))?;
        Ok(At { offset, len, crc })
    }
}

/// The states a loaded snapshot holds: see the module documentation.
pub(crate) struct SavedStates {
    path: PathBuf,
    /// The snapshot file as loaded; a later close replaces the file by a rename, and this
    /// handle still reads the one loaded.
    file: Box<dyn ReadFile>,
    at: KeyedMap<AccountId, At>,
}

impl std::fmt::Debug for SavedStates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedStates").field("path", &self.path).field("accounts", &self.at.len()).finish()
    }
}

impl SavedStates {
    /// The states `at` says the snapshot at `path`, opened as `file`, holds (the caller read
    /// and checked the file, and took each state's place and checksum as it went).
    pub(crate) fn new(path: PathBuf, file: Box<dyn ReadFile>, at: KeyedMap<AccountId, At>) -> Self {
        Self { path, file, at }
    }

    /// Reads the saved bytes of `account`'s state into `b` (in place of what it held),
    /// checked; false, leaving `b` as it was, if the snapshot holds none.
    ///
    /// # Errors
    /// The file cannot be read, or the bytes fail their checksum (named by file and byte).
    pub(crate) fn bytes_into(&self, account: &AccountId, b: &mut Vec<u8>) -> Result<bool, String> {
        let Some(at) = self.at.get(account) else { return Ok(false) };
        b.clear();
        b.resize(at.len as usize, 0);
        read_exact_at(&*self.file, b, at.offset)
            .map_err(|e| format!("read {} at byte {}: {e}", self.path.display(), at.offset))?;
        if crc32c::crc32c(b) != at.crc {
            return Err(format!(
                "{}: the validation state of account {account} at byte {} changed since it was loaded",
                self.path.display(),
                at.offset
            ));
        }
        Ok(true)
    }

    /// `account`'s state, decoded, if the snapshot holds one.
    ///
    /// # Errors
    /// As [`bytes_into`](Self::bytes_into), or bytes that do not decode.
    pub(crate) fn load(&self, account: &AccountId) -> Result<Option<StreamState>, String> {
        let mut b = Vec::new();
        if !self.bytes_into(account, &mut b)? {
            return Ok(None);
        }
        postcard::from_bytes(&b).map(Some).map_err(|e| {
            format!("{}: the validation state of account {account} does not decode: {e}", self.path.display())
        })
    }
}

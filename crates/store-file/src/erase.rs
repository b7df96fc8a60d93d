//! Erasing personal text (`docs/privacy.md`): the keys that sealed it destroyed by rewriting
//! the key file without them ([`crate::keys`]), under the append lock, so no append seals under
//! a key while it goes. The segments are not touched: their sealed bytes stay, the hash chain
//! holds, `verify` passes, and the text reads as erased.

use std::future::{Future, ready};

use rapport_core::erase::{EraseError, ErasingStore, Erasure, check_reason};
use rapport_core::personal::{key_month, key_month_start};
use rapport_core::{AccountId, ReadError, StorageError, Timestamp};

use crate::job::ToWriter;
use crate::keys::ErasureRecord;
use crate::store::FileStore;
use crate::sync::lock;

fn public(e: &ErasureRecord) -> Erasure {
    Erasure::new(
        e.at,
        e.account.clone(),
        (e.month_below != i32::MAX).then(|| key_month_start(e.month_below)),
        e.reason.clone(),
        e.keys.len() as u64,
    )
}

impl FileStore {
    fn erase_now(&self, account: Option<&AccountId>, month_below: i32, reason: &str) -> Result<Erasure, EraseError> {
        const OPERATION: &str = "erase personal text";
        check_reason(reason)?;
        if self.is_read_only() {
            return Err(EraseError::Unsupported("the store is open read-only".into()));
        }
        self.check_poison(OPERATION)?;
        let sh = &*self.shared;
        let version = sh.recovery.format_version;
        if version < crate::format::FORMAT_VERSION {
            return Err(EraseError::Unsupported(format!(
                "a format-{version} log keeps personal text in the clear, so it cannot be erased; `rapport upgrade` \
                 copies it into format {}, which seals it",
                crate::format::FORMAT_VERSION
            )));
        }
        // The append lock: no append decides, or seals under a key, while keys are destroyed.
        // Appends already decided may carry keys the writer has yet to write: wait for them.
        let _appends = lock(&sh.core);
        let (reply, written) = std::sync::mpsc::channel();
        if lock(&sh.sender).as_ref().is_some_and(|tx| tx.send(ToWriter::Barrier(reply)).is_ok()) {
            // No answer: the writer has stopped, and failed (poisoned) what it had.
            let _ = written.recv();
        }
        self.check_poison(OPERATION)?;
        if let Some(a) = account
            && !sh.index.read().unwrap_or_else(|p| p.into_inner()).streams.contains_key(a)
        {
            return Err(EraseError::UnknownAccount(a.clone()));
        }
        let mut keys = sh.keys.write().unwrap_or_else(|p| p.into_inner());
        let at = Timestamp::now();
        match keys.erase(&*sh.vfs, &sh.dir, account, month_below, at, reason) {
            Ok(record) => {
                tracing::info!(
                    account = account.map(AccountId::as_str),
                    keys = record.keys.len(),
                    "erased personal text"
                );
                Ok(public(&record))
            }
            Err(why) => {
                // The file on disk is the old one or the new one; which, only the next open
                // knows for sure. Nothing more is sealed or read with these keys until then.
                sh.poison(format!("{OPERATION}: {why}"));
                Err(EraseError::Storage(StorageError::new(OPERATION, why)))
            }
        }
    }
}

impl ErasingStore for FileStore {
    /// Runs on the calling thread: it waits for the appends already on their way to disk,
    /// then the key file is rewritten (its size is about 60 bytes a key) and synced, with new
    /// appends waiting meanwhile.
    fn erase(&self, account: &AccountId, reason: &str) -> impl Future<Output = Result<Erasure, EraseError>> + Send {
        ready(self.erase_now(Some(account), i32::MAX, reason))
    }

    fn erase_before(
        &self,
        before: Timestamp,
        reason: &str,
    ) -> impl Future<Output = Result<Erasure, EraseError>> + Send {
        ready(self.erase_now(None, key_month(before), reason))
    }

    fn erasures(&self) -> impl Future<Output = Result<Vec<Erasure>, ReadError>> + Send {
        let mut checked = self.check_poison("read the erasures").map_err(ReadError::from);
        if checked.is_ok() && self.keys_unread() {
            checked = self.reload_keys();
        }
        ready(checked.map(|()| {
            self.shared.keys.read().unwrap_or_else(|p| p.into_inner()).erasures().iter().map(public).collect()
        }))
    }
}

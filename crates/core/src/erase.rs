//! Erasing personal text ([`crate::personal`]): the [`ErasingStore`] contract. A store that
//! seals text destroys the keys that sealed it; the events, their positions, the hash chain
//! and every score stay as they were, and the text reads as [`TextState::Erased`] from then
//! on. What erasure covers, and what it cannot, is in `docs/privacy.md`.
//!
//! [`TextState::Erased`]: crate::TextState::Erased

use std::future::Future;

use thiserror::Error;

use crate::{AccountId, ReadError, StorageError, Store, Timestamp};

/// The longest reason an erasure records, in bytes.
pub const REASON_BYTES_MAX: usize = 256;

/// One erasure, as the store records it (never the erased text).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Erasure {
    /// When it was done.
    pub at: Timestamp,
    /// The account whose text it erased; `None` for a retention run, which erases every
    /// account's text of events that occurred before [`before`](Self::before).
    pub account: Option<AccountId>,
    /// Text of events that occurred before this instant was erased (the start of a key
    /// month); `None`: all of the account's text.
    pub before: Option<Timestamp>,
    /// Why, as the caller said.
    pub reason: String,
    /// How many keys it destroyed: one per account and month of `occurred_at` that had text.
    pub keys_destroyed: u64,
}

impl Erasure {
    /// An erasure record (for stores outside this crate).
    pub fn new(
        at: Timestamp,
        account: Option<AccountId>,
        before: Option<Timestamp>,
        reason: String,
        keys_destroyed: u64,
    ) -> Self {
        Self { at, account, before, reason, keys_destroyed }
    }
}

/// Why nothing was erased.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EraseError {
    /// The reason is empty, longer than [`REASON_BYTES_MAX`], or holds a control character.
    #[error("erasure reason {0}")]
    InvalidReason(String),
    /// The account has no events in this log.
    #[error("account {0} has no events in this log: nothing to erase")]
    UnknownAccount(AccountId),
    /// The store cannot erase: it keeps text in the clear (a file store of format 3 or
    /// earlier), or is read-only. Says what to do.
    #[error("{0}")]
    Unsupported(String),
    /// The store could not erase; nothing was erased (the keys are all still there).
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Checks an erasure's reason: 1 to [`REASON_BYTES_MAX`] bytes, no control characters. It is
/// kept for good, so it must name a request or a policy, not a person.
///
/// # Errors
/// [`EraseError::InvalidReason`].
pub fn check_reason(reason: &str) -> Result<(), EraseError> {
    if reason.is_empty() || reason.len() > REASON_BYTES_MAX {
        return Err(EraseError::InvalidReason(format!("is {} bytes; 1 to {REASON_BYTES_MAX} allowed", reason.len())));
    }
    if reason.chars().any(char::is_control) {
        return Err(EraseError::InvalidReason("holds a control character".into()));
    }
    Ok(())
}

/// A store that can erase personal text. Every store implements it; one that keeps text in
/// the clear on disk answers [`EraseError::Unsupported`].
pub trait ErasingStore: Store {
    /// Erases every personal text of `account` logged so far, durably, and records the
    /// erasure with `reason`. Events appended later are sealed under new keys.
    fn erase(&self, account: &AccountId, reason: &str) -> impl Future<Output = Result<Erasure, EraseError>> + Send;

    /// A retention run: erases the personal text of every event that occurred before the
    /// start of `before`'s month (keys are per month of `occurred_at`, so text is erased a
    /// whole month at a time), and records it with `reason`.
    fn erase_before(&self, before: Timestamp, reason: &str)
    -> impl Future<Output = Result<Erasure, EraseError>> + Send;

    /// Every erasure recorded, oldest first.
    fn erasures(&self) -> impl Future<Output = Result<Vec<Erasure>, ReadError>> + Send;
}

//! For store authors: what a [`Store`] implementation decides appends with, and
//! what it answers an importer's [`preflight`](crate::BackfillStore::preflight) from.
//!
//! - [`LogState`] is the shared decision logic (idempotency, expected versions, the admission
//!   and validation rules, version assignment); every store decides with it, so the contract
//!   is implemented once.
//! - [`StreamState`] is one stream's validation state, which a store may save instead of
//!   replaying the stream ([`replayed_stream_state`] replays it).
//! - [`KeyedMap`] and [`KeyedSet`] are the maps to key by outside input (ids, account names):
//!   hashed by a fast hasher under a random per-process key.
//! - [`write_json_string`] writes a JSON string as serde_json and the canonical writers do.
//!
//! Applications use [`Ledger`](crate::Ledger) and the store types, never these.

pub use crate::hash::{KeyedMap, KeyedSet, KeyedState};
pub use crate::json::write_json_string;
pub use crate::log_state::{Admitted, LogState, LoggedIds, PreparedAppend};
pub use crate::validate::{Admission, StreamState};

use crate::id::AccountId;
pub use crate::store::scan_pages;
use crate::store::{ReadError, Store};

/// The validation state of `account`'s committed stream, replayed from its events; `None` when
/// it has none. For a store with no saved state for a stream.
///
/// # Errors
/// The first [`ReadError`] of `read_stream`.
pub async fn replayed_stream_state<S: Store>(store: &S, account: &AccountId) -> Result<Option<StreamState>, ReadError> {
    let mut state: Option<StreamState> = None;
    crate::Ledger::new(store)
        .for_each_in_stream(account, |e| {
            // The store validated these when they were appended: apply them as they are.
            let _ = state.get_or_insert_with(StreamState::default).apply(&e.to_new_event());
        })
        .await?;
    Ok(state)
}

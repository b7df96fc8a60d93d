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
//!
//! Applications use [`Ledger`](crate::Ledger) and the store types, never these.

pub use crate::hash::{KeyedMap, KeyedSet, KeyedState};
pub use crate::log_state::{Admitted, LogState, PreparedAppend};
pub use crate::validate::{Admission, StreamState};

use crate::id::AccountId;
use crate::store::{ReadError, Store};
use crate::{Envelope, EnvelopeRef, Position};

/// A [`Store::scan`] made of owned pages: lends `visit` every event of the pages `page` reads
/// (each from the position given), in order, up to `head`; returns the position after the last
/// one visited. The default scan reads its pages with [`Store::read_all`]; a store may read
/// them otherwise (the PostgreSQL store leaves the personal text sealed).
///
/// # Errors
/// The first [`ReadError`] of `page`; `visit` has seen every event before it.
pub async fn scan_pages<F, Fut>(
    head: Position,
    from: Position,
    mut page: F,
    visit: &mut (dyn FnMut(&EnvelopeRef<'_>) + Send),
) -> Result<Position, ReadError>
where
    F: FnMut(Position) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Envelope>, ReadError>>,
{
    let mut next = Position(from.0.max(1));
    while next <= head {
        let events = page(next).await?;
        if events.is_empty() {
            break;
        }
        for e in events.iter().take_while(|e| e.position <= head) {
            visit(&e.view());
            next = e.position.next();
        }
    }
    Ok(next)
}

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

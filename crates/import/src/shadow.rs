//! The shadow: the validation state of the streams an import touches, seeded from the store
//! (a [`preflight`](rapport_core::BackfillStore::preflight) per chunk), against which the whole
//! input is validated before anything is appended.

use rapport_core::backend::{Admission, KeyedSet, LogState};
use rapport_core::{
    AccountId, AppendError, BackfillStore, EventId, ExpectedVersion, Ledger, NewEvent, Position, ReadError, Timestamp,
};

use crate::lines::{Buffered, Lines};

/// What the store answered about a chunk (see [`Shadow::ask`]).
pub(crate) struct Answers {
    accounts: Vec<AccountId>,
    states: Vec<Option<rapport_core::validate::StreamState>>,
    ids: Vec<EventId>,
    found: Vec<Option<u64>>,
}

/// The store's answers about a chunk, being asked on a thread of their own; `None` when there
/// was nothing to ask.
pub(crate) type Asked<'scope> = Option<std::thread::ScopedJoinHandle<'scope, Result<Answers, ReadError>>>;

/// The validation state of the streams an import touches, seeded from the store.
pub(crate) struct Shadow {
    state: LogState,
    /// Accounts whose stream state the store has been asked for; looked up once per event, so
    /// hashed by the keys' precomputed hash rather than SipHash.
    loaded: KeyedSet<AccountId>,
    /// What is known of the event at each shadow position (position 1 first).
    known: Vec<Known>,
    /// The store had no events when the import began.
    store_empty: bool,
    future_skew: std::time::Duration,
    /// The newest schema version the store writes
    /// ([`Store::schema_version_max`](rapport_core::Store::schema_version_max)): it refuses an
    /// event needing a later one (metadata, a newer type), so pass 1 refuses its line first.
    schema_version_max: u32,
}

/// What the shadow knows of the event holding one of its positions, to tell a later line with
/// the same id a duplicate from a conflict: that is decided by content, and fingerprints are
/// keyed hashes (`NewEvent::fingerprint`), paid only when the event itself is not at hand.
#[derive(Debug, Clone, Copy)]
enum Known {
    /// A logged event (the store's fingerprint of it), or one of this import's that the buffer
    /// no longer holds.
    Fingerprint(u64),
    /// One of this import's events, by where it is kept: event `at` of the buffer's chunk
    /// `chunk`, or of the chunk being checked, which becomes the buffer's next chunk. It is
    /// compared with whole. (Not by its line: a mapped record's events share one, and with
    /// `sort_by_time` the chunks are not in line order.)
    Held { chunk: u32, at: u32 },
}

/// The event [`Known::Held`] names: in `chunks` (the buffer's), or in `then`, the chunk after
/// them.
fn held<'a>(chunks: &'a [Lines], then: Option<&'a Lines>, chunk: u32, at: u32) -> Option<&'a NewEvent> {
    let c = match chunks.get(chunk as usize) {
        Some(c) => c,
        None if chunk as usize == chunks.len() => then?,
        None => return None,
    };
    c.events.get(at as usize)
}

impl Shadow {
    /// A shadow over `state` (empty, with room reserved), for a store that `store_empty`
    /// says held no events when the import began.
    pub(crate) fn new(
        state: LogState,
        store_empty: bool,
        future_skew: std::time::Duration,
        schema_version_max: u32,
    ) -> Self {
        Self { state, loaded: KeyedSet::default(), known: Vec::new(), store_empty, future_skew, schema_version_max }
    }

    /// Asks the store, on a thread of its own, what it knows about `batch`: the committed state
    /// of the streams it is first to touch, and which of its ids are logged, with the logged
    /// event's fingerprint (to tell a duplicate from a conflicting reuse of the id). One
    /// question of each kind per chunk, however the chunk is then admitted; none into a store
    /// that was empty when the import began. [`install`](Self::install) the answers before
    /// admitting the chunk.
    pub(crate) fn ask<'scope, 'env, S: BackfillStore>(
        &mut self,
        scope: &'scope std::thread::Scope<'scope, 'env>,
        ledger: &'env Ledger<S>,
        batch: &[NewEvent],
    ) -> Asked<'scope> {
        if self.store_empty || batch.is_empty() {
            return None;
        }
        let mut accounts: Vec<AccountId> = Vec::new();
        for e in batch {
            if self.loaded.insert(e.account.clone()) {
                accounts.push(e.account.clone());
            }
        }
        // Ids the shadow holds now are known; ids of chunks still in flight are asked again,
        // harmlessly (installing skips what is already recorded).
        let ids: Vec<EventId> = batch.iter().map(|e| e.id).filter(|id| self.state.id_position(id).is_none()).collect();
        Some(scope.spawn(move || {
            // A chunk holds at most CHECK_CHUNK events, far below a call's limit: one call.
            debug_assert!(accounts.len() <= rapport_core::READ_LIMIT_MAX && ids.len() <= rapport_core::READ_LIMIT_MAX);
            let answer = pollster::block_on(ledger.store().preflight(&accounts, &ids))?;
            assert_eq!(
                (answer.states.len(), answer.logged.len()),
                (accounts.len(), ids.len()),
                "a store answers a preflight with one entry per account and per id"
            );
            Ok(Answers { accounts, states: answer.states, ids, found: answer.logged })
        }))
    }

    /// Records what the store answered about a chunk, before the chunk is admitted.
    pub(crate) fn install(&mut self, answers: Answers) {
        for (account, state) in answers.accounts.into_iter().zip(answers.states) {
            if let Some(state) = state {
                self.state.insert_stream(account, state);
            }
        }
        for (id, fingerprint) in answers.ids.into_iter().zip(answers.found) {
            if let Some(fingerprint) = fingerprint {
                let p = Position(self.known.len() as u64 + 1);
                if self.state.note_logged_id(id, p) {
                    self.known.push(Known::Fingerprint(fingerprint));
                }
            }
        }
    }

    /// Turns every reference to an event of `buffer` (or of `last`, the chunk that overflowed
    /// it) into that event's fingerprint, before the buffer is dropped.
    pub(crate) fn forget_buffer(&mut self, buffer: &Buffered, last: &Lines) {
        for k in self.known.iter_mut() {
            if let Known::Held { chunk, at } = *k {
                // Every event `Held` names was kept: in the buffer, or in `last`.
                let e = held(&buffer.chunks, Some(last), chunk, at)
                    .unwrap_or_else(|| unreachable!("event {at} of chunk {chunk} of the shadow is in no kept chunk"));
                *k = Known::Fingerprint(e.fingerprint());
            }
        }
    }

    /// Checks `batch` (part of a chunk whose answers are installed) as one batch and records
    /// it; on refusal nothing is recorded and the reason names the first bad event. `buffer`
    /// holds the events kept so far, `kept` those kept so far of the chunk being checked event
    /// by event: where an earlier event with a repeated id is found. Once admitted, the batch's
    /// events are to be kept as the buffer's next chunk from its event `at` on (the whole
    /// chunk, `at` 0; or pushed onto `kept`, `at` its length).
    pub(crate) fn admit(
        &mut self,
        batch: &[NewEvent],
        at: usize,
        buffer: Option<&Buffered>,
        kept: Option<&Lines>,
    ) -> Result<(), String> {
        if let Some(e) = batch.iter().find(|e| e.min_schema_version() > self.schema_version_max) {
            let what = if e.meta.is_empty() {
                "type: the store (a file store of format 1 or 2) cannot hold this type"
            } else {
                "metadata: the store (a file store of format 1 or 2) holds none"
            };
            return Err(format!("event {}: {what}; `rapport upgrade` makes a copy that can", e.id));
        }
        let next = Position(self.known.len() as u64 + 1);
        let known = &self.known;
        let admission = Admission { recorded_at: Timestamp::now(), future_skew: self.future_skew };
        let decided = self.state.admit(batch, ExpectedVersion::Any, next, &admission, |p, x| {
            match known.get((p.0 - 1) as usize) {
                // A logged event whose text was erased answers with the erased fingerprint.
                Some(Known::Fingerprint(f)) => *f == x.fingerprint() || *f == x.fingerprint_erased(),
                Some(&Known::Held { chunk, at }) => {
                    let chunks = buffer.map_or(&[][..], |b| &b.chunks[..]);
                    let earlier = held(chunks, kept, chunk, at);
                    assert!(
                        earlier.is_some(),
                        "event {at} of chunk {chunk} of the shadow is neither buffered nor in this chunk"
                    );
                    earlier.is_some_and(|e| e.same_content(x))
                }
                None => false,
            }
        });
        match decided {
            Ok(admitted) => {
                // The new events take the next shadow positions, in batch order: by where the
                // buffer will keep them, else by fingerprint.
                if let Some(buffer) = buffer {
                    let chunk = buffer.chunks.len() as u32;
                    self.known.extend(admitted.fresh.iter().map(|&(k, _)| Known::Held { chunk, at: (at + k) as u32 }));
                } else {
                    self.known.extend(admitted.fresh.iter().map(|&(k, _)| Known::Fingerprint(batch[k].fingerprint())));
                }
                Ok(())
            }
            Err(AppendError::Invalid(v)) => Err(format!("{}: {v}", v.field())),
            Err(AppendError::IdConflict { id, .. }) => {
                Err(format!("id: event {id} already exists with different content"))
            }
            Err(other) => Err(other.to_string()),
        }
    }
}

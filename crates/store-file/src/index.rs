//! What the store knows of its log in memory: the validation state and appends in flight
//! ([`Core`], under the append lock) and where every record lies ([`Index`], shared with
//! readers). Built by recovery, kept current by appends and the writer thread.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use rapport_core::backend::{KeyedMap, LogState};
use rapport_core::{AccountId, EventId, NewEvent, Position, StreamVersion, Timestamp};

use crate::id_file::IdFile;
use crate::offsets::Offsets;
use crate::positions::Positions;
use crate::saved_states::SavedStates;

pub(crate) struct Core {
    /// The validation state; its ids are those logged since the id file was written (all of
    /// them when there is none).
    pub(crate) state: LogState,
    /// The ids the index snapshot's id file holds (a writer opened from a snapshot).
    pub(crate) logged_ids: Option<Arc<IdFile>>,
    /// The streams' states the index snapshot holds, not yet in `state` (a writer opened
    /// from a snapshot): an account's is moved into `state` when first touched.
    pub(crate) saved_states: Option<SavedStates>,
    /// Appends handed to the writer and not yet committed, oldest first: what a duplicate of
    /// one of their events is compared with (committed events are read back from disk).
    pub(crate) in_flight: std::collections::VecDeque<InFlight>,
    pub(crate) next_position: u64,
    pub(crate) last_recorded: Timestamp,
}

impl Core {
    /// Where the event with each of `ids` is logged: in the validation state, or in the id
    /// file, whose filter is asked about them all first ([`IdFile::may_hold_each`]).
    ///
    /// # Errors
    /// The id file cannot be read, or a block of it fails its checksum.
    pub(crate) fn logged_at_each(&self, ids: &[EventId]) -> Result<Vec<Option<Position>>, String> {
        let mut maybe = Vec::new();
        if let Some(file) = &self.logged_ids {
            file.may_hold_each(ids.iter(), &mut maybe);
        }
        let in_file = |i: usize, id| match &self.logged_ids {
            Some(file) if maybe[i] => file.find(id),
            _ => Ok(None),
        };
        ids.iter()
            .enumerate()
            .map(|(i, id)| self.state.id_position(id).map_or_else(|| in_file(i, id), |p| Ok(Some(p))))
            .collect()
    }

    /// Moves the saved state of each of `accounts` that the validation state does not hold
    /// yet into it, so that deciding an append or replaying an event sees the stream as it is.
    ///
    /// # Errors
    /// A saved state that cannot be read, fails its checksum or does not decode.
    pub(crate) fn load_streams<'a>(&mut self, accounts: impl Iterator<Item = &'a AccountId>) -> Result<(), String> {
        let Some(saved) = &self.saved_states else { return Ok(()) };
        for account in accounts {
            if self.state.stream(account).is_none()
                && let Some(stream) = saved.load(account)?
            {
                self.state.insert_stream(account.clone(), stream);
            }
        }
        Ok(())
    }

    /// Tells the validation state about every id of `ids` that only the id file holds, so
    /// that deciding an append finds them as duplicates or conflicts.
    ///
    /// # Errors
    /// As [`logged_at_each`](Self::logged_at_each).
    pub(crate) fn note_logged<'a>(&mut self, ids: impl Iterator<Item = &'a EventId> + Clone) -> Result<(), String> {
        let Some(file) = &self.logged_ids else { return Ok(()) };
        // The filter first: most new ids stop there, without a probe into the state's ids.
        let mut maybe = Vec::new();
        file.may_hold_each(ids.clone(), &mut maybe);
        for (id, _) in ids.zip(maybe).filter(|(_, maybe)| *maybe) {
            if self.state.id_position(id).is_none()
                && let Some(p) = file.find(id)?
            {
                self.state.note_logged_id(*id, p);
            }
        }
        Ok(())
    }
}

/// An append on its way to disk: its first position and its events.
pub(crate) struct InFlight {
    pub(crate) first: u64,
    pub(crate) events: Arc<Vec<(NewEvent, StreamVersion)>>,
}

#[derive(Default)]
pub(crate) struct Index {
    pub(crate) segments: Vec<PathBuf>,
    /// Where the records lie, sparsely.
    pub(crate) offsets: Offsets,
    /// Each account's positions, ascending (compactly: `positions.rs`).
    pub(crate) streams: KeyedMap<AccountId, Positions>,
    pub(crate) accounts: BTreeMap<AccountId, u64>,
    /// Every account by its stable hash, so decoding shares one `AccountId` per account. The
    /// stable hash is public, so anyone can aim texts at chosen values: the map is seeded.
    pub(crate) interned: KeyedMap<u64, AccountId>,
}

impl Index {
    pub(crate) fn note_account(&mut self, account: &AccountId, position: u64) {
        match self.streams.get_mut(account) {
            Some(s) => s.push(position),
            None => {
                let mut positions = Positions::default();
                positions.push(position);
                self.streams.insert(account.clone(), positions);
                self.accounts.insert(account.clone(), position);
                self.interned.entry(account.stable_hash()).or_insert_with(|| account.clone());
            }
        }
    }

    pub(crate) fn intern(&self, s: &str) -> Result<AccountId, String> {
        match self.interned.get(&rapport_core::id::stable_hash(s)) {
            Some(a) if a.as_str() == s => Ok(a.clone()),
            _ => AccountId::new(s).map_err(|e| e.to_string()),
        }
    }
}

/// The file name of segment `n`.
pub fn segment_name(n: u64) -> String {
    format!("seg-{n:010}.rpl")
}

/// The number of segment file `name`, if it is one.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?.strip_suffix(".rpl")?.parse().ok()
}

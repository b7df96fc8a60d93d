//! [`LogState`]: the in-memory state a store keeps to decide appends — per-stream validation
//! state and the event-id index — so that every store applies the contract the same way.

use crate::hash::KeyedMap;

mod ids;
use ids::IdIndex;

use crate::event::NewEvent;
use crate::id::{AccountId, EventId, Position, StreamVersion};
use crate::store::{AppendError, BATCH_EVENTS_MAX, ExpectedVersion};
use crate::validate::{Admission, StreamState, StreamUndo, check_event};

/// An append that [`LogState::prepare`] accepted: the events to write, in order, with the
/// versions and positions they get, and the duplicates it dropped.
#[derive(Debug, Default)]
pub struct PreparedAppend {
    /// The events to write, each with its stream version; positions follow on from the
    /// `next` position given to `prepare`.
    pub events: Vec<(NewEvent, StreamVersion)>,
    /// Ids of duplicates, which are not written.
    pub duplicates: Vec<EventId>,
}

/// What [`LogState::admit`] decided.
#[derive(Debug, Default)]
pub struct Admitted {
    /// The batch index and stream version of each new event, in order; they take the
    /// positions from `next` on.
    pub fresh: Vec<(usize, StreamVersion)>,
    /// Ids of duplicates (of logged events, or of earlier events in the batch).
    pub duplicates: Vec<EventId>,
}

#[derive(Debug)]
struct Decided {
    /// Batch index and stream version of each new event.
    fresh: Vec<(usize, StreamVersion)>,
    duplicates: Vec<EventId>,
    undo: Vec<Undo>,
}

#[derive(Debug)]
enum Undo {
    Id(EventId),
    Stream(AccountId, StreamUndo),
}

/// The ids of the events a [`LogState`] has recorded, with their positions, taken out of it
/// ([`LogState::take_ids`]): a store replaying its log records each event's id here, on a
/// thread of its own, while the streams' rules run on another
/// ([`LogState::replay_stream`]), then puts them back ([`LogState::put_ids`]).
#[derive(Debug, Default)]
pub struct LoggedIds(IdIndex);

impl LoggedIds {
    /// Records that the logged event at `position` holds `id`, unless an event recorded
    /// earlier holds it: then records nothing and returns that event's position (a log that
    /// holds an id twice is damaged).
    ///
    /// # Errors
    /// The position `id` is already recorded at.
    pub fn insert_new(&mut self, id: EventId, position: Position) -> Result<(), Position> {
        self.0.insert_new(id, position)
    }
}

/// Per-log state for deciding appends.
///
/// A store holds one behind its write lock. [`prepare`](Self::prepare) decides an append and
/// records it; a store that cannot persist a prepared append poisons itself (its state no
/// longer matches the log) and must be reopened.
///
/// A store that saves its state beside its log saves each stream's [`StreamState`] (which is
/// serde-serialisable; [`streams`](Self::streams), [`insert_stream`](Self::insert_stream)) and
/// its ids ([`ids`](Self::ids), [`forget_ids_through`](Self::forget_ids_through),
/// [`note_logged_id`](Self::note_logged_id)) in forms of
/// its own, rather than this whole state.
#[derive(Debug, Default)]
pub struct LogState {
    streams: KeyedMap<AccountId, StreamState>,
    ids: IdIndex,
}

impl LogState {
    /// An empty log's state.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty log's state with room for about `n_events` events.
    pub fn with_capacity(n_events: usize) -> Self {
        let mut s = Self::default();
        s.ids.reserve(n_events);
        s
    }

    /// Makes room for about `n_events` more events in the id index.
    pub fn reserve(&mut self, n_events: usize) {
        self.ids.reserve(n_events);
    }

    /// The version of `account`'s last event; 0 when it has none.
    pub fn stream_version(&self, account: &AccountId) -> StreamVersion {
        self.streams.get(account).map(StreamState::version).unwrap_or_default()
    }

    /// The validation state of `account`'s stream, if it has events.
    pub fn stream(&self, account: &AccountId) -> Option<&StreamState> {
        self.streams.get(account)
    }

    /// Every stream's validation state held, in no order (for a store that saves them one by
    /// one).
    pub fn streams(&self) -> impl Iterator<Item = (&AccountId, &StreamState)> {
        self.streams.iter()
    }

    /// Installs a stream's validation state from a snapshot (a store that keeps snapshots
    /// instead of replaying). The snapshot's events are not in the id index: the store must
    /// find duplicates of stored events itself before calling [`prepare`](Self::prepare).
    pub fn insert_stream(&mut self, account: AccountId, state: StreamState) {
        self.streams.insert(account, state);
    }

    /// Gives back `account`'s stream state (a store that saved it, and loads it again with
    /// [`insert_stream`](Self::insert_stream) before the stream is next validated against).
    pub fn forget_stream(&mut self, account: &AccountId) -> Option<StreamState> {
        self.streams.remove(account)
    }

    /// Records that a logged event holds `id`, at `position`, without touching any stream (its
    /// stream's state comes from [`insert_stream`](Self::insert_stream), or is not tracked), so
    /// that later batches find the id as a duplicate or a conflict. Returns false, changing
    /// nothing, if the id is already recorded.
    pub fn note_logged_id(&mut self, id: EventId, position: Position) -> bool {
        self.ids.insert_new(id, position).is_ok()
    }

    /// Every recorded id with its position, in no order, kept: for a store that writes them
    /// out while appends go on, then [`forget_ids_through`](Self::forget_ids_through) the
    /// position it wrote them for.
    pub fn ids(&self) -> Vec<(EventId, Position)> {
        self.ids.all()
    }

    /// Forgets the recorded ids at positions up to `through` (a store keeps them elsewhere
    /// now, see [`note_logged_id`](Self::note_logged_id)); later ones stay.
    pub fn forget_ids_through(&mut self, through: Position) {
        self.ids.forget_through(through);
    }

    /// The position of the event with id `id`, if this state has recorded one.
    pub fn id_position(&self, id: &EventId) -> Option<Position> {
        self.ids.get(id)
    }

    /// How many accounts have events.
    pub fn n_accounts(&self) -> usize {
        self.streams.len()
    }

    /// Records an event that is already in the log (rebuilding state on open). Validation is
    /// re-run, so a log that breaks the rules is reported rather than trusted.
    ///
    /// # Errors
    /// The rule the stored event breaks, or an id already seen.
    pub fn replay(&mut self, e: &NewEvent, position: Position) -> Result<StreamVersion, AppendError> {
        if self.ids.insert_new(e.id, position).is_err() {
            return Err(AppendError::IdConflict { account: e.account.clone(), id: e.id });
        }
        self.replay_stream(e)
    }

    /// [`replay`](Self::replay) without the id: re-runs `e`'s stream's rules and applies it,
    /// for a store that records the replayed ids itself, in the ids it took out of this state
    /// ([`take_ids`](Self::take_ids)) to record them on another thread.
    ///
    /// # Errors
    /// The rule the stored event breaks.
    pub fn replay_stream(&mut self, e: &NewEvent) -> Result<StreamVersion, AppendError> {
        let stream = self.streams.entry(e.account.clone()).or_default();
        stream.check_and_apply(e)?;
        Ok(stream.version())
    }

    /// Takes the recorded ids out of this state, leaving none, for a store that records the ids
    /// of a replay apart from its streams' rules ([`replay_stream`](Self::replay_stream));
    /// [`put_ids`](Self::put_ids) puts them back.
    pub fn take_ids(&mut self) -> LoggedIds {
        LoggedIds(std::mem::take(&mut self.ids))
    }

    /// Puts back the ids [`take_ids`](Self::take_ids) took, with what was recorded in them since;
    /// any recorded in this state meanwhile are dropped.
    pub fn put_ids(&mut self, ids: LoggedIds) {
        self.ids = ids.0;
    }

    /// Decides an append of `batch` whose first new event would get position `next`.
    ///
    /// `same_content(position, event)` tells whether the logged event at `position` holds the
    /// same content as `event`; it is asked only for ids already in the log before this batch.
    /// New events (not duplicates) must also pass `admission`'s rules.
    ///
    /// On success the state already includes the batch.
    ///
    /// # Errors
    /// Any contract violation; the state is then unchanged.
    pub fn prepare(
        &mut self,
        batch: Vec<NewEvent>,
        expected: ExpectedVersion,
        next: Position,
        admission: &Admission,
        same_content: impl FnMut(Position, &NewEvent) -> bool,
    ) -> Result<PreparedAppend, AppendError> {
        let decided = self.decide(&batch, expected, next, admission, same_content)?;
        let mut events = Vec::with_capacity(decided.fresh.len());
        let mut fresh = decided.fresh.iter().peekable();
        for (k, e) in batch.into_iter().enumerate() {
            if let Some(&&(at, version)) = fresh.peek()
                && at == k
            {
                events.push((e, version));
                fresh.next();
            }
        }
        Ok(PreparedAppend { events, duplicates: decided.duplicates })
    }

    /// Decides `batch` like [`prepare`](Self::prepare) without taking it: for a caller that
    /// validates a copy of the log (an importer checking a whole file before appending any of
    /// it). On success the state includes the batch, and the result lists the new events.
    ///
    /// # Errors
    /// Any contract violation; the state is then unchanged.
    pub fn admit(
        &mut self,
        batch: &[NewEvent],
        expected: ExpectedVersion,
        next: Position,
        admission: &Admission,
        same_content: impl FnMut(Position, &NewEvent) -> bool,
    ) -> Result<Admitted, AppendError> {
        let decided = self.decide(batch, expected, next, admission, same_content)?;
        Ok(Admitted { fresh: decided.fresh, duplicates: decided.duplicates })
    }

    fn decide(
        &mut self,
        batch: &[NewEvent],
        expected: ExpectedVersion,
        next: Position,
        admission: &Admission,
        mut same_content: impl FnMut(Position, &NewEvent) -> bool,
    ) -> Result<Decided, AppendError> {
        if batch.len() > BATCH_EVENTS_MAX {
            return Err(AppendError::BatchTooLarge { len: batch.len(), max: BATCH_EVENTS_MAX });
        }
        // Undo holds an id and a stream step for each new event: reserved up front, since
        // growing it by doubling copied it once a batch.
        let mut out = Decided {
            fresh: Vec::with_capacity(batch.len()),
            duplicates: Vec::new(),
            undo: Vec::with_capacity(2 * batch.len()),
        };
        match self.decide_into(batch, expected, next, admission, &mut same_content, &mut out) {
            Ok(()) => Ok(out),
            Err(e) => {
                self.undo(out.undo);
                Err(e)
            }
        }
    }

    fn decide_into(
        &mut self,
        batch: &[NewEvent],
        expected: ExpectedVersion,
        next: Position,
        admission: &Admission,
        same_content: &mut impl FnMut(Position, &NewEvent) -> bool,
        out: &mut Decided,
    ) -> Result<(), AppendError> {
        // Pass 1: stateless rules and idempotency. New ids are reserved right away, with the
        // position they will get, so repeats inside the batch are found too.
        //
        // In a large log every index probe and insert is a cache miss. They run in a loop of
        // their own, with nothing else in its body, so the CPU overlaps the misses of many
        // events (the stateless checks ran first, in their own loop). Errors are still
        // reported for the first faulty event in batch order.
        let valid = match batch.iter().position(|e| check_event(e).is_err()) {
            Some(k) => k,
            None => batch.len(),
        };
        let mut fresh: Vec<usize> = Vec::with_capacity(valid);
        // For each event before `valid`: `None` if it is new, else the position its id holds.
        let mut seen: Vec<Option<Position>> = Vec::with_capacity(valid);
        for (k, e) in batch[..valid].iter().enumerate() {
            match self.ids.insert_new(e.id, Position(next.0 + fresh.len() as u64)) {
                Err(at) => seen.push(Some(at)),
                Ok(()) => {
                    fresh.push(k);
                    seen.push(None);
                }
            }
        }
        out.undo.extend(fresh.iter().map(|&k| Undo::Id(batch[k].id)));
        for (e, seen) in batch[..valid].iter().zip(seen) {
            let Some(p) = seen else {
                continue;
            };
            // A repeat of an earlier event of this batch holds a position this batch assigned.
            let earlier = p.0.checked_sub(next.0).and_then(|i| fresh.get(i as usize)).map(|&i| &batch[i]);
            let same = match earlier {
                Some(earlier) if earlier.id == e.id => earlier.same_content(e),
                _ => same_content(p, e),
            };
            if !same {
                return Err(AppendError::IdConflict { account: e.account.clone(), id: e.id });
            }
            out.duplicates.push(e.id);
        }
        if valid < batch.len() {
            check_event(&batch[valid])?;
        }
        let Some(&first) = fresh.first() else {
            return Ok(());
        };
        let first = &batch[first];
        // Pass 2: the expected version.
        if expected != ExpectedVersion::Any {
            if let Some(other) = fresh.iter().map(|&k| &batch[k]).find(|e| e.account != first.account) {
                return Err(AppendError::MixedAccounts { first: first.account.clone(), second: other.account.clone() });
            }
            let actual = self.stream_version(&first.account);
            let ok = match expected {
                ExpectedVersion::Any => true,
                ExpectedVersion::NoStream => actual == StreamVersion(0),
                ExpectedVersion::Exact(v) => actual == v,
            };
            if !ok {
                return Err(AppendError::WrongExpectedVersion { account: first.account.clone(), expected, actual });
            }
        }
        // Pass 3: admission and stateful rules, in batch order, recording each step so it can
        // be undone. Admission applies to new events only: a duplicate was admitted when it
        // was logged, perhaps under looser limits, and retrying it must still succeed.
        for k in fresh {
            let e = &batch[k];
            admission.check(e)?;
            let stream = match self.streams.get_mut(&e.account) {
                Some(stream) => stream,
                None => self.streams.entry(e.account.clone()).or_default(),
            };
            stream.check(e)?;
            let before = stream.version();
            let undo = stream.apply(e);
            let version = stream.version();
            debug_assert_eq!(version, before.next(), "an event takes its stream's next version");
            out.undo.push(Undo::Stream(e.account.clone(), undo));
            out.fresh.push((k, version));
        }
        debug_assert_eq!(
            out.fresh.len() + out.duplicates.len(),
            batch.len(),
            "every event of a decided batch is new or a duplicate"
        );
        Ok(())
    }

    fn undo(&mut self, undo: Vec<Undo>) {
        for undo in undo.into_iter().rev() {
            match undo {
                Undo::Id(id) => self.ids.remove(&id),
                Undo::Stream(account, undo) => {
                    let now_empty = match self.streams.get_mut(&account) {
                        Some(stream) => {
                            stream.undo(undo);
                            stream.version() == StreamVersion(0)
                        }
                        None => false,
                    };
                    if now_empty {
                        self.streams.remove(&account);
                    }
                }
            }
        }
    }
}

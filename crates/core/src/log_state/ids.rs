//! [`IdIndex`]: which event ids the log holds, and at what position.
//!
//! A store that keeps most of its ids elsewhere (the file store's id file) holds here only the
//! ids logged since it last wrote them out, and tells this index about the others it finds for
//! a batch ([`LogState::note_logged_id`](super::LogState::note_logged_id)).
//!
//! The ids and positions sit in a vector, in the order recorded, and a hash table of `u32`
//! indexes into it finds them by id (keyed, as [`KeyedMap`](crate::hash::KeyedMap) is). A map of
//! id to position would hold each 24-byte entry in a table twice the size it needs at worst
//! (its buckets double); here only the 4-byte indexes do, which about halves the memory of a
//! million ids (BENCHMARKS.md, "Key material on disk").

use std::hash::BuildHasher;

use hashbrown::HashTable;

use crate::hash::KeyedState;
use crate::id::{EventId, Position};

/// The id index of a log: see the module documentation.
#[derive(Default)]
pub(crate) struct IdIndex {
    /// The ids recorded, with their positions; a removal moves the last into the gap.
    entries: Vec<(EventId, Position)>,
    /// Each entry's index in `entries`, by the entry's id.
    table: HashTable<u32>,
    hasher: KeyedState,
}

impl std::fmt::Debug for IdIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdIndex").field("ids", &self.entries.len()).finish()
    }
}

/// An index into the entries as the table keeps it. The entries are 24 bytes each, so memory
/// gives out long before `u32::MAX` of them.
fn slot(i: usize) -> u32 {
    u32::try_from(i).unwrap_or_else(|_| panic!("{i} ids in memory: more than an id index holds"))
}

impl IdIndex {
    fn hash(&self, id: &EventId) -> u64 {
        self.hasher.hash_one(id)
    }

    /// The position of the event with `id`, if recorded.
    pub(crate) fn get(&self, id: &EventId) -> Option<Position> {
        let entries = &self.entries;
        self.table.find(self.hash(id), |&i| entries[i as usize].0 == *id).map(|&i| entries[i as usize].1)
    }

    /// Records `id` at `position` unless it is recorded already; then returns where.
    pub(crate) fn insert_new(&mut self, id: EventId, position: Position) -> Result<(), Position> {
        let hash = self.hash(&id);
        let (entries, hasher) = (&self.entries, &self.hasher);
        match self.table.entry(hash, |&i| entries[i as usize].0 == id, |&i| hasher.hash_one(entries[i as usize].0)) {
            hashbrown::hash_table::Entry::Occupied(at) => Err(entries[*at.get() as usize].1),
            hashbrown::hash_table::Entry::Vacant(room) => {
                room.insert(slot(entries.len()));
                self.entries.push((id, position));
                Ok(())
            }
        }
    }

    /// Takes back an [`insert_new`](Self::insert_new).
    pub(crate) fn remove(&mut self, id: &EventId) {
        let entries = &self.entries;
        let Ok(found) = self.table.find_entry(self.hash(id), |&i| entries[i as usize].0 == *id) else {
            return;
        };
        let (i, _) = found.remove();
        let i = i as usize;
        let last = self.entries.len() - 1;
        self.entries.swap_remove(i);
        if i != last {
            // The last entry moved into the gap: its table slot follows it.
            let moved = self.hash(&self.entries[i].0);
            if let Some(at) = self.table.find_mut(moved, |&j| j as usize == last) {
                *at = slot(i);
            }
        }
    }

    /// Makes room for about `n` more ids.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.entries.reserve(n);
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.table.reserve(n, |&i| hasher.hash_one(entries[i as usize].0));
    }

    /// Every id with its position, in no order; the index keeps them.
    pub(crate) fn all(&self) -> Vec<(EventId, Position)> {
        self.entries.clone()
    }

    /// Removes the ids at positions up to `through`, and gives back the room they took.
    pub(crate) fn forget_through(&mut self, through: Position) {
        self.entries.retain(|&(_, p)| p > through);
        self.entries.shrink_to_fit();
        let (entries, hasher) = (&self.entries, &self.hasher);
        let mut table = HashTable::with_capacity(entries.len());
        for (i, (id, _)) in entries.iter().enumerate() {
            table.insert_unique(hasher.hash_one(id), slot(i), |&j| hasher.hash_one(entries[j as usize].0));
        }
        self.table = table;
    }

    /// Checks that the table and the entries agree: each entry is found by its id at its own
    /// index, and the table holds nothing more.
    #[cfg(test)]
    fn check(&self) {
        assert_eq!(self.table.len(), self.entries.len());
        for (i, (id, _)) in self.entries.iter().enumerate() {
            let found = self.table.find(self.hash(id), |&j| self.entries[j as usize].0 == *id);
            assert_eq!(found.copied(), Some(slot(i)), "entry {i}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> EventId {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&n.to_be_bytes());
        b[8..].copy_from_slice(&(n.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_be_bytes());
        EventId::from_bytes(b)
    }

    #[test]
    fn an_id_is_recorded_once_and_taken_back() {
        let mut index = IdIndex::default();
        for n in 1..=60 {
            index.insert_new(id(n), Position(n)).unwrap();
        }
        assert_eq!(index.insert_new(id(7), Position(99)), Err(Position(7)));
        assert_eq!(index.get(&id(7)), Some(Position(7)));
        index.remove(&id(7));
        assert_eq!(index.get(&id(7)), None);
        let mut all = index.all();
        index.forget_through(Position(u64::MAX));
        all.sort_unstable_by_key(|&(_, p)| p);
        assert_eq!(all, (1..=60).filter(|&n| n != 7).map(|n| (id(n), Position(n))).collect::<Vec<_>>());
        assert_eq!(index.get(&id(3)), None);
    }

    #[test]
    fn ids_are_copied_out_then_forgotten_up_to_a_position() {
        let mut index = IdIndex::default();
        for n in 1..=60 {
            index.insert_new(id(n), Position(n)).unwrap();
        }
        let mut copied = index.all();
        copied.sort_unstable_by_key(|&(_, p)| p);
        assert_eq!(copied, (1..=60).map(|n| (id(n), Position(n))).collect::<Vec<_>>());
        assert_eq!(index.get(&id(60)), Some(Position(60)), "copying keeps them");
        index.forget_through(Position(40));
        assert_eq!((index.get(&id(40)), index.get(&id(41))), (None, Some(Position(41))));
        assert_eq!(index.all().len(), 20);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, u64),
        Remove(u64),
        Forget(u64),
        Reserve(usize),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            6 => (0..200u64, 0..1_000u64).prop_map(|(n, p)| Op::Insert(n, p)),
            3 => (0..200u64).prop_map(Op::Remove),
            1 => (0..1_000u64).prop_map(Op::Forget),
            1 => (0..300usize).prop_map(Op::Reserve),
        ]
    }

    proptest::proptest! {
        /// The index answers as a plain map would, whatever mix of inserts, removals (not
        /// only of the last entry), forgetting and reserving, and keeps its invariant.
        #[test]
        fn the_index_answers_as_a_map(ops in proptest::collection::vec(op(), 0..400)) {
            let mut index = IdIndex::default();
            let mut model = std::collections::HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(n, p) => {
                        let want = match model.get(&n) {
                            Some(&at) => Err(Position(at)),
                            None => {
                                model.insert(n, p);
                                Ok(())
                            }
                        };
                        proptest::prop_assert_eq!(index.insert_new(id(n), Position(p)), want);
                    }
                    Op::Remove(n) => {
                        model.remove(&n);
                        index.remove(&id(n));
                    }
                    Op::Forget(through) => {
                        model.retain(|_, p| *p > through);
                        index.forget_through(Position(through));
                    }
                    Op::Reserve(k) => index.reserve(k),
                }
            }
            index.check();
            for n in 0..200 {
                proptest::prop_assert_eq!(index.get(&id(n)), model.get(&n).map(|&p| Position(p)));
            }
            let mut all = index.all();
            all.sort_unstable();
            let mut want: Vec<_> = model.iter().map(|(&n, &p)| (id(n), Position(p))).collect();
            want.sort_unstable();
            proptest::prop_assert_eq!(all, want);
        }
    }
}

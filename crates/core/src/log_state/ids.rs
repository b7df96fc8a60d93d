//! [`IdIndex`]: which event ids the log holds, and at what position.
//!
//! A keyed hash map. A store that keeps most of its ids elsewhere (the file store's id file)
//! holds here only the ids logged since it last wrote them out, and tells this index about
//! the others it finds for a batch ([`LogState::note_logged_id`](super::LogState::note_logged_id)).

use crate::hash::KeyedMap;
use crate::id::{EventId, Position};

/// The id index of a log: see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct IdIndex {
    ids: KeyedMap<EventId, Position>,
}

impl IdIndex {
    /// The position of the event with `id`, if recorded.
    pub(crate) fn get(&self, id: &EventId) -> Option<Position> {
        self.ids.get(id).copied()
    }

    /// Records `id` at `position` unless it is recorded already; then returns where.
    pub(crate) fn insert_new(&mut self, id: EventId, position: Position) -> Result<(), Position> {
        match self.ids.entry(id) {
            std::collections::hash_map::Entry::Occupied(at) => Err(*at.get()),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(position);
                Ok(())
            }
        }
    }

    /// Takes back an [`insert_new`](Self::insert_new).
    pub(crate) fn remove(&mut self, id: &EventId) {
        self.ids.remove(id);
    }

    /// Makes room for about `n` more ids.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.ids.reserve(n);
    }

    /// Every id with its position, in no order; the index keeps them.
    pub(crate) fn all(&self) -> Vec<(EventId, Position)> {
        self.ids.iter().map(|(id, p)| (*id, *p)).collect()
    }

    /// Removes the ids at positions up to `through`.
    pub(crate) fn forget_through(&mut self, through: Position) {
        self.ids.retain(|_, p| *p > through);
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
}

//! [`AccountSlots`]: accounts numbered densely in the order first seen, found by a borrowed id
//! ([`AccountRef`]) without hashing its text again, for folds that keep one state per account in
//! a `Vec` (a portfolio, the runner).

use crate::hash::KeyedMap;
use crate::id::AccountId;
use crate::view::AccountRef;

/// Accounts numbered 0, 1, 2, … in the order first seen, each with its owned id.
///
/// Found by the keyed hash a view of an id carries ([`AccountRef::keyed_hash`], random per
/// process, mixed again by the map's own random seed), so crafted ids cannot pile into one
/// bucket; ids whose hashes collide are chained and told apart by their text. The last slot
/// found is tried first, since logs and backfills hold runs of one account.
///
/// ```
/// use rapport_core::AccountRef;
/// use rapport_core::projection::AccountSlots;
///
/// let mut slots = AccountSlots::default();
/// let acme = AccountRef::new("acme")?;
/// assert_eq!(slots.get_or_insert(&acme), (0, true));
/// assert_eq!(slots.get_or_insert(&AccountRef::new("globex")?), (1, true));
/// assert_eq!(slots.get_or_insert(&acme), (0, false));
/// assert_eq!(slots.get(&AccountRef::new("initech")?), None);
/// assert_eq!(slots.id(1).as_str(), "globex");
/// # Ok::<(), rapport_core::ParseIdError>(())
/// ```
#[derive(Debug, Default, Clone)]
pub struct AccountSlots {
    /// The keyed hash of an id → the newest slot with that hash.
    index: KeyedMap<u64, usize>,
    /// Each slot's id, and the next older slot whose id has the same keyed hash.
    ids: Vec<(AccountId, Option<usize>)>,
    /// The slot found last.
    last: usize,
}

impl AccountSlots {
    /// How many accounts are numbered.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The id of `slot`.
    ///
    /// # Panics
    /// When `slot` is not below [`len`](Self::len).
    pub fn id(&self, slot: usize) -> &AccountId {
        &self.ids[slot].0
    }

    /// The ids, by slot.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = &AccountId> + '_ {
        self.ids.iter().map(|(id, _)| id)
    }

    /// The slot of `account`, if it has one.
    #[inline]
    pub fn get(&self, account: &AccountRef<'_>) -> Option<usize> {
        self.is_last(account).or_else(|| self.find(account, account.keyed_hash()))
    }

    /// The slot of `account`, and whether it was new (then numbered [`len`](Self::len) - 1).
    #[inline]
    pub fn get_or_insert(&mut self, account: &AccountRef<'_>) -> (usize, bool) {
        match self.is_last(account) {
            Some(slot) => (slot, false),
            None => self.get_or_insert_hashed(account, account.keyed_hash(), || account.to_account_id()),
        }
    }

    /// [`get_or_insert`](Self::get_or_insert) for an owned id, which a new slot shares (its
    /// text is not copied), so later lookups with views of that id compare no text.
    #[inline]
    pub fn get_or_insert_id(&mut self, account: &AccountId) -> (usize, bool) {
        let view = account.view();
        match self.is_last(&view) {
            Some(slot) => (slot, false),
            None => self.get_or_insert_hashed(&view, view.keyed_hash(), || account.clone()),
        }
    }

    /// [`get_or_insert`](Self::get_or_insert) past the last slot, under a given hash (a test
    /// makes ids collide), with the owned id a new slot keeps.
    fn get_or_insert_hashed(
        &mut self,
        account: &AccountRef<'_>,
        hash: u64,
        owned: impl FnOnce() -> AccountId,
    ) -> (usize, bool) {
        if let Some(slot) = self.find(account, hash) {
            self.last = slot;
            return (slot, false);
        }
        let slot = self.ids.len();
        let older = self.index.insert(hash, slot);
        self.ids.push((owned(), older));
        self.last = slot;
        (slot, true)
    }

    /// The last slot found, when it is `account`'s: no hash needed.
    #[inline]
    fn is_last(&self, account: &AccountRef<'_>) -> Option<usize> {
        let (id, _) = self.ids.get(self.last)?;
        (id.view() == *account).then_some(self.last)
    }

    fn find(&self, account: &AccountRef<'_>, hash: u64) -> Option<usize> {
        let mut at = self.index.get(&hash).copied();
        while let Some(slot) = at {
            let (id, older) = &self.ids[slot];
            if id.view() == *account {
                return Some(slot);
            }
            at = *older;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_whose_keyed_hashes_collide_keep_their_own_slots() {
        let mut slots = AccountSlots::default();
        let ids = ["acme", "globex", "initech"].map(|a| AccountRef::new(a).expect("a valid id"));
        // All three under one forced hash; each lookup, in any order, finds its own slot.
        let got: Vec<usize> = ids.iter().map(|a| slots.get_or_insert_hashed(a, 7, || a.to_account_id()).0).collect();
        assert_eq!(got, [0, 1, 2]);
        for (i, a) in ids.iter().enumerate().rev().chain(ids.iter().enumerate()) {
            slots.last = usize::MAX;
            assert_eq!(slots.get_or_insert_hashed(a, 7, || a.to_account_id()), (i, false), "{a}");
            assert_eq!(slots.find(a, 7), Some(i));
            assert_eq!(slots.is_last(a), Some(i));
        }
        assert_eq!(slots.ids().map(AccountId::as_str).collect::<Vec<_>>(), ["acme", "globex", "initech"]);
        // Under the real hashes, only the last one found is known (through `last`).
        assert_eq!(slots.get(&ids[2]), Some(2));
        slots.last = usize::MAX;
        assert_eq!(slots.get(&ids[2]), None);
        assert_eq!(slots.len(), 3);
    }

    #[test]
    fn an_owned_id_is_shared_and_found_by_its_views_and_by_text() {
        let mut slots = AccountSlots::default();
        let acme = AccountId::new("acme").expect("a valid id");
        assert_eq!(slots.get_or_insert_id(&acme), (0, true));
        assert_eq!(slots.id(0).as_str().as_ptr(), acme.as_str().as_ptr(), "the text is shared");
        assert_eq!(slots.get_or_insert(&AccountRef::new("globex").expect("valid")), (1, true));
        // A view decoded from other bytes, and the owned id again, find the same slot.
        let copy = String::from("acme");
        assert_eq!(slots.get_or_insert(&AccountRef::new(&copy).expect("valid")), (0, false));
        assert_eq!(slots.get_or_insert_id(&acme), (0, false));
        assert_eq!(slots.get(&acme.view()), Some(0));
        assert_eq!(slots.len(), 2);
    }
}

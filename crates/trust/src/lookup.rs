//! Where an account's open items are, by key, once it holds many: hash tables from each item's
//! key hash to its place in the state's lists, and the ended commitments by the instant they
//! become final.
//!
//! Most accounts hold a handful of open items, and a scan of a short list is the cheapest
//! lookup there is. An account with thousands of open commitments or remembered escalations
//! would pay a scan per step, and a rescan of every ended commitment each time one falls due:
//! quadratic in the account's size (docs/decisions.md has the measurement). When a list
//! grows past [`LOOKUP_FROM`] items the state builds these tables and keeps them; they are
//! derived from the lists, so they are neither saved in checkpoints nor compared (a restored
//! state scans until its next item builds them again).
//!
//! Every position they give is checked against the list before use, so even a log that
//! validation would refuse (a key made twice) cannot make a lookup panic or index out of
//! bounds; it finds one of the duplicates, as the scan would.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rapport_core::backend::KeyedMap;

/// Lists longer than this get tables.
pub(crate) const LOOKUP_FROM: usize = 32;

/// [`LOOKUP_FROM`], which tests on this thread may move to compare the two ways of finding
/// items (tables from the first item, or never).
#[inline]
pub(crate) fn lookup_from() -> usize {
    #[cfg(test)]
    {
        TEST_LOOKUP_FROM.with(std::cell::Cell::get)
    }
    #[cfg(not(test))]
    {
        LOOKUP_FROM
    }
}

#[cfg(test)]
thread_local! {
    pub(crate) static TEST_LOOKUP_FROM: std::cell::Cell<usize> = const { std::cell::Cell::new(LOOKUP_FROM) };
}

/// An item of a list the tables index.
pub(crate) trait Keyed {
    /// Its key's stable hash.
    fn key(&self) -> u64;
}

/// One list's table: key hash to position.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    at: KeyedMap<u64, u32>,
}

impl Table {
    fn build<T: Keyed>(items: &[T]) -> Self {
        let mut at = KeyedMap::default();
        at.reserve(items.len());
        for (i, item) in items.iter().enumerate() {
            at.insert(item.key(), i as u32);
        }
        Self { at }
    }

    /// The position of the item with `key` in `items`: from the table, checked, or by a scan
    /// when the table is stale (only a log validation would refuse can make it so).
    fn find<T: Keyed>(&self, items: &[T], key: u64) -> Option<usize> {
        let i = *self.at.get(&key)? as usize;
        if items.get(i).is_some_and(|item| item.key() == key) {
            Some(i)
        } else {
            items.iter().position(|item| item.key() == key)
        }
    }

    /// An item was pushed onto `items`.
    fn pushed<T: Keyed>(&mut self, items: &[T]) {
        if let Some(last) = items.last() {
            self.at.insert(last.key(), (items.len() - 1) as u32);
        }
    }

    /// `removed` was swap-removed from position `i` of `items` (which no longer holds it).
    fn swap_removed<T: Keyed>(&mut self, items: &[T], i: usize, removed: &T) {
        if self.at.get(&removed.key()) == Some(&(i as u32)) {
            self.at.remove(&removed.key());
        }
        // The old last item now sits at `i`.
        if let Some(moved) = items.get(i)
            && self.at.get(&moved.key()) == Some(&(items.len() as u32))
        {
            self.at.insert(moved.key(), i as u32);
        }
    }

    fn heap_bytes(&self) -> usize {
        // hashbrown: one control byte and one (key, value) slot per bucket.
        self.at.capacity() * (1 + std::mem::size_of::<(u64, u32)>())
    }
}

/// The position of the item with `key` in `items`: through `table` when there is one, else by
/// a scan.
#[inline]
pub(crate) fn position<T: Keyed>(items: &[T], table: Option<&Table>, key: u64) -> Option<usize> {
    match table {
        Some(t) => t.find(items, key),
        None => items.iter().position(|item| item.key() == key),
    }
}

/// Pushes `item` onto `items`, keeping `table` up to date. Returns whether the list has grown
/// past [`lookup_from`] without tables, so the caller should build them.
#[inline]
pub(crate) fn push<T: Keyed>(items: &mut Vec<T>, table: Option<&mut Table>, item: T) -> bool {
    items.push(item);
    match table {
        Some(t) => {
            t.pushed(items);
            false
        }
        None => items.len() > lookup_from(),
    }
}

/// Swap-removes position `i` of `items`, keeping `table` up to date.
#[inline]
pub(crate) fn swap_remove<T: Keyed>(items: &mut Vec<T>, table: Option<&mut Table>, i: usize) -> T {
    let removed = items.swap_remove(i);
    if let Some(t) = table {
        t.swap_removed(items, i, &removed);
    }
    removed
}

/// The tables of one account's state.
#[derive(Debug, Clone)]
pub(crate) struct Tables {
    pub(crate) commitments: Table,
    pub(crate) escalations: Table,
    pub(crate) resolved: Table,
    /// Ended commitments by the instant their outcome becomes final: `(instant, key)`. An entry
    /// may be stale (its commitment folded or changed); whoever pops it checks.
    pub(crate) folds: BinaryHeap<Reverse<(i64, u64)>>,
}

impl Tables {
    /// Tables for the lists as they stand; `ended` gives each ended commitment's final instant.
    pub(crate) fn build<C: Keyed, E: Keyed, R: Keyed>(
        commitments: &[C],
        escalations: &[E],
        resolved: &[R],
        ended: impl Iterator<Item = (i64, u64)>,
    ) -> Self {
        Self {
            commitments: Table::build(commitments),
            escalations: Table::build(escalations),
            resolved: Table::build(resolved),
            folds: ended.map(Reverse).collect(),
        }
    }

    /// The earliest instant in `folds`, or `i64::MAX`.
    pub(crate) fn next_fold(&self) -> i64 {
        self.folds.peek().map_or(i64::MAX, |Reverse((at, _))| *at)
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.commitments.heap_bytes()
            + self.escalations.heap_bytes()
            + self.resolved.heap_bytes()
            + self.folds.capacity() * std::mem::size_of::<(i64, u64)>()
    }
}

/// A state's tables, when it has grown enough to need them. Derived data: two states with the
/// same lists are equal whatever their tables, and checkpoints do not hold them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lookup(pub(crate) Option<Box<Tables>>);

impl PartialEq for Lookup {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

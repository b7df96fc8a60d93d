//! [`IdIndex`]: which event ids the log holds, and at what position, in two tiers.
//!
//! - **Sealed**: the ids a store loaded from a snapshot of its indexes, in one sorted table
//!   (ids and positions in two arrays, ordered by a fixed mix of the id, then the id) with a
//!   table of bucket starts in front. Loading it is a pass over bytes, not millions of hash
//!   inserts (BENCHMARKS.md, "Index snapshot"); a lookup reads one bucket start and searches a
//!   handful of entries.
//! - **Recent**: ids added since, in a keyed hash map.
//!
//! An id is in at most one tier: an insert finds an id of either tier. Undo removes only
//! recent ids (it undoes inserts). The serialised form is one sorted table of both tiers, so a
//! snapshot saved after a snapshot-based open holds every id again.

use serde::de::Error as _;

use crate::hash::KeyedMap;
use crate::id::{EventId, Position};

/// Bytes per entry of the serialised table: the id (16, big-endian as the id's bytes) and its
/// position (8, little-endian).
const ENTRY_BYTES: usize = 24;
/// The most entries a sealed table holds (bucket starts are `u32`).
const SEALED_MAX: usize = u32::MAX as usize;

/// The id index of a log: see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct IdIndex {
    sealed: Sealed,
    recent: KeyedMap<EventId, Position>,
}

/// The sorted tier.
#[derive(Debug, Default)]
struct Sealed {
    ids: Vec<u128>,
    positions: Vec<u64>,
    /// `starts[j]..starts[j + 1]` are the entries whose mix has `j` in its top `bits` bits.
    starts: Vec<u32>,
    bits: u32,
}

/// A fixed (never changed: snapshots are ordered by it) mix of an id's 128 bits into 64 that
/// spreads every kind of id evenly, time-ordered v7 ids included.
fn mix(id: u128) -> u64 {
    let mut x = (id as u64) ^ ((id >> 64) as u64).rotate_left(29);
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn key(id: u128) -> (u64, u128) {
    (mix(id), id)
}

impl Sealed {
    fn from_sorted(ids: Vec<u128>, positions: Vec<u64>) -> Self {
        debug_assert!(ids.windows(2).all(|w| key(w[0]) < key(w[1])), "sealed ids are sorted and unique");
        let n = ids.len();
        // About four to eight entries a bucket.
        let bits = (usize::BITS - n.leading_zeros()).saturating_sub(3).min(30);
        let mut starts = Vec::with_capacity((1usize << bits) + 1);
        let mut i = 0usize;
        for bucket in 0..(1u64 << bits) {
            while i < n && bucket_of(mix(ids[i]), bits) < bucket {
                i += 1;
            }
            starts.push(i as u32);
        }
        starts.push(n as u32);
        Self { ids, positions, starts, bits }
    }

    fn get(&self, id: u128) -> Option<Position> {
        if self.ids.is_empty() {
            return None;
        }
        let k = key(id);
        let bucket = bucket_of(k.0, self.bits) as usize;
        let (lo, hi) = (self.starts[bucket] as usize, self.starts[bucket + 1] as usize);
        let slice = &self.ids[lo..hi];
        let at = slice.partition_point(|&other| key(other) < k);
        (slice.get(at) == Some(&id)).then(|| Position(self.positions[lo + at]))
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}

fn bucket_of(mix: u64, bits: u32) -> u64 {
    if bits == 0 { 0 } else { mix >> (64 - bits) }
}

impl IdIndex {
    /// The position of the event with `id`, if recorded.
    pub(crate) fn get(&self, id: &EventId) -> Option<Position> {
        match self.recent.get(id) {
            Some(p) => Some(*p),
            None => self.sealed.get(u128::from_be_bytes(id.to_bytes())),
        }
    }

    /// Records `id` at `position` unless it is recorded already; then returns where.
    pub(crate) fn insert_new(&mut self, id: EventId, position: Position) -> Result<(), Position> {
        if let Some(at) = self.sealed.get(u128::from_be_bytes(id.to_bytes())) {
            return Err(at);
        }
        match self.recent.entry(id) {
            std::collections::hash_map::Entry::Occupied(at) => Err(*at.get()),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(position);
                Ok(())
            }
        }
    }

    /// Takes back an [`insert_new`](Self::insert_new).
    pub(crate) fn remove_recent(&mut self, id: &EventId) {
        self.recent.remove(id);
    }

    /// Makes room for about `n` more ids.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.recent.reserve(n);
    }

    /// Removes every id of both tiers and returns them with their positions, in no order.
    pub(crate) fn take_all(&mut self) -> Vec<(EventId, Position)> {
        let sealed = std::mem::take(&mut self.sealed);
        let mut out: Vec<(EventId, Position)> = Vec::with_capacity(sealed.len() + self.recent.len());
        out.extend(
            sealed
                .ids
                .iter()
                .zip(&sealed.positions)
                .map(|(&id, &p)| (EventId::from_bytes(id.to_be_bytes()), Position(p))),
        );
        out.extend(self.recent.drain());
        out
    }

    /// How many ids are recorded.
    pub(crate) fn len(&self) -> usize {
        self.sealed.len() + self.recent.len()
    }
}

impl serde::Serialize for IdIndex {
    /// One sorted table of both tiers, as bytes.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut recent: Vec<(u128, u64)> =
            self.recent.iter().map(|(id, p)| (u128::from_be_bytes(id.to_bytes()), p.0)).collect();
        recent.sort_unstable_by_key(|&(id, _)| key(id));
        let mut out = Vec::with_capacity(self.len() * ENTRY_BYTES);
        let mut put = |id: u128, position: u64| {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&position.to_le_bytes());
        };
        // Merge the two sorted runs.
        let (mut i, mut j) = (0, 0);
        let sealed = &self.sealed;
        while i < sealed.len() || j < recent.len() {
            let take_sealed = j == recent.len() || (i < sealed.len() && key(sealed.ids[i]) < key(recent[j].0));
            if take_sealed {
                put(sealed.ids[i], sealed.positions[i]);
                i += 1;
            } else {
                put(recent[j].0, recent[j].1);
                j += 1;
            }
        }
        s.serialize_bytes(&out)
    }
}

impl<'de> serde::Deserialize<'de> for IdIndex {
    /// The table as sealed ids; refused unless sorted, unique and whole.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Table;
        impl<'de> serde::de::Visitor<'de> for Table {
            type Value = IdIndex;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sorted table of event ids and positions")
            }

            fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<IdIndex, E> {
                if !b.len().is_multiple_of(ENTRY_BYTES) || b.len() / ENTRY_BYTES > SEALED_MAX {
                    return Err(E::custom(format!("{} bytes is no table of ids", b.len())));
                }
                let n = b.len() / ENTRY_BYTES;
                let (mut ids, mut positions) = (Vec::with_capacity(n), Vec::with_capacity(n));
                let mut last: Option<(u64, u128)> = None;
                for entry in b.chunks_exact(ENTRY_BYTES) {
                    let mut id = [0u8; 16];
                    id.copy_from_slice(&entry[..16]);
                    let mut position = [0u8; 8];
                    position.copy_from_slice(&entry[16..]);
                    let id = u128::from_be_bytes(id);
                    let k = key(id);
                    if id == 0 || last.is_some_and(|l| l >= k) {
                        return Err(E::custom(format!("the table is not sorted at entry {}", ids.len())));
                    }
                    last = Some(k);
                    ids.push(id);
                    positions.push(u64::from_le_bytes(position));
                }
                Ok(IdIndex { sealed: Sealed::from_sorted(ids, positions), recent: KeyedMap::default() })
            }

            fn visit_byte_buf<E: serde::de::Error>(self, b: Vec<u8>) -> Result<IdIndex, E> {
                self.visit_bytes(&b)
            }
        }
        d.deserialize_bytes(Table).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> EventId {
        EventId::derive(&n.to_le_bytes())
    }

    #[test]
    fn both_tiers_answer_and_an_insert_finds_either() {
        let mut index = IdIndex::default();
        for n in 0..1_000 {
            assert!(index.insert_new(id(n), Position(n + 1)).is_ok());
        }
        // Through the serialised form: all sealed now.
        let bytes = postcard_like(&index);
        let mut back = from_bytes(&bytes);
        assert_eq!(back.recent.len(), 0);
        assert_eq!(back.len(), 1_000);
        for n in 0..1_000 {
            assert_eq!(back.get(&id(n)), Some(Position(n + 1)));
        }
        assert_eq!(back.get(&id(5_000)), None);
        assert_eq!(back.insert_new(id(7), Position(9_999)), Err(Position(8)), "a sealed id is found");
        assert!(back.insert_new(id(5_000), Position(1_001)).is_ok());
        assert_eq!(back.insert_new(id(5_000), Position(1_002)), Err(Position(1_001)));
        back.remove_recent(&id(5_000));
        assert_eq!(back.get(&id(5_000)), None);
        // Sealed and recent merge into one sorted table again.
        assert!(back.insert_new(id(6_000), Position(1_001)).is_ok());
        let again = from_bytes(&postcard_like(&back));
        assert_eq!(again.len(), 1_001);
        assert_eq!(again.get(&id(6_000)), Some(Position(1_001)));
        assert_eq!(again.get(&id(0)), Some(Position(1)));
    }

    #[test]
    fn take_all_empties_both_tiers() {
        let mut index = IdIndex::default();
        for n in 1..=50 {
            index.insert_new(id(n), Position(n)).unwrap();
        }
        let mut index = from_bytes(&postcard_like(&index));
        for n in 51..=60 {
            index.insert_new(id(n), Position(n)).unwrap();
        }
        let mut all = index.take_all();
        all.sort_unstable_by_key(|&(_, p)| p);
        assert_eq!(all, (1..=60).map(|n| (id(n), Position(n))).collect::<Vec<_>>());
        assert_eq!(index.len(), 0);
        assert_eq!(index.get(&id(3)), None);
        assert_eq!(index.get(&id(55)), None);
    }

    #[test]
    fn a_table_out_of_order_or_cut_is_refused() {
        let mut index = IdIndex::default();
        for n in 0..10 {
            index.insert_new(id(n), Position(n + 1)).unwrap();
        }
        let bytes = postcard_like(&index);
        let mut swapped = bytes.clone();
        swapped[..24].copy_from_slice(&bytes[24..48]);
        swapped[24..48].copy_from_slice(&bytes[..24]);
        assert!(try_from_bytes(&swapped).is_err());
        assert!(try_from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(try_from_bytes(&[]).is_ok_and(|i| i.len() == 0));
    }

    /// The serialised bytes, through a serializer that keeps them as they are.
    fn postcard_like(index: &IdIndex) -> Vec<u8> {
        serde_json::to_value(index)
            .ok()
            .and_then(|v| v.as_array().map(|a| a.iter().filter_map(|b| b.as_u64()).map(|b| b as u8).collect()))
            .expect("bytes")
    }

    fn try_from_bytes(b: &[u8]) -> Result<IdIndex, serde::de::value::Error> {
        use serde::de::IntoDeserializer;
        IdIndex::deserialize(serde::de::value::BytesDeserializer::new(b).into_deserializer())
    }

    fn from_bytes(b: &[u8]) -> IdIndex {
        try_from_bytes(b).expect("a table")
    }

    use serde::Deserialize as _;
}

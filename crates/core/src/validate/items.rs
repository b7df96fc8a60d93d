//! [`Items`]: one account's items of one kind (its commitments, or its escalations), each
//! found by its key's stable hash, with every key's text packed into one buffer.
//!
//! A stream's validation state keeps every item key its account ever used (a commitment made
//! once may never be made again, a closed one takes no step), so over years it holds far more
//! closed items than open ones. Packed, an item takes one map entry of a 64-bit hash and 16
//! bytes (the step time, where its text lies, its state's flags) plus its key's bytes, instead
//! of a shared key (an `Arc<str>` and its hashes) beside its state (BENCHMARKS.md, "Validation
//! states packed").
//!
//! Invariants (checked by the module's tests): every slot's `at..at + len` lies inside `text`,
//! and its bytes are a key whose stable hash is the slot's; slots' ranges do not overlap;
//! `text` is at most [`ITEM_TEXT_BYTES_MAX`] bytes (validation refuses a key that would pass
//! it, and a saved state that does). A caller that breaks
//! [`StreamState::apply`](super::StreamState::apply)'s contract (an event that did not pass
//! `check`) or takes undos back out of order gets wrong answers, never a panic.

use crate::hash::KeyedMap;
use crate::id::{CommitmentKey, EscalationKey};
use crate::timestamp::Timestamp;

/// The most bytes of key text one account's items of one kind may hold (about 33 million keys
/// of the longest length, far more of the usual ones).
pub const ITEM_TEXT_BYTES_MAX: usize = u32::MAX as usize;

/// A key of an account's items (commitments, escalations).
pub(super) trait ItemKey: Clone + PartialEq {
    fn stable_hash(&self) -> u64;
    fn as_str(&self) -> &str;
}

impl ItemKey for CommitmentKey {
    fn stable_hash(&self) -> u64 {
        CommitmentKey::stable_hash(self)
    }

    fn as_str(&self) -> &str {
        CommitmentKey::as_str(self)
    }
}

impl ItemKey for EscalationKey {
    fn stable_hash(&self) -> u64 {
        EscalationKey::stable_hash(self)
    }

    fn as_str(&self) -> &str {
        EscalationKey::as_str(self)
    }
}

/// An item's state as the map packs it: the time of its last step and a byte of flags.
pub(super) trait Packed: Copy {
    fn pack(self) -> (Timestamp, u8);
    fn unpack(last_step_at: Timestamp, flags: u8) -> Self;
}

/// One item: its state, packed, and where its key's text lies in [`Items::text`].
#[derive(Debug, Clone, Copy)]
struct Slot {
    last_step_at: Timestamp,
    at: u32,
    len: u8,
    flags: u8,
}

/// One account's items of one kind: see the module documentation.
#[derive(Clone)]
pub(super) struct Items<K, S> {
    by_hash: KeyedMap<u64, Slot>,
    text: String,
    kind: std::marker::PhantomData<(K, S)>,
}

impl<K, S> Default for Items<K, S> {
    fn default() -> Self {
        Self { by_hash: KeyedMap::default(), text: String::new(), kind: std::marker::PhantomData }
    }
}

/// What a lookup of one key found.
pub(super) enum Found<'a, S> {
    /// The key, with its state.
    Key(S),
    /// Another key with the same stable hash: its text.
    Collision(&'a str),
    /// Neither.
    None,
}

impl<K: ItemKey, S: Packed> Items<K, S> {
    fn text_of(&self, slot: &Slot) -> &str {
        let at = slot.at as usize;
        self.text.get(at..at + usize::from(slot.len)).unwrap_or_default()
    }

    pub(super) fn find(&self, key: &K) -> Found<'_, S> {
        match self.by_hash.get(&key.stable_hash()) {
            Some(slot) if self.text_of(slot) == key.as_str() => Found::Key(S::unpack(slot.last_step_at, slot.flags)),
            Some(slot) => Found::Collision(self.text_of(slot)),
            None => Found::None,
        }
    }

    pub(super) fn get(&self, key: &K) -> Option<S> {
        match self.find(key) {
            Found::Key(state) => Some(state),
            _ => None,
        }
    }

    /// Whether a new key of `len` bytes fits within [`ITEM_TEXT_BYTES_MAX`].
    pub(super) fn has_room(&self, len: usize) -> bool {
        fits(self.text.len(), len, ITEM_TEXT_BYTES_MAX)
    }

    /// Sets `key`'s state; returns the previous one. `key` must not collide, and a new key must
    /// fit ([`has_room`](Self::has_room)): validation checks both before an event is applied.
    pub(super) fn insert(&mut self, key: &K, state: S) -> Option<S> {
        let (last_step_at, flags) = state.pack();
        let hash = key.stable_hash();
        if let Some(slot) = self.by_hash.get_mut(&hash) {
            let previous = S::unpack(slot.last_step_at, slot.flags);
            (slot.last_step_at, slot.flags) = (last_step_at, flags);
            return Some(previous);
        }
        let text = key.as_str();
        // Keys are at most KEY_BYTES_MAX (128) bytes, and the buffer at most u32::MAX bytes:
        // both conversions hold for every key validation admits.
        let slot = Slot {
            last_step_at,
            at: u32::try_from(self.text.len()).unwrap_or(u32::MAX),
            len: u8::try_from(text.len()).unwrap_or(u8::MAX),
            flags,
        };
        self.text.push_str(text);
        self.by_hash.insert(hash, slot);
        None
    }

    /// Forgets `key` (the undo of its [`insert`](Self::insert) as a new key). Undos come newest
    /// first, so its text ends the buffer and is cut off; otherwise it stays, unreferenced.
    pub(super) fn remove(&mut self, key: &K) {
        if let Some(slot) = self.by_hash.remove(&key.stable_hash()) {
            let end = slot.at as usize + usize::from(slot.len);
            if end == self.text.len() {
                self.text.truncate(slot.at as usize);
            }
        }
    }

    /// The items: each key's text and state, in no particular order.
    fn iter(&self) -> impl Iterator<Item = (&str, S)> {
        self.by_hash.values().map(|slot| (self.text_of(slot), S::unpack(slot.last_step_at, slot.flags)))
    }
}

impl<K: ItemKey, S: Packed + PartialEq> PartialEq for Items<K, S> {
    /// The same keys with the same states, however their texts are laid out.
    fn eq(&self, other: &Self) -> bool {
        self.by_hash.len() == other.by_hash.len()
            && self.by_hash.iter().all(|(hash, slot)| {
                other.by_hash.get(hash).is_some_and(|o| {
                    self.text_of(slot) == other.text_of(o)
                        && S::unpack(slot.last_step_at, slot.flags) == S::unpack(o.last_step_at, o.flags)
                })
            })
    }
}

impl<K: ItemKey, S: Packed + std::fmt::Debug> std::fmt::Debug for Items<K, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Serialised as a map from key to state, as the map keyed by the key itself was before items
/// were keyed by their stable hash and packed (PostgreSQL rows and index snapshots hold it).
impl<K: ItemKey, S: Packed + serde::Serialize> serde::Serialize for Items<K, S> {
    fn serialize<Ser: serde::Serializer>(&self, ser: Ser) -> Result<Ser::Ok, Ser::Error> {
        ser.collect_map(self.iter())
    }
}

/// Read from that map: refused when two keys share a stable hash (validation cannot have
/// written it) or the keys' text passes [`ITEM_TEXT_BYTES_MAX`].
impl<'de, K, S> serde::Deserialize<'de> for Items<K, S>
where
    K: ItemKey + Eq + std::hash::Hash + serde::Deserialize<'de>,
    S: Packed + serde::Deserialize<'de>,
{
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let map = KeyedMap::<K, S>::deserialize(de)?;
        let mut items = Items::default();
        items.by_hash.reserve(map.len());
        for (key, state) in map {
            if items.by_hash.contains_key(&key.stable_hash()) {
                return Err(serde::de::Error::custom("two item keys with one stable hash"));
            }
            if !items.has_room(key.as_str().len()) {
                return Err(serde::de::Error::custom("the item keys hold more text than an account may"));
            }
            items.insert(&key, state);
        }
        items.text.shrink_to_fit();
        Ok(items)
    }
}

/// Whether a key of `len` bytes fits in a buffer holding `used` bytes, within `max`.
fn fits(used: usize, len: usize, max: usize) -> bool {
    used.checked_add(len).is_some_and(|end| end <= max)
}

#[cfg(test)]
mod tests;

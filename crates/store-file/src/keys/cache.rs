//! Key material recently read from the key file or made, kept so that sealing a batch and
//! opening a stream's text do not read the file once for each key (`docs/decisions.md`, "Key
//! material on disk").
//!
//! A fixed number of entries, each holding the key of the ids equal to its index modulo that
//! number: a lookup is one comparison, and the cache never grows. Ids are made one after
//! another, so the keys in use at one time (an account's current month, the months a backfill
//! is writing) mostly fall into different entries.

use std::sync::Mutex;

use rapport_core::seal::{KEY_BYTES, SealKey};

/// How many keys the cache holds (a power of two): about 36 bytes each.
const ENTRIES: usize = 1 << 14;

/// Key material by id, a bounded number of keys; shared by reader threads.
#[derive(Default)]
pub(crate) struct KeyCache(Mutex<Vec<Entry>>);

/// An entry: the id its key is for (0: none), and the key.
#[derive(Clone, Copy)]
struct Entry {
    id: u32,
    key: [u8; KEY_BYTES],
}

fn index(id: u32) -> usize {
    id as usize & (ENTRIES - 1)
}

impl KeyCache {
    /// The key of `id`, if the cache holds it.
    pub(crate) fn get(&self, id: u32) -> Option<SealKey> {
        let entries = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let e = entries.get(index(id))?;
        (e.id == id && id != 0).then(|| SealKey::from_bytes(e.key))
    }

    /// Keeps each of `keys` as its id's, in place of the key its entry held, under one lock.
    /// The entries are allocated at the first key kept, so a handle that never reads text pays
    /// nothing.
    pub(crate) fn put_all(&self, keys: impl IntoIterator<Item = (u32, SealKey)>) {
        let mut entries = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for (id, key) in keys {
            if id == 0 {
                continue;
            }
            if entries.is_empty() {
                entries.resize(ENTRIES, Entry { id: 0, key: [0; KEY_BYTES] });
            }
            entries[index(id)] = Entry { id, key: *key.as_bytes() };
        }
        debug_assert!(entries.is_empty() || entries.len() == ENTRIES, "the cache never grows");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key is answered for its own id only, and another id of the same entry replaces it.
    #[test]
    fn a_key_is_answered_for_its_own_id_only() {
        let cache = KeyCache::default();
        let (a, b) = (SealKey::from_bytes([1; KEY_BYTES]), SealKey::from_bytes([2; KEY_BYTES]));
        assert!(cache.get(7).is_none());
        cache.put_all([(7, a.clone())]);
        assert_eq!(cache.get(7), Some(a.clone()));
        assert!(cache.get(7 + ENTRIES as u32).is_none(), "same entry, another id");
        assert!(cache.get(0).is_none(), "id 0 is no key");
        cache.put_all([(7 + ENTRIES as u32, b.clone())]);
        assert!(cache.get(7).is_none(), "replaced");
        assert_eq!(cache.get(7 + ENTRIES as u32), Some(b));
    }
}

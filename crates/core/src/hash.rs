//! Hashing, one story: [`stable_hash`](crate::id::stable_hash) (frozen, in `id.rs`) for what is
//! persisted; [`KeyedMap`] (foldhash under a random per-process key) for maps keyed by outside
//! input; and [`keyed_text_hash`], the same keyed function with one key for the whole process,
//! for hashes computed once and kept (an account id's). Duplicate detection uses a keyed MAC
//! instead ([`NewEvent::fingerprint`](crate::NewEvent::fingerprint)): it must resist a forger,
//! not only a flood.

use std::hash::BuildHasher;
use std::sync::OnceLock;

/// Builds the hashers of [`KeyedMap`]: foldhash, randomly keyed per map.
pub type KeyedState = foldhash::fast::RandomState;

/// A `HashMap` keyed by outside input: an outsider who does not know the key cannot aim keys
/// at one bucket.
pub type KeyedMap<K, V> = std::collections::HashMap<K, V, KeyedState>;

/// A `HashSet` keyed by outside input (see [`KeyedMap`]).
pub type KeyedSet<T> = std::collections::HashSet<T, KeyedState>;

/// A keyed hash of `text`, the same everywhere in this process and different in every
/// process: for a hash computed once and kept, which maps then use as it is.
pub(crate) fn keyed_text_hash(text: &str) -> u64 {
    static KEY: OnceLock<foldhash::fast::FixedState> = OnceLock::new();
    let state = KEY.get_or_init(|| {
        // A random per-process seed: the standard library's random keys are the source.
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64);
        foldhash::fast::FixedState::with_seed(seed)
    });
    state.hash_one(text)
}

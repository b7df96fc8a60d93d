//! A fast, non-cryptographic hasher for in-process maps keyed by ids (accounts, event ids).
//!
//! It multiplies and rotates eight bytes at a time, which is several times faster than the
//! standard SipHash on short keys. It is not resistant to collision attacks: use it only for
//! maps whose keys come from the log itself, never for maps an outsider can fill at will.

use std::hash::{BuildHasherDefault, Hasher};

const K: u64 = 0x517c_c1b7_2722_0a95;

/// The hasher. See the module docs for when it is appropriate.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher {
    hash: u64,
}

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            // A variable-length copy would call memcpy on a hot path.
            let w = crate::id::tail_word(rest);
            self.add(w);
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // A final avalanche so hashbrown's top bits (its control bytes) are well mixed.
        let mut h = self.hash;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^ (h >> 33)
    }
}

/// A `HashMap` using [`FastHasher`].
pub type FastHashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Builds [`FastHasher`]s that start from a random per-map seed, so an outsider who does not
/// know the seed cannot aim keys at one bucket. For maps keyed by external input (event ids,
/// account ids) on hot paths, where SipHash costs too much.
#[derive(Debug, Clone, Copy)]
pub struct SeededState {
    seed: u64,
}

impl Default for SeededState {
    fn default() -> Self {
        use std::hash::BuildHasher;
        // The standard library's per-process random keys are the seed source.
        Self { seed: std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64) | 1 }
    }
}

impl std::hash::BuildHasher for SeededState {
    type Hasher = FastHasher;

    fn build_hasher(&self) -> FastHasher {
        FastHasher { hash: self.seed }
    }
}

/// A `HashMap` using [`FastHasher`] with a random seed ([`SeededState`]).
pub type SeededHashMap<K, V> = std::collections::HashMap<K, V, SeededState>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, BuildHasherDefault};

    #[test]
    fn distinguishes_short_keys() {
        let b = BuildHasherDefault::<FastHasher>::default();
        let hs: std::collections::HashSet<u64> = (0..10_000).map(|i| b.hash_one(format!("acct-{i}"))).collect();
        assert_eq!(hs.len(), 10_000);
        assert_ne!(b.hash_one("ab"), b.hash_one("ab\0"));
    }
}

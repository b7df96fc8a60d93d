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
            let w = tail_word(rest);
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

/// The up-to-seven trailing bytes as one word, without a loop or memcpy: two overlapping
/// reads cover every length. Distinct tails (with their length) give distinct words.
#[inline]
fn tail_word(rest: &[u8]) -> u64 {
    let n = rest.len();
    let word = if n >= 4 {
        let lo = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let hi = u32::from_le_bytes([rest[n - 4], rest[n - 3], rest[n - 2], rest[n - 1]]);
        u64::from(lo) | (u64::from(hi) << 32)
    } else if n > 0 {
        u64::from(rest[0]) | (u64::from(rest[n / 2]) << 8) | (u64::from(rest[n - 1]) << 16)
    } else {
        0
    };
    word ^ ((n as u64) << 59)
}

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

//! [`Positions`]: one account's positions in the log, ascending, kept as LEB128 deltas (about
//! two bytes a position where eight were held; BENCHMARKS.md, "Stream positions") with a mark
//! every [`MARK_EVERY`] entries, so that a read from any stream version decodes at most that
//! many deltas before it starts.
//!
//! Invariants (checked when built, and when read from a snapshot by [`Positions::check`]):
//! positions strictly increase from 1; `marks[j]` is the byte where entry `j · MARK_EVERY`
//! starts and the position before it; `len` entries decode from `bytes`, the last being
//! `last`.

use serde::{Deserialize, Serialize};

/// A mark every this many entries.
const MARK_EVERY: u64 = 64;

/// One account's positions: see the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Positions {
    #[serde(with = "run_of_bytes")]
    bytes: Vec<u8>,
    /// For entries 0, MARK_EVERY, 2·MARK_EVERY, …: where its delta starts in `bytes`, and the
    /// position before it (0 for the first).
    marks: Vec<(u64, u64)>,
    len: u64,
    last: u64,
}

impl Positions {
    /// Entries held.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The first position, if any.
    pub(crate) fn first(&self) -> Option<u64> {
        self.iter_from(0).next()
    }

    /// Adds `position`, which follows every position held.
    pub(crate) fn push(&mut self, position: u64) {
        debug_assert!(position > self.last, "positions strictly increase");
        if self.len.is_multiple_of(MARK_EVERY) {
            self.marks.push((self.bytes.len() as u64, self.last));
        }
        crate::leb128::put(&mut self.bytes, position - self.last);
        self.len += 1;
        self.last = position;
    }

    /// The positions from entry `k` (0-based: stream version `k + 1`) on.
    pub(crate) fn iter_from(&self, k: u64) -> Iter<'_> {
        let Some(&(at, before)) = self.marks.get((k / MARK_EVERY) as usize) else {
            return Iter { bytes: &[], at: 0, position: 0, left: 0, skip: 0 };
        };
        let entry = k / MARK_EVERY * MARK_EVERY;
        Iter {
            bytes: &self.bytes,
            at: usize::try_from(at).unwrap_or(usize::MAX),
            position: before,
            left: self.len - entry,
            skip: k - entry,
        }
    }

    /// The position of entry `k`, if held.
    pub(crate) fn get(&self, k: u64) -> Option<u64> {
        self.iter_from(k).next()
    }

    /// Whether a table read from a snapshot keeps the invariants (every delta decodes, the
    /// count and the last position agree, the marks are where they say). One pass over the
    /// bytes, each delta decoded as its bytes come (a writer's open checks every stream's
    /// table); it refuses exactly what decoding each delta with [`crate::leb128::get`] would
    /// (a test holds the two together).
    pub(crate) fn check(&self) -> Result<(), String> {
        const UNDECODABLE: &str = "stream positions: a delta does not decode";
        let (mut position, mut n) = (0u64, 0u64);
        // The delta being read: its value so far, and how many of its bytes were read.
        let (mut delta, mut read) = (0u64, 0u32);
        for (at, &byte) in self.bytes.iter().enumerate() {
            if read == 0
                && n.is_multiple_of(MARK_EVERY)
                && self.marks.get((n / MARK_EVERY) as usize) != Some(&(at as u64, position))
            {
                return Err(format!("stream positions: no mark, or another, at entry {n}"));
            }
            let low = u64::from(byte & 0x7f);
            // The tenth byte holds the 64th bit alone.
            if read == 9 && low > 1 {
                return Err(UNDECODABLE.into());
            }
            delta |= low << (7 * read);
            if byte & 0x80 != 0 {
                read += 1;
                if read == 10 {
                    return Err(UNDECODABLE.into());
                }
                continue;
            }
            if delta == 0 {
                return Err("stream positions do not increase".into());
            }
            position = position.checked_add(delta).ok_or("stream positions overflow")?;
            n += 1;
            (delta, read) = (0, 0);
        }
        if read != 0 {
            return Err(UNDECODABLE.into());
        }
        if n != self.len || position != self.last || self.marks.len() as u64 != n.div_ceil(MARK_EVERY) {
            return Err(format!(
                "stream positions: {n} entries up to {position} decode, {} up to {} said",
                self.len, self.last
            ));
        }
        Ok(())
    }

    /// [`check`](Self::check) as it was first written, a delta at a time through
    /// [`crate::leb128::get`]: what the one-pass form must agree with.
    #[cfg(test)]
    fn check_by_get(&self) -> Result<(), String> {
        let (mut at, mut position, mut n) = (0usize, 0u64, 0u64);
        while at < self.bytes.len() {
            if n.is_multiple_of(MARK_EVERY) && self.marks.get((n / MARK_EVERY) as usize) != Some(&(at as u64, position))
            {
                return Err(format!("stream positions: no mark, or another, at entry {n}"));
            }
            let (delta, used) =
                crate::leb128::get(&self.bytes[at..]).ok_or("stream positions: a delta does not decode")?;
            if delta == 0 {
                return Err("stream positions do not increase".into());
            }
            position = position.checked_add(delta).ok_or("stream positions overflow")?;
            at += used;
            n += 1;
        }
        if n != self.len || position != self.last || self.marks.len() as u64 != n.div_ceil(MARK_EVERY) {
            return Err(format!(
                "stream positions: {n} entries up to {position} decode, {} up to {} said",
                self.len, self.last
            ));
        }
        Ok(())
    }
}

/// [`Positions::bytes`] as one run of bytes: a length, then the bytes, which is how postcard
/// writes a `Vec<u8>` too (a `u8` is one byte there), so snapshots read and written either
/// way are the same bytes (a test checks it); read as a run, it is one copy where serde's
/// `Vec<u8>` took a call a byte (a writer's open reads every stream's table).
mod run_of_bytes {
    use serde::de::{Deserializer, Visitor};
    use serde::ser::Serializer;

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(Run)
    }

    struct Run;

    impl<'de> Visitor<'de> for Run {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a run of bytes")
        }

        fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
    }
}

/// Positions from a given entry on (see [`Positions::iter_from`]).
#[derive(Debug)]
pub(crate) struct Iter<'a> {
    bytes: &'a [u8],
    at: usize,
    position: u64,
    /// Entries left to decode, and how many of them to pass before yielding.
    left: u64,
    skip: u64,
}

impl Iterator for Iter<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        loop {
            if self.left == 0 {
                return None;
            }
            // A table that does not decode ends here (`check` refuses one when it is loaded).
            let Some((delta, used)) = crate::leb128::get(self.bytes.get(self.at..)?) else {
                self.left = 0;
                return None;
            };
            self.at += used;
            self.left -= 1;
            self.position = self.position.wrapping_add(delta);
            if self.skip == 0 {
                return Some(self.position);
            }
            self.skip -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table is written as the same bytes as when its deltas were a plain `Vec<u8>`, and
    /// each form reads the other's: snapshots of earlier builds load, and theirs load ours.
    #[test]
    fn the_run_of_bytes_is_what_a_vec_of_bytes_was() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct AsBefore {
            bytes: Vec<u8>,
            marks: Vec<(u64, u64)>,
            len: u64,
            last: u64,
        }
        let mut p = Positions::default();
        for k in 1..300u64 {
            p.push(k * k * 37);
        }
        let before = AsBefore { bytes: p.bytes.clone(), marks: p.marks.clone(), len: p.len, last: p.last };
        let ours = postcard::to_allocvec(&p).unwrap();
        assert_eq!(ours, postcard::to_allocvec(&before).unwrap());
        assert_eq!(postcard::from_bytes::<Positions>(&ours).unwrap(), p);
        assert_eq!(postcard::from_bytes::<AsBefore>(&ours).unwrap(), before);
        let empty = Positions::default();
        assert_eq!(postcard::from_bytes::<Positions>(&postcard::to_allocvec(&empty).unwrap()).unwrap(), empty);
    }

    #[test]
    fn reads_back_from_every_entry() {
        let mut p = Positions::default();
        let mut all = Vec::new();
        let mut at = 0u64;
        for k in 0..1_000u64 {
            at += 1 + (k * 7_919) % 20_000 + if k == 500 { 1 << 40 } else { 0 };
            p.push(at);
            all.push(at);
        }
        assert_eq!(p.len(), 1_000);
        assert_eq!(p.first(), Some(all[0]));
        assert_eq!(p.check(), Ok(()));
        for k in [0usize, 1, 63, 64, 65, 500, 999] {
            assert_eq!(p.iter_from(k as u64).collect::<Vec<_>>(), all[k..], "from {k}");
            assert_eq!(p.get(k as u64), Some(all[k]));
        }
        assert_eq!(p.iter_from(1_000).next(), None);
        assert_eq!(p.get(5_000), None);
        assert!(p.bytes.len() < 3 * all.len(), "about two bytes an entry: {}", p.bytes.len());
    }

    #[test]
    fn a_damaged_table_is_refused_and_never_panics() {
        let mut p = Positions::default();
        for k in 1..200 {
            p.push(k * 3);
        }
        let mut cut = p.clone();
        cut.bytes.truncate(cut.bytes.len() - 1);
        assert!(cut.check().is_err());
        assert_eq!(cut.iter_from(0).count(), 198);
        let mut zero = p.clone();
        zero.bytes[5] = 0;
        assert!(zero.check().is_err());
        let mut marks = p.clone();
        marks.marks[1].0 += 1;
        assert!(marks.check().is_err());
        let mut runaway = p;
        runaway.bytes = vec![0xff; 40];
        assert!(runaway.check().is_err());
        assert_eq!(runaway.iter_from(0).count(), 0);
        assert_eq!(runaway.iter_from(100).count(), 0);
    }

    /// The one-pass check refuses what a delta-at-a-time decode refuses, with the same
    /// reason: over tables with every byte changed in turn (to each value of a set that
    /// covers a delta's ends, continuations, zeros and the tenth byte's limit), cut at every
    /// length, with a mark moved, and with long and overlong deltas.
    #[test]
    fn the_one_pass_check_refuses_what_decoding_each_delta_refuses() {
        let mut p = Positions::default();
        let mut at = 0u64;
        for k in 0..150u64 {
            at += 1 + (k * 7_919) % 20_000 + if k == 70 { 1 << 62 } else { 0 };
            p.push(at);
        }
        let agree = |t: &Positions, what: &str| assert_eq!(t.check(), t.check_by_get(), "{what}");
        agree(&p, "whole");
        for i in 0..p.bytes.len() {
            for v in [0x00, 0x01, 0x02, 0x7f, 0x80, 0x81, 0xff] {
                let mut t = p.clone();
                t.bytes[i] = v;
                agree(&t, &format!("byte {i} set to {v:#x}"));
            }
            let mut cut = p.clone();
            cut.bytes.truncate(i);
            agree(&cut, &format!("cut at {i}"));
        }
        for j in 0..p.marks.len() {
            let mut t = p.clone();
            t.marks[j].1 += 1;
            agree(&t, &format!("mark {j} moved"));
        }
        for bytes in [vec![0xff; 9], vec![0xff; 10], vec![0xff; 11], [vec![0xff; 9], vec![0x01]].concat()] {
            let t = Positions { bytes, marks: vec![(0, 0)], len: 1, last: u64::MAX };
            agree(&t, "a long delta");
        }
    }
}

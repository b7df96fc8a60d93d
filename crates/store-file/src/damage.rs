//! Telling a torn write from damage to written data, from the bytes alone. Pure functions;
//! `docs/log-format.md` ("Recovery on open") states the rules and why they hold.
//!
//! A crash leaves the sectors of an unsynced write either as written or as zeros (or the file
//! short). Bit rot flips bits. So damage is taken for a torn write only on evidence no flip
//! produces: the file ends inside the frame, or a sector's share of the frame is all zeros
//! where a frame never holds zeros (its first byte, a run of [`ZERO_RUN_EVIDENCE`] bytes, or
//! the last [`TRAILING_ZEROS_EVIDENCE`] bytes). And damage that one flipped bit explains is
//! damage, whatever else the bytes show.

/// Sector size the media is assumed to tear at.
pub(crate) const SECTOR_BYTES: usize = 512;

/// A run of zero bytes this long never occurs inside a frame this build writes: free text
/// holds no NUL (an admission rule), and every other field breaks a zero run within a few
/// dozen bytes (`tests::frames_hold_no_long_zero_runs` checks the encoder).
pub(crate) const ZERO_RUN_EVIDENCE: usize = 64;

/// A frame ends with its last record's stream version (a `u64`, at least 1), so at most seven
/// zero bytes end a frame.
pub(crate) const TRAILING_ZEROS_EVIDENCE: usize = 8;

/// The reflected CRC32C polynomial, and its byte table, for locating single-bit errors.
const POLY: u32 = 0x82f6_3b78;
const TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// The bit (byte index, bit index) whose flip would make `crc32c(data)` equal `expected`, if
/// one does: proof that the damage is a flipped bit, not a torn write. Linear in `data`.
///
/// CRC32C is linear: flipping bits changes the checksum by the checksum (without initial and
/// final inversion) of the flipped bits alone, so for each bit it suffices to compare that
/// contribution, walked back from the end one zero byte at a time, with the difference seen.
pub(crate) fn single_bit_flip(data: &[u8], expected: u32) -> Option<(usize, u8)> {
    let syndrome = crc32c::crc32c(data) ^ expected;
    if syndrome == 0 {
        return None;
    }
    let mut regs: [u32; 8] = std::array::from_fn(|b| TABLE[1usize << b]);
    for distance in 0..data.len() {
        if let Some(bit) = regs.iter().position(|&r| r == syndrome) {
            return Some((data.len() - 1 - distance, bit as u8));
        }
        for r in &mut regs {
            *r = (*r >> 8) ^ TABLE[(*r & 0xff) as usize];
        }
    }
    None
}

/// Whether the frame occupying `bytes[start..end]` (`end` within `bytes`) shows a torn write's
/// zeros: some aligned sector's share of it is all zero and either begins at the frame's first
/// byte (never zero: the frame magic), is at least [`ZERO_RUN_EVIDENCE`] long, or ends at the
/// frame's end and is at least [`TRAILING_ZEROS_EVIDENCE`] long.
pub(crate) fn torn_zeros(bytes: &[u8], start: usize, end: usize) -> bool {
    let end = end.min(bytes.len());
    let mut s = start / SECTOR_BYTES * SECTOR_BYTES;
    while s < end {
        let (a, b) = (s.max(start), (s + SECTOR_BYTES).min(end));
        if a < b && bytes[a..b].iter().all(|&x| x == 0) {
            let len = b - a;
            if a == start || len >= ZERO_RUN_EVIDENCE || (b == end && len >= TRAILING_ZEROS_EVIDENCE) {
                return true;
            }
        }
        s += SECTOR_BYTES;
    }
    false
}

/// Where a torn sector begins inside the frame header at `bytes[at..at + header_len]`,
/// counted from the header's start: the first sector boundary inside the header, when the
/// bytes from it on are zero for at least [`ZERO_RUN_EVIDENCE`] bytes (to the sector's end or
/// beyond). Those bytes were never written: they held the header's last bytes and its payload,
/// which a frame never holds as such a run. A one-bit difference located there is a written
/// byte that had one bit set, zeroed by the tear, not a flipped bit.
pub(crate) fn torn_inside_header(bytes: &[u8], at: usize, header_len: usize) -> Option<usize> {
    let boundary = (at + 1).next_multiple_of(SECTOR_BYTES);
    if boundary >= at + header_len {
        return None;
    }
    let zeros = bytes.get(boundary..)?.iter().take(SECTOR_BYTES).take_while(|&&b| b == 0).count();
    (zeros >= ZERO_RUN_EVIDENCE).then_some(boundary - at)
}

/// The longest run of zero bytes in `bytes`.
pub(crate) fn longest_zero_run(bytes: &[u8]) -> usize {
    let (mut best, mut run) = (0, 0);
    for &b in bytes {
        run = if b == 0 { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut rng = rapport_core::testing::synth::SplitMix64::new(seed);
        (0..n).map(|_| rng.below(256) as u8).collect()
    }

    #[test]
    fn every_single_flipped_bit_is_located() {
        for (n, seed) in [(1usize, 1u64), (7, 2), (64, 3), (1_000, 4), (16_384, 5)] {
            let data = noise(n, seed);
            let crc = crc32c::crc32c(&data);
            let mut rng = rapport_core::testing::synth::SplitMix64::new(seed);
            for _ in 0..50 {
                let (at, bit) = (rng.below(n as u32) as usize, rng.below(8) as u8);
                let mut bad = data.clone();
                bad[at] ^= 1 << bit;
                assert_eq!(single_bit_flip(&bad, crc), Some((at, bit)), "n {n}");
            }
            assert_eq!(single_bit_flip(&data, crc), None, "nothing to fix");
        }
    }

    #[test]
    fn zeroed_sectors_are_evidence_only_where_a_frame_holds_no_zeros() {
        let mut bytes = vec![0x5au8; 2_000];
        // A frame from 100 to 1_500; the sector 512..1024 zeroed whole: evidence.
        bytes[512..1024].fill(0);
        assert!(torn_zeros(&bytes, 100, 1_500));
        // A short zero run in the middle is not.
        let mut bytes = vec![0x5au8; 2_000];
        bytes[600..640].fill(0);
        assert!(!torn_zeros(&bytes, 100, 1_500));
        // The frame's first bytes, up to a sector boundary: evidence however short.
        let mut bytes = vec![0x5au8; 2_000];
        bytes[510..512].fill(0);
        assert!(torn_zeros(&bytes, 510, 1_500));
        // The frame's last eight bytes, from a boundary: evidence; seven are not.
        let mut bytes = vec![0x5au8; 2_000];
        bytes[1_024..1_032].fill(0);
        assert!(torn_zeros(&bytes, 100, 1_032));
        assert!(!torn_zeros(&bytes, 100, 1_031));
    }
}

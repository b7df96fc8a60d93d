//! Derived state in bytes: what a saved index, snapshot or runner checkpoint carries so that a
//! loader can tell good state from stale, foreign or damaged state before trusting it. The log
//! stays the only truth; anything that fails these checks is rebuilt from it.
//!
//! ```text
//! bytes 0..8    kind        what this is (e.g. b"RUNNERCK")
//!       8..12   version     u32 LE: the payload's format version
//!       12..28  log id      the log it was derived from
//!       28..36  position    u64 LE: the log position it covers (everything before it)
//!       36..44  fingerprint u64 LE: of what derived it (a model, a format)
//!       44..52  length      u64 LE: the payload's length
//!       52..    payload
//!       last 4  CRC32C      over everything before it
//! ```
//!
//! No I/O here: a store writes the sealed bytes atomically (write, sync, rename, sync the
//! directory) and reads them back whole ([`open`]), or in parts ([`open_header`] for the
//! first [`HEADER_BYTES`], the payload decoded as it is read, then the CRC32C of every byte
//! before the last four compared with them).

use thiserror::Error;

use crate::id::Position;

/// The header's length: the payload begins here.
pub const HEADER_BYTES: usize = 52;

/// What a piece of derived state says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DerivedHeader {
    /// What this is.
    pub kind: [u8; 8],
    /// The payload's format version.
    pub version: u32,
    /// The log it was derived from.
    pub log_id: [u8; 16],
    /// The position it covers: everything before it.
    pub position: Position,
    /// A fingerprint of what derived it (a scoring model, say).
    pub fingerprint: u64,
}

/// Why bytes are not usable derived state.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DerivedError {
    /// Shorter than a header and a checksum, or than the length the header gives.
    #[error("cut short: {len} bytes")]
    Truncated {
        /// How many there were.
        len: usize,
    },
    /// The checksum does not match: damaged.
    #[error("checksum mismatch: damaged")]
    Checksum,
    /// Another kind of derived state.
    #[error("not {expected}: found {found}")]
    Kind {
        /// The kind expected, as text.
        expected: String,
        /// The kind found, as text (escaped).
        found: String,
    },
    /// A format version this build does not read.
    #[error("format version {found}; this build reads {expected}")]
    Version {
        /// Found.
        found: u32,
        /// Read by this build.
        expected: u32,
    },
}

/// `payload` behind its header, with a checksum over both.
pub fn seal(header: &DerivedHeader, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SEAL_ROOM + payload.len());
    out.extend_from_slice(&header_bytes(header, payload.len()));
    out.extend_from_slice(payload);
    finish(header, &mut out);
    out
}

/// Bytes [`seal_in_place`] adds around a payload besides its first part: with this much
/// spare capacity (and that part's length), it moves the payload within its buffer instead of
/// copying it to a larger one.
pub const SEAL_ROOM: usize = HEADER_BYTES + 4;

/// [`seal`]'s bytes for the payload `first` then `rest`, made where `rest` lies: the header
/// and `first` are put in front of it and the checksum behind. For a large payload (a store's
/// index snapshot) whose buffer has [`SEAL_ROOM`] plus `first`'s length of spare capacity, no
/// second copy of it is made. Returns where `rest`'s bytes begin in the sealed bytes.
pub fn seal_in_place(header: &DerivedHeader, first: &[u8], rest: &mut Vec<u8>) -> usize {
    let front = header_bytes(header, first.len() + rest.len());
    rest.splice(0..0, front.iter().chain(first).copied());
    finish(header, rest);
    HEADER_BYTES + first.len()
}

/// A sealed header for a payload of `len` bytes.
fn header_bytes(header: &DerivedHeader, len: usize) -> [u8; HEADER_BYTES] {
    let mut b = [0u8; HEADER_BYTES];
    b[..8].copy_from_slice(&header.kind);
    b[8..12].copy_from_slice(&header.version.to_le_bytes());
    b[12..28].copy_from_slice(&header.log_id);
    b[28..36].copy_from_slice(&header.position.0.to_le_bytes());
    b[36..44].copy_from_slice(&header.fingerprint.to_le_bytes());
    b[44..52].copy_from_slice(&(len as u64).to_le_bytes());
    b
}

/// Appends the checksum over `out`, a header and its payload.
fn finish(header: &DerivedHeader, out: &mut Vec<u8>) {
    let crc = crc32c::crc32c(out);
    out.extend_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(
        open(out, header.kind, header.version).map(|(h, p)| (h, p.len())),
        Ok((*header, out.len() - SEAL_ROOM))
    );
}

/// Checks sealed `bytes` (whole, of `kind`, in `version`) and returns their header and payload.
/// The caller then judges the header: its log, its position, its fingerprint.
///
/// # Errors
/// [`DerivedError`]: damaged, cut short, or not this kind or version.
pub fn open(bytes: &[u8], kind: [u8; 8], version: u32) -> Result<(DerivedHeader, &[u8]), DerivedError> {
    if bytes.len() < HEADER_BYTES + 4 {
        return Err(DerivedError::Truncated { len: bytes.len() });
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body).to_le_bytes() != crc {
        return Err(DerivedError::Checksum);
    }
    let header = open_header(body, kind, version, bytes.len() as u64)?;
    Ok((header, &body[HEADER_BYTES..]))
}

/// Checks the header at the start of `body`, sealed bytes `len` bytes long in all (header,
/// payload, checksum), without the checksum: for a reader that reads the payload in parts and
/// compares the CRC32C of everything before the last four bytes with them at the end.
///
/// # Errors
/// [`DerivedError`]: cut short (`body` shorter than a header, or `len` not the header's length
/// plus the payload's it gives plus four), or not this kind or version.
pub fn open_header(body: &[u8], kind: [u8; 8], version: u32, len: u64) -> Result<DerivedHeader, DerivedError> {
    let truncated = DerivedError::Truncated { len: usize::try_from(len).unwrap_or(usize::MAX) };
    if body.len() < HEADER_BYTES {
        return Err(truncated);
    }
    let u64_at = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&body[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let mut found = [0u8; 8];
    found.copy_from_slice(&body[0..8]);
    if found != kind {
        let text = |k: &[u8]| crate::escape::one_line(&String::from_utf8_lossy(k)).into_owned();
        return Err(DerivedError::Kind { expected: text(&kind), found: text(&found) });
    }
    let mut v = [0u8; 4];
    v.copy_from_slice(&body[8..12]);
    let found_version = u32::from_le_bytes(v);
    if found_version != version {
        return Err(DerivedError::Version { found: found_version, expected: version });
    }
    let mut log_id = [0u8; 16];
    log_id.copy_from_slice(&body[12..28]);
    let header = DerivedHeader { kind, version, log_id, position: Position(u64_at(28)), fingerprint: u64_at(36) };
    if u64_at(44).checked_add(HEADER_BYTES as u64 + 4) != Some(len) {
        return Err(truncated);
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_state_opens_and_any_damage_is_refused() {
        let header =
            DerivedHeader { kind: *b"TESTKIND", version: 3, log_id: [7; 16], position: Position(42), fingerprint: 9 };
        let bytes = seal(&header, b"payload");
        assert_eq!(open(&bytes, *b"TESTKIND", 3), Ok((header, &b"payload"[..])));
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                assert!(open(&b, *b"TESTKIND", 3).is_err(), "flip at {i}.{bit}");
            }
        }
        for len in 0..bytes.len() {
            assert!(open(&bytes[..len], *b"TESTKIND", 3).is_err(), "cut at {len}");
        }
        assert!(matches!(open(&bytes, *b"OTHERKND", 3), Err(DerivedError::Kind { .. })));
        assert_eq!(open(&bytes, *b"TESTKIND", 4), Err(DerivedError::Version { found: 3, expected: 4 }));
    }

    /// Sealing a payload where it lies, its first part put in front, gives [`seal`]'s bytes,
    /// and with [`SEAL_ROOM`] bytes and that part's of spare capacity it stays in its buffer.
    #[test]
    fn a_payload_sealed_in_place_is_sealed_alike_without_moving() {
        let header =
            DerivedHeader { kind: *b"TESTKIND", version: 1, log_id: [3; 16], position: Position(7), fingerprint: 0 };
        for len in [0, 1, 52, 1_000, 100_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            for split in [0, len / 3, len] {
                let (first, rest) = payload.split_at(split);
                let mut in_place = Vec::with_capacity(SEAL_ROOM + len);
                in_place.extend_from_slice(rest);
                let buffer = in_place.as_ptr();
                let rest_at = seal_in_place(&header, first, &mut in_place);
                assert_eq!(in_place, seal(&header, &payload), "{len} bytes, {split} in front");
                assert_eq!(
                    &in_place[rest_at..rest_at + rest.len()],
                    rest,
                    "{len} bytes, {split} in front: where the rest lies"
                );
                assert_eq!(in_place.as_ptr(), buffer, "{len} bytes, {split} in front: sealed where it lay");
            }
        }
    }
}

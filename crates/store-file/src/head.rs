//! `HEAD`: the store's durable record of what its log is known to hold — the last segment and
//! the last acknowledged position — so that open notices a log that lost its end (a deleted
//! segment, a truncated file, damage in acknowledged data) instead of taking it for a torn
//! write and cutting it. Layout and rules: `docs/log-format.md`, "The head record".

use std::io;
use std::path::{Path, PathBuf};

use crate::format::{Chain, FORMAT_VERSION, FORMAT_VERSION_1, FORMAT_VERSION_2, FORMAT_VERSION_3};
use crate::vfs::{Vfs, read_exact_at};

/// The head record's file name in the store's directory.
pub const HEAD_FILE: &str = "HEAD";
/// Where a new head record is written before it is renamed over [`HEAD_FILE`].
pub(crate) const HEAD_TMP_FILE: &str = "HEAD.tmp";

const HEAD_MAGIC: [u8; 8] = *b"RAPPHEAD";
/// Bytes in the head record of a version-1 log (record version 1: a CRC32C chain value).
pub(crate) const HEAD_BYTES_V1: usize = 64;
/// Bytes in the head record of a version-2 log (record version 2: a BLAKE3 chain value).
pub(crate) const HEAD_BYTES: usize = 96;

/// What the log is known to hold: every segment up to `last_segment` exists, and every event
/// up to `position` was acknowledged, the frame ending there leaving the chain at `chain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadRecord {
    /// The log's format version, which is also the record's (1: 64 bytes, 2: 96 bytes).
    pub version: u32,
    /// The log's id, as in every segment header.
    pub log_id: [u8; 16],
    /// The number of the last segment the log had.
    pub last_segment: u64,
    /// The last acknowledged position (0 for an empty log).
    pub position: u64,
    /// The chain value after the frame that ends at `position` ([`Chain::START`] when
    /// `position` is 0): ties the record to this history, not merely to a log of this length.
    pub chain: Chain,
}

impl HeadRecord {
    /// The record's bytes: 64 for version 1, 96 for versions 2 to 4.
    pub fn encode(&self) -> Vec<u8> {
        let v1 = self.version == FORMAT_VERSION_1;
        let len = if v1 { HEAD_BYTES_V1 } else { HEAD_BYTES };
        let mut b = vec![0u8; len];
        b[0..8].copy_from_slice(&HEAD_MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..28].copy_from_slice(&self.log_id);
        b[28..36].copy_from_slice(&self.last_segment.to_le_bytes());
        b[36..44].copy_from_slice(&self.position.to_le_bytes());
        if v1 {
            b[44..48].copy_from_slice(&self.chain.as_crc().to_le_bytes());
        } else {
            b[44..76].copy_from_slice(&self.chain.0);
        }
        let crc = crc32c::crc32c(&b[..len - 4]);
        b[len - 4..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a record of either version.
    ///
    /// # Errors
    /// What is wrong with the bytes.
    pub fn decode(b: &[u8]) -> Result<Self, String> {
        if b.len() != HEAD_BYTES_V1 && b.len() != HEAD_BYTES {
            return Err(format!("{} bytes, expected {HEAD_BYTES_V1} or {HEAD_BYTES}", b.len()));
        }
        if b[0..8] != HEAD_MAGIC {
            return Err("not a head record (bad magic)".into());
        }
        let word = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let long = |at: usize| u64::from(word(at)) | (u64::from(word(at + 4)) << 32);
        let len = b.len();
        if crc32c::crc32c(&b[..len - 4]) != word(len - 4) {
            return Err("checksum mismatch".into());
        }
        let version = word(8);
        let expected_len = match version {
            FORMAT_VERSION_1 => HEAD_BYTES_V1,
            FORMAT_VERSION_2 | FORMAT_VERSION_3 | FORMAT_VERSION => HEAD_BYTES,
            other => return Err(format!("version {other}; this build reads {FORMAT_VERSION_1} to {FORMAT_VERSION}")),
        };
        if len != expected_len {
            return Err(format!("a version-{version} head record is {expected_len} bytes, not {len}"));
        }
        let reserved = if version == FORMAT_VERSION_1 { 48 } else { 76 };
        if b[reserved..len - 4].iter().any(|&x| x != 0) {
            return Err(format!("reserved bytes {reserved}..{} are not zero", len - 4));
        }
        let mut log_id = [0u8; 16];
        log_id.copy_from_slice(&b[12..28]);
        let chain = if version == FORMAT_VERSION_1 {
            Chain::crc(word(44))
        } else {
            let mut c = [0u8; 32];
            c.copy_from_slice(&b[44..76]);
            Chain(c)
        };
        Ok(Self { version, log_id, last_segment: long(28), position: long(36), chain })
    }
}

/// The head record of the store in `dir`: `Ok(None)` when there is none.
///
/// # Errors
/// The path and what is wrong: unreadable, or not a valid record.
pub(crate) fn read(vfs: &dyn Vfs, dir: &Path) -> Result<Option<HeadRecord>, (PathBuf, String)> {
    let path = dir.join(HEAD_FILE);
    if !vfs.exists(&path) {
        return Ok(None);
    }
    let fail = |why: String| (path.clone(), why);
    let f = vfs.open_read(&path).map_err(|e| fail(e.to_string()))?;
    let len = f.size().map_err(|e| fail(e.to_string()))?;
    if len != HEAD_BYTES as u64 && len != HEAD_BYTES_V1 as u64 {
        return Err(fail(format!("{len} bytes, expected {HEAD_BYTES_V1} or {HEAD_BYTES}")));
    }
    let mut b = vec![0u8; len as usize];
    read_exact_at(&*f, &mut b, 0).map_err(|e| fail(e.to_string()))?;
    HeadRecord::decode(&b).map(Some).map_err(fail)
}

/// Replaces the head record durably: written beside it, synced, renamed over it, and the
/// directory synced. A crash at any point leaves the old record or the new one.
///
/// # Errors
/// I/O errors, with what was being done.
pub(crate) fn write(vfs: &dyn Vfs, dir: &Path, record: &HeadRecord) -> Result<(), (&'static str, io::Error)> {
    let tmp = dir.join(HEAD_TMP_FILE);
    if vfs.exists(&tmp) {
        vfs.remove(&tmp).map_err(|e| ("remove the stale HEAD.tmp", e))?;
    }
    let mut f = vfs.open_append(&tmp, true).map_err(|e| ("create HEAD.tmp", e))?;
    let bytes = record.encode();
    debug_assert_eq!(HeadRecord::decode(&bytes).as_ref(), Ok(record), "the head record round-trips");
    f.append(&bytes).map_err(|e| ("write HEAD.tmp", e))?;
    f.sync_data().map_err(|e| ("fsync HEAD.tmp", e))?;
    drop(f);
    vfs.rename(&tmp, &dir.join(HEAD_FILE)).map_err(|e| ("rename HEAD.tmp to HEAD", e))?;
    vfs.sync_dir(dir).map_err(|e| ("fsync the store directory", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_any_flipped_bit_in_both_versions() {
        let mut chain = Chain([0; 32]);
        chain.0.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8 * 7 + 1);
        let records = [
            HeadRecord {
                version: 1,
                log_id: [7; 16],
                last_segment: 3,
                position: 123_456,
                chain: Chain::crc(0xdead_beef),
            },
            HeadRecord { version: 2, log_id: [7; 16], last_segment: 3, position: 123_456, chain },
        ];
        for r in records {
            let bytes = r.encode();
            assert_eq!(bytes.len(), if r.version == 1 { HEAD_BYTES_V1 } else { HEAD_BYTES });
            assert_eq!(HeadRecord::decode(&bytes), Ok(r));
            for bit in 0..bytes.len() * 8 {
                let mut b = bytes.clone();
                b[bit / 8] ^= 1 << (bit % 8);
                assert!(HeadRecord::decode(&b).is_err(), "a flip of bit {bit} is caught (version {})", r.version);
            }
            assert!(HeadRecord::decode(&bytes[..bytes.len() - 1]).is_err());
        }
    }

    #[test]
    fn refuses_reserved_bytes_that_are_not_zero_even_under_a_good_checksum() {
        for (version, at, reason) in
            [(1, 55, "reserved bytes 48..60 are not zero"), (2, 80, "reserved bytes 76..92 are not zero")]
        {
            let mut b =
                HeadRecord { version, log_id: [1; 16], last_segment: 0, position: 0, chain: Chain::START }.encode();
            b[at] = 1;
            let len = b.len();
            let crc = crc32c::crc32c(&b[..len - 4]);
            b[len - 4..].copy_from_slice(&crc.to_le_bytes());
            assert_eq!(HeadRecord::decode(&b), Err(reason.to_string()));
        }
    }

    #[test]
    fn a_record_whose_size_does_not_match_its_version_is_refused() {
        let mut b =
            HeadRecord { version: 2, log_id: [1; 16], last_segment: 0, position: 0, chain: Chain::START }.encode();
        b[8..12].copy_from_slice(&1u32.to_le_bytes());
        let len = b.len();
        let crc = crc32c::crc32c(&b[..len - 4]);
        b[len - 4..].copy_from_slice(&crc.to_le_bytes());
        assert!(HeadRecord::decode(&b).unwrap_err().contains("is 64 bytes, not 96"));
    }
}

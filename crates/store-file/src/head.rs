//! `HEAD`: the store's durable record of what its log is known to hold — the last segment and
//! the last acknowledged position — so that open notices a log that lost its end (a deleted
//! segment, a truncated file, damage in acknowledged data) instead of taking it for a torn
//! write and cutting it. Layout and rules: `docs/log-format.md`, "The head record".

use std::io;
use std::path::{Path, PathBuf};

use crate::vfs::{Vfs, read_exact_at};

/// The head record's file name in the store's directory.
pub const HEAD_FILE: &str = "HEAD";
/// Where a new head record is written before it is renamed over [`HEAD_FILE`].
pub(crate) const HEAD_TMP_FILE: &str = "HEAD.tmp";

const HEAD_MAGIC: [u8; 8] = *b"RAPPHEAD";
const HEAD_VERSION: u32 = 1;
/// Bytes in a head record.
pub(crate) const HEAD_BYTES: usize = 64;

/// What the log is known to hold: every segment up to `last_segment` exists, and every event
/// up to `position` was acknowledged, the frame ending there having payload checksum `chain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadRecord {
    /// The log's id, as in every segment header.
    pub log_id: [u8; 16],
    /// The number of the last segment the log had.
    pub last_segment: u64,
    /// The last acknowledged position (0 for an empty log).
    pub position: u64,
    /// The payload checksum of the frame that ends at `position` (0 when `position` is 0):
    /// ties the record to this history, not merely to a log of this length.
    pub chain: u32,
}

impl HeadRecord {
    /// The record's 64 bytes.
    pub fn encode(&self) -> [u8; HEAD_BYTES] {
        let mut b = [0u8; HEAD_BYTES];
        b[0..8].copy_from_slice(&HEAD_MAGIC);
        b[8..12].copy_from_slice(&HEAD_VERSION.to_le_bytes());
        b[12..28].copy_from_slice(&self.log_id);
        b[28..36].copy_from_slice(&self.last_segment.to_le_bytes());
        b[36..44].copy_from_slice(&self.position.to_le_bytes());
        b[44..48].copy_from_slice(&self.chain.to_le_bytes());
        let crc = crc32c::crc32c(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a record.
    ///
    /// # Errors
    /// What is wrong with the bytes.
    pub fn decode(b: &[u8]) -> Result<Self, String> {
        if b.len() != HEAD_BYTES {
            return Err(format!("{} bytes, expected {HEAD_BYTES}", b.len()));
        }
        if b[0..8] != HEAD_MAGIC {
            return Err("not a head record (bad magic)".into());
        }
        let word = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let long = |at: usize| u64::from(word(at)) | (u64::from(word(at + 4)) << 32);
        if crc32c::crc32c(&b[..60]) != word(60) {
            return Err("checksum mismatch".into());
        }
        if word(8) != HEAD_VERSION {
            return Err(format!("version {}; this build reads {HEAD_VERSION}", word(8)));
        }
        if b[48..60].iter().any(|&x| x != 0) {
            return Err("reserved bytes 48..60 are not zero".into());
        }
        let mut log_id = [0u8; 16];
        log_id.copy_from_slice(&b[12..28]);
        Ok(Self { log_id, last_segment: long(28), position: long(36), chain: word(44) })
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
    if len != HEAD_BYTES as u64 {
        return Err(fail(format!("{len} bytes, expected {HEAD_BYTES}")));
    }
    let mut b = [0u8; HEAD_BYTES];
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
    fn round_trips_and_refuses_any_flipped_bit() {
        let r = HeadRecord { log_id: [7; 16], last_segment: 3, position: 123_456, chain: 0xdead_beef };
        let bytes = r.encode();
        assert_eq!(HeadRecord::decode(&bytes), Ok(r));
        for bit in 0..HEAD_BYTES * 8 {
            let mut b = bytes;
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(HeadRecord::decode(&b).is_err(), "a flip of bit {bit} is caught");
        }
        assert!(HeadRecord::decode(&bytes[..63]).is_err());
    }

    #[test]
    fn refuses_reserved_bytes_that_are_not_zero_even_under_a_good_checksum() {
        let mut b = HeadRecord { log_id: [1; 16], last_segment: 0, position: 0, chain: 0 }.encode();
        b[55] = 1;
        let crc = crc32c::crc32c(&b[..60]);
        b[60..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(HeadRecord::decode(&b), Err("reserved bytes 48..60 are not zero".to_string()));
    }
}

//! The key file's bytes: its header, its records (keys, and erasures) and how they are read
//! and written (`docs/log-format.md`, "The key file"). What the keys mean is [`super`]'s.

use std::path::Path;

use rapport_core::seal::{KEY_BYTES, SealKey};
use rapport_core::{AccountId, Timestamp};

use super::{ErasureRecord, FileEnd, KEYS_FILE, KEYS_TMP_FILE, KeysError};
use crate::leb128::put as put_varint;
use crate::vfs::{ReadFile, Vfs, read_exact_at};

pub(super) const MAGIC: [u8; 8] = *b"RPKEYS01";
pub(super) const VERSION: u32 = 1;
pub(super) const HEADER_BYTES: usize = 32;
/// A record's length and CRC32C.
pub(super) const RECORD_PREFIX: usize = 8;
/// The largest key file read or written (a rewrite holds every key in one record), so that
/// a key's place in the file fits in a `u32`.
pub(super) const FILE_BYTES_MAX: u64 = u32::MAX as u64;
pub(super) const KIND_KEYS: u8 = 1;
pub(super) const KIND_ERASURE: u8 = 2;

pub(super) fn put_text(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len()).ok_or("a field overruns its record")?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn varint(&mut self) -> Result<u64, String> {
        let (v, used) = crate::leb128::get(&self.b[self.at..]).ok_or("a varint overruns its record")?;
        self.at += used;
        Ok(v)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap_or_default()))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_le_bytes(self.take(4)?.try_into().unwrap_or_default()))
    }
    fn text(&mut self) -> Result<&'a str, String> {
        utf8(self.text_bytes()?)
    }
    fn text_bytes(&mut self) -> Result<&'a [u8], String> {
        let n = usize::try_from(self.varint()?).map_err(|_| "a text length too large")?;
        self.take(n)
    }
}

/// `b` as text, which a key file's texts must be.
pub(super) fn utf8(b: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(b).map_err(|e| format!("a text that is not UTF-8 ({e})"))
}

/// One key's entry in a record of keys.
pub(super) struct Entry<'a> {
    pub(super) id: u32,
    pub(super) month: i32,
    /// Its account's text as written, not yet checked as UTF-8 ([`utf8`]): a reader checks
    /// each account's text once, however many keys name it.
    pub(super) account: &'a [u8],
    /// Where its key starts in the body.
    pub(super) key_at: usize,
}

/// Calls `each` on every entry of a record of keys, `body` (its kind byte first).
pub(super) fn entries<'a>(body: &'a [u8], mut each: impl FnMut(Entry<'a>) -> Result<(), String>) -> Result<(), String> {
    let mut c = Cursor { b: body, at: 1 };
    while c.at < body.len() {
        let id = c.u32()?;
        let month = c.i32()?;
        let account = c.text_bytes()?;
        let key_at = c.at;
        c.take(KEY_BYTES)?;
        each(Entry { id, month, account, key_at })?;
    }
    Ok(())
}

/// Calls `each` on every whole record of the key file `b` (its header checked) with the byte
/// its body starts at, and says how the file ends.
pub(super) fn records<'a>(
    b: &'a [u8],
    log_id: [u8; 16],
    mut each: impl FnMut(usize, &'a [u8]) -> Result<(), String>,
) -> Result<FileEnd, String> {
    if b.len() < HEADER_BYTES || b.len() as u64 > FILE_BYTES_MAX {
        return Err(format!("{} bytes is no key file", b.len()));
    }
    check_header(b, log_id)?;
    let mut at = HEADER_BYTES;
    while at < b.len() {
        let Some((body, end)) = record_at(b, at) else {
            return after_bad_record(b, at, 0);
        };
        each(at + RECORD_PREFIX, body).map_err(|why| format!("byte {at}: {why}"))?;
        at = end;
    }
    Ok(FileEnd::Whole)
}

/// [`records`] over the key file `file`, `size` bytes long, read `window` bytes at a time:
/// the same calls, the same end, the same refusals, with no more of the file in memory at
/// once than a window or the largest record (an erasure's rewrite holds every key in one).
/// The next window starts at the first record the last one did not hold whole; when not one
/// was, it holds that record whole (its prefix says how long it is), or else reaches the
/// file's end, where a bad record is judged as [`records`] judges it.
///
/// # Errors
/// As [`records`] ([`KeysError::Damaged`]), or a failed read.
pub(super) fn records_from(
    file: &dyn ReadFile,
    size: usize,
    log_id: [u8; 16],
    window: usize,
    mut each: impl FnMut(usize, &[u8]) -> Result<(), String>,
) -> Result<FileEnd, KeysError> {
    if size < HEADER_BYTES || size as u64 > FILE_BYTES_MAX {
        return Err(KeysError::Damaged(format!("{size} bytes is no key file")));
    }
    let read = |buf: &mut [u8], at: usize| read_exact_at(file, buf, at as u64).map_err(|e| KeysError::Io("read", e));
    let mut buf = vec![0u8; HEADER_BYTES];
    read(&mut buf, 0)?;
    check_header(&buf, log_id).map_err(KeysError::Damaged)?;
    let (mut at, mut want) = (HEADER_BYTES, window);
    while at < size {
        let len = want.min(size - at);
        if buf.len() < len {
            buf.resize(len, 0);
        }
        read(&mut buf[..len], at)?;
        let b = &buf[..len];
        let mut k = 0;
        while let Some((body, end)) = record_at(b, k) {
            each(at + k + RECORD_PREFIX, body).map_err(|why| KeysError::Damaged(format!("byte {}: {why}", at + k)))?;
            k = end;
        }
        if at + len == size {
            return if k == len { Ok(FileEnd::Whole) } else { after_bad_record(b, k, at).map_err(KeysError::Damaged) };
        }
        want = match declared_len(&b[k..]) {
            _ if k > 0 => window,
            Some(n) if n > len => n,
            _ => usize::MAX,
        };
        at += k;
    }
    Ok(FileEnd::Whole)
}

/// Checks a key file's header: its magic, checksum, version and log.
fn check_header(b: &[u8], log_id: [u8; 16]) -> Result<(), String> {
    if b[..8] != MAGIC || crc32c::crc32c(&b[..28]).to_le_bytes() != b[28..32] {
        return Err("the header is not a key file's (magic or checksum)".into());
    }
    let version = u32::from_le_bytes(b[8..12].try_into().unwrap_or_default());
    if version != VERSION {
        return Err(format!("key file version {version}; this build reads {VERSION}"));
    }
    if b[12..28] != log_id {
        return Err("the key file belongs to another log".into());
    }
    Ok(())
}

/// How a key file ends with no whole record at `at` of `b`, bytes that start at byte `base`
/// of the file and reach its end. Each append is one record, synced before the next: a crash
/// tears only the last, and nothing valid follows it. A valid record after a bad one means
/// the bad one was synced once: damage, which is never cut.
fn after_bad_record(b: &[u8], at: usize, base: usize) -> Result<FileEnd, String> {
    if let Some(next) = (at + 1..b.len()).find(|&n| record_at(b, n).is_some()) {
        return Err(format!("byte {}: a damaged record, and a valid one at byte {} after it", base + at, base + next));
    }
    Ok(FileEnd::Torn(base + at))
}

/// The length, prefix included, that the record starting `b` says it has, if `b` holds its
/// prefix.
fn declared_len(b: &[u8]) -> Option<usize> {
    let len = u32::from_le_bytes(b.get(..4)?.try_into().ok()?);
    RECORD_PREFIX.checked_add(len as usize)
}

/// The record at byte `at` of the file `b`, and where it ends, if one is there whole: a
/// length of at least one byte, within the file, its checksum right, a known kind.
pub(super) fn record_at(b: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let prefix = b.get(at..at.checked_add(RECORD_PREFIX)?)?;
    let len = u32::from_le_bytes(prefix[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(prefix[4..].try_into().ok()?);
    let end = (at + RECORD_PREFIX).checked_add(len)?;
    let body = b.get(at + RECORD_PREFIX..end)?;
    (len >= 1 && matches!(body[0], KIND_KEYS | KIND_ERASURE) && crc32c::crc32c(body) == crc).then_some((body, end))
}

pub(super) fn header(log_id: [u8; 16]) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_BYTES);
    h.extend_from_slice(&MAGIC);
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.extend_from_slice(&log_id);
    let crc = crc32c::crc32c(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

pub(super) fn record(body: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(RECORD_PREFIX + body.len());
    r.extend_from_slice(&(body.len() as u32).to_le_bytes());
    r.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    r.extend_from_slice(body);
    r
}

/// A record of keys: each with its id, month and account.
pub(super) fn keys_body<'k>(keys: impl Iterator<Item = (u32, i32, &'k str, &'k SealKey)>) -> Vec<u8> {
    let mut body = vec![KIND_KEYS];
    for (id, month, account, key) in keys {
        body.extend_from_slice(&id.to_le_bytes());
        body.extend_from_slice(&month.to_le_bytes());
        put_text(&mut body, account);
        body.extend_from_slice(key.as_bytes());
    }
    body
}

pub(super) fn erasure_body(e: &ErasureRecord) -> Vec<u8> {
    let mut body = vec![KIND_ERASURE];
    body.extend_from_slice(&e.at.unix_nanos().to_le_bytes());
    match &e.account {
        Some(a) => {
            body.push(1);
            put_text(&mut body, a.as_str());
        }
        None => body.push(0),
    }
    body.extend_from_slice(&e.month_below.to_le_bytes());
    put_text(&mut body, &e.reason);
    put_varint(&mut body, e.keys.len() as u64);
    let mut last = 0u32;
    for &id in &e.keys {
        put_varint(&mut body, u64::from(id - last));
        last = id;
    }
    body
}

/// The erasure a record of that kind, `body` (its kind byte first), holds; its key ids are
/// at most `id_bound` ([`Keys`](super::Keys)).
pub(super) fn erasure(body: &[u8], id_bound: usize) -> Result<ErasureRecord, String> {
    let mut c = Cursor { b: body, at: 1 };
    let at = Timestamp::from_unix_nanos(i64::from_le_bytes(c.take(8)?.try_into().unwrap_or_default()));
    let account = match c.take(1)?[0] {
        0 => None,
        1 => Some(AccountId::new(c.text()?).map_err(|e| format!("erasure: account: {e}"))?),
        other => return Err(format!("erasure: account flag {other}")),
    };
    let month_below = c.i32()?;
    let reason = c.text()?.to_owned();
    let n = c.varint()?;
    let mut keys = Vec::with_capacity(n.min(1 << 20) as usize);
    let mut last = 0u64;
    for _ in 0..n {
        last = last.checked_add(c.varint()?).ok_or("erasure: a key id over 2^64")?;
        if last > id_bound as u64 {
            return Err(format!("erasure: key id {last} is past what a key file of {id_bound} bytes names"));
        }
        keys.push(u32::try_from(last).map_err(|_| "erasure: a key id over 2^32")?);
    }
    if c.at != body.len() {
        return Err("erasure: bytes after its last key".into());
    }
    Ok(ErasureRecord { at, account, month_below, reason, keys })
}

/// Writes `bytes` as the key file durably: beside it, synced, renamed over it, the directory
/// synced.
pub(super) fn replace(vfs: &dyn Vfs, dir: &Path, bytes: &[u8]) -> Result<(), (&'static str, std::io::Error)> {
    let tmp = dir.join(KEYS_TMP_FILE);
    if vfs.exists(&tmp) {
        vfs.remove(&tmp).map_err(|e| ("remove the stale KEYS.tmp", e))?;
    }
    let mut f = vfs.open_append(&tmp, true).map_err(|e| ("create KEYS.tmp", e))?;
    f.append(bytes).map_err(|e| ("write KEYS.tmp", e))?;
    f.sync_data().map_err(|e| ("fsync KEYS.tmp", e))?;
    drop(f);
    vfs.rename(&tmp, &dir.join(KEYS_FILE)).map_err(|e| ("rename KEYS.tmp to KEYS", e))?;
    vfs.sync_dir(dir).map_err(|e| ("fsync the store directory", e))
}

//! The key file (`KEYS`): the keys that seal each account's personal text, one per account and
//! key month, kept apart from the segments, and the record of every erasure
//! (`docs/log-format.md`, "The key file"; `docs/privacy.md`).
//!
//! New keys are appended as one record per append and synced before any record sealed under
//! them is handed to the writer, so a logged record never names a key that was not durable.
//! An erasure rewrites the file without the destroyed keys (beside it, synced, renamed over
//! it, the directory synced): a crash leaves the keys or the erasure, never half of one.

use std::path::Path;

use rapport_core::backend::{KeyedMap, KeyedSet};
use rapport_core::seal::{KEY_BYTES, Openers, SealKey};
use rapport_core::{AccountId, Envelope, Interner, TextState, Timestamp};

use crate::format::SealedRef;
use crate::leb128::put as put_varint;

use crate::vfs::{AppendFile, Vfs, read_exact_at};

/// The key file's name in the store directory: the keys that seal personal text.
pub const KEYS_FILE: &str = "KEYS";
/// Where a replacement is written before it is renamed over [`KEYS_FILE`].
pub(crate) const KEYS_TMP_FILE: &str = "KEYS.tmp";
const MAGIC: [u8; 8] = *b"RPKEYS01";
const VERSION: u32 = 1;
const HEADER_BYTES: usize = 32;
/// A record's length and CRC32C.
const RECORD_PREFIX: usize = 8;
/// The largest record read: a rewrite holds every key in one record.
const RECORD_BYTES_MAX: u64 = 1 << 32;
const KIND_KEYS: u8 = 1;
const KIND_ERASURE: u8 = 2;

/// One erasure: an account's keys (`account`), or every key of the months before `before`
/// (a retention run), destroyed at `at` for `reason`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ErasureRecord {
    pub(crate) at: Timestamp,
    pub(crate) account: Option<AccountId>,
    /// Key months below this one were erased (`i32::MAX`: every month).
    pub(crate) month_below: i32,
    pub(crate) reason: String,
    /// The ids of the keys it destroyed, ascending.
    pub(crate) keys: Vec<u32>,
}

struct Key {
    account: AccountId,
    month: i32,
    key: SealKey,
}

/// The keys in memory, and the file they are appended to (a writer's).
pub(crate) struct Keys {
    by_id: KeyedMap<u32, Key>,
    /// Each account's live keys by month (a few dozen at most: a scan beats a map).
    current: KeyedMap<AccountId, Vec<(i32, u32)>>,
    /// The ids of destroyed keys.
    destroyed: KeyedSet<u32>,
    erasures: Vec<ErasureRecord>,
    next_id: u32,
    log_id: [u8; 16],
    /// A mutex only to make the keys `Sync`: the file is written through `&mut self`.
    file: Option<std::sync::Mutex<Box<dyn AppendFile>>>,
    /// The key file has not been read yet ([`Keys::unread`]).
    unread: bool,
}

/// What a sealed record's key is now.
pub(crate) enum Lookup<'k> {
    Key(&'k SealKey),
    /// Destroyed by an erasure.
    Erased,
    /// Not in the key file: damage, or a key file from elsewhere.
    Missing,
}

fn put_text(out: &mut Vec<u8>, s: &str) {
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
        let n = usize::try_from(self.varint()?).map_err(|_| "a text length too large")?;
        std::str::from_utf8(self.take(n)?).map_err(|e| format!("a text that is not UTF-8 ({e})"))
    }
}

/// The record at byte `at` of the file `b`, and where it ends, if one is there whole: a
/// length of at least one byte, within the file, its checksum right, a known kind.
fn record_at(b: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let prefix = b.get(at..at.checked_add(RECORD_PREFIX)?)?;
    let len = u32::from_le_bytes(prefix[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(prefix[4..].try_into().ok()?);
    let end = (at + RECORD_PREFIX).checked_add(len)?;
    let body = b.get(at + RECORD_PREFIX..end)?;
    (len >= 1 && matches!(body[0], KIND_KEYS | KIND_ERASURE) && crc32c::crc32c(body) == crc).then_some((body, end))
}

fn header(log_id: [u8; 16]) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_BYTES);
    h.extend_from_slice(&MAGIC);
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.extend_from_slice(&log_id);
    let crc = crc32c::crc32c(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

fn record(body: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(RECORD_PREFIX + body.len());
    r.extend_from_slice(&(body.len() as u32).to_le_bytes());
    r.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    r.extend_from_slice(body);
    r
}

fn keys_body<'k>(keys: impl Iterator<Item = (u32, &'k Key)>) -> Vec<u8> {
    let mut body = vec![KIND_KEYS];
    for (id, k) in keys {
        body.extend_from_slice(&id.to_le_bytes());
        body.extend_from_slice(&k.month.to_le_bytes());
        put_text(&mut body, k.account.as_str());
        body.extend_from_slice(k.key.as_bytes());
    }
    body
}

fn erasure_body(e: &ErasureRecord) -> Vec<u8> {
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

impl Keys {
    /// No keys, no file (a read-only handle of a log without one, or a log of an older format).
    pub(crate) fn empty(log_id: [u8; 16]) -> Self {
        Self {
            by_id: KeyedMap::default(),
            current: KeyedMap::default(),
            destroyed: KeyedSet::default(),
            erasures: Vec::new(),
            next_id: 1,
            log_id,
            file: None,
            unread: false,
        }
    }

    /// No keys yet, for a read-only handle that reads the key file when a read first needs it.
    pub(crate) fn unread(log_id: [u8; 16]) -> Self {
        Self { unread: true, ..Self::empty(log_id) }
    }

    /// Whether the key file is still to be read ([`Keys::unread`]).
    pub(crate) fn is_unread(&self) -> bool {
        self.unread
    }

    /// Reads the key file of the store in `dir` (an empty set when there is none). A writer
    /// (`writable`) creates a missing file, cuts a torn last record (an append that did not
    /// finish, whose keys no record uses), and keeps the file open for appends.
    ///
    /// # Errors
    /// What is wrong (the caller names the file): unreadable, another log's, or damaged
    /// before its last record.
    pub(crate) fn open(vfs: &dyn Vfs, dir: &Path, log_id: [u8; 16], writable: bool) -> Result<Self, String> {
        let path = dir.join(KEYS_FILE);
        let mut keys = Self::empty(log_id);
        if !vfs.exists(&path) {
            if writable {
                replace(vfs, dir, &header(log_id)).map_err(|(what, e)| format!("{what}: {e}"))?;
                keys.file = Some(std::sync::Mutex::new(vfs.open_append(&path, false).map_err(|e| e.to_string())?));
            }
            return Ok(keys);
        }
        let f = vfs.open_read(&path).map_err(|e| e.to_string())?;
        let size = f.size().map_err(|e| e.to_string())?;
        if size < HEADER_BYTES as u64 || size > RECORD_BYTES_MAX {
            return Err(format!("{size} bytes is no key file"));
        }
        let mut b = vec![0u8; size as usize];
        read_exact_at(&*f, &mut b, 0).map_err(|e| e.to_string())?;
        drop(f);
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
        // Room for as many keys as the file can hold (an entry takes at least its id, month,
        // a one-byte account with its length, and the key), so the map never grows on the way.
        keys.by_id.reserve((b.len() - HEADER_BYTES) / (4 + 4 + 2 + KEY_BYTES));
        let mut interner = Interner::default();
        let mut at = HEADER_BYTES;
        while at < b.len() {
            let Some((body, end)) = record_at(&b, at) else {
                // Each append is one record, synced before the next: a crash tears only the
                // last, and nothing valid follows it. A valid record after a bad one means
                // the bad one was synced once: damage, which is never cut.
                if let Some(next) = (at + 1..b.len()).find(|&n| record_at(&b, n).is_some()) {
                    return Err(format!("byte {at}: a damaged record, and a valid one at byte {next} after it"));
                }
                torn_tail(vfs, &path, at, writable)?;
                break;
            };
            keys.apply(body, &mut interner).map_err(|why| format!("byte {at}: {why}"))?;
            at = end;
        }
        if writable {
            keys.file = Some(std::sync::Mutex::new(vfs.open_append(&path, false).map_err(|e| e.to_string())?));
        }
        Ok(keys)
    }

    fn apply(&mut self, body: &[u8], interner: &mut Interner) -> Result<(), String> {
        let mut c = Cursor { b: body, at: 1 };
        match body.first() {
            Some(&KIND_KEYS) => {
                while c.at < body.len() {
                    let id = c.u32()?;
                    let month = c.i32()?;
                    // An account has a key a month: interned, its id is checked and made once.
                    let account =
                        AccountId::new_in(c.text()?, interner).map_err(|e| format!("key {id}: account: {e}"))?;
                    let key: [u8; KEY_BYTES] = c.take(KEY_BYTES)?.try_into().unwrap_or([0; KEY_BYTES]);
                    self.insert(id, Key { account, month, key: SealKey::from_bytes(key) })?;
                }
            }
            Some(&KIND_ERASURE) => {
                let at = Timestamp::from_unix_nanos(i64::from_le_bytes(c.take(8)?.try_into().unwrap_or_default()));
                let account = match c.take(1)?[0] {
                    0 => None,
                    1 => Some(AccountId::new(c.text()?).map_err(|e| format!("erasure: account: {e}"))?),
                    other => return Err(format!("erasure: account flag {other}")),
                };
                let month_below = c.i32()?;
                let reason = c.text()?.to_owned();
                let n = c.varint()?;
                let mut ids = Vec::with_capacity(n.min(1 << 20) as usize);
                let mut last = 0u64;
                for _ in 0..n {
                    last += c.varint()?;
                    ids.push(u32::try_from(last).map_err(|_| "erasure: a key id over 2^32")?);
                }
                if c.at != body.len() {
                    return Err("erasure: bytes after its last key".into());
                }
                self.destroy(ErasureRecord { at, account, month_below, reason, keys: ids });
            }
            other => return Err(format!("unknown record kind {other:?}")),
        }
        Ok(())
    }

    fn insert(&mut self, id: u32, key: Key) -> Result<(), String> {
        if self.by_id.contains_key(&id) || self.destroyed.contains(&id) {
            return Err(format!("key {id} appears twice"));
        }
        let months = self.current.entry(key.account.clone()).or_default();
        match months.iter_mut().find(|(m, _)| *m == key.month) {
            Some(slot) => slot.1 = slot.1.max(id),
            None => months.push((key.month, id)),
        }
        self.by_id.insert(id, key);
        self.next_id = self.next_id.max(id.saturating_add(1));
        Ok(())
    }

    /// Forgets the keys `e` destroyed and records it.
    fn destroy(&mut self, e: ErasureRecord) {
        for id in &e.keys {
            if let Some(k) = self.by_id.remove(id)
                && let Some(months) = self.current.get_mut(&k.account)
            {
                months.retain(|(m, i)| !(*m == k.month && i == id));
                if months.is_empty() {
                    self.current.remove(&k.account);
                }
            }
            self.destroyed.insert(*id);
            self.next_id = self.next_id.max(id.saturating_add(1));
        }
        self.erasures.push(e);
    }

    /// The key a record names.
    pub(crate) fn lookup(&self, id: u32) -> Lookup<'_> {
        match self.by_id.get(&id) {
            Some(k) => Lookup::Key(&k.key),
            None if self.destroyed.contains(&id) => Lookup::Erased,
            None => Lookup::Missing,
        }
    }

    /// The key of `account`'s `month`, if there is one.
    pub(crate) fn current(&self, account: &AccountId, month: i32) -> Option<(u32, &SealKey)> {
        let (_, id) = *self.current.get(account)?.iter().find(|(m, _)| *m == month)?;
        Some((id, &self.by_id.get(&id)?.key))
    }

    /// Makes keys for the (account, month) pairs given that have none, appends them as one
    /// record and syncs it. Nothing changes in memory unless the record is durable.
    ///
    /// # Errors
    /// No randomness, or the write or sync failed (the caller poisons the store: the file
    /// may hold a torn record, which the next open cuts).
    pub(crate) fn create(&mut self, wanted: &[(AccountId, i32)]) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        let needed: Vec<&(AccountId, i32)> =
            wanted.iter().filter(|(a, m)| self.current(a, *m).is_none() && seen.insert((a, *m))).collect();
        if needed.is_empty() {
            return Ok(());
        }
        // One request to the system for every new key.
        let made = SealKey::generate_many(needed.len()).map_err(|e| e.to_string())?;
        let fresh: Vec<(u32, Key)> = needed
            .into_iter()
            .zip(made)
            .enumerate()
            .map(|(i, ((account, month), key))| {
                (self.next_id + i as u32, Key { account: account.clone(), month: *month, key })
            })
            .collect();
        let bytes = record(&keys_body(fresh.iter().map(|(id, k)| (*id, k))));
        let file = self.file.as_mut().ok_or("the key file is not open for writing")?;
        let file = file.get_mut().unwrap_or_else(|p| p.into_inner());
        file.append(&bytes).map_err(|e| format!("append to {KEYS_FILE}: {e}"))?;
        file.sync_data().map_err(|e| format!("fsync {KEYS_FILE}: {e}"))?;
        for (id, key) in fresh {
            self.insert(id, key)?;
        }
        Ok(())
    }

    /// Destroys the keys `account` (or every account, for `None`) holds for the months below
    /// `month_below`, durably: the file is rewritten without them and with the erasure
    /// recorded, then renamed over the old one. Returns the erasure. Memory changes only once
    /// the new file is in place.
    ///
    /// # Errors
    /// A failed write, sync or rename (the old file, with the keys, is then still the one).
    pub(crate) fn erase(
        &mut self,
        vfs: &dyn Vfs,
        dir: &Path,
        account: Option<&AccountId>,
        month_below: i32,
        at: Timestamp,
        reason: &str,
    ) -> Result<ErasureRecord, String> {
        let mut doomed: Vec<u32> = self
            .by_id
            .iter()
            .filter(|(_, k)| account.is_none_or(|a| &k.account == a) && k.month < month_below)
            .map(|(id, _)| *id)
            .collect();
        doomed.sort_unstable();
        let erasure =
            ErasureRecord { at, account: account.cloned(), month_below, reason: reason.to_owned(), keys: doomed };
        let mut kept: Vec<(u32, &Key)> =
            self.by_id.iter().filter(|(id, _)| erasure.keys.binary_search(id).is_err()).map(|(i, k)| (*i, k)).collect();
        kept.sort_unstable_by_key(|(id, _)| *id);
        let mut bytes = header(self.log_id);
        bytes.extend_from_slice(&record(&keys_body(kept.into_iter())));
        for e in self.erasures.iter().chain([&erasure]) {
            bytes.extend_from_slice(&record(&erasure_body(e)));
        }
        // The appending handle is the old file's; it is closed before the rename.
        self.file = None;
        let replaced = replace(vfs, dir, &bytes).map_err(|(what, e)| format!("{what}: {e}"));
        let path = dir.join(KEYS_FILE);
        let reopened = vfs.open_append(&path, false).map_err(|e| format!("reopen {KEYS_FILE}: {e}"));
        replaced?;
        self.file = Some(std::sync::Mutex::new(reopened?));
        self.destroy(erasure.clone());
        Ok(erasure)
    }

    /// Every erasure, oldest first.
    pub(crate) fn erasures(&self) -> &[ErasureRecord] {
        &self.erasures
    }
}

/// A torn last record at byte `at`: a writer cuts it (the append it began was never
/// acknowledged, and no record was sealed under its keys); a reader leaves it (the writer may
/// be appending it).
fn torn_tail(vfs: &dyn Vfs, path: &Path, at: usize, writable: bool) -> Result<(), String> {
    if writable {
        tracing::warn!(path = %path.display(), at, "key file: cutting a torn last record");
        vfs.truncate(path, at as u64).map_err(|e| format!("cut the torn record at byte {at}: {e}"))?;
    }
    Ok(())
}

/// Why sealed text did not open.
pub(crate) struct UnsealError {
    /// The key file lacks the key (a reader may read the file again).
    pub(crate) missing: bool,
    pub(crate) reason: String,
}

/// Opens `e`'s sealed personal text and puts it back into the event, or marks the event
/// erased when its key was destroyed.
///
/// # Errors
/// A key the file lacks, or sealed text that does not open (altered, moved, or another key):
/// never shown as text.
pub(crate) fn unseal(
    keys: &Keys,
    openers: &mut Openers<u32>,
    e: &mut Envelope,
    sealed: SealedRef<'_>,
) -> Result<(), UnsealError> {
    fn fail(e: &Envelope, missing: bool, why: String) -> UnsealError {
        UnsealError {
            missing,
            reason: format!("position {}: event {} of account {}: {why}", e.position, e.id, e.account),
        }
    }
    match keys.lookup(sealed.key) {
        Lookup::Key(key) => {
            if let Err(why) = openers.get(sealed.key, key).open_into(e, sealed.bytes) {
                return Err(fail(e, false, format!("personal text under key {}: {why}", sealed.key)));
            }
        }
        Lookup::Erased => e.text = TextState::Erased,
        Lookup::Missing => return Err(fail(e, true, format!("its key {} is not in the key file", sealed.key))),
    }
    Ok(())
}

/// Writes `bytes` as the key file durably: beside it, synced, renamed over it, the directory
/// synced.
fn replace(vfs: &dyn Vfs, dir: &Path, bytes: &[u8]) -> Result<(), (&'static str, std::io::Error)> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::StdVfs;

    /// Keys made in one record for accounts whose months come together and apart read back,
    /// after a reopen, under the account and month each was made for (the reader interns
    /// accounts).
    #[test]
    fn keys_read_back_under_their_own_accounts() {
        let dir = std::env::temp_dir().join(format!("rapport-keys-accounts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = [3u8; 16];
        let a = |s: &str| AccountId::new(s).unwrap();
        let wanted = [(a("acme"), 1), (a("acme"), 2), (a("beta"), 1), (a("acme"), 3), (a("ceres"), 5), (a("beta"), 2)];
        let mut keys = Keys::open(&StdVfs, &dir, log, true).unwrap();
        keys.create(&wanted).unwrap();
        let made: Vec<u32> = wanted.iter().map(|(acct, m)| keys.current(acct, *m).unwrap().0).collect();
        drop(keys);
        let again = Keys::open(&StdVfs, &dir, log, false).unwrap();
        for ((acct, m), id) in wanted.iter().zip(&made) {
            assert_eq!(again.current(acct, *m).map(|(id, _)| id), Some(*id), "{acct} month {m}");
        }
        assert_eq!(again.current(&a("beta"), 3), None);
        assert_eq!(again.current(&a("ceres"), 1), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

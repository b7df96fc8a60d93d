//! The key file (`KEYS`): the keys that seal each account's personal text, one per account and
//! key month, kept apart from the segments, and the record of every erasure
//! (`docs/log-format.md`, "The key file"; `docs/privacy.md`).
//!
//! New keys are appended as one record per append and synced before any record sealed under
//! them is handed to the writer, so a logged record never names a key that was not durable.
//! An erasure rewrites the file without the destroyed keys (beside it, synced, renamed over
//! it, the directory synced): a crash leaves the keys or the erasure, never half of one.

use std::path::Path;

use rapport_core::backend::KeyedMap;
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

/// What the key file says of one key id.
enum Slot {
    /// No key of this id (an id past the last made, or one a damaged file skipped).
    Absent,
    /// Destroyed by an erasure.
    Destroyed,
    /// A live key: account `account` (its number in [`Keys::accounts`]) for `month`.
    Live { account: u32, month: i32, key: SealKey },
}

/// An account with keys, and its live keys by month (a few dozen at most: a scan beats a
/// map).
struct Account {
    id: AccountId,
    months: Vec<(i32, u32)>,
}

/// The keys in memory, and the file they are appended to (a writer's).
///
/// Key ids are made one after another, from 1, so the keys are a vector indexed by id (read
/// in one pass, with no hashing); each id in a file is accounted for by at least one of its
/// bytes (a key's entry, or its place in an erasure's list), so a file of `n` bytes names no
/// id above `n`, which bounds the vector a damaged file can ask for.
pub(crate) struct Keys {
    /// Key `id` at index `id - 1`.
    slots: Vec<Slot>,
    /// The accounts with keys, by number (the order the file first names them in).
    accounts: Vec<Account>,
    /// Each account's number in `accounts`.
    numbers: KeyedMap<AccountId, u32>,
    erasures: Vec<ErasureRecord>,
    next_id: u32,
    log_id: [u8; 16],
    /// A mutex only to make the keys `Sync`: the file is written through `&mut self`.
    file: Option<std::sync::Mutex<Box<dyn AppendFile>>>,
    /// The key file has not been read yet ([`Keys::unread`]).
    unread: bool,
}

/// How a key file [read](Keys::read) ends.
pub(crate) enum FileEnd {
    /// There is no key file.
    Missing,
    /// With a whole record (or its header).
    Whole,
    /// With a torn record at this byte: a writer cuts it (the append it began was never
    /// acknowledged, and no record was sealed under its keys); a reader leaves it (the writer
    /// may be appending it).
    Torn(usize),
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

/// What reading a key file keeps between entries.
struct Load {
    interner: Interner,
    /// The largest id the file can name: its length ([`Keys`]).
    id_bound: usize,
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

/// A record of keys: each with its id, month and account.
fn keys_body<'k>(keys: impl Iterator<Item = (u32, i32, &'k str, &'k SealKey)>) -> Vec<u8> {
    let mut body = vec![KIND_KEYS];
    for (id, month, account, key) in keys {
        body.extend_from_slice(&id.to_le_bytes());
        body.extend_from_slice(&month.to_le_bytes());
        put_text(&mut body, account);
        body.extend_from_slice(key.as_bytes());
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
            slots: Vec::new(),
            accounts: Vec::new(),
            numbers: KeyedMap::default(),
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
    /// (`writable`) then [makes it its own](Self::make_writable).
    ///
    /// # Errors
    /// What is wrong (the caller names the file): unreadable, another log's, or damaged
    /// before its last record.
    pub(crate) fn open(vfs: &dyn Vfs, dir: &Path, log_id: [u8; 16], writable: bool) -> Result<Self, String> {
        let (mut keys, end) = Self::read(vfs, dir, log_id)?;
        if writable {
            keys.make_writable(vfs, dir, end)?;
        }
        Ok(keys)
    }

    /// Makes keys [read](Self::read) the writer's: creates a missing file, cuts a torn last
    /// record (an append that did not finish, whose keys no record uses), and keeps the file
    /// open for appends.
    ///
    /// # Errors
    /// A failed write, cut or open.
    pub(crate) fn make_writable(&mut self, vfs: &dyn Vfs, dir: &Path, end: FileEnd) -> Result<(), String> {
        let path = dir.join(KEYS_FILE);
        match end {
            FileEnd::Missing => replace(vfs, dir, &header(self.log_id)).map_err(|(what, e)| format!("{what}: {e}"))?,
            FileEnd::Torn(at) => {
                tracing::warn!(path = %path.display(), at, "key file: cutting a torn last record");
                vfs.truncate(&path, at as u64).map_err(|e| format!("cut the torn record at byte {at}: {e}"))?;
            }
            FileEnd::Whole => {}
        }
        self.file = Some(std::sync::Mutex::new(vfs.open_append(&path, false).map_err(|e| e.to_string())?));
        Ok(())
    }

    /// Reads the key file of the store in `dir`, changing nothing: the keys (none when there
    /// is no file), and how the file ends. A torn last record (a writer may be appending it)
    /// is left out.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub(crate) fn read(vfs: &dyn Vfs, dir: &Path, log_id: [u8; 16]) -> Result<(Self, FileEnd), String> {
        let path = dir.join(KEYS_FILE);
        let mut keys = Self::empty(log_id);
        if !vfs.exists(&path) {
            return Ok((keys, FileEnd::Missing));
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
        // a one-byte account with its length, and the key).
        keys.slots.reserve((b.len() - HEADER_BYTES) / (4 + 4 + 2 + KEY_BYTES));
        let mut load = Load { interner: Interner::default(), id_bound: b.len() };
        let mut at = HEADER_BYTES;
        while at < b.len() {
            let Some((body, end)) = record_at(&b, at) else {
                // Each append is one record, synced before the next: a crash tears only the
                // last, and nothing valid follows it. A valid record after a bad one means
                // the bad one was synced once: damage, which is never cut.
                if let Some(next) = (at + 1..b.len()).find(|&n| record_at(&b, n).is_some()) {
                    return Err(format!("byte {at}: a damaged record, and a valid one at byte {next} after it"));
                }
                return Ok((keys, FileEnd::Torn(at)));
            };
            keys.apply(body, &mut load).map_err(|why| format!("byte {at}: {why}"))?;
            at = end;
        }
        Ok((keys, FileEnd::Whole))
    }

    fn apply(&mut self, body: &[u8], load: &mut Load) -> Result<(), String> {
        let mut c = Cursor { b: body, at: 1 };
        match body.first() {
            Some(&KIND_KEYS) => {
                // The last entry's account: its number and text.
                let mut last: Option<(u32, &str)> = None;
                while c.at < body.len() {
                    let id = c.u32()?;
                    let month = c.i32()?;
                    let text = c.text()?;
                    let key: [u8; KEY_BYTES] = c.take(KEY_BYTES)?.try_into().unwrap_or([0; KEY_BYTES]);
                    if id as usize > load.id_bound {
                        return Err(format!("key id {id} is past what a key file of {} bytes names", load.id_bound));
                    }
                    // An account has a key a month, and a record's keys come in runs of one
                    // account: its id is checked and made once.
                    let account = match last {
                        Some((n, previous)) if previous == text => n,
                        _ => {
                            let id = AccountId::new_in(text, &mut load.interner)
                                .map_err(|e| format!("key {id}: account: {e}"))?;
                            self.number(&id)
                        }
                    };
                    last = Some((account, text));
                    self.insert(id, account, month, SealKey::from_bytes(key))?;
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
                    last = last.checked_add(c.varint()?).ok_or("erasure: a key id over 2^64")?;
                    if last > load.id_bound as u64 {
                        return Err(format!(
                            "erasure: key id {last} is past what a key file of {} bytes names",
                            load.id_bound
                        ));
                    }
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

    /// `account`'s number, given it if it has none.
    fn number(&mut self, account: &AccountId) -> u32 {
        if let Some(&n) = self.numbers.get(account) {
            return n;
        }
        let n = self.accounts.len() as u32;
        self.accounts.push(Account { id: account.clone(), months: Vec::new() });
        self.numbers.insert(account.clone(), n);
        n
    }

    /// The slot of key `id`, made (and those before it, absent) if past the end. The caller
    /// has bounded `id` ([`Keys`]).
    fn slot_mut(&mut self, id: u32) -> Option<&mut Slot> {
        let i = (id as usize).checked_sub(1)?;
        if i >= self.slots.len() {
            self.slots.resize_with(i + 1, || Slot::Absent);
        }
        self.slots.get_mut(i)
    }

    fn insert(&mut self, id: u32, account: u32, month: i32, key: SealKey) -> Result<(), String> {
        let slot = self.slot_mut(id).ok_or("key id 0")?;
        if !matches!(slot, Slot::Absent) {
            return Err(format!("key {id} appears twice"));
        }
        *slot = Slot::Live { account, month, key };
        let months = &mut self.accounts[account as usize].months;
        match months.iter_mut().find(|(m, _)| *m == month) {
            Some(slot) => slot.1 = slot.1.max(id),
            None => months.push((month, id)),
        }
        self.next_id = self.next_id.max(id.saturating_add(1));
        Ok(())
    }

    /// Forgets the keys `e` destroyed and records it.
    fn destroy(&mut self, e: ErasureRecord) {
        for &id in &e.keys {
            let Some(slot) = self.slot_mut(id) else { continue };
            if let Slot::Live { account, month, .. } = std::mem::replace(slot, Slot::Destroyed) {
                self.accounts[account as usize].months.retain(|&(m, i)| !(m == month && i == id));
            }
            self.next_id = self.next_id.max(id.saturating_add(1));
        }
        self.erasures.push(e);
    }

    /// The key a record names.
    pub(crate) fn lookup(&self, id: u32) -> Lookup<'_> {
        let slot = (id as usize).checked_sub(1).and_then(|i| self.slots.get(i));
        match slot {
            Some(Slot::Live { key, .. }) => Lookup::Key(key),
            Some(Slot::Destroyed) => Lookup::Erased,
            Some(Slot::Absent) | None => Lookup::Missing,
        }
    }

    /// The key of `account`'s `month`, if there is one.
    pub(crate) fn current(&self, account: &AccountId, month: i32) -> Option<(u32, &SealKey)> {
        let &n = self.numbers.get(account)?;
        let &(_, id) = self.accounts[n as usize].months.iter().find(|(m, _)| *m == month)?;
        match self.slots.get((id as usize).checked_sub(1)?)? {
            Slot::Live { key, .. } => Some((id, key)),
            _ => None,
        }
    }

    /// The live keys, by id: (id, month, account, key).
    fn live(&self) -> impl Iterator<Item = (u32, i32, &AccountId, &SealKey)> {
        self.slots.iter().enumerate().filter_map(|(i, slot)| match slot {
            Slot::Live { account, month, key } => {
                Some((i as u32 + 1, *month, &self.accounts[*account as usize].id, key))
            }
            _ => None,
        })
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
        let fresh: Vec<(u32, &AccountId, i32, SealKey)> = needed
            .into_iter()
            .zip(made)
            .enumerate()
            .map(|(i, ((account, month), key))| (self.next_id + i as u32, account, *month, key))
            .collect();
        let bytes = record(&keys_body(fresh.iter().map(|(id, a, m, k)| (*id, *m, a.as_str(), k))));
        let file = self.file.as_mut().ok_or("the key file is not open for writing")?;
        let file = file.get_mut().unwrap_or_else(|p| p.into_inner());
        file.append(&bytes).map_err(|e| format!("append to {KEYS_FILE}: {e}"))?;
        file.sync_data().map_err(|e| format!("fsync {KEYS_FILE}: {e}"))?;
        for (id, account, month, key) in fresh {
            let n = self.number(account);
            self.insert(id, n, month, key)?;
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
        let doomed = |a: &AccountId, month: i32| account.is_none_or(|e| e == a) && month < month_below;
        // Ascending, as the slots are.
        let keys: Vec<u32> = self.live().filter(|&(_, m, a, _)| doomed(a, m)).map(|(id, ..)| id).collect();
        let erasure = ErasureRecord { at, account: account.cloned(), month_below, reason: reason.to_owned(), keys };
        let kept = self.live().filter(|&(_, m, a, _)| !doomed(a, m)).map(|(id, m, a, k)| (id, m, a.as_str(), k));
        let mut bytes = header(self.log_id);
        bytes.extend_from_slice(&record(&keys_body(kept)));
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
        let dir = temp("accounts");
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

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("rapport-keys-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// What every id up to `n` and every (account, month) answers.
    fn answers(keys: &Keys, n: u32, accounts: &[AccountId]) -> Vec<String> {
        let ids = (0..=n).map(|id| match keys.lookup(id) {
            Lookup::Key(k) => format!("{id}: key {:?}", &k.as_bytes()[..4]),
            Lookup::Erased => format!("{id}: erased"),
            Lookup::Missing => format!("{id}: missing"),
        });
        let months = accounts
            .iter()
            .flat_map(|a| (0..6).map(move |m| (a, m)))
            .map(|(a, m)| format!("{a} {m}: {:?}", keys.current(a, m).map(|(id, _)| id)));
        ids.chain(months).collect()
    }

    /// Keys made, one account's erased, older months erased for all, more made after: every
    /// id and (account, month) answers the same after a reopen as before, destroyed ids read
    /// erased, and new ids continue past every id ever made.
    #[test]
    fn erasures_and_later_keys_read_back_the_same_after_a_reopen() {
        let dir = temp("erasures");
        let log = [4u8; 16];
        let accounts: Vec<AccountId> = ["acme", "beta", "ceres"].iter().map(|s| AccountId::new(s).unwrap()).collect();
        let mut keys = Keys::open(&StdVfs, &dir, log, true).unwrap();
        let wanted: Vec<(AccountId, i32)> = (0..4).flat_map(|m| accounts.iter().map(move |a| (a.clone(), m))).collect();
        keys.create(&wanted).unwrap();
        let at = Timestamp::from_unix_seconds(1_700_000_000);
        let one = keys.erase(&StdVfs, &dir, Some(&accounts[1]), i32::MAX, at, "request").unwrap();
        assert_eq!(one.keys.len(), 4);
        let old = keys.erase(&StdVfs, &dir, None, 2, at, "retention").unwrap();
        assert_eq!(old.keys.len(), 4, "acme's and ceres's months 0 and 1");
        keys.create(&[(accounts[1].clone(), 5), (accounts[0].clone(), 0)]).unwrap();
        assert_eq!(keys.current(&accounts[0], 0).map(|(id, _)| id), Some(14), "new ids after every one made");
        let before = answers(&keys, 16, &accounts);
        assert!(before.contains(&"2: erased".to_owned()) && before.contains(&"5: erased".to_owned()));
        drop(keys);
        let again = Keys::open(&StdVfs, &dir, log, false).unwrap();
        assert_eq!(answers(&again, 16, &accounts), before);
        assert_eq!(again.erasures().len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Key-file bodies of any bytes, with their checksums right: what a reader must refuse or
    /// read without a panic, and without room for more keys than the file has bytes.
    fn arb_body() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        // Mostly ids and accounts a reader takes, so that most files read hold keys to look up.
        let account = prop_oneof![4 => "[a-c]{1,3}", 1 => "\\PC{0,4}"];
        let id = prop_oneof![9 => 1u32..64, 1 => Just(0u32)];
        let key_entry = (id, -3i32..3, account, any::<[u8; KEY_BYTES]>()).prop_map(|(id, month, account, key)| {
            let mut e = id.to_le_bytes().to_vec();
            e.extend_from_slice(&month.to_le_bytes());
            put_text(&mut e, &account);
            e.extend_from_slice(&key);
            e
        });
        prop_oneof![
            6 => proptest::collection::vec(key_entry, 0..6).prop_map(|es| {
                let mut body = vec![KIND_KEYS];
                es.into_iter().for_each(|e| body.extend(e));
                body
            }),
            1 => proptest::collection::vec(any::<u8>(), 0..80).prop_map(|rest| {
                let mut body = vec![KIND_ERASURE];
                body.extend(rest);
                body
            }),
            1 => proptest::collection::vec(any::<u8>(), 0..80),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: rapport_core::testing::cases(128),
            ..proptest::prelude::ProptestConfig::default()
        })]
        /// Any records (checksums right, bodies anything), then any bytes cut off or flipped:
        /// reading never panics, and what it reads answers every lookup.
        #[test]
        fn any_key_file_is_read_or_refused_without_a_panic(
            bodies in proptest::collection::vec(arb_body(), 0..4),
            cut in proptest::option::weighted(0.25, 0usize..400),
            flip in proptest::option::weighted(0.25, (0usize..400, 1u8..=255)),
        ) {
            let log = [6u8; 16];
            let mut bytes = header(log);
            for b in &bodies {
                bytes.extend_from_slice(&record(b));
            }
            if let Some((at, x)) = flip && at < bytes.len() {
                bytes[at] ^= x;
            }
            if let Some(n) = cut {
                bytes.truncate(n.max(1));
            }
            let dir = temp("any");
            std::fs::write(dir.join(KEYS_FILE), &bytes).unwrap();
            if let Ok((keys, _)) = Keys::read(&StdVfs, &dir, log) {
                proptest::prop_assert!(keys.slots.len() <= bytes.len());
                for id in 0..=keys.slots.len() as u32 + 1 {
                    let _ = keys.lookup(id);
                }
                for a in keys.accounts.iter().map(|a| a.id.clone()).collect::<Vec<_>>() {
                    for m in -3..3 {
                        let _ = keys.current(&a, m);
                    }
                }
                let _ = keys.live().count();
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    /// A key file whose checksums hold but that names an id past its own length is refused,
    /// as damage, without making room for that many keys.
    #[test]
    fn an_id_past_what_the_file_can_name_is_refused() {
        let log = [5u8; 16];
        let key = SealKey::from_bytes([7; KEY_BYTES]);
        for (what, body) in [
            ("key", keys_body([(u32::MAX, 3, "acme", &key)].into_iter())),
            (
                "erasure",
                erasure_body(&ErasureRecord {
                    at: Timestamp::from_unix_seconds(0),
                    account: None,
                    month_below: 1,
                    reason: "r".into(),
                    keys: vec![1, 4_000_000_000],
                }),
            ),
        ] {
            let dir = temp(&format!("bound-{what}"));
            let mut bytes = header(log);
            bytes.extend_from_slice(&record(&keys_body([(1, 3, "acme", &key)].into_iter())));
            bytes.extend_from_slice(&record(&body));
            std::fs::write(dir.join(KEYS_FILE), &bytes).unwrap();
            let err = Keys::open(&StdVfs, &dir, log, false).err().unwrap();
            assert!(err.contains("past what a key file of"), "{what}: {err}");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

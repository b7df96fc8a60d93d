//! The key file (`KEYS`): the keys that seal each account's personal text, one per account and
//! key month, kept apart from the segments, and the record of every erasure
//! (`docs/log-format.md`, "The key file"; `docs/privacy.md`).
//!
//! New keys are made in memory when an append is decided, and handed to the writer thread
//! with it as one record ([`NewKeys`]); the writer appends and syncs that record before it
//! writes any frame of its group, so a logged record never names a key that was not durable,
//! and the appending thread never waits for the key file.
//! An erasure rewrites the file without the destroyed keys (beside it, synced, renamed over
//! it, the directory synced): a crash leaves the keys or the erasure, never half of one.
//!
//! Memory holds where each key lies in the file, not the key: a key is read from the file
//! when it is needed, through a small [cache] of the keys read or made lately.

mod cache;
mod file;

use std::path::Path;

use rapport_core::backend::KeyedMap;
use rapport_core::seal::{KEY_BYTES, Openers, SealKey};
use rapport_core::{AccountId, Envelope, TextState, Timestamp};

use crate::format::SealedRef;
use crate::sync::lock;
use crate::vfs::{AppendFile, ReadFile, Vfs, read_at_most, read_exact_at};
use cache::KeyCache;
use file::{
    FILE_BYTES_MAX, HEADER_BYTES, KIND_ERASURE, KIND_KEYS, RECORD_PREFIX, entries, erasure, erasure_body, header,
    keys_body, record, records, records_from, replace,
};

/// The key file's name in the store directory: the keys that seal personal text.
pub const KEYS_FILE: &str = "KEYS";
/// Where a replacement is written before it is renamed over [`KEYS_FILE`].
pub(crate) const KEYS_TMP_FILE: &str = "KEYS.tmp";
/// The block of the key file a key is read with ([`Keys::read_around`]).
const READ_AHEAD: usize = 4096;
/// Bytes of the key file an open reads at a time (a record larger than that whole), so that
/// reading it does not hold the whole file (about 6 bytes an event) at once.
const READ_WINDOW: usize = 4 << 20;
/// How far from a key read, in ids, the keys kept from its block may be: more than a block
/// holds (an entry takes at least 42 bytes).
const NEARBY_IDS: u32 = (READ_AHEAD / 42 + 1) as u32;

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

/// A key id's [slot](Keys::slots) with no key (an id past the last made, or one a damaged file
/// skipped).
const ABSENT: u32 = 0;
/// A key id's slot once an erasure destroyed its key.
const DESTROYED: u32 = u32::MAX;

/// Whether key `id` is live in `slots` (neither absent nor destroyed).
fn is_live(slots: &[u32], id: u32) -> bool {
    (id as usize).checked_sub(1).and_then(|i| slots.get(i)).is_some_and(|&s| s != ABSENT && s != DESTROYED)
}

/// Where the keys are, and the file they are appended to (a writer's).
///
/// Key ids are made one after another, from 1, so the keys are a vector indexed by id (read
/// in one pass, with no hashing); each id in a file is accounted for by at least one of its
/// bytes (a key's entry, or its place in an erasure's list), so a file of `n` bytes names no
/// id above `n`, which bounds the vector a damaged file can ask for.
pub(crate) struct Keys {
    /// Key `id` at index `id - 1`: the byte of the key file its key starts at, or [`ABSENT`]
    /// or [`DESTROYED`] (no key starts at either: the header is at 0, and a key ends within
    /// the file, which is shorter than `u32::MAX`).
    slots: Vec<u32>,
    /// Each account's live keys by month, by the account's number (the order the file first
    /// names the accounts in): (month, id), in month order, each month once, found by a
    /// binary search (an account of ten years holds 120; keys mostly come in month order, so
    /// an insertion is mostly a push).
    months: Vec<Vec<(i32, u32)>>,
    /// Each account's number in `months`.
    numbers: KeyedMap<AccountId, u32>,
    erasures: Vec<ErasureRecord>,
    next_id: u32,
    log_id: [u8; 16],
    /// The key file as read, which the slots point into (none when there is no file).
    source: Option<Box<dyn ReadFile>>,
    /// The length of the key file the slots describe: where a writer appends.
    len: u64,
    /// The keys read or made lately.
    cache: KeyCache,
    /// Keys made and not yet written by the writer thread ([`KeyWriter::write`]), by id: their
    /// slots already say where they will lie.
    unwritten: std::sync::Mutex<Vec<(u32, SealKey)>>,
    /// The writer's appending handle, shared with the writer thread, which appends records of
    /// new keys through it ([`Keys::writer`]) with no lock on the keys held.
    file: Option<std::sync::Arc<std::sync::Mutex<Box<dyn AppendFile>>>>,
    /// The key file has not been read yet ([`Keys::unread`]).
    unread: bool,
}

/// A record of keys [made](Keys::create) in memory, for the writer thread to
/// [write](KeyWriter::write).
pub(crate) struct NewKeys {
    /// The record, as it is appended.
    bytes: Vec<u8>,
    /// The last (largest) id it holds.
    last: u32,
}

/// Writes records of keys [made](Keys::create) ([`KeyWriter::write`]) with no lock on `keys`
/// held during the I/O (an append deciding meanwhile may make keys), then forgets their
/// unwritten copies.
///
/// # Errors
/// As [`KeyWriter::write`], or the keys are not a writer's.
pub(crate) fn write_new(keys: &std::sync::RwLock<Keys>, new: &[&NewKeys]) -> Result<(), String> {
    if new.is_empty() {
        return Ok(());
    }
    let writer = keys.read().unwrap_or_else(|p| p.into_inner()).writer()?;
    writer.write(new)?;
    keys.read().unwrap_or_else(|p| p.into_inner()).written(new);
    Ok(())
}

/// The key file's appending handle ([`Keys::writer`]).
pub(crate) struct KeyWriter(std::sync::Arc<std::sync::Mutex<Box<dyn AppendFile>>>);

impl KeyWriter {
    /// Appends records of keys [made](Keys::create), in the order they were made, each synced
    /// before the next is written: a crash then tears at most the last, and a bad record with
    /// a valid one after it stays what a reader takes for damage. The writer thread calls it
    /// before it writes a frame sealed under them, then [`Keys::written`].
    ///
    /// # Errors
    /// The write or sync failed: the caller poisons the store (the file may end in a torn
    /// record, which the next open cuts; no record sealed under its keys was written).
    pub(crate) fn write(&self, new: &[&NewKeys]) -> Result<(), String> {
        let mut file = lock(&self.0);
        for keys in new {
            file.append(&keys.bytes).map_err(|e| format!("append to {KEYS_FILE}: {e}"))?;
            file.sync_data().map_err(|e| format!("fsync {KEYS_FILE}: {e}"))?;
        }
        Ok(())
    }
}

/// Why the key file could not be read, or made a writer's.
#[derive(Debug)]
pub(crate) enum KeysError {
    /// The file system failed: what was being done, and the cause.
    Io(&'static str, std::io::Error),
    /// The file is not this log's key file, or is damaged: what is wrong.
    Damaged(String),
}

impl std::fmt::Display for KeysError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(what, e) => write!(f, "{what}: {e}"),
            Self::Damaged(why) => f.write_str(why),
        }
    }
}

/// How a key file [read](Keys::read) ends.
#[derive(Debug)]
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
pub(crate) enum Lookup {
    Key(SealKey),
    /// Destroyed by an erasure.
    Erased,
    /// Not in the key file: damage, or a key file from elsewhere.
    Missing,
    /// In the key file, which could not be read.
    Unreadable(String),
}

/// What reading a key file keeps between entries.
struct Load {
    /// Each account's number by its text as the file holds it (checked once, when first met).
    numbers: KeyedMap<Box<[u8]>, u32>,
    /// The largest id the file can name: its length ([`Keys`]).
    id_bound: usize,
}

impl Keys {
    /// No keys, no file (a read-only handle of a log without one, or a log of an older format).
    pub(crate) fn empty(log_id: [u8; 16]) -> Self {
        Self {
            slots: Vec::new(),
            months: Vec::new(),
            numbers: KeyedMap::default(),
            erasures: Vec::new(),
            next_id: 1,
            log_id,
            source: None,
            len: 0,
            cache: KeyCache::default(),
            unwritten: std::sync::Mutex::default(),
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
    /// What is wrong (the caller names the file): [`KeysError::Io`] when the file system
    /// fails; [`KeysError::Damaged`] for a file that is another log's, or damaged before its
    /// last record.
    pub(crate) fn open(vfs: &dyn Vfs, dir: &Path, log_id: [u8; 16], writable: bool) -> Result<Self, KeysError> {
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
    /// [`KeysError::Io`]: a failed write, cut or open.
    pub(crate) fn make_writable(&mut self, vfs: &dyn Vfs, dir: &Path, end: FileEnd) -> Result<(), KeysError> {
        let path = dir.join(KEYS_FILE);
        match end {
            FileEnd::Missing => {
                let bytes = header(self.log_id);
                replace(vfs, dir, &bytes).map_err(|(what, e)| KeysError::Io(what, e))?;
                self.source = Some(vfs.open_read(&path).map_err(|e| KeysError::Io("open", e))?);
                self.len = bytes.len() as u64;
            }
            FileEnd::Torn(at) => {
                tracing::warn!(path = %path.display(), at, "key file: cutting a torn last record");
                vfs.truncate(&path, at as u64).map_err(|e| KeysError::Io("cut a torn last record", e))?;
                self.len = at as u64;
            }
            FileEnd::Whole => {}
        }
        let file = vfs.open_append(&path, false).map_err(|e| KeysError::Io("open for appends", e))?;
        self.file = Some(std::sync::Arc::new(std::sync::Mutex::new(file)));
        Ok(())
    }

    /// Reads the key file of the store in `dir`, changing nothing: the keys (none when there
    /// is no file), and how the file ends. A torn last record (a writer may be appending it)
    /// is left out.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub(crate) fn read(vfs: &dyn Vfs, dir: &Path, log_id: [u8; 16]) -> Result<(Self, FileEnd), KeysError> {
        Self::read_in(vfs, dir, log_id, READ_WINDOW)
    }

    /// [`read`](Self::read), `window` bytes of the file at a time.
    fn read_in(vfs: &dyn Vfs, dir: &Path, log_id: [u8; 16], window: usize) -> Result<(Self, FileEnd), KeysError> {
        let path = dir.join(KEYS_FILE);
        if !vfs.exists(&path) {
            return Ok((Self::empty(log_id), FileEnd::Missing));
        }
        let f = vfs.open_read(&path).map_err(|e| KeysError::Io("open", e))?;
        let size = f.size().map_err(|e| KeysError::Io("read the size of", e))?;
        if !(HEADER_BYTES as u64..=FILE_BYTES_MAX).contains(&size) {
            return Err(KeysError::Damaged(format!("{size} bytes is no key file")));
        }
        let size = size as usize;
        let (mut keys, end) =
            Self::parse(size, log_id, |each| records_from(&*f, size, log_id, window, |at, body| each(at, body)))?;
        keys.source = Some(f);
        Ok((keys, end))
    }

    /// The keys a key file of `size` bytes holds, and how it ends (a torn last record left
    /// out), given its records by `walk` ([`records_from`] for the file, [`records`] for
    /// its bytes in memory).
    fn parse(
        size: usize,
        log_id: [u8; 16],
        walk: impl FnOnce(&mut dyn FnMut(usize, &[u8]) -> Result<(), String>) -> Result<FileEnd, KeysError>,
    ) -> Result<(Self, FileEnd), KeysError> {
        let mut keys = Self::empty(log_id);
        // Room for as many keys as the file can hold (an entry takes at least its id, month,
        // a one-byte account with its length, and the key).
        keys.slots.reserve(size.saturating_sub(HEADER_BYTES) / (4 + 4 + 2 + KEY_BYTES));
        let mut load = Load { numbers: KeyedMap::default(), id_bound: size };
        let end = walk(&mut |at, body| keys.apply(at, body, &mut load))?;
        keys.len = match end {
            FileEnd::Torn(at) => at as u64,
            _ => size as u64,
        };
        // The destroyed keys leave the month lists ([`Keys::destroy`]).
        for months in &mut keys.months {
            months.retain(|&(_, id)| is_live(&keys.slots, id));
            months.shrink_to_fit();
        }
        keys.slots.shrink_to_fit();
        Ok((keys, end))
    }

    /// Applies the record whose body, `body`, starts at byte `at` of the file.
    fn apply(&mut self, at: usize, body: &[u8], load: &mut Load) -> Result<(), String> {
        match body.first() {
            Some(&KIND_KEYS) => {
                // The last entry's account: its number and text.
                let mut last: Option<(u32, &[u8])> = None;
                entries(body, |e| {
                    if e.id as usize > load.id_bound {
                        return Err(format!(
                            "key id {} is past what a key file of {} bytes names",
                            e.id, load.id_bound
                        ));
                    }
                    // An account has a key a month, and a record's keys often come in runs of
                    // one account; each account's text is checked and its id made once.
                    let account = match last {
                        Some((n, previous)) if previous == e.account => n,
                        _ => match load.numbers.get(e.account) {
                            Some(&n) => n,
                            None => {
                                let id = AccountId::new(file::utf8(e.account)?)
                                    .map_err(|why| format!("key {}: account: {why}", e.id))?;
                                let n = self.number(&id);
                                load.numbers.insert(e.account.into(), n);
                                n
                            }
                        },
                    };
                    last = Some((account, e.account));
                    // Within the file, which is shorter than `u32::MAX` ([`records`]).
                    let key_at = u32::try_from(at + e.key_at).map_err(|_| "a key past 4 GiB")?;
                    self.insert(e.id, account, e.month, key_at)
                })?;
            }
            Some(&KIND_ERASURE) => self.destroy(erasure(body, load.id_bound)?),
            other => return Err(format!("unknown record kind {other:?}")),
        }
        Ok(())
    }

    /// `account`'s number, given it if it has none.
    fn number(&mut self, account: &AccountId) -> u32 {
        if let Some(&n) = self.numbers.get(account) {
            return n;
        }
        let n = self.months.len() as u32;
        self.months.push(Vec::new());
        self.numbers.insert(account.clone(), n);
        n
    }

    /// The slot of key `id`, made (and those before it, absent) if past the end. The caller
    /// has bounded `id` ([`Keys`]).
    fn slot_mut(&mut self, id: u32) -> Option<&mut u32> {
        let i = (id as usize).checked_sub(1)?;
        if i >= self.slots.len() {
            self.slots.resize(i + 1, ABSENT);
        }
        self.slots.get_mut(i)
    }

    /// Records key `id` of `account` (its number) for `month`, starting at byte `key_at`.
    fn insert(&mut self, id: u32, account: u32, month: i32, key_at: u32) -> Result<(), String> {
        debug_assert!(key_at != ABSENT && key_at != DESTROYED, "a key lies within the file, past its header");
        let slot = self.slot_mut(id).ok_or("key id 0")?;
        if *slot != ABSENT {
            return Err(format!("key {id} appears twice"));
        }
        *slot = key_at;
        let slots = &self.slots;
        let months = &mut self.months[account as usize];
        // Keys mostly come in month order: a later month than every one held goes last.
        let found = match months.last() {
            Some(&(last, _)) if last < month => Err(months.len()),
            _ => months.binary_search_by_key(&month, |&(m, _)| m),
        };
        match found {
            // A destroyed key's entry waits for `parse`'s pruning: a new key takes its place.
            Ok(i) if !is_live(slots, months[i].1) => months[i].1 = id,
            Ok(i) => months[i].1 = months[i].1.max(id),
            Err(i) => months.insert(i, (month, id)),
        }
        debug_assert!(months.windows(2).all(|w| w[0].0 < w[1].0), "an account's months in order, each once");
        self.next_id = self.next_id.max(id.saturating_add(1));
        Ok(())
    }

    /// Forgets the keys `e` destroyed and records it.
    /// The month lists keep the destroyed ids until [`parse`](Self::parse) prunes them once,
    /// after every record: pruning here would walk every account's list for each erasure.
    fn destroy(&mut self, e: ErasureRecord) {
        for &id in &e.keys {
            let Some(slot) = self.slot_mut(id) else { continue };
            *slot = DESTROYED;
            self.next_id = self.next_id.max(id.saturating_add(1));
        }
        self.erasures.push(e);
    }

    /// The key a record names.
    pub(crate) fn lookup(&self, id: u32) -> Lookup {
        let Some(&at) = (id as usize).checked_sub(1).and_then(|i| self.slots.get(i)) else {
            return Lookup::Missing;
        };
        match at {
            ABSENT => Lookup::Missing,
            DESTROYED => Lookup::Erased,
            at => {
                if let Some(key) = self.cache.get(id) {
                    return Lookup::Key(key);
                }
                if let Some(key) = self.unwritten_key(id) {
                    return Lookup::Key(key);
                }
                match self.read_around(id, at) {
                    Ok(key) => Lookup::Key(key),
                    Err(why) => Lookup::Unreadable(format!("read key {id} at byte {at} of {KEYS_FILE}: {why}")),
                }
            }
        }
    }

    /// Reads key `id`, which starts at byte `at`, with the block of the file around it, and
    /// keeps in the cache every key of a nearby id that lies in that block: keys made together
    /// lie together, and a read of many events (a page of `read_all`) needs them together.
    fn read_around(&self, id: u32, at: u32) -> Result<SealKey, String> {
        let source = self.source.as_ref().ok_or("the key file is not open")?;
        let start = u64::from(at) / READ_AHEAD as u64 * READ_AHEAD as u64;
        let mut block = [0u8; READ_AHEAD + KEY_BYTES];
        let got = read_at_most(&**source, &mut block, start).map_err(|e| e.to_string())?;
        let key_in = |at: u32| {
            let from = usize::try_from(u64::from(at).checked_sub(start)?).ok()?;
            let key: [u8; KEY_BYTES] =
                block.get(from..from.checked_add(KEY_BYTES).filter(|&end| end <= got)?)?.try_into().ok()?;
            Some(SealKey::from_bytes(key))
        };
        let key = key_in(at).ok_or("the file ends before the key")?;
        let near = id.saturating_sub(NEARBY_IDS).max(1)..=id.saturating_add(NEARBY_IDS);
        let found = near.filter_map(|n| {
            let &place = self.slots.get(n as usize - 1)?;
            let key = (place != ABSENT && place != DESTROYED).then(|| key_in(place))??;
            Some((n, key))
        });
        self.cache.put_all(found);
        Ok(key)
    }

    /// The id of `account`'s key for `month`, if there is one.
    pub(crate) fn current(&self, account: &AccountId, month: i32) -> Option<u32> {
        let &n = self.numbers.get(account)?;
        let months = &self.months[n as usize];
        let &(_, id) = months.get(months.binary_search_by_key(&month, |&(m, _)| m).ok()?)?;
        Some(id)
    }

    /// Makes keys for the (account, month) pairs given that have none, in memory: they are
    /// current at once, and lie where their record, returned, will be appended. The caller
    /// has the record [written](KeyWriter::write) before any record sealed under them, and
    /// poisons the store if that fails (the slots of the keys would then point past the file).
    ///
    /// # Errors
    /// No randomness, or a key file that would pass its limit (`u32::MAX` bytes): nothing
    /// changed.
    pub(crate) fn create(&mut self, wanted: &[(AccountId, i32)]) -> Result<Option<NewKeys>, String> {
        let mut seen = std::collections::HashSet::new();
        let needed: Vec<&(AccountId, i32)> =
            wanted.iter().filter(|(a, m)| self.current(a, *m).is_none() && seen.insert((a, *m))).collect();
        if needed.is_empty() {
            return Ok(None);
        }
        if self.file.is_none() {
            return Err("the key file is not open for writing".into());
        }
        // One request to the system for every new key.
        let made = SealKey::generate_many(needed.len()).map_err(|e| e.to_string())?;
        let fresh: Vec<(u32, &AccountId, i32, SealKey)> = needed
            .into_iter()
            .zip(made)
            .enumerate()
            .map(|(i, ((account, month), key))| (self.next_id + i as u32, account, *month, key))
            .collect();
        let body = keys_body(fresh.iter().map(|(id, a, m, k)| (*id, *m, a.as_str(), k)));
        let bytes = record(&body);
        let grown = self.len + bytes.len() as u64;
        if grown > FILE_BYTES_MAX {
            return Err(format!(
                "{KEYS_FILE} would grow to {grown} bytes, past its limit of {FILE_BYTES_MAX}: \
                 erase old months to make room"
            ));
        }
        // Where each key will lie, read from the body as a reader of the file will.
        let body_at = self.len as usize + RECORD_PREFIX;
        let mut places = Vec::with_capacity(fresh.len());
        entries(&body, |e| {
            places.push(body_at + e.key_at);
            Ok(())
        })?;
        self.len = grown;
        let mut made = Vec::with_capacity(fresh.len());
        for ((id, account, month, key), at) in fresh.into_iter().zip(places) {
            let n = self.number(account);
            self.insert(id, n, month, u32::try_from(at).map_err(|_| "a key past 4 GiB")?)?;
            made.push((id, key));
        }
        let last = made.last().map_or(0, |&(id, _)| id);
        self.cache.put_all(made.iter().map(|(id, key)| (*id, key.clone())));
        lock(&self.unwritten).extend(made);
        Ok(Some(NewKeys { bytes, last }))
    }

    /// The handle that appends records of new keys to the file, for use with no lock on the
    /// keys held: an append deciding meanwhile may need to make keys.
    ///
    /// # Errors
    /// The file is not open for writing (a read-only handle's keys).
    pub(crate) fn writer(&self) -> Result<KeyWriter, String> {
        self.file.clone().map(KeyWriter).ok_or_else(|| "the key file is not open for writing".into())
    }

    /// Forgets the unwritten copies of keys a [`KeyWriter`] has written (they read from the
    /// file now).
    pub(crate) fn written(&self, new: &[&NewKeys]) {
        if let Some(last) = new.iter().map(|k| k.last).max() {
            lock(&self.unwritten).retain(|&(id, _)| id > last);
        }
    }

    /// Key `id` if it is made and not yet written.
    fn unwritten_key(&self, id: u32) -> Option<SealKey> {
        let unwritten = lock(&self.unwritten);
        let i = unwritten.binary_search_by_key(&id, |&(made, _)| made).ok()?;
        Some(unwritten[i].1.clone())
    }

    /// Destroys the keys `account` (or every account, for `None`) holds for the months below
    /// `month_below`, durably: the file is rewritten without them and with the erasure
    /// recorded, then renamed over the old one. Returns the erasure. Memory changes only once
    /// the new file is in place.
    ///
    /// # Errors
    /// A failed read, write, sync or rename (the old file, with the keys, is then still the
    /// one), or a failed reopen after the rename (the keys destroyed then read erased, and
    /// the others unreadable until the store is opened again).
    pub(crate) fn erase(
        &mut self,
        vfs: &dyn Vfs,
        dir: &Path,
        account: Option<&AccountId>,
        month_below: i32,
        at: Timestamp,
        reason: &str,
    ) -> Result<ErasureRecord, String> {
        if !lock(&self.unwritten).is_empty() {
            return Err("keys made are not yet in the key file (the writer has not caught up)".into());
        }
        let doomed = |a: &str, month: i32| account.is_none_or(|e| e.as_str() == a) && month < month_below;
        // The file as it is, for the keys kept.
        let old = {
            let source = self.source.as_ref().ok_or("the key file is not open")?;
            let mut b = vec![0u8; self.len as usize];
            read_exact_at(&**source, &mut b, 0).map_err(|e| format!("read {KEYS_FILE}: {e}"))?;
            b
        };
        // Every live key, in id order: (id, month, account, key).
        let mut live: Vec<(u32, i32, &str, SealKey)> = Vec::new();
        records(&old, self.log_id, |body_at, body| {
            if body.first() == Some(&KIND_KEYS) {
                entries(body, |e| {
                    let here = body_at + e.key_at;
                    let slot = (e.id as usize).checked_sub(1).and_then(|i| self.slots.get(i));
                    if slot.is_some_and(|&s| s as usize == here) {
                        let key: [u8; KEY_BYTES] = old[here..here + KEY_BYTES].try_into().unwrap_or([0; KEY_BYTES]);
                        live.push((e.id, e.month, file::utf8(e.account)?, SealKey::from_bytes(key)));
                    }
                    Ok(())
                })?;
            }
            Ok(())
        })?;
        live.sort_unstable_by_key(|&(id, ..)| id);
        let keys: Vec<u32> = live.iter().filter(|&&(_, m, a, _)| doomed(a, m)).map(|&(id, ..)| id).collect();
        let erasure = ErasureRecord { at, account: account.cloned(), month_below, reason: reason.to_owned(), keys };
        let kept = live.iter().filter(|&&(_, m, a, _)| !doomed(a, m)).map(|(id, m, a, k)| (*id, *m, *a, k));
        let mut bytes = header(self.log_id);
        bytes.extend_from_slice(&record(&keys_body(kept)));
        for e in self.erasures.iter().chain([&erasure]) {
            bytes.extend_from_slice(&record(&erasure_body(e)));
        }
        drop(live);
        drop(old);
        // The new file, read as a reader will read it.
        let log_id = self.log_id;
        let (mut fresh, _) =
            Self::parse(bytes.len(), log_id, |each| records(&bytes, log_id, each).map_err(KeysError::Damaged))
                .map_err(|e| e.to_string())?;
        // The appending handle is the old file's; it is closed before the rename.
        self.file = None;
        let path = dir.join(KEYS_FILE);
        if let Err((what, e)) = replace(vfs, dir, &bytes) {
            // The old file is still the one.
            self.file = vfs.open_append(&path, false).ok().map(|f| std::sync::Arc::new(std::sync::Mutex::new(f)));
            return Err(format!("{what}: {e}"));
        }
        // The new file is the one now: its slots stand (the destroyed keys read erased) even
        // if it cannot be opened again, and the old keys' cache goes with the old file.
        std::mem::swap(self, &mut fresh);
        self.source = Some(vfs.open_read(&path).map_err(|e| format!("reopen {KEYS_FILE}: {e}"))?);
        let file = vfs.open_append(&path, false).map_err(|e| format!("reopen {KEYS_FILE}: {e}"))?;
        self.file = Some(std::sync::Arc::new(std::sync::Mutex::new(file)));
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
    // A key is looked up only when no opener is kept for it (an erased key never is).
    let opener = openers.get_or_make(sealed.key, || match keys.lookup(sealed.key) {
        Lookup::Key(key) => Ok(key),
        Lookup::Erased => Err(None),
        Lookup::Missing => Err(Some((true, format!("its key {} is not in the key file", sealed.key)))),
        Lookup::Unreadable(why) => Err(Some((false, why))),
    });
    match opener {
        Ok(opener) => {
            if let Err(why) = opener.open_into(e, sealed.bytes) {
                return Err(fail(e, false, format!("personal text under key {}: {why}", sealed.key)));
            }
        }
        Err(None) => e.text = TextState::Erased,
        Err(Some((missing, why))) => return Err(fail(e, missing, why)),
    }
    Ok(())
}

#[cfg(test)]
mod tests;

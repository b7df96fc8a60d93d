//! The ids of a log on disk: `derived/log-ids-<generation>.bin`, written at a clean close beside
//! the index snapshot, which names its generation and count. A writer that opens from the
//! snapshot keeps in memory only this file's filter and each block's first id, and answers "is
//! this id logged, and where?" from the file: memory after open no longer holds every id.
//!
//! Layout (integers little-endian, ids big-endian as [`EventId::to_bytes`] gives them):
//! - data blocks of [`BLOCK`] bytes: up to [`PER_BLOCK`] entries (the id, 16 bytes, and its
//!   position, 8), sorted by id; the CRC32C of the entries' bytes; zeros to the block's end.
//!   Every block but the last is full, so the count says how many entries each holds.
//! - the index: each block's first id (16 bytes), then the filter's words (8 bytes each).
//! - the trailer ([`TRAILER`] bytes): magic `RPLOGIDS`, format version, the log's id,
//!   generation, count, filter words, filter seed, the CRC32C of the index, and the CRC32C of
//!   the trailer's bytes before it.
//!
//! The filter is a blocked Bloom filter: an id sets [`PROBES`] bits of one 512-bit block, both
//! chosen by a hash seeded per file (random at each write, so nobody aims ids at its false
//! positives without reading the file). At [`FILTER_BITS_PER_ID`] bits an id most absent ids
//! read nothing from disk; a present id, or a false positive, reads one block, whose checksum
//! is checked before it is believed.
//!
//! Invariants (asserted when written, checked when opened): ids strictly increase across the
//! file; `firsts[b]` is block `b`'s first id; every id in the file sets its filter bits.

use std::path::{Path, PathBuf};

use rapport_core::{EventId, Position};

use crate::blob::DERIVED_DIR;
use crate::vfs::{ReadFile, Vfs, read_exact_at};

/// Bytes in a data block.
const BLOCK: usize = 1024;
/// Bytes in an entry: the id and its position.
const ENTRY: usize = 24;
/// Entries in a full block (1,008 bytes, then the checksum). A lookup copies one block, so
/// blocks are small (BENCHMARKS.md, "Ids on disk": 4 KiB blocks made a re-import 1.7× slower).
const PER_BLOCK: usize = 42;
/// Bytes in the trailer.
const TRAILER: usize = 80;
const MAGIC: [u8; 8] = *b"RPLOGIDS";
const VERSION: u32 = 2;
/// The filter's size per id.
const FILTER_BITS_PER_ID: u64 = 12;
/// Bits set per id, in one block of the filter.
const PROBES: u32 = 6;
/// Words (of 64 bits) in a block of the filter.
const FILTER_BLOCK_WORDS: usize = 8;
/// Blocks read at once by a merge, and written at once.
const READ_BLOCKS: usize = 1024;
/// The most ids a file holds (the index of firsts and the filter stay below 2 GiB).
const IDS_MAX: u64 = 1 << 32;

/// How the id files' names start (reserved: `save_derived` refuses such names).
pub(crate) const PREFIX: &str = "log-ids-";

/// The file of `generation` in the store directory `dir`.
pub(crate) fn path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(DERIVED_DIR).join(format!("{PREFIX}{generation}.bin"))
}

/// What the snapshot records of its id file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct IdFileRef {
    pub(crate) generation: u64,
    pub(crate) count: u64,
}

/// An open id file: see the module documentation.
pub(crate) struct IdFile {
    path: PathBuf,
    file: Box<dyn ReadFile>,
    at: IdFileRef,
    seed: u64,
    /// Each block's first id.
    firsts: Vec<u128>,
    filter: Vec<u64>,
}

impl std::fmt::Debug for IdFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdFile").field("path", &self.path).field("at", &self.at).finish_non_exhaustive()
    }
}

fn fmix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The filter's block for `id`, and the bits (of that block's 512) it sets.
fn probes(id: u128, seed: u64, blocks: usize) -> (usize, [u16; PROBES as usize]) {
    let h = fmix(fmix((id as u64) ^ seed) ^ (id >> 64) as u64);
    let block = ((u128::from(h) * blocks as u128) >> 64) as usize;
    let bits = fmix(h ^ 0x9e37_79b9_7f4a_7c15);
    let mut out = [0u16; PROBES as usize];
    for (k, bit) in out.iter_mut().enumerate() {
        *bit = ((bits >> (9 * k)) & 511) as u16;
    }
    (block, out)
}

fn filter_words(count: u64) -> usize {
    let words = (count * FILTER_BITS_PER_ID).div_ceil(64) as usize;
    words.div_ceil(FILTER_BLOCK_WORDS).max(1) * FILTER_BLOCK_WORDS
}

fn set(filter: &mut [u64], id: u128, seed: u64) {
    let (block, bits) = probes(id, seed, filter.len() / FILTER_BLOCK_WORDS);
    let words = &mut filter[block * FILTER_BLOCK_WORDS..][..FILTER_BLOCK_WORDS];
    for bit in bits {
        words[usize::from(bit / 64)] |= 1 << (bit % 64);
    }
}

fn maybe(filter: &[u64], id: u128, seed: u64) -> bool {
    let (block, bits) = probes(id, seed, filter.len() / FILTER_BLOCK_WORDS);
    let words = &filter[block * FILTER_BLOCK_WORDS..][..FILTER_BLOCK_WORDS];
    bits.iter().all(|&bit| words[usize::from(bit / 64)] & (1 << (bit % 64)) != 0)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn u128_be_at(b: &[u8], at: usize) -> u128 {
    let mut x = [0u8; 16];
    x.copy_from_slice(&b[at..at + 16]);
    u128::from_be_bytes(x)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn n_blocks(count: u64) -> usize {
    count.div_ceil(PER_BLOCK as u64) as usize
}

impl IdFile {
    /// Opens the id file `at` names for the log `log_id` in `dir`, checking its trailer, its
    /// size and its index (the data blocks are checked as they are read).
    ///
    /// # Errors
    /// Why it is not usable: missing, another log, another generation or count, damaged.
    pub(crate) fn open(vfs: &dyn Vfs, dir: &Path, log_id: [u8; 16], at: IdFileRef) -> Result<Self, String> {
        let path = path(dir, at.generation);
        let file = vfs.open_read(&path).map_err(|e| format!("open {}: {e}", path.display()))?;
        let size = file.size().map_err(|e| format!("stat {}: {e}", path.display()))?;
        if at.count > IDS_MAX {
            return Err(format!("{} ids is more than an id file holds", at.count));
        }
        if size < TRAILER as u64 {
            return Err(format!("{} is {size} bytes, shorter than its trailer", path.display()));
        }
        let mut trailer = [0u8; TRAILER];
        read_exact_at(&*file, &mut trailer, size - TRAILER as u64)
            .map_err(|e| format!("read {}: {e}", path.display()))?;
        let t = &trailer;
        if t[..8] != MAGIC || crc32c::crc32c(&t[..TRAILER - 4]) != u32_at(t, TRAILER - 4) {
            return Err(format!("{}: the trailer is damaged or not an id file's", path.display()));
        }
        if u32_at(t, 8) != VERSION || t[12..28] != log_id {
            return Err(format!("{}: another format version or another log", path.display()));
        }
        if u64_at(t, 28) != at.generation || u64_at(t, 36) != at.count {
            return Err(format!("{}: its trailer names another generation or count", path.display()));
        }
        // The filter is sized when the writing starts, for at least every id written.
        let blocks = n_blocks(at.count);
        let words = u64_at(t, 44);
        if !words.is_multiple_of(FILTER_BLOCK_WORDS as u64) || words < filter_words(at.count) as u64 {
            return Err(format!("{}: a filter of {words} words does not fit {} ids", path.display(), at.count));
        }
        let expected = (blocks * (BLOCK + 16) + TRAILER) as u64 + words.saturating_mul(8);
        if size != expected {
            return Err(format!("{} is {size} bytes, not the {expected} its trailer makes", path.display()));
        }
        let words = words as usize;
        let index_len = blocks * 16 + words * 8;
        let seed = u64_at(t, 52);
        let mut index = vec![0u8; index_len];
        read_exact_at(&*file, &mut index, (blocks * BLOCK) as u64)
            .map_err(|e| format!("read {}: {e}", path.display()))?;
        if crc32c::crc32c(&index) != u32_at(t, 60) {
            return Err(format!("{}: its index is damaged", path.display()));
        }
        let firsts: Vec<u128> = index[..blocks * 16].chunks_exact(16).map(|c| u128_be_at(c, 0)).collect();
        if firsts.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!("{}: its blocks are out of order", path.display()));
        }
        let filter = index[blocks * 16..].chunks_exact(8).map(|c| u64_at(c, 0)).collect();
        Ok(Self { path, file, at, seed, firsts, filter })
    }

    /// Bytes held in memory: the block keys and the filter.
    #[cfg(feature = "redb-comparison")]
    pub(crate) fn held_bytes(&self) -> usize {
        self.firsts.len() * 16 + self.filter.len() * 8
    }

    /// The generation and count the file holds.
    pub(crate) fn at(&self) -> IdFileRef {
        self.at
    }

    /// Where the event with `id` is logged, if the file holds it: [`may_hold`](Self::may_hold),
    /// then [`find`](Self::find) (for the tests and the comparison bench; the store asks the
    /// filter about many ids at once).
    ///
    /// # Errors
    /// As [`find`](Self::find).
    #[cfg(any(test, feature = "redb-comparison"))]
    pub(crate) fn get(&self, id: &EventId) -> Result<Option<Position>, String> {
        if !self.may_hold(id) {
            return Ok(None);
        }
        self.find(id)
    }

    /// Whether the filter lets `id` through: false means the file does not hold it, true that
    /// it may ([`find`](Self::find) says). Reads memory only (one line of the filter).
    pub(crate) fn may_hold(&self, id: &EventId) -> bool {
        self.at.count != 0 && maybe(&self.filter, u128::from_be_bytes(id.to_bytes()), self.seed)
    }

    /// [`may_hold`](Self::may_hold) for each of `ids`, in order, into `out` (cleared first):
    /// asked in a loop of its own, so that the misses in memory its answers cost overlap
    /// (BENCHMARKS.md, "Ids recorded by the reader"), before any id is looked for further.
    pub(crate) fn may_hold_each<'a>(&self, ids: impl Iterator<Item = &'a EventId>, out: &mut Vec<bool>) {
        out.clear();
        out.extend(ids.map(|id| self.may_hold(id)));
    }

    /// Where the event with `id` is logged, if the file holds it, read from its block whatever
    /// the filter says (ask [`may_hold`](Self::may_hold) first).
    ///
    /// # Errors
    /// A block that cannot be read or fails its checksum, named by file and byte.
    pub(crate) fn find(&self, id: &EventId) -> Result<Option<Position>, String> {
        let id = u128::from_be_bytes(id.to_bytes());
        let Some(b) = self.firsts.partition_point(|&first| first <= id).checked_sub(1) else {
            return Ok(None);
        };
        let offset = (b * BLOCK) as u64;
        let mut block = [0u8; BLOCK];
        read_exact_at(&*self.file, &mut block, offset)
            .map_err(|e| format!("read {} at byte {offset}: {e}", self.path.display()))?;
        let entries = self.entries(b, &block)?;
        let (mut lo, mut hi) = (0usize, entries.len() / ENTRY);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let other = u128_be_at(entries, mid * ENTRY);
            match other.cmp(&id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(Some(Position(u64_at(entries, mid * ENTRY + 16)))),
            }
        }
        Ok(None)
    }

    /// Every entry, in order of id, block by block (each block's checksum checked), read
    /// [`READ_BLOCKS`] blocks at a time.
    fn for_each(&self, mut f: impl FnMut(u128, u64) -> Result<(), String>) -> Result<(), String> {
        let blocks = self.firsts.len();
        let mut buf = vec![0u8; READ_BLOCKS * BLOCK];
        for first in (0..blocks).step_by(READ_BLOCKS) {
            let take = (blocks - first).min(READ_BLOCKS);
            let at = (first * BLOCK) as u64;
            read_exact_at(&*self.file, &mut buf[..take * BLOCK], at)
                .map_err(|e| format!("read {} at byte {at}: {e}", self.path.display()))?;
            for (k, block) in buf[..take * BLOCK].chunks_exact(BLOCK).enumerate() {
                for e in self.entries(first + k, block)?.chunks_exact(ENTRY) {
                    f(u128_be_at(e, 0), u64_at(e, 16))?;
                }
            }
        }
        Ok(())
    }

    /// The entries of block `b` (its bytes as read), once its checksum holds.
    fn entries<'b>(&self, b: usize, block: &'b [u8]) -> Result<&'b [u8], String> {
        let n = (self.at.count - (b * PER_BLOCK) as u64).min(PER_BLOCK as u64) as usize;
        let entries = &block[..n * ENTRY];
        if crc32c::crc32c(entries) != u32_at(block, PER_BLOCK * ENTRY) {
            return Err(format!("{}: the block at byte {} fails its checksum", self.path.display(), b * BLOCK));
        }
        Ok(entries)
    }
}

/// Builds the bytes of an id file as entries arrive in order of id.
struct Writer {
    out: Box<dyn crate::vfs::AppendFile>,
    tmp: PathBuf,
    block: Vec<u8>,
    pending: Vec<u8>,
    firsts: Vec<u128>,
    filter: Vec<u64>,
    seed: u64,
    last: Option<(u128, u64)>,
    count: u64,
}

impl Writer {
    fn push(&mut self, id: u128, position: u64) -> Result<(), String> {
        match self.last {
            // The same id at the same position: an id the file held that appends since were
            // told about (`Core::note_logged`); written once.
            Some((last, at)) if last == id && at == position => return Ok(()),
            Some((last, _)) if last >= id => {
                return Err(format!("the ids to write are not unique: {}", uuid::Uuid::from_u128(id)));
            }
            _ => {}
        }
        self.last = Some((id, position));
        if self.block.is_empty() {
            self.firsts.push(id);
        }
        self.block.extend_from_slice(&id.to_be_bytes());
        self.block.extend_from_slice(&position.to_le_bytes());
        set(&mut self.filter, id, self.seed);
        self.count += 1;
        if self.block.len() == PER_BLOCK * ENTRY {
            self.seal_block()?;
        }
        Ok(())
    }

    fn seal_block(&mut self) -> Result<(), String> {
        let crc = crc32c::crc32c(&self.block);
        self.pending.extend_from_slice(&self.block);
        // A last block that is not full is padded with zeros to where the checksum goes.
        self.pending.resize(self.pending.len() + PER_BLOCK * ENTRY - self.block.len(), 0);
        self.pending.extend_from_slice(&crc.to_le_bytes());
        self.pending.resize(self.pending.len() + BLOCK - PER_BLOCK * ENTRY - 4, 0);
        self.block.clear();
        if self.pending.len() >= READ_BLOCKS * BLOCK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        self.out.append(&self.pending).map_err(|e| format!("write {}: {e}", self.tmp.display()))?;
        self.pending.clear();
        Ok(())
    }
}

/// Writes the id file of `generation` for the log `log_id` in `dir`: the ids of `old` (a
/// file of an earlier generation) and `recent`, which repeat none of them but at the same
/// position (sorted here, in place: no copy of them is made). Atomic: beside, synced,
/// renamed, the directory synced; on failure nothing is left. Returns what the snapshot
/// records.
///
/// # Errors
/// I/O, a damaged block of `old`, or an id in both at different positions.
pub(crate) fn write(
    vfs: &dyn Vfs,
    dir: &Path,
    log_id: [u8; 16],
    generation: u64,
    old: Option<&IdFile>,
    recent: &mut [(EventId, Position)],
) -> Result<IdFileRef, String> {
    let tmp = path(dir, generation).with_extension("tmp");
    let written = write_to(vfs, dir, log_id, generation, old, recent);
    if written.is_err() && vfs.exists(&tmp) {
        let _ = vfs.remove(&tmp);
    }
    written
}

fn write_to(
    vfs: &dyn Vfs,
    dir: &Path,
    log_id: [u8; 16],
    generation: u64,
    old: Option<&IdFile>,
    recent: &mut [(EventId, Position)],
) -> Result<IdFileRef, String> {
    let key = |id: &EventId| u128::from_be_bytes(id.to_bytes());
    recent.sort_unstable_by_key(|(id, _)| key(id));
    // At most this many: ids in both are written once, and the filter sized for all.
    let most = old.map_or(0, |f| f.at.count) + recent.len() as u64;
    if most > IDS_MAX {
        return Err(format!("{most} ids is more than an id file holds"));
    }
    let derived = dir.join(DERIVED_DIR);
    if !vfs.exists(&derived) {
        vfs.create_dir_all(&derived).map_err(|e| format!("create {}: {e}", derived.display()))?;
        vfs.sync_dir(dir).map_err(|e| format!("fsync {}: {e}", dir.display()))?;
    }
    let final_path = path(dir, generation);
    let tmp = final_path.with_extension("tmp");
    if vfs.exists(&tmp) {
        vfs.remove(&tmp).map_err(|e| format!("remove {}: {e}", tmp.display()))?;
    }
    let out = vfs.open_append(&tmp, true).map_err(|e| format!("create {}: {e}", tmp.display()))?;
    let seed = std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), generation);
    let mut w = Writer {
        out,
        tmp: tmp.clone(),
        block: Vec::with_capacity(PER_BLOCK * ENTRY),
        pending: Vec::with_capacity((READ_BLOCKS + 1) * BLOCK),
        firsts: Vec::with_capacity(n_blocks(most)),
        filter: vec![0; filter_words(most)],
        seed,
        last: None,
        count: 0,
    };
    // Merge the old file's run with the recent one.
    let mut next = recent.iter().map(|(id, p)| (key(id), p.0)).peekable();
    if let Some(old) = old {
        old.for_each(|id, position| {
            while let Some(&(r, p)) = next.peek()
                && r < id
            {
                w.push(r, p)?;
                next.next();
            }
            w.push(id, position)
        })?;
    }
    for (id, position) in next {
        w.push(id, position)?;
    }
    if !w.block.is_empty() {
        w.seal_block()?;
    }
    let count = w.count;
    debug_assert!(count <= most, "every id written once");
    debug_assert_eq!(w.firsts.len(), n_blocks(count));
    let mut index = Vec::with_capacity(w.firsts.len() * 16 + w.filter.len() * 8);
    for first in &w.firsts {
        index.extend_from_slice(&first.to_be_bytes());
    }
    for word in &w.filter {
        index.extend_from_slice(&word.to_le_bytes());
    }
    let mut t = Vec::with_capacity(TRAILER);
    t.extend_from_slice(&MAGIC);
    t.extend_from_slice(&VERSION.to_le_bytes());
    t.extend_from_slice(&log_id);
    t.extend_from_slice(&generation.to_le_bytes());
    t.extend_from_slice(&count.to_le_bytes());
    t.extend_from_slice(&(w.filter.len() as u64).to_le_bytes());
    t.extend_from_slice(&seed.to_le_bytes());
    t.extend_from_slice(&crc32c::crc32c(&index).to_le_bytes());
    t.resize(TRAILER - 4, 0);
    let crc = crc32c::crc32c(&t);
    t.extend_from_slice(&crc.to_le_bytes());
    w.pending.extend_from_slice(&index);
    w.pending.extend_from_slice(&t);
    w.flush()?;
    w.out.sync_data().map_err(|e| format!("fsync {}: {e}", tmp.display()))?;
    drop(w);
    vfs.rename(&tmp, &final_path).map_err(|e| format!("rename {}: {e}", final_path.display()))?;
    vfs.sync_dir(&derived).map_err(|e| format!("fsync {}: {e}", derived.display()))?;
    Ok(IdFileRef { generation, count })
}

/// Generations of the id files (and their leftovers) in `dir`'s derived directory.
fn generations(vfs: &dyn Vfs, dir: &Path) -> Vec<(u64, String)> {
    let names = vfs.list(&dir.join(DERIVED_DIR)).unwrap_or_default();
    names
        .into_iter()
        .filter_map(|name| {
            let rest = name.strip_prefix(PREFIX)?;
            let number = rest.strip_suffix(".bin").or_else(|| rest.strip_suffix(".tmp"))?;
            Some((number.parse().ok()?, name))
        })
        .collect()
}

/// A generation no file in `dir` has used.
pub(crate) fn next_generation(vfs: &dyn Vfs, dir: &Path) -> u64 {
    generations(vfs, dir).iter().map(|(g, _)| *g).max().map_or(1, |g| g.saturating_add(1))
}

/// Removes every id file in `dir` but `keep`'s (after a snapshot that names `keep` is
/// durable). Failures are logged: a leftover file is only disk space.
pub(crate) fn remove_others(vfs: &dyn Vfs, dir: &Path, keep: Option<u64>) {
    for (generation, name) in generations(vfs, dir) {
        if Some(generation) == keep && name.ends_with(".bin") {
            continue;
        }
        let path = dir.join(DERIVED_DIR).join(&name);
        if let Err(e) = vfs.remove(&path) {
            tracing::warn!(path = %path.display(), "an old id file not removed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::StdVfs;

    fn id(n: u64) -> EventId {
        EventId::from_bytes(u128::from(fmix(n) | 1).wrapping_mul(0x1234_5678_9abc_def1).to_be_bytes())
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rapport-id-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const LOG: [u8; 16] = [7; 16];

    #[test]
    fn every_id_is_found_and_absent_ones_mostly_read_nothing() {
        let d = dir("found");
        let mut ids: Vec<(EventId, Position)> = (1..=1_000u64).map(|n| (id(n), Position(n))).collect();
        let at = write(&StdVfs, &d, LOG, 1, None, &mut ids).unwrap();
        assert_eq!(at, IdFileRef { generation: 1, count: 1_000 });
        let f = IdFile::open(&StdVfs, &d, LOG, at).unwrap();
        for (id, p) in &ids {
            assert_eq!(f.get(id), Ok(Some(*p)));
        }
        let absent: Vec<EventId> = (1_001..=11_000u64).map(id).collect();
        assert!(absent.iter().all(|a| f.get(a) == Ok(None)));
        let positives = absent.iter().filter(|a| maybe(&f.filter, u128::from_be_bytes(a.to_bytes()), f.seed)).count();
        assert!(positives < 300, "{positives} false positives of 10,000 (32-53 measured in three runs)");
        // A merge with more ids keeps both runs in order.
        let mut more: Vec<(EventId, Position)> = (1_001..=1_400u64).map(|n| (id(n), Position(n))).collect();
        let at2 = write(&StdVfs, &d, LOG, 2, Some(&f), &mut more).unwrap();
        let g = IdFile::open(&StdVfs, &d, LOG, at2).unwrap();
        for (id, p) in ids.iter().chain(&more) {
            assert_eq!(g.get(id), Ok(Some(*p)));
        }
        assert_eq!(g.get(&id(5_000)), Ok(None));
        // An id in both runs at another position is refused (and leaves no file); at the same
        // position (an id appends were told about) it is written once.
        assert!(write(&StdVfs, &d, LOG, 3, Some(&g), &mut [(id(7), Position(9_999))]).is_err());
        assert!(!path(&d, 3).with_extension("tmp").exists());
        let at3 =
            write(&StdVfs, &d, LOG, 3, Some(&g), &mut [(id(7), Position(7)), (id(2_000), Position(2_000))]).unwrap();
        assert_eq!(at3.count, 1_401);
        let h = IdFile::open(&StdVfs, &d, LOG, at3).unwrap();
        assert_eq!((h.get(&id(7)), h.get(&id(2_000))), (Ok(Some(Position(7))), Ok(Some(Position(2_000)))));
        remove_others(&StdVfs, &d, Some(3));
        assert_eq!(generations(&StdVfs, &d), vec![(3, "log-ids-3.bin".to_string())]);
        assert_eq!(next_generation(&StdVfs, &d), 4);
    }

    #[test]
    fn an_empty_file_answers_nothing() {
        let d = dir("empty");
        let at = write(&StdVfs, &d, LOG, 4, None, &mut []).unwrap();
        let f = IdFile::open(&StdVfs, &d, LOG, at).unwrap();
        assert_eq!(f.get(&id(1)), Ok(None));
    }

    #[test]
    fn a_damaged_or_foreign_file_is_refused_and_a_damaged_block_is_an_error() {
        let d = dir("damaged");
        let mut ids: Vec<(EventId, Position)> = (1..=400u64).map(|n| (id(n), Position(n))).collect();
        let at = write(&StdVfs, &d, LOG, 1, None, &mut ids).unwrap();
        let file = path(&d, 1);
        let good = std::fs::read(&file).unwrap();
        assert!(IdFile::open(&StdVfs, &d, [8; 16], at).is_err(), "another log");
        assert!(IdFile::open(&StdVfs, &d, LOG, IdFileRef { generation: 1, count: 399 }).is_err(), "another count");
        assert!(IdFile::open(&StdVfs, &d, LOG, IdFileRef { generation: 2, count: 400 }).is_err(), "missing");
        // A flipped bit in the trailer or the index: refused at open.
        for at_byte in [good.len() - 1, good.len() - TRAILER + 30, n_blocks(400) * BLOCK + 5] {
            let mut bad = good.clone();
            bad[at_byte] ^= 0x10;
            std::fs::write(&file, &bad).unwrap();
            assert!(IdFile::open(&StdVfs, &d, LOG, at).is_err(), "flip at {at_byte}");
        }
        // A flipped bit in a data block: found when that block is read, naming its byte.
        let mut bad = good.clone();
        bad[BLOCK + 30] ^= 0x01;
        std::fs::write(&file, &bad).unwrap();
        let f = IdFile::open(&StdVfs, &d, LOG, at).unwrap();
        let errors: Vec<String> = ids.iter().filter_map(|(i, _)| f.get(i).err()).collect();
        let named = format!("at byte {BLOCK}");
        assert!(!errors.is_empty() && errors.iter().all(|e| e.contains(&named)), "{errors:?}");
        assert!(write(&StdVfs, &d, LOG, 2, Some(&f), &mut []).is_err(), "a merge reads every block");
    }
}

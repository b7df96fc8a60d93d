//! The index snapshot: what an open rebuilds from the log (the validation state of every
//! stream, where every record lies; the ids go to their own file, `id_file.rs`), saved at a
//! clean close, or while the store runs by `FileStore::save_index_snapshot`, as the derived
//! blob `derived/log-index.bin`, so the next open loads it and
//! reads only the log after it. A writer decodes a stream's state only when it first touches
//! the account (`saved_states.rs`).
//!
//! The log stays the only source of truth. The snapshot names the log (its id), the last
//! position it covers, the segment and byte where that position's frame ends, and the chain
//! value (payload checksum) of that frame. An open uses it only when all of that still holds:
//! the segment exists with the log's header and reaches that byte, the head record agrees, and
//! the first frame read after it chains to it. Anything else (missing, damaged, another log,
//! another format, ahead of the log) is logged with its reason and the log is read in full.
//! The snapshot covers a prefix; `verify` reads everything, checksums included.

use std::path::Path;
use std::sync::Arc;

use rapport_core::backend::{KeyedMap, LogState};
use rapport_core::derived::{self, DerivedHeader};
use rapport_core::{AccountId, EventId, Position, StreamVersion, Timestamp};
use serde::{Deserialize, Serialize};

use crate::blob::{DERIVED_DIR, write_blob};
use crate::format::{Chain, SEGMENT_HEADER_BYTES, SegmentHeader};
use crate::head::HeadRecord;
use crate::id_file::{self, IdFile, IdFileRef};
use crate::index::{Core, Index, segment_name};
use crate::offsets::Offsets;
use crate::positions::Positions;
use crate::saved_states::{At, SavedStates};
use crate::vfs::{Vfs, read_exact_at};

mod reader;
#[cfg(test)]
mod tests;

use reader::{Reader, StateSpan};

/// The derived blob's name.
pub(crate) const NAME: &str = "log-index";
const KIND: [u8; 8] = *b"LOGINDEX";
const VERSION: u32 = 7;
/// The largest snapshot saved or loaded (several hundred million events at about 5 bytes each,
/// its ids being in their own file): a larger one is
/// not saved (logged), and a file this large is not read, whatever it claims.
const SNAPSHOT_BYTES_MAX: u64 = 4 << 30;

/// Where the log covered by a snapshot ends, as the writer left it at a clean close or a
/// checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Extent {
    /// The last position covered.
    pub(crate) position: u64,
    /// The segment it ends in, and the byte its frame ends at.
    pub(crate) segment: u64,
    pub(crate) len: u64,
    /// The chain value after that frame ([`Chain::START`] for an empty log).
    pub(crate) chain: Chain,
    /// The highest sync epoch written.
    pub(crate) last_epoch: u64,
}

/// The snapshot file of the store in `dir`.
fn path(dir: &Path) -> std::path::PathBuf {
    dir.join(DERIVED_DIR).join(format!("{NAME}.bin"))
}

/// How much of the snapshot file an open reads at a time (`reader.rs`).
const READ_WINDOW_BYTES: usize = 4 << 20;

// The payload, in postcard: [`PayloadHead`]'s fields (the extent, the last `recorded_at`, the
// id file holding every id the snapshot covers), the record offsets ([`Offsets`]), then the
// streams: their number, then each account's id, positions and validation state (a
// `StreamState` in postcard, nested as bytes of its own, so that a read-only open, which keeps
// none, passes over it, and a writer's open decodes one only when the account is first
// touched: `saved_states.rs`).

/// Bytes serialised as bytes (a length, then the bytes), as [`StateSpan`] reads them.
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// More bytes than [`PayloadHead`] takes in postcard: seven varints of at most 10 bytes (the
/// extent's position, segment, length and epoch, the timestamp, the id file's generation and
/// count) and the 32-byte chain, 102 at most.
const HEAD_BYTES_MAX: usize = 160;

/// The first fields of the payload as written. The rest (`offsets`, then `streams`: its
/// length, then each account's entry) are serialized apart, at the checkpoint, and follow
/// these bytes: postcard writes a struct as its fields one after another and a sequence as its
/// length then its elements, with nothing around them, so the parts read back as one
/// payload.
#[derive(Serialize, Deserialize)]
struct PayloadHead {
    extent: Extent,
    last_recorded: Timestamp,
    ids: IdFileRef,
}

/// A snapshot taken at a checkpoint but not yet written: everything but its id file, as bytes
/// and copies, so that writing it needs no lock of the store.
pub(crate) struct Prepared {
    extent: Extent,
    last_recorded: Timestamp,
    /// The payload's last fields (`offsets`, then `streams`), serialized.
    tail: Vec<u8>,
    /// The ids the validation state held (logged since the id file, or found in it): with the
    /// id file's, the ids the snapshot covers.
    recent: Vec<(EventId, Position)>,
    /// Where each account's state lies in `tail` (its first byte, its length).
    states_at: Vec<(AccountId, usize, usize)>,
    /// The version of each state the validation state held: one still at that version once
    /// the snapshot is written is the snapshot's, and may be given back ([`Written`]).
    held: Vec<(AccountId, StreamVersion)>,
}

/// A written snapshot: what it names, and what lets a writer give back the validation states
/// it holds (`FileStore::save_index_snapshot`).
pub(crate) struct Written {
    /// The id file it names.
    pub(crate) ids: IdFileRef,
    /// Every account's state in the snapshot just written, noted; `None` when the file did not
    /// open again for reading (logged; the states held are then kept).
    pub(crate) saved_states: Option<SavedStates>,
    /// The states held at the checkpoint, by version (see [`Prepared`]).
    pub(crate) held: Vec<(AccountId, StreamVersion)>,
}

impl Prepared {
    /// The last position the snapshot covers.
    pub(crate) fn position(&self) -> u64 {
        self.extent.position
    }
}

/// Takes the snapshot of the store at `extent` (the writer's checkpoint or clean close), with
/// the indexes as they stand there: each account's state (as held, or as the loaded snapshot
/// saved it when never touched since) and the ids held, copied. Cheap next to writing it.
pub(crate) fn prepare(extent: Extent, core: &Core, index: &Index) -> Result<Prepared, String> {
    if core.next_position != extent.position + 1 || index.offsets.len() != extent.position {
        return Err(format!(
            "the indexes do not end where the log does ({} against {})",
            core.next_position - 1,
            extent.position
        ));
    }
    let ser = |e: postcard::Error| e.to_string();
    let mut tail = postcard::to_allocvec(&index.offsets).map_err(ser)?;
    // `streams`: its length as postcard writes a sequence's (a varint), then each entry, each
    // state serialized into one reused buffer first.
    tail = postcard::to_extend(&(index.streams.len() as u64), tail).map_err(ser)?;
    let mut states_at = Vec::with_capacity(index.streams.len());
    let mut held = Vec::new();
    let mut state = Vec::new();
    for (account, positions) in index.streams.iter() {
        state.clear();
        let found = match core.state.stream(account) {
            Some(stream) => {
                held.push((account.clone(), stream.version()));
                postcard::to_extend(stream, std::mem::take(&mut state)).map(|s| state = s).map_err(ser)
            }
            None => match &core.saved_states {
                Some(saved) => match saved.bytes_into(account, &mut state) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err("no saved state".into()),
                    Err(why) => Err(why),
                },
                None => Err("no state".into()),
            },
        };
        found.map_err(|e| format!("account {account}: {e}"))?;
        tail = postcard::to_extend(&(account, positions, Bytes(&state)), tail).map_err(ser)?;
        states_at.push((account.clone(), tail.len() - state.len(), state.len()));
    }
    // Room for the payload's first fields and the seal, which [`write()`](fn@write) puts
    // around these bytes where they lie.
    tail.reserve_exact(HEAD_BYTES_MAX + derived::SEAL_ROOM);
    Ok(Prepared { extent, last_recorded: core.last_recorded, tail, recent: core.state.ids(), states_at, held })
}

/// Writes a prepared snapshot: the id file of a new generation (`old`, the file the store
/// answers from, merged with the ids prepared; `old` itself when no id was logged since), then
/// the snapshot naming it. Needs no lock: `old` is only read. The caller removes other
/// generations once it no longer answers from `old` (`id_file::remove_others`). A crash or an
/// error leaves the previous snapshot naming the previous file, both intact.
///
/// The prepared ids are let go once the id file holds them, and the snapshot is sealed in the
/// prepared bytes where they lie: a save holds no second copy of either (BENCHMARKS.md, "A
/// save's memory"). With `note`, for a store that goes on running, each account's state is
/// then noted where the new file holds it (a clean close has no use for that).
pub(crate) fn write(
    vfs: &dyn Vfs,
    dir: &Path,
    log_id: [u8; 16],
    prepared: &mut Prepared,
    old: Option<&IdFile>,
    note: bool,
) -> Result<Written, String> {
    let started = std::time::Instant::now();
    let ids = match (old, prepared.recent.is_empty()) {
        (Some(file), true) => file.at(),
        (old, _) => {
            let generation = id_file::next_generation(vfs, dir);
            id_file::write(vfs, dir, log_id, generation, old, &mut prepared.recent)
                .map_err(|e| format!("the id file: {e}"))?
        }
    };
    prepared.recent = Vec::new();
    let head = PayloadHead { extent: prepared.extent, last_recorded: prepared.last_recorded, ids };
    let head = postcard::to_allocvec(&head).map_err(|e| e.to_string())?;
    debug_assert!(head.len() <= HEAD_BYTES_MAX, "the payload's first fields fit the room kept for them");
    let mut bytes = std::mem::take(&mut prepared.tail);
    let header = DerivedHeader {
        kind: KIND,
        version: VERSION,
        log_id,
        position: Position(prepared.extent.position + 1),
        fingerprint: 0,
    };
    let tail_at = derived::seal_in_place(&header, &head, &mut bytes);
    if bytes.len() as u64 > SNAPSHOT_BYTES_MAX {
        return Err(format!("{} bytes, larger than {SNAPSHOT_BYTES_MAX} (docs/scaling.md)", bytes.len()));
    }
    write_blob(vfs, dir, NAME, &bytes).map_err(|e| e.to_string())?;
    let saved_states = if note { note_states(vfs, dir, &bytes, tail_at, &prepared.states_at) } else { None };
    prepared.states_at = Vec::new();
    tracing::info!(
        dir = %dir.display(),
        events = prepared.extent.position,
        bytes = bytes.len(),
        ids = ids.count,
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "index snapshot saved"
    );
    Ok(Written { ids, saved_states, held: std::mem::take(&mut prepared.held) })
}

/// The saved states of the snapshot just written as `bytes` (its tail at `tail_at`), read from
/// the file now in place; `None`, logged, if it does not open or a state is not where it was
/// serialized (the writer then keeps the states it holds).
fn note_states(
    vfs: &dyn Vfs,
    dir: &Path,
    bytes: &[u8],
    tail_at: usize,
    states_at: &[(AccountId, usize, usize)],
) -> Option<SavedStates> {
    let path = path(dir);
    let noted = vfs.open_read(&path).map_err(|e| format!("open {}: {e}", path.display())).and_then(|file| {
        let mut at_map = KeyedMap::default();
        for (account, at, len) in states_at {
            let state = bytes.get(tail_at + at..tail_at + at + len).ok_or("a state lies past the snapshot's end")?;
            at_map.insert(account.clone(), At::new(account, (tail_at + at) as u64, *len, crc32c::crc32c(state))?);
        }
        Ok(SavedStates::new(path.clone(), file, at_map))
    });
    noted.map_err(|why| tracing::warn!(dir = %dir.display(), "the states held are kept: {why}")).ok()
}

/// Saves the snapshot of a log closed cleanly at `extent` ([`prepare`], then [`write()`](fn@write)), and
/// removes the id files of other generations. Failures are logged by the caller and ignored:
/// the next open reads the log instead.
pub(crate) fn save(
    vfs: &dyn Vfs,
    dir: &Path,
    log_id: [u8; 16],
    extent: Extent,
    core: &Core,
    index: &Index,
) -> Result<IdFileRef, String> {
    let mut prepared = prepare(extent, core, index)?;
    let ids = write(vfs, dir, log_id, &mut prepared, core.logged_ids.as_deref(), false)?.ids;
    id_file::remove_others(vfs, dir, Some(ids.generation));
    Ok(ids)
}

/// What a usable snapshot gives an open: the state after its last position, and where to
/// read on.
pub(crate) struct Loaded {
    pub(crate) extent: Extent,
    pub(crate) core: Core,
    pub(crate) index: Index,
}

/// The snapshot beside the log in `dir`, when it is usable for the log whose segments are
/// `numbers` and whose head record is `head`; else `None`, with the reason logged.
///
/// With `validate` false (a read-only handle, which decides no append and keeps no validation
/// state) the streams' states are passed over and the id file is not opened; with it true
/// the states are noted (`saved_states.rs`), not decoded.
pub(crate) fn load(
    vfs: &dyn Vfs,
    dir: &Path,
    numbers: &[u64],
    head: Option<&HeadRecord>,
    validate: bool,
) -> Option<Loaded> {
    let path = path(dir);
    if !vfs.exists(&path) {
        return None;
    }
    match try_load(vfs, dir, &path, numbers, head, validate, READ_WINDOW_BYTES) {
        Ok(loaded) => Some(loaded),
        Err(why) => {
            tracing::warn!(dir = %dir.display(), "index snapshot not used ({why}): reading the whole log");
            None
        }
    }
}

/// [`load`], reading the file `window_bytes` at a time: everything it decodes is checked
/// against the file's checksum before anything else is judged.
fn try_load(
    vfs: &dyn Vfs,
    dir: &Path,
    path: &Path,
    numbers: &[u64],
    head: Option<&HeadRecord>,
    validate: bool,
    window_bytes: usize,
) -> Result<Loaded, String> {
    let file = vfs.open_read(path).map_err(|e| format!("open: {e}"))?;
    let len = file.size().map_err(|e| format!("stat: {e}"))?;
    if len > SNAPSHOT_BYTES_MAX {
        return Err(format!("{len} bytes, more than the {SNAPSHOT_BYTES_MAX} a snapshot may hold"));
    }
    let mut reader = Reader::open(file, len, window_bytes, KIND, VERSION)?;
    let PayloadHead { extent, last_recorded, ids } = reader.take()?;
    let offsets: Offsets = reader.take()?;
    let mut index = Index { offsets, ..Index::default() };
    let mut states_at = KeyedMap::default();
    let streams: u64 = reader.take()?;
    for _ in 0..streams {
        let (account, positions, state): (AccountId, Positions, StateSpan) = reader.take()?;
        positions.check().map_err(|why| format!("account {account}: {why}"))?;
        if validate {
            // The state's bytes end the entry just read.
            let (offset, bytes) = reader.last(state.len)?;
            states_at.insert(account.clone(), At::new(&account, offset, state.len, crc32c::crc32c(bytes))?);
        }
        let Some(first) = positions.first() else { return Err(format!("account {account} has no events")) };
        index.accounts.insert(account.clone(), first);
        index.interned.entry(account.stable_hash()).or_insert_with(|| account.clone());
        index.streams.insert(account, positions);
    }
    let header = reader.header;
    let file = reader.finish()?;
    let logged_ids = if validate { Some(Arc::new(IdFile::open(vfs, dir, header.log_id, ids)?)) } else { None };
    if ids.count != extent.position {
        return Err(format!("its id file holds {} ids for {} events", ids.count, extent.position));
    }
    if header.position != Position(extent.position + 1) {
        return Err("its header and payload disagree".into());
    }
    // The segment it ends in: this log's, numbered so, reaching the byte it names.
    if !numbers.contains(&extent.segment) {
        return Err(format!("segment {} is not in the log", extent.segment));
    }
    let segment = dir.join(segment_name(extent.segment));
    let f = vfs.open_read(&segment).map_err(|e| format!("open {}: {e}", segment.display()))?;
    let size = f.size().map_err(|e| format!("stat {}: {e}", segment.display()))?;
    if size < extent.len || extent.len < SEGMENT_HEADER_BYTES as u64 {
        return Err(format!("{} ends at byte {size}, before byte {}", segment.display(), extent.len));
    }
    let mut h = [0u8; SEGMENT_HEADER_BYTES];
    read_exact_at(&*f, &mut h, 0).map_err(|e| format!("read {}: {e}", segment.display()))?;
    let seg = SegmentHeader::decode(&h).map_err(|e| format!("{}: {}", segment.display(), e.reason))?;
    if seg.log_id != header.log_id || seg.segment_no != extent.segment {
        return Err(format!("{} belongs to another log, or is another segment", segment.display()));
    }
    if let Some(h) = head {
        if h.log_id != header.log_id {
            return Err("the head record names another log".into());
        }
        if h.position < extent.position || (h.position == extent.position && h.chain != extent.chain) {
            return Err(format!(
                "the head record (position {}) is behind it (position {}) or names another history",
                h.position, extent.position
            ));
        }
    }
    index.offsets.check(extent.position)?;
    index.segments = numbers.iter().take_while(|n| **n <= extent.segment).map(|n| dir.join(segment_name(*n))).collect();
    let saved_states = validate.then(|| SavedStates::new(path.to_path_buf(), file, states_at));
    let core = Core {
        state: LogState::new(),
        logged_ids,
        saved_states,
        in_flight: std::collections::VecDeque::new(),
        next_position: extent.position + 1,
        last_recorded,
    };
    Ok(Loaded { extent, core, index })
}

//! The index snapshot: what an open rebuilds from the log (the validation state of every
//! stream, the ids, where every record lies), saved at a clean close as the derived blob
//! `derived/log-index.bin`, so the next open loads it and reads only the log after it.
//!
//! The log stays the only source of truth. The snapshot names the log (its id), the last
//! position it covers, the segment and byte where that position's frame ends, and the chain
//! value (payload checksum) of that frame. An open uses it only when all of that still holds:
//! the segment exists with the log's header and reaches that byte, the head record agrees, and
//! the first frame read after it chains to it. Anything else (missing, damaged, another log,
//! another format, ahead of the log) is logged with its reason and the log is read in full.
//! The snapshot covers a prefix; `verify` reads everything, checksums included.

use std::path::Path;

use rapport_core::backend::LogState;
use rapport_core::derived::{self, DerivedHeader};
use rapport_core::{AccountId, Position, Timestamp};
use serde::{Deserialize, Serialize};

use crate::blob::{DERIVED_DIR, write_blob};
use crate::format::{Chain, SEGMENT_HEADER_BYTES, SegmentHeader};
use crate::head::HeadRecord;
use crate::id_file::{self, IdFile, IdFileRef};
use crate::index::{Core, Index, segment_name};
use crate::offsets::Offsets;
use crate::positions::Positions;
use crate::vfs::{Vfs, read_exact_at};

/// The derived blob's name.
pub(crate) const NAME: &str = "log-index";
const KIND: [u8; 8] = *b"LOGINDEX";
const VERSION: u32 = 6;
/// The largest snapshot saved or loaded (several hundred million events at about 5 bytes each,
/// its ids being in their own file): a larger one is
/// not saved (logged), and a file this large is not read, whatever it claims.
const SNAPSHOT_BYTES_MAX: u64 = 4 << 30;

/// Where the log covered by a snapshot ends, as the writer left it at a clean close.
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

/// The payload. The validation state is nested as bytes of its own, so that a read-only open,
/// which keeps none, passes over it without decoding it.
#[derive(Deserialize)]
struct Payload<'a> {
    extent: Extent,
    last_recorded: Timestamp,
    #[serde(borrow)]
    state: &'a [u8],
    /// The id file holding every id the snapshot covers (the state holds none).
    ids: IdFileRef,
    offsets: Offsets,
    streams: Vec<(AccountId, Positions)>,
}

/// Bytes serialised as bytes (a length, then the bytes), as [`Payload::state`] reads them.
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// [`Payload`] as written: borrowed from the open store, in the same field order.
#[derive(Serialize)]
struct PayloadRef<'a> {
    extent: Extent,
    last_recorded: Timestamp,
    state: Bytes<'a>,
    ids: IdFileRef,
    offsets: &'a Offsets,
    streams: Vec<(&'a AccountId, &'a Positions)>,
}

/// Saves the snapshot of a log closed cleanly at `extent`. Failures are logged and ignored:
/// the next open reads the log instead.
///
/// The ids go to an id file of a new generation (those of the file this open loaded, merged
/// with those logged since), written before the snapshot that names it; files of other
/// generations are removed once the snapshot is durable. A crash in between leaves the old
/// snapshot naming the old file, both intact.
pub(crate) fn save(vfs: &dyn Vfs, dir: &Path, log_id: [u8; 16], extent: Extent, core: &mut Core, index: &Index) {
    if core.next_position != extent.position + 1 || index.offsets.len() != extent.position {
        tracing::warn!(
            dir = %dir.display(),
            "index snapshot not saved: the indexes do not end where the log does ({} against {})",
            core.next_position - 1,
            extent.position
        );
        return;
    }
    let started = std::time::Instant::now();
    let recent = core.state.take_ids();
    let ids = match (&core.logged_ids, recent.is_empty()) {
        (Some(file), true) => file.at(),
        (old, _) => {
            let generation = id_file::next_generation(vfs, dir);
            match id_file::write(vfs, dir, log_id, generation, old.as_ref(), recent) {
                Ok(at) => at,
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), "index snapshot not saved: the id file: {e}");
                    return;
                }
            }
        }
    };
    let state = match postcard::to_allocvec(&core.state) {
        Ok(state) => state,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), "index snapshot not saved: {e}");
            return;
        }
    };
    let payload = PayloadRef {
        extent,
        last_recorded: core.last_recorded,
        state: Bytes(&state),
        ids,
        offsets: &index.offsets,
        streams: index.streams.iter().collect(),
    };
    let bytes = match postcard::to_allocvec(&payload) {
        Ok(payload) => derived::seal(
            &DerivedHeader {
                kind: KIND,
                version: VERSION,
                log_id,
                position: Position(extent.position + 1),
                fingerprint: 0,
            },
            &payload,
        ),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), "index snapshot not saved: {e}");
            return;
        }
    };
    if bytes.len() as u64 > SNAPSHOT_BYTES_MAX {
        tracing::warn!(
            dir = %dir.display(),
            bytes = bytes.len(),
            "index snapshot not saved: larger than {SNAPSHOT_BYTES_MAX} bytes (docs/scaling.md)"
        );
        return;
    }
    match write_blob(vfs, dir, NAME, &bytes) {
        Ok(()) => {
            id_file::remove_others(vfs, dir, Some(ids.generation));
            tracing::info!(
                dir = %dir.display(),
                events = extent.position,
                bytes = bytes.len(),
                ids = ids.count,
                elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                "index snapshot saved"
            );
        }
        Err(e) => tracing::warn!(dir = %dir.display(), "index snapshot not saved: {e}"),
    }
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
/// state) the snapshot's validation state and ids are passed over, not decoded.
pub(crate) fn load(
    vfs: &dyn Vfs,
    dir: &Path,
    numbers: &[u64],
    head: Option<&HeadRecord>,
    validate: bool,
) -> Option<Loaded> {
    let path = dir.join(DERIVED_DIR).join(format!("{NAME}.bin"));
    if !vfs.exists(&path) {
        return None;
    }
    match try_load(vfs, dir, &path, numbers, head, validate) {
        Ok(loaded) => Some(loaded),
        Err(why) => {
            tracing::warn!(dir = %dir.display(), "index snapshot not used ({why}): reading the whole log");
            None
        }
    }
}

fn try_load(
    vfs: &dyn Vfs,
    dir: &Path,
    path: &Path,
    numbers: &[u64],
    head: Option<&HeadRecord>,
    validate: bool,
) -> Result<Loaded, String> {
    let file = vfs.open_read(path).map_err(|e| format!("open: {e}"))?;
    let len = file.size().map_err(|e| format!("stat: {e}"))?;
    if len > SNAPSHOT_BYTES_MAX {
        return Err(format!("{len} bytes, more than the {SNAPSHOT_BYTES_MAX} a snapshot may hold"));
    }
    let mut bytes = vec![0u8; len as usize];
    read_exact_at(&*file, &mut bytes, 0).map_err(|e| format!("read: {e}"))?;
    let (header, payload) = derived::open(&bytes, KIND, VERSION).map_err(|e| e.to_string())?;
    let payload: Payload<'_> = postcard::from_bytes(payload).map_err(|e| format!("decode: {e}"))?;
    let (state, logged_ids): (LogState, _) = if validate {
        let state = postcard::from_bytes(payload.state).map_err(|e| format!("decode the validation state: {e}"))?;
        (state, Some(IdFile::open(vfs, dir, header.log_id, payload.ids)?))
    } else {
        (LogState::new(), None)
    };
    let extent = payload.extent;
    if payload.ids.count != extent.position {
        return Err(format!("its id file holds {} ids for {} events", payload.ids.count, extent.position));
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
    payload.offsets.check(extent.position)?;
    let mut index = Index { offsets: payload.offsets, ..Index::default() };
    index.segments = numbers.iter().take_while(|n| **n <= extent.segment).map(|n| dir.join(segment_name(*n))).collect();
    for (account, positions) in payload.streams {
        positions.check().map_err(|why| format!("account {account}: {why}"))?;
        let Some(first) = positions.first() else { return Err(format!("account {account} has no events")) };
        index.accounts.insert(account.clone(), first);
        index.interned.entry(account.stable_hash()).or_insert_with(|| account.clone());
        index.streams.insert(account, positions);
    }
    let core = Core {
        state,
        logged_ids,
        in_flight: std::collections::VecDeque::new(),
        next_position: extent.position + 1,
        last_recorded: payload.last_recorded,
    };
    Ok(Loaded { extent, core, index })
}

//! [`upgrade`]: the explicit step that turns a log of format 1, 2 or 3 into one of format 4,
//! whose frames are chained by BLAKE3, whose records may hold metadata, and whose personal text
//! is sealed under keys of a key file (`docs/log-format.md`, "Version history";
//! `docs/privacy.md`). An older log is never changed in place: it keeps opening and taking
//! appends in its own version, and this writes a new store beside it.
//!
//! The copy holds the same events at the same positions, in the same segments and frames, with
//! the same log id, `recorded_at` and stream versions: each record is read in its version and
//! written again in the current record form, its personal text sealed (and nothing else
//! changed: records of schema version 1 stay at it, read through the upcast like every older
//! record), and each frame gets its new checksum and BLAKE3 chain value. So checkpoints of
//! derived state taken on the old log still describe the new one. The source is held under its
//! writer lock throughout, so the copy is the whole log; the copy is synced, given a head
//! record, and verified. The source keeps its text in the clear: delete it once the copy
//! serves.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rapport_core::AccountId;

use crate::copy::{self, Failed, Refused, check_destination};
use crate::file_window::FileWindow;
use crate::format::{self, Chain, FORMAT_VERSION, FrameHeader, SEGMENT_HEADER_BYTES, SegmentHeader};
use crate::head::{self, HeadRecord};
use crate::index::segment_name;
use crate::keys::Keys;
use crate::options::{OpenError, Options};
use crate::store::FileStore;
use crate::verify::{VerifyError, verify_on};
use crate::vfs::{StdVfs, Vfs};

/// What an upgrade wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeReport {
    /// Events in the new store (all of the old one's).
    pub n_events: u64,
    /// Segments written.
    pub n_segments: u64,
    /// The new store's chain value after its last event: a BLAKE3 hash over the whole log.
    pub head_chain: Chain,
}

/// Why an upgrade was not made. A failed upgrade removes what it wrote and leaves the source
/// as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpgradeError {
    /// The source could not be opened; [`OpenError::Locked`] when a writer holds it (stop the
    /// writer first: an upgrade copies the whole log).
    #[error("opening the store to upgrade: {0}")]
    Open(#[from] OpenError),
    /// The source is already in the current format.
    #[error("{path} is already in format version {version}; nothing to upgrade")]
    Current {
        /// The source.
        path: PathBuf,
        /// Its version.
        version: u32,
    },
    /// The destination exists (an upgrade never overwrites) or lies inside the source, or the
    /// source inside it.
    #[error("upgrade destination {path}: {reason}")]
    Destination {
        /// The destination.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A frame of the source is damaged: its position, checksum or chain is wrong. (The open
    /// reads only what follows its index snapshot, so the rewrite checks every frame it
    /// copies.)
    #[error("{path} at byte {offset}: {reason}")]
    Source {
        /// The segment.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Reading the source or writing the copy failed.
    #[error("{operation} {path}: {source}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The new store's key file could not be made or written: its personal text is sealed
    /// under keys that must be durable before the frames sealed under them.
    #[error("the upgraded store's key file {path}: {reason}")]
    Keys {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The new store does not verify, or holds other than the old one's events.
    #[error("the upgraded store at {path} does not verify: {reason}")]
    Verify {
        /// The new store.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

fn io<'a>(operation: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> UpgradeError + 'a {
    move |source| UpgradeError::Io { operation, path: path.to_path_buf(), source }
}

impl From<Failed> for UpgradeError {
    fn from(Failed { operation, path, source }: Failed) -> Self {
        UpgradeError::Io { operation, path, source }
    }
}

/// Writes the store of format 1, 2 or 3 in `src` as a format-4 store in `dest` (a
/// directory that must not exist), and verifies it. The source is opened as its writer (so no process appends
/// meanwhile, and a torn tail a crash left is cut as any writer's open would) and is otherwise
/// left unchanged; switch a service to `dest` once this returns. Derived state (`derived/`) is
/// not copied: it is rebuilt from the log (a runner's checkpoint may be copied over by hand:
/// positions and the log id are the same). Each segment is read and written through a window of
/// a few MiB, so the memory an upgrade needs does not grow with the segments' size (up to
/// 4 GiB each); a frame larger than the window is held whole.
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("rapport-upgrade-doc-{}", std::process::id()));
/// # let dest = dir.with_extension("v4");
/// # let _ = std::fs::remove_dir_all(&dir);
/// # drop(rapport_store_file::FileStore::open(&dir)?);
/// // A store this build created is in version 4 already:
/// let refused = rapport_store_file::upgrade(&dir, &dest).unwrap_err();
/// assert!(matches!(refused, rapport_store_file::UpgradeError::Current { version: 4, .. }));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A failed upgrade removes the directory it created. One a crash cut short is left, and
/// every open refuses it ([`OpenError::Unfinished`]) while it holds
/// [`UNFINISHED_FILE`](crate::UNFINISHED_FILE), which the upgrade writes first and removes
/// once the copy is whole: remove it and run the upgrade again.
///
/// # Errors
/// [`UpgradeError`].
pub fn upgrade(src: impl AsRef<Path>, dest: impl AsRef<Path>) -> Result<UpgradeReport, UpgradeError> {
    upgrade_on(Arc::new(StdVfs), src, dest)
}

/// [`upgrade`] on the file system `vfs` (as [`FileStore::open_on`] opens a store on one): the
/// source, the copy and its check all go through it.
///
/// # Errors
/// [`UpgradeError`].
pub fn upgrade_on(
    vfs: Arc<dyn Vfs>,
    src: impl AsRef<Path>,
    dest: impl AsRef<Path>,
) -> Result<UpgradeReport, UpgradeError> {
    let (src, dest) = (src.as_ref(), dest.as_ref());
    let _span = tracing::info_span!("rapport.upgrade", src = %src.display(), dest = %dest.display()).entered();
    let store = FileStore::open_on(Arc::clone(&vfs), src, Options { create_if_missing: false, ..Options::default() })?;
    let version = store.recovery().format_version;
    if version >= FORMAT_VERSION {
        return Err(UpgradeError::Current { path: src.to_path_buf(), version });
    }
    check_destination(&*vfs, src, dest).map_err(|refused| match refused {
        Refused::Because(reason) => UpgradeError::Destination { path: dest.to_path_buf(), reason: reason.into() },
        Refused::Io(failed) => failed.into(),
    })?;
    let result = copy::begin(&*vfs, dest, "rapport upgrade")
        .map_err(UpgradeError::from)
        .and_then(|()| rewrite(&*vfs, &store, version, dest))
        .and_then(|report| check(Arc::clone(&vfs), dest, report));
    match &result {
        Ok(report) => tracing::info!(events = report.n_events, segments = report.n_segments, "log upgraded"),
        Err(e) => {
            tracing::warn!(error = %e, "upgrade failed; removing the partial copy");
            copy::discard(&*vfs, dest);
        }
    }
    result
}

/// Rewrites every segment of the (locked) source, in format `version`, then the head record.
fn rewrite(vfs: &dyn Vfs, store: &FileStore, version: u32, dest: &Path) -> Result<UpgradeReport, UpgradeError> {
    let n_segments = store.recovery().n_segments;
    let keys_failed = |reason: String| UpgradeError::Keys { path: dest.join(crate::keys::KEYS_FILE), reason };
    let keys = Keys::open(vfs, dest, store.shared.log_id, true).map_err(|e| keys_failed(e.to_string()))?;
    let keys = std::sync::RwLock::new(keys);
    let mut next = 1u64;
    let mut chain = Chain::START;
    let mut old_chain = Chain::START;
    for n in 0..n_segments {
        let from = store.dir().join(segment_name(n));
        let to = dest.join(segment_name(n));
        let fail = |offset: u64, reason: String| UpgradeError::Source { path: from.clone(), offset, reason };
        let file = vfs.open_read(&from).map_err(io("open", &from))?;
        let size = file.size().map_err(io("read", &from))?;
        let mut source = FileWindow::new(file, size, WINDOW_BYTES);
        let header = SegmentHeader::decode(source.get(0, SEGMENT_HEADER_BYTES).map_err(io("read", &from))?)
            .map_err(|e| fail(e.offset, e.reason))?;
        if header.base_position != next || header.segment_no != n {
            return Err(fail(32, format!("segment {n} does not start at position {next}")));
        }
        let mut copy = vfs.open_append(&to, true).map_err(io("create", &to))?;
        let mut out = Vec::with_capacity(WINDOW_BYTES);
        out.extend_from_slice(&SegmentHeader { version: FORMAT_VERSION, head_tracked: true, ..header }.encode());
        let mut at = SEGMENT_HEADER_BYTES as u64;
        while at < source.len() {
            let h = match FrameHeader::decode(
                source.get(at, format::frame_header_bytes(version)).map_err(io("read", &from))?,
                version,
            ) {
                Ok(h) => h,
                // Space a writer preallocated: the end of the log.
                Err(_) if source.zeros_from(at).map_err(io("read", &from))? => break,
                Err(e) => return Err(fail(at, format!("frame header does not decode ({e:?})"))),
            };
            let start = at + h.header_len() as u64;
            let payload = source.get(start, h.payload_len as usize).map_err(io("read", &from))?;
            if payload.len() < h.payload_len as usize {
                return Err(fail(at, "short frame".into()));
            }
            if h.first_position != next || crc32c::crc32c(payload) != h.payload_crc {
                return Err(fail(at, "frame position or payload checksum is wrong".into()));
            }
            old_chain = h.chain_after(&old_chain, payload).ok_or_else(|| fail(at, "frame breaks the chain".into()))?;
            let payload = sealed_payload(payload, h.count, version, &keys).map_err(|e| match e {
                Unsealed::Source(offset, reason) => fail(start + offset as u64, reason),
                Unsealed::Keys(reason) => keys_failed(reason),
            })?;
            chain = chain.after(h.first_position, h.count, &payload);
            let new = FrameHeader {
                version: FORMAT_VERSION,
                link: chain,
                payload_len: payload.len() as u32,
                payload_crc: crc32c::crc32c(&payload),
                ..h
            };
            out.extend_from_slice(&new.encode());
            out.extend_from_slice(&payload);
            if out.len() >= WINDOW_BYTES {
                copy.append(&out).map_err(io("write", &to))?;
                out.clear();
            }
            next += u64::from(h.count);
            at = start + u64::from(h.payload_len);
        }
        copy.append(&out).map_err(io("write", &to))?;
        copy.sync_data().map_err(io("sync", &to))?;
    }
    let n_events = next - 1;
    if n_events != store.recovery().n_events {
        return Err(UpgradeError::Verify {
            path: dest.to_path_buf(),
            reason: format!("{n_events} events rewritten, the source holds {}", store.recovery().n_events),
        });
    }
    if n_segments > 0 {
        let record = HeadRecord {
            version: FORMAT_VERSION,
            log_id: store.shared.log_id,
            last_segment: n_segments - 1,
            position: n_events,
            chain,
        };
        head::write(vfs, dest, &record).map_err(|(operation, e)| io(operation, dest)(e))?;
    }
    // Every file is synced: the copy is whole, and the marker goes.
    copy::finish(vfs, dest)?;
    Ok(UpgradeReport { n_events, n_segments, head_chain: chain })
}

/// Why a frame's records were not written again.
enum Unsealed {
    /// A record of the source does not read: where in the payload, and why.
    Source(usize, String),
    /// The new key file refused a key.
    Keys(String),
}

/// A frame's records written again in the current record form: each event read in its
/// version, its personal text sealed under a key of the new key file (made durable first),
/// its `recorded_at` and stream version kept.
fn sealed_payload(
    payload: &[u8],
    count: u32,
    version: u32,
    keys: &std::sync::RwLock<Keys>,
) -> Result<Vec<u8>, Unsealed> {
    let bodies = format::split_records(payload, count).map_err(|e| Unsealed::Source(e.offset as usize, e.reason))?;
    let mut events = Vec::with_capacity(bodies.len());
    let mut kept = Vec::with_capacity(bodies.len());
    for (off, body) in &bodies {
        let (e, recorded_at, stream_version) = format::check_schema_version(body, version)
            .and_then(|()| format::decode_parts(body, version, &mut |s| AccountId::new(s).map_err(|e| e.to_string())))
            .map_err(|e| Unsealed::Source(*off, e.reason))?;
        events.push((e, stream_version));
        kept.push(recorded_at);
    }
    let sealed =
        crate::sealing::seal(keys, &events).map_err(|why| Unsealed::Keys(format!("seal personal text: {why}")))?;
    if let Some(new) = sealed.new_keys() {
        crate::keys::write_new(keys, &[new]).map_err(|why| Unsealed::Keys(format!("write new keys: {why}")))?;
    }
    let mut out = Vec::with_capacity(payload.len() + payload.len() / 4);
    for (i, ((e, stream_version), recorded_at)) in events.iter().zip(kept).enumerate() {
        format::encode_record(e, sealed.get(i), recorded_at, *stream_version, FORMAT_VERSION, &mut out)
            .map_err(|why| Unsealed::Source(bodies[i].0, why.0))?;
    }
    Ok(out)
}

/// How much of a segment the upgrade reads at once, and writes at once: it holds about this
/// much of each (and a frame larger than it whole), not the segment (up to 4 GiB).
const WINDOW_BYTES: usize = 4 << 20;

/// The new store verifies, in version 2, with every event and the chain written.
fn check(vfs: Arc<dyn Vfs>, dest: &Path, report: UpgradeReport) -> Result<UpgradeReport, UpgradeError> {
    let fail = |reason: String| UpgradeError::Verify { path: dest.to_path_buf(), reason };
    if report.n_segments == 0 {
        return Ok(report);
    }
    let verified = verify_on(vfs, dest).map_err(|e| match e {
        VerifyError::Damaged { file, offset, reason } => fail(format!("{} at byte {offset}: {reason}", file.display())),
        other => fail(other.to_string()),
    })?;
    if verified.n_events != report.n_events
        || verified.format_version != format::FORMAT_VERSION
        || verified.head_chain != report.head_chain
        || verified.skipped.is_some()
    {
        return Err(fail(format!(
            "it reads as {} events in version {}, {} were written in version {FORMAT_VERSION}",
            verified.n_events, verified.format_version, report.n_events
        )));
    }
    Ok(report)
}

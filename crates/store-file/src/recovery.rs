//! Reading a log directory on open: every segment and frame checked, every record decoded and
//! validated again, the indexes rebuilt, the head record (`HEAD`) enforced, and damage at the
//! end judged as a torn write or as damage. The scan changes nothing on disk; a writer's open
//! then cuts the torn tail it reports, a read-only open reads up to it.

use std::path::{Path, PathBuf};

use rapport_core::Timestamp;
use rapport_core::backend::LogState;

mod frames;

use crate::damage;
use crate::file_window::FileWindow;
use crate::format::{self, Chain, FORMAT_VERSION, FrameHeader, SEGMENT_HEADER_BYTES, SegmentHeader};
use crate::head::{HEAD_FILE, HeadRecord};
use crate::index::{Core, Index, parse_segment_name, segment_name};
use crate::options::{OpenError, io_err, list_err};
use crate::snapshot;
use crate::vfs::{Vfs, read_at_most};
pub(crate) use frames::{Reading, Segment, scan_frames};

/// Where the readable log ends before the end of the last segment, and why: what a crash left
/// unwritten. Nothing in it was acknowledged.
#[derive(Debug, Clone)]
pub(crate) struct Tail {
    /// The last segment.
    pub(crate) segment: PathBuf,
    /// Where the log ends in it.
    pub(crate) offset: u64,
    /// The bytes after that.
    pub(crate) bytes: u64,
    /// What is there.
    pub(crate) reason: String,
}

/// What a scan found.
pub(crate) struct Scan {
    pub(crate) core: Core,
    pub(crate) index: Index,
    /// The log's id, when it has a segment with a readable header.
    pub(crate) log_id: Option<[u8; 16]>,
    /// The numbers of the segments read (0, 1, …), the last one included even if its header
    /// is incomplete.
    pub(crate) numbers: Vec<u64>,
    /// Bytes of the last segment up to the end of its last good frame (0 when its header is
    /// incomplete).
    pub(crate) segment_len: u64,
    /// The log's format version (from its first segment header; [`FORMAT_VERSION`] for a log
    /// without one yet).
    pub(crate) version: u32,
    /// The chain value after the last good frame ([`Chain::START`] for an empty log).
    pub(crate) chain: Chain,
    /// The highest sync epoch seen.
    pub(crate) last_epoch: u64,
    /// Damage at the end that a crash explains.
    pub(crate) tail: Option<Tail>,
    /// The events an index snapshot stood in for (0: none was used).
    pub(crate) from_snapshot: u64,
    /// Whether records read are validated into `core.state` (a writer's open, `verify`), or
    /// only placed (a read-only handle, which keeps no validation state).
    pub(crate) validate: bool,
}

impl Scan {
    /// The position of the last event read.
    pub(crate) fn head(&self) -> u64 {
        self.core.next_position - 1
    }

    /// The head record describing what this scan read.
    pub(crate) fn head_record(&self, log_id: [u8; 16]) -> HeadRecord {
        let last_segment = self.numbers.last().copied().unwrap_or(0);
        HeadRecord { version: self.version, log_id, last_segment, position: self.head(), chain: self.chain }
    }
}

/// A damaged spot in a segment, before it is judged.
pub(crate) struct Damage {
    at: usize,
    kind: Kind,
    /// The frame's header, when it decoded.
    header: Option<FrameHeader>,
}

/// What is at a damaged spot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Zeros to the end of the file.
    ZeroedSpace,
    /// A frame header of zeros, then other bytes.
    ZeroedHeader,
    /// The file ends inside a frame header.
    ShortHeader,
    /// A frame header whose checksum fails.
    InvalidHeader,
    /// The file ends inside a frame's payload.
    ShortPayload,
    /// A payload whose checksum fails.
    PayloadChecksum,
}

impl Damage {
    pub(crate) fn reason(&self) -> &'static str {
        self.kind.reason()
    }

    /// The length of the frame at the damaged spot, header included, when its header decoded.
    pub(crate) fn frame_len(&self) -> Option<usize> {
        self.header.map(|h| h.header_len() + h.payload_len as usize)
    }
}

impl Kind {
    fn reason(self) -> &'static str {
        match self {
            Kind::ZeroedSpace => "zeroed space",
            Kind::ZeroedHeader => "zeroed frame header followed by data",
            Kind::ShortHeader => "the file ends inside a frame header",
            Kind::InvalidHeader => "invalid frame header",
            Kind::ShortPayload => "the file ends inside a frame",
            Kind::PayloadChecksum => "frame payload checksum mismatch",
        }
    }
}

/// How damage at the end of the last segment is judged.
enum Verdict {
    /// Zeros to the end of the file: preallocated or never-written space.
    End,
    /// A crash's unwritten bytes.
    Torn(String),
    /// Damage to written data.
    Corrupt(String),
}

/// Bytes an open reads of a segment at a time: frames are scanned a window at a time (one frame
/// larger than it in a window of its own), so the memory an open holds for the bytes it reads
/// does not grow with the segment's size (up to 4 GiB). Not less: the system allocator serves
/// smaller blocks from its heap once larger ones were freed, and the heap stays resident after
/// the open (BENCHMARKS.md, "Open reads in windows").
pub(crate) const WINDOW_BYTES: usize = 32 << 20;

/// The sector-aligned byte at or before `offset`: a window starts there, so that damage is
/// judged by whole sectors.
fn sector_start(offset: u64) -> u64 {
    offset / damage::SECTOR_BYTES as u64 * damage::SECTOR_BYTES as u64
}

/// A segment's first bytes, where its header is (fewer if the file is shorter).
fn read_header(vfs: &dyn Vfs, path: &Path) -> Result<Vec<u8>, OpenError> {
    let f = vfs.open_read(path).map_err(io_err("open", path))?;
    let len = f.size().map_err(io_err("stat", path))?.min(SEGMENT_HEADER_BYTES as u64);
    let mut buf = vec![0u8; len as usize];
    let n = read_at_most(&*f, &mut buf, 0).map_err(io_err("read", path))?;
    buf.truncate(n);
    Ok(buf)
}

/// The numbers of the segment files in `dir`, in order, checked to run 0, 1, 2, … without gaps.
///
/// # Errors
/// A gap; a copy never finished ([`OpenError::Unfinished`]); the directory cannot be listed.
pub(crate) fn segment_numbers(vfs: &dyn Vfs, dir: &Path) -> Result<Vec<u64>, OpenError> {
    let names = vfs.list(dir).map_err(list_err(dir))?;
    if names.iter().any(|n| n == crate::copy::UNFINISHED_FILE) {
        return Err(OpenError::Unfinished { dir: dir.to_path_buf(), marker: crate::copy::UNFINISHED_FILE });
    }
    let mut numbers: Vec<u64> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
    numbers.sort_unstable();
    for (i, n) in numbers.iter().enumerate() {
        if *n != i as u64 {
            return Err(OpenError::Corrupt {
                segment: dir.join(segment_name(i as u64)),
                offset: 0,
                reason: format!("segment {i} is missing (found {})", segment_name(*n)),
            });
        }
    }
    Ok(numbers)
}

/// Reads the log in `dir` against its head record `head` (if it has one). Changes nothing.
///
/// # Errors
/// [`OpenError::Corrupt`] for damage no crash explains, a log that ends before what `head`
/// records, or a missing `HEAD` in a store that keeps one; I/O errors.
///
/// With `snapshot`, an index snapshot saved at a clean close or on request (`snapshot.rs`) that still
/// matches the log stands in for the log up to where it ends, and only what follows is read.
///
/// `validate` false (a read-only open): no validation state is kept (neither the streams'
/// rules nor the ids; records are checked for checksums, the chain, positions and stream
/// versions only), and a snapshot's is not loaded.
pub(crate) fn scan(
    vfs: &dyn Vfs,
    dir: &Path,
    head: Option<&HeadRecord>,
    snapshot: bool,
    validate: bool,
) -> Result<Scan, OpenError> {
    scan_in_windows(vfs, dir, head, snapshot, validate, WINDOW_BYTES)
}

/// [`scan`], reading segments `window_bytes` at a time.
fn scan_in_windows(
    vfs: &dyn Vfs,
    dir: &Path,
    head: Option<&HeadRecord>,
    snapshot: bool,
    validate: bool,
    window_bytes: usize,
) -> Result<Scan, OpenError> {
    let numbers = segment_numbers(vfs, dir)?;
    check_no_segment_lost(&numbers, dir, head)?;
    let loaded = if snapshot { snapshot::load(vfs, dir, &numbers, head, validate) } else { None };
    let mut scan;
    // Where reading starts: the first segment to read, and the byte in it.
    let (first, mut from) = match loaded {
        Some(loaded) => {
            let extent = loaded.extent;
            scan = Scan::resume(loaded.core, loaded.index);
            scan.numbers = numbers.iter().copied().take_while(|n| *n < extent.segment).collect();
            scan.index.segments.truncate(scan.numbers.len());
            scan.chain = extent.chain;
            scan.last_epoch = extent.last_epoch;
            tracing::debug!(events = extent.position, segment = extent.segment, "index snapshot loaded");
            scan.from_snapshot = extent.position;
            if validate {
                let tail: Vec<u64> = numbers.iter().copied().filter(|n| *n >= extent.segment).collect();
                scan.core.state.reserve(id_capacity(vfs, dir, &tail, extent.len));
            }
            (extent.segment, Some(extent.len as usize))
        }
        None => {
            let ids = if validate { id_capacity(vfs, dir, &numbers, 0) } else { 0 };
            scan = Scan::empty(ids, numbers.len());
            (0, None)
        }
    };
    scan.validate = validate;
    let mut tracked = false;
    // One buffer for every segment's windows.
    let mut window: Option<FileWindow> = None;
    // The chain value where the head record's position ends, to check it names this history.
    let mut chain_at_head = match head {
        Some(h) if h.position == 0 => Some(Chain::START),
        Some(h) if h.position + 1 == scan.core.next_position => Some(scan.chain),
        _ => None,
    };
    for (i, &n) in numbers.iter().enumerate().skip_while(|(_, n)| **n < first) {
        let path = dir.join(segment_name(n));
        let start = from.take();
        let file = vfs.open_read(&path).map_err(io_err("open", &path))?;
        let size = file.size().map_err(io_err("stat", &path))?;
        let window = match &mut window {
            Some(w) => {
                w.switch(file, size);
                w
            }
            None => window.insert(FileWindow::new(file, size, window_bytes)),
        };
        // Resuming inside the snapshot's segment, only what follows the snapshot is read.
        let (mut base, mut want) = (sector_start(start.unwrap_or(0) as u64), window_bytes);
        let mut bytes = window.get(base, want).map_err(io_err("read", &path))?;
        let is_last = i + 1 == numbers.len();
        scan.numbers.push(n);
        scan.index.segments.push(path.clone());
        let header = match start {
            // The snapshot's load checked this segment's header.
            Some(_) => {
                let h = SegmentHeader::decode(&read_header(vfs, &path)?).map_err(|e| OpenError::Corrupt {
                    segment: path.clone(),
                    offset: e.offset,
                    reason: e.reason,
                })?;
                scan.log_id = Some(h.log_id);
                scan.version = h.version;
                h
            }
            None => match read_segment_header(&mut scan, bytes, n, &path, is_last, head)? {
                Some(h) => h,
                None => break,
            },
        };
        tracked |= header.head_tracked;
        let segment = Segment { n, path: &path, head };
        // The byte the next frame starts at.
        let mut at = start.map_or(SEGMENT_HEADER_BYTES as u64, |f| f as u64);
        loop {
            // Whether the window reaches the segment's end (or the end the file had when read).
            let held = bytes.len();
            let to_end = held < want || base + held as u64 >= size;
            let frames = Frames { bytes, from: (at - base) as usize, base };
            let (end, damage) =
                scan_frames(&mut scan, frames, &segment, &mut chain_at_head, Reading::for_open(&frames))?;
            scan.segment_len = base + end as u64;
            if to_end {
                if let Some(damage) = damage {
                    judge_damage(&mut scan, Frames { bytes, from: 0, base }, &damage, &path, is_last)?;
                }
                break;
            }
            // The window ends before the segment: the frames go on past it, or what stopped
            // them may be the window's end. The next window starts at the first frame not
            // read; when not one frame was, it holds that frame whole (its header says how
            // long it is), or else reaches the segment's end, where damage is judged.
            let progress = scan.segment_len > at;
            base = sector_start(scan.segment_len);
            // Where the frame that stopped the scan ends in the next window, when its header says.
            let frame_end = damage.and_then(|d| d.frame_len()).map(|len| (scan.segment_len - base) as usize + len);
            want = match frame_end {
                _ if progress => window_bytes,
                Some(end) if end > held => end,
                _ => usize::MAX,
            };
            at = scan.segment_len;
            bytes = window.get(base, want).map_err(io_err("read", &path))?;
            debug_assert!(progress || bytes.len() < want || bytes.len() > held, "each window reads on");
        }
    }
    check_against_head(&scan, dir, head, tracked, chain_at_head)?;
    Ok(scan)
}

/// Refuses a log with fewer segments than its head record names: one at the end was lost.
fn check_no_segment_lost(numbers: &[u64], dir: &Path, head: Option<&HeadRecord>) -> Result<(), OpenError> {
    match head {
        Some(h) if (numbers.len() as u64) <= h.last_segment => Err(OpenError::Corrupt {
            segment: dir.join(segment_name(numbers.len() as u64)),
            offset: 0,
            reason: format!(
                "segment {} is missing: {} records segments up to {} (a segment at the end was deleted or lost)",
                numbers.len(),
                dir.join(HEAD_FILE).display(),
                h.last_segment
            ),
        }),
        _ => Ok(()),
    }
}

/// About one event per 64 bytes of the segments `numbers` past their first `skip` bytes: the
/// id index is reserved once, not by doubling (each doubling would leave the smaller copy as a
/// hole in the heap).
fn id_capacity(vfs: &dyn Vfs, dir: &Path, numbers: &[u64], skip: u64) -> usize {
    let bytes: u64 = numbers
        .iter()
        .filter_map(|n| vfs.open_read(&dir.join(segment_name(*n))).ok().and_then(|f| f.size().ok()))
        .sum();
    (bytes.saturating_sub(skip) / 64).min(1 << 28) as usize
}

impl Scan {
    /// Nothing read yet, with room for `ids` ids and `segments` segments.
    fn empty(ids: usize, segments: usize) -> Self {
        let mut scan = Self::resume(Self::empty_core(), Index::default());
        scan.core.state = LogState::with_capacity(ids);
        scan.numbers = Vec::with_capacity(segments);
        scan
    }

    /// A log state with nothing read.
    pub(crate) fn empty_core() -> Core {
        Core {
            state: LogState::with_capacity(0),
            logged_ids: None,
            saved_states: None,
            in_flight: std::collections::VecDeque::new(),
            next_position: 1,
            last_recorded: Timestamp::from_unix_nanos(i64::MIN),
        }
    }

    /// A scan that continues from what `core` and `index` hold (a follower's next look).
    pub(crate) fn resume(core: Core, index: Index) -> Self {
        Scan {
            core,
            index,
            log_id: None,
            numbers: Vec::new(),
            segment_len: 0,
            version: FORMAT_VERSION,
            chain: Chain::START,
            last_epoch: 0,
            tail: None,
            from_snapshot: 0,
            validate: true,
        }
    }
}

/// Reads and checks segment `n`'s header: of this log, numbered `n`, starting where the
/// segment before ended. `None` for a last segment whose creation a crash cut short (then
/// recorded as the tail), unless the head record says that segment was complete.
fn read_segment_header(
    scan: &mut Scan,
    bytes: &[u8],
    n: u64,
    path: &Path,
    is_last: bool,
    head: Option<&HeadRecord>,
) -> Result<Option<SegmentHeader>, OpenError> {
    let corrupt = |offset: u64, reason: String| OpenError::Corrupt { segment: path.to_path_buf(), offset, reason };
    let head_path = || path.with_file_name(HEAD_FILE);
    let header = match SegmentHeader::decode(bytes) {
        Ok(h) => h,
        Err(e) if is_last && (bytes.iter().all(|&b| b == 0) || bytes.len() < SEGMENT_HEADER_BYTES) => {
            if head.is_some_and(|h| h.last_segment >= n) {
                return Err(corrupt(
                    e.offset,
                    format!("{}, but the head record {} says it was complete", e.reason, head_path().display()),
                ));
            }
            scan.segment_len = 0;
            scan.tail = Some(Tail {
                segment: path.to_path_buf(),
                offset: 0,
                bytes: bytes.len() as u64,
                reason: format!("incomplete segment header ({})", e.reason),
            });
            return Ok(None);
        }
        Err(e) => return Err(corrupt(e.offset, e.reason)),
    };
    if scan.log_id.is_some_and(|id| id != header.log_id) {
        return Err(corrupt(16, "segment belongs to another log".into()));
    }
    if head.is_some_and(|h| h.log_id != header.log_id) {
        return Err(corrupt(16, format!("segment belongs to another log than {}", head_path().display())));
    }
    if scan.log_id.is_some() && header.version != scan.version {
        return Err(corrupt(
            8,
            format!("segment is in format version {}, the log before it in {}", header.version, scan.version),
        ));
    }
    scan.log_id = Some(header.log_id);
    scan.version = header.version;
    if header.segment_no != n || header.base_position != scan.core.next_position {
        return Err(corrupt(
            32,
            format!(
                "segment header says segment {} from position {}, expected segment {n} from {}",
                header.segment_no, header.base_position, scan.core.next_position
            ),
        ));
    }
    Ok(Some(header))
}

/// Damage where a segment's good frames end: in a sealed segment it hit acknowledged data
/// (the writer syncs a segment before it creates the next one) and is refused; in the last
/// one it is judged, and a tail no acknowledged event lies in is recorded for cutting.
///
/// `frames.bytes` start at byte `frames.base` of the segment (a multiple of the sector size);
/// `damage.at` is relative to them.
fn judge_damage(
    scan: &mut Scan,
    frames: Frames<'_>,
    damage: &Damage,
    path: &Path,
    is_last: bool,
) -> Result<(), OpenError> {
    let Frames { bytes, base, .. } = frames;
    debug_assert!(base.is_multiple_of(damage::SECTOR_BYTES as u64), "damage is judged by whole sectors");
    let corrupt = |offset: usize, reason: String| OpenError::Corrupt {
        segment: path.to_path_buf(),
        offset: base + offset as u64,
        reason,
    };
    if !is_last {
        return Err(corrupt(damage.at, format!("{} in a sealed segment", damage.kind.reason())));
    }
    let reason = match judge(bytes, damage, scan.last_epoch, scan.version, base) {
        Verdict::End if damage.at == bytes.len() => return Ok(()),
        Verdict::End => "zeroed space".to_string(),
        Verdict::Torn(reason) => reason,
        Verdict::Corrupt(reason) => return Err(corrupt(damage.at, reason)),
    };
    scan.tail = Some(Tail {
        segment: path.to_path_buf(),
        offset: base + damage.at as u64,
        bytes: (bytes.len() - damage.at) as u64,
        reason,
    });
    Ok(())
}

/// Bytes of a segment to read frames from: `bytes` starts at byte `base` of the file, and the
/// frames at `from` in `bytes`. Open reads whole segments (`base` 0, `from` past the header);
/// a follower reads what was appended since it last looked.
#[derive(Clone, Copy)]
pub(crate) struct Frames<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) from: usize,
    pub(crate) base: u64,
}

/// Judges damage in the last segment: a torn write only on evidence that no flipped bit
/// produces (see [`damage`]), and never when a later sync's frame follows.
/// Byte numbers in its reasons are the segment's: `bytes` start at byte `base` of it.
fn judge(bytes: &[u8], d: &Damage, last_epoch: u64, version: u32, base: u64) -> Verdict {
    let reason = d.kind.reason();
    if d.kind == Kind::ZeroedSpace {
        return Verdict::End;
    }
    // A torn final write leaves damage followed only by frames of its own unsynced group. A
    // later frame from a later sync epoch proves the damaged bytes had been synced.
    let bound = d.header.map_or(last_epoch + 1, |h| h.epoch);
    if let Some(o) = synced_frame_after(bytes, d.at + 1, bound, version) {
        return Verdict::Corrupt(format!(
            "{reason}, and acknowledged data follows (a frame from a later sync at byte {})",
            base + o as u64
        ));
    }
    let at = d.at;
    let header_len = format::frame_header_bytes(version);
    let (start, end, crc) = match (d.kind, d.header) {
        // The file ends inside the frame: the sizes a crash leaves.
        (Kind::ShortHeader | Kind::ShortPayload, _) => return Verdict::Torn(reason.into()),
        // Zeros where the frame magic belongs: never written data.
        (Kind::ZeroedHeader, _) => return Verdict::Torn(reason.into()),
        (Kind::PayloadChecksum, Some(h)) => {
            let start = at + h.header_len();
            (start, start + h.payload_len as usize, h.payload_crc)
        }
        _ => {
            // The header's own checksum failed; the frame's extent is unknown, so the header
            // alone is judged.
            let crc_at = header_len - 4;
            let header = &bytes[at..at + header_len];
            let stored =
                u32::from_le_bytes([header[crc_at], header[crc_at + 1], header[crc_at + 2], header[crc_at + 3]]);
            let diff = crc32c::crc32c(&header[..crc_at]) ^ stored;
            if diff == 0 {
                return Verdict::Corrupt("a frame header whose checksum passes holds impossible values".into());
            }
            // A difference in bytes a torn sector zeroed is the tear's (see
            // `damage::torn_inside_header`); anywhere else, one bit is a flipped bit.
            let torn = damage::torn_inside_header(bytes, at, header_len);
            let in_tear = |byte: usize| torn.is_some_and(|t| byte >= t);
            if diff.count_ones() == 1 && !in_tear(crc_at + diff.trailing_zeros() as usize / 8) {
                return Verdict::Corrupt(format!("{reason}: one flipped bit in its checksum, not a torn write"));
            }
            if let Some((byte, bit)) = damage::single_bit_flip(&header[..crc_at], stored)
                && !in_tear(byte)
            {
                return Verdict::Corrupt(format!(
                    "{reason}: one flipped bit (byte {}, bit {bit}), not a torn write",
                    base + (at + byte) as u64
                ));
            }
            (at, at, stored)
        }
    };
    if let Some((byte, bit)) = damage::single_bit_flip(&bytes[start..end], crc) {
        return Verdict::Corrupt(format!(
            "{reason}: one flipped bit (byte {}, bit {bit}), not a torn write",
            base + (start + byte) as u64
        ));
    }
    // A header judged alone reaches, for this purpose, to the end of the sector its last byte
    // lies in: a header's last bytes are checksums and hash, never a zero run, so zeros from
    // inside the header to that sector's end are a sector that never reached the disk.
    let frame_end = if d.header.is_some() {
        end
    } else {
        let header_end = at + header_len;
        header_end.next_multiple_of(damage::SECTOR_BYTES).min(bytes.len()).max(header_end)
    };
    if damage::torn_zeros(bytes, at, frame_end) {
        Verdict::Torn(reason.into())
    } else {
        Verdict::Corrupt(format!("{reason}, and no torn write explains it"))
    }
}

/// Where a valid frame header lies in `bytes` from `from` on with an epoch above
/// `epoch_bound`, which proves the frames before it were synced.
fn synced_frame_after(bytes: &[u8], from: usize, epoch_bound: u64, version: u32) -> Option<usize> {
    let mut at = from;
    let magic = if version == format::FORMAT_VERSION_1 { format::FRAME_MAGIC_V1 } else { format::FRAME_MAGIC };
    while at + format::frame_header_bytes(version) <= bytes.len() {
        if bytes[at..at + 4] == magic
            && let Ok(h) = FrameHeader::decode(&bytes[at..], version)
            && h.epoch > epoch_bound
        {
            return Some(at);
        }
        at += 1;
    }
    None
}

/// The log read must hold everything the head record says was acknowledged, in the same
/// history; and a store whose segments say it keeps a head record must have one.
fn check_against_head(
    scan: &Scan,
    dir: &Path,
    head: Option<&HeadRecord>,
    tracked: bool,
    chain_at_head: Option<Chain>,
) -> Result<(), OpenError> {
    let head_path = dir.join(HEAD_FILE);
    let Some(h) = head else {
        // A store writes its head record before its first append, so an empty log without
        // one is a creation a crash cut short; a log with events is missing it.
        if tracked && scan.head() > 0 {
            return Err(OpenError::Corrupt {
                segment: head_path,
                offset: 0,
                reason: "the head record is missing: this store keeps one, so it was deleted or lost, and a lost \
                         end of the log could not be told apart"
                    .into(),
            });
        }
        return Ok(());
    };
    let read = scan.head();
    if read < h.position {
        let (segment, offset, why) = match &scan.tail {
            Some(t) => (t.segment.clone(), t.offset, format!("{} at this offset", t.reason)),
            None => (
                scan.index.segments.last().cloned().unwrap_or_else(|| dir.join(segment_name(0))),
                scan.segment_len,
                "the segment ends here".to_string(),
            ),
        };
        return Err(OpenError::Corrupt {
            segment,
            offset,
            reason: format!(
                "{why}, but the head record {} has events up to position {} acknowledged and the log ends at \
                 {read}: acknowledged events were lost",
                head_path.display(),
                h.position
            ),
        });
    }
    if chain_at_head != Some(h.chain) {
        return Err(OpenError::Corrupt {
            segment: head_path,
            offset: 0,
            reason: format!("position {} does not end the frame the head record names: another history", h.position),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;

//! A segment's frames read into a [`Scan`]: a [`FrameReader`] checks each frame (its header,
//! its first position, its checksum, the hash chain), decodes its records and, when the scan
//! validates, records their ids (refusing an id logged twice), in batches; the scan then places
//! each batch's records (the streams' rules, the indexes) and takes on each frame's chain
//! value, in log order. The ids are taken out of the scan's validation state for the read
//! ([`LogState::take_ids`](rapport_core::backend::LogState::take_ids)) and put back after it.
//!
//! On open the reader runs on a thread of its own ([`Reading::Apart`], for a read of at least
//! [`APART_BYTES`]), at most [`AHEAD`] batches ahead of the placing: reading a frame needs
//! nothing the placing holds, so the two overlap, and a crash's tail is replayed before a
//! service can append (BENCHMARKS.md, "Replay on two threads"). A shorter read, and a
//! follower's look at the few frames a writer appended since, run both in turn on the
//! caller's thread ([`Reading::Here`]). Either way the scan ends as one pass would leave it,
//! and the first error in log order is the one reported: the reader sends the frames it
//! decoded before an error ahead of the error, and the placing stops at the first record it
//! refuses, which ends the reader at its next send. An id logged twice is refused by the
//! reader, so it is reported after any refusal of the records before it, as one pass would.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::SyncSender;

use rapport_core::backend::LoggedIds;
use rapport_core::view::EnvelopeRef;
use rapport_core::{Position, StreamVersion};

use super::{Damage, Frames, Kind, Scan};
use crate::format::{self, Chain, FrameHeader, FrameHeaderError};
use crate::head::HeadRecord;
use crate::id_file::IdFile;
use crate::options::OpenError;

/// How many records a batch holds at most (a frame of more records is handed on in parts):
/// what the reader may hold decoded ahead of the placing is bounded by this, not by the
/// largest frame (a backfill's frame holds thousands of records).
const BATCH_RECORDS: usize = 1024;
/// How many batches the reader may have decoded and not yet handed to the placing.
const AHEAD: usize = 4;

/// One record, checked and decoded in place: it borrows the segment's bytes, and the owned
/// event (a writer's open validates one) is made, and freed, by the placing thread.
struct Decoded<'a> {
    record: EnvelopeRef<'a>,
    /// The byte of the segment the record starts at.
    record_at: u64,
    /// How many records of its frame, itself included, are left from it.
    left: u32,
}

/// Where a frame's records end in its batch, and what the frame leaves the chain at.
struct FrameEnd {
    records: usize,
    chain: Chain,
    epoch: u64,
}

/// Records of frames checked whole, decoded, with the ends of the frames whose last record
/// they hold.
struct Batch<'a> {
    records: Vec<Decoded<'a>>,
    frames: Vec<FrameEnd>,
}

/// What follows a batch.
enum Next {
    /// More frames.
    More,
    /// The frames end here: where the good frames end (in the bytes read) and the damage there.
    End(usize, Option<Damage>),
    /// A frame that no crash explains: its checksums pass, its content is wrong.
    Failed(OpenError),
}

/// Reads a segment's frames: everything about a frame that does not depend on the records
/// before it in other streams.
struct FrameReader<'a> {
    frames: Frames<'a>,
    path: &'a Path,
    version: u32,
    /// The chain value after the last frame read.
    chain: Chain,
    /// The position the next frame must start at.
    next_position: u64,
    /// The ids the index snapshot holds, each record's id looked up in it (when the scan
    /// validates): the file does not change during the scan, and the lookup is a miss in
    /// memory the placing need not wait for.
    logged_ids: Option<Arc<IdFile>>,
    /// The ids read since the snapshot (or in the whole log), taken out of the scan's
    /// validation state while the reader records each record's id in them (when the scan
    /// validates): an insert into a table of a million ids is a miss in memory too, and the
    /// placing does not need the ids to run the streams' rules.
    ids: Option<LoggedIds>,
    /// The id file's filter's answers for the records whose ids are being recorded (kept
    /// from frame to frame: a live service's log has a frame per append).
    maybe: Vec<bool>,
    /// The frame whose records are being decoded, checked whole.
    current: Option<Current<'a>>,
}

/// A frame checked whole, whose records are being decoded.
struct Current<'a> {
    h: FrameHeader,
    /// Where its payload starts in the bytes read.
    start: usize,
    /// The chain value after it.
    chain: Chain,
    /// Its records not yet decoded.
    records: format::Records<'a>,
    /// How many of its records were decoded.
    k: u32,
}

/// What one step of the reader did.
enum Step {
    /// Checked a frame and made it the current one.
    Opened,
    /// Decoded the rest of the current frame.
    FrameDone,
    /// Filled the batch.
    Full,
    /// Found the end of the frames.
    End((usize, Option<Damage>)),
}

impl<'a> FrameReader<'a> {
    /// A reader of `frames` that continues where `scan` stands, holding its ids when it
    /// validates ([`end`](Self::end) gives them back).
    fn new(scan: &mut Scan, frames: Frames<'a>, path: &'a Path) -> Self {
        FrameReader {
            frames,
            path,
            version: scan.version,
            chain: scan.chain,
            next_position: scan.core.next_position,
            logged_ids: scan.core.logged_ids.clone().filter(|_| scan.validate),
            ids: scan.validate.then(|| scan.core.state.take_ids()),
            maybe: Vec::new(),
            current: None,
        }
    }

    /// Gives the ids back to `scan`'s validation state.
    fn end(self, scan: &mut Scan) {
        if let Some(ids) = self.ids {
            scan.core.state.put_ids(ids);
        }
    }

    /// Records the ids of the records `batch` holds from its `from`th on (when the scan
    /// validates), in order, refusing an id the log holds already (in the snapshot's id file,
    /// or earlier in what was read since): the refused record and those after it leave the
    /// batch, with the end of their frame. The id file's filter is asked about every id first
    /// ([`IdFile::may_hold_each`]).
    fn record_ids(&mut self, batch: &mut Batch<'a>, from: usize) -> Result<(), OpenError> {
        let Some(ids) = &mut self.ids else { return Ok(()) };
        let records = &batch.records[from..];
        if let Some(file) = &self.logged_ids {
            file.may_hold_each(records.iter().map(|d| &d.record.id), &mut self.maybe);
        }
        for (k, d) in records.iter().enumerate() {
            let r = &d.record;
            let twice = |first: Position| {
                format!(
                    "position {}: account {}: event {} is in the log twice, first at position {first}",
                    r.position, r.account, r.id
                )
            };
            let in_file = match &self.logged_ids {
                Some(file) if self.maybe[k] => file.find(&r.id),
                _ => Ok(None),
            };
            let refusal = match in_file {
                Err(reason) => reason,
                Ok(Some(first)) => twice(first),
                Ok(None) => match ids.insert_new(r.id, r.position) {
                    Ok(()) => continue,
                    Err(first) => twice(first),
                },
            };
            let error = OpenError::Corrupt { segment: self.path.to_path_buf(), offset: d.record_at, reason: refusal };
            let placed = from + k;
            batch.records.truncate(placed);
            batch.frames.retain(|f| f.records <= placed);
            return Err(error);
        }
        Ok(())
    }

    fn corrupt(&self, offset: usize, reason: String) -> OpenError {
        OpenError::Corrupt { segment: self.path.to_path_buf(), offset: self.frames.base + offset as u64, reason }
    }

    /// The next batch of records, at most [`BATCH_RECORDS`], and what follows it. A frame
    /// of more records than a batch has room for goes on in the next batch; its end (its
    /// chain value) comes with its last record.
    fn next_batch(&mut self) -> (Batch<'a>, Next) {
        let mut batch = Batch { records: Vec::with_capacity(BATCH_RECORDS), frames: Vec::new() };
        loop {
            let step = match self.current.take() {
                Some(frame) => self.fill(frame, &mut batch),
                None => self.open_frame().map(|end| end.map_or(Step::Opened, Step::End)),
            };
            match step {
                Ok(Step::Opened | Step::FrameDone) => {}
                Ok(Step::Full) => return (batch, Next::More),
                Ok(Step::End((end, damage))) => return (batch, Next::End(end, damage)),
                Err(e) => return (batch, Next::Failed(e)),
            }
        }
    }

    /// Checks the frame at `self.frames.from` whole (header, position, checksums, chain, its
    /// records' lengths and checksums) and makes it the current one; or says where the frames
    /// end.
    fn open_frame(&mut self) -> Result<Option<(usize, Option<Damage>)>, OpenError> {
        let Frames { bytes, from: at, .. } = self.frames;
        if at == bytes.len() {
            return Ok(Some((at, None)));
        }
        let damage = |kind, header| Ok(Some((at, Some(Damage { at, kind, header }))));
        let h = match FrameHeader::decode(&bytes[at..], self.version) {
            Ok(h) => h,
            Err(FrameHeaderError::Zero | FrameHeaderError::Short) if bytes[at..].iter().all(|&b| b == 0) => {
                return damage(Kind::ZeroedSpace, None);
            }
            Err(FrameHeaderError::Zero) => return damage(Kind::ZeroedHeader, None),
            Err(FrameHeaderError::Short) => return damage(Kind::ShortHeader, None),
            Err(FrameHeaderError::Invalid) => return damage(Kind::InvalidHeader, None),
        };
        if h.first_position != self.next_position {
            return Err(self.corrupt(
                at,
                format!("frame starts at position {}, expected {}", h.first_position, self.next_position),
            ));
        }
        if h.breaks_chain_from(&self.chain) {
            return Err(self.corrupt(at, "frame does not chain to the previous frame".into()));
        }
        let start = at + h.header_len();
        let Some(payload) = bytes.get(start..start + h.payload_len as usize) else {
            return damage(Kind::ShortPayload, Some(h));
        };
        if crc32c::crc32c(payload) != h.payload_crc {
            return damage(Kind::PayloadChecksum, Some(h));
        }
        // Both checksums pass, so no crash made this frame: a chain that does not hold means
        // the bytes were edited (or come from another history), and every CRC recomputed does
        // not hide it in a version-2 log.
        let Some(chain) = h.chain_after(&self.chain, payload) else {
            let last = h.first_position + u64::from(h.count) - 1;
            return Err(self.corrupt(
                at,
                format!(
                    "the frame of positions {} to {last} breaks the hash chain: its content or the history before \
                     it is not what was written",
                    h.first_position
                ),
            ));
        };
        format::check_records(payload, h.count).map_err(|e| self.corrupt(start + e.offset as usize, e.reason))?;
        self.current = Some(Current { h, start, chain, records: format::Records::new(payload), k: 0 });
        Ok(None)
    }

    /// Decodes the current frame's records into `batch` until the frame or the batch's room
    /// ends, and records their ids. The records before a refused one stay in `batch` (with no
    /// frame end, so the frame's chain is not taken on), as one pass would have placed them
    /// before reading it.
    fn fill(&mut self, frame: Current<'a>, batch: &mut Batch<'a>) -> Result<Step, OpenError> {
        let from = batch.records.len();
        let decoded = self.decode(frame, batch);
        // Ids first: a refused id comes before the record that ended the decoding.
        self.record_ids(batch, from)?;
        decoded
    }

    /// Decodes the current frame's records into `batch` (for [`fill`](Self::fill)).
    fn decode(&mut self, mut frame: Current<'a>, batch: &mut Batch<'a>) -> Result<Step, OpenError> {
        let h = frame.h;
        while batch.records.len() < BATCH_RECORDS {
            let Some((off, body)) = frame.records.next() else {
                batch.frames.push(FrameEnd { records: batch.records.len(), chain: frame.chain, epoch: h.epoch });
                debug_assert_eq!(frame.k, h.count, "a checked frame holds the records its header counts");
                self.chain = frame.chain;
                self.next_position = h.first_position + u64::from(h.count);
                self.frames.from = frame.start + h.payload_len as usize;
                return Ok(Step::FrameDone);
            };
            let position = Position(h.first_position + u64::from(frame.k));
            let record_at = frame.start + off;
            let record = format::check_schema_version(body, self.version)
                .and_then(|()| format::decode_body_ref(body, position, self.version))
                .map_err(|e| self.corrupt(record_at, format!("position {position}: {}", e.reason)))?;
            let left = h.count - frame.k;
            let record_at = self.frames.base + record_at as u64;
            batch.records.push(Decoded { record, record_at, left });
            frame.k += 1;
        }
        self.current = Some(frame);
        Ok(Step::Full)
    }

    /// Reads batches and hands them on until the frames end, the placing stops listening, or
    /// a frame fails; then ends the channel.
    fn send_all(&mut self, to: SyncSender<(Batch<'a>, Next)>) {
        loop {
            let (batch, next) = self.next_batch();
            let more = matches!(next, Next::More);
            if to.send((batch, next)).is_err() || !more {
                return;
            }
        }
    }
}

/// What the placing of a segment's frames needs besides the scan.
pub(crate) struct Segment<'a> {
    /// The segment's number.
    pub(crate) n: u64,
    pub(crate) path: &'a Path,
    pub(crate) head: Option<&'a HeadRecord>,
}

/// Places `batch` into `scan`: each record's checks and indexes, and at each frame's end its
/// chain value (noted in `chain_at_head` when the head record's position ends the frame);
/// last, the records after the last end (of a frame that goes on in the next batch, or whose
/// next record does not decode).
fn place(
    scan: &mut Scan,
    batch: Batch<'_>,
    at: &Segment<'_>,
    chain_at_head: &mut Option<Chain>,
) -> Result<(), OpenError> {
    let mut records = batch.records.into_iter();
    let mut placed = 0;
    let mut place_records = |scan: &mut Scan, n: usize| {
        records.by_ref().take(n).try_for_each(|d| {
            place_record(scan, &d, at.n).map_err(|reason| OpenError::Corrupt {
                segment: at.path.to_path_buf(),
                offset: d.record_at,
                reason,
            })
        })
    };
    for frame in batch.frames {
        place_records(scan, frame.records - placed)?;
        placed = frame.records;
        scan.chain = frame.chain;
        scan.last_epoch = scan.last_epoch.max(frame.epoch);
        if at.head.is_some_and(|r| r.position == scan.core.next_position - 1) {
            *chain_at_head = Some(frame.chain);
        }
    }
    place_records(scan, usize::MAX)
}

/// Places one record of segment `segment`: checks it against the validation state (when the
/// scan validates) or its stream's length, and indexes it.
fn place_record(scan: &mut Scan, d: &Decoded<'_>, segment: u64) -> Result<(), String> {
    let r = &d.record;
    let position = r.position;
    // The account shared with the records before it (the index's interned one).
    let account =
        scan.index.intern(r.account.as_str()).map_err(|why| format!("position {position}: account: {why}"))?;
    let version = if scan.validate {
        let e = &r.to_new_event_in(account.clone());
        // The account's state the snapshot left on disk first; the id the reader recorded.
        scan.core.load_streams(std::iter::once(&e.account))?;
        scan.core.state.replay_stream(e).map_err(|err| format!("position {position}: {err}"))?
    } else {
        StreamVersion(scan.index.streams.get(&account).map_or(0, |s| s.len()) + 1)
    };
    if version != r.stream_version {
        return Err(format!(
            "position {position}: stored stream version {} but the stream is at {version}",
            r.stream_version
        ));
    }
    scan.core.next_position = position.0 + 1;
    scan.core.last_recorded = scan.core.last_recorded.max(r.recorded_at);
    scan.index.offsets.note(position.0, segment, d.record_at, d.left);
    scan.index.note_account(&account, position.0);
    Ok(())
}

/// Where a segment's frames are read and decoded.
pub(crate) enum Reading {
    /// On a thread of their own (an open's long read).
    Apart,
    /// On the caller's thread, in turn with the placing (an open's short read, a follower's
    /// look at a few new frames).
    Here,
}

/// From this many bytes of frames on, an open reads them on a thread of their own; a shorter
/// read stays on the opening thread, where starting a thread would cost more than it saves
/// (BENCHMARKS.md, "Replay on two threads").
const APART_BYTES: usize = 1 << 20;

impl Reading {
    /// Where an open reads `frames`: apart when there are enough of them.
    pub(crate) fn for_open(frames: &Frames<'_>) -> Reading {
        if frames.bytes.len().saturating_sub(frames.from) >= APART_BYTES { Reading::Apart } else { Reading::Here }
    }
}

/// Reads the frames of one segment into `scan`; returns where the good frames end (in
/// `frames.bytes`) and the damage found there, if any. A frame whose checksums pass but whose
/// content is wrong is corruption at once: no crash writes a whole, checksummed frame in the
/// wrong place.
pub(crate) fn scan_frames(
    scan: &mut Scan,
    frames: Frames<'_>,
    at: &Segment<'_>,
    chain_at_head: &mut Option<Chain>,
    reading: Reading,
) -> Result<(usize, Option<Damage>), OpenError> {
    let mut reader = FrameReader::new(scan, frames, at.path);
    let outcome = match reading {
        Reading::Here => place_all(scan, std::iter::from_fn(|| Some(reader.next_batch())), at, chain_at_head),
        Reading::Apart => std::thread::scope(|s| {
            let (to, from) = std::sync::mpsc::sync_channel::<(Batch<'_>, Next)>(AHEAD);
            let reading = s.spawn(|| reader.send_all(to));
            // Placing stops at its first error; dropping `from` then ends the reader's sends.
            let outcome = place_all(scan, from.iter(), at, chain_at_head);
            drop(from);
            if let Err(panic) = reading.join() {
                std::panic::resume_unwind(panic);
            }
            outcome
        }),
    };
    reader.end(scan);
    outcome
}

/// Places batches until the frames end or fail, or a record is refused.
fn place_all<'a>(
    scan: &mut Scan,
    batches: impl Iterator<Item = (Batch<'a>, Next)>,
    at: &Segment<'_>,
    chain_at_head: &mut Option<Chain>,
) -> Result<(usize, Option<Damage>), OpenError> {
    for (batch, next) in batches {
        place(scan, batch, at, chain_at_head)?;
        match next {
            Next::More => {}
            Next::End(end, damage) => return Ok((end, damage)),
            Next::Failed(e) => return Err(e),
        }
    }
    // The reader ends every run of batches with an end or a failure; a channel that closes
    // before one means its thread panicked, which joining it raises again.
    Err(OpenError::Corrupt {
        segment: at.path.to_path_buf(),
        offset: 0,
        reason: "the frame reader stopped before the frames ended".into(),
    })
}

#[cfg(test)]
mod tests;

//! The writer thread: group commit. Decided appends arrive in order as [`Job`]s; the thread
//! writes and syncs the keys they were sealed under that are new (one record each, each synced),
//! encodes each into one frame, writes every queued frame, `fdatasync`s once for the group,
//! records the offsets, publishes the committed head and completes each append's future. It
//! also keeps the head record (`HEAD`) current at every segment rollover and at a clean close.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;

use rapport_core::{AppendError, AppendOutcome, StorageError};

use crate::damage;
use crate::format::{self, Chain, FORMAT_VERSION_1, FrameHeader, SEGMENT_HEADER_BYTES, SegmentHeader};
use crate::head::{self, HeadRecord};
use crate::index::segment_name;
use crate::job::{Completion, Job, ToWriter};
use crate::options::Durability;
use crate::shared::Shared;
use crate::snapshot::Extent;
use crate::vfs::{AppendFile, Vfs};

/// What the writer thread owns: the current segment file and where the log's tail stands.
pub(crate) struct Writer {
    pub(crate) file: Box<dyn AppendFile>,
    /// The file system and directory, to keep the head record current after the store's
    /// shared state is gone (at a clean close).
    pub(crate) vfs: Arc<dyn Vfs>,
    pub(crate) dir: PathBuf,
    pub(crate) log_id: [u8; 16],
    /// The log's format version: frames and segment headers are written in it.
    pub(crate) version: u32,
    /// The sync epoch stamped on the frames of the next group.
    pub(crate) epoch: u64,
    pub(crate) segment_no: u64,
    pub(crate) segment_len: u64,
    /// The last segment's size on disk: `segment_len` plus the zeros preallocated after it.
    pub(crate) allocated: u64,
    /// The chain value after the last frame written.
    pub(crate) chain: Chain,
    /// The last position written, and the last one known durable (synced).
    pub(crate) written: u64,
    pub(crate) synced: u64,
    /// The chain value after the frame ending at `synced`.
    pub(crate) synced_chain: Chain,
    /// Whether an I/O error stopped this writer (the head record is then left as it was).
    pub(crate) failed: bool,
    /// Reused frame buffer.
    pub(crate) frame: Vec<u8>,
}

impl Writer {
    /// The writer of a log that recovery read as `scan`, appending to `file` (its last
    /// segment, synced): everything read counts as written and durable.
    pub(crate) fn resume(
        file: Box<dyn AppendFile>,
        vfs: Arc<dyn Vfs>,
        dir: &std::path::Path,
        log_id: [u8; 16],
        scan: &crate::recovery::Scan,
    ) -> Self {
        let n_events = scan.head();
        Self {
            file,
            vfs,
            dir: dir.to_path_buf(),
            log_id,
            version: scan.version,
            epoch: scan.last_epoch + 1,
            segment_no: scan.numbers.last().copied().unwrap_or(0),
            segment_len: scan.segment_len,
            // The open cut any zeros past the log: the file ends where the log does.
            allocated: scan.segment_len,
            chain: scan.chain,
            written: n_events,
            synced: n_events,
            synced_chain: scan.chain,
            failed: false,
            frame: Vec::new(),
        }
    }
}

/// The most events one group writes before it syncs (about 16 MiB of frames at most).
const GROUP_EVENTS_MAX: usize = 200_000;

/// Runs until every handle is gone; then closes cleanly and returns where the log ends, for
/// the index snapshot (`None` when the writer failed).
pub(crate) fn writer_loop(shared: std::sync::Weak<Shared>, rx: Receiver<ToWriter>, mut w: Writer) -> Option<Extent> {
    // A checkpoint that ended the last group, answered after it.
    let mut next: Option<ToWriter> = None;
    loop {
        let first = match next.take() {
            Some(message) => message,
            None => match rx.recv() {
                Ok(message) => message,
                Err(_) => break,
            },
        };
        let first = match first {
            ToWriter::Append(job) => job,
            ToWriter::Checkpoint(reply) => {
                let _ = reply.send(checkpoint(&mut w));
                continue;
            }
            ToWriter::Barrier(reply) => {
                let _ = reply.send(());
                continue;
            }
        };
        let mut group = vec![first];
        let mut events = group[0].events.len();
        while events < GROUP_EVENTS_MAX {
            match rx.try_recv() {
                Ok(ToWriter::Append(job)) => {
                    events += job.events.len();
                    group.push(job);
                }
                Ok(other) => {
                    next = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let Some(sh) = shared.upgrade() else {
            for job in group {
                job.done.complete(Err(AppendError::Storage(StorageError::new("append", "the store was closed"))));
            }
            break;
        };
        let outcome: Result<(), String> = match sh.poisoned.get() {
            Some(why) => Err(format!("store is poisoned: {why}")),
            None => {
                let result = write_group(&sh, &mut w, &group);
                w.epoch += 1;
                match result {
                    Ok(offsets) => {
                        // Offsets first, then the head: a reader that sees the head finds
                        // every record.
                        let mut index = sh.index.write().unwrap_or_else(|p| p.into_inner());
                        for (segment, offset, left) in offsets {
                            let position = index.offsets.len() + 1;
                            index.offsets.note(position, segment, offset, left);
                        }
                        drop(index);
                        sh.committed.store(w.written, Ordering::Release);
                        sh.watch.publish(rapport_core::Position(w.written));
                        tracing::trace!(
                            target: "rapport.append",
                            appends = group.len(),
                            events,
                            head = w.written,
                            "group committed"
                        );
                        Ok(())
                    }
                    Err(why) => {
                        w.failed = true;
                        sh.poison(why.clone());
                        Err(why)
                    }
                }
            }
        };
        // Let go of the events and of the store before waking anyone: an appender that drops
        // the last handle right after its append must find the store closed (its lock
        // released) when the drop returns, so the writer must not hold a reference then.
        let done: Vec<(Completion, AppendOutcome)> = group.into_iter().map(|j| (j.done, j.outcome)).collect();
        drop(sh);
        for (completion, appended) in done {
            completion.complete(match &outcome {
                Ok(()) => Ok(appended),
                Err(why) => Err(AppendError::Storage(StorageError::new("append", why.clone()))),
            });
        }
    }
    close(&mut w)
}

/// A checkpoint while the store runs: everything written is made durable and recorded in the
/// head record (an open refuses a snapshot ahead of the head record). Returns where the log
/// ends, for an index snapshot.
fn checkpoint(w: &mut Writer) -> Result<Extent, String> {
    if w.failed {
        return Err("the writer failed".into());
    }
    if w.written > w.synced {
        w.file.sync_data().map_err(|e| format!("fsync for a checkpoint: {e}"))?;
        w.synced = w.written;
        w.synced_chain = w.chain;
    }
    if let Err(why) = record_head(w) {
        w.failed = true;
        return Err(why);
    }
    // The epoch as a close reports it: frames written next carry it, and a snapshot's epoch
    // bounds what counts as a later sync when damage after it is judged.
    Ok(Extent {
        position: w.synced,
        segment: w.segment_no,
        len: w.segment_len,
        chain: w.synced_chain,
        last_epoch: w.epoch,
    })
}

/// A clean close: everything written is made durable and recorded in the head record, so the
/// next open notices if any of it goes missing. Returns where the log ends, once it is.
fn close(w: &mut Writer) -> Option<Extent> {
    if w.failed {
        return None;
    }
    if w.written > w.synced {
        if let Err(e) = w.file.sync_data() {
            tracing::error!("{}: fsync at close: {e}", w.dir.display());
            return None;
        }
        w.synced = w.written;
        w.synced_chain = w.chain;
    }
    if w.allocated > w.segment_len {
        // A cleanly closed log ends where its file does: the preallocated zeros go.
        let current = w.dir.join(segment_name(w.segment_no));
        if let Err(e) = w.vfs.truncate(&current, w.segment_len) {
            tracing::error!("{}: cutting preallocated space at close: {e}", current.display());
            return None;
        }
        w.allocated = w.segment_len;
    }
    if let Err(why) = record_head(w) {
        tracing::error!("{}: {why}", w.dir.display());
        return None;
    }
    Some(Extent {
        position: w.synced,
        segment: w.segment_no,
        len: w.segment_len,
        chain: w.synced_chain,
        last_epoch: w.epoch,
    })
}

fn record_head(w: &Writer) -> Result<(), String> {
    let record = HeadRecord {
        version: w.version,
        log_id: w.log_id,
        last_segment: w.segment_no,
        position: w.synced,
        chain: w.synced_chain,
    };
    head::write(&*w.vfs, &w.dir, &record).map_err(|(what, e)| format!("{what}: {e}"))
}

/// Encodes, writes and (with `Durability::Sync`) syncs a group of jobs; returns where every
/// record written lies (segment, byte, records of its frame from it on), in position order.
fn write_group(sh: &Shared, w: &mut Writer, group: &[Job]) -> Result<Vec<(u64, u64, u32)>, String> {
    // The keys the group's frames are sealed under, durable before any of them is written.
    let new_keys: Vec<_> = group.iter().filter_map(|j| j.sealed.new_keys()).collect();
    crate::keys::write_new(&sh.keys, &new_keys)?;
    let mut dirty = false;
    let mut offsets = Vec::with_capacity(group.iter().map(|j| j.events.len()).sum());
    for job in group {
        assert_eq!(job.first_position, w.written + 1, "jobs arrive in position order, without gaps");
        // Encode: records go straight after a header placeholder.
        let header_len = format::frame_header_bytes(w.version);
        let frame = &mut w.frame;
        frame.clear();
        frame.resize(header_len, 0);
        let mut rel_offsets = Vec::with_capacity(job.events.len());
        for (i, (e, version)) in job.events.iter().enumerate() {
            rel_offsets.push(frame.len() as u64);
            // Validated events always encode (every field is within the record's limits); a
            // failure here is a bug, and poisons the store rather than writing a bad frame.
            format::encode_record(e, job.sealed.get(i), job.recorded_at, *version, w.version, frame)
                .map_err(|err| format!("encode position {}: {err}", job.first_position))?;
        }
        let payload_crc = crc32c::crc32c(&frame[header_len..]);
        let frame_len = frame.len() as u64;
        if w.segment_len + frame_len > sh.options.segment_bytes_max && w.segment_len > SEGMENT_HEADER_BYTES as u64 {
            // Seal: whatever the durability setting, a segment is synced before the next one
            // is created (earlier groups may not be, without `Durability::Sync`).
            if w.written > w.synced {
                w.file.sync_data().map_err(|e| format!("fsync segment before rollover: {e}"))?;
                w.synced = w.written;
                w.synced_chain = w.chain;
                w.epoch += 1;
            }
            roll_over(sh, w)?;
        }
        let count = job.events.len() as u32;
        // Version 2 keeps the chain value after this frame, version 1 the value before it.
        let (link, after) = if w.version == FORMAT_VERSION_1 {
            (w.chain, Chain::crc(payload_crc))
        } else {
            let after = w.chain.after(job.first_position, count, &w.frame[header_len..]);
            (after, after)
        };
        let header = FrameHeader {
            version: w.version,
            payload_len: (w.frame.len() - header_len) as u32,
            first_position: job.first_position,
            count,
            epoch: w.epoch,
            link,
            payload_crc,
        };
        let frame = &mut w.frame;
        header.encode_into(&mut frame[..header_len]);
        // Recovery takes a long run of zeros in a damaged tail for a torn write; a frame must
        // never hold one of its own.
        debug_assert!(
            damage::longest_zero_run(frame) < damage::ZERO_RUN_EVIDENCE,
            "frame at position {} holds a zero run recovery would take for a torn write",
            job.first_position
        );
        // What is written must read back as written: the header as encoded, the records it
        // counts.
        debug_assert!(
            FrameHeader::decode(frame, w.version).is_ok_and(|h| h == header)
                && header.chain_after(&w.chain, &frame[header_len..]) == Some(after)
                && format::split_records(&frame[header_len..], header.count).is_ok(),
            "frame at position {} does not read back as written",
            job.first_position
        );
        w.file.write_at(w.segment_len, frame).map_err(|e| format!("write: {e}"))?;
        let end = w.segment_len + frame_len;
        if end > w.allocated {
            w.allocated = end;
            if sh.options.preallocate && frame_len < PREALLOC_BELOW {
                preallocate(w, sh.options.segment_bytes_max)?;
            }
        }
        dirty = true;
        offsets
            .extend(rel_offsets.iter().enumerate().map(|(k, r)| (w.segment_no, w.segment_len + r, count - k as u32)));
        w.segment_len += frame_len;
        w.chain = after;
        w.written = job.first_position + job.events.len() as u64 - 1;
    }
    if dirty && sh.options.durability == Durability::Sync {
        w.file.sync_data().map_err(|e| format!("fsync: {e}"))?;
        w.synced = w.written;
        w.synced_chain = w.chain;
    }
    Ok(offsets)
}

/// Frames smaller than this (single events, small batches) extend the segment with
/// [`PREALLOC_BYTES`] of zeros when they reach its end.
const PREALLOC_BELOW: u64 = 64 * 1024;
/// How far past the log a small append preallocates.
const PREALLOC_BYTES: u64 = 1024 * 1024;

/// Writes zeros after the log, up to [`PREALLOC_BYTES`] (not past the segment's size limit),
/// made durable with the group's sync. Later small appends then overwrite written space, and
/// an fdatasync that changes no file size costs about a third less on this disk
/// (BENCHMARKS.md, "Single-event appends"). Zeros to the end of the last segment are the end
/// of the log to every reader, and a writer's open cuts them.
fn preallocate(w: &mut Writer, segment_bytes_max: u64) -> Result<(), String> {
    let target = (w.allocated + PREALLOC_BYTES).min(segment_bytes_max.max(w.allocated));
    if target > w.allocated {
        let zeros = vec![0u8; (target - w.allocated) as usize];
        w.file.write_at(w.allocated, &zeros).map_err(|e| format!("preallocate: {e}"))?;
        w.allocated = target;
    }
    Ok(())
}

/// Starts the next segment once the current one is synced (recovery relies on every segment
/// but the last being synced). The new segment is complete and durable before the head record
/// names it.
fn roll_over(sh: &Shared, w: &mut Writer) -> Result<(), String> {
    assert_eq!(w.synced, w.written, "a segment is synced before it is sealed");
    if w.allocated > w.segment_len {
        // A sealed segment ends with its last frame: its preallocated zeros go first.
        let current = sh.dir.join(segment_name(w.segment_no));
        sh.vfs.truncate(&current, w.segment_len).map_err(|e| format!("truncate {}: {e}", current.display()))?;
        w.allocated = w.segment_len;
    }
    w.segment_no += 1;
    let path = sh.dir.join(segment_name(w.segment_no));
    let h = SegmentHeader {
        version: w.version,
        log_id: sh.log_id,
        base_position: w.written + 1,
        segment_no: w.segment_no,
        head_tracked: true,
    };
    let mut f = sh.vfs.open_append(&path, true).map_err(|e| format!("create {}: {e}", path.display()))?;
    f.append(&h.encode()).map_err(|e| format!("write header of {}: {e}", path.display()))?;
    f.sync_data().map_err(|e| format!("fsync {}: {e}", path.display()))?;
    sh.vfs.sync_dir(&sh.dir).map_err(|e| format!("fsync directory {}: {e}", sh.dir.display()))?;
    w.file = f;
    w.segment_len = SEGMENT_HEADER_BYTES as u64;
    w.allocated = SEGMENT_HEADER_BYTES as u64;
    sh.index.write().unwrap_or_else(|p| p.into_inner()).segments.push(path);
    record_head(w)
}

//! Following a log that another process appends to: a read-only handle reads the frames
//! written since it last looked ([`FileStore::refresh`]), and [`FileStore::open_following`]
//! starts a thread that does so at a bounded interval and wakes the handle's subscribers.
//!
//! A follower reads only whole frames whose checksums pass and that chain to the last one it
//! read, through the same frame scan as open. Anything else at the end of the last segment
//! (a frame still being written, a torn tail a crashed writer left for the next open to cut)
//! is left for a later look. A segment followed by the next one is sealed: the writer synced
//! it before creating the next, so bytes in it the follower cannot read are damage.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rapport_core::{Position, ReadError, StorageError};

use crate::format::{SEGMENT_HEADER_BYTES, SegmentHeader};
use crate::index::segment_name;
use crate::options::{OpenError, io_err};
use crate::recovery::{self, Frames, Reading, Scan, Segment};
use crate::shared::{FollowState, Shared};
use crate::store::FileStore;
use crate::sync::lock;
use crate::vfs::{StdVfs, Vfs, read_at_most};

impl FileStore {
    /// Opens the store in `dir` read-only (see [`open_read_only`](Self::open_read_only)) and
    /// follows it: a thread looks for new frames every `poll` and publishes them, so
    /// [`Subscription`](rapport_core::Subscription)s and
    /// [`wait_past`](rapport_core::Store::wait_past) on this handle see what a writer in
    /// another process commits, about `poll` after it committed. The thread stops when the
    /// last handle is dropped. Each look costs two file-system calls when nothing changed.
    ///
    /// A follower may read a batch its writer has written but not yet synced: a process crash
    /// keeps it (the page cache holds it), a power loss may not.
    ///
    /// # Errors
    /// As [`open_read_only`](Self::open_read_only); the thread could not be started.
    pub fn open_following(dir: impl AsRef<Path>, poll: Duration) -> Result<Self, OpenError> {
        Self::open_following_on(Arc::new(StdVfs), dir.as_ref(), poll)
    }

    /// [`open_following`](Self::open_following) on a custom file-system layer.
    ///
    /// # Errors
    /// [`OpenError`].
    pub fn open_following_on(vfs: Arc<dyn Vfs>, dir: &Path, poll: Duration) -> Result<Self, OpenError> {
        let store = Self::open_read_only_on(vfs, dir)?;
        store.shared.following.store(true, Ordering::Release);
        let weak = Arc::downgrade(&store.shared);
        std::thread::Builder::new()
            .name("rapport-follow".into())
            .spawn(move || follow_loop(&weak, poll))
            .map_err(io_err("spawn follower thread", dir))?;
        Ok(store)
    }

    /// Reads what was appended to the log since this read-only handle last looked, and
    /// publishes it to reads and subscribers. Returns the new head. A writer's handle sees
    /// its own appends already: for it this returns the head and does nothing.
    ///
    /// # Errors
    /// [`ReadError::Corrupt`] for damage in a sealed segment or a frame that does not belong
    /// where it lies (naming the segment and byte offset); I/O errors. Either poisons a
    /// following handle.
    pub fn refresh(&self) -> Result<Position, ReadError> {
        self.check_poison("refresh")?;
        let sh = &*self.shared;
        let mut follow = lock(&sh.follow);
        let Some(state) = follow.as_mut() else {
            return Ok(Position(sh.committed.load(Ordering::Acquire)));
        };
        let head = read_new_frames(sh, state)?;
        sh.committed.store(head, Ordering::Release);
        sh.watch.publish(Position(head));
        Ok(Position(head))
    }
}

fn follow_loop(weak: &Weak<Shared>, poll: Duration) {
    loop {
        std::thread::sleep(poll);
        let Some(shared) = weak.upgrade() else { return };
        let store = FileStore { shared };
        if let Err(e) = store.refresh() {
            store.shared.poison(format!("following the log: {e}"));
            return;
        }
    }
}

/// Reads whole frames past `state` into the handle's indexes, segment after segment, a window
/// of bytes at a time (`state.window`, or a frame larger than that whole); returns the head.
/// Readers wait on the index lock only while a window's frames are indexed.
fn read_new_frames(sh: &Shared, state: &mut FollowState) -> Result<u64, ReadError> {
    let vfs = &*sh.vfs;
    // Bytes to read next: a window, or more to hold a frame no window held.
    let mut want = state.window;
    loop {
        let path = sh.dir.join(segment_name(state.segment));
        // The next segment first: once it exists, this one is complete on disk.
        let sealed = vfs.exists(&sh.dir.join(segment_name(state.segment + 1)));
        let file = vfs.open_read(&path).map_err(|e| StorageError::new("open segment to follow", e))?;
        let size = file.size().map_err(|e| StorageError::new("stat segment to follow", e))?;
        if size > state.len && !sealed && state.len > 0 && nothing_at(&*file, state.len)? {
            // Zeros where the next frame would start: space the writer preallocated, not yet
            // written. Looking at its first bytes is enough (a frame starts with its magic).
            return Ok(sh.committed_in_index());
        }
        if size > state.len {
            let left = usize::try_from(size - state.len).unwrap_or(usize::MAX);
            let mut bytes = vec![0u8; left.min(want)];
            // The file may end before `size` by now: its writer cuts the preallocated zeros at
            // close and when the segment is sealed. What was read is scanned as usual.
            let n = read_at_most(&*file, &mut bytes, state.len)
                .map_err(|e| StorageError::new("read segment to follow", e))?;
            let to_end = n == left || n < bytes.len();
            bytes.truncate(n);
            let from = if state.len == 0 {
                if bytes.len() < SEGMENT_HEADER_BYTES {
                    return done(sh, sealed, state, &path, "an incomplete segment header");
                }
                check_segment_header(sh, state, &bytes, &path)?;
                SEGMENT_HEADER_BYTES
            } else {
                0
            };
            let (end, damage) = index_frames(sh, state, Frames { bytes: &bytes, from, base: state.len }, &path)?;
            state.len += end as u64;
            if !to_end {
                // The window ends before the segment: the frames go on past it, or what
                // stopped them may be the window's end. Read on from the first frame not read,
                // in a window that holds it whole when not one frame was (its header says how
                // long it is), or else reaches the segment's end.
                let frame = damage.and_then(|d| d.frame_len());
                want = match frame {
                    _ if end > from => state.window,
                    Some(len) if len > n - end => len,
                    _ => usize::MAX,
                };
                continue;
            }
            if let Some(damage) = damage {
                return done(sh, sealed, state, &path, damage.reason());
            }
            want = state.window;
        } else if size < state.len {
            return Err(corrupt(&path, size, format!("the segment shrank below the {} bytes already read", state.len)));
        }
        if !sealed {
            return Ok(sh.committed_in_index());
        }
        if state.len == 0 {
            return done(sh, sealed, state, &path, "no segment header");
        }
        state.segment += 1;
        state.len = 0;
        let mut index = sh.index.write().unwrap_or_else(|p| p.into_inner());
        index.segments.push(sh.dir.join(segment_name(state.segment)));
    }
}

/// Whether the bytes at `at` are zeros (a frame header's first eight never are).
fn nothing_at(file: &dyn crate::vfs::ReadFile, at: u64) -> Result<bool, ReadError> {
    let mut probe = [0u8; 8];
    let n = file.read_at(&mut probe, at).map_err(|e| StorageError::new("read segment to follow", e))?;
    Ok(n == probe.len() && probe == [0u8; 8])
}

/// Where reading stops short of a segment's end: later, unless the segment is sealed.
fn done(sh: &Shared, sealed: bool, state: &FollowState, path: &Path, what: &str) -> Result<u64, ReadError> {
    if sealed {
        return Err(corrupt(path, state.len, format!("{what} in a sealed segment")));
    }
    Ok(sh.committed_in_index())
}

fn corrupt(path: &Path, offset: u64, reason: String) -> ReadError {
    ReadError::Corrupt { location: format!("{} byte {offset}", path.display()), reason }
}

fn check_segment_header(sh: &Shared, state: &FollowState, bytes: &[u8], path: &Path) -> Result<(), ReadError> {
    let header = SegmentHeader::decode(bytes).map_err(|e| corrupt(path, e.offset, e.reason))?;
    let next = lock(&sh.core).next_position;
    if header.log_id != sh.log_id {
        return Err(corrupt(path, 16, "segment belongs to another log".into()));
    }
    if header.version != state.version {
        return Err(corrupt(
            path,
            8,
            format!("segment is in format version {}, the log before it in {}", header.version, state.version),
        ));
    }
    if header.segment_no != state.segment || header.base_position != next {
        return Err(corrupt(
            path,
            32,
            format!(
                "segment header says segment {} from position {}, expected segment {} from {next}",
                header.segment_no, header.base_position, state.segment
            ),
        ));
    }
    Ok(())
}

/// Runs open's frame scan over the new bytes, on the handle's own indexes.
fn index_frames(
    sh: &Shared,
    state: &mut FollowState,
    frames: Frames<'_>,
    path: &Path,
) -> Result<(usize, Option<recovery::Damage>), ReadError> {
    let mut core = lock(&sh.core);
    let mut index = sh.index.write().unwrap_or_else(|p| p.into_inner());
    let mut scan = Scan::resume(std::mem::replace(&mut *core, Scan::empty_core()), std::mem::take(&mut *index));
    // A follower is a read-only handle: it keeps no validation state.
    scan.validate = false;
    scan.version = state.version;
    scan.chain = state.chain;
    scan.last_epoch = state.last_epoch;
    let result = recovery::scan_frames(
        &mut scan,
        frames,
        &Segment { n: state.segment, path, head: None },
        &mut None,
        Reading::Here,
    );
    state.chain = scan.chain;
    state.last_epoch = scan.last_epoch;
    *core = scan.core;
    *index = scan.index;
    result.map_err(|e| match e {
        OpenError::Corrupt { segment, offset, reason } => corrupt(&segment, offset, reason),
        other => ReadError::Storage(StorageError::new("follow the log", other)),
    })
}

impl Shared {
    /// The head as far as the indexes go (the follower's view).
    fn committed_in_index(&self) -> u64 {
        lock(&self.core).next_position - 1
    }
}

#[cfg(test)]
mod tests;

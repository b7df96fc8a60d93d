//! Reads of committed events: by position, by stream, the accounts, and the importer's
//! preflight. Readers see everything up to the committed head and nothing past it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rapport_core::backend::StreamState;
use rapport_core::{
    AccountId, Envelope, EnvelopeRef, EventId, Position, Preflight, READ_LIMIT_MAX, ReadError, StorageError,
    StreamVersion,
};

use crate::format::{self, RECORD_PREFIX_BYTES};
use crate::index::Index;
use crate::offsets::{Walk, anchor_of};
use crate::store::FileStore;
use crate::sync::lock;
use crate::vfs::ReadFile;

/// Bytes read at least at a time for a long range of positions (`read_all`).
const RANGE_CHUNK: usize = 256 * 1024;
/// Bytes a range read reckons per record it may pass, to read no more than a short range needs:
/// the range's records and those a walk passes from an anchor to its first (fewer than
/// [`STRIDE`](crate::offsets::STRIDE)); generous, since reading short only costs another read.
const RANGE_BYTES_PER_RECORD: usize = 256;
/// Bytes read at least at a time for scattered positions (a stream, logged duplicates): about
/// a stride of small records.
const SCATTERED_CHUNK: usize = 8 * 1024;
/// Bytes read at least at a time by a scan of the log from a position to the head.
const SCAN_CHUNK: usize = 256 * 1024;
/// The largest frame payload a scan checks whole (read into its buffer at once); records of
/// larger frames are checked one by one.
const WHOLE_FRAME_BYTES: usize = 4 * 1024 * 1024;

type IndexGuard<'a> = std::sync::RwLockReadGuard<'a, Index>;

/// A read that failed, and whether for a key the key file lacked.
enum Missing {
    Key(ReadError),
    Other(ReadError),
}

impl Missing {
    fn into_error(self) -> ReadError {
        match self {
            Self::Key(e) | Self::Other(e) => e,
        }
    }
}

/// Bytes of one segment read ahead: the first `filled` of `bytes` are the segment's from byte
/// `start`.
struct Window {
    segment: u64,
    start: u64,
    /// The buffer, at least as long as the largest read so far (what lies past `filled` is
    /// stale).
    bytes: Vec<u8>,
    filled: usize,
    chunk: usize,
}

impl Window {
    /// `len` bytes of `segment` at `offset`, read (at least `chunk` of them) when the window
    /// does not hold them. The index lock is let go before reading and taken again after.
    #[inline]
    fn get<'w>(
        &'w mut self,
        store: &FileStore,
        guard: &mut Option<IndexGuard<'_>>,
        segment: u64,
        offset: u64,
        len: usize,
    ) -> Result<&'w [u8], ReadError> {
        let held =
            segment == self.segment && offset >= self.start && offset + len as u64 <= self.start + self.filled as u64;
        if !held {
            self.fill(store, guard, segment, offset, len)?;
        }
        let at = (offset - self.start) as usize;
        Ok(&self.bytes[at..at + len])
    }

    /// Reads at least `len` bytes (and `chunk`) of `segment` from `offset` into the window.
    #[cold]
    fn fill(
        &mut self,
        store: &FileStore,
        guard: &mut Option<IndexGuard<'_>>,
        segment: u64,
        offset: u64,
        len: usize,
    ) -> Result<(), ReadError> {
        guard.take();
        let file = store.reader(segment)?;
        let want = len.max(self.chunk);
        if self.bytes.len() < want {
            // Zeroed by the allocator (fresh pages need no clearing), and only when it grows:
            // a read from a short file fills a fraction of it, and the rest is not cleared again.
            // It grows to twice its size at least (up to a whole frame's bound): a scan's frames
            // outgrow it a little at a time, and each growth clears all of it.
            self.bytes = vec![0; want.max((2 * self.bytes.len()).min(WHOLE_FRAME_BYTES))];
        }
        self.filled = 0;
        let mut got = 0usize;
        while got < want {
            let n = file
                .read_at(&mut self.bytes[got..want], offset + got as u64)
                .map_err(|e| StorageError::new("read segment", e))?;
            if n == 0 {
                break;
            }
            got += n;
        }
        self.filled = got;
        self.segment = segment;
        self.start = offset;
        if got < len {
            return Err(store.corrupt_at(guard, segment, offset + got as u64, "the segment ends inside a record"));
        }
        Ok(())
    }
}

impl FileStore {
    pub(crate) fn reader(&self, segment: u64) -> Result<Arc<dyn ReadFile>, ReadError> {
        let sh = &*self.shared;
        if let Some(Some(r)) = sh.readers.read().unwrap_or_else(|p| p.into_inner()).get(segment as usize) {
            return Ok(Arc::clone(r));
        }
        let path =
            sh.index.read().unwrap_or_else(|p| p.into_inner()).segments.get(segment as usize).cloned().ok_or_else(
                || ReadError::Corrupt { location: format!("segment {segment}"), reason: "unknown segment".into() },
            )?;
        let f: Arc<dyn ReadFile> =
            Arc::from(sh.vfs.open_read(&path).map_err(|e| StorageError::new("open segment for reading", e))?);
        let mut readers = sh.readers.write().unwrap_or_else(|p| p.into_inner());
        if readers.len() <= segment as usize {
            readers.resize(segment as usize + 1, None);
        }
        readers[segment as usize] = Some(Arc::clone(&f));
        Ok(f)
    }

    /// Reads the events at `positions` (ascending, all committed) as owned envelopes that
    /// share account ids with the index ([`Self::walk_records`]).
    ///
    /// Sealed personal text is opened ([`crate::keys`]): an event whose key was destroyed
    /// reads erased; sealed text that does not open, or a key the key file lacks, is an error
    /// naming the position. A read-only handle that lacks a key reads the key file (again)
    /// once: it reads the file only when a read first needs a key, and the writer may have
    /// made the key since this handle last read it.
    pub(crate) fn read_positions(
        &self,
        positions: impl IntoIterator<Item = u64> + Clone,
        chunk: usize,
    ) -> Result<Vec<Envelope>, ReadError> {
        // A handle whose key file is still unread (`Keys::unread`) finds every key missing,
        // and so reads the file at its first sealed record.
        match self.read_positions_once(positions.clone(), chunk) {
            Err(Missing::Key(_)) if self.is_read_only() => {
                self.reload_keys()?;
                self.read_positions_once(positions, chunk).map_err(Missing::into_error)
            }
            other => other.map_err(Missing::into_error),
        }
    }

    fn read_positions_once(
        &self,
        positions: impl IntoIterator<Item = u64>,
        chunk: usize,
    ) -> Result<Vec<Envelope>, Missing> {
        let positions = positions.into_iter();
        let mut out = Vec::with_capacity(positions.size_hint().0);
        let format_version = self.shared.recovery.format_version;
        let keys = self.shared.keys.read().unwrap_or_else(|p| p.into_inner());
        let mut missing = None;
        let mut openers = rapport_core::seal::Openers::default();
        let walked = self.walk_records(positions, chunk, false, |body, q, guard| {
            let index = guard.get_or_insert_with(|| self.shared.index.read().unwrap_or_else(|p| p.into_inner()));
            format::check_schema_version(body, format_version).map_err(|e| e.reason)?;
            let (mut rec, sealed) =
                format::decode_body_with(body, Position(q), format_version, &mut |s| index.intern(s))
                    .map_err(|e| e.reason)?;
            // The record read is the one the index meant: its account's stream holds this
            // position at the record's version.
            debug_assert_eq!(
                rec.stream_version.0.checked_sub(1).and_then(|v| index.streams.get(&rec.account)?.get(v)),
                Some(q),
                "the record at position {q} is not the one the index placed there",
            );
            if let Some(sealed) = sealed {
                crate::keys::unseal(&keys, &mut openers, &mut rec, sealed).map_err(|why| {
                    if why.missing {
                        missing = Some(sealed.key);
                    }
                    why.reason
                })?;
            }
            out.push(rec);
            Ok(())
        });
        match (walked, missing) {
            (Ok(()), _) => Ok(out),
            (Err(e), Some(_)) => Err(Missing::Key(e)),
            (Err(e), None) => Err(Missing::Other(e)),
        }
    }

    /// Whether this handle has still to read the key file (a read-only handle reads it when
    /// a read first needs a key).
    pub(crate) fn keys_unread(&self) -> bool {
        self.shared.keys.read().unwrap_or_else(|p| p.into_inner()).is_unread()
    }

    /// Reads the key file (again, after a key it lacked) for a read-only handle.
    pub(crate) fn reload_keys(&self) -> Result<(), ReadError> {
        let sh = &*self.shared;
        let path = sh.dir.join(crate::keys::KEYS_FILE);
        let keys = crate::keys::Keys::open(&*sh.vfs, &sh.dir, sh.log_id, false).map_err(|why| {
            ReadError::Storage(StorageError::new("read the key file", format!("{}: {why}", path.display())))
        })?;
        *sh.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
        Ok(())
    }

    /// Calls `visit` on every committed event from position `from` to the head this call
    /// finds, in position order, each decoded in place from the read buffer: nothing is
    /// allocated per event. Returns the position after the last one visited. `visit` runs
    /// with no lock of the store held.
    pub(crate) fn scan_now(
        &self,
        from: Position,
        visit: &mut (dyn FnMut(&EnvelopeRef<'_>) + Send),
    ) -> Result<Position, ReadError> {
        self.check_poison("read")?;
        let head = self.shared.committed.load(Ordering::Acquire);
        let first = from.0.max(1);
        if first > head {
            return Ok(Position(first));
        }
        self.lend(first..=head, SCAN_CHUNK, true, visit)?;
        Ok(Position(head + 1))
    }

    /// Calls `visit` on every committed event of `account`'s stream, in version order, each
    /// decoded in place from the read buffer (its sealed text never opened). `visit` runs with
    /// no lock of the store held.
    pub(crate) fn scan_stream_now(
        &self,
        account: &AccountId,
        visit: &mut (dyn FnMut(&EnvelopeRef<'_>) + Send),
    ) -> Result<(), ReadError> {
        self.check_poison("read")?;
        let positions = self.stream_positions(account, StreamVersion::FIRST, usize::MAX);
        self.lend(positions, SCATTERED_CHUNK, false, &mut |e| {
            // The record read is one of the stream's, as the index placed it.
            debug_assert_eq!(e.account.as_str(), account.as_str(), "the record at {} is another account's", e.position);
            visit(e);
        })
    }

    /// Calls `visit` on the events at `positions` (ascending, committed), each decoded in
    /// place, with no lock of the store held: what [`scan_now`](Self::scan_now) and
    /// [`scan_stream_now`](Self::scan_stream_now) share (`chunk` and `whole_frames` as
    /// [`walk_records`](Self::walk_records) takes them).
    fn lend(
        &self,
        positions: impl IntoIterator<Item = u64>,
        chunk: usize,
        whole_frames: bool,
        visit: &mut (dyn FnMut(&EnvelopeRef<'_>) + Send),
    ) -> Result<(), ReadError> {
        let format_version = self.shared.recovery.format_version;
        self.walk_records(positions, chunk, whole_frames, |body, q, guard| {
            guard.take();
            format::check_schema_version(body, format_version).map_err(|e| e.reason)?;
            let e = format::decode_body_ref(body, Position(q), format_version).map_err(|e| e.reason)?;
            visit(&e);
            Ok(())
        })
    }

    /// The committed positions of `account`'s stream from version `from` on, at most `limit`.
    fn stream_positions(&self, account: &AccountId, from: StreamVersion, limit: usize) -> Vec<u64> {
        let head = self.shared.committed.load(Ordering::Acquire);
        let index = self.shared.index.read().unwrap_or_else(|p| p.into_inner());
        index.streams.get(account).map_or_else(Vec::new, |list| {
            list.iter_from(from.0.saturating_sub(1)).take_while(|p| *p <= head).take(limit).collect()
        })
    }

    /// Hands `on_record` the body of each record at `positions` (ascending, all committed),
    /// its checksum checked, with the index lock (`None` when let go). Each position is found
    /// by a walk from its anchor ([`crate::offsets`]); a walk goes on to the next position when
    /// that is closer than the next one's anchor, so a range is read in one pass. Segment bytes
    /// are read `chunk` bytes at a time at least. An error from `on_record` names the record's
    /// segment and byte.
    ///
    /// With `whole_frames` (the caller wants every record of each frame the walk enters at its
    /// header), a frame's payload of at most [`WHOLE_FRAME_BYTES`] is checked against the
    /// frame's checksum once, in one pass, instead of each record against its own: the
    /// payload's checksum covers every byte of its records.
    fn walk_records<'s>(
        &'s self,
        positions: impl IntoIterator<Item = u64>,
        chunk: usize,
        whole_frames: bool,
        mut on_record: impl FnMut(&[u8], u64, &mut Option<IndexGuard<'s>>) -> Result<(), String>,
    ) -> Result<(), ReadError> {
        let sh = &*self.shared;
        let version = sh.recovery.format_version;
        // The index lock is held for placing (and for the caller's decoding), never across
        // I/O.
        let mut guard = Some(sh.index.read().unwrap_or_else(|p| p.into_inner()));
        let bases = guard.as_ref().map(|index| index.offsets.bases().to_vec()).unwrap_or_default();
        let mut window = Window { segment: u64::MAX, start: 0, bytes: Vec::new(), filled: 0, chunk };
        let mut walk: Option<Walk> = None;
        // Whether the frame the walk is in had its payload checked whole.
        let mut frame_checked = false;
        for q in positions {
            let w = match &mut walk {
                // Going on is never longer than starting again from `q`'s anchor.
                Some(w) if w.position <= q && w.position >= anchor_of(q) => w,
                _ => {
                    let index = guard.get_or_insert_with(|| sh.index.read().unwrap_or_else(|p| p.into_inner()));
                    let start = index.offsets.start(q).ok_or_else(|| ReadError::Corrupt {
                        location: format!("position {q}"),
                        reason: "not in the store's index of record offsets".into(),
                    })?;
                    frame_checked = false;
                    walk.insert(Walk::at(start, version))
                }
            };
            loop {
                if w.at_frame_header() {
                    let header = window.get(self, &mut guard, w.segment, w.offset, w.header_len())?;
                    let h = w.enter_frame(header).map_err(|why| self.corrupt_at(&guard, w.segment, w.offset, &why))?;
                    let len = h.payload_len as usize;
                    frame_checked = whole_frames && len <= WHOLE_FRAME_BYTES && w.position == q;
                    if frame_checked {
                        let payload = window.get(self, &mut guard, w.segment, w.offset, len)?;
                        if crc32c::crc32c(payload) != h.payload_crc {
                            return Err(self.corrupt_at(
                                &guard,
                                w.segment,
                                w.offset,
                                "frame payload checksum mismatch",
                            ));
                        }
                    }
                }
                if w.position == q {
                    break;
                }
                let prefix = window.get(self, &mut guard, w.segment, w.offset, RECORD_PREFIX_BYTES)?;
                w.pass(prefix, &bases).map_err(|why| self.corrupt_at(&guard, w.segment, w.offset, &why))?;
            }
            let (segment, offset) = (w.segment, w.offset);
            let prefix = window.get(self, &mut guard, segment, offset, RECORD_PREFIX_BYTES)?;
            let (len, crc) =
                format::record_prefix(prefix).map_err(|why| self.corrupt_at(&guard, segment, offset, why))?;
            let record = window.get(self, &mut guard, segment, offset, RECORD_PREFIX_BYTES + len)?;
            let body = &record[RECORD_PREFIX_BYTES..];
            if !frame_checked && crc32c::crc32c(body) != crc {
                return Err(self.corrupt_at(&guard, segment, offset, "record checksum mismatch"));
            }
            on_record(body, q, &mut guard).map_err(|why| self.corrupt_at(&guard, segment, offset, &why))?;
            // Step past it, so that the next position, if it follows, goes on from here.
            w.pass_body(len, &bases);
        }
        Ok(())
    }

    /// Reads the events at `positions` (ascending, committed) that lie apart: a stream's, or
    /// logged events an append compares with.
    pub(crate) fn read_scattered(&self, positions: &[u64]) -> Result<Vec<Envelope>, ReadError> {
        self.read_positions(positions.iter().copied(), SCATTERED_CHUNK)
    }

    /// A read error naming the segment file and byte.
    fn corrupt_at(&self, guard: &Option<IndexGuard<'_>>, segment: u64, offset: u64, why: &str) -> ReadError {
        let name = |index: &Index| index.segments.get(segment as usize).map(|p| p.display().to_string());
        let name = match guard {
            Some(index) => name(index),
            None => name(&self.shared.index.read().unwrap_or_else(|p| p.into_inner())),
        };
        ReadError::Corrupt { location: format!("{} byte {offset}", name.unwrap_or_default()), reason: why.to_string() }
    }

    pub(crate) fn read_all_now(&self, from: Position, limit: usize) -> Result<Vec<Envelope>, ReadError> {
        self.check_poison("read")?;
        let head = self.shared.committed.load(Ordering::Acquire);
        let first = from.0.max(1);
        if first > head || limit == 0 {
            return Ok(Vec::new());
        }
        let last = head.min(first + limit.min(READ_LIMIT_MAX) as u64 - 1);
        // A short range (a follower's next few events) reads about what it needs, not a
        // long range's chunk.
        let records = (last - first + 1).saturating_add(crate::offsets::STRIDE);
        let chunk = usize::try_from(records)
            .unwrap_or(usize::MAX)
            .saturating_mul(RANGE_BYTES_PER_RECORD)
            .clamp(SCATTERED_CHUNK, RANGE_CHUNK);
        self.read_positions(first..=last, chunk)
    }

    pub(crate) fn read_stream_now(
        &self,
        account: &AccountId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<Envelope>, ReadError> {
        self.check_poison("read")?;
        let positions = self.stream_positions(account, from, limit.min(READ_LIMIT_MAX));
        self.read_positions(positions, SCATTERED_CHUNK)
    }

    /// `account`'s stream state replayed from its committed events (the decision state may
    /// be ahead of them while an append is in flight).
    pub(crate) fn committed_stream_state(&self, account: &AccountId) -> Result<Option<StreamState>, ReadError> {
        let mut state: Option<StreamState> = None;
        let mut from = StreamVersion::FIRST;
        loop {
            let page = self.read_stream_now(account, from, READ_LIMIT_MAX)?;
            let Some(last) = page.last() else { return Ok(state) };
            from = StreamVersion(last.stream_version.0 + 1);
            for e in &page {
                // Validated when appended: applied as they are.
                let _ = state.get_or_insert_with(StreamState::default).apply(&e.to_new_event());
            }
        }
    }

    pub(crate) fn preflight_now(&self, accounts: &[AccountId], ids: &[EventId]) -> Result<Preflight, ReadError> {
        self.check_poison("preflight")?;
        if self.is_read_only() {
            // A read-only handle does not load the ids an index snapshot holds (it decides no
            // append), so it cannot say which are logged.
            return Err(ReadError::Storage(StorageError::new(
                "preflight",
                "a read-only handle does not hold the id index; preflight (for a backfill) needs the writer's handle",
            )));
        }
        // The decision state also holds appends handed to the writer and not yet durable: only
        // what is at or below the committed head counts, so streams are read back when an
        // append is in flight, and logged events are read back from disk.
        let (states, found, in_flight) = {
            let mut core = lock(&self.shared.core);
            core.load_streams(accounts.iter().take(READ_LIMIT_MAX))
                .map_err(|why| ReadError::Storage(StorageError::new("preflight", why)))?;
            let committed = self.shared.committed.load(Ordering::Acquire);
            let in_flight = core.next_position - 1 > committed;
            let states: Vec<Option<StreamState>> =
                accounts.iter().take(READ_LIMIT_MAX).map(|a| core.state.stream(a).cloned()).collect();
            let ids = &ids[..ids.len().min(READ_LIMIT_MAX)];
            let at = core.logged_at_each(ids).map_err(|why| ReadError::Storage(StorageError::new("preflight", why)))?;
            let found: Vec<(usize, u64)> = at
                .into_iter()
                .enumerate()
                .filter_map(|(i, p)| Some((i, p?.0)).filter(|&(_, p)| p <= committed))
                .collect();
            (states, found, in_flight)
        };
        let states = if in_flight {
            accounts.iter().take(READ_LIMIT_MAX).map(|a| self.committed_stream_state(a)).collect::<Result<_, _>>()?
        } else {
            states
        };
        let mut by_position = found;
        by_position.sort_unstable_by_key(|&(_, p)| p);
        let positions: Vec<u64> = by_position.iter().map(|&(_, p)| p).collect();
        let logged_events = self.read_positions(positions, SCATTERED_CHUNK)?;
        let mut logged = vec![None; ids.len().min(READ_LIMIT_MAX)];
        for ((i, _), e) in by_position.into_iter().zip(logged_events) {
            logged[i] = Some(e.fingerprint());
        }
        Ok(Preflight { states, logged })
    }

    pub(crate) fn accounts_now(&self, after: Option<&AccountId>, limit: usize) -> Result<Vec<AccountId>, ReadError> {
        self.check_poison("read")?;
        let head = self.shared.committed.load(Ordering::Acquire);
        let index = self.shared.index.read().unwrap_or_else(|p| p.into_inner());
        let range = match after {
            None => index.accounts.range::<AccountId, _>(..),
            Some(a) => index.accounts.range::<AccountId, _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
        };
        Ok(range.filter(|(_, first)| **first <= head).map(|(a, _)| a.clone()).take(limit.min(READ_LIMIT_MAX)).collect())
    }
}

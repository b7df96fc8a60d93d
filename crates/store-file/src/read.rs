//! Reads of committed events: by position, by stream, the accounts, and the importer's
//! preflight. Readers see everything up to the committed head and nothing past it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rapport_core::backend::StreamState;
use rapport_core::{
    AccountId, Envelope, EventId, Position, Preflight, READ_LIMIT_MAX, ReadError, StorageError, StreamVersion,
};

use crate::format::{self, RECORD_BYTES_MAX, RECORD_PREFIX_BYTES};
use crate::index::unpack;
use crate::shared::lock;
use crate::store::FileStore;
use crate::vfs::ReadFile;

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

    /// Reads the events at `positions` (ascending, all committed), reading contiguous runs in
    /// one go and checking every record's checksum.
    pub(crate) fn read_positions(&self, positions: &[u64]) -> Result<Vec<Envelope>, ReadError> {
        let offsets: Vec<u64> = {
            let index = self.shared.index.read().unwrap_or_else(|p| p.into_inner());
            positions.iter().map(|p| index.offsets.get((*p - 1) as usize).copied().unwrap_or(u64::MAX)).collect()
        };
        let mut out = Vec::with_capacity(positions.len());
        let mut i = 0;
        while i < positions.len() {
            let (seg, start) = unpack(offsets[i]);
            // Extend the run while records stay in this segment and close together.
            let mut j = i + 1;
            while j < positions.len() {
                let (s, o) = unpack(offsets[j]);
                if s != seg || o < start || o - start > 4 * 1024 * 1024 {
                    break;
                }
                j += 1;
            }
            let (_, last) = unpack(offsets[j - 1]);
            let want = (last - start) as usize + RECORD_PREFIX_BYTES + RECORD_BYTES_MAX;
            let file = self.reader(seg)?;
            let mut buf = vec![0u8; want];
            let mut got = 0usize;
            while got < want {
                let n = file
                    .read_at(&mut buf[got..], start + got as u64)
                    .map_err(|e| StorageError::new("read segment", e))?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            buf.truncate(got);
            // The index lock is taken for decoding only (to share account ids), never across I/O.
            let index = self.shared.index.read().unwrap_or_else(|p| p.into_inner());
            let location = |off: u64| {
                let name = index.segments.get(seg as usize).map(|p| p.display().to_string()).unwrap_or_default();
                format!("{name} byte {off}")
            };
            for k in i..j {
                let (_, off) = unpack(offsets[k]);
                let rel = (off - start) as usize;
                let corrupt = |reason: &str| ReadError::Corrupt { location: location(off), reason: reason.to_string() };
                let prefix = buf.get(rel..rel + RECORD_PREFIX_BYTES).ok_or_else(|| corrupt("record prefix missing"))?;
                let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
                let crc = u32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
                if len > RECORD_BYTES_MAX {
                    return Err(corrupt("record length out of range"));
                }
                let body = buf
                    .get(rel + RECORD_PREFIX_BYTES..rel + RECORD_PREFIX_BYTES + len)
                    .ok_or_else(|| corrupt("record body missing"))?;
                if crc32c::crc32c(body) != crc {
                    return Err(corrupt("record checksum mismatch"));
                }
                let rec = format::decode_body_with(body, Position(positions[k]), &mut |s| index.intern(s))
                    .map_err(|e| corrupt(&e.reason))?;
                // The record read is the one the index meant: its account's stream holds this
                // position at the record's version.
                debug_assert_eq!(
                    rec.stream_version.0.checked_sub(1).and_then(|v| index
                        .streams
                        .get(&rec.account)?
                        .get(v as usize)
                        .copied()),
                    Some(positions[k]),
                    "the record at position {} is not the one the index placed there",
                    positions[k]
                );
                out.push(rec);
            }
            i = j;
        }
        Ok(out)
    }

    pub(crate) fn read_all_now(&self, from: Position, limit: usize) -> Result<Vec<Envelope>, ReadError> {
        self.check_poison("read")?;
        let head = self.shared.committed.load(Ordering::Acquire);
        let first = from.0.max(1);
        if first > head || limit == 0 {
            return Ok(Vec::new());
        }
        let last = head.min(first + limit.min(READ_LIMIT_MAX) as u64 - 1);
        let positions: Vec<u64> = (first..=last).collect();
        self.read_positions(&positions)
    }

    pub(crate) fn read_stream_now(
        &self,
        account: &AccountId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<Envelope>, ReadError> {
        self.check_poison("read")?;
        let head = self.shared.committed.load(Ordering::Acquire);
        let positions: Vec<u64> = {
            let index = self.shared.index.read().unwrap_or_else(|p| p.into_inner());
            match index.streams.get(account) {
                None => return Ok(Vec::new()),
                Some(list) => {
                    let skip = from.0.saturating_sub(1).min(list.len() as u64) as usize;
                    list[skip..].iter().copied().take_while(|p| *p <= head).take(limit.min(READ_LIMIT_MAX)).collect()
                }
            }
        };
        self.read_positions(&positions)
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
        // The decision state also holds appends handed to the writer and not yet durable: only
        // what is at or below the committed head counts, so streams are read back when an
        // append is in flight, and logged events are read back from disk.
        let (states, found, in_flight) = {
            let core = lock(&self.shared.core);
            let committed = self.shared.committed.load(Ordering::Acquire);
            let in_flight = core.next_position - 1 > committed;
            let states: Vec<Option<StreamState>> =
                accounts.iter().take(READ_LIMIT_MAX).map(|a| core.state.stream(a).cloned()).collect();
            let at = |id| core.state.id_position(id).filter(|p| p.0 <= committed);
            let found: Vec<(usize, u64)> =
                ids.iter().take(READ_LIMIT_MAX).enumerate().filter_map(|(i, id)| Some((i, at(id)?.0))).collect();
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
        let logged_events = self.read_positions(&positions)?;
        let mut logged = vec![None; ids.len().min(READ_LIMIT_MAX)];
        for ((i, _), e) in by_position.into_iter().zip(logged_events) {
            logged[i] = Some(e.to_new_event().fingerprint());
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

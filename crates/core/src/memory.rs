//! [`MemoryStore`]: the in-memory store, for tests, examples and short-lived processes.

use std::collections::{BTreeSet, HashMap};
use std::future::{Future, ready};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::event::{Envelope, NewEvent};
use crate::id::{AccountId, EventId, Position, StreamVersion};
use crate::log_state::LogState;
use crate::store::{
    AppendError, AppendOutcome, BackfillStore, Committed, ExpectedVersion, Preflight, READ_LIMIT_MAX, ReadError,
    StorageError, Store,
};
use crate::timestamp::Timestamp;
use crate::validate::Admission;
use crate::watch::HeadWatch;

/// A source of `recorded_at` times.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// A [`Store`] that keeps the log in memory. `Send + Sync`: share it with an `Arc`.
///
/// Appends take a write lock; reads take a read lock and see only whole batches.
/// `recorded_at` comes from the system clock (or [`with_clock`](Self::with_clock)) and never
/// decreases along positions.
pub struct MemoryStore {
    inner: RwLock<Inner>,
    clock: Clock,
    future_skew: std::time::Duration,
    /// The head, published after each append, for subscribers.
    watch: HeadWatch,
    /// Derived blobs, and the log's identity (random, per store).
    derived: RwLock<HashMap<String, Vec<u8>>>,
    log_id: [u8; 16],
}

#[derive(Default)]
struct Inner {
    log: Vec<Envelope>,
    state: LogState,
    streams: HashMap<AccountId, Vec<usize>>,
    accounts: BTreeSet<AccountId>,
    last_recorded: Timestamp,
    erasures: Vec<crate::erase::Erasure>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.read();
        f.debug_struct("MemoryStore")
            .field("n_events", &inner.log.len())
            .field("n_accounts", &inner.accounts.len())
            .finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store stamping `recorded_at` from the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(Timestamp::now))
    }

    /// An empty store stamping `recorded_at` from `clock` (for tests and simulations).
    pub fn with_clock(clock: Clock) -> Self {
        Self {
            inner: RwLock::new(Inner::default()),
            clock,
            future_skew: crate::validate::FUTURE_SKEW_DEFAULT,
            watch: HeadWatch::new(Position(0)),
            derived: RwLock::new(HashMap::new()),
            log_id: *uuid::Uuid::new_v4().as_bytes(),
        }
    }

    /// This store, accepting events dated up to `skew` later than their `recorded_at`
    /// (default [`FUTURE_SKEW_DEFAULT`](crate::validate::FUTURE_SKEW_DEFAULT)).
    pub fn with_future_skew(mut self, skew: std::time::Duration) -> Self {
        self.future_skew = skew;
        self
    }

    /// The number of events in the log.
    pub fn len(&self) -> usize {
        self.read().log.len()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // A panic while holding the lock is a bug elsewhere; the log itself stays consistent because
    // every mutation happens after all checks, so recovering the guard is sound.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    fn append_now(&self, batch: Vec<NewEvent>, expected: ExpectedVersion) -> Result<AppendOutcome, AppendError> {
        let mut guard = self.write();
        let inner = &mut *guard;
        let next = Position(inner.log.len() as u64 + 1);
        let recorded_at = (self.clock)().max(inner.last_recorded);
        let admission = Admission { recorded_at, future_skew: self.future_skew };
        let log = &inner.log;
        let prepared = inner.state.prepare(batch, expected, next, &admission, |p, e| {
            log.get((p.0 - 1) as usize).is_some_and(|env| env.same_content(e))
        })?;
        if !prepared.events.is_empty() {
            inner.last_recorded = recorded_at;
        }
        let mut outcome =
            AppendOutcome { appended: Vec::with_capacity(prepared.events.len()), duplicates: prepared.duplicates };
        inner.log.reserve(prepared.events.len());
        for (e, version) in prepared.events {
            let position = Position(inner.log.len() as u64 + 1);
            outcome.appended.push(Committed { id: e.id, stream_version: version, position, recorded_at });
            let index = inner.log.len();
            match inner.streams.get_mut(&e.account) {
                Some(s) => s.push(index),
                None => {
                    inner.accounts.insert(e.account.clone());
                    inner.streams.insert(e.account.clone(), vec![index]);
                }
            }
            inner.log.push(Envelope::new(e, recorded_at, version, position));
        }
        let head = Position(inner.log.len() as u64);
        drop(guard);
        // Published once the events are readable: a woken subscriber finds them.
        self.watch.publish(head);
        Ok(outcome)
    }

    fn read_stream_now(&self, account: &AccountId, from: StreamVersion, limit: usize) -> Vec<Envelope> {
        let inner = self.read();
        let Some(indexes) = inner.streams.get(account) else {
            return Vec::new();
        };
        let skip = from.0.saturating_sub(1).min(indexes.len() as u64) as usize;
        indexes[skip..].iter().take(limit.min(READ_LIMIT_MAX)).map(|&i| inner.log[i].clone()).collect()
    }

    fn read_all_now(&self, from: Position, limit: usize) -> Vec<Envelope> {
        let inner = self.read();
        let start = from.0.saturating_sub(1).min(inner.log.len() as u64) as usize;
        let end = start.saturating_add(limit.min(READ_LIMIT_MAX)).min(inner.log.len());
        inner.log[start..end].to_vec()
    }

    fn accounts_now(&self, after: Option<&AccountId>, limit: usize) -> Vec<AccountId> {
        let inner = self.read();
        let limit = limit.min(READ_LIMIT_MAX);
        match after {
            None => inner.accounts.iter().take(limit).cloned().collect(),
            Some(a) => inner
                .accounts
                .range::<AccountId, _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))
                .take(limit)
                .cloned()
                .collect(),
        }
    }
}

impl Store for MemoryStore {
    fn append(
        &self,
        batch: Vec<NewEvent>,
        expected: ExpectedVersion,
    ) -> impl Future<Output = Result<AppendOutcome, AppendError>> + Send {
        ready(self.append_now(batch, expected))
    }

    fn read_stream(
        &self,
        account: &AccountId,
        from: StreamVersion,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Envelope>, ReadError>> + Send {
        ready(Ok(self.read_stream_now(account, from, limit)))
    }

    fn read_all(&self, from: Position, limit: usize) -> impl Future<Output = Result<Vec<Envelope>, ReadError>> + Send {
        ready(Ok(self.read_all_now(from, limit)))
    }

    fn accounts(
        &self,
        after: Option<&AccountId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AccountId>, ReadError>> + Send {
        ready(Ok(self.accounts_now(after, limit)))
    }

    fn head(&self) -> impl Future<Output = Result<Position, ReadError>> + Send {
        ready(Ok(Position(self.read().log.len() as u64)))
    }

    async fn wait_past(&self, after: Position) -> Result<Position, ReadError> {
        self.watch.wait_past(after).await.map_err(|c| ReadError::Storage(StorageError::new("wait for appends", c.0)))
    }
}

impl BackfillStore for MemoryStore {
    fn preflight(
        &self,
        accounts: &[AccountId],
        ids: &[EventId],
    ) -> impl Future<Output = Result<Preflight, ReadError>> + Send {
        let inner = self.read();
        let states = accounts.iter().take(READ_LIMIT_MAX).map(|a| inner.state.stream(a).cloned()).collect();
        let logged = ids
            .iter()
            .take(READ_LIMIT_MAX)
            .map(|id| {
                let p = inner.state.id_position(id)?;
                inner.log.get((p.0 - 1) as usize).map(Envelope::fingerprint)
            })
            .collect();
        ready(Ok(Preflight { states, logged }))
    }
}

impl crate::store::DerivedStore for MemoryStore {
    fn log_id(&self) -> [u8; 16] {
        self.log_id
    }

    fn save_derived(&self, name: &str, bytes: &[u8]) -> impl Future<Output = Result<(), StorageError>> + Send {
        let saved = crate::store::check_derived(name, bytes.len()).map(|()| {
            self.derived.write().unwrap_or_else(|p| p.into_inner()).insert(name.to_owned(), bytes.to_vec());
        });
        ready(saved)
    }

    fn load_derived(&self, name: &str) -> impl Future<Output = Result<Option<Vec<u8>>, ReadError>> + Send {
        let loaded = if crate::store::derived_name_ok(name) {
            Ok(self.derived.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned())
        } else {
            Err(ReadError::Storage(StorageError::new("load derived state", "not a derived blob's name")))
        };
        ready(loaded)
    }
}

/// Memory holds no copy on disk: erasing takes the text out of the events in place (their
/// stripped form, [`TextState::Erased`](crate::TextState::Erased)), as a store that seals text
/// reads them once their keys are destroyed.
impl crate::erase::ErasingStore for MemoryStore {
    fn erase(
        &self,
        account: &AccountId,
        reason: &str,
    ) -> impl Future<Output = Result<crate::erase::Erasure, crate::erase::EraseError>> + Send {
        ready(self.erase_now(Some(account), i32::MAX, reason))
    }

    fn erase_before(
        &self,
        before: Timestamp,
        reason: &str,
    ) -> impl Future<Output = Result<crate::erase::Erasure, crate::erase::EraseError>> + Send {
        ready(self.erase_now(None, crate::personal::key_month(before), reason))
    }

    fn erasures(&self) -> impl Future<Output = Result<Vec<crate::erase::Erasure>, ReadError>> + Send {
        ready(Ok(self.read().erasures.clone()))
    }
}

impl MemoryStore {
    fn erase_now(
        &self,
        account: Option<&AccountId>,
        month_below: i32,
        reason: &str,
    ) -> Result<crate::erase::Erasure, crate::erase::EraseError> {
        use crate::personal::{PersonalText, TextState, key_month, key_month_start};
        crate::erase::check_reason(reason)?;
        let mut guard = self.write();
        let inner = &mut *guard;
        let targets: Vec<usize> = match account {
            Some(a) => {
                inner.streams.get(a).cloned().ok_or_else(|| crate::erase::EraseError::UnknownAccount(a.clone()))?
            }
            None => (0..inner.log.len()).collect(),
        };
        let mut months = std::collections::HashSet::new();
        for i in targets {
            let e = &mut inner.log[i];
            let month = key_month(e.occurred_at);
            if e.text != TextState::Present || month >= month_below || !PersonalText::is_in(&e.event, &e.meta) {
                continue;
            }
            PersonalText::take(&mut e.event, &mut e.meta);
            e.text = TextState::Erased;
            months.insert((e.account.clone(), month));
        }
        let before = (month_below != i32::MAX).then(|| key_month_start(month_below));
        let erasure = crate::erase::Erasure {
            at: (self.clock)(),
            account: account.cloned(),
            before,
            reason: reason.to_owned(),
            keys_destroyed: months.len() as u64,
        };
        inner.erasures.push(erasure.clone());
        Ok(erasure)
    }
}

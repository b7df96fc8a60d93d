//! [`AnyStore`]: a store chosen at run time, so an application (or the command line) is not
//! generic over the store it opens.
//!
//! [`Store`]'s methods return `impl Future`, so `dyn Store` is not a type. `AnyStore` holds
//! any store behind an object-safe twin of the two store traits whose futures are boxed: one
//! allocation a call, nothing for a caller to name.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::erase::{EraseError, ErasingStore, Erasure};
use crate::event::{Envelope, NewEvent};
use crate::id::{AccountId, EventId, Position, StreamVersion};
use crate::store::{
    AppendError, AppendOutcome, BackfillStore, DerivedStore, ExpectedVersion, Preflight, ReadError, StorageError, Store,
};
use crate::timestamp::Timestamp;
use crate::view::EnvelopeRef;

/// A boxed, sendable future.
type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe twin of [`Store`] and [`BackfillStore`], implemented for every store.
trait DynStore: Send + Sync {
    fn append(&self, batch: Vec<NewEvent>, expected: ExpectedVersion) -> Boxed<'_, Result<AppendOutcome, AppendError>>;
    // Arguments are owned: the store traits' futures may not borrow them.
    fn read_stream(
        &self,
        account: AccountId,
        from: StreamVersion,
        limit: usize,
    ) -> Boxed<'_, Result<Vec<Envelope>, ReadError>>;
    fn read_all(&self, from: Position, limit: usize) -> Boxed<'_, Result<Vec<Envelope>, ReadError>>;
    fn accounts(&self, after: Option<AccountId>, limit: usize) -> Boxed<'_, Result<Vec<AccountId>, ReadError>>;
    fn head(&self) -> Boxed<'_, Result<Position, ReadError>>;
    fn schema_version_max(&self) -> u32;
    fn wait_past(&self, after: Position) -> Boxed<'_, Result<Position, ReadError>>;
    fn scan<'a>(
        &'a self,
        from: Position,
        visit: &'a mut (dyn FnMut(&EnvelopeRef<'_>) + Send),
    ) -> Boxed<'a, Result<Position, ReadError>>;
    fn scan_stream<'a>(
        &'a self,
        account: &'a AccountId,
        visit: &'a mut (dyn FnMut(&EnvelopeRef<'_>) + Send),
    ) -> Boxed<'a, Result<(), ReadError>>;
    fn preflight(&self, accounts: Vec<AccountId>, ids: Vec<EventId>) -> Boxed<'_, Result<Preflight, ReadError>>;
    fn append_bulk(&self, batch: Vec<NewEvent>) -> Boxed<'_, Result<AppendOutcome, AppendError>>;
    fn reserve(&self, events: usize);
    fn log_id(&self) -> [u8; 16];
    fn save_derived(&self, name: String, bytes: Vec<u8>) -> Boxed<'_, Result<(), StorageError>>;
    fn load_derived(&self, name: String) -> Boxed<'_, Result<Option<Vec<u8>>, ReadError>>;
    fn erase(&self, account: AccountId, reason: String) -> Boxed<'_, Result<Erasure, EraseError>>;
    fn erase_before(&self, before: Timestamp, reason: String) -> Boxed<'_, Result<Erasure, EraseError>>;
    fn erasures(&self) -> Boxed<'_, Result<Vec<Erasure>, ReadError>>;
    fn debug(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result;
}

impl<S: BackfillStore + DerivedStore + ErasingStore + std::fmt::Debug> DynStore for S {
    fn append(&self, batch: Vec<NewEvent>, expected: ExpectedVersion) -> Boxed<'_, Result<AppendOutcome, AppendError>> {
        Box::pin(Store::append(self, batch, expected))
    }

    fn read_stream(
        &self,
        account: AccountId,
        from: StreamVersion,
        limit: usize,
    ) -> Boxed<'_, Result<Vec<Envelope>, ReadError>> {
        Box::pin(async move { Store::read_stream(self, &account, from, limit).await })
    }

    fn read_all(&self, from: Position, limit: usize) -> Boxed<'_, Result<Vec<Envelope>, ReadError>> {
        Box::pin(Store::read_all(self, from, limit))
    }

    fn accounts(&self, after: Option<AccountId>, limit: usize) -> Boxed<'_, Result<Vec<AccountId>, ReadError>> {
        Box::pin(async move { Store::accounts(self, after.as_ref(), limit).await })
    }

    fn head(&self) -> Boxed<'_, Result<Position, ReadError>> {
        Box::pin(Store::head(self))
    }

    fn schema_version_max(&self) -> u32 {
        Store::schema_version_max(self)
    }

    fn wait_past(&self, after: Position) -> Boxed<'_, Result<Position, ReadError>> {
        Box::pin(Store::wait_past(self, after))
    }

    fn scan<'a>(
        &'a self,
        from: Position,
        visit: &'a mut (dyn FnMut(&EnvelopeRef<'_>) + Send),
    ) -> Boxed<'a, Result<Position, ReadError>> {
        Box::pin(Store::scan(self, from, visit))
    }

    fn scan_stream<'a>(
        &'a self,
        account: &'a AccountId,
        visit: &'a mut (dyn FnMut(&EnvelopeRef<'_>) + Send),
    ) -> Boxed<'a, Result<(), ReadError>> {
        Box::pin(Store::scan_stream(self, account, visit))
    }

    fn preflight(&self, accounts: Vec<AccountId>, ids: Vec<EventId>) -> Boxed<'_, Result<Preflight, ReadError>> {
        Box::pin(async move { BackfillStore::preflight(self, &accounts, &ids).await })
    }

    fn append_bulk(&self, batch: Vec<NewEvent>) -> Boxed<'_, Result<AppendOutcome, AppendError>> {
        Box::pin(BackfillStore::append_bulk(self, batch))
    }

    fn reserve(&self, events: usize) {
        BackfillStore::reserve(self, events);
    }

    fn log_id(&self) -> [u8; 16] {
        DerivedStore::log_id(self)
    }

    fn save_derived(&self, name: String, bytes: Vec<u8>) -> Boxed<'_, Result<(), StorageError>> {
        Box::pin(async move { DerivedStore::save_derived(self, &name, &bytes).await })
    }

    fn load_derived(&self, name: String) -> Boxed<'_, Result<Option<Vec<u8>>, ReadError>> {
        Box::pin(async move { DerivedStore::load_derived(self, &name).await })
    }

    fn erase(&self, account: AccountId, reason: String) -> Boxed<'_, Result<Erasure, EraseError>> {
        Box::pin(async move { ErasingStore::erase(self, &account, &reason).await })
    }

    fn erase_before(&self, before: Timestamp, reason: String) -> Boxed<'_, Result<Erasure, EraseError>> {
        Box::pin(async move { ErasingStore::erase_before(self, before, &reason).await })
    }

    fn erasures(&self) -> Boxed<'_, Result<Vec<Erasure>, ReadError>> {
        Box::pin(ErasingStore::erasures(self))
    }

    fn debug(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// Any store, chosen at run time: a [`Store`], [`BackfillStore`], [`DerivedStore`] and
/// [`ErasingStore`] like the one it holds.
/// Clone it cheaply to share.
///
/// ```
/// use rapport_core::{AnyStore, ExpectedVersion, Ledger, MemoryStore, NewEvent};
///
/// // The store could as well be a file store or PostgreSQL, picked from a setting.
/// let ledger = Ledger::new(AnyStore::new(MemoryStore::new()));
/// let e = NewEvent::from_json_line(r#"{"type":"touchpoint","account":"acme","occurred_at":"2025-03-01T09:00:00Z","channel":"call"}"#)?;
/// ledger.blocking().append(vec![e], ExpectedVersion::Any)?;
/// assert_eq!(ledger.blocking().head()?.get(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct AnyStore(Arc<dyn DynStore>);

impl AnyStore {
    /// Holds `store`.
    pub fn new<S: BackfillStore + DerivedStore + ErasingStore + std::fmt::Debug + 'static>(store: S) -> Self {
        Self(Arc::new(store))
    }
}

impl std::fmt::Debug for AnyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.debug(f)
    }
}

impl Store for AnyStore {
    fn append(
        &self,
        batch: Vec<NewEvent>,
        expected: ExpectedVersion,
    ) -> impl Future<Output = Result<AppendOutcome, AppendError>> + Send {
        self.0.append(batch, expected)
    }

    fn read_stream(
        &self,
        account: &AccountId,
        from: StreamVersion,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Envelope>, ReadError>> + Send {
        self.0.read_stream(account.clone(), from, limit)
    }

    fn read_all(&self, from: Position, limit: usize) -> impl Future<Output = Result<Vec<Envelope>, ReadError>> + Send {
        self.0.read_all(from, limit)
    }

    fn accounts(
        &self,
        after: Option<&AccountId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AccountId>, ReadError>> + Send {
        self.0.accounts(after.cloned(), limit)
    }

    fn head(&self) -> impl Future<Output = Result<Position, ReadError>> + Send {
        self.0.head()
    }

    fn schema_version_max(&self) -> u32 {
        self.0.schema_version_max()
    }

    fn wait_past(&self, after: Position) -> impl Future<Output = Result<Position, ReadError>> + Send {
        self.0.wait_past(after)
    }

    fn scan<'a>(
        &'a self,
        from: Position,
        visit: &'a mut (dyn FnMut(&EnvelopeRef<'_>) + Send),
    ) -> impl Future<Output = Result<Position, ReadError>> + Send + 'a {
        self.0.scan(from, visit)
    }

    fn scan_stream<'a>(
        &'a self,
        account: &'a AccountId,
        visit: &'a mut (dyn FnMut(&EnvelopeRef<'_>) + Send),
    ) -> impl Future<Output = Result<(), ReadError>> + Send + 'a {
        self.0.scan_stream(account, visit)
    }
}

impl BackfillStore for AnyStore {
    fn preflight(
        &self,
        accounts: &[AccountId],
        ids: &[EventId],
    ) -> impl Future<Output = Result<Preflight, ReadError>> + Send {
        let n = crate::READ_LIMIT_MAX;
        self.0.preflight(accounts.iter().take(n).cloned().collect(), ids.iter().take(n).copied().collect())
    }

    fn append_bulk(&self, batch: Vec<NewEvent>) -> impl Future<Output = Result<AppendOutcome, AppendError>> + Send {
        self.0.append_bulk(batch)
    }

    fn reserve(&self, events: usize) {
        self.0.reserve(events);
    }
}

impl DerivedStore for AnyStore {
    fn log_id(&self) -> [u8; 16] {
        self.0.log_id()
    }

    fn save_derived(&self, name: &str, bytes: &[u8]) -> impl Future<Output = Result<(), StorageError>> + Send {
        self.0.save_derived(name.to_owned(), bytes.to_vec())
    }

    fn load_derived(&self, name: &str) -> impl Future<Output = Result<Option<Vec<u8>>, ReadError>> + Send {
        self.0.load_derived(name.to_owned())
    }
}

impl ErasingStore for AnyStore {
    fn erase(&self, account: &AccountId, reason: &str) -> impl Future<Output = Result<Erasure, EraseError>> + Send {
        self.0.erase(account.clone(), reason.to_owned())
    }

    fn erase_before(
        &self,
        before: Timestamp,
        reason: &str,
    ) -> impl Future<Output = Result<Erasure, EraseError>> + Send {
        self.0.erase_before(before, reason.to_owned())
    }

    fn erasures(&self) -> impl Future<Output = Result<Vec<Erasure>, ReadError>> + Send {
        self.0.erasures()
    }
}

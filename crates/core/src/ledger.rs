//! [`Ledger`]: the handle a service holds — a store plus paged reading helpers — and its
//! blocking facade for synchronous callers.

use std::future::Future;

use crate::erase::{EraseError, ErasingStore, Erasure};
use crate::event::{Envelope, NewEvent};
use crate::id::{AccountId, Position, StreamVersion};
use crate::memory::MemoryStore;
use crate::store::{AppendError, AppendOutcome, BackfillStore, ExpectedVersion, ReadError, Store};
use crate::subscribe::Subscription;
use crate::timestamp::Timestamp;
use crate::view::EnvelopeRef;

/// The page size the ledger's scanning helpers read with.
pub const SCAN_PAGE_EVENTS: usize = 4_096;

/// An event-sourced ledger of account relationships, over any [`Store`].
///
/// All methods are `async` and runtime-agnostic. Synchronous callers use
/// [`blocking`](Self::blocking).
///
/// ```
/// use rapport_core::{Event, ExpectedVersion, Ledger, NewEvent, Timestamp, AccountId, Channel};
///
/// let ledger = Ledger::memory();
/// let acme = AccountId::new("acme")?;
/// let at = Timestamp::parse("2025-03-01T09:00:00Z")?;
/// let call = NewEvent::new(acme.clone(), at, Event::TouchpointHeld { channel: Channel::Call });
/// let outcome = ledger.blocking().append(vec![call], ExpectedVersion::NoStream)?;
/// assert_eq!(outcome.appended.len(), 1);
/// assert_eq!(ledger.blocking().read_stream(&acme)?.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Ledger<S> {
    store: S,
}

impl Ledger<MemoryStore> {
    /// A ledger over a fresh [`MemoryStore`].
    pub fn memory() -> Self {
        Self::new(MemoryStore::new())
    }
}

impl<S: Store> Ledger<S> {
    /// A ledger over `store`.
    pub fn new(store: S) -> Self {
        Self { store }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Takes the store back.
    pub fn into_store(self) -> S {
        self.store
    }

    /// Every event from position `from` on (1 for the whole log): the stored ones, then each
    /// new one as its append commits. See [`Subscription`].
    pub fn subscribe(&self, from: Position) -> Subscription<&S> {
        Subscription::new(&self.store, from)
    }

    /// The synchronous facade: every call blocks the current thread until done.
    pub fn blocking(&self) -> BlockingLedger<'_, S> {
        BlockingLedger { ledger: self }
    }

    /// Appends `batch` atomically. See [`Store::append`] for the contract.
    ///
    /// # Errors
    /// [`AppendError`]; nothing was written.
    pub fn append(
        &self,
        batch: Vec<NewEvent>,
        expected: ExpectedVersion,
    ) -> impl Future<Output = Result<AppendOutcome, AppendError>> + Send + '_ {
        self.store.append(batch, expected)
    }

    /// Reads one page of `account`'s stream. See [`Store::read_stream`].
    ///
    /// # Errors
    /// [`ReadError`] from the store.
    pub async fn read_stream_page(
        &self,
        account: &AccountId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<Envelope>, ReadError> {
        self.store.read_stream(account, from, limit).await
    }

    /// Reads one page of the whole log. See [`Store::read_all`].
    ///
    /// # Errors
    /// [`ReadError`] from the store.
    pub async fn read_all_page(&self, from: Position, limit: usize) -> Result<Vec<Envelope>, ReadError> {
        self.store.read_all(from, limit).await
    }

    /// Calls `f` on every event with position `>= from`, in order, reading page by page so
    /// memory stays flat. Returns the position after the last event seen.
    ///
    /// # Errors
    /// The first [`ReadError`]; `f` has seen every event before it.
    pub async fn for_each(&self, from: Position, mut f: impl FnMut(&Envelope)) -> Result<Position, ReadError> {
        let mut next = Position(from.0.max(1));
        loop {
            let page = self.store.read_all(next, SCAN_PAGE_EVENTS).await?;
            let Some(last) = page.last() else {
                return Ok(next);
            };
            next = last.position.next();
            page.iter().for_each(&mut f);
        }
    }

    /// Calls `f` on every event with position `>= from` up to the head this call finds, each
    /// lent in place ([`Store::scan`]): the file store allocates nothing per event. Returns the
    /// position after the last event seen. What a pass over the whole log (scoring every
    /// account, an export) should use.
    ///
    /// ```
    /// use rapport_core::{ExpectedVersion, Ledger, MemoryStore, NewEvent, Position};
    ///
    /// let ledger = Ledger::new(MemoryStore::new());
    /// let line = r#"{"type":"touchpoint","account":"acme","occurred_at":"2025-03-01T09:00:00Z","channel":"call"}"#;
    /// ledger.blocking().append(vec![NewEvent::from_json_line(line)?], ExpectedVersion::Any)?;
    /// let mut accounts = Vec::new();
    /// let next = ledger.blocking().scan(Position(1), |e| accounts.push(e.account.to_string()))?;
    /// assert_eq!((accounts, next), (vec!["acme".to_owned()], Position(2)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// The first [`ReadError`]; `f` has seen every event before it.
    pub async fn scan(
        &self,
        from: Position,
        mut f: impl FnMut(&EnvelopeRef<'_>) + Send,
    ) -> Result<Position, ReadError> {
        self.store.scan(from, &mut f).await
    }

    /// Calls `f` on every event of `account`'s stream, in version order, each lent as an
    /// [`EnvelopeRef`]: the way to fold one account ([`Store::scan_stream`]; the file store
    /// decodes each in place, allocating nothing per event and opening no sealed text).
    ///
    /// # Errors
    /// The first [`ReadError`]; `f` has seen every event before it.
    pub async fn scan_stream(
        &self,
        account: &AccountId,
        mut f: impl FnMut(&EnvelopeRef<'_>) + Send,
    ) -> Result<(), ReadError> {
        self.store.scan_stream(account, &mut f).await
    }

    /// Calls `f` on every event of `account`'s stream, in version order, page by page, each
    /// an owned [`Envelope`] (its personal text opened); [`scan_stream`](Self::scan_stream)
    /// lends them instead.
    ///
    /// # Errors
    /// The first [`ReadError`].
    pub async fn for_each_in_stream(&self, account: &AccountId, mut f: impl FnMut(&Envelope)) -> Result<(), ReadError> {
        let mut next = StreamVersion::FIRST;
        loop {
            let page = self.store.read_stream(account, next, SCAN_PAGE_EVENTS).await?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            next = last.stream_version.next();
            page.iter().for_each(&mut f);
        }
    }

    /// Every account with events, in ascending order.
    ///
    /// # Errors
    /// The first [`ReadError`].
    pub async fn accounts(&self) -> Result<Vec<AccountId>, ReadError> {
        let mut all: Vec<AccountId> = Vec::new();
        loop {
            let page = self.store.accounts(all.last(), SCAN_PAGE_EVENTS).await?;
            if page.is_empty() {
                return Ok(all);
            }
            all.extend(page);
        }
    }

    /// The position of the last event; `Position(0)` when empty.
    ///
    /// # Errors
    /// [`ReadError`] from the store.
    pub async fn head(&self) -> Result<Position, ReadError> {
        self.store.head().await
    }
}

impl<S: BackfillStore> Ledger<S> {
    /// Appends a backfill batch through the store's bulk path. See
    /// [`BackfillStore::append_bulk`].
    ///
    /// # Errors
    /// [`AppendError`]; nothing of the batch was written.
    pub fn append_bulk(
        &self,
        batch: Vec<NewEvent>,
    ) -> impl Future<Output = Result<AppendOutcome, AppendError>> + Send + '_ {
        self.store.append_bulk(batch)
    }
}

impl<S: ErasingStore> Ledger<S> {
    /// Erases every personal text `account` has logged ([`crate::personal`]): the store
    /// destroys the keys that sealed it, and records the erasure with `reason` (a request or
    /// policy, never a person). Events, positions and scores stay as they are; the text reads
    /// as [`TextState::Erased`](crate::TextState::Erased). See `docs/privacy.md`.
    ///
    /// ```
    /// use rapport_core::{ExpectedVersion, Ledger, NewEvent, TextState};
    ///
    /// let ledger = Ledger::memory();
    /// let line = r#"{"type":"survey_answered","account":"acme","occurred_at":"2025-03-01T09:00:00Z","survey":"q1","nps":3,"comment":"Ann Lee was rude"}"#;
    /// ledger.blocking().append(vec![NewEvent::from_json_line(line)?], ExpectedVersion::Any)?;
    /// let acme = "acme".parse()?;
    /// let erased = pollster::block_on(ledger.erase(&acme, "request 2025-117"))?;
    /// assert_eq!(erased.keys_destroyed, 1);
    /// let read = ledger.blocking().read_stream(&acme)?;
    /// assert_eq!(read[0].text, TextState::Erased);
    /// assert!(!read[0].to_json_line().contains("Ann"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`EraseError`]: nothing was erased.
    pub fn erase<'a>(
        &'a self,
        account: &'a AccountId,
        reason: &'a str,
    ) -> impl Future<Output = Result<Erasure, EraseError>> + Send + 'a {
        self.store.erase(account, reason)
    }

    /// A retention run: erases the personal text of every event that occurred before the
    /// start of `before`'s month ([`ErasingStore::erase_before`]).
    ///
    /// # Errors
    /// [`EraseError`]: nothing was erased.
    pub fn erase_before<'a>(
        &'a self,
        before: Timestamp,
        reason: &'a str,
    ) -> impl Future<Output = Result<Erasure, EraseError>> + Send + 'a {
        self.store.erase_before(before, reason)
    }

    /// Every erasure the store recorded, oldest first.
    ///
    /// # Errors
    /// [`ReadError`].
    pub fn erasures(&self) -> impl Future<Output = Result<Vec<Erasure>, ReadError>> + Send + '_ {
        self.store.erasures()
    }
}

/// The blocking facade over a [`Ledger`], for the CLI, scripts and tests.
///
/// Each call drives the ledger's future to completion on the current thread with
/// `pollster`. Do not call it from inside an async runtime's worker.
#[derive(Debug, Clone, Copy)]
pub struct BlockingLedger<'a, S> {
    ledger: &'a Ledger<S>,
}

impl<S: Store> BlockingLedger<'_, S> {
    /// Blocking [`Ledger::append`].
    ///
    /// # Errors
    /// [`AppendError`]; nothing was written.
    pub fn append(&self, batch: Vec<NewEvent>, expected: ExpectedVersion) -> Result<AppendOutcome, AppendError> {
        pollster::block_on(self.ledger.append(batch, expected))
    }

    /// The whole stream of `account`, read page by page.
    ///
    /// # Errors
    /// [`ReadError`] from the store.
    pub fn read_stream(&self, account: &AccountId) -> Result<Vec<Envelope>, ReadError> {
        let mut out = Vec::new();
        pollster::block_on(self.ledger.for_each_in_stream(account, |e| out.push(e.clone())))?;
        Ok(out)
    }

    /// Blocking [`Ledger::read_all_page`].
    ///
    /// # Errors
    /// [`ReadError`] from the store.
    pub fn read_all_page(&self, from: Position, limit: usize) -> Result<Vec<Envelope>, ReadError> {
        pollster::block_on(self.ledger.read_all_page(from, limit))
    }

    /// Blocking [`Ledger::for_each`].
    ///
    /// # Errors
    /// The first [`ReadError`].
    pub fn for_each(&self, from: Position, f: impl FnMut(&Envelope)) -> Result<Position, ReadError> {
        pollster::block_on(self.ledger.for_each(from, f))
    }

    /// Blocking [`Ledger::scan`].
    ///
    /// # Errors
    /// The first [`ReadError`].
    pub fn scan(&self, from: Position, f: impl FnMut(&EnvelopeRef<'_>) + Send) -> Result<Position, ReadError> {
        pollster::block_on(self.ledger.scan(from, f))
    }

    /// Blocking [`Ledger::accounts`].
    ///
    /// # Errors
    /// The first [`ReadError`].
    pub fn accounts(&self) -> Result<Vec<AccountId>, ReadError> {
        pollster::block_on(self.ledger.accounts())
    }

    /// Blocking [`Ledger::head`].
    ///
    /// # Errors
    /// [`ReadError`] from the store.
    pub fn head(&self) -> Result<Position, ReadError> {
        pollster::block_on(self.ledger.head())
    }
}

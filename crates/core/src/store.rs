//! The store contract: a small, asynchronous, runtime-agnostic trait every log backend
//! implements, with its request and result types and errors.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use thiserror::Error;

use crate::event::{Envelope, NewEvent};
use crate::id::{AccountId, EventId, Position, StreamVersion};
use crate::timestamp::Timestamp;
use crate::validate::{StreamState, ValidationError};
use crate::view::EnvelopeRef;

/// The most events one append may carry.
pub const BATCH_EVENTS_MAX: usize = 65_536;

/// The most events or accounts one paged read returns; larger limits are clamped to it.
pub const READ_LIMIT_MAX: usize = 65_536;

/// What the caller expects the account's stream version to be before the append
/// (optimistic concurrency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpectedVersion {
    /// No expectation. The batch may span several accounts.
    #[default]
    Any,
    /// The stream must have no events yet.
    NoStream,
    /// The stream's last event must have exactly this version.
    Exact(StreamVersion),
}

/// Reads as the expectation a person would state: "any version", "no events yet",
/// "version 147".
impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Any => f.write_str("any version"),
            Self::NoStream => f.write_str("no events yet"),
            Self::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// One event the append wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// Its id.
    pub id: EventId,
    /// Its version in its account's stream.
    pub stream_version: StreamVersion,
    /// Its position in the log.
    pub position: Position,
    /// When the log recorded it (the same for every event of one append): with the event
    /// submitted, all a caller needs to build its [`Envelope`] without reading it back.
    pub recorded_at: Timestamp,
}

impl Committed {
    /// The envelope of `event`, the event this commit is of.
    pub fn envelope(&self, event: NewEvent) -> Envelope {
        debug_assert_eq!(event.id, self.id, "the committed event is the one given");
        Envelope::new(event, self.recorded_at, self.stream_version, self.position)
    }
}

/// What an append did. Once the append's future has resolved, every event it wrote is
/// visible to reads and to every [`Subscription`](crate::Subscription) (read-your-writes):
/// a subscriber that has yielded [`last_position`](Self::last_position) has seen them all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The events written, in batch order.
    pub appended: Vec<Committed>,
    /// The ids of events that were already in the log with the same content, or repeated
    /// within the batch; they were not written again.
    pub duplicates: Vec<EventId>,
}

impl AppendOutcome {
    /// The position of the last event written; `None` when the append wrote nothing.
    pub fn last_position(&self) -> Option<Position> {
        self.appended.iter().map(|c| c.position).max()
    }
}

/// A failure inside a store's storage layer (I/O, network, a poisoned handle). It names the
/// operation and keeps the cause.
#[derive(Debug)]
pub struct StorageError {
    operation: &'static str,
    source: Box<dyn StdError + Send + Sync + 'static>,
}

impl StorageError {
    /// Wraps `source` as a failure of `operation` (such as `"append"`, `"fsync segment 3"`).
    pub fn new(operation: &'static str, source: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        Self { operation, source: source.into() }
    }

    /// The operation that failed.
    pub fn operation(&self) -> &'static str {
        self.operation
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.operation, self.source)
    }
}

impl StdError for StorageError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

/// Why an append wrote nothing. An append is atomic: on any error, no event of the batch is in
/// the log.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The stream was not at the expected version.
    #[error("account {account}: expected {expected}, but the stream is at version {actual}")]
    WrongExpectedVersion {
        /// The account.
        account: AccountId,
        /// What the caller expected.
        expected: ExpectedVersion,
        /// The stream's actual version (0 when it has no events).
        actual: StreamVersion,
    },
    /// An event id already in the log (or earlier in the batch) with different content.
    #[error("account {account}: event {id} already exists with different content")]
    IdConflict {
        /// The account of the refused event.
        account: AccountId,
        /// The id.
        id: EventId,
    },
    /// A validation rule was broken.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The store cannot hold something the event carries: metadata, or a type added at schema
    /// version 2, in a file store of an older format (see [`Store::schema_version_max`]).
    /// Nothing of the batch was written.
    #[error("event {id}: {reason}")]
    Unsupported {
        /// The event.
        id: EventId,
        /// What the store cannot hold, and what to do.
        reason: String,
    },
    /// An expected version was given for a batch spanning several accounts.
    #[error("an expected version applies to one stream, but the batch spans accounts {first} and {second}")]
    MixedAccounts {
        /// One account.
        first: AccountId,
        /// Another.
        second: AccountId,
    },
    /// The batch holds more than [`BATCH_EVENTS_MAX`] events.
    #[error("batch of {len} events is larger than the {max} allowed")]
    BatchTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The store could not write.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why a read failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The store found damaged data; `location` names the file and offset or the table row.
    #[error("damaged data at {location}: {reason}")]
    Corrupt {
        /// Where.
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// The store could not read.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The contract every event log backend meets: what every store must do, and nothing more.
///
/// Methods return `impl Future + Send` and depend on no async runtime: a store may complete the
/// future from its own thread (the file store's group-commit writer) or from a database client.
/// Every store must pass the conformance suite in `rapport_core::testing` (feature `testing`).
/// What a backfill needs beyond this is [`BackfillStore`]; choosing a store at run time is
/// [`AnyStore`](crate::AnyStore).
///
/// Appends whose futures are created one after another on one handle apply in that order,
/// even if the first is awaited only after the second is created: a store either decides an
/// append when its future is created (the file store, the memory store) or orders them itself
/// (PostgreSQL). An importer relies on this to keep several batches in flight.
///
/// Reads are paged: each call returns at most `limit` items (clamped to [`READ_LIMIT_MAX`]), and
/// an empty page means the end.
pub trait Store: Send + Sync {
    /// Appends `batch` atomically, after checking `expected`, idempotency and validation.
    ///
    /// - An event whose id is already in the log with the same content is a duplicate: it is
    ///   reported and not written again. A batch made only of duplicates succeeds whatever
    ///   `expected` says, so that retrying a successful append is safe.
    /// - Otherwise `expected` is checked against the account's stream; with anything but
    ///   [`ExpectedVersion::Any`] the batch must belong to one account.
    /// - Every new event is validated against its stream in batch order, and passes the
    ///   admission rules ([`Admission`](crate::validate::Admission)).
    fn append(
        &self,
        batch: Vec<NewEvent>,
        expected: ExpectedVersion,
    ) -> impl Future<Output = Result<AppendOutcome, AppendError>> + Send;

    /// Up to `limit` events of `account`'s stream with version `>= from`, in version order.
    fn read_stream(
        &self,
        account: &AccountId,
        from: StreamVersion,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Envelope>, ReadError>> + Send;

    /// Up to `limit` events with position `>= from`, in position order, without gaps: a page
    /// never skips a position that a later page would return.
    fn read_all(&self, from: Position, limit: usize) -> impl Future<Output = Result<Vec<Envelope>, ReadError>> + Send;

    /// Up to `limit` account ids that have events, in ascending order, after `after`.
    fn accounts(
        &self,
        after: Option<&AccountId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AccountId>, ReadError>> + Send;

    /// The position of the last committed event; `Position(0)` when the log is empty.
    fn head(&self) -> impl Future<Output = Result<Position, ReadError>> + Send;

    /// The newest schema version of events this store can write: the current one
    /// ([`EventKind::schema_version`](crate::EventKind::schema_version)) for every store but a
    /// file store in an older format (version 1 or 2, until upgraded), which holds version 1
    /// only. Such a store refuses an event that needs more
    /// ([`NewEvent::min_schema_version`](crate::NewEvent::min_schema_version): one carrying
    /// [`Metadata`](crate::Metadata), or of a type added since); an importer asks before
    /// stamping a `source`.
    fn schema_version_max(&self) -> u32 {
        crate::event::SCHEMA_VERSION_CURRENT
    }

    /// Waits until the head is past `after`, and returns it: at once when it already is. The
    /// wake-up a [`Subscription`](crate::Subscription) waits on once it has read everything;
    /// no polling. A dropped wait costs nothing.
    ///
    /// # Errors
    /// The store closed or failed while waiting, or cannot see appends (a read-only handle of
    /// the file store sees only what was committed when it opened).
    fn wait_past(&self, after: Position) -> impl Future<Output = Result<Position, ReadError>> + Send;

    /// Calls `visit` on every event with position `>= from`, in position order, up to the head
    /// this call finds, and returns the position after the last one visited (when there was
    /// none, `from`, or 1 for `from` 0). What a full pass over the log uses ([`Ledger::scan`](crate::Ledger::scan)):
    /// each event is lent as an [`EnvelopeRef`], so a store that decodes events in place (the
    /// file store) allocates nothing per event. The default reads owned pages through
    /// [`read_all`](Self::read_all) and lends each event of them.
    ///
    /// # Errors
    /// The first [`ReadError`]; `visit` has seen every event before it.
    fn scan<'a>(
        &'a self,
        from: Position,
        visit: &'a mut (dyn FnMut(&EnvelopeRef<'_>) + Send),
    ) -> impl Future<Output = Result<Position, ReadError>> + Send + 'a {
        async move {
            let head = self.head().await?;
            scan_pages(head, from, |next| self.read_all(next, READ_LIMIT_MAX), visit).await
        }
    }

    /// Calls `visit` on every committed event of `account`'s stream, in version order, each
    /// lent as an [`EnvelopeRef`]: what a fold of one account reads
    /// ([`Ledger::scan_stream`](crate::Ledger::scan_stream)). A store that decodes in place
    /// (the file store) allocates nothing per event and opens no sealed text. The default reads
    /// owned pages through [`read_stream`](Self::read_stream) and lends each event of them.
    ///
    /// # Errors
    /// The first [`ReadError`]; `visit` has seen every event before it.
    fn scan_stream<'a>(
        &'a self,
        account: &'a AccountId,
        visit: &'a mut (dyn FnMut(&EnvelopeRef<'_>) + Send),
    ) -> impl Future<Output = Result<(), ReadError>> + Send + 'a {
        async move {
            let mut next = StreamVersion::FIRST;
            loop {
                let page = self.read_stream(account, next, READ_LIMIT_MAX).await?;
                let Some(last) = page.last() else { return Ok(()) };
                next = last.stream_version.next();
                for e in &page {
                    visit(&e.view());
                }
            }
        }
    }
}

/// What a store answers about a chunk of events an importer is about to validate (see
/// [`BackfillStore::preflight`]).
#[derive(Debug, Clone, Default)]
pub struct Preflight {
    /// For each account asked, in order, the validation state of its committed stream; `None`
    /// when it has no events.
    pub states: Vec<Option<StreamState>>,
    /// For each id asked, in order, the [fingerprint](NewEvent::fingerprint) of the committed
    /// event with that id, whatever its account; `None` when no committed event has it.
    pub logged: Vec<Option<u64>>,
}

/// What a backfill needs of a store beyond [`Store`], so an importer can validate a whole
/// file against the log before appending any of it (atomicity) and append it fast. Every store
/// implements it; the conformance suite checks it.
pub trait BackfillStore: Store {
    /// One question per chunk of a file: the committed state of the streams of `accounts`,
    /// and which of `ids` are logged (with a fingerprint, to tell a duplicate from a
    /// conflicting reuse of the id). At most [`READ_LIMIT_MAX`] of each per call; the answer
    /// has one entry per account and per id asked, in order.
    fn preflight(
        &self,
        accounts: &[AccountId],
        ids: &[EventId],
    ) -> impl Future<Output = Result<Preflight, ReadError>> + Send;

    /// Appends a large batch: the contract of [`Store::append`] with [`ExpectedVersion::Any`],
    /// through the store's bulk path where it has one. By default it is `append`.
    fn append_bulk(&self, batch: Vec<NewEvent>) -> impl Future<Output = Result<AppendOutcome, AppendError>> + Send {
        self.append(batch, ExpectedVersion::Any)
    }

    /// A hint that about `events` more events are about to be appended, so an in-memory index
    /// can grow once instead of doubling its way up. By default nothing; stores bound it.
    fn reserve(&self, events: usize) {
        let _ = events;
    }
}

/// Where derived state lives beside a log: named blobs (a runner's checkpoint, a store's
/// saved indexes), each replaced atomically, never part of the log. Sealed with
/// [`derived::seal`](crate::derived::seal) and the store's [`log_id`](Self::log_id), a blob
/// carries what a loader needs to refuse another log's, a stale one or a damaged one.
pub trait DerivedStore: Store {
    /// The log's identity, made when the log was created and never changed.
    fn log_id(&self) -> [u8; 16];

    /// Replaces the blob `name` durably and atomically: after a crash at any point, it holds
    /// the old bytes or the new ones. At most [`DERIVED_BYTES_MAX`] bytes.
    ///
    /// # Errors
    /// A name not of [`derived_name_ok`] form, a blob too large, or I/O.
    fn save_derived(&self, name: &str, bytes: &[u8]) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// The blob `name`, or `None` if none was saved.
    ///
    /// # Errors
    /// A name not of [`derived_name_ok`] form, or I/O.
    fn load_derived(&self, name: &str) -> impl Future<Output = Result<Option<Vec<u8>>, ReadError>> + Send;
}

/// The largest derived blob a store keeps (1 GiB).
pub const DERIVED_BYTES_MAX: usize = 1 << 30;

/// Whether `name` may name a derived blob: 1 to 64 of `a-z`, `0-9`, `-` and `_` (it becomes a
/// file name or a key).
pub fn derived_name_ok(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Checks a blob's name and size before a store saves it.
///
/// # Errors
/// What is wrong, as a [`StorageError`] of `save derived state`.
pub fn check_derived(name: &str, len: usize) -> Result<(), StorageError> {
    if !derived_name_ok(name) {
        return Err(StorageError::new(
            "save derived state",
            format!("{:?} is not a name of 1 to 64 of a-z, 0-9, - and _", crate::escape::one_line(name)),
        ));
    }
    if len > DERIVED_BYTES_MAX {
        return Err(StorageError::new(
            "save derived state",
            format!("{len} bytes, more than the {DERIVED_BYTES_MAX} allowed"),
        ));
    }
    Ok(())
}

/// Forwards every [`Store`] and [`BackfillStore`] method of a wrapper (dereferencing to the
/// store it wraps) to that store: `forward_store!(/// docs [generics] Type)`.
macro_rules! forward_store {
    ($(#[$doc:meta])* [$($gen:tt)*] $ty:ty) => {
        $(#[$doc])*
        impl<S: $crate::Store, $($gen)*> $crate::Store for $ty {
            fn append(
                &self,
                batch: Vec<$crate::NewEvent>,
                expected: $crate::ExpectedVersion,
            ) -> impl ::std::future::Future<Output = Result<$crate::AppendOutcome, $crate::AppendError>> + Send {
                (**self).append(batch, expected)
            }

            fn read_stream(
                &self,
                account: &$crate::AccountId,
                from: $crate::StreamVersion,
                limit: usize,
            ) -> impl ::std::future::Future<Output = Result<Vec<$crate::Envelope>, $crate::ReadError>> + Send {
                (**self).read_stream(account, from, limit)
            }

            fn read_all(&self, from: $crate::Position, limit: usize) -> impl ::std::future::Future<Output = Result<Vec<$crate::Envelope>, $crate::ReadError>> + Send {
                (**self).read_all(from, limit)
            }

            fn accounts(
                &self,
                after: Option<&$crate::AccountId>,
                limit: usize,
            ) -> impl ::std::future::Future<Output = Result<Vec<$crate::AccountId>, $crate::ReadError>> + Send {
                (**self).accounts(after, limit)
            }

            fn head(&self) -> impl ::std::future::Future<Output = Result<$crate::Position, $crate::ReadError>> + Send {
                (**self).head()
            }

            fn wait_past(&self, after: $crate::Position) -> impl ::std::future::Future<Output = Result<$crate::Position, $crate::ReadError>> + Send {
                (**self).wait_past(after)
            }

            fn scan<'a>(
                &'a self,
                from: $crate::Position,
                visit: &'a mut (dyn FnMut(&$crate::EnvelopeRef<'_>) + Send),
            ) -> impl ::std::future::Future<Output = Result<$crate::Position, $crate::ReadError>> + Send + 'a {
                (**self).scan(from, visit)
            }

            fn scan_stream<'a>(
                &'a self,
                account: &'a $crate::AccountId,
                visit: &'a mut (dyn FnMut(&$crate::EnvelopeRef<'_>) + Send),
            ) -> impl ::std::future::Future<Output = Result<(), $crate::ReadError>> + Send + 'a {
                (**self).scan_stream(account, visit)
            }
        }

        impl<S: $crate::DerivedStore, $($gen)*> $crate::DerivedStore for $ty {
            fn log_id(&self) -> [u8; 16] {
                (**self).log_id()
            }

            fn save_derived(&self, name: &str, bytes: &[u8]) -> impl ::std::future::Future<Output = Result<(), $crate::StorageError>> + Send {
                (**self).save_derived(name, bytes)
            }

            fn load_derived(&self, name: &str) -> impl ::std::future::Future<Output = Result<Option<Vec<u8>>, $crate::ReadError>> + Send {
                (**self).load_derived(name)
            }
        }

        impl<S: $crate::BackfillStore, $($gen)*> $crate::BackfillStore for $ty {
            fn preflight(
                &self,
                accounts: &[$crate::AccountId],
                ids: &[$crate::EventId],
            ) -> impl ::std::future::Future<Output = Result<$crate::Preflight, $crate::ReadError>> + Send {
                (**self).preflight(accounts, ids)
            }

            fn append_bulk(&self, batch: Vec<$crate::NewEvent>) -> impl ::std::future::Future<Output = Result<$crate::AppendOutcome, $crate::AppendError>> + Send {
                (**self).append_bulk(batch)
            }

            fn reserve(&self, events: usize) {
                (**self).reserve(events);
            }
        }

        impl<S: $crate::ErasingStore, $($gen)*> $crate::ErasingStore for $ty {
            fn erase(&self, account: &$crate::AccountId, reason: &str) -> impl ::std::future::Future<Output = Result<$crate::Erasure, $crate::EraseError>> + Send {
                (**self).erase(account, reason)
            }

            fn erase_before(&self, before: $crate::Timestamp, reason: &str) -> impl ::std::future::Future<Output = Result<$crate::Erasure, $crate::EraseError>> + Send {
                (**self).erase_before(before, reason)
            }

            fn erasures(&self) -> impl ::std::future::Future<Output = Result<Vec<$crate::Erasure>, $crate::ReadError>> + Send {
                (**self).erasures()
            }
        }
    };
}

#[cfg(feature = "testing")]
pub(crate) use forward_store;

forward_store!(
    /// A shared store is a store.
    [] Arc<S>
);
forward_store!(
    /// A borrowed store is a store.
    [] &S
);

/// A [`Store::scan`] made of owned pages: lends `visit` every event of the pages `page` reads
/// (each from the position given), in order, up to `head`; returns the position after the last
/// one visited. The default scan reads its pages with [`Store::read_all`]; a store may read
/// them otherwise (the PostgreSQL store leaves the personal text sealed).
///
/// # Errors
/// The first [`ReadError`] of `page`; `visit` has seen every event before it.
pub async fn scan_pages<F, Fut>(
    head: Position,
    from: Position,
    mut page: F,
    visit: &mut (dyn FnMut(&EnvelopeRef<'_>) + Send),
) -> Result<Position, ReadError>
where
    F: FnMut(Position) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Envelope>, ReadError>>,
{
    let mut next = Position(from.0.max(1));
    while next <= head {
        let events = page(next).await?;
        if events.is_empty() {
            break;
        }
        for e in events.iter().take_while(|e| e.position <= head) {
            visit(&e.view());
            next = e.position.next();
        }
    }
    Ok(next)
}

//! rapport: an event-sourced ledger of B2B account relationships.
//!
//! Every fact about a customer account — a commitment made or delivered, an escalation, a
//! survey answer, a touchpoint — is an immutable event in an append-only log. Projections fold
//! the log into two explainable scores per account: **trust** (do we keep our word?) and
//! **health** (is the relationship in good shape now?).
//!
//! This facade re-exports the member crates:
//! - [`core`] (`rapport-core`): events, validation, the store contract, [`Ledger`] and
//!   [`MemoryStore`].
//! - [`trust`] (`rapport-trust`): the trust score.
//! - [`health`] (`rapport-health`): the health score, portfolio scoring, trends and timelines.
//! - [`import`] (`rapport-import`): backfill from JSON Lines and CSV.
//! - `store_file` (`rapport-store-file`, feature `file`, on by default): the embedded,
//!   crash-safe file store, the default for durable use: `open` (or `Ledger::open` with
//!   `OpenLedger` in scope).
//! - `store_postgres` (`rapport-store-postgres`, feature `postgres`): the log in PostgreSQL,
//!   for services with several instances.
//!
//! [`AnyStore`] holds whichever store a setting picks, so an application need not be generic
//! over it.
//!
//! ```
//! use rapport::{Ledger, NewEvent, ExpectedVersion};
//!
//! let ledger = Ledger::memory();
//! let e = NewEvent::from_json_line(r#"{"type":"touchpoint","account":"acme","occurred_at":"2025-03-01T09:00:00Z","channel":"meeting"}"#)?;
//! ledger.blocking().append(vec![e], ExpectedVersion::Any)?;
//! assert_eq!(ledger.blocking().accounts()?.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub use rapport_core as core;
pub use rapport_core::{
    AccountId, AnyStore, AppendError, AppendOutcome, AsOf, BackfillStore, Envelope, EnvelopeRef, Event, EventId,
    EventRef, ExpectedVersion, Ledger, MemoryStore, NewEvent, Position, ReadError, Store, StreamVersion, Timestamp,
    ValidationError,
};
pub use rapport_health as health;
pub use rapport_import as import;
#[cfg(feature = "file")]
pub use rapport_store_file as store_file;
#[cfg(feature = "file")]
pub use rapport_store_file::FileStore;
#[cfg(feature = "postgres")]
pub use rapport_store_postgres as store_postgres;
pub use rapport_trust as trust;

/// Opens (or creates) the durable ledger in `dir`: the file store, no server needed.
#[cfg(feature = "file")]
///
/// ```
/// let dir = std::env::temp_dir().join(format!("rapport-open-doc-{}", std::process::id()));
/// let ledger = rapport::open(&dir)?;
/// assert_eq!(ledger.blocking().head()?.get(), 0);
/// # drop(ledger);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`store_file::OpenError`]: the directory is locked by another process, damaged, or
/// unreadable.
pub fn open(dir: impl AsRef<std::path::Path>) -> Result<Ledger<FileStore>, store_file::OpenError> {
    Ok(Ledger::new(FileStore::open(dir)?))
}

/// `Ledger::open(dir)` for the file store.
#[cfg(feature = "file")]
///
/// ```
/// use rapport::{Ledger, OpenLedger};
/// let dir = std::env::temp_dir().join(format!("rapport-open-trait-doc-{}", std::process::id()));
/// let ledger = Ledger::open(&dir)?;
/// # drop(ledger);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait OpenLedger: Sized {
    /// Opens (or creates) the durable ledger in `dir`.
    ///
    /// # Errors
    /// [`store_file::OpenError`].
    fn open(dir: impl AsRef<std::path::Path>) -> Result<Self, store_file::OpenError>;
}

#[cfg(feature = "file")]
impl OpenLedger for Ledger<FileStore> {
    fn open(dir: impl AsRef<std::path::Path>) -> Result<Self, store_file::OpenError> {
        open(dir)
    }
}

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

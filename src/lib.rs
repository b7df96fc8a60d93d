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
    AccountId, AppendError, AppendOutcome, AsOf, Envelope, Event, EventId, ExpectedVersion, Ledger, MemoryStore,
    NewEvent, Position, ReadError, Store, StreamVersion, Timestamp, ValidationError,
};
pub use rapport_health as health;
pub use rapport_trust as trust;

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

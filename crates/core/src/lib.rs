//! rapport-core: the event schema, validation, store contract, [`Ledger`] and [`MemoryStore`]
//! of rapport, an event-sourced ledger of B2B account relationships.
//!
//! - [`Event`] is a typed, past-tense fact about an account; [`NewEvent`] is one submitted to
//!   the log and [`Envelope`] one the log holds. Their canonical JSON form is documented in
//!   `docs/event-format.md` ([`NewEvent::from_json_line`], [`NewEvent::to_json_line`]).
//! - [`validate`] holds the rules every event passes before it joins its account's stream.
//! - [`Store`] is the small asynchronous contract every backend implements, and
//!   [`BackfillStore`] what an importer needs beyond it; [`MemoryStore`] is the in-memory
//!   store, and [`AnyStore`] holds any store chosen at run time. [`backend`] is for store
//!   authors: the decision logic every store shares.
//! - [`Ledger`] wraps a store with paged scanning helpers and a [`BlockingLedger`] facade.
//! - [`projection`] is the contract the score crates implement.
//! - [`testing`] (features `synth` and `testing`) is not part of the ledger: `synth`
//!   generates seeded synthetic histories (for examples, benchmarks and `rapport generate`);
//!   `testing` adds the store conformance suite and proptest strategies.
//!
//! This crate does no file or network I/O.
//!
//! # Example
//! ```
//! use rapport_core::{AccountId, Event, ExpectedVersion, Ledger, NewEvent};
//!
//! let ledger = Ledger::memory();
//! let line = r#"{"type":"commitment_made","account":"acme","occurred_at":"2025-03-01T09:00:00Z","commitment":"c-17","title":"SSO","due":"2025-04-01T00:00:00Z","weight":1.0}"#;
//! let made = NewEvent::from_json_line(line)?;
//! let outcome = ledger.blocking().append(vec![made.clone()], ExpectedVersion::NoStream)?;
//! assert_eq!(outcome.appended[0].stream_version.get(), 1);
//!
//! // Appending the same event again is an idempotent no-op.
//! let again = ledger.blocking().append(vec![made], ExpectedVersion::Any)?;
//! assert_eq!(again.duplicates.len(), 1);
//!
//! // Delivering a commitment that was never made breaks a rule, naming account and event.
//! let bad = NewEvent::from_json_line(r#"{"type":"commitment_delivered","account":"acme","occurred_at":"2025-03-09T09:00:00Z","commitment":"c-99"}"#)?;
//! let err = ledger.blocking().append(vec![bad], ExpectedVersion::Any).unwrap_err();
//! assert!(err.to_string().contains("account acme"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod any;
pub mod backend;
mod bytes;
pub mod codec;
pub mod derived;
pub mod erase;
pub mod escape;
pub mod event;
mod hash;
pub mod id;
pub mod json;
pub mod ledger;
mod log_state;
pub mod memory;
pub mod meta;
pub mod personal;
pub mod profile;
pub mod projection;
pub mod retention;
pub mod seal;
mod slots;
pub mod store;
pub mod subscribe;
pub mod timestamp;
pub mod upcast;
pub mod validate;
pub mod view;
pub mod watch;

#[cfg(any(feature = "synth", feature = "testing"))]
pub mod testing;

pub use any::AnyStore;
pub use erase::{EraseError, ErasingStore, Erasure};
pub use event::{AdvocacyKind, Channel, Envelope, Event, EventKind, NewEvent, Severity, SurveyScore, TEXT_BYTES_MAX};
pub use id::{
    AccountId, CommitmentKey, EscalationKey, EventId, Interner, KEY_BYTES_MAX, ParseIdError, Position, StreamVersion,
    SurveyKey,
};
pub use json::{LINE_BYTES_MAX, ParseEventError};
pub use ledger::{BlockingLedger, Ledger};
pub use memory::MemoryStore;
pub use meta::{MetaRef, Metadata, MetadataError};
pub use personal::{PersonalText, TextState};
pub use profile::{Profile, ProfileRef};
pub use projection::{AsOf, Projection};
pub use retention::{RetentionError, RetentionPolicy};
pub use store::{
    AppendError, AppendOutcome, BATCH_EVENTS_MAX, BackfillStore, Committed, DerivedStore, ExpectedVersion, Preflight,
    READ_LIMIT_MAX, ReadError, StorageError, Store,
};
pub use subscribe::Subscription;
pub use timestamp::{ParseTimestampError, Timestamp};
pub use validate::ValidationError;
pub use view::{AccountRef, EnvelopeRef, EventRef, KeyRef};

//! rapport-store-file: the embedded, crash-safe, append-only segment log — the store a service
//! gets by default, with no server.
//!
//! - [`FileStore`] implements [`rapport_core::Store`] and passes the same conformance suite as
//!   `MemoryStore`.
//! - Durability: an append is acknowledged only after its batch is `fdatasync`ed
//!   ([`Durability::Sync`], the default). Concurrent appenders share one `fdatasync` (group
//!   commit) on a writer thread that completes each append's future, so async callers never
//!   block a runtime worker on an fsync. Subscribers are woken by the same thread as each
//!   append commits.
//! - Reads (`read_all`, `read_stream`, `preflight`) read the segment files on the calling
//!   thread, bounded by their `limit`: an async host keeps pages to a few thousand records
//!   (well under a millisecond from the page cache; BENCHMARKS.md, full scan), as a
//!   `Subscription` does, or moves larger reads to a blocking thread. Opening reads the log
//!   (after a clean close, only what follows the index snapshot it saved) and belongs on a
//!   blocking thread too.
//! - Recovery: on open, a torn tail left by a crash is truncated (and logged); damage followed
//!   by acknowledged data is refused, naming the segment and byte offset.
//! - One writer process: a lock on the store's directory refuses a second one. It is an
//!   `flock`, so a child process forked while the store is open shares it until the child
//!   execs (descriptors are opened close-on-exec), and the lock outlives the handle by that
//!   window.
//! - An I/O failure poisons the handle: every later call errors until the store is reopened.
//! - [`backup()`] makes a consistent, verified copy while a writer keeps appending;
//!   [`FileStore::open_following`] follows a log another process appends to.
//! - Tamper evidence: frames are chained by BLAKE3 (format version 2), so [`verify()`] finds
//!   an edited event even when every checksum was recomputed, and its
//!   [`head_chain`](VerifyReport::head_chain) stands for the whole history: record it, and
//!   [`chain_at`] later proves that prefix unchanged. A log created by an older build (version
//!   1) keeps opening as it is; [`upgrade()`] rewrites it as version 2 in a new directory.
//!
//! The byte layout is documented in `docs/log-format.md`; [`format`](mod@format) implements it.
//!
//! # Example
//! ```
//! use rapport_core::{ExpectedVersion, Ledger, NewEvent};
//! use rapport_store_file::FileStore;
//!
//! let dir = std::env::temp_dir().join(format!("rapport-doc-{}", std::process::id()));
//! let ledger = Ledger::new(FileStore::open(&dir)?);
//! let e = NewEvent::from_json_line(r#"{"type":"touchpoint","account":"acme","occurred_at":"2025-03-01T09:00:00Z","channel":"call"}"#)?;
//! ledger.blocking().append(vec![e], ExpectedVersion::Any)?;
//! drop(ledger);
//! // Reopen: the event is there.
//! let ledger = Ledger::new(FileStore::open(&dir)?);
//! assert_eq!(ledger.blocking().head()?.get(), 1);
//! # drop(ledger);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod backup;
mod blob;
mod copy;
mod damage;
mod derived;
mod erase;
mod file_window;
mod follow;
pub mod format;
mod head;
mod id_file;
#[cfg(feature = "redb-comparison")]
#[doc(hidden)]
pub mod id_file_probe;
mod index;
mod job;
mod keys;
mod leb128;
mod offsets;
mod open;
mod options;
mod positions;
mod read;
mod recovery;
mod saved_states;
mod sealing;
mod shared;
mod snapshot;
mod store;
mod sync;
mod upgrade;
mod verify;
pub mod vfs;
mod writer;

pub use backup::{BackupError, BackupKeys, BackupReport, backup, backup_on, backup_with};
pub use blob::DERIVED_DIR;
pub use copy::UNFINISHED_FILE;
pub use head::{HEAD_FILE, HeadRecord};
pub use index::segment_name;
pub use keys::KEYS_FILE;
pub use options::{Durability, OpenError, Options, RecoveryReport, Skipped};
pub use store::FileStore;
pub use upgrade::{UpgradeError, UpgradeReport, upgrade, upgrade_on};
pub use verify::{VerifyError, VerifyReport, chain_at, verify};

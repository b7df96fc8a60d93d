//! Export: every event of one account, in the canonical form an import reads back
//! (`docs/event-format.md`), metadata included: what a subject access request asks for, and
//! what moves an account to another store.

use std::io::{self, Write};

use rapport_core::{AccountId, Ledger, ReadError, Store, StreamVersion};

/// How many events are read from the store at a time: memory stays flat in the stream's size.
const PAGE_EVENTS: usize = 4_096;

/// Why an export stopped. What was written before it stands: an export is not atomic (write
/// it to a file and keep the file only on success).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The store could not read the account's stream.
    #[error("exporting account {account}: {source}")]
    Read {
        /// The account.
        account: AccountId,
        /// What the store said.
        #[source]
        source: ReadError,
    },
    /// The output could not be written.
    #[error("exporting account {account}: writing event {version} of its stream: {source}")]
    Write {
        /// The account.
        account: AccountId,
        /// The stream version of the event being written.
        version: u64,
        /// What the output said.
        #[source]
        source: io::Error,
    },
}

/// Writes every event of `account` to `out` as JSON lines in the canonical form (with its
/// `id` and metadata; without what the store assigned, so the lines import into another
/// store as they are, idempotently), in stream order. Each line states its type's
/// `schema_version`, so that a later build reads it through its upcasters. Returns how many; 0 for an account
/// without events. Blocks the calling thread on the store, as an import does.
///
/// ```
/// use rapport_core::Ledger;
/// use rapport_import::{Importer, export_account};
///
/// let ledger = Ledger::memory();
/// let line = r#"{"type":"touchpoint","account":"acme","occurred_at":"2025-03-01T09:00:00Z","channel":"call","actor":"dana"}"#;
/// Importer::new(&ledger).reader("calls.jsonl", || Ok(line.as_bytes()))?;
/// let mut out = Vec::new();
/// assert_eq!(export_account(&ledger, &"acme".parse()?, &mut out)?, 1);
/// let again = Ledger::memory();
/// let report = Importer::new(&again).reader("acme.jsonl", || Ok(out.as_slice()))?;
/// assert_eq!(report.appended, 1);
/// assert_eq!(again.blocking().read_stream(&"acme".parse()?)?[0].meta.actor(), Some("dana"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`ExportError`], naming the account (and the event being written).
pub fn export_account<S: Store>(
    ledger: &Ledger<S>,
    account: &AccountId,
    out: &mut dyn Write,
) -> Result<u64, ExportError> {
    let mut from = StreamVersion::FIRST;
    let mut written = 0u64;
    loop {
        let page = pollster::block_on(ledger.read_stream_page(account, from, PAGE_EVENTS))
            .map_err(|source| ExportError::Read { account: account.clone(), source })?;
        let Some(last) = page.last() else { break };
        from = StreamVersion(last.stream_version.0 + 1);
        for e in &page {
            let line = e.to_new_event().to_json_line_versioned();
            out.write_all(line.as_bytes()).and_then(|()| out.write_all(b"\n")).map_err(|source| {
                ExportError::Write { account: account.clone(), version: e.stream_version.0, source }
            })?;
            written += 1;
        }
        if page.len() < PAGE_EVENTS {
            break;
        }
    }
    out.flush().map_err(|source| ExportError::Write { account: account.clone(), version: from.0 - 1, source })?;
    Ok(written)
}

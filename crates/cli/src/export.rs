//! `rapport export`: every event of one account in the canonical form, metadata included (a
//! subject access request; `rapport_import::export_account`), on stdout or into a file.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, anyhow};
use rapport_core::{AccountId, AnyStore, Ledger, StreamVersion};
use rapport_import::export_account;

use crate::outputs::Protected;
use crate::{Failure, fail, note, shown};

pub(crate) fn cmd_export(
    ledger: &Ledger<AnyStore>,
    account: &str,
    out: Option<&Path>,
    protected: &Protected,
) -> Result<(), Failure> {
    let id = AccountId::new(account).map_err(|e| fail(2, anyhow!("--account {account:?}: {e}")))?;
    // Refused before any file is made: a mistyped account is more likely than an empty one.
    if pollster::block_on(ledger.read_stream_page(&id, StreamVersion::FIRST, 1))?.is_empty() {
        return Err(fail(1, anyhow!("account {account:?} has no events")));
    }
    match out {
        None => {
            let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
            export_account(ledger, &id, &mut stdout)?;
        }
        Some(path) => {
            let file = protected.create("--out", path)?;
            let mut writer = std::io::BufWriter::new(file);
            let n = export_account(ledger, &id, &mut writer)?;
            let file = writer.into_inner().map_err(|e| anyhow!("{}: {}", shown(path), e.error()))?;
            file.sync_all().with_context(|| format!("writing {}", shown(path)))?;
            note(format_args!("wrote {n} events of {} to {}", rapport_core::escape::one_line(account), shown(path)));
        }
    }
    std::io::stdout().flush().map_err(crate::stdout_error)
}

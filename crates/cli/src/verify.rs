//! `rapport verify`: a file store checked frame by frame and its hash chain printed, or any
//! store checked through the contract.

use anyhow::anyhow;
use rapport_core::backend::LogState;
use rapport_core::escape::one_line;
use rapport_core::{AnyStore, Ledger, Position};
use rapport_store_file::{RecoveryReport, VerifyError, verify};

use crate::{Failure, Out, fail, note_skipped};

/// Verifies a file store: every check an open makes, the hash chain included; prints the
/// chain's value at the head and, with `expect`, proves the log up to a recorded position.
pub(crate) fn verify_files(dir: &std::path::Path, expect: Option<&str>) -> Result<(), Failure> {
    let damaged = |e: VerifyError| match e {
        e @ (VerifyError::Damaged { .. } | VerifyError::NoFrameEnd { .. }) => fail(4, e.into()),
        e => e.into(),
    };
    let r = verify(dir).map_err(damaged)?;
    let version = r.format_version;
    let expected = match expect {
        None => None,
        Some(text) => {
            let parsed = text
                .split_once(':')
                .and_then(|(p, c)| Some((p.parse::<u64>().ok()?, c)))
                .ok_or_else(|| fail(2, anyhow!("--expect {}: give POSITION:CHAIN", one_line(text))))?;
            let chain = rapport_store_file::format::Chain::parse(parsed.1, version)
                .map_err(|e| fail(2, anyhow!("--expect {}: {e}", one_line(text))))?;
            Some((parsed.0, chain))
        }
    };
    let mut out = Out::new();
    out.line(format_args!("ok: {} events, {} accounts", r.n_events, r.n_accounts))?;
    let kind = match version {
        1 => "crc32c, format 1: not tamper-evident; `rapport upgrade` rewrites it as format 4".to_owned(),
        2 => "blake3, format 2: holds no metadata, profiles or assessments; `rapport upgrade` rewrites it as format 4"
            .to_owned(),
        3 => "blake3, format 3: free text in the clear, not erasable; `rapport upgrade` rewrites it as format 4"
            .to_owned(),
        v => format!("blake3, format {v}"),
    };
    out.line(format_args!("head: position {}, chain {} ({kind})", r.n_events, r.head_chain.display(version)))?;
    if let Some((position, chain)) = expected {
        let found = rapport_store_file::chain_at(dir, position).map_err(damaged)?;
        if found != chain {
            return Err(fail(
                4,
                anyhow!(
                    "damaged: the chain at position {position} is {}, not the {} recorded: the history up to there \
                     was rewritten",
                    found.display(version),
                    chain.display(version)
                ),
            ));
        }
        out.line(format_args!("proved: the log up to position {position} is the history recorded"))?;
    }
    out.finish()?;
    note_skipped(&RecoveryReport { skipped: r.skipped, ..RecoveryReport::default() });
    Ok(())
}

/// Verifies any store through the contract: gapless positions and every validation rule.
pub(crate) fn verify_log(ledger: &Ledger<AnyStore>) -> Result<(), Failure> {
    let mut state = LogState::new();
    let mut n = 0u64;
    let mut damage: Option<String> = None;
    ledger.blocking().for_each(Position(1), |e| {
        if damage.is_some() {
            return;
        }
        n += 1;
        if e.position.get() != n {
            damage = Some(format!("position {} where {n} was expected", e.position));
            return;
        }
        match state.replay(&e.to_new_event(), e.position) {
            Ok(v) if v == e.stream_version => {}
            Ok(v) => {
                damage = Some(format!("position {}: stream version {} should be {v}", e.position, e.stream_version))
            }
            Err(err) => damage = Some(format!("position {}: {err}", e.position)),
        }
    })?;
    match damage {
        Some(d) => Err(fail(4, anyhow!("damaged: {d}"))),
        None => {
            let mut out = Out::new();
            out.line(format_args!("ok: {n} events, {} accounts", state.n_accounts()))?;
            out.finish()
        }
    }
}

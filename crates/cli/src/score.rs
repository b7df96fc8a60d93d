//! `rapport score`: trust and health per account, from the runner's checkpoint when it can
//! answer, else folded from the log; a table or JSON lines.

use anyhow::anyhow;
use rapport_core::{AccountId, AnyStore, AsOf, Ledger, Timestamp};
use rapport_health::{AccountScores, ScoringConfig, score_account_with, score_all_with, write_table};

use crate::{Failure, Out, OutputFormat, fail, instant, live, stdout_error};

pub(crate) fn cmd_score(
    ledger: &Ledger<AnyStore>,
    account: &Option<String>,
    as_of: &Option<String>,
    known_at: &Option<String>,
    format: OutputFormat,
    use_checkpoint: bool,
    config: &ScoringConfig,
) -> Result<(), Failure> {
    let at = instant(as_of, "as-of")?.unwrap_or_else(Timestamp::now);
    let known_at = instant(known_at, "known-at")?;
    let mut view = AsOf::at(at);
    if let Some(k) = known_at {
        view = view.known_at(k);
    }
    let account = match account {
        Some(a) => Some(AccountId::new(a).map_err(|e| fail(2, anyhow!("--account {a:?}: {e}")))?),
        None => None,
    };
    // The runner's checkpoint knows everything recorded: it answers only without --known-at
    // (and only when saved under this configuration). One account is folded from its own
    // events instead: restoring the checkpoint restores every account's state.
    if use_checkpoint
        && known_at.is_none()
        && account.is_none()
        && let Some(scores) = live::scores_from_checkpoint(ledger, config, at)?
    {
        return print_scores(&scores, format);
    }
    let scores = match &account {
        Some(id) => {
            // As `timeline`, `explain` and `export` do: a mistyped account would otherwise
            // print the prior (grey, confidence 0) as if it were a new account's score. Asked
            // of the stream in place: an owned read would open its text, and a read-only
            // handle would read the whole key file for that.
            let mut any = false;
            pollster::block_on(ledger.scan_stream(id, |_| any = true))?;
            if !any {
                return Err(fail(1, anyhow!("account {:?} has no events", id.as_str())));
            }
            vec![pollster::block_on(score_account_with(ledger, config, id, view))?]
        }
        None => pollster::block_on(score_all_with(ledger, config, view))?,
    };
    print_scores(&scores, format)
}

pub(crate) fn print_scores(scores: &[AccountScores], format: OutputFormat) -> Result<(), Failure> {
    let mut out = Out::new();
    match format {
        OutputFormat::Json => {
            for s in scores {
                let line = JsonLine {
                    account: &s.account,
                    as_of: s.as_of,
                    evidence: &s.scores.evidence,
                    fingerprint: &s.model.fingerprint,
                    health: &s.scores.health,
                    model: &s.model.name,
                    profile: s.profile.as_ref().map(|p| p.profile()),
                    trend: &s.trend,
                    trust: &s.scores.trust,
                };
                out.json(&line)?;
            }
        }
        OutputFormat::Table => write_table(&mut out.0, scores).map_err(stdout_error)?,
    }
    out.finish()
}

/// One account's line of `rapport score --format json`, written straight from the scores (its
/// keys in alphabetical order; nested objects in their types' field order).
#[derive(serde::Serialize)]
struct JsonLine<'a> {
    account: &'a AccountId,
    as_of: Timestamp,
    evidence: &'a rapport_health::Reading,
    fingerprint: &'a str,
    health: &'a rapport_trust::Score,
    model: &'a str,
    profile: Option<rapport_core::Profile>,
    trend: &'a rapport_health::Trend,
    trust: &'a rapport_trust::Score,
}

//! `rapport timeline`: one account's trust and health over time, each instant under the model
//! of the account's segment then (the model is named where it changes), and the SVG chart.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, anyhow};
use rapport_core::{AccountId, AnyStore, Ledger, Timestamp};
use rapport_health::{ScoringConfig, timeline_with};

use crate::outputs::Protected;
use crate::{Failure, Out, fail, instant, note, renewals, shown, svg};

pub(crate) fn cmd_timeline(
    ledger: &Ledger<AnyStore>,
    account: &str,
    every: &str,
    as_of: &Option<String>,
    svg: Option<&Path>,
    protected: &Protected,
    config: &ScoringConfig,
) -> Result<(), Failure> {
    let id = AccountId::new(account).map_err(|e| fail(2, anyhow!("--account {account:?}: {e}")))?;
    let step = renewals::days(every, "every")?;
    let end = instant(as_of, "as-of")?.unwrap_or_else(Timestamp::now);
    let events = ledger.blocking().read_stream(&id)?;
    let Some(first) = events.iter().map(|e| e.occurred_at).min() else {
        return Err(fail(1, anyhow!("account {account:?} has no events")));
    };
    let mut instants = Vec::new();
    let mut t = first;
    while t <= end && instants.len() < 10_000 {
        instants.push(t);
        t = t.add_days(step);
    }
    instants.push(end);
    let line = timeline_with(config, events, &instants, None);
    let mut out = Out::new();
    out.line(format_args!("{:<22} {:>6} {:<7} {:>7} {:<7}  model", "as_of", "trust", "band", "health", "band"))?;
    let mut last_model: Option<&str> = None;
    for (t, s) in &line {
        // The model is named on the first line and wherever it changed (a segment change).
        let model = s.health.model.as_str();
        let mark = if last_model == Some(model) { String::new() } else { format!("  {model}") };
        last_model = Some(model);
        out.line(format_args!(
            "{:<22} {:>6.1} {:<7} {:>7.1} {:<7}{mark}",
            t.to_string(),
            s.trust.score,
            s.trust.band.name(),
            s.health.score,
            s.health.band.name()
        ))?;
    }
    out.finish()?;
    if let Some(path) = svg {
        let mut file = protected.create("--svg", path)?;
        file.write_all(svg::chart(account, &line, &config.default).as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", shown(path)))?;
        note(format_args!("wrote {}", shown(path)));
    }
    Ok(())
}

//! `rapport explain`: what changed in one account between two instants, or under two models at
//! one instant (`rapport_health::explain`; `docs/scoring.md`, "Explanations").

use anyhow::anyhow;
use rapport_core::escape::one_line;
use rapport_core::{AccountId, AnyStore, Ledger, Timestamp};
use rapport_health::{Change, Direction, ExplainError, Explanation, ScoringConfig, Side, explain};
use rapport_trust::Deadline;

use crate::{Failure, Out, OutputFormat, fail};

/// The instants and models of an explanation, as the command line gave them.
pub(crate) struct Request<'a> {
    pub(crate) account: &'a str,
    pub(crate) from: Option<Timestamp>,
    pub(crate) to: Option<Timestamp>,
    pub(crate) at: Option<Timestamp>,
    pub(crate) known_at: Option<Timestamp>,
    pub(crate) from_known_at: Option<Timestamp>,
    pub(crate) model: &'a ScoringConfig,
    pub(crate) from_model: Option<&'a ScoringConfig>,
}

pub(crate) fn cmd_explain(ledger: &Ledger<AnyStore>, r: &Request<'_>, format: OutputFormat) -> Result<(), Failure> {
    let account = AccountId::new(r.account).map_err(|e| fail(2, anyhow!("--account {:?}: {e}", r.account)))?;
    let (from, to) = match (r.at, r.from, r.to) {
        (Some(at), None, None) => (at, at),
        (None, Some(from), to) => (from, to.unwrap_or_else(Timestamp::now)),
        (None, None, _) => return Err(fail(2, anyhow!("give --from (and --to, default now), or --at"))),
        (Some(_), _, _) => return Err(fail(2, anyhow!("--at is one instant: give it without --from and --to"))),
    };
    let mut from_side = Side::at(from, r.from_model.unwrap_or(r.model));
    let mut to_side = Side::at(to, r.model);
    if let Some(k) = r.known_at {
        to_side = to_side.known_at(k);
    }
    if let Some(k) = r.from_known_at.or(r.known_at) {
        from_side = from_side.known_at(k);
    }
    let events = ledger.blocking().read_stream(&account)?;
    if events.is_empty() {
        return Err(fail(1, anyhow!("account {:?} has no events", r.account)));
    }
    let x = explain(&account, &events, from_side, to_side).map_err(|e| match e {
        e @ (ExplainError::FromAfterTo { .. } | ExplainError::KnownAfterEnd { .. }) => fail(2, e.into()),
        e => fail(1, e.into()),
    })?;
    let mut out = Out::new();
    match format {
        OutputFormat::Json => out.json(&x)?,
        OutputFormat::Table => write_text(&mut out, &x)?,
    }
    out.finish()
}

fn write_text(out: &mut Out, x: &Explanation) -> Result<(), Failure> {
    let model = if x.model_from == x.model_to {
        format!("model {} ({})", x.model_to.name, x.model_to.fingerprint)
    } else {
        let (a, b) = (&x.model_from, &x.model_to);
        format!("model {} ({}) → {} ({})", a.name, a.fingerprint, b.name, b.fingerprint)
    };
    out.line(format_args!(
        "{}: {} → {}; {} events between; {model}",
        one_line(x.account.as_str()),
        x.from,
        x.to,
        x.window_events
    ))?;
    if x.from_known_at.is_some() || x.to_known_at.is_some() {
        let shown = |k: Option<rapport_core::Timestamp>| k.map_or_else(|| "now".to_owned(), |t| t.to_string());
        out.line(format_args!("known at {} → {}", shown(x.from_known_at), shown(x.to_known_at)))?;
    }
    if x.movers_considered < x.window_events {
        out.line(format_args!("(events that moved a factor are sought among the last {})", x.movers_considered))?;
    }
    write_change(out, "trust", &x.trust)?;
    write_change(out, "health", &x.health)?;
    if !x.deadlines.is_empty() {
        out.line(format_args!("deadlines passed in between, still open at the end:"))?;
        for d in &x.deadlines {
            let (what, event) = match *d {
                Deadline::CommitmentDue { made, .. } => ("commitment due", made),
                Deadline::AcknowledgeSla { raised, .. } => ("acknowledgement SLA", raised),
                Deadline::ResolveSla { opened, .. } => ("resolution SLA", opened),
            };
            out.line(format_args!("  {}  {what:<20} {event}", d.at()))?;
        }
    }
    Ok(())
}

fn write_change(out: &mut Out, name: &str, c: &Change) -> Result<(), Failure> {
    let direction = match c.direction {
        Direction::Rising => "rising",
        Direction::Falling => "falling",
        Direction::Steady => "steady",
    };
    out.line(format_args!(
        "{name:<7} {:>5.1} {:<6} → {:>5.1} {:<6} {:>+6.1}  {direction} (noise ±{:.1})",
        c.from.score,
        c.from.band.name(),
        c.to.score,
        c.to.band.name(),
        c.delta,
        c.noise
    ))?;
    out.line(format_args!(
        "  {:<28} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}",
        "factor (points)", "from", "to", "delta", "model", "time", "events"
    ))?;
    for f in &c.factors {
        out.line(format_args!(
            "  {:<28} {:>6.1} {:>6.1} {:>+6.1} {:>+6.1} {:>+6.1} {:>+6.1}",
            f.name, f.from, f.to, f.delta, f.model, f.time, f.events
        ))?;
        // Movers too small to show at this precision are left out.
        for m in f.movers.iter().filter(|m| m.effect.abs() >= 0.005) {
            out.line(format_args!("      {:>+6.2}  {}  {:<22} {}", m.effect, m.occurred_at, m.kind, m.event))?;
        }
    }
    Ok(())
}

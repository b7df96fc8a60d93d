//! `rapport renewals`: the accounts whose contract renews within a window, most at risk first
//! (`rapport_health::renewals`; `docs/scoring.md`, "Renewals").

use anyhow::anyhow;
use rapport_core::escape::one_line;
use rapport_core::{AnyStore, AsOf, Ledger, Timestamp};
use rapport_health::{Renewal, ScoringConfig, renewals, score_all_with};

use crate::{Failure, Out, OutputFormat, fail, instant};

/// A number of days written `30d` or `30`, at least an hour and finite; `flag` names it in
/// the error.
pub(crate) fn days(text: &str, flag: &str) -> Result<f64, Failure> {
    text.trim_end_matches('d')
        .parse()
        .ok()
        .filter(|d: &f64| *d >= 1.0 / 24.0 && d.is_finite())
        .ok_or_else(|| fail(2, anyhow!("--{flag} {text:?}: expected days, like 30d")))
}

pub(crate) fn cmd_renewals(
    ledger: &Ledger<AnyStore>,
    within: &str,
    as_of: &Option<String>,
    format: OutputFormat,
    config: &ScoringConfig,
) -> Result<(), Failure> {
    let within = days(within, "within")?;
    let at = instant(as_of, "as-of")?.unwrap_or_else(Timestamp::now);
    let scores = pollster::block_on(score_all_with(ledger, config, AsOf::at(at)))?;
    let due = renewals(&config.default, &scores, within);
    let mut out = Out::new();
    match format {
        OutputFormat::Json => {
            for r in &due {
                out.json(r)?;
            }
        }
        OutputFormat::Table => {
            out.line(format_args!(
                "{:<16} {:<10} {:>5} {:>7} {:<7} {:>5} {:>7} {:>10} {:>14}",
                "account", "renews", "days", "health", "band", "cov", "trend", "at renewal", "arr"
            ))?;
            for r in &due {
                out.line(format_args!("{}", row(r)))?;
            }
            if due.is_empty() {
                out.line(format_args!("no account renews within {within} days of {at}"))?;
            }
        }
    }
    out.finish()
}

fn row(r: &Renewal) -> String {
    let date = r.renews_at.to_string();
    let arr = r.arr.as_ref().map(|(amount, currency)| format!("{amount:.0} {currency}")).unwrap_or_default();
    format!(
        "{:<16} {:<10} {:>5.0} {:>7.1} {:<7} {:>5.2} {:>+7.1} {:>10.1} {:>14}",
        one_line(r.account.as_str()),
        date.get(..10).unwrap_or(&date),
        r.days_left,
        r.health,
        r.band.name(),
        r.coverage,
        r.trend,
        r.at_renewal,
        arr
    )
}

//! The renewal view: accounts whose contract comes up for renewal within a window, ranked by
//! risk (`docs/scoring.md`, "Renewals").
//!
//! Risk reads health, its trend and its confidence together as one number, the **pessimistic
//! health at renewal**: health now, plus the trend carried forward to the renewal date when the
//! trend is a real move (beyond its noise), less one standard error. Low values renew at risk.
//! A falling account with months to go ranks near one already low; an account whose score
//! rests on little evidence has a large standard error, so it is not ranked as safe on priors.

use rapport_core::{AccountId, Timestamp};
use serde::Serialize;

use crate::portfolio::{AccountScores, Direction};
use crate::{Band, HealthModel};

/// One account coming up for renewal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Renewal {
    /// The account.
    pub account: AccountId,
    /// When it renews (its profile's `renews_at`).
    pub renews_at: Timestamp,
    /// Days from the instant evaluated to the renewal.
    pub days_left: f64,
    /// Health now.
    pub health: f64,
    /// Its band.
    pub band: Band,
    /// Its coverage.
    pub coverage: f64,
    /// Health's change over the trend window, in points.
    pub trend: f64,
    /// The trend's reading.
    pub direction: Direction,
    /// The pessimistic health at renewal: what the ranking sorts by, lowest first.
    pub at_renewal: f64,
    /// The annual contract value and its currency, when the profile states it.
    pub arr: Option<(f64, String)>,
}

/// The accounts of `scores` whose profile says they renew after the instant evaluated and
/// within `within_days` of it, most at risk first (lowest pessimistic health at renewal, then
/// the nearest renewal, then the account id). Accounts without a profile or a renewal date are
/// left out.
pub fn renewals(model: &HealthModel, scores: &[AccountScores], within_days: f64) -> Vec<Renewal> {
    let window = model.trend_window_days.max(1e-9);
    let mut out: Vec<Renewal> = scores
        .iter()
        .filter_map(|s| {
            let profile = s.profile.as_ref()?.fields();
            let renews_at = profile.renews_at?;
            let days_left = renews_at.days_since(s.as_of);
            if !(days_left > 0.0 && days_left <= within_days) {
                return None;
            }
            let health = &s.scores.health;
            // The trend carried forward only when it is a move, not noise.
            let slope = match s.trend.direction {
                Direction::Steady => 0.0,
                _ => s.trend.delta / window,
            };
            let at_renewal = ((health.score + slope * days_left).clamp(0.0, 100.0) - health.noise).clamp(0.0, 100.0);
            let arr = profile.arr.map(|a| (a.amount, a.currency.as_str().to_owned()));
            Some(Renewal {
                account: s.account.clone(),
                renews_at,
                days_left,
                health: health.score,
                band: health.band,
                coverage: health.confidence,
                trend: s.trend.delta,
                direction: s.trend.direction,
                at_renewal,
                arr,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        a.at_renewal
            .total_cmp(&b.at_renewal)
            .then(a.days_left.total_cmp(&b.days_left))
            .then_with(|| a.account.cmp(&b.account))
    });
    out
}

//! [`TrustModel`]: every parameter of the trust score, as a serde config with documented,
//! calibrated defaults (see `docs/scoring.md` for the reasons).

use rapport_core::Severity;
use serde::{Deserialize, Serialize};

use crate::evidence::{decay_rate, half_life_nanos};
use crate::score::Bands;

/// One Beta evidence channel: prior mean, prior strength and half-life.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelParams {
    /// The prior mean m₀: what a typical sound relationship looks like, 0–1.
    pub prior_mean: f64,
    /// The prior strength n₀, in outcomes.
    pub prior_strength: f64,
    /// Evidence halves in weight every this many days.
    pub half_life_days: f64,
}

impl ChannelParams {
    /// The half-life in nanoseconds.
    #[inline]
    pub fn h_nanos(&self) -> f64 {
        half_life_nanos(self.half_life_days)
    }

    /// The decay rate: half-lives per nanosecond, the reciprocal of [`h_nanos`](Self::h_nanos).
    #[inline]
    pub fn rate(&self) -> f64 {
        decay_rate(self.half_life_days)
    }

    /// These parameters with their decay rate computed once.
    pub fn prepare(&self) -> PreparedChannel {
        PreparedChannel { params: *self, rate: self.rate() }
    }

    /// `(mean, confidence)` from decayed sums S⁺ and S⁻.
    pub fn posterior(&self, pos: f64, neg: f64) -> (f64, f64) {
        let n0 = self.prior_strength.max(0.0);
        let alpha = self.prior_mean * n0 + pos.max(0.0);
        let beta = (1.0 - self.prior_mean) * n0 + neg.max(0.0);
        let mean = if alpha + beta > 0.0 { alpha / (alpha + beta) } else { self.prior_mean };
        let data = pos.max(0.0) + neg.max(0.0);
        let confidence = if data + n0 > 0.0 { data / (data + n0) } else { 0.0 };
        (mean.clamp(0.0, 1.0), confidence.clamp(0.0, 1.0))
    }
}

/// [`ChannelParams`] with the decay rate computed once: folding an event into a channel then
/// multiplies by the rate instead of dividing by the half-life. Built by
/// [`ChannelParams::prepare`], so the two always agree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreparedChannel {
    params: ChannelParams,
    rate: f64,
}

impl PreparedChannel {
    /// The parameters.
    #[inline]
    pub fn params(&self) -> &ChannelParams {
        &self.params
    }

    /// The decay rate, [`ChannelParams::rate`].
    #[inline]
    pub fn rate(&self) -> f64 {
        self.rate
    }
}

/// SLA targets and outcome weight for one severity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityParams {
    /// Acknowledge within this many hours.
    pub acknowledge_hours: f64,
    /// Resolve within this many hours.
    pub resolve_hours: f64,
    /// Weight of each responsiveness outcome.
    pub weight: f64,
}

/// SLA parameters per severity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sla {
    /// `low`: 3 days / 14 days, weight 0.5.
    pub low: SeverityParams,
    /// `medium`: 1 day / 7 days, weight 1.
    pub medium: SeverityParams,
    /// `high`: 4 hours / 3 days, weight 2.
    pub high: SeverityParams,
    /// `critical`: 1 hour / 1 day, weight 4.
    pub critical: SeverityParams,
}

impl Sla {
    /// The parameters for `severity`.
    pub fn get(&self, severity: Severity) -> &SeverityParams {
        match severity {
            Severity::Low => &self.low,
            Severity::Medium => &self.medium,
            Severity::High => &self.high,
            Severity::Critical => &self.critical,
        }
    }
}

impl Default for Sla {
    fn default() -> Self {
        Self {
            low: SeverityParams { acknowledge_hours: 72.0, resolve_hours: 14.0 * 24.0, weight: 0.5 },
            medium: SeverityParams { acknowledge_hours: 24.0, resolve_hours: 7.0 * 24.0, weight: 1.0 },
            high: SeverityParams { acknowledge_hours: 4.0, resolve_hours: 3.0 * 24.0, weight: 2.0 },
            critical: SeverityParams { acknowledge_hours: 1.0, resolve_hours: 24.0, weight: 4.0 },
        }
    }
}

/// Every parameter of the trust score. `TrustModel::default()` is the calibrated model.
///
/// TRUST = 100 · Σ wₖ · meanₖ / Σ wₖ over reliability, candour and responsiveness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustModel {
    /// The model's id, stamped on every score.
    pub id: String,
    /// The model's version, stamped on every score.
    pub version: u32,
    /// Reliability: did we deliver what we promised, when we promised it?
    pub reliability: ChannelParams,
    /// Candour: did we warn before slipping, and disclose our mistakes?
    pub candour: ChannelParams,
    /// Responsiveness: did we acknowledge and resolve escalations within the SLA?
    pub responsiveness: ChannelParams,
    /// Weight of reliability in trust.
    pub reliability_weight: f64,
    /// Weight of candour in trust.
    pub candour_weight: f64,
    /// Weight of responsiveness in trust.
    pub responsiveness_weight: f64,
    /// The largest early-delivery bonus, as a fraction of the commitment's weight.
    pub early_bonus_max: f64,
    /// Outcome of a commitment renegotiated before its due date and delivered by the new one.
    pub renegotiated_outcome: f64,
    /// Outcome of a delivery just after the due date in force; it halves every
    /// `late_half_life_days` of lateness.
    pub late_outcome: f64,
    /// See `late_outcome`.
    pub late_half_life_days: f64,
    /// Weight of a reopening, as a fraction of the severity weight.
    pub reopen_weight: f64,
    /// SLA targets and weights per severity.
    pub sla: Sla,
    /// Band thresholds; `grey_below` applies to trust's confidence.
    pub bands: Bands,
}

impl Default for TrustModel {
    fn default() -> Self {
        Self {
            id: "rapport-trust".into(),
            version: 1,
            reliability: ChannelParams { prior_mean: 0.7, prior_strength: 2.0, half_life_days: 180.0 },
            candour: ChannelParams { prior_mean: 0.75, prior_strength: 2.0, half_life_days: 365.0 },
            responsiveness: ChannelParams { prior_mean: 0.7, prior_strength: 2.0, half_life_days: 180.0 },
            reliability_weight: 0.5,
            candour_weight: 0.25,
            responsiveness_weight: 0.25,
            early_bonus_max: 0.25,
            renegotiated_outcome: 0.6,
            late_outcome: 0.5,
            late_half_life_days: 7.0,
            reopen_weight: 0.5,
            sla: Sla::default(),
            bands: Bands { green_from: 75.0, yellow_from: 50.0, grey_below: 0.2 },
        }
    }
}

impl TrustModel {
    /// The stamp on every score: `id/version`.
    pub fn stamp(&self) -> String {
        format!("{}/{}", self.id, self.version)
    }

    /// A copy of this model prepared for folding events ([`TrustState::apply`](crate::TrustState::apply)).
    pub fn prepare(&self) -> PreparedTrust {
        PreparedTrust::new(self.clone())
    }
}

/// A [`TrustModel`] prepared for folding events: the model, and the constants derived from
/// it computed once rather than once per event. Immutable, so the two always agree; build
/// one per fold (or per projection), not per event.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedTrust {
    model: TrustModel,
    pub(crate) reliability: PreparedChannel,
    pub(crate) candour: PreparedChannel,
    pub(crate) responsiveness: PreparedChannel,
}

impl rapport_core::projection::PreparedModel for PreparedTrust {
    type Model = TrustModel;

    fn prepare(model: &TrustModel) -> Self {
        Self::new(model.clone())
    }

    fn model(&self) -> &TrustModel {
        PreparedTrust::model(self)
    }
}

impl PreparedTrust {
    /// Prepares `model`.
    pub fn new(model: TrustModel) -> Self {
        Self {
            reliability: model.reliability.prepare(),
            candour: model.candour.prepare(),
            responsiveness: model.responsiveness.prepare(),
            model,
        }
    }

    /// The model.
    #[inline]
    pub fn model(&self) -> &TrustModel {
        &self.model
    }
}

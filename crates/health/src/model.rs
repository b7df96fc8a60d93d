//! [`HealthModel`]: every parameter of the health score, as a serde config with documented,
//! calibrated defaults (see `docs/scoring.md`).

use rapport_trust::evidence::decay_rate;
use rapport_trust::{Bands, ChannelParams, PreparedChannel, PreparedTrust, TrustModel};
use serde::{Deserialize, Serialize};

/// The weight of each measure in health. Only their ratios matter. A weight left out of a
/// model file takes its default.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthWeights {
    /// Trust (0.35).
    pub trust: f64,
    /// NPS (0.15).
    pub nps: f64,
    /// CSAT (0.10).
    pub csat: f64,
    /// CES (0.05).
    pub ces: f64,
    /// Open escalation load (0.20).
    pub escalation_load: f64,
    /// Engagement (0.10).
    pub engagement: f64,
    /// Advocacy (0.05).
    pub advocacy: f64,
}

impl Default for HealthWeights {
    fn default() -> Self {
        Self { trust: 0.35, nps: 0.15, csat: 0.10, ces: 0.05, escalation_load: 0.20, engagement: 0.10, advocacy: 0.05 }
    }
}

/// Every parameter of the health score. `HealthModel::default()` is the calibrated model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthModel {
    /// The model's id, stamped on every score.
    pub id: String,
    /// The model's version, stamped on every score.
    pub version: u32,
    /// The trust model, whose score is one input.
    pub trust: TrustModel,
    /// Measure weights.
    pub weights: HealthWeights,
    /// NPS as Beta evidence on x = (y + 1)/2, where y is +1 for a promoter (9–10), 0 for a
    /// passive (7–8), −1 for a detractor (0–6). Prior mean 0.65 (y = +0.3), strength 3,
    /// half-life 180 days.
    pub nps: ChannelParams,
    /// CSAT as Beta evidence on top-2-box (4–5). Prior 0.75, strength 2, half-life 90 days.
    pub csat: ChannelParams,
    /// CES as Beta evidence on x = 1 − (answer − 1)/6 (low effort is good). Prior 0.6,
    /// strength 2, half-life 90 days.
    pub ces: ChannelParams,
    /// Load = exp(−Σ_open severity_weight · age / resolve_target / this).
    pub load_divisor: f64,
    /// Escalations seen decay with this half-life (days); load confidence = 1 − 2^(−count).
    pub load_confidence_half_life_days: f64,
    /// Touchpoints decay with this half-life (days).
    pub engagement_half_life_days: f64,
    /// Engagement with no touchpoints; engagement = 1 − exp(−(N + N₀)/2) with N₀ set so that
    /// N = 0 gives this value.
    pub engagement_prior: f64,
    /// Advocacy decays with this half-life (days); advocacy = ½ + ½(1 − exp(−N)).
    pub advocacy_half_life_days: f64,
    /// Band thresholds; `grey_below` applies to coverage.
    pub bands: Bands,
    /// Manual assessments: their share of health, validity and lapse.
    pub assessment: crate::AssessmentParams,
    /// The trend compares the score now with the score this many days earlier.
    pub trend_window_days: f64,
    /// A trend is shown only when |Δ| exceeds this many standard errors of the difference.
    pub trend_noise_z: f64,
}

impl Default for HealthModel {
    fn default() -> Self {
        Self {
            id: "rapport-health".into(),
            version: 1,
            trust: TrustModel::default(),
            weights: HealthWeights::default(),
            nps: ChannelParams { prior_mean: 0.65, prior_strength: 3.0, half_life_days: 180.0 },
            csat: ChannelParams { prior_mean: 0.75, prior_strength: 2.0, half_life_days: 90.0 },
            ces: ChannelParams { prior_mean: 0.6, prior_strength: 2.0, half_life_days: 90.0 },
            load_divisor: 4.0,
            load_confidence_half_life_days: 365.0,
            engagement_half_life_days: 30.0,
            engagement_prior: 0.4,
            advocacy_half_life_days: 365.0,
            bands: Bands { green_from: 75.0, yellow_from: 50.0, grey_below: 0.35 },
            assessment: crate::AssessmentParams::default(),
            trend_window_days: 30.0,
            trend_noise_z: 1.0,
        }
    }
}

impl HealthModel {
    /// The stamp on every health score: `id/version`.
    pub fn stamp(&self) -> String {
        format!("{}/{}", self.id, self.version)
    }

    /// A copy of this model prepared for folding events ([`HealthState::apply`](crate::HealthState::apply)).
    pub fn prepare(&self) -> PreparedHealth {
        PreparedHealth::new(self.clone())
    }
}

/// A [`HealthModel`] prepared for folding events: the model, and the constants derived from
/// it (every decay rate, trust's included) computed once rather than once per event.
/// Immutable, so the two always agree; build one per fold (or per projection), not per event.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedHealth {
    model: HealthModel,
    pub(crate) trust: PreparedTrust,
    pub(crate) nps: PreparedChannel,
    pub(crate) csat: PreparedChannel,
    pub(crate) ces: PreparedChannel,
    pub(crate) engagement_rate: f64,
    pub(crate) advocacy_rate: f64,
    pub(crate) load_confidence_rate: f64,
    stamp: std::sync::Arc<ModelStamp>,
}

impl rapport_core::projection::PreparedModel for PreparedHealth {
    type Model = HealthModel;

    fn prepare(model: &HealthModel) -> Self {
        Self::new(model.clone())
    }

    fn model(&self) -> &HealthModel {
        PreparedHealth::model(self)
    }
}

impl PreparedHealth {
    /// Prepares `model`.
    pub fn new(model: HealthModel) -> Self {
        Self {
            trust: model.trust.prepare(),
            nps: model.nps.prepare(),
            csat: model.csat.prepare(),
            ces: model.ces.prepare(),
            engagement_rate: decay_rate(model.engagement_half_life_days),
            advocacy_rate: decay_rate(model.advocacy_half_life_days),
            load_confidence_rate: decay_rate(model.load_confidence_half_life_days),
            stamp: std::sync::Arc::new(ModelStamp::of(&model)),
            model,
        }
    }

    /// The model.
    #[inline]
    pub fn model(&self) -> &HealthModel {
        &self.model
    }

    /// The model's name and fingerprint, computed once.
    #[inline]
    pub fn stamp(&self) -> &std::sync::Arc<ModelStamp> {
        &self.stamp
    }
}

/// A model's fingerprint: a hash of its whole binary form, so any change of any parameter
/// changes it (FNV-1a, frozen: it is saved in checkpoints).
pub fn model_fingerprint(model: &HealthModel) -> u64 {
    fnv1a(&postcard::to_allocvec(model).unwrap_or_default())
}

/// FNV-1a over `bytes` (frozen: fingerprints are saved in checkpoints).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A model's name and fingerprint, as every score carries them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelStamp {
    /// `id/version`.
    pub name: String,
    /// [`model_fingerprint`], as 16 hexadecimal digits.
    pub fingerprint: String,
}

impl ModelStamp {
    /// The stamp of `model`.
    pub fn of(model: &HealthModel) -> Self {
        Self { name: model.stamp(), fingerprint: format!("{:016x}", model_fingerprint(model)) }
    }
}

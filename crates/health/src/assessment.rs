//! Manual assessments (`assessment_recorded`): a person's sentiment, counted in health while
//! valid and fading fast once it lapses, never hiding the evidence (`docs/scoring.md`,
//! "Assessments").
//!
//! The assessment channel's prior is the evidence itself: its value is
//! `(n₀·h₀ + Σ nᵢ·xᵢ) / (n₀ + Σ nᵢ)`, where `h₀` is health without assessments (0–1), `xᵢ =
//! (sentimentᵢ − 1)/4` and `nᵢ` each assessment's pseudo-count: `strength` while valid, then
//! halving every `lapse_half_life_days`. Health with assessments is `(1 − W)·h₀ + W·value`, so
//! an account without assessments (or whose assessments lapsed long ago) scores exactly its
//! evidence, and a valid assessment moves health toward its sentiment by at most `W·|x − h₀|`.
//! Coverage works alike with only the valid pseudo-counts, so a lapsed assessment leaves it.

use rapport_core::{EnvelopeRef, EventId, Timestamp};
use rapport_trust::evidence::half_life_nanos;
use rapport_trust::{FactorInput, TopEvents};
use serde::{Deserialize, Serialize};

/// The parameters of assessments in health.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AssessmentParams {
    /// W: the share of health the assessment channel holds (0.10); the evidence keeps the rest.
    pub weight: f64,
    /// The pseudo-count of a valid assessment (2).
    pub strength: f64,
    /// n₀: the pseudo-count of the evidence the channel starts from (2).
    pub prior_strength: f64,
    /// How long an assessment without `valid_until` holds, in days (90).
    pub validity_days: f64,
    /// After it lapses, its pseudo-count halves every this many days (30).
    pub lapse_half_life_days: f64,
    /// An assessment disagrees with the evidence when its value and health without
    /// assessments (both 0–1) differ by more than this (0.4)...
    pub disagreement: f64,
    /// ...and both sides' coverage is at least this (0.5).
    pub disagreement_coverage: f64,
}

impl Default for AssessmentParams {
    fn default() -> Self {
        Self {
            weight: 0.10,
            strength: 2.0,
            prior_strength: 2.0,
            validity_days: 90.0,
            lapse_half_life_days: 30.0,
            disagreement: 0.4,
            disagreement_coverage: 0.5,
        }
    }
}

impl AssessmentParams {
    /// W, kept below 1 so the evidence always keeps a share.
    fn share(&self) -> f64 {
        if self.weight.is_finite() { self.weight.clamp(0.0, 0.999) } else { 0.0 }
    }

    /// The raw weight that makes the channel W of health beside evidence whose raw weights sum
    /// to `total`.
    pub(crate) fn raw_weight(&self, total: f64) -> f64 {
        let w = self.share();
        total * w / (1.0 - w)
    }
}

/// The most assessments an account keeps: the latest by time. An older one has been
/// superseded by all of these (its influence ended when the next was recorded).
pub const KEPT_MAX: usize = 16;

/// One recorded assessment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Assessed {
    at: Timestamp,
    /// When it stops being valid on its own (before a later one supersedes it).
    until: Timestamp,
    /// (sentiment − 1)/4.
    x: f64,
    id: EventId,
}

/// An account's assessments, ordered by time (then event id, so that of two at one instant
/// the same one supersedes the other in every order the log presents them): order-free, so
/// backfilled assessments land where they belong.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub(crate) struct Assessments {
    kept: Vec<Assessed>,
}

/// What the assessments say at one instant, against the evidence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Reading {
    /// The channel's input (value, weight, confidence, events; its noise is in `extra_sd`).
    pub(crate) input: FactorInput,
    /// One standard error the assessments add to health (0–1 scale, weighted): their spread
    /// around their mean, times their pull on the channel; 0 without assessments, so health's
    /// noise is the evidence's.
    pub(crate) extra_sd: f64,
    /// The valid assessments' mean value (0–1) and their share of the channel's coverage,
    /// when any is valid.
    pub(crate) valid: Option<(f64, f64)>,
}

impl Assessments {
    /// Records an `assessment_recorded` view (other events are ignored).
    pub(crate) fn apply(&mut self, p: &AssessmentParams, e: &EnvelopeRef<'_>) {
        let rapport_core::EventRef::AssessmentRecorded { sentiment, valid_until, .. } = e.event else { return };
        let default_until = e.occurred_at.add_days(p.validity_days.max(0.0));
        let a = Assessed {
            at: e.occurred_at,
            until: valid_until.unwrap_or(default_until),
            x: (f64::from(sentiment.clamp(1, 5)) - 1.0) / 4.0,
            id: e.id,
        };
        let at = self.kept.partition_point(|k| (k.at, k.id) <= (a.at, a.id));
        self.kept.insert(at, a);
        if self.kept.len() > KEPT_MAX {
            self.kept.remove(0);
        }
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.kept.capacity() * std::mem::size_of::<Assessed>()
    }

    /// Whether any assessment was recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// The channel at `at`, given health without assessments: its value `h0` and coverage
    /// `cov0` (0–1). `total` is the sum of the evidence's raw weights, so the channel's raw
    /// weight makes it `W` of the whole.
    pub(crate) fn read(&self, p: &AssessmentParams, at: Timestamp, h0: f64, cov0: f64, total: f64) -> Reading {
        let lapse = half_life_nanos(p.lapse_half_life_days.max(1e-9));
        let (mut n, mut pos, mut n_valid, mut pos_valid) = (0.0, 0.0, 0.0, 0.0);
        let mut top = TopEvents::new();
        // Kept in time order: those made by `at` are a prefix.
        let seen = &self.kept[..self.kept.partition_point(|a| a.at <= at)];
        for (i, a) in seen.iter().enumerate() {
            // A later assessment supersedes this one: its validity ends then.
            let end = match seen.get(i + 1) {
                Some(next) => a.until.min(next.at),
                None => a.until,
            };
            let ni = if at < end {
                n_valid += p.strength;
                pos_valid += p.strength * a.x;
                p.strength
            } else {
                p.strength * (-(at.unix_nanos() as f64 - end.unix_nanos() as f64) / lapse).exp2()
            };
            n += ni;
            pos += ni * a.x;
        }
        // The most recent first, while they still count for something.
        for a in seen.iter().rev() {
            if top.len() == 3 {
                break;
            }
            top.push(a.id);
        }
        let n0 = p.prior_strength.max(1e-9);
        let value = ((n0 * h0 + pos) / (n0 + n)).clamp(0.0, 1.0);
        let confidence = ((n0 * cov0 + n_valid) / (n0 + n_valid)).clamp(0.0, 1.0);
        let w = p.share();
        let extra_sd = if n > 0.0 {
            let mean = (pos / n).clamp(0.0, 1.0);
            w * (n / (n0 + n)) * (mean * (1.0 - mean) / (n + 1.0)).sqrt()
        } else {
            0.0
        };
        let weight = p.raw_weight(total);
        let valid = (n_valid > 0.0).then(|| (pos_valid / n_valid, n_valid / (n0 + n_valid)));
        let input = FactorInput { name: "assessment", value, weight, confidence, sd: 0.0, top_events: top };
        Reading { input, extra_sd, valid }
    }
}

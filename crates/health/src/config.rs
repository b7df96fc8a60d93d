//! Scoring configurations: a health model per customer segment, and a default
//! (`docs/scoring.md`, "Models per segment").
//!
//! A configuration is a JSON file a service loads (`ScoringConfig::from_file`; the CLI's
//! `--model FILE`):
//!
//! ```json
//! {"default": {"id": "acme", "version": 3},
//!  "segments": {"enterprise": {"id": "acme-enterprise", "version": 3, "weights": {"trust": 0.45, "nps": 0.15, "csat": 0.10, "ces": 0.05, "escalation_load": 0.15, "engagement": 0.05, "advocacy": 0.05}}}}
//! ```
//!
//! Each model is a [`HealthModel`] (every field optional, the calibrated default filling the
//! rest; unknown fields refused). An account is scored as of T under the model of its segment
//! as of T (its profile then), or the default when it has none or its segment has no model. Each
//! model has a name (`id/version`) and a fingerprint ([`model_fingerprint`](crate::model_fingerprint)), and every score
//! carries both ([`ModelStamp`](crate::ModelStamp), in [`AccountScores`](crate::AccountScores)).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::model::HealthModel;

/// The largest configuration file read, in bytes.
pub const CONFIG_BYTES_MAX: u64 = 1 << 20;

/// The most segment models a configuration may name.
pub const SEGMENTS_MAX: usize = 256;

/// Why a configuration was refused. Each names the file (when read from one) and the model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than [`CONFIG_BYTES_MAX`].
    #[error("{path}: {len} bytes, more than the {CONFIG_BYTES_MAX} a configuration may hold")]
    TooLarge {
        /// The file.
        path: String,
        /// Its length.
        len: u64,
    },
    /// Not a configuration: JSON syntax, an unknown field, a value of the wrong type.
    #[error("{path}: {reason}")]
    Shape {
        /// The file (`<text>` when parsed from text).
        path: String,
        /// serde_json's message, with its line and column.
        reason: String,
    },
    /// A model's parameter is out of its range.
    #[error("{path}: model {model}: {reason}")]
    Invalid {
        /// The file (`<text>` when parsed from text).
        path: String,
        /// `default`, or `segments.NAME`.
        model: String,
        /// What is wrong.
        reason: String,
    },
}

/// A health model per segment, and a default.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringConfig {
    /// The model of an account without a profile, or whose segment has no model of its own.
    #[serde(default)]
    pub default: HealthModel,
    /// The model of each segment (a profile's `segment`).
    #[serde(default)]
    pub segments: BTreeMap<String, HealthModel>,
}

impl ScoringConfig {
    /// One model for every account.
    pub fn single(model: HealthModel) -> Self {
        Self { default: model, segments: BTreeMap::new() }
    }

    /// Whether any segment has a model of its own.
    pub fn has_segments(&self) -> bool {
        !self.segments.is_empty()
    }

    /// The model of `segment` (the default for `None` or a segment without one).
    pub fn model_for(&self, segment: Option<&str>) -> &HealthModel {
        segment.and_then(|s| self.segments.get(s)).unwrap_or(&self.default)
    }

    /// The configuration's fingerprint: its default model's ([`model_fingerprint`]) when it
    /// has no segment models, else a hash of its whole binary form (segment names included),
    /// so any change of any model or segment changes it. A runner's checkpoint is saved under it.
    ///
    /// [`model_fingerprint`]: crate::model_fingerprint
    pub fn fingerprint(&self) -> u64 {
        if self.has_segments() {
            crate::model::fnv1a(&postcard::to_allocvec(self).unwrap_or_default())
        } else {
            crate::model_fingerprint(&self.default)
        }
    }

    /// Every model with its key: `default` first, then `segments.NAME` in name order.
    pub fn models(&self) -> impl Iterator<Item = (String, &HealthModel)> {
        std::iter::once(("default".to_owned(), &self.default))
            .chain(self.segments.iter().map(|(k, m)| (format!("segments.{k}"), m)))
    }

    /// Parses a configuration from JSON text and checks every model.
    ///
    /// # Errors
    /// [`ConfigError::Shape`] or [`ConfigError::Invalid`], naming `<text>`.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        Self::parse(text, "<text>")
    }

    /// Reads a configuration file (at most [`CONFIG_BYTES_MAX`]) and checks every model.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let io = |source| ConfigError::Io { path: shown.clone(), source };
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > CONFIG_BYTES_MAX {
            return Err(ConfigError::TooLarge { path: shown, len });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Self::parse(&text, &shown)
    }

    fn parse(text: &str, path: &str) -> Result<Self, ConfigError> {
        let config: Self = serde_json::from_str(text)
            .map_err(|e| ConfigError::Shape { path: path.to_owned(), reason: e.to_string() })?;
        if config.segments.len() > SEGMENTS_MAX {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                model: "segments".into(),
                reason: format!("{} segment models; at most {SEGMENTS_MAX}", config.segments.len()),
            });
        }
        for (key, model) in config.models() {
            check_model(model).map_err(|reason| ConfigError::Invalid { path: path.to_owned(), model: key, reason })?;
        }
        Ok(config)
    }
}

/// The ranges a loaded model's parameters must lie in, the trust model's included (its
/// errors start `trust.`): every weight, strength and half-life finite; weights not negative
/// and not all zero; half-lives, strengths, SLA targets and the trend window positive; means,
/// outcomes and shares in 0–1; band thresholds in order.
fn check_model(m: &HealthModel) -> Result<(), String> {
    let w = &m.weights;
    weights("weights", &[w.trust, w.nps, w.csat, w.ces, w.escalation_load, w.engagement, w.advocacy])?;
    channels(&[("nps", &m.nps), ("csat", &m.csat), ("ces", &m.ces)])?;
    positive(&[
        ("load_divisor", m.load_divisor),
        ("load_confidence_half_life_days", m.load_confidence_half_life_days),
        ("engagement_half_life_days", m.engagement_half_life_days),
        ("advocacy_half_life_days", m.advocacy_half_life_days),
        ("trend_window_days", m.trend_window_days),
        ("assessment.validity_days", m.assessment.validity_days),
        ("assessment.lapse_half_life_days", m.assessment.lapse_half_life_days),
        ("assessment.prior_strength", m.assessment.prior_strength),
        ("assessment.strength", m.assessment.strength),
    ])?;
    unit(&[
        ("engagement_prior", m.engagement_prior),
        ("assessment.weight", m.assessment.weight),
        ("assessment.disagreement", m.assessment.disagreement),
        ("assessment.disagreement_coverage", m.assessment.disagreement_coverage),
    ])?;
    bands("bands", &m.bands)?;
    check_trust(&m.trust).map_err(|e| format!("trust.{e}"))
}

fn check_trust(t: &rapport_trust::TrustModel) -> Result<(), String> {
    weights(
        "reliability_weight, candour_weight, responsiveness_weight",
        &[t.reliability_weight, t.candour_weight, t.responsiveness_weight],
    )?;
    channels(&[("reliability", &t.reliability), ("candour", &t.candour), ("responsiveness", &t.responsiveness)])?;
    let s = &t.sla;
    positive(&[
        ("late_half_life_days", t.late_half_life_days),
        ("sla.low.acknowledge_hours", s.low.acknowledge_hours),
        ("sla.low.resolve_hours", s.low.resolve_hours),
        ("sla.medium.acknowledge_hours", s.medium.acknowledge_hours),
        ("sla.medium.resolve_hours", s.medium.resolve_hours),
        ("sla.high.acknowledge_hours", s.high.acknowledge_hours),
        ("sla.high.resolve_hours", s.high.resolve_hours),
        ("sla.critical.acknowledge_hours", s.critical.acknowledge_hours),
        ("sla.critical.resolve_hours", s.critical.resolve_hours),
    ])?;
    weights("sla weights", &[s.low.weight, s.medium.weight, s.high.weight, s.critical.weight])?;
    unit(&[
        ("early_bonus_max", t.early_bonus_max),
        ("renegotiated_outcome", t.renegotiated_outcome),
        ("late_outcome", t.late_outcome),
        ("reopen_weight", t.reopen_weight),
    ])?;
    bands("bands", &t.bands)
}

/// Weights: each finite and not negative, not all zero.
fn weights(name: &str, w: &[f64]) -> Result<(), String> {
    if w.iter().any(|x| !x.is_finite() || *x < 0.0) || w.iter().sum::<f64>() <= 0.0 {
        return Err(format!("{name}: each finite and not negative, and not all zero"));
    }
    Ok(())
}

/// Beta channels' parameters, each error naming `CHANNEL.FIELD`: half-life and prior strength
/// positive, prior mean in 0–1.
fn channels(list: &[(&str, &rapport_trust::ChannelParams)]) -> Result<(), String> {
    for (name, c) in list {
        positive(&[("half_life_days", c.half_life_days), ("prior_strength", c.prior_strength)])
            .and_then(|()| unit(&[("prior_mean", c.prior_mean)]))
            .map_err(|e| format!("{name}.{e}"))?;
    }
    Ok(())
}

fn positive(values: &[(&str, f64)]) -> Result<(), String> {
    match values.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
        Some((name, v)) => Err(format!("{name}: {v} is not a positive number")),
        None => Ok(()),
    }
}

fn unit(values: &[(&str, f64)]) -> Result<(), String> {
    match values.iter().find(|(_, v)| !(0.0..=1.0).contains(v)) {
        Some((name, v)) => Err(format!("{name}: {v} is outside 0-1")),
        None => Ok(()),
    }
}

fn bands(name: &str, b: &rapport_trust::Bands) -> Result<(), String> {
    unit(&[("bands.grey_below", b.grey_below)])?;
    if !(0.0 <= b.yellow_from && b.yellow_from <= b.green_from && b.green_from <= 100.0) {
        return Err(format!(
            "{name}: need 0 <= yellow_from ({}) <= green_from ({}) <= 100",
            b.yellow_from, b.green_from
        ));
    }
    Ok(())
}

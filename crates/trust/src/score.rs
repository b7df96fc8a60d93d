//! What a score is: a value 0–100 with a confidence, a band and the factors that explain it.
//! Shared by trust and health.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::top_events::TopEvents;

/// A coarse reading of a score, for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    /// Insufficient evidence: confidence (or coverage) is too low to read the value.
    Grey,
    /// Below the yellow threshold.
    Red,
    /// Between the yellow and green thresholds.
    Yellow,
    /// At or above the green threshold.
    Green,
}

impl Band {
    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Grey => "grey",
            Self::Red => "red",
            Self::Yellow => "yellow",
            Self::Green => "green",
        }
    }
}

/// Band thresholds. By default: green from 75, yellow from 50, grey below confidence 0.3.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bands {
    /// Scores at or above this are green.
    pub green_from: f64,
    /// Scores at or above this (and below green) are yellow; below, red.
    pub yellow_from: f64,
    /// Below this confidence (trust) or coverage (health) the band is grey.
    pub grey_below: f64,
}

impl Default for Bands {
    fn default() -> Self {
        Self { green_from: 75.0, yellow_from: 50.0, grey_below: 0.3 }
    }
}

impl Bands {
    /// The band of `value` (0–100) read with `confidence` (0–1). Monotone in `value`.
    pub fn band(&self, value: f64, confidence: f64) -> Band {
        if confidence < self.grey_below {
            Band::Grey
        } else if value >= self.green_from {
            Band::Green
        } else if value >= self.yellow_from {
            Band::Yellow
        } else {
            Band::Red
        }
    }
}

/// One input of a score and what it contributed. Serialised with its interval at
/// [`INTERVAL_LEVEL`](crate::interval::INTERVAL_LEVEL) ([`interval`](Self::interval)), computed
/// then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "FactorForm", from = "FactorForm")]
pub struct Factor {
    /// Its name, such as `reliability` or `nps`.
    pub name: Cow<'static, str>,
    /// Its value, 0–1 (1 is best).
    pub value: f64,
    /// Its weight, normalised so the weights of a score sum to 1.
    pub weight: f64,
    /// Its contribution to the score in points: `100 · weight · value`.
    pub contribution: f64,
    /// How much of the value is evidence rather than prior, 0–1.
    pub confidence: f64,
    /// One standard error of the value.
    pub sd: f64,
    /// The events that moved it most, most influential first (at most three).
    pub top_events: TopEvents,
}

impl Factor {
    /// The central interval the value lies in with probability `level` (read as the Beta with
    /// the value's mean and standard error; `docs/scoring.md`, "Intervals"). Computed on
    /// demand: scoring does not pay for it.
    pub fn interval(&self, level: f64) -> [f64; 2] {
        crate::interval::beta_interval(self.value, self.sd, level)
    }
}

/// [`Factor`] as serialised: its fields and its interval at [`INTERVAL_LEVEL`](crate::interval::INTERVAL_LEVEL).
#[derive(Serialize, Deserialize)]
struct FactorForm {
    name: Cow<'static, str>,
    value: f64,
    weight: f64,
    contribution: f64,
    confidence: f64,
    #[serde(default)]
    sd: f64,
    /// Written, and ignored when read (it follows from `value` and `sd`).
    #[serde(default)]
    interval: Option<[f64; 2]>,
    top_events: TopEvents,
}

impl From<Factor> for FactorForm {
    fn from(f: Factor) -> Self {
        let interval = Some(f.interval(crate::interval::INTERVAL_LEVEL));
        let Factor { name, value, weight, contribution, confidence, sd, top_events } = f;
        Self { name, value, weight, contribution, confidence, sd, interval, top_events }
    }
}

impl From<FactorForm> for Factor {
    fn from(f: FactorForm) -> Self {
        let FactorForm { name, value, weight, contribution, confidence, sd, top_events, .. } = f;
        Self { name, value, weight, contribution, confidence, sd, top_events }
    }
}

/// A score: trust or health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// 0–100.
    pub score: f64,
    /// 0–1: the evidence-weighted share of the score (for health: coverage).
    pub confidence: f64,
    /// The band.
    pub band: Band,
    /// The factors, in model order.
    pub factors: Vec<Factor>,
    /// One standard error of the score, in points: the noise a change must exceed to mean
    /// something.
    pub noise: f64,
    /// The central interval of the score at [`INTERVAL_LEVEL`](crate::interval::INTERVAL_LEVEL),
    /// in points: `score ± z · noise` (z its normal quantile), clipped.
    pub interval: [f64; 2],
    /// Whether the interval straddles a band edge (the yellow or green threshold), so the
    /// band could as well be its neighbour: read it as tentative. Never for grey.
    pub tentative: bool,
    /// The model that computed it, as `id/version`.
    pub model: String,
}

impl Score {
    /// A score of `composed` under `bands`: its band, interval and whether the band is
    /// tentative follow from the score, confidence and noise.
    pub fn new(composed: Composed, bands: &Bands, model: String) -> Self {
        let Composed { score, confidence, noise, factors } = composed;
        let band = bands.band(score, confidence);
        let interval = crate::interval::score_interval_z(score, noise, crate::interval::Z_80);
        let tentative = band != Band::Grey
            && [bands.yellow_from, bands.green_from].iter().any(|&e| interval[0] < e && e <= interval[1]);
        Self { score, confidence, band, factors, noise, interval, tentative, model }
    }

    /// Its score, confidence and noise.
    pub fn weighed(&self) -> Weighed {
        Weighed { score: self.score, confidence: self.confidence, noise: self.noise }
    }

    /// The factor with the largest contribution shortfall or gain relative to its weight, for
    /// a one-line explanation: the factor whose value is furthest from 1 (worst), weighted.
    pub fn top_factor(&self) -> Option<&Factor> {
        self.factors.iter().max_by(|a, b| ((1.0 - a.value) * a.weight).total_cmp(&((1.0 - b.value) * b.weight)))
    }

    /// The factor named `name`.
    pub fn factor(&self, name: &str) -> Option<&Factor> {
        self.factors.iter().find(|f| f.name == name)
    }
}

/// One input of [`compose`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FactorInput {
    /// The factor's name.
    pub name: &'static str,
    /// Its value, 0–1.
    pub value: f64,
    /// Its raw weight (normalised by `compose`).
    pub weight: f64,
    /// Its confidence, 0–1.
    pub confidence: f64,
    /// One standard error of `value`, 0–0.5.
    pub sd: f64,
    /// The events that moved it most, most influential first.
    pub top_events: TopEvents,
}

/// One standard error of a Beta-like value `v` whose confidence is `conf` under a prior of
/// strength `n0`: `sqrt(v(1-v)/(α+β+1))` with `α+β = n0/(1-conf)`.
pub fn beta_sd(v: f64, conf: f64, n0: f64) -> f64 {
    let n = n0.max(1e-9) / (1.0 - conf.clamp(0.0, 1.0 - 1e-12));
    (v.clamp(0.0, 1.0) * (1.0 - v.clamp(0.0, 1.0)) / (n + 1.0)).sqrt()
}

/// What inputs weigh to: the score, its confidence and its noise (one standard error, in
/// points), without the factors that explain them. A trend needs no more of its earlier score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weighed {
    /// 0–100.
    pub score: f64,
    /// 0–1.
    pub confidence: f64,
    /// One standard error, in points.
    pub noise: f64,
}

/// What [`compose`] yields: the score, its confidence, its noise (one standard error, in
/// points) and the factors.
#[derive(Debug, Clone, PartialEq)]
pub struct Composed {
    /// 0–100.
    pub score: f64,
    /// 0–1.
    pub confidence: f64,
    /// One standard error, in points.
    pub noise: f64,
    /// The factors.
    pub factors: Vec<Factor>,
}

/// The sum of the weights, or 1 when none is positive: what each weight is divided by.
fn weight_total(inputs: &[FactorInput]) -> f64 {
    let total: f64 = inputs.iter().map(|r| r.weight).sum();
    if total > 0.0 { total } else { 1.0 }
}

/// The weighted score, confidence and noise of inputs: what [`compose`] gives, without the
/// factors. Weights are normalised, so scaling every weight by one constant changes nothing.
pub fn weigh(inputs: &[FactorInput]) -> Weighed {
    let total = weight_total(inputs);
    let mut score = 0.0;
    let mut confidence = 0.0;
    let mut variance = 0.0;
    for r in inputs {
        let weight = r.weight / total;
        score += 100.0 * weight * r.value.clamp(0.0, 1.0);
        confidence += weight * r.confidence.clamp(0.0, 1.0);
        variance += (weight * r.sd) * (weight * r.sd);
    }
    Weighed { score: score.clamp(0.0, 100.0), confidence: confidence.clamp(0.0, 1.0), noise: 100.0 * variance.sqrt() }
}

/// Builds factors and the weighted score, confidence and noise from inputs ([`weigh`]'s
/// numbers, and a factor for each input in their order).
pub fn compose(inputs: &[FactorInput]) -> Composed {
    let total = weight_total(inputs);
    let Weighed { score, confidence, noise } = weigh(inputs);
    let factors = inputs
        .iter()
        .map(|r| {
            let value = r.value.clamp(0.0, 1.0);
            let weight = r.weight / total;
            Factor {
                name: Cow::Borrowed(r.name),
                value,
                weight,
                contribution: 100.0 * weight * value,
                confidence: r.confidence.clamp(0.0, 1.0),
                sd: r.sd,
                top_events: r.top_events,
            }
        })
        .collect();
    Composed { score, confidence, noise, factors }
}

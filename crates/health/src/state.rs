//! [`HealthState`]: one account's health evidence (its trust state plus surveys, engagement,
//! advocacy, escalation history and manual assessments) and its profile, and
//! [`HealthProjection`].

use rapport_core::projection::{AccountState, Checkpoint, Folded};
use rapport_core::{EnvelopeRef, EventId, EventRef, Profile, SurveyScore, Timestamp};
use rapport_trust::evidence::{Decayed, Top3, half_life_nanos};
use rapport_trust::state::Channel;
use rapport_trust::{ChannelParams, FactorInput, Score, TopEvents, TrustState, Weighed, beta_sd, compose, weigh};
use serde::{Deserialize, Serialize};

use crate::assessment::Assessments;
use crate::model::{HealthModel, PreparedHealth};

/// A decayed count with its most influential events.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
struct Count {
    sum: Decayed,
    top: Top3,
}

impl Count {
    #[inline]
    fn add(&mut self, e: &EnvelopeRef<'_>, rate: f64) {
        self.sum.add_at_rate(e.occurred_at, 1.0, 0.0, rate);
        self.top.offer_at_rate(e.id, 1.0, e.occurred_at, rate);
    }

    fn at(&self, at: Timestamp, h_nanos: f64) -> f64 {
        self.sum.at(at, h_nanos).0
    }
}

/// One account's health evidence.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HealthState {
    trust: TrustState,
    nps: Channel,
    csat: Channel,
    ces: Channel,
    engagement: Count,
    advocacy: Count,
    escalations_seen: Count,
    assessments: Assessments,
    /// The latest profile by `occurred_at` (then event id): the profile as of the newest
    /// event applied, in its binary form (one allocation per profile, shared by every score
    /// made from this state).
    profile: Option<ProfileAt>,
}

/// A profile and when it was stated, kept in its binary form (shared: cloning one copies no
/// text): [`fields`](Self::fields) reads it in place, [`profile`](Self::profile) owns it.
/// Serialised as `at`, `id` and the owned `profile`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "ProfileAtForm", try_from = "ProfileAtForm")]
pub struct ProfileAt {
    /// Its event's `occurred_at`.
    pub at: Timestamp,
    /// Its event's id (of two profiles at one instant, the one with the greater id holds, in
    /// whatever order the log presents them).
    pub id: EventId,
    /// [`rapport_core::ProfileRef::write_encoded`]'s bytes, checked when made.
    bytes: std::sync::Arc<[u8]>,
}

impl ProfileAt {
    /// `profile`, stated at `at` by the event `id`, without its owner (personal text, which
    /// no score needs; a fold keeps profiles so too).
    ///
    /// # Errors
    /// The profile breaks its rules ([`Profile::check`]; its parent is not checked against an
    /// account, which is not at hand).
    pub fn new(at: Timestamp, id: EventId, profile: &Profile) -> Result<Self, rapport_core::profile::ProfileError> {
        profile.check("")?;
        let mut bytes = Vec::new();
        profile.lend().write_encoded_stripped(&mut bytes);
        Ok(Self { at, id, bytes: bytes.into() })
    }

    /// A profile lent by an event (checked when it was read or made): its bytes copied once,
    /// without the owner (personal text, which no score needs, so scores and checkpoints never
    /// hold it and read the same whether the store lent it or withheld it).
    fn lent(at: Timestamp, id: EventId, profile: rapport_core::ProfileRef<'_>) -> Self {
        // Room for a typical profile's form, so writing it does not grow the buffer.
        let mut bytes = Vec::with_capacity(128);
        profile.write_encoded_stripped(&mut bytes);
        Self { at, id, bytes: bytes.into() }
    }

    /// Its fields, read in place (nothing is allocated).
    pub fn fields(&self) -> rapport_core::profile::ProfileFields<'_> {
        // Checked when made: it reads; the empty answer could only come from bytes changed
        // under it, which they cannot be.
        rapport_core::profile::ProfileFields::from_encoded(&self.bytes, "").unwrap_or_default()
    }

    /// The owned profile.
    pub fn profile(&self) -> Profile {
        self.fields().to_profile()
    }
}

#[derive(Serialize, Deserialize)]
struct ProfileAtForm {
    at: Timestamp,
    id: EventId,
    profile: Profile,
}

impl From<ProfileAt> for ProfileAtForm {
    fn from(p: ProfileAt) -> Self {
        Self { at: p.at, id: p.id, profile: p.profile() }
    }
}

impl TryFrom<ProfileAtForm> for ProfileAt {
    type Error = rapport_core::profile::ProfileError;
    fn try_from(f: ProfileAtForm) -> Result<Self, Self::Error> {
        Self::new(f.at, f.id, &f.profile)
    }
}

/// Trust and health for one account at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Trust.
    pub trust: Score,
    /// Health, manual assessments included (`docs/scoring.md`, "Assessments").
    pub health: Score,
    /// Health from the evidence alone: without manual assessments.
    pub evidence: Reading,
}

/// A score's value, confidence and band, without its factors.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// 0–100.
    pub score: f64,
    /// 0–1.
    pub confidence: f64,
    /// The band.
    pub band: rapport_trust::Band,
}

fn beta_input(name: &'static str, weight: f64, c: &Channel, p: &ChannelParams, at: Timestamp) -> FactorInput {
    let (pos, neg) = c.sums.at(at, p.h_nanos());
    let (value, confidence) = p.posterior(pos, neg);
    FactorInput {
        name,
        value,
        weight,
        confidence,
        sd: beta_sd(value, confidence, p.prior_strength),
        top_events: c.top.ids(),
    }
}

impl HealthState {
    /// An account with no evidence.
    pub fn new() -> Self {
        Self::default()
    }

    /// The trust part.
    pub fn trust(&self) -> &TrustState {
        &self.trust
    }

    /// The newest `occurred_at` applied.
    pub fn horizon(&self) -> Timestamp {
        self.trust.horizon()
    }

    /// The profile as of the newest event applied: the `account_profiled` event that occurred
    /// last (of two at one instant, the one with the greater event id), whatever order they
    /// were applied in.
    /// Folded as of T, it is the profile as it was at T.
    /// Shared: a count, not a copy.
    pub fn profile(&self) -> Option<ProfileAt> {
        self.profile.clone()
    }

    /// Heap bytes held by open items, assessments and the profile.
    pub fn heap_bytes(&self) -> usize {
        self.trust.heap_bytes() + self.assessments.heap_bytes() + self.profile.as_ref().map_or(0, |p| p.bytes.len())
    }

    /// Folds one event in, with the model prepared once ([`HealthModel::prepare`]).
    #[inline]
    pub fn apply(&mut self, m: &PreparedHealth, e: &EnvelopeRef<'_>) {
        // Touchpoints are the commonest event by far and the cheapest to fold: they take a
        // short path of their own, so they do not pay for the general one's large frame.
        if let EventRef::TouchpointHeld { .. } = e.event {
            self.trust.observe(&m.trust, e.occurred_at);
            self.engagement.add(e, m.engagement_rate);
        } else {
            self.apply_general(m, e);
        }
    }

    #[inline(never)]
    fn apply_general(&mut self, m: &PreparedHealth, e: &EnvelopeRef<'_>) {
        // Surveys, touchpoints, advocacy, profiles and assessments carry no trust evidence:
        // trust only sees the time.
        match e.event {
            EventRef::SurveyAnswered { .. }
            | EventRef::TouchpointHeld { .. }
            | EventRef::AdvocacyGiven { .. }
            | EventRef::AccountProfiled { .. }
            | EventRef::AssessmentRecorded { .. } => {
                self.trust.observe(&m.trust, e.occurred_at);
            }
            _ => self.trust.apply(&m.trust, e),
        }
        match e.event {
            EventRef::SurveyAnswered { score, .. } => match score {
                SurveyScore::Nps(v) => {
                    let x = match v {
                        9..=10 => 1.0,
                        7..=8 => 0.5,
                        _ => 0.0,
                    };
                    self.nps.add(&m.nps, e.id, x, 1.0, e.occurred_at);
                }
                SurveyScore::Csat(v) => {
                    let x = if v >= 4 { 1.0 } else { 0.0 };
                    self.csat.add(&m.csat, e.id, x, 1.0, e.occurred_at);
                }
                SurveyScore::Ces(v) => {
                    let x = (1.0 - (f64::from(v) - 1.0) / 6.0).clamp(0.0, 1.0);
                    self.ces.add(&m.ces, e.id, x, 1.0, e.occurred_at);
                }
            },
            EventRef::TouchpointHeld { .. } => self.engagement.add(e, m.engagement_rate),
            EventRef::AdvocacyGiven { .. } => self.advocacy.add(e, m.advocacy_rate),
            EventRef::EscalationRaised { .. } => self.escalations_seen.add(e, m.load_confidence_rate),
            EventRef::AssessmentRecorded { .. } => self.assessments.apply(&m.model().assessment, e),
            // The latest by time (then event id) holds, whatever order they arrive in.
            EventRef::AccountProfiled { profile }
                if self.profile.as_ref().is_none_or(|p| (p.at, p.id) <= (e.occurred_at, e.id)) =>
            {
                self.profile = Some(ProfileAt::lent(e.occurred_at, e.id, profile));
            }
            _ => {}
        }
    }

    /// Trust and health at `at`. Every applied event should have `occurred_at <= at`.
    pub fn evaluate(&self, m: &HealthModel, at: Timestamp) -> Scores {
        let trust_inputs = self.trust.inputs(&m.trust, at);
        let w = self.weighed_inputs(m, at, &trust_inputs);
        let c = compose(w.inputs());
        let (e, noise) = match w.blend {
            Some(blend) => (blend.evidence, blend.noise),
            // Without assessments health is the evidence.
            None => (Weighed { score: c.score, confidence: c.confidence, noise: c.noise }, c.noise),
        };
        let health = Score::new(rapport_trust::Composed { noise, ..c }, &m.bands, m.stamp());
        let evidence = Reading { score: e.score, confidence: e.confidence, band: m.bands.band(e.score, e.confidence) };
        Scores { trust: TrustState::score(&m.trust, &trust_inputs), health, evidence }
    }

    /// Health's score, confidence and noise at `at`: [`evaluate`](Self::evaluate)'s, without
    /// building factors (what a trend needs of its earlier score).
    pub fn weigh_health(&self, m: &HealthModel, at: Timestamp) -> Weighed {
        let w = self.weighed_inputs(m, at, &self.trust.inputs(&m.trust, at));
        let weighed = weigh(w.inputs());
        match w.blend {
            Some(blend) => Weighed { noise: blend.noise, ..weighed },
            None => weighed,
        }
    }

    /// Health's inputs at `at`: the evidence's, then (for an account that has assessments)
    /// the assessment channel and, when a valid assessment disagrees strongly with the
    /// evidence, a factor of weight 0 that says so.
    fn weighed_inputs(&self, m: &HealthModel, at: Timestamp, trust_inputs: &[FactorInput; 3]) -> Inputs {
        let evidence_inputs = self.inputs(m, at, trust_inputs);
        let mut inputs = [evidence_inputs[0]; 9];
        inputs[..7].copy_from_slice(&evidence_inputs);
        if self.assessments.is_empty() {
            // Nothing to blend: health is the evidence's, and has no assessment factor.
            return Inputs { inputs, len: 7, blend: None };
        }
        let evidence = weigh(&evidence_inputs);
        let total: f64 = evidence_inputs.iter().map(|i| i.weight).sum();
        let h0 = evidence.score / 100.0;
        let r = self.assessments.read(&m.assessment, at, h0, evidence.confidence, total);
        inputs[7] = r.input;
        let mut len = 8;
        let p = &m.assessment;
        if let Some((x, coverage)) = r.valid
            && (x - h0).abs() > p.disagreement
            && coverage >= p.disagreement_coverage
            && evidence.confidence >= p.disagreement_coverage
        {
            inputs[8] = FactorInput {
                name: if x > h0 { "assessment_above_evidence" } else { "assessment_below_evidence" },
                value: 1.0 - (x - h0).abs(),
                weight: 0.0,
                confidence: coverage,
                sd: 0.0,
                top_events: r.input.top_events,
            };
            len = 9;
        }
        let noise = (evidence.noise * evidence.noise + (100.0 * r.extra_sd) * (100.0 * r.extra_sd)).sqrt();
        Inputs { inputs, len, blend: Some(Blend { evidence, noise }) }
    }

    /// The inputs health's evidence is composed of at `at`, given trust's.
    fn inputs(&self, m: &HealthModel, at: Timestamp, trust_inputs: &[FactorInput; 3]) -> [FactorInput; 7] {
        let trust = weigh(trust_inputs);
        // The trust factor's events: the first of each trust factor, then the second of each,
        // and so on, each event once (one commitment's event moves both reliability and
        // candour), up to the most a factor names.
        let mut trust_top = TopEvents::new();
        for rank in 0..TopEvents::MAX {
            for input in trust_inputs {
                if let Some(&id) = input.top_events.get(rank) {
                    trust_top.push(id);
                }
            }
        }
        let w = &m.weights;
        let mut load = 0.0;
        for (severity, since) in self.trust.open_escalations() {
            let sla = m.trust.sla.get(severity);
            let age_hours = (at.days_since(since) * 24.0).max(0.0);
            load += sla.weight * age_hours / sla.resolve_hours.max(1e-9);
        }
        let load_value = (-load / m.load_divisor.max(1e-9)).exp();
        let seen = self.escalations_seen.at(at, half_life_nanos(m.load_confidence_half_life_days));
        let load_conf = 1.0 - (-seen).exp2();

        let n_touch = self.engagement.at(at, half_life_nanos(m.engagement_half_life_days));
        let prior = m.engagement_prior.clamp(0.0, 0.999);
        let n0 = -2.0 * (1.0 - prior).ln();
        let engagement = 1.0 - (-(n_touch + n0) / 2.0).exp();
        let engagement_conf = 1.0 - (-n_touch).exp();

        let n_adv = self.advocacy.at(at, half_life_nanos(m.advocacy_half_life_days));
        let advocacy = 0.5 + 0.5 * (1.0 - (-n_adv).exp());
        let advocacy_conf = n_adv / (n_adv + 1.0);

        let simple = |name, value: f64, weight, confidence: f64, top: &Top3| FactorInput {
            name,
            value,
            weight,
            confidence,
            sd: beta_sd(value, confidence, 1.0),
            top_events: top.ids(),
        };
        [
            FactorInput {
                name: "trust",
                value: trust.score / 100.0,
                weight: w.trust,
                confidence: trust.confidence,
                sd: trust.noise / 100.0,
                top_events: trust_top,
            },
            beta_input("nps", w.nps, &self.nps, &m.nps, at),
            beta_input("csat", w.csat, &self.csat, &m.csat, at),
            beta_input("ces", w.ces, &self.ces, &m.ces, at),
            simple("escalation_load", load_value, w.escalation_load, load_conf, &self.escalations_seen.top),
            simple("engagement", engagement, w.engagement, engagement_conf, &self.engagement.top),
            simple("advocacy", advocacy, w.advocacy, advocacy_conf, &self.advocacy.top),
        ]
    }
}

/// Health's inputs: the evidence's seven, the assessment channel, maybe a disagreement flag.
struct Inputs {
    inputs: [FactorInput; 9],
    len: usize,
    /// With assessments: what they are blended with. Without, health is the evidence.
    blend: Option<Blend>,
}

/// Health from the evidence alone, and health's noise with the assessments' added.
struct Blend {
    evidence: Weighed,
    noise: f64,
}

impl Inputs {
    fn inputs(&self) -> &[FactorInput] {
        &self.inputs[..self.len]
    }
}

/// The health projection for one account: a shared, prepared model and the account's state.
/// Its output carries trust too.
pub type HealthProjection = Folded<HealthState>;

/// A saved [`HealthProjection`].
pub type HealthCheckpoint = Checkpoint<HealthModel, HealthState>;

impl AccountState for HealthState {
    type Prepared = PreparedHealth;
    type Output = Scores;

    #[inline]
    fn fold(&mut self, model: &PreparedHealth, event: &EnvelopeRef<'_>) {
        self.apply(model, event);
    }

    fn output(&self, model: &HealthModel, at: Timestamp) -> Scores {
        self.evaluate(model, at)
    }
}

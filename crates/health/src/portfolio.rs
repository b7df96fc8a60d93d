//! Scores for many accounts in one pass, trends, the at-risk ranking, and timelines.

use std::collections::HashMap;

use rapport_core::projection::AccountSlots;
use rapport_core::{AccountId, AsOf, Envelope, EnvelopeRef, EventId, Ledger, Position, ReadError, Store, Timestamp};
use rapport_trust::Weighed;
use serde::{Deserialize, Serialize};

use crate::config::ScoringConfig;
use crate::model::ModelStamp;
use crate::model::{HealthModel, PreparedHealth};
use crate::state::{HealthState, ProfileAt, Scores};

/// Which way health moved over the trend window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Up by more than the noise.
    Rising,
    /// Down by more than the noise.
    Falling,
    /// Within the noise.
    Steady,
}

/// The change in health over the trend window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// Health now minus health one window earlier, in points.
    pub delta: f64,
    /// The smallest |delta| that counts as a move: z standard errors of the difference.
    pub noise: f64,
    /// The reading.
    pub direction: Direction,
}

impl Trend {
    /// The trend of health from `then` to `now`, given the model's noise multiplier.
    pub fn between(m: &HealthModel, now: Weighed, then: Weighed) -> Self {
        let delta = now.score - then.score;
        let noise = m.trend_noise_z * (now.noise.powi(2) + then.noise.powi(2)).sqrt();
        let direction = if delta > noise {
            Direction::Rising
        } else if delta < -noise {
            Direction::Falling
        } else {
            Direction::Steady
        };
        Self { delta, noise, direction }
    }
}

/// One account's scores from one point of view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountScores {
    /// The account.
    pub account: AccountId,
    /// The instant evaluated.
    pub as_of: Timestamp,
    /// Trust and health.
    #[serde(flatten)]
    pub scores: Scores,
    /// Health's trend over the model's window.
    pub trend: Trend,
    /// The account's profile as of the instant evaluated, if it has one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub profile: Option<ProfileAt>,
    /// The model that scored it: its name and fingerprint (shared by every account it scored).
    pub model: std::sync::Arc<ModelStamp>,
}

#[derive(Debug, Default)]
struct Entry {
    state: HealthState,
    recent: Vec<Envelope>,
    /// Its model: 0 the default, `i` the `i`th of [`Portfolio::segment_models`].
    model: usize,
}

/// A fold of many accounts at once: feed it every event (in log order or any valid order) and
/// it keeps one compact state per account.
///
/// Events newer than the trend window's start are buffered per account (the window is 30 days
/// by default), so the score one window ago and now come from the same pass.
#[derive(Debug)]
pub struct Portfolio {
    /// The default model (model index 0).
    model: PreparedHealth,
    /// Each segment model some account uses (model index 1 and up).
    segment_models: Vec<PreparedHealth>,
    /// The model index of each account that does not use the default.
    assigned: HashMap<AccountId, usize>,
    as_of: AsOf,
    then: Timestamp,
    /// Each account's number: its entry's index.
    slots: AccountSlots,
    entries: Vec<Entry>,
}

impl Portfolio {
    /// An empty fold for `as_of`, with its own [prepared](HealthModel::prepare) copy of `model`.
    pub fn new(model: &HealthModel, as_of: AsOf) -> Self {
        let then = as_of.at.add_days(-m_window(model));
        let (slots, entries, assigned) = (AccountSlots::default(), Vec::new(), HashMap::new());
        Self { model: model.prepare(), segment_models: Vec::new(), assigned, as_of, then, slots, entries }
    }

    /// An empty fold for `as_of` that scores each account under its segment's model in
    /// `config`: `segments` holds each account's segment as of `as_of` ([`segments_as_of`]).
    /// The trend window is the default model's.
    pub fn with_segments(config: &ScoringConfig, as_of: AsOf, segments: &HashMap<AccountId, String>) -> Self {
        let mut p = Self::new(&config.default, as_of);
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (account, segment) in segments {
            let Some(model) = config.segments.get(segment) else { continue };
            let i = *index.entry(segment.as_str()).or_insert_with(|| {
                p.segment_models.push(model.prepare());
                p.segment_models.len()
            });
            p.assigned.insert(account.clone(), i);
        }
        p
    }

    /// Folds one event in; events `as_of` does not admit are skipped. Events before the trend
    /// window fold in place; those inside it are kept (owned) until [`finish`](Self::finish).
    pub fn apply(&mut self, e: &EnvelopeRef<'_>) {
        if !self.as_of.admits(e) {
            return;
        }
        let (slot, new) = self.slots.get_or_insert(&e.account);
        self.fold(slot, new, e);
    }

    /// [`apply`](Self::apply) for an owned event: the portfolio shares its account id.
    pub fn apply_envelope(&mut self, e: &Envelope) {
        let e_view = e.view();
        if !self.as_of.admits(&e_view) {
            return;
        }
        let (slot, new) = self.slots.get_or_insert_id(&e.account);
        self.fold(slot, new, &e_view);
    }

    #[inline]
    fn fold(&mut self, slot: usize, new: bool, e: &EnvelopeRef<'_>) {
        if new {
            let model = if self.assigned.is_empty() { 0 } else { self.model_of(slot) };
            self.entries.push(Entry { model, ..Entry::default() });
        }
        let entry = &mut self.entries[slot];
        if e.occurred_at <= self.then {
            let model = if entry.model == 0 { &self.model } else { &self.segment_models[entry.model - 1] };
            entry.state.apply(model, e);
        } else {
            entry.recent.push(e.to_envelope_in(self.slots.id(slot).clone()));
        }
    }

    #[cold]
    fn model_of(&self, slot: usize) -> usize {
        self.assigned.get(self.slots.id(slot)).copied().unwrap_or(0)
    }

    /// How many accounts have been seen.
    pub fn n_accounts(&self) -> usize {
        self.entries.len()
    }

    /// Every account's scores, sorted by account id.
    pub fn finish(self) -> Vec<AccountScores> {
        let mut out: Vec<AccountScores> = self
            .entries
            .into_iter()
            .zip(self.slots.ids())
            .map(|(mut entry, account)| {
                let prepared = if entry.model == 0 { &self.model } else { &self.segment_models[entry.model - 1] };
                let model = prepared.model();
                let then = entry.state.weigh_health(model, self.then);
                for e in &entry.recent {
                    entry.state.apply(prepared, &e.view());
                }
                let now = entry.state.evaluate(model, self.as_of.at);
                let trend = Trend::between(model, now.health.weighed(), then);
                let profile = entry.state.profile();
                let stamp = prepared.stamp().clone();
                AccountScores {
                    account: account.clone(),
                    as_of: self.as_of.at,
                    scores: now,
                    trend,
                    profile,
                    model: stamp,
                }
            })
            .collect();
        out.sort_by(|a, b| a.account.cmp(&b.account));
        out
    }
}

fn m_window(m: &HealthModel) -> f64 {
    m.trend_window_days.max(0.0)
}

/// Scores every account of `ledger` in one pass over the log ([`Ledger::scan`]: in place on the
/// file store).
///
/// # Errors
/// The first [`ReadError`] from the store.
pub async fn score_all<S: Store>(
    ledger: &Ledger<S>,
    model: &HealthModel,
    as_of: AsOf,
) -> Result<Vec<AccountScores>, ReadError> {
    let mut portfolio = Portfolio::new(model, as_of);
    ledger.scan(Position(1), |e| portfolio.apply(e)).await?;
    Ok(portfolio.finish())
}

/// Each account's segment as of `as_of`: the `segment` of its last profile admitted (by
/// `occurred_at`, then position), for the accounts whose profile states one. One pass over the
/// log, reading only profiles.
///
/// # Errors
/// The first [`ReadError`] from the store.
pub async fn segments_as_of<S: Store>(
    ledger: &Ledger<S>,
    as_of: AsOf,
) -> Result<HashMap<AccountId, String>, ReadError> {
    let mut latest: HashMap<AccountId, (Timestamp, EventId, Option<String>)> = HashMap::new();
    ledger.scan(Position(1), |e| note_segment(&mut latest, as_of, e)).await?;
    Ok(segments_of(latest))
}

/// The segments [`note_segment`] found: each account's, when its last profile states one.
fn segments_of(latest: HashMap<AccountId, (Timestamp, EventId, Option<String>)>) -> HashMap<AccountId, String> {
    latest.into_iter().filter_map(|(a, (_, _, s))| Some((a, s?))).collect()
}

fn note_segment(
    latest: &mut HashMap<AccountId, (Timestamp, EventId, Option<String>)>,
    as_of: AsOf,
    e: &EnvelopeRef<'_>,
) {
    let rapport_core::EventRef::AccountProfiled { profile } = e.event else { return };
    if !as_of.admits(e) {
        return;
    }
    let key = (e.occurred_at, e.id);
    let segment = profile.fields().segment.map(str::to_owned);
    // Profiles are rare: an owned id for each costs nothing that matters.
    let held = latest.entry(e.account.to_account_id()).or_insert((key.0, key.1, None));
    if (held.0, held.1) <= key {
        *held = (key.0, key.1, segment);
    }
}

/// The segment of one account as of `as_of`, from its events: the `segment` of its last
/// admitted profile (by `occurred_at`, then event id), if that profile states one.
pub(crate) fn segment_of(events: &[Envelope], as_of: AsOf) -> Option<&str> {
    events
        .iter()
        .filter(|e| as_of.admits(&e.view()))
        .filter_map(|e| match &e.event {
            rapport_core::Event::AccountProfiled { profile } => {
                Some(((e.occurred_at, e.id), profile.segment.as_deref()))
            }
            _ => None,
        })
        .max_by_key(|p| p.0)
        .and_then(|p| p.1)
}

/// [`score_all`] under a [`ScoringConfig`]: each account under its segment's model as of the
/// instant. With segment models this reads the log twice (first the profiles,
/// [`segments_as_of`]); without, once.
///
/// # Errors
/// The first [`ReadError`] from the store.
pub async fn score_all_with<S: Store>(
    ledger: &Ledger<S>,
    config: &ScoringConfig,
    as_of: AsOf,
) -> Result<Vec<AccountScores>, ReadError> {
    if !config.has_segments() {
        return score_all(ledger, &config.default, as_of).await;
    }
    let segments = segments_as_of(ledger, as_of).await?;
    let mut portfolio = Portfolio::with_segments(config, as_of, &segments);
    ledger.scan(Position(1), |e| portfolio.apply(e)).await?;
    Ok(portfolio.finish())
}

/// [`score_account`] under a [`ScoringConfig`]: the account under its segment's model as of
/// the instant.
///
/// # Errors
/// The first [`ReadError`] from the store.
pub async fn score_account_with<S: Store>(
    ledger: &Ledger<S>,
    config: &ScoringConfig,
    account: &AccountId,
    as_of: AsOf,
) -> Result<AccountScores, ReadError> {
    if !config.has_segments() {
        return score_account(ledger, &config.default, account, as_of).await;
    }
    let mut events = Vec::new();
    ledger.for_each_in_stream(account, |e| events.push(e.clone())).await?;
    let segments: HashMap<AccountId, String> =
        segment_of(&events, as_of).map(|s| (account.clone(), s.to_owned())).into_iter().collect();
    let model = config.model_for(None);
    let mut portfolio = Portfolio::with_segments(config, as_of, &segments);
    for e in &events {
        portfolio.apply_envelope(e);
    }
    match portfolio.finish().pop() {
        Some(scored) => Ok(scored),
        None => score_account(ledger, model, account, as_of).await,
    }
}

/// [`timeline`] under a [`ScoringConfig`]: at each instant the account is scored under the
/// model of its segment as of that instant; where that model changes, the fold starts again
/// under the new one (a score's `model` names it, so a reader sees where it changed).
pub fn timeline_with(
    config: &ScoringConfig,
    events: impl IntoIterator<Item = Envelope>,
    instants: &[Timestamp],
    known_at: Option<Timestamp>,
) -> Vec<(Timestamp, Scores)> {
    let mut events: Vec<Envelope> =
        events.into_iter().filter(|e| known_at.is_none_or(|k| e.recorded_at <= k)).collect();
    events.sort_by_key(|e| e.occurred_at);
    let mut profiles: Vec<(Timestamp, EventId, Option<String>)> = events
        .iter()
        .filter_map(|e| match &e.event {
            rapport_core::Event::AccountProfiled { profile } => Some((e.occurred_at, e.id, profile.segment.clone())),
            _ => None,
        })
        .collect();
    profiles.sort_by_key(|p| (p.0, p.1));
    let mut instants = instants.to_vec();
    instants.sort();
    let (mut seen, mut folded) = (0, 0);
    let mut current: Option<(&HealthModel, PreparedHealth, HealthState)> = None;
    let mut out = Vec::with_capacity(instants.len());
    for t in instants {
        while profiles.get(seen).is_some_and(|p| p.0 <= t) {
            seen += 1;
        }
        let segment = seen.checked_sub(1).and_then(|i| profiles[i].2.as_deref());
        let model = config.model_for(segment);
        let (m, prepared, state) = match current.take() {
            Some(c) if std::ptr::eq(c.0, model) => c,
            _ => {
                folded = 0;
                (model, model.prepare(), HealthState::new())
            }
        };
        let mut state = state;
        while let Some(e) = events.get(folded).filter(|e| e.occurred_at <= t) {
            state.apply(&prepared, &e.view());
            folded += 1;
        }
        out.push((t, state.evaluate(m, t)));
        current = Some((m, prepared, state));
    }
    out
}

/// Scores one account, reading only its stream.
///
/// # Errors
/// The first [`ReadError`] from the store.
pub async fn score_account<S: Store>(
    ledger: &Ledger<S>,
    model: &HealthModel,
    account: &AccountId,
    as_of: AsOf,
) -> Result<AccountScores, ReadError> {
    let mut portfolio = Portfolio::new(model, as_of);
    // Lent in place: the fold opens no personal text and copies no event.
    ledger.scan_stream(account, |e| portfolio.apply(e)).await?;
    let mut scored = portfolio.finish();
    Ok(scored.pop().unwrap_or_else(|| {
        // No events yet: the prior, graded grey.
        let now = HealthState::new().evaluate(model, as_of.at);
        let trend = Trend::between(model, now.health.weighed(), now.health.weighed());
        let model = std::sync::Arc::new(ModelStamp::of(model));
        AccountScores { account: account.clone(), as_of: as_of.at, scores: now, trend, profile: None, model }
    }))
}

/// Writes `scores` as the plain-text table `rapport score` prints: one line per account with
/// trust, health, band (with `?` when it is tentative: its interval straddles a band edge),
/// confidences, trend and the factor holding health back most, then the five accounts most at
/// risk ([`rank_at_risk`]).
///
/// # Errors
/// Those of `out`.
pub fn write_table(out: &mut dyn std::io::Write, scores: &[AccountScores]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<16} {:>6} {:>7} {:<7} {:>5} {:>5} {:>7} {:<8}  holding it back",
        "account", "trust", "health", "band", "conf", "cov", "trend", ""
    )?;
    for s in scores {
        let Scores { trust, health, .. } = &s.scores;
        let top = health.top_factor().map(|f| format!("{} {:.2}", f.name, f.value)).unwrap_or_default();
        let direction = match s.trend.direction {
            Direction::Rising => "rising",
            Direction::Falling => "falling",
            Direction::Steady => "steady",
        };
        writeln!(
            out,
            "{:<16} {:>6.1} {:>7.1} {:<7} {:>5.2} {:>5.2} {:>+7.1} {:<8}  {}",
            rapport_core::escape::one_line(s.account.as_str()),
            trust.score,
            health.score,
            format!("{}{}", health.band.name(), if health.tentative { "?" } else { "" }),
            trust.confidence,
            health.confidence,
            s.trend.delta,
            direction,
            top
        )?;
    }
    let risk: Vec<_> =
        rank_at_risk(scores).iter().take(5).map(|s| rapport_core::escape::one_line(s.account.as_str())).collect();
    if !risk.is_empty() {
        writeln!(out, "most at risk: {}", risk.join(", "))?;
    }
    Ok(())
}

/// The accounts at risk: every account whose health band is not grey, lowest health first,
/// then the steepest fall first.
pub fn rank_at_risk(scores: &[AccountScores]) -> Vec<&AccountScores> {
    let mut ranked: Vec<&AccountScores> =
        scores.iter().filter(|s| s.scores.health.band != rapport_trust::Band::Grey).collect();
    ranked.sort_by(|a, b| at_risk_order(a, b));
    ranked
}

/// The at-risk order: lowest health first, then the steepest fall, then the account id.
pub(crate) fn at_risk_order(a: &AccountScores, b: &AccountScores) -> std::cmp::Ordering {
    a.scores
        .health
        .score
        .total_cmp(&b.scores.health.score)
        .then(a.trend.delta.total_cmp(&b.trend.delta))
        .then_with(|| a.account.cmp(&b.account))
}

/// Scores one account at many instants in one pass over its events.
///
/// `events` are the account's events in any valid order; `instants` may be in any order (the
/// result follows their sorted order). With `known_at`, events recorded later are ignored.
pub fn timeline(
    model: &HealthModel,
    events: impl IntoIterator<Item = Envelope>,
    instants: &[Timestamp],
    known_at: Option<Timestamp>,
) -> Vec<(Timestamp, Scores)> {
    timeline_with(&ScoringConfig::single(model.clone()), events, instants, known_at)
}

//! "What changed": one account's trust and health between two instants, or under two models at
//! one instant, split into factors; each factor's change split into the part the model change
//! made, the part time made (decay, items falling overdue) and the part the events between
//! made, with the events that moved it most (`docs/scoring.md`, "Explanations").
//!
//! The split is a chain of four readings, so its parts add up to the whole change exactly
//! (up to rounding): the state as of `from` under `from`'s model at `from`; the same events
//! under `to`'s model at `from` (the **model** part); at `to` (the **time** part); with the
//! events of the window folded in (the **events** part).
//!
//! # Example
//! ```
//! use rapport_core::SurveyScore;
//! use rapport_core::testing::story::{Story, day};
//! use rapport_health::{ScoringConfig, Side, explain};
//!
//! // A promoter, then a detractor inside the window.
//! let story = Story::new("acme").survey(5.0, SurveyScore::Nps(10)).survey(40.0, SurveyScore::Nps(2));
//! let config = ScoringConfig::default();
//! let x = explain(story.account(), &story.envelopes(), Side::at(day(30.0), &config), Side::at(day(50.0), &config))?;
//! let nps = x.health.factors.iter().find(|f| f.name == "nps").unwrap();
//! assert!(nps.events < 0.0 && nps.movers[0].kind == "survey_answered");
//! let sum: f64 = x.health.factors.iter().map(|f| f.delta).sum();
//! assert!((sum - x.health.delta).abs() < 1e-9);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;
use std::sync::Arc;

use rapport_core::{AccountId, AsOf, Envelope, EventId, Ledger, ReadError, Store, Timestamp};
use rapport_trust::{Deadline, Score};
use serde::Serialize;

use crate::config::ScoringConfig;
use crate::model::{HealthModel, ModelStamp};
use crate::portfolio::segment_of;
use crate::state::{HealthState, Reading, Scores};

/// How many of the window's events (its last, in log order) are each left out in turn to find
/// the events that moved a factor most: leaving one out refolds the events after it, so the
/// cost grows with the square of this bound.
pub const MOVER_EVENTS_MAX: usize = 512;

/// How many events each factor names as having moved it most.
pub const MOVERS_PER_FACTOR: usize = 3;

/// One side of an explanation: an instant, the configuration scoring it (the account is
/// scored under the model of its segment as of that instant), and optionally what the log had
/// recorded by then (as [`AsOf::known_at`]).
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    /// The instant.
    pub at: Timestamp,
    /// The models.
    pub config: &'a ScoringConfig,
    /// If set, only events recorded at or before this instant count.
    pub known_at: Option<Timestamp>,
}

impl<'a> Side<'a> {
    /// Everything that occurred by `at`, as known now, under `config`.
    pub fn at(at: Timestamp, config: &'a ScoringConfig) -> Self {
        Self { at, config, known_at: None }
    }

    /// Only what the log had recorded by `known_at`: a start known before a backfill and an
    /// end known after it tell what the backfill changed.
    pub fn known_at(self, known_at: Timestamp) -> Self {
        Self { known_at: Some(known_at), ..self }
    }

    fn as_of(&self) -> AsOf {
        AsOf { at: self.at, known_at: self.known_at }
    }
}

/// Why an explanation could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExplainError {
    /// The start is later than the end.
    #[error("explaining account {account}: from {from} is later than to {to}")]
    FromAfterTo {
        /// The account.
        account: AccountId,
        /// The start.
        from: Timestamp,
        /// The end.
        to: Timestamp,
    },
    /// The start knows of events the end does not: its `known_at` is later than the end's
    /// (or unset while the end's is set).
    #[error("explaining account {account}: the start is known at {}, later than the end ({to})", from.map_or_else(|| "now".to_owned(), |t| t.to_string()))]
    KnownAfterEnd {
        /// The account.
        account: AccountId,
        /// The start's `known_at` (`None`: now).
        from: Option<Timestamp>,
        /// The end's.
        to: Timestamp,
    },
    /// The account's events could not be read.
    #[error("explaining account {account}: {source}")]
    Read {
        /// The account.
        account: AccountId,
        /// What the store said.
        #[source]
        source: ReadError,
    },
}

/// One account's change between two sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// The account.
    pub account: AccountId,
    /// The start.
    pub from: Timestamp,
    /// The end.
    pub to: Timestamp,
    /// Only events the log had recorded by then count at the start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_known_at: Option<Timestamp>,
    /// Only events the log had recorded by then count at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_known_at: Option<Timestamp>,
    /// The model that scored the start.
    pub model_from: Arc<ModelStamp>,
    /// The model that scored the end.
    pub model_to: Arc<ModelStamp>,
    /// Trust's change.
    pub trust: Change,
    /// Health's change.
    pub health: Change,
    /// How many events count at the end but not at the start (those that occurred in between,
    /// or were recorded in between when the sides' `known_at` differ).
    pub window_events: usize,
    /// How many of them were left out in turn to find each factor's movers: all of them, or
    /// the last [`MOVER_EVENTS_MAX`] in log order.
    pub movers_considered: usize,
    /// The deadlines that passed in between of items still open at the end (commitments
    /// fallen due, escalations past their SLA): what the time part of trust holds beyond decay.
    pub deadlines: Vec<Deadline>,
}

/// One score's change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// The reading at the start.
    pub from: Reading,
    /// The reading at the end.
    pub to: Reading,
    /// `to.score − from.score`, in points: the sum of the factors' deltas.
    pub delta: f64,
    /// The smallest |delta| that counts as a move: the end model's `trend_noise_z` standard
    /// errors of the difference (as a [`Trend`](crate::Trend) reads it).
    pub noise: f64,
    /// Rising or falling by more than the noise, else steady: whether the change means
    /// something or is within what the evidence cannot tell apart.
    pub direction: crate::Direction,
    /// Every factor present at either end, in the end's model order (then those only the
    /// start had).
    pub factors: Vec<FactorChange>,
}

/// One factor's change in contribution (points of the score), and its parts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FactorChange {
    /// The factor's name.
    pub name: Cow<'static, str>,
    /// Its contribution at the start, in points (0 when it was absent).
    pub from: f64,
    /// Its contribution at the end, in points (0 when it is absent).
    pub to: f64,
    /// `to − from`: the sum of `model`, `time` and `events`.
    pub delta: f64,
    /// What the change of model made of the start's events at the start.
    pub model: f64,
    /// What time made of them between the start and the end: decay, items falling overdue.
    pub time: f64,
    /// What the events in between made.
    pub events: f64,
    /// The window's events that moved it most (by the size of their effect), at most
    /// [`MOVERS_PER_FACTOR`].
    pub movers: Vec<Mover>,
}

/// An event and how much it moved a factor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mover {
    /// The event.
    pub event: EventId,
    /// Its type, as in its JSON form.
    pub kind: &'static str,
    /// When it occurred.
    pub occurred_at: Timestamp,
    /// The factor's contribution at the end minus what it would be without this event, in
    /// points.
    pub effect: f64,
}

/// Explains how `account` changed from `from` to `to`, reading only its stream.
///
/// # Errors
/// As [`explain`]'s, or [`ExplainError::Read`] with the store's error.
pub async fn explain_account<S: Store>(
    ledger: &Ledger<S>,
    account: &AccountId,
    from: Side<'_>,
    to: Side<'_>,
) -> Result<Explanation, ExplainError> {
    let mut events = Vec::new();
    ledger
        .for_each_in_stream(account, |e| events.push(e.clone()))
        .await
        .map_err(|source| ExplainError::Read { account: account.clone(), source })?;
    explain(account, &events, from, to)
}

/// Explains how `account` changed from `from` to `to`, given its events (in log order, as its
/// stream reads): see the [module](self).
///
/// # Errors
/// [`ExplainError::FromAfterTo`] when `from.at` is later than `to.at`;
/// [`ExplainError::KnownAfterEnd`] when the start would know of events the end does not.
pub fn explain(
    account: &AccountId,
    events: &[Envelope],
    from: Side<'_>,
    to: Side<'_>,
) -> Result<Explanation, ExplainError> {
    if from.at > to.at {
        return Err(ExplainError::FromAfterTo { account: account.clone(), from: from.at, to: to.at });
    }
    if let Some(end) = to.known_at
        && from.known_at.is_none_or(|start| start > end)
    {
        return Err(ExplainError::KnownAfterEnd { account: account.clone(), from: from.known_at, to: end });
    }
    let (as_from, as_to) = (from.as_of(), to.as_of());
    let m_from = from.config.model_for(segment_of(events, as_from));
    let m_to = to.config.model_for(segment_of(events, as_to));
    // One model at both ends (the common case) is prepared and folded once.
    let same = m_from == m_to;
    let p_from = m_from.prepare();
    let p_to = if same { p_from.clone() } else { m_to.prepare() };
    let start: Vec<&Envelope> = events.iter().filter(|e| as_from.admits(&e.view())).collect();
    let window: Vec<&Envelope> =
        events.iter().filter(|e| as_to.admits(&e.view()) && !as_from.admits(&e.view())).collect();

    let fold = |state: &mut HealthState, prepared, events: &[&Envelope]| {
        for e in events {
            state.apply(prepared, &e.view());
        }
    };
    let mut s_from = HealthState::new();
    fold(&mut s_from, &p_from, &start);
    let s_start = if same {
        s_from.clone()
    } else {
        let mut s = HealthState::new();
        fold(&mut s, &p_to, &start);
        s
    };
    let mut s_end = s_start.clone();
    fold(&mut s_end, &p_to, &window);
    let readings = [
        s_from.evaluate(m_from, from.at),
        s_start.evaluate(m_to, from.at),
        s_start.evaluate(m_to, to.at),
        s_end.evaluate(m_to, to.at),
    ];

    // Each of the window's last events left out in turn: the state before it (kept as the
    // events are folded one by one), then the events after it.
    let first_considered = window.len().saturating_sub(MOVER_EVENTS_MAX);
    let mut before = s_start.clone();
    fold(&mut before, &p_to, &window[..first_considered]);
    let mut without = Vec::with_capacity(window.len() - first_considered);
    for (i, e) in window.iter().enumerate().skip(first_considered) {
        let mut s = before.clone();
        fold(&mut s, &p_to, &window[i + 1..]);
        without.push((*e, s.evaluate(m_to, to.at)));
        before.apply(&p_to, &e.view());
    }

    let deadlines = {
        let mut d = s_end.trust().deadlines_between(&m_to.trust, from.at, to.at);
        d.sort_by_key(|d| (d.at(), deadline_event(d)));
        d
    };
    Ok(Explanation {
        account: account.clone(),
        from: from.at,
        to: to.at,
        from_known_at: from.known_at,
        to_known_at: to.known_at,
        model_from: p_from.stamp().clone(),
        model_to: p_to.stamp().clone(),
        trust: change(m_to, &readings, &without, |s| &s.trust),
        health: change(m_to, &readings, &without, |s| &s.health),
        window_events: window.len(),
        movers_considered: without.len(),
        deadlines,
    })
}

/// The event a deadline belongs to (for a stable order of deadlines at one instant).
fn deadline_event(d: &Deadline) -> EventId {
    match *d {
        Deadline::CommitmentDue { made, .. } => made,
        Deadline::AcknowledgeSla { raised, .. } => raised,
        Deadline::ResolveSla { opened, .. } => opened,
    }
}

/// A factor's contribution in `score`, or 0 when it has none.
fn contribution(score: &Score, name: &str) -> f64 {
    score.factor(name).map_or(0.0, |f| f.contribution)
}

/// One score's change over the four readings (start; model changed; time passed; end), with
/// each factor's movers found in the readings without each event.
fn change(
    m: &HealthModel,
    readings: &[Scores; 4],
    without: &[(&Envelope, Scores)],
    pick: impl Fn(&Scores) -> &Score,
) -> Change {
    let [first, modelled, aged, last] = readings.each_ref().map(&pick);
    let mut names: Vec<Cow<'static, str>> = last.factors.iter().map(|f| f.name.clone()).collect();
    for f in &first.factors {
        if !names.contains(&f.name) {
            names.push(f.name.clone());
        }
    }
    let factors = names
        .into_iter()
        .map(|name| {
            let [c0, c1, c2, c3] = [first, modelled, aged, last].map(|s| contribution(s, &name));
            let mut movers: Vec<Mover> = without
                .iter()
                .map(|(e, s)| Mover {
                    event: e.id,
                    kind: e.event.kind().tag(),
                    occurred_at: e.occurred_at,
                    effect: c3 - contribution(pick(s), &name),
                })
                .filter(|m| m.effect.abs() > 1e-9)
                .collect();
            movers.sort_by(|a, b| b.effect.abs().total_cmp(&a.effect.abs()).then(a.event.cmp(&b.event)));
            movers.truncate(MOVERS_PER_FACTOR);
            FactorChange {
                name,
                from: c0,
                to: c3,
                delta: c3 - c0,
                model: c1 - c0,
                time: c2 - c1,
                events: c3 - c2,
                movers,
            }
        })
        .collect();
    let reading = |s: &Score| Reading { score: s.score, confidence: s.confidence, band: s.band };
    let moved = crate::Trend::between(m, last.weighed(), first.weighed());
    Change {
        from: reading(first),
        to: reading(last),
        delta: last.score - first.score,
        noise: moved.noise,
        direction: moved.direction,
        factors,
    }
}

//! The projection contract: fold envelopes into state, evaluate it at an instant, and save or
//! restore that state as a serde checkpoint. Plus [`AsOf`], the bitemporal filter, and
//! [`Folded`], the one shape of a score projection: a shared prepared model and one account's
//! state, saved as a [`Checkpoint`] of the model and the state.
//!
//! Projections hold no business rules (validation ran before the append) and cannot fail on
//! valid events: `apply` returns nothing.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use crate::slots::AccountSlots;
use crate::timestamp::Timestamp;
use crate::view::EnvelopeRef;

/// A fold of events into state that can be evaluated at any instant.
///
/// Contract:
/// - `apply` accepts the events of a valid log in any order a valid log can present them:
///   any interleaving of accounts and items, each item's own lifecycle steps in order. The
///   result of [`evaluate`](Self::evaluate) does not depend on that order (within 1e-9).
/// - `evaluate(at)` treats every applied event as having occurred; callers apply only events
///   with `occurred_at <= at` (see [`AsOf::admits`]). Evaluating later than the newest applied
///   event is "no news": decay and overdue items take effect.
/// - `checkpoint` then `restore`, then applying the remaining events, gives the same result as
///   applying every event to one projection.
pub trait Projection: Sized {
    /// What evaluation yields.
    type Output;
    /// The saved state.
    type Checkpoint: Serialize + DeserializeOwned;

    /// Folds one event in, lent in place ([`Envelope::view`](crate::Envelope::view) lends an owned one).
    fn apply(&mut self, event: &EnvelopeRef<'_>);

    /// The projection's output at `at`.
    fn evaluate(&self, at: Timestamp) -> Self::Output;

    /// A snapshot of the state.
    fn checkpoint(&self) -> Self::Checkpoint;

    /// The state from a snapshot.
    fn restore(checkpoint: Self::Checkpoint) -> Self;
}

/// A scoring model prepared for folding (its constants computed once), shared by the states
/// of many accounts.
pub trait PreparedModel: std::fmt::Debug + Send + Sync {
    /// The model as configured and saved.
    type Model: Clone + std::fmt::Debug + Serialize + DeserializeOwned;

    /// Prepares `model`.
    fn prepare(model: &Self::Model) -> Self;

    /// The model it was prepared from.
    fn model(&self) -> &Self::Model;
}

/// One account's folded evidence under a prepared model: what a [`Folded`] projection holds.
pub trait AccountState: Clone + Default + std::fmt::Debug + Serialize + DeserializeOwned {
    /// The model it folds with.
    type Prepared: PreparedModel;
    /// What evaluating it yields.
    type Output;

    /// Folds one event in.
    fn fold(&mut self, model: &Self::Prepared, event: &EnvelopeRef<'_>);

    /// The output at `at`.
    fn output(&self, model: &<Self::Prepared as PreparedModel>::Model, at: Timestamp) -> Self::Output;
}

/// A score projection for one account: a shared prepared model and the account's state.
/// `rapport_trust::TrustProjection` and `rapport_health::HealthProjection` are this shape.
#[derive(Debug, Clone)]
pub struct Folded<S: AccountState> {
    model: Arc<S::Prepared>,
    state: S,
}

/// A saved [`Folded`] projection: the model and the state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint<M, S> {
    /// The model.
    pub model: M,
    /// The state.
    pub state: S,
}

impl<S: AccountState> Folded<S> {
    /// A projection with no evidence. Prepares its own copy of `model`; projections that
    /// should share one use [`with_prepared`](Self::with_prepared).
    pub fn new(model: Arc<<S::Prepared as PreparedModel>::Model>) -> Self {
        Self::with_prepared(Arc::new(S::Prepared::prepare(&model)))
    }

    /// A projection with no evidence, sharing a prepared model.
    pub fn with_prepared(model: Arc<S::Prepared>) -> Self {
        Self { model, state: S::default() }
    }

    /// The state.
    pub fn state(&self) -> &S {
        &self.state
    }
}

impl<S: AccountState> Projection for Folded<S> {
    type Output = S::Output;
    type Checkpoint = Checkpoint<<S::Prepared as PreparedModel>::Model, S>;

    fn apply(&mut self, event: &EnvelopeRef<'_>) {
        self.state.fold(&self.model, event);
    }

    fn evaluate(&self, at: Timestamp) -> S::Output {
        self.state.output(self.model.model(), at)
    }

    fn checkpoint(&self) -> Self::Checkpoint {
        Checkpoint { model: self.model.model().clone(), state: self.state.clone() }
    }

    fn restore(checkpoint: Self::Checkpoint) -> Self {
        Self { model: Arc::new(S::Prepared::prepare(&checkpoint.model)), state: checkpoint.state }
    }
}

/// A bitemporal point of view: "as of `at`, as known at `known_at`".
///
/// `as_of(T)` uses only events that occurred at or before `T`; `known_at(K)` also drops events
/// the log recorded after `K`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsOf {
    /// The instant scores are evaluated at.
    pub at: Timestamp,
    /// If set, only events recorded at or before this instant count.
    pub known_at: Option<Timestamp>,
}

impl AsOf {
    /// Everything that occurred by `at`, as known now.
    pub fn at(at: Timestamp) -> Self {
        Self { at, known_at: None }
    }

    /// Restricts to what the log had recorded by `known_at`.
    pub fn known_at(self, known_at: Timestamp) -> Self {
        Self { known_at: Some(known_at), ..self }
    }

    /// Whether `e` is visible from this point of view.
    pub fn admits(&self, e: &EnvelopeRef<'_>) -> bool {
        e.occurred_at <= self.at && self.known_at.is_none_or(|k| e.recorded_at <= k)
    }
}

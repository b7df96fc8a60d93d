//! The projection contract: fold envelopes into state, evaluate it at an instant, and save or
//! restore that state as a serde checkpoint. Plus [`AsOf`], the bitemporal filter.
//!
//! Projections hold no business rules (validation ran before the append) and cannot fail on
//! valid events: `apply` returns nothing.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::event::Envelope;
use crate::timestamp::Timestamp;

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

    /// Folds one event in.
    fn apply(&mut self, event: &Envelope);

    /// The projection's output at `at`.
    fn evaluate(&self, at: Timestamp) -> Self::Output;

    /// A snapshot of the state.
    fn checkpoint(&self) -> Self::Checkpoint;

    /// The state from a snapshot.
    fn restore(checkpoint: Self::Checkpoint) -> Self;
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
    pub fn admits(&self, e: &Envelope) -> bool {
        e.occurred_at <= self.at && self.known_at.is_none_or(|k| e.recorded_at <= k)
    }
}

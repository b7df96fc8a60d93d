//! Validation: the rules every event must pass before it joins its account's stream.
//!
//! Stateless rules ([`check_event`]) look at one event alone: ranges, limits, real instants.
//! Stateful rules ([`StreamState::check`]) look at the account's stream so far: lifecycles of
//! commitments and escalations, and that no lifecycle step goes back in time.

use crate::fast_hash::SeededHashMap;

use thiserror::Error;

use crate::event::{Event, NewEvent, TEXT_BYTES_MAX};
use crate::id::{AccountId, CommitmentKey, EscalationKey, EventId, StreamVersion};
use crate::timestamp::Timestamp;

/// A broken validation rule. Every variant names the account and the event.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// A commitment key was made twice in one account.
    #[error("account {account}, event {event}: commitment {commitment:?} was already made")]
    CommitmentAlreadyMade {
        /// The account.
        account: AccountId,
        /// The event.
        event: EventId,
        /// The commitment.
        commitment: CommitmentKey,
    },
    /// A step on a commitment that was never made.
    #[error("account {account}, event {event}: commitment {commitment:?} was never made")]
    CommitmentUnknown {
        /// The account.
        account: AccountId,
        /// The event.
        event: EventId,
        /// The commitment.
        commitment: CommitmentKey,
    },
    /// A step on a commitment that is already delivered or cancelled.
    #[error("account {account}, event {event}: commitment {commitment:?} is already {state}")]
    CommitmentClosed {
        /// The account.
        account: AccountId,
        /// The event.
        event: EventId,
        /// The commitment.
        commitment: CommitmentKey,
        /// `delivered` or `cancelled`.
        state: &'static str,
    },
    /// An escalation key was raised twice in one account.
    #[error("account {account}, event {event}: escalation {escalation:?} was already raised")]
    EscalationAlreadyRaised {
        /// The account.
        account: AccountId,
        /// The event.
        event: EventId,
        /// The escalation.
        escalation: EscalationKey,
    },
    /// A step on an escalation that was never raised.
    #[error("account {account}, event {event}: escalation {escalation:?} was never raised")]
    EscalationUnknown {
        /// The account.
        account: AccountId,
        /// The event.
        event: EventId,
        /// The escalation.
        escalation: EscalationKey,
    },
    /// Acknowledging or resolving an escalation that is resolved (not open).
    #[error("account {account}, event {event}: escalation {escalation:?} is not open")]
    EscalationNotOpen {
        /// The account.
        account: AccountId,
        /// The event.
        event: EventId,
        /// The escalation.
        escalation: EscalationKey,
    },
    /// Acknowledging an escalation a second time.
    #[error("account {account}, event {event}: escalation {escalation:?} was already acknowledged")]
    EscalationAlreadyAcknowledged {
        /// The account.
        account: AccountId,
        /// The event.
        event: EventId,
        /// The escalation.
        escalation: EscalationKey,
    },
    /// Reopening an escalation that is not resolved.
    #[error("account {account}, event {event}: escalation {escalation:?} is not resolved, so it cannot reopen")]
    EscalationNotResolved {
        /// The account.
        account: AccountId,
        /// The event.
        event: EventId,
        /// The escalation.
        escalation: EscalationKey,
    },
    /// A lifecycle step that occurs before the step it follows.
    #[error("account {account}, event {event}: {item} step at {at} occurs before its previous step at {previous}")]
    StepBeforePrevious {
        /// The account.
        account: AccountId,
        /// The event.
        event: EventId,
        /// The commitment or escalation, as `commitment "c-1"`.
        item: String,
        /// This step's time.
        at: Timestamp,
        /// The previous step's time.
        previous: Timestamp,
    },
    /// A survey answer outside its measure's range.
    #[error("account {account}, event {event}: {measure} answer {value} is outside {min}..={max}")]
    SurveyOutOfRange {
        /// The account.
        account: AccountId,
        /// The event.
        event: EventId,
        /// `nps`, `csat` or `ces`.
        measure: &'static str,
        /// The answer.
        value: u8,
        /// The lowest valid answer.
        min: u8,
        /// The highest valid answer.
        max: u8,
    },
    /// A timestamp outside the supported years 1900–2199.
    #[error("account {account}, event {event}: {field} {at:?} is outside the years 1900-2199")]
    TimestampOutOfRange {
        /// The account.
        account: AccountId,
        /// The event.
        event: EventId,
        /// `occurred_at` or `due`.
        field: &'static str,
        /// The timestamp.
        at: Timestamp,
    },
    /// A commitment weight that is not finite and positive.
    #[error("account {account}, event {event}: weight {weight} is not a finite positive number")]
    WeightInvalid {
        /// The account.
        account: AccountId,
        /// The event.
        event: EventId,
        /// The weight.
        weight: f64,
    },
    /// A free-text field longer than [`TEXT_BYTES_MAX`].
    #[error("account {account}, event {event}: {field} is {len} bytes, more than the {max} allowed")]
    TextTooLong {
        /// The account.
        account: AccountId,
        /// The event.
        event: EventId,
        /// The field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl ValidationError {
    /// The event that broke the rule.
    pub fn event(&self) -> EventId {
        match self {
            Self::CommitmentAlreadyMade { event, .. }
            | Self::CommitmentUnknown { event, .. }
            | Self::CommitmentClosed { event, .. }
            | Self::EscalationAlreadyRaised { event, .. }
            | Self::EscalationUnknown { event, .. }
            | Self::EscalationNotOpen { event, .. }
            | Self::EscalationAlreadyAcknowledged { event, .. }
            | Self::EscalationNotResolved { event, .. }
            | Self::StepBeforePrevious { event, .. }
            | Self::SurveyOutOfRange { event, .. }
            | Self::TimestampOutOfRange { event, .. }
            | Self::WeightInvalid { event, .. }
            | Self::TextTooLong { event, .. } => *event,
        }
    }

    /// The JSON field most at fault, for `FILE:LINE: field: reason` reports.
    pub fn field(&self) -> &'static str {
        match self {
            Self::CommitmentAlreadyMade { .. } | Self::CommitmentUnknown { .. } | Self::CommitmentClosed { .. } => {
                "commitment"
            }
            Self::EscalationAlreadyRaised { .. }
            | Self::EscalationUnknown { .. }
            | Self::EscalationNotOpen { .. }
            | Self::EscalationAlreadyAcknowledged { .. }
            | Self::EscalationNotResolved { .. } => "escalation",
            Self::StepBeforePrevious { .. } => "occurred_at",
            Self::SurveyOutOfRange { measure, .. } => measure,
            Self::TimestampOutOfRange { field, .. } | Self::TextTooLong { field, .. } => field,
            Self::WeightInvalid { .. } => "weight",
        }
    }
}

/// Checks the rules that need no history: ranges, limits and real instants.
///
/// # Errors
/// The first broken rule.
pub fn check_event(e: &NewEvent) -> Result<(), ValidationError> {
    let account = || e.account.clone();
    if !e.occurred_at.in_range() {
        return Err(ValidationError::TimestampOutOfRange {
            account: account(),
            event: e.id,
            field: "occurred_at",
            at: e.occurred_at,
        });
    }
    match &e.event {
        Event::CommitmentMade { due, weight, .. } => {
            if !(weight.is_finite() && *weight > 0.0) {
                return Err(ValidationError::WeightInvalid { account: account(), event: e.id, weight: *weight });
            }
            if !due.in_range() {
                return Err(ValidationError::TimestampOutOfRange {
                    account: account(),
                    event: e.id,
                    field: "due",
                    at: *due,
                });
            }
        }
        Event::CommitmentRenegotiated { due, .. } if !due.in_range() => {
            return Err(ValidationError::TimestampOutOfRange {
                account: account(),
                event: e.id,
                field: "due",
                at: *due,
            });
        }
        Event::SurveyAnswered { score, .. } if !score.in_range() => {
            let range = score.range();
            return Err(ValidationError::SurveyOutOfRange {
                account: account(),
                event: e.id,
                measure: score.field(),
                value: score.value(),
                min: *range.start(),
                max: *range.end(),
            });
        }
        _ => {}
    }
    if let Some((field, text)) = e.event.text().filter(|(_, t)| t.len() > TEXT_BYTES_MAX) {
        return Err(ValidationError::TextTooLong {
            account: account(),
            event: e.id,
            field,
            len: text.len(),
            max: TEXT_BYTES_MAX,
        });
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum CommitmentStatus {
    Open,
    Delivered,
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct CommitmentState {
    status: CommitmentStatus,
    last_step_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct EscalationState {
    open: bool,
    acknowledged: bool,
    last_step_at: Timestamp,
}

/// What one account's stream says so far, as far as validation needs it. Serde-serialisable,
/// so a store can keep a snapshot instead of replaying the stream.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StreamState {
    version: StreamVersion,
    commitments: SeededHashMap<CommitmentKey, CommitmentState>,
    escalations: SeededHashMap<EscalationKey, EscalationState>,
}

/// How to take back one [`StreamState::apply`]: the state of the item it touched, before.
#[derive(Debug, Clone)]
pub struct StreamUndo {
    version: StreamVersion,
    item: ItemUndo,
}

#[derive(Debug, Clone)]
enum ItemUndo {
    None,
    Commitment(CommitmentKey, Option<CommitmentState>),
    Escalation(EscalationKey, Option<EscalationState>),
}

impl StreamState {
    /// The version of the stream's last event; 0 when it has none.
    pub fn version(&self) -> StreamVersion {
        self.version
    }

    /// Checks `e`'s stateful rules against this stream. Does not change the stream.
    ///
    /// # Errors
    /// The broken rule.
    pub fn check(&self, e: &NewEvent) -> Result<(), ValidationError> {
        let account = || e.account.clone();
        // The item's name is formatted only for the error, not for every step checked.
        let before = |item: &dyn Fn() -> String, previous: Timestamp| -> Result<(), ValidationError> {
            if e.occurred_at < previous {
                return Err(ValidationError::StepBeforePrevious {
                    account: account(),
                    event: e.id,
                    item: item(),
                    at: e.occurred_at,
                    previous,
                });
            }
            Ok(())
        };
        match &e.event {
            Event::CommitmentMade { commitment, .. } => {
                if self.commitments.contains_key(commitment) {
                    return Err(ValidationError::CommitmentAlreadyMade {
                        account: account(),
                        event: e.id,
                        commitment: commitment.clone(),
                    });
                }
            }
            Event::CommitmentRenegotiated { commitment, .. }
            | Event::CommitmentDelivered { commitment, .. }
            | Event::CommitmentCancelled { commitment, .. } => {
                let Some(c) = self.commitments.get(commitment) else {
                    return Err(ValidationError::CommitmentUnknown {
                        account: account(),
                        event: e.id,
                        commitment: commitment.clone(),
                    });
                };
                let state = match c.status {
                    CommitmentStatus::Open => None,
                    CommitmentStatus::Delivered => Some("delivered"),
                    CommitmentStatus::Cancelled => Some("cancelled"),
                };
                if let Some(state) = state {
                    return Err(ValidationError::CommitmentClosed {
                        account: account(),
                        event: e.id,
                        commitment: commitment.clone(),
                        state,
                    });
                }
                before(&|| format!("commitment {:?}", commitment.as_str()), c.last_step_at)?;
            }
            Event::EscalationRaised { escalation, .. } => {
                if self.escalations.contains_key(escalation) {
                    return Err(ValidationError::EscalationAlreadyRaised {
                        account: account(),
                        event: e.id,
                        escalation: escalation.clone(),
                    });
                }
            }
            Event::EscalationAcknowledged { escalation }
            | Event::EscalationResolved { escalation }
            | Event::EscalationReopened { escalation } => {
                let err_key = || escalation.clone();
                let Some(s) = self.escalations.get(escalation) else {
                    return Err(ValidationError::EscalationUnknown {
                        account: account(),
                        event: e.id,
                        escalation: err_key(),
                    });
                };
                match &e.event {
                    Event::EscalationAcknowledged { .. } if !s.open => {
                        return Err(ValidationError::EscalationNotOpen {
                            account: account(),
                            event: e.id,
                            escalation: err_key(),
                        });
                    }
                    Event::EscalationAcknowledged { .. } if s.acknowledged => {
                        return Err(ValidationError::EscalationAlreadyAcknowledged {
                            account: account(),
                            event: e.id,
                            escalation: err_key(),
                        });
                    }
                    Event::EscalationResolved { .. } if !s.open => {
                        return Err(ValidationError::EscalationNotOpen {
                            account: account(),
                            event: e.id,
                            escalation: err_key(),
                        });
                    }
                    Event::EscalationReopened { .. } if s.open => {
                        return Err(ValidationError::EscalationNotResolved {
                            account: account(),
                            event: e.id,
                            escalation: err_key(),
                        });
                    }
                    _ => {}
                }
                before(&|| format!("escalation {:?}", escalation.as_str()), s.last_step_at)?;
            }
            Event::SurveyAnswered { .. }
            | Event::TouchpointHeld { .. }
            | Event::IssueDisclosed { .. }
            | Event::AdvocacyGiven { .. } => {}
        }
        Ok(())
    }

    /// Records `e`, which must have passed [`check`](Self::check), and bumps the version.
    /// Returns how to take it back.
    pub fn apply(&mut self, e: &NewEvent) -> StreamUndo {
        let version = self.version;
        self.version = self.version.next();
        let at = e.occurred_at;
        let item = match &e.event {
            Event::CommitmentMade { commitment, .. } => {
                let prev = self
                    .commitments
                    .insert(commitment.clone(), CommitmentState { status: CommitmentStatus::Open, last_step_at: at });
                ItemUndo::Commitment(commitment.clone(), prev)
            }
            Event::CommitmentRenegotiated { commitment, .. }
            | Event::CommitmentDelivered { commitment, .. }
            | Event::CommitmentCancelled { commitment, .. } => {
                let status = match &e.event {
                    Event::CommitmentDelivered { .. } => CommitmentStatus::Delivered,
                    Event::CommitmentCancelled { .. } => CommitmentStatus::Cancelled,
                    _ => CommitmentStatus::Open,
                };
                let prev = self.commitments.insert(commitment.clone(), CommitmentState { status, last_step_at: at });
                ItemUndo::Commitment(commitment.clone(), prev)
            }
            Event::EscalationRaised { escalation, .. } => {
                let prev = self
                    .escalations
                    .insert(escalation.clone(), EscalationState { open: true, acknowledged: false, last_step_at: at });
                ItemUndo::Escalation(escalation.clone(), prev)
            }
            Event::EscalationAcknowledged { escalation }
            | Event::EscalationResolved { escalation }
            | Event::EscalationReopened { escalation } => {
                let prev = self.escalations.get(escalation).copied();
                let mut s = prev.unwrap_or(EscalationState { open: true, acknowledged: false, last_step_at: at });
                match &e.event {
                    Event::EscalationAcknowledged { .. } => s.acknowledged = true,
                    Event::EscalationResolved { .. } => s.open = false,
                    _ => s.open = true,
                }
                s.last_step_at = at;
                self.escalations.insert(escalation.clone(), s);
                ItemUndo::Escalation(escalation.clone(), prev)
            }
            _ => ItemUndo::None,
        };
        StreamUndo { version, item }
    }

    /// Takes back one [`apply`](Self::apply). Undos must be taken back newest first.
    pub fn undo(&mut self, undo: StreamUndo) {
        self.version = undo.version;
        match undo.item {
            ItemUndo::None => {}
            ItemUndo::Commitment(key, Some(prev)) => {
                self.commitments.insert(key, prev);
            }
            ItemUndo::Commitment(key, None) => {
                self.commitments.remove(&key);
            }
            ItemUndo::Escalation(key, Some(prev)) => {
                self.escalations.insert(key, prev);
            }
            ItemUndo::Escalation(key, None) => {
                self.escalations.remove(&key);
            }
        }
    }

    /// Checks `e` and, when it passes, records it.
    ///
    /// # Errors
    /// The broken rule, stateless or stateful; the stream is then unchanged.
    pub fn check_and_apply(&mut self, e: &NewEvent) -> Result<StreamUndo, ValidationError> {
        check_event(e)?;
        self.check(e)?;
        Ok(self.apply(e))
    }
}

//! The stateful rules: what one account's stream says so far about its commitments and
//! escalations ([`StreamState`]), and the lifecycle checks a new event must pass against it.

use crate::event::{Event, NewEvent};
use crate::id::{CommitmentKey, EscalationKey, StreamVersion};
use crate::timestamp::Timestamp;

use super::items::{Found, ITEM_TEXT_BYTES_MAX, Items, Packed};
use super::{ValidationError, check_event};

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

impl Packed for CommitmentState {
    fn pack(self) -> (Timestamp, u8) {
        let flags = match self.status {
            CommitmentStatus::Open => 0,
            CommitmentStatus::Delivered => 1,
            CommitmentStatus::Cancelled => 2,
        };
        (self.last_step_at, flags)
    }

    fn unpack(last_step_at: Timestamp, flags: u8) -> Self {
        let status = match flags {
            1 => CommitmentStatus::Delivered,
            2 => CommitmentStatus::Cancelled,
            _ => CommitmentStatus::Open,
        };
        Self { status, last_step_at }
    }
}

impl Packed for EscalationState {
    fn pack(self) -> (Timestamp, u8) {
        (self.last_step_at, u8::from(self.open) | u8::from(self.acknowledged) << 1)
    }

    fn unpack(last_step_at: Timestamp, flags: u8) -> Self {
        Self { open: flags & 1 != 0, acknowledged: flags & 2 != 0, last_step_at }
    }
}

/// What one account's stream says so far, as far as validation needs it. Serde-serialisable,
/// so a store can keep a snapshot instead of replaying the stream.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StreamState {
    version: StreamVersion,
    commitments: Items<CommitmentKey, CommitmentState>,
    escalations: Items<EscalationKey, EscalationState>,
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
        match &e.event {
            Event::CommitmentMade { commitment, .. } => self.check_new_commitment(e, commitment),
            Event::CommitmentRenegotiated { commitment, .. }
            | Event::CommitmentDelivered { commitment, .. }
            | Event::CommitmentCancelled { commitment, .. } => self.check_commitment_step(e, commitment),
            Event::EscalationRaised { escalation, .. } => self.check_new_escalation(e, escalation),
            Event::EscalationAcknowledged { escalation }
            | Event::EscalationResolved { escalation }
            | Event::EscalationReopened { escalation } => self.check_escalation_step(e, escalation),
            Event::SurveyAnswered { .. }
            | Event::TouchpointHeld { .. }
            | Event::IssueDisclosed { .. }
            | Event::AdvocacyGiven { .. }
            | Event::AccountProfiled { .. }
            | Event::AssessmentRecorded { .. } => Ok(()),
        }
    }

    /// A commitment is made once, under a key no other commitment's stable hash takes.
    fn check_new_commitment(&self, e: &NewEvent, commitment: &CommitmentKey) -> Result<(), ValidationError> {
        let (account, event, commitment) = (e.account.clone(), e.id, commitment.clone());
        match self.commitments.find(&commitment) {
            Found::Key(_) => Err(ValidationError::CommitmentAlreadyMade { account, event, commitment }),
            Found::Collision(existing) => {
                Err(ValidationError::CommitmentKeyCollision { account, event, commitment, existing: existing.into() })
            }
            Found::None if !self.commitments.has_room(commitment.as_str().len()) => {
                Err(ValidationError::ItemsFull { account, event, kind: "commitment", max: ITEM_TEXT_BYTES_MAX })
            }
            Found::None => Ok(()),
        }
    }

    /// A later step of a commitment: it was made, is still open, and the step is not earlier
    /// than the one before.
    fn check_commitment_step(&self, e: &NewEvent, commitment: &CommitmentKey) -> Result<(), ValidationError> {
        let Some(c) = self.commitments.get(commitment) else {
            return Err(ValidationError::CommitmentUnknown {
                account: e.account.clone(),
                event: e.id,
                commitment: commitment.clone(),
            });
        };
        let closed = match c.status {
            CommitmentStatus::Open => None,
            CommitmentStatus::Delivered => Some("delivered"),
            CommitmentStatus::Cancelled => Some("cancelled"),
        };
        if let Some(state) = closed {
            return Err(ValidationError::CommitmentClosed {
                account: e.account.clone(),
                event: e.id,
                commitment: commitment.clone(),
                state,
            });
        }
        not_before(e, &|| format!("commitment {:?}", commitment.as_str()), c.last_step_at)
    }

    /// An escalation is raised once, under a key no other escalation's stable hash takes.
    fn check_new_escalation(&self, e: &NewEvent, escalation: &EscalationKey) -> Result<(), ValidationError> {
        let (account, event, escalation) = (e.account.clone(), e.id, escalation.clone());
        match self.escalations.find(&escalation) {
            Found::Key(_) => Err(ValidationError::EscalationAlreadyRaised { account, event, escalation }),
            Found::Collision(existing) => {
                Err(ValidationError::EscalationKeyCollision { account, event, escalation, existing: existing.into() })
            }
            Found::None if !self.escalations.has_room(escalation.as_str().len()) => {
                Err(ValidationError::ItemsFull { account, event, kind: "escalation", max: ITEM_TEXT_BYTES_MAX })
            }
            Found::None => Ok(()),
        }
    }

    /// A later step of an escalation: it was raised; acknowledging needs it open and not yet
    /// acknowledged, resolving needs it open, reopening needs it resolved; and the step is not
    /// earlier than the one before.
    fn check_escalation_step(&self, e: &NewEvent, escalation: &EscalationKey) -> Result<(), ValidationError> {
        let (account, event, key) = (|| e.account.clone(), e.id, || escalation.clone());
        let Some(s) = self.escalations.get(escalation) else {
            return Err(ValidationError::EscalationUnknown { account: account(), event, escalation: key() });
        };
        let refused = match &e.event {
            Event::EscalationAcknowledged { .. } if !s.open => {
                Some(ValidationError::EscalationNotOpen { account: account(), event, escalation: key() })
            }
            Event::EscalationAcknowledged { .. } if s.acknowledged => {
                Some(ValidationError::EscalationAlreadyAcknowledged { account: account(), event, escalation: key() })
            }
            Event::EscalationResolved { .. } if !s.open => {
                Some(ValidationError::EscalationNotOpen { account: account(), event, escalation: key() })
            }
            Event::EscalationReopened { .. } if s.open => {
                Some(ValidationError::EscalationNotResolved { account: account(), event, escalation: key() })
            }
            _ => None,
        };
        match refused {
            Some(err) => Err(err),
            None => not_before(e, &|| format!("escalation {:?}", escalation.as_str()), s.last_step_at),
        }
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
                    .insert(commitment, CommitmentState { status: CommitmentStatus::Open, last_step_at: at });
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
                let prev = self.commitments.insert(commitment, CommitmentState { status, last_step_at: at });
                ItemUndo::Commitment(commitment.clone(), prev)
            }
            Event::EscalationRaised { escalation, .. } => {
                let prev = self
                    .escalations
                    .insert(escalation, EscalationState { open: true, acknowledged: false, last_step_at: at });
                ItemUndo::Escalation(escalation.clone(), prev)
            }
            Event::EscalationAcknowledged { escalation }
            | Event::EscalationResolved { escalation }
            | Event::EscalationReopened { escalation } => {
                let prev = self.escalations.get(escalation);
                let mut s = prev.unwrap_or(EscalationState { open: true, acknowledged: false, last_step_at: at });
                match &e.event {
                    Event::EscalationAcknowledged { .. } => s.acknowledged = true,
                    Event::EscalationResolved { .. } => s.open = false,
                    _ => s.open = true,
                }
                s.last_step_at = at;
                self.escalations.insert(escalation, s);
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
                self.commitments.insert(&key, prev);
            }
            ItemUndo::Commitment(key, None) => {
                self.commitments.remove(&key);
            }
            ItemUndo::Escalation(key, Some(prev)) => {
                self.escalations.insert(&key, prev);
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

/// A lifecycle step may not go back in time: `e` must not occur before the item's `previous`
/// step. The item's name is formatted only for the error, not for every step checked.
fn not_before(e: &NewEvent, item: &dyn Fn() -> String, previous: Timestamp) -> Result<(), ValidationError> {
    if e.occurred_at < previous {
        return Err(ValidationError::StepBeforePrevious {
            account: e.account.clone(),
            event: e.id,
            item: item(),
            at: e.occurred_at,
            previous,
        });
    }
    Ok(())
}

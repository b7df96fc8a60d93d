//! Validation: the rules every event must pass before it joins its account's stream.
//!
//! Stateless rules ([`check_event`]) look at one event alone: ranges, limits, real instants.
//! Stateful rules ([`StreamState::check`]) look at the account's stream so far: lifecycles of
//! commitments and escalations, and that no lifecycle step goes back in time.

use thiserror::Error;

use crate::event::{Event, NewEvent, TEXT_BYTES_MAX};
use crate::id::{AccountId, CommitmentKey, EscalationKey, EventId};
use crate::timestamp::Timestamp;

mod items;
mod stream;

pub use items::ITEM_TEXT_BYTES_MAX;
pub use stream::{StreamState, StreamUndo};

/// A broken validation rule. Every variant names the account and the event.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// A commitment key was made twice in one account.
    #[error("account {account}, event {event}: commitment {:?} was already made", .commitment.as_str())]
    CommitmentAlreadyMade {
        /// The account.
        account: AccountId,
        /// The event.
        event: EventId,
        /// The commitment.
        commitment: CommitmentKey,
    },
    /// A commitment key whose [`stable_hash`](crate::id::stable_hash) equals that of another
    /// commitment key already made in the account. Projections tell an account's items apart
    /// by that 64-bit hash, so one of the two must be renamed. Two honest keys collide with
    /// odds of about one in 2^64 per pair; keys written to collide are refused here.
    #[error(
        "account {account}, event {event}: commitment {:?} has the same 64-bit key hash as commitment {existing:?}, \
         made earlier in this account; use another key",
        .commitment.as_str()
    )]
    CommitmentKeyCollision {
        /// The account.
        account: AccountId,
        /// The event.
        event: EventId,
        /// The commitment refused.
        commitment: CommitmentKey,
        /// The key of the commitment already made with the same hash (a plain string, which
        /// keeps every append error small).
        existing: Box<str>,
    },
    /// A step on a commitment that was never made.
    #[error("account {account}, event {event}: commitment {:?} was never made", .commitment.as_str())]
    CommitmentUnknown {
        /// The account.
        account: AccountId,
        /// The event.
        event: EventId,
        /// The commitment.
        commitment: CommitmentKey,
    },
    /// A step on a commitment that is already delivered or cancelled.
    #[error("account {account}, event {event}: commitment {:?} is already {state}", .commitment.as_str())]
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
    #[error("account {account}, event {event}: escalation {:?} was already raised", .escalation.as_str())]
    EscalationAlreadyRaised {
        /// The account.
        account: AccountId,
        /// The event.
        event: EventId,
        /// The escalation.
        escalation: EscalationKey,
    },
    /// An escalation key whose [`stable_hash`](crate::id::stable_hash) equals that of another
    /// escalation key already raised in the account (see
    /// [`CommitmentKeyCollision`](Self::CommitmentKeyCollision)).
    #[error(
        "account {account}, event {event}: escalation {:?} has the same 64-bit key hash as escalation {existing:?}, \
         raised earlier in this account; use another key",
        .escalation.as_str()
    )]
    EscalationKeyCollision {
        /// The account.
        account: AccountId,
        /// The event.
        event: EventId,
        /// The escalation refused.
        escalation: EscalationKey,
        /// The key of the escalation already raised with the same hash.
        existing: Box<str>,
    },
    /// A step on an escalation that was never raised.
    #[error("account {account}, event {event}: escalation {:?} was never raised", .escalation.as_str())]
    EscalationUnknown {
        /// The account.
        account: AccountId,
        /// The event.
        event: EventId,
        /// The escalation.
        escalation: EscalationKey,
    },
    /// Acknowledging or resolving an escalation that is resolved (not open).
    #[error("account {account}, event {event}: escalation {:?} is not open", .escalation.as_str())]
    EscalationNotOpen {
        /// The account.
        account: AccountId,
        /// The event.
        event: EventId,
        /// The escalation.
        escalation: EscalationKey,
    },
    /// Acknowledging an escalation a second time.
    #[error("account {account}, event {event}: escalation {:?} was already acknowledged", .escalation.as_str())]
    EscalationAlreadyAcknowledged {
        /// The account.
        account: AccountId,
        /// The event.
        event: EventId,
        /// The escalation.
        escalation: EscalationKey,
    },
    /// Reopening an escalation that is not resolved.
    #[error("account {account}, event {event}: escalation {:?} is not resolved, so it cannot reopen", .escalation.as_str())]
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
    #[error("account {account}, event {event}: {field} {at} is outside the years 1900-2199")]
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
    /// A field of a profile or an assessment that breaks its rules
    /// ([`ProfileFields::check`](crate::profile::ProfileFields::check); a sentiment outside
    /// 1-5; a `valid_until` not after `occurred_at`).
    #[error("account {account}, event {event}: {field}: {reason}")]
    FieldInvalid {
        /// The account.
        account: AccountId,
        /// The event.
        event: EventId,
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A commitment weight above [`WEIGHT_MAX`] (an admission rule, see [`Admission`]).
    #[error("account {account}, event {event}: weight {weight:e} is larger than the {max:e} allowed")]
    WeightTooLarge {
        /// The account.
        account: AccountId,
        /// The event.
        event: EventId,
        /// The weight.
        weight: f64,
        /// The limit.
        max: f64,
    },
    /// A free-text field holding a NUL character (an admission rule, see [`Admission`]).
    #[error("account {account}, event {event}: {field} holds a NUL character at byte {at}")]
    TextHoldsNul {
        /// The account.
        account: AccountId,
        /// The event.
        event: EventId,
        /// The field.
        field: &'static str,
        /// The byte offset of the first NUL.
        at: usize,
    },
    /// An event dated later than the moment it is recorded plus the allowed clock skew (an
    /// admission rule, see [`Admission`]): most often a typo in the year.
    #[error(
        "account {account}, event {event}: occurred_at {occurred_at} is in the future: later than {limit} \
         (recorded at {recorded_at} plus {skew_seconds} s of allowed clock skew)"
    )]
    OccursInTheFuture {
        /// The account.
        account: AccountId,
        /// The event.
        event: EventId,
        /// When the event says it occurred.
        occurred_at: Timestamp,
        /// When the log records it.
        recorded_at: Timestamp,
        /// The latest `occurred_at` allowed.
        limit: Timestamp,
        /// The allowed skew, in seconds.
        skew_seconds: u64,
    },
    /// A new commitment or escalation whose key would take the keys of the account's items of
    /// that kind past [`ITEM_TEXT_BYTES_MAX`] bytes of text (every key an account ever used is
    /// kept, to refuse its reuse).
    #[error(
        "account {account}, event {event}: the account's {kind} keys already hold close to {max} bytes of text, \
         the most one account may; record further {kind}s under another account"
    )]
    ItemsFull {
        /// The account.
        account: AccountId,
        /// The event.
        event: EventId,
        /// `commitment` or `escalation`.
        kind: &'static str,
        /// The limit, in bytes of key text.
        max: usize,
    },
}

impl ValidationError {
    /// The event that broke the rule.
    pub fn event(&self) -> EventId {
        match self {
            Self::CommitmentAlreadyMade { event, .. }
            | Self::CommitmentKeyCollision { event, .. }
            | Self::EscalationKeyCollision { event, .. }
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
            | Self::TextTooLong { event, .. }
            | Self::FieldInvalid { event, .. }
            | Self::WeightTooLarge { event, .. }
            | Self::TextHoldsNul { event, .. }
            | Self::OccursInTheFuture { event, .. }
            | Self::ItemsFull { event, .. } => *event,
        }
    }

    /// The JSON field most at fault, for `FILE:LINE: field: reason` reports.
    pub fn field(&self) -> &'static str {
        match self {
            Self::CommitmentAlreadyMade { .. }
            | Self::CommitmentKeyCollision { .. }
            | Self::CommitmentUnknown { .. }
            | Self::CommitmentClosed { .. } => "commitment",
            Self::EscalationAlreadyRaised { .. }
            | Self::EscalationKeyCollision { .. }
            | Self::EscalationUnknown { .. }
            | Self::EscalationNotOpen { .. }
            | Self::EscalationAlreadyAcknowledged { .. }
            | Self::EscalationNotResolved { .. } => "escalation",
            Self::StepBeforePrevious { .. } => "occurred_at",
            Self::SurveyOutOfRange { measure, .. } => measure,
            Self::TimestampOutOfRange { field, .. }
            | Self::TextTooLong { field, .. }
            | Self::FieldInvalid { field, .. }
            | Self::TextHoldsNul { field, .. } => field,
            Self::WeightInvalid { .. } | Self::WeightTooLarge { .. } => "weight",
            Self::OccursInTheFuture { .. } => "occurred_at",
            Self::ItemsFull { kind, .. } => kind,
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
            if !weight_is_valid(*weight) {
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
        Event::AccountProfiled { profile } => {
            if let Err(err) = profile.check_stored(e.account.as_str()) {
                return Err(ValidationError::FieldInvalid {
                    account: account(),
                    event: e.id,
                    field: err.field,
                    reason: err.reason,
                });
            }
        }
        Event::AssessmentRecorded { sentiment, valid_until, .. } => {
            let field = |field, reason: String| ValidationError::FieldInvalid {
                account: account(),
                event: e.id,
                field,
                reason,
            };
            if !crate::event::SENTIMENT_RANGE.contains(sentiment) {
                return Err(field("sentiment", format!("{sentiment} is outside 1..=5")));
            }
            if let Some(until) = valid_until {
                if !until.in_range() {
                    return Err(ValidationError::TimestampOutOfRange {
                        account: account(),
                        event: e.id,
                        field: "valid_until",
                        at: *until,
                    });
                }
                if *until <= e.occurred_at {
                    return Err(field("valid_until", format!("{until} is not after occurred_at {}", e.occurred_at)));
                }
            }
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

/// Whether `weight` is one a commitment may carry at all: finite and positive (a rule since
/// the first build; the record decoders hold stored events to it too).
#[inline]
pub fn weight_is_valid(weight: f64) -> bool {
    weight.is_finite() && weight > 0.0
}

/// The largest commitment weight a new event may carry. Below it no sum of evidence can
/// reach the end of `f64`'s range, so no score turns infinite or `NaN` (the argument is in
/// `docs/event-format.md`, "Admission rules"). Projections clamp the weights of events logged
/// before the bound existed.
pub const WEIGHT_MAX: f64 = 1_000_000.0;

/// How much later than its `recorded_at` a new event may say it occurred, by default: room
/// for clock skew between the systems that report events and the store, not for planning.
pub const FUTURE_SKEW_DEFAULT: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// The rules a **new** event must pass when it joins the log, beyond [`check_event`]: limits
/// that were added after logs already held events breaking them, so events already logged are
/// not judged by them again (a log written under the old rules must keep opening). Stores
/// apply them in [`LogState::prepare`](crate::backend::LogState::prepare); an importer in
/// [`LogState::admit`](crate::backend::LogState::admit).
///
/// - a weight is at most [`WEIGHT_MAX`];
/// - free text holds no NUL character (the file store relies on this: a record never holds a
///   long run of zero bytes, so zeros in a damaged tail mark a torn write, never data);
/// - `occurred_at` is at most `future_skew` later than `recorded_at`;
/// - a profile states at least one field (a logged one may state none once its owner, its
///   only field, is erased: `crate::personal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// The `recorded_at` the log will stamp on the events (an estimate no earlier than the
    /// real one is fine: it only loosens the future check).
    pub recorded_at: Timestamp,
    /// How much later than `recorded_at` an event may have occurred.
    pub future_skew: std::time::Duration,
}

impl Admission {
    /// The rules for events recorded at `recorded_at`, with the default skew.
    pub fn at(recorded_at: Timestamp) -> Self {
        Self { recorded_at, future_skew: FUTURE_SKEW_DEFAULT }
    }

    /// The same rules with another allowed skew.
    pub fn with_future_skew(self, future_skew: std::time::Duration) -> Self {
        Self { future_skew, ..self }
    }

    /// The latest `occurred_at` allowed.
    pub fn latest_occurred_at(&self) -> Timestamp {
        let skew = i64::try_from(self.future_skew.as_nanos()).unwrap_or(i64::MAX);
        Timestamp::from_unix_nanos(self.recorded_at.unix_nanos().saturating_add(skew))
    }

    /// Checks `e` against these rules.
    ///
    /// # Errors
    /// The first broken rule.
    pub fn check(&self, e: &NewEvent) -> Result<(), ValidationError> {
        let limit = self.latest_occurred_at();
        if e.occurred_at > limit {
            return Err(ValidationError::OccursInTheFuture {
                account: e.account.clone(),
                event: e.id,
                occurred_at: e.occurred_at,
                recorded_at: self.recorded_at,
                limit,
                skew_seconds: self.future_skew.as_secs(),
            });
        }
        if let Event::CommitmentMade { weight, .. } = &e.event
            && *weight > WEIGHT_MAX
        {
            return Err(ValidationError::WeightTooLarge {
                account: e.account.clone(),
                event: e.id,
                weight: *weight,
                max: WEIGHT_MAX,
            });
        }
        if let Some((field, text)) = e.event.text()
            && let Some(at) = memchr_nul(text.as_bytes())
        {
            return Err(ValidationError::TextHoldsNul { account: e.account.clone(), event: e.id, field, at });
        }
        if let Event::AccountProfiled { profile } = &e.event
            && profile.states_nothing()
        {
            return Err(ValidationError::FieldInvalid {
                account: e.account.clone(),
                event: e.id,
                field: "segment",
                reason: "a profile states at least one field".into(),
            });
        }
        Ok(())
    }
}

fn memchr_nul(bytes: &[u8]) -> Option<usize> {
    // `contains` scans a word at a time; the position is wanted only for the error.
    if !bytes.contains(&0) {
        return None;
    }
    bytes.iter().position(|&b| b == 0)
}

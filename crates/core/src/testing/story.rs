//! A small builder for hand-written account histories ("stories"), so projection tests read as
//! given/then: `Story::new("acme").commit("c-1", 0.0, 30.0).deliver("c-1", 25.0, true)`.
//!
//! Times are days (fractional allowed) after the story's start, 2024-01-01T00:00:00Z.

use crate::event::{AdvocacyKind, Channel, Envelope, Event, NewEvent, Severity, SurveyScore};
use crate::id::{AccountId, CommitmentKey, EscalationKey, EventId, SurveyKey};
use crate::timestamp::{NANOS_PER_DAY, Timestamp};

/// The instant stories start at: 2024-01-01T00:00:00Z.
pub const START: Timestamp = Timestamp::from_unix_seconds(1_704_067_200);

/// The instant `days` after [`START`].
pub fn day(days: f64) -> Timestamp {
    START.add_nanos((days * NANOS_PER_DAY as f64) as i64)
}

/// A hand-written history of one account.
#[derive(Debug, Clone)]
pub struct Story {
    account: AccountId,
    events: Vec<NewEvent>,
}

fn must<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("story: {e}"))
}

impl Story {
    /// An empty story for `account`.
    pub fn new(account: &str) -> Self {
        Self { account: must(AccountId::new(account)), events: Vec::new() }
    }

    /// The account.
    pub fn account(&self) -> &AccountId {
        &self.account
    }

    /// Adds an event at `days`, with an id derived from the account and its index.
    pub fn at(mut self, days: f64, event: Event) -> Self {
        let mut e = NewEvent {
            id: EventId::from_bytes([0; 16]),
            account: self.account.clone(),
            occurred_at: day(days),
            event,
            meta: Default::default(),
        };
        let mut seed = e.canonical_content();
        seed.extend_from_slice(format!("#{}", self.events.len()).as_bytes());
        e.id = EventId::derive(&seed);
        self.events.push(e);
        self
    }

    /// A commitment made at `made` and due at `due`, weight 1.
    pub fn commit(self, key: &str, made: f64, due: f64) -> Self {
        self.commit_weighted(key, made, due, 1.0)
    }

    /// A commitment with a weight.
    pub fn commit_weighted(self, key: &str, made: f64, due: f64, weight: f64) -> Self {
        let commitment = must(CommitmentKey::new(key));
        self.at(made, Event::CommitmentMade { commitment, title: format!("deliver {key}"), due: day(due), weight })
    }

    /// The commitment delivered at `at`.
    pub fn deliver(self, key: &str, at: f64, accepted: bool) -> Self {
        self.at(at, Event::CommitmentDelivered { commitment: must(CommitmentKey::new(key)), accepted })
    }

    /// The commitment renegotiated at `at` to `due`.
    pub fn renegotiate(self, key: &str, at: f64, due: f64) -> Self {
        self.at(
            at,
            Event::CommitmentRenegotiated { commitment: must(CommitmentKey::new(key)), due: day(due), reason: None },
        )
    }

    /// The commitment cancelled at `at`.
    pub fn cancel(self, key: &str, at: f64) -> Self {
        self.at(at, Event::CommitmentCancelled { commitment: must(CommitmentKey::new(key)), reason: None })
    }

    /// An escalation raised at `at`.
    pub fn escalate(self, key: &str, at: f64, severity: Severity) -> Self {
        self.at(at, Event::EscalationRaised { escalation: must(EscalationKey::new(key)), severity, summary: None })
    }

    /// The escalation acknowledged at `at`.
    pub fn ack(self, key: &str, at: f64) -> Self {
        self.at(at, Event::EscalationAcknowledged { escalation: must(EscalationKey::new(key)) })
    }

    /// The escalation resolved at `at`.
    pub fn resolve(self, key: &str, at: f64) -> Self {
        self.at(at, Event::EscalationResolved { escalation: must(EscalationKey::new(key)) })
    }

    /// The escalation reopened at `at`.
    pub fn reopen(self, key: &str, at: f64) -> Self {
        self.at(at, Event::EscalationReopened { escalation: must(EscalationKey::new(key)) })
    }

    /// A survey answer at `at`.
    pub fn survey(self, at: f64, score: SurveyScore) -> Self {
        let survey = must(SurveyKey::new(&format!("s-{}", self.events.len())));
        self.at(at, Event::SurveyAnswered { survey, score, comment: None })
    }

    /// A meeting at `at`.
    pub fn meeting(self, at: f64) -> Self {
        self.at(at, Event::TouchpointHeld { channel: Channel::Meeting })
    }

    /// A disclosed issue at `at`.
    pub fn disclose(self, at: f64) -> Self {
        self.at(at, Event::IssueDisclosed { summary: None })
    }

    /// Advocacy at `at`.
    pub fn advocacy(self, at: f64) -> Self {
        self.at(at, Event::AdvocacyGiven { kind: AdvocacyKind::Reference })
    }

    /// A manual assessment at `at`: `sentiment` 1-5, valid for `valid_days` (the model's
    /// default when `None`).
    pub fn assess(self, at: f64, sentiment: u8, valid_days: Option<f64>) -> Self {
        let valid_until = valid_days.map(|d| day(at + d));
        self.at(at, Event::AssessmentRecorded { sentiment, reason: format!("assessed {sentiment}"), valid_until })
    }

    /// A profile stated at `at`.
    pub fn profile(self, at: f64, profile: crate::profile::Profile) -> Self {
        self.at(at, Event::AccountProfiled { profile: Box::new(profile) })
    }

    /// The events as submitted, in the order written.
    pub fn events(&self) -> &[NewEvent] {
        &self.events
    }

    /// The events as a log would hold them: in the order written (which must be a valid append
    /// order), each recorded when it occurred.
    pub fn envelopes(&self) -> Vec<Envelope> {
        crate::testing::envelopes(&self.events)
    }
}

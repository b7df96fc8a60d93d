//! The event schema: typed, past-tense facts about an account, and the envelopes around them.

use std::fmt;

use crate::id::{AccountId, CommitmentKey, EscalationKey, EventId, Position, StreamVersion, SurveyKey};
use crate::meta::Metadata;
use crate::profile::Profile;
use crate::timestamp::Timestamp;

/// The longest free text (title, reason, summary, comment), in bytes.
pub const TEXT_BYTES_MAX: usize = 4 * 1024;

/// The range of an assessment's `sentiment`: 1 (very poor) to 5 (very good).
pub const SENTIMENT_RANGE: std::ops::RangeInclusive<u8> = 1..=5;

/// How severe an escalation is. It sets the SLA targets and the weight of the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// `low`
    Low,
    /// `medium`
    Medium,
    /// `high`
    High,
    /// `critical`
    Critical,
}

/// The channel of a touchpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// `meeting`
    Meeting,
    /// `call`
    Call,
    /// `email`
    Email,
    /// `chat`
    Chat,
    /// `visit`
    Visit,
}

/// The kind of advocacy a customer gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdvocacyKind {
    /// `referral`
    Referral,
    /// `reference`
    Reference,
    /// `case_study`
    CaseStudy,
    /// `review`
    Review,
}

/// One survey answer: exactly one measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SurveyScore {
    /// Net Promoter Score answer, 0..=10.
    Nps(u8),
    /// Customer satisfaction, 1..=5.
    Csat(u8),
    /// Customer effort score, 1..=7 (1 = very low effort).
    Ces(u8),
}

impl SurveyScore {
    /// The JSON field name of the measure.
    pub fn field(self) -> &'static str {
        match self {
            Self::Nps(_) => "nps",
            Self::Csat(_) => "csat",
            Self::Ces(_) => "ces",
        }
    }

    /// The raw answer.
    pub fn value(self) -> u8 {
        match self {
            Self::Nps(v) | Self::Csat(v) | Self::Ces(v) => v,
        }
    }

    /// The valid range of the measure.
    pub fn range(self) -> std::ops::RangeInclusive<u8> {
        match self {
            Self::Nps(_) => 0..=10,
            Self::Csat(_) => 1..=5,
            Self::Ces(_) => 1..=7,
        }
    }

    /// Whether the answer lies in its measure's range.
    pub fn in_range(self) -> bool {
        self.range().contains(&self.value())
    }
}

/// A fact about an account. Every variant is past tense: it happened.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// We promised the customer something by a due date (`commitment_made`).
    CommitmentMade {
        /// The caller's key for the commitment, unique within the account.
        commitment: CommitmentKey,
        /// What was promised.
        title: String,
        /// When it is due.
        due: Timestamp,
        /// How much it matters, relative to 1.0. Finite and positive.
        weight: f64,
    },
    /// We agreed a new due date with the customer (`commitment_renegotiated`).
    CommitmentRenegotiated {
        /// The commitment.
        commitment: CommitmentKey,
        /// The new due date.
        due: Timestamp,
        /// Why.
        reason: Option<String>,
    },
    /// We delivered; the customer accepted it or not (`commitment_delivered`).
    CommitmentDelivered {
        /// The commitment.
        commitment: CommitmentKey,
        /// Whether the customer accepted the delivery (quality). Defaults to true.
        accepted: bool,
    },
    /// The commitment was withdrawn (`commitment_cancelled`).
    CommitmentCancelled {
        /// The commitment.
        commitment: CommitmentKey,
        /// Why.
        reason: Option<String>,
    },
    /// The customer raised an escalation (`escalation_raised`).
    EscalationRaised {
        /// The caller's key for the escalation, unique within the account.
        escalation: EscalationKey,
        /// Its severity.
        severity: Severity,
        /// What it is about.
        summary: Option<String>,
    },
    /// We acknowledged the escalation (`escalation_acknowledged`).
    EscalationAcknowledged {
        /// The escalation.
        escalation: EscalationKey,
    },
    /// We resolved the escalation (`escalation_resolved`).
    EscalationResolved {
        /// The escalation.
        escalation: EscalationKey,
    },
    /// A resolved escalation came back (`escalation_reopened`).
    EscalationReopened {
        /// The escalation.
        escalation: EscalationKey,
    },
    /// The customer answered a survey (`survey_answered`).
    SurveyAnswered {
        /// The survey round.
        survey: SurveyKey,
        /// The answer.
        score: SurveyScore,
        /// Free-text comment.
        comment: Option<String>,
    },
    /// We were in touch with the customer (`touchpoint`).
    TouchpointHeld {
        /// How.
        channel: Channel,
    },
    /// We told the customer about a problem before they found it (`issue_disclosed`).
    IssueDisclosed {
        /// What it was.
        summary: Option<String>,
    },
    /// The customer advocated for us (`advocacy_given`).
    AdvocacyGiven {
        /// How.
        kind: AdvocacyKind,
    },
    /// What the account is, from now on (`account_profiled`): the whole profile, each field
    /// left out unknown (see [`crate::profile`]). Boxed: it is large and rare.
    AccountProfiled {
        /// The profile.
        profile: Box<Profile>,
    },
    /// A person's judgement of the relationship (`assessment_recorded`), valid for a while.
    AssessmentRecorded {
        /// 1 (very poor) to 5 (very good).
        sentiment: u8,
        /// Why: what the person saw.
        reason: String,
        /// Until when it holds; the scoring model's default validity after `occurred_at`
        /// when absent. Later than `occurred_at`.
        valid_until: Option<Timestamp>,
    },
}

/// The kind of an [`Event`], without its data: the JSON `type` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum EventKind {
    /// `commitment_made`
    CommitmentMade,
    /// `commitment_renegotiated`
    CommitmentRenegotiated,
    /// `commitment_delivered`
    CommitmentDelivered,
    /// `commitment_cancelled`
    CommitmentCancelled,
    /// `escalation_raised`
    EscalationRaised,
    /// `escalation_acknowledged`
    EscalationAcknowledged,
    /// `escalation_resolved`
    EscalationResolved,
    /// `escalation_reopened`
    EscalationReopened,
    /// `survey_answered`
    SurveyAnswered,
    /// `touchpoint`
    TouchpointHeld,
    /// `issue_disclosed`
    IssueDisclosed,
    /// `advocacy_given`
    AdvocacyGiven,
    /// `account_profiled`
    AccountProfiled,
    /// `assessment_recorded`
    AssessmentRecorded,
}

impl EventKind {
    /// Every kind, in schema order.
    pub const ALL: [Self; 14] = [
        Self::CommitmentMade,
        Self::CommitmentRenegotiated,
        Self::CommitmentDelivered,
        Self::CommitmentCancelled,
        Self::EscalationRaised,
        Self::EscalationAcknowledged,
        Self::EscalationResolved,
        Self::EscalationReopened,
        Self::SurveyAnswered,
        Self::TouchpointHeld,
        Self::IssueDisclosed,
        Self::AdvocacyGiven,
        Self::AccountProfiled,
        Self::AssessmentRecorded,
    ];

    /// The snake_case `type` tag of the JSON form.
    pub fn tag(self) -> &'static str {
        match self {
            Self::CommitmentMade => "commitment_made",
            Self::CommitmentRenegotiated => "commitment_renegotiated",
            Self::CommitmentDelivered => "commitment_delivered",
            Self::CommitmentCancelled => "commitment_cancelled",
            Self::EscalationRaised => "escalation_raised",
            Self::EscalationAcknowledged => "escalation_acknowledged",
            Self::EscalationResolved => "escalation_resolved",
            Self::EscalationReopened => "escalation_reopened",
            Self::SurveyAnswered => "survey_answered",
            Self::TouchpointHeld => "touchpoint",
            Self::IssueDisclosed => "issue_disclosed",
            Self::AdvocacyGiven => "advocacy_given",
            Self::AccountProfiled => "account_profiled",
            Self::AssessmentRecorded => "assessment_recorded",
        }
    }

    /// The kind for a `type` tag.
    pub fn from_tag(tag: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.tag() == tag)
    }

    /// The schema version of this type that this build writes, and the one every older version
    /// is upcast to when read ([`crate::upcast`]; `docs/event-format.md`, "Schema versions").
    /// Version 1 is each type as the first builds wrote it; version 2 adds the event's
    /// [`Metadata`], the same for every type.
    pub const fn schema_version(self) -> u32 {
        SCHEMA_VERSION_CURRENT
    }

    /// The first schema version of this type: 1 for the types the first builds knew, 2 for
    /// `account_profiled` and `assessment_recorded`, which were added at version 2 and have
    /// no version-1 form (a log that holds only version 1 cannot hold them).
    pub const fn first_schema_version(self) -> u32 {
        match self {
            Self::AccountProfiled | Self::AssessmentRecorded => 2,
            _ => 1,
        }
    }
}

/// The schema version every event type is at in this build (see [`EventKind::schema_version`]).
pub(crate) const SCHEMA_VERSION_CURRENT: u32 = 2;

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}

impl Event {
    /// The kind of this event.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::CommitmentMade { .. } => EventKind::CommitmentMade,
            Self::CommitmentRenegotiated { .. } => EventKind::CommitmentRenegotiated,
            Self::CommitmentDelivered { .. } => EventKind::CommitmentDelivered,
            Self::CommitmentCancelled { .. } => EventKind::CommitmentCancelled,
            Self::EscalationRaised { .. } => EventKind::EscalationRaised,
            Self::EscalationAcknowledged { .. } => EventKind::EscalationAcknowledged,
            Self::EscalationResolved { .. } => EventKind::EscalationResolved,
            Self::EscalationReopened { .. } => EventKind::EscalationReopened,
            Self::SurveyAnswered { .. } => EventKind::SurveyAnswered,
            Self::TouchpointHeld { .. } => EventKind::TouchpointHeld,
            Self::IssueDisclosed { .. } => EventKind::IssueDisclosed,
            Self::AdvocacyGiven { .. } => EventKind::AdvocacyGiven,
            Self::AccountProfiled { .. } => EventKind::AccountProfiled,
            Self::AssessmentRecorded { .. } => EventKind::AssessmentRecorded,
        }
    }

    /// The free-text field of this event, if it has one set, with its JSON name.
    pub fn text(&self) -> Option<(&'static str, &str)> {
        match self {
            Self::CommitmentMade { title, .. } => Some(("title", title)),
            Self::CommitmentRenegotiated { reason, .. } | Self::CommitmentCancelled { reason, .. } => {
                reason.as_deref().map(|r| ("reason", r))
            }
            Self::EscalationRaised { summary, .. } | Self::IssueDisclosed { summary } => {
                summary.as_deref().map(|s| ("summary", s))
            }
            Self::SurveyAnswered { comment, .. } => comment.as_deref().map(|c| ("comment", c)),
            Self::AssessmentRecorded { reason, .. } => Some(("reason", reason)),
            _ => None,
        }
    }
}

/// An event as a caller submits it: not yet in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Its id; the same id with the same content is an idempotent duplicate.
    pub id: EventId,
    /// The account whose stream it belongs to.
    pub account: AccountId,
    /// When it happened in the world. Scores use this time.
    pub occurred_at: Timestamp,
    /// What happened.
    pub event: Event,
    /// Who recorded it, from where, and why: stored and read back, but not part of its content
    /// (see [`same_content`](Self::same_content)).
    pub meta: Metadata,
}

impl NewEvent {
    /// A new event with a fresh v7 id and no metadata.
    pub fn new(account: AccountId, occurred_at: Timestamp, event: Event) -> Self {
        Self { id: EventId::new_v7(), account, occurred_at, event, meta: Metadata::new() }
    }

    /// This event with `meta` as its metadata.
    pub fn with_meta(self, meta: Metadata) -> Self {
        Self { meta, ..self }
    }

    /// The oldest schema version that can hold this event: 2 when it carries metadata or is of
    /// a type added at version 2 ([`EventKind::first_schema_version`]), else 1. A store that
    /// writes only version 1 (a file store of format 1 or 2) refuses it.
    pub fn min_schema_version(&self) -> u32 {
        let meta = if self.meta.is_empty() { 1 } else { 2 };
        self.event.kind().first_schema_version().max(meta)
    }

    /// A keyed 64-bit hash of the event's content (id, account, time, event; not its
    /// metadata), for
    /// in-memory duplicate checks where the logged event itself is not at hand.
    ///
    /// It is the standard library's SipHash under a random key made once per process and never
    /// shown, so nobody can write an event whose fingerprint equals another event's and have
    /// it taken for that event's duplicate. Two different events share a fingerprint by
    /// chance with odds of 2^-64. It differs in every process: never persist it, and compare
    /// only fingerprints made in this process.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint_in(0)
    }

    /// The fingerprint a logged event whose personal text was erased answers with
    /// ([`Envelope::fingerprint`]): this event's stripped form ([`crate::personal`]) hashed
    /// apart from every [`fingerprint`](Self::fingerprint), so it matches only an erased
    /// event that equals this one but for the text.
    pub fn fingerprint_erased(&self) -> u64 {
        let mut stripped = self.clone();
        crate::PersonalText::take(&mut stripped.event, &mut stripped.meta);
        stripped.fingerprint_in(1)
    }

    fn fingerprint_in(&self, domain: u8) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        static KEY: std::sync::OnceLock<std::collections::hash_map::RandomState> = std::sync::OnceLock::new();
        thread_local! {
            static PACKED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        // The fields packed into one buffer and hashed in one write: SipHash costs several
        // times more as many small writes.
        PACKED.with(|packed| {
            let mut packed = packed.borrow_mut();
            packed.clear();
            packed.push(domain);
            self.pack(&mut packed);
            let mut h = KEY.get_or_init(std::collections::hash_map::RandomState::new).build_hasher();
            h.write(&packed);
            h.finish()
        })
    }

    /// Every field, each text with its length before it, so no two events pack alike.
    fn pack(&self, out: &mut Vec<u8>) {
        fn text(out: &mut Vec<u8>, t: &str) {
            out.extend_from_slice(&(t.len() as u32).to_le_bytes());
            out.extend_from_slice(t.as_bytes());
        }
        fn maybe(out: &mut Vec<u8>, t: &Option<String>) {
            match t {
                Some(t) => {
                    out.push(1);
                    text(out, t);
                }
                None => out.push(0),
            }
        }
        fn time(out: &mut Vec<u8>, t: &Timestamp) {
            out.extend_from_slice(&t.unix_nanos().to_le_bytes());
        }
        out.extend_from_slice(&self.id.to_bytes());
        text(out, self.account.as_str());
        time(out, &self.occurred_at);
        out.push(self.event.kind() as u8);
        match &self.event {
            Event::CommitmentMade { commitment, title, due, weight } => {
                text(out, commitment.as_str());
                text(out, title);
                time(out, due);
                out.extend_from_slice(&weight.to_bits().to_le_bytes());
            }
            Event::CommitmentRenegotiated { commitment, due, reason } => {
                text(out, commitment.as_str());
                time(out, due);
                maybe(out, reason);
            }
            Event::CommitmentDelivered { commitment, accepted } => {
                text(out, commitment.as_str());
                out.push(u8::from(*accepted));
            }
            Event::CommitmentCancelled { commitment, reason } => {
                text(out, commitment.as_str());
                maybe(out, reason);
            }
            Event::EscalationRaised { escalation, severity, summary } => {
                text(out, escalation.as_str());
                out.push(*severity as u8);
                maybe(out, summary);
            }
            Event::EscalationAcknowledged { escalation }
            | Event::EscalationResolved { escalation }
            | Event::EscalationReopened { escalation } => text(out, escalation.as_str()),
            Event::SurveyAnswered { survey, score, comment } => {
                text(out, survey.as_str());
                let (measure, value) = match score {
                    SurveyScore::Nps(v) => (0, *v),
                    SurveyScore::Csat(v) => (1, *v),
                    SurveyScore::Ces(v) => (2, *v),
                };
                out.extend_from_slice(&[measure, value]);
                maybe(out, comment);
            }
            Event::TouchpointHeld { channel } => out.push(*channel as u8),
            Event::IssueDisclosed { summary } => maybe(out, summary),
            Event::AdvocacyGiven { kind } => out.push(*kind as u8),
            Event::AccountProfiled { profile } => profile.encode(out),
            Event::AssessmentRecorded { sentiment, reason, valid_until } => {
                out.push(*sentiment);
                text(out, reason);
                match valid_until {
                    Some(t) => {
                        out.push(1);
                        time(out, t);
                    }
                    None => out.push(0),
                }
            }
        }
    }

    /// Whether `other` says the same thing: same id, account, time and event. Metadata is
    /// not compared: it says how the fact reached the log, so the same fact from another
    /// source (or actor) is the same event.
    ///
    /// Two submissions with the same id are duplicates exactly when this holds.
    pub fn same_content(&self, other: &NewEvent) -> bool {
        self.id == other.id
            && self.account == other.account
            && self.occurred_at == other.occurred_at
            && self.event == other.event
    }
}

/// An event as the log holds it: the submitted event plus what the store assigned.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Its id.
    pub id: EventId,
    /// The account whose stream it belongs to.
    pub account: AccountId,
    /// When it happened in the world.
    pub occurred_at: Timestamp,
    /// When the log learned of it; set by the store, never decreasing along positions.
    pub recorded_at: Timestamp,
    /// Its 1-based index in the account's stream.
    pub stream_version: StreamVersion,
    /// Its 1-based index in the whole log.
    pub position: Position,
    /// What happened.
    pub event: Event,
    /// Its metadata, as the first submission of its content carried it.
    pub meta: Metadata,
    /// Whether its personal text is here ([`crate::personal`]): present, withheld by a read
    /// that did not open it, or erased (the event then in its stripped form).
    pub text: crate::TextState,
}

impl Envelope {
    /// Wraps a submitted event with what the store assigned to it.
    pub fn new(new: NewEvent, recorded_at: Timestamp, stream_version: StreamVersion, position: Position) -> Self {
        let NewEvent { id, account, occurred_at, event, meta } = new;
        Self {
            id,
            account,
            occurred_at,
            recorded_at,
            stream_version,
            position,
            event,
            meta,
            text: crate::TextState::Present,
        }
    }

    /// Whether this holds the same content as the submission `new` (id, account, time, event;
    /// not metadata, see [`NewEvent::same_content`]). An event whose personal text is not
    /// here (erased, or withheld by the read) holds the same content as a submission that
    /// equals it but for that text: once the text is gone, a re-submission cannot be told from
    /// one that changed only the text, and it is taken as the duplicate (`docs/privacy.md`).
    pub fn same_content(&self, new: &NewEvent) -> bool {
        self.id == new.id
            && self.account == new.account
            && self.occurred_at == new.occurred_at
            && match self.text {
                crate::TextState::Present => self.event == new.event,
                _ => {
                    let (mut event, mut meta) = (new.event.clone(), crate::Metadata::new());
                    crate::PersonalText::take(&mut event, &mut meta);
                    self.event == event
                }
            }
    }

    /// The fingerprint of its content ([`NewEvent::fingerprint`]), or, when its personal text
    /// is not here, the one [`NewEvent::fingerprint_erased`] gives a submission that equals it
    /// but for the text.
    pub fn fingerprint(&self) -> u64 {
        let new = self.to_new_event();
        match self.text {
            crate::TextState::Present => new.fingerprint(),
            _ => new.fingerprint_in(1),
        }
    }

    /// This event as a store that seals personal text lends it in a scan: in its stripped
    /// form ([`crate::personal`]), the text [`Withheld`](crate::TextState::Withheld) (or
    /// left [`Erased`](crate::TextState::Erased)); as it is when it holds no text.
    pub fn withheld(&self) -> Envelope {
        let mut e = self.clone();
        if e.text == crate::TextState::Present && crate::PersonalText::is_in(&e.event, &e.meta) {
            crate::PersonalText::take(&mut e.event, &mut e.meta);
            e.text = crate::TextState::Withheld;
        }
        e
    }

    /// The submitted event, without what the store assigned.
    pub fn to_new_event(&self) -> NewEvent {
        NewEvent {
            id: self.id,
            account: self.account.clone(),
            occurred_at: self.occurred_at,
            event: self.event.clone(),
            meta: self.meta.clone(),
        }
    }
}

//! Events read in place: [`EnvelopeRef`] and [`EventRef`] borrow their text from the bytes
//! they were decoded from (a store's read buffer) or from an owned [`Envelope`], so a pass over
//! the whole log allocates nothing per event. Projections fold these views; an owned event is
//! one [`Envelope::view`] away, and a view is one [`EnvelopeRef::to_envelope`] away from owning.

use crate::event::{AdvocacyKind, Channel, Envelope, Event, NewEvent, Severity, SurveyScore};
use crate::hash::keyed_text_hash;
use crate::id::{
    AccountId, CommitmentKey, EscalationKey, EventId, ParseIdError, Position, StreamVersion, SurveyKey, check_key,
    stable_hash,
};
use crate::meta::MetaRef;
use crate::profile::ProfileRef;
use crate::timestamp::Timestamp;

/// An item key (commitment, escalation or survey) borrowed from its text. Like the owned keys
/// it is always valid: non-empty, at most [`KEY_BYTES_MAX`](crate::KEY_BYTES_MAX) bytes, without
/// control characters. Its [`stable_hash`] comes with it when an owned key lent it; a key
/// decoded from bytes computes it when asked.
#[derive(Debug, Clone, Copy)]
pub struct KeyRef<'a> {
    text: &'a str,
    hash: Option<u64>,
}

impl<'a> KeyRef<'a> {
    /// Checks `text` as a key and borrows it.
    ///
    /// # Errors
    /// [`ParseIdError`] when `text` is empty, too long or holds a control character.
    #[inline]
    pub fn new(text: &'a str) -> Result<Self, ParseIdError> {
        check_key(text)?;
        Ok(Self { text, hash: None })
    }

    /// A key already checked, with its stable hash.
    #[inline]
    pub(crate) fn checked(text: &'a str, hash: u64) -> Self {
        debug_assert!(check_key(text).is_ok() && stable_hash(text) == hash);
        Self { text, hash: Some(hash) }
    }

    /// The key's text.
    pub fn as_str(&self) -> &'a str {
        self.text
    }

    /// The key's [`stable_hash`], as the owned key's.
    #[inline]
    pub fn stable_hash(&self) -> u64 {
        self.hash.unwrap_or_else(|| stable_hash(self.text))
    }
}

impl PartialEq for KeyRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for KeyRef<'_> {}

/// An account id borrowed from its text. Like [`AccountId`] it is always valid: non-empty, at
/// most [`KEY_BYTES_MAX`](crate::KEY_BYTES_MAX) bytes, without control characters. It carries
/// the keyed hash an [`AccountId`] of its text hashes as in maps ([`Self::keyed_hash`]) when
/// it was lent by one; a view decoded from bytes computes it when asked.
#[derive(Debug, Clone, Copy)]
pub struct AccountRef<'a> {
    text: &'a str,
    hash: Option<u64>,
}

impl<'a> AccountRef<'a> {
    /// Checks `text` as an account id and borrows it.
    ///
    /// # Errors
    /// [`ParseIdError`] when `text` is empty, too long or holds a control character.
    pub fn new(text: &'a str) -> Result<Self, ParseIdError> {
        check_key(text)?;
        Ok(Self::checked(text))
    }

    /// An account id's text, checked already.
    #[inline]
    pub(crate) fn checked(text: &'a str) -> Self {
        debug_assert!(check_key(text).is_ok());
        Self { text, hash: None }
    }

    /// An account id's text with its keyed hash, known already (an owned id's).
    #[inline]
    pub(crate) fn with_hash(text: &'a str, hash: u64) -> Self {
        debug_assert_eq!(keyed_text_hash(text), hash);
        Self { text, hash: Some(hash) }
    }

    /// The id's text.
    #[inline]
    pub fn as_str(&self) -> &'a str {
        self.text
    }

    /// A hash of the text under a random key made once per process and never shown: the hash
    /// an [`AccountId`] of the same text hashes as in maps, so a map of many accounts can be
    /// searched by it without hashing the text again (a view of an owned id carries it; one
    /// decoded from bytes hashes its text here). It differs in every process: never
    /// persist it.
    #[inline]
    pub fn keyed_hash(&self) -> u64 {
        self.hash.unwrap_or_else(|| keyed_text_hash(self.text))
    }

    /// The owned account id (a new allocation: share one where many events name it).
    pub fn to_account_id(&self) -> AccountId {
        AccountId::from_checked(self.text)
    }
}

impl PartialEq for AccountRef<'_> {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        // Views of one shared id point at the same text: no need to compare it.
        let hashes_differ = matches!((self.hash, other.hash), (Some(a), Some(b)) if a != b);
        !hashes_differ && (std::ptr::eq(self.text, other.text) || self.text == other.text)
    }
}

impl Eq for AccountRef<'_> {}

impl std::hash::Hash for AccountRef<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.keyed_hash());
    }
}

impl PartialOrd for AccountRef<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AccountRef<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.text.cmp(other.text)
    }
}

impl std::fmt::Display for AccountRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text)
    }
}

/// What happened, borrowed: [`Event`] with its keys and text in place.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum EventRef<'a> {
    /// [`Event::CommitmentMade`].
    CommitmentMade {
        /// The commitment.
        commitment: KeyRef<'a>,
        /// What was promised.
        title: &'a str,
        /// When it is due.
        due: Timestamp,
        /// How much it matters.
        weight: f64,
    },
    /// [`Event::CommitmentRenegotiated`].
    CommitmentRenegotiated {
        /// The commitment.
        commitment: KeyRef<'a>,
        /// The new due date.
        due: Timestamp,
        /// Why.
        reason: Option<&'a str>,
    },
    /// [`Event::CommitmentDelivered`].
    CommitmentDelivered {
        /// The commitment.
        commitment: KeyRef<'a>,
        /// Whether the customer accepted the delivery.
        accepted: bool,
    },
    /// [`Event::CommitmentCancelled`].
    CommitmentCancelled {
        /// The commitment.
        commitment: KeyRef<'a>,
        /// Why.
        reason: Option<&'a str>,
    },
    /// [`Event::EscalationRaised`].
    EscalationRaised {
        /// The escalation.
        escalation: KeyRef<'a>,
        /// Its severity.
        severity: Severity,
        /// What it is about.
        summary: Option<&'a str>,
    },
    /// [`Event::EscalationAcknowledged`].
    EscalationAcknowledged {
        /// The escalation.
        escalation: KeyRef<'a>,
    },
    /// [`Event::EscalationResolved`].
    EscalationResolved {
        /// The escalation.
        escalation: KeyRef<'a>,
    },
    /// [`Event::EscalationReopened`].
    EscalationReopened {
        /// The escalation.
        escalation: KeyRef<'a>,
    },
    /// [`Event::SurveyAnswered`].
    SurveyAnswered {
        /// The survey round.
        survey: KeyRef<'a>,
        /// The answer.
        score: SurveyScore,
        /// Free-text comment.
        comment: Option<&'a str>,
    },
    /// [`Event::TouchpointHeld`].
    TouchpointHeld {
        /// How.
        channel: Channel,
    },
    /// [`Event::IssueDisclosed`].
    IssueDisclosed {
        /// What it was.
        summary: Option<&'a str>,
    },
    /// [`Event::AdvocacyGiven`].
    AdvocacyGiven {
        /// How.
        kind: AdvocacyKind,
    },
    /// [`Event::AccountProfiled`].
    AccountProfiled {
        /// The profile.
        profile: ProfileRef<'a>,
    },
    /// [`Event::AssessmentRecorded`].
    AssessmentRecorded {
        /// 1 to 5.
        sentiment: u8,
        /// Why.
        reason: &'a str,
        /// Until when it holds, when stated.
        valid_until: Option<Timestamp>,
    },
}

/// An event as the log holds it, borrowed: [`Envelope`] with its account, keys and text in
/// place. Copying one copies no text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnvelopeRef<'a> {
    /// Its id.
    pub id: EventId,
    /// The account whose stream it belongs to.
    pub account: AccountRef<'a>,
    /// When it happened in the world.
    pub occurred_at: Timestamp,
    /// When the log learned of it.
    pub recorded_at: Timestamp,
    /// Its 1-based index in the account's stream.
    pub stream_version: StreamVersion,
    /// Its 1-based index in the whole log.
    pub position: Position,
    /// What happened.
    pub event: EventRef<'a>,
    /// Its metadata.
    pub meta: MetaRef<'a>,
    /// Whether its personal text is here: a store that seals text lends it withheld (the
    /// event in its stripped form, [`crate::personal`]).
    pub text: crate::TextState,
}

macro_rules! item_key_view {
    ($($name:ident),*) => {$(
        impl $name {
            /// The key borrowed, with its stable hash.
            #[inline]
            pub fn view(&self) -> KeyRef<'_> {
                KeyRef::checked(self.as_str(), self.stable_hash())
            }
        }
    )*};
}

item_key_view!(CommitmentKey, EscalationKey, SurveyKey);

impl AccountId {
    /// The id borrowed, with the keyed hash it hashes as in maps.
    #[inline]
    pub fn view(&self) -> AccountRef<'_> {
        AccountRef::with_hash(self.as_str(), self.keyed_hash())
    }
}

impl Envelope {
    /// This event, borrowed: what projections fold.
    #[inline]
    pub fn view(&self) -> EnvelopeRef<'_> {
        EnvelopeRef {
            id: self.id,
            account: self.account.view(),
            occurred_at: self.occurred_at,
            recorded_at: self.recorded_at,
            stream_version: self.stream_version,
            position: self.position,
            event: self.event.view(),
            meta: self.meta.view(),
            text: self.text,
        }
    }
}

impl Event {
    /// This event, borrowed.
    #[inline]
    pub fn view(&self) -> EventRef<'_> {
        match self {
            Self::CommitmentMade { commitment, title, due, weight } => {
                EventRef::CommitmentMade { commitment: commitment.view(), title, due: *due, weight: *weight }
            }
            Self::CommitmentRenegotiated { commitment, due, reason } => {
                EventRef::CommitmentRenegotiated { commitment: commitment.view(), due: *due, reason: reason.as_deref() }
            }
            Self::CommitmentDelivered { commitment, accepted } => {
                EventRef::CommitmentDelivered { commitment: commitment.view(), accepted: *accepted }
            }
            Self::CommitmentCancelled { commitment, reason } => {
                EventRef::CommitmentCancelled { commitment: commitment.view(), reason: reason.as_deref() }
            }
            Self::EscalationRaised { escalation, severity, summary } => EventRef::EscalationRaised {
                escalation: escalation.view(),
                severity: *severity,
                summary: summary.as_deref(),
            },
            Self::EscalationAcknowledged { escalation } => {
                EventRef::EscalationAcknowledged { escalation: escalation.view() }
            }
            Self::EscalationResolved { escalation } => EventRef::EscalationResolved { escalation: escalation.view() },
            Self::EscalationReopened { escalation } => EventRef::EscalationReopened { escalation: escalation.view() },
            Self::SurveyAnswered { survey, score, comment } => {
                EventRef::SurveyAnswered { survey: survey.view(), score: *score, comment: comment.as_deref() }
            }
            Self::TouchpointHeld { channel } => EventRef::TouchpointHeld { channel: *channel },
            Self::IssueDisclosed { summary } => EventRef::IssueDisclosed { summary: summary.as_deref() },
            Self::AdvocacyGiven { kind } => EventRef::AdvocacyGiven { kind: *kind },
            Self::AccountProfiled { profile } => EventRef::AccountProfiled { profile: profile.lend() },
            Self::AssessmentRecorded { sentiment, reason, valid_until } => {
                EventRef::AssessmentRecorded { sentiment: *sentiment, reason, valid_until: *valid_until }
            }
        }
    }
}

impl EventRef<'_> {
    /// The owned event.
    pub fn to_event(&self) -> Event {
        let c = |k: &KeyRef<'_>| CommitmentKey::from_checked(k.as_str());
        let e = |k: &KeyRef<'_>| EscalationKey::from_checked(k.as_str());
        let own = |t: &Option<&str>| t.map(str::to_owned);
        match self {
            Self::CommitmentMade { commitment, title, due, weight } => Event::CommitmentMade {
                commitment: c(commitment),
                title: (*title).to_owned(),
                due: *due,
                weight: *weight,
            },
            Self::CommitmentRenegotiated { commitment, due, reason } => {
                Event::CommitmentRenegotiated { commitment: c(commitment), due: *due, reason: own(reason) }
            }
            Self::CommitmentDelivered { commitment, accepted } => {
                Event::CommitmentDelivered { commitment: c(commitment), accepted: *accepted }
            }
            Self::CommitmentCancelled { commitment, reason } => {
                Event::CommitmentCancelled { commitment: c(commitment), reason: own(reason) }
            }
            Self::EscalationRaised { escalation, severity, summary } => {
                Event::EscalationRaised { escalation: e(escalation), severity: *severity, summary: own(summary) }
            }
            Self::EscalationAcknowledged { escalation } => Event::EscalationAcknowledged { escalation: e(escalation) },
            Self::EscalationResolved { escalation } => Event::EscalationResolved { escalation: e(escalation) },
            Self::EscalationReopened { escalation } => Event::EscalationReopened { escalation: e(escalation) },
            Self::SurveyAnswered { survey, score, comment } => Event::SurveyAnswered {
                survey: SurveyKey::from_checked(survey.as_str()),
                score: *score,
                comment: own(comment),
            },
            Self::TouchpointHeld { channel } => Event::TouchpointHeld { channel: *channel },
            Self::IssueDisclosed { summary } => Event::IssueDisclosed { summary: own(summary) },
            Self::AdvocacyGiven { kind } => Event::AdvocacyGiven { kind: *kind },
            Self::AccountProfiled { profile } => Event::AccountProfiled { profile: Box::new(profile.to_profile()) },
            Self::AssessmentRecorded { sentiment, reason, valid_until } => Event::AssessmentRecorded {
                sentiment: *sentiment,
                reason: (*reason).to_owned(),
                valid_until: *valid_until,
            },
        }
    }
}

impl EnvelopeRef<'_> {
    /// The owned event, with `account` as its account id: the caller's shared copy of
    /// [`account`](Self::account) (from an interner or a map), so owning many events of one
    /// account allocates its id once.
    ///
    /// # Panics
    /// In debug builds, when `account` is not the view's account.
    pub fn to_envelope_in(&self, account: AccountId) -> Envelope {
        debug_assert_eq!(account.as_str(), self.account.as_str());
        Envelope {
            id: self.id,
            account,
            occurred_at: self.occurred_at,
            recorded_at: self.recorded_at,
            stream_version: self.stream_version,
            position: self.position,
            event: self.event.to_event(),
            meta: self.meta.to_metadata(),
            text: self.text,
        }
    }

    /// The event as submitted (without what the store assigned), owned, with `account` as its
    /// account id, as [`to_envelope_in`](Self::to_envelope_in) takes it.
    ///
    /// # Panics
    /// In debug builds, when `account` is not the view's account.
    pub fn to_new_event_in(&self, account: AccountId) -> NewEvent {
        debug_assert_eq!(account.as_str(), self.account.as_str());
        NewEvent {
            id: self.id,
            account,
            occurred_at: self.occurred_at,
            event: self.event.to_event(),
            meta: self.meta.to_metadata(),
        }
    }

    /// The owned event.
    pub fn to_envelope(&self) -> Envelope {
        self.to_envelope_in(self.account.to_account_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::synth::{SynthConfig, generate};

    #[test]
    fn a_view_owns_back_to_the_same_event() {
        let events: Vec<_> = generate(SynthConfig { accounts: 20, months: 12, seed: 7, ..Default::default() })
            .take(5_000)
            .enumerate()
            .map(|(i, e)| {
                Envelope::new(e, Timestamp::from_unix_nanos(i as i64), StreamVersion(1), Position(i as u64 + 1))
            })
            .collect();
        let mut kinds = std::collections::HashSet::new();
        for e in &events {
            kinds.insert(e.event.kind());
            let v = e.view();
            assert_eq!(&v.to_envelope(), e);
            assert_eq!(v.to_new_event_in(e.account.clone()), e.to_new_event());
            let decoded = AccountRef::new(e.account.as_str()).expect("a valid id");
            assert_eq!((decoded, decoded.keyed_hash()), (v.account, e.account.view().keyed_hash()));
            if let EventRef::CommitmentMade { commitment, .. } = v.event {
                assert_eq!(commitment.stable_hash(), stable_hash(commitment.as_str()));
                assert_eq!(KeyRef::new(commitment.as_str()), Ok(commitment));
            }
        }
        assert!(kinds.len() >= 10, "the sample covers the event types: {kinds:?}");
    }

    #[test]
    fn a_key_ref_is_checked_like_an_owned_key() {
        assert_eq!(KeyRef::new(""), Err(ParseIdError::Empty));
        assert!(KeyRef::new("c\u{1}").is_err());
        assert_eq!(KeyRef::new("c-17").map(|k| k.stable_hash()), Ok(stable_hash("c-17")));
    }
}

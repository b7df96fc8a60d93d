//! A retention policy: every account's personal text erased once it is older than a set age
//! ([`RetentionPolicy`]). Run on demand (`rapport erase --older-than`) or by a service on a
//! timer beside its runner (`examples/service.rs`); `docs/privacy.md`, "Retention".

use std::time::Duration;

use crate::erase::{EraseError, ErasingStore, Erasure, check_reason};
use crate::personal::key_month;
use crate::{ReadError, Timestamp};

/// Erase every account's personal text of events that occurred more than [`keep`](Self::keep)
/// ago, recording each run with [`reason`](Self::reason). Keys are per month of `occurred_at`,
/// so text goes a month at a time: the month the cutoff falls in keeps its text until the
/// cutoff has passed all of it.
///
/// [`apply`](Self::apply) is cheap to call often: it erases only when the cutoff has entered a
/// month past the one the policy's last run reached (it finds that run among the store's
/// erasures by its reason, so a restart does not run it again), and answers `None` otherwise.
///
/// ```
/// use std::time::Duration;
/// use rapport_core::{ExpectedVersion, Ledger, NewEvent, RetentionPolicy, TextState, Timestamp};
///
/// let ledger = Ledger::memory();
/// let line = r#"{"type":"survey_answered","account":"acme","occurred_at":"2023-03-01T09:00:00Z","survey":"q1","nps":3,"comment":"Ann Lee was rude"}"#;
/// ledger.blocking().append(vec![NewEvent::from_json_line(line)?], ExpectedVersion::Any)?;
/// let policy = RetentionPolicy::new(Duration::from_secs(730 * 86_400), "retention 2y")?;
/// let now = Timestamp::parse("2025-06-15T00:00:00Z")?;
/// let run = pollster::block_on(policy.apply(ledger.store(), now))?.expect("March 2023 is over two years old");
/// assert_eq!(run.keys_destroyed, 1);
/// assert_eq!(ledger.blocking().read_stream(&"acme".parse()?)?[0].text, TextState::Erased);
/// // The same month again: nothing to do.
/// assert!(pollster::block_on(policy.apply(ledger.store(), now))?.is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    keep: Duration,
    reason: String,
}

/// Why a retention run did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RetentionError {
    /// The store's erasures could not be read, so whether the run was due is unknown.
    #[error("reading the erasures: {0}")]
    Read(#[from] ReadError),
    /// The erasure failed; nothing was erased.
    #[error(transparent)]
    Erase(#[from] EraseError),
}

impl RetentionPolicy {
    /// A policy that keeps personal text for `keep`, recording its runs with `reason` (which
    /// names the policy: its runs are found by it).
    ///
    /// # Errors
    /// [`EraseError::InvalidReason`] (see [`check_reason`]).
    pub fn new(keep: Duration, reason: &str) -> Result<Self, EraseError> {
        check_reason(reason)?;
        Ok(Self { keep, reason: reason.to_owned() })
    }

    /// How long personal text is kept.
    pub fn keep(&self) -> Duration {
        self.keep
    }

    /// The reason its runs are recorded with.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The instant before which text is erased at `now`: `now` less [`keep`](Self::keep).
    pub fn cutoff(&self, now: Timestamp) -> Timestamp {
        now.add_nanos(-i64::try_from(self.keep.as_nanos()).unwrap_or(i64::MAX))
    }

    /// Runs the policy on `store` at `now` if it is due: erases every account's text of the
    /// months wholly before [`cutoff`](Self::cutoff) when the policy's last run (found among
    /// the store's erasures by its reason) reached an earlier month, or never ran. Returns the
    /// erasure, or `None` when the cutoff is still in the month the last run reached.
    ///
    /// # Errors
    /// [`RetentionError`]: nothing was erased.
    pub async fn apply<S: ErasingStore>(&self, store: &S, now: Timestamp) -> Result<Option<Erasure>, RetentionError> {
        let cutoff = self.cutoff(now);
        let reached = store
            .erasures()
            .await?
            .into_iter()
            .rev()
            .find(|e| e.account.is_none() && e.reason == self.reason)
            .and_then(|e| e.before);
        if reached.is_some_and(|before| key_month(before) >= key_month(cutoff)) {
            return Ok(None);
        }
        Ok(Some(store.erase_before(cutoff, &self.reason).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, ExpectedVersion, Ledger, MemoryStore, NewEvent, SurveyKey, SurveyScore, TextState};

    fn said(account: &str, at: &str) -> NewEvent {
        NewEvent::new(
            account.parse().unwrap(),
            Timestamp::parse(at).unwrap(),
            Event::SurveyAnswered {
                survey: SurveyKey::new(&format!("q{at}")).unwrap(),
                score: SurveyScore::Nps(5),
                comment: Some("named someone".into()),
            },
        )
    }

    #[test]
    fn a_policy_erases_each_month_once_it_is_wholly_past_its_age_and_only_then() {
        let ledger = Ledger::new(MemoryStore::new());
        let events = vec![
            said("a", "2024-01-10T00:00:00Z"),
            said("b", "2024-01-20T00:00:00Z"),
            said("a", "2024-02-10T00:00:00Z"),
            said("a", "2024-03-10T00:00:00Z"),
        ];
        ledger.blocking().append(events, ExpectedVersion::Any).unwrap();
        let policy = RetentionPolicy::new(Duration::from_secs(30 * 86_400), "retention 30d").unwrap();
        let at = |s: &str| Timestamp::parse(s).unwrap();
        let apply = |now: &str| pollster::block_on(policy.apply(ledger.store(), at(now))).unwrap();
        let texts = || {
            let mut all: Vec<TextState> = Vec::new();
            ledger.blocking().for_each(crate::Position(1), |e: &crate::Envelope| all.push(e.text)).unwrap();
            all
        };
        use TextState::{Erased, Present};
        // 30 days before 2024-02-15 is in January: nothing wholly past yet.
        let first = apply("2024-02-15T00:00:00Z").unwrap();
        assert_eq!((first.keys_destroyed, texts()), (0, vec![Present; 4]));
        assert!(apply("2024-02-28T00:00:00Z").is_none(), "the cutoff is still in January");
        // The cutoff enters February: January's text goes, for every account.
        let second = apply("2024-03-05T00:00:00Z").unwrap();
        assert_eq!((second.keys_destroyed, second.before), (2, Some(at("2024-02-01T00:00:00Z"))));
        assert_eq!(texts(), [Erased, Erased, Present, Present]);
        assert!(apply("2024-03-06T00:00:00Z").is_none());
        // Another policy (another reason) keeps its own record.
        let other = RetentionPolicy::new(Duration::from_secs(0), "retention now").unwrap();
        let run = pollster::block_on(other.apply(ledger.store(), at("2024-04-02T00:00:00Z"))).unwrap().unwrap();
        assert_eq!(run.keys_destroyed, 2);
        assert_eq!(texts(), [Erased; 4]);
        assert_eq!(pollster::block_on(ledger.erasures()).unwrap().len(), 3);
        assert!(RetentionPolicy::new(Duration::ZERO, "").is_err());
    }
}

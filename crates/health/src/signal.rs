//! [`Signal`]s: what a [`Runner`](crate::Runner) tells its host when an account turns. Derived,
//! never appended: computed from state changes, naming the position that caused them (or
//! time), with a deterministic id so a host can drop a repeat.

use rapport_core::{AccountId, EventId, Position, Timestamp};
use rapport_trust::{Band, Bands};
use serde::{Deserialize, Serialize};

/// Which score a signal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Trust.
    Trust,
    /// Health.
    Health,
}

/// What moved the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The event at this position.
    Event(Position),
    /// The passing of time: decay, a due date, an SLA deadline.
    Time,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignalKind {
    /// A score settled in another band (red, yellow or green), past the hysteresis margin.
    BandChanged {
        /// Which score.
        measure: Measure,
        /// The band before.
        from: Band,
        /// The band now.
        to: Band,
        /// The score now.
        score: f64,
    },
    /// A score lost the evidence to be read: its band is grey.
    WentGrey {
        /// Which score.
        measure: Measure,
        /// The band before.
        from: Band,
    },
    /// Health's trend over the window turned to falling.
    TrendTurnedFalling {
        /// Health now minus health one window earlier.
        delta: f64,
        /// The noise it exceeds.
        noise: f64,
    },
    /// A commitment was still open at its due date.
    CommitmentOverdue {
        /// The `commitment_made` event.
        made: EventId,
        /// The due date.
        due: Timestamp,
    },
    /// An escalation was not acknowledged within its SLA.
    AcknowledgeSlaBreached {
        /// The `escalation_raised` event.
        raised: EventId,
        /// The deadline.
        deadline: Timestamp,
    },
    /// An escalation was not resolved within its SLA.
    ResolveSlaBreached {
        /// The event that (re)opened it.
        opened: EventId,
        /// The deadline.
        deadline: Timestamp,
    },
}

/// One signal for the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// Derived from the account, the kind and its details, the instant and the cause: the same
    /// signal always has the same id, so a host can drop a repeat.
    pub id: EventId,
    /// The account.
    pub account: AccountId,
    /// When it happened (a deadline's instant, or the instant the runner saw the change).
    pub at: Timestamp,
    /// What caused it.
    pub cause: Cause,
    /// What happened.
    #[serde(flatten)]
    pub kind: SignalKind,
}

impl Signal {
    /// A signal about `account` at `at`, whose latest event is the one at `basis`.
    ///
    /// The id leaves the instant out (a runner replaying after a crash sees the same change at
    /// a later instant) and names the change by what caused it: the event, or for time the
    /// deadline passed or the account's latest event (`basis`), so the same change seen again
    /// after a restart gets the same id. A change of band repeated with no event between (a
    /// trend that turns falling twice as events leave its window) is one signal by id.
    pub(crate) fn new(account: &AccountId, at: Timestamp, cause: Cause, kind: SignalKind, basis: Position) -> Self {
        let cause_text = match cause {
            Cause::Event(p) => format!("event {p}"),
            Cause::Time => format!("time after {basis}"),
        };
        // Scores are left out: a replay may compute them a few ulps apart.
        let detail = match kind {
            SignalKind::BandChanged { measure, from, to, .. } => format!("band {measure:?} {from:?} {to:?}"),
            SignalKind::WentGrey { measure, from } => format!("grey {measure:?} {from:?}"),
            SignalKind::TrendTurnedFalling { .. } => "falling".to_owned(),
            SignalKind::CommitmentOverdue { made, due } => format!("overdue {made} {}", due.unix_nanos()),
            SignalKind::AcknowledgeSlaBreached { raised, deadline } => {
                format!("ack {raised} {}", deadline.unix_nanos())
            }
            SignalKind::ResolveSlaBreached { opened, deadline } => {
                format!("resolve {opened} {}", deadline.unix_nanos())
            }
        };
        let text = format!("signal\0{account}\0{detail}\0{cause_text}");
        Self { id: EventId::derive(text.as_bytes()), account: account.clone(), at, cause, kind }
    }
}

/// One line for people: the instant, the account, what happened, the cause and the id.
///
/// ```
/// # use rapport_health::{Cause, Signal};
/// # let line = r#"{"id":"0f6c3c2e-4c1a-5d7e-9a0b-1c2d3e4f5a6b","account":"acme","at":"2025-06-02T00:00:00Z","cause":"time","kind":"commitment_overdue","made":"7d3c8e9a-1b2c-5d3e-8f4a-5b6c7d8e9f0a","due":"2025-06-01T00:00:00Z"}"#;
/// let signal: Signal = serde_json::from_str(line)?;
/// assert_eq!(
///     signal.to_string(),
///     "2025-06-02T00:00:00Z acme commitment overdue: 7d3c8e9a-1b2c-5d3e-8f4a-5b6c7d8e9f0a was due 2025-06-01T00:00:00Z (time) [0f6c3c2e-4c1a-5d7e-9a0b-1c2d3e4f5a6b]"
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let measure = |m: Measure| match m {
            Measure::Trust => "trust",
            Measure::Health => "health",
        };
        write!(f, "{} {} ", self.at, self.account)?;
        match self.kind {
            SignalKind::BandChanged { measure: m, from, to, score } => {
                write!(f, "{} band {} -> {} (score {score:.1})", measure(m), from.name(), to.name())?;
            }
            SignalKind::WentGrey { measure: m, from } => write!(f, "{} went grey (was {})", measure(m), from.name())?,
            SignalKind::TrendTurnedFalling { delta, noise } => {
                write!(f, "health trend turned falling ({delta:+.1}, noise {noise:.1})")?;
            }
            SignalKind::CommitmentOverdue { made, due } => write!(f, "commitment overdue: {made} was due {due}")?,
            SignalKind::AcknowledgeSlaBreached { raised, deadline } => {
                write!(f, "escalation not acknowledged within its SLA: {raised}, deadline {deadline}")?;
            }
            SignalKind::ResolveSlaBreached { opened, deadline } => {
                write!(f, "escalation not resolved within its SLA: {opened}, deadline {deadline}")?;
            }
        }
        match self.cause {
            Cause::Event(p) => write!(f, " (event {p})")?,
            Cause::Time => write!(f, " (time)")?,
        }
        write!(f, " [{}]", self.id)
    }
}

/// How far past a band's edge a score must be before a change of band is signalled: points of
/// score for red, yellow and green, and confidence for grey. A score hovering on an edge then
/// signals once, not at every wobble.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Hysteresis {
    /// Points of score (0–100).
    pub points: f64,
    /// Confidence (0–1).
    pub confidence: f64,
}

impl Default for Hysteresis {
    fn default() -> Self {
        Self { points: 2.0, confidence: 0.02 }
    }
}

impl Hysteresis {
    /// The band to report for `score` at `confidence`, given the one last reported: the new
    /// band only when the score lies at least the margin inside it.
    pub fn settle(&self, bands: &Bands, score: f64, confidence: f64, last: Band) -> Band {
        let now = bands.band(score, confidence);
        if now == last {
            return last;
        }
        let inside = [
            bands.band(score + self.points, confidence + self.confidence),
            bands.band(score - self.points, confidence + self.confidence),
            bands.band(score + self.points, confidence - self.confidence),
            bands.band(score - self.points, confidence - self.confidence),
        ]
        .iter()
        .all(|b| *b == now);
        if inside { now } else { last }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_score_hovering_on_an_edge_keeps_its_band_until_it_is_clearly_across() {
        let bands = Bands::default();
        let h = Hysteresis::default();
        assert_eq!(h.settle(&bands, 74.0, 0.9, Band::Yellow), Band::Yellow);
        assert_eq!(h.settle(&bands, 75.5, 0.9, Band::Yellow), Band::Yellow, "within the margin");
        assert_eq!(h.settle(&bands, 77.5, 0.9, Band::Green), Band::Green);
        assert_eq!(h.settle(&bands, 77.5, 0.9, Band::Yellow), Band::Green, "clearly across");
        assert_eq!(h.settle(&bands, 74.0, 0.9, Band::Green), Band::Green, "within the margin, going down");
        assert_eq!(h.settle(&bands, 60.0, 0.29, Band::Yellow), Band::Yellow, "grey only past the margin");
        assert_eq!(h.settle(&bands, 60.0, 0.2, Band::Yellow), Band::Grey);
    }

    #[test]
    fn the_same_signal_has_the_same_id() {
        let a: AccountId = "acme".parse().unwrap();
        let kind = SignalKind::WentGrey { measure: Measure::Health, from: Band::Green };
        let at = Timestamp::from_unix_seconds(1);
        let later = Timestamp::from_unix_seconds(60);
        let new = |at, cause, basis| Signal::new(&a, at, cause, kind, Position(basis));
        assert_eq!(new(at, Cause::Time, 2).id, new(later, Cause::Time, 2).id, "seen later, after a restart");
        assert_ne!(new(at, Cause::Time, 2).id, new(at, Cause::Time, 3).id, "after another event");
        assert_ne!(new(at, Cause::Time, 3).id, new(at, Cause::Event(Position(3)), 3).id);
        assert_eq!(new(at, Cause::Event(Position(3)), 3).id, new(later, Cause::Event(Position(3)), 3).id);
    }
}

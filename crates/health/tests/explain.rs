//! "What changed" explanations (`docs/scoring.md`, "Explanations"): the stories, and the
//! property that the parts add up to the change.

use proptest::prelude::*;
use rapport_core::profile::Profile;
use rapport_core::testing::story::{Story, day};
use rapport_core::testing::strategies::{BASE, arb_account_history};
use rapport_core::testing::{cases, envelopes};
use rapport_core::{AccountId, Envelope, Event, EventId, ExpectedVersion, Ledger, NewEvent, SurveyScore, Timestamp};
use rapport_health::explain::MOVER_EVENTS_MAX;
use rapport_health::{
    Change, Direction, ExplainError, Explanation, HealthModel, ModelStamp, ScoringConfig, Side, explain,
    explain_account, timeline_with,
};
use rapport_trust::Deadline;

const DAY: i64 = 86_400_000_000_000;

fn enterprise() -> HealthModel {
    let mut m = HealthModel { id: "enterprise".into(), ..HealthModel::default() };
    m.weights.trust = 0.6;
    m.weights.nps = 0.05;
    m.trust.reliability.half_life_days = 90.0;
    m
}

/// The default model, and the enterprise model for the `enterprise` segment.
fn segmented() -> ScoringConfig {
    let mut c = ScoringConfig::default();
    c.segments.insert("enterprise".into(), enterprise());
    c
}

fn side(at: Timestamp, config: &ScoringConfig) -> Side<'_> {
    Side::at(at, config)
}

fn explained(story: &Story, from: f64, to: f64, config: &ScoringConfig) -> Explanation {
    explain(story.account(), &story.envelopes(), side(day(from), config), side(day(to), config)).unwrap()
}

fn factor<'a>(c: &'a Change, name: &str) -> &'a rapport_health::FactorChange {
    c.factors.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("no factor {name} in {c:?}"))
}

/// Every part of a change adds up to it: the factors to the score's change, and each factor's
/// model, time and events parts to its own.
fn assert_adds_up(c: &Change) {
    let sum: f64 = c.factors.iter().map(|f| f.delta).sum();
    assert!((sum - c.delta).abs() <= 1e-9, "factors sum to {sum}, the score moved {}: {c:?}", c.delta);
    for f in &c.factors {
        assert!((f.model + f.time + f.events - f.delta).abs() <= 1e-9, "{f:?}");
        assert!((f.to - f.from - f.delta).abs() <= 1e-12, "{f:?}");
    }
}

#[test]
fn a_commitment_fallen_due_in_the_window_is_time_not_events() {
    // Given a commitment due on day 40 that nothing delivers, and a meeting on day 50,
    // between day 30 and day 60 reliability falls by time alone (the item went overdue), and
    // the deadline is named.
    let story = Story::new("acme")
        .commit("on-time", 0.0, 20.0)
        .deliver("on-time", 15.0, true)
        .commit("late", 10.0, 40.0)
        .meeting(50.0);
    let x = explained(&story, 30.0, 60.0, &ScoringConfig::default());
    assert_adds_up(&x.trust);
    assert_adds_up(&x.health);
    let reliability = factor(&x.trust, "reliability");
    assert!(reliability.time < -1.0, "{reliability:?}");
    // Two commitments are thin evidence: a fall of 15 points is within the noise, and the
    // explanation says so rather than calling it a move.
    assert!(x.trust.delta < -10.0 && x.trust.delta.abs() <= x.trust.noise, "{:?}", x.trust);
    assert_eq!(x.trust.direction, Direction::Steady);
    assert_eq!(reliability.events, 0.0, "the meeting carries no reliability evidence");
    assert!(reliability.movers.is_empty());
    assert_eq!(reliability.model, 0.0);
    let made = story.envelopes()[2].id;
    assert_eq!(x.deadlines, vec![Deadline::CommitmentDue { made, at: day(40.0) }]);
    assert_eq!(x.window_events, 1);
    // The meeting moved engagement, and is named for it.
    let engagement = factor(&x.health, "engagement");
    assert!(engagement.events > 0.0);
    assert_eq!(engagement.movers.len(), 1);
    assert_eq!(engagement.movers[0].kind, "touchpoint");
}

#[test]
fn the_events_that_moved_a_factor_most_come_first() {
    // Given two promoters before the window and, inside it, a detractor and a passive, NPS
    // falls by events, and the detractor moved it more than the passive did.
    let story = Story::new("acme")
        .survey(5.0, SurveyScore::Nps(10))
        .survey(10.0, SurveyScore::Nps(9))
        .survey(40.0, SurveyScore::Nps(2))
        .survey(45.0, SurveyScore::Nps(7));
    let x = explained(&story, 30.0, 50.0, &ScoringConfig::default());
    assert_adds_up(&x.health);
    let nps = factor(&x.health, "nps");
    assert!(nps.events < 0.0 && nps.delta < 0.0, "{nps:?}");
    let ids: Vec<EventId> = nps.movers.iter().map(|m| m.event).collect();
    let all = story.envelopes();
    assert_eq!(ids, vec![all[2].id, all[3].id], "the detractor first, then the passive");
    assert!(nps.movers[0].effect < nps.movers[1].effect && nps.movers[1].effect < 0.0, "{:?}", nps.movers);
    assert_eq!(nps.movers[0].occurred_at, day(40.0));
    // Surveys are no trust evidence: trust changes by time only.
    for f in &x.trust.factors {
        assert_eq!(f.events, 0.0, "{f:?}");
    }
}

#[test]
fn two_models_at_one_instant_differ_by_the_model_part_only() {
    // Given one history, the change between two models at one instant is all model: a
    // model change is told apart from a change in the customer.
    let story = Story::new("acme")
        .commit("c", 0.0, 20.0)
        .deliver("c", 25.0, true)
        .survey(30.0, SurveyScore::Nps(3))
        .meeting(35.0);
    let (old, new) = (ScoringConfig::default(), ScoringConfig::single(enterprise()));
    let x = explain(story.account(), &story.envelopes(), side(day(60.0), &old), side(day(60.0), &new)).unwrap();
    assert_adds_up(&x.trust);
    assert_adds_up(&x.health);
    assert_eq!(*x.model_from, ModelStamp::of(&old.default));
    assert_eq!(*x.model_to, ModelStamp::of(&enterprise()));
    for f in x.trust.factors.iter().chain(&x.health.factors) {
        assert_eq!((f.time, f.events), (0.0, 0.0), "{f:?}");
        assert!(f.movers.is_empty());
    }
    assert!(factor(&x.health, "trust").model > 0.0, "the enterprise model weighs trust more");
    assert_eq!(x.window_events, 0);
}

#[test]
fn a_segment_change_in_the_window_shows_as_the_model_part() {
    // Given an account profiled into the enterprise segment inside the window, the model part
    // is what the enterprise model makes of the same history, apart from what the customer did.
    let enterprise_profile = Profile { segment: Some("enterprise".into()), ..Profile::default() };
    let story = Story::new("acme")
        .commit("c", 0.0, 20.0)
        .deliver("c", 18.0, true)
        .survey(25.0, SurveyScore::Nps(9))
        .profile(40.0, enterprise_profile)
        .meeting(45.0);
    let config = segmented();
    let x = explained(&story, 30.0, 60.0, &config);
    assert_adds_up(&x.trust);
    assert_adds_up(&x.health);
    assert_eq!(x.model_from.name, "rapport-health/1");
    assert_eq!(x.model_to.name, "enterprise/1");
    assert!(factor(&x.health, "trust").model > 0.0);
    assert!(factor(&x.health, "nps").model < 0.0);
}

#[test]
fn the_readings_are_the_scores_at_each_end_and_the_store_gives_the_same() {
    let story = Story::new("acme")
        .commit("c", 0.0, 20.0)
        .deliver("c", 25.0, true)
        .escalate("e", 30.0, rapport_core::Severity::High)
        .ack("e", 30.2)
        .assess(31.0, 2, None)
        .survey(35.0, SurveyScore::Csat(5));
    let config = segmented();
    let x = explained(&story, 10.0, 50.0, &config);
    let line = timeline_with(&config, story.envelopes(), &[day(10.0), day(50.0)], None);
    for (reading, scores) in [(&x.health.from, &line[0].1), (&x.health.to, &line[1].1)] {
        assert!((reading.score - scores.health.score).abs() <= 1e-9);
        assert_eq!(reading.band, scores.health.band);
    }
    assert!((x.trust.to.score - line[1].1.trust.score).abs() <= 1e-9);
    assert!(x.health.factors.iter().any(|f| f.name == "assessment"), "the assessment channel appeared");
    assert_adds_up(&x.health);
    let ledger = Ledger::memory();
    ledger.blocking().append(story.events().to_vec(), ExpectedVersion::Any).unwrap();
    let from_store = pollster::block_on(explain_account(
        &ledger,
        story.account(),
        side(day(10.0), &config),
        side(day(50.0), &config),
    ))
    .unwrap();
    assert_adds_up(&from_store.health);
    assert!((from_store.health.delta - x.health.delta).abs() <= 1e-9);
    // Known-at: an instant before anything was recorded sees no events on either side.
    let early = Timestamp::from_unix_seconds(0);
    let (from, to) = (side(day(10.0), &config).known_at(early), side(day(50.0), &config).known_at(early));
    let blind = pollster::block_on(explain_account(&ledger, story.account(), from, to)).unwrap();
    assert_eq!(blind.window_events, 0);
}

#[test]
fn a_start_after_the_end_is_refused_naming_the_account() {
    let story = Story::new("acme").meeting(1.0);
    let c = ScoringConfig::default();
    let err = explain(story.account(), &story.envelopes(), side(day(9.0), &c), side(day(3.0), &c)).unwrap_err();
    assert!(matches!(err, ExplainError::FromAfterTo { .. }));
    assert!(err.to_string().contains("acme"), "{err}");
    // One instant, one model: nothing moved.
    let same = explain(story.account(), &story.envelopes(), side(day(3.0), &c), side(day(3.0), &c)).unwrap();
    assert_eq!((same.health.delta, same.health.direction), (0.0, Direction::Steady));
}

#[test]
fn what_a_backfill_changed_is_the_window_between_two_known_ats() {
    // Given live events recorded on day 50 and a backfill of older history recorded on day 60,
    // the change as of day 70 between "known on day 55" and "known on day 65" is the
    // backfill's: all events, named, none of it time or model.
    let story = Story::new("acme")
        .meeting(40.0)
        .survey(45.0, SurveyScore::Nps(9))
        .commit("old", 1.0, 10.0)
        .deliver("old", 20.0, false);
    let mut events = story.envelopes();
    for (i, e) in events.iter_mut().enumerate() {
        e.recorded_at = if i < 2 { day(50.0) } else { day(60.0) };
    }
    let c = ScoringConfig::default();
    let (before, after) = (side(day(70.0), &c).known_at(day(55.0)), side(day(70.0), &c).known_at(day(65.0)));
    let x = explain(story.account(), &events, before, after).unwrap();
    assert_adds_up(&x.trust);
    assert_eq!((x.window_events, x.from_known_at, x.to_known_at), (2, Some(day(55.0)), Some(day(65.0))));
    let reliability = factor(&x.trust, "reliability");
    assert!(reliability.events < 0.0 && reliability.time == 0.0 && reliability.model == 0.0, "{reliability:?}");
    // The commitment is named; its refused delivery is not: without it the commitment would
    // be overdue, failed all the same.
    let named: Vec<EventId> = reliability.movers.iter().map(|m| m.event).collect();
    assert_eq!(named, vec![events[2].id]);
    // The start may not know more than the end.
    let err = explain(story.account(), &events, after, before).unwrap_err();
    assert!(matches!(err, ExplainError::KnownAfterEnd { .. }), "{err}");
    let err = explain(story.account(), &events, side(day(70.0), &c), before).unwrap_err();
    assert!(err.to_string().contains("known at now"), "{err}");
}

#[test]
fn a_long_window_considers_its_last_events_for_movers() {
    let mut story = Story::new("busy");
    for i in 0..(MOVER_EVENTS_MAX + 40) {
        story = story.survey(1.0 + i as f64 * 0.1, SurveyScore::Nps(0));
    }
    let x = explained(&story, 0.5, 100.0, &ScoringConfig::default());
    assert_eq!(x.window_events, MOVER_EVENTS_MAX + 40);
    assert_eq!(x.movers_considered, MOVER_EVENTS_MAX);
    assert_adds_up(&x.health);
    let last = story.envelopes().last().unwrap().id;
    let nps = factor(&x.health, "nps");
    assert_eq!(nps.movers.len(), 3);
    assert_eq!(nps.movers[0].event, last, "the latest detractor has decayed least");
    assert!(nps.movers[0].effect < 0.0);
}

/// A history with profiles (switching segment) and assessments added at random days.
fn history() -> impl Strategy<Value = Vec<NewEvent>> {
    (
        arb_account_history(),
        proptest::collection::vec((0i64..900, any::<bool>()), 0..3),
        proptest::collection::vec((0i64..900, 1u8..=5), 0..3),
    )
        .prop_map(|(mut events, profiles, assessments)| {
            let Some(account) = events.first().map(|e| e.account.clone()) else { return events };
            let extra = |i: usize, days: i64, event: Event| {
                let mut e = NewEvent {
                    id: EventId::derive(format!("extra-{i}").as_bytes()),
                    account: account.clone(),
                    occurred_at: BASE.add_nanos(days * DAY),
                    event,
                    meta: Default::default(),
                };
                e.id = EventId::derive(&[e.canonical_content(), vec![i as u8]].concat());
                e
            };
            for (i, (days, big)) in profiles.into_iter().enumerate() {
                let segment = if big { "enterprise" } else { "smb" };
                let profile = Profile { segment: Some(segment.into()), ..Profile::default() };
                events.push(extra(i, days, Event::AccountProfiled { profile: Box::new(profile) }));
            }
            for (i, (days, sentiment)) in assessments.into_iter().enumerate() {
                let event = Event::AssessmentRecorded { sentiment, reason: "call".into(), valid_until: None };
                events.push(extra(10 + i, days, event));
            }
            events
        })
}

fn account_of(events: &[Envelope]) -> AccountId {
    events.first().map_or_else(|| AccountId::new("none").unwrap(), |e| e.account.clone())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(48), ..ProptestConfig::default() })]

    /// The explanation's factor deltas add up to the total change (within 1e-9), each factor's
    /// parts to its delta; its ends are the scores at each end, under each end's models.
    #[test]
    fn prop_the_deltas_add_up(
        events in history(),
        from_days in 0i64..1_000,
        span_days in 0i64..400,
        other_model in any::<bool>(),
    ) {
        let events = envelopes(&events);
        let account = account_of(&events);
        let to_config = segmented();
        let from_config = if other_model { ScoringConfig::single(enterprise()) } else { segmented() };
        let (from, to) = (BASE.add_nanos(from_days * DAY), BASE.add_nanos((from_days + span_days) * DAY));
        let x = explain(&account, &events, side(from, &from_config), side(to, &to_config)).unwrap();
        for c in [&x.trust, &x.health] {
            // The direction reads the change against its noise.
            let direction = if c.delta > c.noise { Direction::Rising } else if c.delta < -c.noise { Direction::Falling } else { Direction::Steady };
            prop_assert_eq!(c.direction, direction);
            prop_assert!(c.noise >= 0.0 && c.noise.is_finite());
            let sum: f64 = c.factors.iter().map(|f| f.delta).sum();
            prop_assert!((sum - c.delta).abs() <= 1e-9, "factors {} vs {}", sum, c.delta);
            for f in &c.factors {
                prop_assert!((f.model + f.time + f.events - f.delta).abs() <= 1e-9, "{:?}", f);
                prop_assert!(f.movers.len() <= 3);
                prop_assert!(f.movers.windows(2).all(|w| w[0].effect.abs() >= w[1].effect.abs()));
                prop_assert!(f.movers.iter().all(|m| m.occurred_at > from && m.occurred_at <= to));
            }
        }
        let start = timeline_with(&from_config, events.clone(), &[from], None);
        let end = timeline_with(&to_config, events.clone(), &[to], None);
        prop_assert!((x.health.from.score - start[0].1.health.score).abs() <= 1e-9);
        prop_assert!((x.trust.from.score - start[0].1.trust.score).abs() <= 1e-9);
        prop_assert!((x.health.to.score - end[0].1.health.score).abs() <= 1e-9);
        prop_assert!((x.trust.to.score - end[0].1.trust.score).abs() <= 1e-9);
        prop_assert_eq!(&x.model_to.name, &end[0].1.health.model);
        prop_assert_eq!(x.window_events, events.iter().filter(|e| e.occurred_at > from && e.occurred_at <= to).count());
    }
}

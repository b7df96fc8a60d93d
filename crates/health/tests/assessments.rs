//! Manual assessments and profiles in health: the stories of `docs/scoring.md`
//! ("Assessments", "Profiles") as given/then tests, and their properties.

use std::sync::Arc;

use proptest::prelude::*;
use rapport_core::profile::{Lifecycle, Profile};
use rapport_core::testing::cases;
use rapport_core::testing::story::{Story, day};
use rapport_core::testing::strategies::arb_account_history;
use rapport_core::{Envelope, Projection, Severity, SurveyScore};
use rapport_health::{Band, HealthModel, HealthProjection, Scores};

fn fold(events: &[Envelope], days: f64) -> (Scores, Option<Profile>) {
    let mut p = HealthProjection::new(Arc::new(HealthModel::default()));
    let t = day(days);
    for e in events.iter().filter(|e| e.occurred_at <= t) {
        p.apply(&e.view());
    }
    (p.evaluate(t), p.state().profile().map(|p| p.profile()))
}

fn at(story: &Story, days: f64) -> Scores {
    fold(&story.envelopes(), days).0
}

/// A well-covered account: a year of early deliveries, escalations handled in SLA, monthly
/// meetings, and a survey of each kind every quarter.
fn well_covered(tag: &str, good: bool) -> Story {
    let mut s = Story::new(tag);
    for i in 0..8 {
        let made = 5.0 + 45.0 * f64::from(i);
        let key = format!("c-{i}");
        s = s.commit(&key, made, made + 30.0);
        s = if good { s.deliver(&key, made + 25.0, true) } else { s.deliver(&key, made + 50.0, i % 2 == 0) };
    }
    for (i, t) in [40.0, 130.0, 220.0, 310.0].into_iter().enumerate() {
        let key = format!("e-{i}");
        s = s.escalate(&key, t, Severity::Medium);
        s = if good {
            s.ack(&key, t + 0.1).resolve(&key, t + 2.0)
        } else {
            s.ack(&key, t + 4.0).resolve(&key, t + 20.0)
        };
    }
    for m in 0..12 {
        s = s.meeting(3.0 + 30.0 * f64::from(m));
    }
    for q in 0..4 {
        let t = 60.0 + 90.0 * f64::from(q);
        let (nps, csat, ces) = if good { (10, 5, 1) } else { (3, 2, 6) };
        s = s
            .survey(t, SurveyScore::Nps(nps))
            .survey(t + 1.0, SurveyScore::Csat(csat))
            .survey(t + 2.0, SurveyScore::Ces(ces));
    }
    s
}

#[test]
fn story_no_assessment_leaves_health_as_the_evidence() {
    let s = at(&well_covered("plain", true), 365.0);
    assert_eq!(s.health.score, s.evidence.score);
    assert_eq!(s.health.confidence, s.evidence.confidence);
    assert!(s.health.factor("assessment").is_none());
}

#[test]
fn story_two_assessments_or_profiles_at_one_instant_score_alike_in_either_order() {
    // Two assessments recorded for the same instant, with different validity, and two
    // profiles stated at one instant: the log may hold either first (a backfill of one after
    // the other was appended live). The same one prevails both ways.
    let customer = |lifecycle| Profile { lifecycle: Some(lifecycle), ..Profile::default() };
    let story = well_covered("ties", false)
        .assess(150.0, 5, Some(200.0))
        .assess(150.0, 1, Some(20.0))
        .profile(100.0, customer(Lifecycle::Expansion))
        .profile(100.0, customer(Lifecycle::Churned));
    let forward = story.envelopes();
    let (mut assessed, mut rest): (Vec<Envelope>, Vec<Envelope>) = forward.iter().cloned().partition(|e| {
        matches!(e.event, rapport_core::Event::AssessmentRecorded { .. } | rapport_core::Event::AccountProfiled { .. })
    });
    assert_eq!(assessed.len(), 4);
    // The same events, each tied pair swapped, at the positions the swap gives them.
    assessed.swap(0, 1);
    assessed.swap(2, 3);
    rest.extend(assessed);
    let backward: Vec<Envelope> = rest
        .into_iter()
        .enumerate()
        .map(|(k, e)| Envelope { position: rapport_core::Position(k as u64 + 1), ..e })
        .collect();
    for days in [120.0, 160.0, 365.0] {
        let (a, pa) = fold(&forward, days);
        let (b, pb) = fold(&backward, days);
        assert_eq!(pa, pb, "day {days}: the same profile holds");
        assert!(
            (a.health.score - b.health.score).abs() < 1e-9,
            "day {days}: {} against {}",
            a.health.score,
            b.health.score
        );
        assert_eq!(a.health.confidence, b.health.confidence, "day {days}");
    }
}

#[test]
fn story_a_stale_green_cannot_keep_an_account_green() {
    // The evidence turned bad; a "5, all good" assessment was recorded on day 150 with the
    // default validity (90 days, so it lapsed on day 240).
    let story = well_covered("stale", false).assess(150.0, 5, None);
    let valid = at(&story, 200.0);
    assert!(valid.health.score > valid.evidence.score, "a valid assessment counts");
    let lapsed = at(&story, 365.0);
    let gap = lapsed.health.score - lapsed.evidence.score;
    println!(
        "stale green: health {:.1} ({:?}), evidence {:.1} ({:?}), gap {gap:.2} 125 days after lapse; while valid +{:.2}",
        lapsed.health.score,
        lapsed.health.band,
        lapsed.evidence.score,
        lapsed.evidence.band,
        valid.health.score - valid.evidence.score
    );
    assert!((0.0..0.5).contains(&gap), "125 days (four half-lives) after it lapsed, little is left: {gap:.2}");
    assert_eq!(lapsed.health.band, lapsed.evidence.band);
    assert_ne!(lapsed.health.band, Band::Green);
    // It left coverage: what remains is the evidence's.
    assert!((lapsed.health.confidence - lapsed.evidence.confidence).abs() < 1e-9);
    assert!(valid.health.confidence > valid.evidence.confidence);
}

#[test]
fn story_a_csm_who_says_green_while_the_evidence_says_red_is_flagged() {
    let story = well_covered("disagrees", false).assess(350.0, 5, None);
    let s = at(&story, 365.0);
    println!(
        "disagreement: health {:.1}, evidence {:.1} (coverage {:.2}); factors {:?}",
        s.health.score,
        s.evidence.score,
        s.evidence.confidence,
        s.health.factors.iter().map(|f| f.name.as_ref()).collect::<Vec<_>>()
    );
    assert!(s.evidence.confidence >= 0.5, "the evidence is well covered: {:.2}", s.evidence.confidence);
    let flag = s.health.factor("assessment_above_evidence").expect("the disagreement is a factor");
    assert_eq!(flag.weight, 0.0);
    assert_eq!(flag.top_events.len(), 1);
    // It moved health by at most its weight's share of the gap, and no band hides the evidence.
    let pull = s.health.score - s.evidence.score;
    assert!(pull > 0.0 && pull <= 0.10 * (100.0 - s.evidence.score) + 1e-9, "{pull:.2}");
    // The same assessment on the good account agrees: no flag.
    let agrees = at(&well_covered("agrees", true).assess(350.0, 5, None), 365.0);
    assert!(agrees.health.factors.iter().all(|f| !f.name.starts_with("assessment_")), "{:?}", agrees.health.factors);
}

#[test]
fn story_a_later_assessment_supersedes_an_earlier_one() {
    // A 5 on day 300 (valid 90 days), then a 1 on day 330: from day 330 only the 1 counts at
    // full strength; the 5 fades from then on.
    let story = well_covered("changed", true).assess(300.0, 5, Some(90.0)).assess(330.0, 1, None);
    let s = at(&story, 331.0);
    let only_low = at(&well_covered("changed", true).assess(330.0, 1, None), 331.0);
    assert!(s.health.score > only_low.health.score, "the 5 still fades");
    assert!(s.health.score < s.evidence.score, "the 1 holds: {:.1} vs {:.1}", s.health.score, s.evidence.score);
    // Backfilled in the other order, the same.
    let reversed = well_covered("changed", true).assess(330.0, 1, None).assess(300.0, 5, Some(90.0));
    assert_eq!(at(&reversed, 331.0).health.score, s.health.score);
}

fn profile(segment: &str, lifecycle: Lifecycle) -> Profile {
    Profile { segment: Some(segment.into()), lifecycle: Some(lifecycle), ..Profile::default() }
}

#[test]
fn story_as_of_t_uses_the_profile_as_it_was_then() {
    let base = Story::new("profiled").meeting(1.0);
    let story = base
        .clone()
        .profile(0.0, profile("smb", Lifecycle::Onboarding))
        .profile(100.0, profile("enterprise", Lifecycle::Expansion));
    assert_eq!(fold(&story.envelopes(), 50.0).1, Some(profile("smb", Lifecycle::Onboarding)));
    assert_eq!(fold(&story.envelopes(), 150.0).1, Some(profile("enterprise", Lifecycle::Expansion)));
    // The older profile backfilled after the newer one does not override it.
    let backfilled = base
        .profile(100.0, profile("enterprise", Lifecycle::Expansion))
        .profile(0.0, profile("smb", Lifecycle::Onboarding));
    assert_eq!(fold(&backfilled.envelopes(), 150.0).1, Some(profile("enterprise", Lifecycle::Expansion)));
    assert_eq!(fold(&backfilled.envelopes(), 50.0).1, Some(profile("smb", Lifecycle::Onboarding)));
    // A profile is not evidence: scores are the same without it.
    let plain = Story::new("profiled").meeting(1.0);
    assert_eq!(fold(&story.envelopes(), 150.0).0, fold(&plain.envelopes(), 150.0).0);
}

/// `events` (one account's history, before [`day`] 0) and then an assessment of its account at
/// `made`, as a log holds them.
fn with_assessment(
    mut events: Vec<rapport_core::NewEvent>,
    made: f64,
    sentiment: u8,
    valid_days: Option<f64>,
) -> Vec<Envelope> {
    let account = events.first().map_or_else(|| Story::new("p").account().clone(), |e| e.account.clone());
    let valid_until = valid_days.map(|d| day(made + d));
    let event = rapport_core::Event::AssessmentRecorded { sentiment, reason: "r".into(), valid_until };
    events.push(rapport_core::NewEvent::new(account, day(made), event));
    rapport_core::testing::envelopes(&events)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), ..ProptestConfig::default() })]

    /// An expired assessment's influence decreases monotonically with time since expiry: its
    /// share of the gap between its value and the evidence never grows.
    #[test]
    fn prop_an_expired_assessments_influence_only_decreases(
        events in arb_account_history(),
        sentiment in 1u8..=5,
        valid_days in 1.0f64..200.0,
        steps in proptest::collection::vec(0.5f64..60.0, 1..8),
    ) {
        // The history (2020-2022) long before the assessment (2024 and after).
        let made = 10.0;
        let envs = with_assessment(events, made, sentiment, Some(valid_days));
        let x = 100.0 * (f64::from(sentiment) - 1.0) / 4.0;
        let mut t = made + valid_days;
        let mut last = f64::INFINITY;
        for step in steps {
            t += step;
            let s = fold(&envs, t).0;
            let gap = x - s.evidence.score;
            if gap.abs() < 1.0 {
                continue;
            }
            let share = (s.health.score - s.evidence.score) / gap;
            prop_assert!(share >= -1e-9 && share <= last + 1e-9, "share {} after {}", share, last);
            last = share;
        }
    }

    /// A valid assessment moves health toward its value, by at most its weight.
    #[test]
    fn prop_a_valid_assessment_moves_health_toward_it_by_at_most_its_weight(
        events in arb_account_history(),
        sentiment in 1u8..=5,
        made in 0.0f64..900.0,
        into in 0.0f64..89.0,
    ) {
        let s = fold(&with_assessment(events, made, sentiment, None), made + into).0;
        let x = 100.0 * (f64::from(sentiment) - 1.0) / 4.0;
        let (moved, gap) = (s.health.score - s.evidence.score, x - s.evidence.score);
        prop_assert!(moved * gap >= -1e-9, "toward it: moved {} for a gap of {}", moved, gap);
        prop_assert!(moved.abs() <= 0.10 * gap.abs() + 1e-9, "by at most W: moved {} for a gap of {}", moved, gap);
    }
}

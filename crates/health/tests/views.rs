//! The views built on profiles: rollups of parent accounts and the renewal view, as stories
//! and properties (`docs/scoring.md`, "Rollups" and "Renewals").

use std::sync::Arc;

use proptest::prelude::*;
use rapport_core::profile::{Arr, Currency, Profile};
use rapport_core::testing::cases;
use rapport_core::testing::story::{Story, day};
use rapport_core::{AccountId, AsOf, Ledger, Severity};
use rapport_health::state::ProfileAt;
use rapport_health::{AccountScores, Direction, HealthModel, Scores, Trend, Weighting, renewals, rollups, score_all};

fn id(s: &str) -> AccountId {
    AccountId::new(s).unwrap()
}

fn usd(amount: f64) -> Option<Arr> {
    Some(Arr { amount, currency: Currency::new("USD").unwrap() })
}

/// Scores of `account` with health `health` (coverage 0.6) and the given profile, as a
/// portfolio would give them: for the views, which read only these.
fn scored(account: &str, health: f64, profile: Option<Profile>) -> AccountScores {
    let mut scores: Scores = rapport_health::HealthState::new().evaluate(&HealthModel::default(), day(0.0));
    scores.health.score = health;
    scores.health.confidence = 0.6;
    scores.health.noise = 2.0;
    AccountScores {
        account: id(account),
        as_of: day(0.0),
        scores,
        trend: Trend { delta: 0.0, noise: 1.0, direction: Direction::Steady },
        profile: profile
            .map(|profile| ProfileAt::new(day(0.0), rapport_core::EventId::from_bytes([1; 16]), &profile).unwrap()),
        model: Arc::new(rapport_health::ModelStamp::of(&HealthModel::default())),
    }
}

fn child_of(parent: &str, arr: Option<Arr>) -> Option<Profile> {
    Some(Profile { parent: Some(id(parent)), arr, ..Profile::default() })
}

#[test]
fn story_a_group_rolls_up_by_contract_value() {
    let scores = vec![
        scored("big", 40.0, child_of("group", usd(900_000.0))),
        scored("small", 90.0, child_of("group", usd(100_000.0))),
    ];
    let r = rollups(&HealthModel::default(), &scores);
    assert_eq!(r.rollups.len(), 1);
    let g = &r.rollups[0];
    assert_eq!(g.account, id("group"));
    assert!((g.health - 45.0).abs() < 1e-9, "0.9 * 40 + 0.1 * 90 = 45: {}", g.health);
    assert_eq!(g.weighting, Weighting::Arr { currency: "USD".into() });
    assert_eq!(g.value, 1_000_000.0);
    assert!((g.confidence - 0.6).abs() < 1e-9);
    // Without a contract value on one child, children weigh the same, and the rollup says so.
    let scores =
        vec![scored("big", 40.0, child_of("group", usd(900_000.0))), scored("small", 90.0, child_of("group", None))];
    let g = &rollups(&HealthModel::default(), &scores).rollups[0];
    assert!((g.health - 65.0).abs() < 1e-9);
    assert!(matches!(&g.weighting, Weighting::Equal { reason } if reason.contains("no contract value")));
}

#[test]
fn story_a_group_of_groups_rolls_up_level_by_level_and_a_cycle_is_reported() {
    let scores = vec![
        scored("a1", 80.0, child_of("emea", usd(1.0))),
        scored("a2", 60.0, child_of("emea", usd(1.0))),
        // The region's own events count too, weighted by its own contract value.
        scored("emea", 50.0, Some(Profile { parent: Some(id("world")), arr: usd(2.0), ..Profile::default() })),
        scored("b1", 90.0, child_of("world", usd(4.0))),
        // x and y name each other: reported, never looped on.
        scored("x", 10.0, child_of("y", usd(1.0))),
        scored("y", 20.0, child_of("x", usd(1.0))),
    ];
    let r = rollups(&HealthModel::default(), &scores);
    let get = |a: &str| r.rollups.iter().find(|x| x.account == id(a)).unwrap();
    assert!((get("emea").health - (80.0 + 60.0 + 2.0 * 50.0) / 4.0).abs() < 1e-9);
    // world: emea (rolled up, 60, its own ARR 2) and b1 (90, ARR 4).
    assert!((get("world").health - (2.0 * 60.0 + 4.0 * 90.0) / 6.0).abs() < 1e-9, "{}", get("world").health);
    assert_eq!(r.cycles, vec![vec![id("x"), id("y")]]);
    assert!(r.rollups.iter().all(|x| x.account != id("x") && x.account != id("y")));
}

#[test]
fn story_renewals_rank_the_falling_and_the_unknown_first() {
    let renews = |days: f64| Some(Profile { renews_at: Some(day(days)), arr: usd(50_000.0), ..Profile::default() });
    let mut falling = scored("falling", 70.0, renews(60.0));
    falling.trend = Trend { delta: -10.0, noise: 3.0, direction: Direction::Falling };
    let steady = scored("steady", 65.0, renews(30.0));
    let mut unknown = scored("unknown", 72.0, renews(20.0));
    unknown.scores.health.noise = 25.0;
    let later = scored("later", 10.0, renews(200.0));
    let none = scored("none", 5.0, None);
    let all = [falling, steady, unknown, later, none];
    let r = renewals(&HealthModel::default(), &all, 90.0);
    let order: Vec<&str> = r.iter().map(|x| x.account.as_str()).collect();
    // falling: 70 - 10/30 * 60 - 2 = 48; unknown: 72 - 25 = 47; steady: 65 - 2 = 63.
    assert_eq!(order, ["unknown", "falling", "steady"]);
    assert!((r[1].at_renewal - 48.0).abs() < 1e-9, "{}", r[1].at_renewal);
    assert_eq!(r[2].arr, Some((50_000.0, "USD".to_owned())));
    assert!((r[2].days_left - 30.0).abs() < 1e-9);
}

#[test]
fn renewals_read_the_profile_as_of_the_instant_scored() {
    // Through a real fold: the renewal date of the profile as of T.
    let story = Story::new("acme")
        .meeting(1.0)
        .escalate("e", 2.0, Severity::Low)
        .profile(0.0, Profile { renews_at: Some(day(100.0)), ..Profile::default() })
        .profile(50.0, Profile { renews_at: Some(day(400.0)), ..Profile::default() });
    let ledger = Ledger::memory();
    ledger.blocking().append(story.events().to_vec(), rapport_core::ExpectedVersion::Any).unwrap();
    let model = HealthModel::default();
    let at = |d: f64| pollster::block_on(score_all(&ledger, &model, AsOf::at(day(d)))).unwrap();
    assert_eq!(renewals(&model, &at(20.0), 90.0).len(), 1, "as of day 20 it renews on day 100");
    assert!(renewals(&model, &at(60.0), 90.0).is_empty(), "as of day 60 the renewal moved to day 400");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(128), ..ProptestConfig::default() })]

    /// A parent whose children are all identical has the child's health.
    #[test]
    fn prop_identical_children_give_the_childs_health(h in 0.0f64..100.0, n in 1usize..12, arr in proptest::option::of(1.0f64..1e9)) {
        let scores: Vec<AccountScores> =
            (0..n).map(|i| scored(&format!("c{i}"), h, child_of("p", arr.and_then(usd)))).collect();
        let r = rollups(&HealthModel::default(), &scores);
        prop_assert!((r.rollups[0].health - h).abs() < 1e-9);
    }

    /// Adding a child with higher health (weighed the same way) never lowers the parent's.
    #[test]
    fn prop_a_healthier_child_never_lowers_the_parent(
        kids in proptest::collection::vec((0.0f64..100.0, 1.0f64..1e6), 1..10),
        extra in 0.0f64..=100.0,
        extra_arr in 1.0f64..1e6,
        by_arr in any::<bool>(),
    ) {
        let arr = |a: f64| if by_arr { usd(a) } else { None };
        let mut scores: Vec<AccountScores> =
            kids.iter().enumerate().map(|(i, (h, a))| scored(&format!("c{i}"), *h, child_of("p", arr(*a)))).collect();
        let before = rollups(&HealthModel::default(), &scores).rollups[0].health;
        let added = before.max(extra);
        scores.push(scored("new", added, child_of("p", arr(extra_arr))));
        let after = rollups(&HealthModel::default(), &scores).rollups[0].health;
        prop_assert!(after >= before - 1e-9, "{} -> {}", before, after);
    }
}

#[test]
fn the_score_table_marks_a_tentative_band() {
    // Health 74 ± 1.28·2 straddles green's 75: yellow, tentative. 40 is plainly red.
    let with_health = |account: &str, health: f64| {
        let mut s = scored(account, health, None);
        let composed = rapport_trust::Composed { score: health, confidence: 0.6, noise: 2.0, factors: Vec::new() };
        s.scores.health = rapport_trust::Score::new(composed, &rapport_trust::Bands::default(), "m/1".into());
        s
    };
    let (near, clear) = (with_health("near-edge", 74.0), with_health("clear", 40.0));
    assert!(near.scores.health.tentative && !clear.scores.health.tentative);
    let mut out = Vec::new();
    rapport_health::write_table(&mut out, &[near, clear]).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.lines().any(|l| l.starts_with("near-edge") && l.contains(" yellow? ")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("clear") && l.contains(" red ") && !l.contains('?')), "{text}");
}

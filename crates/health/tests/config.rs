//! Scoring configurations: models loaded from files, a model per segment, and the stamps every
//! score carries (`docs/scoring.md`, "Models per segment").

use proptest::prelude::*;
use rapport_core::profile::Profile;
use rapport_core::testing::cases;
use rapport_core::testing::story::{Story, day};
use rapport_core::testing::synth::{SynthConfig, generate};
use rapport_core::{AccountId, AsOf, ExpectedVersion, Ledger, Severity, SurveyScore};
use rapport_health::{
    ConfigError, HealthModel, ModelStamp, ScoringConfig, score_account_with, score_all, score_all_with, timeline_with,
};

fn enterprise() -> HealthModel {
    let mut m = HealthModel { id: "acme-enterprise".into(), version: 3, ..HealthModel::default() };
    m.weights.trust = 0.6;
    m.weights.escalation_load = 0.4;
    m.bands.green_from = 85.0;
    m
}

fn config() -> ScoringConfig {
    let mut c = ScoringConfig::single(HealthModel { id: "acme".into(), ..HealthModel::default() });
    c.segments.insert("enterprise".into(), enterprise());
    c
}

fn profiled(segment: &str) -> Profile {
    Profile { segment: Some(segment.into()), ..Profile::default() }
}

#[test]
fn an_account_is_scored_under_its_segments_model_from_its_profiles_time() {
    let story = Story::new("big")
        .commit("c", 1.0, 30.0)
        .deliver("c", 20.0, true)
        .escalate("e", 40.0, Severity::High)
        .ack("e", 40.5)
        .survey(50.0, SurveyScore::Nps(9))
        .profile(100.0, profiled("enterprise"));
    let other = Story::new("small").meeting(5.0).profile(0.0, profiled("smb"));
    let ledger = Ledger::memory();
    for s in [&story, &other] {
        ledger.blocking().append(s.events().to_vec(), ExpectedVersion::Any).unwrap();
    }
    let config = config();
    let at = |d: f64| pollster::block_on(score_all_with(&ledger, &config, AsOf::at(day(d)))).unwrap();
    let (before, after) = (at(90.0), at(120.0));
    let big = |v: &[rapport_health::AccountScores]| v.iter().find(|s| s.account.as_str() == "big").unwrap().clone();
    // Before its profile, the default; from it, the enterprise model (whose stamp it carries).
    assert_eq!(*big(&before).model, ModelStamp::of(&config.default));
    assert_eq!(*big(&after).model, ModelStamp::of(&enterprise()));
    assert_eq!(big(&after).scores.health.model, "acme-enterprise/3");
    // A segment without a model of its own takes the default.
    let small = after.iter().find(|s| s.account.as_str() == "small").unwrap();
    assert_eq!(small.model.name, "acme/1");
    // The same as scoring the account alone, or under the enterprise model directly.
    let id = AccountId::new("big").unwrap();
    let alone = pollster::block_on(score_account_with(&ledger, &config, &id, AsOf::at(day(120.0)))).unwrap();
    assert_eq!(alone, big(&after));
    let direct = pollster::block_on(score_all(&ledger, &enterprise(), AsOf::at(day(120.0)))).unwrap();
    assert_eq!(big(&direct).scores, big(&after).scores);
    // A timeline switches model where the profile does, and names it.
    let line = timeline_with(&config, ledger.blocking().read_stream(&id).unwrap(), &[day(90.0), day(120.0)], None);
    assert_eq!(line[0].1.health.model, "acme/1");
    assert_eq!(line[1].1.health.model, "acme-enterprise/3");
    assert_eq!(line[1].1, big(&after).scores);
}

#[test]
fn two_profiles_at_one_instant_pick_one_segment_in_either_order() {
    // The same two profiles, stated at one instant with different segments, logged in the two
    // orders: every way of finding the segment picks the same one both times.
    let story = Story::new("tied").meeting(5.0).profile(100.0, profiled("enterprise")).profile(100.0, profiled("smb"));
    let events = story.events().to_vec();
    let mut swapped = events.clone();
    let n = swapped.len();
    swapped.swap(n - 2, n - 1);
    let config = config();
    let id = AccountId::new("tied").unwrap();
    let models: Vec<(String, String, String)> = [events, swapped]
        .into_iter()
        .map(|log| {
            let ledger = Ledger::memory();
            ledger.blocking().append(log, ExpectedVersion::Any).unwrap();
            let all = pollster::block_on(score_all_with(&ledger, &config, AsOf::at(day(120.0)))).unwrap();
            let one = pollster::block_on(score_account_with(&ledger, &config, &id, AsOf::at(day(120.0)))).unwrap();
            let line = timeline_with(&config, ledger.blocking().read_stream(&id).unwrap(), &[day(120.0)], None);
            (all[0].model.name.clone(), one.model.name.clone(), line[0].1.health.model.clone())
        })
        .collect();
    assert_eq!(models[0], models[1], "{models:?}");
    assert_eq!(models[0].0, models[0].1);
    assert_eq!(models[0].0, models[0].2);
}

#[test]
fn a_configuration_file_is_checked_and_its_errors_name_the_model() {
    let ok = r#"{"default": {"id": "acme", "version": 2}, "segments": {"enterprise": {"id": "acme-ent", "bands": {"green_from": 80, "yellow_from": 55, "grey_below": 0.35}}}}"#;
    let c = ScoringConfig::from_json(ok).unwrap();
    assert_eq!(c.model_for(Some("enterprise")).stamp(), "acme-ent/1");
    assert_eq!(c.model_for(Some("smb")).stamp(), "acme/2");
    assert_eq!(c.default.weights, HealthModel::default().weights, "omitted fields at their defaults");
    let bad = |text: &str| ScoringConfig::from_json(text).unwrap_err();
    assert!(matches!(bad(r#"{"default": {"nope": 1}}"#), ConfigError::Shape { .. }));
    assert!(matches!(bad(r#"{"defaults": {}}"#), ConfigError::Shape { .. }));
    let e = bad(r#"{"segments": {"smb": {"nps": {"prior_mean": 0.5, "prior_strength": 3, "half_life_days": -1}}}}"#);
    assert!(e.to_string().contains("model segments.smb: nps.half_life_days"), "{e}");
    let e = bad(r#"{"default": {"bands": {"green_from": 40, "yellow_from": 50, "grey_below": 0.3}}}"#);
    assert!(e.to_string().contains("model default: bands"), "{e}");
    // The trust model inside is checked too, its fields named from `trust.`.
    let e = bad(r#"{"default": {"trust": {"late_half_life_days": 0}}}"#);
    assert!(e.to_string().contains("model default: trust.late_half_life_days: 0 is not a positive number"), "{e}");
    let sla = r#"{"low": {"acknowledge_hours": 72, "resolve_hours": 336, "weight": 0.5}, "medium": {"acknowledge_hours": 24, "resolve_hours": 168, "weight": 1}, "high": {"acknowledge_hours": -4, "resolve_hours": 72, "weight": 2}, "critical": {"acknowledge_hours": 1, "resolve_hours": 24, "weight": 4}}"#;
    let e = bad(&format!(r#"{{"segments": {{"smb": {{"trust": {{"sla": {sla}}}}}}}}}"#));
    assert!(e.to_string().contains("model segments.smb: trust.sla.high.acknowledge_hours"), "{e}");
    // A file: its name in the error, and a size limit.
    let dir = std::env::temp_dir().join(format!("rapport-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.json");
    std::fs::write(&path, "{").unwrap();
    assert!(ScoringConfig::from_file(&path).unwrap_err().to_string().contains("model.json"));
    std::fs::write(&path, " ".repeat(2 << 20)).unwrap();
    assert!(matches!(ScoringConfig::from_file(&path).unwrap_err(), ConfigError::TooLarge { .. }));
    std::fs::remove_dir_all(&dir).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(24), ..ProptestConfig::default() })]

    /// Scoring under a model loaded from its file equals scoring under the same model built in
    /// code.
    #[test]
    fn prop_a_model_from_its_file_scores_as_the_same_model_in_code(
        trust in 0.05f64..1.0,
        nps_half_life in 10.0f64..400.0,
        load_divisor in 0.5f64..10.0,
        green in 60.0f64..95.0,
        weight in 0.0f64..0.5,
        seed in 0u64..1_000,
    ) {
        let mut m = HealthModel { id: "tuned".into(), version: 7, ..HealthModel::default() };
        m.weights.trust = trust;
        m.nps.half_life_days = nps_half_life;
        m.load_divisor = load_divisor;
        m.bands.green_from = green;
        m.assessment.weight = weight;
        let file = serde_json::json!({ "default": m }).to_string();
        let loaded = ScoringConfig::from_json(&file).unwrap();
        prop_assert_eq!(&loaded.default, &m);
        let ledger = Ledger::memory();
        let events: Vec<_> = generate(SynthConfig { accounts: 4, months: 12, seed, ..Default::default() }).collect();
        ledger.blocking().append(events, ExpectedVersion::Any).unwrap();
        let as_of = AsOf::at(rapport_core::Timestamp::parse("2021-03-01T00:00:00Z").unwrap());
        let from_file = pollster::block_on(score_all_with(&ledger, &loaded, as_of)).unwrap();
        let in_code = pollster::block_on(score_all(&ledger, &m, as_of)).unwrap();
        prop_assert_eq!(from_file, in_code);
    }
}

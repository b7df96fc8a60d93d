//! The runner under a scoring configuration with segment models: at every instant each
//! account's scores equal a fold from scratch under the model of its segment as of then, once
//! the accounts whose segment changed model have been folded again from their streams.

use std::collections::HashMap;

use proptest::prelude::*;
use rapport_core::profile::Profile;
use rapport_core::testing::strategies::{BASE, arb_portfolio};
use rapport_core::{AccountId, AsOf, Envelope, Event, EventId, ExpectedVersion, Ledger, NewEvent, Position, Timestamp};
use rapport_health::{AccountScores, CheckpointError, HealthModel, Portfolio, Runner, ScoringConfig};

const DAY: i64 = 86_400_000_000_000;

fn config() -> ScoringConfig {
    let mut enterprise = HealthModel { id: "enterprise".into(), ..HealthModel::default() };
    enterprise.weights.trust = 0.6;
    enterprise.trust.reliability.half_life_days = 90.0;
    let mut smb = HealthModel { id: "smb".into(), ..HealthModel::default() };
    smb.weights.engagement = 0.3;
    smb.bands.green_from = 70.0;
    let mut c = ScoringConfig::default();
    c.segments.insert("enterprise".into(), enterprise);
    c.segments.insert("smb".into(), smb);
    c
}

/// `events` with profiles added: (account index, day, segment index) — segment 2 has no model.
fn with_profiles(mut events: Vec<NewEvent>, profiles: &[(usize, i64, usize)]) -> Vec<NewEvent> {
    let accounts: Vec<AccountId> = {
        let mut a: Vec<AccountId> = events.iter().map(|e| e.account.clone()).collect();
        a.sort();
        a.dedup();
        a
    };
    for (i, &(who, day, segment)) in profiles.iter().enumerate() {
        let Some(account) = accounts.get(who % accounts.len().max(1)) else { continue };
        let segment = ["enterprise", "smb", "partner"][segment % 3];
        let profile = Profile { segment: Some(segment.into()), ..Profile::default() };
        let mut e = NewEvent {
            id: EventId::derive(format!("p{i}").as_bytes()),
            account: account.clone(),
            occurred_at: BASE.add_nanos(day * DAY),
            event: Event::AccountProfiled { profile: Box::new(profile) },
            meta: Default::default(),
        };
        e.id = EventId::derive(&[e.canonical_content(), vec![i as u8]].concat());
        // Inserted among the others: some arrive before the account's history, some after.
        let at = (day as usize * 7 + i) % (events.len() + 1);
        events.insert(at, e);
    }
    events
}

/// A fold from scratch of `events` as of `at`, each account under its segment's model then.
fn reference(config: &ScoringConfig, events: &[Envelope], at: Timestamp) -> Vec<AccountScores> {
    let as_of = AsOf::at(at);
    // The latest profile by time, then (for two at one instant) by event id.
    let mut latest: HashMap<AccountId, ((Timestamp, EventId), Option<String>)> = HashMap::new();
    for e in events.iter().filter(|e| e.occurred_at <= at) {
        if let Event::AccountProfiled { profile } = &e.event {
            let key = (e.occurred_at, e.id);
            let held = latest.entry(e.account.clone()).or_insert((key, None));
            if held.0 <= key {
                *held = (key, profile.segment.clone());
            }
        }
    }
    let segments: HashMap<AccountId, String> = latest.into_iter().filter_map(|(a, (_, s))| Some((a, s?))).collect();
    let mut p = Portfolio::with_segments(config, as_of, &segments);
    for e in events {
        p.apply_envelope(e);
    }
    p.finish()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

fn check(runner: &Runner, config: &ScoringConfig, applied: &[Envelope]) -> Result<(), TestCaseError> {
    prop_assert!(runner.awaiting_history().is_empty());
    for w in reference(config, applied, runner.now()) {
        let got = runner.scores(&w.account).expect("an account the reference scores");
        prop_assert_eq!(&got.model, &w.model, "{}", w.account);
        for (g, r) in [(&got.scores.trust, &w.scores.trust), (&got.scores.health, &w.scores.health)] {
            prop_assert!(close(g.score, r.score) && g.band == r.band, "{}: {} vs {}", w.account, g.score, r.score);
        }
        prop_assert!(close(got.trend.delta, w.trend.delta), "trend of {}", w.account);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(rapport_core::testing::cases(32)))]

    /// Events arrive in chunks, time advances between them, profiles switch accounts between
    /// segments with their own models, one without, and back; after each chunk the host
    /// folds again the accounts awaiting their history, and a checkpoint taken midway
    /// restores to the same runner.
    #[test]
    fn the_runner_under_segment_models_equals_a_fold_from_scratch(
        events in arb_portfolio(),
        profiles in proptest::collection::vec((0usize..4, 0i64..500, 0usize..3), 0..6),
        steps in proptest::collection::vec((0usize..40, 1i64..120), 1..6),
        start_day in -30i64..300,
        restart in 0usize..6,
    ) {
        let config = config();
        let ledger = Ledger::memory();
        ledger.blocking().append(with_profiles(events, &profiles), ExpectedVersion::Any).expect("a valid history");
        let log: Vec<Envelope> = ledger.blocking().read_all_page(Position(1), usize::MAX).expect("read");
        let mut at = BASE.add_nanos(start_day * DAY);
        let mut runner = Runner::with_config(&config, at).with_refresh(None);
        let mut applied = 0;
        for (step, (chunk, days)) in steps.into_iter().enumerate() {
            let upto = (applied + chunk).min(log.len());
            for e in &log[applied..upto] {
                runner.apply(&e.view());
            }
            applied = upto;
            at = at.add_nanos(days * DAY);
            runner.advance(at);
            pollster::block_on(runner.refold_from(ledger.store())).expect("refold");
            check(&runner, &config, &log[..applied])?;
            if step == restart {
                let bytes = runner.checkpoint([7; 16]);
                runner = Runner::restore_with(&config, [7; 16], &bytes).expect("restores");
                check(&runner, &config, &log[..applied])?;
            }
        }
    }
}

#[test]
fn an_account_whose_segment_changes_model_awaits_its_history_then_scores_under_it() {
    let config = config();
    let story = rapport_core::testing::story::Story::new("acme")
        .commit("c", 1.0, 20.0)
        .deliver("c", 15.0, true)
        .meeting(30.0)
        .profile(40.0, Profile { segment: Some("enterprise".into()), ..Profile::default() });
    let ledger = Ledger::memory();
    ledger.blocking().append(story.events().to_vec(), ExpectedVersion::Any).unwrap();
    let log = ledger.blocking().read_all_page(Position(1), 100).unwrap();
    let at = rapport_core::testing::story::day(60.0);
    let mut runner = Runner::with_config(&config, at);
    for e in &log {
        runner.apply(&e.view());
    }
    let acme = story.account().clone();
    assert_eq!(runner.awaiting_history(), vec![acme.clone()]);
    assert!(runner.scores(&acme).is_none() && runner.all_scores().is_empty(), "no scores meanwhile");
    assert_eq!(pollster::block_on(runner.refold_from(ledger.store())).unwrap(), 1);
    let scored = runner.scores(&acme).unwrap();
    assert_eq!(scored.model.name, "enterprise/1");
    assert_eq!(scored.scores, reference(&config, &log, at)[0].scores);
    // Saved under this configuration, refused under another, naming why.
    let bytes = runner.checkpoint([3; 16]);
    let err = Runner::restore(&HealthModel::default(), [3; 16], &bytes).unwrap_err();
    assert!(matches!(err, CheckpointError::OtherModel { .. }), "{err}");
    assert_eq!(Runner::restore_with(&config, [3; 16], &bytes).unwrap().scores(&acme), Some(scored));
}

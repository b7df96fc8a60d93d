//! The runner against `score_all`: at every instant it is advanced to, each account's scores
//! and trend, and the at-risk ranking, equal a fold of the same events from scratch.

use proptest::prelude::*;
use rapport_core::testing::strategies::{BASE, arb_portfolio};
use rapport_core::{AccountId, AsOf, Envelope, NewEvent, Position, StreamVersion, Timestamp};
use rapport_health::{AccountScores, HealthModel, Portfolio, Runner, Score, rank_at_risk};

const DAY: i64 = 86_400_000_000_000;

fn envelopes(events: &[NewEvent]) -> Vec<Envelope> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| Envelope::new(e.clone(), e.occurred_at, StreamVersion(1), Position(i as u64 + 1)))
        .collect()
}

fn reference(model: &HealthModel, events: &[Envelope], at: Timestamp) -> Vec<AccountScores> {
    let mut portfolio = Portfolio::new(model, AsOf::at(at));
    for e in events {
        portfolio.apply(e);
    }
    portfolio.finish()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

fn same_score(a: &Score, b: &Score) -> bool {
    close(a.score, b.score) && close(a.confidence, b.confidence) && a.band == b.band
}

fn check(runner: &mut Runner, model: &HealthModel, applied: &[Envelope]) -> Result<(), TestCaseError> {
    let want = reference(model, applied, runner.now());
    prop_assert_eq!(runner.n_accounts() >= want.len(), true);
    for w in &want {
        let got = runner.scores(&w.account).expect("an account the reference scores");
        prop_assert!(
            same_score(&got.scores.trust, &w.scores.trust),
            "trust of {}: {:?} vs {:?}",
            w.account,
            got.scores.trust.score,
            w.scores.trust.score
        );
        prop_assert!(same_score(&got.scores.health, &w.scores.health), "health of {}", w.account);
        prop_assert!(
            close(got.trend.delta, w.trend.delta),
            "trend of {}: {} vs {}",
            w.account,
            got.trend.delta,
            w.trend.delta
        );
        prop_assert_eq!(got.trend.direction, w.trend.direction);
    }
    // The ranking: the same accounts, in an order the reference's values agree with.
    let ranked: Vec<AccountScores> = runner.at_risk(usize::MAX);
    let expected: Vec<&AccountScores> = rank_at_risk(&want);
    let mut got_accounts: Vec<&AccountId> = ranked.iter().map(|s| &s.account).collect();
    let mut want_accounts: Vec<&AccountId> = expected.iter().map(|s| &s.account).collect();
    for (g, w) in ranked.iter().zip(&expected) {
        prop_assert!(close(g.scores.health.score, w.scores.health.score), "rank order: {} vs {}", g.account, w.account);
    }
    got_accounts.sort();
    want_accounts.sort();
    prop_assert_eq!(got_accounts, want_accounts);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(rapport_core::testing::cases(48)))]

    /// Events arrive in log order in chunks, time advances between chunks (sometimes past
    /// events not yet applied, sometimes short of events already applied, which are held),
    /// and at every instant the runner equals a fold from scratch of what it was given.
    #[test]
    fn the_runner_equals_score_all_at_every_instant(
        events in arb_portfolio(),
        steps in proptest::collection::vec((0usize..40, 1i64..120), 1..8),
        start_day in -30i64..400,
    ) {
        let model = HealthModel::default();
        let log = envelopes(&events);
        let mut at = BASE.add_nanos(start_day * DAY);
        let mut runner = Runner::new(&model, at).with_refresh(None);
        let mut applied = 0;
        for (chunk, days) in steps {
            let upto = (applied + chunk).min(log.len());
            for e in &log[applied..upto] {
                runner.apply(e);
            }
            applied = upto;
            at = at.add_nanos(days * DAY);
            runner.advance(at);
            check(&mut runner, &model, &log[..applied])?;
        }
        for e in &log[applied..] {
            runner.apply(e);
        }
        runner.advance(at.add_nanos(DAY));
        check(&mut runner, &model, &log)?;
        prop_assert_eq!(runner.position(), Position(log.len() as u64 + 1));
    }
}

#[test]
fn with_a_refresh_interval_the_ranking_catches_up_when_accounts_fall_due() {
    let model = HealthModel::default();
    let events: Vec<NewEvent> = rapport_core::testing::synth::generate(rapport_core::testing::SynthConfig {
        accounts: 30,
        months: 12,
        seed: 11,
        ..Default::default()
    })
    .collect();
    let log = envelopes(&events);
    let start = log.iter().map(|e| e.occurred_at).max().unwrap_or(BASE);
    let mut runner = Runner::new(&model, start).with_refresh(Some(std::time::Duration::from_secs(3_600)));
    for e in &log {
        runner.apply(e);
    }
    // Sixty days of quiet: scores decay; after the refresh interval every account has been
    // re-ranked, and the ranking is the reference's.
    let later = start.add_nanos(60 * DAY);
    runner.advance(later.add_nanos(-7_200_000_000_000));
    runner.advance(later);
    let want = reference(&model, &log, later);
    let expected: Vec<&AccountId> = rank_at_risk(&want).iter().map(|s| &s.account).collect();
    let got: Vec<AccountId> = runner.at_risk(usize::MAX).into_iter().map(|s| s.account).collect();
    assert_eq!(got.iter().collect::<Vec<_>>(), expected);
}

//! The runner against `score_all`: at every instant it is advanced to, each account's scores
//! and trend, and the at-risk ranking, equal a fold of the same events from scratch.

use proptest::prelude::*;
use rapport_core::testing::envelopes;
use rapport_core::testing::strategies::{BASE, arb_portfolio};
use rapport_core::{AccountId, AsOf, Envelope, NewEvent, Position, Timestamp};
use rapport_health::{AccountScores, HealthModel, Portfolio, Runner, Score, rank_at_risk};

const DAY: i64 = 86_400_000_000_000;

/// A fold of `events` from scratch; the same three ways a portfolio is fed (views of owned
/// events, owned events, views decoded in place from the binary form, whose ids carry no
/// hash and whose text is not the owned events') must agree exactly.
fn reference(model: &HealthModel, events: &[Envelope], at: Timestamp) -> Vec<AccountScores> {
    let mut viewed = Portfolio::new(model, AsOf::at(at));
    let mut owned = Portfolio::new(model, AsOf::at(at));
    let mut decoded = Portfolio::new(model, AsOf::at(at));
    let mut bytes = Vec::new();
    for e in events {
        viewed.apply(&e.view());
        owned.apply_envelope(e);
        bytes.clear();
        // The stripped form a store that seals personal text lends: the same scores.
        rapport_core::codec::encode_event_stripped(&e.to_new_event(), &mut bytes);
        let c =
            rapport_core::codec::decode_content(&bytes, rapport_core::codec::TextPlace::Content).expect("reads back");
        let view = rapport_core::EnvelopeRef {
            id: c.id,
            account: c.account,
            occurred_at: c.occurred_at,
            recorded_at: e.recorded_at,
            stream_version: e.stream_version,
            position: e.position,
            event: c.event,
            meta: Default::default(),
            text: rapport_core::TextState::Withheld,
        };
        decoded.apply(&view);
    }
    let scores = viewed.finish();
    assert_eq!(owned.finish(), scores, "owned events fold as their views");
    assert_eq!(decoded.finish(), scores, "decoded views without their personal text fold as views of owned events");
    scores
}

/// A generated history of `accounts` accounts over `months` months.
fn synth(accounts: u32, months: u32, seed: u64) -> Vec<NewEvent> {
    rapport_core::testing::synth::generate(rapport_core::testing::SynthConfig {
        accounts,
        months,
        seed,
        ..Default::default()
    })
    .collect()
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
                runner.apply(&e.view());
            }
            applied = upto;
            at = at.add_nanos(days * DAY);
            runner.advance(at);
            check(&mut runner, &model, &log[..applied])?;
        }
        for e in &log[applied..] {
            runner.apply(&e.view());
        }
        runner.advance(at.add_nanos(DAY));
        check(&mut runner, &model, &log)?;
        prop_assert_eq!(runner.position(), Position(log.len() as u64 + 1));
    }
}

#[test]
fn scores_answer_every_event_applied_even_before_time_moves() {
    let model = HealthModel::default();
    let events: Vec<NewEvent> = synth(12, 12, 5);
    let log = envelopes(&events);
    let end = log.iter().map(|e| e.occurred_at).max().unwrap_or(BASE);
    // Half the log, then time moves to the end: every account is ranked there.
    let (first, rest) = log.split_at(log.len() / 2);
    let mut runner = Runner::new(&model, BASE);
    for e in first {
        runner.apply(&e.view());
    }
    runner.advance(end);
    let ranked = runner.all_scores();
    assert_eq!(ranked, reference(&model, first, end));
    // The rest folds in without time moving (a runner not yet live settles nothing): every
    // answer is the fold of everything applied, not what was ranked last.
    for e in rest {
        runner.apply(&e.view());
    }
    let want = reference(&model, &log, end);
    assert_ne!(ranked, want, "the rest of the log changes some scores");
    assert_eq!(runner.all_scores(), want);
    for s in &want {
        assert_eq!(runner.scores(&s.account).as_ref(), Some(s));
    }
}

#[test]
fn with_a_refresh_interval_the_ranking_catches_up_when_accounts_fall_due() {
    let model = HealthModel::default();
    let events: Vec<NewEvent> = synth(30, 12, 11);
    let log = envelopes(&events);
    let start = log.iter().map(|e| e.occurred_at).max().unwrap_or(BASE);
    let mut runner = Runner::new(&model, start).with_refresh(Some(std::time::Duration::from_secs(3_600)));
    for e in &log {
        runner.apply(&e.view());
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

mod checkpoints {
    use super::*;
    use rapport_health::{CheckpointError, HealthWeights};

    const LOG: [u8; 16] = [3; 16];

    fn history() -> Vec<Envelope> {
        envelopes(&synth(40, 18, 5))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(rapport_core::testing::cases(8)))]

        /// A runner restored from a checkpoint taken anywhere goes on exactly as the one that
        /// never stopped: the same scores, ranking and signals (ids included), and no signal
        /// reported twice.
        #[test]
        fn a_restored_runner_goes_on_as_if_it_never_stopped(cut in 0.1f64..0.95, live_at in 0.0f64..1.0) {
            let model = HealthModel::default();
            let log = history();
            let start = log[0].occurred_at;
            let end = log.iter().map(|e| e.occurred_at).max().unwrap();
            let span = end.unix_nanos() - start.unix_nanos();
            let at = |f: f64| start.add_nanos((span as f64 * f) as i64);
            let mut a = Runner::new(&model, at(0.0));
            let cut = (log.len() as f64 * cut) as usize;
            let (mut signals_a, mut signals_b) = (Vec::new(), Vec::new());
            for (i, e) in log[..cut].iter().enumerate() {
                a.apply(&e.view());
                if i % 500 == 0 {
                    a.advance(e.occurred_at);
                    if e.occurred_at >= at(live_at) && !a.is_live() {
                        a.go_live();
                    }
                    signals_a.extend(a.take_signals());
                }
            }
            signals_b.extend(signals_a.iter().cloned());
            let bytes = a.checkpoint(LOG);
            let mut b = Runner::restore(&model, LOG, &bytes).expect("restore");
            prop_assert_eq!(b.position(), a.position());
            // What was raised and not yet taken is in the checkpoint: both hand it over once.
            prop_assert_eq!(b.take_signals(), a.take_signals());
            for (i, e) in log[cut..].iter().enumerate() {
                for r in [&mut a, &mut b] {
                    r.apply(&e.view());
                    if i % 500 == 0 {
                        r.advance(e.occurred_at);
                        if e.occurred_at >= at(live_at) && !r.is_live() {
                            r.go_live();
                        }
                    }
                }
                signals_a.extend(a.take_signals());
                signals_b.extend(b.take_signals());
            }
            let later = end.add_nanos(90 * DAY);
            a.advance(later);
            b.advance(later);
            signals_a.extend(a.take_signals());
            signals_b.extend(b.take_signals());
            if signals_a != signals_b {
                let first = signals_a.iter().zip(&signals_b).position(|(x, y)| x != y);
                let show = |v: &[rapport_health::Signal], i: Option<usize>| {
                    i.and_then(|i| v.get(i)).map(|s| format!("{} {} {:?} {:?}", s.account, s.at, s.cause, s.kind))
                };
                prop_assert!(
                    false,
                    "{} signals against {} after a restore; first difference at {:?}: {:?} vs {:?}",
                    signals_a.len(),
                    signals_b.len(),
                    first,
                    show(&signals_a, first),
                    show(&signals_b, first)
                );
            }
            let mut ids: Vec<_> = signals_a.iter().map(|s| s.id).collect();
            ids.sort();
            ids.dedup();
            prop_assert_eq!(ids.len(), signals_a.len(), "no signal twice");
            for s in a.at_risk(usize::MAX) {
                let other = b.scores(&s.account).expect("the same accounts");
                prop_assert!(same_score(&s.scores.health, &other.scores.health));
                prop_assert!(same_score(&s.scores.trust, &other.scores.trust));
                prop_assert!(close(s.trend.delta, other.trend.delta));
            }
            let order = |r: &mut Runner| r.at_risk(usize::MAX).into_iter().map(|s| s.account).collect::<Vec<_>>();
            prop_assert_eq!(order(&mut a), order(&mut b));
        }
    }

    #[test]
    fn a_checkpoint_of_another_log_or_model_or_damaged_is_refused_with_the_reason() {
        let model = HealthModel::default();
        let log = history();
        let mut runner = Runner::new(&model, log.last().unwrap().occurred_at);
        for e in &log {
            runner.apply(&e.view());
        }
        assert_eq!(runner.checkpoint_age(), None, "no checkpoint taken yet");
        let bytes = runner.checkpoint(LOG);
        assert!(runner.checkpoint_age().is_some_and(|age| age < std::time::Duration::from_secs(60)));
        let restored = Runner::restore(&model, LOG, &bytes);
        assert!(restored.is_ok_and(|r| r.checkpoint_age().is_some()));
        assert!(matches!(Runner::restore(&model, [4; 16], &bytes), Err(CheckpointError::OtherLog { .. })));
        let other =
            HealthModel { weights: HealthWeights { nps: 2.0, ..HealthWeights::default() }, ..HealthModel::default() };
        assert!(matches!(Runner::restore(&other, LOG, &bytes), Err(CheckpointError::OtherModel { .. })));
        for at in [0, 30, bytes.len() / 2, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            let err = Runner::restore(&model, LOG, &damaged).unwrap_err();
            assert!(matches!(err, CheckpointError::Derived(_)), "flip at {at}: {err}");
        }
        assert!(Runner::restore(&model, LOG, &bytes[..bytes.len() - 9]).is_err());
        eprintln!(
            "{} accounts, {} events: checkpoint of {} bytes ({:.0} per account)",
            runner.n_accounts(),
            log.len(),
            bytes.len(),
            bytes.len() as f64 / runner.n_accounts() as f64
        );
    }
}

#[test]
fn a_checkpoint_saved_beside_a_log_restores_there_and_is_refused_beside_another() {
    use rapport_core::{ExpectedVersion, MemoryStore, Store};
    let model = HealthModel::default();
    let store = MemoryStore::new();
    let events: Vec<NewEvent> = synth(5, 6, 2);
    pollster::block_on(store.append(events.clone(), ExpectedVersion::Any)).unwrap();
    let log = pollster::block_on(store.read_all(Position(1), 100_000)).unwrap();
    let mut runner = Runner::new(&model, log.iter().map(|e| e.occurred_at).max().unwrap());
    for e in &log {
        runner.apply(&e.view());
    }
    assert!(pollster::block_on(Runner::load_checkpoint(&store, &model, "runner")).unwrap().is_none());
    pollster::block_on(runner.save_checkpoint(&store, "runner")).unwrap();
    let mut back = pollster::block_on(Runner::load_checkpoint(&store, &model, "runner")).unwrap().expect("saved");
    assert_eq!(back.position(), Position(log.len() as u64 + 1));
    let ranked = |r: &mut Runner| r.at_risk(usize::MAX).into_iter().map(|s| s.account).collect::<Vec<_>>();
    assert_eq!(ranked(&mut back), ranked(&mut runner));
    // The same bytes beside another log are refused.
    let other = MemoryStore::new();
    let bytes = runner.checkpoint(rapport_core::DerivedStore::log_id(&store));
    pollster::block_on(rapport_core::DerivedStore::save_derived(&other, "runner", &bytes)).unwrap();
    let err = pollster::block_on(Runner::load_checkpoint(&other, &model, "runner")).unwrap_err();
    assert!(matches!(err, rapport_health::CheckpointError::OtherLog { .. }), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(rapport_core::testing::cases(32)))]

    /// Shards split the portfolio: every account is owned by exactly one shard, which scores
    /// it as a runner of the whole portfolio does, and the merged at-risk lists are the whole
    /// portfolio's.
    #[test]
    fn shards_together_are_the_whole_portfolio(events in arb_portfolio(), count in 1u64..5, days in 0i64..400) {
        let model = HealthModel::default();
        let log = envelopes(&events);
        let at = BASE.add_nanos(days * DAY);
        let mut whole = Runner::new(&model, BASE).with_refresh(None);
        let mut shards: Vec<Runner> =
            (0..count).map(|i| Runner::new(&model, BASE).with_refresh(None).with_shard(i, count)).collect();
        for e in &log {
            whole.apply(&e.view());
            for s in &mut shards {
                s.apply(&e.view());
            }
        }
        whole.advance(at);
        for s in &mut shards {
            s.advance(at);
            prop_assert_eq!(s.position(), whole.position());
        }
        let total: usize = shards.iter().map(Runner::n_accounts).sum();
        prop_assert_eq!(total, whole.n_accounts());
        for w in whole.at_risk(usize::MAX) {
            let owners: Vec<&Runner> = shards.iter().filter(|s| s.owns(&w.account)).collect();
            prop_assert_eq!(owners.len(), 1);
            let got = owners[0].scores(&w.account).expect("the owner scores it");
            prop_assert!(same_score(&got.scores.health, &w.scores.health));
        }
        let merged = rapport_health::merge_at_risk(shards.iter_mut().map(|s| s.at_risk(50)), 50);
        let accounts = |v: Vec<AccountScores>| v.into_iter().map(|s| s.account).collect::<Vec<_>>();
        prop_assert_eq!(accounts(merged), accounts(whole.at_risk(50)));
    }
}

#[test]
fn a_model_change_rebuilds_in_the_background_and_takes_over_without_signalling() {
    use rapport_core::{ExpectedVersion, MemoryStore, Store};
    use rapport_health::{HealthWeights, Progress, rebuild, take_over};
    let store = MemoryStore::new();
    let events: Vec<NewEvent> = synth(12, 12, 21);
    let (first, later) = events.split_at(events.len() * 3 / 4);
    pollster::block_on(store.append(first.to_vec(), ExpectedVersion::Any)).unwrap();
    let now = events.iter().map(|e| e.occurred_at).max().unwrap();
    let old_model = HealthModel::default();
    let new_model =
        HealthModel { weights: HealthWeights { nps: 0.4, ..HealthWeights::default() }, ..HealthModel::default() };
    let mut serving = Runner::new(&old_model, now);
    for e in pollster::block_on(store.read_all(Position(1), 100_000)).unwrap() {
        serving.apply(&e.view());
    }
    serving.go_live();
    serving.take_signals();
    // The rebuild folds what was logged when it began, reporting its progress.
    let mut seen: Vec<Progress> = Vec::new();
    let target = serving.position();
    let mut rebuilt = pollster::block_on(rebuild(&store, &new_model, now, target, &mut |p| seen.push(p))).unwrap();
    assert!(seen.windows(2).all(|w| w[0].applied <= w[1].applied));
    assert_eq!(seen.last().map(|p| (p.applied, p.target)), Some((target.0 - 1, target)));
    // Meanwhile the log grows: both runners receive what follows.
    let out = pollster::block_on(store.append(later.to_vec(), ExpectedVersion::Any)).unwrap();
    assert!(out.last_position().is_some());
    for e in pollster::block_on(store.read_all(target, 100_000)).unwrap() {
        serving.apply(&e.view());
        rebuilt.apply(&e.view());
    }
    let old = take_over(&mut serving, rebuilt);
    assert_eq!(old.position(), serving.position());
    assert!(serving.is_live());
    assert_eq!(serving.take_signals(), Vec::new(), "a model change pages no one");
    // The runner now serving is the new model's, as if it had run from the start.
    let mut fresh = Runner::new(&new_model, now);
    for e in pollster::block_on(store.read_all(Position(1), 100_000)).unwrap() {
        fresh.apply(&e.view());
    }
    for s in fresh.at_risk(usize::MAX) {
        let got = serving.scores(&s.account).unwrap();
        assert!(same_score(&got.scores.health, &s.scores.health), "{}", s.account);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(rapport_core::testing::cases(24)))]

    /// A portfolio served by `count` shard runners through a random life: chunks of events,
    /// time moving on, each shard restarted from its checkpoint at random, and once a model
    /// change rebuilt beside the serving runners and swapped in. After every step each shard
    /// scores its accounts as a fold from scratch under the model then serving, the shards
    /// together own every account once, and their merged at-risk list is the reference's.
    #[test]
    fn prop_shards_restarts_and_a_model_swap_keep_the_runners_equal_to_score_all(
        events in arb_portfolio(),
        count in 1u64..4,
        steps in proptest::collection::vec((0usize..40, 1i64..90, any::<u8>()), 1..7),
        swap_at in 0usize..7,
        start_day in 0i64..300,
    ) {
        const LOG: [u8; 16] = [7; 16];
        let old_model = HealthModel::default();
        let new_model = HealthModel {
            weights: rapport_health::HealthWeights { nps: 0.4, ..rapport_health::HealthWeights::default() },
            ..HealthModel::default()
        };
        let log = envelopes(&events);
        let mut at = BASE.add_nanos(start_day * DAY);
        let mut model = &old_model;
        let shard = |m: &HealthModel, i: u64, at: Timestamp| Runner::new(m, at).with_refresh(None).with_shard(i, count);
        let mut shards: Vec<Runner> = (0..count).map(|i| shard(model, i, at)).collect();
        let mut applied = 0;
        for (step, (chunk, days, restarts)) in steps.into_iter().enumerate() {
            let upto = (applied + chunk).min(log.len());
            for s in &mut shards {
                log[applied..upto].iter().for_each(|e| s.apply(&e.view()));
            }
            applied = upto;
            at = at.add_nanos(days * DAY);
            for (i, s) in shards.iter_mut().enumerate() {
                s.advance(at);
                // Restart this shard from its checkpoint, when the dice say so.
                if restarts & (1 << i) != 0 {
                    let bytes = s.checkpoint(LOG);
                    *s = Runner::restore(model, LOG, &bytes).expect("its own checkpoint restores");
                }
            }
            if step == swap_at {
                // Rebuild each shard under the new model from the log so far, then swap.
                model = &new_model;
                for (i, s) in shards.iter_mut().enumerate() {
                    let mut rebuilt = shard(model, i as u64, at);
                    log[..applied].iter().for_each(|e| rebuilt.apply(&e.view()));
                    rebuilt.advance(at);
                    let old = rapport_health::take_over(s, rebuilt);
                    prop_assert_eq!(old.position(), s.position());
                    prop_assert!(s.take_signals().is_empty(), "a model swap signals nothing by itself");
                }
            }
            let want = reference(model, &log[..applied], at);
            let mut owned = 0;
            for w in &want {
                let owners: Vec<&Runner> = shards.iter().filter(|s| s.owns(&w.account)).collect();
                prop_assert_eq!(owners.len(), 1);
                let got = owners[0].scores(&w.account).expect("the owner scores it");
                prop_assert!(same_score(&got.scores.trust, &w.scores.trust), "trust of {} at step {}", w.account, step);
                prop_assert!(same_score(&got.scores.health, &w.scores.health), "health of {} at step {}", w.account, step);
                prop_assert!(close(got.trend.delta, w.trend.delta), "trend of {} at step {}", w.account, step);
                owned += 1;
            }
            prop_assert_eq!(shards.iter().map(Runner::n_accounts).sum::<usize>(), owned);
            let merged = rapport_health::merge_at_risk(shards.iter_mut().map(|s| s.at_risk(usize::MAX)), usize::MAX);
            let expected = rank_at_risk(&want);
            prop_assert_eq!(merged.len(), expected.len());
            for (g, w) in merged.iter().zip(&expected) {
                prop_assert!(close(g.scores.health.score, w.scores.health.score), "rank: {} vs {}", g.account, w.account);
            }
        }
    }
}

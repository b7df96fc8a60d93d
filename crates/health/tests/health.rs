//! rapport-health's integration tests: the calibration stories of SCORING-NOTES.md as
//! given/then tests, plus portfolio, timeline and time-travel behaviour.

use std::sync::Arc;

use rapport_core::testing::story::{Story, day};
use rapport_core::{
    AsOf, Envelope, ExpectedVersion, Ledger, MemoryStore, Projection, Severity, SurveyScore, Timestamp,
};
use rapport_health::{Band, Direction, HealthModel, HealthProjection, Scores, rank_at_risk, score_all, timeline};

fn given(story: &Story) -> Given {
    Given { events: story.envelopes() }
}

struct Given {
    events: Vec<Envelope>,
}

impl Given {
    fn at(&self, days: f64) -> Scores {
        let mut p = HealthProjection::new(Arc::new(HealthModel::default()));
        let t = day(days);
        for e in self.events.iter().filter(|e| e.occurred_at <= t) {
            p.apply(&e.view());
        }
        p.evaluate(t)
    }
}

fn report(name: &str, s: &Scores) {
    println!(
        "{name}: trust {:.1} ({:?}, conf {:.2}) health {:.1} ({:?}, coverage {:.2})",
        s.trust.score, s.trust.band, s.trust.confidence, s.health.score, s.health.band, s.health.confidence
    );
}

/// A year of about six commitments delivered early; escalations handled well within SLA;
/// monthly meetings; two promoter answers.
fn exemplary_year() -> Story {
    let mut s = Story::new("exemplary");
    for i in 0..6 {
        let made = 10.0 + 60.0 * f64::from(i);
        let key = format!("c-{i}");
        s = s.commit(&key, made, made + 30.0).deliver(&key, made + 24.0, true);
    }
    for (i, at) in [50.0, 200.0].into_iter().enumerate() {
        let key = format!("e-{i}");
        s = s.escalate(&key, at, Severity::Medium).ack(&key, at + 0.1).resolve(&key, at + 2.0);
    }
    for m in 0..12 {
        s = s.meeting(5.0 + 30.0 * f64::from(m));
    }
    s.survey(120.0, SurveyScore::Nps(9)).survey(300.0, SurveyScore::Nps(10))
}

#[test]
fn story_exemplary_year_is_green() {
    let s = given(&exemplary_year()).at(365.0);
    report("exemplary", &s);
    assert_eq!(s.trust.band, Band::Green);
    assert_eq!(s.health.band, Band::Green);
    assert!(s.trust.score >= 80.0, "comfortably green: trust {:.1}", s.trust.score);
    assert!(s.health.score >= 80.0, "comfortably green: health {:.1}", s.health.score);
}

fn over_promiser() -> Story {
    let mut s = Story::new("overpromiser");
    for i in 0..8 {
        let made = 10.0 + 40.0 * f64::from(i);
        let key = format!("c-{i}");
        s = s.commit(&key, made, made + 20.0);
        if i % 3 != 2 {
            s = s.deliver(&key, made + 20.0 + 10.0 + 3.0 * f64::from(i), i % 2 == 0);
        }
    }
    for (i, at) in [40.0, 150.0, 260.0].into_iter().enumerate() {
        let key = format!("e-{i}");
        s = s.escalate(&key, at, Severity::High).ack(&key, at + 2.0).resolve(&key, at + 10.0);
    }
    s.survey(100.0, SurveyScore::Nps(3)).survey(280.0, SurveyScore::Nps(5))
}

#[test]
fn story_chronic_over_promiser_is_red() {
    let scores = given(&over_promiser()).at(365.0);
    report("over-promiser", &scores);
    assert_eq!(scores.trust.band, Band::Red);
    assert!(scores.trust.score < 40.0, "comfortably red: {:.1}", scores.trust.score);
    assert_ne!(scores.health.band, Band::Green);
    assert!(scores.health.score < 65.0, "well below green: {:.1}", scores.health.score);
}

fn slipping(transparent: bool) -> Story {
    let mut s = Story::new(if transparent { "transparent" } else { "hidden" });
    for i in 0..6 {
        let made = 10.0 + 50.0 * f64::from(i);
        let (key, due) = (format!("c-{i}"), made + 30.0);
        s = s.commit(&key, made, due);
        if i % 2 == 0 {
            if transparent {
                s = s.renegotiate(&key, due - 7.0, due + 14.0);
            }
            s = s.deliver(&key, due + 10.0, true);
        } else {
            s = s.deliver(&key, due - 2.0, true);
        }
    }
    if transparent {
        s = s.disclose(100.0).disclose(220.0);
    }
    s
}

#[test]
fn story_transparent_slips_beat_hidden_ones() {
    let open = given(&slipping(true)).at(365.0);
    let hidden = given(&slipping(false)).at(365.0);
    report("transparent", &open);
    report("hidden", &hidden);
    assert!(open.trust.score > hidden.trust.score + 5.0, "{:.1} vs {:.1}", open.trust.score, hidden.trust.score);
}

#[test]
fn story_consistency_beats_heroics() {
    let mut steady = Story::new("steady");
    let mut heroic = Story::new("heroic");
    for i in 0..12 {
        let made = 5.0 + 30.0 * f64::from(i);
        let (key, due) = (format!("c-{i}"), made + 25.0);
        steady = steady.commit(&key, made, due).deliver(&key, due - 1.0, true);
        heroic = if i == 6 {
            heroic.commit_weighted(&key, made, due + 60.0, 3.0).deliver(&key, made + 1.0, true)
        } else {
            heroic.commit(&key, made, due).deliver(&key, due + 10.0, true)
        };
    }
    let a = given(&steady).at(365.0);
    let b = given(&heroic).at(365.0);
    report("steady", &a);
    report("heroic", &b);
    assert!(a.trust.score > b.trust.score + 10.0, "{:.1} vs {:.1}", a.trust.score, b.trust.score);
}

/// `months` of behaviour from `from` (in months), good or bad.
fn phase(mut s: Story, tag: &str, from: u32, months: u32, good: bool) -> Story {
    for m in from..from + months {
        let made = 30.0 * f64::from(m) + 2.0;
        let (key, due) = (format!("{tag}-{m}"), made + 20.0);
        s = s.commit(&key, made, due);
        s = if good { s.deliver(&key, due - 3.0, true) } else { s.deliver(&key, due + 15.0, m % 2 == 0) };
        let e = format!("{tag}-e{m}");
        let at = made + 5.0;
        s = s.escalate(&e, at, Severity::Medium);
        s = if good { s.ack(&e, at + 0.2).resolve(&e, at + 2.0) } else { s.ack(&e, at + 3.0).resolve(&e, at + 12.0) };
    }
    s
}

#[test]
fn story_recent_behaviour_wins() {
    let recovering = phase(phase(Story::new("recovering"), "bad", 0, 12, false), "good", 12, 9, true);
    let declining = phase(phase(Story::new("declining"), "good", 0, 9, true), "bad", 9, 12, false);
    let now = 30.0 * 21.0;
    let (r, d) = (given(&recovering).at(now), given(&declining).at(now));
    report("recovering now", &r);
    report("declining now", &d);
    assert!(r.trust.score > d.trust.score + 10.0, "now: {:.1} vs {:.1}", r.trust.score, d.trust.score);
    // As of the recovering account's switch, the reverse holds.
    let switch = 30.0 * 12.0;
    let (r, d) = (given(&recovering).at(switch), given(&declining).at(switch));
    report("recovering at switch", &r);
    report("declining at switch", &d);
    assert!(d.trust.score > r.trust.score + 10.0, "switch: {:.1} vs {:.1}", d.trust.score, r.trust.score);
}

#[test]
fn story_silence_lowers_confidence() {
    let active = phase(Story::new("active"), "a", 0, 18, true);
    let silent = phase(Story::new("silent"), "s", 0, 6, true);
    let now = 30.0 * 18.0;
    let (a, s) = (given(&active).at(now), given(&silent).at(now));
    report("active", &a);
    report("silent", &s);
    assert!(s.trust.confidence < a.trust.confidence - 0.1, "{:.2} vs {:.2}", s.trust.confidence, a.trust.confidence);
    assert!(s.health.confidence < a.health.confidence);
}

#[test]
fn story_unacknowledged_critical_escalation_leaves_green() {
    let base = exemplary_year();
    let before = given(&base).at(365.0);
    let hit = given(&base.escalate("crit", 361.0, Severity::Critical)).at(365.0);
    report("healthy", &before);
    report("critical unacknowledged 4 days", &hit);
    assert_eq!(before.health.band, Band::Green);
    assert_ne!(hit.health.band, Band::Green);
    assert!(hit.health.score < 70.0, "well out of green: {:.1}", hit.health.score);
}

#[test]
fn story_one_touchpoint_is_grey() {
    let s = given(&Story::new("lonely").meeting(10.0)).at(20.0);
    report("one touchpoint", &s);
    assert_eq!(s.trust.band, Band::Grey);
    assert_eq!(s.health.band, Band::Grey);
}

fn ledger_with(stories: &[Story]) -> Ledger<MemoryStore> {
    let ledger = Ledger::memory();
    for s in stories {
        ledger.blocking().append(s.events().to_vec(), ExpectedVersion::Any).expect("valid story");
    }
    ledger
}

#[test]
fn portfolio_scores_every_account_and_ranks_at_risk() {
    let worse = given(&over_promiser()).at(365.0);
    let ledger = ledger_with(&[exemplary_year(), over_promiser(), Story::new("lonely").meeting(10.0)]);
    let model = HealthModel::default();
    let scores = pollster::block_on(score_all(&ledger, &model, AsOf::at(day(365.0)))).unwrap();
    assert_eq!(scores.len(), 3);
    let bad = scores.iter().find(|s| s.account.as_str() == "overpromiser").unwrap();
    assert!((bad.scores.health.score - worse.health.score).abs() < 1e-9, "the portfolio equals a single fold");
    let ranked = rank_at_risk(&scores);
    assert_eq!(ranked.len(), 2, "grey accounts are not ranked");
    assert_eq!(ranked[0].account.as_str(), "overpromiser");
}

#[test]
fn trend_shows_a_fall_beyond_the_noise() {
    let base = exemplary_year();
    let ledger = ledger_with(&[base.clone().escalate("crit", 361.0, Severity::Critical)]);
    let model = HealthModel::default();
    let scores = pollster::block_on(score_all(&ledger, &model, AsOf::at(day(365.0)))).unwrap();
    let t = scores[0].trend;
    assert_eq!(t.direction, Direction::Falling, "{t:?}");
    let calm = ledger_with(&[base]);
    let scores = pollster::block_on(score_all(&calm, &model, AsOf::at(day(365.0)))).unwrap();
    assert_eq!(scores[0].trend.direction, Direction::Steady, "{:?}", scores[0].trend);
}

#[test]
fn timeline_equals_evaluating_each_instant() {
    let story = exemplary_year();
    let g = given(&story);
    let instants: Vec<Timestamp> = (0..13).map(|m| day(30.0 * f64::from(m))).collect();
    let line = timeline(&HealthModel::default(), story.envelopes(), &instants, None);
    for (m, (t, s)) in line.iter().enumerate() {
        assert_eq!(*t, instants[m]);
        let direct = g.at(30.0 * m as f64);
        assert!((s.health.score - direct.health.score).abs() < 1e-9);
        assert!((s.trust.score - direct.trust.score).abs() < 1e-9);
    }
}

#[test]
fn known_at_reproduces_scores_before_a_backfill() {
    // Live events first, then a backfill of older history; `known_at` before the backfill sees
    // only the live events.
    let now = Arc::new(std::sync::atomic::AtomicI64::new(day(400.0).unix_nanos()));
    let clock = Arc::clone(&now);
    let store = MemoryStore::with_clock(Arc::new(move || {
        Timestamp::from_unix_nanos(clock.load(std::sync::atomic::Ordering::SeqCst))
    }));
    let ledger = Ledger::new(store);
    let live = Story::new("acme").commit("live", 380.0, 390.0).deliver("live", 385.0, true);
    ledger.blocking().append(live.events().to_vec(), ExpectedVersion::Any).unwrap();
    let model = HealthModel::default();
    let before = pollster::block_on(score_all(&ledger, &model, AsOf::at(day(400.0)))).unwrap();
    now.store(day(401.0).unix_nanos(), std::sync::atomic::Ordering::SeqCst);
    let mut old = Story::new("acme");
    for i in 0..5 {
        let made = 10.0 + 40.0 * f64::from(i);
        old = old.commit(&format!("old-{i}"), made, made + 10.0);
    }
    ledger.blocking().append(old.events().to_vec(), ExpectedVersion::Any).unwrap();
    let after = pollster::block_on(score_all(&ledger, &model, AsOf::at(day(400.0)))).unwrap();
    assert!(after[0].scores.trust.score < before[0].scores.trust.score, "the backfilled misses count");
    let as_known = pollster::block_on(score_all(&ledger, &model, AsOf::at(day(400.0)).known_at(day(400.5)))).unwrap();
    assert_eq!(as_known[0].scores, before[0].scores, "known_at reproduces the pre-backfill scores");
}

/// The worked example of `docs/scoring.md` ("Checking a score by hand"): every factor the
/// document derives with a calculator, to the four decimals it prints.
#[test]
fn the_worked_example_in_scoring_md_checks_by_hand() {
    let story = Story::new("acme")
        .commit("c-1", 0.0, 30.0)
        .deliver("c-1", 20.0, true)
        .meeting(30.0)
        .escalate("e-1", 40.0, Severity::Medium)
        .ack("e-1", 40.5)
        .resolve("e-1", 43.0)
        .meeting(60.0)
        .survey(60.0, SurveyScore::Nps(9))
        .survey(75.0, SurveyScore::Csat(5))
        .survey(75.0, SurveyScore::Ces(2))
        .meeting(90.0);
    let s = given(&story).at(100.0);
    // The document rounds values to four decimals and scores to two.
    let close = |what: &str, got: f64, want: f64| {
        let tolerance = if want > 1.0 { 0.005 } else { 0.00005 };
        assert!((got - want).abs() <= tolerance + 1e-12, "{what}: computed {got:.6}, the document says {want}");
    };
    let factors = |score: &rapport_health::Score, want: &[(&str, f64, f64)]| {
        for &(name, value, confidence) in want {
            let f = score.factor(name).unwrap_or_else(|| panic!("factor {name}"));
            close(name, f.value, value);
            close(name, f.confidence, confidence);
        }
    };
    factors(
        &s.trust,
        &[("reliability", 0.7878, 0.2926), ("candour", 0.8261, 0.3045), ("responsiveness", 0.8332, 0.4442)],
    );
    close("trust", s.trust.score, 80.87);
    close("trust confidence", s.trust.confidence, 0.3335);
    assert_eq!(s.trust.band, Band::Green);
    factors(
        &s.health,
        &[
            ("trust", 0.8087, 0.3335),
            ("nps", 0.7278, 0.2222),
            ("csat", 0.8230, 0.2920),
            ("ces", 0.6681, 0.2920),
            ("escalation_load", 1.0, 0.4612),
            ("engagement", 0.7004, 0.7507),
            ("advocacy", 0.5, 0.0),
        ],
    );
    close("health", s.health.score, 80.30);
    close("coverage", s.health.confidence, 0.3612);
    assert_eq!(s.health.band, Band::Green);
}

mod signals {
    use rapport_core::testing::story::day;
    use rapport_core::{Envelope, Severity};
    use rapport_health::{Band, Cause, HealthModel, Measure, Runner, Signal, SignalKind};

    use super::exemplary_year;

    /// Runs `history` into a runner that goes live at day `live`, then advances in steps of an
    /// hour to day `until`, applying `later` events as their time comes; returns the signals.
    fn run(history: &[Envelope], live: f64, later: &[Envelope], until: f64) -> Vec<Signal> {
        let mut runner = Runner::new(&HealthModel::default(), day(live));
        for e in history {
            runner.apply(&e.view());
        }
        runner.go_live();
        let mut signals = runner.take_signals();
        let mut at = day(live);
        let mut pending = later.iter().peekable();
        while at < day(until) {
            at = at.add_nanos(3_600_000_000_000);
            while let Some(e) = pending.next_if(|e| e.occurred_at <= at) {
                runner.apply(&e.view());
            }
            runner.advance(at);
            signals.extend(runner.take_signals());
        }
        signals
    }

    #[test]
    fn an_unacknowledged_critical_escalation_breaches_its_slas_and_leaves_green_once() {
        let base = exemplary_year().envelopes();
        let hit = exemplary_year().escalate("crit", 361.0, Severity::Critical).envelopes();
        let crit: Vec<Envelope> = hit.iter().filter(|e| !base.iter().any(|b| b.id == e.id)).cloned().collect();
        assert_eq!(crit.len(), 1);
        let signals = run(&base, 360.0, &crit, 367.0);
        let kinds: Vec<&SignalKind> = signals.iter().map(|s| &s.kind).collect();
        // The acknowledgement SLA (an hour) and the resolution SLA (a day) pass, at their
        // instants, caused by time.
        let ack: Vec<&Signal> =
            signals.iter().filter(|s| matches!(s.kind, SignalKind::AcknowledgeSlaBreached { .. })).collect();
        assert_eq!(ack.len(), 1, "{kinds:?}");
        assert_eq!((ack[0].at, ack[0].cause), (day(361.0).add_nanos(3_600_000_000_000), Cause::Time));
        let resolve: Vec<&Signal> =
            signals.iter().filter(|s| matches!(s.kind, SignalKind::ResolveSlaBreached { .. })).collect();
        assert_eq!(resolve.len(), 1, "{kinds:?}");
        assert_eq!(resolve[0].at, day(362.0));
        // Health leaves green once, and does not flap back while the escalation stays open.
        let health: Vec<&SignalKind> = kinds
            .iter()
            .copied()
            .filter(|k| matches!(k, SignalKind::BandChanged { measure: Measure::Health, .. }))
            .collect();
        assert_eq!(health.len(), 1, "{kinds:?}");
        assert!(matches!(health[0], SignalKind::BandChanged { from: Band::Green, to, .. } if *to != Band::Green));
        // The same inputs give the same signals, ids included.
        assert_eq!(run(&base, 360.0, &crit, 367.0), signals);
    }

    /// A runner that saw the events live, hour by hour, checkpointing at `cut`; and after a
    /// crash there, one restored from that checkpoint that catches up on the events since in one
    /// batch, then ticks on hour by hour. Returns the signals each raised after the cut.
    fn crash_at(history: &[Envelope], live: f64, cut: f64, until: f64) -> (Vec<Signal>, Vec<Signal>) {
        const LOG: [u8; 16] = [9; 16];
        const HOUR: i64 = 3_600_000_000_000;
        let model = HealthModel::default();
        let (before, after): (Vec<&Envelope>, Vec<&Envelope>) =
            history.iter().partition(|e| e.occurred_at <= day(live));
        let mut original = Runner::new(&model, day(live));
        before.iter().for_each(|e| original.follow(&e.view()));
        original.go_live();
        let (mut seen, mut checkpoint) = (Vec::new(), None);
        let mut pending = after.iter().peekable();
        let mut at = day(live);
        while at < day(until) {
            at = at.add_nanos(HOUR);
            while let Some(e) = pending.next_if(|e| e.occurred_at <= at) {
                original.follow(&e.view());
            }
            original.advance(at);
            let signals = original.take_signals();
            if checkpoint.is_none() && at >= day(cut) {
                checkpoint = Some((original.checkpoint(LOG), at));
            } else if checkpoint.is_some() {
                seen.extend(signals);
            }
        }
        let (bytes, from) = checkpoint.expect("a checkpoint");
        let mut restored = Runner::restore(&model, LOG, &bytes).expect("restore");
        // The catch-up: every event since the checkpoint, in one batch, as a subscription
        // hands them over after the restart.
        let mut replayed = Vec::new();
        let resume = restored.position();
        for e in after.iter().filter(|e| e.position >= resume) {
            restored.follow(&e.view());
        }
        let mut at = from;
        while at < day(until) {
            at = at.add_nanos(HOUR);
            restored.advance(at);
            replayed.extend(restored.take_signals());
        }
        replayed.extend(restored.take_signals());
        (seen, replayed)
    }

    #[test]
    fn after_a_crash_a_replay_repeats_signals_only_with_the_same_ids() {
        let history =
            exemplary_year().escalate("crit", 361.0, Severity::Critical).commit("late", 361.5, 363.0).envelopes();
        let (seen, replayed) = crash_at(&history, 359.0, 360.5, 368.0);
        let kinds = |v: &[Signal]| v.iter().map(|s| format!("{:?} {:?}", s.cause, s.kind)).collect::<Vec<_>>();
        assert!(
            replayed.len() >= 3,
            "the replay raises the breaches and the band change again: {:?}",
            kinds(&replayed)
        );
        let ids: Vec<_> = seen.iter().map(|s| s.id).collect();
        for s in &replayed {
            assert!(ids.contains(&s.id), "a repeat with a new id: {s}\nseen live: {:?}", kinds(&seen));
        }
        assert_eq!(replayed.len(), seen.len(), "and nothing seen live is missing: {:?}", kinds(&seen));
    }

    #[test]
    fn history_replayed_before_going_live_signals_nothing() {
        let hit = exemplary_year().escalate("crit", 361.0, Severity::Critical).envelopes();
        // Everything, the escalation and its breaches included, is history when it goes live.
        let signals = run(&hit, 367.0, &[], 368.0);
        assert!(
            signals.iter().all(|s| !matches!(
                s.kind,
                SignalKind::AcknowledgeSlaBreached { .. } | SignalKind::ResolveSlaBreached { .. }
            )),
            "{signals:?}"
        );
        assert!(signals.iter().all(|s| s.at > day(367.0)), "{signals:?}");
    }
}

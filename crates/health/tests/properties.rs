//! Property tests of SCORING-NOTES.md, one per property, over generated valid histories.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use rapport_core::testing::envelopes;
use rapport_core::testing::strategies::{BASE, arb_plans, arb_portfolio};
use rapport_core::testing::synth::{CommitmentEnding, ItemPlan, SplitMix64, expand};
use rapport_core::{
    AccountId, CommitmentKey, Envelope, EscalationKey, Event, EventId, NewEvent, Position, Severity, SurveyKey,
    SurveyScore, Timestamp,
};
use rapport_health::{HealthModel, HealthState, Scores};
use rapport_trust::{Band, Bands, Score};

const DAY: i64 = 86_400_000_000_000;

fn cases() -> u32 {
    rapport_core::testing::cases(48)
}

fn fold_with(model: &HealthModel, events: &[Envelope], at: Timestamp) -> BTreeMap<AccountId, Scores> {
    let prepared = model.prepare();
    let mut states: HashMap<AccountId, HealthState> = HashMap::new();
    for e in events.iter().filter(|e| e.occurred_at <= at) {
        states.entry(e.account.clone()).or_default().apply(&prepared, &e.view());
    }
    states.into_iter().map(|(a, s)| (a, s.evaluate(model, at))).collect()
}

fn fold(events: &[Envelope], at: Timestamp) -> BTreeMap<AccountId, Scores> {
    fold_with(&HealthModel::default(), events, at)
}

fn one(events: &[NewEvent], at: Timestamp) -> Scores {
    let m = HealthModel::default();
    let p = m.prepare();
    let mut s = HealthState::new();
    for e in envelopes(events).iter().filter(|e| e.occurred_at <= at) {
        s.apply(&p, &e.view());
    }
    s.evaluate(&m, at)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

fn same_score(a: &Score, b: &Score) -> bool {
    close(a.score, b.score)
        && close(a.confidence, b.confidence)
        && a.band == b.band
        && a.factors.iter().zip(&b.factors).all(|(x, y)| close(x.value, y.value) && close(x.confidence, y.confidence))
}

fn same(a: &BTreeMap<AccountId, Scores>, b: &BTreeMap<AccountId, Scores>) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, x), (kb, y))| ka == kb && same_score(&x.trust, &y.trust) && same_score(&x.health, &y.health))
}

fn at_strategy() -> impl Strategy<Value = Timestamp> {
    (-10i64..3 * 365).prop_map(|d| BASE.add_nanos(d * DAY))
}

/// The item an event belongs to, for lifecycle-preserving shuffles.
fn item_of(e: &NewEvent) -> (AccountId, u8, String) {
    let (kind, key) = match &e.event {
        Event::CommitmentMade { commitment, .. }
        | Event::CommitmentRenegotiated { commitment, .. }
        | Event::CommitmentDelivered { commitment, .. }
        | Event::CommitmentCancelled { commitment, .. } => (0, commitment.to_string()),
        Event::EscalationRaised { escalation, .. }
        | Event::EscalationAcknowledged { escalation }
        | Event::EscalationResolved { escalation }
        | Event::EscalationReopened { escalation } => (1, escalation.to_string()),
        _ => (2, e.id.to_string()),
    };
    (e.account.clone(), kind, key)
}

/// A random order of `events` that keeps each item's steps in their original order: every
/// order a valid log can present.
fn lifecycle_shuffle(events: &[NewEvent], seed: u64) -> Vec<NewEvent> {
    let mut rng = SplitMix64::new(seed);
    let mut slots: Vec<usize> = (0..events.len()).collect();
    for i in (1..slots.len()).rev() {
        let j = rng.below(i as u32 + 1) as usize;
        slots.swap(i, j);
    }
    // slots[k] = the new place of event k. Reassign places within each item in original order.
    let mut by_item: HashMap<(AccountId, u8, String), Vec<usize>> = HashMap::new();
    for (k, e) in events.iter().enumerate() {
        by_item.entry(item_of(e)).or_default().push(k);
    }
    let mut out: Vec<Option<NewEvent>> = vec![None; events.len()];
    for ks in by_item.values() {
        let mut places: Vec<usize> = ks.iter().map(|&k| slots[k]).collect();
        places.sort_unstable();
        for (&k, &p) in ks.iter().zip(&places) {
            out[p] = Some(events[k].clone());
        }
    }
    out.into_iter().flatten().collect()
}

fn acct(events: &[NewEvent]) -> AccountId {
    events.first().map(|e| e.account.clone()).unwrap_or_else(|| AccountId::new("acct-0").unwrap())
}

fn new_event(account: &AccountId, at: Timestamp, event: Event) -> NewEvent {
    let mut e = NewEvent {
        id: EventId::from_bytes([0; 16]),
        account: account.clone(),
        occurred_at: at,
        event,
        meta: Default::default(),
    };
    e.id = EventId::derive(&e.canonical_content());
    e
}

fn ck() -> CommitmentKey {
    CommitmentKey::new("prop-c").unwrap()
}

fn made(a: &AccountId, at: Timestamp, due: Timestamp) -> NewEvent {
    new_event(a, at, Event::CommitmentMade { commitment: ck(), title: "probe".into(), due, weight: 1.0 })
}

fn delivered(a: &AccountId, at: Timestamp, accepted: bool) -> NewEvent {
    new_event(a, at, Event::CommitmentDelivered { commitment: ck(), accepted })
}

fn with(base: &[NewEvent], extra: &[NewEvent]) -> Vec<NewEvent> {
    base.iter().chain(extra).cloned().collect()
}

fn history() -> impl Strategy<Value = Vec<NewEvent>> {
    arb_plans(30).prop_map(|plans| expand(&AccountId::new("acct-0").unwrap(), BASE, &plans, 0, None))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// 1. Bounds.
    #[test]
    fn prop_bounds(events in arb_portfolio(), at in at_strategy()) {
        for (_, s) in fold(&envelopes(&events), at) {
            for score in [&s.trust, &s.health] {
                prop_assert!((0.0..=100.0).contains(&score.score), "{}", score.score);
                prop_assert!((0.0..=1.0).contains(&score.confidence));
                prop_assert!(score.noise.is_finite() && score.noise >= 0.0);
                for f in &score.factors {
                    prop_assert!((0.0..=1.0).contains(&f.value) && (0.0..=1.0).contains(&f.confidence), "{f:?}");
                    prop_assert!(f.top_events.len() <= 3);
                    let mut ids = f.top_events.to_vec();
                    ids.sort_unstable();
                    ids.dedup();
                    prop_assert_eq!(ids.len(), f.top_events.len(), "{} names an event twice", f.name);
                }
            }
        }
    }

    /// 1b. What a trend reads of an earlier score (`weigh_health`, which builds no factors) is
    /// exactly the health `evaluate` gives, and every factor's events are its channel's.
    #[test]
    fn prop_weighed_health_is_the_evaluated_health(events in arb_portfolio(), at in at_strategy()) {
        let m = HealthModel::default();
        let p = m.prepare();
        let mut states: HashMap<AccountId, HealthState> = HashMap::new();
        for e in envelopes(&events).iter().filter(|e| e.occurred_at <= at) {
            states.entry(e.account.clone()).or_default().apply(&p, &e.view());
        }
        for s in states.values() {
            let full = s.evaluate(&m, at);
            let w = s.weigh_health(&m, at);
            prop_assert_eq!(w, full.health.weighed());
            prop_assert_eq!(w.score.to_bits(), full.health.score.to_bits());
            prop_assert_eq!(w.noise.to_bits(), full.health.noise.to_bits());
            let trust = full.health.factor("trust").expect("a trust factor");
            // Trust's own factors' events, each once: every factor's first among them, as
            // many as there are up to three, and nothing else.
            let named = &trust.top_events[..];
            let mut union: Vec<_> = full.trust.factors.iter().flat_map(|f| f.top_events.iter().copied()).collect();
            union.sort_unstable();
            union.dedup();
            prop_assert_eq!(named.len(), union.len().min(3), "{:?} of {:?}", named, union);
            for (k, id) in named.iter().enumerate() {
                prop_assert!(union.contains(id) && !named[..k].contains(id), "{:?}", named);
            }
            for f in &full.trust.factors {
                if let Some(first) = f.top_events.first() {
                    prop_assert!(named.contains(first), "{}'s first event is named: {:?}", f.name, named);
                }
            }
        }
    }

    /// 2a. Good news never lowers: an on-time accepted delivery, an in-SLA acknowledgement, a
    /// promoter answer.
    #[test]
    fn prop_good_news_never_lowers(
        base in history(),
        at_day in 30i64..700,
        made_day in 0i64..700,
        lead in 1i64..360,
        early in 0i64..360,
        ack_minutes in 0i64..60,
    ) {
        let at = BASE.add_nanos(at_day * DAY);
        let a = acct(&base);
        let before = one(&base, at);
        // On-time accepted delivery (made and delivered by `at`).
        let m = BASE.add_nanos(made_day.min(at_day) * DAY);
        let due = m.add_nanos(lead * DAY);
        let d = due.add_nanos(-early.min(lead) * DAY).min(at).max(m);
        let kept = one(&with(&base, &[made(&a, m, due), delivered(&a, d, true)]), at);
        prop_assert!(kept.trust.score >= before.trust.score - 1e-9, "{} < {}", kept.trust.score, before.trust.score);
        prop_assert!(kept.health.score >= before.health.score - 1e-9);
        // In-SLA acknowledgement of a critical escalation raised just before.
        let e = EscalationKey::new("prop-e").unwrap();
        let raised_at = at.add_nanos(-2 * 3_600_000_000_000).max(BASE);
        let raised = new_event(&a, raised_at, Event::EscalationRaised { escalation: e.clone(), severity: Severity::Critical, summary: None });
        let ack = new_event(&a, raised_at.add_nanos(ack_minutes * 60_000_000_000), Event::EscalationAcknowledged { escalation: e });
        let unacked = one(&with(&base, std::slice::from_ref(&raised)), at);
        let acked = one(&with(&base, &[raised, ack]), at);
        prop_assert!(acked.trust.score >= unacked.trust.score - 1e-9);
        prop_assert!(acked.health.score >= unacked.health.score - 1e-9);
        // A promoter answer.
        let promoter = new_event(&a, m, Event::SurveyAnswered { survey: SurveyKey::new("p").unwrap(), score: SurveyScore::Nps(10), comment: None });
        let happier = one(&with(&base, &[promoter]), at);
        prop_assert!(happier.health.score >= before.health.score - 1e-9);
        prop_assert!(close(happier.trust.score, before.trust.score));
    }

    /// 2b. Bad news never raises: a missed commitment, a rejected delivery, a detractor.
    #[test]
    fn prop_bad_news_never_raises(base in history(), at_day in 30i64..700, made_day in 0i64..700, lead in 1i64..360) {
        let at = BASE.add_nanos(at_day * DAY);
        let a = acct(&base);
        let before = one(&base, at);
        let m = BASE.add_nanos(made_day.min(at_day - 1) * DAY);
        let due = m.add_nanos(lead * DAY).min(at);
        let missed = one(&with(&base, &[made(&a, m, due)]), at);
        prop_assert!(missed.trust.score <= before.trust.score + 1e-9);
        prop_assert!(missed.health.score <= before.health.score + 1e-9);
        let rejected = one(&with(&base, &[made(&a, m, due), delivered(&a, due, false)]), at);
        prop_assert!(rejected.trust.score <= before.trust.score + 1e-9);
        let detractor = new_event(&a, m, Event::SurveyAnswered { survey: SurveyKey::new("d").unwrap(), score: SurveyScore::Nps(2), comment: None });
        let sadder = one(&with(&base, &[detractor]), at);
        prop_assert!(sadder.health.score <= before.health.score + 1e-9);
    }

    /// 2c. A late delivery never scores below the same commitment left undelivered.
    #[test]
    fn prop_late_beats_never(base in history(), at_day in 60i64..700, lead in 1i64..200, late in 1i64..200) {
        let at = BASE.add_nanos(at_day * DAY);
        let a = acct(&base);
        let m = BASE.add_nanos((at_day - lead - late).max(0) * DAY);
        let due = m.add_nanos(lead * DAY);
        let d = due.add_nanos(late * DAY).min(at);
        let never = one(&with(&base, &[made(&a, m, due)]), at);
        let tardy = one(&with(&base, &[made(&a, m, due), delivered(&a, d, true)]), at);
        prop_assert!(tardy.trust.score >= never.trust.score - 1e-9, "{} < {}", tardy.trust.score, never.trust.score);
        prop_assert!(tardy.health.score >= never.health.score - 1e-9);
    }

    /// 2d. Slipping never beats keeping: an on-time accepted delivery replaced by a
    /// renegotiation and a later delivery, or by a late delivery, never raises trust.
    #[test]
    fn prop_slipping_never_beats_keeping(
        base in history(),
        at_day in 0i64..900,
        made_day in 0i64..700,
        lead in 1i64..365,
        kept_early in 0i64..365,
        reneg_before in 0i64..365,
        extension in 1i64..120,
        slip in 0i64..120,
    ) {
        let at = BASE.add_nanos(at_day * DAY);
        let a = acct(&base);
        let m = BASE.add_nanos(made_day * DAY);
        let due = m.add_nanos(lead * DAY);
        let keep_at = due.add_nanos(-kept_early.min(lead) * DAY);
        let keep = one(&with(&base, &[made(&a, m, due), delivered(&a, keep_at, true)]), at);
        let r = due.add_nanos(-reneg_before.min(lead) * DAY);
        let new_due = due.add_nanos(extension * DAY);
        let reneg = new_event(&a, r, Event::CommitmentRenegotiated { commitment: ck(), due: new_due, reason: None });
        let later = due.add_nanos((1 + slip) * DAY);
        let renegotiated = one(&with(&base, &[made(&a, m, due), reneg, delivered(&a, later.max(r), true)]), at);
        prop_assert!(renegotiated.trust.score <= keep.trust.score + 1e-9, "renegotiated {} > kept {}", renegotiated.trust.score, keep.trust.score);
        let tardy = one(&with(&base, &[made(&a, m, due), delivered(&a, later, true)]), at);
        prop_assert!(tardy.trust.score <= keep.trust.score + 1e-9, "late {} > kept {}", tardy.trust.score, keep.trust.score);
    }

    /// 3. Order independence: every order a valid log can present gives the same scores.
    #[test]
    fn prop_order_independent(events in arb_portfolio(), seed in any::<u64>(), at in at_strategy()) {
        let shuffled = lifecycle_shuffle(&events, seed);
        prop_assert_eq!(shuffled.len(), events.len());
        prop_assert!(same(&fold(&envelopes(&events), at), &fold(&envelopes(&shuffled), at)));
    }

    /// 4. Incremental equals a full fold, and a checkpoint (through JSON) plus the tail too.
    #[test]
    fn prop_checkpoint_plus_tail_equals_full_fold(events in history(), cut in 0usize..200, probes in 0usize..5) {
        let m = HealthModel::default();
        let p = m.prepare();
        let envs = envelopes(&events);
        let at = envs.iter().map(|e| e.occurred_at).max().unwrap_or(BASE).add_nanos(30 * DAY);
        let mut full = HealthState::new();
        for (i, e) in envs.iter().enumerate() {
            full.apply(&p, &e.view());
            // Evaluating along the way changes nothing.
            if probes > 0 && i % (probes + 1) == 0 {
                let _ = full.evaluate(&m, at);
            }
        }
        let cut = cut.min(envs.len());
        let mut head = HealthState::new();
        for e in &envs[..cut] {
            head.apply(&p, &e.view());
        }
        let json = serde_json::to_string(&head).unwrap();
        let mut restored: HealthState = serde_json::from_str(&json).unwrap();
        for e in &envs[cut..] {
            restored.apply(&p, &e.view());
        }
        let (a, b) = (full.evaluate(&m, at), restored.evaluate(&m, at));
        prop_assert!(same_score(&a.trust, &b.trust) && same_score(&a.health, &b.health));
    }

    /// 5. With no news and nothing open, every factor moves monotonically toward its prior and
    /// confidence never rises.
    #[test]
    fn prop_no_news_decays_toward_prior(plans in arb_plans(30), gap1 in 0i64..400, gap2 in 1i64..400) {
        let plans: Vec<ItemPlan> = plans.into_iter().map(close_plan).collect();
        let events = expand(&AccountId::new("acct-0").unwrap(), BASE, &plans, 0, None);
        let envs = envelopes(&events);
        let last = envs.iter().map(|e| e.occurred_at).max().unwrap_or(BASE);
        // Past every due date and SLA deadline, so nothing is pending.
        let t0 = last.add_nanos((400 + gap1) * DAY);
        let t1 = t0.add_nanos(gap2 * DAY);
        let m = HealthModel::default();
        let p = m.prepare();
        let mut s = HealthState::new();
        for e in &envs {
            s.apply(&p, &e.view());
        }
        let (s0, s1) = (s.evaluate(&m, t0), s.evaluate(&m, t1));
        let empty = HealthState::new().evaluate(&m, t1);
        for (x0, x1, prior) in [(&s0.trust, &s1.trust, &empty.trust), (&s0.health, &s1.health, &empty.health)] {
            prop_assert!(x1.confidence <= x0.confidence + 1e-12);
            for ((f0, f1), p) in x0.factors.iter().zip(&x1.factors).zip(&prior.factors) {
                // Health's trust factor is a composite of the trust channels checked above;
                // a composite of channels each moving toward its own prior may cross the
                // composite prior, so only channels are held to this.
                if f0.name == "trust" {
                    prop_assert!(f1.confidence <= f0.confidence + 1e-12);
                    continue;
                }
                prop_assert!(f1.confidence <= f0.confidence + 1e-12, "{} confidence rose", f0.name);
                let (d0, d1) = (f0.value - p.value, f1.value - p.value);
                prop_assert!(d1.abs() <= d0.abs() + 1e-12 && d0 * d1 >= -1e-18, "{}: {} -> {} (prior {})", f0.name, f0.value, f1.value, p.value);
            }
        }
    }

    /// 6a. Shifting every time, the as-of time included, changes nothing.
    #[test]
    fn prop_time_shift_invariant(events in arb_portfolio(), shift_days in -3_000i64..3_000, at in at_strategy()) {
        let shift = shift_days * DAY + 12_345;
        let shifted: Vec<NewEvent> = events.iter().map(|e| shift_event(e, shift)).collect();
        prop_assert!(same(&fold(&envelopes(&events), at), &fold(&envelopes(&shifted), at.add_nanos(shift))));
    }

    /// 6b. Scaling every weight by one constant changes nothing.
    #[test]
    fn prop_weight_scale_invariant(events in arb_portfolio(), k in 0.01f64..100.0, at in at_strategy()) {
        let mut scaled = HealthModel::default();
        let w = &mut scaled.weights;
        for x in [&mut w.trust, &mut w.nps, &mut w.csat, &mut w.ces, &mut w.escalation_load, &mut w.engagement, &mut w.advocacy] {
            *x *= k;
        }
        let t = &mut scaled.trust;
        t.reliability_weight *= k;
        t.candour_weight *= k;
        t.responsiveness_weight *= k;
        let envs = envelopes(&events);
        prop_assert!(same(&fold(&envs, at), &fold_with(&scaled, &envs, at)));
    }

    /// 6c. A duplicate event changes nothing: the store drops it, so scores are unchanged.
    #[test]
    fn prop_duplicates_change_nothing(events in arb_portfolio(), at in at_strategy()) {
        let ledger = rapport_core::Ledger::memory();
        ledger.blocking().append(events.clone(), rapport_core::ExpectedVersion::Any).unwrap();
        let once = ledger.blocking().read_all_page(Position(1), 100_000).unwrap();
        ledger.blocking().append(events.clone(), rapport_core::ExpectedVersion::Any).unwrap();
        let twice = ledger.blocking().read_all_page(Position(1), 100_000).unwrap();
        prop_assert!(same(&fold(&once, at), &fold(&twice, at)));
    }

    /// 6d. The band is monotone in the score at any confidence.
    #[test]
    fn prop_band_monotone(a in 0.0f64..=100.0, b in 0.0f64..=100.0, confidence in 0.0f64..=1.0) {
        let bands = Bands::default();
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        prop_assert!(bands.band(lo, confidence) <= bands.band(hi, confidence));
        prop_assert_eq!(bands.band(lo, confidence) == Band::Grey, bands.band(hi, confidence) == Band::Grey);
    }
}

/// The plan with every open item closed: commitments delivered, escalations resolved.
fn close_plan(p: ItemPlan) -> ItemPlan {
    match p {
        ItemPlan::Commitment { made_hours, lead_hours, weight, ending } => {
            let ending = match ending {
                CommitmentEnding::Open => CommitmentEnding::Delivered { at_hours: lead_hours, accepted: true },
                CommitmentEnding::Renegotiated { at_hours, new_lead_hours, delivered_hours: None } => {
                    CommitmentEnding::Renegotiated { at_hours, new_lead_hours, delivered_hours: Some(new_lead_hours) }
                }
                other => other,
            };
            ItemPlan::Commitment { made_hours, lead_hours, weight, ending }
        }
        ItemPlan::Escalation { raised_hours, severity, ack_after_hours, resolve_after_hours, reopen } => {
            let resolve_after_hours = Some(resolve_after_hours.unwrap_or(24));
            let reopen = reopen.map(|(after, again)| (after, Some(again.unwrap_or(24))));
            ItemPlan::Escalation { raised_hours, severity, ack_after_hours, resolve_after_hours, reopen }
        }
        other => other,
    }
}

fn shift_event(e: &NewEvent, by: i64) -> NewEvent {
    let mut e = e.clone();
    e.occurred_at = e.occurred_at.add_nanos(by);
    match &mut e.event {
        Event::CommitmentMade { due, .. } | Event::CommitmentRenegotiated { due, .. } => *due = due.add_nanos(by),
        Event::AssessmentRecorded { valid_until: Some(until), .. } => *until = until.add_nanos(by),
        Event::AccountProfiled { profile } => profile.renews_at = profile.renews_at.map(|t| t.add_nanos(by)),
        _ => {}
    }
    e
}

/// Every number an event carries into a score is bounded (weights by `WEIGHT_MAX` at
/// admission, and clamped for events logged before; times by the supported years), so no sum
/// overflows: trust, health, confidences and factors stay finite and in range for any valid
/// history, however extreme its weights and times, evaluated at any instant.
mod bounded {
    use super::*;
    use rapport_core::validate::WEIGHT_MAX;

    fn finite(s: &Score) -> bool {
        s.score.is_finite()
            && (0.0..=100.0).contains(&s.score)
            && (0.0..=1.0).contains(&s.confidence)
            && s.factors.iter().all(|f| f.value.is_finite() && f.confidence.is_finite() && f.contribution.is_finite())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

        #[test]
        fn prop_extreme_weights_and_times_keep_every_score_finite(
            events in arb_portfolio(),
            weights in proptest::collection::vec(
                prop_oneof![Just(WEIGHT_MAX), Just(f64::MIN_POSITIVE), Just(9e307), Just(f64::MAX), 1e-300f64..1e300],
                1..8,
            ),
            shift_days in prop_oneof![Just(0i64), Just(-43_800), Just(62_000), -40_000i64..60_000],
            at in prop_oneof![Just(Timestamp::MIN), Just(Timestamp::MAX), (0i64..200 * 365).prop_map(|d| Timestamp::MIN.add_nanos(d * DAY))],
        ) {
            // Heavy weights (beyond the bound too, as a log written before it may hold), the
            // whole history moved towards either end of the supported years.
            let mut k = 0;
            let shifted: Vec<NewEvent> = events
                .into_iter()
                .map(|mut e| {
                    let shift = |t: Timestamp| {
                        let moved = t.add_nanos(shift_days * DAY);
                        moved.max(Timestamp::MIN).min(Timestamp::MAX)
                    };
                    e.occurred_at = shift(e.occurred_at);
                    match &mut e.event {
                        Event::CommitmentMade { weight, due, .. } => {
                            *weight = weights[k % weights.len()];
                            k += 1;
                            *due = shift(*due);
                        }
                        Event::CommitmentRenegotiated { due, .. } => *due = shift(*due),
                        _ => {}
                    }
                    e
                })
                .collect();
            for (account, s) in fold(&envelopes(&shifted), at) {
                prop_assert!(finite(&s.trust), "{account}: trust {:?}", s.trust);
                prop_assert!(finite(&s.health), "{account}: health {:?}", s.health);
            }
        }
    }
}

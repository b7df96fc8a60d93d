//! rapport-core's integration tests: the conformance suite on `MemoryStore`, every validation
//! rule broken once, and property tests over generated histories.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use proptest::prelude::*;
use rapport_core::backend::LogState;
use rapport_core::testing::strategies::{arb_account_history, arb_portfolio};
use rapport_core::testing::synth;
use rapport_core::validate::Admission;
use rapport_core::{
    AccountId, AppendError, Channel, CommitmentKey, EscalationKey, Event, ExpectedVersion, Interner, Ledger,
    MemoryStore, NewEvent, Position, Severity, SurveyKey, SurveyScore, Timestamp, ValidationError,
};

mod memory_conformance {
    rapport_core::conformance_suite!(rapport_core::MemoryStore::new);
}

/// The admission rules for an append happening now.
fn now() -> Admission {
    Admission::at(Timestamp::now())
}

fn t(day: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_735_689_600 + day * 86_400)
}

fn acme() -> AccountId {
    AccountId::new("acme").unwrap()
}

fn ev(day: i64, event: Event) -> NewEvent {
    NewEvent::new(acme(), t(day), event)
}

fn ck(s: &str) -> CommitmentKey {
    CommitmentKey::new(s).unwrap()
}

fn ek(s: &str) -> EscalationKey {
    EscalationKey::new(s).unwrap()
}

fn made(day: i64, key: &str) -> NewEvent {
    ev(day, Event::CommitmentMade { commitment: ck(key), title: "t".into(), due: t(day + 30), weight: 1.0 })
}

fn raised(day: i64, key: &str) -> NewEvent {
    ev(day, Event::EscalationRaised { escalation: ek(key), severity: Severity::High, summary: None })
}

/// Appends `setup`, then `bad`, and returns the rule `bad` broke.
fn broken_rule(setup: Vec<NewEvent>, bad: NewEvent) -> ValidationError {
    let ledger = Ledger::memory();
    ledger.blocking().append(setup, ExpectedVersion::Any).expect("setup is valid");
    let before = ledger.blocking().head().unwrap();
    let id = bad.id;
    match ledger.blocking().append(vec![bad], ExpectedVersion::Any) {
        Err(AppendError::Invalid(v)) => {
            assert_eq!(v.event(), id, "the error names the event");
            assert!(v.to_string().contains("account acme"), "the error names the account: {v}");
            assert!(v.to_string().contains(&id.to_string()), "the error names the event id: {v}");
            assert_eq!(ledger.blocking().head().unwrap(), before, "nothing appended");
            v
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn rule_commitment_made_once() {
    let v = broken_rule(vec![made(0, "c")], made(1, "c"));
    assert!(matches!(v, ValidationError::CommitmentAlreadyMade { .. }), "{v}");
}

#[test]
fn rule_commitment_step_requires_made() {
    for e in [
        Event::CommitmentDelivered { commitment: ck("c"), accepted: true },
        Event::CommitmentRenegotiated { commitment: ck("c"), due: t(9), reason: None },
        Event::CommitmentCancelled { commitment: ck("c"), reason: None },
    ] {
        let v = broken_rule(vec![], ev(1, e));
        assert!(matches!(v, ValidationError::CommitmentUnknown { .. }), "{v}");
    }
}

#[test]
fn rule_commitment_step_requires_open() {
    let deliver = || ev(2, Event::CommitmentDelivered { commitment: ck("c"), accepted: true });
    let cancel = || ev(2, Event::CommitmentCancelled { commitment: ck("c"), reason: None });
    let v = broken_rule(vec![made(0, "c"), deliver()], deliver());
    assert!(matches!(v, ValidationError::CommitmentClosed { state: "delivered", .. }), "{v}");
    let v = broken_rule(
        vec![made(0, "c"), cancel()],
        ev(3, Event::CommitmentRenegotiated { commitment: ck("c"), due: t(9), reason: None }),
    );
    assert!(matches!(v, ValidationError::CommitmentClosed { state: "cancelled", .. }), "{v}");
}

#[test]
fn rule_escalation_raised_once() {
    let v = broken_rule(vec![raised(0, "e")], raised(1, "e"));
    assert!(matches!(v, ValidationError::EscalationAlreadyRaised { .. }), "{v}");
}

#[test]
fn rule_escalation_step_requires_raised() {
    for e in [
        Event::EscalationAcknowledged { escalation: ek("e") },
        Event::EscalationResolved { escalation: ek("e") },
        Event::EscalationReopened { escalation: ek("e") },
    ] {
        let v = broken_rule(vec![], ev(1, e));
        assert!(matches!(v, ValidationError::EscalationUnknown { .. }), "{v}");
    }
}

#[test]
fn rule_acknowledge_requires_open_and_unacknowledged() {
    let ack = |d| ev(d, Event::EscalationAcknowledged { escalation: ek("e") });
    let resolve = |d| ev(d, Event::EscalationResolved { escalation: ek("e") });
    let v = broken_rule(vec![raised(0, "e"), ack(1)], ack(2));
    assert!(matches!(v, ValidationError::EscalationAlreadyAcknowledged { .. }), "{v}");
    let v = broken_rule(vec![raised(0, "e"), resolve(1)], ack(2));
    assert!(matches!(v, ValidationError::EscalationNotOpen { .. }), "{v}");
}

#[test]
fn rule_resolve_requires_open() {
    let resolve = |d| ev(d, Event::EscalationResolved { escalation: ek("e") });
    let v = broken_rule(vec![raised(0, "e"), resolve(1)], resolve(2));
    assert!(matches!(v, ValidationError::EscalationNotOpen { .. }), "{v}");
}

#[test]
fn rule_reopen_requires_resolved() {
    let v = broken_rule(vec![raised(0, "e")], ev(1, Event::EscalationReopened { escalation: ek("e") }));
    assert!(matches!(v, ValidationError::EscalationNotResolved { .. }), "{v}");
    // After resolving, reopening works, and then the escalation is open again.
    let ledger = Ledger::memory();
    let steps = vec![
        raised(0, "e"),
        ev(1, Event::EscalationResolved { escalation: ek("e") }),
        ev(2, Event::EscalationReopened { escalation: ek("e") }),
        ev(3, Event::EscalationResolved { escalation: ek("e") }),
    ];
    ledger.blocking().append(steps, ExpectedVersion::Any).expect("a reopen cycle is valid");
}

#[test]
fn rule_steps_do_not_go_back_in_time() {
    let v = broken_rule(vec![made(10, "c")], ev(9, Event::CommitmentDelivered { commitment: ck("c"), accepted: true }));
    assert!(matches!(v, ValidationError::StepBeforePrevious { .. }), "{v}");
    let v = broken_rule(vec![raised(10, "e")], ev(9, Event::EscalationAcknowledged { escalation: ek("e") }));
    assert!(matches!(v, ValidationError::StepBeforePrevious { .. }), "{v}");
    // Unrelated events may be older than what the stream holds: backfill.
    let ledger = Ledger::memory();
    ledger.blocking().append(vec![made(100, "live")], ExpectedVersion::Any).unwrap();
    ledger
        .blocking()
        .append(
            vec![made(1, "old"), ev(5, Event::CommitmentDelivered { commitment: ck("old"), accepted: true })],
            ExpectedVersion::Any,
        )
        .expect("older history appends after live events");
}

#[test]
fn rule_survey_in_range() {
    for score in
        [SurveyScore::Nps(11), SurveyScore::Csat(0), SurveyScore::Csat(6), SurveyScore::Ces(8), SurveyScore::Ces(0)]
    {
        let v = broken_rule(
            vec![],
            ev(0, Event::SurveyAnswered { survey: SurveyKey::new("q").unwrap(), score, comment: None }),
        );
        assert!(matches!(v, ValidationError::SurveyOutOfRange { .. }), "{v}");
        assert_eq!(v.field(), score.field());
    }
}

#[test]
fn rule_timestamps_in_range() {
    let mut e = ev(0, Event::TouchpointHeld { channel: Channel::Call });
    e.occurred_at = Timestamp::from_unix_seconds(-3_000_000_000);
    let v = broken_rule(vec![], e);
    assert!(matches!(v, ValidationError::TimestampOutOfRange { field: "occurred_at", .. }), "{v}");
    let e = ev(
        0,
        Event::CommitmentMade {
            commitment: ck("c"),
            title: "t".into(),
            due: Timestamp::from_unix_nanos(i64::MAX),
            weight: 1.0,
        },
    );
    let v = broken_rule(vec![], e);
    assert!(matches!(v, ValidationError::TimestampOutOfRange { field: "due", .. }), "{v}");
}

#[test]
fn rule_weights_finite_and_positive() {
    for weight in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let e = ev(0, Event::CommitmentMade { commitment: ck("c"), title: "t".into(), due: t(1), weight });
        let v = broken_rule(vec![], e);
        assert!(matches!(v, ValidationError::WeightInvalid { .. }), "{v}");
    }
}

#[test]
fn rule_text_at_most_4_kib() {
    let e = ev(0, Event::IssueDisclosed { summary: Some("x".repeat(4097)) });
    let v = broken_rule(vec![], e);
    assert!(matches!(v, ValidationError::TextTooLong { field: "summary", len: 4097, .. }), "{v}");
    let ok = ev(0, Event::IssueDisclosed { summary: Some("x".repeat(4096)) });
    Ledger::memory().blocking().append(vec![ok], ExpectedVersion::Any).expect("4 KiB exactly is fine");
}

#[test]
fn recorded_at_comes_from_the_store_clock_and_never_decreases() {
    // Clock readings after the events' times (2025), which must not lie in the future.
    let now = Arc::new(AtomicI64::new(1_800_000_000));
    let clock = Arc::clone(&now);
    let store = MemoryStore::with_clock(Arc::new(move || Timestamp::from_unix_seconds(clock.load(Ordering::SeqCst))));
    let ledger = Ledger::new(store);
    ledger
        .blocking()
        .append(vec![ev(0, Event::TouchpointHeld { channel: Channel::Call })], ExpectedVersion::Any)
        .unwrap();
    now.store(1_799_999_000, Ordering::SeqCst); // the clock steps back
    ledger
        .blocking()
        .append(vec![ev(1, Event::TouchpointHeld { channel: Channel::Call })], ExpectedVersion::Any)
        .unwrap();
    let log = ledger.blocking().read_all_page(Position(1), 10).unwrap();
    assert_eq!(log[0].recorded_at, Timestamp::from_unix_seconds(1_800_000_000));
    assert_eq!(log[1].recorded_at, Timestamp::from_unix_seconds(1_800_000_000), "clamped, never decreasing");
}

#[test]
fn synthetic_portfolio_is_valid_and_deterministic() {
    let config = synth::SynthConfig { accounts: 20, months: 12, seed: 42, ..Default::default() };
    let a: Vec<NewEvent> = synth::generate(config.clone()).collect();
    let b: Vec<NewEvent> = synth::generate(config).collect();
    assert_eq!(a, b, "same seed, same history");
    let ledger = Ledger::memory();
    for chunk in a.chunks(1000) {
        ledger.blocking().append(chunk.to_vec(), ExpectedVersion::Any).expect("generated history is valid");
    }
    assert_eq!(ledger.blocking().accounts().unwrap().len(), 20);
    let mut kinds = std::collections::BTreeSet::new();
    for e in &a {
        kinds.insert(e.event.kind());
    }
    assert_eq!(kinds.len(), rapport_core::EventKind::ALL.len(), "every event type appears: {kinds:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: rapport_core::testing::cases(64), ..ProptestConfig::default() })]

    #[test]
    fn prop_generated_histories_are_valid(events in arb_portfolio()) {
        let ledger = Ledger::memory();
        let n = events.len();
        let out = ledger.blocking().append(events, ExpectedVersion::Any);
        prop_assert!(out.is_ok(), "{:?}", out.err());
        prop_assert_eq!(ledger.blocking().head().unwrap(), Position(n as u64));
    }

    #[test]
    fn prop_json_round_trips(events in arb_account_history()) {
        for e in events {
            let line = e.to_json_line();
            let back = NewEvent::from_json_line(&line);
            prop_assert_eq!(back.as_ref(), Ok(&e), "{}", line);
            prop_assert_eq!(back.unwrap().to_json_line(), line);
        }
    }

    #[test]
    fn prop_reappending_any_prefix_is_idempotent(events in arb_account_history(), cut in 0usize..200) {
        let ledger = Ledger::memory();
        let cut = cut.min(events.len());
        ledger.blocking().append(events[..cut].to_vec(), ExpectedVersion::Any).unwrap();
        // A re-run of the whole import after a crash at `cut` completes it without duplicates.
        let out = ledger.blocking().append(events.clone(), ExpectedVersion::Any).unwrap();
        prop_assert_eq!(out.duplicates.len(), cut);
        prop_assert_eq!(out.appended.len(), events.len() - cut);
        let log = rapport_core::testing::conformance::assert_log_invariants(ledger.store());
        prop_assert_eq!(log.len(), events.len());
    }

    #[test]
    fn prop_one_event_at_a_time_equals_one_batch(events in arb_portfolio()) {
        let a = Ledger::memory();
        let b = Ledger::memory();
        a.blocking().append(events.clone(), ExpectedVersion::Any).unwrap();
        for e in events {
            b.blocking().append(vec![e], ExpectedVersion::Any).unwrap();
        }
        let la = a.blocking().read_all_page(Position(1), 100_000).unwrap();
        let lb = b.blocking().read_all_page(Position(1), 100_000).unwrap();
        prop_assert_eq!(la.len(), lb.len());
        for (x, y) in la.iter().zip(&lb) {
            prop_assert!(x.same_content(&y.to_new_event()) && x.stream_version == y.stream_version);
        }
    }

    #[test]
    fn prop_admit_decides_as_prepare_does(events in arb_portfolio(), cut in 0usize..400, repeat in 0usize..50) {
        // A batch with some events already logged and one repeated inside it; broken by a
        // stray step when `repeat` is odd. `admit` (by reference) and `prepare` (by value)
        // must agree on the verdict, the new events and the duplicates, and leave equal state.
        let cut = cut.min(events.len());
        let mut batch: Vec<NewEvent> = events[cut / 2..].to_vec();
        if let Some(e) = events.get(cut / 2 + repeat % events.len().max(1)).cloned() {
            batch.push(e);
        }
        if repeat % 2 == 1 {
            batch.push(NewEvent::new(
                acme(),
                t(5),
                Event::CommitmentDelivered { commitment: ck("never-made"), accepted: true },
            ));
        }
        let (mut a, mut b) = (LogState::new(), LogState::new());
        for (k, e) in events[..cut / 2].iter().enumerate() {
            a.replay(e, Position(k as u64 + 1)).unwrap();
            b.replay(e, Position(k as u64 + 1)).unwrap();
        }
        let next = Position(cut as u64 / 2 + 1);
        let admitted = a.admit(&batch, ExpectedVersion::Any, next, &now(), |_, _| true);
        let prepared = b.prepare(batch.clone(), ExpectedVersion::Any, next, &now(), |_, _| true);
        match (admitted, prepared) {
            (Ok(x), Ok(y)) => {
                let fresh: Vec<_> = x.fresh.iter().map(|&(k, v)| (batch[k].id, v)).collect();
                prop_assert_eq!(fresh, y.events.iter().map(|(e, v)| (e.id, *v)).collect::<Vec<_>>());
                prop_assert_eq!(x.duplicates, y.duplicates);
            }
            (Err(x), Err(y)) => prop_assert_eq!(x.to_string(), y.to_string()),
            (x, y) => prop_assert!(false, "admit {:?} but prepare {:?}", x.map(|_| ()), y.map(|_| ())),
        }
        // Whatever happened, both states answer the next question alike.
        for e in &events {
            prop_assert_eq!(a.stream_version(&e.account), b.stream_version(&e.account));
        }
    }
}

/// `LogState` checks ids in a loop of their own, apart from the stateless rules; the error
/// must still be the first faulty event's in batch order, and a refused batch leaves no trace.
#[test]
fn the_first_faulty_event_in_batch_order_decides_the_error() {
    let logged = made(1, "c-1");
    let mut state = LogState::new();
    state.replay(&logged, Position(1)).unwrap();
    // Same id as the logged event, other content.
    let mut clash = made(2, "c-2");
    clash.id = logged.id;
    let mut invalid = made(3, "c-3");
    if let Event::CommitmentMade { weight, .. } = &mut invalid.event {
        *weight = -1.0;
    }
    let fresh = made(4, "c-4");
    let logged_content = |_: Position, e: &NewEvent| e.same_content(&logged);

    let err = state.admit(
        &[fresh.clone(), clash.clone(), invalid.clone()],
        ExpectedVersion::Any,
        Position(2),
        &now(),
        logged_content,
    );
    assert!(matches!(err, Err(AppendError::IdConflict { id, .. }) if id == logged.id), "{err:?}");
    let err = state.admit(
        &[fresh.clone(), invalid.clone(), clash.clone()],
        ExpectedVersion::Any,
        Position(2),
        &now(),
        logged_content,
    );
    assert!(matches!(&err, Err(AppendError::Invalid(v)) if v.event() == invalid.id), "{err:?}");

    // A repeat inside the batch: the same content is a duplicate, other content a conflict.
    let mut twin = made(5, "c-5");
    twin.id = fresh.id;
    let err = state.admit(&[fresh.clone(), twin], ExpectedVersion::Any, Position(2), &now(), logged_content);
    assert!(matches!(err, Err(AppendError::IdConflict { id, .. }) if id == fresh.id), "{err:?}");
    let ok = state
        .admit(
            &[fresh.clone(), logged.clone(), fresh.clone()],
            ExpectedVersion::Any,
            Position(2),
            &now(),
            logged_content,
        )
        .unwrap();
    assert_eq!(ok.fresh.len(), 1);
    assert_eq!(ok.fresh[0].0, 0);
    assert_eq!(ok.fresh[0].1.0, 2, "the refused batches left the stream at version 1");
    assert_eq!(ok.duplicates, vec![logged.id, fresh.id]);
}

#[test]
fn interned_keys_share_text_and_the_interner_stays_bounded() {
    let mut interner = Interner::default();
    let a = AccountId::new_in("acme", &mut interner).unwrap();
    let b = AccountId::new_in("acme", &mut interner).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.stable_hash(), AccountId::new("acme").unwrap().stable_hash());
    // Keys of other types share texts too, and checks still apply.
    assert_eq!(CommitmentKey::new_in("acme", &mut interner).unwrap().as_str(), "acme");
    assert!(AccountId::new_in("", &mut interner).is_err());
    assert!(AccountId::new_in("bad\nkey", &mut interner).is_err());
    // Past KEYS_MAX distinct texts it starts over rather than growing.
    for k in 0..Interner::KEYS_MAX + 10 {
        let key = format!("k-{k}");
        assert_eq!(AccountId::new_in(&key, &mut interner).unwrap().as_str(), key);
        assert!(interner.len() <= Interner::KEYS_MAX);
    }
    assert!(!interner.is_empty());
    let again = AccountId::new_in("acme", &mut interner).unwrap();
    assert_eq!(again, a);
    // Parsing with an interner reads the same event as without.
    let line = r#"{"type":"touchpoint","account":"acme","occurred_at":"2025-03-01T09:00:00Z","channel":"call"}"#;
    assert_eq!(NewEvent::from_json_line_in(line, &mut interner).unwrap(), NewEvent::from_json_line(line).unwrap());
}

#[test]
fn accounts_that_share_a_stable_hash_hash_apart_in_maps() {
    use std::hash::BuildHasher;
    let texts = rapport_core::testing::colliding_keys(64);
    let ids: Vec<AccountId> = texts.iter().map(|t| AccountId::new(t).unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0].stable_hash() == w[1].stable_hash()), "the texts collide");
    // The same texts through an interner hash as they do without one.
    let mut interner = Interner::default();
    let interned: Vec<AccountId> = texts.iter().map(|t| AccountId::new_in(t, &mut interner).unwrap()).collect();
    // Under a fixed hasher (the worst case for a map), they still spread out.
    let fixed = std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
    let hashes: std::collections::HashSet<u64> = ids.iter().map(|a| fixed.hash_one(a)).collect();
    assert_eq!(hashes.len(), ids.len(), "every account hashes apart");
    for (a, b) in ids.iter().zip(&interned) {
        assert_eq!(a, b);
        assert_eq!(fixed.hash_one(a), fixed.hash_one(b));
    }
    // And they are still told apart by equality.
    assert!(ids.windows(2).all(|w| w[0] != w[1]));
}

#[test]
fn rule_item_keys_must_not_share_a_stable_hash_within_an_account() {
    let texts = rapport_core::testing::colliding_keys(2);
    let err = broken_rule(vec![made(0, &texts[0])], made(1, &texts[1]));
    assert!(
        matches!(&err, ValidationError::CommitmentKeyCollision { commitment, existing, .. }
        if commitment.as_str() == texts[1] && **existing == *texts[0]),
        "{err}"
    );
    assert_eq!(err.field(), "commitment");
    let err = broken_rule(vec![raised(0, &texts[0])], raised(1, &texts[1]));
    assert!(matches!(err, ValidationError::EscalationKeyCollision { .. }), "{err}");
    assert_eq!(err.field(), "escalation");
    // A commitment and an escalation are different kinds of item: no collision between them.
    let ledger = Ledger::memory();
    ledger.blocking().append(vec![made(0, &texts[0]), raised(0, &texts[1])], ExpectedVersion::Any).unwrap();
}

#[test]
fn stream_state_snapshots_keep_their_json_form() {
    use rapport_core::validate::StreamState;
    let mut state = StreamState::default();
    let steps = [
        made(0, "c-1"),
        made(1, "c-2"),
        ev(2, Event::CommitmentDelivered { commitment: ck("c-2"), accepted: true }),
        raised(3, "e-1"),
        ev(3, Event::EscalationAcknowledged { escalation: ek("e-1") }),
    ];
    for e in &steps {
        state.check_and_apply(e).unwrap();
    }
    // The form PostgreSQL snapshots have held since schema version 2 (written by the map keyed
    // by the item key itself, before items were keyed by their stable hash).
    let saved = r#"{"version":5,"commitments":{"c-1":{"status":"Open","last_step_at":"2025-01-01T00:00:00Z"},
        "c-2":{"status":"Delivered","last_step_at":"2025-01-03T00:00:00Z"}},
        "escalations":{"e-1":{"open":true,"acknowledged":true,"last_step_at":"2025-01-04T00:00:00Z"}}}"#;
    let written: serde_json::Value = serde_json::to_value(&state).unwrap();
    assert_eq!(written, serde_json::from_str::<serde_json::Value>(saved).unwrap());
    assert_eq!(serde_json::from_str::<StreamState>(saved).unwrap(), state);
    // A snapshot holding two keys with one stable hash cannot have been written by validation.
    let texts = rapport_core::testing::colliding_keys(2);
    let forged = format!(
        r#"{{"version":2,"commitments":{{"{}":{{"status":"Open","last_step_at":"2025-01-01T00:00:00Z"}},
        "{}":{{"status":"Open","last_step_at":"2025-01-01T00:00:00Z"}}}},"escalations":{{}}}}"#,
        texts[0], texts[1]
    );
    let err = serde_json::from_str::<StreamState>(&forged).unwrap_err();
    assert!(err.to_string().contains("stable hash"), "{err}");
}

mod hostile_input {
    use super::*;
    use rapport_core::escape::is_unsafe_in_line;

    proptest! {
        #![proptest_config(ProptestConfig { cases: rapport_core::testing::cases(512), ..ProptestConfig::default() })]

        /// Whatever text a line holds (as a field name, a value, a type, or the whole line),
        /// a refusal is one line that shows no control character, line separator or
        /// bidirectional control raw.
        #[test]
        fn prop_errors_never_echo_unsafe_characters(
            text in "(\\PC|[\\x00-\\x1f\\x7f\\u{85}\\u{2028}\\u{2029}\\u{202a}-\\u{202e}\\u{2066}-\\u{2069}]){0,24}",
        ) {
            let quoted = serde_json::to_string(&text).unwrap();
            let lines = [
                text.clone(),
                format!(r#"{{"type":"touchpoint","account":"a","occurred_at":"2025-01-01T00:00:00Z","channel":"call",{quoted}:1}}"#),
                format!(r#"{{"type":{quoted},"account":"a","occurred_at":"2025-01-01T00:00:00Z"}}"#),
                format!(r#"{{"type":"touchpoint","account":{quoted},"occurred_at":"2025-01-01T00:00:00Z","channel":"call"}}"#),
                format!(r#"{{"type":"touchpoint","account":"a","occurred_at":{quoted},"channel":"call"}}"#),
                format!(r#"{{"type":"touchpoint","account":"a","occurred_at":"2025-01-01T00:00:00Z","channel":{quoted}}}"#),
                format!(r#"{{"type":"escalation_raised","account":"a","occurred_at":"2025-01-01T00:00:00Z","escalation":{quoted},"severity":{quoted}}}"#),
                format!(r#"{{"type":"survey_answered","account":"a","occurred_at":"2025-01-01T00:00:00Z","survey":"s","nps":{quoted}}}"#),
            ];
            for line in &lines {
                if let Err(e) = NewEvent::from_json_line(line) {
                    let shown = e.to_string();
                    prop_assert!(!shown.chars().any(is_unsafe_in_line), "{:?} -> {:?}", line, shown);
                }
                // Stored lines too, and validation errors of what parses.
                if let Err(e) = rapport_core::Envelope::from_json_line(line) {
                    prop_assert!(!e.to_string().chars().any(is_unsafe_in_line), "{:?}", e.to_string());
                }
            }
        }

        /// A generated history that ends by now holds only events an append admits now.
        #[test]
        fn prop_generated_history_ending_by_now_is_admitted(
            start_fraction in 0.0f64..1.0,
            months in 1u32..=1_200,
            seed in any::<u64>(),
        ) {
            // A start chosen so the history ends by now (no rejection: a soak of many cases
            // would otherwise exhaust proptest's budget of rejects).
            const DAY: i64 = 86_400_000_000_000;
            let now = Timestamp::now();
            let latest_start_day = (now.unix_nanos() - Timestamp::MIN.unix_nanos()) / DAY - i64::from(months) * 31 - 1;
            let start_day = (start_fraction * latest_start_day as f64) as i64;
            let start = Timestamp::MIN.add_nanos(start_day * DAY);
            let config = synth::SynthConfig { accounts: 1, months, seed, start };
            prop_assert!(config.end() <= now, "{:?} ends after now", config);
            let events: Vec<NewEvent> = synth::generate(config).collect();
            let store = MemoryStore::new();
            for chunk in events.chunks(5_000) {
                let out = pollster::block_on(rapport_core::Store::append(&store, chunk.to_vec(), ExpectedVersion::Any));
                prop_assert!(out.is_ok(), "{:?}", out.err());
            }
        }
    }
}

#[test]
fn a_wrong_expected_version_reads_as_a_sentence() {
    let store = MemoryStore::new();
    let e = || NewEvent::new(acme(), t(1), Event::TouchpointHeld { channel: rapport_core::Channel::Call });
    pollster::block_on(rapport_core::Store::append(&store, vec![e()], ExpectedVersion::Any)).unwrap();
    let expected = ExpectedVersion::Exact(rapport_core::StreamVersion(5));
    let err = pollster::block_on(rapport_core::Store::append(&store, vec![e()], expected)).unwrap_err();
    assert_eq!(err.to_string(), "account acme: expected version 5, but the stream is at version 1");
    let err =
        pollster::block_on(rapport_core::Store::append(&store, vec![e()], ExpectedVersion::NoStream)).unwrap_err();
    assert_eq!(err.to_string(), "account acme: expected no events yet, but the stream is at version 1");
}

/// A store may record a replay's ids apart from its streams' rules (the file store does so on
/// another thread): ids taken out, filled and put back leave the state a plain replay leaves,
/// and an id recorded twice is refused with the first position.
#[test]
fn ids_recorded_apart_from_the_rules_leave_the_state_a_replay_leaves() {
    let events: Vec<NewEvent> =
        synth::generate(synth::SynthConfig { accounts: 12, months: 6, seed: 3, ..Default::default() }).collect();
    assert!(events.len() > 400, "{} events", events.len());
    let (mut whole, mut apart) = (LogState::new(), LogState::new());
    let mut ids = apart.take_ids();
    for (k, e) in events.iter().enumerate() {
        let position = Position(k as u64 + 1);
        let version = whole.replay(e, position).unwrap();
        ids.insert_new(e.id, position).unwrap();
        assert_eq!(apart.replay_stream(e).unwrap(), version, "event {k}");
    }
    assert_eq!(ids.insert_new(events[7].id, Position(events.len() as u64 + 1)), Err(Position(8)));
    assert_eq!(apart.id_position(&events[7].id), None, "taken out");
    apart.put_ids(ids);
    let sorted = |s: &LogState| {
        let mut all = s.ids();
        all.sort_by_key(|&(_, p)| p);
        all
    };
    assert_eq!(sorted(&apart), sorted(&whole));
    for e in &events {
        assert_eq!(apart.stream_version(&e.account), whole.stream_version(&e.account));
    }
    // The next append is decided alike: a logged event is a duplicate.
    let next = Position(events.len() as u64 + 1);
    let again = vec![events[0].clone()];
    let (a, b) = (
        whole.prepare(again.clone(), ExpectedVersion::Any, next, &now(), |_, _| true).unwrap(),
        apart.prepare(again, ExpectedVersion::Any, next, &now(), |_, _| true).unwrap(),
    );
    assert_eq!((a.events.len(), a.duplicates.clone()), (b.events.len(), b.duplicates));
    assert_eq!(a.duplicates.len(), 1);
}

//! The store conformance suite: checks every [`Store`] must pass, unchanged.
//!
//! Each check takes a fresh, empty store and panics with a message naming what broke. The
//! [`conformance_suite!`](crate::conformance_suite) macro turns them into one `#[test]` each.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::event::{Event, NewEvent, Severity};
use crate::id::{AccountId, CommitmentKey, EscalationKey, EventId, Position, StreamVersion};
use crate::store::{AppendError, BATCH_EVENTS_MAX, BackfillStore, ExpectedVersion, Store};
use crate::testing::synth::{SynthConfig, generate};
use crate::timestamp::{NANOS_PER_HOUR, Timestamp};
use crate::validate::ValidationError;
use crate::{Envelope, Ledger, Subscription};

mod erasure;
pub use erasure::{erasure_keeps_everything_but_the_text, erasure_orders_with_appends};

fn block<F: std::future::Future>(f: F) -> F::Output {
    pollster::block_on(f)
}

fn account(s: &str) -> AccountId {
    AccountId::new(s).unwrap_or_else(|e| panic!("test account {s:?}: {e}"))
}

fn t(hours: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_735_689_600).add_nanos(hours * NANOS_PER_HOUR)
}

fn touch(a: &AccountId, hours: i64) -> NewEvent {
    NewEvent::new(a.clone(), t(hours), Event::TouchpointHeld { channel: crate::Channel::Call })
}

fn made(a: &AccountId, key: &str, hours: i64) -> NewEvent {
    NewEvent::new(
        a.clone(),
        t(hours),
        Event::CommitmentMade {
            commitment: CommitmentKey::new(key).unwrap_or_else(|e| panic!("{e}")),
            title: format!("deliver {key}"),
            due: t(hours + 24 * 30),
            weight: 1.0,
        },
    )
}

fn delivered(a: &AccountId, key: &str, hours: i64) -> NewEvent {
    NewEvent::new(
        a.clone(),
        t(hours),
        Event::CommitmentDelivered {
            commitment: CommitmentKey::new(key).unwrap_or_else(|e| panic!("{e}")),
            accepted: true,
        },
    )
}

fn all<S: Store>(store: &S) -> Vec<Envelope> {
    let mut out = Vec::new();
    block(Ledger::new(store).for_each(Position(0), |e| out.push(e.clone()))).expect("read_all");
    out
}

fn stream<S: Store>(store: &S, a: &AccountId) -> Vec<Envelope> {
    let mut out = Vec::new();
    block(Ledger::new(store).for_each_in_stream(a, |e| out.push(e.clone()))).expect("read_stream");
    out
}

/// Asserts the log's global invariants: positions 1..=n without gaps, per-stream versions
/// 1..=k without gaps, unique ids, and `recorded_at` never decreasing along positions.
pub fn assert_log_invariants<S: Store>(store: &S) -> Vec<Envelope> {
    let log = all(store);
    let mut versions: HashMap<AccountId, u64> = HashMap::new();
    let mut ids = HashSet::new();
    for (i, e) in log.iter().enumerate() {
        assert_eq!(e.position, Position(i as u64 + 1), "positions are gapless and ordered");
        let v = versions.entry(e.account.clone()).or_insert(0);
        *v += 1;
        assert_eq!(e.stream_version, StreamVersion(*v), "stream versions of {} are gapless", e.account);
        assert!(ids.insert(e.id), "event {} appears twice", e.id);
        if i > 0 {
            assert!(e.recorded_at >= log[i - 1].recorded_at, "recorded_at never decreases along positions");
        }
    }
    assert_eq!(block(store.head()).expect("head"), Position(log.len() as u64), "head is the last position");
    for (a, v) in &versions {
        let s = stream(store, a);
        assert_eq!(s.len() as u64, *v, "read_stream({a}) returns the whole stream");
        assert!(s.iter().all(|e| &e.account == a));
    }
    log
}

/// Appended events read back exactly, through every read path.
pub fn append_and_read_back<S: BackfillStore>(store: S) {
    let (a, b) = (account("acme"), account("globex"));
    // A size hint, even an absurd one, changes nothing a caller can see.
    store.reserve(4);
    store.reserve(usize::MAX);
    let batch = vec![made(&a, "c-1", 0), touch(&b, 1), delivered(&a, "c-1", 2), touch(&a, 3)];
    let out = block(store.append(batch.clone(), ExpectedVersion::Any)).expect("append");
    assert_eq!(out.appended.len(), 4);
    assert!(out.duplicates.is_empty());
    let positions: Vec<u64> = out.appended.iter().map(|c| c.position.0).collect();
    assert_eq!(positions, [1, 2, 3, 4]);
    let versions: Vec<u64> = out.appended.iter().map(|c| c.stream_version.0).collect();
    assert_eq!(versions, [1, 1, 2, 3]);
    let log = assert_log_invariants(&store);
    for (env, new) in log.iter().zip(&batch) {
        assert!(env.same_content(new), "event {} reads back as written", new.id);
    }
    assert_eq!(block(store.accounts(None, 10)).expect("accounts"), vec![a.clone(), b.clone()]);
    assert_eq!(stream(&store, &a).len(), 3);
    assert!(block(store.read_stream(&account("nobody"), StreamVersion(0), 10)).expect("read").is_empty());
}

/// An importer's one question per chunk: the committed state of each stream asked (its
/// events replayed), and the logged ids of any account with their fingerprints.
pub fn preflight_answers_streams_and_ids<S: BackfillStore>(store: S) {
    let (a, b) = (account("acme"), account("globex"));
    let batch = vec![made(&a, "c-1", 0), touch(&b, 1), delivered(&a, "c-1", 2), touch(&a, 3)];
    block(store.append_bulk(batch.clone())).expect("append_bulk");
    let unknown = EventId::from_bytes([7; 16]);
    let accounts = [b.clone(), account("nobody"), a.clone(), account("it's \"quoted\"")];
    let ids = [batch[2].id, unknown, batch[1].id];
    let answer = block(store.preflight(&accounts, &ids)).expect("preflight");
    assert_eq!(
        answer.logged,
        [Some(batch[2].fingerprint()), None, Some(batch[1].fingerprint())],
        "ids of any account, with the logged event's fingerprint"
    );
    // Each stream's committed validation state is its events replayed.
    let replayed = |events: &[&NewEvent]| {
        let mut s = crate::validate::StreamState::default();
        for e in events {
            s.check_and_apply(e).expect("valid");
        }
        s
    };
    assert_eq!(
        answer.states,
        [Some(replayed(&[&batch[1]])), None, Some(replayed(&[&batch[0], &batch[2], &batch[3]])), None],
        "stream states"
    );
    let empty = block(store.preflight(&[], &[])).expect("preflight of nothing");
    assert!(empty.states.is_empty() && empty.logged.is_empty());
}

/// A batch with one bad event writes nothing, and leaves no trace in validation state.
pub fn append_is_atomic<S: BackfillStore>(store: S) {
    let a = account("acme");
    block(store.append(vec![touch(&a, 0)], ExpectedVersion::Any)).expect("first append");
    let bad = vec![made(&a, "c-1", 1), touch(&a, 2), delivered(&a, "c-unknown", 3)];
    let bad_ids: Vec<EventId> = bad.iter().map(|e| e.id).collect();
    let err = block(store.append(bad, ExpectedVersion::Any)).expect_err("bad batch");
    assert!(
        matches!(err, AppendError::Invalid(ValidationError::CommitmentUnknown { .. })),
        "expected CommitmentUnknown, got {err}"
    );
    assert_eq!(block(store.head()).expect("head"), Position(1), "nothing of the bad batch was written");
    let answer = block(store.preflight(std::slice::from_ref(&a), &bad_ids)).expect("preflight");
    assert_eq!(answer.logged, [None; 3], "the bad batch's ids are not logged");
    let state = answer.states;
    assert_eq!(state[0].as_ref().map(|s| s.version()), Some(StreamVersion(1)), "nor is its stream state");
    // c-1 was in the failed batch, so it must not count as made.
    let err = block(store.append(vec![delivered(&a, "c-1", 4)], ExpectedVersion::Any)).expect_err("c-1 unknown");
    assert!(matches!(err, AppendError::Invalid(ValidationError::CommitmentUnknown { .. })), "{err}");
    // And its ids were not reserved: the same made event can now be appended.
    let ok = block(store.append(vec![made(&a, "c-1", 5)], ExpectedVersion::Exact(StreamVersion(1)))).expect("retry");
    assert_eq!(ok.appended[0].position, Position(2), "positions continue without a gap");
    assert_log_invariants(&store);
}

/// Optimistic concurrency: conflicts carry the actual version.
pub fn expected_version_is_enforced<S: BackfillStore>(store: S) {
    let (a, b) = (account("acme"), account("globex"));
    block(store.append(vec![touch(&a, 0)], ExpectedVersion::NoStream)).expect("NoStream on a new stream");
    match block(store.append(vec![touch(&a, 1)], ExpectedVersion::NoStream)) {
        Err(AppendError::WrongExpectedVersion { actual, account, .. }) => {
            assert_eq!(actual, StreamVersion(1));
            assert_eq!(account, a);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    match block(store.append(vec![touch(&a, 1)], ExpectedVersion::Exact(StreamVersion(7)))) {
        Err(AppendError::WrongExpectedVersion { actual, expected, .. }) => {
            assert_eq!(actual, StreamVersion(1));
            assert_eq!(expected, ExpectedVersion::Exact(StreamVersion(7)));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    block(store.append(vec![touch(&a, 1), touch(&a, 2)], ExpectedVersion::Exact(StreamVersion(1)))).expect("exact");
    let err = block(store.append(vec![touch(&a, 3), touch(&b, 3)], ExpectedVersion::Exact(StreamVersion(3))))
        .expect_err("mixed accounts");
    assert!(matches!(err, AppendError::MixedAccounts { .. }), "{err}");
    block(store.append(vec![touch(&b, 0)], ExpectedVersion::Exact(StreamVersion(0)))).expect("Exact(0) is no stream");
    assert_eq!(assert_log_invariants(&store).len(), 4);
}

/// Appends whose futures were created one after another on one handle apply in that order,
/// even when none is awaited before the last is created (an importer keeps several batches
/// in flight): each batch here needs the one before it.
pub fn appends_apply_in_submission_order<S: BackfillStore>(store: S) {
    let a = account("acme");
    let batches: Vec<Vec<NewEvent>> = (0..12)
        .map(|k| {
            let key = format!("c-{k}");
            let made = made(&a, &key, 2 * k);
            if k == 0 { vec![made] } else { vec![delivered(&a, &format!("c-{}", k - 1), 2 * k - 1), made] }
        })
        .collect();
    let futures: Vec<_> = batches
        .iter()
        .enumerate()
        .map(|(k, b)| {
            let f: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send + '_>> = if k % 2 == 0 {
                Box::pin(store.append_bulk(b.clone()))
            } else {
                Box::pin(store.append(b.clone(), ExpectedVersion::Any))
            };
            f
        })
        .collect();
    for (k, f) in futures.into_iter().enumerate() {
        let out = block(f).unwrap_or_else(|e| panic!("batch {k} applies after batch {}: {e}", k.max(1) - 1));
        assert_eq!(out.appended.len(), batches[k].len());
    }
    let log = assert_log_invariants(&store);
    let expected: Vec<_> = batches.iter().flatten().map(|e| e.id).collect();
    assert_eq!(log.iter().map(|e| e.id).collect::<Vec<_>>(), expected, "log order is submission order");
}

/// The same id with the same content is a duplicate; with other content, an error.
pub fn appends_are_idempotent<S: BackfillStore>(store: S) {
    let a = account("acme");
    let batch = vec![made(&a, "c-1", 0), touch(&a, 1)];
    block(store.append(batch.clone(), ExpectedVersion::NoStream)).expect("first");
    // A retry of the same batch, even with its now-stale expected version, writes nothing.
    let again = block(store.append(batch.clone(), ExpectedVersion::NoStream)).expect("retry");
    assert!(again.appended.is_empty());
    assert_eq!(again.duplicates, batch.iter().map(|e| e.id).collect::<Vec<_>>());
    // A batch mixing old and new events writes only the new ones.
    let fresh = touch(&a, 2);
    let mixed = block(store.append(vec![batch[1].clone(), fresh.clone()], ExpectedVersion::Any)).expect("mixed");
    assert_eq!(mixed.appended.len(), 1);
    assert_eq!(mixed.appended[0].id, fresh.id);
    assert_eq!(mixed.duplicates, vec![batch[1].id]);
    // A repeat inside one batch is a duplicate too.
    let twice = touch(&a, 3);
    let out = block(store.append(vec![twice.clone(), twice.clone()], ExpectedVersion::Any)).expect("in-batch repeat");
    assert_eq!((out.appended.len(), out.duplicates.len()), (1, 1));
    // Same id, different content: refused, whether logged before or earlier in the batch.
    let mut forged = batch[1].clone();
    forged.occurred_at = t(99);
    let err = block(store.append(vec![forged.clone()], ExpectedVersion::Any)).expect_err("forged");
    assert!(matches!(err, AppendError::IdConflict { id, .. } if id == forged.id), "{err}");
    let other = touch(&a, 4);
    let mut other_forged = other.clone();
    other_forged.event = Event::IssueDisclosed { summary: None };
    let err = block(store.append(vec![other, other_forged], ExpectedVersion::Any)).expect_err("forged in batch");
    assert!(matches!(err, AppendError::IdConflict { .. }), "{err}");
    assert_eq!(assert_log_invariants(&store).len(), 4);
}

/// The store runs core's validation against the stored stream.
pub fn validation_runs_against_the_stream<S: BackfillStore>(store: S) {
    let a = account("acme");
    block(store.append(vec![made(&a, "c-1", 0)], ExpectedVersion::Any)).expect("made");
    let err = block(store.append(vec![made(&a, "c-1", 1)], ExpectedVersion::Any)).expect_err("made twice");
    assert!(matches!(err, AppendError::Invalid(ValidationError::CommitmentAlreadyMade { .. })), "{err}");
    let err = block(store.append(vec![delivered(&a, "c-1", -5)], ExpectedVersion::Any)).expect_err("before made");
    assert!(matches!(err, AppendError::Invalid(ValidationError::StepBeforePrevious { .. })), "{err}");
    // A different account has its own keys.
    block(store.append(vec![made(&account("globex"), "c-1", 1)], ExpectedVersion::Any)).expect("other account");
    let e = EscalationKey::new("e-1").expect("key");
    let ack = NewEvent::new(a.clone(), t(2), Event::EscalationAcknowledged { escalation: e.clone() });
    let err = block(store.append(vec![ack], ExpectedVersion::Any)).expect_err("ack unknown");
    assert!(matches!(err, AppendError::Invalid(ValidationError::EscalationUnknown { .. })), "{err}");
    let raise = NewEvent::new(
        a.clone(),
        t(2),
        Event::EscalationRaised { escalation: e, severity: Severity::High, summary: None },
    );
    block(store.append(vec![raise], ExpectedVersion::Any)).expect("raise");
    assert_eq!(assert_log_invariants(&store).len(), 3);
}

/// Texts written to share one stable hash stay apart: two such accounts are two streams, and
/// in one account a second commitment or escalation key with the hash of one already made is
/// refused (projections tell an account's items apart by that hash), while another account
/// may use it.
pub fn colliding_keys_stay_apart<S: BackfillStore>(store: S) {
    let texts = crate::testing::colliding_keys(3);
    let (a, b) = (account(&texts[0]), account(&texts[1]));
    block(store.append(vec![made(&a, "c-1", 0), made(&b, "c-1", 0)], ExpectedVersion::Any)).expect("two accounts");
    block(store.append(vec![touch(&b, 1)], ExpectedVersion::Exact(StreamVersion(1)))).expect("b is its own stream");
    assert_eq!(stream(&store, &a).len(), 1, "account {a} holds only its own event");
    assert_eq!(stream(&store, &b).len(), 2, "account {b} holds only its own events");
    let mut listed = block(Ledger::new(&store).accounts()).expect("accounts");
    listed.sort();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(listed, want);

    block(store.append(vec![made(&a, &texts[1], 2)], ExpectedVersion::Any)).expect("a colliding key's first use");
    let err = block(store.append(vec![made(&a, &texts[2], 3)], ExpectedVersion::Any)).expect_err("collides");
    assert!(matches!(err, AppendError::Invalid(ValidationError::CommitmentKeyCollision { .. })), "{err}");
    assert!(err.to_string().contains(&texts[2]) && err.to_string().contains(&texts[1]), "names both keys: {err}");
    block(store.append(vec![made(&b, &texts[2], 3)], ExpectedVersion::Any)).expect("another account may use it");
    let err =
        block(store.append(vec![delivered(&a, &texts[2], 4)], ExpectedVersion::Any)).expect_err("never made in a");
    assert!(matches!(err, AppendError::Invalid(ValidationError::CommitmentUnknown { .. })), "{err}");
    block(store.append(vec![delivered(&a, &texts[1], 4)], ExpectedVersion::Any)).expect("the made one delivers");

    let raise = |key: &str, hours| {
        let escalation = EscalationKey::new(key).expect("key");
        NewEvent::new(
            a.clone(),
            t(hours),
            Event::EscalationRaised { escalation, severity: Severity::Low, summary: None },
        )
    };
    block(store.append(vec![raise(&texts[0], 5)], ExpectedVersion::Any)).expect("raise");
    let err = block(store.append(vec![raise(&texts[2], 6)], ExpectedVersion::Any)).expect_err("collides");
    assert!(matches!(err, AppendError::Invalid(ValidationError::EscalationKeyCollision { .. })), "{err}");
    assert_eq!(assert_log_invariants(&store).len(), 7);
}

/// Oversized batches are refused whole.
pub fn oversized_batches_are_refused<S: BackfillStore>(store: S) {
    let a = account("acme");
    let batch: Vec<NewEvent> = (0..=BATCH_EVENTS_MAX as i64).map(|i| touch(&a, i)).collect();
    let err = block(store.append(batch, ExpectedVersion::Any)).expect_err("too large");
    assert!(matches!(err, AppendError::BatchTooLarge { .. }), "{err}");
    assert_eq!(block(store.head()).expect("head"), Position(0));
    block(store.append(Vec::new(), ExpectedVersion::Any)).expect("an empty batch is a no-op");
    assert_eq!(block(store.head()).expect("head"), Position(0));
}

/// Paged reads return every event once, in order, whatever the page size.
pub fn reads_are_paged<S: BackfillStore>(store: S) {
    let events: Vec<NewEvent> =
        generate(SynthConfig { accounts: 7, months: 4, seed: 9, ..Default::default() }).collect();
    for chunk in events.chunks(50) {
        block(store.append(chunk.to_vec(), ExpectedVersion::Any)).expect("append");
    }
    let n = events.len() as u64;
    for limit in [1usize, 7, 64, 10_000] {
        let mut next = Position(1);
        let mut seen = 0u64;
        loop {
            let page = block(store.read_all(next, limit)).expect("read_all");
            assert!(page.len() <= limit, "a page holds at most `limit` events");
            let Some(last) = page.last() else { break };
            for e in &page {
                seen += 1;
                assert_eq!(e.position, Position(seen), "page of {limit} continues without a gap");
            }
            next = last.position.next();
        }
        assert_eq!(seen, n);
    }
    let accounts = block(store.accounts(None, 3)).expect("accounts");
    assert_eq!(accounts.len(), 3);
    let rest = block(store.accounts(accounts.last(), 100)).expect("accounts");
    assert_eq!(rest.len(), 4);
    assert!(accounts.last() < rest.first(), "accounts ascend across pages");
    let a = &accounts[0];
    let tail = block(store.read_stream(a, StreamVersion(3), 2)).expect("read_stream");
    assert_eq!(tail.iter().map(|e| e.stream_version.0).collect::<Vec<_>>(), [3, 4]);
    assert!(block(store.read_all(Position(n + 1), 10)).expect("past the end").is_empty());
    assert_log_invariants(&store);
}

/// [`Store::scan`] lends every event from a position up to the head, once, in order, equal to
/// what `read_all` returns (hostile text included), and returns the position after the last.
pub fn scans_lend_every_event_once<S: BackfillStore>(store: S) {
    // A store that seals personal text lends it withheld; compared as such.
    let scan = |from: u64| {
        let mut out = Vec::new();
        let next = block(store.scan(Position(from), &mut |e| out.push(e.to_envelope()))).expect("scan");
        (out, next)
    };
    let lent = |logged: &[Envelope], viewed: &[Envelope]| -> Vec<Envelope> {
        logged
            .iter()
            .zip(viewed.iter().map(Some).chain(std::iter::repeat(None)))
            .map(
                |(l, v)| if v.is_some_and(|v| v.text == crate::TextState::Withheld) { l.withheld() } else { l.clone() },
            )
            .collect()
    };
    assert_eq!(scan(0), (Vec::new(), Position(1)), "an empty log lends nothing");
    let mut events: Vec<NewEvent> =
        generate(SynthConfig { accounts: 20, months: 6, seed: 4, ..Default::default() }).take(300).collect();
    let odd = account("o'brien \"quoted\" ß \u{1F600}");
    events.push(NewEvent::new(
        odd,
        t(0),
        Event::IssueDisclosed { summary: Some("line\nbreak, \u{202e}bidi, \u{7} and '\"\\".into()) },
    ));
    for chunk in events.chunks(37) {
        block(store.append(chunk.to_vec(), ExpectedVersion::Any)).expect("append");
    }
    let logged = all(&store);
    let n = logged.len() as u64;
    assert_eq!(n, events.len() as u64);
    assert!(n > 200, "the log spans several appends: {n} events");
    let (whole, next) = scan(1);
    assert_eq!(
        (lent(&logged, &whole), next),
        (whole.clone(), Position(n + 1)),
        "a scan from the start lends the whole log"
    );
    assert_eq!(scan(0).0, whole, "position 0 reads as 1");
    for from in [2, 37, 38, 150, n] {
        let (tail, next) = scan(from);
        assert_eq!(tail, whole[from as usize - 1..], "a scan from {from} lends the rest");
        assert_eq!(next, Position(n + 1));
    }
    assert_eq!(scan(n + 1), (Vec::new(), Position(n + 1)), "past the head lends nothing");
    assert_eq!(scan(n + 50), (Vec::new(), Position(n + 50)), "far past the head lends nothing");
    // [`Store::scan_stream`] lends each account's stream as reading it returns it.
    for a in &block(store.accounts(None, 1_000)).expect("accounts") {
        let mut viewed = Vec::new();
        block(store.scan_stream(a, &mut |e| viewed.push(e.to_envelope()))).expect("scan_stream");
        assert_eq!(lent(&stream(&store, a), &viewed), viewed, "a scan of {a}'s stream lends it");
    }
    let mut lent_none = 0;
    block(store.scan_stream(&account("nobody"), &mut |_| lent_none += 1)).expect("scan_stream");
    assert_eq!(lent_none, 0, "an account without events lends nothing");
}

/// Awkward but valid text survives byte for byte: quotes, backslashes, control characters,
/// unicode, 4 KiB.
pub fn hostile_text_round_trips<S: BackfillStore>(store: S) {
    let nasty = account("o'brien \"quoted\" \\ back; DROP TABLE events;--");
    let long = "ß".repeat(crate::TEXT_BYTES_MAX / 2);
    let events = vec![
        NewEvent::new(
            nasty.clone(),
            t(0),
            Event::IssueDisclosed {
                summary: Some("bell\u{7}, escape\u{1b}[31m, line\nbreak, \u{202e}bidi, \u{1F600} and '\"\\".into()),
            },
        ),
        NewEvent::new(nasty.clone(), t(1), Event::IssueDisclosed { summary: Some(long) }),
    ];
    block(store.append(events.clone(), ExpectedVersion::Any)).expect("append");
    let back = stream(&store, &nasty);
    assert_eq!(back.len(), 2);
    for (env, new) in back.iter().zip(&events) {
        assert!(env.same_content(new), "text reads back byte for byte");
    }
}

/// Metadata is stored and read back by every read (a stream, the log, a scan's views), awkward
/// text included; it is not content: the same event again with other metadata is a duplicate,
/// and the log keeps the first submission's. (A store that holds no metadata, a file store of
/// an older format, refuses it instead, which its own tests check.)
pub fn metadata_is_kept_and_is_not_content<S: BackfillStore>(store: S) {
    if store.schema_version_max() < 2 {
        return;
    }
    let a = account("acme");
    let meta = crate::Metadata::new()
        .with_actor("o'brien \"quoted\" \\ é")
        .and_then(|m| m.with_source("helpdesk"))
        .and_then(|m| m.with_correlation_id("req-1"))
        .and_then(|m| m.with_causation_id("evt-0"))
        .and_then(|m| m.with_tag("region", "emea"))
        .and_then(|m| m.with_tag("flag", ""))
        .expect("valid metadata");
    let events = vec![made(&a, "c-1", 0).with_meta(meta.clone()), touch(&a, 1), delivered(&a, "c-1", 2)];
    block(store.append(events.clone(), ExpectedVersion::Any)).expect("append");
    let log = assert_log_invariants(&store);
    assert_eq!(
        log.iter().map(|e| e.meta.clone()).collect::<Vec<_>>(),
        [meta.clone(), Default::default(), Default::default()]
    );
    assert_eq!(stream(&store, &a)[0].meta, meta, "read_stream returns it");
    let mut viewed = Vec::new();
    block(store.scan(Position(1), &mut |e| viewed.push(e.to_envelope()))).expect("scan");
    let lent = if viewed[0].text == crate::TextState::Withheld { log[0].withheld() } else { log[0].clone() };
    assert_eq!(viewed[0].meta, lent.meta, "a scan lends it (the actor withheld by a store that seals it)");
    // Another source's copy of the same facts: duplicates, and the first metadata stays.
    let other = crate::Metadata::new().with_source("crm").expect("valid");
    let again: Vec<NewEvent> = events.iter().map(|e| e.clone().with_meta(other.clone())).collect();
    let out = block(store.append(again.clone(), ExpectedVersion::Any)).expect("append again");
    assert_eq!((out.appended.len(), out.duplicates.len()), (0, 3));
    let out = block(store.append_bulk(again)).expect("bulk again");
    assert_eq!((out.appended.len(), out.duplicates.len()), (0, 3));
    assert_eq!(assert_log_invariants(&store), log);
    // The bulk path (a database's COPY) keeps it too.
    let b = account("globex");
    let bulk = vec![touch(&b, 4).with_meta(meta.clone()), touch(&b, 5)];
    block(store.append_bulk(bulk)).expect("bulk append");
    let read = stream(&store, &b);
    assert_eq!((read[0].meta.clone(), read[1].meta.is_empty()), (meta, true));
}

/// Several threads appending at once: nothing lost, nothing duplicated, no gaps.
pub fn concurrent_appenders_lose_nothing<S: BackfillStore + 'static>(store: S) {
    const THREADS: usize = 4;
    const BATCHES: usize = 100;
    let store = Arc::new(store);
    let shared = account("shared");
    let handles: Vec<_> = (0..THREADS)
        .map(|w| {
            let store = Arc::clone(&store);
            let shared = shared.clone();
            std::thread::spawn(move || {
                let own = account(&format!("worker-{w}"));
                let mut ids = Vec::new();
                let mut guess = StreamVersion(0);
                for i in 0..BATCHES {
                    let h = (i * THREADS + w) as i64;
                    let batch = vec![touch(&own, h), touch(&shared, h), touch(&own, h)];
                    ids.extend(batch.iter().map(|e| e.id));
                    let out = block(store.append(batch, ExpectedVersion::Any)).expect("append");
                    assert_eq!(out.appended.len(), 3);
                    // Optimistic writers race on the shared stream, retrying with the actual
                    // version a conflict reports; each version is won exactly once.
                    let contested = touch(&shared, h);
                    ids.push(contested.id);
                    loop {
                        match block(store.append(vec![contested.clone()], ExpectedVersion::Exact(guess))) {
                            Ok(out) => {
                                assert_eq!(out.appended.len(), 1);
                                guess = out.appended[0].stream_version;
                                break;
                            }
                            Err(AppendError::WrongExpectedVersion { actual, .. }) => guess = actual,
                            Err(e) => panic!("contested append: {e}"),
                        }
                    }
                }
                ids
            })
        })
        .collect();
    let mut expected: HashSet<EventId> = HashSet::new();
    for h in handles {
        expected.extend(h.join().expect("worker thread"));
    }
    let log = assert_log_invariants(&*store);
    assert_eq!(log.len(), THREADS * BATCHES * 4, "0 lost");
    let got: HashSet<EventId> = log.iter().map(|e| e.id).collect();
    assert_eq!(got, expected, "exactly the appended events, 0 duplicated");
    let shared_stream = stream(&*store, &shared);
    assert_eq!(shared_stream.len(), THREADS * BATCHES * 2);
}

/// New events pass the admission rules (`validate::Admission`): an event dated more than the
/// allowed skew after now, a weight above `WEIGHT_MAX` and a NUL in free text are refused,
/// each with its own error, and nothing is written; the limits themselves are accepted.
pub fn new_events_pass_the_admission_rules<S: BackfillStore>(store: S) {
    use crate::validate::{FUTURE_SKEW_DEFAULT, WEIGHT_MAX};
    let a = account("acme");
    let now = Timestamp::now();
    let skew = FUTURE_SKEW_DEFAULT.as_nanos() as i64;
    let at = |e: NewEvent, when: Timestamp| NewEvent { occurred_at: when, ..e };
    let future = at(touch(&a, 0), now.add_nanos(skew + 3_600 * 1_000_000_000));
    let err = block(store.append(vec![touch(&a, 0), future], ExpectedVersion::Any)).expect_err("in the future");
    assert!(matches!(err, AppendError::Invalid(ValidationError::OccursInTheFuture { .. })), "{err}");
    let heavy = |w: f64| {
        let mut e = made(&a, "heavy", 0);
        if let Event::CommitmentMade { weight, .. } = &mut e.event {
            *weight = w;
        }
        e
    };
    let err = block(store.append(vec![heavy(WEIGHT_MAX * 2.0)], ExpectedVersion::Any)).expect_err("too heavy");
    assert!(matches!(err, AppendError::Invalid(ValidationError::WeightTooLarge { .. })), "{err}");
    let nul = NewEvent::new(a.clone(), t(1), Event::IssueDisclosed { summary: Some("a\u{0}b".into()) });
    let err = block(store.append(vec![nul], ExpectedVersion::Any)).expect_err("NUL in text");
    assert!(matches!(err, AppendError::Invalid(ValidationError::TextHoldsNul { .. })), "{err}");
    assert_eq!(block(store.head()).expect("head"), Position(0), "refusals wrote nothing");
    let soon = at(touch(&a, 0), now.add_nanos(skew / 2));
    block(store.append(vec![heavy(WEIGHT_MAX), soon], ExpectedVersion::Any)).expect("at the limits");
    assert_eq!(assert_log_invariants(&store).len(), 2);
}

/// An id reused with other content is a conflict even when the content was written so that an
/// unkeyed 64-bit hash of it equals the logged event's (`testing::forged_twin`): logged
/// first, or still in flight when the other append is submitted.
pub fn forged_twins_are_conflicts<S: BackfillStore>(store: S) {
    let a = account("acme");
    for (k, in_flight) in [false, true].into_iter().enumerate() {
        let legit = made(&a, &format!("c-{k}"), k as i64);
        let twin = crate::testing::forged_twin(&legit);
        let err = if in_flight {
            let first = store.append(vec![twin], ExpectedVersion::Any);
            let second = store.append(vec![legit.clone()], ExpectedVersion::Any);
            block(first).expect("the twin is new");
            block(second).expect_err("the legitimate event after its twin")
        } else {
            block(store.append(vec![twin], ExpectedVersion::Any)).expect("the twin is new");
            block(store.append(vec![legit.clone()], ExpectedVersion::Any)).expect_err("after its twin")
        };
        assert!(matches!(err, AppendError::IdConflict { id, .. } if id == legit.id), "in flight {in_flight}: {err}");
    }
    assert_eq!(assert_log_invariants(&store).len(), 2);
}

/// Subscriptions never skip or repeat a position: writers append (one of them slowly) while
/// readers subscribe, drop their subscription and resubscribe from the last position they
/// saw, at random; each reader's events, in order, are the log's. A subscription waiting past
/// the head returns once an append commits, without polling.
pub fn subscriptions_never_skip_or_repeat<S: BackfillStore + 'static>(store: S) {
    const WRITERS: usize = 8;
    const BATCHES: usize = 25;
    const READERS: usize = 3;
    let store = Arc::new(store);
    let total = WRITERS * BATCHES * 2;
    let first = block(store.head()).expect("head").0;
    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut seen: Vec<Envelope> = Vec::with_capacity(total);
                let mut rng: u64 = 0x9e37_79b9_7f4a_7c15 ^ (r as u64 + 1);
                let mut subscription = Subscription::new(Arc::clone(&store), Position(first + 1));
                while seen.len() < total {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    if rng.is_multiple_of(7) {
                        // Drop it and resubscribe from where it stood.
                        let at = subscription.position();
                        subscription = Subscription::new(Arc::clone(&store), at);
                    }
                    let batch = if rng.is_multiple_of(2) {
                        vec![block(subscription.next()).expect("next")]
                    } else {
                        block(subscription.next_batch(1 + (rng % 13) as usize)).expect("next batch")
                    };
                    seen.extend(batch);
                }
                seen
            })
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let own = account(&format!("subscribed-{w}"));
                for i in 0..BATCHES {
                    if w == 0 {
                        std::thread::sleep(std::time::Duration::from_millis(2));
                    }
                    let h = (i * WRITERS + w) as i64;
                    block(store.append(vec![touch(&own, h), touch(&own, h)], ExpectedVersion::Any)).expect("append");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer thread");
    }
    let log: Vec<Envelope> = assert_log_invariants(&*store).into_iter().filter(|e| e.position.0 > first).collect();
    assert_eq!(log.len(), total);
    for r in readers {
        let seen = r.join().expect("reader thread");
        assert_eq!(seen.len(), total, "a reader saw each event once");
        for (a, b) in seen.iter().zip(&log) {
            assert_eq!((a.position, a.id), (b.position, b.id), "a reader saw the log in order, without gaps");
        }
    }
    // Waiting past the head returns once an append commits.
    let head = block(store.head()).expect("head");
    let waiter = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || block(store.wait_past(head)))
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(!waiter.is_finished(), "nothing was appended: the wait goes on");
    block(store.append(vec![touch(&account("subscribed-late"), 0)], ExpectedVersion::Any)).expect("append");
    assert_eq!(waiter.join().expect("waiter").expect("wait"), head.next());
}

/// Derived state beside the log: a blob saved reads back, a save replaces it whole, a blob
/// never saved is absent, names are checked, and the log's identity stays the same.
pub fn derived_state_round_trips<S: BackfillStore + crate::DerivedStore + 'static>(store: S) {
    let id = store.log_id();
    assert_eq!(block(store.load_derived("runner")).expect("load"), None, "nothing saved yet");
    let first: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    block(store.save_derived("runner", &first)).expect("save");
    assert_eq!(block(store.load_derived("runner")).expect("load").as_deref(), Some(&first[..]));
    block(store.save_derived("runner", b"shorter")).expect("save again");
    assert_eq!(block(store.load_derived("runner")).expect("load").as_deref(), Some(&b"shorter"[..]), "replaced whole");
    block(store.save_derived("index-1", b"")).expect("an empty blob");
    assert_eq!(block(store.load_derived("index-1")).expect("load").as_deref(), Some(&b""[..]));
    for bad in ["", "Runner", "../head", "a/b", "x y", &"n".repeat(65)] {
        assert!(block(store.save_derived(bad, b"x")).is_err(), "{bad:?} is refused");
        assert!(block(store.load_derived(bad)).is_err(), "{bad:?} is refused");
    }
    block(store.append(vec![touch(&account("derived"), 0)], ExpectedVersion::Any)).expect("append");
    assert_eq!(store.log_id(), id, "the log's identity does not change");
}

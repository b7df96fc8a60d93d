//! The conformance checks of erasing personal text ([`crate::erase`]): what an erasure keeps,
//! and how it orders with appends.

use std::sync::Arc;

use super::{account, all, assert_log_invariants, block, delivered, made, stream, t, touch};
use crate::event::{Event, NewEvent};
use crate::store::{AppendError, BackfillStore, ExpectedVersion};

/// Erasing personal text ([`crate::erase`]) keeps everything but the text, in every store: an
/// account's text reads as erased, stripped, at its old positions and versions; other
/// accounts and text-free events are untouched; a re-submission is a duplicate and a changed
/// fact a conflict; later events keep their text; a retention run erases whole months before
/// its own; erasures are recorded, and bad requests refused.
pub fn erasure_keeps_everything_but_the_text<S: BackfillStore + crate::ErasingStore>(store: S) {
    use crate::{EraseError, TextState};
    let (a, b) = (account("leaving"), account("staying"));
    let actor = crate::Metadata::new().with_actor("Jo Bloggs").expect("valid metadata");
    let survey = NewEvent::new(
        a.clone(),
        t(2),
        Event::SurveyAnswered {
            survey: crate::SurveyKey::new("q1").expect("key"),
            score: crate::SurveyScore::Csat(2),
            comment: Some("Jo was rude".into()),
        },
    );
    let jan = vec![made(&a, "c-1", 0).with_meta(actor), touch(&a, 1), survey, delivered(&a, "c-1", 3)];
    let b_jan = made(&b, "c-1", 0);
    let b_mar = made(&b, "c-2", 24 * 62);
    block(store.append(jan.clone(), ExpectedVersion::Any)).expect("append");
    block(store.append_bulk(vec![b_jan.clone(), b_mar.clone()])).expect("bulk append");
    let before = assert_log_invariants(&store);
    let erasure = block(store.erase(&a, "request 7")).expect("erase");
    assert_eq!((erasure.account.as_ref(), erasure.before, erasure.keys_destroyed), (Some(&a), None, 1));
    let after = assert_log_invariants(&store);
    for (was, now) in before.iter().zip(&after) {
        let erased = now.account == a && crate::PersonalText::is_in(&was.event, &was.meta);
        let expect = if erased { TextState::Erased } else { TextState::Present };
        assert_eq!(now.text, expect, "position {}", now.position);
        assert_eq!(
            (now.position, now.stream_version, now.recorded_at),
            (was.position, was.stream_version, was.recorded_at)
        );
        let mut stripped = was.to_new_event();
        if erased {
            crate::PersonalText::take(&mut stripped.event, &mut stripped.meta);
        }
        assert_eq!((now.event.clone(), now.meta.clone()), (stripped.event, stripped.meta), "only the text goes");
    }
    assert_eq!(stream(&store, &a).len(), 4);
    // Re-submitted, the erased events are duplicates; a changed fact is still a conflict.
    let out = block(store.append(jan.clone(), ExpectedVersion::Any)).expect("re-submit");
    assert_eq!((out.appended.len(), out.duplicates.len()), (0, 4));
    let preflight = block(store.preflight(std::slice::from_ref(&a), &[jan[0].id])).expect("preflight");
    assert_eq!(preflight.logged, [Some(jan[0].fingerprint_erased())], "answered with the erased fingerprint");
    let mut changed = jan[0].clone();
    if let Event::CommitmentMade { weight, .. } = &mut changed.event {
        *weight = 2.0;
    }
    let err = block(store.append(vec![changed], ExpectedVersion::Any)).expect_err("a changed fact");
    assert!(matches!(err, AppendError::IdConflict { .. }), "{err}");
    // Later text is kept, under new keys.
    let later = made(&a, "c-2", 24 * 62);
    block(store.append(vec![later.clone()], ExpectedVersion::Any)).expect("append after erasure");
    let read = stream(&store, &a);
    assert!(read[4].same_content(&later) && read[4].text == TextState::Present, "text after the erasure");
    // Retention: everything that occurred before February, every account.
    let retention = block(store.erase_before(t(24 * 45), "retention 30d")).expect("erase before");
    assert_eq!((retention.account, retention.before, retention.keys_destroyed), (None, Some(t(24 * 31)), 1));
    let read = stream(&store, &b);
    assert_eq!((read[0].text, read[1].text), (TextState::Erased, TextState::Present), "January's text only");
    assert!(read[1].same_content(&b_mar));
    assert_eq!(stream(&store, &a)[4].text, TextState::Present, "March's text stays");
    let recorded = block(store.erasures()).expect("erasures");
    assert_eq!(recorded.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(), ["request 7", "retention 30d"]);
    assert!(matches!(block(store.erase(&account("nobody"), "x")), Err(EraseError::UnknownAccount(_))));
    for bad in ["", "line\nbreak"] {
        assert!(matches!(block(store.erase(&b, bad)), Err(EraseError::InvalidReason(_))), "{bad:?}");
    }
    assert_eq!(block(store.erasures()).expect("erasures").len(), 2, "refusals record nothing");
}

/// An erasure is ordered with appends: while another thread appends events with text to an
/// account one by one, the account is erased; every event recorded before the erasure reads
/// erased, every one after it reads whole (its text under a new key), none is lost.
pub fn erasure_orders_with_appends<S: BackfillStore + crate::ErasingStore + 'static>(store: S) {
    use crate::TextState;
    const EVENTS: usize = 60;
    let store = Arc::new(store);
    let busy = account("busy");
    let said = |i: usize| {
        NewEvent::new(
            busy.clone(),
            t(i as i64),
            Event::SurveyAnswered {
                survey: crate::SurveyKey::new(&format!("q{i}")).expect("key"),
                score: crate::SurveyScore::Nps(7),
                comment: Some(format!("comment {i}")),
            },
        )
    };
    let events: Vec<NewEvent> = (0..EVENTS).map(said).collect();
    block(store.append(events[..5].to_vec(), ExpectedVersion::Any)).expect("append");
    let appender = {
        let (store, events) = (Arc::clone(&store), events.clone());
        std::thread::spawn(move || {
            for (i, e) in events.iter().enumerate().skip(5) {
                // The last third waits for the erasure, so some events surely come after it.
                while i == 2 * EVENTS / 3 && block(store.erasures()).expect("erasures").is_empty() {
                    std::thread::yield_now();
                }
                block(store.append(vec![e.clone()], ExpectedVersion::Any)).expect("append");
            }
        })
    };
    while block(store.head()).expect("head").0 < 20 {
        std::thread::yield_now();
    }
    let erasure = block(store.erase(&busy, "request while busy")).expect("erase");
    appender.join().expect("the appender");
    let log = all(&*store);
    assert_eq!(log.len(), EVENTS, "nothing lost");
    // Along positions: a run erased, then a run whole, split where the erasure fell in time.
    let erased = log.iter().take_while(|e| e.text == TextState::Erased).count();
    assert!((20..EVENTS).contains(&erased), "the erasure fell between appends: {erased} erased of {EVENTS}");
    for (e, new) in log.iter().zip(&events).skip(erased) {
        assert!(e.text == TextState::Present && e.same_content(new), "position {}: after it, whole", e.position);
    }
    assert!(log[..erased].iter().all(|e| e.recorded_at <= erasure.at), "the erased were recorded before it");
    assert!(log[erased..].iter().all(|e| e.recorded_at >= erasure.at), "the whole ones after it");
}

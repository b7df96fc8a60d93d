//! The record codec: every event reads back as written, the bytes are those the format's
//! specification gives, and malformed content is refused with its offset, never a panic.

use proptest::prelude::*;
use rapport_core::{
    AccountId, AdvocacyKind, Channel, CommitmentKey, EscalationKey, Event, EventId, NewEvent, Severity, StreamVersion,
    SurveyKey, SurveyScore, Timestamp,
};

use super::*;

fn content(e: &NewEvent) -> Vec<u8> {
    let mut out = Vec::new();
    codec::encode_event(e, &mut out);
    out
}

fn read(b: &[u8]) -> Result<NewEvent, DecodeError> {
    codec::decode_event(b, &mut |s| AccountId::new(s).map_err(|e| e.to_string()))
        .map_err(|e| DecodeError { offset: e.offset, reason: e.reason })
}

/// An event of type `ty` (0..12, in variant order) from raw parts.
fn event(ty: u8, key: &str, text: &str, maybe: Option<String>, (n, t, w, flag): (u8, i64, f64, bool)) -> Event {
    let (ck, ek, sk) =
        (CommitmentKey::new(key).unwrap(), EscalationKey::new(key).unwrap(), SurveyKey::new(key).unwrap());
    let due = Timestamp::from_unix_nanos(t);
    match ty {
        0 => Event::CommitmentMade { commitment: ck, title: text.to_owned(), due, weight: w },
        1 => Event::CommitmentRenegotiated { commitment: ck, due, reason: maybe },
        2 => Event::CommitmentDelivered { commitment: ck, accepted: flag },
        3 => Event::CommitmentCancelled { commitment: ck, reason: maybe },
        4 => Event::EscalationRaised {
            escalation: ek,
            severity: [Severity::Low, Severity::Medium, Severity::High, Severity::Critical][usize::from(n % 4)],
            summary: maybe,
        },
        5 => Event::EscalationAcknowledged { escalation: ek },
        6 => Event::EscalationResolved { escalation: ek },
        7 => Event::EscalationReopened { escalation: ek },
        8 => Event::SurveyAnswered {
            survey: sk,
            score: [SurveyScore::Nps(n % 11), SurveyScore::Csat(1 + n % 5), SurveyScore::Ces(1 + n % 7)]
                [usize::from(n % 3)],
            comment: maybe,
        },
        9 => Event::TouchpointHeld {
            channel: [Channel::Meeting, Channel::Call, Channel::Email, Channel::Chat, Channel::Visit]
                [usize::from(n % 5)],
        },
        10 => Event::IssueDisclosed { summary: maybe },
        _ => Event::AdvocacyGiven {
            kind: [AdvocacyKind::Referral, AdvocacyKind::Reference, AdvocacyKind::CaseStudy, AdvocacyKind::Review]
                [usize::from(n % 4)],
        },
    }
}

fn sample() -> NewEvent {
    NewEvent {
        id: EventId::from_bytes([7; 16]),
        account: AccountId::new("acme").unwrap(),
        occurred_at: Timestamp::from_unix_seconds(1),
        event: event(1, "c-1", "", Some("late".into()), (0, 5, 1.0, false)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(rapport_core::testing::cases(512)))]

    #[test]
    fn every_event_reads_back_as_written(
        ty in 0u8..12,
        id in 1u128..,
        account in "[a-z0-9-]{1,40}",
        key in "[a-zA-Z0-9_.:é-]{1,40}",
        // Up to 300 bytes, so lengths of one and two LEB128 bytes both occur.
        text in "\\PC{0,150}",
        maybe in proptest::option::of("\\PC{0,150}"),
        n in any::<u8>(),
        t in any::<i64>(),
        w in any::<f64>().prop_filter("NaN is not equal to itself", |w| !w.is_nan()),
        flag in any::<bool>(),
        recorded in any::<i64>(),
        version in any::<u64>(),
    ) {
        let e = NewEvent {
            id: EventId::from_bytes(id.to_be_bytes()),
            account: AccountId::new(&account).unwrap(),
            occurred_at: Timestamp::from_unix_nanos(t.wrapping_mul(3)),
            event: event(ty, &key, &text, maybe, (n, t, w, flag)),
        };
        let mut record = Vec::new();
        encode_record(&e, Timestamp::from_unix_nanos(recorded), StreamVersion(version), &mut record).unwrap();
        let (back, r, v) =
            decode_parts(&record[RECORD_PREFIX_BYTES..], &mut |s| AccountId::new(s).map_err(|e| e.to_string())).unwrap();
        prop_assert_eq!(&back, &e);
        prop_assert_eq!((r.unix_nanos(), v.0), (recorded, version));
        // Read in place, the same event: its text borrowed from the record's bytes.
        let body = &record[RECORD_PREFIX_BYTES..];
        let view = decode_body_ref(body, Position(9)).unwrap();
        prop_assert!(body.as_ptr_range().contains(&view.account.as_str().as_ptr()));
        prop_assert_eq!(view.to_envelope(), Envelope::new(e, r, v, Position(9)));
    }

    /// Any bytes: an event or an error, never a panic; and what decodes encodes back to the
    /// same bytes (so the decoder accepts one form per event).
    #[test]
    fn arbitrary_content_decodes_or_is_refused_and_round_trips(b in proptest::collection::vec(any::<u8>(), 0..80)) {
        if let Ok(e) = read(&b) {
            prop_assert_eq!(content(&e), b);
        }
    }
}

#[test]
fn the_bytes_are_the_specifications() {
    // docs/log-format.md, "Records": id, account, occurred_at, variant 1, commitment, due,
    // reason as an optional string.
    let mut want = vec![7u8; 16];
    want.extend([4]);
    want.extend(b"acme");
    want.extend(1_000_000_000i64.to_le_bytes());
    want.extend([1, 3]);
    want.extend(b"c-1");
    want.extend(5i64.to_le_bytes());
    want.extend([1, 4]);
    want.extend(b"late");
    assert_eq!(content(&sample()), want);
}

#[test]
fn lengths_at_every_leb128_boundary_round_trip() {
    for len in [0, 1, 127, 128, 129, 16_383, 16_384, 16_385, 20_000] {
        let long = "x".repeat(len);
        let e = NewEvent { event: event(0, "c-1", &long, None, (0, 5, 1.0, false)), ..sample() };
        let b = content(&e);
        let header = if len < 128 {
            1
        } else if len < 16_384 {
            2
        } else {
            3
        };
        assert_eq!(b.len(), 16 + 5 + 8 + 1 + 4 + header + len + 16, "{len}");
        assert_eq!(read(&b).unwrap(), e, "{len}");
        let e = NewEvent { event: event(10, "k", "", Some(long), (0, 0, 1.0, false)), ..sample() };
        assert_eq!(read(&content(&e)).unwrap(), e, "{len}");
    }
}

#[test]
fn malformed_content_is_refused_naming_where() {
    let good = content(&sample());
    let refused = |b: &[u8], says: &str| {
        let e = read(b).unwrap_err();
        assert!(e.reason.contains(says), "{says:?} not in {e}");
    };
    // Cut short anywhere.
    for len in 0..good.len() {
        refused(&good[..len], "ends early");
    }
    let mut extra = good.clone();
    extra.push(0);
    refused(&extra, "1 bytes after the event's last field");
    // The account's length in a long form (0x84 0x00 for 4).
    let mut long = good[..16].to_vec();
    long.extend([0x84, 0x00]);
    long.extend(&good[17..]);
    refused(&long, "shortest form");
    // The optional reason's flag neither 0 nor 1.
    let mut flag = good.clone();
    let at = good.len() - 6;
    assert_eq!(flag[at], 1);
    flag[at] = 2;
    refused(&flag, "neither 0 nor 1");
    // An unknown event type, and an unknown code.
    let mut ty = good.clone();
    ty[16 + 5 + 8] = 12;
    refused(&ty, "unknown event type 12");
    let touch = content(&NewEvent { event: Event::TouchpointHeld { channel: Channel::Visit }, ..sample() });
    let mut code = touch.clone();
    *code.last_mut().unwrap() = 5;
    refused(&code, "unknown channel code 5");
    // An integer past 64 bits.
    let mut over = good[..16].to_vec();
    over.extend([0xff; 9]);
    over.push(0x02);
    refused(&over, "overflows 64 bits");
    // A key that breaks the id rules, and text that is not UTF-8.
    let mut key = good.clone();
    key[16 + 5 + 8 + 1 + 1] = 0x01;
    refused(&key, "commitment");
    let mut utf = good.clone();
    utf[17] = 0xff;
    refused(&utf, "not UTF-8");
}

//! The record codec: every event reads back as written, the bytes are those the format's
//! specification gives, and malformed content is refused with its offset, never a panic.

use proptest::prelude::*;
use rapport_core::{
    AccountId, AdvocacyKind, Channel, CommitmentKey, EscalationKey, Event, EventId, Metadata, NewEvent, Severity,
    StreamVersion, SurveyKey, SurveyScore, TextState, Timestamp,
};

use super::*;

fn content(e: &NewEvent) -> Vec<u8> {
    let mut out = Vec::new();
    codec::encode_event(e, &mut out);
    out
}

fn read(b: &[u8]) -> Result<NewEvent, DecodeError> {
    codec::decode_event(b, codec::TextPlace::Content, &mut |s| AccountId::new(s).map_err(|e| e.to_string()))
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
        meta: Default::default(),
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
        // Instants and weights as every build admits them (the decoder refuses others).
        t in Timestamp::MIN.unix_nanos()..=Timestamp::MAX.unix_nanos(),
        occurred in Timestamp::MIN.unix_nanos()..=Timestamp::MAX.unix_nanos(),
        w in f64::MIN_POSITIVE..=f64::MAX,
        flag in any::<bool>(),
        recorded in any::<i64>(),
        version in any::<u64>(),
    ) {
        let e = NewEvent {
            id: EventId::from_bytes(id.to_be_bytes()),
            account: AccountId::new(&account).unwrap(),
            occurred_at: Timestamp::from_unix_nanos(occurred),
            event: event(ty, &key, &text, maybe, (n, t, w, flag)), meta: Default::default() };
        let mut record = Vec::new();
        let (recorded_at, stream_version) = (Timestamp::from_unix_nanos(recorded), StreamVersion(version));
        encode_record(&e, None, recorded_at, stream_version, FORMAT_VERSION_3, &mut record).unwrap();
        let intern = &mut |s: &str| AccountId::new(s).map_err(|e| e.to_string());
        let (back, r, v) = decode_parts(&record[RECORD_PREFIX_BYTES..], FORMAT_VERSION_3, intern).unwrap();
        prop_assert_eq!(&back, &e);
        prop_assert_eq!((r.unix_nanos(), v.0), (recorded, version));
        // Read in place, the same event: its text borrowed from the record's bytes.
        let body = &record[RECORD_PREFIX_BYTES..];
        let view = decode_body_ref(body, Position(9), FORMAT_VERSION_3).unwrap();
        prop_assert!(body.as_ptr_range().contains(&view.account.as_str().as_ptr()));
        let whole = Envelope::new(e.clone(), r, v, Position(9));
        prop_assert_eq!(view.to_envelope(), whole.clone());

        // Format 4: the personal text sealed before the stripped form, withheld in place, and
        // opened back to the same event.
        let key = rapport_core::seal::SealKey::from_bytes([7; 32]);
        let mut plain = Vec::new();
        let has_text = rapport_core::PersonalText::encode_of(&e.event, &e.meta, &mut plain);
        let mut sealed_bytes = Vec::new();
        key.sealer().seal(e.id, e.account.as_str(), &plain, &mut sealed_bytes);
        let sealed = has_text.then_some(SealedRef { key: 300, bytes: &sealed_bytes });
        let mut record = Vec::new();
        prop_assert_eq!(
            encode_record(&e, None, recorded_at, stream_version, FORMAT_VERSION, &mut Vec::new()).is_err(),
            has_text,
            "personal text is never written in the clear"
        );
        encode_record(&e, sealed, recorded_at, stream_version, FORMAT_VERSION, &mut record).unwrap();
        let body = &record[RECORD_PREFIX_BYTES..];
        if let Some(t) = text.as_bytes().get(..8).filter(|_| has_text) {
            prop_assert!(!body.windows(8).any(|w| w == t), "the text is not in the record");
        }
        let (mut opened, found) = decode_body_with(body, Position(9), FORMAT_VERSION, intern).unwrap();
        prop_assert_eq!(found, sealed);
        let view = decode_body_ref(body, Position(9), FORMAT_VERSION).unwrap();
        prop_assert_eq!(view.to_envelope(), opened.clone());
        prop_assert_eq!(opened.text, if has_text { TextState::Withheld } else { TextState::Present });
        if let Some(found) = found {
            let plain = key.sealer().open(e.id, e.account.as_str(), found.bytes).unwrap();
            rapport_core::PersonalText::decode(&plain).unwrap().restore(&mut opened.event, &mut opened.meta);
            opened.text = TextState::Present;
        }
        prop_assert_eq!(opened, whole);
    }

    /// Any bytes: an event or an error, never a panic; and what decodes encodes back, at the
    /// schema version it was read in, to the same bytes (so the decoder accepts one form per
    /// event and version).
    #[test]
    fn arbitrary_content_decodes_or_is_refused_and_round_trips(b in proptest::collection::vec(any::<u8>(), 0..80)) {
        if let Ok(e) = read(&b) {
            let again = match codec::decode_content(&b, codec::TextPlace::Content).map(|c| c.schema_version) {
                Ok(1) => {
                    let mut v1 = Vec::new();
                    codec::encode_event_v1(&e, &mut v1).unwrap();
                    v1
                }
                _ => content(&e),
            };
            prop_assert_eq!(again, b);
        }
    }
}

#[test]
fn the_bytes_are_the_specifications() {
    // docs/log-format.md, "Records": id, account, occurred_at, type code 33 (variant 1 at
    // schema version 2), commitment, due, reason as an optional string, no metadata.
    let mut v1 = vec![7u8; 16];
    v1.extend([4]);
    v1.extend(b"acme");
    v1.extend(1_000_000_000i64.to_le_bytes());
    let mut want = v1.clone();
    want.extend([33, 3]);
    want.extend(b"c-1");
    want.extend(5i64.to_le_bytes());
    want.extend([1, 4]);
    want.extend(b"late");
    want.push(0);
    assert_eq!(content(&sample()), want);
    // Schema version 1 (every record of a version-1 or version-2 log): type code 1, no
    // metadata section; it reads as the same event.
    v1.extend([1, 3]);
    v1.extend(b"c-1");
    v1.extend(5i64.to_le_bytes());
    v1.extend([1, 4]);
    v1.extend(b"late");
    let mut written = Vec::new();
    codec::encode_event_v1(&sample(), &mut written).unwrap();
    assert_eq!(written, v1);
    assert_eq!(read(&v1).unwrap(), sample());
    assert_eq!(codec::decode_content(&v1, codec::TextPlace::Content).unwrap().schema_version, 1);
    // Metadata: flags (actor 1, source 2, correlation 4, causation 8, tags 16), each value,
    // then the tag count and each name and value, names ascending.
    let meta = Metadata::new()
        .with_actor("ann")
        .unwrap()
        .with_causation_id("e-9")
        .unwrap()
        .with_tag("tier", "gold")
        .unwrap()
        .with_tag("region", "")
        .unwrap();
    let mut want_meta = want.clone();
    want_meta.pop();
    want_meta.extend([1 | 8 | 16, 3]);
    want_meta.extend(b"ann");
    want_meta.push(3);
    want_meta.extend(b"e-9");
    want_meta.extend([2, 6]);
    want_meta.extend(b"region");
    want_meta.push(0);
    want_meta.push(4);
    want_meta.extend(b"tier");
    want_meta.push(4);
    want_meta.extend(b"gold");
    let e = sample().with_meta(meta);
    assert_eq!(content(&e), want_meta);
    assert_eq!(read(&want_meta).unwrap(), e);
}

#[test]
fn lengths_at_every_leb128_boundary_round_trip() {
    for len in [0, 1, 127, 128, 129, 4_095, 4_096, 4_097, 16_383, 16_384, 16_385, 20_000] {
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
        assert_eq!(b.len(), 16 + 5 + 8 + 1 + 4 + header + len + 16 + 1, "{len}");
        let optional = NewEvent { event: event(10, "k", "", Some(long), (0, 0, 1.0, false)), ..sample() };
        if len <= rapport_core::TEXT_BYTES_MAX {
            assert_eq!(read(&b).unwrap(), e, "{len}");
            assert_eq!(read(&content(&optional)).unwrap(), optional, "{len}");
        } else {
            // Longer than any field of an event a build admits.
            for b in [b, content(&optional)] {
                let refused = read(&b).unwrap_err();
                assert!(refused.reason.contains(&format!("{len} bytes, more than the 4096")), "{len}: {refused}");
            }
        }
    }
}

/// Fields no build admits are refused as they are read, wherever a record comes from: an
/// instant outside 1900–2199, a weight that is not finite and positive, a survey answer
/// outside its measure's range, an assessment valid only until before it occurred.
#[test]
fn values_no_build_admits_are_refused() {
    let refused = |e: &NewEvent, says: &str| {
        let err = read(&content(e)).unwrap_err();
        assert!(err.reason.contains(says), "{says:?} not in {err}");
    };
    let before_1900 = Timestamp::from_unix_nanos(Timestamp::MIN.unix_nanos() - 1);
    let after_2199 = Timestamp::from_unix_nanos(Timestamp::MAX.unix_nanos() + 1);
    for t in [before_1900, after_2199] {
        refused(&NewEvent { occurred_at: t, ..sample() }, "occurred_at: ");
        refused(&NewEvent { event: event(1, "c-1", "", None, (0, t.unix_nanos(), 1.0, false)), ..sample() }, "due: ");
    }
    for edge in [Timestamp::MIN, Timestamp::MAX] {
        let e = NewEvent { occurred_at: edge, ..sample() };
        assert_eq!(read(&content(&e)).unwrap(), e);
    }
    for w in [0.0, -1.0, f64::NAN, f64::INFINITY, -0.0] {
        refused(&NewEvent { event: event(0, "c-1", "t", None, (0, 5, w, false)), ..sample() }, "weight: ");
    }
    for score in [SurveyScore::Nps(11), SurveyScore::Csat(0), SurveyScore::Csat(6), SurveyScore::Ces(8)] {
        let e = Event::SurveyAnswered { survey: SurveyKey::new("s").unwrap(), score, comment: None };
        refused(&NewEvent { event: e, ..sample() }, "survey value: ");
    }
    let assessed = |until: Timestamp| NewEvent {
        event: Event::AssessmentRecorded { sentiment: 3, reason: "r".into(), valid_until: Some(until) },
        occurred_at: Timestamp::from_unix_seconds(100),
        ..sample()
    };
    refused(&assessed(Timestamp::from_unix_seconds(100)), "valid_until: ");
    let later = assessed(Timestamp::from_unix_seconds(101));
    assert_eq!(read(&content(&later)).unwrap(), later);
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
    let at = good.len() - 7;
    assert_eq!(flag[at], 1);
    flag[at] = 2;
    refused(&flag, "neither 0 nor 1");
    // An unknown event type, a schema version this build does not know, and an unknown code.
    let mut ty = good.clone();
    ty[16 + 5 + 8] = 12;
    refused(&ty, "unknown event type 12");
    ty[16 + 5 + 8] = 64 + 1;
    refused(&ty, "schema version 3; this build reads 1 to 2");
    let touch = content(&NewEvent { event: Event::TouchpointHeld { channel: Channel::Visit }, ..sample() });
    let mut code = touch.clone();
    let at = code.len() - 2;
    code[at] = 5;
    refused(&code, "unknown channel code 5");
    // Metadata: unknown flags, a value that breaks its rules, tags out of order or none.
    let with_meta = |flags_and_values: &[u8]| {
        let mut b = good.clone();
        b.pop();
        b.extend(flags_and_values);
        b
    };
    refused(&with_meta(&[0x20]), "unknown bits");
    refused(&with_meta(&[1, 0]), "actor: the value is empty");
    refused(&with_meta(&[2, 2, b'a', 0x07]), "control character");
    refused(&with_meta(&[16, 0]), "0 tags");
    refused(&with_meta(&[16, 2, 1, b'b', 0, 1, b'a', 0]), "out of order or repeated");
    refused(&with_meta(&[16, 2, 1, b'a', 0, 1, b'a', 0]), "out of order or repeated");
    refused(&with_meta(&[16, 1, 0, 0]), "the tag name");
    refused(&with_meta(&[1, 1, b'a', 0]), "1 bytes after");
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

#[test]
fn a_log_of_format_1_or_2_holds_schema_version_1_only() {
    let body = |v1: bool| {
        let mut record = Vec::new();
        let format = if v1 { super::super::FORMAT_VERSION_2 } else { FORMAT_VERSION_3 };
        encode_record(&sample(), None, Timestamp::from_unix_seconds(2), StreamVersion(1), format, &mut record).unwrap();
        record.split_off(RECORD_PREFIX_BYTES)
    };
    let (old, new) = (body(true), body(false));
    for format in [super::super::FORMAT_VERSION_1, super::super::FORMAT_VERSION_2] {
        assert_eq!(check_schema_version(&old, format), Ok(()));
        let refused = check_schema_version(&new, format).unwrap_err();
        assert!(refused.reason.contains(&format!("schema version 2 in a format-{format} log")), "{refused}");
    }
    assert_eq!(check_schema_version(&new, FORMAT_VERSION_3), Ok(()));
    assert_eq!(check_schema_version(&old, FORMAT_VERSION_3), Ok(()), "a format-3 log holds both");
    // A body cut before its type code is refused, not read past.
    assert!(check_schema_version(&new[..20], super::super::FORMAT_VERSION_2).is_err());
}

/// A format-4 record holds personal text only sealed: beside a sealed section its event is
/// stripped, and without one it has no personal text (so an erasure reaches all of it).
#[test]
fn format_4_holds_no_personal_text_in_the_clear() {
    // A body of format 4 by hand: the sealed section (or its absence), the content, the tail.
    let body = |sealed: Option<&[u8]>, content: &[u8]| {
        let mut b = Vec::new();
        match sealed {
            Some(bytes) => {
                crate::leb128::put(&mut b, 1 + bytes.len() as u64);
                b.push(5);
                b.extend_from_slice(bytes);
            }
            None => b.push(0),
        }
        b.extend_from_slice(content);
        b.extend_from_slice(&[0; RECORD_TAIL_BYTES]);
        b
    };
    let decodes = |b: &[u8]| {
        let owned = decode_parts(b, FORMAT_VERSION, &mut |s| AccountId::new(s).map_err(|e| e.to_string()));
        let in_place = decode_body_ref(b, Position(1), FORMAT_VERSION);
        match (owned, in_place) {
            (Ok(_), Ok(_)) => Ok(()),
            (Err(e), Err(f)) => {
                assert_eq!(e, f);
                Err(e.reason)
            }
            (a, b) => panic!("the decoders disagree: owned {a:?}, in place {b:?}"),
        }
    };
    let tag = [9u8; rapport_core::seal::TAG_BYTES];
    let summary = |s: Option<&str>| NewEvent {
        event: Event::EscalationRaised {
            escalation: EscalationKey::new("e-1").unwrap(),
            severity: Severity::High,
            summary: s.map(String::from),
        },
        ..sample()
    };
    let titled = |t: &str| NewEvent { event: event(0, "c-1", t, None, (0, 5, 1.0, false)), ..sample() };
    let acted = summary(None).with_meta(Metadata::new().with_actor("ann").unwrap());
    // What a store writes.
    assert_eq!(decodes(&body(Some(&tag), &content(&summary(None)))), Ok(()));
    assert_eq!(decodes(&body(None, &content(&summary(None)))), Ok(()));
    assert_eq!(decodes(&body(Some(&tag), &content(&titled("")))), Ok(()));
    // Text in the clear: beside a sealed section, or without one.
    for (sealed, e) in [
        (Some(&tag[..]), summary(Some("late again"))),
        (Some(&tag[..]), titled("deliverable")),
        (Some(&tag[..]), acted.clone()),
        (None, summary(Some("late again"))),
        (None, titled("")),
        (None, acted),
    ] {
        let why = decodes(&body(sealed, &content(&e))).unwrap_err();
        assert!(why.contains("personal text"), "{e:?}: {why}");
    }
}

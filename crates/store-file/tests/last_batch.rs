//! Damage in the last batch is never taken for a torn write: a flipped bit in the last frame
//! of a log is refused, never cut, and a frame never holds a zero run long enough to pass for
//! never-written space; a new store's directory is durable before its first append returns.

#[path = "support/common.rs"]
mod common;
#[path = "support/faulty.rs"]
mod faulty;

use std::path::Path;
use std::sync::Arc;

use rapport_core::testing::conformance::assert_log_invariants;
use rapport_core::{AccountId, ExpectedVersion, NewEvent, Store};
use rapport_store_file::{FileStore, OpenError, Options};

use common::{history, history_v1};
use faulty::{FaultyVfs, MEM_DIR, Tear, open_mem, segment_paths, small_segments};

/// Events whose encoding holds as many zero bytes as valid events can: ids of nearly all zero
/// bytes, times at the Unix epoch, empty titles (but the first, `pad` bytes long), the
/// smallest weight.
fn zero_heavy_batch(n: u64, pad: usize) -> Vec<NewEvent> {
    use rapport_core::{CommitmentKey, Event, EventId, Timestamp};
    (0..n)
        .map(|k| {
            let id = EventId::from_uuid(uuid::Uuid::from_u128(u128::from(k) + 1)).unwrap();
            let event = Event::CommitmentMade {
                commitment: CommitmentKey::new(&format!("z{k}")).unwrap(),
                title: if k == 0 { "p".repeat(pad) } else { String::new() },
                due: Timestamp::from_unix_nanos(0),
                weight: f64::from_bits(1),
            };
            NewEvent {
                id,
                account: AccountId::new("z").unwrap(),
                occurred_at: Timestamp::from_unix_nanos(0),
                event,
                meta: Default::default(),
            }
        })
        .collect()
}

#[test]
fn a_damaged_last_batch_is_refused_never_cut() {
    // A store left open (a crash): its last batch was acknowledged but no head record names
    // it yet. One or two flipped bits anywhere in that batch's frame must be refused; cutting
    // the batch as a torn write would lose acknowledged events.
    // The batch is sized so that the file ends five bytes into a sector, on the zero bytes
    // that end every frame: a last sector of zeros, which a looser rule took for a torn one.
    let (vfs, store, before) = (0..512)
        .map(|pad| {
            let vfs = FaultyVfs::new();
            // The file must end where the batch does: no preallocated zeros after it.
            let options = Options { preallocate: false, ..small_segments() };
            let store = FileStore::open_on(Arc::new(vfs.clone()), Path::new(MEM_DIR), options).unwrap();
            pollster::block_on(store.append(history(2, 2, 3), ExpectedVersion::Any)).unwrap();
            let before = segment_paths(&vfs).pop().map(|p| vfs.bytes(&p).unwrap().len()).unwrap();
            pollster::block_on(store.append(zero_heavy_batch(40, pad), ExpectedVersion::Any)).unwrap();
            (vfs, store, before)
        })
        .find(|(vfs, ..)| segment_paths(vfs).pop().is_some_and(|p| vfs.bytes(&p).unwrap().len() % 512 == 5))
        .unwrap();
    let image = vfs.crash_image(Tear::KeepAll, 0);
    drop(store);
    let seg = segment_paths(&image).pop().unwrap();
    let bytes = image.bytes(&seg).unwrap();
    let mut rng = rapport_core::testing::synth::SplitMix64::new(15);
    for trial in 0..600 {
        let mut bad = bytes.clone();
        for _ in 0..1 + trial % 2 {
            let at = before + rng.below((bytes.len() - before) as u32) as usize;
            bad[at] ^= 1 << rng.below(8);
        }
        if bad == bytes {
            continue;
        }
        let damaged = image.crash_image(Tear::KeepAll, 0);
        damaged.set_bytes(&seg, bad);
        match open_mem(&damaged) {
            Err(OpenError::Corrupt { segment, offset, .. }) => {
                assert_eq!(segment, seg, "trial {trial}");
                assert!(offset >= before as u64, "trial {trial}: reported at {offset}");
            }
            Ok(s) => panic!("trial {trial}: opened with {} events, {:?}", s.recovery().n_events, s.recovery()),
            Err(e) => panic!("trial {trial}: {e}"),
        }
    }
}

/// Frames written the way builds before the head record wrote them, with free text of NUL
/// characters (which validation then accepted): long runs of zeros in acknowledged data.
fn legacy_segment(batches: &[Vec<NewEvent>]) -> Vec<u8> {
    use rapport_store_file::format::{Chain, FrameHeader, SegmentHeader, encode_record};
    let header = SegmentHeader { version: 1, log_id: [9; 16], base_position: 1, segment_no: 0, head_tracked: false };
    let mut bytes = header.encode().to_vec();
    let (mut next, mut prev, mut versions) = (1u64, 0u32, std::collections::HashMap::new());
    for (epoch, batch) in batches.iter().enumerate() {
        let mut payload = Vec::new();
        for e in batch {
            let v = versions.entry(e.account.clone()).or_insert(0u64);
            *v += 1;
            encode_record(
                e,
                None,
                rapport_core::Timestamp::from_unix_seconds(1_700_000_000),
                rapport_core::StreamVersion(*v),
                header.version,
                &mut payload,
            )
            .unwrap();
        }
        let crc = crc32c::crc32c(&payload);
        let h = FrameHeader {
            version: 1,
            payload_len: payload.len() as u32,
            first_position: next,
            count: batch.len() as u32,
            epoch: epoch as u64 + 1,
            link: Chain::crc(prev),
            payload_crc: crc,
        };
        bytes.extend_from_slice(&h.encode());
        bytes.extend_from_slice(&payload);
        next += batch.len() as u64;
        prev = crc;
    }
    bytes
}

#[test]
fn a_flipped_bit_in_a_legacy_last_batch_of_nul_text_is_refused() {
    // The issue's case: a store written before the head record (no HEAD, no flag), whose last
    // batch holds 4 KiB summaries of NUL characters. Every flipped bit in that batch is damage
    // to acknowledged data, never a torn write to cut.
    use rapport_core::{Event, Timestamp};
    let nul = |k: i64| {
        let mut e = NewEvent::new(
            AccountId::new("legacy").unwrap(),
            Timestamp::from_unix_seconds(1_600_000_000 + k),
            Event::IssueDisclosed { summary: Some("\0".repeat(4096)) },
        );
        e.id = rapport_core::EventId::from_uuid(uuid::Uuid::from_u128(k as u128 + 7)).unwrap();
        e
    };
    let batches = vec![history_v1(1, 1, 4), (0..6).map(nul).collect::<Vec<_>>()];
    let bytes = legacy_segment(&batches);
    let first = FaultyVfs::new();
    first.set_bytes(Path::new("/mem/db/seg-0000000000.rpl"), bytes.clone());
    let whole = assert_log_invariants(&open_mem(&first.crash_image(Tear::KeepAll, 0)).unwrap());
    assert_eq!(whole.len(), batches.iter().map(Vec::len).sum::<usize>(), "the legacy log opens whole");
    // The last frame starts where a segment of the first batch alone ends.
    let start = legacy_segment(&batches[..1]).len();
    let mut rng = rapport_core::testing::synth::SplitMix64::new(4);
    for trial in 0..700 {
        let at = start + rng.below((bytes.len() - start) as u32) as usize;
        let mut bad = bytes.clone();
        bad[at] ^= 1 << rng.below(8);
        let vfs = FaultyVfs::new();
        vfs.set_bytes(Path::new("/mem/db/seg-0000000000.rpl"), bad);
        match open_mem(&vfs) {
            Err(OpenError::Corrupt { offset, reason, .. }) => {
                assert!(offset >= start as u64, "trial {trial}: {offset} {reason}")
            }
            Ok(s) => {
                panic!("trial {trial}: flip at {at} opened with {} events: {:?}", s.recovery().n_events, s.recovery())
            }
            Err(e) => panic!("trial {trial}: {e}"),
        }
    }
}

#[test]
fn a_new_store_survives_power_loss_once_an_append_is_acknowledged() {
    // The store's directory (and any parent created for it) is durable before the first
    // append returns: a crash then loses no acknowledged event with it.
    let vfs = FaultyVfs::new();
    let dir = Path::new("/mem/new/nested/db");
    let store = FileStore::open_on(Arc::new(vfs.clone()), dir, small_segments()).unwrap();
    let events = history(1, 2, 6);
    pollster::block_on(store.append(events.clone(), ExpectedVersion::Any)).unwrap();
    for seed in 0..64 {
        let image = vfs.crash_image(Tear::DropAll, seed);
        let store = FileStore::open_on(Arc::new(image), dir, Options { create_if_missing: false, ..small_segments() })
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(assert_log_invariants(&store).len(), events.len(), "seed {seed}");
    }
}

mod zero_runs {
    use proptest::prelude::*;
    use rapport_core::{CommitmentKey, EscalationKey, Event, EventId, NewEvent, StreamVersion, SurveyKey, Timestamp};
    use rapport_store_file::format::{Chain, FrameHeader, encode_record};

    fn longest_zero_run(bytes: &[u8]) -> usize {
        bytes.split(|&b| b != 0).map(<[u8]>::len).max().unwrap_or(0)
    }

    fn arb_time() -> impl Strategy<Value = Timestamp> {
        prop_oneof![
            Just(Timestamp::from_unix_nanos(0)),
            Just(Timestamp::MIN),
            Just(Timestamp::MAX),
            (Timestamp::MIN.unix_nanos()..Timestamp::MAX.unix_nanos()).prop_map(Timestamp::from_unix_nanos),
        ]
    }

    /// Text with no NUL, often of the smallest byte values.
    fn arb_text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(prop_oneof!["\\x01{0,300}", "[\\x01-\\x7f]{0,64}", "\\PC{0,20}"])
    }

    fn arb_event() -> impl Strategy<Value = NewEvent> {
        let id = prop_oneof![1u128..300, any::<u128>().prop_filter("not nil", |v| *v != 0)]
            .prop_map(|v| EventId::from_uuid(uuid::Uuid::from_u128(v)).unwrap());
        let key = "[\\x21-\\x7e]{1,128}";
        (
            id,
            key,
            arb_time(),
            arb_time(),
            arb_text(),
            0u8..12,
            prop_oneof![Just(f64::from_bits(1)), Just(1.0), 1e-300f64..1e6],
        )
            .prop_map(|(id, k, at, due, text, ty, weight)| {
                let (ck, ek, sk) =
                    (CommitmentKey::new(&k).unwrap(), EscalationKey::new(&k).unwrap(), SurveyKey::new(&k).unwrap());
                let event = match ty {
                    0 => Event::CommitmentMade { commitment: ck, title: text.unwrap_or_default(), due, weight },
                    1 => Event::CommitmentRenegotiated { commitment: ck, due, reason: text },
                    2 => Event::CommitmentDelivered { commitment: ck, accepted: weight > 1.0 },
                    3 => Event::CommitmentCancelled { commitment: ck, reason: text },
                    4 => {
                        Event::EscalationRaised { escalation: ek, severity: rapport_core::Severity::Low, summary: text }
                    }
                    5 => Event::EscalationAcknowledged { escalation: ek },
                    6 => Event::EscalationResolved { escalation: ek },
                    7 => Event::EscalationReopened { escalation: ek },
                    8 => Event::SurveyAnswered { survey: sk, score: rapport_core::SurveyScore::Nps(0), comment: text },
                    9 => Event::TouchpointHeld { channel: rapport_core::Channel::Meeting },
                    10 => Event::IssueDisclosed { summary: text },
                    _ => Event::AdvocacyGiven { kind: rapport_core::AdvocacyKind::Referral },
                };
                NewEvent {
                    id,
                    account: rapport_core::AccountId::new(&k).unwrap(),
                    occurred_at: at,
                    event,
                    meta: Default::default(),
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: rapport_core::testing::cases(256), ..ProptestConfig::default() })]

        /// Recovery takes a zero run of 64 bytes in a damaged tail for a torn write: no frame
        /// of valid events (free text without NUL) holds one, whatever its ids, times, weights,
        /// versions and positions.
        #[test]
        fn prop_frames_hold_no_long_zero_runs(
            events in proptest::collection::vec(arb_event(), 1..20),
            recorded in arb_time(),
            version in prop_oneof![Just(1u64), Just(256), Just(1 << 32), 1u64..u64::MAX],
            position in prop_oneof![Just(1u64), Just(256), 1u64..1 << 50],
            epoch in prop_oneof![Just(1u64), 1u64..1 << 40],
            format in 1u32..=4,
        ) {
            let mut payload = Vec::new();
            let sealer = rapport_core::seal::SealKey::from_bytes([3; 32]).sealer();
            for e in &events {
                // Format 4 seals the personal text (what the store does, in `sealing.rs`).
                let (mut plain, mut sealed) = (Vec::new(), Vec::new());
                let has_text = rapport_core::PersonalText::encode_of(&e.event, &e.meta, &mut plain);
                sealer.seal(e.id, e.account.as_str(), &plain, &mut sealed);
                let sealed = (format == 4 && has_text)
                    .then_some(rapport_store_file::format::SealedRef { key: 1, bytes: &sealed });
                encode_record(e, sealed, recorded, StreamVersion(version), format, &mut payload).unwrap();
            }
            let count = events.len() as u32;
            let link = if format == 1 { Chain::START } else { Chain::START.after(position, count, &payload) };
            let h = FrameHeader {
                version: format,
                payload_len: payload.len() as u32,
                first_position: position,
                count,
                epoch,
                link,
                payload_crc: crc32c::crc32c(&payload),
            };
            let mut frame = h.encode();
            frame.extend_from_slice(&payload);
            prop_assert!(longest_zero_run(&frame) < 64, "a zero run of {}", longest_zero_run(&frame));
        }
    }
}

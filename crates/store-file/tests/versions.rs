//! Format and schema versions. The frozen stores of every format version open and read as
//! they were written (the v2 and v3 ones verify with their pinned head chain values); their records carry the schema version of their type, and a record of an
//! older version reads through the upcast to today's (the log is never rewritten). Metadata
//! needs format version 3: an older log refuses it, naming the event, until `upgrade` makes a
//! version-3 copy, which then takes it.

#[path = "support/common.rs"]
mod common;

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use rapport_core::testing::conformance::assert_log_invariants;
use rapport_core::{AppendError, Envelope, ExpectedVersion, Metadata, NewEvent, Store, codec};
use rapport_store_file::format::{self, FrameHeader, SEGMENT_HEADER_BYTES, SegmentHeader, split_records};
use rapport_store_file::{FileStore, Options, upgrade, verify};

use common::{TempDir, contents, copy_dir, history};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn small_segments() -> Options {
    Options { segment_bytes_max: 64 * 1024, ..Options::default() }
}

/// Each record's schema version and whether it holds metadata, read from the segment files
/// as the store wrote them, in position order.
fn stored_schema_versions(dir: &Path) -> Vec<(u32, bool)> {
    let mut out = Vec::new();
    for n in 0.. {
        let Ok(bytes) = std::fs::read(dir.join(rapport_store_file::segment_name(n))) else { break };
        let version = SegmentHeader::decode(&bytes).unwrap().version;
        let mut at = SEGMENT_HEADER_BYTES;
        while let Ok(h) = FrameHeader::decode(&bytes[at..], version) {
            let start = at + h.header_len();
            for (_, body) in split_records(&bytes[start..start + h.payload_len as usize], h.count).unwrap() {
                // A body is the content, then `recorded_at` and the stream version (16 bytes);
                // in version 4 the sealed section comes first (its length, a LEB128 varint).
                let mut content = &body[..body.len() - 16];
                if version >= 4 {
                    let (mut len, mut shift, mut at) = (0usize, 0, 0);
                    loop {
                        len |= usize::from(content[at] & 0x7f) << shift;
                        shift += 7;
                        at += 1;
                        if content[at - 1] & 0x80 == 0 {
                            break;
                        }
                    }
                    content = &content[at + len..];
                }
                let c = codec::decode_content(content, codec::TextPlace::Content).unwrap();
                out.push((c.schema_version, !c.meta.is_empty()));
            }
            at = start + h.payload_len as usize;
        }
    }
    out
}

#[test]
fn the_frozen_v1_fixture_still_opens() {
    let fixture = fixtures().join("v1");
    // How the fixture was written (by the build of its time: today's build would also write a
    // head record and flag its segments, which the frozen fixture must not have).
    if std::env::var_os("RAPPORT_WRITE_FIXTURE").is_some() {
        let _ = std::fs::remove_dir_all(&fixture);
        let options = Options { segment_bytes_max: 64 * 1024, ..Options::default() };
        let store = FileStore::open_with(&fixture, options).unwrap();
        for chunk in history(25, 12, 2024).chunks(50) {
            pollster::block_on(store.append(chunk.to_vec(), ExpectedVersion::Any)).unwrap();
        }
        let log = assert_log_invariants(&store);
        drop(store);
        let lines: Vec<String> = log.iter().map(Envelope::to_json_line).collect();
        std::fs::write(fixture.with_extension("jsonl"), lines.join("\n") + "\n").unwrap();
    }
    let tmp = TempDir::new("fixture");
    copy_dir(&fixture, tmp.path());
    let store = FileStore::open_with(tmp.path(), Options { create_if_missing: false, ..Options::default() })
        .unwrap_or_else(|e| panic!("the v1 fixture no longer opens: {e}"));
    assert!(store.recovery().truncated.is_empty(), "{:?}", store.recovery());
    let log = assert_log_invariants(&store);
    let expected = std::fs::read_to_string(fixture.with_extension("jsonl")).unwrap();
    let expected: Vec<Envelope> = expected.lines().map(|l| Envelope::from_json_line(l).unwrap()).collect();
    assert_eq!(log, expected);
    assert!(store.recovery().n_segments >= 2);
}

/// Events with metadata of every shape: each field alone, all of them, tags.
fn with_metadata(account: &str) -> Vec<NewEvent> {
    let metas = [
        Metadata::new().with_actor("ann@vendor.example").unwrap(),
        Metadata::new().with_source("helpdesk").unwrap(),
        Metadata::new().with_correlation_id("req-1").unwrap().with_causation_id("evt-0").unwrap(),
        Metadata::new()
            .with_actor("bot")
            .unwrap()
            .with_source("crm")
            .unwrap()
            .with_tag("region", "emea")
            .unwrap()
            .with_tag("tier", "")
            .unwrap(),
        Metadata::new(),
    ];
    metas
        .into_iter()
        .enumerate()
        .map(|(d, meta)| {
            NewEvent::from_json_line(&format!(
                r#"{{"type":"touchpoint","account":"{account}","occurred_at":"2026-03-{:02}T09:00:00Z","channel":"call"}}"#,
                d + 1
            ))
            .unwrap()
            .with_meta(meta)
        })
        .collect()
}

/// The frozen store `name` of format `version`: it verifies with the head chain value pinned
/// in `NAME.head`, opens with nothing cut, and reads as `NAME.jsonl`. With
/// `RAPPORT_WRITE_FIXTURE` set and `write` given, it is written first from `write`'s events,
/// by this build, closed cleanly, derived state left out (only the current version can be:
/// an older fixture was written by the build of its time). Returns its events.
fn frozen(name: &str, version: u32, write: Option<&dyn Fn() -> Vec<NewEvent>>) -> Vec<Envelope> {
    let fixture = fixtures().join(name);
    let head_file = fixtures().join(format!("{name}.head"));
    if let Some(events) = write.filter(|_| std::env::var_os("RAPPORT_WRITE_FIXTURE").is_some()) {
        let _ = std::fs::remove_dir_all(&fixture);
        let store = FileStore::open_with(&fixture, small_segments()).unwrap();
        for chunk in events().chunks(50) {
            pollster::block_on(store.append(chunk.to_vec(), ExpectedVersion::Any)).unwrap();
        }
        let log = contents(&store);
        drop(store);
        std::fs::remove_dir_all(fixture.join(rapport_store_file::DERIVED_DIR)).unwrap();
        let lines: Vec<String> = log.iter().map(Envelope::to_json_line).collect();
        std::fs::write(fixture.with_extension("jsonl"), lines.join("\n") + "\n").unwrap();
        let report = verify(&fixture).unwrap();
        std::fs::write(&head_file, format!("{}:{}\n", report.n_events, report.head_chain.display(version))).unwrap();
    }
    let tmp = TempDir::new(&format!("fixture-{name}"));
    copy_dir(&fixture, tmp.path());
    let expected: Vec<Envelope> = std::fs::read_to_string(fixture.with_extension("jsonl"))
        .unwrap()
        .lines()
        .map(|l| Envelope::from_json_line(l).unwrap())
        .collect();
    let pinned = std::fs::read_to_string(&head_file).unwrap();
    let (position, chain) = pinned.trim().split_once(':').unwrap();
    let report = verify(tmp.path()).unwrap_or_else(|e| panic!("the {name} fixture no longer verifies: {e}"));
    assert_eq!(
        (report.format_version, report.n_events, report.head_chain.display(version)),
        (version, position.parse::<u64>().unwrap(), chain.to_owned())
    );
    assert!(report.n_segments >= 2);
    let store = FileStore::open_with(tmp.path(), Options { create_if_missing: false, ..Options::default() })
        .unwrap_or_else(|e| panic!("the {name} fixture no longer opens: {e}"));
    assert!(store.recovery().truncated.is_empty(), "{:?}", store.recovery());
    assert_eq!(store.schema_version_max() >= 2, version >= 3);
    assert_eq!(contents(&store), expected);
    expected
}

#[test]
fn the_frozen_v2_fixture_still_opens() {
    // Written by the build that introduced version 2, from `history(25, 12, 2026)`.
    frozen("v2", 2, None);
}

#[test]
fn the_frozen_v3_fixture_still_opens() {
    // Written by the build that introduced version 3, from `history(20, 12, 2027)` and
    // `with_metadata("meta-acme")`.
    let log = frozen("v3", 3, None);
    assert_eq!(log.iter().filter(|e| !e.meta.is_empty()).count(), 4, "the fixture holds metadata");
}

#[test]
fn the_frozen_v4_fixture_still_opens_and_opens_its_sealed_text() {
    let events = || {
        let mut events = history(20, 12, 2028);
        events.extend(with_metadata("meta-acme"));
        events
    };
    let log = frozen("v4", 4, Some(&events));
    assert_eq!(log.iter().filter(|e| !e.meta.is_empty()).count(), 4, "the fixture holds metadata");
    assert!(log.iter().all(|e| e.text == rapport_core::TextState::Present), "every text opens");
    let titles = log
        .iter()
        .filter(|e| matches!(&e.event, rapport_core::Event::CommitmentMade { title, .. } if !title.is_empty()));
    assert!(titles.count() > 100, "with its key file, the titles read back");
}

#[test]
fn records_carry_their_schema_version_and_older_ones_read_through_the_upcast() {
    // Versions 1 and 2 hold every record at schema version 1, which reads as today's type with
    // no metadata (the fixtures' own tests compare every event); version 3 writes the current
    // version, metadata or not.
    for (dir, schema) in [("v1", 1), ("v2", 1), ("v3", 2), ("v4", 2)] {
        let versions = stored_schema_versions(&fixtures().join(dir));
        assert!(versions.len() > 100, "{dir}");
        assert!(versions.iter().all(|&(v, _)| v == schema), "{dir}: {versions:?}");
        // In version 4 the one metadata that holds only an actor is sealed whole.
        let with_meta = match dir {
            "v1" | "v2" => 0,
            "v3" => 4,
            _ => 3,
        };
        assert_eq!(versions.iter().filter(|(_, meta)| *meta).count(), with_meta, "{dir}");
    }
}

#[test]
fn an_older_log_refuses_metadata_until_upgraded() {
    let src = TempDir::new("meta-v2");
    copy_dir(&fixtures().join("v2"), src.path());
    let events = with_metadata("meta-co");
    let before = {
        let store = FileStore::open_with(src.path(), small_segments()).unwrap();
        assert_eq!(store.schema_version_max(), 1);
        let head = contents(&store).len();
        // The whole batch is refused, naming the first event that carries metadata.
        match pollster::block_on(store.append(events.clone(), ExpectedVersion::Any)) {
            Err(AppendError::Unsupported { id, reason }) => {
                assert_eq!(id, events[0].id);
                assert!(reason.contains("format-version-2") && reason.contains("rapport upgrade"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(contents(&store).len(), head);
        // Without metadata it takes the events, at schema version 1.
        let plain: Vec<NewEvent> = events.iter().map(|e| e.clone().with_meta(Metadata::new())).collect();
        pollster::block_on(store.append(plain[..2].to_vec(), ExpectedVersion::Any)).unwrap();
        contents(&store)
    };
    assert!(stored_schema_versions(src.path()).iter().all(|&v| v == (1, false)));
    let root = TempDir::new("meta-v4");
    std::fs::create_dir_all(root.path()).unwrap();
    let dest = root.path().join("v4");
    let report = upgrade(src.path(), &dest).unwrap();
    assert_eq!(report.n_events, before.len() as u64);
    let store = FileStore::open_with(&dest, small_segments()).unwrap();
    assert_eq!(store.schema_version_max(), 2);
    assert_eq!(contents(&store), before, "the same events, read through the upcast");
    // The first two are duplicates (metadata is not content); the rest are appended with it.
    let outcome = pollster::block_on(store.append(events.clone(), ExpectedVersion::Any)).unwrap();
    assert_eq!((outcome.duplicates.len(), outcome.appended.len()), (2, 3));
    let after = contents(&store);
    assert_eq!(after.len(), before.len() + 3);
    assert!(after[before.len() - 2..before.len()].iter().all(|e| e.meta.is_empty()), "a duplicate adds no metadata");
    for (got, sent) in after[before.len()..].iter().zip(&events[2..]) {
        assert_eq!(got.meta, sent.meta);
    }
    drop(store);
    // The upgrade wrote every record again, in the current record form.
    let versions = stored_schema_versions(&dest);
    assert!(versions[..before.len()].iter().all(|&v| v == (2, false)));
    assert_eq!(versions[before.len()..], [(2, true), (2, true), (2, false)]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(rapport_core::testing::cases(256)))]

    /// Every event type, written at schema version 1 (as a version-1 or version-2 log holds
    /// it), reads back through the upcast as the same event without metadata; written at the
    /// current version with any metadata, it reads back whole.
    #[test]
    fn every_type_reads_back_from_each_schema_version(
        e in rapport_core::testing::strategies::arb_new_event(),
        meta in rapport_core::testing::strategies::arb_metadata(),
    ) {
        let mut v1 = Vec::new();
        let bare = e.clone().with_meta(Metadata::new());
        if e.event.kind().first_schema_version() == 1 {
            codec::encode_event_v1(&bare, &mut v1).unwrap();
            let c = codec::decode_content(&v1, codec::TextPlace::Content).unwrap();
            prop_assert_eq!(c.schema_version, 1);
            prop_assert!(c.meta.is_empty());
            prop_assert_eq!(c.event.to_event(), e.event.clone());
        } else {
            // A type added at version 2 has no version-1 form, and no version-1 code reads as it.
            prop_assert!(codec::encode_event_v1(&bare, &mut v1).is_err());
            let mut now = Vec::new();
            codec::encode_event(&bare, &mut now);
            let code_at = 16 + 1 + bare.account.as_str().len() + 8;
            if bare.account.as_str().len() < 128 && now[code_at] >= 32 {
                now[code_at] -= 32;
                prop_assert!(codec::decode_content(&now, codec::TextPlace::Content).is_err());
            }
        }
        let e = e.with_meta(meta);
        prop_assert_eq!(codec::encode_event_v1(&e, &mut Vec::new()).is_err(), e.min_schema_version() > 1);
        let mut now = Vec::new();
        codec::encode_event(&e, &mut now);
        let back = codec::decode_event(&now, codec::TextPlace::Content, &mut |s| rapport_core::AccountId::new(s).map_err(|e| e.to_string())).unwrap();
        prop_assert_eq!(codec::decode_content(&now, codec::TextPlace::Content).unwrap().schema_version, 2);
        prop_assert_eq!(back, e);
    }
}

#[test]
fn the_record_formats_of_each_version_are_written_by_encode_record() {
    let e = with_metadata("acme").remove(0);
    for version in [format::FORMAT_VERSION_1, format::FORMAT_VERSION_2] {
        let refused =
            format::encode_record(&e, None, e.occurred_at, rapport_core::StreamVersion(1), version, &mut Vec::new());
        assert!(refused.is_err_and(|r| r.0.contains("metadata")), "version {version}");
    }
    let at = (e.occurred_at, rapport_core::StreamVersion(1));
    let mut out = Vec::new();
    format::encode_record(&e, None, at.0, at.1, format::FORMAT_VERSION_3, &mut out).unwrap();
    // Format 4 writes personal text only sealed.
    let refused = format::encode_record(&e, None, at.0, at.1, format::FORMAT_VERSION, &mut Vec::new());
    assert!(refused.is_err_and(|r| r.0.contains("sealed")));
    let sealed = format::SealedRef { key: 1, bytes: &[0; 20] };
    format::encode_record(&e, Some(sealed), at.0, at.1, format::FORMAT_VERSION, &mut out).unwrap();
}

//! Format versions 2 and 3: frames chained by BLAKE3. An event edited with every checksum recomputed
//! is found by `verify`, naming its positions; a rewrite of the whole chain changes the head's
//! value, which `chain_at` compares with one recorded earlier. A version-1 log opens as it is
//! and is upgraded only by `upgrade`, into a new directory. A value no build admits, edited into
//! a version-1 log with every checksum recomputed, is still refused on open and by `verify`. (The
//! frozen fixtures: `versions.rs`.)

#[path = "support/common.rs"]
mod common;

use std::path::{Path, PathBuf};

use rapport_core::{Envelope, Event, ExpectedVersion, NewEvent, Store};
use rapport_store_file::format::{
    self, Chain, FrameHeader, SEGMENT_HEADER_BYTES, SegmentHeader, decode_body, split_records,
};
use rapport_store_file::{FileStore, Options, UpgradeError, VerifyError, chain_at, upgrade, verify};

use common::{TempDir, contents, copy_dir, history, history_v1};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn small_segments() -> Options {
    Options { segment_bytes_max: 64 * 1024, ..Options::default() }
}

/// A closed store of several segments in today's format, appended in batches of 7.
fn written_store(tag: &str) -> (TempDir, Vec<Envelope>) {
    let dir = TempDir::new(tag);
    let store = FileStore::open_with(dir.path(), small_segments()).unwrap();
    for chunk in history(12, 12, 91).chunks(7) {
        pollster::block_on(store.append(chunk.to_vec(), ExpectedVersion::Any)).unwrap();
    }
    let log = contents(&store);
    assert_eq!(store.recovery().format_version, format::FORMAT_VERSION);
    drop(store);
    (dir, log)
}

/// A frame as found in a segment file.
struct Frame {
    at: usize,
    header: FrameHeader,
}

fn frames(bytes: &[u8]) -> Vec<Frame> {
    let version = SegmentHeader::decode(bytes).unwrap().version;
    let mut at = SEGMENT_HEADER_BYTES;
    let mut out = Vec::new();
    while let Ok(header) = FrameHeader::decode(&bytes[at..], version) {
        out.push(Frame { at, header });
        at += header.header_len() + header.payload_len as usize;
    }
    out
}

/// The weight with its lowest bit flipped: still a valid weight, another event.
fn flip_lowest_bit(w: f64) -> f64 {
    f64::from_bits(w.to_bits() ^ 1)
}

/// Rewrites a commitment's weight as `to` makes it (in the clear in every format, where the
/// title is sealed in format 4) in the `nth` frame of `segment` that holds one (a sealed
/// segment, so the edit cannot be taken for a torn write), with every checksum an editor can
/// recompute ([`edit_record`]). Returns the positions of the edited frame.
fn edit_a_weight(segment: &Path, nth: usize, to: fn(f64) -> f64) -> (u64, u64) {
    let bytes = std::fs::read(segment).unwrap();
    let mut seen = 0;
    for f in frames(&bytes) {
        let start = f.at + f.header.header_len();
        let payload = &bytes[start..start + f.header.payload_len as usize];
        for (i, (_, body)) in split_records(payload, f.header.count).unwrap().into_iter().enumerate() {
            let position = f.header.first_position + i as u64;
            let env = decode_body(body, rapport_core::Position(position), f.header.version).unwrap();
            let Event::CommitmentMade { weight, .. } = env.event else { continue };
            if seen < nth {
                seen += 1;
                break;
            }
            edit_record(segment, position, |body| set_weight(body, weight, to(weight)));
            let last = f.header.first_position + u64::from(f.header.count) - 1;
            return (f.header.first_position, last);
        }
    }
    panic!("no frame with a commitment title in {}", segment.display());
}

/// Rewrites the weight `from` in a commitment's record body (its content, before the 16 bytes
/// of its tail) as `to`.
fn set_weight(body: &mut [u8], from: f64, to: f64) {
    let content = body.len() - 16;
    let at = body[..content].windows(8).rposition(|w| w == from.to_le_bytes()).unwrap();
    body[at..at + 8].copy_from_slice(&to.to_le_bytes());
}

#[test]
fn an_edited_event_with_every_checksum_recomputed_is_found_naming_its_positions() {
    let (dir, _) = written_store("tamper");
    let before = verify(dir.path()).unwrap();
    assert_eq!(before.format_version, format::FORMAT_VERSION);
    let segment = dir.path().join(rapport_store_file::segment_name(0));
    let (first, last) = edit_a_weight(&segment, 3, flip_lowest_bit);
    match verify(dir.path()) {
        Err(VerifyError::Damaged { file, offset, reason }) => {
            assert_eq!(file, segment);
            assert!(offset > 0);
            assert!(
                reason.contains(&format!("positions {first} to {last} breaks the hash chain")),
                "the reason names the edited frame's positions: {reason}"
            );
        }
        other => panic!("an edit with recomputed checksums verified: {other:?}"),
    }
    // A full read refuses it too (the index snapshot, which would skip the prefix, is removed).
    std::fs::remove_dir_all(dir.path().join(rapport_store_file::DERIVED_DIR)).unwrap();
    let refused = FileStore::open_with(dir.path(), Options { create_if_missing: false, ..small_segments() });
    assert!(refused.is_err_and(|e| e.to_string().contains("breaks the hash chain")));
}

#[test]
fn a_version_1_log_cannot_tell_the_same_edit() {
    // Why version 2 exists: with a CRC32C chain the edited log verifies.
    let dir = TempDir::new("tamper-v1");
    copy_dir(&fixtures().join("v1"), dir.path());
    let before = verify(dir.path()).unwrap();
    assert_eq!(before.format_version, 1);
    // Its chain value (the last frame's payload CRC32C) is found at the head by the header walk.
    assert_eq!(chain_at(dir.path(), before.n_events).unwrap(), before.head_chain);
    let (first, _) = edit_a_weight(&dir.path().join(rapport_store_file::segment_name(0)), 3, flip_lowest_bit);
    let after = verify(dir.path()).unwrap_or_else(|e| panic!("version 1 was expected to miss the edit: {e}"));
    assert_eq!(after.n_events, before.n_events);
    let original: Vec<Envelope> = std::fs::read_to_string(fixtures().join("v1.jsonl"))
        .unwrap()
        .lines()
        .map(|l| Envelope::from_json_line(l).unwrap())
        .collect();
    let store = FileStore::open_read_only(dir.path()).unwrap();
    let edited = contents(&store);
    let differs: Vec<u64> =
        edited.iter().zip(&original).filter(|(a, b)| a != b).map(|(a, _)| a.position.get()).collect();
    assert_eq!(differs.len(), 1, "one event was edited");
    assert!(differs[0] >= first);
}

#[test]
fn a_weight_no_build_admits_is_refused_where_the_chain_cannot_tell() {
    // In a version-1 log an editor can recompute every checksum; a weight no build admits
    // (NaN, negative) is still refused wherever the record is read, naming its place.
    for (tag, to) in [("nan", (|_| f64::NAN) as fn(f64) -> f64), ("negative", |w: f64| -w)] {
        let dir = TempDir::new(&format!("tamper-weight-{tag}"));
        copy_dir(&fixtures().join("v1"), dir.path());
        let segment = dir.path().join(rapport_store_file::segment_name(0));
        edit_a_weight(&segment, 3, to);
        match verify(dir.path()) {
            Err(VerifyError::Damaged { file, reason, .. }) => {
                assert_eq!(file, segment);
                assert!(reason.contains("is not a finite positive number"), "{tag}: {reason}");
            }
            other => panic!("{tag}: a weight no build admits verified: {other:?}"),
        }
        // Neither a reader nor a writer opens it (naming the segment, byte and position), so
        // nothing folds the value into a score.
        let refused = FileStore::open_read_only(dir.path()).map(|_| ()).unwrap_err().to_string();
        assert!(refused.contains("seg-0000000000.rpl") && refused.contains(": weight: "), "{tag}: {refused}");
        assert!(refused.contains("position "), "{tag}: {refused}");
        let opened = FileStore::open_with(dir.path(), Options { create_if_missing: false, ..small_segments() });
        assert!(opened.is_err_and(|e| e.to_string().contains(": weight: ")), "{tag}");
    }
}

#[test]
fn a_rewritten_chain_is_caught_by_the_value_recorded_at_the_head() {
    let (dir, log) = written_store("rechain");
    let recorded = verify(dir.path()).unwrap();
    let head = recorded.n_events;
    assert_eq!(chain_at(dir.path(), head).unwrap(), recorded.head_chain);
    // An earlier batch end, recorded too.
    let early = 7;
    let early_chain = chain_at(dir.path(), early).unwrap();
    assert!(matches!(chain_at(dir.path(), 5), Err(VerifyError::NoFrameEnd { position: 5, last_end: 7 })));
    assert!(matches!(chain_at(dir.path(), head + 1), Err(VerifyError::NoFrameEnd { .. })));

    // The editor goes further: every frame's chain recomputed from the edit on, in every
    // segment, the head record rewritten and the index snapshot removed. The log verifies…
    edit_a_weight(&dir.path().join(rapport_store_file::segment_name(0)), 2, flip_lowest_bit);
    rechain(dir.path(), recorded.n_segments, head);
    let rewritten = verify(dir.path()).unwrap_or_else(|e| panic!("a consistently rewritten log verifies: {e}"));
    assert_eq!(rewritten.n_events, log.len() as u64);
    // …but its head's value is not the one recorded, nor is any value after the edit.
    assert_ne!(rewritten.head_chain, recorded.head_chain);
    assert_ne!(chain_at(dir.path(), head).unwrap(), recorded.head_chain);
    // Before the edit, the history is what it was.
    assert_eq!(chain_at(dir.path(), early).unwrap(), early_chain);
}

/// Recomputes every frame's chain in the `n_segments` segments of the log in `dir`, writes the
/// head record for `head` events with the chain's new value, and removes the index snapshot:
/// what an editor who knows the format can do to make an edited log consistent again.
fn rechain(dir: &Path, n_segments: u64, head: u64) {
    let mut chain = Chain::START;
    for n in 0..n_segments {
        let path = dir.join(rapport_store_file::segment_name(n));
        let mut bytes = std::fs::read(&path).unwrap();
        for f in frames(&bytes) {
            let start = f.at + f.header.header_len();
            chain = chain.after(
                f.header.first_position,
                f.header.count,
                &bytes[start..start + f.header.payload_len as usize],
            );
            FrameHeader { link: chain, ..f.header }.encode_into(&mut bytes[f.at..start]);
        }
        std::fs::write(&path, &bytes).unwrap();
    }
    let log_id =
        SegmentHeader::decode(&std::fs::read(dir.join(rapport_store_file::segment_name(0))).unwrap()).unwrap().log_id;
    let forged = rapport_store_file::HeadRecord {
        version: format::FORMAT_VERSION,
        log_id,
        last_segment: n_segments - 1,
        position: head,
        chain,
    };
    std::fs::write(dir.join(rapport_store_file::HEAD_FILE), forged.encode()).unwrap();
    let derived = dir.join(rapport_store_file::DERIVED_DIR);
    if derived.exists() {
        std::fs::remove_dir_all(derived).unwrap();
    }
}

/// Edits the body of the record at `position` in `segment` with `edit`, and recomputes every
/// checksum an editor can: the record's, its frame's payload checksum and header, and in a
/// version-1 log the next frame's link to it (a later format's chain: [`rechain`]).
fn edit_record(segment: &Path, position: u64, edit: impl FnOnce(&mut [u8])) {
    let mut bytes = std::fs::read(segment).unwrap();
    let all = frames(&bytes);
    for (k, f) in all.iter().enumerate() {
        let first = f.header.first_position;
        if !(first..first + u64::from(f.header.count)).contains(&position) {
            continue;
        }
        let start = f.at + f.header.header_len();
        let payload = bytes[start..start + f.header.payload_len as usize].to_vec();
        let (off, body) = split_records(&payload, f.header.count).unwrap()[(position - first) as usize];
        let body_at = start + off + 8;
        edit(&mut bytes[body_at..body_at + body.len()]);
        let crc = crc32c::crc32c(&bytes[body_at..body_at + body.len()]);
        bytes[start + off + 4..start + off + 8].copy_from_slice(&crc.to_le_bytes());
        let payload_crc = crc32c::crc32c(&bytes[start..start + f.header.payload_len as usize]);
        FrameHeader { payload_crc, ..f.header }.encode_into(&mut bytes[f.at..start]);
        if f.header.version == 1
            && let Some(next) = all.get(k + 1)
        {
            let linked = FrameHeader { link: Chain::crc(payload_crc), ..next.header };
            linked.encode_into(&mut bytes[next.at..next.at + next.header.header_len()]);
        }
        std::fs::write(segment, &bytes).unwrap();
        return;
    }
    panic!("no record at position {position} in {}", segment.display());
}

#[test]
fn the_first_refusal_in_log_order_is_reported_however_far_apart_the_two_are() {
    // Open reads and decodes a long run of frames on one thread and places their records
    // (ids, stream versions, rules) on another, in batches of about a thousand records: a
    // record the placing refuses is reported before a later one the decoding refuses, next to
    // it, in an earlier batch or many batches earlier, and each alone is reported naming its
    // position; with frames smaller than a batch, and larger (a frame handed on in parts).
    for frame in [100, 1_500] {
        first_refusal_in_log_order(frame);
    }
}

/// A store of the first `n` events of one history, appended `frame` at a time into one
/// segment, and its log.
fn one_segment_log(tag: &str, n: usize, frame: usize) -> (TempDir, Vec<Envelope>) {
    let dir = TempDir::new(tag);
    let store = FileStore::open(dir.path()).unwrap();
    let events = history(90, 36, 17);
    assert!(events.len() >= n, "{} events", events.len());
    for chunk in events[..n].chunks(frame) {
        pollster::block_on(store.append(chunk.to_vec(), ExpectedVersion::Any)).unwrap();
    }
    let log = contents(&store);
    assert_eq!(store.recovery().n_segments, 1);
    drop(store);
    (dir, log)
}

/// Whether the log in `dir` is long enough for open to read it on a thread of its own.
fn read_apart(dir: &Path) -> bool {
    std::fs::metadata(dir.join(rapport_store_file::segment_name(0))).unwrap().len() >= 1 << 20
}

fn first_refusal_in_log_order(frame: usize) {
    let (dir, log) = one_segment_log("tamper-order", 15_000, frame);
    assert!(read_apart(dir.path()), "too short a log for open to read it on a thread of its own");
    let (weight, late) = log
        .iter()
        .rev()
        .find_map(|e| match e.event {
            Event::CommitmentMade { weight, .. } => Some((weight, e.position.0)),
            _ => None,
        })
        .unwrap();
    assert!(late > 14_000, "the last commitment at {late}");
    let cases =
        [(None, true), (Some(late - 1), true), (Some(late - 700), true), (Some(1_950), true), (Some(250), false)];
    for (early, also_late) in cases {
        let dir_copy = TempDir::new("tamper-order-case");
        copy_dir(dir.path(), dir_copy.path());
        let segment = dir_copy.path().join(rapport_store_file::segment_name(0));
        if also_late {
            // A weight no build admits: refused when the record is decoded.
            edit_record(&segment, late, |body| set_weight(body, weight, f64::NAN));
        }
        if let Some(early) = early {
            // A stream version no stream reached: refused when the record is placed.
            edit_record(&segment, early, wrong_stream_version);
        }
        rechain(dir_copy.path(), 1, log.len() as u64);
        let refused = FileStore::open_with(dir_copy.path(), Options { create_if_missing: false, ..Options::default() })
            .map(|_| ())
            .unwrap_err()
            .to_string();
        match early {
            Some(early) => {
                assert!(refused.contains(&format!("position {early}: stored stream version 999")), "{early}: {refused}")
            }
            None => assert!(refused.contains(&format!("position {late}: ")) && refused.contains("weight"), "{refused}"),
        }
        let verified = verify(dir_copy.path()).unwrap_err().to_string();
        let expected = early.unwrap_or(late);
        assert!(verified.contains(&format!("position {expected}: ")), "verify: {verified}");
    }
    // Untouched, the log opens whole.
    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(contents(&store), log);
}

#[test]
fn an_id_logged_twice_is_refused_naming_both_positions_in_log_order() {
    // Open records each id it reads (on the reader's thread for a long read, in turn for a
    // short one) apart from the streams' rules: a record edited to carry an earlier record's
    // id is refused naming both positions, after any refusal of a record before it (in an
    // earlier frame, or just before it in its own) and before any of a record after it.
    for (n, apart) in [(15_000, true), (2_000, false)] {
        let (dir, log) = one_segment_log("tamper-twice", n, 100);
        assert_eq!(read_apart(dir.path()), apart, "{n} events");
        let late = n as u64 - 40;
        for other in [None, Some(late - 300), Some(late - 1), Some(late + 1)] {
            let copy = TempDir::new("tamper-twice-case");
            copy_dir(dir.path(), copy.path());
            let segment = copy.path().join(rapport_store_file::segment_name(0));
            give_id_of(&segment, &log, late, 10);
            if let Some(other) = other {
                edit_record(&segment, other, wrong_stream_version);
            }
            rechain(copy.path(), 1, log.len() as u64);
            let expected = match other {
                Some(other) if other < late => format!("position {other}: stored stream version 999"),
                _ => format!(
                    "position {late}: account {}: event {} is in the log twice, first at position 10",
                    log[late as usize - 1].account,
                    log[9].id
                ),
            };
            let refused = FileStore::open(copy.path()).map(|_| ()).unwrap_err().to_string();
            assert!(refused.contains(&expected), "{n} events, {other:?}: {refused}");
            let verified = verify(copy.path()).unwrap_err().to_string();
            assert!(verified.contains(&expected), "verify, {n} events, {other:?}: {verified}");
        }
    }
}

#[test]
fn an_id_only_the_snapshots_id_file_holds_logged_again_after_it_is_refused() {
    // After a crash, open reads the log past the index snapshot and finds each id there in the
    // snapshot's id file: a record after the snapshot edited to carry the id of one before it
    // is refused, naming both positions.
    let dir = TempDir::new("tamper-twice-snapshot");
    let events = history(90, 36, 17);
    let store = FileStore::open(dir.path()).unwrap();
    for chunk in events[..2_000].chunks(100) {
        pollster::block_on(store.append(chunk.to_vec(), ExpectedVersion::Any)).unwrap();
    }
    drop(store);
    let derived = dir.path().join(rapport_store_file::DERIVED_DIR);
    let snapshot: Vec<_> = std::fs::read_dir(&derived)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    let put_back = |dir: &Path| {
        let derived = dir.join(rapport_store_file::DERIVED_DIR);
        let _ = std::fs::remove_dir_all(&derived);
        std::fs::create_dir_all(&derived).unwrap();
        for (name, bytes) in &snapshot {
            std::fs::write(derived.join(name), bytes).unwrap();
        }
    };
    let store = FileStore::open(dir.path()).unwrap();
    for chunk in events[2_000..17_000].chunks(100) {
        pollster::block_on(store.append(chunk.to_vec(), ExpectedVersion::Any)).unwrap();
    }
    let log = contents(&store);
    let n_segments = store.recovery().n_segments;
    drop(store);
    // As a crash after those appends leaves it: the snapshot of the first 2,000 events.
    put_back(dir.path());
    let store = FileStore::open_read_only(dir.path()).unwrap();
    assert_eq!(store.recovery().from_snapshot, 2_000);
    drop(store);
    let late = 16_900;
    let segment = (0..n_segments)
        .map(|k| dir.path().join(rapport_store_file::segment_name(k)))
        .rfind(|path| frames(&std::fs::read(path).unwrap()).first().is_some_and(|f| f.header.first_position <= late))
        .unwrap();
    give_id_of(&segment, &log, late, 5);
    rechain(dir.path(), n_segments, log.len() as u64);
    put_back(dir.path());
    // The edit is after the snapshot, which still stands in for the log before it.
    assert_eq!(FileStore::open_read_only(dir.path()).unwrap().recovery().from_snapshot, 2_000);
    let refused = FileStore::open(dir.path()).map(|_| ()).unwrap_err().to_string();
    let expected = format!(
        "position {late}: account {}: event {} is in the log twice, first at position 5",
        log[late as usize - 1].account,
        log[4].id
    );
    assert!(refused.contains(&expected), "{refused}");
}

/// Sets a record body's stored stream version to 999, which no stream of these logs reaches:
/// refused when the record is placed.
fn wrong_stream_version(body: &mut [u8]) {
    let n = body.len();
    body[n - 8..].copy_from_slice(&999u64.to_le_bytes());
}

/// Edits the record at `position` in `segment` to carry the id of the record at `of` (both
/// in `log`), recomputing its checksums ([`edit_record`]).
fn give_id_of(segment: &Path, log: &[Envelope], position: u64, of: u64) {
    let (own, other) = (log[position as usize - 1].id.to_bytes(), log[of as usize - 1].id.to_bytes());
    edit_record(segment, position, |body| {
        let at = body.windows(16).position(|w| w == own).unwrap();
        body[at..at + 16].copy_from_slice(&other);
    });
}

/// Twenty calls with `account`, a day apart.
fn touchpoints(account: &str) -> Vec<NewEvent> {
    (1..=20)
        .map(|d| {
            NewEvent::from_json_line(&format!(
                r#"{{"type":"touchpoint","account":"{account}","occurred_at":"2025-03-{d:02}T09:00:00Z","channel":"call"}}"#
            ))
            .unwrap()
        })
        .collect()
}

#[test]
fn a_version_1_log_is_upgraded_only_into_a_new_directory_and_reads_the_same() {
    let src = TempDir::new("upgrade-src");
    copy_dir(&fixtures().join("v1"), src.path());
    let original: Vec<Envelope> = std::fs::read_to_string(fixtures().join("v1.jsonl"))
        .unwrap()
        .lines()
        .map(|l| Envelope::from_json_line(l).unwrap())
        .collect();
    // Opened by this build, a version-1 log stays version 1 and takes appends as such.
    let original = {
        let store = FileStore::open_with(src.path(), small_segments()).unwrap();
        assert_eq!(store.recovery().format_version, 1);
        assert_eq!(contents(&store), original);
        for e in touchpoints("before-upgrade") {
            pollster::block_on(store.append(vec![e], ExpectedVersion::Any)).unwrap();
        }
        contents(&store)
    };
    let v1 = verify(src.path()).unwrap();
    assert_eq!((v1.format_version, v1.n_events), (1, original.len() as u64));
    let segments_before: Vec<Vec<u8>> =
        (0..2).map(|n| std::fs::read(src.path().join(rapport_store_file::segment_name(n))).unwrap()).collect();
    let dest_root = TempDir::new("upgrade-dest");
    std::fs::create_dir_all(dest_root.path()).unwrap();
    let dest = dest_root.path().join("v3");
    // A writer holding the source stops an upgrade.
    {
        let _writer = FileStore::open_with(src.path(), small_segments()).unwrap();
        assert!(matches!(
            upgrade(src.path(), &dest),
            Err(UpgradeError::Open(rapport_store_file::OpenError::Locked { .. }))
        ));
        assert!(!dest.exists());
    }
    let report = upgrade(src.path(), &dest).unwrap();
    assert_eq!(report.n_events, original.len() as u64);
    // The source's segments are unchanged.
    for (n, before) in segments_before.iter().enumerate() {
        assert_eq!(&std::fs::read(src.path().join(rapport_store_file::segment_name(n as u64))).unwrap(), before);
    }
    let verified = verify(&dest).unwrap();
    assert_eq!((verified.format_version, verified.head_chain), (format::FORMAT_VERSION, report.head_chain));
    // The same events at the same positions, with the same recording times and log id.
    let store = FileStore::open_with(&dest, small_segments()).unwrap();
    assert_eq!(contents(&store), original);
    let more = touchpoints("after-upgrade");
    pollster::block_on(store.append(more, ExpectedVersion::Any)).unwrap();
    drop(store);
    assert_eq!(verify(&dest).unwrap().n_events, original.len() as u64 + 20);
    // Nothing to do twice, and an existing destination is never overwritten.
    assert!(matches!(upgrade(&dest, dest_root.path().join("again")), Err(UpgradeError::Current { version: 4, .. })));
    assert!(matches!(upgrade(src.path(), &dest), Err(UpgradeError::Destination { .. })));
    assert!(matches!(upgrade(src.path(), src.path().join("inside")), Err(UpgradeError::Destination { .. })));
}

#[test]
fn an_upgrade_reads_and_writes_a_segment_larger_than_its_window_in_parts() {
    // An upgrade holds a few MiB of a segment at a time: a version-1 log whose last segment
    // holds several MiB, in frames of one event, of a thousand, and one of 60,000 events
    // (larger than the window), upgrades to the same events.
    let src = TempDir::new("upgrade-large-src");
    copy_dir(&fixtures().join("v1"), src.path());
    let events: Vec<NewEvent> = history_v1(500, 30, 23)
        .into_iter()
        .map(|mut e| {
            e.account = rapport_core::AccountId::new(&format!("large-{}", e.account)).unwrap();
            e
        })
        .collect();
    assert!(events.len() > 75_000, "{} events", events.len());
    let original = {
        let store = FileStore::open(src.path()).unwrap();
        let (one_by_one, rest) = events.split_at(100);
        let (large, rest) = rest.split_at(60_000);
        for e in one_by_one {
            pollster::block_on(store.append(vec![e.clone()], ExpectedVersion::Any)).unwrap();
        }
        pollster::block_on(store.append(large.to_vec(), ExpectedVersion::Any)).unwrap();
        for chunk in rest.chunks(1_000) {
            pollster::block_on(store.append(chunk.to_vec(), ExpectedVersion::Any)).unwrap();
        }
        assert_eq!(store.recovery().format_version, 1);
        contents(&store)
    };
    let last = std::fs::read(src.path().join(rapport_store_file::segment_name(1))).unwrap();
    assert!(last.len() > 6 << 20, "{} bytes", last.len());
    assert!(frames(&last).iter().any(|f| f.header.payload_len > 4 << 20), "a frame larger than the window");
    let dest = TempDir::new("upgrade-large-dest");
    std::fs::create_dir_all(dest.path()).unwrap();
    let report = upgrade(src.path(), dest.path().join("v4")).unwrap();
    assert_eq!(report.n_events, original.len() as u64);
    let store = FileStore::open_read_only(dest.path().join("v4")).unwrap();
    assert_eq!(contents(&store), original);
}

#[test]
fn a_segment_in_another_format_version_than_the_log_is_refused() {
    let (dir, _) = written_store("mixed");
    let path = dir.path().join(rapport_store_file::segment_name(1));
    let mut bytes = std::fs::read(&path).unwrap();
    let header = SegmentHeader::decode(&bytes).unwrap();
    bytes[..SEGMENT_HEADER_BYTES]
        .copy_from_slice(&SegmentHeader { version: format::FORMAT_VERSION_1, ..header }.encode());
    std::fs::write(&path, &bytes).unwrap();
    match verify(dir.path()) {
        Err(VerifyError::Damaged { file, offset: 8, reason }) => {
            assert_eq!(file, path);
            assert!(reason.contains("format version 1, the log before it in 4"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

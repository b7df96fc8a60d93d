//! The reader on a thread of its own and the reader in turn with the placing leave the same
//! scan: the same end, damage or error, position, chain, ids and indexes, for a log cut or with
//! a byte flipped anywhere, validated or not.

use std::path::Path;

use rapport_core::testing::synth::{SynthConfig, generate};
use rapport_core::{EventId, ExpectedVersion, Store};

use super::*;
use crate::FileStore;
use crate::format::{SEGMENT_HEADER_BYTES, SegmentHeader, split_records};

/// The bytes of the only segment of a store of `n` events appended `frame` at a time.
fn one_segment(name: &str, n: usize, frame: usize) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("rapport-frames-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = FileStore::open(&dir).unwrap();
    let events: Vec<_> =
        generate(SynthConfig { accounts: 40, months: 24, seed: 11, ..Default::default() }).take(n).collect();
    assert_eq!(events.len(), n);
    for chunk in events.chunks(frame) {
        pollster::block_on(store.append(chunk.to_vec(), ExpectedVersion::Any)).unwrap();
    }
    assert_eq!(store.recovery().n_segments, 1);
    drop(store);
    let bytes = std::fs::read(dir.join(crate::index::segment_name(0))).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    bytes
}

/// What a scan leaves that the two readings must agree on. After a refusal the scan is
/// dropped, and its ids are not compared: the reader may have recorded some past the refused
/// record, as many as it read ahead.
#[derive(Debug, PartialEq)]
struct Outcome {
    result: String,
    next_position: u64,
    chain: [u8; 32],
    last_epoch: u64,
    ids: Vec<(EventId, Position)>,
    accounts: Vec<(String, u64, u64)>,
}

/// Scans `bytes` as segment 0 of a log of format `version`, reading where `reading` says.
fn scan(bytes: &[u8], version: u32, validate: bool, reading: Reading) -> Outcome {
    let mut scan = Scan::empty(0, 1);
    scan.version = version;
    scan.validate = validate;
    let frames = Frames { bytes, from: SEGMENT_HEADER_BYTES, base: 0 };
    let at = Segment { n: 0, path: Path::new("seg-0000000000.rpl"), head: None };
    let result = match scan_frames(&mut scan, frames, &at, &mut None, reading) {
        Ok((end, damage)) => format!("end {end}, damage {:?}", damage.map(|d| (d.at, d.kind))),
        Err(e) => e.to_string(),
    };
    let mut ids = if result.starts_with("end") { scan.core.state.ids() } else { Vec::new() };
    ids.sort_by_key(|&(_, p)| p);
    let accounts = scan
        .index
        .accounts
        .iter()
        .map(|(a, first)| (a.to_string(), *first, scan.index.streams.get(a).map_or(0, |s| s.len())))
        .collect();
    Outcome {
        result,
        next_position: scan.core.next_position,
        chain: scan.chain.0,
        last_epoch: scan.last_epoch,
        ids,
        accounts,
    }
}

fn assert_same(bytes: &[u8], version: u32, what: &str) {
    for validate in [true, false] {
        let here = scan(bytes, version, validate, Reading::Here);
        let apart = scan(bytes, version, validate, Reading::Apart);
        assert_eq!(here.result, apart.result, "{what}, validate {validate}");
        assert!(here == apart, "{what}, validate {validate}: the scans differ after {}", here.result);
    }
}

#[test]
fn a_log_read_apart_or_in_turn_scans_the_same_whatever_its_damage() {
    // Frames smaller than a batch, and larger (handed on in parts).
    for (name, frame) in [("small-frames", 60), ("large-frames", 1_500)] {
        let bytes = one_segment(name, 3_300, frame);
        let version = SegmentHeader::decode(&bytes).unwrap().version;
        let whole = scan(&bytes, version, true, Reading::Apart);
        assert_eq!((whole.next_position, whole.ids.len()), (3_301, 3_300), "{name}: {}", whole.result);
        assert_same(&bytes, version, name);
        let body = bytes.len() - SEGMENT_HEADER_BYTES;
        for k in 0..97 {
            let at = SEGMENT_HEADER_BYTES + body * k / 97 + k % 7;
            assert_same(&bytes[..at], version, &format!("{name}, cut at byte {at}"));
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x10;
            assert_same(&flipped, version, &format!("{name}, byte {at} flipped"));
            let mut zeroed = bytes.clone();
            zeroed[at..].fill(0);
            assert_same(&zeroed, version, &format!("{name}, zeros from byte {at}"));
        }
    }
}

/// Edits the body of the log's `k`th record (from 0) with `edit`, given the bodies of every
/// record, then recomputes what an editor can: the record's checksum, its frame's, and the
/// hash chain from there on.
fn edit_record(bytes: &mut [u8], version: u32, k: usize, edit: impl FnOnce(&mut [u8], &[Vec<u8>])) {
    let mut bodies = Vec::new();
    let mut at = SEGMENT_HEADER_BYTES;
    let mut places = Vec::new();
    while at < bytes.len() {
        let h = FrameHeader::decode(&bytes[at..], version).unwrap();
        let start = at + h.header_len();
        let end = start + h.payload_len as usize;
        for (off, body) in split_records(&bytes[start..end], h.count).unwrap() {
            bodies.push(body.to_vec());
            places.push(start + off);
        }
        at = end;
    }
    let (record, len) = (places[k], bodies[k].len());
    edit(&mut bytes[record + 8..record + 8 + len], &bodies);
    let crc = crc32c::crc32c(&bytes[record + 8..record + 8 + len]);
    bytes[record + 4..record + 8].copy_from_slice(&crc.to_le_bytes());
    let (mut chain, mut at) = (Chain::START, SEGMENT_HEADER_BYTES);
    while at < bytes.len() {
        let h = FrameHeader::decode(&bytes[at..], version).unwrap();
        let start = at + h.header_len();
        let end = start + h.payload_len as usize;
        let payload_crc = crc32c::crc32c(&bytes[start..end]);
        chain = chain.after(h.first_position, h.count, &bytes[start..end]);
        FrameHeader { payload_crc, link: chain, ..h }.encode_into(&mut bytes[at..start]);
        at = end;
    }
}

/// A stream version no stream reaches, for [`edit_record`]: refused by the placing.
fn wrong_version(body: &mut [u8], _: &[Vec<u8>]) {
    let n = body.len();
    body[n - 8..].copy_from_slice(&999u64.to_le_bytes());
}

/// The id of the log's record `of` (from 0), for [`edit_record`]: refused by the reader.
fn id_of(of: usize, version: u32) -> impl FnOnce(&mut [u8], &[Vec<u8>]) {
    move |body, bodies| {
        let id = |b: &[u8]| format::decode_body_ref(b, Position(1), version).unwrap().id.to_bytes();
        let (own, other) = (id(body), id(&bodies[of]));
        let at = body.windows(16).position(|w| w == own).unwrap();
        body[at..at + 16].copy_from_slice(&other);
    }
}

#[test]
fn a_log_read_apart_or_in_turn_reports_the_first_refusal_alike() {
    // Records whose checksums and chain were recomputed after an edit: the placing refuses a
    // wrong stream version, the reader an id logged twice; either way the lower position
    // is reported, and the scan stops there.
    for (name, frame) in [("refusals-small-frames", 60), ("refusals-large-frames", 1_500)] {
        let bytes = one_segment(name, 3_300, frame);
        let version = SegmentHeader::decode(&bytes).unwrap().version;
        type Edit = (usize, fn(u32) -> Box<dyn FnOnce(&mut [u8], &[Vec<u8>])>);
        let version_at = |k: usize| -> Edit { (k, |_| Box::new(wrong_version)) };
        let twice_at = |k: usize| -> Edit { (k, |v| Box::new(id_of(99, v))) };
        let cases: [(&[Edit], u64); 5] = [
            (&[version_at(1_999)], 2_000),
            (&[twice_at(2_499)], 2_500),
            (&[version_at(1_999), twice_at(2_499)], 2_000),
            (&[twice_at(999), version_at(1_000)], 1_000),
            (&[version_at(998), twice_at(999)], 999),
        ];
        for (edits, refused) in cases {
            let mut edited = bytes.clone();
            for &(k, edit) in edits {
                edit_record(&mut edited, version, k, edit(version));
            }
            assert_same(&edited, version, &format!("{name}, refused at {refused}"));
            let outcome = scan(&edited, version, true, Reading::Apart);
            assert!(outcome.result.contains(&format!("position {refused}: ")), "{name}: {}", outcome.result);
            assert_eq!(outcome.next_position, refused, "{name}: placed up to the refused record");
        }
    }
}

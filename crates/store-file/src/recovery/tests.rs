//! Judging damage, and the scan read in windows of any size ending as one read of each whole
//! segment would.

use std::path::{Path, PathBuf};

use rapport_core::testing::synth::{SynthConfig, generate};
use rapport_core::{ExpectedVersion, Store};

use super::*;
use crate::vfs::StdVfs;
use crate::{FileStore, Options};

/// A frame header whose last byte starts a sector, in a log of format `version`, with a
/// checksum whose last byte has exactly one bit set; then bytes that are not zero.
fn header_across_a_sector(version: u32) -> (usize, Vec<u8>) {
    let header_len = format::frame_header_bytes(version);
    let header = (1u64..)
        .map(|epoch| {
            let link = Chain::START;
            FrameHeader { version, payload_len: 100, first_position: 5, count: 1, epoch, link, payload_crc: 7 }.encode()
        })
        .find(|b| b[header_len - 1].count_ones() == 1)
        .unwrap_or_default();
    let at = damage::SECTOR_BYTES - (header_len - 1);
    let mut file = vec![0x5a; 4 * damage::SECTOR_BYTES];
    file[at..at + header_len].copy_from_slice(&header);
    (at, file)
}

#[test]
fn a_header_torn_inside_its_checksum_is_a_torn_write_though_one_bit_differs() {
    for version in [format::FORMAT_VERSION_1, format::FORMAT_VERSION] {
        let (at, file) = header_across_a_sector(version);
        let d = Damage { at, kind: Kind::InvalidHeader, header: None };
        let last = at + format::frame_header_bytes(version) - 1;
        // The sector holding the checksum's last byte and the payload never reached the
        // disk: its zeros differ from the written byte by one bit, and explain it.
        let mut torn = file.clone();
        torn[last..2 * damage::SECTOR_BYTES].fill(0);
        assert!(matches!(judge(&torn, &d, 0, version, 0), Verdict::Torn(_)), "version {version}");
        // The same bit flipped with the payload written: a flipped bit, refused.
        let mut flipped = file.clone();
        flipped[last] = 0;
        match judge(&flipped, &d, 0, version, 0) {
            Verdict::Corrupt(why) => assert!(why.contains("one flipped bit in its checksum"), "{why}"),
            _ => panic!("version {version}: a flipped bit was taken for a tear"),
        }
    }
}

/// A store of `n` events appended `frame` at a time, in segments of at most 64 KiB (several of
/// them), closed; then `more` events appended after its index snapshot was saved, as a crash
/// would leave them (the snapshot of the first close put back).
fn store(name: &str, n: usize, frame: usize, more: usize) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rapport-windows-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let options = Options { segment_bytes_max: 64 * 1024, ..Options::default() };
    let mut events = generate(SynthConfig { accounts: 30, months: 36, seed: 7, ..Default::default() });
    let saved = dir.with_extension("derived");
    for (k, part) in [n, more].into_iter().enumerate() {
        let store = FileStore::open_with(&dir, options.clone()).unwrap();
        let batch: Vec<_> = events.by_ref().take(part).collect();
        assert_eq!(batch.len(), part);
        for chunk in batch.chunks(frame) {
            pollster::block_on(store.append(chunk.to_vec(), ExpectedVersion::Any)).unwrap();
        }
        drop(store);
        let derived = dir.join(crate::DERIVED_DIR);
        if k == 0 {
            copy_dir(&derived, &saved);
        } else {
            std::fs::remove_dir_all(&derived).unwrap();
            copy_dir(&saved, &derived);
            std::fs::remove_dir_all(&saved).unwrap();
        }
    }
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// What a scan of `dir` found, as text to compare: the error, or where the log ends and why,
/// its chain, epoch, ids and accounts.
fn outcome(dir: &Path, snapshot: bool, validate: bool, window: usize) -> String {
    let head = crate::head::read(&StdVfs, dir).unwrap();
    match scan_in_windows(&StdVfs, dir, head.as_ref(), snapshot, validate, window) {
        Ok(s) => format!(
            "head {}, from snapshot {}, segments {:?}, last segment's length {}, tail {:?}, chain {:?}, epoch {}, \
             ids {}, accounts {}",
            s.head(),
            s.from_snapshot,
            s.numbers,
            s.segment_len,
            s.tail.map(|t| (t.offset, t.bytes, t.reason)),
            s.chain.0,
            s.last_epoch,
            if validate { s.core.state.ids().len() } else { 0 },
            s.index.accounts.len(),
        ),
        Err(e) => format!("refused: {e}"),
    }
}

/// Windows smaller than a frame, than a segment, and larger than the segments: each scan
/// ends as the scan of whole segments does, from the snapshot or not, validating or not.
/// Returns the outcome of a validating scan of the whole log.
fn assert_windows_agree(dir: &Path, what: &str) -> String {
    for snapshot in [true, false] {
        for validate in [true, false] {
            let reference = outcome(dir, snapshot, validate, usize::MAX);
            for window in [4 * 1024, 16 * 1024] {
                assert_eq!(
                    outcome(dir, snapshot, validate, window),
                    reference,
                    "{what}: window {window}, snapshot {snapshot}, validate {validate}"
                );
            }
        }
    }
    outcome(dir, false, true, usize::MAX)
}

#[test]
fn a_scan_in_windows_ends_as_a_scan_of_whole_segments_whatever_the_damage() {
    // Frames of 20 records (many to a window), and of 400 (larger than the small windows).
    for (name, frame) in [("small-frames", 20), ("large-frames", 400)] {
        let dir = store(name, 2_000, frame, 1_300);
        let numbers = segment_numbers(&StdVfs, &dir).unwrap();
        assert!(numbers.len() >= 4, "{name}: {} segments", numbers.len());
        let intact = assert_windows_agree(&dir, name);
        assert!(intact.starts_with("head 3300, from snapshot 0"), "{name}: {intact}");
        assert!(outcome(&dir, true, true, 4 * 1024).starts_with("head 3300, from snapshot 2000"), "{name}");
        let last = dir.join(segment_name(*numbers.last().unwrap()));
        let sealed = dir.join(segment_name(numbers[numbers.len() - 2]));
        let (bytes, sealed_bytes) = (std::fs::read(&last).unwrap(), std::fs::read(&sealed).unwrap());
        let body = bytes.len() - SEGMENT_HEADER_BYTES;
        for k in 0..23 {
            let at = SEGMENT_HEADER_BYTES + body * k / 23 + k % 5;
            std::fs::write(&last, &bytes[..at]).unwrap();
            assert_windows_agree(&dir, &format!("{name}: last segment cut at byte {at}"));
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x04;
            std::fs::write(&last, &flipped).unwrap();
            assert_windows_agree(&dir, &format!("{name}: last segment's byte {at} flipped"));
            let mut zeroed = bytes.clone();
            zeroed[at..].fill(0);
            zeroed.extend(std::iter::repeat_n(0, 5_000));
            std::fs::write(&last, &zeroed).unwrap();
            assert_windows_agree(&dir, &format!("{name}: last segment zeroed from byte {at}"));
            std::fs::write(&last, &bytes).unwrap();
            let at = SEGMENT_HEADER_BYTES + (sealed_bytes.len() - SEGMENT_HEADER_BYTES) * k / 23;
            let mut flipped = sealed_bytes.clone();
            flipped[at] ^= 0x40;
            std::fs::write(&sealed, &flipped).unwrap();
            let refused = assert_windows_agree(&dir, &format!("{name}: sealed segment's byte {at} flipped"));
            assert!(refused.starts_with("refused"), "{name}: a sealed segment's byte {at} flipped: {refused}");
            std::fs::write(&sealed, &sealed_bytes).unwrap();
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

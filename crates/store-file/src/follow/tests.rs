//! A follower reading in windows smaller than a frame and than a segment reads what its
//! writer appended, frame by frame, across segments.

use rapport_core::testing::synth::{SynthConfig, generate};
use rapport_core::{EventId, ExpectedVersion, Position, Store};

use crate::sync::lock;
use crate::{FileStore, Options};

/// Every event's position and id, as `store` reads them.
fn read(store: &FileStore) -> Vec<(Position, EventId)> {
    let mut seen = Vec::new();
    pollster::block_on(store.scan(Position(1), &mut |e| seen.push((e.position, e.id)))).unwrap();
    seen
}

/// The follower reads the events the writer reads, no fewer.
fn assert_reads_as(follower: &FileStore, writer: &FileStore, what: &str) {
    let (theirs, ours) = (read(writer), read(follower));
    assert_eq!(ours.len(), theirs.len(), "{what}: events read");
    assert!(ours == theirs, "{what}: the follower reads other events");
}

#[test]
fn a_follower_reading_small_windows_reads_every_frame_its_writer_appended() {
    let dir = std::env::temp_dir().join(format!("rapport-follow-windows-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let writer = FileStore::open_with(&dir, Options { segment_bytes_max: 64 * 1024, ..Options::default() }).unwrap();
    let events: Vec<_> =
        generate(SynthConfig { accounts: 30, months: 36, seed: 3, ..Default::default() }).take(4_010).collect();
    pollster::block_on(writer.append(events[..10].to_vec(), ExpectedVersion::Any)).unwrap();
    // Windows of 4 KiB and 16 KiB: frames of 20 records straddle their ends; frames of 400
    // (about 60 KiB) are larger than either.
    for (window, part) in [(4 * 1024, 10..2_010), (16 * 1024, 2_010..4_010)] {
        let follower = FileStore::open_read_only(&dir).unwrap();
        lock(&follower.shared.follow).as_mut().expect("a read-only handle follows").window = window;
        let mut batches = 0;
        for (k, frame) in [20, 400, 20, 400].into_iter().enumerate() {
            let quarter = part.len() / 4;
            let from = part.start + k * quarter;
            for chunk in events[from..from + quarter].chunks(frame) {
                pollster::block_on(writer.append(chunk.to_vec(), ExpectedVersion::Any)).unwrap();
                batches += 1;
                // Looks after some batches, not others: a look may read many frames and
                // segments at once.
                if batches % 7 == 0 {
                    follower.refresh().unwrap();
                    assert_reads_as(&follower, &writer, &format!("window {window}, after batch {batches}"));
                }
            }
        }
        assert_eq!(follower.refresh().unwrap(), Position(part.end as u64), "window {window}");
        assert_reads_as(&follower, &writer, &format!("window {window}"));
    }
    let segments = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "rpl"))
        .count();
    assert!(segments >= 5, "{segments} segments");
    drop(writer);
    std::fs::remove_dir_all(&dir).unwrap();
}

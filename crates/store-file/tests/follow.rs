//! A read-only handle following a log its writer keeps appending to: every event once, in
//! order, across segment rolls; an unfinished frame at the end is waited for, damage in a
//! sealed segment is refused.

#[path = "support/common.rs"]
mod common;

use std::io::Write;
use std::time::Duration;

use rapport_core::{ExpectedVersion, Position, ReadError, Store, Subscription};
use rapport_store_file::vfs::StdVfs;
use rapport_store_file::{FileStore, Options, segment_name};

use common::{TempDir, contents, history};

fn small_segments() -> Options {
    Options { segment_bytes_max: 64 * 1024, ..Options::default() }
}

#[test]
fn a_follower_sees_every_append_once_in_order_across_segments() {
    let dir = TempDir::new("follow");
    let writer = FileStore::open_with(dir.path(), small_segments()).expect("open");
    let events = history(30, 12, 3);
    let rest = events[100..].to_vec();
    pollster::block_on(writer.append(events[..100].to_vec(), ExpectedVersion::Any)).expect("append");

    let follower = FileStore::open_following(dir.path(), Duration::from_millis(2)).expect("follow");
    assert!(follower.is_read_only());
    let appending = std::thread::spawn(move || {
        for chunk in rest.chunks(29) {
            pollster::block_on(writer.append(chunk.to_vec(), ExpectedVersion::Any)).expect("append");
        }
        writer
    });
    let total = events.len();
    let mut subscription = Subscription::new(&follower, Position(1));
    let mut seen = Vec::new();
    while seen.len() < total {
        seen.extend(pollster::block_on(subscription.next_batch(500)).expect("subscription"));
    }
    let writer = appending.join().expect("writer");
    assert!(dir.path().join(segment_name(2)).exists(), "the log rolled over segments while followed");
    let logged = contents(&writer);
    assert_eq!(seen, logged, "the follower saw the log as written, once, in order");
    // Its reads by stream and its accounts agree too.
    assert_eq!(contents(&follower), logged);
    let account = &logged[0].account;
    let by_stream =
        pollster::block_on(follower.read_stream(account, rapport_core::StreamVersion(1), 10_000)).expect("read");
    assert_eq!(
        by_stream,
        pollster::block_on(writer.read_stream(account, rapport_core::StreamVersion(1), 10_000)).expect("read")
    );
}

#[test]
fn a_read_only_handle_refreshes_on_request_and_waits_only_when_following() {
    let dir = TempDir::new("refresh");
    let writer = FileStore::open(dir.path()).expect("open");
    let events = history(3, 6, 9);
    pollster::block_on(writer.append(events[..10].to_vec(), ExpectedVersion::Any)).expect("append");
    let reader = FileStore::open_read_only(dir.path()).expect("open read-only");
    pollster::block_on(writer.append(events[10..20].to_vec(), ExpectedVersion::Any)).expect("append");
    assert_eq!(pollster::block_on(reader.head()).expect("head"), Position(10), "nothing new until it looks");
    let waited = pollster::block_on(reader.wait_past(Position(10)));
    assert!(matches!(waited, Err(ReadError::Storage(_))), "a handle that does not follow does not wait");
    assert_eq!(reader.refresh().expect("refresh"), Position(20));
    assert_eq!(pollster::block_on(reader.read_all(Position(11), 100)).expect("read").len(), 10);
    // A writer's handle has nothing to refresh.
    assert_eq!(writer.refresh().expect("refresh"), Position(20));
}

#[test]
fn an_unfinished_frame_is_waited_for_and_damage_in_a_sealed_segment_is_refused() {
    let dir = TempDir::new("follow-damage");
    let events = history(3, 6, 4);
    {
        let writer = FileStore::open(dir.path()).expect("open");
        pollster::block_on(writer.append(events[..10].to_vec(), ExpectedVersion::Any)).expect("append");
    }
    let reader = FileStore::open_read_only(dir.path()).expect("open read-only");
    let last = dir.path().join(segment_name(0));
    // Half a frame header at the end: a write in progress. The follower stops before it.
    std::fs::OpenOptions::new().append(true).open(&last).expect("segment").write_all(b"RPB1\x01").expect("write");
    assert_eq!(reader.refresh().expect("refresh"), Position(10));
    assert_eq!(reader.refresh().expect("refresh"), Position(10), "and keeps waiting");
    // A next segment seals this one: the unfinished bytes are now damage, named with their place.
    std::fs::write(dir.path().join(segment_name(1)), [0u8; 3]).expect("next segment");
    let err = reader.refresh().expect_err("damage in a sealed segment");
    let text = err.to_string();
    assert!(text.contains(&segment_name(0)) && text.contains("sealed"), "{text}");
}

/// The real file system, but a segment's size reads larger than the file is: as when the
/// writer cuts its preallocated zeros (at close, or sealing a segment) between a follower's
/// look at the size and its read.
struct ShrinkingVfs;

struct Shrunk(Box<dyn rapport_store_file::vfs::ReadFile>);

impl rapport_store_file::vfs::ReadFile for Shrunk {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        self.0.read_at(buf, offset)
    }

    fn size(&self) -> std::io::Result<u64> {
        Ok(self.0.size()? + 4_096)
    }
}

impl rapport_store_file::vfs::Vfs for ShrinkingVfs {
    fn create_dir_all(&self, dir: &std::path::Path) -> std::io::Result<()> {
        StdVfs.create_dir_all(dir)
    }
    fn exists(&self, path: &std::path::Path) -> bool {
        StdVfs.exists(path)
    }
    fn list(&self, dir: &std::path::Path) -> std::io::Result<Vec<String>> {
        StdVfs.list(dir)
    }
    fn open_read(&self, path: &std::path::Path) -> std::io::Result<Box<dyn rapport_store_file::vfs::ReadFile>> {
        let file = StdVfs.open_read(path)?;
        let segment = path.file_name().is_some_and(|n| n.to_string_lossy().ends_with(".rpl"));
        Ok(if segment { Box::new(Shrunk(file)) } else { file })
    }
    fn open_append(
        &self,
        path: &std::path::Path,
        create_new: bool,
    ) -> std::io::Result<Box<dyn rapport_store_file::vfs::AppendFile>> {
        StdVfs.open_append(path, create_new)
    }
    fn truncate(&self, path: &std::path::Path, len: u64) -> std::io::Result<()> {
        StdVfs.truncate(path, len)
    }
    fn remove(&self, path: &std::path::Path) -> std::io::Result<()> {
        StdVfs.remove(path)
    }
    fn rename(&self, from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
        StdVfs.rename(from, to)
    }
    fn sync_dir(&self, dir: &std::path::Path) -> std::io::Result<()> {
        StdVfs.sync_dir(dir)
    }
    fn lock_dir(&self, dir: &std::path::Path) -> std::io::Result<Box<dyn rapport_store_file::vfs::LockGuard>> {
        StdVfs.lock_dir(dir)
    }
}

#[test]
fn a_segment_that_ends_before_the_size_the_follower_saw_is_read_as_far_as_it_goes() {
    let dir = TempDir::new("follow-shrunk");
    let events = history(3, 6, 5);
    let writer = FileStore::open(dir.path()).expect("open");
    pollster::block_on(writer.append(events[..10].to_vec(), ExpectedVersion::Any)).expect("append");
    let reader = FileStore::open_read_only_on(std::sync::Arc::new(ShrinkingVfs), dir.path()).expect("open read-only");
    pollster::block_on(writer.append(events[10..20].to_vec(), ExpectedVersion::Any)).expect("append");
    drop(writer);
    assert_eq!(reader.refresh().expect("the shorter file is no error"), Position(20));
    assert_eq!(contents(&reader), contents(&FileStore::open_read_only(dir.path()).expect("open")));
}

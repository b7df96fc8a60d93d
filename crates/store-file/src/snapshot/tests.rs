//! The snapshot read in windows of any size loads exactly what one read of the whole file
//! does, and refuses every damaged file that read refuses.

use std::path::{Path, PathBuf};

use rapport_core::testing::synth::{SynthConfig, generate};
use rapport_core::{ExpectedVersion, Store};

use super::*;
use crate::vfs::StdVfs;
use crate::{FileStore, Options};

/// A store of a few accounts closed cleanly (so its snapshot is saved), in a fresh directory.
fn closed_store(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rapport-snapshot-windows-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store =
        FileStore::open_with(&dir, Options { segment_bytes_max: 64 * 1024, ..Options::default() }).expect("open");
    let events: Vec<_> = generate(SynthConfig { accounts: 30, months: 24, seed: 41, ..Default::default() }).collect();
    for chunk in events.chunks(50) {
        pollster::block_on(store.append(chunk.to_vec(), ExpectedVersion::Any)).expect("append");
    }
    drop(store);
    dir
}

/// What a load gives: the extent and the indexes as text, and each account's saved state.
type Load = (String, Vec<(String, Option<rapport_core::backend::StreamState>)>);

fn loaded(dir: &Path, validate: bool, window: usize) -> Result<Load, String> {
    let vfs = StdVfs;
    let numbers = crate::recovery::segment_numbers(&vfs, dir).map_err(|e| e.to_string())?;
    let head = crate::head::read(&vfs, dir).map_err(|(_, why)| why)?;
    let path = path(dir);
    let l = try_load(&vfs, dir, &path, &numbers, head.as_ref(), validate, window)?;
    let mut out = format!("{:?} {} {:?}\n", l.extent, l.core.next_position, l.core.last_recorded);
    out += &format!("{:?}\n{:?}\n{:?}\n", l.index.offsets, l.index.accounts, l.index.segments);
    let mut streams: Vec<_> = l.index.streams.iter().collect();
    streams.sort_by(|a, b| a.0.cmp(b.0));
    let mut states = Vec::new();
    for (account, positions) in streams {
        out += &format!("{account} {positions:?}\n");
        let state = match &l.core.saved_states {
            Some(saved) => saved.load(account)?,
            None => None,
        };
        states.push((account.to_string(), state));
    }
    Ok((out, states))
}

const WINDOWS: [usize; 5] = [1, 7, 100, 1000, READ_WINDOW_BYTES];

#[test]
fn a_snapshot_read_in_windows_loads_as_the_whole_file_does() {
    let dir = closed_store("whole");
    let len = std::fs::metadata(path(&dir)).expect("snapshot").len();
    assert!(len > 4000, "the snapshot spans several windows: {len} bytes");
    for validate in [true, false] {
        let whole = loaded(&dir, validate, len as usize).expect("the whole file loads");
        assert_eq!(whole.1.len(), 30);
        assert_eq!(whole.1.iter().all(|(_, state)| state.is_some()), validate);
        for window in WINDOWS {
            let got = loaded(&dir, validate, window).expect("loads in windows");
            assert!(got == whole, "windows of {window} bytes load otherwise");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_damaged_snapshot_is_refused_in_windows_of_every_size() {
    let dir = closed_store("damaged");
    let path = path(&dir);
    let good = std::fs::read(&path).expect("snapshot");
    let places: Vec<usize> = (0..good.len()).step_by(good.len() / 97 + 1).chain([good.len() - 1]).collect();
    let mut edits: Vec<Vec<u8>> = Vec::new();
    for &at in &places {
        let mut flipped = good.clone();
        flipped[at] ^= 0x10;
        edits.push(flipped);
        edits.push(good[..at].to_vec());
        let mut longer = good.clone();
        longer.insert(at, 0);
        edits.push(longer);
    }
    for bytes in edits {
        std::fs::write(&path, &bytes).expect("write");
        for window in WINDOWS {
            let got = loaded(&dir, true, window);
            assert!(got.is_err(), "{} bytes, window {window}: loaded", bytes.len());
        }
    }
    std::fs::write(&path, &good).expect("restore");
    assert!(loaded(&dir, true, 7).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A file's bytes in memory, fewer than the length a reader is told.
struct Cut(Vec<u8>);

impl crate::vfs::ReadFile for Cut {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let from = (offset as usize).min(self.0.len());
        let n = buf.len().min(self.0.len() - from);
        buf[..n].copy_from_slice(&self.0[from..from + n]);
        Ok(n)
    }

    fn size(&self) -> std::io::Result<u64> {
        Ok(self.0.len() as u64)
    }
}

#[test]
fn a_snapshot_cut_while_it_is_read_is_refused_not_waited_for() {
    let dir = closed_store("cut");
    let good = std::fs::read(path(&dir)).expect("snapshot");
    let _ = std::fs::remove_dir_all(&dir);
    // The reader is told the whole length (as `size` said before the file was cut) and reads
    // fewer bytes from some point on: every value past that point is refused.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for cut in (rapport_core::derived::HEADER_BYTES..good.len()).step_by(good.len() / 50 + 1) {
            for window in WINDOWS {
                let file = Box::new(Cut(good[..cut].to_vec()));
                let read = Reader::open(file, good.len() as u64, window, KIND, VERSION).and_then(|mut r| {
                    let _: PayloadHead = r.take()?;
                    let _: Offsets = r.take()?;
                    let streams: u64 = r.take()?;
                    for _ in 0..streams {
                        let _: (AccountId, Positions, StateSpan) = r.take()?;
                    }
                    r.finish().map(|_| ())
                });
                assert!(read.is_err(), "cut at byte {cut}, windows of {window}: read");
            }
        }
        tx.send(()).expect("send");
    });
    rx.recv_timeout(std::time::Duration::from_secs(60)).expect("every cut file refused, none waited on forever");
}

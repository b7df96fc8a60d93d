//! An in-memory file system that keeps written bytes apart from durable bytes, can crash at
//! any write or sync, and can fail fsync on demand. A crash image tears the unsynced bytes at
//! 512-byte sector granularity.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rapport_core::synth::SplitMix64;
use rapport_store_file::vfs::{AppendFile, LockGuard, ReadFile, Vfs};

/// Sector size for tearing.
pub(crate) const SECTOR: usize = 512;

#[derive(Debug, Clone, Default)]
struct FileData {
    data: Vec<u8>,
    durable: Vec<u8>,
    entry_durable: bool,
}

#[derive(Debug, Default)]
struct State {
    files: BTreeMap<PathBuf, FileData>,
    dirs: BTreeSet<PathBuf>,
    ops: u64,
    crash_at: Option<u64>,
    crashed: bool,
    fail_sync: bool,
}

/// How a crash image treats bytes written but not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tear {
    /// All unsynced bytes are lost.
    DropAll,
    /// All unsynced bytes happened to reach the disk.
    KeepAll,
    /// A random prefix of the unsynced sectors reached the disk.
    Prefix,
    /// A random subset of sectors reached the disk; the others read as zeros.
    Scatter,
}

/// Every tear mode.
pub(crate) const TEARS: [Tear; 4] = [Tear::DropAll, Tear::KeepAll, Tear::Prefix, Tear::Scatter];

/// The fault-injecting file system. Clone shares the state.
#[derive(Debug, Clone, Default)]
pub(crate) struct FaultyVfs(Arc<Mutex<State>>);

fn crashed() -> io::Error {
    io::Error::other("injected crash: the process is gone")
}

impl FaultyVfs {
    /// An empty file system.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Makes the `n`-th write or sync operation from now on (1-based) fail, and every one after.
    pub(crate) fn crash_at(&self, n: u64) {
        let mut s = self.0.lock().unwrap();
        s.crash_at = Some(s.ops + n);
    }

    /// Makes every `sync_data` fail from now on.
    pub(crate) fn fail_syncs(&self) {
        self.0.lock().unwrap().fail_sync = true;
    }

    /// Write and sync operations so far.
    pub(crate) fn ops(&self) -> u64 {
        self.0.lock().unwrap().ops
    }

    /// Whether the injected crash happened.
    pub(crate) fn has_crashed(&self) -> bool {
        self.0.lock().unwrap().crashed
    }

    /// Counts one mutating operation; fails if the crash point is reached or passed.
    fn op(&self) -> io::Result<std::sync::MutexGuard<'_, State>> {
        let mut s = self.0.lock().unwrap();
        if s.crashed {
            return Err(crashed());
        }
        s.ops += 1;
        if s.crash_at.is_some_and(|c| s.ops >= c) {
            s.crashed = true;
            return Err(crashed());
        }
        Ok(s)
    }

    /// What the disk holds after a crash now: durable bytes plus torn unsynced ones.
    pub(crate) fn crash_image(&self, tear: Tear, seed: u64) -> FaultyVfs {
        let s = self.0.lock().unwrap();
        let mut rng = SplitMix64::new(seed);
        let mut files = BTreeMap::new();
        for (path, f) in &s.files {
            if !(f.entry_durable || tear == Tear::KeepAll || rng.chance(0.5)) {
                continue; // the directory entry never reached the disk
            }
            let mut out = f.durable.clone();
            let written = f.data.len();
            let durable_len = f.durable.len().min(written);
            if written > durable_len {
                let first = durable_len / SECTOR;
                let last = (written - 1) / SECTOR;
                let n = last - first + 1;
                let keep: Vec<bool> = match tear {
                    Tear::DropAll => vec![false; n],
                    Tear::KeepAll => vec![true; n],
                    Tear::Prefix => {
                        let k = rng.below(n as u32 + 1) as usize;
                        (0..n).map(|i| i < k).collect()
                    }
                    Tear::Scatter => (0..n).map(|_| rng.chance(0.5)).collect(),
                };
                if let Some(last_kept) = keep.iter().rposition(|k| *k) {
                    let end = ((first + last_kept + 1) * SECTOR).min(written);
                    out.resize(end, 0);
                    for (i, k) in keep.iter().enumerate() {
                        if *k {
                            let a = ((first + i) * SECTOR).max(durable_len);
                            let b = ((first + i + 1) * SECTOR).min(written);
                            if a < b {
                                out[a..b].copy_from_slice(&f.data[a..b]);
                            }
                        }
                    }
                }
                if tear == Tear::Scatter && rng.chance(0.3) {
                    // Sometimes the size reached the disk before the data: zeros to the end.
                    out.resize(written, 0);
                }
            }
            files.insert(path.clone(), FileData { data: out.clone(), durable: out, entry_durable: true });
        }
        FaultyVfs(Arc::new(Mutex::new(State { files, dirs: s.dirs.clone(), ..State::default() })))
    }

    /// The current bytes of a file.
    pub(crate) fn bytes(&self, path: &Path) -> Option<Vec<u8>> {
        self.0.lock().unwrap().files.get(path).map(|f| f.data.clone())
    }

    /// Replaces a file's bytes (durably), for corruption tests.
    pub(crate) fn set_bytes(&self, path: &Path, bytes: Vec<u8>) {
        let mut s = self.0.lock().unwrap();
        s.files.insert(path.to_path_buf(), FileData { data: bytes.clone(), durable: bytes, entry_durable: true });
    }

    /// The paths of every file.
    pub(crate) fn paths(&self) -> Vec<PathBuf> {
        self.0.lock().unwrap().files.keys().cloned().collect()
    }
}

struct MemRead {
    vfs: FaultyVfs,
    path: PathBuf,
}

impl ReadFile for MemRead {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let s = self.vfs.0.lock().unwrap();
        let f = s.files.get(&self.path).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let off = offset as usize;
        if off >= f.data.len() {
            return Ok(0);
        }
        let n = buf.len().min(f.data.len() - off);
        buf[..n].copy_from_slice(&f.data[off..off + n]);
        Ok(n)
    }

    fn size(&self) -> io::Result<u64> {
        let s = self.vfs.0.lock().unwrap();
        Ok(s.files.get(&self.path).map(|f| f.data.len() as u64).unwrap_or(0))
    }
}

struct MemAppend {
    vfs: FaultyVfs,
    path: PathBuf,
}

impl AppendFile for MemAppend {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let mut s = self.vfs.op()?;
        let f = s.files.get_mut(&self.path).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        f.data.extend_from_slice(data);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut s = self.vfs.op()?;
        if s.fail_sync {
            return Err(io::Error::other("injected fsync failure (EIO)"));
        }
        let f = s.files.get_mut(&self.path).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        f.durable = f.data.clone();
        Ok(())
    }
}

struct MemLock;

impl LockGuard for MemLock {}

impl Vfs for FaultyVfs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.0.lock().unwrap().dirs.insert(dir.to_path_buf());
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let s = self.0.lock().unwrap();
        s.dirs.contains(path) || s.files.contains_key(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let s = self.0.lock().unwrap();
        Ok(s.files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn ReadFile>> {
        if !self.0.lock().unwrap().files.contains_key(path) {
            return Err(io::ErrorKind::NotFound.into());
        }
        Ok(Box::new(MemRead { vfs: self.clone(), path: path.to_path_buf() }))
    }

    fn open_append(&self, path: &Path, create_new: bool) -> io::Result<Box<dyn AppendFile>> {
        if create_new {
            let mut s = self.op()?;
            if s.files.contains_key(path) {
                return Err(io::ErrorKind::AlreadyExists.into());
            }
            s.files.insert(path.to_path_buf(), FileData::default());
        } else if !self.0.lock().unwrap().files.contains_key(path) {
            return Err(io::ErrorKind::NotFound.into());
        }
        Ok(Box::new(MemAppend { vfs: self.clone(), path: path.to_path_buf() }))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut s = self.op()?;
        let f = s.files.get_mut(path).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        f.data.truncate(len as usize);
        f.durable = f.data.clone();
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut s = self.op()?;
        s.files.remove(path);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.op()?;
        for (p, f) in s.files.iter_mut() {
            if p.parent() == Some(dir) {
                f.entry_durable = true;
            }
        }
        Ok(())
    }

    fn lock(&self, _path: &Path) -> io::Result<Box<dyn LockGuard>> {
        Ok(Box::new(MemLock))
    }
}

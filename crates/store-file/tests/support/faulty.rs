//! An in-memory file system that keeps written bytes apart from durable bytes, can crash at
//! any write or sync, and can fail fsync on demand. A crash image tears the unsynced bytes at
//! 512-byte sector granularity, and loses directory changes (new files and directories,
//! removals, renames) not yet made durable by syncing their directory.

#![allow(dead_code)] // Each test file uses its own part.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rapport_core::testing::synth::SplitMix64;
use rapport_store_file::vfs::{AppendFile, LockGuard, ReadFile, Vfs};
use rapport_store_file::{FileStore, OpenError, Options};

/// Where the stores of these tests live in the in-memory file system.
pub(crate) const MEM_DIR: &str = "/mem/db";

/// Options with small segments, so a workload rolls over several.
pub(crate) fn small_segments() -> Options {
    Options { segment_bytes_max: 64 * 1024, ..Options::default() }
}

/// The store at [`MEM_DIR`] on `vfs`.
pub(crate) fn open_mem(vfs: &FaultyVfs) -> Result<FileStore, OpenError> {
    open_mem_with(vfs, small_segments())
}

/// [`open_mem`] with other options.
pub(crate) fn open_mem_with(vfs: &FaultyVfs, options: Options) -> Result<FileStore, OpenError> {
    FileStore::open_on(Arc::new(vfs.clone()), Path::new(MEM_DIR), options)
}

/// The segment files on `vfs`, in order.
pub(crate) fn segment_paths(vfs: &FaultyVfs) -> Vec<PathBuf> {
    let mut p: Vec<PathBuf> = vfs.paths().into_iter().filter(|p| p.extension().is_some_and(|e| e == "rpl")).collect();
    p.sort();
    p
}

/// Sector size for tearing.
pub(crate) const SECTOR: usize = 512;

#[derive(Debug, Clone, Default)]
struct FileData {
    data: Vec<u8>,
    durable: Vec<u8>,
}

/// A file, which several names may share (a rename leaves the old name durable until synced).
type Inode = Arc<Mutex<FileData>>;

#[derive(Debug, Default)]
struct State {
    /// The directory entries as the running system sees them: path to file.
    files: BTreeMap<PathBuf, Arc<Mutex<FileData>>>,
    /// The entries a crash keeps for sure: those of directories synced since they changed.
    durable_files: BTreeMap<PathBuf, Arc<Mutex<FileData>>>,
    dirs: BTreeSet<PathBuf>,
    durable_dirs: BTreeSet<PathBuf>,
    ops: u64,
    crash_at: Option<u64>,
    crashed: bool,
    fail_sync: bool,
    /// Syncs of files under this directory fail.
    fail_sync_under: Option<PathBuf>,
    /// How long each `sync_data` takes, as on a slow disk.
    sync_delay: std::time::Duration,
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

    /// Makes every `sync_data` of a file under `dir` fail from now on.
    pub(crate) fn fail_syncs_under(&self, dir: &Path) {
        self.0.lock().unwrap().fail_sync_under = Some(dir.to_path_buf());
    }

    /// Makes `sync_data` succeed again after [`fail_syncs`](Self::fail_syncs) or
    /// [`fail_syncs_under`](Self::fail_syncs_under).
    pub(crate) fn heal_syncs(&self) {
        let mut s = self.0.lock().unwrap();
        s.fail_sync = false;
        s.fail_sync_under = None;
    }

    /// Makes every `sync_data` take `delay` from now on (the file system's lock is not held
    /// meanwhile, so reads go on).
    pub(crate) fn slow_syncs(&self, delay: std::time::Duration) {
        self.0.lock().unwrap().sync_delay = delay;
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

    /// What the disk holds after a crash now: durable bytes plus torn unsynced ones, and the
    /// durable directory entries plus, at random, changes not yet synced.
    pub(crate) fn crash_image(&self, tear: Tear, seed: u64) -> FaultyVfs {
        let s = self.0.lock().unwrap();
        let mut rng = SplitMix64::new(seed);
        // Directories: durable ones, and (parents first) each unsynced one if it happened to
        // reach the disk.
        let mut dirs = BTreeSet::new();
        for d in &s.dirs {
            let parent_kept = d.parent().is_none_or(|p| dirs.contains(p) || p.as_os_str().is_empty());
            let durable = s.durable_dirs.contains(d) || d.parent().is_none();
            if parent_kept && (durable || tear == Tear::KeepAll || rng.chance(0.5)) {
                dirs.insert(d.clone());
            }
        }
        // Entries: where the running and the durable entry differ, either may be on disk.
        let paths: BTreeSet<&PathBuf> = s.files.keys().chain(s.durable_files.keys()).collect();
        let mut torn: Vec<(Inode, Inode)> = Vec::new();
        let mut files = BTreeMap::new();
        for path in paths {
            let (now, durable) = (s.files.get(path), s.durable_files.get(path));
            let pick = match (now, durable) {
                (Some(a), Some(b)) if Arc::ptr_eq(a, b) => Some(a),
                _ if tear == Tear::KeepAll => now,
                _ => {
                    if rng.chance(0.5) {
                        now
                    } else {
                        durable
                    }
                }
            };
            let Some(inode) = pick else { continue };
            if !path.parent().is_some_and(|p| dirs.contains(p)) {
                continue;
            }
            // One torn copy per file, however many names it has.
            let copy = match torn.iter().find(|(orig, _)| Arc::ptr_eq(orig, inode)) {
                Some((_, copy)) => Arc::clone(copy),
                None => {
                    let out = tear_file(&inode.lock().unwrap(), tear, &mut rng);
                    let copy = Arc::new(Mutex::new(FileData { data: out.clone(), durable: out }));
                    torn.push((Arc::clone(inode), Arc::clone(&copy)));
                    copy
                }
            };
            files.insert(path.clone(), copy);
        }
        let state = State { durable_files: files.clone(), files, durable_dirs: dirs.clone(), dirs, ..State::default() };
        FaultyVfs(Arc::new(Mutex::new(state)))
    }

    /// The current bytes of a file.
    pub(crate) fn bytes(&self, path: &Path) -> Option<Vec<u8>> {
        self.0.lock().unwrap().files.get(path).map(|f| f.lock().unwrap().data.clone())
    }

    /// Replaces a file's bytes (durably), for corruption tests.
    pub(crate) fn set_bytes(&self, path: &Path, bytes: Vec<u8>) {
        let mut s = self.0.lock().unwrap();
        let inode = Arc::new(Mutex::new(FileData { data: bytes.clone(), durable: bytes }));
        for d in path.ancestors().skip(1).filter(|d| !d.as_os_str().is_empty()) {
            s.dirs.insert(d.to_path_buf());
            s.durable_dirs.insert(d.to_path_buf());
        }
        s.files.insert(path.to_path_buf(), Arc::clone(&inode));
        s.durable_files.insert(path.to_path_buf(), inode);
    }

    /// Removes a file (durably), for tests of lost files.
    pub(crate) fn delete(&self, path: &Path) {
        let mut s = self.0.lock().unwrap();
        s.files.remove(path);
        s.durable_files.remove(path);
    }

    /// The paths of every file.
    pub(crate) fn paths(&self) -> Vec<PathBuf> {
        self.0.lock().unwrap().files.keys().cloned().collect()
    }
}

/// A file's bytes after a crash: its durable bytes plus the unsynced sectors `tear` keeps. A
/// sector is unsynced where the written bytes differ from the durable ones (an overwrite of
/// preallocated zeros) or lie past them (an append); the size may reach the disk without the
/// data (zeros to the end).
fn tear_file(f: &FileData, tear: Tear, rng: &mut SplitMix64) -> Vec<u8> {
    let mut out = f.durable.clone();
    let written = f.data.len();
    if written < out.len() {
        // Never happens to the store's files (they only grow), but keep the model whole.
        out.truncate(written);
    }
    let sectors = written.div_ceil(SECTOR);
    let changed: Vec<usize> = (0..sectors)
        .filter(|&i| {
            let (a, b) = (i * SECTOR, ((i + 1) * SECTOR).min(written));
            b > f.durable.len() || f.data[a..b] != f.durable[a..b]
        })
        .collect();
    if changed.is_empty() {
        return out;
    }
    let n = changed.len();
    let keep: Vec<bool> = match tear {
        Tear::DropAll => vec![false; n],
        Tear::KeepAll => vec![true; n],
        Tear::Prefix => {
            let k = rng.below(n as u32 + 1) as usize;
            (0..n).map(|i| i < k).collect()
        }
        Tear::Scatter => (0..n).map(|_| rng.chance(0.5)).collect(),
    };
    // The file is as long as its last kept sector past the durable length reaches.
    let mut len = out.len();
    for (i, &sector) in changed.iter().enumerate() {
        if keep[i] {
            len = len.max(((sector + 1) * SECTOR).min(written));
        }
    }
    if tear == Tear::Scatter && rng.chance(0.3) {
        // Sometimes the size reached the disk before the data: zeros to the end.
        len = written;
    }
    out.resize(len, 0);
    for (i, &sector) in changed.iter().enumerate() {
        let (a, b) = (sector * SECTOR, ((sector + 1) * SECTOR).min(len));
        if keep[i] && a < b {
            out[a..b].copy_from_slice(&f.data[a..b]);
        }
    }
    out
}

struct MemRead(Arc<Mutex<FileData>>);

impl ReadFile for MemRead {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let f = self.0.lock().unwrap();
        let off = offset as usize;
        if off >= f.data.len() {
            return Ok(0);
        }
        let n = buf.len().min(f.data.len() - off);
        buf[..n].copy_from_slice(&f.data[off..off + n]);
        Ok(n)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.0.lock().unwrap().data.len() as u64)
    }
}

struct MemAppend {
    vfs: FaultyVfs,
    file: Arc<Mutex<FileData>>,
    path: PathBuf,
}

impl AppendFile for MemAppend {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let _s = self.vfs.op()?;
        self.file.lock().unwrap().data.extend_from_slice(data);
        Ok(())
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let _s = self.vfs.op()?;
        let mut f = self.file.lock().unwrap();
        let (start, end) = (offset as usize, offset as usize + data.len());
        if f.data.len() < end {
            f.data.resize(end, 0);
        }
        f.data[start..end].copy_from_slice(data);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let s = self.vfs.op()?;
        if s.fail_sync || s.fail_sync_under.as_ref().is_some_and(|d| self.path.starts_with(d)) {
            return Err(io::Error::other("injected fsync failure (EIO)"));
        }
        let delay = s.sync_delay;
        drop(s);
        std::thread::sleep(delay);
        let mut f = self.file.lock().unwrap();
        f.durable = f.data.clone();
        Ok(())
    }
}

struct MemLock;

impl LockGuard for MemLock {}

impl Vfs for FaultyVfs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.0.lock().unwrap();
        for d in dir.ancestors().filter(|d| !d.as_os_str().is_empty()) {
            s.dirs.insert(d.to_path_buf());
        }
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let s = self.0.lock().unwrap();
        path.parent().is_none() || s.dirs.contains(path) || s.files.contains_key(path)
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
        let s = self.0.lock().unwrap();
        let f = s.files.get(path).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        Ok(Box::new(MemRead(Arc::clone(f))))
    }

    fn open_append(&self, path: &Path, create_new: bool) -> io::Result<Box<dyn AppendFile>> {
        let file = if create_new {
            let mut s = self.op()?;
            if s.files.contains_key(path) {
                return Err(io::ErrorKind::AlreadyExists.into());
            }
            if !path.parent().is_some_and(|p| s.dirs.contains(p)) {
                return Err(io::ErrorKind::NotFound.into());
            }
            let f = Arc::new(Mutex::new(FileData::default()));
            s.files.insert(path.to_path_buf(), Arc::clone(&f));
            f
        } else {
            let s = self.0.lock().unwrap();
            Arc::clone(s.files.get(path).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?)
        };
        Ok(Box::new(MemAppend { vfs: self.clone(), file, path: path.to_path_buf() }))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let s = self.op()?;
        let f = s.files.get(path).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let mut f = f.lock().unwrap();
        f.data.truncate(len as usize);
        f.durable = f.data.clone();
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut s = self.op()?;
        s.files.remove(path).map(drop).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.op()?;
        let f = s.files.remove(from).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        s.files.insert(to.to_path_buf(), f);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.op()?;
        let s = &mut *s;
        s.durable_files.retain(|p, _| p.parent() != Some(dir));
        for (p, f) in &s.files {
            if p.parent() == Some(dir) {
                s.durable_files.insert(p.clone(), Arc::clone(f));
            }
        }
        s.durable_dirs.retain(|d| d.parent() != Some(dir));
        for d in &s.dirs {
            if d.parent() == Some(dir) {
                s.durable_dirs.insert(d.clone());
            }
        }
        Ok(())
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.op()?;
        if s.files.keys().any(|p| p.starts_with(dir)) || s.dirs.iter().any(|d| d != dir && d.starts_with(dir)) {
            return Err(io::Error::other("directory not empty"));
        }
        if !s.dirs.remove(dir) {
            return Err(io::ErrorKind::NotFound.into());
        }
        Ok(())
    }

    fn lock_dir(&self, _dir: &Path) -> io::Result<Box<dyn LockGuard>> {
        Ok(Box::new(MemLock))
    }
}

//! The file-system layer the store runs on: [`StdVfs`] for real files, and a seam for tests
//! that inject faults (crashes between any two writes, torn sectors, failing fsyncs).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A file opened for reading at arbitrary offsets. Shared between reader threads.
pub trait ReadFile: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at the end).
    ///
    /// # Errors
    /// I/O errors.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// The file's current length.
    ///
    /// # Errors
    /// I/O errors.
    fn size(&self) -> io::Result<u64>;
}

/// A file opened for appending, owned by the writer thread.
pub trait AppendFile: Send {
    /// Appends all of `data`.
    ///
    /// # Errors
    /// I/O errors; the store poisons itself on any.
    fn append(&mut self, data: &[u8]) -> io::Result<()>;

    /// Writes all of `data` at `offset`, over what is there and past the end if need be (the
    /// writer overwrites the zeros it preallocated). Not to be mixed with
    /// [`append`](Self::append) on one handle: appends go on after the last append.
    ///
    /// # Errors
    /// I/O errors; the store poisons itself on any.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;

    /// Makes every appended byte durable (`fdatasync`).
    ///
    /// # Errors
    /// I/O errors; the store poisons itself on any.
    fn sync_data(&mut self) -> io::Result<()>;
}

/// A held exclusive lock; dropping it releases the lock.
pub trait LockGuard: Send + Sync {}

/// The lock file [`StdVfs`] keeps in a store's directory where a directory cannot be locked
/// itself (not on Unix).
pub(crate) const LOCK_FILE: &str = "LOCK";

/// The file-system operations the store needs, and nothing more.
pub trait Vfs: Send + Sync + 'static {
    /// Creates `dir` and its parents if missing.
    ///
    /// # Errors
    /// I/O errors.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> bool;

    /// The names of the files directly in `dir`.
    ///
    /// # Errors
    /// I/O errors.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;

    /// The names of everything directly in `dir`, directories too (what decides whether a
    /// directory may become a new store). By default [`list`](Self::list)'s files.
    ///
    /// # Errors
    /// I/O errors.
    fn entries(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.list(dir)
    }

    /// Opens an existing file for reading.
    ///
    /// # Errors
    /// I/O errors.
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn ReadFile>>;

    /// Opens a file for appending; with `create_new`, creates it and fails if it exists.
    ///
    /// # Errors
    /// I/O errors.
    fn open_append(&self, path: &Path, create_new: bool) -> io::Result<Box<dyn AppendFile>>;

    /// Cuts `path` to `len` bytes and makes that durable.
    ///
    /// # Errors
    /// I/O errors.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;

    /// Removes a file.
    ///
    /// # Errors
    /// I/O errors.
    fn remove(&self, path: &Path) -> io::Result<()>;

    /// Renames `from` to `to`, replacing `to` atomically if it exists. Durable once the
    /// directory is synced.
    ///
    /// # Errors
    /// I/O errors.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Makes the directory's entries (new, removed and renamed files and directories) durable.
    ///
    /// # Errors
    /// I/O errors.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// Makes the bytes written to the existing file `path` (by any handle, in any process)
    /// durable, without writing to it: what a backup does to the segment a writer is
    /// appending to before copying it. By default through
    /// [`open_append`](Self::open_append).
    ///
    /// # Errors
    /// I/O errors.
    fn sync_file(&self, path: &Path) -> io::Result<()> {
        self.open_append(path, false)?.sync_data()
    }

    /// Removes the empty directory `dir` (what a failed copy of a store,
    /// [`backup_on`](crate::backup_on) or [`upgrade_on`](crate::upgrade_on), removes last). By
    /// default unsupported: the directory is left, empty.
    ///
    /// # Errors
    /// I/O errors; [`io::ErrorKind::Unsupported`] by default.
    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        let _ = dir;
        Err(io::ErrorKind::Unsupported.into())
    }

    /// `path` with every link and `..` resolved, to tell whether one directory lies inside
    /// another. By default `path` as given, if it exists (a file system without links).
    ///
    /// # Errors
    /// I/O errors; [`io::ErrorKind::NotFound`] when `path` does not exist.
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        if self.exists(path) { Ok(path.to_path_buf()) } else { Err(io::ErrorKind::NotFound.into()) }
    }

    /// Takes the exclusive writer's lock on the store directory `dir` itself, or fails at once
    /// with [`io::ErrorKind::WouldBlock`] if another handle holds it. The lock is on the
    /// directory, not on a file in it, so no file an operator removes, replaces or turns into
    /// a link or a FIFO can let a second writer in.
    ///
    /// # Errors
    /// I/O errors, or the lock is held.
    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn LockGuard>>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdVfs;

struct StdRead(File);

impl ReadFile for StdRead {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::read_at(&self.0, buf, offset)
        }
        #[cfg(windows)]
        {
            std::os::windows::fs::FileExt::seek_read(&self.0, buf, offset)
        }
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

struct StdAppend(File);

impl AppendFile for StdAppend {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.write_all(data)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::write_all_at(&self.0, data, offset)
        }
        #[cfg(windows)]
        {
            let (mut data, mut offset) = (data, offset);
            while !data.is_empty() {
                let n = std::os::windows::fs::FileExt::seek_write(&self.0, data, offset)?;
                if n == 0 {
                    return Err(io::Error::from(io::ErrorKind::WriteZero));
                }
                data = &data[n..];
                offset += n as u64;
            }
            Ok(())
        }
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

struct StdLock(#[allow(dead_code)] File);

impl LockGuard for StdLock {}

impl Vfs for StdVfs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                out.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(out)
    }

    fn entries(&self, dir: &Path) -> io::Result<Vec<String>> {
        std::fs::read_dir(dir)?.map(|e| Ok(e?.file_name().to_string_lossy().into_owned())).collect()
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn ReadFile>> {
        Ok(Box::new(StdRead(File::open(path)?)))
    }

    fn open_append(&self, path: &Path, create_new: bool) -> io::Result<Box<dyn AppendFile>> {
        // Not O_APPEND: positioned writes must land where they are aimed. Appends go on from
        // the end as it is now.
        let mut o = OpenOptions::new();
        o.write(true);
        if create_new {
            o.create_new(true);
        }
        let mut f = o.open(path)?;
        std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0))?;
        Ok(Box::new(StdAppend(f)))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(len)?;
        f.sync_all()
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        #[cfg(unix)]
        {
            File::open(dir)?.sync_all()
        }
        #[cfg(not(unix))]
        {
            let _ = dir;
            Ok(())
        }
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        // Opened for reading: a backup needs no write permission on the store.
        File::open(path)?.sync_data()
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::remove_dir(dir)
    }

    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::canonicalize(path)
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn LockGuard>> {
        // On Unix the directory itself is locked (flock on a descriptor of it). Elsewhere a
        // directory cannot be opened as a file, and a lock file inside it stands in.
        #[cfg(unix)]
        let f = File::open(dir)?;
        #[cfg(not(unix))]
        let f = OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(LOCK_FILE))?;
        match f.try_lock() {
            Ok(()) => Ok(Box::new(StdLock(f))),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(io::Error::new(io::ErrorKind::WouldBlock, "the lock is held by another process"))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// Reads exactly `buf.len()` bytes at `offset`.
///
/// # Errors
/// I/O errors, or [`io::ErrorKind::UnexpectedEof`] if the file is shorter.
pub fn read_exact_at(f: &dyn ReadFile, buf: &mut [u8], offset: u64) -> io::Result<()> {
    if read_at_most(f, buf, offset)? < buf.len() {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file ends early"));
    }
    Ok(())
}

/// Reads up to `buf.len()` bytes at `offset`, stopping at the end of the file; returns how
/// many it read.
///
/// # Errors
/// I/O errors.
pub fn read_at_most(f: &dyn ReadFile, buf: &mut [u8], mut offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let n = f.read_at(&mut buf[done..], offset)?;
        if n == 0 {
            break;
        }
        done += n;
        offset += n as u64;
    }
    Ok(done)
}

//! A file read through a window of its bytes, moved (and grown, for a range larger than it)
//! as the reading goes on: what an open's scan of a segment and an upgrade's rewrite of one
//! hold of it, instead of the whole file (a segment is up to 4 GiB).

use std::io;

use crate::vfs::{ReadFile, read_at_most};

/// A file read through a window of at least `chunk` bytes.
pub(crate) struct FileWindow {
    file: Box<dyn ReadFile>,
    /// The file's size when it was opened: bytes past it are not read, so a reader reads what
    /// the file held when it began (a writer may be appending).
    len: u64,
    /// Bytes of the file from `start`: as many as were asked (at least `chunk`), fewer where
    /// the file ended.
    bytes: Vec<u8>,
    start: u64,
    chunk: usize,
}

impl FileWindow {
    /// A window of at least `chunk` bytes on `file`, `len` bytes long.
    pub(crate) fn new(file: Box<dyn ReadFile>, len: u64, chunk: usize) -> Self {
        FileWindow { file, len, bytes: Vec::new(), start: 0, chunk }
    }

    /// Moves the window to another file, `len` bytes long, keeping its buffer.
    pub(crate) fn switch(&mut self, file: Box<dyn ReadFile>, len: u64) {
        self.file = file;
        self.len = len;
        self.bytes.clear();
        self.start = 0;
    }

    /// The file's size when it was opened.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The file, its window let go.
    pub(crate) fn into_file(self) -> Box<dyn ReadFile> {
        self.file
    }

    /// The file's bytes from `at`, `n` of them or fewer where the file ends (or ended early:
    /// a file cut shorter since its size was read ends where the read does). Reads at least
    /// `chunk` bytes when the window does not hold them.
    pub(crate) fn get(&mut self, at: u64, n: usize) -> io::Result<&[u8]> {
        let end = at.saturating_add(n as u64).min(self.len);
        if at < self.start || end > self.start + self.bytes.len() as u64 {
            let take = (n.max(self.chunk) as u64).min(self.len.saturating_sub(at)) as usize;
            // Zeroed only where it grows: a read fills what it covers.
            self.bytes.resize(take, 0);
            let got = read_at_most(&*self.file, &mut self.bytes, at)?;
            self.bytes.truncate(got);
            self.start = at;
        }
        let from = (at - self.start) as usize;
        let to = from.saturating_add(n).min(self.bytes.len());
        Ok(&self.bytes[from.min(to)..to])
    }

    /// Whether the file holds only zeros from `at` to its end.
    pub(crate) fn zeros_from(&mut self, mut at: u64) -> io::Result<bool> {
        while at < self.len {
            let chunk = self.chunk;
            let bytes = self.get(at, chunk)?;
            if bytes.is_empty() {
                return Ok(true);
            }
            if bytes.iter().any(|&b| b != 0) {
                return Ok(false);
            }
            at += bytes.len() as u64;
        }
        Ok(true)
    }
}

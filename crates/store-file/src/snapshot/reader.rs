//! The index snapshot read in parts: the payload decoded value by value through a window of
//! the file, so an open holds one window (and the largest single value, such as the record
//! offsets) instead of the whole file, which grows with the log (about 5 bytes an event).
//!
//! Invariants: every byte from the header to the payload's end is decoded exactly once, in
//! order, and added to a CRC32C as it is; [`Reader::finish`] compares that CRC with the file's
//! last four bytes, and the caller trusts nothing it decoded until then (a damaged snapshot
//! is then ignored, as a whole read that checked the CRC first ignored it).

use serde::de::{Deserialize, DeserializeOwned, Deserializer, Visitor};

use rapport_core::derived::{self, DerivedHeader, HEADER_BYTES};

use crate::file_window::FileWindow;
use crate::vfs::ReadFile;

/// How many bytes a value is first decoded from (at most the window): a value longer than
/// that is decoded again from twice as many, and so on.
const FIRST_ASK: usize = 64 << 10;

/// A sealed snapshot file being read: see the module documentation.
pub(super) struct Reader {
    window: FileWindow,
    /// Where the next value begins.
    at: u64,
    /// Where the payload ends (the checksum's first byte).
    end: u64,
    /// The CRC32C of the bytes before `at`.
    crc: u32,
    first_ask: usize,
    /// The header, checked but for the checksum.
    pub(super) header: DerivedHeader,
}

impl Reader {
    /// Reads and checks the header of `file` (`len` bytes), through windows of `window_bytes`.
    ///
    /// # Errors
    /// The file cannot be read, or its header is not one of `kind` in `version` giving `len`.
    pub(super) fn open(
        file: Box<dyn ReadFile>,
        len: u64,
        window_bytes: usize,
        kind: [u8; 8],
        version: u32,
    ) -> Result<Self, String> {
        let mut window = FileWindow::new(file, len, window_bytes);
        let head = window.get(0, HEADER_BYTES).map_err(|e| format!("read: {e}"))?;
        let header = derived::open_header(head, kind, version, len).map_err(|e| e.to_string())?;
        let crc = crc32c::crc32c(head);
        let end = len.saturating_sub(4);
        Ok(Reader { window, at: HEADER_BYTES as u64, end, crc, first_ask: FIRST_ASK.min(window_bytes), header })
    }

    /// The last `len` bytes decoded (the end of the value [`take`](Self::take) gave last,
    /// still in the window), and the byte of the file where they begin.
    ///
    /// # Errors
    /// More bytes than the last value took, or the file cannot be read.
    pub(super) fn last(&mut self, len: usize) -> Result<(u64, &[u8]), String> {
        let from = self.at.checked_sub(len as u64).ok_or("more bytes than were decoded")?;
        let bytes = self.window.get(from, len).map_err(|e| format!("read at byte {from}: {e}"))?;
        Ok((from, bytes))
    }

    /// Decodes the next value of the payload.
    ///
    /// # Errors
    /// The file cannot be read, or the rest of the payload does not begin with a `T`.
    pub(super) fn take<T: DeserializeOwned>(&mut self) -> Result<T, String> {
        let mut ask = self.first_ask;
        loop {
            let left = self.end.saturating_sub(self.at);
            let n = (ask as u64).min(left) as usize;
            let bytes = self.window.get(self.at, n).map_err(|e| format!("read at byte {}: {e}", self.at))?;
            match postcard::take_from_bytes::<T>(bytes) {
                Ok((value, rest)) => {
                    let used = bytes.len() - rest.len();
                    self.crc = crc32c::crc32c_append(self.crc, &bytes[..used]);
                    self.at += used as u64;
                    return Ok(value);
                }
                // More of the payload may hold the rest of the value; if all of it was asked
                // for (and the file gave less, cut since its size was read), none does.
                Err(postcard::Error::DeserializeUnexpectedEnd) if (n as u64) < left => {
                    ask = ask.saturating_mul(2);
                }
                Err(e) => return Err(format!("decode at byte {}: {e}", self.at)),
            }
        }
    }

    /// Checks that the payload ended where the header said and that the checksum holds; gives
    /// the file back.
    ///
    /// # Errors
    /// Bytes left over, a checksum that does not match, or the file cannot be read.
    pub(super) fn finish(mut self) -> Result<Box<dyn ReadFile>, String> {
        if self.at != self.end {
            return Err(format!("its payload ends at byte {}, not at byte {} as its header says", self.at, self.end));
        }
        let crc = self.window.get(self.end, 4).map_err(|e| format!("read at byte {}: {e}", self.end))?;
        if crc != self.crc.to_le_bytes() {
            return Err(derived::DerivedError::Checksum.to_string());
        }
        Ok(self.window.into_file())
    }
}

/// A validation state's bytes as the payload nests them, decoded to their length only: a
/// writer takes their checksum ([`Reader::last`]) and decodes the state itself when it first
/// touches the account; a read-only open passes over them.
pub(super) struct StateSpan {
    pub(super) len: usize,
}

impl<'de> Deserialize<'de> for StateSpan {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Span;
        impl Visitor<'_> for Span {
            type Value = StateSpan;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a validation state's bytes")
            }

            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<StateSpan, E> {
                Ok(StateSpan { len: v.len() })
            }
        }
        de.deserialize_bytes(Span)
    }
}

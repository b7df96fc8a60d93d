//! The binary form's primitives, shared by the event codec ([`crate::codec`]) and the metadata
//! section ([`crate::meta`]): LEB128 integers and length-prefixed text, written and read
//! strictly (`docs/log-format.md`, "Records").

use crate::{TEXT_BYTES_MAX, Timestamp};

/// Why bytes could not be read as an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("byte {offset}: {reason}")]
pub struct DecodeError {
    /// Where the problem starts, from the start of the bytes given.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

#[inline]
pub(crate) fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
pub(crate) fn text(out: &mut Vec<u8>, s: &str) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Whether every byte is printable ASCII (0x20..0x7f). Without an early exit, so the compiler
/// checks many bytes at once: the texts it sees are short and bounded (keys, metadata), and a
/// scan checks several an event (docs/decisions.md).
#[inline]
pub(crate) fn printable_ascii(b: &[u8]) -> bool {
    b.iter().fold(true, |ok, &c| ok & (c.wrapping_sub(0x20) < 0x5f))
}

/// A read's result. The error is boxed: a reader's methods return it through many `?`s, and a
/// pointer-sized error keeps every result in registers on the path that does not fail.
pub(crate) type Read<T> = Result<T, Box<DecodeError>>;

#[cold]
pub(crate) fn fail(offset: usize, reason: impl Into<String>) -> Box<DecodeError> {
    Box::new(DecodeError { offset: offset as u64, reason: reason.into() })
}

/// An instant outside the years events may lie in.
#[cold]
fn out_of_range(offset: usize, what: &str, t: Timestamp) -> Box<DecodeError> {
    fail(offset, format!("{what}: {t:?} is outside the years 1900-2199"))
}

/// Reads what [`encode_event`](crate::codec::encode_event) wrote, strictly: every byte must be accounted for, and
/// any other shape (a long-form length, a flag other than 0 or 1, an unknown code) is an
/// error naming its offset in the content.
pub(crate) struct Reader<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) at: usize,
}

// Each step is inlined into every decoder that uses it, whatever the compiler's estimate: a
// scan reads every record through them, and kept as calls they were a visible part of its
// cost (BENCHMARKS.md, "The decoder's steps inlined").
impl<'a> Reader<'a> {
    #[inline(always)]
    pub(crate) fn bytes(&mut self, n: usize, what: &str) -> Read<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.b.len());
        let Some(end) = end else { return Err(fail(self.at, format!("{what}: the record ends early"))) };
        let out = &self.b[self.at..end];
        self.at = end;
        Ok(out)
    }

    #[inline(always)]
    pub(crate) fn byte(&mut self, what: &str) -> Read<u8> {
        Ok(self.bytes(1, what)?[0])
    }

    #[inline(always)]
    pub(crate) fn eight(&mut self, what: &str) -> Read<[u8; 8]> {
        let mut w = [0u8; 8];
        w.copy_from_slice(self.bytes(8, what)?);
        Ok(w)
    }

    /// An event's instant: within the years every build has admitted (1900–2199), so a
    /// record no build could have written is refused as it is read.
    #[inline(always)]
    pub(crate) fn time(&mut self, what: &str) -> Read<Timestamp> {
        let at = self.at;
        let t = Timestamp::from_unix_nanos(i64::from_le_bytes(self.eight(what)?));
        if t.in_range() { Ok(t) } else { Err(out_of_range(at, what, t)) }
    }

    /// An unsigned LEB128 integer in its shortest form, at most 64 bits.
    #[inline(always)]
    pub(crate) fn varint(&mut self, what: &str) -> Read<u64> {
        // Nearly every one is a single byte: a length under 128, a variant index.
        match self.b.get(self.at) {
            Some(&byte) if byte < 0x80 => {
                self.at += 1;
                Ok(u64::from(byte))
            }
            _ => self.long_varint(what),
        }
    }

    #[cold]
    fn long_varint(&mut self, what: &str) -> Read<u64> {
        let start = self.at;
        let mut v: u64 = 0;
        let mut shift = 0u32;
        loop {
            let byte = self.byte(what)?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(fail(start, format!("{what}: the integer overflows 64 bits")));
            }
            v |= bits << shift;
            if byte & 0x80 == 0 {
                if byte == 0 && shift > 0 {
                    return Err(fail(start, format!("{what}: the integer is not in its shortest form")));
                }
                return Ok(v);
            }
            shift += 7;
            if shift > 63 {
                return Err(fail(start, format!("{what}: the integer overflows 64 bits")));
            }
        }
    }

    #[inline(always)]
    pub(crate) fn flag(&mut self, what: &str) -> Read<bool> {
        let at = self.at;
        match self.byte(what)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(fail(at, format!("{what}: {other} is neither 0 nor 1"))),
        }
    }

    /// A string: no field of an event is longer than [`TEXT_BYTES_MAX`] (free text's bound, the
    /// largest; keys, metadata and profile fields have smaller ones, checked by their callers).
    #[inline(always)]
    pub(crate) fn text(&mut self, what: &str) -> Read<&'a str> {
        let len = self.varint(what)?;
        let at = self.at;
        if len > TEXT_BYTES_MAX as u64 {
            return Err(fail(at, format!("{what}: {len} bytes, more than the {TEXT_BYTES_MAX} any field holds")));
        }
        let len = len as usize;
        let bytes = self.bytes(len, what)?;
        std::str::from_utf8(bytes).map_err(|e| fail(at, format!("{what}: not UTF-8 ({e})")))
    }

    #[inline]
    pub(crate) fn maybe(&mut self, what: &str) -> Read<Option<&'a str>> {
        Ok(if self.flag(what)? { Some(self.text(what)?) } else { None })
    }

    #[inline(always)]
    pub(crate) fn code<T: Copy>(&mut self, table: &[T], what: &str) -> Read<T> {
        let at = self.at;
        let c = self.byte(what)?;
        match table.get(usize::from(c)) {
            Some(&v) => Ok(v),
            None => Err(fail(at, format!("unknown {what} code {c}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The check without an early exit answers as the byte-at-a-time one, at every
        /// length and with the outlier anywhere.
        #[test]
        fn printable_ascii_is_the_byte_loop(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![8 => 0x20u8..0x7f, 1 => proptest::sample::select(vec![0x00, 0x1f, 0x7f, 0x80, 0xc3, 0xff])],
                0..300,
            ),
        ) {
            proptest::prop_assert_eq!(printable_ascii(&bytes), bytes.iter().all(|b| (0x20..0x7f).contains(b)));
        }
    }
}

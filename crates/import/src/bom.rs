//! The byte-order mark some tools write first in a text file, skipped before either format
//! is read.

use std::io::{self, BufRead};

/// Skips a UTF-8 byte-order mark (what some tools, spreadsheets and Windows editors, write
/// first in a text file) at the start of `r`, returning the bytes skipped: no part of the
/// first line's text, in either format. Reads ahead as far as one fill of `r`'s buffer.
///
/// # Errors
/// Reading failed.
pub(crate) fn skip_bom(r: &mut impl BufRead) -> io::Result<u64> {
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    if r.fill_buf()?.starts_with(BOM) {
        r.consume(BOM.len());
        return Ok(BOM.len() as u64);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_byte_order_mark_at_the_start_is_skipped_and_nothing_else() {
        let read = |mut b: &[u8]| {
            let mut out = Vec::new();
            skip_bom(&mut b).unwrap();
            b.read_to_end(&mut out).unwrap();
            out
        };
        assert_eq!(read(b"\xEF\xBB\xBF{\"a\":1}\n"), b"{\"a\":1}\n");
        assert_eq!(read(b"{\"a\":1}\n\xEF\xBB\xBF"), b"{\"a\":1}\n\xEF\xBB\xBF", "only at the start");
        assert_eq!(read(b"\xEF\xBB"), b"\xEF\xBB", "not a whole mark");
        assert_eq!(read(b"ab"), b"ab");
        assert_eq!(read(b""), b"");
        assert_eq!(read(b"\xEF\xBB\xBF"), b"");
    }
}

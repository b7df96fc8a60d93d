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

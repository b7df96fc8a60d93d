//! Unsigned LEB128 varints, as the file store's own structures write them: stream positions'
//! gaps, a version-4 record's sealed section, the key file.

/// Appends `v` in its shortest form.
pub(crate) fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The value at the start of `b`, and how many bytes it took: `None` if it runs off the end or
/// past 64 bits.
#[inline]
pub(crate) fn get(b: &[u8]) -> Option<(u64, usize)> {
    // Most are one byte (a record's length under 128, a key number's first byte).
    if let Some(&byte) = b.first()
        && byte < 0x80
    {
        return Some((u64::from(byte), 1));
    }
    let mut value = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        let low = u64::from(byte & 0x7f);
        if i == 9 && low > 1 {
            return None;
        }
        value |= low << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_read_back_and_overlong_or_cut_forms_are_refused() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut b = Vec::new();
            super::put(&mut b, v);
            assert_eq!(super::get(&b), Some((v, b.len())));
            assert_eq!(super::get(&b[..b.len() - 1]), None);
        }
        assert_eq!(super::get(&[0xff; 10]), None);
    }
}

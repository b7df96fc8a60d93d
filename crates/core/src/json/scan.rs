//! The compact scanner: reads the one shape the canonical form writes without serde's general
//! machinery, and hands every other line to serde_json.

use std::borrow::Cow;

use super::fields::{RawLine, Tags, Text};
use crate::meta::TAGS_MAX;

/// Reads the shape the canonical form writes — one object, flat but for `tags` (an object of
/// strings), no whitespace, strings without escapes, plain numbers — without serde's general
/// machinery (docs/decisions.md, "Parsing"). Anything else returns `false` (leaving `raw`
/// partly filled) and goes to serde_json, which accepts it or says why not; so on every line
/// where this returns `true`, `raw` equals what serde_json reads (a property test and the
/// `event_line` fuzz target check it). `raw` must be empty on entry.
pub(super) fn scan_compact<'a>(line: &'a str, raw: &mut RawLine<'a>) -> bool {
    scan_compact_fields(line, raw).is_some()
}

fn scan_compact_fields<'a>(line: &'a str, raw: &mut RawLine<'a>) -> Option<()> {
    let b = line.as_bytes();
    if b.len() < 2 || b[0] != b'{' || b[b.len() - 1] != b'}' {
        return None;
    }
    if b.len() == 2 {
        return Some(());
    }
    let mut seen = 0u64;
    let mut i = 1;
    loop {
        let (key, next) = scan_plain_string(line, i)?;
        if b.get(next) != Some(&b':') {
            return None;
        }
        let bit = field_bit(key)?;
        if seen & (1 << bit) != 0 {
            return None;
        }
        seen |= 1 << bit;
        i = scan_value(line, next + 1, bit, raw)?;
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') if i + 1 == b.len() => return Some(()),
            _ => return None,
        }
    }
}

/// A field's bit in the scanner's mask of fields seen (the order of [`RawLine`]'s fields);
/// `None` for a name that is not a field.
#[inline]
pub(super) fn field_bit(key: &str) -> Option<u32> {
    match key {
        "type" => Some(0),
        "id" => Some(1),
        "account" => Some(2),
        "occurred_at" => Some(3),
        "recorded_at" => Some(4),
        "stream_version" => Some(5),
        "position" => Some(6),
        "commitment" => Some(7),
        "title" => Some(8),
        "due" => Some(9),
        "weight" => Some(10),
        "reason" => Some(11),
        "accepted" => Some(12),
        "escalation" => Some(13),
        "severity" => Some(14),
        "summary" => Some(15),
        "survey" => Some(16),
        "nps" => Some(17),
        "csat" => Some(18),
        "ces" => Some(19),
        "comment" => Some(20),
        "channel" => Some(21),
        "kind" => Some(22),
        "segment" => Some(23),
        "tier" => Some(24),
        "arr" => Some(25),
        "currency" => Some(26),
        "parent" => Some(27),
        "lifecycle" => Some(28),
        "renews_at" => Some(29),
        "owner" => Some(30),
        "sentiment" => Some(31),
        "valid_until" => Some(32),
        "actor" => Some(33),
        "source" => Some(34),
        "correlation_id" => Some(35),
        "causation_id" => Some(36),
        "tags" => Some(37),
        "schema_version" => Some(38),
        _ => None,
    }
}

/// Reads the value of the field with bit `bit`, starting at `line[i]`, into `raw`: the index
/// after the value, or `None` if it is not in the compact shape.
#[inline]
fn scan_value<'a>(line: &'a str, i: usize, bit: u32, raw: &mut RawLine<'a>) -> Option<usize> {
    let b = line.as_bytes();
    let end = || b[i..].iter().position(|&c| c == b',' || c == b'}').map(|k| i + k);
    let after = match bit {
        5 | 6 | 38 => {
            let end = end()?;
            let v = scan_integer(&b[i..end])?;
            let v = Some(u64::try_from(v).ok()?);
            match bit {
                5 => raw.stream_version = v,
                6 => raw.position = v,
                _ => raw.schema_version = v,
            }
            end
        }
        37 => {
            let (tags, next) = scan_tags(line, i)?;
            raw.tags = Some(tags);
            next
        }
        10 | 25 => {
            let end = end()?;
            let v = Some(scan_decimal(&line[i..end])?);
            if bit == 10 {
                raw.weight = v
            } else {
                raw.arr = v
            }
            end
        }
        12 => {
            let end = end()?;
            raw.accepted = Some(match &b[i..end] {
                b"true" => true,
                b"false" => false,
                _ => return None,
            });
            end
        }
        17..=19 | 31 => {
            let end = end()?;
            let v = Some(scan_integer(&b[i..end])?);
            match bit {
                17 => raw.nps = v,
                18 => raw.csat = v,
                19 => raw.ces = v,
                _ => raw.sentiment = v,
            }
            end
        }
        _ => {
            let (value, next) = scan_plain_string(line, i)?;
            let value = Some(Text(Cow::Borrowed(value)));
            match bit {
                0 => raw.ty = value,
                1 => raw.id = value,
                2 => raw.account = value,
                3 => raw.occurred_at = value,
                4 => raw.recorded_at = value,
                7 => raw.commitment = value,
                8 => raw.title = value,
                9 => raw.due = value,
                11 => raw.reason = value,
                13 => raw.escalation = value,
                14 => raw.severity = value,
                15 => raw.summary = value,
                16 => raw.survey = value,
                20 => raw.comment = value,
                21 => raw.channel = value,
                22 => raw.kind = value,
                23 => raw.segment = value,
                24 => raw.tier = value,
                26 => raw.currency = value,
                27 => raw.parent = value,
                28 => raw.lifecycle = value,
                29 => raw.renews_at = value,
                30 => raw.owner = value,
                32 => raw.valid_until = value,
                33 => raw.actor = value,
                34 => raw.source = value,
                35 => raw.correlation_id = value,
                _ => raw.causation_id = value,
            }
            next
        }
    };
    Some(after)
}

/// A `tags` object starting at `line[i]`: plain string names and values, at most
/// [`TAGS_MAX`] entries (serde_json refuses more, saying so), in the order written (a repeated
/// name is kept, as serde keeps it, for the metadata check to refuse). The index after its
/// closing brace.
fn scan_tags(line: &str, mut i: usize) -> Option<(Tags<'_>, usize)> {
    let b = line.as_bytes();
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut tags = Vec::new();
    if b.get(i) == Some(&b'}') {
        return Some((Tags(tags), i + 1));
    }
    loop {
        let (name, next) = scan_plain_string(line, i)?;
        if b.get(next) != Some(&b':') || tags.len() == TAGS_MAX {
            return None;
        }
        let (value, next) = scan_plain_string(line, next + 1)?;
        tags.push((Text(Cow::Borrowed(name)), Text(Cow::Borrowed(value))));
        match b.get(next) {
            Some(b',') => i = next + 1,
            Some(b'}') => return Some((Tags(tags), next + 1)),
            _ => return None,
        }
    }
}

/// Whether the compact scanner, where it reads `line`, reads what serde_json reads. For the
/// property tests and the fuzz target.
#[cfg(any(test, feature = "testing"))]
pub(crate) fn compact_scan_agrees(line: &str) -> bool {
    let mut fast = RawLine::default();
    !scan_compact(line, &mut fast) || serde_json::from_str::<RawLine<'_>>(line).is_ok_and(|slow| slow == fast)
}

/// A string starting at `line[at]` with no escapes or control characters: its contents and
/// the index after its closing quote.
#[inline]
pub(super) fn scan_plain_string(line: &str, at: usize) -> Option<(&str, usize)> {
    let b = line.as_bytes();
    if b.get(at) != Some(&b'"') {
        return None;
    }
    let len = string_stop(&b[at + 1..])?;
    let end = at + 1 + len;
    // `end` is at an ASCII byte, so both ends are character boundaries.
    (b[end] == b'"').then(|| (&line[at + 1..end], end + 1))
}

/// The index of the first byte of `b` that ends a plain JSON string: a quote, a backslash or
/// a control character (below 0x20).
///
/// Eight bytes at a time: in a little-endian word, `(x - 0x01…01·n) & !x & 0x80…80` flags the
/// bytes below `n` (borrows can only flag bytes above a true hit, so the lowest flag is
/// exact), and a byte equal to `c` is a byte of `x ^ 0x01…01·c` below 1 (why a word at a time:
/// docs/decisions.md).
#[inline]
pub(super) fn string_stop(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGHS;
    let mut words = b.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let x = u64::from_le_bytes(w);
        let hits = below(x, 0x20) | below(x ^ (ONES * u64::from(b'"')), 1) | below(x ^ (ONES * u64::from(b'\\')), 1);
        if hits != 0 {
            return Some(at + hits.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    words.remainder().iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20).map(|i| at + i)
}

/// A JSON integer of at most 18 digits, without a leading zero (JSON forbids it).
pub(super) fn scan_integer(b: &[u8]) -> Option<i64> {
    let (negative, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    // serde_json reads `-0` as a float, so it is left to serde_json.
    if digits.is_empty() || digits.len() > 18 || (digits[0] == b'0' && (digits.len() > 1 || negative)) {
        return None;
    }
    let v = digits.iter().try_fold(0i64, |n, &c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')))?;
    Some(if negative { -v } else { v })
}

/// A JSON number with an optional fraction and no exponent (`1`, `-2.5`), as the nearest
/// `f64`: what serde_json gives with `float_roundtrip`.
pub(super) fn scan_decimal(s: &str) -> Option<f64> {
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (s, None),
    };
    scan_integer(whole.as_bytes())?;
    if let Some(f) = frac
        && (f.is_empty() || !f.bytes().all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    s.parse().ok()
}

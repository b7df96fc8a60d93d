//! [`one_line`]: outside text made safe to echo in an error or a log line ([`first_chars`]: the
//! start of a long one).
//!
//! Error messages quote what they refuse (a field name, a value, a file name). Quoted verbatim,
//! a newline or an ANSI escape sequence in that text could start a new line that forges a
//! success message, or recolour and hide what follows. Every message that echoes outside text
//! passes it through [`one_line`] (or through `{:?}`, which escapes the same characters).

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` must not appear verbatim in a one-line message: control characters (C0, DEL,
/// C1: newlines, escapes, backspaces), the line and paragraph separators, and the
/// bidirectional controls that can make a terminal show text in another order than it holds.
pub fn is_unsafe_in_line(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// At most the first `n` characters of `s` (a long value shown in a refusal), borrowed.
///
/// ```
/// use rapport_core::escape::first_chars;
/// assert_eq!(first_chars("héllo", 2), "hé");
/// assert_eq!(first_chars("hi", 5), "hi");
/// ```
pub fn first_chars(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(at, _)| &s[..at])
}

/// `s` with every character [`is_unsafe_in_line`] written as a `\u{…}` escape, so the result
/// is one line that shows what `s` holds. Borrows when nothing needs escaping.
///
/// ```
/// use rapport_core::escape::one_line;
/// assert_eq!(one_line("plain text"), "plain text");
/// assert_eq!(one_line("a\nrapport: ok\u{1b}[31m"), "a\\u{a}rapport: ok\\u{1b}[31m");
/// ```
pub fn one_line(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe_in_line) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if is_unsafe_in_line(c) {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_unsafe_character_and_nothing_else() {
        for c in ['\n', '\r', '\u{1b}', '\u{7f}', '\u{85}', '\u{2028}', '\u{202e}', '\u{2066}', '\0', '\u{8}'] {
            let s = format!("a{c}b");
            let escaped = one_line(&s);
            assert!(!escaped.chars().any(is_unsafe_in_line), "{s:?} -> {escaped:?}");
            assert!(escaped.starts_with('a') && escaped.ends_with('b'));
        }
        assert!(matches!(one_line("héllo, wörld ✓"), Cow::Borrowed(_)));
    }

    #[test]
    fn rust_debug_formatting_escapes_the_same_characters() {
        // Messages quote values with `{:?}` too; that is only safe if Debug escapes all of them.
        for c in (0..=0x3000u32).filter_map(char::from_u32).filter(|&c| is_unsafe_in_line(c)) {
            let debug = format!("{:?}", c.to_string());
            assert!(!debug.chars().any(is_unsafe_in_line), "{:?} is printed raw by Debug", c);
        }
    }
}

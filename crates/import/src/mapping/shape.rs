//! How deep a program may nest before jaq sees it.
//!
//! jaq parses, compiles and runs a program by recursion, one level per bracket and per
//! operator of a chain (`a | b | c` nests as `a | (b | c)`): a program nested deep enough
//! overflows the thread's stack, which aborts the process (an importing thread has 2 MiB). So a
//! program is measured here first, without recursion, and refused past [`DEPTH_MAX`] brackets
//! or [`OPERATORS_MAX`] operators, both far beyond what a mapping needs and well within what
//! jaq runs on such a thread.

/// Brackets (`(`, `[`, `{`, and `\(` in a string) nested at most this deep.
pub(super) const DEPTH_MAX: usize = 64;

/// Operator characters (`|`, `,`, `+`, `*`, `/`, `%`, `<`, `>`, `=`, `!` once, `-` twice, each
/// character counted) and keywords (`as`, `and`, `or` once; `if`, `def`, `try`, `reduce`, `foreach`,
/// `label` twice) at most this many in a program. The commas between an object's entries
/// are not counted (jaq keeps those entries in a list, not nested).
pub(super) const OPERATORS_MAX: usize = 1_000;

/// What the scanner is inside of.
#[derive(Clone, Copy, PartialEq, Eq)]
enum In {
    /// A bracket of code: `(`, `[`, `{`, or an interpolation's `(`.
    Bracket(u8),
    Interpolation,
    Str,
}

/// The first place (byte offset) where `code` nests too deep or has too many operators, with
/// why; `None` when it is within both limits.
pub(super) fn too_deep(code: &str) -> Option<(usize, String)> {
    let b = code.as_bytes();
    let mut stack: Vec<In> = Vec::new();
    // Brackets and interpolations open on the stack (strings are not counted).
    let mut depth = 0usize;
    let mut operators = 0usize;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if stack.last() == Some(&In::Str) {
            match c {
                b'\\' if b.get(i + 1) == Some(&b'(') => {
                    stack.push(In::Interpolation);
                    depth += 1;
                    i += 1;
                }
                b'\\' => i += 1,
                b'"' => {
                    stack.pop();
                }
                _ => {}
            }
        } else {
            match c {
                b'#' => {
                    while i < b.len() && b[i] != b'\n' {
                        i += 1;
                    }
                }
                b'"' => stack.push(In::Str),
                b'(' | b'[' | b'{' => {
                    stack.push(In::Bracket(c));
                    depth += 1;
                }
                // An unbalanced closer is jaq's to report.
                b')' | b']' | b'}' if stack.pop().is_some() => depth -= 1,
                b',' if stack.last() == Some(&In::Bracket(b'{')) => {}
                b'|' | b',' | b'+' | b'*' | b'/' | b'%' | b'<' | b'>' | b'=' | b'!' => operators += 1,
                // Also a negation, which jaq's recursion takes about twice the stack for.
                b'-' => operators += 2,
                c if c.is_ascii_alphabetic() || c == b'_' => {
                    let start = i;
                    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                        i += 1;
                    }
                    let word = &code[start..i];
                    // A key (`{if: 1}`) or a field (`.and`) counts too: simpler, and harmless.
                    operators += match word {
                        "as" | "and" | "or" => 1,
                        // Each nests a term of its own: jaq's recursion takes about twice a
                        // chained operator's stack.
                        "if" | "def" | "try" | "reduce" | "foreach" | "label" => 2,
                        _ => 0,
                    };
                    continue;
                }
                _ => {}
            }
        }
        if depth > DEPTH_MAX {
            return Some((i, format!("brackets nested more than {DEPTH_MAX} deep")));
        }
        if operators > OPERATORS_MAX {
            return Some((i, format!("more than {OPERATORS_MAX} operators")));
        }
        i += 1;
    }
    None
}

/// A JSON record nested at most this deep (arrays and objects): jaq's reader recurses once a
/// level, so a deeper record is refused before it reaches jaq. (The compiled path reads a
/// level less, serde_json's limit; a record at this depth runs in jaq.)
pub(super) const RECORD_DEPTH_MAX: usize = 128;

/// Whether the JSON text `b` nests arrays and objects deeper than [`RECORD_DEPTH_MAX`]
/// (strings skipped; the text need not be valid JSON).
pub(super) fn record_too_deep(b: &[u8]) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &c in b {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > RECORD_DEPTH_MAX {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_and_operators_are_measured_outside_strings_and_comments() {
        assert_eq!(too_deep(".a | .b"), None);
        let deep = format!("{}.a{}", "(".repeat(65), ")".repeat(65));
        assert_eq!(too_deep(&deep).map(|(at, _)| at), Some(64));
        let fine = format!("{}.a{}", "(".repeat(64), ")".repeat(64));
        assert_eq!(too_deep(&fine), None);
        // Brackets in a string or a comment are text; an interpolation nests.
        let text = format!("\"{}\" # {}", "(".repeat(100), "[".repeat(100));
        assert_eq!(too_deep(&text), None);
        let interpolated = format!("{}\"\\(.a){}", "[".repeat(63), "]".repeat(63));
        assert_eq!(too_deep(&interpolated), None);
        let interpolated = format!("{}\"\\(\"\\(.a)\")\"{}", "[".repeat(63), "]".repeat(63));
        assert!(too_deep(&interpolated).is_some_and(|(_, why)| why.contains("nested")));
        let chain = vec!["."; 1_002].join(" | ");
        assert!(too_deep(&chain).is_some_and(|(_, why)| why == "more than 1000 operators"));
        let chain = vec!["."; 1_001].join(" | ");
        assert_eq!(too_deep(&chain), None);
        // An object's entries are a list, however many.
        let entries: Vec<String> = (0..2_000).map(|i| format!("k{i}: {i}")).collect();
        assert_eq!(too_deep(&format!("{{{}}}", entries.join(", "))), None);
        let ifs = format!("{}1{}", "if .a then ".repeat(501), " end".repeat(501));
        assert!(too_deep(&ifs).is_some());
        let ifs = format!("{}1{}", "if .a then ".repeat(500), " end".repeat(500));
        assert_eq!(too_deep(&ifs), None);
    }

    #[test]
    fn a_record_is_measured_outside_its_strings() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(!record_too_deep(deep(128).as_bytes()));
        assert!(record_too_deep(deep(129).as_bytes()));
        assert!(!record_too_deep(format!(r#"{{"a":"{}\"{}"}}"#, "[".repeat(200), "{".repeat(200)).as_bytes()));
    }
}

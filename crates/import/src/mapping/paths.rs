//! The compiled path held against jaq, for the crate's tests and the `mapped_records` fuzz
//! target (feature `testing`): on any record, [`Compiled::run`] gives exactly the events jaq
//! alone gives, and wherever the compiled path answers, its values are jaq's.

use rapport_core::upcast::Upcasters;
use rapport_core::{Interner, NewEvent};

use super::value::V;
use super::{Compiled, Mapping, MappingError, Record, eval};

/// One mapping program compiled for checking its two paths against each other.
///
/// ```
/// use rapport_import::testing::PathCheck;
///
/// let check = PathCheck::new(r#"{type: "touchpoint", account: .a, occurred_at: (.t | todate), channel: "call"}"#)?;
/// assert!(check.runs_compiled());
/// // Answered by the compiled path, as jaq answers it.
/// assert_eq!(check.json(r#"{"a": "acme", "t": 1704293580}"#), Ok(true));
/// // Not JSON: jaq alone refuses it, as the importer does.
/// assert_eq!(check.json("{"), Ok(false));
/// # Ok::<(), rapport_import::MappingError>(())
/// ```
pub struct PathCheck {
    c: Compiled,
}

impl std::fmt::Debug for PathCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PathCheck").field("mapping", &self.c.name).finish_non_exhaustive()
    }
}

impl PathCheck {
    /// `program` compiled as a mapping (named `check.jq`).
    ///
    /// # Errors
    /// [`MappingError`] when the program does not compile.
    pub fn new(program: &str) -> Result<Self, MappingError> {
        Ok(Self { c: Mapping::new("check.jq", program)?.compile()? })
    }

    /// Whether the program compiles to the compiled path at all.
    pub fn runs_compiled(&self) -> bool {
        self.c.fast.is_some()
    }

    /// Checks the JSON record `text`: `Ok(true)` when the compiled path answered it and
    /// agreed with jaq, `Ok(false)` when jaq alone ran it, `Err` describing a disagreement.
    ///
    /// # Errors
    /// The two paths' answers, when they differ.
    pub fn json(&self, text: &str) -> Result<bool, String> {
        if let Some(ours) = compiled_values(&self.c, text) {
            let theirs = jaq_values(&self.c, text);
            if !theirs.as_ref().is_some_and(|t| same_values(&ours, t)) {
                return Err(format!("on {text:?}: compiled values {ours:?}, jaq's {theirs:?}"));
            }
        }
        self.record(Record::Json(text))
    }

    /// Checks a CSV row with its header, as [`json`](Self::json) checks a JSON record.
    ///
    /// # Errors
    /// The two paths' events, when they differ.
    pub fn csv(&self, header: &[String], row: &[String]) -> Result<bool, String> {
        self.record(Record::Csv(header, row))
    }

    /// The events (or refusals) of `run` against jaq's alone.
    fn record(&self, record: Record<'_>) -> Result<bool, String> {
        let (ours, fast) = events(&self.c, record);
        let theirs = jaq_events(&self.c, record);
        if ours == theirs { Ok(fast) } else { Err(format!("on {record:?}: events {ours:?}, jaq's {theirs:?}")) }
    }
}

/// Programs over every construct the compiled path runs (the property tests and the fuzz
/// target run each of them).
pub const PROGRAMS: &[&str] = &[
    ".",
    ".a",
    ".a.b?",
    ".[\"a\"]",
    ".list[]",
    ".list[]?",
    ".list[1]",
    ".list[-1]",
    ".s[0:3]",
    ".s[2:]",
    ".list[:2]",
    ".[]",
    ".a // .b // \"z\"",
    ".a // empty",
    "[.list[]? | . + 1]",
    "1 as $x | {a, $x, \"c\": 2}",
    "{a: .n, b: .s}",
    "{(.s): .n}",
    "{a} + {b: 2} + {a: 3}",
    "{\"x\": 1, y: \"z\", \"x\": 2}",
    "{\"x\": [2, null], y: {z: 1}}",
    "{\"abcxyz\": \"hit\", \"12\": \"twelve\"}[.s] // \"none\"",
    "{} + {a: .n}",
    "\"k-\\(.id)-\\(.n)\"",
    "\"\\u00e9\\t\\(.s)\"",
    ".n + 1",
    ".n - .m",
    ".n * 3",
    ".n % 7",
    ".n / 1000",
    "-.n",
    ".s + .t",
    ".list + .list",
    ".a == .b",
    ".a != .b",
    ".n < .m",
    ".s >= .t",
    ".a and .b",
    ".a or .b",
    "(.a, .b) | not",
    "if .a then .n elif .b then .m else \"none\" end",
    "if .a then 1 end",
    "select(.n > 2)",
    ".n as $x | .m as $y | [$x, $y]",
    "def f($x; $y): [$x, $y, .n]; f(.a; .b)",
    "def g: .n; def f($x): g + $x; f(1)",
    ".list | map(. * 2)",
    ".list | length",
    ".s | length",
    ".a | length",
    ".n | tostring",
    ".s | tonumber",
    ".s | ascii_downcase",
    ".s | ascii_upcase",
    ".s | startswith(\"a\")",
    ".s | endswith(\"z\")",
    ".s | ltrimstr(\"ab\")",
    ".s | rtrimstr(\"yz\")",
    ".n | todate",
    ".n / 1000 | todate",
    ".t | fromdate",
    ".t | strptime(\"%Y-%m-%d %H:%M:%S\") | mktime",
    ".t | strptime(\"%d/%m/%Y %H:%M\") | mktime | todate",
    ".t | from_local(\"+01:00\")",
    ".n | from_epoch_s",
    ".n | from_epoch_ms",
    "null, true, false, 1.5, 2, \"x\"",
    "[.a, .b] | .[0]",
    "error(\"no\")",
    "try .n",
    ".n?",
];

/// The compiled path's outputs as JSON texts, or `None` where it sends the record to jaq.
pub(super) fn compiled_values(c: &Compiled, text: &str) -> Option<Vec<String>> {
    let input = V::from_json(text).ok()?;
    let mut outputs = Vec::new();
    c.fast
        .as_ref()?
        .run(&mut eval::Run::default(), input, &mut |_, v| {
            outputs.push(v);
            Ok(())
        })
        .ok()?;
    outputs
        .iter()
        .map(|v| {
            let mut s = String::new();
            v.write_json(&mut s).ok().map(|()| s)
        })
        .collect()
}

/// jaq's outputs as JSON texts (the first thousand), or `None` when it stops with an error
/// or the record is not one a mapping reads.
pub(super) fn jaq_values(c: &Compiled, text: &str) -> Option<Vec<String>> {
    use jaq_core::{Ctx, Vars, data};
    let record = super::jaq_record(Record::Json(text)).ok()?;
    let ctx = Ctx::<data::JustLut<jaq_json::Val>>::new(&c.filter.lut, Vars::new([]));
    c.filter.id.run((ctx, record)).take(1000).map(|r| r.ok().map(|v| v.to_string())).collect()
}

/// Both as JSON values (numbers compared as values, not as written).
pub(super) fn same_values(ours: &[String], theirs: &[String]) -> bool {
    let parse = |s: &String| serde_json::from_str::<serde_json::Value>(s).ok();
    ours.len() == theirs.len() && ours.iter().zip(theirs).all(|(a, b)| parse(a).is_some() && parse(a) == parse(b))
}

/// Every event (or refusal) `Compiled::run` gives, and whether the compiled path answered.
pub(super) fn events(c: &Compiled, record: Record<'_>) -> (Vec<Result<NewEvent, String>>, bool) {
    let mut interner = Interner::default();
    let upcasters = Upcasters::builtin();
    let fast = c.fast.as_ref().and_then(|n| c.run_compiled(n, record, &mut interner, upcasters)).is_some();
    let mut out = Vec::new();
    c.run(record, &mut interner, upcasters, &mut |r| out.push(r));
    (out, fast)
}

/// What jaq alone gives for the record.
pub(super) fn jaq_events(c: &Compiled, record: Record<'_>) -> Vec<Result<NewEvent, String>> {
    let value = match super::jaq_record(record) {
        Ok(v) => v,
        Err(e) => return vec![Err(e)],
    };
    let mut out = Vec::new();
    c.run_jaq(value, &mut Interner::default(), Upcasters::builtin(), &mut |r| out.push(r));
    out
}

//! The values the compiled mapping path works on: JSON borrowed from the record where it can
//! be, read by serde_json and written back as a canonical line.
//!
//! Numbers follow jaq's where the compiled path computes with them: integers are `Int`,
//! decimals and a division's result `Float`. Anything whose jaq form this module does not
//! reproduce exactly (an integer beyond `i64`, a negative zero, an object holding a key twice
//! where the order of its keys matters) makes the record go to jaq ([`Bail`]).

use std::fmt::{self, Write as _};
use std::rc::Rc;

use rapport_core::backend::write_json_string;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// The compiled path cannot give jaq's answer for this record with certainty: jaq runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Bail;

/// A string: borrowed from the record, or made by the program.
#[derive(Debug, Clone)]
pub(super) enum Str<'a> {
    In(&'a str),
    Own(Rc<str>),
}

impl Str<'_> {
    pub(super) fn as_str(&self) -> &str {
        match self {
            Str::In(s) => s,
            Str::Own(s) => s,
        }
    }
}

impl PartialEq for Str<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

/// An object's entries in jaq's order (first insertion), and whether a key may be there twice
/// (only a record read from JSON can have that; jaq keeps the last value at the first place).
#[derive(Debug, Clone, Default)]
pub(super) struct Obj<'a> {
    pub(super) entries: Vec<(Str<'a>, V<'a>)>,
    pub(super) dups: bool,
}

impl<'a> Obj<'a> {
    /// The value at `key`: the last one, as jaq keeps it.
    pub(super) fn get(&self, key: &str) -> Option<&V<'a>> {
        self.entries.iter().rev().find(|(k, _)| k.as_str() == key).map(|(_, v)| v)
    }

    /// Sets `key` as jaq does: a key already there keeps its place.
    pub(super) fn insert(&mut self, key: Str<'a>, value: V<'a>) {
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.entries.push((key, value)),
        }
    }

    /// The entries, when no key is there twice.
    pub(super) fn unique(&self) -> Result<&[(Str<'a>, V<'a>)], Bail> {
        if self.dups { Err(Bail) } else { Ok(&self.entries) }
    }
}

/// A JSON value as the compiled path sees it.
#[derive(Debug, Clone)]
pub(super) enum V<'a> {
    Null,
    Bool(bool),
    Int(i64),
    /// A decimal from the record or the program, or a division's result.
    Float(f64),
    Str(Str<'a>),
    Arr(Rc<Vec<V<'a>>>),
    Obj(Rc<Obj<'a>>),
}

impl<'a> V<'a> {
    /// jq's truth: everything but `null` and `false`.
    pub(super) fn truthy(&self) -> bool {
        !matches!(self, V::Null | V::Bool(false))
    }

    pub(super) fn str(&self) -> Result<&str, Bail> {
        match self {
            V::Str(s) => Ok(s.as_str()),
            _ => Err(Bail),
        }
    }

    pub(super) fn own(s: String) -> Self {
        V::Str(Str::Own(s.into()))
    }

    /// The record read from its JSON text.
    pub(super) fn from_json(text: &'a str) -> Result<Self, Bail> {
        let mut de = serde_json::Deserializer::from_str(text);
        let v = V::deserialize(&mut de).map_err(|_| Bail)?;
        de.end().map_err(|_| Bail)?;
        Ok(v)
    }

    /// A CSV row as an object keyed by its header: every cell a string, an empty cell null
    /// (as the jaq path builds it).
    pub(super) fn from_csv(header: &'a [String], row: &'a [String]) -> Self {
        let mut obj = Obj::default();
        for (name, cell) in header.iter().zip(row) {
            let v = if cell.is_empty() { V::Null } else { V::Str(Str::In(cell)) };
            obj.insert(Str::In(name), v);
        }
        V::Obj(Rc::new(obj))
    }

    /// Writes the value as JSON; `Err` for what this module would not write as jaq does.
    pub(super) fn write_json(&self, out: &mut String) -> Result<(), Bail> {
        match self {
            V::Null => out.push_str("null"),
            V::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            V::Int(i) => {
                let _ = write!(out, "{i}");
            }
            // Debug keeps a fraction or an exponent, so the number never reads as an integer
            // where jaq's text would not.
            V::Float(f) if f.is_finite() => {
                let _ = write!(out, "{f:?}");
            }
            V::Float(_) => return Err(Bail),
            V::Str(s) => write_json_string(s.as_str(), out),
            V::Arr(a) => {
                out.push('[');
                for (k, v) in a.iter().enumerate() {
                    if k > 0 {
                        out.push(',');
                    }
                    v.write_json(out)?;
                }
                out.push(']');
            }
            V::Obj(o) => {
                out.push('{');
                for (k, (key, v)) in o.unique()?.iter().enumerate() {
                    if k > 0 {
                        out.push(',');
                    }
                    write_json_string(key.as_str(), out);
                    out.push(':');
                    v.write_json(out)?;
                }
                out.push('}');
            }
        }
        Ok(())
    }
}

/// Why serde stopped: only that the record is not for the compiled path.
#[derive(Debug)]
struct NotHere;

impl fmt::Display for NotHere {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not for the compiled path")
    }
}

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct S;
        impl<'de> Visitor<'de> for S {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Str<'de>, E> {
                Ok(Str::In(s))
            }
            fn visit_str<E>(self, s: &str) -> Result<Str<'de>, E> {
                Ok(Str::Own(s.into()))
            }
        }
        d.deserialize_str(S)
    }
}

impl<'de> Deserialize<'de> for V<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = V<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<V<'de>, E> {
        Ok(V::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<V<'de>, E> {
        Ok(V::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<V<'de>, E> {
        Ok(V::Int(i))
    }
    fn visit_u64<E: de::Error>(self, u: u64) -> Result<V<'de>, E> {
        // jaq reads a larger integer as a big one, which this path does not do.
        i64::try_from(u).map(V::Int).map_err(|_| E::custom(NotHere))
    }
    fn visit_f64<E: de::Error>(self, f: f64) -> Result<V<'de>, E> {
        // jaq keeps a decimal's text and writes it back as read (`1e2`); written again from its
        // value (`100.0`) it reads back as the same number, except a negative zero, which jaq
        // may have read as the integer 0.
        if f.is_finite() && !(f == 0.0 && f.is_sign_negative()) { Ok(V::Float(f)) } else { Err(E::custom(NotHere)) }
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<V<'de>, E> {
        Ok(V::Str(Str::In(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<V<'de>, E> {
        Ok(V::Str(Str::Own(s.into())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<V<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(V::Arr(Rc::new(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<V<'de>, A::Error> {
        // serde_json gives no size hint: room for a typical export's objects at once.
        let mut obj = Obj { entries: Vec::with_capacity(map.size_hint().unwrap_or(8).min(64)), dups: false };
        while let Some(key) = map.next_key::<Str<'de>>()? {
            let value = map.next_value()?;
            obj.entries.push((key, value));
        }
        obj.dups = has_dups(&obj.entries);
        Ok(V::Obj(Rc::new(obj)))
    }
}

/// Whether a key is there twice.
fn has_dups(entries: &[(Str<'_>, V<'_>)]) -> bool {
    if entries.len() <= 16 {
        entries.iter().enumerate().any(|(i, (k, _))| entries[..i].iter().any(|(j, _)| j == k))
    } else {
        let mut seen = std::collections::HashSet::with_capacity(entries.len());
        !entries.iter().all(|(k, _)| seen.insert(k.as_str()))
    }
}

/// Text for a string interpolation (`"\(.)"`, `tostring`): a string as it is, a scalar as JSON.
pub(super) fn interpolate(v: &V<'_>, out: &mut String) -> Result<(), Bail> {
    match v {
        V::Str(s) => out.push_str(s.as_str()),
        V::Null | V::Bool(_) | V::Int(_) => v.write_json(out)?,
        // jaq writes floats with its own digits: not reproduced here.
        _ => return Err(Bail),
    }
    Ok(())
}

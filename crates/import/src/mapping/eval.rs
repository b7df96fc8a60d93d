//! The compiled mapping path, part 2: running a [`Node`] on a record, each step as jaq does
//! it. Where this code is not sure to give jaq's answer (an error, a number form it does not
//! reproduce, a term that gives several values where the order of their combinations would
//! matter) it stops with [`Bail`] and the record runs in jaq instead, so an error message is
//! always jaq's own.

use std::cmp::Ordering;
use std::rc::Rc;

use jaq_core::ops::{Cmp, Math};

use super::compile::{Builtin, Node, Piece, Step};
use super::value::{Bail, Obj, Str, V, interpolate};

/// The most steps one record may take before it runs in jaq instead.
const STEPS_MAX: usize = 100_000;

type R = Result<(), Bail>;

/// Where an output goes.
type Out<'o, 'a> = &'o mut dyn FnMut(&mut Run<'a>, V<'a>) -> R;

/// The state of one record's run: the bound variables (a stack; each node finds its own below
/// the depth it was compiled at) and the steps taken.
#[derive(Debug, Default)]
pub(super) struct Run<'a> {
    vars: Vec<V<'a>>,
    steps: usize,
}

impl Node {
    /// Runs the node on `input`, each output to `out`.
    pub(super) fn run<'a>(&self, rt: &mut Run<'a>, input: V<'a>, out: Out<'_, 'a>) -> R {
        rt.steps += 1;
        if rt.steps > STEPS_MAX {
            return Err(Bail);
        }
        match self {
            Node::Id => out(rt, input),
            Node::Const(v) => out(rt, v.clone()),
            Node::Interp(pieces) => {
                let mut s = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => s.push_str(t),
                        Piece::Term(n) => interpolate(&n.one(rt, input.clone())?, &mut s)?,
                    }
                }
                out(rt, V::own(s))
            }
            Node::Arr(None) => out(rt, V::Arr(Rc::default())),
            Node::Arr(Some(n)) => {
                let mut items = Vec::new();
                n.run(rt, input, &mut |_, v| {
                    items.push(v);
                    Ok(())
                })?;
                out(rt, V::Arr(Rc::new(items)))
            }
            Node::Obj(entries) => {
                let mut obj = Obj { entries: Vec::with_capacity(entries.len()), dups: false };
                for (k, v) in entries {
                    let V::Str(key) = k.one(rt, input.clone())? else { return Err(Bail) };
                    obj.insert(key, v.one(rt, input.clone())?);
                }
                out(rt, V::Obj(Rc::new(obj)))
            }
            Node::Neg(n) => n.run(rt, input, &mut |rt, v| match v {
                V::Int(i) => out(rt, V::Int(i.checked_neg().ok_or(Bail)?)),
                _ => Err(Bail),
            }),
            Node::Pipe(l, r) => l.run(rt, input, &mut |rt, v| r.run(rt, v, out)),
            Node::Bind(l, slot, r) => l.run(rt, input.clone(), &mut |rt, v| {
                // Whatever `l` bound for itself sits above `slot` while its output is used.
                debug_assert!(*slot <= rt.vars.len(), "a node's variables are bound below its depth");
                if *slot > rt.vars.len() {
                    return Err(Bail);
                }
                let above = rt.vars.split_off(*slot);
                rt.vars.push(v);
                let done = r.run(rt, input.clone(), out);
                rt.vars.pop();
                rt.vars.extend(above);
                done
            }),
            Node::Comma(l, r) => {
                l.run(rt, input.clone(), out)?;
                r.run(rt, input, out)
            }
            Node::Alt(l, r) => {
                let mut any = false;
                l.run(rt, input.clone(), &mut |rt, v| {
                    if v.truthy() {
                        any = true;
                        out(rt, v)
                    } else {
                        Ok(())
                    }
                })?;
                if any { Ok(()) } else { r.run(rt, input, out) }
            }
            Node::And(l, r) => l.run(rt, input.clone(), &mut |rt, a| {
                if a.truthy() {
                    r.run(rt, input.clone(), &mut |rt, b| out(rt, V::Bool(b.truthy())))
                } else {
                    out(rt, V::Bool(false))
                }
            }),
            Node::Or(l, r) => l.run(rt, input.clone(), &mut |rt, a| {
                if a.truthy() {
                    out(rt, V::Bool(true))
                } else {
                    r.run(rt, input.clone(), &mut |rt, b| out(rt, V::Bool(b.truthy())))
                }
            }),
            Node::Math(l, op, r) => {
                let (a, b) = (l.one(rt, input.clone())?, r.one(rt, input)?);
                out(rt, math(a, *op, b)?)
            }
            Node::Cmp(l, op, r) => {
                let (a, b) = (l.one(rt, input.clone())?, r.one(rt, input)?);
                let ord = compare(&a, &b)?;
                let yes = match op {
                    Cmp::Lt => ord == Ordering::Less,
                    Cmp::Le => ord != Ordering::Greater,
                    Cmp::Gt => ord == Ordering::Greater,
                    Cmp::Ge => ord != Ordering::Less,
                    Cmp::Eq => ord == Ordering::Equal,
                    Cmp::Ne => ord != Ordering::Equal,
                };
                out(rt, V::Bool(yes))
            }
            Node::If(cond, then, otherwise) => cond.run(rt, input.clone(), &mut |rt, c| {
                if c.truthy() { then.run(rt, input.clone(), out) } else { otherwise.run(rt, input.clone(), out) }
            }),
            Node::Var(slot) => {
                let v = rt.vars.get(*slot).cloned().ok_or(Bail)?;
                out(rt, v)
            }
            Node::Path(base, steps) => base.run(rt, input.clone(), &mut |rt, v| follow(steps, v, rt, &input, out)),
            Node::Call(b, args) => call(*b, args, rt, input, out),
        }
    }

    /// The node's one output; several, or none, send the record to jaq.
    pub(super) fn one<'a>(&self, rt: &mut Run<'a>, input: V<'a>) -> Result<V<'a>, Bail> {
        let mut got = None;
        self.run(rt, input, &mut |_, v| match got.replace(v) {
            None => Ok(()),
            Some(_) => Err(Bail),
        })?;
        got.ok_or(Bail)
    }
}

/// The path's `steps` from `v`; index terms run on the path's own input.
fn follow<'a>(steps: &[(Step, bool)], v: V<'a>, rt: &mut Run<'a>, input: &V<'a>, out: Out<'_, 'a>) -> R {
    let Some(((step, optional), rest)) = steps.split_first() else { return out(rt, v) };
    // A step that does not apply: nothing for an optional one, an error (jaq's) otherwise.
    let skip = if *optional { Ok(()) } else { Err(Bail) };
    match step {
        Step::Field(name) => match &v {
            V::Obj(o) => {
                let got = o.get(name).cloned().unwrap_or(V::Null);
                follow(rest, got, rt, input, out)
            }
            V::Null => follow(rest, V::Null, rt, input, out),
            _ => skip,
        },
        Step::Index(n) => {
            let at = n.one(rt, input.clone())?;
            let got = match (&v, &at) {
                (V::Null, _) => V::Null,
                (V::Obj(o), V::Str(k)) => o.get(k.as_str()).cloned().unwrap_or(V::Null),
                (V::Arr(a), V::Int(i)) => {
                    let len = i64::try_from(a.len()).map_err(|_| Bail)?;
                    let i = if *i < 0 { i + len } else { *i };
                    usize::try_from(i).ok().and_then(|i| a.get(i)).cloned().unwrap_or(V::Null)
                }
                _ => return skip,
            };
            follow(rest, got, rt, input, out)
        }
        Step::Iter => match &v {
            V::Arr(a) => a.iter().try_for_each(|x| follow(rest, x.clone(), rt, input, out)),
            V::Obj(o) => o.unique()?.iter().try_for_each(|(_, x)| follow(rest, x.clone(), rt, input, out)),
            _ => skip,
        },
        Step::Slice(from, to) => {
            let bound = |n: &Option<Node>, rt: &mut Run<'a>| -> Result<Option<i64>, Bail> {
                match n {
                    None => Ok(None),
                    Some(n) => match n.one(rt, input.clone())? {
                        V::Int(i) if i >= 0 => Ok(Some(i)),
                        _ => Err(Bail),
                    },
                }
            };
            let (from, to) = (bound(from, rt)?, bound(to, rt)?);
            // Only slices inside the value, of an ASCII string (where jaq's characters are
            // bytes) or an array.
            let range = |len: usize| -> Result<std::ops::Range<usize>, Bail> {
                let from = usize::try_from(from.unwrap_or(0)).map_err(|_| Bail)?;
                let to = match to {
                    Some(t) => usize::try_from(t).map_err(|_| Bail)?,
                    None => len,
                };
                if from <= to && to <= len { Ok(from..to) } else { Err(Bail) }
            };
            let got = match &v {
                V::Str(s) if s.as_str().is_ascii() => {
                    let r = range(s.as_str().len())?;
                    match s {
                        Str::In(s) => V::Str(Str::In(&s[r])),
                        Str::Own(s) => V::own(s[r].to_owned()),
                    }
                }
                V::Arr(a) => V::Arr(Rc::new(a[range(a.len())?].to_vec())),
                _ => return Err(Bail),
            };
            follow(rest, got, rt, input, out)
        }
    }
}

/// jaq's arithmetic on the values the compiled path computes with.
fn math<'a>(a: V<'a>, op: Math, b: V<'a>) -> Result<V<'a>, Bail> {
    Ok(match (op, a, b) {
        (Math::Add, V::Null, x) | (Math::Add, x, V::Null) => x,
        (Math::Add, V::Int(x), V::Int(y)) => V::Int(x.checked_add(y).ok_or(Bail)?),
        (Math::Add, V::Str(x), V::Str(y)) => {
            let (x, y) = (x.as_str(), y.as_str());
            let mut joined = String::with_capacity(x.len() + y.len());
            joined.push_str(x);
            joined.push_str(y);
            V::own(joined)
        }
        (Math::Add, V::Arr(x), V::Arr(y)) => V::Arr(Rc::new(x.iter().chain(y.iter()).cloned().collect())),
        (Math::Add, V::Obj(x), V::Obj(y)) => {
            let (x, y) = (x.unique()?, y.unique()?);
            let mut entries = Vec::with_capacity(x.len() + y.len());
            entries.extend_from_slice(x);
            let mut merged = Obj { entries, dups: false };
            for (k, v) in y {
                merged.insert(k.clone(), v.clone());
            }
            V::Obj(Rc::new(merged))
        }
        (Math::Sub, V::Int(x), V::Int(y)) => V::Int(x.checked_sub(y).ok_or(Bail)?),
        (Math::Mul, V::Int(x), V::Int(y)) => V::Int(x.checked_mul(y).ok_or(Bail)?),
        (Math::Rem, V::Int(x), V::Int(y)) if y != 0 => V::Int(x.checked_rem(y).ok_or(Bail)?),
        (Math::Div, x, y) => {
            let (x, y) = (float(&x)?, float(&y)?);
            if y == 0.0 {
                return Err(Bail);
            }
            V::Float(x / y)
        }
        _ => return Err(Bail),
    })
}

/// A number as jaq's float (`i as f64` for an integer, as jaq converts it).
#[allow(clippy::cast_precision_loss)]
fn float(v: &V<'_>) -> Result<f64, Bail> {
    match v {
        V::Int(i) => Ok(*i as f64),
        V::Float(f) => Ok(*f),
        _ => Err(Bail),
    }
}

/// jaq's order between scalars (null < booleans < numbers < strings); integers with
/// integers only.
fn compare(a: &V<'_>, b: &V<'_>) -> Result<Ordering, Bail> {
    let rank = |v: &V<'_>| match v {
        V::Null => Ok(0),
        V::Bool(_) => Ok(1),
        V::Int(_) => Ok(2),
        V::Str(_) => Ok(3),
        _ => Err(Bail),
    };
    Ok(match (a, b) {
        (V::Bool(x), V::Bool(y)) => x.cmp(y),
        (V::Int(x), V::Int(y)) => x.cmp(y),
        (V::Str(x), V::Str(y)) => x.as_str().cmp(y.as_str()),
        _ => rank(a)?.cmp(&rank(b)?),
    })
}

/// Runs a builtin as jaq defines it.
fn call<'a>(b: Builtin, args: &[Node], rt: &mut Run<'a>, input: V<'a>, out: Out<'_, 'a>) -> R {
    // A builtin's `$`-argument runs on the input; each of its values gives an output.
    let each_arg = |rt: &mut Run<'a>, f: &mut dyn FnMut(&mut Run<'a>, V<'a>) -> R| {
        args.first().ok_or(Bail)?.run(rt, input.clone(), f)
    };
    match b {
        Builtin::Empty => Ok(()),
        Builtin::Error => Err(Bail),
        Builtin::Not => out(rt, V::Bool(!input.truthy())),
        Builtin::Select => each_arg(rt, &mut |rt, c| if c.truthy() { out(rt, input.clone()) } else { Ok(()) }),
        Builtin::Map => {
            // `[.[] | f]`: an array's items, or an object's values.
            let f = args.first().ok_or(Bail)?;
            let mut items = Vec::new();
            let mut each = |rt: &mut Run<'a>, v: &V<'a>| {
                f.run(rt, v.clone(), &mut |_, x| {
                    items.push(x);
                    Ok(())
                })
            };
            match &input {
                V::Arr(a) => a.iter().try_for_each(|v| each(rt, v))?,
                V::Obj(o) => o.unique()?.iter().try_for_each(|(_, v)| each(rt, v))?,
                _ => return Err(Bail),
            }
            out(rt, V::Arr(Rc::new(items)))
        }
        Builtin::Length => {
            let n = match &input {
                V::Null => 0,
                V::Str(s) => i64::try_from(s.as_str().chars().count()).map_err(|_| Bail)?,
                V::Arr(a) => i64::try_from(a.len()).map_err(|_| Bail)?,
                V::Obj(o) => i64::try_from(o.unique()?.len()).map_err(|_| Bail)?,
                V::Int(i) => i.checked_abs().ok_or(Bail)?,
                _ => return Err(Bail),
            };
            out(rt, V::Int(n))
        }
        Builtin::ToString => match input {
            V::Str(_) => out(rt, input),
            other => {
                let mut s = String::new();
                interpolate(&other, &mut s)?;
                out(rt, V::own(s))
            }
        },
        Builtin::ToNumber => match input {
            V::Int(_) | V::Float(_) => out(rt, input),
            V::Str(s) => out(rt, V::Int(integer_text(s.as_str()).ok_or(Bail)?)),
            _ => Err(Bail),
        },
        Builtin::AsciiDowncase => out(rt, V::own(input.str()?.to_ascii_lowercase())),
        Builtin::AsciiUpcase => out(rt, V::own(input.str()?.to_ascii_uppercase())),
        Builtin::StartsWith | Builtin::EndsWith => each_arg(rt, &mut |rt, fix| {
            let (s, fix) = (input.str()?, fix.str()?);
            out(rt, V::Bool(if b == Builtin::StartsWith { s.starts_with(fix) } else { s.ends_with(fix) }))
        }),
        Builtin::LtrimStr | Builtin::RtrimStr => each_arg(rt, &mut |rt, fix| {
            let (fix, left) = (fix.str()?, b == Builtin::LtrimStr);
            let kept = match &input {
                V::Str(Str::In(w)) => trim(w, fix, left).map(|k| V::Str(Str::In(k))),
                V::Str(Str::Own(w)) => trim(w, fix, left).map(|k| V::own(k.to_owned())),
                _ => return Err(Bail),
            };
            out(rt, kept.unwrap_or_else(|| input.clone()))
        }),
        Builtin::ToDate => out(rt, V::own(time::to_date(&input)?)),
        Builtin::FromDate => out(rt, time::from_date(input.str()?)?),
        Builtin::Strptime => each_arg(rt, &mut |rt, fmt| {
            let v = time::strptime(input.str()?, fmt.str()?)?;
            out(rt, v)
        }),
        Builtin::Mktime => out(rt, time::mktime(&input)?),
    }
}

/// `w` without the prefix (`left`) or suffix `fix`, when it has it.
fn trim<'w>(w: &'w str, fix: &str, left: bool) -> Option<&'w str> {
    if left { w.strip_prefix(fix) } else { w.strip_suffix(fix) }
}

/// A JSON integer as jq's `tonumber` reads it, when the compiled path reads it the same:
/// digits with an optional minus, no leading zero, within `i64`.
fn integer_text(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let plain = !digits.is_empty()
        && digits.bytes().all(|c| c.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && s != "-0";
    if plain { s.parse().ok() } else { None }
}

/// jaq-std's time builtins, through the same `jiff` calls.
mod time {
    use std::rc::Rc;

    use jiff::civil::DateTime;
    use jiff::fmt::strtime::BrokenDownTime;
    use jiff::{Timestamp, tz};

    use super::super::value::{Bail, V};

    /// `todate`: seconds since the epoch, whole or not, as RFC 3339.
    #[allow(clippy::cast_possible_truncation)]
    pub(super) fn to_date(v: &V<'_>) -> Result<String, Bail> {
        let ts = match v {
            V::Int(i) => Timestamp::from_second(*i),
            V::Float(f) => Timestamp::from_microsecond((f * 1e6) as i64),
            _ => return Err(Bail),
        };
        Ok(ts.map_err(|_| Bail)?.to_string())
    }

    /// `fromdate`: RFC 3339 as seconds since the epoch (with a fraction when the text has one).
    pub(super) fn from_date(s: &str) -> Result<V<'static>, Bail> {
        let ts: Timestamp = s.parse().map_err(|_| Bail)?;
        epoch(ts, s.contains('.'))
    }

    #[allow(clippy::cast_precision_loss)]
    fn epoch(ts: Timestamp, frac: bool) -> Result<V<'static>, Bail> {
        Ok(if frac { V::Float(ts.as_microsecond() as f64 / 1e6) } else { V::Int(ts.as_second()) })
    }

    /// `strptime(fmt)`: the broken-down time (UTC unless the text names an offset).
    #[allow(clippy::cast_precision_loss)]
    pub(super) fn strptime(s: &str, fmt: &str) -> Result<V<'static>, Bail> {
        let mut bdt = BrokenDownTime::parse(fmt, s).map_err(|_| Bail)?;
        if (bdt.offset(), bdt.iana_time_zone()) == (None, None) {
            bdt.set_offset(Some(tz::Offset::UTC));
        }
        let dt: DateTime = bdt.to_zoned().map_err(|_| Bail)?.into();
        let seconds = if dt.subsec_nanosecond() > 0 {
            V::Float(f64::from(dt.second()) + f64::from(dt.subsec_nanosecond()) / 1e9)
        } else {
            V::Int(i64::from(dt.second()))
        };
        let parts = vec![
            V::Int(i64::from(dt.year())),
            V::Int(i64::from(dt.month()) - 1),
            V::Int(i64::from(dt.day())),
            V::Int(i64::from(dt.hour())),
            V::Int(i64::from(dt.minute())),
            seconds,
            V::Int(i64::from(dt.weekday().to_sunday_zero_offset())),
            V::Int(i64::from(dt.day_of_year()) - 1),
        ];
        Ok(V::Arr(Rc::new(parts)))
    }

    /// `mktime`: a broken-down time (UTC) as seconds since the epoch.
    #[allow(clippy::cast_possible_truncation)]
    pub(super) fn mktime(v: &V<'_>) -> Result<V<'static>, Bail> {
        let V::Arr(a) = v else { return Err(Bail) };
        let [year, month, day, hour, min, sec] = a.get(..6).ok_or(Bail)? else { return Err(Bail) };
        let int = |v: &V<'_>| match v {
            V::Int(i) => Ok(*i),
            _ => Err(Bail),
        };
        let i8 = |v: &V<'_>| int(v).and_then(|i| i8::try_from(i).map_err(|_| Bail));
        let sec = match sec {
            V::Int(i) => *i as f64,
            V::Float(f) => *f,
            _ => return Err(Bail),
        };
        let dt = DateTime::new(
            i16::try_from(int(year)?).map_err(|_| Bail)?,
            i8(month)?.checked_add(1).ok_or(Bail)?,
            i8(day)?,
            i8(hour)?,
            i8(min)?,
            // As jaq: the cast saturates.
            sec.floor() as i8,
            (sec.fract() * 1e9) as i32,
        )
        .map_err(|_| Bail)?;
        let ts = dt.to_zoned(tz::TimeZone::UTC).map_err(|_| Bail)?.timestamp();
        epoch(ts, ts.subsec_nanosecond() > 0)
    }
}

//! The compiled mapping path, part 1: a mapping's jq program (parsed by jaq's own parser) as a
//! tree [`eval`](super::eval) runs directly on borrowed records.
//!
//! Only the part of jq that mappings use is compiled: paths, literals, objects and arrays,
//! string interpolation, `|`, `,`, `//`, `as $x`, `if`, `and`/`or`, arithmetic and
//! comparison, definitions with `$` parameters (inlined where they are called), and the
//! builtins of [`Builtin`]. A program using anything else compiles to `None` and every record
//! goes to jaq, as before. See `docs/mapping.md` ("How a mapping runs").

use std::rc::Rc;

use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Def, Pattern, Term};
use jaq_core::ops::{Cmp, Math};
use jaq_core::path::{Opt, Part};

use super::value::{Obj, V};

/// The deepest a compiled tree may be (running it recurses once a level); a deeper one runs
/// in jaq.
const LEVELS_MAX: usize = 256;

/// The most nodes a program may compile to (definitions are inlined where called); a larger
/// one runs in jaq.
const NODES_MAX: usize = 10_000;

/// A compiled term.
#[derive(Debug)]
pub(super) enum Node {
    Id,
    Const(V<'static>),
    /// String interpolation: literal text and terms, each giving one value.
    Interp(Vec<Piece>),
    Arr(Option<Box<Node>>),
    /// An object: each key and value giving one value.
    Obj(Vec<(Node, Node)>),
    Neg(Box<Node>),
    Pipe(Box<Node>, Box<Node>),
    /// `l as $x | r`, `$x` at the given slot of the variables.
    Bind(Box<Node>, usize, Box<Node>),
    Comma(Box<Node>, Box<Node>),
    Alt(Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Math(Box<Node>, Math, Box<Node>),
    Cmp(Box<Node>, Cmp, Box<Node>),
    If(Box<Node>, Box<Node>, Box<Node>),
    Var(usize),
    Path(Box<Node>, Vec<(Step, bool)>),
    Call(Builtin, Vec<Node>),
}

/// A piece of an interpolated string.
#[derive(Debug)]
pub(super) enum Piece {
    Text(String),
    Term(Node),
}

/// A step of a path; the `bool` beside it says it is optional (`?`).
#[derive(Debug)]
pub(super) enum Step {
    Field(Rc<str>),
    Index(Node),
    Iter,
    Slice(Option<Node>, Option<Node>),
}

/// The builtins the compiled path runs itself, each as jaq defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Builtin {
    Empty,
    Error,
    Not,
    Select,
    Map,
    Length,
    ToString,
    ToNumber,
    AsciiDowncase,
    AsciiUpcase,
    StartsWith,
    EndsWith,
    LtrimStr,
    RtrimStr,
    ToDate,
    FromDate,
    Strptime,
    Mktime,
}

impl Builtin {
    /// The builtin jq calls `name` with `arity` arguments (`null`, `true` and `false` are
    /// constants, not builtins).
    fn find(name: &str, arity: usize) -> Option<Self> {
        use Builtin::*;
        Some(match (name, arity) {
            ("empty", 0) => Empty,
            ("error", 0 | 1) => Error,
            ("not", 0) => Not,
            ("select", 1) => Select,
            ("map", 1) => Map,
            ("length", 0) => Length,
            ("tostring", 0) => ToString,
            ("tonumber", 0) => ToNumber,
            ("ascii_downcase", 0) => AsciiDowncase,
            ("ascii_upcase", 0) => AsciiUpcase,
            ("startswith", 1) => StartsWith,
            ("endswith", 1) => EndsWith,
            ("ltrimstr", 1) => LtrimStr,
            ("rtrimstr", 1) => RtrimStr,
            ("todate" | "todateiso8601", 0) => ToDate,
            ("fromdate" | "fromdateiso8601", 0) => FromDate,
            ("strptime", 1) => Strptime,
            ("mktime", 0) => Mktime,
            _ => return None,
        })
    }
}

/// The object an object term of constant keys and values makes, made once when compiling
/// rather than for every record, as running it would make it (each key set in order).
fn constant_object(entries: &[(Node, Node)]) -> Option<V<'static>> {
    let mut obj = Obj { entries: Vec::with_capacity(entries.len()), dups: false };
    for (k, v) in entries {
        let (Node::Const(V::Str(key)), Node::Const(value)) = (k, v) else { return None };
        obj.insert(key.clone(), value.clone());
    }
    Some(V::Obj(Rc::new(obj)))
}

/// What a name in scope is.
enum Entry<'s, 't> {
    /// A variable at a slot.
    Var(&'s str, usize),
    /// A definition, with the scope it was defined in.
    Def(&'t Def<&'s str>, &'t Scope<'s, 't>),
    /// A name that must not resolve to anything outside: a definition's own name inside its
    /// body (recursion), or a parameter called as a filter.
    Blocked(&'s str, usize),
}

/// The names in scope: a chain through the compiler's stack.
pub(super) struct Scope<'s, 't> {
    entry: Option<Entry<'s, 't>>,
    up: Option<&'t Scope<'s, 't>>,
}

impl<'s, 't> Scope<'s, 't> {
    fn with<'b>(&'b self, entry: Entry<'s, 'b>) -> Scope<'s, 'b> {
        Scope { entry: Some(entry), up: Some(self) }
    }

    fn iter(&self) -> impl Iterator<Item = &Entry<'s, 't>> {
        std::iter::successors(Some(self), |s| s.up).filter_map(|s| s.entry.as_ref())
    }
}

/// A compiler of one program.
pub(super) struct Compiler {
    nodes: usize,
    /// How deep the term being compiled is.
    level: usize,
}

/// Compiles `code` (the prelude and the mapping's program), or `None` when it uses what the
/// compiled path does not run.
pub(super) fn compile(code: &str) -> Option<Node> {
    let term = jaq_core::load::parse(code, |p| p.term())?;
    let root = Scope { entry: None, up: None };
    Compiler { nodes: 0, level: 0 }.term(&term, &root, 0)
}

impl Compiler {
    fn boxed<'s>(&mut self, t: &Term<&'s str>, scope: &Scope<'s, '_>, depth: usize) -> Option<Box<Node>> {
        self.term(t, scope, depth).map(Box::new)
    }

    /// `t` in `scope`, where `depth` variables are bound when it runs.
    fn term<'s>(&mut self, t: &Term<&'s str>, scope: &Scope<'s, '_>, depth: usize) -> Option<Node> {
        self.nodes += 1;
        self.level += 1;
        let node = if self.nodes > NODES_MAX || self.level > LEVELS_MAX { None } else { self.term_at(t, scope, depth) };
        self.level -= 1;
        node
    }

    fn term_at<'s>(&mut self, t: &Term<&'s str>, scope: &Scope<'s, '_>, depth: usize) -> Option<Node> {
        Some(match t {
            Term::Id => Node::Id,
            Term::Num(n) => Node::Const(number(n)?),
            Term::Str(None, parts) => {
                let mut pieces = Vec::with_capacity(parts.len());
                for part in parts {
                    match part {
                        StrPart::Str(s) => push_text(&mut pieces, s),
                        StrPart::Char(c) => push_text(&mut pieces, c.encode_utf8(&mut [0; 4])),
                        StrPart::Term(t) => pieces.push(Piece::Term(self.term(t, scope, depth)?)),
                    }
                }
                match pieces.as_slice() {
                    [] => Node::Const(V::own(String::new())),
                    [Piece::Text(s)] => Node::Const(V::own(s.clone())),
                    _ => Node::Interp(pieces),
                }
            }
            Term::Arr(inner) => Node::Arr(match inner {
                Some(t) => Some(self.boxed(t, scope, depth)?),
                None => None,
            }),
            Term::Obj(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    out.push(self.entry(k, v.as_ref(), scope, depth)?);
                }
                constant_object(&out).map_or(Node::Obj(out), Node::Const)
            }
            Term::Neg(t) => Node::Neg(self.boxed(t, scope, depth)?),
            Term::BinOp(l, op, r) => self.binop(l, op, r, scope, depth)?,
            // `try t` / `t?` is `t` here: an error in `t` sends the record to jaq anyway.
            Term::TryCatch(t, None) => return self.term(t, scope, depth),
            Term::IfThenElse(branches, otherwise) => {
                let mut node = match otherwise {
                    Some(t) => self.term(t, scope, depth)?,
                    None => Node::Id,
                };
                for (cond, then) in branches.iter().rev() {
                    node = Node::If(self.boxed(cond, scope, depth)?, self.boxed(then, scope, depth)?, Box::new(node));
                }
                node
            }
            Term::Def(defs, body) => return self.defs(defs, body, scope, depth),
            Term::Call(name, args) => return self.call(name, args, scope, depth),
            Term::Var(name) => match scope.iter().find_map(|e| match e {
                Entry::Var(n, slot) if n == name => Some(*slot),
                _ => None,
            }) {
                Some(slot) => Node::Var(slot),
                None => return None,
            },
            Term::Path(base, path) => {
                let base = self.boxed(base, scope, depth)?;
                let mut steps = Vec::with_capacity(path.0.len());
                for (part, opt) in &path.0 {
                    let step = match part {
                        Part::Index(t) => match literal(t) {
                            Some(s) => Step::Field(Rc::from(s)),
                            None => Step::Index(self.term(t, scope, depth)?),
                        },
                        Part::Range(None, None) => Step::Iter,
                        Part::Range(from, to) => Step::Slice(
                            match from {
                                Some(t) => Some(self.term(t, scope, depth)?),
                                None => None,
                            },
                            match to {
                                Some(t) => Some(self.term(t, scope, depth)?),
                                None => None,
                            },
                        ),
                    };
                    steps.push((step, matches!(opt, Opt::Optional)));
                }
                Node::Path(base, steps)
            }
            _ => return None,
        })
    }

    /// An object's entry: `k: v`, `$x`, `k` (for `k: .k`), `(t): v`.
    fn entry<'s>(
        &mut self,
        k: &Term<&'s str>,
        v: Option<&Term<&'s str>>,
        scope: &Scope<'s, '_>,
        depth: usize,
    ) -> Option<(Node, Node)> {
        match (k, v) {
            (Term::Var(name), None) => {
                let key = Node::Const(V::own(name.strip_prefix('$')?.to_owned()));
                Some((key, self.term(k, scope, depth)?))
            }
            (Term::Str(..), None) => {
                let s = literal(k)?;
                Some((
                    Node::Const(V::own(s.to_owned())),
                    Node::Path(Box::new(Node::Id), vec![(Step::Field(Rc::from(s)), false)]),
                ))
            }
            (k, Some(v)) => Some((self.term(k, scope, depth)?, self.term(v, scope, depth)?)),
            _ => None,
        }
    }

    fn binop<'s>(
        &mut self,
        l: &Term<&'s str>,
        op: &BinaryOp<&'s str>,
        r: &Term<&'s str>,
        scope: &Scope<'s, '_>,
        depth: usize,
    ) -> Option<Node> {
        let two = |c: &mut Self| Some((c.boxed(l, scope, depth)?, c.boxed(r, scope, depth)?));
        let make: fn(Box<Node>, Box<Node>) -> Node = match op {
            BinaryOp::Pipe(Some(Pattern::Var(name))) => {
                let left = self.boxed(l, scope, depth)?;
                let inner = scope.with(Entry::Var(name, depth));
                return Some(Node::Bind(left, depth, self.boxed(r, &inner, depth + 1)?));
            }
            BinaryOp::Math(m) => return two(self).map(|(l, r)| Node::Math(l, *m, r)),
            BinaryOp::Cmp(c) => return two(self).map(|(l, r)| Node::Cmp(l, *c, r)),
            BinaryOp::Pipe(None) => Node::Pipe,
            BinaryOp::Comma => Node::Comma,
            BinaryOp::Alt => Node::Alt,
            BinaryOp::And => Node::And,
            BinaryOp::Or => Node::Or,
            _ => return None,
        };
        two(self).map(|(l, r)| make(l, r))
    }

    /// `def …; body`: the definitions are put in scope and inlined where called.
    fn defs<'s>(
        &mut self,
        defs: &[Def<&'s str>],
        body: &Term<&'s str>,
        scope: &Scope<'s, '_>,
        depth: usize,
    ) -> Option<Node> {
        match defs.split_first() {
            None => self.term(body, scope, depth),
            Some((def, rest)) => {
                let inner = scope.with(Entry::Def(def, scope));
                self.defs(rest, body, &inner, depth)
            }
        }
    }

    /// A call: a definition in scope (inlined: `def f($a): b;` called as `f(x)` is
    /// `x as $a | b`), else a builtin.
    fn call<'s>(&mut self, name: &'s str, args: &[Term<&'s str>], scope: &Scope<'s, '_>, depth: usize) -> Option<Node> {
        for entry in scope.iter() {
            match entry {
                Entry::Blocked(n, arity) if *n == name && *arity == args.len() => return None,
                Entry::Def(def, at) if def.name == name && def.args.len() == args.len() => {
                    return self.inline(def, at, args, scope, depth);
                }
                _ => {}
            }
        }
        match (name, args.len()) {
            ("null", 0) => return Some(Node::Const(V::Null)),
            ("true", 0) => return Some(Node::Const(V::Bool(true))),
            ("false", 0) => return Some(Node::Const(V::Bool(false))),
            _ => {}
        }
        let builtin = Builtin::find(name, args.len())?;
        let mut nodes = Vec::with_capacity(args.len());
        for a in args {
            nodes.push(self.term(a, scope, depth)?);
        }
        Some(Node::Call(builtin, nodes))
    }

    fn inline<'s>(
        &mut self,
        def: &Def<&'s str>,
        at: &Scope<'s, '_>,
        args: &[Term<&'s str>],
        scope: &Scope<'s, '_>,
        depth: usize,
    ) -> Option<Node> {
        // Only `$` parameters; the definition's own name is blocked inside it (recursion runs
        // in jaq), as is each parameter called as a filter (`def f($a): a;`).
        if !def.args.iter().all(|a| a.starts_with('$')) {
            return None;
        }
        self.bind_params(def, &def.args, at, args, scope, depth)
    }

    /// Binds `params` one by one (`x as $a | y as $b | body`, each argument run in the
    /// caller's scope), then compiles the body in the definition's scope with them.
    #[allow(clippy::too_many_arguments)]
    fn bind_params<'s>(
        &mut self,
        def: &Def<&'s str>,
        params: &[&'s str],
        body_scope: &Scope<'s, '_>,
        args: &[Term<&'s str>],
        caller: &Scope<'s, '_>,
        depth: usize,
    ) -> Option<Node> {
        match (params.split_first(), args.split_first()) {
            (Some((p, rest)), Some((arg, more))) => {
                let value = self.boxed(arg, caller, depth)?;
                let var = body_scope.with(Entry::Var(p, depth));
                let blocked = var.with(Entry::Blocked(p.strip_prefix('$')?, 0));
                // The next argument runs in the caller's scope (which cannot name `p`), with
                // one more variable bound below it.
                let body = self.bind_params(def, rest, &blocked, more, caller, depth + 1)?;
                Some(Node::Bind(value, depth, Box::new(body)))
            }
            (None, None) => {
                let own = body_scope.with(Entry::Blocked(def.name, def.args.len()));
                self.term(&def.body, &own, depth)
            }
            _ => None,
        }
    }
}

/// The text of a string literal without escapes or interpolation (`"a"`, or `a` in `.a`).
fn literal<'s>(t: &Term<&'s str>) -> Option<&'s str> {
    match t {
        Term::Str(None, parts) => match parts.as_slice() {
            [StrPart::Str(s)] => Some(s),
            _ => None,
        },
        _ => None,
    }
}

/// Appends literal text to the last piece when it is text.
fn push_text(pieces: &mut Vec<Piece>, s: &str) {
    match pieces.last_mut() {
        Some(Piece::Text(t)) => t.push_str(s),
        _ => pieces.push(Piece::Text(s.to_owned())),
    }
}

/// A number literal as jaq reads it: an integer, or a decimal.
fn number(text: &str) -> Option<V<'static>> {
    if let Ok(i) = text.parse::<i64>() {
        // jaq's integers are `isize`; on a 64-bit target the same.
        return isize::try_from(i).is_ok().then_some(V::Int(i));
    }
    // jaq keeps a decimal literal's text and writes it back as written; written again from
    // its value it reads back as the same number.
    let f: f64 = text.parse().ok()?;
    f.is_finite().then_some(V::Float(f))
}

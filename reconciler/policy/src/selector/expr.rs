//! The selector expression tree, its evaluation and its canonical text.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Anything selectors can look labels up in.
pub trait Labels {
    /// The value of label `key`, if it is set.
    fn label(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// A selector expression (Calico semantics, which Kubernetes selectors map into).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Expr {
    /// `all()`: matches every label set.
    All,
    /// `global()`: true wherever it may legally appear; scoping code gives it meaning.
    Global,
    /// `has(k)`: the label is set, to any value.
    Has(String),
    /// `k == "v"`: the label is set to the value.
    Eq(String, String),
    /// Matches when the label is absent, too.
    Ne(String, String),
    /// `k in {"a", "b"}`: the label is set to one of the values.
    In(String, BTreeSet<String>),
    /// Matches when the label is absent, too.
    NotIn(String, BTreeSet<String>),
    /// `k contains "s"`: the label is set and its value contains the text.
    Contains(String, String),
    /// `k starts with "s"`: the label is set and its value starts with the text.
    StartsWith(String, String),
    /// `k ends with "s"`: the label is set and its value ends with the text.
    EndsWith(String, String),
    /// `!e`: the expression does not match.
    Not(Box<Expr>),
    /// `a && b`: every term matches; an empty list matches everything.
    And(Vec<Expr>),
    /// `a || b`: some term matches; an empty list matches nothing.
    Or(Vec<Expr>),
}

impl Expr {
    /// ANDs terms, flattening nested ANDs and dropping `all()`.
    pub fn and(terms: Vec<Expr>) -> Expr {
        let mut out = Vec::new();
        for t in terms {
            match t {
                Expr::All => {}
                Expr::And(inner) => out.extend(inner),
                t => out.push(t),
            }
        }
        match out.len() {
            0 => Expr::All,
            1 => out.pop().expect("one term"),
            _ => Expr::And(out),
        }
    }

    /// ORs terms, flattening nested ORs; a single term stands alone.
    pub fn or(terms: Vec<Expr>) -> Expr {
        let mut out = Vec::new();
        for t in terms {
            match t {
                Expr::Or(inner) => out.extend(inner),
                t => out.push(t),
            }
        }
        if out.len() == 1 {
            out.pop().expect("one term")
        } else {
            Expr::Or(out)
        }
    }

    /// The negation of an expression, undoing a double `!`.
    pub fn negate(e: Expr) -> Expr {
        match e {
            Expr::Not(inner) => *inner,
            e => Expr::Not(Box::new(e)),
        }
    }

    /// Whether a label set matches.
    pub fn eval(&self, l: &impl Labels) -> bool {
        match self {
            Expr::All | Expr::Global => true,
            Expr::Has(k) => l.label(k).is_some(),
            Expr::Eq(k, v) => l.label(k) == Some(v.as_str()),
            Expr::Ne(k, v) => l.label(k) != Some(v.as_str()),
            Expr::In(k, vs) => l.label(k).is_some_and(|x| vs.contains(x)),
            Expr::NotIn(k, vs) => !l.label(k).is_some_and(|x| vs.contains(x)),
            Expr::Contains(k, v) => l.label(k).is_some_and(|x| x.contains(v.as_str())),
            Expr::StartsWith(k, v) => l.label(k).is_some_and(|x| x.starts_with(v.as_str())),
            Expr::EndsWith(k, v) => l.label(k).is_some_and(|x| x.ends_with(v.as_str())),
            Expr::Not(e) => !e.eval(l),
            Expr::And(es) => es.iter().all(|e| e.eval(l)),
            Expr::Or(es) => es.iter().any(|e| e.eval(l)),
        }
    }

    /// The same expression over labels renamed `prefix + key`, with `all()`
    /// replaced by `all_means` (Calico's `pcns.`/`pcsa.` scoping, C2/C3).
    pub fn prefixed(&self, prefix: &str, all_means: &Expr) -> Expr {
        let p = |k: &String| format!("{prefix}{k}");
        match self {
            Expr::All => all_means.clone(),
            Expr::Global => Expr::Global,
            Expr::Has(k) => Expr::Has(p(k)),
            Expr::Eq(k, v) => Expr::Eq(p(k), v.clone()),
            Expr::Ne(k, v) => Expr::Ne(p(k), v.clone()),
            Expr::In(k, v) => Expr::In(p(k), v.clone()),
            Expr::NotIn(k, v) => Expr::NotIn(p(k), v.clone()),
            Expr::Contains(k, v) => Expr::Contains(p(k), v.clone()),
            Expr::StartsWith(k, v) => Expr::StartsWith(p(k), v.clone()),
            Expr::EndsWith(k, v) => Expr::EndsWith(p(k), v.clone()),
            Expr::Not(e) => Expr::Not(Box::new(e.prefixed(prefix, all_means))),
            Expr::And(es) => Expr::And(es.iter().map(|e| e.prefixed(prefix, all_means)).collect()),
            Expr::Or(es) => Expr::Or(es.iter().map(|e| e.prefixed(prefix, all_means)).collect()),
        }
    }

    /// Whether `global()` appears anywhere in the expression.
    pub fn mentions_global(&self) -> bool {
        match self {
            Expr::Global => true,
            Expr::Not(e) => e.mentions_global(),
            Expr::And(es) | Expr::Or(es) => es.iter().any(Expr::mentions_global),
            _ => false,
        }
    }

    /// Every label key the expression reads.
    pub fn keys<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::All | Expr::Global => {}
            Expr::Has(k)
            | Expr::Eq(k, _)
            | Expr::Ne(k, _)
            | Expr::In(k, _)
            | Expr::NotIn(k, _)
            | Expr::Contains(k, _)
            | Expr::StartsWith(k, _)
            | Expr::EndsWith(k, _) => out.push(k),
            Expr::Not(e) => e.keys(out),
            Expr::And(es) | Expr::Or(es) => es.iter().for_each(|e| e.keys(out)),
        }
    }
}

fn quote(s: &str) -> String {
    if s.contains('"') {
        format!("'{s}'")
    } else {
        format!("\"{s}\"")
    }
}

fn set(vs: &BTreeSet<String>) -> String {
    let items: Vec<String> = vs.iter().map(|v| quote(v)).collect();
    format!("{{{}}}", items.join(", "))
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::All => f.write_str("all()"),
            Expr::Global => f.write_str("global()"),
            Expr::Has(k) => write!(f, "has({k})"),
            Expr::Eq(k, v) => write!(f, "{k} == {}", quote(v)),
            Expr::Ne(k, v) => write!(f, "{k} != {}", quote(v)),
            Expr::In(k, v) => write!(f, "{k} in {}", set(v)),
            Expr::NotIn(k, v) => write!(f, "{k} not in {}", set(v)),
            Expr::Contains(k, v) => write!(f, "{k} contains {}", quote(v)),
            Expr::StartsWith(k, v) => write!(f, "{k} starts with {}", quote(v)),
            Expr::EndsWith(k, v) => write!(f, "{k} ends with {}", quote(v)),
            Expr::Not(e) => write!(f, "!{e}"),
            Expr::And(es) | Expr::Or(es) => {
                let op = if matches!(self, Expr::And(_)) { " && " } else { " || " };
                let parts: Vec<String> = es.iter().map(|e| e.to_string()).collect();
                write!(f, "({})", parts.join(op))
            }
        }
    }
}

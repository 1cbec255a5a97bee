//! Label selectors: Calico's selector language and Kubernetes `LabelSelector`s,
//! both compiled into one expression type that analysis evaluates.
//!
//! This module knows nothing about policies or endpoints; it parses, prints
//! and evaluates expressions over a label map.

mod expr;
mod parse;

pub use expr::{Expr, Labels};
pub(crate) use parse::parse_composed;
pub use parse::{parse, ParseError};

use std::collections::BTreeMap;

/// A parsed selector with the text it came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Selector {
    /// The parsed expression.
    pub expr: Expr,
}

impl Selector {
    /// The selector that matches every label set (`all()`).
    pub fn all() -> Self {
        Selector { expr: Expr::All }
    }

    /// Parses Calico selector text; blank text is `all()`.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        parse(text).map(|expr| Selector { expr })
    }

    /// Whether a label set matches.
    pub fn matches(&self, labels: &impl Labels) -> bool {
        self.expr.eval(labels)
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.expr)
    }
}

/// One `matchExpressions` term of a Kubernetes `LabelSelector`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// Operator `In`: the label is set to one of the values.
    In(String, Vec<String>),
    /// Operator `NotIn`: the label is absent or set to none of the values.
    NotIn(String, Vec<String>),
    /// Operator `Exists`: the label is set, to any value.
    Exists(String),
    /// Operator `DoesNotExist`: the label is absent.
    DoesNotExist(String),
}

/// A Kubernetes `metav1.LabelSelector` as the Calico expression it means:
/// every `matchLabels` pair (sorted by key) and every requirement, ANDed.
/// An empty selector selects everything.
pub fn from_label_selector(match_labels: &BTreeMap<String, String>, exprs: &[Requirement]) -> Expr {
    let mut terms: Vec<Expr> = match_labels.iter().map(|(k, v)| Expr::Eq(k.clone(), v.clone())).collect();
    for r in exprs {
        terms.push(match r {
            Requirement::In(k, vs) => Expr::In(k.clone(), vs.iter().cloned().collect()),
            Requirement::NotIn(k, vs) => Expr::NotIn(k.clone(), vs.iter().cloned().collect()),
            Requirement::Exists(k) => Expr::Has(k.clone()),
            Requirement::DoesNotExist(k) => Expr::Not(Box::new(Expr::Has(k.clone()))),
        });
    }
    Expr::and(terms)
}

/// Checks a Kubernetes label key: an optional DNS-subdomain prefix and `/`,
/// then a name of 1..63 alphanumerics, `-`, `_`, `.`, starting and ending
/// alphanumeric. Returns why it is invalid.
pub fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty() || p.len() > 253 {
            return Err(format!("label key {key:?}: prefix must be 1..253 characters"));
        }
        let ok = p.split('.').all(|part| {
            !part.is_empty()
                && part.len() <= 63
                && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
        if !ok {
            return Err(format!(
                "label key {key:?}: prefix must be a DNS subdomain (lowercase letters, digits, '-', '.')"
            ));
        }
    }
    check_label_name(name).map_err(|why| format!("label key {key:?}: name {why}"))
}

/// Checks a Kubernetes label value: empty, or 1..63 characters like a key name.
pub fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    check_label_name(value).map_err(|why| format!("label value {value:?} {why}"))
}

fn check_label_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err("must be 1..63 characters".into());
    }
    let b = name.as_bytes();
    let alnum = |c: u8| c.is_ascii_alphanumeric();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return Err("must start and end with a letter or digit".into());
    }
    if !b.iter().all(|&c| alnum(c) || c == b'-' || c == b'_' || c == b'.') {
        return Err("may contain only letters, digits, '-', '_' and '.'".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests;

//! A YAML/JSON document tree that remembers where every value came from.
//!
//! serde-saphyr parses; we keep a small generic tree (`Node`) instead of
//! deserialising straight into typed structs, because Kubernetes objects of
//! many kinds share a file and only the ones netward understands get decoded,
//! each with errors that point at the exact value.

use std::fmt;
use std::sync::Arc;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::diag::{Diagnostic, Pos};

/// A value of a parsed document with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The value, with its children for lists and mappings.
    pub value: Value,
    /// The line it starts on, from 1.
    pub line: u32,
    /// The column it starts at, from 1.
    pub col: u32,
}

/// A YAML value, with no type given to it yet.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null`, `~`, or a key with no value.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer that fits 64 bits.
    Int(i64),
    /// Any other number.
    Float(f64),
    /// A string, quoted or plain.
    Str(String),
    /// A list.
    Seq(Vec<Node>),
    /// A mapping, its entries in the order written (keys are nodes too).
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// What the value is, for "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Seq(_) => f.write_str("[...]"),
            Value::Map(_) => f.write_str("{...}"),
        }
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map(Value::Int).unwrap_or(Value::Float(v as f64)))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(i64::try_from(v).map(Value::Int).unwrap_or(Value::Float(v as f64)))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
        Ok(i64::try_from(v).map(Value::Int).unwrap_or(Value::Float(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(x) = a.next_element()? {
            items.push(x);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = a.next_entry()? {
            entries.push((k, v));
        }
        Ok(Value::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        let s = Spanned::<Value>::deserialize(d)?;
        Ok(Node { value: s.value, line: s.referenced.line() as u32, col: s.referenced.column() as u32 })
    }
}

/// One parsed document of a file.
#[derive(Clone, Debug)]
pub struct Document {
    /// The file it came from.
    pub file: Arc<str>,
    /// The document's top-level value.
    pub root: Node,
}

/// Parses every document of a YAML (or JSON, a subset of YAML) text.
///
/// Empty documents are dropped. Syntax errors carry the line and column the
/// parser stopped at; duplicate keys in a mapping are errors (as `kubectl` does).
pub fn parse_documents(file: &Arc<str>, text: &str) -> Result<Vec<Document>, Diagnostic> {
    let nodes: Vec<Option<Node>> = serde_saphyr::from_multiple_with_options(text, options()).map_err(|e| {
        let (line, col) = e.location().map(|l| (l.line() as u32, l.column() as u32)).unwrap_or((0, 0));
        Diagnostic::error(Pos::new(file, line, col), first_line(&e.without_snippet().to_string()))
    })?;
    Ok(nodes
        .into_iter()
        .flatten()
        .filter(|n| n.value != Value::Null)
        .map(|root| Document { file: file.clone(), root })
        .collect())
}

/// How deep mappings and lists may nest.
pub const MAX_DEPTH: usize = 40;

/// Parser limits. The defaults guard against hostile input (1,024 documents,
/// 250,000 nodes); policy repositories and `kubectl get pods -A` snapshots of
/// large clusters are legitimately bigger, so the counts are raised while the
/// nesting depth and alias limits stay.
fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_documents = 1_000_000;
    budget.max_nodes = 100_000_000;
    budget.max_events = 400_000_000;
    budget.max_total_scalar_bytes = 1 << 30;
    budget.max_reader_input_bytes = Some(1 << 30);
    // Kubernetes objects nest about a dozen levels (managedFields the most).
    // The deserializer recurses once per level with large frames in debug
    // builds; 40 levels stay well inside a 2 MiB thread stack.
    budget.max_depth = MAX_DEPTH;
    let mut o = serde_saphyr::Options::default();
    o.budget = Some(budget);
    o
}

/// serde-saphyr's messages start with "error: line L column C: "; we print
/// the place ourselves, so keep only the reason.
fn first_line(msg: &str) -> String {
    if msg.contains("budget breached: Depth") || msg.contains("recursion limit exceeded") {
        return format!("the document nests deeper than netward reads ({MAX_DEPTH} levels of mappings and lists)");
    }
    let line = msg.lines().next().unwrap_or(msg);
    let line = line.strip_prefix("error: ").unwrap_or(line);
    let reason = match line.find(": ") {
        Some(i) if line.starts_with("line ") => &line[i + 2..],
        _ => line,
    };
    // Some parser messages repeat the place at the end.
    match reason.rfind(" at line ") {
        Some(i) => reason[..i].to_owned(),
        None => reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Arc<str> {
        Arc::from("t.yaml")
    }

    #[test]
    fn quoted_scalars_stay_strings_wherever_they_are() {
        for text in [
            "a: x\nb: \"true\"\nc: '8080'\nd: \"null\"\ne: true\nf: 8080\n",
            "{a: x, b: \"true\", c: '8080', d: \"null\", e: true, f: 8080}\n",
            "{\"a\": \"x\", \"b\": \"true\", \"c\": \"8080\", \"d\": \"null\", \"e\": true, \"f\": 8080}\n",
        ] {
            let docs = parse_documents(&file(), text).expect("parses");
            let Value::Map(m) = &docs[0].root.value else { panic!("a map") };
            let v: Vec<&Value> = m.iter().map(|(_, v)| &v.value).collect();
            assert_eq!(v[1], &Value::Str("true".into()), "{text}");
            assert_eq!(v[2], &Value::Str("8080".into()), "{text}");
            assert_eq!(v[3], &Value::Str("null".into()), "{text}");
            assert_eq!(v[4], &Value::Bool(true), "{text}");
            assert_eq!(v[5], &Value::Int(8080), "{text}");
        }
    }

    #[test]
    fn keeps_positions_of_nested_values() {
        let docs = parse_documents(&file(), "a: 1\nb:\n  - x\n  - {c: \"80\"}\n---\n{\"j\": true}\n").unwrap();
        assert_eq!(docs.len(), 2);
        let Value::Map(m) = &docs[0].root.value else { panic!() };
        let Value::Seq(items) = &m[1].1.value else { panic!() };
        assert_eq!((items[1].line, items[1].col), (4, 5));
        let Value::Map(inner) = &items[1].value else { panic!() };
        assert_eq!(inner[0].1.value, Value::Str("80".into()));
        assert_eq!((docs[1].root.line, docs[1].root.col), (6, 1));
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let e = parse_documents(&file(), "a: 1\n  b: 2\n").unwrap_err();
        assert_eq!((e.pos.line, e.pos.col), (2, 4));
        assert!(e.message.contains("mapping values are not allowed"), "{}", e.message);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let e = parse_documents(&file(), "a: 1\na: 2\n").unwrap_err();
        assert_eq!(e.pos.line, 2);
        assert!(e.message.contains("duplicate"), "{}", e.message);
    }

    #[test]
    fn large_snapshots_fit_the_parser_budget() {
        // Regression: serde-saphyr's default budget stops at 1,024 documents.
        let text = "a: 1\n---\n".repeat(5000);
        assert_eq!(parse_documents(&file(), &text).unwrap().len(), 5000);
    }

    // Regression (#13): every walk over input is bounded; deep nesting is
    // an error at its place, not a stack overflow.
    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        // Test threads have 2 MiB stacks, less than a CLI's main thread.
        for text in [
            format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
            format!("{{\"a\": {}{}}}\n", "[".repeat(100_000), "]".repeat(100_000)),
            (0..3000).map(|i| format!("{}k:\n", "  ".repeat(i))).collect::<String>(),
        ] {
            let e = parse_documents(&file(), &text).unwrap_err();
            assert!(e.pos.line > 0 && e.message.contains("nests deeper"), "{e}");
        }
    }

    #[test]
    fn empty_documents_are_dropped() {
        assert!(parse_documents(&file(), "---\n---\n").unwrap().is_empty());
    }
}

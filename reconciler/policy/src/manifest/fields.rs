//! Typed access to a document tree, with errors that point at the value.
//!
//! `Fields` walks one mapping: every key a decoder reads is marked, and
//! `finish` reports the keys nobody read as unknown fields (what the API
//! server does with strict field validation).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::diag::{DResult, Diagnostic, Pos};
use crate::manifest::yaml::{Node, Value};

/// A decoded value and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct At<T> {
    /// The decoded value.
    pub value: T,
    /// Where the value is written.
    pub pos: Pos,
}

/// The file a decoder is reading, for building positions.
#[derive(Clone, Copy)]
pub struct Src<'a> {
    /// The file's name, for positions.
    pub file: &'a Arc<str>,
    /// The whole file text, to tell quoted scalars from plain ones.
    pub text: &'a str,
}

impl<'a> Src<'a> {
    /// Where a node is written.
    pub fn pos(&self, n: &Node) -> Pos {
        Pos::new(self.file, n.line, n.col)
    }

    /// An error at a node.
    pub fn err(&self, n: &Node, msg: impl Into<String>) -> Diagnostic {
        Diagnostic::error(self.pos(n), msg)
    }

    /// Where decoded character `index` (from 0) of a string scalar is
    /// written, through quotes, escapes and folded lines.
    pub fn char_pos(&self, n: &Node, index: usize) -> Pos {
        let (line, col) = crate::manifest::scalar::char_position(self.text, n.line, n.col, index);
        Pos::new(self.file, line, col)
    }

    /// A node as a string; `what` names the field in the error.
    pub fn str(&self, n: &'a Node, what: &str) -> DResult<At<String>> {
        match &n.value {
            Value::Str(s) => Ok(At { value: s.clone(), pos: self.pos(n) }),
            other => Err(self.err(n, format!("{what}: expected a string, found {}", other.type_name()))),
        }
    }

    /// A node as an integer; `what` names the field in the error.
    pub fn int(&self, n: &'a Node, what: &str) -> DResult<At<i64>> {
        match &n.value {
            Value::Int(i) => Ok(At { value: *i, pos: self.pos(n) }),
            other => Err(self.err(n, format!("{what}: expected an integer, found {}", other.type_name()))),
        }
    }

    /// A node as true or false; `what` names the field in the error.
    pub fn bool(&self, n: &'a Node, what: &str) -> DResult<bool> {
        match &n.value {
            Value::Bool(b) => Ok(*b),
            other => Err(self.err(n, format!("{what}: expected true or false, found {}", other.type_name()))),
        }
    }

    /// A list; YAML `null` (an empty key) reads as an empty list.
    pub fn seq(&self, n: &'a Node, what: &str) -> DResult<&'a [Node]> {
        match &n.value {
            Value::Seq(items) => Ok(items),
            Value::Null => Ok(&[]),
            other => Err(self.err(n, format!("{what}: expected a list, found {}", other.type_name()))),
        }
    }

    /// The fields of a mapping node; `what` names the object in errors.
    pub fn fields(&self, n: &'a Node, what: &'static str) -> DResult<Fields<'a>> {
        Fields::new(*self, n, what)
    }

    /// A string-to-string map such as `labels` or `matchLabels`.
    pub fn string_map(&self, n: &'a Node, what: &str) -> DResult<BTreeMap<String, String>> {
        let entries: &[(Node, Node)] = match &n.value {
            Value::Map(m) => m,
            Value::Null => &[],
            other => return Err(self.err(n, format!("{what}: expected a mapping, found {}", other.type_name()))),
        };
        let mut out = BTreeMap::new();
        for (k, v) in entries {
            let key = self.str(k, what)?.value;
            let val = self.str(v, &format!("{what}.{key}"))?.value;
            out.insert(key, val);
        }
        Ok(out)
    }
}

/// The fields of one mapping node, read by name.
pub struct Fields<'a> {
    src: Src<'a>,
    node: &'a Node,
    entries: &'a [(Node, Node)],
    used: Vec<bool>,
    what: &'static str,
}

impl<'a> Fields<'a> {
    fn new(src: Src<'a>, node: &'a Node, what: &'static str) -> DResult<Self> {
        let entries: &[(Node, Node)] = match &node.value {
            Value::Map(m) => m,
            Value::Null => &[],
            other => return Err(src.err(node, format!("{what}: expected a mapping, found {}", other.type_name()))),
        };
        Ok(Fields { src, node, entries, used: vec![false; entries.len()], what })
    }

    /// The mapping node being read.
    pub fn node(&self) -> &'a Node {
        self.node
    }

    /// Where the mapping is written.
    pub fn pos(&self) -> Pos {
        self.src.pos(self.node)
    }

    /// The value of `key`; an explicit `null` counts as absent.
    pub fn get(&mut self, key: &str) -> Option<&'a Node> {
        let entries = self.entries;
        for (i, (k, v)) in entries.iter().enumerate() {
            if matches!(&k.value, Value::Str(s) if s == key) {
                self.used[i] = true;
                return (v.value != Value::Null).then_some(v);
            }
        }
        None
    }

    /// Whether `key` is written at all, even as `null` or `[]`.
    pub fn present(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| matches!(&k.value, Value::Str(s) if s == key))
    }

    /// The string at `key`, if present.
    pub fn str(&mut self, key: &str) -> DResult<Option<At<String>>> {
        let src = self.src;
        self.get(key).map(|n| src.str(n, key)).transpose()
    }

    /// The integer at `key`, if present.
    pub fn int(&mut self, key: &str) -> DResult<Option<At<i64>>> {
        let src = self.src;
        self.get(key).map(|n| src.int(n, key)).transpose()
    }

    /// The boolean at `key`, if present.
    pub fn bool(&mut self, key: &str) -> DResult<Option<bool>> {
        let src = self.src;
        self.get(key).map(|n| src.bool(n, key)).transpose()
    }

    /// The list at `key`, if present; `null` reads as empty.
    pub fn seq(&mut self, key: &str) -> DResult<Option<&'a [Node]>> {
        let src = self.src;
        self.get(key).map(|n| src.seq(n, key)).transpose()
    }

    /// The string-to-string map at `key` (`labels`, `matchLabels`); empty when absent.
    pub fn string_map(&mut self, key: &str) -> DResult<BTreeMap<String, String>> {
        let src = self.src;
        Ok(self.get(key).map(|n| src.string_map(n, key)).transpose()?.unwrap_or_default())
    }

    /// A list of strings with their positions.
    pub fn strings(&mut self, key: &str) -> DResult<Vec<At<String>>> {
        let src = self.src;
        match self.seq(key)? {
            None => Ok(Vec::new()),
            Some(items) => items.iter().map(|n| src.str(n, key)).collect(),
        }
    }

    /// Marks keys as read without decoding them (status, managedFields, ...).
    pub fn skip(&mut self, keys: &[&str]) {
        for key in keys {
            let _ = self.get(key);
        }
    }

    /// Fails on the first key that no decoder read.
    pub fn finish(self) -> DResult<()> {
        for (i, (k, _)) in self.entries.iter().enumerate() {
            if !self.used[i] {
                let name = match &k.value {
                    Value::Str(s) => s.clone(),
                    other => other.to_string(),
                };
                return Err(self.src.err(k, format!("unknown field {name:?} in {}", self.what)));
            }
        }
        Ok(())
    }
}

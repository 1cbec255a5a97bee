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
    let nodes = match text.len() >= PARALLEL_FROM {
        true => match pieces::parse(text) {
            Some(nodes) => nodes,
            None => parse_text(file, text, MAX_DEPTH)?,
        },
        false => parse_text(file, text, MAX_DEPTH)?,
    };
    Ok(nodes
        .into_iter()
        .flatten()
        .filter(|n| n.value != Value::Null)
        .map(|root| Document { file: file.clone(), root })
        .collect())
}

fn parse_text(file: &Arc<str>, text: &str, depth: usize) -> Result<Vec<Option<Node>>, Diagnostic> {
    serde_saphyr::from_multiple_with_options(text, options(depth)).map_err(|e| {
        let (line, col) = e.location().map(|l| (l.line() as u32, l.column() as u32)).unwrap_or((0, 0));
        Diagnostic::error(Pos::new(file, line, col), first_line(&e.without_snippet().to_string()))
    })
}

/// From this size a text is cut into its documents, and a `kind: List`
/// into its items, and the pieces are parsed on every core: a 150,000-pod
/// `kubectl get pods -A -o yaml` is 68 MB, and the parser reads about
/// 10 MB/s on one core.
pub const PARALLEL_FROM: usize = 1 << 20;

/// Cutting a text where YAML itself must start anew, and parsing the pieces
/// in parallel. A line `---` at column 0 always starts a document; in a
/// List, a line starting `- ` at column 0 after `items:` always starts an
/// item (content inside an item is indented). Any piece that does not parse
/// alone (an alias to an anchor in another item, a syntax error) gives up:
/// the caller parses the whole text, so errors and edge cases are exactly
/// the one-piece parser's.
pub mod pieces {
    use super::{Node, Value, MAX_DEPTH};
    use std::sync::Arc;

    struct Job<'a> {
        text: std::borrow::Cow<'a, str>,
        first_line: u32,
        depth: usize,
        /// A List item: the piece parses as a list of that one item.
        item: bool,
    }

    enum Doc {
        Plain(usize),
        List { frame: usize, items: std::ops::Range<usize> },
    }

    /// Byte offsets of line starts, with 1-based line numbers.
    fn lines(text: &str) -> Vec<(usize, &str)> {
        let mut out = Vec::new();
        let mut at = 0;
        for l in text.split_inclusive('\n') {
            out.push((at, l));
            at += l.len();
        }
        out
    }

    pub(super) fn parse(text: &str) -> Option<Vec<Option<Node>>> {
        let (jobs, plan) = cut(text);
        let mut results = run(&jobs, &|nodes, _| Some(nodes))?;
        assemble(&mut results, plan)
    }

    /// Every object root of the text (each document, each List item, and
    /// each List without its items), handed to `each` on the core that
    /// parsed it and dropped there, in order; None as for `parse`.
    pub fn map_roots<T: Send>(text: &str, each: &(dyn Fn(Node) -> T + Sync)) -> Option<Vec<T>> {
        let (jobs, _) = cut(text);
        let per_job = run(&jobs, &|nodes, item| {
            let roots: Vec<Node> = nodes.into_iter().flatten().filter(|n| n.value != Value::Null).collect();
            if !item {
                return Some(roots.into_iter().map(each).collect::<Vec<T>>());
            }
            let [Node { value: Value::Seq(one), .. }] = &roots[..] else { return None };
            if one.len() != 1 {
                return None;
            }
            let Some(Node { value: Value::Seq(mut one), .. }) = roots.into_iter().next() else { return None };
            Some(vec![each(one.pop()?)])
        })?;
        Some(per_job.into_iter().flatten().collect())
    }

    fn cut(text: &str) -> (Vec<Job<'_>>, Vec<Doc>) {
        let lines = lines(text);
        // Documents: [start line index, end line index).
        let mut docs = Vec::new();
        let mut start = 0;
        for (i, (_, l)) in lines.iter().enumerate() {
            let marker = l.trim_end() == "---" || l.starts_with("--- ");
            if marker && i > start {
                docs.push(start..i);
                start = i;
            }
        }
        docs.push(start..lines.len());
        let span = |r: &std::ops::Range<usize>| -> &str {
            let from = lines.get(r.start).map(|(o, _)| *o).unwrap_or(text.len());
            let to = lines.get(r.end).map(|(o, _)| *o).unwrap_or(text.len());
            &text[from..to]
        };
        let mut jobs: Vec<Job<'_>> = Vec::new();
        let mut plan = Vec::new();
        for d in &docs {
            let items_at = (d.start..d.end).find(|&i| lines[i].1.trim_end() == "items:");
            let item_starts: Vec<usize> = match items_at {
                Some(at) => (at + 1..d.end)
                    .take_while(|&i| {
                        let l = lines[i].1;
                        l.starts_with("- ")
                            || l.trim_end() == "-"
                            || l.starts_with(' ')
                            || l.trim().is_empty()
                            || l.starts_with('#')
                    })
                    .filter(|&i| lines[i].1.starts_with("- ") || lines[i].1.trim_end() == "-")
                    .collect(),
                None => Vec::new(),
            };
            if item_starts.len() < 2 {
                plan.push(Doc::Plain(jobs.len()));
                jobs.push(Job { text: span(d).into(), first_line: d.start as u32 + 1, depth: MAX_DEPTH, item: false });
                continue;
            }
            // The items end where the first line at column 0 that is not an item is.
            let after = item_starts[item_starts.len() - 1];
            let end = (after + 1..d.end)
                .find(|&i| {
                    let l = lines[i].1;
                    !(l.starts_with(' ') || l.trim().is_empty() || l.starts_with('#'))
                })
                .unwrap_or(d.end);
            // The List without its items, every item line blanked so the
            // lines keep their numbers.
            let mut frame = String::new();
            for (i, (_, l)) in lines.iter().enumerate().take(d.end).skip(d.start) {
                if i >= item_starts[0] && i < end {
                    frame.push('\n');
                } else {
                    frame.push_str(l);
                }
            }
            let frame_job = jobs.len();
            jobs.push(Job { text: frame.into(), first_line: d.start as u32 + 1, depth: MAX_DEPTH, item: false });
            let first_item = jobs.len();
            for (k, &s) in item_starts.iter().enumerate() {
                let e = item_starts.get(k + 1).copied().unwrap_or(end);
                // An item is one level below the List: the same depth limit.
                jobs.push(Job {
                    text: span(&(s..e)).into(),
                    first_line: s as u32 + 1,
                    depth: MAX_DEPTH - 2,
                    item: true,
                });
            }
            plan.push(Doc::List { frame: frame_job, items: first_item..jobs.len() });
        }
        (jobs, plan)
    }

    fn assemble(results: &mut [Vec<Option<Node>>], plan: Vec<Doc>) -> Option<Vec<Option<Node>>> {
        let mut out = Vec::new();
        for d in plan {
            match d {
                Doc::Plain(j) => out.append(&mut std::mem::take(&mut results[j])),
                Doc::List { frame, items } => {
                    let mut items_out = Vec::with_capacity(items.len());
                    for j in items {
                        // Each piece is a list of one item.
                        let Value::Seq(mut one) = single(std::mem::take(&mut results[j]))?.value else { return None };
                        if one.len() != 1 {
                            return None;
                        }
                        items_out.push(one.pop()?);
                    }
                    let mut root = single(std::mem::take(&mut results[frame]))?;
                    let Value::Map(entries) = &mut root.value else { return None };
                    let slot = entries.iter_mut().find(|(k, _)| matches!(&k.value, Value::Str(s) if s == "items"))?;
                    if slot.1.value != Value::Null {
                        return None;
                    }
                    // A block list starts where its first item does.
                    (slot.1.line, slot.1.col) = (items_out[0].line, items_out[0].col);
                    slot.1.value = Value::Seq(items_out);
                    out.push(Some(root));
                }
            }
        }
        Some(out)
    }

    /// The one document a piece holds.
    fn single(mut docs: Vec<Option<Node>>) -> Option<Node> {
        docs.retain(|d| d.is_some());
        if docs.len() == 1 {
            docs.pop().flatten()
        } else {
            None
        }
    }

    /// Parses the jobs on every core, each result's lines moved to where
    /// its piece starts; None if any piece fails.
    fn run<R: Send>(jobs: &[Job<'_>], f: &(dyn Fn(Vec<Option<Node>>, bool) -> Option<R> + Sync)) -> Option<Vec<R>> {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(8);
        let total: usize = jobs.iter().map(|j| j.text.len()).sum();
        let per = total / threads + 1;
        // Contiguous runs of jobs of about equal bytes, one per thread.
        let mut groups: Vec<std::ops::Range<usize>> = Vec::new();
        let (mut from, mut bytes) = (0, 0);
        for (i, j) in jobs.iter().enumerate() {
            bytes += j.text.len();
            if bytes >= per {
                groups.push(from..i + 1);
                from = i + 1;
                bytes = 0;
            }
        }
        if from < jobs.len() {
            groups.push(from..jobs.len());
        }
        let file: Arc<str> = Arc::from("");
        let parsed: Vec<Option<Vec<R>>> = std::thread::scope(|s| {
            let handles: Vec<_> = groups
                .iter()
                .map(|g| {
                    let file = file.clone();
                    s.spawn(move || {
                        jobs[g.clone()]
                            .iter()
                            .map(|j| {
                                let mut nodes = super::parse_text(&file, &j.text, j.depth).ok()?;
                                for n in nodes.iter_mut().flatten() {
                                    shift(n, j.first_line - 1);
                                }
                                f(nodes, j.item)
                            })
                            .collect::<Option<Vec<_>>>()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().ok().flatten()).collect()
        });
        let mut out = Vec::with_capacity(jobs.len());
        for p in parsed {
            out.extend(p?);
        }
        Some(out)
    }

    fn shift(n: &mut Node, by: u32) {
        if by == 0 {
            return;
        }
        n.line += by;
        match &mut n.value {
            Value::Seq(items) => items.iter_mut().for_each(|i| shift(i, by)),
            Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
                shift(k, by);
                shift(v, by);
            }),
            _ => {}
        }
    }
}

/// How deep mappings and lists may nest.
pub const MAX_DEPTH: usize = 40;

/// Parser limits. The defaults guard against hostile input (1,024 documents,
/// 250,000 nodes); policy repositories and `kubectl get pods -A` snapshots of
/// large clusters are legitimately bigger, so the counts are raised while the
/// nesting depth and alias limits stay.
fn options(depth: usize) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_documents = 1_000_000;
    budget.max_nodes = 100_000_000;
    budget.max_events = 400_000_000;
    budget.max_total_scalar_bytes = 1 << 30;
    budget.max_reader_input_bytes = Some(1 << 30);
    // Kubernetes objects nest about a dozen levels (managedFields the most).
    // The deserializer recurses once per level with large frames in debug
    // builds; 40 levels stay well inside a 2 MiB thread stack.
    budget.max_depth = depth;
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

    /// A kubectl-style List of `n` pods, over the parallel threshold.
    fn big_list(n: usize, item: &dyn Fn(usize) -> String) -> String {
        let mut t = String::from("apiVersion: v1\nitems:\n");
        for i in 0..n {
            t.push_str(&item(i));
        }
        t.push_str("kind: List\nmetadata:\n  resourceVersion: \"\"\n");
        assert!(t.len() >= PARALLEL_FROM, "{} bytes", t.len());
        t
    }

    fn pod(i: usize) -> String {
        format!(
            "- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: p{i}\n    namespace: ns{}\n    labels: {{app: a{}, tier: \"{}\"}}\n  spec:\n    nodeName: n1\n    containers:\n    - name: c\n      ports: [{{containerPort: 8080, name: http}}]\n  # a comment inside the item\n\n  status: {{phase: Running, podIP: 10.0.{}.{}}}\n",
            i % 7,
            i % 13,
            i % 5,
            i / 250,
            i % 250
        )
    }

    /// Cut into pieces on every core, a large text parses to exactly the
    /// tree the one-piece parser builds, every line and column included:
    /// a List in the middle of other documents, and the List's own fields
    /// after its items.
    #[test]
    fn a_large_text_parsed_in_pieces_is_the_same_tree() {
        let list = big_list(6_000, &pod);
        let text = format!("kind: Namespace\napiVersion: v1\nmetadata: {{name: ns0}}\n---\n{list}---\n# last\nkind: Namespace\napiVersion: v1\nmetadata: {{name: ns1}}\n");
        let whole = parse_text(&file(), &text, MAX_DEPTH).expect("the text is valid YAML");
        let cut = pieces::parse(&text).expect("cut into pieces");
        assert_eq!(cut.len(), 3);
        assert!(cut == whole, "first difference: {:?}", first_difference(&cut, &whole));
        let Some(Node { value: Value::Map(m), .. }) = &cut[1] else { panic!("a List") };
        let items = &m.iter().find(|(k, _)| k.value == Value::Str("items".into())).expect("the List has items").1;
        let Value::Seq(items) = &items.value else { panic!("items") };
        assert_eq!(items.len(), 6_000);
        assert_eq!(items[5_999].line, 7 + 5_999 * 14, "the last item keeps its line");
        // The objects handed out one by one are the same roots, in order:
        // the first Namespace, the List without its items, the items, the last.
        let roots = pieces::map_roots(&text, &|n| n).expect("roots");
        assert_eq!(roots.len(), 2 + 1 + 6_000);
        assert_eq!(roots[2 + 5_999], items[5_999]);
        assert_eq!(roots[2 + 6_000].line, 84_012);
    }

    fn first_difference(a: &[Option<Node>], b: &[Option<Node>]) -> Option<String> {
        fn walk(a: &Node, b: &Node) -> Option<String> {
            if (a.line, a.col) != (b.line, b.col) {
                return Some(format!("{}:{} vs {}:{}", a.line, a.col, b.line, b.col));
            }
            match (&a.value, &b.value) {
                (Value::Seq(x), Value::Seq(y)) if x.len() == y.len() => x.iter().zip(y).find_map(|(p, q)| walk(p, q)),
                (Value::Map(x), Value::Map(y)) if x.len() == y.len() => {
                    x.iter().zip(y).find_map(|((k1, v1), (k2, v2))| walk(k1, k2).or_else(|| walk(v1, v2)))
                }
                (x, y) if x == y => None,
                (x, y) => Some(format!("at {}:{}: {} vs {}", a.line, a.col, x.type_name(), y.type_name())),
            }
        }
        a.iter().zip(b).find_map(|(x, y)| match (x, y) {
            (Some(x), Some(y)) => walk(x, y),
            (None, None) => None,
            _ => Some("a document is missing".into()),
        })
    }

    /// What does not parse in pieces falls back to one piece: an alias to an
    /// anchor in another item parses whole, and an error points where the
    /// one-piece parser points.
    #[test]
    fn what_pieces_cannot_parse_falls_back_to_the_whole_text() {
        let list = big_list(6_000, &|i| {
            if i == 0 {
                "- &first {apiVersion: v1, kind: Namespace, metadata: {name: a}}\n".to_string()
            } else if i == 5_000 {
                "- *first\n".to_string()
            } else {
                pod(i)
            }
        });
        assert!(pieces::parse(&list).is_none(), "the alias needs the whole text");
        let docs = parse_documents(&file(), &list).expect("parsed whole");
        assert_eq!(docs.len(), 1);
        let broken = big_list(6_000, &|i| if i == 4_321 { "- {a: [}\n".to_string() } else { pod(i) });
        let whole = parse_text(&file(), &broken, MAX_DEPTH).unwrap_err();
        let got = parse_documents(&file(), &broken).unwrap_err();
        assert_eq!((got.pos.line, got.pos.col, got.message), (whole.pos.line, whole.pos.col, whole.message));
    }
}

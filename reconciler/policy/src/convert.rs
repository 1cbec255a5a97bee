//! `netward convert --to v1alpha2`: v1alpha1 AdminNetworkPolicy and
//! BaselineAdminNetworkPolicy rewritten as v1alpha2 ClusterNetworkPolicy,
//! the way network-policy-api v0.2.0 (NPEP-285, NPEP-187) maps them:
//! `tier: Admin` / `tier: Baseline`, `Allow` -> `Accept`, `ports` ->
//! `protocols`. A BANP has no priority; it gets 1000, the end of the
//! Baseline tier, where a BANP ran. Every other document of a file is kept
//! byte for byte; a converted document keeps the comments above it, but not
//! the ones inside it (it is written anew, in block style).

use std::fmt::Write as _;
use std::sync::Arc;

use crate::diag::{DResult, Diagnostic, Pos};
use crate::manifest::yaml::{parse_documents, Node, Value};

/// The priority a converted BaselineAdminNetworkPolicy gets: last in its tier.
pub const BASELINE_PRIORITY: i64 = 1000;

/// One file, converted: its new text and how many documents changed.
pub struct Converted {
    /// The file's text with every v1alpha1 ANP/BANP rewritten.
    pub text: String,
    /// How many documents were rewritten.
    pub changed: usize,
}

/// Converts every v1alpha1 ANP/BANP document of a file's text.
pub fn to_v1alpha2(file: &Arc<str>, text: &str) -> DResult<Converted> {
    let mut out = String::new();
    let mut changed = 0;
    let mut first_line = 1u32;
    for chunk in split_documents(text) {
        let docs = parse_documents(file, chunk).map_err(|d| shifted(d, file, first_line))?;
        let lines = chunk.lines().count() as u32;
        let rewritten = match docs.as_slice() {
            [doc] => convert_doc(&doc.root).map_err(|d| shifted(d, file, first_line))?,
            _ => None,
        };
        match rewritten {
            Some(body) => {
                changed += 1;
                // Keep the separator and the comments above the object.
                for l in chunk.lines().take_while(|l| l.trim().is_empty() || l.starts_with('#') || l.trim() == "---") {
                    out.push_str(l);
                    out.push('\n');
                }
                out.push_str(&body);
            }
            None => out.push_str(chunk),
        }
        first_line += lines;
    }
    Ok(Converted { text: out, changed })
}

/// A diagnostic of one chunk placed in the whole file.
fn shifted(d: Diagnostic, file: &Arc<str>, first_line: u32) -> Diagnostic {
    Diagnostic { pos: Pos::new(file, d.pos.line + first_line - 1, d.pos.col), ..d }
}

/// The file cut before every `---` line, each piece with its separator.
fn split_documents(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if at > start && (line.trim_end() == "---" || line.starts_with("--- ")) {
            out.push(&text[start..at]);
            start = at;
        }
        at += line.len();
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

fn get<'a>(n: &'a Node, key: &str) -> Option<&'a Node> {
    match &n.value {
        Value::Map(m) => m.iter().find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key)).map(|(_, v)| v),
        _ => None,
    }
}

fn str_of(n: Option<&Node>) -> Option<&str> {
    match n.map(|n| &n.value) {
        Some(Value::Str(s)) => Some(s),
        _ => None,
    }
}

fn node(value: Value, at: &Node) -> Node {
    Node { value, line: at.line, col: at.col }
}

fn key(s: &str, at: &Node) -> Node {
    node(Value::Str(s.into()), at)
}

/// The converted object, as YAML text, or None when the document is not a
/// v1alpha1 ANP/BANP.
fn convert_doc(root: &Node) -> DResult<Option<String>> {
    let baseline = match (str_of(get(root, "apiVersion")), str_of(get(root, "kind"))) {
        (Some("policy.networking.k8s.io/v1alpha1"), Some("AdminNetworkPolicy")) => false,
        (Some("policy.networking.k8s.io/v1alpha1"), Some("BaselineAdminNetworkPolicy")) => true,
        _ => return Ok(None),
    };
    let Value::Map(top) = &root.value else { return Ok(None) };
    let mut out = Vec::new();
    for (k, v) in top {
        let name = str_of(Some(k)).unwrap_or("");
        let v = match name {
            "apiVersion" => node(Value::Str("policy.networking.k8s.io/v1alpha2".into()), v),
            "kind" => node(Value::Str("ClusterNetworkPolicy".into()), v),
            "status" => continue,
            "spec" => spec(v, baseline)?,
            _ => v.clone(),
        };
        out.push((k.clone(), v));
    }
    let mut text = String::new();
    emit_map(&out, 0, &mut text);
    Ok(Some(text))
}

fn spec(n: &Node, baseline: bool) -> DResult<Node> {
    let Value::Map(entries) = &n.value else { return Ok(n.clone()) };
    let tier = if baseline { "Baseline" } else { "Admin" };
    let mut out = vec![(key("tier", n), node(Value::Str(tier.into()), n))];
    if baseline {
        out.push((key("priority", n), node(Value::Int(BASELINE_PRIORITY), n)));
    }
    for (k, v) in entries {
        match str_of(Some(k)) {
            Some(dir @ ("ingress" | "egress")) => {
                let Value::Seq(rules) = &v.value else {
                    out.push((k.clone(), v.clone()));
                    continue;
                };
                if rules.len() > 25 {
                    return Err(err(&rules[25], format!("{dir}: a ClusterNetworkPolicy holds at most 25 rules")));
                }
                let rules = rules.iter().map(rule).collect::<DResult<Vec<Node>>>()?;
                out.push((k.clone(), node(Value::Seq(rules), v)));
            }
            _ => out.push((k.clone(), v.clone())),
        }
    }
    Ok(node(Value::Map(out), n))
}

fn err(n: &Node, msg: String) -> Diagnostic {
    Diagnostic::error(Pos::new(&Arc::from(""), n.line, n.col), msg)
}

fn rule(n: &Node) -> DResult<Node> {
    let Value::Map(entries) = &n.value else { return Ok(n.clone()) };
    let mut out = Vec::new();
    for (k, v) in entries {
        match str_of(Some(k)) {
            Some("action") if str_of(Some(v)) == Some("Allow") => {
                out.push((k.clone(), node(Value::Str("Accept".into()), v)));
            }
            Some(peers @ ("from" | "to")) => {
                if let Value::Seq(items) = &v.value {
                    if items.len() > 25 {
                        return Err(err(
                            &items[25],
                            format!("{peers}: a ClusterNetworkPolicy rule holds at most 25 peers"),
                        ));
                    }
                }
                out.push((k.clone(), v.clone()));
            }
            Some("ports") => {
                let Value::Seq(items) = &v.value else { return Err(err(v, "ports: expected a list".into())) };
                if items.len() > 25 {
                    return Err(err(
                        &items[25],
                        "ports: a ClusterNetworkPolicy rule holds at most 25 protocols".into(),
                    ));
                }
                let protocols = items.iter().map(port).collect::<DResult<Vec<Node>>>()?;
                out.push((key("protocols", k), node(Value::Seq(protocols), v)));
            }
            _ => out.push((k.clone(), v.clone())),
        }
    }
    Ok(node(Value::Map(out), n))
}

/// One v1alpha1 port as a v1alpha2 protocol (NPEP-187).
fn port(n: &Node) -> DResult<Node> {
    if let Some(name) = get(n, "namedPort") {
        return Ok(node(Value::Map(vec![(key("destinationNamedPort", n), name.clone())]), n));
    }
    let (body, single) = match (get(n, "portNumber"), get(n, "portRange")) {
        (Some(b), None) => (b, true),
        (None, Some(b)) => (b, false),
        _ => return Err(err(n, "a port needs exactly one of portNumber, portRange, namedPort".into())),
    };
    let proto = match str_of(get(body, "protocol")).unwrap_or("TCP") {
        "TCP" => "tcp",
        "UDP" => "udp",
        "SCTP" => "sctp",
        other => return Err(err(body, format!("unknown protocol {other:?}: use TCP, UDP or SCTP"))),
    };
    let int = |k: &str| match get(body, k).map(|x| &x.value) {
        Some(Value::Int(i)) => Ok(*i),
        _ => Err(err(body, format!("{k}: expected a port number"))),
    };
    let dest = if single {
        Value::Map(vec![(key("number", body), node(Value::Int(int("port")?), body))])
    } else {
        let (start, end) = (int("start")?, int("end")?);
        if start == end {
            // v1alpha2 requires start < end: a one-port range is a number.
            Value::Map(vec![(key("number", body), node(Value::Int(start), body))])
        } else {
            let range = vec![
                (key("start", body), node(Value::Int(start), body)),
                (key("end", body), node(Value::Int(end), body)),
            ];
            Value::Map(vec![(key("range", body), node(Value::Map(range), body))])
        }
    };
    let inner = node(Value::Map(vec![(key("destinationPort", body), node(dest, body))]), body);
    Ok(node(Value::Map(vec![(key(proto, n), inner)]), n))
}

/// A string as YAML: plain when it cannot be read as anything else.
fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Str(s) => {
            let plain = !s.is_empty()
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
                && !s.as_bytes()[0].is_ascii_digit()
                && !s.starts_with(['-', '.'])
                && !["true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"]
                    .contains(&s.to_ascii_lowercase().as_str());
            if plain {
                s.clone()
            } else {
                format!("'{}'", s.replace('\'', "''"))
            }
        }
        Value::Seq(_) | Value::Map(_) => unreachable!("collections are emitted as blocks"),
    }
}

fn emit_map(entries: &[(Node, Node)], indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for (k, v) in entries {
        let _ = write!(out, "{pad}{}:", scalar(&k.value));
        emit_value(v, indent, out);
    }
}

/// A value after `key:` or `- `: inline when scalar or empty, else a block.
fn emit_value(v: &Node, indent: usize, out: &mut String) {
    match &v.value {
        Value::Map(m) if m.is_empty() => out.push_str(" {}\n"),
        Value::Seq(s) if s.is_empty() => out.push_str(" []\n"),
        Value::Map(m) => {
            out.push('\n');
            emit_map(m, indent + 2, out);
        }
        Value::Seq(items) => {
            out.push('\n');
            emit_seq(items, indent, out);
        }
        other => {
            let _ = writeln!(out, " {}", scalar(other));
        }
    }
}

fn emit_seq(items: &[Node], indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for item in items {
        match &item.value {
            Value::Map(m) if !m.is_empty() => {
                // `- first: ...` then the other keys under it.
                let mut first = String::new();
                emit_map(&m[..1], indent + 2, &mut first);
                let _ = write!(out, "{pad}- {}", &first[indent + 2..]);
                emit_map(&m[1..], indent + 2, out);
            }
            Value::Seq(s) if !s.is_empty() => {
                let _ = writeln!(out, "{pad}-");
                emit_seq(s, indent + 2, out);
            }
            _ => {
                out.push_str(&pad);
                out.push('-');
                emit_value(item, indent, out);
            }
        }
    }
}

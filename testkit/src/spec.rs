//! Test files: a cluster, policies, and the connectivity expected.
//!
//! ```yaml
//! name: three-tier                     # optional; defaults to the file name
//! cluster: ../cluster.yaml             # or a list; paths relative to this file
//! pods: [{metadata: {..}, spec: {..}, status: {..}}]   # and/or inline pods (and `namespaces`)
//! policies: [..]                       # files or directories, relative to this file
//! cases:
//!   - {from: frontend/web, to: backend/api, port: 8080/TCP, expect: allow}
//! tables:                              # whole truth tables: every other pair is denied
//!   - port: 5432/TCP
//!     allowed:
//!       backend/api: [database/postgres]
//! ```
//! The schema is in `testkit/schema/test.schema.json`. Errors point at the
//! file, line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use netward::diag::{DResult, Diagnostic, Pos};
use netward::manifest::decode::cluster::{decode_namespace, decode_pod};
use netward::manifest::fields::Src;
use netward::manifest::yaml::{parse_documents, Value};
use netward::model::port::FlowPort;
use netward::model::Cluster;

/// One expectation about one connection.
#[derive(Clone, Debug)]
pub struct Case {
    pub from: String,
    pub to: String,
    pub port: FlowPort,
    pub allow: bool,
    pub pos: Pos,
}

/// A whole truth table for one port.
#[derive(Clone, Debug)]
pub struct Table {
    pub port: FlowPort,
    /// Source -> destinations it may reach; every other pair is expected denied.
    pub allowed: BTreeMap<String, Vec<String>>,
    pub pos: Pos,
}

/// A parsed test file.
#[derive(Clone, Debug)]
pub struct TestFile {
    pub name: String,
    pub path: PathBuf,
    pub clusters: Vec<PathBuf>,
    /// Namespaces and pods written in the test file itself (merged with `clusters`).
    pub inline: Cluster,
    pub policies: Vec<PathBuf>,
    pub cases: Vec<Case>,
    pub tables: Vec<Table>,
}

fn port(src: Src<'_>, n: &netward::manifest::yaml::Node) -> DResult<FlowPort> {
    let p = src.str(n, "port")?;
    FlowPort::parse(&p.value).map_err(|e| Diagnostic::error(p.pos, e))
}

/// `a/b/../c` -> `a/c`, without touching the file system, so reports show
/// short paths.
fn normalize(p: PathBuf) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in p.components() {
        match c {
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    if out.is_empty() {
        PathBuf::from(".")
    } else {
        out.iter().collect()
    }
}

/// Reads one test file.
pub fn load(path: &Path) -> DResult<TestFile> {
    let name: Arc<str> = Arc::from(path.display().to_string());
    let text = std::fs::read_to_string(path)
        .map_err(|e| Diagnostic::error(Pos::file_only(&name), format!("cannot read: {e}")))?;
    let docs = parse_documents(&name, &text)?;
    let doc = docs.first().ok_or_else(|| Diagnostic::error(Pos::file_only(&name), "empty test file"))?;
    let src = Src { file: &name, text: &text };
    let mut f = src.fields(&doc.root, "test file")?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let paths = |v: Vec<netward::manifest::fields::At<String>>| {
        v.into_iter().map(|a| normalize(dir.join(a.value))).collect::<Vec<_>>()
    };
    let test_name = f.str("name")?.map(|a| a.value).unwrap_or_else(|| {
        path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| name.to_string())
    });
    let clusters = match f.get("cluster") {
        Some(n) if matches!(n.value, Value::Str(_)) => vec![normalize(dir.join(src.str(n, "cluster")?.value))],
        Some(_) => paths(f.strings("cluster")?),
        None => Vec::new(),
    };
    // Namespaces and pods may also be written inline, as Kubernetes objects
    // without apiVersion/kind.
    let mut inline = Cluster::default();
    for n in f.seq("namespaces")?.unwrap_or(&[]) {
        let ns = decode_namespace(src, n)?;
        inline.namespaces.insert(ns.name.clone(), ns);
    }
    for n in f.seq("pods")?.unwrap_or(&[]) {
        inline.pods.push(decode_pod(src, n)?);
    }
    if clusters.is_empty() && inline.pods.is_empty() {
        return Err(Diagnostic::error(f.pos(), "a test file needs `cluster` (snapshot files) or inline `pods`"));
    }
    let policies = paths(f.strings("policies")?);
    if policies.is_empty() {
        return Err(Diagnostic::error(f.pos(), "a test file needs `policies` (files or directories)"));
    }
    let mut cases = Vec::new();
    for c in f.seq("cases")?.unwrap_or(&[]) {
        let mut cf = src.fields(c, "case")?;
        let need = |x: Option<netward::manifest::fields::At<String>>, what: &str| {
            x.map(|a| a.value).ok_or_else(|| src.err(c, format!("a case needs `{what}`")))
        };
        let from = need(cf.str("from")?, "from")?;
        let to = need(cf.str("to")?, "to")?;
        let p = cf.get("port").ok_or_else(|| src.err(c, "a case needs `port` (e.g. 80/TCP)"))?;
        let port = port(src, p)?;
        let expect = cf.str("expect")?.ok_or_else(|| src.err(c, "a case needs `expect: allow|deny`"))?;
        let allow = match expect.value.as_str() {
            "allow" => true,
            "deny" => false,
            other => return Err(Diagnostic::error(expect.pos, format!("expect must be allow or deny, not {other:?}"))),
        };
        cf.finish()?;
        cases.push(Case { from, to, port, allow, pos: src.pos(c) });
    }
    let mut tables = Vec::new();
    for t in f.seq("tables")?.unwrap_or(&[]) {
        let mut tf = src.fields(t, "table")?;
        let p = tf.get("port").ok_or_else(|| src.err(t, "a table needs `port`"))?;
        let port = port(src, p)?;
        let mut allowed = BTreeMap::new();
        if let Some(a) = tf.get("allowed") {
            let Value::Map(entries) = &a.value else {
                return Err(src.err(a, "allowed: expected a mapping of source to destinations"));
            };
            for (k, v) in entries {
                let from = src.str(k, "source")?.value;
                let tos: Vec<String> = src
                    .seq(v, "destinations")?
                    .iter()
                    .map(|x| src.str(x, "destination").map(|s| s.value))
                    .collect::<DResult<_>>()?;
                allowed.insert(from, tos);
            }
        }
        tf.finish()?;
        tables.push(Table { port, allowed, pos: src.pos(t) });
    }
    f.finish()?;
    if cases.is_empty() && tables.is_empty() {
        return Err(Diagnostic::error(
            Pos::new(&name, doc.root.line, doc.root.col),
            "a test file needs `cases` or `tables`",
        ));
    }
    Ok(TestFile { name: test_name, path: path.to_path_buf(), clusters, inline, policies, cases, tables })
}

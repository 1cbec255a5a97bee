//! Loading policy repositories and cluster snapshots from disk.
//!
//! The only module of the engine that touches the file system. Everything it
//! finds wrong is collected (not just the first problem) so `validate` can
//! list it all.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diag::{self, DResult, Diagnostic, Pos};
use crate::manifest::decode::cluster::{decode_namespace, decode_node, decode_pod};
use crate::manifest::decode::{calico, k8s, npapi};
use crate::manifest::fields::Src;
use crate::manifest::kinds::{self, Class};
use crate::manifest::yaml::{parse_documents, Node, Value};
use crate::model::policy::{PolicyKind, PolicySet, Tier};
use crate::model::Cluster;

/// What loading found: the objects that decoded, and every diagnostic.
#[derive(Debug, Default)]
pub struct Loaded<T> {
    /// What decoded; objects that failed are left out.
    pub value: T,
    /// Every error and warning found.
    pub diagnostics: Vec<Diagnostic>,
}

impl<T> Loaded<T> {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity == diag::Severity::Error)
    }

    /// The value if nothing was wrong, otherwise every error.
    pub fn into_result(self) -> Result<(T, Vec<Diagnostic>), Vec<Diagnostic>> {
        if self.has_errors() {
            Err(self.diagnostics)
        } else {
            Ok((self.value, self.diagnostics))
        }
    }
}

/// Every `*.yaml`, `*.yml` and `*.json` file under the paths, recursively,
/// sorted; hidden directories (`.git`) are skipped. A path that is a file is
/// taken whatever its extension.
pub fn collect_files(paths: &[PathBuf], diags: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out, diags);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            diags.push(Diagnostic::error(Pos::file_only(&p.display().to_string()), "no such file or directory"));
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, diags: &mut Vec<Diagnostic>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            diags.push(Diagnostic::error(
                Pos::file_only(&dir.display().to_string()),
                format!("cannot read directory: {e}"),
            ));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        let hidden = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            walk(&p, out, diags);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) {
            out.push(p);
        }
    }
}

/// A Kubernetes object found in a file, with its apiVersion and kind
/// (either may be missing: the loader decides what that means).
struct Object<'a> {
    api_version: Option<String>,
    kind: Option<String>,
    /// Where to point at: the `kind` value, else the object.
    at: &'a Node,
    node: &'a Node,
}

fn field<'a>(n: &'a Node, key: &str) -> Option<&'a Node> {
    let Value::Map(m) = &n.value else { return None };
    m.iter().find_map(|(k, v)| matches!(&k.value, Value::Str(kk) if kk == key).then_some(v))
}

fn str_field<'a>(n: &'a Node, key: &str) -> Option<&'a str> {
    match &field(n, key)?.value {
        Value::Str(s) => Some(s.as_str()),
        _ => None,
    }
}

/// Objects of a document, looking inside `kind: List` wrappers (a List
/// inside a List is as far as kubectl ever nests them).
fn objects<'a>(n: &'a Node, out: &mut Vec<Object<'a>>) {
    collect_objects(n, out, 0);
}

fn collect_objects<'a>(n: &'a Node, out: &mut Vec<Object<'a>>, depth: usize) {
    let (api_version, kind) = (str_field(n, "apiVersion"), str_field(n, "kind"));
    if api_version.is_none() && kind.is_none() {
        return;
    }
    if let (Some(k), Some(items)) = (kind, field(n, "items")) {
        if k.ends_with("List") && depth < 2 {
            if let Value::Seq(items) = &items.value {
                items.iter().for_each(|i| collect_objects(i, out, depth + 1));
            }
            return;
        }
    }
    out.push(Object {
        api_version: api_version.map(str::to_string),
        kind: kind.map(str::to_string),
        at: field(n, "kind").unwrap_or(n),
        node: n,
    });
}

struct SourceFile {
    name: Arc<str>,
    text: String,
}

fn read_files(files: &[PathBuf], diags: &mut Vec<Diagnostic>) -> Vec<SourceFile> {
    files
        .iter()
        .filter_map(|p| {
            let name: Arc<str> = Arc::from(p.display().to_string());
            match std::fs::read_to_string(p) {
                Ok(text) => Some(SourceFile { name, text }),
                Err(e) => {
                    diags.push(Diagnostic::error(Pos::file_only(&name), format!("cannot read file: {e}")));
                    None
                }
            }
        })
        .collect()
}

/// Loads every policy object, tier and network set under `paths`.
pub fn load_policies(paths: &[PathBuf]) -> Loaded<PolicySet> {
    let mut diags = Vec::new();
    let files = collect_files(paths, &mut diags);
    let sources = read_files(&files, &mut diags);
    let set = load_policy_texts(sources.iter().map(|s| (s.name.clone(), s.text.as_str())), &mut diags);
    // A directory given that holds no policy at all is most likely the wrong
    // one (a typo, a moved folder): say so, naming it.
    for dir in paths.iter().filter(|p| p.is_dir()) {
        let d = dir.display().to_string();
        let inside = |f: &str| {
            f.strip_prefix(d.as_str()).is_some_and(|r| r.is_empty() || r.starts_with('/') || d.ends_with('/'))
        };
        let found = set.policies.iter().any(|p| inside(&p.origin.file))
            || set.network_sets.iter().any(|n| inside(&n.origin.file))
            || set.tiers.values().any(|t| t.origin.as_ref().is_some_and(|o| inside(&o.file)));
        if !found {
            diags.push(Diagnostic::warning(
                Pos::file_only(&d),
                "no policy objects in this directory (NetworkPolicy, Calico policies, network sets or tiers)",
            ));
        }
    }
    diag::sort(&mut diags);
    Loaded { value: set, diagnostics: diags }
}

/// Loads policies from in-memory texts (file name, contents): what the
/// loader does after reading files, for tests and other sources (Git trees).
pub fn load_policy_texts<'t>(
    texts: impl Iterator<Item = (Arc<str>, &'t str)>,
    diags: &mut Vec<Diagnostic>,
) -> PolicySet {
    let mut set = PolicySet::default();
    for t in Tier::well_known() {
        set.tiers.insert(t.name.clone(), t);
    }
    let mut seen: HashMap<String, Pos> = HashMap::new();
    let mut dup = |key: String, pos: &Pos, what: &str, diags: &mut Vec<Diagnostic>| -> bool {
        if let Some(first) = seen.get(&key) {
            diags.push(Diagnostic::error(pos.clone(), format!("duplicate {what} (first defined at {first})")));
            true
        } else {
            seen.insert(key, pos.clone());
            false
        }
    };
    let mut user_tiers: BTreeMap<String, Pos> = BTreeMap::new();
    for (name, text) in texts {
        let docs = match parse_documents(&name, text) {
            Ok(d) => d,
            Err(e) => {
                diags.push(e);
                continue;
            }
        };
        let src = Src { file: &name, text };
        for doc in &docs {
            let mut objs = Vec::new();
            objects(&doc.root, &mut objs);
            for o in objs {
                let pos = src.pos(o.node);
                match kinds::classify(o.api_version.as_deref(), o.kind.as_deref()) {
                    Class::Policy { kind, legacy_crd } => {
                        let decoded = match kind {
                            PolicyKind::KubernetesNetworkPolicy => k8s::decode(src, o.node, false),
                            PolicyKind::StagedKubernetesNetworkPolicy => k8s::decode(src, o.node, true),
                            k if k.is_cluster_network_policy() => npapi::decode(src, o.node, k),
                            k => calico::decode_policy(src, o.node, k),
                        };
                        match decoded {
                            Ok(mut p) => {
                                if legacy_crd {
                                    p.id.name = kinds::normalize_legacy_name(&p.id.name, &p.tier).to_string();
                                }
                                if !dup(format!("{}", p.id), &pos, &p.id.to_string(), diags) {
                                    set.policies.push(p);
                                }
                            }
                            Err(e) => diags.push(e),
                        }
                    }
                    Class::NetworkSet { global } => match calico::decode_network_set(src, o.node, global) {
                        Ok(s) => {
                            let k = if global { "GlobalNetworkSet" } else { "NetworkSet" };
                            let id = format!("{k} {}/{}", s.namespace.as_deref().unwrap_or(""), s.name);
                            if !dup(id.clone(), &pos, &id, diags) {
                                set.network_sets.push(s);
                            }
                        }
                        Err(e) => diags.push(e),
                    },
                    Class::Tier => match calico::decode_tier(src, o.node) {
                        Ok(t) => {
                            if let Some(first) = user_tiers.get(&t.name) {
                                diags.push(Diagnostic::error(
                                    pos,
                                    format!("duplicate Tier {} (first defined at {first})", t.name),
                                ));
                            } else {
                                user_tiers.insert(t.name.clone(), pos);
                                // A user's Tier object overrides the built-in defaults of a
                                // well-known tier (its order, say).
                                set.tiers.insert(t.name.clone(), t);
                            }
                        }
                        Err(e) => diags.push(e),
                    },
                    Class::Refused(why) => diags.push(src.err(o.at, why)),
                    // Deployments, ConfigMaps, Namespaces, Pods ... are not policy.
                    Class::Other => {}
                }
            }
        }
    }
    check_references(&mut set, diags);
    set
}

/// Checks what refers to what: every policy's tier must exist.
fn check_references(set: &mut PolicySet, diags: &mut Vec<Diagnostic>) {
    let tiers = &set.tiers;
    set.policies.retain(|p| {
        if tiers.contains_key(&p.tier) {
            true
        } else {
            diags.push(Diagnostic::error(
                p.origin.clone(),
                format!("{} is in tier {:?}, which is not defined", p.id, p.tier),
            ));
            false
        }
    });
}

/// Loads and merges cluster snapshots (`kubectl get namespaces,pods -A -o yaml`
/// output, or plain Namespace and Pod documents).
pub fn load_cluster(paths: &[PathBuf]) -> Loaded<Cluster> {
    let mut diags = Vec::new();
    let files = collect_files(paths, &mut diags);
    let sources = read_files(&files, &mut diags);
    let mut cluster = Cluster::default();
    for s in &sources {
        cluster.merge(load_cluster_text(&s.name, &s.text, &mut diags));
    }
    cluster.fill_missing_namespaces();
    diag::sort(&mut diags);
    Loaded { value: cluster, diagnostics: diags }
}

/// One snapshot text.
pub fn load_cluster_text(name: &Arc<str>, text: &str, diags: &mut Vec<Diagnostic>) -> Cluster {
    let src = Src { file: name, text };
    // A large snapshot is decoded piece by piece where it is parsed (every
    // core; each piece's tree dropped as soon as its objects are decoded),
    // so memory holds the model, not the whole YAML tree.
    let pieces = (text.len() >= crate::manifest::yaml::PARALLEL_FROM)
        .then(|| crate::manifest::yaml::pieces::map_roots(text, &|root| decode_objects(src, &root)))
        .flatten();
    let decoded: Vec<Decoded> = match pieces {
        Some(per_root) => per_root.into_iter().flatten().collect(),
        None => match parse_documents(name, text) {
            Ok(docs) => docs.iter().flat_map(|d| decode_objects(src, &d.root)).collect(),
            Err(e) => {
                diags.push(e);
                return Cluster::default();
            }
        },
    };
    let mut cluster = Cluster::default();
    // Each pod's place by identity: the duplicate check stays linear in pods.
    let mut seen: std::collections::HashMap<(String, String), usize> = std::collections::HashMap::new();
    for d in decoded {
        match d {
            Decoded::Namespace(Ok(n)) => {
                cluster.namespaces.insert(n.name.clone(), n);
            }
            Decoded::Node(Ok(n)) => {
                cluster.nodes.insert(n.name.clone(), n);
            }
            Decoded::Pod(Ok(p)) => match seen.entry((p.namespace.clone(), p.name.clone())) {
                std::collections::hash_map::Entry::Occupied(first) => {
                    let first = &cluster.pods[*first.get()];
                    diags.push(Diagnostic::error(
                        p.origin.clone(),
                        format!("duplicate Pod {}/{} (first defined at {})", p.namespace, p.name, first.origin),
                    ));
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(cluster.pods.len());
                    cluster.pods.push(p);
                }
            },
            Decoded::Namespace(Err(e)) | Decoded::Node(Err(e)) | Decoded::Pod(Err(e)) => diags.push(e),
        }
    }
    cluster
}

/// One snapshot object, decoded.
enum Decoded {
    Namespace(DResult<crate::model::Namespace>),
    Node(DResult<crate::model::cluster::Node>),
    Pod(DResult<crate::model::Pod>),
}

/// The Namespaces, Nodes and Pods of one document root (inside Lists too).
fn decode_objects(src: Src<'_>, root: &Node) -> Vec<Decoded> {
    let mut objs = Vec::new();
    objects(root, &mut objs);
    objs.into_iter()
        .filter_map(|o| match (o.api_version.as_deref().unwrap_or(""), o.kind.as_deref().unwrap_or("")) {
            ("v1", "Namespace") => Some(Decoded::Namespace(decode_namespace(src, o.node))),
            ("v1", "Node") => Some(Decoded::Node(decode_node(src, o.node))),
            ("v1", "Pod") => Some(Decoded::Pod(decode_pod(src, o.node))),
            _ => None,
        })
        .collect()
}

/// Endpoints a repository describes itself: its Namespace and Pod objects,
/// and one pod per workload (Deployment, StatefulSet, DaemonSet, ReplicaSet,
/// Job) from its pod template, at a made-up address. For `netward diff`
/// when no cluster snapshot is given.
pub fn cluster_from_manifests(files: &[(Arc<str>, String)]) -> Cluster {
    let mut cluster = Cluster::default();
    let mut ignored = Vec::new();
    let mut next_ip: usize = 0;
    for (name, text) in files {
        cluster.merge(load_cluster_text(name, text, &mut ignored));
        let Ok(docs) = parse_documents(name, text) else { continue };
        let src = Src { file: name, text };
        for doc in &docs {
            let mut objs = Vec::new();
            objects(&doc.root, &mut objs);
            for o in objs {
                if !matches!(o.kind.as_deref(), Some("Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job"))
                {
                    continue;
                }
                if let Some(pod) = template_pod(src, o.node, next_ip) {
                    next_ip += 1;
                    cluster.merge(Cluster { pods: vec![pod], ..Cluster::default() });
                }
            }
        }
    }
    cluster.fill_missing_namespaces();
    cluster
}

fn map_get<'a>(n: &'a Node, key: &str) -> Option<&'a Node> {
    field(n, key)
}

fn template_pod(src: Src<'_>, workload: &Node, n: usize) -> Option<crate::model::Pod> {
    let meta = map_get(workload, "metadata")?;
    let name = match &map_get(meta, "name")?.value {
        Value::Str(s) => s.clone(),
        _ => return None,
    };
    let namespace = match map_get(meta, "namespace").map(|x| &x.value) {
        Some(Value::Str(s)) => s.clone(),
        _ => "default".into(),
    };
    let template = map_get(map_get(workload, "spec")?, "template")?;
    // A pod template has no name of its own: give it the workload's.
    let mut named = template.clone();
    if let Value::Map(entries) = &mut named.value {
        let key = |s: &str| Node { value: Value::Str(s.into()), line: template.line, col: template.col };
        match entries.iter_mut().find(|(k, _)| matches!(&k.value, Value::Str(s) if s == "metadata")) {
            Some((_, Node { value: Value::Map(m), .. })) => {
                m.retain(|(k, _)| !matches!(&k.value, Value::Str(s) if s == "name"));
                m.push((key("name"), key(&name)));
            }
            _ => entries.push((
                key("metadata"),
                Node { value: Value::Map(vec![(key("name"), key(&name))]), line: template.line, col: template.col },
            )),
        }
    }
    let mut pod = decode_pod(src, &named).ok()?;
    pod.name = format!("{name}-0");
    pod.namespace = namespace;
    pod.ips = vec![crate::synth::synthetic_ip(255, n)?];
    pod.node = Some("repo".into());
    pod.phase = "Running".into();
    Some(pod)
}

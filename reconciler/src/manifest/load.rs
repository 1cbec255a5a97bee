//! Loading policy repositories and cluster snapshots from disk.
//!
//! The only module of the engine that touches the file system. Everything it
//! finds wrong is collected (not just the first problem) so `validate` can
//! list it all.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diag::{self, Diagnostic, Pos};
use crate::manifest::fields::Src;
use crate::manifest::yaml::{parse_documents, Node, Value};
use crate::model::cluster::{decode_namespace, decode_pod};
use crate::model::policy::{PolicyKind, PolicySet, Tier};
use crate::model::{calico, k8s, Cluster};

/// What loading found: the objects that decoded, and every diagnostic.
#[derive(Debug, Default)]
pub struct Loaded<T> {
    pub value: T,
    pub diagnostics: Vec<Diagnostic>,
}

impl<T> Loaded<T> {
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

/// A Kubernetes object found in a file, with its apiVersion and kind.
struct Object<'a> {
    api_version: String,
    kind: String,
    node: &'a Node,
}

fn str_field<'a>(n: &'a Node, key: &str) -> Option<&'a str> {
    let Value::Map(m) = &n.value else { return None };
    m.iter().find_map(|(k, v)| match (&k.value, &v.value) {
        (Value::Str(kk), Value::Str(vv)) if kk == key => Some(vv.as_str()),
        _ => None,
    })
}

/// Objects of a document, looking inside `kind: List` wrappers.
fn objects<'a>(n: &'a Node, out: &mut Vec<Object<'a>>) {
    let (Some(api_version), Some(kind)) = (str_field(n, "apiVersion"), str_field(n, "kind")) else {
        return;
    };
    if kind.ends_with("List") {
        if let Value::Map(m) = &n.value {
            for (k, v) in m {
                if matches!(&k.value, Value::Str(s) if s == "items") {
                    if let Value::Seq(items) = &v.value {
                        items.iter().for_each(|i| objects(i, out));
                    }
                }
            }
        }
        return;
    }
    out.push(Object { api_version: api_version.to_string(), kind: kind.to_string(), node: n });
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
    let mut set = load_policy_texts(sources.iter().map(|s| (s.name.clone(), s.text.as_str())), &mut diags);
    check_references(&mut set, &mut diags);
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
                let kind = match (o.api_version.as_str(), o.kind.as_str()) {
                    ("networking.k8s.io/v1", "NetworkPolicy") => Some(PolicyKind::KubernetesNetworkPolicy),
                    ("projectcalico.org/v3", "NetworkPolicy") => Some(PolicyKind::NetworkPolicy),
                    ("projectcalico.org/v3", "GlobalNetworkPolicy") => Some(PolicyKind::GlobalNetworkPolicy),
                    ("projectcalico.org/v3", "StagedNetworkPolicy") => Some(PolicyKind::StagedNetworkPolicy),
                    ("projectcalico.org/v3", "StagedGlobalNetworkPolicy") => {
                        Some(PolicyKind::StagedGlobalNetworkPolicy)
                    }
                    ("projectcalico.org/v3", "StagedKubernetesNetworkPolicy") => {
                        Some(PolicyKind::StagedKubernetesNetworkPolicy)
                    }
                    _ => None,
                };
                if let Some(kind) = kind {
                    let decoded = match kind {
                        PolicyKind::KubernetesNetworkPolicy => k8s::decode(src, o.node, false),
                        PolicyKind::StagedKubernetesNetworkPolicy => k8s::decode(src, o.node, true),
                        k => calico::decode_policy(src, o.node, k),
                    };
                    match decoded {
                        Ok(p) => {
                            if !dup(format!("{}", p.id), &pos, &p.id.to_string(), diags) {
                                set.policies.push(p);
                            }
                        }
                        Err(e) => diags.push(e),
                    }
                    continue;
                }
                match (o.api_version.as_str(), o.kind.as_str()) {
                    ("projectcalico.org/v3", k @ ("NetworkSet" | "GlobalNetworkSet")) => {
                        match calico::decode_network_set(src, o.node, k == "GlobalNetworkSet") {
                            Ok(s) => {
                                let id = format!("{k} {}/{}", s.namespace.as_deref().unwrap_or(""), s.name);
                                if !dup(id.clone(), &pos, &id, diags) {
                                    set.network_sets.push(s);
                                }
                            }
                            Err(e) => diags.push(e),
                        }
                    }
                    ("projectcalico.org/v3", "Tier") => match calico::decode_tier(src, o.node) {
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
                    // Deployments, ConfigMaps, Namespaces, Pods ... are not policy.
                    _ => {}
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
    let mut cluster = Cluster::default();
    let docs = match parse_documents(name, text) {
        Ok(d) => d,
        Err(e) => {
            diags.push(e);
            return cluster;
        }
    };
    let src = Src { file: name, text };
    for doc in &docs {
        let mut objs = Vec::new();
        objects(&doc.root, &mut objs);
        for o in objs {
            match (o.api_version.as_str(), o.kind.as_str()) {
                ("v1", "Namespace") => match decode_namespace(src, o.node) {
                    Ok(n) => {
                        cluster.namespaces.insert(n.name.clone(), n);
                    }
                    Err(e) => diags.push(e),
                },
                ("v1", "Pod") => match decode_pod(src, o.node) {
                    Ok(p) => {
                        if let Some(first) =
                            cluster.pods.iter().find(|q| q.namespace == p.namespace && q.name == p.name)
                        {
                            diags.push(Diagnostic::error(
                                p.origin.clone(),
                                format!("duplicate Pod {}/{} (first defined at {})", p.namespace, p.name, first.origin),
                            ));
                        } else {
                            cluster.pods.push(p);
                        }
                    }
                    Err(e) => diags.push(e),
                },
                _ => {}
            }
        }
    }
    cluster
}

/// Endpoints a repository describes itself: its Namespace and Pod objects,
/// and one pod per workload (Deployment, StatefulSet, DaemonSet, ReplicaSet,
/// Job) from its pod template, at a made-up address. For `netward diff`
/// when no cluster snapshot is given.
pub fn cluster_from_manifests(files: &[(Arc<str>, String)]) -> Cluster {
    let mut cluster = Cluster::default();
    let mut ignored = Vec::new();
    let mut next_ip: u32 = 0;
    for (name, text) in files {
        cluster.merge(load_cluster_text(name, text, &mut ignored));
        let Ok(docs) = parse_documents(name, text) else { continue };
        let src = Src { file: name, text };
        for doc in &docs {
            let mut objs = Vec::new();
            objects(&doc.root, &mut objs);
            for o in objs {
                if !matches!(o.kind.as_str(), "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job") {
                    continue;
                }
                if let Some(pod) = template_pod(src, o.node, next_ip) {
                    next_ip += 1;
                    cluster.pods.retain(|p| !(p.namespace == pod.namespace && p.name == pod.name));
                    cluster.pods.push(pod);
                }
            }
        }
    }
    cluster.fill_missing_namespaces();
    cluster
}

fn map_get<'a>(n: &'a Node, key: &str) -> Option<&'a Node> {
    let Value::Map(m) = &n.value else { return None };
    m.iter().find_map(|(k, v)| matches!(&k.value, Value::Str(s) if s == key).then_some(v))
}

fn template_pod(src: Src<'_>, workload: &Node, n: u32) -> Option<crate::model::Pod> {
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
    pod.ips = vec![std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 255, (n >> 8) as u8, (n & 0xff) as u8 + 1))];
    pod.node = Some("repo".into());
    pod.phase = "Running".into();
    Some(pod)
}

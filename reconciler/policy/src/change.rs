//! What a policy change does: the connections it opens and closes, the rule
//! that decides each one before and after, and the YAML change per object.
//! Pure: revisions come in as loaded policy sets and file texts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;

use crate::analysis::{Analysis, Matrix, Reason, View};
use crate::manifest::decode::npapi::{ADMIN_TIER, BASELINE_TIER};
use crate::model::port::FlowPort;
use crate::model::{Action, Cluster, Endpoint, PolicySet, PortMatch, Protocol};

pub use crate::analysis::Decision;
pub use crate::guard::BrokenGuard;

/// One revision of the repository.
pub struct Revision<'a> {
    /// `base 1a2b3c4d` or `head (working tree)`.
    pub label: String,
    /// The policies loaded from `files`.
    pub set: &'a PolicySet,
    /// The revision's policy files as (name, text); a name may carry a `rev:` prefix.
    pub files: &'a [(Arc<str>, String)],
}

/// A connection whose verdict changed.
#[derive(Clone, Debug, Serialize)]
pub struct FlowChange {
    /// The client endpoint, `namespace/pod`.
    pub from: String,
    /// The server endpoint, `namespace/pod`.
    pub to: String,
    /// Workload names (pod names without replica suffixes), for grouping.
    pub from_workload: String,
    /// The destination's workload, as `from_workload`.
    pub to_workload: String,
    /// The destination port and protocol, e.g. `443/TCP`.
    pub port: String,
    /// The verdict in the base revision.
    pub before: Decision,
    /// The verdict in the head revision.
    pub after: Decision,
    /// Why a reviewer should look first, if anything stands out.
    pub risk: Option<String>,
}

/// How a policy object changed between the revisions.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Only the head has it.
    Added,
    /// Only the base has it.
    Removed,
    /// Its YAML differs.
    Modified,
    /// Same content in another file.
    Moved,
}

/// A policy object (policy, tier, network set) whose YAML changed.
#[derive(Clone, Debug, Serialize)]
pub struct ObjectChange {
    /// The object's identity, e.g. `NetworkPolicy shop/api` or `Tier security`.
    pub id: String,
    /// How it changed.
    pub kind: ChangeKind,
    /// Its file in the base; None when added.
    pub before_file: Option<String>,
    /// Its file in the head; None when removed.
    pub after_file: Option<String>,
    /// Unified diff of the object's YAML.
    pub diff: String,
    /// No changed connection was decided by this object: a refactor.
    pub refactor: bool,
}

/// Everything `netward diff` reports.
#[derive(Clone, Debug, Serialize)]
pub struct DiffReport {
    /// The base revision's label, e.g. `base 1a2b3c4d`.
    pub base: String,
    /// The head revision's label, e.g. `working tree`.
    pub head: String,
    /// Where the endpoints came from.
    pub endpoints: String,
    /// The ports compared, as `port/PROTOCOL`.
    pub ports: Vec<String>,
    /// Connections denied before and allowed after, riskiest first.
    pub opened: Vec<FlowChange>,
    /// Connections allowed before and denied after, riskiest first.
    pub closed: Vec<FlowChange>,
    /// The policy objects whose YAML changed.
    pub objects: Vec<ObjectChange>,
    /// Guards (connections that must stay as they are) the change breaks.
    pub broken_guards: Vec<BrokenGuard>,
}

impl DiffReport {
    /// Whether a connection or a guard changed (`netward diff` then exits 1).
    pub fn changed(&self) -> bool {
        !self.opened.is_empty() || !self.closed.is_empty() || !self.broken_guards.is_empty()
    }
}

/// A pod's workload: its name without the ReplicaSet hash and random suffix
/// (`api-5f6c7-fghij` -> `api`) or StatefulSet ordinal (`postgres-0` -> `postgres`).
pub fn workload(e: &Endpoint) -> String {
    let mut parts: Vec<&str> = e.name.split('-').collect();
    let is_suffix = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let is_hash = |s: &str| (5..=10).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric());
    if parts.len() >= 3 && is_suffix(parts[parts.len() - 1]) && is_hash(parts[parts.len() - 2]) {
        parts.truncate(parts.len() - 2);
    } else if parts.len() >= 2 && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit()) {
        parts.truncate(parts.len() - 1);
    }
    format!("{}/{}", e.namespace, parts.join("-"))
}

/// The ports worth comparing: every port a rule of either revision names
/// (named ports through the pods that declare them) and every declared
/// container port.
pub fn ports_of(sets: &[&PolicySet], cluster: &Cluster) -> Vec<FlowPort> {
    let mut out = BTreeSet::new();
    let eps = cluster.endpoints();
    for e in &eps {
        for (p, n) in &e.ports {
            out.insert(FlowPort { port: *n, protocol: *p });
        }
    }
    for set in sets {
        for p in &set.policies {
            for r in p.ingress.iter().chain(&p.egress) {
                let protos: Vec<Protocol> = match r.protocol {
                    Some(pr) if pr.has_ports() => vec![pr],
                    Some(_) => vec![],
                    None => vec![Protocol::Tcp, Protocol::Udp],
                };
                for pm in r.destination.ports.iter() {
                    match pm {
                        PortMatch::Range(a, b) => {
                            for pr in &protos {
                                out.insert(FlowPort { port: *a, protocol: *pr });
                                out.insert(FlowPort { port: *b, protocol: *pr });
                            }
                        }
                        PortMatch::Named(n) => {
                            for e in &eps {
                                for (pr, port) in e.named_ports.get(n).into_iter().flatten() {
                                    out.insert(FlowPort { port: *port, protocol: *pr });
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    out.into_iter().collect()
}

fn deciding_policies(v: &crate::analysis::Verdict, out: &mut BTreeSet<String>) {
    for d in [&v.egress, &v.ingress] {
        if let Reason::Rule { policy, .. } = &d.reason {
            out.insert(policy.to_string());
        }
        for t in &d.tiers {
            for p in &t.policies {
                out.insert(p.policy.to_string());
            }
        }
    }
}

/// Compares two revisions over one cluster.
pub fn diff(base: &Revision<'_>, head: &Revision<'_>, cluster: &Cluster, endpoints: &str) -> DiffReport {
    let ports = ports_of(&[base.set, head.set], cluster);
    let a = Analysis::new(base.set, cluster, View::Enforced);
    let b = Analysis::new(head.set, cluster, View::Enforced);
    let (ma, mb) = (Matrix::compute(&a, &ports), Matrix::compute(&b, &ports));
    let mut opened = Vec::new();
    let mut closed = Vec::new();
    let mut involved = BTreeSet::new();
    let n = a.endpoints.len();
    for (pi, fp) in ports.iter().enumerate() {
        for i in 0..n {
            for j in 0..n {
                if i == j || ma.allowed(pi, i, j) == mb.allowed(pi, i, j) {
                    continue;
                }
                let (ei, ej) = (&a.endpoints[i], &a.endpoints[j]);
                let (Ok(fa), Ok(fb)) = (
                    a.flow(&ei.id, &ej.id, fp.protocol, fp.port, None),
                    b.flow(&ei.id, &ej.id, fp.protocol, fp.port, None),
                ) else {
                    continue;
                };
                let (va, vb) = (a.evaluate(&fa), b.evaluate(&fb));
                deciding_policies(&va, &mut involved);
                deciding_policies(&vb, &mut involved);
                let after = vb.decision();
                let risk = risk_of(fp, &va, &vb, head.set);
                let c = FlowChange {
                    from: ei.id.clone(),
                    to: ej.id.clone(),
                    from_workload: workload(ei),
                    to_workload: workload(ej),
                    port: fp.to_string(),
                    before: va.decision(),
                    after,
                    risk,
                };
                if vb.allowed {
                    opened.push(c);
                } else {
                    closed.push(c);
                }
            }
        }
    }
    let key = |c: &FlowChange| {
        (c.risk.is_none(), c.from_workload.clone(), c.to_workload.clone(), c.port.clone(), c.from.clone(), c.to.clone())
    };
    opened.sort_by_key(key);
    closed.sort_by_key(key);
    let objects = object_changes(base, head, &involved);
    DiffReport {
        base: base.label.clone(),
        head: head.label.clone(),
        endpoints: endpoints.to_string(),
        ports: ports.iter().map(|p| p.to_string()).collect(),
        opened,
        closed,
        objects,
        broken_guards: Vec::new(),
    }
}

fn risk_of(
    fp: &FlowPort,
    before: &crate::analysis::Verdict,
    after: &crate::analysis::Verdict,
    head: &PolicySet,
) -> Option<String> {
    if before.allowed && !after.allowed && fp.port == 53 {
        return Some("DNS lost".into());
    }
    // The cluster administrator's tiers (ClusterNetworkPolicy): an Admin
    // Deny is a guardrail no namespace can lift; a Baseline verdict is the
    // cluster's default for pods no NetworkPolicy selects.
    let decided_in = |v: &crate::analysis::Verdict, t: &str, deny_only: bool| {
        [&v.egress, &v.ingress].iter().any(|d| {
            matches!(&d.reason, Reason::Rule { tier, action, .. } if tier == t && (!deny_only || *action == Action::Deny))
        })
    };
    if !before.allowed && after.allowed && decided_in(before, ADMIN_TIER, true) {
        return Some("an Admin Deny removed".into());
    }
    if before.allowed != after.allowed
        && (decided_in(before, BASELINE_TIER, false) || decided_in(after, BASELINE_TIER, false))
    {
        return Some("a Baseline default changed".into());
    }
    if !before.allowed && after.allowed {
        // Opened by a rule that matches every address or every namespace?
        for d in [&after.egress, &after.ingress] {
            if let Reason::Rule { policy, rule, .. } = &d.reason {
                let Some(p) = head.policies.iter().find(|p| p.id == *policy) else { continue };
                for r in p.ingress.iter().chain(&p.egress).filter(|r| r.index == *rule) {
                    for e in [&r.source, &r.destination] {
                        if e.nets.iter().any(|n| n.prefix_len() == 0) {
                            return Some("open to every address".into());
                        }
                        if let Some(s) = &e.selector {
                            let t = s.to_string();
                            if t.contains("has(projectcalico.org/namespace)") && !t.contains("pcns.") {
                                return Some("open to all namespaces".into());
                            }
                        }
                    }
                }
            }
        }
        // A direction that fell through to the profile, where a tier's
        // default deny held before: its isolation was removed.
        for (dir, b, a) in [("ingress", &before.ingress, &after.ingress), ("egress", &before.egress, &after.egress)] {
            if matches!(a.reason, Reason::Profile) && matches!(b.reason, Reason::TierDefault { .. }) {
                return Some(format!("{dir} isolation removed"));
            }
        }
    }
    None
}

/// Each policy object's YAML in a revision: identity -> (file, text).
fn objects_of(rev: &Revision<'_>) -> BTreeMap<String, (String, String)> {
    let mut starts: BTreeMap<&str, Vec<(u32, String)>> = BTreeMap::new();
    for p in &rev.set.policies {
        starts.entry(&p.origin.file).or_default().push((p.origin.line, p.id.to_string()));
    }
    for s in &rev.set.network_sets {
        let id = match &s.namespace {
            Some(ns) => format!("NetworkSet {ns}/{}", s.name),
            None => format!("GlobalNetworkSet {}", s.name),
        };
        starts.entry(&s.origin.file).or_default().push((s.origin.line, id));
    }
    for t in rev.set.tiers.values() {
        if let Some(o) = &t.origin {
            starts.entry(&o.file).or_default().push((o.line, format!("Tier {}", t.name)));
        }
    }
    let mut out = BTreeMap::new();
    for (file, text) in rev.files {
        let Some(list) = starts.get_mut(&**file) else { continue };
        list.sort();
        let lines: Vec<&str> = text.lines().collect();
        for (k, (line, id)) in list.iter().enumerate() {
            let from = (*line as usize).saturating_sub(1);
            let to = list.get(k + 1).map(|(l, _)| (*l as usize).saturating_sub(1)).unwrap_or(lines.len());
            let mut body: Vec<&str> = lines[from.min(lines.len())..to.min(lines.len())].to_vec();
            while body
                .last()
                .is_some_and(|l| l.trim().is_empty() || l.trim() == "---" || l.trim_start().starts_with('#'))
            {
                body.pop();
            }
            // A file name without the revision prefix, to notice moves.
            let plain = file.split_once(':').map(|(_, f)| f).unwrap_or(file).to_string();
            out.insert(id.clone(), (plain, body.join("\n") + "\n"));
        }
    }
    out
}

fn object_changes(base: &Revision<'_>, head: &Revision<'_>, involved: &BTreeSet<String>) -> Vec<ObjectChange> {
    let (a, b) = (objects_of(base), objects_of(head));
    let mut out = Vec::new();
    let ids: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for id in ids {
        let (kind, bf, af, old, new) = match (a.get(id), b.get(id)) {
            (Some((f1, t1)), Some((f2, t2))) if t1 == t2 && f1 == f2 => continue,
            (Some((f1, t1)), Some((f2, t2))) if t1 == t2 => {
                (ChangeKind::Moved, Some(f1), Some(f2), t1.as_str(), t2.as_str())
            }
            (Some((f1, t1)), Some((f2, t2))) => (ChangeKind::Modified, Some(f1), Some(f2), t1.as_str(), t2.as_str()),
            (Some((f1, t1)), None) => (ChangeKind::Removed, Some(f1), None, t1.as_str(), ""),
            (None, Some((f2, t2))) => (ChangeKind::Added, None, Some(f2), "", t2.as_str()),
            (None, None) => continue,
        };
        let diff = similar::TextDiff::from_lines(old, new)
            .unified_diff()
            .context_radius(3)
            .header(bf.map(String::as_str).unwrap_or("/dev/null"), af.map(String::as_str).unwrap_or("/dev/null"))
            .to_string();
        out.push(ObjectChange {
            id: id.clone(),
            refactor: !involved.contains(id),
            kind,
            before_file: bf.cloned(),
            after_file: af.cloned(),
            diff,
        });
    }
    out
}

/// The endpoints `netward diff` compares over when no cluster snapshot is
/// given, and a sentence saying where they came from: the head revision's
/// own Pods and workload templates, else [`representatives`] of the label
/// combinations the revisions' selectors name.
pub fn endpoints_without_snapshot(head_files: &[(Arc<str>, String)], sets: &[&PolicySet]) -> (Cluster, String) {
    let c = crate::manifest::load::cluster_from_manifests(head_files);
    let n = c.endpoints().len();
    if n > 0 {
        return (c, format!("the repository's own Pods and workload templates ({n} endpoints)"));
    }
    let c = representatives(sets);
    let n = c.endpoints().len();
    (
        c,
        format!(
            "one representative endpoint per label combination the policies' selectors name ({n} endpoints; no snapshot or workloads found)"
        ),
    )
}

/// Made-up endpoints when neither a snapshot nor workload manifests exist:
/// one per label combination that a policy's subject or peer selector asks
/// for (its `==`, `in` and `has` terms), in the namespace the selector
/// names (or the policy's), so `diff` still answers at the level of the
/// label classes the policies talk about.
pub fn representatives(sets: &[&PolicySet]) -> Cluster {
    use crate::model::cluster::{Namespace, Pod, NAME_LABEL, NS_LABEL, ORCH_LABEL};
    use crate::selector::Expr;
    // (namespace, namespace labels, pod labels) -> named ports the pod must declare.
    type Key = (String, BTreeMap<String, String>, BTreeMap<String, String>);
    let mut wanted: BTreeMap<Key, BTreeSet<(String, Protocol)>> = BTreeMap::new();
    fn atoms(e: &Expr, out: &mut Vec<(String, String)>) {
        match e {
            Expr::And(es) => es.iter().for_each(|x| atoms(x, out)),
            Expr::Eq(k, v) => out.push((k.clone(), v.clone())),
            Expr::In(k, vs) => {
                if let Some(v) = vs.iter().next() {
                    out.push((k.clone(), v.clone()));
                }
            }
            Expr::Has(k) => out.push((k.clone(), "x".into())),
            _ => {}
        }
    }
    let mut add = |sel: &Expr, default_ns: Option<&str>, named: Vec<(String, Protocol)>| {
        let mut a = Vec::new();
        atoms(sel, &mut a);
        let mut ns = default_ns.map(str::to_string);
        let mut pod_labels = BTreeMap::new();
        let mut ns_labels = BTreeMap::new();
        for (k, v) in a {
            if k == NS_LABEL {
                if v != "x" {
                    ns = Some(v);
                }
            } else if k == ORCH_LABEL || k.starts_with("pcsa.") || k.starts_with("projectcalico.org/") {
            } else if let Some(nk) = k.strip_prefix("pcns.") {
                if nk == NAME_LABEL {
                    ns = Some(v.clone());
                }
                ns_labels.insert(nk.to_string(), v);
            } else {
                pod_labels.insert(k, v);
            }
        }
        let ns = ns.unwrap_or_else(|| {
            ns_labels.get(NAME_LABEL).cloned().unwrap_or_else(|| {
                if ns_labels.is_empty() {
                    "default".into()
                } else {
                    let parts: Vec<String> = ns_labels.iter().map(|(k, v)| format!("{k}-{v}")).collect();
                    let mut n: String = parts
                        .join("-")
                        .chars()
                        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
                        .collect();
                    n.truncate(50);
                    n.trim_matches('-').to_string()
                }
            })
        });
        wanted.entry((ns, ns_labels, pod_labels)).or_default().extend(named);
    };
    // A named port resolves on the destination: the subject for ingress
    // rules, the peer for egress rules.
    let named_of = |r: &crate::model::Rule| -> Vec<(String, Protocol)> {
        r.destination
            .ports
            .iter()
            .filter_map(|pm| match pm {
                PortMatch::Named(n) => Some((n.clone(), r.protocol.unwrap_or(Protocol::Tcp))),
                PortMatch::Range(..) => None,
            })
            .collect()
    };
    for set in sets {
        for p in &set.policies {
            let ns = p.id.namespace.as_deref();
            let subject_named: Vec<(String, Protocol)> = p.ingress.iter().flat_map(named_of).collect();
            add(&p.selector, ns, subject_named);
            for r in &p.ingress {
                if let Some(s) = &r.source.selector {
                    add(s, ns, Vec::new());
                }
            }
            for r in &p.egress {
                if let Some(s) = &r.destination.selector {
                    add(s, ns, named_of(r));
                }
            }
        }
    }
    // One number per port name, the same on every pod: the usual number for
    // well-known names, a made-up one otherwise.
    let mut numbers: BTreeMap<String, u16> = [
        ("http", 80),
        ("https", 443),
        ("dns", 53),
        ("dns-tcp", 53),
        ("postgres", 5432),
        ("postgresql", 5432),
        ("mysql", 3306),
        ("redis", 6379),
        ("grpc", 9090),
        ("metrics", 9100),
    ]
    .into_iter()
    .map(|(n, p)| (n.to_string(), p))
    .collect();
    let mut cluster = Cluster::default();
    for (i, ((ns, ns_labels, labels), named)) in wanted.into_iter().enumerate() {
        // Past the block's end there are no addresses left to invent.
        let Some(ip) = crate::synth::synthetic_ip(254, i) else { break };
        let ports = named
            .into_iter()
            .map(|(n, protocol)| {
                // Made-up numbers from 30000 (wrapping within 30000..65535).
                let next = 30000 + (numbers.len().saturating_sub(10) % 35535) as u16;
                let port = *numbers.entry(n.clone()).or_insert(next);
                crate::model::cluster::ContainerPort { name: Some(n), port, protocol }
            })
            .collect();
        let entry = cluster.namespaces.entry(ns.clone()).or_insert_with(|| Namespace {
            name: ns.clone(),
            labels: BTreeMap::from([(NAME_LABEL.to_string(), ns.clone())]),
            origin: crate::diag::Pos::file_only("(representative)"),
        });
        entry.labels.extend(ns_labels);
        let name = {
            let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}-{v}")).collect();
            let mut n: String = format!("rep-{}", parts.join("-"))
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
                .collect();
            n.truncate(50);
            format!("{}-{i}", n.trim_end_matches('-'))
        };
        cluster.pods.push(Pod {
            namespace: ns,
            name,
            labels,
            ips: vec![ip],
            node: Some("representative".into()),
            host_network: false,
            service_account: "default".into(),
            ports,
            phase: "Running".into(),
            origin: crate::diag::Pos::file_only("(representative)"),
        });
    }
    cluster
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policies(text: &str) -> PolicySet {
        let mut d = Vec::new();
        let set = crate::manifest::load::load_policy_texts(std::iter::once((Arc::from("p.yaml"), text)), &mut d);
        assert!(d.is_empty(), "{d:?}");
        set
    }

    #[test]
    fn without_a_snapshot_diff_takes_the_repositorys_workloads_else_representatives() {
        let deny = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: d, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: web}}\n  policyTypes: [Ingress]\n";
        let set = policies(deny);
        let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: nginx}]}\n";
        let files = vec![(Arc::from("p.yaml"), deny.to_string()), (Arc::from("web.yaml"), deployment.to_string())];
        let (c, source) = endpoints_without_snapshot(&files, &[&set]);
        assert!(source.starts_with("the repository's own Pods and workload templates"), "{source}");
        assert!(c.endpoints().iter().all(|e| e.namespace == "shop"), "{:?}", c.endpoints());
        let (c, source) = endpoints_without_snapshot(&files[..1], &[&set]);
        assert!(source.starts_with("one representative endpoint per label combination"), "{source}");
        assert!(
            c.endpoints().iter().any(|e| e.labels.get("app").map(String::as_str) == Some("web")),
            "{:?}",
            c.endpoints()
        );
    }
}

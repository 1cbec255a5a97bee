//! Building worlds from inline YAML and asking both evaluators about them.

use std::sync::Arc;

use netward::analysis::{Analysis, Matrix, View};
use netward::diag::Diagnostic;
use netward::manifest::load::{load_cluster_text, load_policy_texts};
use netward::model::port::FlowPort;
use netward::model::{Cluster, PolicySet};

pub fn policies(yaml: &str) -> PolicySet {
    let mut diags = Vec::new();
    let set = load_policy_texts(std::iter::once((Arc::from("p.yaml"), yaml)), &mut diags);
    assert!(diags.is_empty(), "policy errors: {diags:#?}");
    set
}

pub fn policy_errors(yaml: &str) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    load_policy_texts(std::iter::once((Arc::from("p.yaml"), yaml)), &mut diags);
    diags
}

pub fn cluster(yaml: &str) -> Cluster {
    let mut diags = Vec::new();
    let mut c = load_cluster_text(&Arc::from("c.yaml"), yaml, &mut diags);
    assert!(diags.is_empty(), "cluster errors: {diags:#?}");
    c.fill_missing_namespaces();
    c
}

/// A world: a cluster and policies, evaluated the enforced way.
pub struct World {
    pub an: Analysis,
}

impl World {
    pub fn new(cluster_yaml: &str, policy_yaml: &str) -> Self {
        Self::with_view(cluster_yaml, policy_yaml, View::Enforced)
    }

    pub fn with_view(cluster_yaml: &str, policy_yaml: &str, view: View) -> Self {
        let c = cluster(cluster_yaml);
        let p = policies(policy_yaml);
        World { an: Analysis::new(&p, &c, view) }
    }

    /// Whether `from` may connect to `to` on `port` ("80/TCP"); `from`/`to`
    /// are `ns/pod` or IPs. For pod pairs the matrix must agree with explain.
    pub fn allows(&self, from: &str, to: &str, port: &str) -> bool {
        let fp = FlowPort::parse(port).expect("port");
        let flow = self.an.flow(from, to, fp.protocol, fp.port, None).expect("flow");
        let v = self.an.evaluate(&flow);
        // A pod and itself are not a pair of the matrix.
        if let (Some(a), Some(b)) = (
            flow.src.endpoint,
            flow.dst.endpoint.filter(|b| Some(b.id.as_str()) != flow.src.endpoint.map(|a| a.id.as_str())),
        ) {
            let m = Matrix::compute(&self.an, &[fp]).with_family_v6(flow.dst.ip.is_ipv6());
            let ia = self.an.endpoints.iter().position(|e| e.id == a.id).expect("a");
            let ib = self.an.endpoints.iter().position(|e| e.id == b.id).expect("b");
            assert_eq!(m.allowed(0, ia, ib), v.allowed, "matrix and explain disagree on {from} -> {to} {port}");
        }
        v.allowed
    }
}

/// A pod document: `pod("ns", "name", "10.0.0.1", "app: a, role: x")`.
pub fn pod(ns: &str, name: &str, ip: &str, labels: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{{labels}}}\nspec:\n  nodeName: n1\n  serviceAccountName: default\n  containers:\n  - name: c\n    ports:\n    - {{name: http, containerPort: 8080}}\n    - {{name: dns, containerPort: 53, protocol: UDP}}\nstatus:\n  phase: Running\n  podIP: {ip}\n"
    )
}

pub fn namespace(name: &str, labels: &str) -> String {
    format!("---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\n")
}

/// Namespaces a (team t1) and b (team t2); pods a/x, a/w, b/x, b/z.
pub fn base() -> String {
    [
        namespace("a", "team: t1"),
        namespace("b", "team: t2"),
        pod("a", "x", "10.0.1.1", "app: x"),
        pod("a", "w", "10.0.1.2", "app: w"),
        pod("b", "x", "10.0.2.1", "app: x"),
        pod("b", "z", "10.0.2.2", "app: z"),
    ]
    .concat()
}

pub fn knp(ns: &str, name: &str, spec: &str) -> String {
    format!("---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{spec}")
}

/// A Calico object: `calico("GlobalNetworkPolicy", None, "p", "  selector: ...\n")`.
pub fn calico(kind: &str, ns: Option<&str>, name: &str, spec: &str) -> String {
    let nsline = ns.map(|n| format!("  namespace: {n}\n")).unwrap_or_default();
    format!("---\napiVersion: projectcalico.org/v3\nkind: {kind}\nmetadata:\n  name: {name}\n{nsline}spec:\n{spec}")
}

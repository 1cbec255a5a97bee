//! The cluster a policy set is about: namespaces and pods, and the endpoints
//! (with Calico's labels) that policies select.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::diag::Pos;
use crate::model::port::Protocol;

/// The label Calico gives every endpoint and NetworkSet: its namespace.
pub const NS_LABEL: &str = "projectcalico.org/namespace";
/// The label Calico gives pods' endpoints: `k8s`, which Kubernetes policies select on.
pub const ORCH_LABEL: &str = "projectcalico.org/orchestrator";
/// The label Calico gives pods' endpoints: their service account.
pub const SA_LABEL: &str = "projectcalico.org/serviceaccount";
/// The label Kubernetes gives every namespace: its own name.
pub const NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A Kubernetes Namespace: what policies' namespace selectors match.
#[derive(Clone, Debug, PartialEq)]
pub struct Namespace {
    /// The namespace's `metadata.name`, which pods' `metadata.namespace` names.
    pub name: String,
    /// Including the implicit `kubernetes.io/metadata.name`.
    pub labels: BTreeMap<String, String>,
    /// Where the Namespace was read, or the pod that implied it.
    pub origin: Pos,
}

/// One `containerPort` of a pod's container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerPort {
    /// The port's `name`, which policies may match as a named port.
    pub name: Option<String>,
    /// The port number, 1..65535.
    pub port: u16,
    /// TCP (the default), UDP or SCTP.
    pub protocol: Protocol,
}

/// A Kubernetes Pod, as much of it as policies need.
#[derive(Clone, Debug, PartialEq)]
pub struct Pod {
    /// The pod's namespace (`default` when unset).
    pub namespace: String,
    /// The pod's `metadata.name`.
    pub name: String,
    /// `metadata.labels`, before Calico adds its own.
    pub labels: BTreeMap<String, String>,
    /// `status.podIPs` and `status.podIP`, each address once.
    pub ips: Vec<IpAddr>,
    /// `spec.nodeName`: the node it runs on, None while unscheduled.
    pub node: Option<String>,
    /// `spec.hostNetwork`: the pod uses its node's network, not its own endpoint.
    pub host_network: bool,
    /// `spec.serviceAccountName`; empty when unset (the API server sets
    /// `default`; Calico gives a pod without one no service-account labels).
    pub service_account: String,
    /// The ports its containers declare.
    pub ports: Vec<ContainerPort>,
    /// `status.phase` (`Running` when the snapshot has no status).
    pub phase: String,
    /// Where the Pod was read.
    pub origin: Pos,
}

impl Pod {
    /// Whether Calico makes the pod an endpoint (C1; cal-conv conversion.go
    /// `IsValidCalicoWorkloadEndpoint`, `IsFinished`): scheduled to a node,
    /// with an IP, and not finished (phase Failed or Succeeded). A pod in
    /// phase Unknown with an IP still is one. A hostNetwork pod passes too but
    /// becomes an endpoint that stands for its node, never a workload.
    pub fn is_endpoint(&self) -> bool {
        self.node.as_deref().is_some_and(|n| !n.is_empty())
            && !self.ips.is_empty()
            && !matches!(self.phase.as_str(), "Failed" | "Succeeded" | "Completed")
    }
}

/// Calico CNI's and the AWS VPC CNI's pod annotations (cal-conv constants.go).
const IP_ANNOTATIONS: [&str; 3] =
    ["cni.projectcalico.org/podIPs", "cni.projectcalico.org/podIP", "vpc.amazonaws.com/pod-ips"];

/// A pod's addresses when its status has none, from the first CNI
/// annotation that holds any (cal-conv `getPodIPs`; CIDRs give their address).
pub fn annotated_pod_ips(annotations: &BTreeMap<String, String>) -> Vec<IpAddr> {
    let Some(text) = IP_ANNOTATIONS.iter().find_map(|k| annotations.get(*k).filter(|v| !v.is_empty())) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in text.split(',') {
        let addr = item.trim().split('/').next().unwrap_or("").parse::<IpAddr>();
        if let Ok(a) = addr {
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    out
}

/// A pod being deleted whose CNI has already taken its network away (its
/// podIP annotation set to "", cal-conv `IsFinished`).
pub fn network_removed(annotations: &BTreeMap<String, String>, deleting: bool) -> bool {
    deleting
        && (annotations.get("cni.projectcalico.org/podIP").is_some_and(|v| v.is_empty())
            || annotations.get("vpc.amazonaws.com/pod-ips").is_some_and(|v| v.is_empty()))
}

/// A node of the cluster: what the enforcer needs of its Node object.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The Node's `metadata.name`, as pods' `spec.nodeName` refers to it.
    pub name: String,
    /// `spec.podCIDRs` (or the older `spec.podCIDR`): the addresses its pods
    /// get. An address there that the inventory does not know yet is a pod
    /// netward has not heard of: failed closed by default.
    pub pod_cidrs: Vec<ipnet::IpNet>,
    /// `metadata.labels`: what a ClusterNetworkPolicy's `nodes` peer selects.
    pub labels: BTreeMap<String, String>,
    /// The IP addresses of `status.addresses` (InternalIP, ExternalIP):
    /// what a `nodes` peer stands for.
    pub addresses: Vec<IpAddr>,
    /// Where the Node was read.
    pub origin: Pos,
}

/// A pod as the policy engine sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    /// `namespace/name`.
    pub id: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The labels Calico gives the workload endpoint (C1). Empty for
    /// hostNetwork pods, which are the node, not workload endpoints.
    pub labels: BTreeMap<String, String>,
    /// The pod's addresses.
    pub ips: Vec<IpAddr>,
    /// The node it runs on, None while unscheduled.
    pub node: Option<String>,
    /// A hostNetwork pod: policy sees it as its node, not as an endpoint.
    pub host_network: bool,
    /// Named container ports: name -> (protocol, number), one per protocol.
    pub named_ports: BTreeMap<String, Vec<(Protocol, u16)>>,
    /// Every declared container port, named or not, sorted: what `diff`
    /// compares and `verify` probes.
    pub ports: Vec<(Protocol, u16)>,
}

impl Endpoint {
    /// The endpoint's address in one family, the first one listed.
    pub fn ip_in(&self, v6: bool) -> Option<IpAddr> {
        self.ips.iter().copied().find(|ip| ip.is_ipv6() == v6)
    }

    /// Whether the endpoint declares container port `name` as exactly
    /// `proto`/`port` (a named port matches only its own protocol, K8, C5).
    pub fn named_port(&self, name: &str, proto: Protocol, port: u16) -> bool {
        self.named_ports.get(name).is_some_and(|v| v.iter().any(|(p, n)| *n == port && *p == proto))
    }
}

/// Namespaces and pods, merged from one or more snapshots.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    /// Node objects, by name (snapshots may leave them out).
    pub nodes: BTreeMap<String, Node>,
    /// Namespaces by name, with their labels.
    pub namespaces: BTreeMap<String, Namespace>,
    /// Every pod of the snapshots, endpoints or not.
    pub pods: Vec<Pod>,
}

impl Cluster {
    /// The endpoints, sorted by id.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        let mut out: Vec<Endpoint> = self.pods.iter().filter(|p| p.is_endpoint()).map(|p| self.endpoint(p)).collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    fn endpoint(&self, pod: &Pod) -> Endpoint {
        let mut named_ports: BTreeMap<String, Vec<(Protocol, u16)>> = BTreeMap::new();
        for cp in &pod.ports {
            if let Some(n) = &cp.name {
                named_ports.entry(n.clone()).or_default().push((cp.protocol, cp.port));
            }
        }
        let mut ports: Vec<(Protocol, u16)> = pod.ports.iter().map(|cp| (cp.protocol, cp.port)).collect();
        ports.sort();
        ports.dedup();
        let labels = if pod.host_network { BTreeMap::new() } else { self.calico_labels(pod) };
        Endpoint {
            id: format!("{}/{}", pod.namespace, pod.name),
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            labels,
            ips: pod.ips.clone(),
            node: pod.node.clone(),
            host_network: pod.host_network,
            named_ports,
            ports,
        }
    }

    /// C1: inherited profile labels first (`pcns.*`, `pcsa.projectcalico.org/name`),
    /// then the pod's own labels and Calico's, which win.
    pub fn calico_labels(&self, pod: &Pod) -> BTreeMap<String, String> {
        let mut l = namespace_profile_labels(&pod.namespace, self.namespaces.get(&pod.namespace));
        // The service account's profile and label exist only when the pod
        // names one (the API server fills in `default`; a snapshot may not).
        if !pod.service_account.is_empty() {
            l.insert("pcsa.projectcalico.org/name".into(), pod.service_account.clone());
        }
        l.extend(pod.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        l.insert(NS_LABEL.into(), pod.namespace.clone());
        l.insert(ORCH_LABEL.into(), "k8s".into());
        // workload_endpoint_default.go: only names shorter than 63 bytes.
        if !pod.service_account.is_empty() && pod.service_account.len() < 63 {
            l.insert(SA_LABEL.into(), pod.service_account.clone());
        }
        l
    }

    /// A network set's labels as Calico sees them (C4): a NetworkSet inherits
    /// its namespace's profile labels; its own labels win.
    pub fn network_set_labels(&self, set: &crate::model::NetworkSet) -> BTreeMap<String, String> {
        match &set.namespace {
            None => set.labels.clone(),
            Some(ns) => {
                let mut l = namespace_profile_labels(ns, self.namespaces.get(ns));
                l.extend(set.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
                l
            }
        }
    }

    /// Adds another snapshot: its objects replace those of the same name
    /// (within `other`, the last of a name wins). Linear in pods: one pass
    /// over each side, whatever the sizes.
    pub fn merge(&mut self, other: Cluster) {
        self.namespaces.extend(other.namespaces);
        self.nodes.extend(other.nodes);
        let mut incoming: std::collections::HashMap<(String, String), Pod> =
            std::collections::HashMap::with_capacity(other.pods.len());
        let mut order = Vec::with_capacity(other.pods.len());
        for pod in other.pods {
            let key = (pod.namespace.clone(), pod.name.clone());
            if incoming.insert(key.clone(), pod).is_none() {
                order.push(key);
            }
        }
        self.pods.retain(|p| !incoming.contains_key(&(p.namespace.clone(), p.name.clone())));
        self.pods.extend(order.into_iter().filter_map(|k| incoming.remove(&k)));
    }

    /// Adds namespaces that pods mention but no snapshot listed (with only the implicit label).
    pub fn fill_missing_namespaces(&mut self) {
        for pod in &self.pods {
            if !self.namespaces.contains_key(&pod.namespace) {
                let mut labels = BTreeMap::new();
                labels.insert(NAME_LABEL.to_string(), pod.namespace.clone());
                self.namespaces.insert(
                    pod.namespace.clone(),
                    Namespace { name: pod.namespace.clone(), labels, origin: pod.origin.clone() },
                );
            }
        }
    }
}

/// The labels a namespace's profile `kns.<ns>` gives to what lives in it.
pub fn namespace_profile_labels(ns: &str, namespace: Option<&Namespace>) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    if let Some(n) = namespace {
        for (k, v) in &n.labels {
            l.insert(format!("pcns.{k}"), v.clone());
        }
    } else {
        l.insert(format!("pcns.{NAME_LABEL}"), ns.to_string());
    }
    l.insert("pcns.projectcalico.org/name".into(), ns.to_string());
    l
}

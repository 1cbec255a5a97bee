//! The inventory as the API server's watch events leave it: a reflector
//! store that keeps only what the policy engine reads (a few hundred bytes a
//! pod, not the API object's kilobytes), and says whether an event changed
//! anything the engine could see. Pure: events in, `Cluster` out.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1 as api;
use kube::api::DynamicObject;
use kube::runtime::watcher::Event;

use netward_policy::diag::Pos;
use netward_policy::model::cluster::{ContainerPort, Namespace, Pod, NAME_LABEL};
use netward_policy::model::port::Protocol;
use netward_policy::model::NetworkSet;

/// One kind of object as list+watch leaves it, keyed by (namespace, name).
#[derive(Debug)]
struct Reflected<V> {
    items: BTreeMap<(String, String), V>,
    /// Objects of a relist in progress (between `Init` and `InitDone`): the
    /// collection switches to them whole, so a half-listed one is never seen.
    /// A relist cut short by an error is started over by the next `Init`.
    relisting: Option<BTreeMap<(String, String), V>>,
    listed: bool,
}

impl<V> Default for Reflected<V> {
    fn default() -> Self {
        Reflected { items: BTreeMap::new(), relisting: None, listed: false }
    }
}

impl<V: PartialEq> Reflected<V> {
    /// Applies one event; `read` turns an API object into the engine's value
    /// (None: the engine cannot use it, which counts as absent). True if the
    /// engine's view changed.
    fn apply<O: kube::Resource>(&mut self, event: Event<O>, read: impl Fn(&O) -> Option<V>) -> bool {
        let key = |o: &O| {
            let m = o.meta();
            (m.namespace.clone().unwrap_or_default(), m.name.clone().unwrap_or_default())
        };
        match event {
            Event::Apply(o) => match read(&o) {
                Some(v) => upsert(&mut self.items, key(&o), v),
                None => self.items.remove(&key(&o)).is_some(),
            },
            Event::Delete(o) => self.items.remove(&key(&o)).is_some(),
            Event::Init => {
                self.relisting = Some(BTreeMap::new());
                false
            }
            Event::InitApply(o) => {
                if let (Some(v), Some(buf)) = (read(&o), self.relisting.as_mut()) {
                    buf.insert(key(&o), v);
                }
                false
            }
            Event::InitDone => {
                self.listed = true;
                match self.relisting.take() {
                    Some(all) if all != self.items => {
                        self.items = all;
                        true
                    }
                    _ => false,
                }
            }
        }
    }
}

/// Pods, namespaces and Calico network sets, kept from list+watch.
#[derive(Debug, Default)]
pub struct Store {
    pods: Reflected<Pod>,
    namespaces: Reflected<Namespace>,
    /// Node objects: each node's pod CIDRs.
    nodes: Reflected<netward_policy::model::cluster::Node>,
    /// Calico NetworkSets and GlobalNetworkSets, where the CRDs exist.
    network_sets: Reflected<NetworkSet>,
    global_network_sets: Reflected<NetworkSet>,
    sets_watched: bool,
    /// Bumped by every change the engine can see.
    generation: u64,
}

impl Store {
    /// Every watched kind is listed: the cluster is whole.
    pub fn synced(&self) -> bool {
        self.pods.listed
            && self.namespaces.listed
            && self.nodes.listed
            && (!self.sets_watched || (self.network_sets.listed && self.global_network_sets.listed))
    }

    /// The network sets are watched too: the store is whole only once both kinds are listed.
    pub fn watch_network_sets(&mut self) {
        self.sets_watched = true;
    }

    /// Bumped by every event that changed what `cluster` returns.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Pods the store holds.
    pub fn pod_count(&self) -> usize {
        self.pods.items.len()
    }

    fn count(&mut self, changed: bool) -> bool {
        if changed {
            self.generation += 1;
        }
        changed
    }

    /// Applies a pod watch event; true if the engine's view changed (a
    /// status update that moves no IP, label, node or port is not a change).
    pub fn pod_event(&mut self, event: Event<api::Pod>) -> bool {
        let changed = self.pods.apply(event, pod_from_api);
        self.count(changed)
    }

    /// Applies a namespace watch event; true if the engine's view changed.
    pub fn node_event(&mut self, event: Event<api::Node>) -> bool {
        let changed = self.nodes.apply(event, node_from_api);
        self.count(changed)
    }

    /// Applies one namespace watch event; true when it changed the cluster.
    pub fn namespace_event(&mut self, event: Event<api::Namespace>) -> bool {
        let changed = self.namespaces.apply(event, namespace_from_api);
        self.count(changed)
    }

    /// Applies a NetworkSet (`global` false) or GlobalNetworkSet watch event.
    /// An object the engine cannot read (a bad CIDR) is left out, with a warning.
    pub fn network_set_event(&mut self, global: bool, event: Event<DynamicObject>) -> bool {
        let sets = if global { &mut self.global_network_sets } else { &mut self.network_sets };
        let changed = sets.apply(event, |o| network_set_from_api(o, global));
        self.count(changed)
    }

    /// The network sets the API server holds, in the engine's form.
    pub fn network_sets(&self) -> Vec<NetworkSet> {
        self.global_network_sets.items.values().chain(self.network_sets.items.values()).cloned().collect()
    }

    /// The cluster the engine evaluates: namespaces a pod names but the API
    /// has not listed (yet) get only their implicit label, as with snapshots.
    pub fn cluster(&self) -> netward_policy::model::Cluster {
        let mut c = netward_policy::model::Cluster {
            namespaces: self.namespaces.items.values().map(|n| (n.name.clone(), n.clone())).collect(),
            pods: self.pods.items.values().cloned().collect(),
            nodes: self.nodes.items.values().map(|n| (n.name.clone(), n.clone())).collect(),
        };
        c.fill_missing_namespaces();
        c
    }
}

fn upsert<K: Ord, V: PartialEq>(map: &mut BTreeMap<K, V>, key: K, value: V) -> bool {
    match map.get(&key) {
        Some(old) if *old == value => false,
        _ => {
            map.insert(key, value);
            true
        }
    }
}

fn origin(kind: &str, namespace: Option<&str>, name: &str) -> Pos {
    let file: Arc<str> = match namespace {
        Some(ns) => format!("kubernetes:{kind}/{ns}/{name}").into(),
        None => format!("kubernetes:{kind}/{name}").into(),
    };
    Pos { file, line: 0, col: 0 }
}

/// The engine's pod from the API's, read as `decode_pod` reads a snapshot:
/// `podIP` first, then the other `podIPs`; the service account defaults to
/// `default`; a port without protocol is TCP. None for an object without a
/// name (the API never sends one).
pub fn pod_from_api(p: &api::Pod) -> Option<Pod> {
    let name = p.metadata.name.clone()?;
    let namespace = p.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let labels = p.metadata.labels.clone().unwrap_or_default();
    let spec = p.spec.as_ref();
    let node = spec.and_then(|s| s.node_name.clone());
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let service_account = spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default();
    let mut ports = Vec::new();
    // Calico takes named ports from init containers too (native sidecars).
    let init = spec.and_then(|s| s.init_containers.as_deref()).unwrap_or_default();
    for c in spec.map(|s| s.containers.as_slice()).unwrap_or_default().iter().chain(init) {
        for cp in c.ports.as_deref().unwrap_or_default() {
            let Ok(port) = u16::try_from(cp.container_port) else { continue };
            let protocol = match cp.protocol.as_deref() {
                None => Protocol::Tcp,
                Some(name) => match Protocol::from_name(name) {
                    Some(pr @ (Protocol::Tcp | Protocol::Udp | Protocol::Sctp)) => pr,
                    _ => continue,
                },
            };
            ports.push(ContainerPort { name: cp.name.clone(), port, protocol });
        }
    }
    let status = p.status.as_ref();
    let phase = status.and_then(|s| s.phase.clone()).unwrap_or_else(|| "Pending".into());
    let mut ips: Vec<IpAddr> = Vec::new();
    let listed = status.and_then(|s| s.pod_ips.as_deref()).unwrap_or_default().iter().map(|i| i.ip.as_str());
    for ip in status.and_then(|s| s.pod_ip.as_deref()).into_iter().chain(listed) {
        if let Ok(addr) = ip.parse::<IpAddr>() {
            if !ips.contains(&addr) {
                ips.push(addr);
            }
        }
    }
    let annotations: std::collections::BTreeMap<String, String> =
        p.metadata.annotations.clone().unwrap_or_default().into_iter().collect();
    if ips.is_empty() {
        ips = netward_policy::model::cluster::annotated_pod_ips(&annotations);
    }
    if netward_policy::model::cluster::network_removed(&annotations, p.metadata.deletion_timestamp.is_some()) {
        ips.clear();
    }
    Some(Pod {
        origin: origin("pod", Some(&namespace), &name),
        namespace,
        name,
        labels,
        ips,
        node,
        host_network,
        service_account,
        ports,
        phase,
    })
}

/// The engine's namespace, with the implicit `kubernetes.io/metadata.name`.
/// A Node object's name, labels, pod CIDRs and addresses.
pub fn node_from_api(n: &api::Node) -> Option<netward_policy::model::cluster::Node> {
    let name = n.metadata.name.clone()?;
    let spec = n.spec.as_ref();
    let mut cidrs: Vec<String> = spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
    if cidrs.is_empty() {
        cidrs.extend(spec.and_then(|s| s.pod_cidr.clone()));
    }
    let pod_cidrs = cidrs.iter().filter_map(|c| c.parse::<ipnet::IpNet>().ok()).map(|c| c.trunc()).collect();
    let labels = n.metadata.labels.clone().unwrap_or_default().into_iter().collect();
    let mut addresses = Vec::new();
    for a in n.status.as_ref().and_then(|s| s.addresses.as_ref()).into_iter().flatten() {
        if let Ok(ip) = a.address.parse() {
            if !addresses.contains(&ip) {
                addresses.push(ip);
            }
        }
    }
    Some(netward_policy::model::cluster::Node {
        origin: origin("node", None, &name),
        name,
        pod_cidrs,
        labels,
        addresses,
    })
}

/// The engine's namespace for an API one (None without a name).
pub fn namespace_from_api(n: &api::Namespace) -> Option<Namespace> {
    let name = n.metadata.name.clone()?;
    let mut labels = n.metadata.labels.clone().unwrap_or_default();
    labels.insert(NAME_LABEL.into(), name.clone());
    Some(Namespace { origin: origin("namespace", None, &name), name, labels })
}

/// The engine's network set from a `crd.projectcalico.org/v1` object, read by
/// the same decoder as a `projectcalico.org/v3` file (the CRD's spec is the
/// same), so the API and Git cannot disagree on what a set means.
pub fn network_set_from_api(o: &DynamicObject, global: bool) -> Option<NetworkSet> {
    let kind = if global { "GlobalNetworkSet" } else { "NetworkSet" };
    let name = o.metadata.name.as_deref()?;
    let mut doc = serde_json::json!({ "apiVersion": "projectcalico.org/v3", "kind": kind,
        "metadata": { "name": name }, "spec": o.data.get("spec").cloned().unwrap_or_default() });
    if let (false, Some(ns)) = (global, &o.metadata.namespace) {
        doc["metadata"]["namespace"] = serde_json::json!(ns);
    }
    if let Some(labels) = &o.metadata.labels {
        doc["metadata"]["labels"] = serde_json::json!(labels);
    }
    let file: Arc<str> = match &o.metadata.namespace {
        Some(ns) if !global => format!("kubernetes:{kind}/{ns}/{name}").into(),
        _ => format!("kubernetes:{kind}/{name}").into(),
    };
    let mut diags = Vec::new();
    let set = netward_policy::manifest::load::load_policy_texts(
        std::iter::once((file, doc.to_string().as_str())),
        &mut diags,
    );
    if let Some(d) = diags.iter().find(|d| d.severity == netward_policy::diag::Severity::Error) {
        tracing::warn!(set = %name, error = %d, "network set left out");
        return None;
    }
    set.network_sets.into_iter().next()
}

//! Answers "may A open a connection to B on port P?" for the normalized model.
//!
//! `eval` decides one flow and says why (tiers, policies, the deciding rule);
//! `matrix` decides every endpoint pair at once over equivalence classes of
//! endpoints with bit-parallel rule evaluation. Both read the same `Analysis`,
//! and a property test holds them to the same answers.

mod bitset;
pub mod eval;
pub mod matrix;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use crate::model::cluster::Node;
use crate::model::port::FlowPort;
use crate::model::{Cluster, Endpoint, NetworkSet, Policy, PolicySet, PortMatch, Tier};
use crate::selector::Expr;

pub use eval::{Caveat, Decision, DirVerdict, Flow, Peer, Reason, Verdict};
pub use matrix::Matrix;

/// Which policies to evaluate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// What the dataplane enforces: staged policies are left out.
    Enforced,
    /// What would be enforced if every staged policy were committed.
    Staged,
}

/// A tier and its policies in evaluation order.
#[derive(Clone, Debug)]
pub struct TierPlan {
    /// The tier, with its order and default action.
    pub tier: Tier,
    /// Indices into `Analysis::policies`, sorted (order, name).
    pub policies: Vec<usize>,
}

/// A network set with the labels Calico gives it.
#[derive(Clone, Debug)]
pub struct LabelledSet {
    /// The set as loaded.
    pub set: NetworkSet,
    /// Its labels plus what its namespace gives (C4): what selectors match.
    pub labels: BTreeMap<String, String>,
}

/// The model prepared for evaluation.
pub struct Analysis {
    /// The policies this view evaluates (in the staged view, with staged ones committed).
    pub policies: Vec<Policy>,
    /// Staged policies that this view does not evaluate (all of them in the
    /// enforced view): the enforcer compiles them into log-only chains.
    pub staged: Vec<Policy>,
    /// The tiers that have policies, in evaluation order.
    pub tiers: Vec<TierPlan>,
    /// The cluster's endpoints, sorted by id.
    pub endpoints: Vec<Endpoint>,
    /// Every network set, with the labels selectors see.
    pub network_sets: Vec<LabelledSet>,
    /// The cluster's Nodes: what ClusterNetworkPolicy `nodes` peers select.
    pub nodes: Vec<Node>,
    by_ip: HashMap<IpAddr, usize>,
}

impl Analysis {
    /// Prepares a policy set and a cluster for evaluation in one view.
    pub fn new(set: &PolicySet, cluster: &Cluster, view: View) -> Self {
        // Pods get the normal tiers only: doNotTrack and preDNAT policies
        // are for host endpoints, which netward does not police (C11).
        let for_pods = |p: &Policy| !p.host_endpoints_only;
        let staged = match view {
            View::Enforced => set.policies.iter().filter(|p| p.id.kind.is_staged() && for_pods(p)).cloned().collect(),
            View::Staged => Vec::new(),
        };
        let set = match view {
            View::Enforced => set.enforced(),
            View::Staged => set.with_staged(),
        };
        let policies: Vec<Policy> = set.policies.iter().filter(|p| for_pods(p)).cloned().collect();
        let mut tiers = Vec::new();
        for t in set.tier_order() {
            let idx: Vec<usize> = (0..policies.len()).filter(|&i| policies[i].tier == t.name).collect();
            let keys: Vec<(f64, String)> = idx.iter().map(|&i| policies[i].sort_key()).collect();
            let mut order: Vec<usize> = (0..idx.len()).collect();
            order.sort_by(|&a, &b| keys[a].0.total_cmp(&keys[b].0).then_with(|| keys[a].1.cmp(&keys[b].1)));
            let idx: Vec<usize> = order.into_iter().map(|k| idx[k]).collect();
            if !idx.is_empty() {
                tiers.push(TierPlan { tier: t.clone(), policies: idx });
            }
        }
        let endpoints = cluster.endpoints();
        let mut by_ip = HashMap::new();
        for (i, e) in endpoints.iter().enumerate() {
            // hostNetwork pods share their node's IP; a workload owns its IP.
            for ip in &e.ips {
                if !e.host_network || !by_ip.contains_key(ip) {
                    by_ip.insert(*ip, i);
                }
            }
        }
        let network_sets = set
            .network_sets
            .iter()
            .map(|s| LabelledSet { labels: cluster.network_set_labels(s), set: s.clone() })
            .collect();
        let nodes = cluster.nodes.values().cloned().collect();
        Analysis { policies, staged, tiers, endpoints, network_sets, nodes, by_ip }
    }

    /// The addresses of the Nodes whose labels match a `nodes` peer.
    pub fn node_addresses<'a>(&'a self, sel: &'a Expr) -> impl Iterator<Item = IpAddr> + 'a {
        self.nodes.iter().filter(|n| sel.eval(&n.labels)).flat_map(|n| n.addresses.iter().copied())
    }

    /// The endpoint with this id (`ns/name`): a binary search, since
    /// `endpoints` is sorted by id.
    pub fn endpoint(&self, id: &str) -> Option<&Endpoint> {
        self.endpoints.binary_search_by(|e| e.id.as_str().cmp(id)).ok().map(|i| &self.endpoints[i])
    }

    /// The endpoint that owns an IP, if any.
    pub fn endpoint_at(&self, ip: IpAddr) -> Option<&Endpoint> {
        self.by_ip.get(&ip).map(|&i| &self.endpoints[i])
    }

    /// Every port the world mentions, sorted: each container port a pod
    /// declares (so every named port, resolved), and each end of a numeric
    /// port or range a rule names with its protocol. What `matrix` decides
    /// when no `--port` is given.
    pub fn mentioned_ports(&self) -> Vec<FlowPort> {
        let mut out: Vec<FlowPort> = self
            .endpoints
            .iter()
            .flat_map(|e| e.ports.iter().map(|&(protocol, port)| FlowPort { port, protocol }))
            .collect();
        for r in self.policies.iter().chain(&self.staged).flat_map(|p| p.ingress.iter().chain(&p.egress)) {
            let Some(protocol) = r.protocol.filter(|p| p.has_ports()) else { continue };
            for pm in r.destination.ports.iter().chain(&r.destination.not_ports) {
                if let PortMatch::Range(a, b) = pm {
                    out.push(FlowPort { port: *a, protocol });
                    out.push(FlowPort { port: *b, protocol });
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

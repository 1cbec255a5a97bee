//! Tiered, ordered policies with rules: the normalized form of both APIs.

use std::collections::BTreeMap;
use std::fmt;

use ipnet::IpNet;

use crate::diag::Pos;
use crate::model::port::{PortMatch, Protocol};
use crate::selector::Expr;

/// What a rule does with a flow it matches; also a tier's default action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Allow the flow: no later rule or tier is consulted.
    Allow,
    /// Deny the flow: no later rule or tier is consulted.
    Deny,
    /// Log the packet and go on to the next rule.
    Log,
    /// Skip the rest of the tier: the next tier decides, or the profile after the last.
    Pass,
}

impl Action {
    /// What the action did to a flow, for reports: "allowed", "denied".
    pub fn past_tense(self) -> &'static str {
        match self {
            Action::Allow => "allowed",
            Action::Deny => "denied",
            Action::Pass => "passed",
            Action::Log => "logged",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "Allow",
            Action::Deny => "Deny",
            Action::Log => "Log",
            Action::Pass => "Pass",
        })
    }
}

/// Which traffic of an endpoint a policy or rule is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Traffic to the endpoint.
    Ingress,
    /// Traffic from the endpoint.
    Egress,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

/// The API kind a policy came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyKind {
    /// `networking.k8s.io/v1` NetworkPolicy.
    KubernetesNetworkPolicy,
    /// `projectcalico.org/v3` NetworkPolicy.
    NetworkPolicy,
    /// `projectcalico.org/v3` GlobalNetworkPolicy: cluster-wide, without a namespace.
    GlobalNetworkPolicy,
    /// Calico's staged form of a Kubernetes NetworkPolicy: a preview, never enforced.
    StagedKubernetesNetworkPolicy,
    /// A staged Calico NetworkPolicy: a preview, never enforced.
    StagedNetworkPolicy,
    /// A staged Calico GlobalNetworkPolicy: a preview, never enforced.
    StagedGlobalNetworkPolicy,
    /// `policy.networking.k8s.io` ClusterNetworkPolicy (v1alpha2, v1beta1):
    /// cluster-wide, in tier `kube-admin` or `kube-baseline` (A5, A6).
    ClusterNetworkPolicy,
    /// `policy.networking.k8s.io/v1alpha1` AdminNetworkPolicy: read as a
    /// ClusterNetworkPolicy of the Admin tier.
    AdminNetworkPolicy,
    /// `policy.networking.k8s.io/v1alpha1` BaselineAdminNetworkPolicy: read as
    /// a ClusterNetworkPolicy of the Baseline tier.
    BaselineAdminNetworkPolicy,
}

impl PolicyKind {
    /// Whether the kind is a staged one, which is never enforced.
    pub fn is_staged(self) -> bool {
        matches!(
            self,
            PolicyKind::StagedKubernetesNetworkPolicy
                | PolicyKind::StagedNetworkPolicy
                | PolicyKind::StagedGlobalNetworkPolicy
        )
    }

    /// The enforced kind a staged kind stands in for.
    pub fn enforced(self) -> PolicyKind {
        match self {
            PolicyKind::StagedKubernetesNetworkPolicy => PolicyKind::KubernetesNetworkPolicy,
            PolicyKind::StagedNetworkPolicy => PolicyKind::NetworkPolicy,
            PolicyKind::StagedGlobalNetworkPolicy => PolicyKind::GlobalNetworkPolicy,
            k => k,
        }
    }

    /// The kind as a manifest's `kind` field spells it.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::KubernetesNetworkPolicy => "KubernetesNetworkPolicy",
            PolicyKind::NetworkPolicy => "NetworkPolicy",
            PolicyKind::GlobalNetworkPolicy => "GlobalNetworkPolicy",
            PolicyKind::StagedKubernetesNetworkPolicy => "StagedKubernetesNetworkPolicy",
            PolicyKind::StagedNetworkPolicy => "StagedNetworkPolicy",
            PolicyKind::StagedGlobalNetworkPolicy => "StagedGlobalNetworkPolicy",
            PolicyKind::ClusterNetworkPolicy => "ClusterNetworkPolicy",
            PolicyKind::AdminNetworkPolicy => "AdminNetworkPolicy",
            PolicyKind::BaselineAdminNetworkPolicy => "BaselineAdminNetworkPolicy",
        }
    }

    /// One of the network-policy-api kinds (CNP, ANP, BANP): cluster
    /// guardrails that a pod's traffic to its own IP never meets (A5).
    pub fn is_cluster_network_policy(self) -> bool {
        matches!(
            self,
            PolicyKind::ClusterNetworkPolicy | PolicyKind::AdminNetworkPolicy | PolicyKind::BaselineAdminNetworkPolicy
        )
    }

    /// The kind as Felix's policy sorter names it (model.Kind*), for the
    /// tie-break within an order: every network-policy-api kind is a
    /// `KubernetesClusterNetworkPolicy` there (cal-conv clusternetworkpolicy.go).
    fn sort_name(self) -> &'static str {
        if self.is_cluster_network_policy() {
            "KubernetesClusterNetworkPolicy"
        } else {
            self.name()
        }
    }
}

/// A policy's identity: kind, namespace (None for global kinds) and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyId {
    /// The API kind it was written as.
    pub kind: PolicyKind,
    /// The policy's namespace; None for the global kinds.
    pub namespace: Option<String>,
    /// The policy's `metadata.name`, unique per kind and namespace.
    pub name: String,
}

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind.name(), ns, self.name),
            None => write!(f, "{} {}", self.kind.name(), self.name),
        }
    }
}

/// What a staged policy would do to the enforced set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StagedAction {
    /// Committing creates the enforced policy of the same identity, or replaces it.
    Set,
    /// Committing deletes the enforced policy of the same identity.
    Delete,
}

/// One side (`source` or `destination`) of a rule, already scoped: `selector`
/// includes the namespace terms Calico adds (C3).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EntityRule {
    /// `nets`: the address on this side must be in one of these CIDRs.
    pub nets: Vec<IpNet>,
    /// `notNets` (and an ipBlock's `except`): the address must be in none of them.
    pub not_nets: Vec<IpNet>,
    /// `selector`: the endpoints and network sets on this side must match it.
    pub selector: Option<Expr>,
    /// `notSelector`: endpoints and network sets it matches are excluded.
    pub not_selector: Option<Expr>,
    /// `ports`: the port on this side must be one of these.
    pub ports: Vec<PortMatch>,
    /// `notPorts`: the port on this side must be none of these.
    pub not_ports: Vec<PortMatch>,
    /// A Kubernetes Service by namespace/name; netward has no Service inventory,
    /// so such a rule is reported and matches nothing.
    pub service: Option<(String, String)>,
    /// DNS names (Calico Enterprise, and a ClusterNetworkPolicy's
    /// `domainNames`); not decidable at L3/L4.
    pub domains: Vec<String>,
    /// A ClusterNetworkPolicy's `nodes` peer: the addresses of the Nodes
    /// whose labels match (their `status.addresses`).
    pub nodes: Option<Expr>,
}

impl EntityRule {
    /// Whether the side sets no condition, so anything matches it.
    pub fn is_empty(&self) -> bool {
        *self == EntityRule::default()
    }
}

/// Calico's `icmp` / `notICMP`: an ICMP type and code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpMatch {
    /// The ICMP type (0..254); None matches every type.
    pub typ: Option<u8>,
    /// The ICMP code; None matches every code of the type.
    pub code: Option<u8>,
}

/// One rule of a policy, in the policy's order.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// What the rule does with a flow it matches.
    pub action: Action,
    /// `ipVersion`: 4 or 6 limits the rule to that family (for a Kubernetes ipBlock, its CIDR's).
    pub ip_version: Option<u8>,
    /// `protocol`: the flow's IP protocol must be this one.
    pub protocol: Option<Protocol>,
    /// `notProtocol`: the flow's IP protocol must not be this one.
    pub not_protocol: Option<Protocol>,
    /// `icmp`: the ICMP type and code the flow must have.
    pub icmp: Option<IcmpMatch>,
    /// `notICMP`: the ICMP type and code the flow must not have.
    pub not_icmp: Option<IcmpMatch>,
    /// What the flow's source must be.
    pub source: EntityRule,
    /// What the flow's destination must be.
    pub destination: EntityRule,
    /// An application-layer (`http`) match: netward decides the L3/L4 part and
    /// marks every verdict the rule influences.
    pub http: bool,
    /// Index of the rule as the user wrote it (for Kubernetes policies the
    /// index of the ingress/egress rule; one k8s rule may expand to several).
    pub index: usize,
    /// The rule's `name` (ClusterNetworkPolicy rules, Calico `metadata.name`
    /// is not read), for reports.
    pub name: Option<String>,
    /// Where the rule is written (for Kubernetes, the peer it was expanded from).
    pub origin: Pos,
}

impl Rule {
    /// A rule of the Kubernetes APIs (NetworkPolicy, ClusterNetworkPolicy):
    /// a remote `peer`, and `ports` on the destination, which is the local
    /// pod for ingress and the peer for egress. Nothing else is set.
    pub fn towards_peer(
        action: Action,
        ingress: bool,
        peer: &EntityRule,
        protocol: Option<Protocol>,
        ports: &[PortMatch],
        index: usize,
        origin: Pos,
    ) -> Rule {
        let mut remote = peer.clone();
        let mut local = EntityRule::default();
        let (source, destination) = if ingress {
            local.ports = ports.to_vec();
            (remote, local)
        } else {
            remote.ports = ports.to_vec();
            (local, remote)
        };
        Rule {
            action,
            ip_version: None,
            protocol,
            not_protocol: None,
            icmp: None,
            not_icmp: None,
            source,
            destination,
            http: false,
            index,
            name: None,
            origin,
        }
    }

    /// Whether the rule exists for one IP family. Felix renders a rule per
    /// family: `ipVersion` names one, and a CIDR field (`nets` or `notNets`,
    /// either side) that is set but holds no CIDR of the family removes the
    /// rule from that family altogether (C5; felix/rules/policy.go
    /// `FilterRuleToIPVersion`): IPv6-only `notNets` never match IPv4.
    pub fn exists_in(&self, v6: bool) -> bool {
        if self.ip_version.is_some_and(|v| (v == 6) != v6) {
            return false;
        }
        [&self.source.nets, &self.source.not_nets, &self.destination.nets, &self.destination.not_nets]
            .iter()
            .all(|nets| nets.is_empty() || nets.iter().any(|n| n.addr().is_ipv6() == v6))
    }

    /// Whether deciding this rule needs something L3/L4 cannot see.
    pub fn needs_l7(&self) -> bool {
        self.http || !self.source.domains.is_empty() || !self.destination.domains.is_empty()
    }
}

/// A policy in the normalized model.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Which policy it is: kind, namespace and name.
    pub id: PolicyId,
    /// The name of its tier (`default` when unset, and for Kubernetes policies).
    pub tier: String,
    /// Lower runs first; None runs last.
    pub order: Option<f64>,
    /// The endpoints the policy applies to, scoped (C2).
    pub selector: Expr,
    /// Whether it governs ingress (`types` / `policyTypes`, or the API's default).
    pub ingress_type: bool,
    /// Whether it governs egress (`types` / `policyTypes`, or the API's default).
    pub egress_type: bool,
    /// Ingress rules in order; a Kubernetes rule may expand to several.
    pub ingress: Vec<Rule>,
    /// Egress rules in order; a Kubernetes rule may expand to several.
    pub egress: Vec<Rule>,
    /// For a staged kind, what committing it would do; None when enforced.
    pub staged: Option<StagedAction>,
    /// A `doNotTrack` or `preDNAT` GlobalNetworkPolicy: Felix gives it to
    /// host endpoints only, never to a pod, whatever its selector matches
    /// (C11; felix/calc/event_sequencer.go `tierInfoToProtoTierInfo`).
    pub host_endpoints_only: bool,
    /// Where the policy's document starts.
    pub origin: Pos,
}

impl Policy {
    /// Whether the policy governs traffic in this direction (its types).
    pub fn applies_in(&self, dir: Direction) -> bool {
        match dir {
            Direction::Ingress => self.ingress_type,
            Direction::Egress => self.egress_type,
        }
    }

    /// The policy's rules for one direction.
    pub fn rules(&self, dir: Direction) -> &[Rule] {
        match dir {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }

    /// The sort key within a tier (C7; felix/calc/policy_sorter.go
    /// `PolKVLess`): order ascending, none last, then the string
    /// `name/namespace/kind` (global kinds have an empty namespace). Felix
    /// compares the joined string, so `block/...` sorts after
    /// `block-exception/...` ('-' < '/').
    pub fn sort_key(&self) -> (f64, String) {
        let key =
            format!("{}/{}/{}", self.id.name, self.id.namespace.as_deref().unwrap_or(""), self.id.kind.sort_name());
        (self.order.unwrap_or(f64::INFINITY), key)
    }
}

/// A Calico tier.
#[derive(Clone, Debug, PartialEq)]
pub struct Tier {
    /// The tier's name, as policies give it in `spec.tier`.
    pub name: String,
    /// Lower tiers are evaluated first; None after every ordered one.
    pub order: Option<f64>,
    /// Deny or Pass: what happens when policies of the tier applied and none decided.
    pub default_action: Action,
    /// Where the Tier is defined; None for the tiers Calico always has.
    pub origin: Option<Pos>,
}

impl Tier {
    /// The tiers Calico always has (C7).
    pub fn well_known() -> Vec<Tier> {
        vec![
            Tier { name: "kube-admin".into(), order: Some(1000.0), default_action: Action::Pass, origin: None },
            Tier { name: "default".into(), order: Some(1_000_000.0), default_action: Action::Deny, origin: None },
            Tier {
                name: "kube-baseline".into(),
                order: Some(10_000_000.0),
                default_action: Action::Pass,
                origin: None,
            },
        ]
    }
}

/// A NetworkSet or GlobalNetworkSet: labelled CIDRs that rule selectors match.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkSet {
    /// The NetworkSet's namespace; None for a GlobalNetworkSet.
    pub namespace: Option<String>,
    /// The set's `metadata.name`.
    pub name: String,
    /// The set's own labels, plus `projectcalico.org/namespace` for NetworkSets;
    /// `Cluster::network_set_labels` adds what the namespace gives.
    pub labels: BTreeMap<String, String>,
    /// `spec.nets`: the CIDRs a selector that matches the set stands for.
    pub nets: Vec<IpNet>,
    /// Where the set's document starts.
    pub origin: Pos,
}

/// Everything loaded from policy files.
#[derive(Clone, Debug, Default)]
pub struct PolicySet {
    /// Every policy loaded, staged ones included.
    pub policies: Vec<Policy>,
    /// The tiers by name, the ones Calico always has included.
    pub tiers: BTreeMap<String, Tier>,
    /// Every NetworkSet and GlobalNetworkSet loaded.
    pub network_sets: Vec<NetworkSet>,
}

impl PolicySet {
    /// The tiers in evaluation order (order ascending, none last, then name).
    pub fn tier_order(&self) -> Vec<&Tier> {
        let mut tiers: Vec<&Tier> = self.tiers.values().collect();
        tiers.sort_by(|a, b| {
            let ka = a.order.unwrap_or(f64::INFINITY);
            let kb = b.order.unwrap_or(f64::INFINITY);
            ka.total_cmp(&kb).then_with(|| a.name.cmp(&b.name))
        });
        tiers
    }

    /// The enforced policies (staged ones never are).
    pub fn enforced(&self) -> PolicySet {
        PolicySet {
            policies: self.policies.iter().filter(|p| !p.id.kind.is_staged()).cloned().collect(),
            tiers: self.tiers.clone(),
            network_sets: self.network_sets.clone(),
        }
    }

    /// What would be enforced if every staged policy were committed: a staged
    /// Set replaces the enforced policy of the same identity (or adds it), a
    /// staged Delete removes it.
    pub fn with_staged(&self) -> PolicySet {
        let mut out = self.enforced();
        for p in self.policies.iter().filter(|p| p.id.kind.is_staged()) {
            let target =
                PolicyId { kind: p.id.kind.enforced(), namespace: p.id.namespace.clone(), name: p.id.name.clone() };
            out.policies.retain(|q| q.id != target);
            if p.staged == Some(StagedAction::Set) {
                let mut q = p.clone();
                q.id = target;
                q.staged = None;
                out.policies.push(q);
            }
        }
        out
    }

    /// Whether any staged policy was loaded.
    pub fn has_staged(&self) -> bool {
        self.policies.iter().any(|p| p.id.kind.is_staged())
    }
}

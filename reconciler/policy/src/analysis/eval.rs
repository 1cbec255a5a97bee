//! Deciding one flow, with the reasons: the tiers consulted, the policies that
//! applied, and the rule (file:line) that decided each direction.

use std::fmt;
use std::net::IpAddr;

use crate::analysis::Analysis;
use crate::diag::Pos;
use crate::model::{Action, Direction, Endpoint, EntityRule, Policy, PolicyId, PortMatch, Protocol, Rule};
use crate::selector::Expr;

/// One end of a flow: an address, and the endpoint that owns it if any.
#[derive(Clone, Copy, Debug)]
pub struct Peer<'a> {
    /// The address of this end.
    pub ip: IpAddr,
    /// The endpoint the cluster has at that address, if any (possibly host-networked).
    pub endpoint: Option<&'a Endpoint>,
}

/// A new connection from `src` to `dst`.
#[derive(Clone, Copy, Debug)]
pub struct Flow<'a> {
    /// Where the connection comes from.
    pub src: Peer<'a>,
    /// Where it goes.
    pub dst: Peer<'a>,
    /// The IP protocol of the connection.
    pub protocol: Protocol,
    /// The destination port.
    pub dst_port: u16,
    /// Usually unknown (an ephemeral port); rules that match source ports are
    /// then reported as undecidable.
    pub src_port: Option<u16>,
}

/// Something the L3/L4 verdict could not decide exactly.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Caveat {
    /// An `http` rule was treated as matching its L3/L4 part.
    Http(Pos),
    /// A DNS `domains` rule was treated as matching nothing.
    Domains(Pos),
    /// A `services` rule was treated as matching nothing (no Service inventory).
    Service(Pos),
    /// A rule on source ports was consulted while the source port is unknown.
    SourcePort(Pos),
}

impl fmt::Display for Caveat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caveat::Http(p) => write!(f, "{p}: http match not evaluated at L3/L4 (treated as matching)"),
            Caveat::Domains(p) => write!(f, "{p}: DNS domains not evaluated (treated as matching nothing)"),
            Caveat::Service(p) => {
                write!(f, "{p}: services not evaluated without a Service inventory (treated as matching nothing)")
            }
            Caveat::SourcePort(p) => write!(f, "{p}: source port unknown (ports never match, notPorts always match)"),
        }
    }
}

/// Why a direction was decided the way it was.
#[derive(Clone, Debug, PartialEq)]
pub enum Reason {
    /// This end is not a workload endpoint (an outside address, a
    /// hostNetwork pod): nothing polices it.
    NotPoliced(&'static str),
    /// Traffic from a pod's own node to the pod is always allowed (K11).
    SameNode,
    /// A rule decided.
    Rule {
        /// The policy the rule belongs to.
        policy: PolicyId,
        /// That policy's tier.
        tier: String,
        /// The rule's index as the user wrote it.
        rule: usize,
        /// The rule's `name`, when it has one (ClusterNetworkPolicy rules).
        name: Option<String>,
        /// A ClusterNetworkPolicy's or AdminNetworkPolicy's `priority`.
        priority: Option<f64>,
        /// Allow or Deny.
        action: Action,
        /// Where the rule is written.
        origin: Pos,
    },
    /// Policies of the tier applied, none decided: the tier's default action.
    TierDefault {
        /// The tier whose end was reached.
        tier: String,
        /// Its default action.
        action: Action,
    },
    /// No tier decided: the endpoint's profile allows (Kubernetes pods).
    Profile,
}

/// The reason as one line of a report: "allowed by ns/p rule 0 (tier
/// default) at p.yaml:12:5".
impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NotPoliced(why) => write!(f, "not policed: {why}"),
            Reason::SameNode => f.write_str("allowed: traffic from a pod's own node to the pod is always allowed"),
            Reason::Rule { policy, tier, rule, name, priority, action, origin } => {
                write!(f, "{} by {policy} rule {rule}", action.past_tense())?;
                if let Some(n) = name {
                    write!(f, " {n:?}")?;
                }
                match priority {
                    Some(p) => write!(f, " (tier {tier}, priority {p})")?,
                    None => write!(f, " (tier {tier})")?,
                }
                write!(f, " at {origin}")
            }
            Reason::TierDefault { tier, action } => {
                write!(f, "{} by the end of tier {tier}: policies applied and none matched", action.past_tense())
            }
            Reason::Profile => f.write_str("allowed: no policy decided; the namespace profile allows"),
        }
    }
}

/// The verdict on a flow in one revision, and the rule behind it.
#[derive(Clone, Debug, serde::Serialize, PartialEq)]
pub struct Decision {
    /// Whether the connection may open in that revision.
    pub allowed: bool,
    /// The deciding rule (or default) with its file:line in that revision,
    /// and what L3/L4 could not decide exactly.
    pub by: String,
    /// Matches the analysis cannot decide exactly (an `http` match treated
    /// as matching, DNS domains, services, source ports), with file:line.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub caveats: Vec<String>,
}

impl Verdict {
    /// The verdict in one line: allowed or not, and the rule (or default)
    /// that decided, with its place, as `netward diff` and guards show it.
    pub fn decision(&self) -> Decision {
        let v = self;
        // The direction that denied; when both allow, the one a rule decided
        // (egress first), else ingress.
        let by_rule = |d: &DirVerdict| matches!(d.reason, Reason::Rule { .. });
        let (side, d): (&str, &DirVerdict) = if !v.egress.allowed {
            ("egress", &v.egress)
        } else if !v.ingress.allowed {
            ("ingress", &v.ingress)
        } else if by_rule(&v.egress) && !by_rule(&v.ingress) {
            ("egress", &v.egress)
        } else {
            ("ingress", &v.ingress)
        };
        let mut by = format!("{side}: {}", d.reason);
        // "None matched" needs the policies that applied, with their places.
        if let Reason::TierDefault { tier, .. } = &d.reason {
            if let Some(t) = d.tiers.iter().find(|t| &t.tier == tier) {
                let applied: Vec<String> = t.policies.iter().map(|p| format!("{} at {}", p.policy, p.origin)).collect();
                by.push_str(&format!(" ({})", applied.join("; ")));
            }
        }
        let caveats: Vec<String> = v.caveats().map(|c| c.to_string()).collect();
        for c in &caveats {
            by.push_str(&format!("; may change: {c}"));
        }
        Decision { allowed: v.allowed, by, caveats }
    }
}

/// What happened in one policy.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyStep {
    /// The policy that applied.
    pub policy: PolicyId,
    /// Where the policy is written.
    pub origin: Pos,
    /// The rules that matched, in order, with their actions (Log included).
    pub matched: Vec<(usize, Action, Pos)>,
}

/// What happened in one tier.
#[derive(Clone, Debug, PartialEq)]
pub struct TierStep {
    /// The tier's name.
    pub tier: String,
    /// The policies that applied, in evaluation order, up to the one that decided or passed.
    pub policies: Vec<PolicyStep>,
}

/// One direction's verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct DirVerdict {
    /// Whether this direction lets the connection open.
    pub allowed: bool,
    /// What decided it.
    pub reason: Reason,
    /// The tiers with applicable policies, in order, up to the deciding one.
    pub tiers: Vec<TierStep>,
    /// What the L3/L4 answer could not decide exactly, sorted, each once.
    pub caveats: Vec<Caveat>,
}

impl DirVerdict {
    fn unpoliced(reason: Reason) -> Self {
        DirVerdict { allowed: true, reason, tiers: Vec::new(), caveats: Vec::new() }
    }
}

/// The verdict on a flow: the source's egress and the destination's ingress.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// Whether the connection may open: both directions allow it.
    pub allowed: bool,
    /// The source's egress verdict.
    pub egress: DirVerdict,
    /// The destination's ingress verdict.
    pub ingress: DirVerdict,
}

impl Verdict {
    /// The caveats of both directions.
    pub fn caveats(&self) -> impl Iterator<Item = &Caveat> {
        self.egress.caveats.iter().chain(&self.ingress.caveats)
    }
}

/// The node (a hostNetwork pod) to a pod of its own: never policed (K11;
/// felix/rules/static.go does not police host -> local endpoint). The other
/// way, a pod to its own node, passes the pod's egress policy first (C12)
/// and then Calico's `DefaultEndpointToHostAction`, which Kubernetes
/// installs set to Accept.
fn same_node(a: Option<&Endpoint>, b: Option<&Endpoint>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.node.is_some() && a.node == b.node && a.host_network,
        _ => false,
    }
}

impl Analysis {
    /// Decides a flow.
    pub fn evaluate(&self, flow: &Flow<'_>) -> Verdict {
        if same_node(flow.src.endpoint, flow.dst.endpoint) {
            let v = DirVerdict::unpoliced(Reason::SameNode);
            return Verdict { allowed: true, egress: v.clone(), ingress: v };
        }
        let egress = match flow.src.endpoint {
            Some(e) if !e.host_network => self.evaluate_direction(e, Direction::Egress, flow),
            Some(_) => DirVerdict::unpoliced(Reason::NotPoliced("source is host-networked")),
            None => DirVerdict::unpoliced(Reason::NotPoliced("source is not a workload endpoint")),
        };
        let ingress = match flow.dst.endpoint {
            Some(e) if !e.host_network => self.evaluate_direction(e, Direction::Ingress, flow),
            Some(_) => DirVerdict::unpoliced(Reason::NotPoliced("destination is host-networked")),
            None => DirVerdict::unpoliced(Reason::NotPoliced("destination is not a workload endpoint")),
        };
        Verdict { allowed: egress.allowed && ingress.allowed, egress, ingress }
    }

    /// Calico's per-endpoint pipeline (C6-C8) for one direction.
    pub fn evaluate_direction(&self, local: &Endpoint, dir: Direction, flow: &Flow<'_>) -> DirVerdict {
        let mut steps = Vec::new();
        let mut caveats = Vec::new();
        // A pod's connection to its own IP never meets a ClusterNetworkPolicy
        // (network-policy-api: hairpin traffic is enforced outside the pod).
        let hairpin = flow.src.ip == flow.dst.ip;
        for plan in &self.tiers {
            let applicable: Vec<&Policy> = plan
                .policies
                .iter()
                .map(|&i| &self.policies[i])
                .filter(|p| p.applies_in(dir) && p.selector.eval(&local.labels))
                .filter(|p| !(hairpin && p.id.kind.is_cluster_network_policy()))
                .collect();
            if applicable.is_empty() {
                continue;
            }
            let mut tier_step = TierStep { tier: plan.tier.name.clone(), policies: Vec::new() };
            let mut passed = false;
            'policies: for p in applicable {
                let mut step = PolicyStep { policy: p.id.clone(), origin: p.origin.clone(), matched: Vec::new() };
                for r in p.rules(dir) {
                    if !self.rule_matches(r, dir, flow, &mut caveats) {
                        continue;
                    }
                    step.matched.push((r.index, r.action, r.origin.clone()));
                    match r.action {
                        Action::Log => continue,
                        Action::Pass => {
                            passed = true;
                            tier_step.policies.push(step);
                            break 'policies;
                        }
                        Action::Allow | Action::Deny => {
                            tier_step.policies.push(step);
                            steps.push(tier_step);
                            caveats.sort();
                            caveats.dedup();
                            return DirVerdict {
                                allowed: r.action == Action::Allow,
                                reason: Reason::Rule {
                                    policy: p.id.clone(),
                                    tier: plan.tier.name.clone(),
                                    rule: r.index,
                                    name: r.name.clone(),
                                    priority: p.order.filter(|_| p.id.kind.is_cluster_network_policy()),
                                    action: r.action,
                                    origin: r.origin.clone(),
                                },
                                tiers: steps,
                                caveats,
                            };
                        }
                    }
                }
                tier_step.policies.push(step);
            }
            steps.push(tier_step);
            if !passed && plan.tier.default_action == Action::Deny {
                caveats.sort();
                caveats.dedup();
                return DirVerdict {
                    allowed: false,
                    reason: Reason::TierDefault { tier: plan.tier.name.clone(), action: Action::Deny },
                    tiers: steps,
                    caveats,
                };
            }
        }
        caveats.sort();
        caveats.dedup();
        DirVerdict { allowed: true, reason: Reason::Profile, tiers: steps, caveats }
    }

    fn rule_matches(&self, r: &Rule, dir: Direction, flow: &Flow<'_>, caveats: &mut Vec<Caveat>) -> bool {
        if !r.exists_in(flow.dst.ip.is_ipv6()) {
            return false;
        }
        if r.protocol.is_some_and(|p| p != flow.protocol) || r.not_protocol == Some(flow.protocol) {
            return false;
        }
        if r.icmp.is_some() && !matches!(flow.protocol, Protocol::Icmp | Protocol::IcmpV6) {
            return false;
        }
        // Local side first, then remote: both must match.
        let (src_ok, dst_ok);
        match dir {
            Direction::Ingress => {
                dst_ok = self.entity_matches(&r.destination, &flow.dst, Some(flow.dst_port), flow.protocol, r, caveats);
                src_ok = dst_ok && self.entity_matches(&r.source, &flow.src, flow.src_port, flow.protocol, r, caveats);
            }
            Direction::Egress => {
                src_ok = self.entity_matches(&r.source, &flow.src, flow.src_port, flow.protocol, r, caveats);
                dst_ok = src_ok
                    && self.entity_matches(&r.destination, &flow.dst, Some(flow.dst_port), flow.protocol, r, caveats);
            }
        }
        let ok = src_ok && dst_ok;
        if ok && r.http {
            caveats.push(Caveat::Http(r.origin.clone()));
        }
        ok
    }

    fn entity_matches(
        &self,
        e: &EntityRule,
        peer: &Peer<'_>,
        port: Option<u16>,
        flow_proto: Protocol,
        r: &Rule,
        caveats: &mut Vec<Caveat>,
    ) -> bool {
        if e.service.is_some() {
            caveats.push(Caveat::Service(r.origin.clone()));
            return false;
        }
        if !e.domains.is_empty() {
            caveats.push(Caveat::Domains(r.origin.clone()));
            return false;
        }
        if let Some(sel) = &e.nodes {
            if !self.node_addresses(sel).any(|ip| ip == peer.ip) {
                return false;
            }
        }
        if !e.nets.is_empty() && !e.nets.iter().any(|n| n.contains(&peer.ip)) {
            return false;
        }
        if e.not_nets.iter().any(|n| n.contains(&peer.ip)) {
            return false;
        }
        if let Some(s) = &e.selector {
            if !self.selector_matches_ip(s, peer) {
                return false;
            }
        }
        if let Some(s) = &e.not_selector {
            if self.selector_matches_ip(s, peer) {
                return false;
            }
        }
        if e.ports.is_empty() && e.not_ports.is_empty() {
            return true;
        }
        let Some(port) = port else {
            caveats.push(Caveat::SourcePort(r.origin.clone()));
            return e.ports.is_empty();
        };
        // A named port is an (address, port) of an endpoint that matches the
        // side's selector itself: network sets have no ports
        // (rule_scanner.go namedPortsToIPSets).
        let hit = |pm: &PortMatch| match pm {
            PortMatch::Range(a, b) => (*a..=*b).contains(&port),
            PortMatch::Named(n) => peer.endpoint.is_some_and(|ep| {
                !ep.host_network
                    && ep.named_port(n, flow_proto, port)
                    && e.selector.as_ref().is_none_or(|s| s.eval(&ep.labels))
            }),
        };
        (e.ports.is_empty() || e.ports.iter().any(hit)) && !e.not_ports.iter().any(hit)
    }

    /// C3: a selector matches an address if the workload endpoint that owns it,
    /// or any network set containing it, has matching labels.
    pub fn selector_matches_ip(&self, s: &Expr, peer: &Peer<'_>) -> bool {
        if peer.endpoint.is_some_and(|e| !e.host_network && s.eval(&e.labels)) {
            return true;
        }
        self.network_sets.iter().any(|n| n.set.nets.iter().any(|net| net.contains(&peer.ip)) && s.eval(&n.labels))
    }

    /// The peer for an endpoint in the family of `v6`, if it has an address there.
    pub fn peer_of<'a>(&self, e: &'a Endpoint, v6: bool) -> Option<Peer<'a>> {
        e.ip_in(v6).map(|ip| Peer { ip, endpoint: Some(e) })
    }

    /// The flow between two peers written as `ns/pod` or IP, in one address
    /// family: an endpoint with both families uses the other end's.
    pub fn flow(
        &self,
        from: &str,
        to: &str,
        protocol: Protocol,
        dst_port: u16,
        src_port: Option<u16>,
    ) -> Result<Flow<'_>, String> {
        self.flow_in(from, to, protocol, dst_port, src_port, None)
    }

    /// `flow`, with the family of two dual-stack ends chosen (`Some(true)`:
    /// IPv6); an end given as an IP keeps its family.
    pub fn flow_in(
        &self,
        from: &str,
        to: &str,
        protocol: Protocol,
        dst_port: u16,
        src_port: Option<u16>,
        v6: Option<bool>,
    ) -> Result<Flow<'_>, String> {
        // An end given as `ns/pod` takes the chosen family when it has it.
        let end = |s: &str| -> Result<Peer<'_>, String> {
            let p = self.resolve(s)?;
            let chosen = v6.filter(|_| s.parse::<IpAddr>().is_err());
            Ok(chosen.and_then(|v6| p.endpoint.and_then(|e| self.peer_of(e, v6))).unwrap_or(p))
        };
        let mut src = end(from)?;
        let mut dst = end(to)?;
        if src.ip.is_ipv6() != dst.ip.is_ipv6() {
            if let Some(p) = dst.endpoint.and_then(|e| self.peer_of(e, src.ip.is_ipv6())) {
                dst = p;
            } else if let Some(p) = src.endpoint.and_then(|e| self.peer_of(e, dst.ip.is_ipv6())) {
                src = p;
            } else {
                return Err(format!("{from} and {to} share no address family"));
            }
        }
        Ok(Flow { src, dst, protocol, dst_port, src_port })
    }

    /// Resolves `ns/pod` or an IP address to a peer.
    pub fn resolve(&self, s: &str) -> Result<Peer<'_>, String> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Peer { ip, endpoint: self.endpoint_at(ip) });
        }
        let e =
            self.endpoint(s).ok_or_else(|| format!("no endpoint {s:?} in the cluster (use namespace/pod or an IP)"))?;
        let ip = e.ips.first().copied().ok_or_else(|| format!("endpoint {s} has no IP"))?;
        Ok(Peer { ip, endpoint: Some(e) })
    }
}

//! From the policy model to one node's ruleset.
//!
//! Every Calico rule becomes one nft rule per address family and per
//! alternative of its ports (a rule's `ports` are an OR; nft matches one
//! set per rule). The compiled ruleset decides exactly what `analysis`
//! decides; the lab tests hold the kernel to that.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use netward_policy::analysis::Analysis;
use netward_policy::model::{Action, Direction, Endpoint, EntityRule, Policy, PortMatch, Protocol};
use netward_policy::selector::Expr;

use crate::names::{dir_suffix, fnv64, object_name, pod_key};
use crate::ruleset::{
    BaseChain, Chain, Element, Family, Hook, Match, Rule, Ruleset, Set, SetKind, Side, Verdict, VerdictMap,
};

/// Enforce for real, or only log what would be denied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Denies drop: the policies are in force.
    #[default]
    Enforce,
    /// Every Deny (and every end-of-tier drop) becomes Log + Allow.
    Audit,
}

pub use netward_policy::l7::{with_l7, L7};

/// The node to compile for.
#[derive(Clone, Debug, Default)]
pub struct NodeSpec {
    /// The node's name, as pods' `spec.nodeName` gives it: whose pods are local.
    pub node: String,
    /// Whether denies drop, or only log.
    pub mode: Mode,
    /// The host interface each local pod address is routed through, as the
    /// node's routing table says ([`crate::routes::Routes::links`]). Only the
    /// anti-spoofing rules use it: policy is dispatched by address, so it
    /// holds on any CNI, and a pod without a known link is still policed.
    pub links: BTreeMap<IpAddr, String>,
    /// This node's pod CIDRs (its Node's `spec.podCIDRs`, or `--pod-cidr`).
    pub pod_cidrs: Vec<IpNet>,
    /// What happens to an address in `pod_cidrs` that no known pod has.
    pub unknown_pods: UnknownPods,
}

/// This node's pod CIDRs: its Node object's `spec.podCIDRs`, and `extra`
/// (`--pod-cidr`).
pub fn pod_cidrs(cluster: &netward_policy::model::Cluster, node: &str, extra: &[IpNet]) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = cluster.nodes.get(node).map(|n| n.pod_cidrs.clone()).unwrap_or_default();
    out.extend(extra.iter().map(|c| c.trunc()));
    out.sort();
    out.dedup();
    out
}

/// Traffic from or to an address of this node's pod CIDRs that the
/// inventory does not know yet: a pod the CNI wired before netward heard
/// of it (its policies are not compiled yet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnknownPods {
    /// Dropped until netward knows the pod (fail closed).
    #[default]
    Deny,
    /// Allowed (the race Kubernetes documents: a new pod is unpoliced until
    /// its policies are programmed).
    Allow,
}

struct Compiler<'a> {
    an: &'a Analysis,
    spec: &'a NodeSpec,
    out: Ruleset,
    /// Selector text -> set base name, so equal selectors share a set.
    selector_sets: BTreeMap<String, String>,
    /// (set base name, family) -> the set's name, once built.
    selector_names: BTreeMap<(String, Family), String>,
    /// Non-host endpoints grouped by identical labels: a selector is
    /// evaluated once per label set, not once per pod (10,000 pods are
    /// typically a few hundred label sets).
    label_groups: Vec<(&'a BTreeMap<String, String>, Vec<usize>)>,
}

/// Compiles the ruleset for the node's local pods.
pub fn compile(an: &Analysis, spec: &NodeSpec) -> Ruleset {
    let mut by_labels: BTreeMap<&BTreeMap<String, String>, Vec<usize>> = BTreeMap::new();
    for (i, ep) in an.endpoints.iter().enumerate().filter(|(_, ep)| !ep.host_network) {
        by_labels.entry(&ep.labels).or_default().push(i);
    }
    let mut c = Compiler {
        an,
        spec,
        out: Ruleset::default(),
        selector_sets: BTreeMap::new(),
        selector_names: BTreeMap::new(),
        label_groups: by_labels.into_iter().collect(),
    };
    c.compile();
    c.out
}

impl<'a> Compiler<'a> {
    fn local(&self) -> Vec<&'a Endpoint> {
        self.an
            .endpoints
            .iter()
            .filter(|e| !e.host_network && e.node.as_deref() == Some(self.spec.node.as_str()))
            .collect()
    }

    fn compile(&mut self) {
        let mut policy_chains: BTreeMap<(usize, Direction), String> = BTreeMap::new();
        for fam in [Family::V4, Family::V6] {
            let f = fam.suffix();
            self.out.maps.insert(
                format!("ingress-dispatch-{f}"),
                VerdictMap { key: SetKind::Addr(fam), elements: BTreeMap::new() },
            );
            self.out.maps.insert(
                format!("egress-dispatch-{f}"),
                VerdictMap { key: SetKind::Addr(fam), elements: BTreeMap::new() },
            );
            self.out
                .sets
                .insert(format!("local-pods-{f}"), Set { kind: SetKind::IfaceAddr(fam), elements: BTreeSet::new() });
        }
        self.out.sets.insert("local-ifaces".into(), Set { kind: SetKind::Iface, elements: BTreeSet::new() });
        // Sources a pod legitimately uses before it has an address of its
        // own, or on its link only: DHCP's 0.0.0.0, IPv6 DAD's ::, and
        // link-local fe80::/10 (neighbour and router discovery).
        let unspecified = |s: &str| Element::Net(s.parse().expect("a literal CIDR"));
        self.out.sets.insert(
            "link-sources-4".into(),
            Set { kind: SetKind::Addr(Family::V4), elements: BTreeSet::from([unspecified("0.0.0.0/32")]) },
        );
        self.out.sets.insert(
            "link-sources-6".into(),
            Set {
                kind: SetKind::Addr(Family::V6),
                elements: BTreeSet::from([unspecified("::/128"), unspecified("fe80::/10")]),
            },
        );

        for fam in [Family::V4, Family::V6] {
            let f = fam.suffix();
            let cidrs: BTreeSet<Element> =
                self.spec.pod_cidrs.iter().filter(|c| Family::of(&c.addr()) == fam).map(|c| Element::Net(*c)).collect();
            self.out.sets.insert(format!("node-pod-cidrs-{f}"), Set { kind: SetKind::Addr(fam), elements: cidrs });
            self.out
                .sets
                .insert(format!("local-addrs-{f}"), Set { kind: SetKind::Hosts(fam), elements: BTreeSet::new() });
        }
        for e in self.local() {
            let key = pod_key(&e.namespace, &e.name);
            for ip in &e.ips {
                let f = Family::of(ip).suffix();
                self.set_mut(&format!("local-addrs-{f}")).elements.insert(Element::Net(IpNet::from(*ip)));
            }
            for ip in &e.ips {
                let Some(link) = self.spec.links.get(ip).cloned() else { continue };
                let f = Family::of(ip).suffix();
                self.set_mut("local-ifaces").elements.insert(Element::Iface(link.clone()));
                self.set_mut(&format!("local-pods-{f}")).elements.insert(Element::IfaceAddr(link, *ip));
            }
            for dir in [Direction::Ingress, Direction::Egress] {
                let Some(chain) = self.pod_chain(e, dir, &mut policy_chains) else { continue };
                let name = format!("pod-{key}-{}", dir_suffix(dir));
                self.out.chains.insert(name.clone(), chain);
                for ip in &e.ips {
                    let f = Family::of(ip).suffix();
                    let map = match dir {
                        Direction::Ingress => format!("ingress-dispatch-{f}"),
                        Direction::Egress => format!("egress-dispatch-{f}"),
                    };
                    let key = Element::Net(IpNet::from(*ip));
                    self.out.maps.get_mut(&map).expect("dispatch maps exist").elements.insert(key, name.clone());
                }
            }
        }
        self.base_chains();
    }

    fn set_mut(&mut self, name: &str) -> &mut Set {
        self.out.sets.get_mut(name).expect("set created before use")
    }

    fn base_chains(&mut self) {
        let established = Rule {
            matches: vec![Match::CtEstablished],
            verdict: Verdict::Accept,
            note: "replies and known flows".into(),
        };
        // IPv6 neighbour and router discovery is how pods on one link find
        // each other; conntrack does not track it, so on a bridge (with
        // br_netfilter) it crosses the forward hook and an isolated pod's
        // chain would drop it. Like Calico, it is never policy.
        let discovery: Vec<Rule> = [
            (133, "router solicitation"),
            (134, "router advertisement"),
            (135, "neighbour solicitation"),
            (136, "neighbour advertisement"),
        ]
        .into_iter()
        .map(|(typ, what)| Rule {
            matches: vec![Match::Icmp { v6: true, typ, code: None, negated: false }],
            verdict: Verdict::Accept,
            note: format!("IPv6 {what}: never policy"),
        })
        .collect();
        let mut egress = vec![established.clone()];
        egress.extend(discovery.iter().cloned());
        // Neighbour discovery to the node is never policy either: a pod's
        // egress chain below must not stop it from finding its gateway.
        let mut input = vec![established.clone()];
        input.extend(discovery.iter().cloned());
        // From a pod's link, only that pod's own addresses (and link-local
        // sources) may come: anything else is spoofed, and would otherwise
        // slip past the pod's egress chain, which is found by source address.
        for fam in [Family::V4, Family::V6] {
            let f = fam.suffix();
            let spoof = Rule {
                matches: vec![
                    Match::NfProto(fam),
                    Match::Iface { set: "local-ifaces".into() },
                    Match::Addr { family: fam, side: Side::Saddr, set: format!("link-sources-{f}"), negated: true },
                    Match::IfaceAddr { family: fam, set: format!("local-pods-{f}"), negated: true },
                ],
                verdict: Verdict::Drop,
                note: "spoofed source address from a local pod's link".into(),
            };
            egress.push(spoof.clone());
            input.push(spoof);
        }
        let unknown = |fam: Family, side: Side| Rule {
            matches: vec![
                Match::Addr { family: fam, side, set: format!("node-pod-cidrs-{}", fam.suffix()), negated: false },
                Match::Addr { family: fam, side, set: format!("local-addrs-{}", fam.suffix()), negated: true },
            ],
            verdict: Verdict::Drop,
            note: "a pod of this node netward has not heard of yet (--unknown-pods deny)".into(),
        };
        for fam in [Family::V4, Family::V6] {
            let dispatch = Rule {
                matches: vec![],
                verdict: Verdict::Dispatch {
                    family: fam,
                    side: Side::Saddr,
                    map: format!("egress-dispatch-{}", fam.suffix()),
                    by_iface: false,
                },
                note: "isolated local pods: their egress chain".into(),
            };
            // A pod to its own node passes the pod's egress policy too (C12):
            // what arrives from a pod's link, never the node's own traffic.
            let from_pods = Match::Iface { set: "local-ifaces".into() };
            if self.spec.unknown_pods == UnknownPods::Deny {
                egress.push(unknown(fam, Side::Saddr));
                let mut r = unknown(fam, Side::Saddr);
                r.matches.insert(0, from_pods.clone());
                input.push(r);
            }
            egress.push(dispatch.clone());
            input.push(Rule {
                matches: vec![from_pods],
                note: "local pods to this node: their egress chain".into(),
                ..dispatch
            });
        }
        let mut ingress = vec![established];
        ingress.extend(discovery);
        for fam in [Family::V4, Family::V6] {
            if self.spec.unknown_pods == UnknownPods::Deny {
                ingress.push(unknown(fam, Side::Daddr));
            }
            ingress.push(Rule {
                matches: vec![],
                verdict: Verdict::Dispatch {
                    family: fam,
                    side: Side::Daddr,
                    map: format!("ingress-dispatch-{}", fam.suffix()),
                    by_iface: false,
                },
                note: "isolated local pods: their ingress chain".into(),
            });
        }
        let chains = &mut self.out.chains;
        chains.insert(
            "egress".into(),
            Chain { base: Some(BaseChain { hook: Hook::Forward, priority: 0 }), rules: egress },
        );
        chains.insert(
            "ingress".into(),
            Chain { base: Some(BaseChain { hook: Hook::Forward, priority: 10 }), rules: ingress },
        );
        // The node to its own pods is never policed (K11): no output chain.
        chains.insert("input".into(), Chain { base: Some(BaseChain { hook: Hook::Input, priority: 0 }), rules: input });
    }

    /// The tiers for one local pod and direction, or None if no policy
    /// applies (the pod is not isolated in that direction: no dispatch entry).
    fn pod_chain(
        &mut self,
        e: &Endpoint,
        dir: Direction,
        policy_chains: &mut BTreeMap<(usize, Direction), String>,
    ) -> Option<Chain> {
        let an = self.an;
        let mut rules = vec![Rule { matches: vec![Match::CtInvalid], verdict: Verdict::Drop, note: "invalid".into() }];
        let mut any = false;
        // Staged policies are never enforced: their chains only log what
        // they would do, and run first so they see every new connection.
        for p in an.staged.iter().filter(|p| p.staged == Some(netward_policy::model::StagedAction::Set)) {
            if p.applies_in(dir) && p.selector.eval(&e.labels) {
                let chain = self.policy_chain_with(p, dir, true);
                rules.push(Rule {
                    matches: vec![],
                    verdict: Verdict::Jump(chain),
                    note: format!("{} (staged: logs only)", p.id),
                });
            }
        }
        for plan in &an.tiers {
            let applicable: Vec<usize> = plan
                .policies
                .iter()
                .copied()
                .filter(|&i| an.policies[i].applies_in(dir) && an.policies[i].selector.eval(&e.labels))
                .collect();
            if applicable.is_empty() {
                continue;
            }
            any = true;
            let tier = &plan.tier.name;
            rules.push(Rule { matches: vec![], verdict: Verdict::ClearPass, note: format!("tier {tier}") });
            for i in applicable {
                let chain = match policy_chains.get(&(i, dir)) {
                    Some(c) => c.clone(),
                    None => {
                        let c = self.policy_chain(&an.policies[i], dir);
                        policy_chains.insert((i, dir), c.clone());
                        c
                    }
                };
                rules.push(Rule {
                    matches: vec![Match::NotPassed],
                    verdict: Verdict::Jump(chain),
                    note: an.policies[i].id.to_string(),
                });
            }
            if plan.tier.default_action == Action::Deny {
                let note = format!("end of tier {tier}");
                let verdict = self.deny(&format!("netward end-of-tier {tier} "));
                rules.push(Rule { matches: vec![Match::NotPassed], verdict, note });
            }
        }
        if !any {
            return None;
        }
        // The last tier may have passed: the bit is netward's own and must
        // not leave with the packet (mark bits are shared with the stack).
        rules.push(Rule { matches: vec![], verdict: Verdict::ClearPass, note: "every tier passed".into() });
        rules.push(Rule {
            matches: vec![],
            verdict: Verdict::Accept,
            note: "every tier passed: profile allows".into(),
        });
        Some(Chain { base: None, rules })
    }

    fn deny(&self, log_prefix: &str) -> Verdict {
        match self.spec.mode {
            Mode::Enforce => Verdict::Drop,
            Mode::Audit => Verdict::LogAccept(format!("{log_prefix}(audit) ")),
        }
    }

    /// Compiles one policy's rules for one direction into its own chain.
    fn policy_chain(&mut self, p: &Policy, dir: Direction) -> String {
        self.policy_chain_with(p, dir, false)
    }

    /// `log_only`: every verdict becomes a log line naming what the rule
    /// would have done (staged policies). A log-only chain is compiled once.
    fn policy_chain_with(&mut self, p: &Policy, dir: Direction, log_only: bool) -> String {
        let ns = p.id.namespace.as_deref().unwrap_or("");
        let name = object_name(&format!("pol-{}", dir_suffix(dir)), &[p.id.kind.name(), ns, &p.id.name]);
        if log_only && self.out.chains.contains_key(&name) {
            return name;
        }
        let mut rules = Vec::new();
        let short = match &p.id.namespace {
            Some(ns) => format!("{ns}/{}", p.id.name),
            None => p.id.name.clone(),
        };
        for r in p.rules(dir) {
            let mut note = match &r.name {
                Some(n) => format!("{} rule {} {n:?} {}", p.id, r.index, r.origin),
                None => format!("{} rule {} {}", p.id, r.index, r.origin),
            };
            if r.http {
                // The end of a comment survives cutting (nft.rs `comment`).
                note.push_str(" (http match not enforced)");
            }
            if r.source.service.is_some()
                || r.destination.service.is_some()
                || !r.source.domains.is_empty()
                || !r.destination.domains.is_empty()
            {
                // The model treats these as matching nothing; so does the dataplane.
                continue;
            }
            let verdict = if log_only {
                Verdict::Log(trim_prefix(&format!("netward staged {} {short} ", r.action.to_string().to_lowercase())))
            } else {
                match r.action {
                    Action::Allow => Verdict::Accept,
                    Action::Deny => self.deny(&trim_prefix(&format!("netward deny {short} "))),
                    Action::Pass => Verdict::Pass,
                    Action::Log => Verdict::Log(trim_prefix(&format!("netward log {short} "))),
                }
            };
            for fam in [Family::V4, Family::V6] {
                for matches in self.rule_matches(r, fam) {
                    rules.push(Rule { matches, verdict: verdict.clone(), note: note.clone() });
                }
            }
        }
        self.out.chains.insert(name.clone(), Chain { base: None, rules });
        name
    }

    /// The alternatives (each a list of conditions) that together match
    /// what the rule matches in one family; empty if it cannot match there.
    fn rule_matches(&mut self, r: &netward_policy::model::Rule, fam: Family) -> Vec<Vec<Match>> {
        if !r.exists_in(fam == Family::V6) {
            return vec![];
        }
        let mut base = vec![Match::NfProto(fam)];
        if let Some(p) = r.protocol {
            if matches!(p, Protocol::Icmp) && fam == Family::V6 || matches!(p, Protocol::IcmpV6) && fam == Family::V4 {
                return vec![];
            }
            base.push(Match::L4Proto { proto: p.number(), negated: false });
        }
        if let Some(p) = r.not_protocol {
            base.push(Match::L4Proto { proto: p.number(), negated: true });
        }
        if let Some(i) = r.icmp {
            if let Some(t) = i.typ {
                base.push(Match::Icmp { v6: fam == Family::V6, typ: t, code: i.code, negated: false });
            }
        }
        // notICMP: "not that ICMP type". Without an ICMP protocol on the
        // rule it also holds for every packet that is not ICMP at all, which
        // an nft icmp match alone (it implies the protocol) would miss.
        let mut bases = vec![base];
        if let Some(t) = r.not_icmp.and_then(|i| i.typ.map(|t| (t, i.code))) {
            let icmp = if fam == Family::V6 { Protocol::IcmpV6 } else { Protocol::Icmp };
            let not_type = Match::Icmp { v6: fam == Family::V6, typ: t.0, code: t.1, negated: true };
            match r.protocol {
                Some(p) if p == icmp => bases[0].push(not_type),
                Some(_) => {}
                None => {
                    let mut other = bases[0].clone();
                    other.push(Match::L4Proto { proto: icmp.number(), negated: true });
                    bases[0].push(not_type);
                    bases.push(other);
                }
            }
        }
        let Some(src) = self.entity(&r.source, fam, Side::Saddr) else { return vec![] };
        let Some(dst) = self.entity(&r.destination, fam, Side::Daddr) else { return vec![] };
        let mut out = Vec::new();
        for base in &bases {
            for s in &src {
                for d in &dst {
                    let mut m = base.clone();
                    m.extend(s.iter().cloned());
                    m.extend(d.iter().cloned());
                    out.push(m);
                }
            }
        }
        out
    }

    /// One side of a rule: the alternatives of conditions on that side, or
    /// None when the side cannot match in this family.
    fn entity(&mut self, e: &EntityRule, fam: Family, side: Side) -> Option<Vec<Vec<Match>>> {
        let mut common = Vec::new();
        let mut not_nets: Vec<IpNet> = e.not_nets.iter().copied().filter(|n| fam_of_net(n) == fam).collect();
        if !e.nets.is_empty() {
            let nets: Vec<IpNet> = e.nets.iter().copied().filter(|n| fam_of_net(n) == fam).collect();
            if nets.is_empty() {
                return None;
            }
            // ipBlock `except` (and notNets beside nets): subtracted here, so
            // the packet needs one lookup in one interval set.
            let nets = subtract(&nets, &not_nets);
            not_nets.clear();
            if nets.is_empty() {
                return None;
            }
            let set = self.nets_set(nets, fam);
            common.push(Match::Addr { family: fam, side, set, negated: false });
        }
        if !not_nets.is_empty() {
            let set = self.nets_set(not_nets, fam);
            common.push(Match::Addr { family: fam, side, set, negated: true });
        }
        if let Some(s) = &e.selector {
            let set = self.selector_set(s, fam);
            common.push(Match::Addr { family: fam, side, set, negated: false });
        }
        if let Some(s) = &e.nodes {
            // A ClusterNetworkPolicy `nodes` peer: the matching Nodes'
            // addresses in this family; none, and the rule cannot match here.
            let hosts: Vec<IpNet> =
                self.an.node_addresses(s).map(IpNet::from).filter(|n| fam_of_net(n) == fam).collect();
            if hosts.is_empty() {
                return None;
            }
            let set = self.nets_set(hosts, fam);
            common.push(Match::Addr { family: fam, side, set, negated: false });
        }
        if let Some(s) = &e.not_selector {
            let set = self.selector_set(s, fam);
            common.push(Match::Addr { family: fam, side, set, negated: true });
        }
        let (ranges, named) = split_ports(&e.not_ports);
        if !ranges.is_empty() {
            let set = self.ports_set(ranges);
            common.push(Match::Port { side, set, negated: true });
        }
        for n in named {
            let set = self.named_port_set(&n, e.selector.as_ref(), fam);
            common.push(Match::NamedPort { family: fam, side, set, negated: true });
        }
        if e.ports.is_empty() {
            return Some(vec![common]);
        }
        let (ranges, named) = split_ports(&e.ports);
        let mut alts = Vec::new();
        if !ranges.is_empty() {
            let mut m = common.clone();
            let set = self.ports_set(ranges);
            m.push(Match::Port { side, set, negated: false });
            alts.push(m);
        }
        for n in named {
            let set = self.named_port_set(&n, e.selector.as_ref(), fam);
            let mut m = common.clone();
            m.push(Match::NamedPort { family: fam, side, set, negated: false });
            alts.push(m);
        }
        Some(alts)
    }

    /// The named set of addresses a selector matches in one family: workload
    /// endpoints (anywhere in the cluster) and network-set CIDRs.
    fn selector_set(&mut self, s: &Expr, fam: Family) -> String {
        let text = s.to_string();
        let base = match self.selector_sets.get(&text) {
            Some(b) => b.clone(),
            None => {
                let b = format!("sel-{:016x}", fnv64(text.as_bytes()));
                self.selector_sets.insert(text, b.clone());
                b
            }
        };
        if let Some(name) = self.selector_names.get(&(base.clone(), fam)) {
            return name.clone();
        }
        let mut elements = BTreeSet::new();
        for (_, members) in self.label_groups.iter().filter(|(labels, _)| s.eval(*labels)) {
            for ep in members.iter().map(|&i| &self.an.endpoints[i]) {
                for ip in ep.ips.iter().filter(|ip| Family::of(ip) == fam) {
                    elements.insert(Element::Net(IpNet::from(*ip)));
                }
            }
        }
        for ns in self.an.network_sets.iter().filter(|n| s.eval(&n.labels)) {
            for net in ns.set.nets.iter().filter(|n| fam_of_net(n) == fam) {
                elements.insert(Element::Net(*net));
            }
        }
        let elements = merge_nets(elements);
        // Pod addresses alone go in a hash set; CIDRs need an interval set.
        // The kind is part of the name, so a change of kind is a new set.
        let hosts = elements.iter().all(|e| matches!(e, Element::Net(n) if n.prefix_len() == n.max_prefix_len()));
        let (kind, name) = if hosts {
            (SetKind::Hosts(fam), format!("{base}-{}", fam.suffix()))
        } else {
            (SetKind::Addr(fam), format!("{base}-{}n", fam.suffix()))
        };
        self.out.sets.entry(name.clone()).or_insert(Set { kind, elements });
        self.selector_names.insert((base, fam), name.clone());
        name
    }

    /// A named interval set for a rule's own CIDR list, shared by equal lists.
    fn nets_set(&mut self, nets: Vec<IpNet>, fam: Family) -> String {
        let elements = merge_nets(nets.into_iter().map(Element::Net).collect());
        let key: Vec<String> = elements.iter().map(crate::live::element_key).collect();
        let name = format!("nets-{:016x}-{}", fnv64(key.join(",").as_bytes()), fam.suffix());
        self.out.sets.entry(name.clone()).or_insert(Set { kind: SetKind::Addr(fam), elements });
        name
    }

    /// A named interval set of ports, shared by equal lists.
    fn ports_set(&mut self, mut ranges: Vec<(u16, u16)>) -> String {
        ranges.sort();
        let mut merged: Vec<(u16, u16)> = Vec::new();
        for (a, b) in ranges {
            match merged.last_mut() {
                Some(last) if a as u32 <= last.1 as u32 + 1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        let key: Vec<String> = merged.iter().map(|(a, b)| format!("{a}-{b}")).collect();
        let name = format!("ports-{:016x}", fnv64(key.join(",").as_bytes()));
        let elements = merged.into_iter().map(|(a, b)| Element::PortRange(a, b)).collect();
        self.out.sets.entry(name.clone()).or_insert(Set { kind: SetKind::Service, elements });
        name
    }

    /// The (address, protocol, port) triples of every workload endpoint that
    /// declares container port `name` and matches the rule side's selector
    /// itself (network sets have no ports: rule_scanner.go namedPortsToIPSets).
    fn named_port_set(&mut self, port_name: &str, selector: Option<&Expr>, fam: Family) -> String {
        let name = match selector {
            None => format!("np-{port_name}-{}", fam.suffix()),
            Some(s) => format!("np-{port_name}-{:016x}-{}", fnv64(s.to_string().as_bytes()), fam.suffix()),
        };
        if !self.out.sets.contains_key(&name) {
            let mut elements = BTreeSet::new();
            let owners = self.an.endpoints.iter().filter(|ep| !ep.host_network);
            for ep in owners.filter(|ep| selector.is_none_or(|s| s.eval(&ep.labels))) {
                if let Some(ports) = ep.named_ports.get(port_name) {
                    for ip in ep.ips.iter().filter(|ip| Family::of(ip) == fam) {
                        for (proto, port) in ports {
                            elements.insert(Element::AddrProtoPort(*ip, proto.number(), *port));
                        }
                    }
                }
            }
            self.out.sets.insert(name.clone(), Set { kind: SetKind::AddrProtoPort(fam), elements });
        }
        name
    }
}

fn trim_prefix(s: &str) -> String {
    // nft log prefixes are limited to 127 bytes.
    netward_policy::text::cut(s, 120).to_string()
}

/// `nets` minus every net in `except`, as disjoint CIDRs.
pub fn subtract(nets: &[IpNet], except: &[IpNet]) -> Vec<IpNet> {
    let mut out = Vec::new();
    let mut work: Vec<IpNet> = nets.to_vec();
    while let Some(n) = work.pop() {
        if except.iter().any(|x| x.contains(&n)) {
            continue;
        }
        if except.iter().any(|x| n.contains(x)) {
            // Split in halves until no except cuts through a piece.
            match n.subnets(n.prefix_len() + 1) {
                Ok(halves) => work.extend(halves),
                Err(_) => continue,
            }
        } else {
            out.push(n);
        }
    }
    IpNet::aggregate(&out)
}

fn fam_of_net(n: &IpNet) -> Family {
    Family::of(&n.addr())
}

fn split_ports(ports: &[PortMatch]) -> (Vec<(u16, u16)>, Vec<String>) {
    let mut ranges = Vec::new();
    let mut named = Vec::new();
    for p in ports {
        match p {
            PortMatch::Range(a, b) => ranges.push((*a, *b)),
            PortMatch::Named(n) => named.push(n.clone()),
        }
    }
    (ranges, named)
}

/// Drops addresses and CIDRs already covered by a larger CIDR in the set
/// (interval sets reject overlaps). Adjacent entries are kept apart, not
/// merged, so one pod joining or leaving is one element operation.
fn merge_nets(elements: BTreeSet<Element>) -> BTreeSet<Element> {
    let mut nets: Vec<IpNet> =
        elements.iter().filter_map(|e| if let Element::Net(n) = e { Some(*n) } else { None }).collect();
    nets.sort_by_key(|n| n.prefix_len());
    // Only a CIDR can cover another entry (addresses are already unique),
    // so each entry is checked against the CIDRs kept so far, not against
    // every pod address: linear in pods, not quadratic.
    let mut cidrs: Vec<IpNet> = Vec::new();
    let mut kept: Vec<IpNet> = Vec::with_capacity(nets.len());
    for n in nets {
        if !cidrs.iter().any(|k| k.contains(&n)) {
            if n.prefix_len() < n.max_prefix_len() {
                cidrs.push(n);
            }
            kept.push(n);
        }
    }
    kept.into_iter().map(Element::Net).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(nets: &[&str]) -> BTreeSet<Element> {
        nets.iter().map(|n| Element::Net(n.parse().unwrap())).collect()
    }

    #[test]
    fn merge_drops_what_a_cidr_covers_and_keeps_neighbours_apart() {
        let merged = merge_nets(set(&["10.0.0.5/32", "10.0.0.0/24", "10.0.0.0/25", "10.0.1.1/32", "10.0.1.2/32"]));
        assert_eq!(merged, set(&["10.0.0.0/24", "10.0.1.1/32", "10.0.1.2/32"]));
        let v6 = merge_nets(set(&["fd00::1/128", "fd00::/64", "fd01::1/128"]));
        assert_eq!(v6, set(&["fd00::/64", "fd01::1/128"]));
    }

    #[test]
    fn subtract_cuts_the_except_out() {
        let n = |s: &str| s.parse::<IpNet>().unwrap();
        let out = subtract(&[n("10.0.0.0/24")], &[n("10.0.0.128/25"), n("10.0.0.0/26")]);
        assert_eq!(out, vec![n("10.0.0.64/26")]);
        assert!(subtract(&[n("10.0.0.0/24")], &[n("10.0.0.0/16")]).is_empty());
    }
}

//! Every endpoint pair at once.
//!
//! Endpoints that policy cannot tell apart (same Calico labels, same named
//! ports, addresses inside the same CIDRs that rules and network sets
//! mention, and the same node where host-networked pods make the node matter)
//! form one class. Selectors are evaluated once per class through an inverted
//! label index, and each local class runs its tiers over bit sets of remote
//! classes, so the cost grows with classes and rules, not with pods squared.
//! IPv4 and IPv6 are separate passes, since a rule can exist in one family
//! and not the other (C5). A pair is decided over the family both ends have;
//! when both are dual stack, over IPv4 unless `prefer_v6` says IPv6, and a
//! pair whose two families disagree is caveated (`Counts::family_split`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use ipnet::IpNet;

use crate::analysis::bitset::Bitset;
use crate::analysis::Analysis;
use crate::model::port::FlowPort;
use crate::model::{Action, Direction, EntityRule, PortMatch, Protocol, Rule};
use crate::selector::Expr;

/// The verdicts for every ordered endpoint pair and port.
pub struct Matrix {
    /// Endpoint ids, in the analysis' order.
    pub endpoints: Vec<String>,
    /// The ports decided; the `port` argument of the queries indexes this.
    pub ports: Vec<FlowPort>,
    passes: Vec<Pass>,
    /// Per endpoint: host-networked, and its node (interned).
    host: Vec<bool>,
    node: Vec<Option<usize>>,
    /// Pairs that K11 allows whatever the policies say: a host-networked pod
    /// and a pod on the same node. Few; kept apart so the node does not split
    /// classes.
    same_node: Vec<(usize, usize)>,
    /// Decide dual-stack pairs over IPv6 rather than IPv4.
    prefer_v6: bool,
    /// Dual-stack endpoints grouped by their (IPv4 class, IPv6 class), with
    /// the group of each endpoint: what family splits are counted over.
    combos: Vec<(usize, usize, u64)>,
}

/// Counts for one port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Ordered pairs of distinct endpoints.
    pub pairs: u64,
    /// Pairs that may connect.
    pub allowed: u64,
    /// Pairs that may not.
    pub denied: u64,
    /// Pairs whose verdict an L7, DNS, Service or source-port rule may
    /// change, or that IPv4 and IPv6 decide differently.
    pub caveated: u64,
    /// Dual-stack pairs that IPv4 and IPv6 decide differently (also in `caveated`).
    pub family_split: u64,
}

struct Pass {
    v6: bool,
    /// Endpoint index -> class, for endpoints that take part in this pass.
    class_of: Vec<Option<usize>>,
    class_size: Vec<u64>,
    /// Per port: class -> destination classes it may connect to.
    allowed: Vec<Vec<Bitset>>,
    /// Per port: class -> destination classes whose verdict carries a caveat.
    flagged: Vec<Vec<Bitset>>,
    /// Classes whose members also have an address of the other family.
    has_other: Vec<bool>,
}

#[derive(Hash, PartialEq, Eq)]
struct ClassKey {
    host: bool,
    labels: BTreeMap<String, String>,
    named_ports: BTreeMap<String, Vec<(Protocol, u16)>>,
    cidrs: Vec<u32>,
    has_other: bool,
}

struct Class {
    rep: usize,
    host: bool,
}

/// Everything one pass needs to evaluate rules over class bit sets.
struct Space<'a> {
    an: &'a Analysis,
    classes: Vec<Class>,
    n: usize,
    workload: Bitset,
    index: HashMap<&'a str, HashMap<&'a str, Bitset>>,
    has_key: HashMap<&'a str, Bitset>,
    /// For each mentioned CIDR, the classes whose address it contains.
    cidr_classes: Vec<Bitset>,
    cidr_ids: HashMap<IpNet, usize>,
    memo: HashMap<(usize, bool), Rc<Bitset>>,
    named: HashMap<(String, Protocol, u16), Bitset>,
}

impl Matrix {
    /// Decides every pair of endpoints for every port.
    pub fn compute(an: &Analysis, ports: &[FlowPort]) -> Matrix {
        let endpoints = an.endpoints.iter().map(|e| e.id.clone()).collect();
        let cidrs = mentioned_cidrs(an);
        let passes: Vec<Pass> =
            [false, true].into_iter().filter_map(|v6| Pass::compute(an, v6, &cidrs, ports)).collect();
        let mut nodes: HashMap<&str, usize> = HashMap::new();
        let node: Vec<Option<usize>> = an
            .endpoints
            .iter()
            .map(|e| {
                e.node.as_deref().map(|n| {
                    let k = nodes.len();
                    *nodes.entry(n).or_insert(k)
                })
            })
            .collect();
        let host: Vec<bool> = an.endpoints.iter().map(|e| e.host_network).collect();
        let mut same_node = Vec::new();
        for (h, _) in host.iter().enumerate().filter(|(_, h)| **h) {
            for (w, n) in node.iter().enumerate() {
                // Node -> its own pod only: the pod -> node way passes the
                // pod's egress policy (C12), as the passes compute it.
                if w != h && n.is_some() && *n == node[h] && passes_share(&passes, h, w) {
                    same_node.push((h, w));
                }
            }
        }
        let mut combos: HashMap<(usize, usize), u64> = HashMap::new();
        if let [v4, v6] = passes.as_slice() {
            for (c4, c6) in v4.class_of.iter().zip(&v6.class_of) {
                if let (Some(c4), Some(c6)) = (c4, c6) {
                    *combos.entry((*c4, *c6)).or_default() += 1;
                }
            }
        }
        let mut combos: Vec<(usize, usize, u64)> = combos.into_iter().map(|((a, b), n)| (a, b, n)).collect();
        combos.sort_unstable();
        Matrix { endpoints, ports: ports.to_vec(), passes, host, node, same_node, prefer_v6: false, combos }
    }

    /// The same verdicts, deciding dual-stack pairs over IPv6 (`--family 6`)
    /// or IPv4 (the default).
    pub fn with_family_v6(mut self, v6: bool) -> Self {
        self.prefer_v6 = v6;
        self
    }

    /// Whether a pair of dual-stack endpoints is decided differently by IPv4 and IPv6.
    pub fn family_split(&self, port: usize, a: usize, b: usize) -> bool {
        let [v4, v6] = self.passes.as_slice() else { return false };
        let both = |p: &Pass| Some((p.class_of[a]?, p.class_of[b]?));
        match (both(v4), both(v6)) {
            (Some((a4, b4)), Some((a6, b6))) => v4.allowed[port][a4].has(b4) != v6.allowed[port][a6].has(b6),
            _ => false,
        }
    }

    /// Dual-stack pairs that the two families decide differently, and those
    /// of them the preferred family does not flag already.
    fn split_counts(&self, port: usize) -> (u64, u64) {
        let [v4, v6] = self.passes.as_slice() else { return (0, 0) };
        let preferred = if self.prefer_v6 { v6 } else { v4 };
        let (mut split, mut unflagged) = (0, 0);
        for (i, &(a4, a6, na)) in self.combos.iter().enumerate() {
            for (j, &(b4, b6, nb)) in self.combos.iter().enumerate() {
                if v4.allowed[port][a4].has(b4) == v6.allowed[port][a6].has(b6) {
                    continue;
                }
                let pairs = if i == j { na * na.saturating_sub(1) } else { na * nb };
                split += pairs;
                let (pa, pb) = if self.prefer_v6 { (a6, b6) } else { (a4, b4) };
                if !preferred.flagged[port][pa].has(pb) {
                    unflagged += pairs;
                }
            }
        }
        (split, unflagged)
    }

    /// K11: a host-networked pod reaches the pods of its node (over an
    /// address family both have); the other way passes the pod's egress (C12).
    fn node_local(&self, a: usize, b: usize) -> bool {
        self.host[a] && self.node[a].is_some() && self.node[a] == self.node[b] && self.pass_for(a, b).is_some()
    }

    fn class_allowed(&self, port: usize, a: usize, b: usize) -> bool {
        self.pass_for(a, b).is_some_and(|(p, ca, cb)| p.allowed[port][ca].has(cb))
    }

    fn class_flagged(&self, port: usize, a: usize, b: usize) -> bool {
        self.pass_for(a, b).is_some_and(|(p, ca, cb)| p.flagged[port][ca].has(cb)) || self.family_split(port, a, b)
    }

    /// The pass that decides a pair: the preferred family if both ends have
    /// it, else the one they share.
    /// Called once per pair by every output format: no allocation here.
    fn pass_for(&self, a: usize, b: usize) -> Option<(&Pass, usize, usize)> {
        fn pick(p: &Pass, a: usize, b: usize) -> Option<(&Pass, usize, usize)> {
            Some((p, p.class_of[a]?, p.class_of[b]?))
        }
        if self.prefer_v6 {
            self.passes.iter().rev().find_map(|p| pick(p, a, b))
        } else {
            self.passes.iter().find_map(|p| pick(p, a, b))
        }
    }

    /// Whether endpoint `a` may open a new connection to endpoint `b` on port `port`.
    pub fn allowed(&self, port: usize, a: usize, b: usize) -> bool {
        self.node_local(a, b) || self.class_allowed(port, a, b)
    }

    /// Whether the verdict for the pair may depend on something L3/L4 cannot see.
    pub fn caveated(&self, port: usize, a: usize, b: usize) -> bool {
        !self.node_local(a, b) && self.class_flagged(port, a, b)
    }

    /// Pair counts for a port, computed over classes (no per-pod expansion).
    /// A pod and itself are not a pair.
    pub fn counts(&self, port: usize) -> Counts {
        let n = self.endpoints.len() as u64;
        let mut c = Counts { pairs: n * n.saturating_sub(1), ..Counts::default() };
        for p in &self.passes {
            // Dual-stack pairs are counted in the preferred family's pass only.
            let secondary = p.v6 != self.prefer_v6;
            c.allowed += p.weighted_pairs(&p.allowed[port], secondary);
            c.caveated += p.weighted_pairs(&p.flagged[port], secondary);
        }
        let (split, unflagged) = self.split_counts(port);
        c.family_split = split;
        c.caveated += unflagged;
        for &(a, b) in &self.same_node {
            if !self.class_allowed(port, a, b) {
                c.allowed += 1;
            }
            if self.class_flagged(port, a, b) {
                c.caveated -= 1;
            }
        }
        c.denied = c.pairs - c.allowed;
        c
    }

    /// How many endpoint classes each pass used (IPv4, IPv6).
    pub fn class_counts(&self) -> Vec<(bool, usize)> {
        self.passes.iter().map(|p| (p.v6, p.class_size.len())).collect()
    }
}

fn passes_share(passes: &[Pass], a: usize, b: usize) -> bool {
    passes.iter().any(|p| p.class_of[a].is_some() && p.class_of[b].is_some())
}

fn mentioned_cidrs(an: &Analysis) -> Vec<IpNet> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut add = |n: &IpNet| {
        if seen.insert(*n) {
            out.push(*n);
        }
    };
    for p in &an.policies {
        for r in p.ingress.iter().chain(&p.egress) {
            for e in [&r.source, &r.destination] {
                e.nets.iter().chain(&e.not_nets).for_each(&mut add);
                // A `nodes` peer stands for its Nodes' addresses, each a host route.
                if let Some(sel) = &e.nodes {
                    an.node_addresses(sel).for_each(|ip| add(&IpNet::from(ip)));
                }
            }
        }
    }
    for s in &an.network_sets {
        s.set.nets.iter().for_each(&mut add);
    }
    out
}

impl Pass {
    /// How many endpoint pairs the class pairs in `rows` stand for; in the
    /// `secondary` pass, pairs that both have the other family are decided
    /// in the other pass.
    fn weighted_pairs(&self, rows: &[Bitset], secondary: bool) -> u64 {
        let mut total = 0;
        for (s, row) in rows.iter().enumerate() {
            for d in row.ones() {
                if secondary && self.has_other[s] && self.has_other[d] {
                    continue;
                }
                let (ns, nd) = (self.class_size[s], self.class_size[d]);
                total += if s == d { ns * (ns - 1) } else { ns * nd };
            }
        }
        total
    }

    fn compute(an: &Analysis, v6: bool, cidrs: &[IpNet], ports: &[FlowPort]) -> Option<Pass> {
        let mut keys: HashMap<ClassKey, usize> = HashMap::new();
        let mut classes: Vec<Class> = Vec::new();
        let mut class_size = Vec::new();
        let mut has_other = Vec::new();
        let mut class_of = vec![None; an.endpoints.len()];
        let mut class_cidrs: Vec<Vec<u32>> = Vec::new();
        for (i, e) in an.endpoints.iter().enumerate() {
            let Some(ip) = e.ip_in(v6) else { continue };
            let key = ClassKey {
                host: e.host_network,
                labels: e.labels.clone(),
                named_ports: if e.host_network { BTreeMap::new() } else { e.named_ports.clone() },
                cidrs: cidrs.iter().enumerate().filter(|(_, n)| n.contains(&ip)).map(|(j, _)| j as u32).collect(),
                has_other: e.ip_in(!v6).is_some(),
            };
            let next = classes.len();
            let c = *keys.entry(key).or_insert_with_key(|k| {
                class_cidrs.push(k.cidrs.clone());
                has_other.push(k.has_other);
                class_size.push(0);
                next
            });
            if c == next {
                classes.push(Class { rep: i, host: e.host_network });
            }
            class_size[c] += 1;
            class_of[i] = Some(c);
        }
        if classes.is_empty() {
            return None;
        }
        let n = classes.len();
        let mut space = Space::new(an, classes, &class_cidrs, cidrs);

        // Which policies apply to which class, per direction, tier by tier.
        let policy_sets: Vec<Bitset> = an.policies.iter().map(|p| space.select(&p.selector, false)).collect();

        let mut allowed = Vec::new();
        let mut flagged = Vec::new();
        for fp in ports {
            let mut egress = Vec::with_capacity(n);
            let mut egress_flag = Vec::with_capacity(n);
            let mut ingress = Vec::with_capacity(n);
            let mut ingress_flag = Vec::with_capacity(n);
            for l in 0..n {
                let (e, ef) = space.direction(l, Direction::Egress, *fp, v6, &policy_sets);
                let (i, inf) = space.direction(l, Direction::Ingress, *fp, v6, &policy_sets);
                egress.push(e);
                egress_flag.push(ef);
                ingress.push(i);
                ingress_flag.push(inf);
            }
            // combined[s] = egress[s] ∩ { d : ingress[d] has s }
            let mut ingress_t = vec![Bitset::empty(n); n];
            let mut flag_t = vec![Bitset::empty(n); n];
            for d in 0..n {
                for s in ingress[d].ones() {
                    ingress_t[s].set(d);
                }
                for s in ingress_flag[d].ones() {
                    flag_t[s].set(d);
                }
            }
            let mut comb = Vec::with_capacity(n);
            let mut flags = Vec::with_capacity(n);
            for s in 0..n {
                comb.push(egress[s].intersect(&ingress_t[s]));
                let mut f = egress_flag[s].clone();
                f.or(&flag_t[s]);
                flags.push(f);
            }
            allowed.push(comb);
            flagged.push(flags);
        }
        Some(Pass { v6, class_of, class_size, allowed, flagged, has_other })
    }
}

impl<'a> Space<'a> {
    fn new(an: &'a Analysis, classes: Vec<Class>, class_cidrs: &[Vec<u32>], cidrs: &[IpNet]) -> Self {
        let n = classes.len();
        let mut workload = Bitset::empty(n);
        let mut index: HashMap<&str, HashMap<&str, Bitset>> = HashMap::new();
        let mut has_key: HashMap<&str, Bitset> = HashMap::new();
        for (c, class) in classes.iter().enumerate() {
            if class.host {
                continue;
            }
            workload.set(c);
            for (k, v) in &an.endpoints[class.rep].labels {
                index.entry(k).or_default().entry(v).or_insert_with(|| Bitset::empty(n)).set(c);
                has_key.entry(k).or_insert_with(|| Bitset::empty(n)).set(c);
            }
        }
        let mut cidr_classes = vec![Bitset::empty(n); cidrs.len()];
        for (c, ids) in class_cidrs.iter().enumerate() {
            for &j in ids {
                cidr_classes[j as usize].set(c);
            }
        }
        let cidr_ids = cidrs.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        Space {
            an,
            classes,
            n,
            workload,
            index,
            has_key,
            cidr_classes,
            cidr_ids,
            memo: HashMap::new(),
            named: HashMap::new(),
        }
    }

    fn labels_eval(&self, e: &Expr) -> Bitset {
        let n = self.n;
        let eq =
            |k: &str, v: &str| self.index.get(k).and_then(|m| m.get(v)).cloned().unwrap_or_else(|| Bitset::empty(n));
        let scan = |k: &str, pred: &dyn Fn(&str) -> bool| {
            let mut b = Bitset::empty(n);
            if let Some(m) = self.index.get(k) {
                for (v, set) in m {
                    if pred(v) {
                        b.or(set);
                    }
                }
            }
            b
        };
        match e {
            Expr::All | Expr::Global => Bitset::full(n),
            Expr::Has(k) => self.has_key.get(k.as_str()).cloned().unwrap_or_else(|| Bitset::empty(n)),
            Expr::Eq(k, v) => eq(k, v),
            Expr::Ne(k, v) => eq(k, v).not(),
            Expr::In(k, vs) => scan(k, &|x| vs.contains(x)),
            Expr::NotIn(k, vs) => scan(k, &|x| vs.contains(x)).not(),
            Expr::Contains(k, v) => scan(k, &|x| x.contains(v.as_str())),
            Expr::StartsWith(k, v) => scan(k, &|x| x.starts_with(v.as_str())),
            Expr::EndsWith(k, v) => scan(k, &|x| x.ends_with(v.as_str())),
            Expr::Not(x) => self.labels_eval(x).not(),
            Expr::And(xs) => {
                let mut b = Bitset::full(n);
                for x in xs {
                    b.and(&self.labels_eval(x));
                }
                b
            }
            Expr::Or(xs) => {
                let mut b = Bitset::empty(n);
                for x in xs {
                    b.or(&self.labels_eval(x));
                }
                b
            }
        }
    }

    /// The classes a selector matches: workload classes by labels, plus (for
    /// rule selectors) classes whose address lies in a matching network set.
    fn select(&self, e: &Expr, with_sets: bool) -> Bitset {
        let mut b = self.labels_eval(e);
        b.and(&self.workload);
        if with_sets {
            for s in &self.an.network_sets {
                if e.eval(&s.labels) {
                    for net in &s.set.nets {
                        b.or(&self.cidr_classes[self.cidr_ids[net]]);
                    }
                }
            }
        }
        b
    }

    fn nets_union(&self, nets: &[IpNet]) -> Bitset {
        let mut b = Bitset::empty(self.n);
        for net in nets {
            b.or(&self.cidr_classes[self.cidr_ids[net]]);
        }
        b
    }

    /// Classes matching an entity's address conditions (nets, selectors);
    /// ports are checked separately. Memoised per rule side.
    fn entity_base(&mut self, e: &EntityRule, key: (usize, bool)) -> Rc<Bitset> {
        if let Some(b) = self.memo.get(&key) {
            return b.clone();
        }
        let mut b = Bitset::full(self.n);
        if e.service.is_some() || !e.domains.is_empty() {
            b = Bitset::empty(self.n);
        } else {
            if !e.nets.is_empty() {
                b.and(&self.nets_union(&e.nets));
            }
            if let Some(sel) = &e.nodes {
                let hosts: Vec<IpNet> = self.an.node_addresses(sel).map(IpNet::from).collect();
                b.and(&self.nets_union(&hosts));
            }
            b.and_not(&self.nets_union(&e.not_nets));
            if let Some(s) = &e.selector {
                b.and(&self.select(s, true));
            }
            if let Some(s) = &e.not_selector {
                b.and_not(&self.select(s, true));
            }
        }
        let b = Rc::new(b);
        self.memo.insert(key, b.clone());
        b
    }

    fn named_set(&mut self, name: &str, proto: Protocol, port: u16) -> Bitset {
        let key = (name.to_string(), proto, port);
        if let Some(b) = self.named.get(&key) {
            return b.clone();
        }
        let mut b = Bitset::empty(self.n);
        for (c, class) in self.classes.iter().enumerate() {
            if !class.host && self.an.endpoints[class.rep].named_port(name, proto, port) {
                b.set(c);
            }
        }
        self.named.insert(key, b.clone());
        b
    }

    /// Classes whose port on this side matches the entity's ports/notPorts.
    /// A named port counts only on endpoints that match the side's selector
    /// themselves (network sets have no ports).
    fn port_set(&mut self, e: &EntityRule, proto: Protocol, port: u16) -> Bitset {
        let owners = e.selector.as_ref().map(|s| {
            let mut b = self.labels_eval(s);
            b.and(&self.workload);
            b
        });
        let hit = |s: &mut Self, pms: &[PortMatch]| {
            let mut b = Bitset::empty(s.n);
            for pm in pms {
                match pm {
                    PortMatch::Range(a, z) if (*a..=*z).contains(&port) => b = Bitset::full(s.n),
                    PortMatch::Range(..) => {}
                    PortMatch::Named(name) => {
                        let mut named = s.named_set(name, proto, port);
                        if let Some(o) = &owners {
                            named.and(o);
                        }
                        b.or(&named);
                    }
                }
            }
            b
        };
        let mut b = if e.ports.is_empty() { Bitset::full(self.n) } else { hit(self, &e.ports) };
        b.and_not(&hit(self, &e.not_ports));
        b
    }

    /// The remote classes a rule matches for local class `l`, and whether the
    /// rule involved something undecidable (for caveats).
    /// Narrows `m` (the undecided remote classes) to those the rule matches
    /// for local class `l`; returns whether the rule involved something
    /// undecidable (for caveats).
    #[expect(clippy::too_many_arguments, reason = "one call site; a struct would only rename them")]
    fn rule_set(
        &mut self,
        rule_key: usize,
        r: &Rule,
        l: usize,
        dir: Direction,
        fp: FlowPort,
        v6: bool,
        m: &mut Bitset,
    ) -> bool {
        if !r.exists_in(v6)
            || r.protocol.is_some_and(|p| p != fp.protocol)
            || r.not_protocol == Some(fp.protocol)
            || r.icmp.is_some()
        {
            m.clear();
            return false;
        }
        let (local, remote, local_is_src) = match dir {
            Direction::Ingress => (&r.destination, &r.source, false),
            Direction::Egress => (&r.source, &r.destination, true),
        };
        let has_ports = |e: &EntityRule| !e.ports.is_empty() || !e.not_ports.is_empty();
        let undecidable = r.needs_l7() || local.service.is_some() || remote.service.is_some();
        // Local side.
        if !self.entity_base(local, (rule_key, local_is_src)).has(l) {
            m.clear();
            return undecidable;
        }
        let mut src_port_unknown = false;
        if local_is_src {
            if has_ports(local) {
                src_port_unknown = true;
                if !local.ports.is_empty() {
                    m.clear();
                    return true;
                }
            }
        } else if has_ports(local) && !self.port_set(local, fp.protocol, fp.port).has(l) {
            m.clear();
            return undecidable;
        }
        // Remote side.
        m.and(&self.entity_base(remote, (rule_key, !local_is_src)));
        if local_is_src {
            if has_ports(remote) {
                m.and(&self.port_set(remote, fp.protocol, fp.port));
            }
        } else if has_ports(remote) {
            src_port_unknown = true;
            if !remote.ports.is_empty() {
                m.clear();
            }
        }
        undecidable || src_port_unknown
    }

    /// One local class, one direction: the remote classes allowed, and those
    /// whose verdict carries a caveat.
    fn direction(
        &mut self,
        l: usize,
        dir: Direction,
        fp: FlowPort,
        v6: bool,
        policy_sets: &[Bitset],
    ) -> (Bitset, Bitset) {
        let n = self.n;
        let an = self.an;
        if self.classes[l].host {
            return (Bitset::full(n), Bitset::empty(n));
        }
        let mut undecided = Bitset::full(n);
        let mut m = Bitset::empty(n);
        let mut allowed = Bitset::empty(n);
        let mut flagged = Bitset::empty(n);
        for plan in &an.tiers {
            let mut any = false;
            let mut passed = Bitset::empty(n);
            for &pi in &plan.policies {
                let p = &an.policies[pi];
                if !p.applies_in(dir) || !policy_sets[pi].has(l) {
                    continue;
                }
                any = true;
                if undecided.is_empty() {
                    break;
                }
                for (ri, r) in p.rules(dir).iter().enumerate() {
                    if undecided.is_empty() {
                        break;
                    }
                    let key = rule_id(pi, dir, ri);
                    m.copy_from(&undecided);
                    if self.rule_set(key, r, l, dir, fp, v6, &mut m) {
                        flagged.or(&undecided);
                    }
                    match r.action {
                        Action::Log => {}
                        Action::Allow => {
                            allowed.or(&m);
                            undecided.and_not(&m);
                        }
                        Action::Deny => undecided.and_not(&m),
                        Action::Pass => {
                            passed.or(&m);
                            undecided.and_not(&m);
                        }
                    }
                }
            }
            if !any {
                continue;
            }
            // End of tier: what no rule decided meets the tier's default action.
            if plan.tier.default_action == Action::Deny {
                undecided = passed;
            } else {
                undecided.or(&passed);
            }
        }
        // The profile allows whatever every tier passed on.
        allowed.or(&undecided);
        (allowed, flagged)
    }
}

/// A unique key for one rule of one policy in one direction.
fn rule_id(policy: usize, dir: Direction, rule: usize) -> usize {
    (policy << 21) | ((dir == Direction::Egress) as usize) << 20 | rule
}

//! A grammar of policy repositories for structure-aware fuzzing.
//!
//! `World` is built by `arbitrary` from the fuzzer's bytes: Kubernetes
//! NetworkPolicies (and their staged form), Calico (Global)NetworkPolicies
//! and their staged forms, (Global)NetworkSets and Tiers, with selectors
//! from a small label vocabulary, ports, protocols, nets, http matches,
//! types and orders. It is written out as YAML text by the small writer at
//! the end (block or flow style, `kind: List` wrappers, several files), so
//! the loader runs end to end.
//!
//! Most worlds are "tidy": the writer drops or fixes combinations the
//! loader rejects (numeric ports without a port protocol, icmp without
//! ICMP, http outside ingress Allow, services with selectors, mixed address
//! families, undefined tiers ...), so most inputs reach analysis and
//! compilation. One world in eight (`World::raw`) is written as generated,
//! to exercise the loader's error paths.
//!
//! Sizes are bounded (<= 3 tiers, 3 network sets, 8 policies, 6 rules per
//! direction, selectors 3 operators deep) so one input runs in milliseconds.

use std::fmt;
use std::net::IpAddr;

use arbitrary::{Arbitrary, Result, Unstructured};
use ipnet::IpNet;

/// At most `N` values.
#[derive(Clone, Debug, PartialEq)]
pub struct Few<T, const N: usize>(pub Vec<T>);

impl<'a, T: Arbitrary<'a>, const N: usize> Arbitrary<'a> for Few<T, N> {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        // Longer lists are rarer (the smaller of two draws), which keeps the
        // average world small and fast while the maximum stays reachable.
        let mut n = u.int_in_range(0..=N)?;
        if N >= 4 {
            n = n.min(u.int_in_range(0..=N)?);
        }
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(T::arbitrary(u)?);
        }
        Ok(Few(v))
    }
}

impl<T, const N: usize> Few<T, N> {
    fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An index into a vocabulary list.
macro_rules! pick {
    ($name:ident, $list:expr) => {
        #[derive(Arbitrary, Clone, Copy, Debug, PartialEq)]
        pub struct $name(pub u8);
        impl $name {
            pub fn get(self) -> &'static str {
                let l: &[&str] = &$list;
                l[self.0 as usize % l.len()]
            }
        }
    };
}

pick!(
    Key,
    [
        "app",
        "role",
        "tier",
        "env",
        "team",
        "k8s-app",
        "version",
        "kind",
        "projectcalico.org/namespace",
        "projectcalico.org/orchestrator",
        "kubernetes.io/metadata.name",
        "projectcalico.org/name",
        "missing",
    ]
);
pick!(
    Val,
    [
        "web",
        "api",
        "postgres",
        "kube-dns",
        "debug",
        "sig",
        "exporter",
        "frontend",
        "backend",
        "data",
        "prod",
        "dev",
        "v2",
        "k8s",
        "ext",
        "",
        "web-a",
        "kube-system",
        "sandbox",
    ]
);
pick!(NsPick, ["frontend", "backend", "database", "kube-system", "sandbox", "default", "ghost"]);
pick!(TierPick, ["default", "t1", "t2", "t3", "kube-admin", "kube-baseline", "missing", ""]);
pick!(TierName, ["t1", "t2", "t3", "kube-admin", "default", "kube-baseline", "bad.name"]);
pick!(PortName, ["http", "dns", "dns-tcp", "postgres", "metrics", "grpc", "sig", "nope", "Bad_Name", "9x"]);
pick!(SaName, ["web", "api", "default", "coredns", "postgres", "sig"]);
pick!(SvcName, ["kubernetes", "web", "db"]);
pick!(Domain, ["example.com", "*.example.org", "api.internal"]);
pick!(Method, ["GET", "POST", "PUT", "DELETE"]);
pick!(PathPick, ["/", "/api", "/health", "/api/v1/"]);

/// Port numbers, including invalid ones (0, out of range, negative).
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq)]
pub struct PortNum(pub u8);

impl PortNum {
    const LIST: [i64; 16] = [80, 8080, 53, 5432, 3868, 9100, 443, 1, 65535, 8081, 9000, 9090, 1024, 0, 70000, -1];
    fn value(self) -> i64 {
        Self::LIST[self.0 as usize % Self::LIST.len()]
    }
    fn valid(self) -> bool {
        (1..=65535).contains(&self.value())
    }
    fn tidy(self) -> i64 {
        if self.valid() {
            self.value()
        } else {
            80
        }
    }
}

// ---------------------------------------------------------------- selectors

/// A Calico selector expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Sel {
    All,
    Global,
    Eq(Key, Val),
    Ne(Key, Val),
    In(Key, Vec<Val>),
    NotIn(Key, Vec<Val>),
    Has(Key),
    Contains(Key, Val),
    StartsWith(Key, Val),
    EndsWith(Key, Val),
    Not(Box<Sel>),
    And(Vec<Sel>),
    Or(Vec<Sel>),
    Paren(Box<Sel>),
    /// `levels` parentheses or `!`s around `inner`: up to and past the
    /// parser's nesting limit (64).
    Deep {
        levels: u8,
        bangs: bool,
        inner: Box<Sel>,
    },
}

const SEL_DEPTH: u32 = 3;

fn arb_sel(u: &mut Unstructured<'_>, depth: u32) -> Result<Sel> {
    let leaves = 10u8;
    let top = if depth >= SEL_DEPTH { leaves - 1 } else { leaves + 4 };
    Ok(match u.int_in_range(0..=top)? {
        0 => Sel::Eq(u.arbitrary()?, u.arbitrary()?),
        1 => Sel::Ne(u.arbitrary()?, u.arbitrary()?),
        2 => Sel::In(u.arbitrary()?, Few::<Val, 3>::arbitrary(u)?.0),
        3 => Sel::NotIn(u.arbitrary()?, Few::<Val, 3>::arbitrary(u)?.0),
        4 => Sel::Has(u.arbitrary()?),
        5 => Sel::All,
        6 => Sel::Contains(u.arbitrary()?, u.arbitrary()?),
        7 => Sel::StartsWith(u.arbitrary()?, u.arbitrary()?),
        8 => Sel::EndsWith(u.arbitrary()?, u.arbitrary()?),
        9 => {
            // global() is valid only alone in a rule's namespaceSelector; rare elsewhere.
            if u.ratio(1, 4)? {
                Sel::Global
            } else {
                Sel::Has(u.arbitrary()?)
            }
        }
        10 => Sel::Not(Box::new(arb_sel(u, depth + 1)?)),
        11 => {
            let n = u.int_in_range(2..=3)?;
            Sel::And((0..n).map(|_| arb_sel(u, depth + 1)).collect::<Result<_>>()?)
        }
        12 => {
            let n = u.int_in_range(2..=3)?;
            Sel::Or((0..n).map(|_| arb_sel(u, depth + 1)).collect::<Result<_>>()?)
        }
        13 => Sel::Paren(Box::new(arb_sel(u, depth + 1)?)),
        _ => Sel::Deep {
            levels: u.int_in_range(1..=72)?,
            bangs: u.arbitrary()?,
            inner: Box::new(arb_sel(u, SEL_DEPTH)?),
        },
    })
}

impl<'a> Arbitrary<'a> for Sel {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        arb_sel(u, 0)
    }
}

fn quote(v: &str, alt: bool) -> String {
    if alt {
        format!("'{v}'")
    } else {
        format!("\"{v}\"")
    }
}

fn set_text(vals: &[Val]) -> String {
    let items: Vec<String> = vals.iter().enumerate().map(|(i, v)| quote(v.get(), i % 2 == 1)).collect();
    format!("{{{}}}", items.join(", "))
}

impl Sel {
    /// The selector text; `tidy` replaces global() (only valid alone in a
    /// rule's namespaceSelector) with all() and caps nesting at the limit.
    pub fn text(&self, tidy: bool) -> String {
        match self {
            Sel::All => "all()".into(),
            Sel::Global if tidy => "all()".into(),
            Sel::Global => "global()".into(),
            Sel::Eq(k, v) => format!("{} == {}", k.get(), quote(v.get(), false)),
            Sel::Ne(k, v) => format!("{} != {}", k.get(), quote(v.get(), true)),
            Sel::In(k, vs) => format!("{} in {}", k.get(), set_text(vs)),
            Sel::NotIn(k, vs) => format!("{} not in {}", k.get(), set_text(vs)),
            Sel::Has(k) => format!("has({})", k.get()),
            Sel::Contains(k, v) => format!("{} contains {}", k.get(), quote(v.get(), false)),
            Sel::StartsWith(k, v) => format!("{} starts with {}", k.get(), quote(v.get(), false)),
            Sel::EndsWith(k, v) => format!("{} endswith {}", k.get(), quote(v.get(), true)),
            Sel::Not(s) => match **s {
                Sel::Has(_) | Sel::Paren(_) | Sel::All => format!("!{}", s.text(tidy)),
                _ => format!("!({})", s.text(tidy)),
            },
            Sel::And(v) => v.iter().map(|s| s.operand(tidy)).collect::<Vec<_>>().join(" && "),
            Sel::Or(v) => v.iter().map(|s| s.operand(tidy)).collect::<Vec<_>>().join(" || "),
            Sel::Paren(s) => format!("({})", s.text(tidy)),
            Sel::Deep { levels, bangs, inner } => {
                // Tidy worlds stay within the limit (64, minus room for the
                // levels the operands around it add).
                let n = if tidy { (*levels as usize).min(56) } else { *levels as usize };
                let inner = inner.text(tidy);
                if *bangs {
                    format!("{}({inner})", "!".repeat(n.saturating_sub(1)))
                } else {
                    format!("{}{inner}{}", "(".repeat(n), ")".repeat(n))
                }
            }
        }
    }

    /// The text as an operand of && or ||.
    fn operand(&self, tidy: bool) -> String {
        match self {
            Sel::And(_) | Sel::Or(_) => format!("({})", self.text(tidy)),
            _ => self.text(tidy),
        }
    }
}

// ------------------------------------------------------------ shared parts

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq)]
pub enum Types {
    Ingress,
    Egress,
    Both,
    EgressIngress,
    Empty,
    Twice,
    Bogus,
}

impl Types {
    fn value(self, tidy: bool) -> V {
        let t: &[&str] = match self {
            Types::Ingress => &["Ingress"],
            Types::Egress => &["Egress"],
            Types::Both => &["Ingress", "Egress"],
            Types::EgressIngress => &["Egress", "Ingress"],
            Types::Empty => &[],
            Types::Twice if tidy => &["Ingress", "Egress"],
            Types::Twice => &["Ingress", "Ingress"],
            Types::Bogus if tidy => &["Egress"],
            Types::Bogus => &["Sideways"],
        };
        V::L(t.iter().map(|s| V::s(s)).collect())
    }
}

/// Policy and tier orders: equal orders are common (`Same`), and fractional,
/// negative, huge and non-finite ones appear.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq)]
pub enum Order {
    Same,
    Int(i16),
    Frac(i8, u8),
    Neg(u16),
    Zero,
    Huge,
    Tiny,
    Nan,
    Inf,
    NegInf,
    Text,
}

impl Order {
    fn value(self, tidy: bool) -> Option<V> {
        Some(V::N(match self {
            Order::Same => "100".to_string(),
            Order::Int(i) => i.to_string(),
            Order::Frac(i, f) => format!("{i}.{f}"),
            Order::Neg(n) => format!("-{n}"),
            Order::Zero => "0".into(),
            Order::Huge => "1e300".into(),
            Order::Tiny => "0.000001".into(),
            // YAML's non-finite floats fail the whole file (the parser refuses them).
            Order::Nan | Order::Inf if tidy => "1.7976931348623157e308".into(),
            Order::NegInf if tidy => "-1.7976931348623157e308".into(),
            Order::Nan => ".nan".into(),
            Order::Inf => ".inf".into(),
            Order::NegInf => "-.inf".into(),
            Order::Text if tidy => return None,
            Order::Text => return Some(V::s("first")),
        }))
    }
}

/// A CIDR in the family its context chose (or, rarely, the other one).
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq)]
pub struct Cidr {
    pub base: u8,
    pub prefix: u8,
    /// No `/len`: a single address.
    pub bare: bool,
    pub other_family: u8,
}

const V4_BASES: [&str; 9] = [
    "10.244.1.0",
    "10.244.2.10",
    "10.244.0.0",
    "0.0.0.0",
    "192.168.10.1",
    "203.0.113.0",
    "8.8.8.8",
    "10.244.2.30",
    "10.244.1.2",
];
const V6_BASES: [&str; 7] =
    ["fd00:244:1::", "fd00:244:2::21", "fd00::", "::", "2001:db8::", "fd00:244:1::10", "fd00:244:1::2"];
const V4_PREFIXES: [u8; 10] = [24, 16, 32, 8, 0, 28, 30, 31, 23, 25];
const V6_PREFIXES: [u8; 10] = [64, 48, 128, 32, 0, 120, 127, 112, 96, 80];

impl Cidr {
    /// The family this CIDR ends up in.
    fn v6(self, v6: bool, tidy: bool) -> bool {
        if !tidy && self.other_family >= 224 {
            !v6
        } else {
            v6
        }
    }

    fn text(self, v6: bool, tidy: bool) -> String {
        let v6 = self.v6(v6, tidy);
        let (bases, prefixes, max): (&[&str], &[u8], u8) =
            if v6 { (&V6_BASES, &V6_PREFIXES, 128) } else { (&V4_BASES, &V4_PREFIXES, 32) };
        let base = bases[self.base as usize % bases.len()];
        if self.bare {
            return base.to_string();
        }
        let prefix = if self.prefix < 200 || tidy {
            prefixes[self.prefix as usize % prefixes.len()]
        } else {
            // Sometimes past the end (invalid).
            self.prefix % (max + 8)
        };
        format!("{base}/{prefix}")
    }

    fn net(self, v6: bool, tidy: bool) -> Option<IpNet> {
        let t = self.text(v6, tidy);
        t.parse::<IpNet>().ok().or_else(|| t.parse::<IpAddr>().ok().map(IpNet::from))
    }
}

// ------------------------------------------------------------------ tiers

#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub struct TierDef {
    pub name: TierName,
    pub order: Option<Order>,
    pub default_action: Option<TierAction>,
    pub no_spec: bool,
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq)]
pub enum TierAction {
    Deny,
    Pass,
    Bogus,
}

// ------------------------------------------------------------ network sets

#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub struct SetDef {
    pub global: bool,
    pub namespace: Option<NsPick>,
    pub labels: Few<(Key, Val), 2>,
    pub v6: bool,
    pub nets: Few<Cidr, 4>,
    pub no_spec: bool,
}

// -------------------------------------------------------------- Kubernetes

#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub struct LabelSel {
    pub match_labels: Few<(Key, Val), 2>,
    pub exprs: Few<MatchExpr, 2>,
}

#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub struct MatchExpr {
    pub key: Key,
    pub op: K8sOp,
    pub values: Few<Val, 3>,
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq)]
pub enum K8sOp {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Bogus,
}

#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub enum K8sPeer {
    Pods(LabelSel),
    Namespaces(LabelSel),
    Both(LabelSel, LabelSel),
    Block { v6: bool, cidr: Cidr, except: Few<Cidr, 2> },
    Nothing,
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq)]
pub enum K8sProto {
    Tcp,
    Udp,
    Sctp,
    Bogus,
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq)]
pub enum K8sPortValue {
    Num(PortNum),
    Named(PortName),
}

#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub struct K8sPort {
    pub protocol: Option<K8sProto>,
    pub port: Option<K8sPortValue>,
    pub end_port: Option<PortNum>,
}

#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub struct K8sRule {
    /// None: no `from`/`to` (every peer); Some(empty): an empty list.
    pub peers: Option<Few<K8sPeer, 3>>,
    pub ports: Option<Few<K8sPort, 3>>,
}

#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub struct K8sPolicy {
    /// Written as Calico's StagedKubernetesNetworkPolicy.
    pub staged: Option<StagedAction>,
    pub namespace: Option<NsPick>,
    pub pod_selector: Option<LabelSel>,
    pub types: Option<Types>,
    pub ingress: Few<K8sRule, 4>,
    pub egress: Few<K8sRule, 4>,
}

// ------------------------------------------------------------------ Calico

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq)]
pub enum StagedAction {
    Set,
    Delete,
    Omitted,
    Bogus,
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq)]
pub enum CalicoKind {
    NetworkPolicy,
    GlobalNetworkPolicy,
    StagedNetworkPolicy,
    StagedGlobalNetworkPolicy,
}

impl CalicoKind {
    fn name(self) -> &'static str {
        match self {
            CalicoKind::NetworkPolicy => "NetworkPolicy",
            CalicoKind::GlobalNetworkPolicy => "GlobalNetworkPolicy",
            CalicoKind::StagedNetworkPolicy => "StagedNetworkPolicy",
            CalicoKind::StagedGlobalNetworkPolicy => "StagedGlobalNetworkPolicy",
        }
    }
    fn global(self) -> bool {
        matches!(self, CalicoKind::GlobalNetworkPolicy | CalicoKind::StagedGlobalNetworkPolicy)
    }
    fn staged(self) -> bool {
        matches!(self, CalicoKind::StagedNetworkPolicy | CalicoKind::StagedGlobalNetworkPolicy)
    }
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq)]
pub enum RuleAction {
    Allow,
    Deny,
    Pass,
    Log,
    Bogus,
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq)]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
    IcmpV6,
    Sctp,
    UdpLite,
    LowerTcp,
    Num(u8),
    NumText(u8),
}

impl Proto {
    fn value(self, tidy: bool) -> V {
        match self {
            Proto::Tcp => V::s("TCP"),
            Proto::Udp => V::s("UDP"),
            Proto::Icmp => V::s("ICMP"),
            Proto::IcmpV6 => V::s("ICMPv6"),
            Proto::Sctp => V::s("SCTP"),
            Proto::UdpLite => V::s("UDPLite"),
            Proto::LowerTcp => V::s("tcp"),
            Proto::Num(0) if tidy => V::n("6"),
            Proto::Num(n) => V::n(&n.to_string()),
            Proto::NumText(0) if tidy => V::s("17"),
            Proto::NumText(n) => V::s(&n.to_string()),
        }
    }

    /// The protocol number the loader will see.
    fn number(self) -> u8 {
        match self {
            Proto::Tcp | Proto::LowerTcp => 6,
            Proto::Udp => 17,
            Proto::Icmp => 1,
            Proto::IcmpV6 => 58,
            Proto::Sctp => 132,
            Proto::UdpLite => 136,
            Proto::Num(0) | Proto::NumText(0) => 0,
            Proto::Num(n) | Proto::NumText(n) => n,
        }
    }

    fn has_ports(self) -> bool {
        matches!(self.number(), 6 | 17 | 132)
    }
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq)]
pub enum IpVersion {
    V4,
    V6,
    Bad,
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq)]
pub struct Icmp {
    pub typ: Option<u8>,
    pub code: Option<u8>,
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq)]
pub enum PortSpec {
    Num(PortNum),
    NumText(PortNum),
    Range(PortNum, PortNum),
    Named(PortName),
    Bad(u8),
}

impl PortSpec {
    fn is_numeric(self) -> bool {
        !matches!(self, PortSpec::Named(_))
    }

    fn value(self, tidy: bool) -> Option<V> {
        Some(match self {
            PortSpec::Num(p) if tidy => V::n(&p.tidy().to_string()),
            PortSpec::Num(p) => V::n(&p.value().to_string()),
            PortSpec::NumText(p) if tidy => V::s(&p.tidy().to_string()),
            PortSpec::NumText(p) => V::s(&p.value().to_string()),
            PortSpec::Range(a, b) if tidy => {
                let (a, b) = (a.tidy(), b.tidy());
                V::s(&format!("{}:{}", a.min(b), a.max(b)))
            }
            PortSpec::Range(a, b) => V::s(&format!("{}:{}", a.value(), b.value())),
            PortSpec::Named(n) if tidy && crate_check_port_name(n.get()).is_err() => return None,
            PortSpec::Named(n) => V::s(n.get()),
            PortSpec::Bad(_) if tidy => return None,
            PortSpec::Bad(b) => V::s(["80:", ":90", "8o", "1:2:3", " 80"][b as usize % 5]),
        })
    }
}

fn crate_check_port_name(n: &str) -> std::result::Result<(), String> {
    netward_policy::model::port::check_port_name(n)
}

#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub enum NsSel {
    Sel(Sel),
    Global,
    Blank,
}

#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub struct SaMatch {
    pub names: Few<SaName, 2>,
    pub selector: Option<Sel>,
}

#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub struct Service {
    pub name: SvcName,
    pub namespace: Option<NsPick>,
}

#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub struct Entity {
    pub v6: bool,
    pub nets: Few<Cidr, 3>,
    pub not_nets: Few<Cidr, 2>,
    pub selector: Option<Sel>,
    pub not_selector: Option<Sel>,
    pub namespace_selector: Option<NsSel>,
    pub ports: Few<PortSpec, 3>,
    pub not_ports: Few<PortSpec, 2>,
    pub service_accounts: Option<SaMatch>,
    pub services: Option<Service>,
    pub domains: Few<Domain, 2>,
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq)]
pub enum HttpPath {
    Exact(PathPick),
    Prefix(PathPick),
    Both(PathPick),
    Neither,
}

#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub struct Http {
    pub methods: Few<Method, 2>,
    pub paths: Few<HttpPath, 2>,
}

#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub struct CalicoRule {
    pub action: RuleAction,
    pub protocol: Option<Proto>,
    pub not_protocol: Option<Proto>,
    pub ip_version: Option<IpVersion>,
    pub icmp: Option<Icmp>,
    pub not_icmp: Option<Icmp>,
    pub source: Option<Entity>,
    pub destination: Option<Entity>,
    pub http: Option<Http>,
}

#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub struct CalicoPolicy {
    pub kind: CalicoKind,
    pub namespace: Option<NsPick>,
    pub tier: Option<TierPick>,
    pub order: Option<Order>,
    pub selector: Option<Sel>,
    pub namespace_selector: Option<Sel>,
    pub service_account_selector: Option<Sel>,
    pub types: Option<Types>,
    pub ingress: Few<CalicoRule, 6>,
    pub egress: Few<CalicoRule, 6>,
    pub staged_action: Option<StagedAction>,
    /// applyOnForward / doNotTrack / preDNAT.
    pub forward: u8,
}

#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub enum PolicyDef {
    Kubernetes(K8sPolicy),
    Calico(CalicoPolicy),
}

/// A policy repository.
#[derive(Arbitrary, Clone, PartialEq)]
pub struct World {
    /// Bits 0-1: layout (block, flow, per-document mix, one `kind: List`);
    /// bits 2-3: how many files (1-4); bits 4-5 both set: also load the
    /// world in the other style and compare; bits 5-7 all set: a raw world.
    pub flags: u8,
    /// Reuse the first policy's name for every policy of the same shape.
    pub same_names: u8,
    pub tiers: Few<TierDef, 3>,
    pub sets: Few<SetDef, 3>,
    pub policies: Few<PolicyDef, 8>,
}

// ------------------------------------------------------------ the writer

/// A YAML value to write: a quoted string, a plain scalar (number, bool),
/// a list or a mapping.
#[derive(Clone, Debug, PartialEq)]
pub enum V {
    S(String),
    N(String),
    L(Vec<V>),
    M(Vec<(String, V)>),
}

impl V {
    fn s(s: &str) -> V {
        V::S(s.to_string())
    }
    fn n(s: &str) -> V {
        V::N(s.to_string())
    }
    fn b(b: bool) -> V {
        V::N(if b { "true" } else { "false" }.into())
    }
}

/// Builds a mapping, leaving out absent values.
#[derive(Default)]
struct Map(Vec<(String, V)>);

impl Map {
    fn put(&mut self, k: &str, v: V) -> &mut Self {
        self.0.push((k.to_string(), v));
        self
    }
    fn opt(&mut self, k: &str, v: Option<V>) -> &mut Self {
        if let Some(v) = v {
            self.put(k, v);
        }
        self
    }
    fn list(&mut self, k: &str, v: Vec<V>) -> &mut Self {
        if !v.is_empty() {
            self.put(k, V::L(v));
        }
        self
    }
    fn done(&mut self) -> V {
        V::M(std::mem::take(&mut self.0))
    }
}

fn meta(name: &str, namespace: Option<&str>, labels: Option<V>) -> V {
    let mut m = Map::default();
    m.put("name", V::s(name));
    m.opt("namespace", namespace.map(V::s));
    m.opt("labels", labels);
    m.done()
}

fn object(api: &str, kind: &str, metadata: V, spec: Option<V>) -> V {
    let mut m = Map::default();
    m.put("apiVersion", V::s(api)).put("kind", V::s(kind)).put("metadata", metadata);
    m.opt("spec", spec);
    m.done()
}

fn label_map(labels: &[(Key, Val)], tidy: bool, no_ns_label: bool) -> V {
    let mut seen = Vec::new();
    let mut m = Map::default();
    for (k, v) in labels {
        if tidy && (seen.contains(&k.get()) || (no_ns_label && k.get() == "projectcalico.org/namespace")) {
            continue;
        }
        seen.push(k.get());
        m.put(k.get(), V::s(v.get()));
    }
    m.done()
}

impl World {
    /// Whether the world is written as generated, errors and all.
    pub fn raw(&self) -> bool {
        self.flags >= 0xe0
    }

    /// Whether to check that the other style loads the same (one input in four).
    pub fn compare_styles(&self) -> bool {
        self.flags & 0x30 == 0x30
    }

    /// Whether `files` writes every document in block style.
    pub fn block_layout(&self) -> bool {
        matches!(self.flags & 3, 0 | 3)
    }

    fn tidy(&self) -> bool {
        !self.raw()
    }

    /// The tiers defined by this world (tidy: unique, well-formed names).
    fn tier_docs(&self) -> (Vec<V>, Vec<&'static str>) {
        let tidy = self.tidy();
        let mut names = Vec::new();
        let mut docs = Vec::new();
        for t in self.tiers.iter() {
            let name = t.name.get();
            if tidy && (names.contains(&name) || name.contains('.')) {
                continue;
            }
            names.push(name);
            let spec = if t.no_spec {
                None
            } else {
                let mut s = Map::default();
                s.opt("order", t.order.and_then(|o| o.value(tidy)));
                let action = match t.default_action {
                    None => None,
                    Some(TierAction::Deny) => Some("Deny"),
                    Some(TierAction::Pass) if tidy && name == "default" => Some("Deny"),
                    Some(TierAction::Pass) => Some("Pass"),
                    Some(TierAction::Bogus) if tidy => None,
                    Some(TierAction::Bogus) => Some("Allow"),
                };
                s.opt("defaultAction", action.map(V::s));
                Some(s.done())
            };
            docs.push(object("projectcalico.org/v3", "Tier", meta(name, None, None), spec));
        }
        (docs, names)
    }

    fn set_doc(&self, i: usize, s: &SetDef) -> V {
        let tidy = self.tidy();
        let ns = match (s.global, s.namespace) {
            (true, Some(_)) if tidy => None,
            (_, ns) => ns.map(|n| n.get()),
        };
        let labels = if s.labels.is_empty() { None } else { Some(label_map(&s.labels.0, tidy, true)) };
        let kind = if s.global { "GlobalNetworkSet" } else { "NetworkSet" };
        let spec = if s.no_spec {
            None
        } else {
            let mut m = Map::default();
            // A set may hold both families.
            let nets = s.nets.iter().enumerate().map(|(j, c)| V::S(c.text(s.v6 ^ (j % 2 == 1), tidy))).collect();
            m.list("nets", nets);
            Some(m.done())
        };
        object("projectcalico.org/v3", kind, meta(&format!("s{i}"), ns, labels), spec)
    }

    fn name(&self, prefix: &str, i: usize) -> String {
        if self.same_names >= 0xf0 {
            format!("{prefix}0")
        } else {
            format!("{prefix}{i}")
        }
    }

    /// Every object of the world, in order: tiers, network sets, policies.
    pub fn documents(&self) -> Vec<V> {
        let (mut docs, tiers) = self.tier_docs();
        for (i, s) in self.sets.iter().enumerate() {
            docs.push(self.set_doc(i, s));
        }
        for (i, p) in self.policies.iter().enumerate() {
            docs.push(match p {
                PolicyDef::Kubernetes(k) => self.k8s_doc(i, k),
                PolicyDef::Calico(c) => self.calico_doc(i, c, &tiers),
            });
        }
        docs
    }

    // ------------------------------------------------------------ k8s

    fn label_selector(&self, s: &LabelSel) -> V {
        let tidy = self.tidy();
        let mut m = Map::default();
        if !s.match_labels.is_empty() {
            m.put("matchLabels", label_map(&s.match_labels.0, tidy, false));
        }
        let exprs: Vec<V> = s
            .exprs
            .iter()
            .map(|e| {
                let mut op = e.op;
                let mut values: Vec<V> = e.values.iter().map(|v| V::s(v.get())).collect();
                if tidy {
                    if op == K8sOp::Bogus {
                        op = K8sOp::In;
                    }
                    match op {
                        K8sOp::In | K8sOp::NotIn if values.is_empty() => values.push(V::s("web")),
                        K8sOp::Exists | K8sOp::DoesNotExist => values.clear(),
                        _ => {}
                    }
                }
                let op = match op {
                    K8sOp::In => "In",
                    K8sOp::NotIn => "NotIn",
                    K8sOp::Exists => "Exists",
                    K8sOp::DoesNotExist => "DoesNotExist",
                    K8sOp::Bogus => "Matches",
                };
                let mut x = Map::default();
                x.put("key", V::s(e.key.get())).put("operator", V::s(op));
                // An explicit empty list sometimes.
                if !values.is_empty() || e.values.0.is_empty() && e.key.0 % 2 == 1 {
                    x.put("values", V::L(values));
                }
                x.done()
            })
            .collect();
        m.list("matchExpressions", exprs);
        m.done()
    }

    fn k8s_peer(&self, p: &K8sPeer) -> V {
        let tidy = self.tidy();
        let mut m = Map::default();
        match p {
            K8sPeer::Pods(s) => {
                m.put("podSelector", self.label_selector(s));
            }
            K8sPeer::Namespaces(s) => {
                m.put("namespaceSelector", self.label_selector(s));
            }
            K8sPeer::Both(n, s) => {
                m.put("namespaceSelector", self.label_selector(n));
                m.put("podSelector", self.label_selector(s));
            }
            K8sPeer::Block { v6, cidr, except } => {
                let mut b = Map::default();
                b.put("cidr", V::S(cidr.text(*v6, tidy)));
                let outer = cidr.net(*v6, tidy);
                let ex: Vec<V> = except
                    .iter()
                    .filter(|e| {
                        !tidy || {
                            // A strict subset of the cidr, in its family.
                            match (outer, e.net(*v6, tidy)) {
                                (Some(o), Some(x)) => {
                                    let (o, x) = (o.trunc(), x.trunc());
                                    o.contains(&x) && x.prefix_len() > o.prefix_len()
                                }
                                _ => false,
                            }
                        }
                    })
                    .map(|e| V::S(e.text(*v6, tidy)))
                    .collect();
                b.list("except", ex);
                m.put("ipBlock", b.done());
            }
            K8sPeer::Nothing if tidy => {
                m.put("podSelector", V::M(Vec::new()));
            }
            K8sPeer::Nothing => {}
        }
        m.done()
    }

    fn k8s_port(&self, p: &K8sPort) -> V {
        let tidy = self.tidy();
        let mut m = Map::default();
        let proto = match p.protocol {
            None => None,
            Some(K8sProto::Tcp) => Some("TCP"),
            Some(K8sProto::Udp) => Some("UDP"),
            Some(K8sProto::Sctp) => Some("SCTP"),
            Some(K8sProto::Bogus) if tidy => None,
            Some(K8sProto::Bogus) => Some("ICMP"),
        };
        m.opt("protocol", proto.map(V::s));
        let mut end = p.end_port;
        match p.port {
            None => {
                if tidy {
                    end = None;
                }
            }
            Some(K8sPortValue::Num(n)) => {
                let first = if tidy { n.tidy() } else { n.value() };
                m.put("port", V::n(&first.to_string()));
                if tidy {
                    end = end.filter(|e| e.valid() && e.value() >= first);
                }
            }
            Some(K8sPortValue::Named(n)) => {
                if tidy && crate_check_port_name(n.get()).is_err() {
                    m.put("port", V::s("http"));
                } else {
                    m.put("port", V::s(n.get()));
                }
                if tidy {
                    end = None;
                }
            }
        }
        m.opt("endPort", end.map(|e| V::n(&e.value().to_string())));
        m.done()
    }

    fn k8s_rule(&self, r: &K8sRule, ingress: bool) -> V {
        let mut m = Map::default();
        if let Some(peers) = &r.peers {
            m.put(if ingress { "from" } else { "to" }, V::L(peers.iter().map(|p| self.k8s_peer(p)).collect()));
        }
        if let Some(ports) = &r.ports {
            m.put("ports", V::L(ports.iter().map(|p| self.k8s_port(p)).collect()));
        }
        m.done()
    }

    fn k8s_doc(&self, i: usize, k: &K8sPolicy) -> V {
        let tidy = self.tidy();
        let mut spec = Map::default();
        let kind = match k.staged {
            None => "NetworkPolicy",
            Some(a) => {
                match a {
                    StagedAction::Set => {
                        spec.put("stagedAction", V::s("Set"));
                    }
                    StagedAction::Delete => {
                        spec.put("stagedAction", V::s("Delete"));
                    }
                    StagedAction::Omitted => {}
                    StagedAction::Bogus if tidy => {}
                    StagedAction::Bogus => {
                        spec.put("stagedAction", V::s("Keep"));
                    }
                }
                "StagedKubernetesNetworkPolicy"
            }
        };
        spec.put("podSelector", k.pod_selector.as_ref().map(|s| self.label_selector(s)).unwrap_or(V::M(Vec::new())));
        spec.opt("policyTypes", k.types.map(|t| t.value(tidy)));
        spec.list("ingress", k.ingress.iter().map(|r| self.k8s_rule(r, true)).collect());
        spec.list("egress", k.egress.iter().map(|r| self.k8s_rule(r, false)).collect());
        let api = if k.staged.is_some() { "projectcalico.org/v3" } else { "networking.k8s.io/v1" };
        object(api, kind, meta(&self.name("k", i), k.namespace.map(|n| n.get()), None), Some(spec.done()))
    }

    // --------------------------------------------------------- Calico

    fn sel_value(&self, s: &Sel) -> V {
        V::S(s.text(self.tidy()))
    }

    fn entity(&self, e: &Entity, proto: Option<Proto>, ingress: bool, source: bool, global: bool) -> Option<V> {
        let tidy = self.tidy();
        let mut m = Map::default();
        let ports_ok = proto.is_some_and(Proto::has_ports);
        let keep_port = |p: &&PortSpec| !tidy || ports_ok || !p.is_numeric();
        let mut ports: Vec<V> = e.ports.iter().filter(keep_port).filter_map(|p| p.value(tidy)).collect();
        let not_ports: Vec<V> = e.not_ports.iter().filter(keep_port).filter_map(|p| p.value(tidy)).collect();

        // services: alone (no selectors, nets or service accounts), source
        // only in ingress, destination only in egress, no destination ports,
        // and a namespace in global policies.
        let services_ok = source == ingress;
        if let Some(svc) = e.services.as_ref().filter(|_| !tidy || services_ok) {
            let mut s = Map::default();
            s.put("name", V::s(svc.name.get()));
            let ns = match svc.namespace {
                Some(n) => Some(n.get()),
                None if tidy && global => Some("default"),
                None => None,
            };
            s.opt("namespace", ns.map(V::s));
            m.put("services", s.done());
            if tidy {
                if !source {
                    ports.clear();
                }
                m.list("ports", ports);
                if source {
                    m.list("notPorts", not_ports);
                }
                return Some(m.done());
            }
        }

        let nets: Vec<V> = e.nets.iter().map(|c| V::S(c.text(e.v6, tidy))).collect();
        let not_nets: Vec<V> = e
            .not_nets
            .iter()
            .map(|c| {
                let t = c.text(e.v6, tidy);
                if tidy && (t.ends_with("/0") || t == "0.0.0.0" || t == "::") && !c.bare {
                    V::S(t.replace("/0", "/8"))
                } else {
                    V::S(t)
                }
            })
            .collect();
        m.list("nets", nets);
        m.list("notNets", not_nets);
        m.opt("selector", e.selector.as_ref().map(|s| self.sel_value(s)));
        m.opt("notSelector", e.not_selector.as_ref().map(|s| self.sel_value(s)));
        match &e.namespace_selector {
            None => {}
            Some(NsSel::Sel(s)) => {
                m.put("namespaceSelector", self.sel_value(s));
            }
            Some(NsSel::Global) => {
                m.put("namespaceSelector", V::s("global()"));
            }
            Some(NsSel::Blank) => {
                m.put("namespaceSelector", V::s(" "));
            }
        }
        m.list("ports", ports);
        m.list("notPorts", not_ports);
        if let Some(sa) = &e.service_accounts {
            let mut s = Map::default();
            s.list("names", sa.names.iter().map(|n| V::s(n.get())).collect());
            s.opt("selector", sa.selector.as_ref().map(|x| self.sel_value(x)));
            m.put("serviceAccounts", s.done());
        }
        m.list("domains", e.domains.iter().map(|d| V::s(d.get())).collect());
        let v = m.done();
        // An empty entity is written sometimes as `{}`, sometimes left out.
        match &v {
            V::M(entries) if entries.is_empty() && e.v6 => None,
            _ => Some(v),
        }
    }

    fn icmp(&self, i: &Icmp) -> V {
        let tidy = self.tidy();
        let mut m = Map::default();
        let typ = i.typ.map(|t| if tidy { t.min(254) } else { t });
        m.opt("type", typ.map(|t| V::n(&t.to_string())));
        if !tidy || typ.is_some() {
            m.opt("code", i.code.map(|c| V::n(&c.to_string())));
        }
        m.done()
    }

    fn calico_rule(&self, r: &CalicoRule, ingress: bool, global: bool) -> V {
        let tidy = self.tidy();
        let mut m = Map::default();
        let action = match r.action {
            RuleAction::Allow => "Allow",
            RuleAction::Deny => "Deny",
            RuleAction::Pass => "Pass",
            RuleAction::Log => "Log",
            RuleAction::Bogus if tidy => "Deny",
            RuleAction::Bogus => "Drop",
        };
        m.put("action", V::s(action));
        let mut proto = r.protocol;
        if tidy && proto.is_some_and(|p| p.number() == 0) {
            proto = Some(Proto::Tcp);
        }
        let icmp_proto = proto.is_some_and(|p| matches!(p.number(), 1 | 58));
        let mut ip_version = match r.ip_version {
            Some(IpVersion::V4) => Some(4),
            Some(IpVersion::V6) => Some(6),
            Some(IpVersion::Bad) if tidy => None,
            Some(IpVersion::Bad) => Some(5),
            None => None,
        };
        let (mut icmp, mut not_icmp) = (r.icmp, r.not_icmp);
        if tidy {
            if icmp_proto {
                // ICMP is IPv4's, ICMPv6 IPv6's.
                if icmp.is_some() || not_icmp.is_some() {
                    let v = if proto.is_some_and(|p| p.number() == 1) { 4 } else { 6 };
                    if ip_version.is_some_and(|x| x != v) {
                        ip_version = Some(v);
                    }
                }
            } else {
                icmp = None;
                not_icmp = None;
            }
        }
        m.opt("protocol", proto.map(|p| p.value(tidy)));
        m.opt("notProtocol", r.not_protocol.map(|p| p.value(tidy)));
        m.opt("ipVersion", ip_version.map(|v: u8| V::n(&v.to_string())));
        m.opt("icmp", icmp.map(|i| self.icmp(&i)));
        m.opt("notICMP", not_icmp.map(|i| self.icmp(&i)));
        if let Some(s) = &r.source {
            m.opt("source", self.entity(s, proto, ingress, true, global));
        }
        if let Some(d) = &r.destination {
            m.opt("destination", self.entity(d, proto, ingress, false, global));
        }
        let http_ok = ingress && action == "Allow" && proto.is_none_or(|p| p.number() == 6);
        if let Some(h) = r.http.as_ref().filter(|_| !tidy || http_ok) {
            let mut hm = Map::default();
            hm.list("methods", h.methods.iter().map(|x| V::s(x.get())).collect());
            let paths = h
                .paths
                .iter()
                .map(|p| {
                    let mut pm = Map::default();
                    match p {
                        HttpPath::Exact(x) => {
                            pm.put("exact", V::s(x.get()));
                        }
                        HttpPath::Prefix(x) => {
                            pm.put("prefix", V::s(x.get()));
                        }
                        HttpPath::Both(x) if tidy => {
                            pm.put("prefix", V::s(x.get()));
                        }
                        HttpPath::Both(x) => {
                            pm.put("exact", V::s(x.get())).put("prefix", V::s(x.get()));
                        }
                        HttpPath::Neither if tidy => {
                            pm.put("exact", V::s("/"));
                        }
                        HttpPath::Neither => {}
                    }
                    pm.done()
                })
                .collect();
            hm.list("paths", paths);
            m.put("http", hm.done());
        }
        m.done()
    }

    fn calico_doc(&self, i: usize, c: &CalicoPolicy, tiers: &[&str]) -> V {
        let tidy = self.tidy();
        let global = c.kind.global();
        let mut spec = Map::default();

        if c.kind.staged() {
            match c.staged_action {
                Some(StagedAction::Set) => {
                    spec.put("stagedAction", V::s("Set"));
                }
                Some(StagedAction::Delete) => {
                    spec.put("stagedAction", V::s("Delete"));
                }
                Some(StagedAction::Bogus) if !tidy => {
                    spec.put("stagedAction", V::s("Maybe"));
                }
                _ => {}
            }
        }
        let delete = c.kind.staged() && c.staged_action == Some(StagedAction::Delete);

        if let Some(t) = c.tier {
            let t = t.get();
            let defined = matches!(t, "default" | "kube-admin" | "kube-baseline" | "") || tiers.contains(&t);
            let t = if tidy && !defined { "default" } else { t };
            spec.put("tier", V::s(t));
        }
        spec.opt("order", c.order.and_then(|o| o.value(tidy)));
        spec.opt("selector", c.selector.as_ref().map(|s| self.sel_value(s)));
        if global || !tidy {
            spec.opt("namespaceSelector", c.namespace_selector.as_ref().map(|s| self.sel_value(s)));
        }
        spec.opt("serviceAccountSelector", c.service_account_selector.as_ref().map(|s| self.sel_value(s)));

        // applyOnForward, doNotTrack, preDNAT: tidy worlds keep only what is
        // valid (global policies; the latter two need applyOnForward, not
        // both, and preDNAT has no egress).
        let (mut aof, mut dnt, mut pre) = (c.forward & 1 != 0, c.forward & 2 != 0, c.forward & 4 != 0);
        let mut egress: Vec<&CalicoRule> = c.egress.iter().collect();
        let mut types = c.types;
        if tidy {
            if !global || c.forward < 0xc0 {
                (aof, dnt, pre) = (false, false, false);
            }
            if dnt && pre {
                pre = false;
            }
            if dnt || pre {
                aof = true;
            }
            if pre {
                egress.clear();
                types = Some(Types::Ingress);
            }
        }
        let flag = |b: bool| if b { Some(V::b(true)) } else { None };
        spec.opt("applyOnForward", flag(aof));
        spec.opt("doNotTrack", flag(dnt));
        spec.opt("preDNAT", flag(pre));

        spec.opt("types", types.map(|t| t.value(tidy)));
        if !(tidy && delete) {
            spec.list("ingress", c.ingress.iter().map(|r| self.calico_rule(r, true, global)).collect());
            spec.list("egress", egress.iter().map(|r| self.calico_rule(r, false, global)).collect());
        }

        let ns = match c.namespace {
            Some(_) if tidy && global => None,
            ns => ns.map(|n| n.get()),
        };
        let name = self.name("c", i);
        object("projectcalico.org/v3", c.kind.name(), meta(&name, ns, None), Some(spec.done()))
    }

    // ------------------------------------------------------------ files

    /// The world as one block-style YAML file.
    pub fn block_text(&self) -> String {
        let docs = self.documents();
        let mut out = String::new();
        for d in &docs {
            out.push_str("---\n");
            block(d, 0, &mut out);
        }
        out
    }

    /// The world as one flow-style (JSON-like) file, one document per line.
    pub fn flow_text(&self) -> String {
        let docs = self.documents();
        let mut out = String::new();
        for d in &docs {
            out.push_str("---\n");
            flow(d, &mut out);
            out.push('\n');
        }
        out
    }

    /// The world as the pipeline reads it: one to four files, in the layout
    /// the flags choose.
    pub fn files(&self) -> Vec<(String, String)> {
        let docs = self.documents();
        let nfiles = 1 + ((self.flags >> 2) & 3) as usize;
        let mut parts: Vec<Vec<&V>> = vec![Vec::new(); nfiles];
        for (i, d) in docs.iter().enumerate() {
            parts[i % nfiles].push(d);
        }
        parts
            .into_iter()
            .enumerate()
            .map(|(f, docs)| {
                let mut out = String::new();
                match self.flags & 3 {
                    0 => docs.iter().for_each(|d| {
                        out.push_str("---\n");
                        block(d, 0, &mut out);
                    }),
                    1 => docs.iter().for_each(|d| {
                        flow(d, &mut out);
                        out.push_str("\n---\n");
                    }),
                    2 => docs.iter().enumerate().for_each(|(i, d)| {
                        out.push_str("---\n");
                        if i % 2 == 0 {
                            block(d, 0, &mut out);
                        } else {
                            flow(d, &mut out);
                            out.push('\n');
                        }
                    }),
                    _ => {
                        let list = V::M(vec![
                            ("apiVersion".into(), V::s("v1")),
                            ("kind".into(), V::s("List")),
                            ("items".into(), V::L(docs.into_iter().cloned().collect())),
                        ]);
                        block(&list, 0, &mut out);
                    }
                }
                let ext = if self.flags & 3 == 1 { "json" } else { "yaml" };
                (format!("repo/f{f}.{ext}"), out)
            })
            .collect()
    }
}

/// A double-quoted scalar (JSON's escapes are YAML's).
fn quoted(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn flow(v: &V, out: &mut String) {
    match v {
        V::S(s) => quoted(s, out),
        V::N(n) => out.push_str(n),
        V::L(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                flow(x, out);
            }
            out.push(']');
        }
        V::M(entries) => {
            out.push('{');
            for (i, (k, x)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                quoted(k, out);
                out.push_str(": ");
                flow(x, out);
            }
            out.push('}');
        }
    }
}

fn is_scalar_or_empty(v: &V) -> bool {
    match v {
        V::S(_) | V::N(_) => true,
        V::L(l) => l.is_empty(),
        V::M(m) => m.is_empty(),
    }
}

/// Block style: `v` at `indent`, starting on a fresh line. Keys are plain
/// (the vocabulary has no characters that need quoting).
fn block(v: &V, indent: usize, out: &mut String) {
    match v {
        V::M(entries) if !entries.is_empty() => {
            for (k, x) in entries {
                out.push_str(&" ".repeat(indent));
                entry(k, x, indent, out);
            }
        }
        V::L(items) if !items.is_empty() => {
            for x in items {
                out.push_str(&" ".repeat(indent));
                out.push_str("- ");
                item(x, indent + 2, out);
            }
        }
        _ => {
            out.push_str(&" ".repeat(indent));
            flow(v, out);
            out.push('\n');
        }
    }
}

/// `key: value` with the indentation already written.
fn entry(k: &str, x: &V, indent: usize, out: &mut String) {
    out.push_str(k);
    out.push(':');
    if is_scalar_or_empty(x) {
        out.push(' ');
        flow(x, out);
        out.push('\n');
    } else if let V::L(_) = x {
        // Lists at the key's indentation, as kubectl writes them.
        out.push('\n');
        block(x, indent, out);
    } else {
        out.push('\n');
        block(x, indent + 2, out);
    }
}

/// A list item after `- `; its further lines at `indent`.
fn item(x: &V, indent: usize, out: &mut String) {
    match x {
        V::M(entries) if !entries.is_empty() => {
            for (i, (k, y)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(&" ".repeat(indent));
                }
                entry(k, y, indent, out);
            }
        }
        V::L(items) if !items.is_empty() => {
            // A nested list: flow style keeps it simple.
            let _ = items;
            flow(x, out);
            out.push('\n');
        }
        _ => {
            flow(x, out);
            out.push('\n');
        }
    }
}

impl fmt::Debug for World {
    /// The world as the text the loader reads (`cargo fuzz fmt` prints this).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# World: flags {:#04x}, raw {}, {} files", self.flags, self.raw(), 1 + ((self.flags >> 2) & 3))?;
        for (name, text) in self.files() {
            writeln!(f, "# ----- {name}")?;
            f.write_str(&text)?;
        }
        Ok(())
    }
}

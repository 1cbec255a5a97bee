//! The ruleset model: tables, sets, verdict maps, chains and rules as data,
//! so the same value renders as `nft` text and (later) as netlink messages,
//! and two rulesets can be compared.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

/// The one table netward owns (family `inet`).
pub const TABLE: &str = "netward";

/// The mark bit that records "a policy passed this packet to the next tier"
/// (the anchors' choice): clear of kube-proxy's masquerade and drop bits
/// (0x4000, 0x8000). It only lives while the packet crosses our chains:
/// cleared at each tier's start and before "every tier passed" accepts.
pub const PASS_MARK: u32 = 0x0010_0000;

/// An IP address family: nft matches and sets are per family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4 (`ip`).
    V4,
    /// IPv6 (`ip6`).
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: &IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    /// The suffix of per-family object names (`local-addrs-4`, `local-addrs-6`).
    pub fn suffix(self) -> &'static str {
        match self {
            Family::V4 => "4",
            Family::V6 => "6",
        }
    }

    /// The nft payload keyword: `ip` or `ip6`.
    pub fn nft(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }

    /// The nft datatype of this family's addresses, as in a set's `type`.
    pub fn addr_type(self) -> &'static str {
        match self {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        }
    }
}

/// What a named set holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetKind {
    /// Addresses and CIDRs (an interval set).
    Addr(Family),
    /// Single addresses only (a hash set: O(1) updates, where an interval
    /// set's commit walks the whole tree). Selector sets without network-set
    /// CIDRs are of this kind.
    Hosts(Family),
    /// (address, protocol, port) triples for named ports.
    AddrProtoPort(Family),
    /// (interface, address) pairs of local pods.
    IfaceAddr(Family),
    /// Interface names.
    Iface,
    /// Port numbers and ranges (an interval set).
    Service,
}

/// One element of a set, or one key of a verdict map.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Element {
    /// An address or CIDR (an address is a full-length prefix).
    Net(IpNet),
    /// (address, IP protocol number, port) of a pod's named port.
    AddrProtoPort(IpAddr, u8, u16),
    /// (host interface, address) of a local pod: a source its link may send from.
    IfaceAddr(String, IpAddr),
    /// A host interface name: a local pod's link.
    Iface(String),
    /// An inclusive port range; a single port is `first == last`.
    PortRange(u16, u16),
}

/// A named set: what it holds and its elements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Set {
    /// What the set holds, which fixes its nft type and flags.
    pub kind: SetKind,
    /// The elements, sorted so rendering and diffs are stable.
    pub elements: BTreeSet<Element>,
}

/// A verdict map from a key to `goto <chain>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerdictMap {
    /// What the map is keyed by: `Addr(f)` for both dispatch maps (the local
    /// pod's destination address on ingress, its source address on egress).
    pub key: SetKind,
    /// Each key and the chain its packets go to.
    pub elements: BTreeMap<Element, String>,
}

/// Where a base chain hooks in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// `forward`: packets routed through the node, to and from its pods.
    Forward,
    /// `input`: packets to the node itself.
    Input,
}

/// What makes a chain a base chain: where it hooks in, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BaseChain {
    /// The netfilter hook it is attached to.
    pub hook: Hook,
    /// Offset from the `filter` priority (0).
    pub priority: i32,
}

/// Which address of a packet a match reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The source address (and source port).
    Saddr,
    /// The destination address (and destination port).
    Daddr,
}

/// One condition of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Match {
    /// `ct state invalid`.
    CtInvalid,
    /// `ct state established,related`.
    CtEstablished,
    /// `meta l4proto N` (or `!=`).
    L4Proto {
        /// The IP protocol number.
        proto: u8,
        /// Match every other protocol instead.
        negated: bool,
    },
    /// `ip saddr @set` / `ip6 daddr @set` (or `!=`). Every set is named, even
    /// a rule's own CIDR list, so updates are element operations and the
    /// netlink encoding needs no anonymous sets.
    Addr {
        /// `ip` or `ip6`.
        family: Family,
        /// Which address is looked up.
        side: Side,
        /// The named set it is looked up in.
        set: String,
        /// Match addresses not in the set.
        negated: bool,
    },
    /// `th dport @ports` (or sport, or `!=`).
    Port {
        /// Which port is looked up.
        side: Side,
        /// The named set of ports and ranges (`SetKind::Service`).
        set: String,
        /// Match ports not in the set.
        negated: bool,
    },
    /// `ip daddr . meta l4proto . th dport @np` (or saddr/sport, or `!=`).
    NamedPort {
        /// `ip` or `ip6`.
        family: Family,
        /// Which address and port: both source or both destination.
        side: Side,
        /// The `SetKind::AddrProtoPort` set of the pods that declare the port.
        set: String,
        /// Match what is not in the set.
        negated: bool,
    },
    /// `icmp type N [code M]` / `icmpv6 ...` (or `!=` on the type).
    Icmp {
        /// ICMPv6 rather than ICMP.
        v6: bool,
        /// The ICMP type.
        typ: u8,
        /// The ICMP code, when the rule names one; not matched when negated.
        code: Option<u8>,
        /// Match every other type instead.
        negated: bool,
    },
    /// `meta mark & PASS == 0`: no policy of this tier has passed the packet.
    NotPassed,
    /// `iifname . ip saddr @set` (or `!=`).
    IfaceAddr {
        /// `ip` or `ip6`.
        family: Family,
        /// The `SetKind::IfaceAddr` set of (interface, source address) pairs.
        set: String,
        /// Match pairs not in the set.
        negated: bool,
    },
    /// `iifname @set`.
    Iface {
        /// The `SetKind::Iface` set of interface names.
        set: String,
    },
    /// `meta nfproto ipv4|ipv6`.
    NfProto(Family),
}

/// What a rule does when it matches.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// `accept`: the packet is allowed.
    Accept,
    /// `drop`: the packet is denied.
    Drop,
    /// `jump <chain>`: evaluate that chain, then carry on here.
    Jump(String),
    /// `meta mark set meta mark | PASS return`.
    Pass,
    /// `meta mark set meta mark & ~PASS` (start of a tier), non-terminal.
    ClearPass,
    /// `log prefix "..."`, non-terminal.
    Log(String),
    /// `log prefix "..." accept`: audit mode's stand-in for a drop.
    LogAccept(String),
    /// `iifname . ip saddr vmap @map` / `ip daddr vmap @map`.
    Dispatch {
        /// The family of the address looked up.
        family: Family,
        /// Which address is the key: the source for egress, the destination for ingress.
        side: Side,
        /// The verdict map's name.
        map: String,
        /// Key on the input interface too (`iifname . address`).
        by_iface: bool,
    },
}

/// One nft rule: conditions, then a verdict, then a short comment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    /// Conditions that must all hold; none matches every packet.
    pub matches: Vec<Match>,
    /// What the rule does when they hold.
    pub verdict: Verdict,
    /// What the rule is for (policy, rule index, file:line); the renderer
    /// prefixes the rule's content hash.
    pub note: String,
}

impl Rule {
    /// The sets and maps the rule looks up.
    pub fn sets(&self) -> impl Iterator<Item = &str> {
        let matched = self.matches.iter().filter_map(|m| match m {
            Match::Addr { set, .. }
            | Match::Port { set, .. }
            | Match::NamedPort { set, .. }
            | Match::IfaceAddr { set, .. }
            | Match::Iface { set } => Some(set.as_str()),
            _ => None,
        });
        let map = match &self.verdict {
            Verdict::Dispatch { map, .. } => Some(map.as_str()),
            _ => None,
        };
        matched.chain(map)
    }
}

/// A chain: hooked in when `base` is set, else reached by jump or verdict map.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Chain {
    /// Where it hooks in; None for a chain only other chains lead to.
    pub base: Option<BaseChain>,
    /// The rules, in evaluation order.
    pub rules: Vec<Rule>,
}

/// The whole table for one node.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Ruleset {
    /// Every named set, by name: selector addresses, CIDR lists, ports, local pods.
    pub sets: BTreeMap<String, Set>,
    /// The verdict maps, by name: ingress and egress dispatch for each family.
    pub maps: BTreeMap<String, VerdictMap>,
    /// Every chain, by name: base chains, one per pod and direction, one per policy.
    pub chains: BTreeMap<String, Chain>,
}

impl Ruleset {
    /// Rules across all chains.
    pub fn rule_count(&self) -> usize {
        self.chains.values().map(|c| c.rules.len()).sum()
    }

    /// Elements across all sets and maps.
    pub fn element_count(&self) -> usize {
        self.sets.values().map(|s| s.elements.len()).sum::<usize>()
            + self.maps.values().map(|m| m.elements.len()).sum::<usize>()
    }
}

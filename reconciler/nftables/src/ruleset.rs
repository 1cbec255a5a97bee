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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: &IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

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

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Element {
    Net(IpNet),
    AddrProtoPort(IpAddr, u8, u16),
    IfaceAddr(String, IpAddr),
    Iface(String),
    /// An inclusive port range; a single port is `first == last`.
    PortRange(u16, u16),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Set {
    pub kind: SetKind,
    pub elements: BTreeSet<Element>,
}

/// A verdict map from a key to `goto <chain>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerdictMap {
    /// `Addr(f)` for ingress dispatch, `IfaceAddr(f)` for egress dispatch.
    pub key: SetKind,
    pub elements: BTreeMap<Element, String>,
}

/// Where a base chain hooks in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Forward,
    Input,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BaseChain {
    pub hook: Hook,
    /// Offset from the `filter` priority (0).
    pub priority: i32,
}

/// Which address of a packet a match reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Saddr,
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
    L4Proto { proto: u8, negated: bool },
    /// `ip saddr @set` / `ip6 daddr @set` (or `!=`). Every set is named, even
    /// a rule's own CIDR list, so updates are element operations and the
    /// netlink encoding needs no anonymous sets.
    Addr { family: Family, side: Side, set: String, negated: bool },
    /// `th dport @ports` (or sport, or `!=`).
    Port { side: Side, set: String, negated: bool },
    /// `ip daddr . meta l4proto . th dport @np` (or saddr/sport, or `!=`).
    NamedPort { family: Family, side: Side, set: String, negated: bool },
    /// `icmp type N [code M]` / `icmpv6 ...` (or `!=` on the type).
    Icmp { v6: bool, typ: u8, code: Option<u8>, negated: bool },
    /// `meta mark & PASS == 0`: no policy of this tier has passed the packet.
    NotPassed,
    /// `iifname . ip saddr @set` (or `!=`).
    IfaceAddr { family: Family, set: String, negated: bool },
    /// `iifname @set`.
    Iface { set: String },
    /// `meta nfproto ipv4|ipv6`.
    NfProto(Family),
}

/// What a rule does when it matches.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Accept,
    Drop,
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
        family: Family,
        side: Side,
        map: String,
        by_iface: bool,
    },
}

/// One nft rule: conditions, then a verdict, then a short comment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    pub matches: Vec<Match>,
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

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Chain {
    pub base: Option<BaseChain>,
    pub rules: Vec<Rule>,
}

/// The whole table for one node.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Ruleset {
    pub sets: BTreeMap<String, Set>,
    pub maps: BTreeMap<String, VerdictMap>,
    pub chains: BTreeMap<String, Chain>,
}

impl Ruleset {
    pub fn rule_count(&self) -> usize {
        self.chains.values().map(|c| c.rules.len()).sum()
    }

    pub fn element_count(&self) -> usize {
        self.sets.values().map(|s| s.elements.len()).sum::<usize>()
            + self.maps.values().map(|m| m.elements.len()).sum::<usize>()
    }
}

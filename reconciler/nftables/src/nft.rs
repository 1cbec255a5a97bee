//! The ruleset as `nft -f` text: what `netward plan --format nft` shows, and
//! an independent way to load the same ruleset in tests.
//!
//! The script replaces the table atomically (`add table` + `delete table` +
//! the new table in one file is one netlink transaction).

use std::fmt::Write;

use ipnet::IpNet;

use crate::names::fnv64;
use crate::ruleset::{Element, Family, Hook, Match, Rule, Ruleset, Set, SetKind, Side, Verdict, PASS_MARK, TABLE};

/// The name nft prints for an IP protocol number (the number for others).
pub fn proto_name(p: u8) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        132 => "sctp".into(),
        1 => "icmp".into(),
        58 => "ipv6-icmp".into(),
        136 => "udplite".into(),
        n => n.to_string(),
    }
}

fn net(n: &IpNet) -> String {
    if n.prefix_len() == n.max_prefix_len() {
        n.addr().to_string()
    } else {
        n.to_string()
    }
}

/// An element as nft writes it in a set or map.
pub fn element(e: &Element) -> String {
    match e {
        Element::Net(n) => net(n),
        Element::AddrProtoPort(ip, p, port) => format!("{ip} . {} . {port}", proto_name(*p)),
        Element::IfaceAddr(i, ip) => format!("\"{i}\" . {ip}"),
        Element::Iface(i) => format!("\"{i}\""),
        Element::PortRange(a, b) if a == b => a.to_string(),
        Element::PortRange(a, b) => format!("{a}-{b}"),
    }
}

/// A set's nft `type`: one datatype, or a concatenation of them.
pub fn key_type(k: SetKind) -> String {
    match k {
        SetKind::Addr(f) | SetKind::Hosts(f) => f.addr_type().to_string(),
        SetKind::AddrProtoPort(f) => format!("{} . inet_proto . inet_service", f.addr_type()),
        SetKind::IfaceAddr(f) => format!("ifname . {}", f.addr_type()),
        SetKind::Iface => "ifname".to_string(),
        SetKind::Service => "inet_service".to_string(),
    }
}

fn side_word(s: Side) -> &'static str {
    match s {
        Side::Saddr => "saddr",
        Side::Daddr => "daddr",
    }
}

fn port_word(s: Side) -> &'static str {
    match s {
        Side::Saddr => "sport",
        Side::Daddr => "dport",
    }
}

fn neg(n: bool) -> &'static str {
    if n {
        "!= "
    } else {
        ""
    }
}

fn match_text(m: &Match) -> String {
    match m {
        Match::CtInvalid => "ct state invalid".into(),
        Match::CtEstablished => "ct state established,related".into(),
        Match::L4Proto { proto, negated } => format!("meta l4proto {}{}", neg(*negated), proto_name(*proto)),
        Match::Addr { family, side, set, negated } => {
            format!("{} {} {}@{set}", family.nft(), side_word(*side), neg(*negated))
        }
        Match::Port { side, set, negated } => format!("th {} {}@{set}", port_word(*side), neg(*negated)),
        Match::NamedPort { family, side, set, negated } => format!(
            "{} {} . meta l4proto . th {} {}@{set}",
            family.nft(),
            side_word(*side),
            port_word(*side),
            neg(*negated)
        ),
        Match::Icmp { v6, typ, code, negated } => {
            let kw = if *v6 { "icmpv6" } else { "icmp" };
            match code {
                Some(c) if !negated => format!("{kw} type {typ} {kw} code {c}"),
                _ => format!("{kw} type {}{typ}", neg(*negated)),
            }
        }
        Match::NotPassed => format!("meta mark & 0x{PASS_MARK:08x} == 0x00000000"),
        Match::IfaceAddr { family, set, negated } => {
            format!("iifname . {} saddr {}@{set}", family.nft(), neg(*negated))
        }
        Match::Iface { set } => format!("iifname @{set}"),
        Match::NfProto(Family::V4) => "meta nfproto ipv4".into(),
        Match::NfProto(Family::V6) => "meta nfproto ipv6".into(),
    }
}

fn verdict_text(v: &Verdict) -> String {
    match v {
        Verdict::Accept => "accept".into(),
        Verdict::Drop => "drop".into(),
        Verdict::Jump(c) => format!("jump {c}"),
        Verdict::Pass => format!("meta mark set meta mark | 0x{PASS_MARK:08x} return"),
        Verdict::ClearPass => format!("meta mark set meta mark & 0x{:08x}", !PASS_MARK),
        Verdict::Log(p) => format!("log prefix \"{p}\""),
        Verdict::LogAccept(p) => format!("log prefix \"{p}\" accept"),
        Verdict::Dispatch { family, side, map, by_iface } => {
            let key = if *by_iface {
                format!("iifname . {} {}", family.nft(), side_word(*side))
            } else {
                format!("{} {}", family.nft(), side_word(*side))
            };
            format!("{key} vmap @{map}")
        }
    }
}

/// The rule's text without its comment; its hash goes into the comment so
/// a live table can be compared with the desired one rule by rule.
pub fn rule_body(r: &Rule) -> String {
    let mut parts: Vec<String> = r.matches.iter().map(match_text).collect();
    parts.push(verdict_text(&r.verdict));
    parts.join(" ")
}

/// The short content hash stamped on a rule.
pub fn rule_hash(r: &Rule) -> String {
    format!("{:012x}", fnv64(rule_body(r).as_bytes()) >> 16)
}

/// The comment stamped on a rule: its content hash, then what it is for.
pub fn comment(r: &Rule) -> String {
    let note: String = r.note.chars().filter(|c| *c != '"' && !c.is_control()).collect();
    // nft comments are limited to 128 bytes; the end (file:line:col) matters most.
    let note = if note.len() > 100 { format!("…{}", netward_policy::text::cut_front(&note, 99)) } else { note };
    format!("{} {note}", rule_hash(r))
}

/// The declaration body of a set, without elements: `type ...; flags interval;`.
pub fn set_decl(s: &Set) -> String {
    let mut d = format!("type {};", key_type(s.kind));
    if matches!(s.kind, SetKind::Addr(_) | SetKind::Service) {
        d.push_str(" flags interval;");
    }
    d
}

/// The declaration body of a verdict map, without elements.
pub fn map_decl(m: &crate::ruleset::VerdictMap) -> String {
    format!("type {} : verdict;", key_type(m.key))
}

/// A base chain's `type filter hook ... priority ...; policy accept;`.
pub fn base_decl(b: crate::ruleset::BaseChain) -> String {
    let hook = match b.hook {
        Hook::Forward => "forward",
        Hook::Input => "input",
    };
    let prio = match b.priority {
        0 => "filter".to_string(),
        p if p > 0 => format!("filter + {p}"),
        p => format!("filter - {}", -p),
    };
    format!("type filter hook {hook} priority {prio}; policy accept;")
}

/// A rule as it follows `add rule inet netward <chain>`: body and comment.
pub fn rule_line(r: &Rule) -> String {
    format!("{} comment \"{}\"", rule_body(r), comment(r))
}

fn set_text(out: &mut String, name: &str, s: &Set) {
    let _ = writeln!(out, "\tset {name} {{");
    let _ = writeln!(out, "\t\ttype {}", key_type(s.kind));
    if matches!(s.kind, SetKind::Addr(_) | SetKind::Service) {
        let _ = writeln!(out, "\t\tflags interval");
    }
    if !s.elements.is_empty() {
        let items: Vec<String> = s.elements.iter().map(element).collect();
        let _ = writeln!(out, "\t\telements = {{ {} }}", items.join(",\n\t\t\t     "));
    }
    let _ = writeln!(out, "\t}}");
}

/// The whole ruleset as an `nft -f` script that replaces the table atomically.
pub fn render(rs: &Ruleset) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "#!/usr/sbin/nft -f\n# netward: the table for one node; loading this file replaces it atomically."
    );
    let _ = writeln!(out, "add table inet {TABLE}\ndelete table inet {TABLE}\n");
    let _ = writeln!(out, "table inet {TABLE} {{");
    for (name, s) in &rs.sets {
        set_text(&mut out, name, s);
    }
    for (name, m) in &rs.maps {
        let _ = writeln!(out, "\tmap {name} {{");
        let _ = writeln!(out, "\t\ttype {} : verdict", key_type(m.key));
        if !m.elements.is_empty() {
            let items: Vec<String> = m.elements.iter().map(|(k, c)| format!("{} : goto {c}", element(k))).collect();
            let _ = writeln!(out, "\t\telements = {{ {} }}", items.join(",\n\t\t\t     "));
        }
        let _ = writeln!(out, "\t}}");
    }
    // Base chains first, then the rest by name, so the text reads top-down.
    let mut names: Vec<&String> = rs.chains.keys().collect();
    names.sort_by_key(|n| (rs.chains[*n].base.is_none(), n.as_str()));
    for name in names {
        let c = &rs.chains[name];
        let _ = writeln!(out, "\tchain {name} {{");
        if let Some(b) = c.base {
            let _ = writeln!(out, "\t\t{}", base_decl(b));
        }
        for r in &c.rules {
            let _ = writeln!(out, "\t\t{}", rule_line(r));
        }
        let _ = writeln!(out, "\t}}");
    }
    let _ = writeln!(out, "}}");
    out
}

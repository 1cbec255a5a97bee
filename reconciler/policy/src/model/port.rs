//! Protocols and port matches shared by both policy APIs.

use std::fmt;

/// An IP protocol as policies name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// SCTP (132).
    Sctp,
    /// ICMP (1), IPv4 only.
    Icmp,
    /// ICMPv6 (58), IPv6 only.
    IcmpV6,
    /// UDP-Lite (136).
    UdpLite,
    /// Any other protocol, by number.
    Other(u8),
}

impl Protocol {
    /// Parses a protocol name (case-insensitive, as Calico accepts).
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s.to_ascii_uppercase().as_str() {
            "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            "SCTP" => Protocol::Sctp,
            "ICMP" => Protocol::Icmp,
            "ICMPV6" => Protocol::IcmpV6,
            "UDPLITE" => Protocol::UdpLite,
            _ => return None,
        })
    }

    /// The protocol of an IP protocol number.
    pub fn from_number(n: u8) -> Self {
        match n {
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            132 => Protocol::Sctp,
            1 => Protocol::Icmp,
            58 => Protocol::IcmpV6,
            136 => Protocol::UdpLite,
            n => Protocol::Other(n),
        }
    }

    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
            Protocol::Icmp => 1,
            Protocol::IcmpV6 => 58,
            Protocol::UdpLite => 136,
            Protocol::Other(n) => n,
        }
    }

    /// Whether the protocol has ports that rules may match (numorstring SupportsPorts).
    pub fn has_ports(self) -> bool {
        matches!(self, Protocol::Tcp | Protocol::Udp | Protocol::Sctp)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Tcp => f.write_str("TCP"),
            Protocol::Udp => f.write_str("UDP"),
            Protocol::Sctp => f.write_str("SCTP"),
            Protocol::Icmp => f.write_str("ICMP"),
            Protocol::IcmpV6 => f.write_str("ICMPv6"),
            Protocol::UdpLite => f.write_str("UDPLite"),
            Protocol::Other(n) => write!(f, "{n}"),
        }
    }
}

/// One entry of a rule's `ports`/`notPorts`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PortMatch {
    /// Inclusive range; a single port is `first == last`.
    Range(u16, u16),
    /// A named container port, resolved on the endpoint at that side of the flow.
    Named(String),
}

impl fmt::Display for PortMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortMatch::Range(a, b) if a == b => write!(f, "{a}"),
            PortMatch::Range(a, b) => write!(f, "{a}:{b}"),
            PortMatch::Named(n) => f.write_str(n),
        }
    }
}

/// Checks a named port the way Kubernetes does (IANA_SVC_NAME): 1..15
/// lowercase letters, digits and single inner hyphens, at least one letter.
pub fn check_port_name(name: &str) -> Result<(), String> {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > 15 {
        return Err(format!("port name {name:?} must be 1..15 characters"));
    }
    if !b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-') {
        return Err(format!("port name {name:?} may contain only lowercase letters, digits and '-'"));
    }
    if !b.iter().any(|c| c.is_ascii_lowercase()) {
        return Err(format!("port name {name:?} must contain a letter"));
    }
    if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err(format!("port name {name:?} may not start or end with '-' or contain '--'"));
    }
    Ok(())
}

/// A flow's port as the CLI writes it: `80/TCP`, `53/udp`, `5000-5010/TCP` is
/// not a flow; a single destination port and a protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowPort {
    /// The destination port.
    pub port: u16,
    /// Its protocol: one with ports (TCP, UDP or SCTP).
    pub protocol: Protocol,
}

impl FlowPort {
    /// Parses `PORT[/PROTOCOL]`; the protocol defaults to TCP.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (p, proto) = s.split_once('/').unwrap_or((s, "TCP"));
        let protocol = Protocol::from_name(proto).ok_or_else(|| format!("unknown protocol {proto:?} in {s:?}"))?;
        if !protocol.has_ports() {
            return Err(format!("{s:?}: protocol {protocol} has no ports"));
        }
        let port: u16 = p.parse().map_err(|_| format!("port {p:?} in {s:?} is not a number 1..65535"))?;
        if port == 0 {
            return Err(format!("port 0 in {s:?} is out of range 1..65535"));
        }
        Ok(FlowPort { port, protocol })
    }
}

impl fmt::Display for FlowPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.protocol)
    }
}

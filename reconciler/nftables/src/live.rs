//! What the kernel has: the table as read back, reduced to what diffing
//! needs — set and map elements, and each chain's rule hashes (stamped in
//! rule comments), so read-back never parses rule expressions.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use std::net::IpAddr;

use ipnet::IpNet;

use crate::ruleset::{Element, Ruleset, SetKind};

/// A live (or desired) table in comparable form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Live {
    /// Set name -> (key type text, element keys).
    pub sets: BTreeMap<String, (String, BTreeSet<String>)>,
    /// Map name -> (key type text, element key -> target chain).
    pub maps: BTreeMap<String, (String, BTreeMap<String, String>)>,
    /// Chain name -> rule hashes in order.
    pub chains: BTreeMap<String, Vec<String>>,
}

/// The comparable key of an element: parts joined by `|`.
pub fn element_key(e: &Element) -> String {
    match e {
        Element::Net(n) if n.prefix_len() == n.max_prefix_len() => n.addr().to_string(),
        Element::Net(n) => n.to_string(),
        Element::AddrProtoPort(ip, p, port) => format!("{ip}|{}|{port}", crate::nft::proto_name(*p)),
        Element::IfaceAddr(i, ip) => format!("{i}|{ip}"),
        Element::Iface(i) => i.clone(),
        Element::PortRange(a, b) if a == b => a.to_string(),
        Element::PortRange(a, b) => format!("{a}-{b}"),
    }
}

/// An element back from its comparable key (see `live::element_key`).
pub fn parse_key(kind: SetKind, key: &str) -> Option<Element> {
    let parts: Vec<&str> = key.split('|').collect();
    match (kind, parts.as_slice()) {
        (SetKind::Addr(_) | SetKind::Hosts(_), [a]) => {
            a.parse::<IpNet>().ok().or_else(|| a.parse::<IpAddr>().ok().map(IpNet::from)).map(Element::Net)
        }
        (SetKind::Service, [p]) => match p.split_once('-') {
            Some((a, b)) => Some(Element::PortRange(a.parse().ok()?, b.parse().ok()?)),
            None => p.parse().ok().map(|x| Element::PortRange(x, x)),
        },
        (SetKind::AddrProtoPort(_), [ip, proto, port]) => {
            let p = match *proto {
                "tcp" => 6,
                "udp" => 17,
                "sctp" => 132,
                other => other.parse().ok()?,
            };
            Some(Element::AddrProtoPort(ip.parse().ok()?, p, port.parse().ok()?))
        }
        (SetKind::IfaceAddr(_), [i, ip]) => Some(Element::IfaceAddr(i.to_string(), ip.parse().ok()?)),
        (SetKind::Iface, [i]) => Some(Element::Iface(i.to_string())),
        _ => None,
    }
}

impl Live {
    /// The desired ruleset in the same form, for diffing.
    pub fn of(rs: &Ruleset) -> Live {
        let sets = rs
            .sets
            .iter()
            .map(|(n, s)| (n.clone(), (crate::nft::key_type(s.kind), s.elements.iter().map(element_key).collect())))
            .collect();
        let maps = rs
            .maps
            .iter()
            .map(|(n, m)| {
                (
                    n.clone(),
                    (
                        crate::nft::key_type(m.key),
                        m.elements.iter().map(|(k, c)| (element_key(k), c.clone())).collect(),
                    ),
                )
            })
            .collect();
        let chains =
            rs.chains.iter().map(|(n, c)| (n.clone(), c.rules.iter().map(crate::nft::rule_hash).collect())).collect();
        Live { sets, maps, chains }
    }

    /// Parses `nft -j list table inet netward` output.
    pub fn from_nft_json(text: &str) -> Result<Live, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("failed to parse nft JSON: {e}"))?;
        let items = v.get("nftables").and_then(Value::as_array).ok_or("nft JSON has no \"nftables\" list")?;
        let mut live = Live::default();
        for item in items {
            if let Some(s) = item.get("set") {
                let name = str_of(s, "name")?;
                let ty = type_text(s.get("type"));
                let elems = s
                    .get("elem")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().map(elem_text).collect())
                    .unwrap_or_default();
                live.sets.insert(name, (ty, elems));
            } else if let Some(m) = item.get("map") {
                let name = str_of(m, "name")?;
                let ty = type_text(m.get("type"));
                let mut elems = BTreeMap::new();
                for e in m.get("elem").and_then(Value::as_array).into_iter().flatten() {
                    let pair = e.as_array().ok_or("map element is not a pair")?;
                    let target = pair
                        .get(1)
                        .and_then(|v| v.get("goto").or_else(|| v.get("jump")))
                        .and_then(|g| g.get("target"))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    elems.insert(pair.first().map(elem_text).unwrap_or_default(), target);
                }
                live.maps.insert(name, (ty, elems));
            } else if let Some(c) = item.get("chain") {
                live.chains.entry(str_of(c, "name")?).or_default();
            } else if let Some(r) = item.get("rule") {
                let chain = str_of(r, "chain")?;
                let hash =
                    r.get("comment").and_then(Value::as_str).and_then(|c| c.split_whitespace().next()).unwrap_or("-");
                live.chains.entry(chain).or_default().push(hash.to_string());
            }
        }
        Ok(live)
    }
}

fn str_of(v: &Value, key: &str) -> Result<String, String> {
    v.get(key).and_then(Value::as_str).map(str::to_string).ok_or_else(|| format!("nft JSON object without {key}"))
}

fn type_text(t: Option<&Value>) -> String {
    match t {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" . "),
        _ => String::new(),
    }
}

fn elem_text(e: &Value) -> String {
    match e {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Object(o) => {
            if let Some(p) = o.get("prefix") {
                let addr = p.get("addr").and_then(Value::as_str).unwrap_or("");
                let len = p.get("len").map(|l| l.to_string()).unwrap_or_default();
                format!("{addr}/{len}")
            } else if let Some(Value::Array(parts)) = o.get("concat") {
                parts.iter().map(elem_text).collect::<Vec<_>>().join("|")
            } else if let Some(Value::Array(r)) = o.get("range") {
                r.iter().map(elem_text).collect::<Vec<_>>().join("-")
            } else if let Some(inner) = o.get("elem").and_then(|x| x.get("val")) {
                elem_text(inner)
            } else {
                e.to_string()
            }
        }
        other => other.to_string(),
    }
}

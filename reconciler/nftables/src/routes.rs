//! Which host interface each local pod's address is routed through, read
//! from the node's routing table (`ip -j route`), so the anti-spoofing rules
//! name the interfaces the CNI really made — whatever it called them (ptp's
//! `veth…`, Calico's `cali…`, Cilium's `lxc…`, or a bridge such as `cni0`).
//! Policy dispatch never needs this: it is by address.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

/// The node's directly connected unicast routes (no gateway) with their
/// device, longest prefix first, and the devices that carry a default route.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routes {
    direct: Vec<(IpNet, String)>,
    uplinks: std::collections::BTreeSet<String>,
}

impl Routes {
    /// Parses the JSON `ip -j route show` prints (IPv4 or IPv6; call once
    /// per family and [`Routes::extend`]). Only routes straight to a device
    /// count: a route through a gateway leads to another node, and routes
    /// that are not unicast (local, broadcast, blackhole...) lead nowhere.
    pub fn parse(json: &str) -> Result<Routes, String> {
        let v: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("ip -j route: {e}"))?;
        let mut out = Routes::default();
        for r in v.as_array().into_iter().flatten() {
            let unicast = r.get("type").and_then(|t| t.as_str()).is_none_or(|t| t == "unicast");
            let (Some(dst), Some(dev)) = (r.get("dst").and_then(|d| d.as_str()), r.get("dev").and_then(|d| d.as_str()))
            else {
                continue;
            };
            if dst == "default" {
                out.uplinks.insert(dev.to_string());
                continue;
            }
            if !unicast || r.get("gateway").is_some() {
                continue;
            }
            let net = match dst.parse::<IpNet>() {
                Ok(n) => n,
                Err(_) => match dst.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => continue,
                },
            };
            out.direct.push((net, dev.to_string()));
        }
        out.sort();
        Ok(out)
    }

    /// Adds the routes of another parse (the other family) to these.
    pub fn extend(&mut self, other: Routes) {
        self.direct.extend(other.direct);
        self.uplinks.extend(other.uplinks);
        self.sort();
    }

    fn sort(&mut self) {
        self.direct.sort_by(|a, b| b.0.prefix_len().cmp(&a.0.prefix_len()).then_with(|| a.cmp(b)));
        self.direct.dedup();
    }

    /// The device the longest direct route sends `ip` to.
    pub fn dev_for(&self, ip: IpAddr) -> Option<&str> {
        self.direct.iter().find(|(n, _)| n.contains(&ip)).map(|(_, d)| d.as_str())
    }

    /// The pod link of each address that has one: the device its longest
    /// direct route names, unless that device also carries a default route
    /// (an uplink carries everyone's traffic; naming it a pod's link would
    /// drop the node's other traffic as spoofed). A pod the CNI has not
    /// wired yet has none, and is added on a later pass.
    pub fn links(&self, ips: impl IntoIterator<Item = IpAddr>) -> BTreeMap<IpAddr, String> {
        ips.into_iter()
            .filter_map(|ip| self.dev_for(ip).filter(|d| !self.uplinks.contains(*d)).map(|d| (ip, d.to_string())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_only_unicast_routes_count() {
        // What `ip -j route` prints on a node wired by ptp (a /32 per pod)
        // with a bridge subnet and the default route.
        let v4 = r#"[{"dst":"default","gateway":"172.18.0.1","dev":"eth0"},
            {"dst":"172.18.0.0/16","dev":"eth0","scope":"link"},
            {"dst":"10.244.1.0/24","dev":"cni0","protocol":"kernel","scope":"link","prefsrc":"10.244.1.1"},
            {"dst":"10.244.2.5","dev":"veth3f2a1c9d","scope":"host"},
            {"type":"blackhole","dst":"10.244.3.0/24"},
            {"dst":"10.244.0.0/16","gateway":"172.18.0.3","dev":"eth0"}]"#;
        let v6 = r#"[{"dst":"fd00:10:244:2::5","dev":"veth3f2a1c9d","metric":1024},{"dst":"fe80::/64","dev":"eth0"}]"#;
        let mut r = Routes::parse(v4).expect("v4");
        r.extend(Routes::parse(v6).expect("v6"));
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(r.dev_for(ip("10.244.2.5")), Some("veth3f2a1c9d"));
        assert_eq!(r.dev_for(ip("10.244.1.7")), Some("cni0"));
        assert_eq!(r.dev_for(ip("10.244.9.9")), None, "a remote pod: through a gateway");
        assert_eq!(r.dev_for(ip("10.244.3.1")), None, "a blackhole route is no pod's");
        assert_eq!(r.dev_for(ip("8.8.8.8")), None, "the default route is never a pod's link");
        assert_eq!(r.dev_for(ip("fd00:10:244:2::5")), Some("veth3f2a1c9d"));
        assert_eq!(r.dev_for(ip("172.18.0.9")), Some("eth0"));
        let links = r.links([ip("10.244.2.5"), ip("10.244.1.7"), ip("172.18.0.9"), ip("10.244.3.1")]);
        let got: Vec<(String, &str)> = links.iter().map(|(k, v)| (k.to_string(), v.as_str())).collect();
        assert_eq!(got, vec![("10.244.1.7".into(), "cni0"), ("10.244.2.5".into(), "veth3f2a1c9d")], "never the uplink");
        assert!(Routes::parse("not json").is_err());
    }
}

//! A whole cluster in network namespaces: one namespace per node, one per
//! pod, the nodes joined by a bridge in a "fabric" namespace, and an
//! "outside" namespace on the same bridge that answers for every address no
//! pod owns. Nothing links to the machine's own namespace, so whatever
//! addresses a snapshot uses, no probe leaves the lab.
//!
//! Pods are routed like Calico routes them: a /32 per pod on its node
//! (host side `nw<hash>`, the name netward's enforcer expects), a
//! link-local gateway 169.254.1.1 in the pod; nodes reach other nodes' pods
//! by /32 routes over the fabric. The fabric uses 100.64.0.0/24 inside the
//! lab only.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use netward::analysis::Analysis;
use netward::enforce::{self, netlink::Netlink, Dataplane, Enforcer, Mode, NodeSpec, Report};
use netward::model::{Cluster, Protocol};

use crate::lab::{run, LabError, Probe, PREFIX};

const OUTSIDE_IP: &str = "100.64.0.254";

fn nsx(ns: &str, args: &[&str]) -> Result<String, LabError> {
    let mut v = vec!["ip", "netns", "exec", ns];
    v.extend_from_slice(args);
    run(&v)
}

/// A pod in the lab.
#[derive(Clone, Debug)]
pub struct LabPod {
    pub id: String,
    pub netns: String,
    pub ips: Vec<IpAddr>,
    pub node: String,
}

/// One probe's outcome.
#[derive(Clone, Copy, Debug)]
pub struct ProbeOutcome {
    pub result: Probe,
    pub elapsed: Duration,
    /// Attempts made; a result after a retry is reported as such.
    pub attempts: u32,
}

/// A running lab cluster.
pub struct ClusterLab {
    base: String,
    fabric: String,
    outside: String,
    /// Node name -> (namespace, fabric address).
    nodes: BTreeMap<String, (String, String)>,
    pods: Vec<LabPod>,
    enforcers: BTreeMap<String, Enforcer<Netlink>>,
    probe_bin: PathBuf,
    /// Kept after this process exits (CLI labs); removed by `remove`.
    keep: bool,
    outside_addrs: Mutex<Vec<IpAddr>>,
}

/// The namespaces of a kept lab called `name`.
pub fn kept_prefix(name: &str) -> String {
    format!("{PREFIX}keep-{name}-")
}

/// Removes every namespace whose name starts with `prefix`, killing what runs in it.
pub fn remove_namespaces(prefix: &str) -> usize {
    let Ok(list) = run(&["ip", "netns", "list"]) else { return 0 };
    let mut n = 0;
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if name.starts_with(prefix) {
            crate::lab::remove_namespace(name);
            n += 1;
        }
    }
    n
}

impl ClusterLab {
    /// Builds the cluster's nodes and pods and starts a probe server in every
    /// pod on its declared ports plus `extra` (port, protocol) pairs.
    /// `keep` names a lab that outlives this process (`lab up`); otherwise the
    /// lab is removed when dropped.
    pub fn up(
        name: &str,
        cluster: &Cluster,
        extra: &[(u16, Protocol)],
        probe_bin: &Path,
        keep: bool,
        progress: &dyn Fn(&str),
    ) -> Result<ClusterLab, LabError> {
        crate::lab::clean_leftovers();
        let base = if keep { kept_prefix(name) } else { format!("{PREFIX}{}-{name}-", std::process::id()) };
        if keep {
            remove_namespaces(&base);
        }
        let mut lab = ClusterLab {
            fabric: format!("{base}fabric"),
            outside: format!("{base}outside"),
            base,
            nodes: BTreeMap::new(),
            pods: Vec::new(),
            enforcers: BTreeMap::new(),
            probe_bin: probe_bin.to_path_buf(),
            keep,
            outside_addrs: Mutex::new(Vec::new()),
        };
        run(&["ip", "netns", "add", &lab.fabric])?;
        nsx(&lab.fabric, &["ip", "link", "set", "lo", "up"])?;
        nsx(&lab.fabric, &["ip", "link", "add", "br0", "type", "bridge"])?;
        nsx(&lab.fabric, &["ip", "link", "set", "br0", "up"])?;
        // The outside: answers for every address no pod owns.
        lab.join_fabric(&lab.outside.clone(), "up0", OUTSIDE_IP)?;
        let endpoints: Vec<_> = cluster.endpoints().into_iter().filter(|e| !e.host_network).collect();
        let mut node_names: Vec<String> =
            endpoints.iter().map(|e| e.node.clone().unwrap_or_else(|| "node".into())).collect();
        node_names.sort();
        node_names.dedup();
        for (i, n) in node_names.iter().enumerate() {
            progress(&format!("node {n}"));
            let ns = format!("{}n{i}", lab.base);
            let ip = format!("100.64.0.{}", i + 1);
            lab.join_fabric(&ns, &format!("up{}", i + 1), &ip)?;
            nsx(&ns, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
            nsx(&ns, &["ip", "route", "add", "default", "via", OUTSIDE_IP])?;
            lab.nodes.insert(n.clone(), (ns, ip));
        }
        for (i, e) in endpoints.iter().enumerate() {
            progress(&format!("pod {}", e.id));
            let node = e.node.clone().unwrap_or_else(|| "node".into());
            let (node_ns, _) = lab.nodes[&node].clone();
            let netns = format!("{}p{i}", lab.base);
            run(&["ip", "netns", "add", &netns])?;
            lab.pods.push(LabPod { id: e.id.clone(), netns: netns.clone(), ips: e.ips.clone(), node: node.clone() });
            let iface = crate::lab::lab_iface(&e.namespace, &e.name);
            run(&[
                "ip", "-n", &node_ns, "link", "add", &iface, "type", "veth", "peer", "name", "eth0", "netns", &netns,
            ])?;
            nsx(&node_ns, &["ip", "addr", "add", "169.254.1.1/32", "dev", &iface])?;
            nsx(&node_ns, &["ip", "link", "set", &iface, "up"])?;
            nsx(&netns, &["ip", "link", "set", "lo", "up"])?;
            nsx(&netns, &["ip", "link", "set", "eth0", "up"])?;
            for ip in e.ips.iter().filter(|ip| ip.is_ipv4()) {
                nsx(&netns, &["ip", "addr", "add", &format!("{ip}/32"), "dev", "eth0"])?;
                nsx(&node_ns, &["ip", "route", "add", &format!("{ip}/32"), "dev", &iface])?;
                // Every other node and the outside route this address over the fabric.
                let (_, node_ip) = &lab.nodes[&node];
                for (other, (ons, _)) in &lab.nodes {
                    if *other != node {
                        nsx(ons, &["ip", "route", "add", &format!("{ip}/32"), "via", node_ip])?;
                    }
                }
                nsx(&lab.outside, &["ip", "route", "add", &format!("{ip}/32"), "via", node_ip])?;
            }
            nsx(&netns, &["ip", "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"])?;
            nsx(&netns, &["ip", "route", "add", "default", "via", "169.254.1.1", "dev", "eth0"])?;
            let mut tcp: Vec<u16> = extra.iter().filter(|(_, p)| *p == Protocol::Tcp).map(|(n, _)| *n).collect();
            let mut udp: Vec<u16> = extra.iter().filter(|(_, p)| *p == Protocol::Udp).map(|(n, _)| *n).collect();
            for (p, n) in &e.ports {
                match p {
                    Protocol::Tcp => tcp.push(*n),
                    Protocol::Udp => udp.push(*n),
                    _ => {}
                }
            }
            lab.serve(&netns, &tcp, &udp)?;
        }
        let (mut tcp, mut udp) = (Vec::new(), Vec::new());
        for (n, p) in extra {
            match p {
                Protocol::Tcp => tcp.push(*n),
                Protocol::Udp => udp.push(*n),
                _ => {}
            }
        }
        lab.serve(&lab.outside.clone(), &tcp, &udp)?;
        Ok(lab)
    }

    /// The lab `lab up` left running under `name` for this cluster (names are
    /// derived from the cluster, so nothing needs to be remembered).
    pub fn attach(name: &str, cluster: &Cluster, probe_bin: &Path) -> Result<ClusterLab, LabError> {
        let base = kept_prefix(name);
        let fabric = format!("{base}fabric");
        let list = run(&["ip", "netns", "list"])?;
        if !list.lines().any(|l| l.split_whitespace().next() == Some(fabric.as_str())) {
            return Err(LabError::Unsupported(format!("no lab named {name:?} is running (netward-testkit lab up)")));
        }
        let endpoints: Vec<_> = cluster.endpoints().into_iter().filter(|e| !e.host_network).collect();
        let mut node_names: Vec<String> =
            endpoints.iter().map(|e| e.node.clone().unwrap_or_else(|| "node".into())).collect();
        node_names.sort();
        node_names.dedup();
        let nodes = node_names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), (format!("{base}n{i}"), format!("100.64.0.{}", i + 1))))
            .collect();
        let pods = endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| LabPod {
                id: e.id.clone(),
                netns: format!("{base}p{i}"),
                ips: e.ips.clone(),
                node: e.node.clone().unwrap_or_else(|| "node".into()),
            })
            .collect();
        Ok(ClusterLab {
            fabric,
            outside: format!("{base}outside"),
            base,
            nodes,
            pods,
            enforcers: BTreeMap::new(),
            probe_bin: probe_bin.to_path_buf(),
            keep: true,
            outside_addrs: Mutex::new(Vec::new()),
        })
    }

    /// Creates namespace `ns` (if needed) joined to the fabric bridge with `ip`.
    fn join_fabric(&self, ns: &str, port: &str, ip: &str) -> Result<(), LabError> {
        run(&["ip", "netns", "add", ns])?;
        nsx(ns, &["ip", "link", "set", "lo", "up"])?;
        run(&["ip", "-n", &self.fabric, "link", "add", port, "type", "veth", "peer", "name", "uplink", "netns", ns])?;
        nsx(&self.fabric, &["ip", "link", "set", port, "master", "br0"])?;
        nsx(&self.fabric, &["ip", "link", "set", port, "up"])?;
        nsx(ns, &["ip", "addr", "add", &format!("{ip}/24"), "dev", "uplink"])?;
        nsx(ns, &["ip", "link", "set", "uplink", "up"])?;
        Ok(())
    }

    fn serve(&self, netns: &str, tcp: &[u16], udp: &[u16]) -> Result<(), LabError> {
        let list = |ps: &[u16]| {
            let mut v = ps.to_vec();
            v.sort();
            v.dedup();
            v.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",")
        };
        // Detached (setsid), so a kept lab's servers outlive this process;
        // `remove` kills everything in the lab's namespaces.
        let mut child = Command::new("ip")
            .args(["netns", "exec", netns, "setsid"])
            .arg(&self.probe_bin)
            .args(["serve", "--tcp", &list(tcp), "--udp", &list(udp)])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| LabError::Unsupported(format!("cannot start the probe server: {e}")))?;
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
        if line.trim() != "ready" {
            return Err(LabError::Command { cmd: "netward-probe serve".into(), stderr: line });
        }
        Ok(())
    }

    /// Programs every node from the analysis; later calls apply only the difference.
    pub fn enforce(&mut self, an: &Analysis, mode: Mode) -> Result<Vec<(String, Report)>, LabError> {
        let mut out = Vec::new();
        for (node, (ns, _)) in &self.nodes {
            let enforcer = match self.enforcers.get_mut(node) {
                Some(e) => e,
                None => {
                    let nl = Netlink::in_netns(ns).map_err(|e| LabError::Unsupported(e.to_string()))?;
                    self.enforcers.entry(node.clone()).or_insert(Enforcer::new(nl))
                }
            };
            // As `reconcile` does: each local pod's link from the node's routes.
            let routes = enforcer
                .dataplane()
                .routes()
                .map_err(|e| LabError::Command { cmd: format!("routes of node {node}"), stderr: e.to_string() })?;
            let local = an.endpoints.iter().filter(|e| e.node.as_deref() == Some(node.as_str()) && !e.host_network);
            let links = routes.links(local.flat_map(|e| e.ips.iter().copied()));
            let rs = enforce::compile(an, &NodeSpec { node: node.clone(), mode, links, ..Default::default() });
            let report = enforcer
                .sync(&rs)
                .map_err(|e| LabError::Command { cmd: format!("enforce node {node}"), stderr: e.to_string() })?;
            out.push((node.clone(), report));
        }
        Ok(out)
    }

    pub fn pods(&self) -> &[LabPod] {
        &self.pods
    }

    /// The namespace a node is programmed in.
    pub fn node_netns(&self, node: &str) -> Option<&str> {
        self.nodes.get(node).map(|(ns, _)| ns.as_str())
    }

    /// Probes from a pod; a timeout is retried once and reported as such.
    pub fn probe(&self, from: &str, to: IpAddr, proto: Protocol, port: u16, timeout: Duration) -> ProbeOutcome {
        let Some(src) = self.pods.iter().find(|p| p.id == from) else {
            return ProbeOutcome { result: Probe::Error, elapsed: Duration::ZERO, attempts: 0 };
        };
        if !self.pods.iter().any(|p| p.ips.contains(&to)) {
            self.serve_outside_address(to);
        }
        let start = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let out = Command::new("ip")
                .args(["netns", "exec", &src.netns])
                .arg(&self.probe_bin)
                .args([
                    "connect",
                    if proto == Protocol::Udp { "udp" } else { "tcp" },
                    &to.to_string(),
                    &port.to_string(),
                ])
                .args(["--timeout-ms", &timeout.as_millis().to_string()])
                .output();
            let result = match out.map(|o| o.status.code()) {
                Ok(Some(0)) => Probe::Allowed,
                Ok(Some(1)) => Probe::Denied,
                Ok(Some(2)) => Probe::Refused,
                _ => Probe::Error,
            };
            // One retry of a timeout guards against a lost first packet (ARP);
            // the attempt count says it happened.
            if result == Probe::Denied && attempts < 2 {
                continue;
            }
            return ProbeOutcome { result, elapsed: start.elapsed(), attempts };
        }
    }

    /// Makes the outside answer for `ip` (it owns every non-pod address probed).
    fn serve_outside_address(&self, ip: IpAddr) {
        let mut known = self.outside_addrs.lock().expect("lock");
        if known.contains(&ip) || !ip.is_ipv4() {
            return;
        }
        let _ = nsx(&self.outside, &["ip", "addr", "add", &format!("{ip}/32"), "dev", "lo"]);
        known.push(ip);
    }

    /// Every namespace of this lab.
    pub fn namespaces(&self) -> Vec<String> {
        let mut v = vec![self.fabric.clone(), self.outside.clone()];
        v.extend(self.nodes.values().map(|(ns, _)| ns.clone()));
        v.extend(self.pods.iter().map(|p| p.netns.clone()));
        v
    }

    /// Removes the lab now.
    pub fn remove(&mut self) {
        remove_namespaces(&self.base);
    }
}

impl Drop for ClusterLab {
    fn drop(&mut self) {
        if !self.keep {
            self.remove();
        }
    }
}

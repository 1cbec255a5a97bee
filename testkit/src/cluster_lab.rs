//! A whole cluster in network namespaces: one namespace per node, one per
//! pod, the nodes joined by a bridge in a "fabric" namespace, and an
//! "outside" namespace on the same bridge that answers for every address no
//! pod owns. Nothing links to the machine's own namespace, so whatever
//! addresses a snapshot uses, no probe leaves the lab.
//!
//! Pods are wired by the real CNI plugins (Debian's containernetworking-
//! plugins in /usr/lib/cni), called exactly as a container runtime calls
//! them: `CNI_COMMAND=ADD` with the netconf on stdin, run inside the pod's
//! node namespace; `DEL` for every `ADD` when the lab goes. The plugins
//! name the interfaces (ptp's `veth…`, bridge's `cni0`); netward learns them
//! from the node's routes, as it does on a real node.
//!
//! - [`Cni::Ptp`] (the default, as kind's kindnet): a veth per pod, the
//!   gateway address on its host side and a /32 (/128) route to the pod.
//! - [`Cni::Bridge`]: every pod of a node on `cni0` (`isGateway`), with
//!   `bridge-nf-call-iptables` and `-ip6tables` on in the node namespace, so
//!   bridged traffic meets the inet hooks as on a bridge/flannel node.
//!
//! Every pod keeps the snapshot's addresses: host-local IPAM is given one
//! range per address whose `rangeStart` and `rangeEnd` are that address,
//! inside the node's pod subnet. Pods are dual-stack: a pod with no IPv6
//! address in the snapshot gets [`derived_ipv6`] in the same `ADD`; callers
//! evaluate the model on [`dual_stack`] of their cluster.
//!
//! Between nodes the lab routes as kindnet does: every node's pod subnets
//! (the /24, /120 in IPv6, that holds its pods when no other node has a pod
//! there; narrower prefixes where nodes' pods interleave) are routed on every
//! other node and on the outside via that node's fabric address. The fabric
//! uses 100.64.0.0/24 and fd00:100:64::/64 inside the lab only.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use netward::analysis::Analysis;
use netward::enforce::{self, netlink::Netlink, Dataplane, Enforcer, Mode, NodeSpec, Report};
use netward::model::{Cluster, Endpoint, Protocol};

use crate::lab::{run, LabError, Probe, PREFIX};

const OUTSIDE_IP: &str = "100.64.0.254";
const OUTSIDE_IP6: &str = "fd00:100:64::fe";
/// Where Debian's containernetworking-plugins are.
pub const CNI_BIN: &str = "/usr/lib/cni";
/// The CNI network name every lab netconf carries.
const CNI_NETWORK: &str = "netward-lab";

fn nsx(ns: &str, args: &[&str]) -> Result<String, LabError> {
    let mut v = vec!["ip", "netns", "exec", ns];
    v.extend_from_slice(args);
    run(&v)
}

/// Which CNI plugin wires the lab's pods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Cni {
    /// `ptp`, as kind's kindnet: a veth pair per pod, routed by the node.
    #[default]
    Ptp,
    /// `bridge` (`cni0`, `isGateway`) with br_netfilter on in the node.
    Bridge,
}

impl Cni {
    /// The plugin's name (its binary in [`CNI_BIN`]).
    pub fn plugin(self) -> &'static str {
        match self {
            Cni::Ptp => "ptp",
            Cni::Bridge => "bridge",
        }
    }

    pub const ALL: [Cni; 2] = [Cni::Ptp, Cni::Bridge];
}

impl std::fmt::Display for Cni {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.plugin())
    }
}

impl std::str::FromStr for Cni {
    type Err = String;
    fn from_str(s: &str) -> Result<Cni, String> {
        match s {
            "ptp" => Ok(Cni::Ptp),
            "bridge" => Ok(Cni::Bridge),
            _ => Err(format!("unknown CNI {s:?} (ptp or bridge)")),
        }
    }
}

/// The IPv6 address the lab gives a pod the snapshot lists with IPv4 only:
/// the IPv4 address in the low 32 bits of fd00:10:244::/96 (10.244.1.10 is
/// fd00:10:244::af4:10a), so a node's IPv4 /24 is an IPv6 /120.
pub fn derived_ipv6(v4: Ipv4Addr) -> Ipv6Addr {
    let [a, b, c, d] = v4.octets();
    Ipv6Addr::new(0xfd00, 0x10, 0x244, 0, 0, 0, u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]))
}

/// The cluster as the lab wires it: every workload pod with an IPv4 and no
/// IPv6 address also has [`derived_ipv6`] (after its own addresses). The
/// model must decide on this cluster, so that it decides IPv6 too.
/// Idempotent; hostNetwork pods are left as they are.
pub fn dual_stack(cluster: &Cluster) -> Cluster {
    let mut c = cluster.clone();
    for p in c.pods.iter_mut().filter(|p| !p.host_network) {
        if p.ips.iter().any(|ip| ip.is_ipv6()) {
            continue;
        }
        if let Some(IpAddr::V4(v4)) = p.ips.iter().find(|ip| ip.is_ipv4()).copied() {
            p.ips.push(IpAddr::V6(derived_ipv6(v4)));
        }
    }
    c
}

/// An address prefix (network address and length), without ipnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Net {
    bits: u128,
    len: u8,
    v6: bool,
}

fn bits_of(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn ip_of(bits: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(bits))
    } else {
        IpAddr::V4(Ipv4Addr::from(bits as u32))
    }
}

fn max_len(v6: bool) -> u8 {
    if v6 {
        128
    } else {
        32
    }
}

/// The widest prefix the lab gives a node: a /24, and its IPv6 image /120.
fn cap_len(v6: bool) -> u8 {
    if v6 {
        120
    } else {
        24
    }
}

impl Net {
    fn of(ip: IpAddr, len: u8) -> Net {
        let v6 = ip.is_ipv6();
        let host = u32::from(max_len(v6) - len);
        let mask = if host >= 128 { 0 } else { !((1u128 << host) - 1) };
        Net { bits: bits_of(ip) & mask, len, v6 }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv6() == self.v6 && Net::of(ip, self.len).bits == self.bits
    }

    fn size(&self) -> u128 {
        let host = u32::from(max_len(self.v6) - self.len);
        if host >= 128 {
            u128::MAX
        } else {
            1u128 << host
        }
    }

    /// The gateway a node uses in this subnet: its first address (after the
    /// network address) that no pod of the cluster has, as host-local's
    /// default `.1` is when it is free.
    fn gateway(&self, taken: &BTreeSet<IpAddr>) -> Option<IpAddr> {
        let last = self.size().saturating_sub(if self.v6 { 0 } else { 1 });
        (1..last).map(|i| ip_of(self.bits + i, self.v6)).find(|ip| !taken.contains(ip))
    }
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", ip_of(self.bits, self.v6), self.len)
    }
}

/// One address a pod gets from host-local: its range is that address alone.
#[derive(Clone, Debug)]
struct Range {
    subnet: Net,
    ip: IpAddr,
    gateway: IpAddr,
}

/// How the lab wires one cluster: per node, the prefixes routed to it; per
/// pod, its node and ranges.
struct Plan {
    /// Per node (in name order): the prefixes every other node routes to it.
    routed: Vec<Vec<Net>>,
    /// Per endpoint (in `endpoints` order): its node index and ranges.
    pods: Vec<(usize, Vec<Range>)>,
}

fn node_of(e: &Endpoint) -> String {
    e.node.clone().unwrap_or_else(|| "node".into())
}

fn workload_endpoints(cluster: &Cluster) -> Vec<Endpoint> {
    dual_stack(cluster).endpoints().into_iter().filter(|e| !e.host_network).collect()
}

fn node_names(endpoints: &[Endpoint]) -> Vec<String> {
    let names: BTreeSet<String> = endpoints.iter().map(node_of).collect();
    names.into_iter().collect()
}

impl Plan {
    fn new(endpoints: &[Endpoint], nodes: &[String], cni: Cni) -> Result<Plan, LabError> {
        let index: BTreeMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        let mut owner: BTreeMap<IpAddr, (usize, &str)> = BTreeMap::new();
        for e in endpoints {
            let n = index[node_of(e).as_str()];
            for ip in &e.ips {
                if let Some((_, other)) = owner.insert(*ip, (n, e.id.as_str())) {
                    return Err(LabError::Unsupported(format!("pods {other} and {} both have address {ip}", e.id)));
                }
            }
        }
        let taken: BTreeSet<IpAddr> = owner.keys().copied().collect();
        // No address of another node's pod in `net`.
        let exclusive = |net: &Net, node: usize| owner.iter().all(|(ip, (n, _))| *n == node || !net.contains(*ip));
        let mut routed: Vec<BTreeSet<Net>> = vec![BTreeSet::new(); nodes.len()];
        // Per node and family: the one subnet of a bridge.
        let mut bridge_subnet: BTreeMap<(usize, bool), Net> = BTreeMap::new();
        if cni == Cni::Bridge {
            for (node, name) in nodes.iter().enumerate() {
                for v6 in [false, true] {
                    let ips: Vec<IpAddr> = owner
                        .iter()
                        .filter(|(ip, (n, _))| *n == node && ip.is_ipv6() == v6)
                        .map(|(ip, _)| *ip)
                        .collect();
                    let Some(first) = ips.first() else { continue };
                    // The longest prefix holding all of them, widened to a /24 (/120).
                    let mut common = max_len(v6);
                    while ips.iter().any(|ip| !Net::of(*ip, common).contains(*first)) {
                        common -= 1;
                    }
                    let widest = common.min(cap_len(v6));
                    let narrowest = common.min(max_len(v6) - 2);
                    let net = (widest..=narrowest).map(|l| Net::of(*first, l)).find(|n| exclusive(n, node));
                    let Some(net) = net else {
                        return Err(LabError::Unsupported(format!(
                            "the bridge CNI gives each node one pod subnet, and none holds node {name}'s pods ({}) without another node's pod; use --cni ptp, or give every node its own /24",
                            ips.iter().map(|ip| ip.to_string()).collect::<Vec<_>>().join(", ")
                        )));
                    };
                    bridge_subnet.insert((node, v6), net);
                    routed[node].insert(net);
                }
            }
        }
        let mut pods = Vec::new();
        for e in endpoints {
            let node = index[node_of(e).as_str()];
            let mut ranges = Vec::new();
            for ip in &e.ips {
                let v6 = ip.is_ipv6();
                let subnet = match cni {
                    Cni::Bridge => bridge_subnet[&(node, v6)],
                    Cni::Ptp => {
                        // Routed: the widest prefix (up to a /24) with no other node's pod.
                        let net = (cap_len(v6)..=max_len(v6))
                            .map(|l| Net::of(*ip, l))
                            .find(|n| exclusive(n, node))
                            .expect("a pod's own address is exclusive");
                        routed[node].insert(net);
                        // The pod's own subnet: the /24 (/120) it is in, as kindnet's podCIDR.
                        Net::of(*ip, cap_len(v6))
                    }
                };
                let gateway = subnet.gateway(&taken).ok_or_else(|| {
                    LabError::Unsupported(format!("{subnet} has no free address for {}'s gateway", e.id))
                })?;
                ranges.push(Range { subnet, ip: *ip, gateway });
            }
            pods.push((node, ranges));
        }
        Ok(Plan { routed: routed.into_iter().map(|s| s.into_iter().collect()).collect(), pods })
    }
}

/// The host-local IPAM section: one range set per address, each range that
/// address alone inside its subnet, and default routes for its families.
fn ipam(ranges: &[Range], data_dir: &Path) -> serde_json::Value {
    let sets: Vec<serde_json::Value> = ranges
        .iter()
        .map(|r| {
            serde_json::json!([{
                "subnet": r.subnet.to_string(),
                "rangeStart": r.ip.to_string(),
                "rangeEnd": r.ip.to_string(),
                "gateway": r.gateway.to_string(),
            }])
        })
        .collect();
    let mut routes = Vec::new();
    if ranges.iter().any(|r| r.ip.is_ipv4()) {
        routes.push(serde_json::json!({"dst": "0.0.0.0/0"}));
    }
    if ranges.iter().any(|r| r.ip.is_ipv6()) {
        routes.push(serde_json::json!({"dst": "::/0"}));
    }
    serde_json::json!({
        "type": "host-local",
        "ranges": sets,
        "routes": routes,
        "dataDir": data_dir.display().to_string(),
    })
}

/// The netconf a runtime hands the plugin for one pod.
fn netconf(cni: Cni, ranges: &[Range], data_dir: &Path) -> String {
    let mut v = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "type": cni.plugin(),
        "ipMasq": false,
        "ipam": ipam(ranges, data_dir),
    });
    if cni == Cni::Bridge {
        v["bridge"] = "cni0".into();
        v["isGateway"] = true.into();
    }
    v.to_string()
}

/// Runs `CNI_COMMAND=cmd` of the plugin `netconf` names for a pod, inside
/// the pod's node namespace, as the node's container runtime would.
fn cni_exec(cmd: &str, node_ns: &str, pod_ns: &str, netconf: &str) -> Result<String, LabError> {
    let v: serde_json::Value = serde_json::from_str(netconf)
        .map_err(|e| LabError::Command { cmd: format!("CNI {cmd}"), stderr: format!("netconf: {e}") })?;
    let plugin = v["type"].as_str().unwrap_or("ptp").to_string();
    let bin = Path::new(CNI_BIN).join(&plugin);
    let what = format!("CNI_COMMAND={cmd} {} (pod {pod_ns}, node {node_ns})", bin.display());
    let mut child = Command::new("ip")
        .args(["netns", "exec", node_ns])
        .arg(&bin)
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", pod_ns)
        .env("CNI_NETNS", format!("/run/netns/{pod_ns}"))
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", CNI_BIN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LabError::Unsupported(format!("cannot run {}: {e}", bin.display())))?;
    let written = child.stdin.take().expect("piped").write_all(netconf.as_bytes());
    let out = child.wait_with_output().map_err(|e| LabError::Command { cmd: what.clone(), stderr: e.to_string() })?;
    if let Err(e) = written {
        return Err(LabError::Command { cmd: what, stderr: e.to_string() });
    }
    if !out.status.success() {
        // A plugin reports errors as JSON on stdout.
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        return Err(LabError::Command { cmd: what, stderr: said });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The directory of the lab whose namespaces start with `prefix`: its IPAM
/// state and the record of every CNI `ADD`, so whoever removes the lab (this
/// process, `lab down`, or the next lab after a crash) can `DEL` them.
pub fn lab_dir(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(prefix.trim_end_matches('-'))
}

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// `DEL` for every `ADD` recorded in a lab's directory (newest first),
/// while the node namespaces still exist, then removes the directory with
/// its host-local state.
fn cni_teardown(dir: &Path) {
    let mut records: Vec<PathBuf> = std::fs::read_dir(dir.join("cni"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    records.sort();
    for r in records.iter().rev() {
        let Ok(text) = std::fs::read_to_string(r) else { continue };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        let (Some(node), Some(pod), Some(conf)) = (v["node"].as_str(), v["pod"].as_str(), v["netconf"].as_str()) else {
            continue;
        };
        if netns_exists(node) {
            let _ = cni_exec("DEL", node, pod, conf);
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A pod in the lab.
#[derive(Clone, Debug)]
pub struct LabPod {
    pub id: String,
    pub netns: String,
    /// Its addresses, IPv4 and IPv6 ([`dual_stack`]).
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

/// A node of the lab.
#[derive(Clone, Debug)]
struct LabNode {
    netns: String,
    fabric4: String,
    fabric6: String,
}

/// A running lab cluster.
pub struct ClusterLab {
    base: String,
    fabric: String,
    outside: String,
    cni: Cni,
    nodes: BTreeMap<String, LabNode>,
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

/// Removes the lab whose namespaces start with `prefix`: a CNI `DEL` for
/// every `ADD` it recorded, then every namespace (killing what runs in it),
/// then its directory and IPAM state. Returns how many namespaces went.
pub fn remove_namespaces(prefix: &str) -> usize {
    cni_teardown(&lab_dir(prefix));
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

/// Removes what labs of processes that no longer exist left behind: their
/// CNI attachments (`DEL`), IPAM directories, and namespaces.
pub fn clean_leftovers() {
    let dead = |name: &str| {
        let Some(rest) = name.strip_prefix(PREFIX) else { return false };
        // Only labs named after a process (kept labs are `nwlab-keep-…`).
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { return false };
        !Path::new(&format!("/proc/{pid}")).exists()
    };
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for e in entries.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            if dead(&name) && e.path().join("cni").is_dir() {
                cni_teardown(&e.path());
            }
        }
    }
    crate::lab::clean_leftovers();
}

impl ClusterLab {
    /// [`ClusterLab::up_with`] on the ptp plugin.
    pub fn up(
        name: &str,
        cluster: &Cluster,
        extra: &[(u16, Protocol)],
        probe_bin: &Path,
        keep: bool,
        progress: &dyn Fn(&str),
    ) -> Result<ClusterLab, LabError> {
        ClusterLab::up_with(name, cluster, extra, probe_bin, keep, Cni::Ptp, progress)
    }

    /// Builds the cluster's nodes, wires its pods with the `cni` plugin
    /// (dual-stack, at the snapshot's addresses), and starts a probe server
    /// in every pod on its declared ports plus `extra` (port, protocol)
    /// pairs. `keep` names a lab that outlives this process (`lab up`);
    /// otherwise the lab is removed when dropped.
    pub fn up_with(
        name: &str,
        cluster: &Cluster,
        extra: &[(u16, Protocol)],
        probe_bin: &Path,
        keep: bool,
        cni: Cni,
        progress: &dyn Fn(&str),
    ) -> Result<ClusterLab, LabError> {
        clean_leftovers();
        let plugin = Path::new(CNI_BIN).join(cni.plugin());
        if !plugin.exists() || !Path::new(CNI_BIN).join("host-local").exists() {
            return Err(LabError::Unsupported(format!(
                "no {} or host-local CNI plugin in {CNI_BIN} (apt-get install containernetworking-plugins)",
                cni.plugin()
            )));
        }
        let base = if keep { kept_prefix(name) } else { format!("{PREFIX}{}-{name}-", std::process::id()) };
        if keep {
            remove_namespaces(&base);
        }
        let endpoints = workload_endpoints(cluster);
        let node_names = node_names(&endpoints);
        let plan = Plan::new(&endpoints, &node_names, cni)?;
        let dir = lab_dir(&base);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("cni"))
            .map_err(|e| LabError::Unsupported(format!("cannot create {}: {e}", dir.display())))?;
        let mut lab = ClusterLab {
            fabric: format!("{base}fabric"),
            outside: format!("{base}outside"),
            base,
            cni,
            nodes: BTreeMap::new(),
            pods: Vec::new(),
            enforcers: BTreeMap::new(),
            probe_bin: probe_bin.to_path_buf(),
            keep,
            outside_addrs: Mutex::new(Vec::new()),
        };
        new_netns(&lab.fabric)?;
        nsx(&lab.fabric, &["ip", "link", "add", "br0", "type", "bridge"])?;
        nsx(&lab.fabric, &["ip", "link", "set", "br0", "up"])?;
        // The outside: answers for every address no pod owns.
        lab.join_fabric(&lab.outside.clone(), "up0", OUTSIDE_IP, OUTSIDE_IP6)?;
        for (i, n) in node_names.iter().enumerate() {
            progress(&format!("node {n}"));
            let node = LabNode {
                netns: format!("{}n{i}", lab.base),
                fabric4: format!("100.64.0.{}", i + 1),
                fabric6: format!("fd00:100:64::{:x}", i + 1),
            };
            lab.join_fabric(&node.netns, &format!("up{}", i + 1), &node.fabric4, &node.fabric6)?;
            let ns = node.netns.as_str();
            nsx(ns, &["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"])?;
            if cni == Cni::Bridge {
                // Bridged traffic meets the inet hooks only with br_netfilter,
                // as on every node of a bridge CNI (these are the namespace's own).
                nsx(
                    ns,
                    &["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1", "net.bridge.bridge-nf-call-ip6tables=1"],
                )?;
            }
            nsx(ns, &["ip", "route", "add", "default", "via", OUTSIDE_IP])?;
            nsx(ns, &["ip", "-6", "route", "add", "default", "via", OUTSIDE_IP6])?;
            lab.nodes.insert(n.clone(), node);
        }
        // kindnet's routes: every node's pod subnets via its fabric address,
        // on every other node and on the outside.
        for (i, n) in node_names.iter().enumerate() {
            let to = lab.nodes[n].clone();
            for net in &plan.routed[i] {
                let via = if net.v6 { &to.fabric6 } else { &to.fabric4 };
                let dst = net.to_string();
                for (other, o) in &lab.nodes {
                    if other != n {
                        nsx(&o.netns, &["ip", "route", "add", &dst, "via", via])?;
                    }
                }
                nsx(&lab.outside, &["ip", "route", "add", &dst, "via", via])?;
            }
        }
        for (i, (e, (node_i, ranges))) in endpoints.iter().zip(&plan.pods).enumerate() {
            progress(&format!("pod {}", e.id));
            let node = node_names[*node_i].clone();
            let node_ns = lab.nodes[&node].netns.clone();
            let netns = format!("{}p{i}", lab.base);
            new_netns(&netns)?;
            lab.pods.push(LabPod { id: e.id.clone(), netns: netns.clone(), ips: e.ips.clone(), node: node.clone() });
            // Each node keeps its own IPAM state, as /var/lib/cni on a real node.
            let conf = netconf(cni, ranges, &dir.join("ipam").join(format!("n{node_i}")));
            // Recorded before the ADD: a failed ADD is deleted too, as the spec asks.
            let record = serde_json::json!({"node": node_ns, "pod": netns, "netconf": conf});
            std::fs::write(dir.join("cni").join(format!("{i:05}.json")), record.to_string())
                .map_err(|e| LabError::Unsupported(format!("cannot write {}: {e}", dir.display())))?;
            let result = cni_exec("ADD", &node_ns, &netns, &conf)?;
            let got = result_ips(&result);
            let want: BTreeSet<IpAddr> = e.ips.iter().copied().collect();
            if got != want {
                return Err(LabError::Command {
                    cmd: format!("CNI ADD {} for {}", cni.plugin(), e.id),
                    stderr: format!("the plugin gave {got:?}, the snapshot says {want:?}: {result}"),
                });
            }
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
        lab.settle()?;
        Ok(lab)
    }

    /// The lab `lab up` left running under `name` for this cluster (names are
    /// derived from the cluster, so nothing needs to be remembered).
    pub fn attach(name: &str, cluster: &Cluster, probe_bin: &Path) -> Result<ClusterLab, LabError> {
        let base = kept_prefix(name);
        let fabric = format!("{base}fabric");
        if !netns_exists(&fabric) {
            return Err(LabError::Unsupported(format!("no lab named {name:?} is running (netward-testkit lab up)")));
        }
        let endpoints = workload_endpoints(cluster);
        let nodes = node_names(&endpoints)
            .into_iter()
            .enumerate()
            .map(|(i, n)| {
                let node = LabNode {
                    netns: format!("{base}n{i}"),
                    fabric4: format!("100.64.0.{}", i + 1),
                    fabric6: format!("fd00:100:64::{:x}", i + 1),
                };
                (n, node)
            })
            .collect();
        let pods = endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| LabPod {
                id: e.id.clone(),
                netns: format!("{base}p{i}"),
                ips: e.ips.clone(),
                node: node_of(e),
            })
            .collect();
        // Which plugin wired it: the first recorded ADD says.
        let cni = std::fs::read_to_string(lab_dir(&base).join("cni").join("00000.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["netconf"].as_str().and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok()))
            .and_then(|c| c["type"].as_str().and_then(|t| t.parse().ok()))
            .unwrap_or_default();
        Ok(ClusterLab {
            fabric,
            outside: format!("{base}outside"),
            base,
            cni,
            nodes,
            pods,
            enforcers: BTreeMap::new(),
            probe_bin: probe_bin.to_path_buf(),
            keep: true,
            outside_addrs: Mutex::new(Vec::new()),
        })
    }

    /// The plugin that wired the pods.
    pub fn cni(&self) -> Cni {
        self.cni
    }

    /// Where the lab keeps its IPAM state and its record of CNI `ADD`s
    /// (removed with the lab).
    pub fn state_dir(&self) -> PathBuf {
        lab_dir(&self.base)
    }

    /// Creates namespace `ns` joined to the fabric bridge with `ip` and `ip6`.
    fn join_fabric(&self, ns: &str, port: &str, ip: &str, ip6: &str) -> Result<(), LabError> {
        new_netns(ns)?;
        run(&["ip", "-n", &self.fabric, "link", "add", port, "type", "veth", "peer", "name", "uplink", "netns", ns])?;
        nsx(&self.fabric, &["ip", "link", "set", port, "master", "br0"])?;
        nsx(&self.fabric, &["ip", "link", "set", port, "up"])?;
        nsx(ns, &["ip", "addr", "add", &format!("{ip}/24"), "dev", "uplink"])?;
        nsx(ns, &["ip", "addr", "add", &format!("{ip6}/64"), "dev", "uplink", "nodad"])?;
        nsx(ns, &["ip", "link", "set", "uplink", "up"])?;
        Ok(())
    }

    /// Waits until no address in the lab is still tentative (DAD is off in
    /// every lab namespace, so this is a guard, not a delay).
    fn settle(&self) -> Result<(), LabError> {
        let deadline = Instant::now() + Duration::from_secs(5);
        for ns in self.namespaces() {
            loop {
                let out = run(&["ip", "-n", &ns, "-6", "addr", "show", "tentative"])?;
                if out.trim().is_empty() {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(LabError::Command {
                        cmd: format!("ip -n {ns} -6 addr show tentative"),
                        stderr: format!("addresses still tentative after 5 s: {out}"),
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
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
        for (node, n) in &self.nodes {
            let enforcer = match self.enforcers.get_mut(node) {
                Some(e) => e,
                None => {
                    let nl = Netlink::in_netns(&n.netns).map_err(|e| LabError::Unsupported(e.to_string()))?;
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
        self.nodes.get(node).map(|n| n.netns.as_str())
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
        if known.contains(&ip) {
            return;
        }
        let len = if ip.is_ipv4() { 32 } else { 128 };
        let _ = nsx(&self.outside, &["ip", "addr", "add", &format!("{ip}/{len}"), "dev", "lo", "nodad"]);
        known.push(ip);
    }

    /// Every namespace of this lab.
    pub fn namespaces(&self) -> Vec<String> {
        let mut v = vec![self.fabric.clone(), self.outside.clone()];
        v.extend(self.nodes.values().map(|n| n.netns.clone()));
        v.extend(self.pods.iter().map(|p| p.netns.clone()));
        v
    }

    /// Removes the lab now: a CNI `DEL` for every `ADD`, the namespaces,
    /// and the IPAM state.
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

/// A lab namespace: loopback up, no duplicate address detection (every
/// address in the lab is unique by construction, and DAD would keep new
/// IPv6 addresses tentative for a second), IPv6 sockets IPv6-only so the
/// probe server's `[::]` listeners sit beside its IPv4 ones.
fn new_netns(ns: &str) -> Result<(), LabError> {
    run(&["ip", "netns", "add", ns])?;
    nsx(ns, &["ip", "link", "set", "lo", "up"])?;
    nsx(
        ns,
        &[
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
            "net.ipv6.bindv6only=1",
        ],
    )?;
    Ok(())
}

/// The addresses a CNI result gives the pod.
fn result_ips(result: &str) -> BTreeSet<IpAddr> {
    let v: serde_json::Value = serde_json::from_str(result).unwrap_or_default();
    v["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["address"].as_str()?.split('/').next()?.parse().ok())
        .collect()
}

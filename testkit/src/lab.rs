//! A node made of Linux network namespaces: one namespace for the node, one
//! per pod, each pod on a veth pair whose host side is named like netward's
//! enforcer expects, routed the way Calico routes (a /32 per pod on the node,
//! a link-local gateway 169.254.1.1 in the pod).
//!
//! Everything carries the name prefix `nwlab-`; nothing is linked to the
//! machine's own namespace, so nothing a probe sends can leave the lab.
//! Dropping a `Lab` removes what it created.

use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Every lab pod also runs a sink on this TCP port (bulk-transfer benchmarks).
pub const SINK_PORT: u16 = 5001;

/// The prefix of every namespace a lab creates.
pub const PREFIX: &str = "nwlab-";

/// Why the lab could not do something.
#[derive(Debug)]
pub enum LabError {
    /// This machine cannot host a lab (not root, no `ip`/`nft`, no namespaces).
    Unsupported(String),
    /// A command failed; retrying will not help.
    Command { cmd: String, stderr: String },
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabError::Unsupported(why) => write!(f, "the lab cannot run here: {why}"),
            LabError::Command { cmd, stderr } => write!(f, "failed to run `{cmd}`: {}", stderr.trim()),
        }
    }
}

impl std::error::Error for LabError {}

/// Runs a command (ip, nft, ...) and returns its stdout, or what it said.
pub(crate) fn run(args: &[&str]) -> Result<String, LabError> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| LabError::Unsupported(format!("cannot run {}: {e}", args[0])))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(LabError::Command { cmd: args.join(" "), stderr: String::from_utf8_lossy(&out.stderr).into_owned() })
    }
}

/// Checks that this machine can host a lab: root, `ip`, `nft`, namespaces.
pub fn check_support() -> Result<(), LabError> {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let probe = format!("{PREFIX}{}-check{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
    run(&["ip", "netns", "add", &probe]).map_err(|e| LabError::Unsupported(e.to_string()))?;
    let nft = run(&["ip", "netns", "exec", &probe, "nft", "list", "ruleset"]);
    let _ = run(&["ip", "netns", "del", &probe]);
    nft.map(|_| ()).map_err(|e| LabError::Unsupported(format!("nftables: {e}")))
}

/// Removes namespaces left by labs of processes that no longer exist.
pub fn clean_leftovers() {
    let Ok(list) = run(&["ip", "netns", "list"]) else { return };
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(PREFIX) else { continue };
        // Only labs named after a process (kept labs are `nwlab-keep-…`).
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            remove_namespace(name);
        }
    }
}

/// Kills whatever runs in a namespace (probe servers), then deletes it; a
/// namespace that still has processes would otherwise live on unnamed.
pub fn remove_namespace(name: &str) {
    if let Ok(pids) = run(&["ip", "netns", "pids", name]) {
        for pid in pids.split_whitespace() {
            let _ = run(&["kill", "-9", pid]);
        }
    }
    let _ = run(&["ip", "netns", "del", name]);
}

/// A pod to build: its id (for messages), its addresses, its host-side interface name.
#[derive(Clone, Debug)]
pub struct PodSpec {
    pub id: String,
    pub ips: Vec<IpAddr>,
    pub iface: String,
}

impl PodSpec {
    /// The pod for an endpoint, its host-side interface named the way the
    /// ptp CNI plugin names its veths (`veth` and 8 hex digits): netward
    /// never names interfaces, it learns them from the node's routes.
    pub fn of(e: &netward::model::Endpoint) -> PodSpec {
        PodSpec { id: e.id.clone(), ips: e.ips.clone(), iface: lab_iface(&e.namespace, &e.name) }
    }
}

/// A lab pod's host-side veth: `veth` and 8 hex digits of an FNV-1a hash
/// of `namespace/name` (12 characters, under the kernel's 15).
pub fn lab_iface(namespace: &str, pod: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in format!("{namespace}/{pod}").bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    format!("veth{h:08x}")
}

/// The links the enforcer learns from a lab's routes, for tests that
/// compile a ruleset themselves: each pod address -> its veth.
pub fn links(pods: &[PodSpec]) -> std::collections::BTreeMap<IpAddr, String> {
    pods.iter().flat_map(|p| p.ips.iter().map(move |ip| (*ip, p.iface.clone()))).collect()
}

struct LabPod {
    spec: PodSpec,
    netns: String,
}

/// What a probe found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    Allowed,
    Denied,
    Refused,
    Error,
}

/// A running lab node.
pub struct Lab {
    node: String,
    pods: Vec<LabPod>,
    servers: Vec<Child>,
    probe_bin: PathBuf,
}

impl Lab {
    /// Builds the node and its pods, and starts a probe server in every pod
    /// on the given ports.
    pub fn up(name: &str, pods: &[PodSpec], tcp: &[u16], udp: &[u16], probe_bin: &Path) -> Result<Lab, LabError> {
        clean_leftovers();
        let base = format!("{PREFIX}{}-{name}", std::process::id());
        let node = format!("{base}-node");
        let mut lab =
            Lab { node: node.clone(), pods: Vec::new(), servers: Vec::new(), probe_bin: probe_bin.to_path_buf() };
        run(&["ip", "netns", "add", &node])?;
        let nx = |args: &[&str]| -> Result<String, LabError> {
            let mut v = vec!["ip", "netns", "exec", node.as_str()];
            v.extend_from_slice(args);
            run(&v)
        };
        nx(&["ip", "link", "set", "lo", "up"])?;
        nx(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        for (i, p) in pods.iter().enumerate() {
            let netns = format!("{base}-p{i}");
            run(&["ip", "netns", "add", &netns])?;
            lab.pods.push(LabPod { spec: p.clone(), netns: netns.clone() });
            run(&[
                "ip", "-n", &node, "link", "add", &p.iface, "type", "veth", "peer", "name", "eth0", "netns", &netns,
            ])?;
            nx(&["ip", "addr", "add", "169.254.1.1/32", "dev", &p.iface])?;
            nx(&["ip", "link", "set", &p.iface, "up"])?;
            let px = |args: &[&str]| -> Result<String, LabError> {
                let mut v = vec!["ip", "netns", "exec", netns.as_str()];
                v.extend_from_slice(args);
                run(&v)
            };
            px(&["ip", "link", "set", "lo", "up"])?;
            px(&["ip", "link", "set", "eth0", "up"])?;
            for ip in p.ips.iter().filter(|ip| ip.is_ipv4()) {
                px(&["ip", "addr", "add", &format!("{ip}/32"), "dev", "eth0"])?;
                nx(&["ip", "route", "add", &format!("{ip}/32"), "dev", &p.iface])?;
            }
            px(&["ip", "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"])?;
            px(&["ip", "route", "add", "default", "via", "169.254.1.1", "dev", "eth0"])?;
            lab.start_server(&netns, tcp, udp)?;
        }
        Ok(lab)
    }

    fn start_server(&mut self, netns: &str, tcp: &[u16], udp: &[u16]) -> Result<(), LabError> {
        let list = |ps: &[u16]| ps.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",");
        let mut child = Command::new("ip")
            .args(["netns", "exec", netns])
            .arg(&self.probe_bin)
            .args(["serve", "--tcp", &list(tcp), "--udp", &list(udp), "--sink", &SINK_PORT.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| LabError::Unsupported(format!("cannot start the probe server: {e}")))?;
        // Wait for "ready" so no probe races the bind.
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        self.servers.push(child);
        if line.trim() != "ready" {
            return Err(LabError::Command { cmd: "netward-probe serve".into(), stderr: line });
        }
        Ok(())
    }

    /// Loads an `nft -f` script into the node namespace.
    pub fn load_nft(&self, script: &str) -> Result<(), LabError> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.node, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| LabError::Unsupported(format!("cannot run nft: {e}")))?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(script.as_bytes())
            .map_err(|e| LabError::Command { cmd: "nft -f -".into(), stderr: e.to_string() })?;
        let out = child
            .wait_with_output()
            .map_err(|e| LabError::Command { cmd: "nft -f -".into(), stderr: e.to_string() })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(LabError::Command { cmd: "nft -f -".into(), stderr: String::from_utf8_lossy(&out.stderr).into_owned() })
        }
    }

    /// Adds an address to a pod's interface (to send from it).
    pub fn add_address(&self, pod: &str, ip: IpAddr) -> Result<(), LabError> {
        let p = self
            .pods
            .iter()
            .find(|p| p.spec.id == pod)
            .ok_or_else(|| LabError::Unsupported(format!("no pod {pod}")))?;
        run(&["ip", "-n", &p.netns, "addr", "add", &format!("{ip}/32"), "dev", "eth0"]).map(|_| ())
    }

    /// Runs `nft` with arguments in the node namespace (for inspection).
    pub fn nft(&self, args: &[&str]) -> Result<String, LabError> {
        let mut v = vec!["ip", "netns", "exec", self.node.as_str(), "nft"];
        v.extend_from_slice(args);
        run(&v)
    }

    /// Probes from one pod to an address; returns the result and how long it took.
    pub fn probe(&self, from: &str, to: IpAddr, udp: bool, port: u16, timeout: Duration) -> (Probe, Duration) {
        self.probe_from(from, None, to, udp, port, timeout)
    }

    /// Like `probe`, but UDP is sent from `source` (an address added to the
    /// pod's interface with `add_address`): a spoofed packet.
    pub fn probe_from(
        &self,
        from: &str,
        source: Option<IpAddr>,
        to: IpAddr,
        udp: bool,
        port: u16,
        timeout: Duration,
    ) -> (Probe, Duration) {
        let Some(src) = self.pods.iter().find(|p| p.spec.id == from) else { return (Probe::Error, Duration::ZERO) };
        let start = Instant::now();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &src.netns])
            .arg(&self.probe_bin)
            .args(["connect", if udp { "udp" } else { "tcp" }, &to.to_string(), &port.to_string()])
            .args(["--timeout-ms", &timeout.as_millis().to_string()]);
        if let Some(s) = source {
            cmd.args(["--bind", &s.to_string()]);
        }
        let out = cmd.output();
        let result = match out.map(|o| o.status.code()) {
            Ok(Some(0)) => Probe::Allowed,
            Ok(Some(1)) => Probe::Denied,
            Ok(Some(2)) => Probe::Refused,
            _ => Probe::Error,
        };
        (result, start.elapsed())
    }

    /// Runs `netward-probe bench MODE` from a pod; returns what it printed.
    pub fn bench(&self, from: &str, mode: &str, to: IpAddr, port: u16, n: u64) -> Result<f64, LabError> {
        let src = self
            .pods
            .iter()
            .find(|p| p.spec.id == from)
            .ok_or_else(|| LabError::Unsupported(format!("no pod {from}")))?;
        let probe = self.probe_bin.to_string_lossy().to_string();
        let out = run(&[
            "ip",
            "netns",
            "exec",
            &src.netns,
            &probe,
            "bench",
            mode,
            &to.to_string(),
            &port.to_string(),
            &n.to_string(),
        ])?;
        out.trim().parse().map_err(|_| LabError::Command { cmd: format!("bench {mode}"), stderr: out })
    }

    /// The node's network namespace (where the enforcer programs nftables).
    pub fn node_netns(&self) -> &str {
        &self.node
    }

    /// The namespaces this lab created.
    pub fn namespaces(&self) -> Vec<String> {
        std::iter::once(self.node.clone()).chain(self.pods.iter().map(|p| p.netns.clone())).collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        for ns in self.namespaces() {
            remove_namespace(&ns);
        }
    }
}

/// The ruleset with its egress dispatch laid out as before #14: the maps
/// keyed by (input interface, source address), for the benchmark that
/// compares the two and the test that upgrades a table from the old layout.
pub fn with_old_dispatch(rs: &netward::enforce::Ruleset, pods: &[PodSpec]) -> netward::enforce::Ruleset {
    use netward::enforce::ruleset::{Element, Family, SetKind, Verdict};
    let links = links(pods);
    let mut old = rs.clone();
    for (name, fam) in [("egress-dispatch-4", Family::V4), ("egress-dispatch-6", Family::V6)] {
        let map = old.maps.get_mut(name).expect("dispatch map");
        map.key = SetKind::IfaceAddr(fam);
        map.elements = std::mem::take(&mut map.elements)
            .into_iter()
            .filter_map(|(k, c)| match k {
                Element::Net(n) => links.get(&n.addr()).map(|i| (Element::IfaceAddr(i.clone(), n.addr()), c)),
                other => Some((other, c)),
            })
            .collect();
    }
    // Every chain that looks the map up (egress, and input for a pod's own node).
    for chain in old.chains.values_mut() {
        for r in &mut chain.rules {
            if let Verdict::Dispatch { by_iface, map, .. } = &mut r.verdict {
                if map.starts_with("egress-dispatch-") {
                    *by_iface = true;
                }
            }
        }
    }
    old
}

//! Probing a lab against the model: every pod pair on every port the
//! destination declares, over every address family both ends have, with a
//! bounded pool of concurrent probes.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use netward::analysis::{Analysis, Flow, Matrix};
use netward::model::port::FlowPort;
use netward::model::Protocol;

use crate::cluster_lab::{ClusterLab, ProbeOutcome};
use crate::lab::Probe;

/// One probe and what the model says about it.
#[derive(Clone, Debug)]
pub struct Checked {
    pub from: String,
    pub to: String,
    /// The destination address probed (its family is the probe's).
    pub ip: IpAddr,
    pub port: FlowPort,
    pub outcome: ProbeOutcome,
    pub model_allows: bool,
}

impl Checked {
    /// Whether the kernel's answer differs from the model's. A refused probe
    /// reached the pod, so policy allowed it.
    pub fn disagrees(&self) -> bool {
        let kernel_allows = matches!(self.outcome.result, Probe::Allowed | Probe::Refused);
        self.outcome.result == Probe::Error || kernel_allows != self.model_allows
    }
}

/// Whatever sends a probe from a pod: the lab's namespaces, a kind cluster.
pub trait Prober: Sync {
    fn probe(&self, from: &str, to: IpAddr, proto: Protocol, port: u16, timeout: Duration) -> ProbeOutcome;
}

impl Prober for ClusterLab {
    fn probe(&self, from: &str, to: IpAddr, proto: Protocol, port: u16, timeout: Duration) -> ProbeOutcome {
        ClusterLab::probe(self, from, to, proto, port, timeout)
    }
}

impl Prober for crate::kind::KindWorld {
    fn probe(&self, from: &str, to: IpAddr, proto: Protocol, port: u16, timeout: Duration) -> ProbeOutcome {
        crate::kind::KindWorld::probe(self, from, to, proto, port, timeout)
    }
}

/// Probes a list of (from, to, to-address, port) jobs, `pool` at a time.
pub fn probe_all(
    lab: &dyn Prober,
    jobs: Vec<(String, String, IpAddr, FlowPort, bool)>,
    pool: usize,
    timeout: Duration,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Vec<Checked> {
    let total = jobs.len();
    let jobs = Mutex::new(jobs);
    let done = Mutex::new(Vec::with_capacity(total));
    std::thread::scope(|s| {
        for _ in 0..pool.max(1) {
            s.spawn(|| loop {
                let Some((from, to, ip, port, model_allows)) = jobs.lock().expect("lock").pop() else { break };
                let outcome = lab.probe(&from, ip, port.protocol, port.port, timeout);
                let mut d = done.lock().expect("lock");
                d.push(Checked { from, to, ip, port, outcome, model_allows });
                progress(d.len(), total);
            });
        }
    });
    let mut out = done.into_inner().expect("lock");
    out.sort_by(|a, b| (&a.from, &a.to, a.port, a.ip).cmp(&(&b.from, &b.to, b.port, b.ip)));
    out
}

/// Every pod pair on every TCP/UDP port the destination declares, probed
/// over IPv4 and over IPv6 where both ends have an address in that family,
/// and compared with the model: its matrix for IPv4 (which decides a pair
/// over IPv4 when both ends have one), the flow between the two IPv6
/// addresses for IPv6.
pub fn verify(
    lab: &dyn Prober,
    an: &Analysis,
    pool: usize,
    timeout: Duration,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Vec<Checked> {
    let mut ports: Vec<FlowPort> = Vec::new();
    for e in an.endpoints.iter().filter(|e| !e.host_network) {
        for (p, n) in &e.ports {
            let fp = FlowPort { port: *n, protocol: *p };
            if matches!(p, Protocol::Tcp | Protocol::Udp) && !ports.contains(&fp) {
                ports.push(fp);
            }
        }
    }
    ports.sort();
    let m = Matrix::compute(an, &ports);
    let mut jobs = Vec::new();
    for (pi, fp) in ports.iter().enumerate() {
        for (a, ea) in an.endpoints.iter().enumerate().filter(|(_, e)| !e.host_network) {
            for (b, eb) in an.endpoints.iter().enumerate().filter(|(_, e)| !e.host_network) {
                let declares = eb.ports.contains(&(fp.protocol, fp.port));
                if a == b || !declares {
                    continue;
                }
                if let (Some(_), Some(ip)) = (ea.ip_in(false), eb.ip_in(false)) {
                    jobs.push((ea.id.clone(), eb.id.clone(), ip, *fp, m.allowed(pi, a, b)));
                }
                if let (Some(src), Some(dst)) = (an.peer_of(ea, true), an.peer_of(eb, true)) {
                    let flow = Flow { src, dst, protocol: fp.protocol, dst_port: fp.port, src_port: None };
                    jobs.push((ea.id.clone(), eb.id.clone(), dst.ip, *fp, an.evaluate(&flow).allowed));
                }
            }
        }
    }
    probe_all(lab, jobs, pool, timeout, progress)
}

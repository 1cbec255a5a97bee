//! Benchmark: does policy count cost per-packet time? Two pods on a lab node
//! (network namespaces, real nftables programmed by netward over netlink):
//! a TCP connect loop (every connection is NEW, so it runs the pod's chains),
//! a stream of datagrams of one UDP flow that is never answered (each one is
//! NEW: the cost of the chains per packet, without a handshake's noise) and
//! a bulk transfer (established: the fast path), with 0, 100 and 1,000
//! policies installed. The pods' own policies isolate them both ways, so
//! both the ingress and the egress dispatch run for every new connection.
//! Two layouts of the other policies:
//! - spread: the policies belong to other workloads, as in a real cluster;
//!   O(1) dispatch means the pods pay only for their own few policies;
//! - stacked (worst case): every policy applies to the server pod, and none
//!   matches before the last, so each NEW connection walks all of them.
//!
//! Run as root: `cargo bench -p netward-testkit --bench traffic`.

use std::fmt::Write;
use std::path::PathBuf;
use std::sync::Arc;

use netward::analysis::{Analysis, View};
use netward::enforce::netlink::Netlink;
use netward::enforce::{self, Enforcer, Mode, NodeSpec};
use netward::manifest::load::{load_cluster_text, load_policy_texts};
use netward_testkit::lab::{check_support, Lab, PodSpec, SINK_PORT};

const CLUSTER: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: bench}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: bench, labels: {app: client}}
spec: {nodeName: lab}
status: {phase: Running, podIP: 10.99.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: bench, labels: {app: server}}
spec: {nodeName: lab}
status: {phase: Running, podIP: 10.99.0.2}
";

/// The pods' own policies: a default deny both ways, the server's ingress
/// from the client and the client's egress to the server.
const OWN: usize = 3;

/// `n` policies: the pods' own, plus filler. `stacked` puts the filler on
/// the server pod, ahead of the allow.
fn policies(n: usize, stacked: bool) -> String {
    let mut y = String::new();
    if n == 0 {
        return y;
    }
    y.push_str("---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: bench}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n");
    y.push_str("---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: allow, namespace: bench}\nspec:\n  podSelector: {matchLabels: {app: server}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {app: client}}}]\n");
    y.push_str("---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: allow-out, namespace: bench}\nspec:\n  podSelector: {matchLabels: {app: client}}\n  policyTypes: [Egress]\n  egress:\n  - to: [{podSelector: {matchLabels: {app: server}}}]\n");
    for i in 0..n.saturating_sub(OWN) {
        let selector = if stacked { "app == 'server'".to_string() } else { format!("app == 'other-{i}'") };
        let _ = write!(
            y,
            "---\napiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {{name: filler-{i}, namespace: bench}}\nspec:\n  order: {i}\n  selector: \"{selector}\"\n  ingress:\n  - action: Allow\n    protocol: TCP\n    source: {{selector: \"app == 'nobody-{i}'\"}}\n    destination: {{ports: [{}]}}\n",
            10000 + i % 50000
        );
    }
    y
}

fn main() {
    if let Err(e) = check_support() {
        eprintln!("traffic benchmark needs root, ip and nft: {e}");
        std::process::exit(1);
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let (connects, datagrams, mib, rounds) = if quick { (300, 20_000, 50, 1) } else { (2000, 200_000, 300, 5) };
    let mut d = Vec::new();
    let mut cluster = load_cluster_text(&Arc::from("c.yaml"), CLUSTER, &mut d);
    cluster.fill_missing_namespaces();
    assert!(d.is_empty(), "{d:?}");
    let pods: Vec<PodSpec> = cluster.endpoints().iter().map(PodSpec::of).collect();
    let probe = PathBuf::from(env!("CARGO_BIN_EXE_netward-probe"));
    // One server port per configuration. A connect loop reuses the
    // client's ports once their range wraps; a SYN on a 4-tuple that
    // conntrack still holds as closing is not a new flow but an invalid
    // packet, which the pod's chain drops (as Calico's does), and the
    // client waits a second to resend it. Distinct ports keep one row's
    // tuples from meeting another's.
    let ports: Vec<u16> = (0..8).map(|i| 8080 + i).collect();
    let lab = Lab::up("traffic", &pods, &ports, &[], &probe).expect("lab");
    let server = "10.99.0.2".parse().expect("ip");
    let mut enforcer = Enforcer::new(Netlink::in_netns(lab.node_netns()).expect("netlink"));
    // The configurations, measured round-robin so machine noise spreads
    // over all of them; ratios are to the pods' own three policies ("3"), the
    // cost of being isolated at all, which the other rows add policies to.
    let configs = [(0, false), (OWN, false), (100, false), (1000, false), (100, true), (1000, true)];
    let rulesets: Vec<_> = configs
        .iter()
        .map(|&(n, stacked)| {
            let text = policies(n, stacked);
            let set = load_policy_texts(std::iter::once((Arc::from("p.yaml"), text.as_str())), &mut d);
            assert!(d.is_empty(), "{d:?}");
            let an = Analysis::new(&set, &cluster, View::Enforced);
            enforce::compile(
                &an,
                &NodeSpec {
                    node: "lab".into(),
                    mode: Mode::Enforce,
                    links: netward_testkit::lab::links(&pods),
                    ..Default::default()
                },
            )
        })
        .collect();
    // Side by side with the pods' own policies: egress dispatched the
    // old way (by `iifname . ip saddr`, which only worked with interface
    // names netward chose), and no netward table at all.
    let mut rulesets = rulesets;
    rulesets.push(netward_testkit::lab::with_old_dispatch(&rulesets[1], &pods));
    // Per row: connects/s, datagrams/s, bulk MiB/s.
    let mut samples: Vec<[Vec<f64>; 3]> = (0..=rulesets.len()).map(|_| Default::default()).collect();
    let measure = |row: &mut [Vec<f64>; 3], port: u16| {
        row[0].push(lab.bench("bench/client", "connect", server, port, connects).expect("connect loop"));
        row[1].push(lab.bench("bench/client", "udp", server, SINK_PORT, datagrams).expect("datagrams"));
        row[2].push(lab.bench("bench/client", "bulk", server, SINK_PORT, mib).expect("bulk"));
    };
    for _ in 0..rounds {
        for (i, rs) in rulesets.iter().enumerate() {
            enforcer.sync(rs).expect("programmed");
            measure(&mut samples[i], ports[i]);
        }
        let _ = std::process::Command::new("ip")
            .args(["netns", "exec", lab.node_netns(), "nft", "delete", "table", "inet", "netward"])
            .status();
        let none = samples.len() - 1;
        measure(&mut samples[none], ports[none]);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let medians: Vec<[f64; 3]> = samples.iter_mut().map(|r| [med(&mut r[0]), med(&mut r[1]), med(&mut r[2])]).collect();
    let base = medians[1];
    // What the table adds to one new datagram, against no table at all.
    let bare_ns = 1e9 / medians[medians.len() - 1][1];
    println!(
        "{:<22} {:>11} {:>6} {:>12} {:>6} {:>10} {:>10} {:>6}",
        "policies", "connects/s", "ratio", "datagrams/s", "ratio", "+ns/dgram", "bulk MiB/s", "ratio"
    );
    let extra = [(usize::MAX - 1, false), (usize::MAX, false)];
    for (&(n, stacked), m) in configs.iter().chain(&extra).zip(&medians) {
        let row = |label: &str| {
            println!(
                "{label:<22} {:>11.0} {:>6.2} {:>12.0} {:>6.2} {:>10.0} {:>10.0} {:>6.2}",
                m[0],
                m[0] / base[0],
                m[1],
                m[1] / base[1],
                1e9 / m[1] - bare_ns,
                m[2],
                m[2] / base[2]
            )
        };
        if n >= usize::MAX - 1 {
            row(if n == usize::MAX { "no netward table" } else { "3, old iif dispatch" });
            continue;
        }
        let label = format!(
            "{n}{}",
            if n <= OWN {
                ""
            } else if stacked {
                " stacked"
            } else {
                " spread"
            }
        );
        row(&label);
    }
}

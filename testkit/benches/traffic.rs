//! Benchmark: does policy count cost per-packet time? Two pods on a lab node
//! (network namespaces, real nftables programmed by netward over netlink):
//! a TCP connect loop (every connection is NEW, so it runs the pod's chains)
//! and a bulk transfer (established: the fast path), with 0, 100 and 1,000
//! policies installed. Two layouts of those policies:
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

/// `n` policies: a default deny and an allow for client -> server, plus
/// filler. `stacked` puts the filler on the server pod, ahead of the allow.
fn policies(n: usize, stacked: bool) -> String {
    let mut y = String::new();
    if n == 0 {
        return y;
    }
    y.push_str("---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: bench}\nspec: {podSelector: {}, policyTypes: [Ingress]}\n");
    y.push_str("---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: allow, namespace: bench}\nspec:\n  podSelector: {matchLabels: {app: server}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {app: client}}}]\n");
    for i in 0..n.saturating_sub(2) {
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
    let (connects, mib, rounds) = if quick { (300, 50, 1) } else { (2000, 300, 5) };
    let mut d = Vec::new();
    let mut cluster = load_cluster_text(&Arc::from("c.yaml"), CLUSTER, &mut d);
    cluster.fill_missing_namespaces();
    assert!(d.is_empty(), "{d:?}");
    let pods: Vec<PodSpec> = cluster.endpoints().iter().map(|e| PodSpec::of(e)).collect();
    let probe = PathBuf::from(env!("CARGO_BIN_EXE_netward-probe"));
    let lab = Lab::up("traffic", &pods, &[8080], &[], &probe).expect("lab");
    let server = "10.99.0.2".parse().expect("ip");
    let mut enforcer = Enforcer::new(Netlink::in_netns(lab.node_netns()).expect("netlink"));
    // The configurations, measured round-robin so machine noise spreads
    // over all of them; ratios are to the pods' own two policies ("2"), the
    // cost of being isolated at all, which the other rows add policies to.
    let configs = [(0, false), (2, false), (100, false), (1000, false), (100, true), (1000, true)];
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
    // Side by side with the pods' own two policies: egress dispatched the
    // old way (by `iifname . ip saddr`, which only worked with interface
    // names netward chose), and no netward table at all.
    let mut rulesets = rulesets;
    rulesets.push(netward_testkit::lab::with_old_dispatch(&rulesets[1], &pods));
    let mut samples: Vec<(Vec<f64>, Vec<f64>)> = (0..=rulesets.len()).map(|_| (Vec::new(), Vec::new())).collect();
    for _ in 0..rounds {
        for (i, rs) in rulesets.iter().enumerate() {
            enforcer.sync(rs).expect("programmed");
            samples[i].0.push(lab.bench("bench/client", "connect", server, 8080, connects).expect("connect loop"));
            samples[i].1.push(lab.bench("bench/client", "bulk", server, SINK_PORT, mib).expect("bulk"));
        }
        let _ = std::process::Command::new("ip")
            .args(["netns", "exec", lab.node_netns(), "nft", "delete", "table", "inet", "netward"])
            .status();
        let none = samples.len() - 1;
        samples[none].0.push(lab.bench("bench/client", "connect", server, 8080, connects).expect("connect loop"));
        samples[none].1.push(lab.bench("bench/client", "bulk", server, SINK_PORT, mib).expect("bulk"));
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let medians: Vec<(f64, f64)> = samples.iter_mut().map(|(c, b)| (med(c), med(b))).collect();
    let (c0, b0) = medians[1];
    println!("{:<22} {:>14} {:>12} {:>14} {:>12}", "policies", "connects/s", "ratio to 2", "bulk MiB/s", "ratio to 2");
    let extra = [(usize::MAX - 1, false), (usize::MAX, false)];
    for (&(n, stacked), (cm, bm)) in configs.iter().chain(&extra).zip(&medians) {
        if n >= usize::MAX - 1 {
            let label = if n == usize::MAX { "no netward table" } else { "2, old iif dispatch" };
            println!("{label:<22} {cm:>14.0} {:>12.2} {bm:>14.0} {:>12.2}", cm / c0, bm / b0);
            continue;
        }
        let label = format!(
            "{n}{}",
            if n <= 2 {
                ""
            } else if stacked {
                " stacked"
            } else {
                " spread"
            }
        );
        println!("{label:<22} {cm:>14.0} {:>12.2} {bm:>14.0} {:>12.2}", cm / c0, bm / b0);
    }
}

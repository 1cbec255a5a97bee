//! Property: on random worlds (Kubernetes and Calico policies, tiers with
//! Pass and Deny, network sets, named ports, several nodes) the lab's kernel
//! agrees with the model on every probed pod pair, over IPv4 and IPv6, with
//! the pods wired by the real ptp and bridge CNI plugins.
//!
//! On ptp the worlds keep synth's addresses, where nodes' pods interleave in
//! one /24 (the lab then routes narrower prefixes per node); on bridge every
//! node has its own /24, as a bridge CNI needs (10.64.N.0/24 on node N).
//!
//! CI runs a bounded number of worlds (3 on ptp, 2 on bridge); set
//! NETWARD_LAB_CASES for more on each, and NETWARD_LAB_SEED to start there
//! (to replay one).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netward::analysis::{Analysis, View};
use netward::manifest::load::{load_cluster_text, load_policy_texts};
use netward::model::Cluster;
use netward::synth::{generate, Shape};
use netward_test_support::{gate, TempDir, Tier};
use netward_testkit::cluster_lab::{dual_stack, ClusterLab, Cni};
use netward_testkit::lab::check_support;
use netward_testkit::verify::verify;

/// One world at a time: each runs 24 probes at once on a small machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Every node's pods in its own /24, in pod order: node N's are 10.64.N.10, .11, ...
fn one_subnet_per_node(cluster: &mut Cluster) {
    let mut next: std::collections::BTreeMap<String, u8> = std::collections::BTreeMap::new();
    for p in cluster.pods.iter_mut().filter(|p| !p.host_network) {
        let node = p.node.clone().unwrap_or_default();
        let n: u8 = node.trim_start_matches("node").parse().expect("synth names nodes nodeN");
        let host = next.entry(node).or_insert(10);
        p.ips = vec![IpAddr::V4(Ipv4Addr::new(10, 64, n, *host))];
        *host += 1;
    }
}

fn random_worlds(cni: Cni, default_cases: u64, default_first: u64) {
    if !gate(Tier::Kernel, "random-world lab test", check_support()) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cases: u64 = std::env::var("NETWARD_LAB_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default_cases);
    let first: u64 = std::env::var("NETWARD_LAB_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(default_first);
    let probe = PathBuf::from(env!("CARGO_BIN_EXE_netward-probe"));
    for seed in first..first + cases {
        let start = Instant::now();
        // 60-90 pods over 2-3 nodes, 12-30 policies of every kind synth makes.
        let shape = Shape { pods: 60 + (seed as usize * 7) % 31, policies: 12 + (seed as usize * 5) % 19, seed };
        let g = generate(&shape);
        let mut d = Vec::new();
        let mut cluster = load_cluster_text(&Arc::from("cluster.yaml"), &g.cluster, &mut d);
        cluster.fill_missing_namespaces();
        let set = load_policy_texts(std::iter::once((Arc::from("policies.yaml"), g.policies.as_str())), &mut d);
        assert!(d.is_empty(), "seed {seed}: {d:?}");
        // Keep the lab small: the first 14 workload pods.
        let mut kept = 0;
        cluster.pods.retain(|p| {
            kept += usize::from(!p.host_network);
            !p.host_network && kept <= 14
        });
        if cni == Cni::Bridge {
            one_subnet_per_node(&mut cluster);
        }
        // The model decides on the pods as the lab wires them: dual-stack.
        let cluster = dual_stack(&cluster);
        let an = Analysis::new(&set, &cluster, View::Enforced);
        let lab = ClusterLab::up_with(&format!("rw{cni}{seed}"), &cluster, &[], &probe, false, cni, &|_| {})
            .unwrap_or_else(|e| panic!("{cni} seed {seed}: lab up: {e}"));
        let up = start.elapsed();
        // Every node reconciles the world as a DaemonSet would: a Git
        // repository of the policies, the cluster as a snapshot.
        reconcile_every_node(&lab, &cluster, &g.policies, &format!("{cni}{seed}"));
        let probing = Instant::now();
        let checked = verify(&lab, &an, 24, Duration::from_millis(300), &|_, _| {});
        let probing = probing.elapsed();
        let wrong: Vec<String> = checked
            .iter()
            .filter(|c| c.disagrees())
            .map(|c| {
                format!(
                    "{} -> {} [{}] {}: kernel {:?}, model allows: {}",
                    c.from, c.to, c.ip, c.port, c.outcome.result, c.model_allows
                )
            })
            .collect();
        assert!(!checked.is_empty());
        assert!(checked.iter().any(|c| c.ip.is_ipv6()), "IPv6 is probed too");
        assert!(
            wrong.is_empty(),
            "{cni} seed {seed} ({shape:?}): {} probes, {} disagreements:\n{}",
            checked.len(),
            wrong.len(),
            wrong.join("\n")
        );
        drop(lab);
        let v6: Vec<_> = checked.iter().filter(|c| c.ip.is_ipv6()).collect();
        eprintln!(
            "{cni} seed {seed}: {} probes ({} IPv6), 0 disagreements ({} allowed, {} over IPv6) in {:.1} s (lab up {:.1} s, probes {:.1} s)",
            checked.len(),
            v6.len(),
            checked.iter().filter(|c| c.model_allows).count(),
            v6.iter().filter(|c| c.model_allows).count(),
            start.elapsed().as_secs_f64(),
            up.as_secs_f64(),
            probing.as_secs_f64()
        );
    }
}

/// `netward reconcile --once --netns NODE` on every node of the lab.
fn reconcile_every_node(lab: &ClusterLab, cluster: &Cluster, policies: &str, tag: &str) {
    let dir = TempDir::new(&format!("rw-{tag}"));
    std::fs::create_dir_all(dir.join("policies")).expect("mkdir");
    std::fs::write(dir.join("policies/policies.yaml"), policies).expect("policies");
    std::fs::write(dir.join("cluster.yaml"), netward::kubernetes::snapshot::render(cluster)).expect("snapshot");
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .arg("-C")
            .arg(&dir)
            .args(["-c", "user.email=t@netward", "-c", "user.name=t", "-c", "init.defaultBranch=main"])
            .args(args)
            .output()
            .expect("git")
            .status
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "policies"]);
    git(&["commit", "-qm", "the world"]);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("root").to_path_buf();
    let probe = PathBuf::from(env!("CARGO_BIN_EXE_netward-probe"));
    let profile = probe.parent().and_then(|p| p.file_name()).map(|s| s.to_string_lossy().into_owned());
    let netward = root.join("target").join(profile.unwrap_or_else(|| "debug".into())).join("netward");
    let nodes: std::collections::BTreeSet<String> = cluster.pods.iter().filter_map(|p| p.node.clone()).collect();
    for node in nodes {
        let ns = lab.node_netns(&node).expect("a lab node");
        let out = std::process::Command::new(&netward)
            .args(["reconcile", "--once", "--path", "policies", "--node", &node, "--netns", ns])
            .arg("--repo")
            .arg(&dir)
            .arg("--cluster")
            .arg(dir.join("cluster.yaml"))
            .output()
            .expect("netward reconcile (cargo test builds the netward binary)");
        assert!(out.status.success(), "reconcile on {node}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn random_worlds_wired_by_ptp_kernel_agrees_with_model() {
    random_worlds(Cni::Ptp, 3, 1);
}

#[test]
fn random_worlds_wired_by_bridge_kernel_agrees_with_model() {
    random_worlds(Cni::Bridge, 2, 4);
}

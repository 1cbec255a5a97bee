//! How long a new pod waits (failed closed) before its policy is enforced:
//! from the pod having an address (wired by the real ptp CNI plugin) and
//! the API server showing it, to the first connection its policy allows.
//! The anchor is kubernetes/perf-tests' pod_creation_reachability_latency.
//!
//! `netward reconcile --kube` runs as the DaemonSet would, against the
//! stand-in API server, programming a lab node. Before the API shows a pod,
//! its traffic is dropped (`--unknown-pods deny`, the default): the bench
//! checks that too.
//!
//!   cargo bench -p netward-testkit --bench pod_start        (as root)

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netward::kubernetes::stand_in::{self, StandIn};
use netward::model::{Cluster, Protocol};
use netward_testkit::cluster_lab::{dual_stack, ClusterLab, Cni};
use netward_testkit::lab::{check_support, Probe};

const PODS: usize = 10;

fn main() {
    if let Err(e) = check_support() {
        eprintln!("pod-start benchmark needs root, ip and nft: {e}");
        std::process::exit(1);
    }
    let ip = |i: usize| format!("10.244.1.{}", 10 + i);
    let mut text = String::from(
        "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: shop}}\n",
    );
    for i in 0..=PODS {
        let (name, app) = if i == 0 { ("b".to_string(), "b") } else { (format!("new{i}"), "new") };
        text.push_str(&format!(
            "- apiVersion: v1\n  kind: Pod\n  metadata: {{name: {name}, namespace: shop, labels: {{app: {app}}}}}\n  spec: {{nodeName: n1, containers: [{{name: c, ports: [{{containerPort: 8080}}]}}]}}\n  status: {{phase: Running, podIP: {}}}\n",
            ip(i)
        ));
    }
    let mut d = Vec::new();
    let mut cluster: Cluster =
        netward::manifest::load::load_cluster_text(&std::sync::Arc::from("c.yaml"), &text, &mut d);
    assert!(d.is_empty(), "{d:?}");
    cluster.fill_missing_namespaces();
    let cluster = dual_stack(&cluster);
    let probe_bin = PathBuf::from(env!("CARGO_BIN_EXE_netward-probe"));
    // Every pod is wired (it has its address) before the API shows it.
    let lab = ClusterLab::up_with("podstart", &cluster, &[(8080, Protocol::Tcp)], &probe_bin, false, Cni::Ptp, &|_| {})
        .expect("lab");
    let node_ns = lab.node_netns("n1").expect("node").to_string();

    let api = StandIn::start().expect("stand-in API server");
    let dir = std::env::temp_dir().join(format!("netward-podstart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("repo/policies")).expect("mkdir");
    let kubeconfig = dir.join("kubeconfig");
    api.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    api.apply("namespaces", stand_in::namespace("shop", &[]));
    api.apply(
        "nodes",
        serde_json::json!({"kind": "Node", "apiVersion": "v1", "metadata": {"name": "n1"},
            "spec": {"podCIDRs": ["10.244.1.0/24"]}}),
    );
    api.apply("pods", stand_in::pod("shop", "b", &[("app", "b")], "n1", Some(&ip(0)), &[("http", 8080, "TCP")]));
    // One policy, so the node has rules: the new pods are not isolated, so
    // once known they are reachable.
    std::fs::write(
        dir.join("repo/policies/p.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: b-ingress, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: b}}\n  policyTypes: [Ingress]\n",
    )
    .expect("policy");
    let repo = dir.join("repo");
    for args in [&["init", "-q"][..], &["add", "-A"], &["commit", "-qm", "policies"]] {
        let ok = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["-c", "user.email=t@netward", "-c", "user.name=t", "-c", "init.defaultBranch=main"])
            .args(args)
            .status()
            .expect("git")
            .success();
        assert!(ok, "git {args:?}");
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("root").to_path_buf();
    let profile = probe_bin.parent().and_then(|p| p.file_name()).map(|s| s.to_string_lossy().into_owned());
    let netward = root.join("target").join(profile.unwrap_or_else(|| "release".into())).join("netward");
    let mut daemon = Command::new(&netward)
        .args(["reconcile", "--path", "policies", "--node", "n1", "--netns", &node_ns, "--interval", "60"])
        .arg("--repo")
        .arg(&repo)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .stderr(Stdio::null())
        .spawn()
        .expect("netward reconcile (cargo bench builds the netward binary too)");
    let reaches = |to: &str| {
        let to: IpAddr = to.parse().expect("ip");
        lab.probe("shop/b", to, Protocol::Tcp, 8080, Duration::from_millis(150)).result == Probe::Allowed
    };
    // The node enforces once the table is there and b's policy is in it.
    let started = Instant::now();
    while !Command::new("ip")
        .args(["netns", "exec", &node_ns, "nft", "list", "chain", "inet", "netward", "ingress"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        assert!(started.elapsed() < Duration::from_secs(30), "netward never programmed the node");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut windows = Vec::new();
    for i in 1..=PODS {
        assert!(!reaches(&ip(i)), "new{i} is wired but unknown: failed closed");
        let t0 = Instant::now();
        api.apply(
            "pods",
            stand_in::pod("shop", &format!("new{i}"), &[("app", "new")], "n1", Some(&ip(i)), &[("http", 8080, "TCP")]),
        );
        while !reaches(&ip(i)) {
            assert!(t0.elapsed() < Duration::from_secs(10), "new{i} never became reachable");
        }
        windows.push(t0.elapsed());
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);
    windows.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "pod start to policy enforced ({PODS} pods, ptp, reconcile --kube): median {:.0} ms, max {:.0} ms, min {:.0} ms; failed closed before the API showed each pod",
        ms(windows[windows.len() / 2]),
        ms(windows[windows.len() - 1]),
        ms(windows[0])
    );
}

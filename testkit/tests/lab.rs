//! The cluster lab on a real kernel: the bundled example on its two nodes,
//! its pods wired by the real ptp and bridge CNI plugins, verified pair by
//! pair over IPv4 and IPv6 against the model; a lab killed midway leaves
//! nothing behind once the next lab comes up.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netward::analysis::{Analysis, View};
use netward::enforce::Mode;
use netward::manifest::load::{load_cluster_text, load_policy_texts};
use netward::manifest::{load_cluster, load_policies};
use netward_test_support::{gate, Tier};
use netward_testkit::cluster_lab::{dual_stack, ClusterLab, Cni};
use netward_testkit::lab::{check_support, lab_iface};
use netward_testkit::verify::verify;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn sh(args: &[&str]) -> String {
    let out = std::process::Command::new(args[0]).args(&args[1..]).output().expect(args[0]);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn supported() -> bool {
    gate(Tier::Kernel, "lab test", check_support())
}

/// The example on its two nodes, wired by `cni`: every pod pair over IPv4
/// and IPv6 agrees with the model; the links netward enforces on are the
/// plugin's own; the lab leaves nothing behind.
fn the_example_cluster_on_two_nodes_agrees_with_the_model(cni: Cni) {
    if !supported() {
        return;
    }
    let (set, _) = load_policies(&[root().join("policies")]).into_result().expect("policies");
    let (cluster, _) = load_cluster(&[root().join("policies/cluster.yaml")]).into_result().expect("cluster");
    // The model decides on the cluster as the lab wires it: dual-stack.
    let cluster = dual_stack(&cluster);
    let an = Analysis::new(&set, &cluster, View::Enforced);
    let probe = PathBuf::from(env!("CARGO_BIN_EXE_netward-probe"));
    let start = Instant::now();
    let mut lab = ClusterLab::up_with(&format!("v{cni}"), &cluster, &[], &probe, false, cni, &|_| {}).expect("lab up");
    let up = start.elapsed();
    let reports = lab.enforce(&an, Mode::Enforce).expect("enforced");
    assert_eq!(reports.len(), 2, "node-a and node-b");
    // netward enforces on the links the plugin made, learnt from the routes;
    // the lab names no interface.
    for node in ["node-a", "node-b"] {
        let ns = lab.node_netns(node).expect("node").to_string();
        let set = sh(&["ip", "netns", "exec", &ns, "nft", "list", "set", "inet", "netward", "local-pods-6"]);
        let links = sh(&["ip", "-n", &ns, "-o", "link", "show"]);
        for p in lab.pods().iter().filter(|p| p.node == node) {
            let (namespace, name) = p.id.split_once('/').expect("ns/name");
            assert!(!links.contains(&lab_iface(namespace, name)), "{}: the lab named an interface: {links}", p.id);
            let v6 = p.ips.iter().find(|ip| ip.is_ipv6()).expect("every pod is dual-stack");
            let link = match cni {
                Cni::Ptp => "\"veth",
                Cni::Bridge => "\"cni0\"",
            };
            assert!(set.contains(&format!("{v6}")) && set.contains(link), "{}'s link is the plugin's: {set}", p.id);
        }
    }
    let checked = verify(&lab, &an, 16, Duration::from_millis(500), &|_, _| {});
    let wrong: Vec<String> = checked
        .iter()
        .filter(|c| c.disagrees())
        .map(|c| {
            format!(
                "{} -> {} [{}] {}: kernel {:?}, model {}",
                c.from, c.to, c.ip, c.port, c.outcome.result, c.model_allows
            )
        })
        .collect();
    let v6 = checked.iter().filter(|c| c.ip.is_ipv6()).count();
    assert!(checked.len() > 40, "{} probes", checked.len());
    assert_eq!(v6 * 2, checked.len(), "every pair is probed over IPv4 and over IPv6");
    assert!(checked.iter().any(|c| c.model_allows) && checked.iter().any(|c| !c.model_allows));
    assert!(wrong.is_empty(), "{cni}: {} probes, {} disagreements:\n{}", checked.len(), wrong.len(), wrong.join("\n"));
    eprintln!("{cni}: {} probes ({v6} IPv6), 0 disagreements; lab up in {:.1} s", checked.len(), up.as_secs_f64());
    // Removing the lab deletes every CNI attachment, its IPAM state and its namespaces.
    let (dir, namespaces) = (lab.state_dir(), lab.namespaces());
    assert!(dir.join("ipam").is_dir(), "host-local keeps its state under the lab's own directory");
    drop(lab);
    assert!(!dir.exists(), "{} is removed", dir.display());
    let list = sh(&["ip", "netns", "list"]);
    assert!(namespaces.iter().all(|n| !list.contains(n.as_str())), "{list}");
}

#[test]
fn the_example_cluster_wired_by_ptp_agrees_with_the_model() {
    the_example_cluster_on_two_nodes_agrees_with_the_model(Cni::Ptp);
}

#[test]
fn the_example_cluster_wired_by_bridge_agrees_with_the_model() {
    the_example_cluster_on_two_nodes_agrees_with_the_model(Cni::Bridge);
}

#[test]
fn a_killed_lab_is_cleaned_up_by_the_next_one() {
    if !supported() {
        return;
    }
    // A child process builds a lab and is killed before it can clean up.
    let me = std::env::current_exe().expect("test binary");
    let mut child = std::process::Command::new(me)
        .args(["--exact", "build_a_lab_and_hang", "--ignored", "--nocapture"])
        .env("NETWARD_LAB_HANG", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("child");
    let pid = child.id();
    let mut out = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    while !line.contains("lab is up") {
        line.clear();
        if std::io::BufRead::read_line(&mut out, &mut line).expect("read") == 0 {
            panic!("the child never brought its lab up");
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let list = || {
        String::from_utf8_lossy(&std::process::Command::new("ip").args(["netns", "list"]).output().expect("ip").stdout)
            .into_owned()
    };
    let prefix = format!("nwlab-{pid}-");
    assert!(list().contains(&prefix), "the killed run left its namespaces (as a crash would)");
    let dir = netward_testkit::cluster_lab::lab_dir(&format!("{prefix}hang-"));
    assert!(dir.join("ipam").is_dir(), "and its CNI state in {}", dir.display());
    // The next lab cleans up after the dead one: CNI DEL, IPAM state, namespaces.
    netward_testkit::cluster_lab::clean_leftovers();
    assert!(!list().contains(&prefix), "leftovers of a dead lab are removed");
    assert!(!dir.exists(), "{} is removed", dir.display());
}

/// Helper for the test above, run in a child process; ignored on its own
/// because it never returns.
#[test]
#[ignore = "run only as the child of a_killed_lab_is_cleaned_up_by_the_next_one"]
fn build_a_lab_and_hang() {
    if std::env::var_os("NETWARD_LAB_HANG").is_none() {
        return;
    }
    let (cluster, _) = load_cluster(&[root().join("policies/cluster.yaml")]).into_result().expect("cluster");
    let probe = PathBuf::from(env!("CARGO_BIN_EXE_netward-probe"));
    let _lab = ClusterLab::up("hang", &cluster, &[], &probe, false, &|_| {}).expect("lab up");
    println!("lab is up");
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// A one-node lab of namespace `shop`: pods (name, IPv4; label `app` is the
/// name) on node n1, made dual-stack, wired by `cni`, and `policies`
/// enforced. Returns the lab and the analysis it enforces.
fn shop_lab(tag: &str, cni: Cni, pods: &[(&str, &str)], policies: &str) -> (ClusterLab, Analysis) {
    let mut cluster = String::from(
        "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: shop}}\n",
    );
    for (name, ip) in pods {
        cluster.push_str(&format!(
            "- apiVersion: v1\n  kind: Pod\n  metadata: {{name: {name}, namespace: shop, labels: {{app: {name}}}}}\n  spec: {{nodeName: n1, containers: [{{name: c, ports: [{{containerPort: 8080}}]}}]}}\n  status: {{phase: Running, podIP: {ip}}}\n"
        ));
    }
    let mut d = Vec::new();
    let cluster = load_cluster_text(&Arc::from("cluster.yaml"), &cluster, &mut d);
    let set = load_policy_texts(std::iter::once((Arc::from("policies.yaml"), policies)), &mut d);
    assert!(d.is_empty(), "{d:?}");
    let cluster = dual_stack(&cluster);
    let an = Analysis::new(&set, &cluster, View::Enforced);
    let probe = PathBuf::from(env!("CARGO_BIN_EXE_netward-probe"));
    let mut lab =
        ClusterLab::up_with(&format!("{tag}{cni}"), &cluster, &[], &probe, false, cni, &|_| {}).expect("lab up");
    lab.enforce(&an, Mode::Enforce).expect("enforced");
    (lab, an)
}

/// Three pods on one node: `b` may open no connection (egress isolated),
/// `c` accepts none (ingress isolated); `a` may reach `b`, `c` may reach `a`
/// and `b`. On a bridge the pods are neighbours on `cni0`, and with
/// br_netfilter their neighbour discovery (ICMPv6 NS/NA, which conntrack
/// does not track) crosses the forward hook: `b`'s advertisements leave by
/// its egress, and advertisements to `c` enter by its ingress. That is link
/// plumbing, never policy (Calico accepts it before any policy), so every
/// pair the model allows must connect over IPv6 as it does over IPv4.
fn neighbour_discovery_is_not_policy(cni: Cni) {
    if !supported() {
        return;
    }
    let isolate = |name: &str, app: &str, dir: &str| {
        format!("---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  podSelector: {{matchLabels: {{app: {app}}}}}\n  policyTypes: [{dir}]\n")
    };
    let policies = isolate("b-no-egress", "b", "Egress") + &isolate("c-no-ingress", "c", "Ingress");
    let pods = [("a", "10.250.1.10"), ("b", "10.250.1.11"), ("c", "10.250.1.12")];
    let (lab, an) = shop_lab("nd", cni, &pods, &policies);
    let checked = verify(&lab, &an, 4, Duration::from_millis(500), &|_, _| {});
    assert_eq!(checked.len(), 12, "every pair, over IPv4 and IPv6");
    assert_eq!(checked.iter().filter(|c| c.model_allows).count(), 6, "a -> b, c -> a, c -> b in both families");
    let got: Vec<String> = checked
        .iter()
        .map(|c| {
            format!(
                "{} -> {} [{}]: kernel {:?}, model {}{}",
                c.from,
                c.to,
                c.ip,
                c.outcome.result,
                if c.model_allows { "allows" } else { "denies" },
                if c.disagrees() { "  <- DISAGREE" } else { "" }
            )
        })
        .collect();
    assert!(checked.iter().all(|c| !c.disagrees()), "{cni}:\n{}", got.join("\n"));
}

#[test]
fn neighbour_discovery_is_not_policy_on_ptp() {
    neighbour_discovery_is_not_policy(Cni::Ptp);
}

#[test]
fn neighbour_discovery_is_not_policy_on_bridge() {
    neighbour_discovery_is_not_policy(Cni::Bridge);
}

/// C12 on the kernel: a pod's egress policy holds towards its own node (the
/// node's `input` hook runs the pod's egress chain, as Felix runs its
/// from-workload chain before DefaultEndpointToHostAction), while a pod
/// without egress policy reaches it, over IPv4 and IPv6; and the model says
/// the same of each connection.
fn a_pods_egress_policy_holds_towards_its_own_node(cni: Cni) {
    if !supported() {
        return;
    }
    let policy = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a-no-egress, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: a}}\n  policyTypes: [Egress]\n";
    let (lab, an) = shop_lab("own", cni, &[("a", "10.250.2.10"), ("b", "10.250.2.11")], policy);
    let probe = PathBuf::from(env!("CARGO_BIN_EXE_netward-probe"));
    // A server on the node itself (its fabric addresses are its own).
    let node_ns = lab.node_netns("n1").expect("node n1").to_string();
    let mut server = std::process::Command::new("ip")
        .args(["netns", "exec", &node_ns])
        .arg(&probe)
        .args(["serve", "--tcp", "9999"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("server");
    let mut line = String::new();
    let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(server.stdout.take().expect("piped")), &mut line);
    assert_eq!(line.trim(), "ready");
    let netns = |id: &str| lab.pods().iter().find(|p| p.id == id).expect("pod").netns.clone();
    let connect = |from: &str, to: &str| {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &netns(from)])
            .arg(&probe)
            .args(["connect", "tcp", to, "9999", "--timeout-ms", "600"])
            .output()
            .expect("probe");
        out.status.code()
    };
    for node_ip in ["100.64.0.1", "fd00:100:64::1"] {
        for (from, allowed) in [("shop/a", false), ("shop/b", true)] {
            let flow = an.flow(from, node_ip, netward::model::Protocol::Tcp, 9999, None).expect("flow");
            assert_eq!(an.evaluate(&flow).allowed, allowed, "model: {from} -> {node_ip}");
            let code = connect(from, node_ip);
            assert_eq!(
                code,
                Some(if allowed { 0 } else { 1 }),
                "{cni}: {from} -> {node_ip} (0 connected, 1 timed out)"
            );
        }
    }
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn a_pods_egress_policy_holds_towards_its_own_node_on_ptp() {
    a_pods_egress_policy_holds_towards_its_own_node(Cni::Ptp);
}

#[test]
fn a_pods_egress_policy_holds_towards_its_own_node_on_bridge() {
    a_pods_egress_policy_holds_towards_its_own_node(Cni::Bridge);
}

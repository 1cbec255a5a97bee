//! Benchmark: programming one node's table. A node with 100 local pods in a
//! 10,000-pod cluster (all remote pod IPs in selector sets) and 1,000
//! policies: the first full apply over netlink and through `nft -f` (the
//! anchors' way), one policy edited, one pod added and removed.
//!
//! Run as root: `cargo bench -p netward-testkit --bench enforce`.
//! Namespaces are created and removed by the benchmark; nothing touches the
//! machine's own namespace.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use netward::analysis::{Analysis, View};
use netward::enforce::diff::Changes;
use netward::enforce::netlink::Netlink;
use netward::enforce::{self, Dataplane, Enforcer, Mode, NftCli, NodeSpec};
use netward::manifest::load::{load_cluster_text, load_policy_texts};
use netward::model::{Cluster, PolicySet, PortMatch};
use netward::synth::{generate, Shape};
use netward_testkit::lab::{check_support, Lab};

const NODE: &str = "bench";

/// One kind of change: name, compile times, netlink and nft apply times, what changed.
type Row = (String, Vec<Duration>, Vec<Duration>, Vec<Duration>, String);

fn world() -> (PolicySet, Cluster) {
    let g = generate(&Shape { pods: 10_000, policies: 1_000, seed: 7 });
    let mut d = Vec::new();
    let mut c = load_cluster_text(&"cluster.yaml".into(), &g.cluster, &mut d);
    c.fill_missing_namespaces();
    let p = load_policy_texts(std::iter::once(("policies.yaml".into(), g.policies.as_str())), &mut d);
    assert!(d.is_empty(), "{d:?}");
    // Every 100th workload pod lives on the benchmark node: 100 local pods
    // spread over the namespaces, like a real node.
    for (n, pod) in c.pods.iter_mut().filter(|p| !p.host_network).enumerate() {
        if n % 100 == 0 {
            pod.node = Some(NODE.into());
        }
    }
    (p, c)
}

fn compile(p: &PolicySet, c: &Cluster) -> enforce::Ruleset {
    let an = Analysis::new(p, c, View::Enforced);
    enforce::compile(
        &an,
        &NodeSpec { node: NODE.into(), mode: Mode::Enforce, links: Default::default(), ..Default::default() },
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    if let Err(e) = check_support() {
        eprintln!("enforce benchmark needs root, ip and nft: {e}");
        std::process::exit(1);
    }
    let rounds = if std::env::args().any(|a| a == "--quick") { 1 } else { 5 };
    let (mut policies, mut cluster) = world();
    let t = Instant::now();
    let rs = compile(&policies, &cluster);
    let compile_time = t.elapsed();
    let local = cluster.pods.iter().filter(|p| p.node.as_deref() == Some(NODE)).count();
    println!(
        "node: {local} local pods of {}; {} policies; table: {} chains, {} rules, {} sets/maps, {} elements (compiled in {})",
        cluster.pods.len(),
        policies.policies.len(),
        rs.chains.len(),
        rs.rule_count(),
        rs.sets.len() + rs.maps.len(),
        rs.element_count(),
        ms(compile_time)
    );

    let probe = PathBuf::from(env!("CARGO_BIN_EXE_netward-probe"));
    let lab_nl = Lab::up("bench-nl", &[], &[], &[], &probe).expect("lab");
    let lab_nft = Lab::up("bench-nft", &[], &[], &[], &probe).expect("lab");
    let netlink = Netlink::in_netns(lab_nl.node_netns()).expect("netlink socket");
    let nft = NftCli::in_netns(lab_nft.node_netns());
    let create = Changes { create_table: true, ..Changes::default() };
    let text = enforce::nft::render(&rs);

    // Full apply, interleaved so machine noise hits both alike.
    let (mut t_nl, mut t_nft) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        netlink.apply(&create, &rs, None).expect("netlink full apply");
        t_nl.push(t.elapsed());
        let t = Instant::now();
        nft.apply_script(&text).expect("nft -f");
        t_nft.push(t.elapsed());
    }
    let (full_nl, full_nft) = (median(t_nl), median(t_nft));
    println!(
        "full apply  netlink: {}   nft -f: {}   ratio nft/netlink: {:.2}",
        ms(full_nl),
        ms(full_nft),
        full_nft.as_secs_f64() / full_nl.as_secs_f64()
    );

    // Incremental changes through the fast path (diff against the last state, one transaction).
    let mut enf_nl = Enforcer::new(netlink);
    let mut enf_nft = Enforcer::new(nft);
    enf_nl.sync(&rs).expect("sync");
    enf_nft.sync(&rs).expect("sync");
    // A policy that some local pod's ingress chain runs.
    let an = Analysis::new(&policies, &cluster, View::Enforced);
    let local_labels: Vec<_> = an
        .endpoints
        .iter()
        .filter(|e| e.node.as_deref() == Some(NODE) && !e.host_network)
        .map(|e| e.labels.clone())
        .collect();
    let edit_idx = policies
        .policies
        .iter()
        .position(|p| {
            p.id.name.starts_with("allow-") && !p.ingress.is_empty() && local_labels.iter().any(|l| p.selector.eval(l))
        })
        .expect("a k8s allow policy that applies to a local pod");
    let mut rows: Vec<Row> = Vec::new();
    let mut record = |name: &str, desired: &enforce::Ruleset, compile_t: Duration, rows: &mut Vec<Row>| {
        let r_nl = enf_nl.update(desired).expect("netlink update");
        let r_nft = enf_nft.update(desired).expect("nft update");
        let row = match rows.iter_mut().find(|r| r.0 == name) {
            Some(r) => r,
            None => {
                rows.push((name.to_string(), Vec::new(), Vec::new(), Vec::new(), r_nl.changes.summary()));
                rows.last_mut().expect("just pushed")
            }
        };
        row.1.push(compile_t);
        row.2.push(r_nl.duration);
        row.3.push(r_nft.duration);
    };
    for round in 0..rounds {
        // One policy edited (and back).
        let p = &mut policies.policies[edit_idx];
        let old = p.ingress[0].destination.ports.clone();
        p.ingress[0].destination.ports = vec![PortMatch::Range(7000 + round as u16, 7000 + round as u16)];
        let t = Instant::now();
        let desired = compile(&policies, &cluster);
        record("policy edited", &desired, t.elapsed(), &mut rows);
        policies.policies[edit_idx].ingress[0].destination.ports = old;
        let t = Instant::now();
        let desired = compile(&policies, &cluster);
        record("policy edit undone", &desired, t.elapsed(), &mut rows);
        // One remote pod added, then removed.
        let mut pod = cluster
            .pods
            .iter()
            .find(|p| p.node.as_deref() != Some(NODE) && !p.host_network)
            .expect("remote pod")
            .clone();
        pod.name = format!("bench-extra-{round}");
        pod.ips = vec![format!("10.200.0.{}", round + 1).parse().expect("ip")];
        cluster.pods.push(pod);
        let t = Instant::now();
        let desired = compile(&policies, &cluster);
        record("remote pod added", &desired, t.elapsed(), &mut rows);
        cluster.pods.pop();
        let t = Instant::now();
        let desired = compile(&policies, &cluster);
        record("remote pod removed", &desired, t.elapsed(), &mut rows);
        // One local pod added, then removed.
        let mut pod = cluster.pods.iter().find(|p| p.node.as_deref() == Some(NODE)).expect("local pod").clone();
        pod.name = format!("bench-local-{round}");
        pod.ips = vec![format!("10.201.0.{}", round + 1).parse().expect("ip")];
        cluster.pods.push(pod);
        let t = Instant::now();
        let desired = compile(&policies, &cluster);
        record("local pod added", &desired, t.elapsed(), &mut rows);
        cluster.pods.pop();
        let t = Instant::now();
        let desired = compile(&policies, &cluster);
        record("local pod removed", &desired, t.elapsed(), &mut rows);
    }
    // What the diff alone costs (no kernel), for the pod-removal case.
    let mut bigger = cluster.clone();
    let mut pod = bigger.pods.iter().find(|p| p.node.as_deref() != Some(NODE) && !p.host_network).expect("pod").clone();
    pod.name = "diff-probe".into();
    pod.ips = vec!["10.202.0.1".parse().expect("ip")];
    bigger.pods.push(pod);
    let (a, b) = (compile(&policies, &bigger), compile(&policies, &cluster));
    let t = Instant::now();
    for _ in 0..20 {
        std::hint::black_box(netward::enforce::diff::diff_rulesets(&a, &b));
    }
    println!("diff alone (one pod removed): {}", ms(t.elapsed() / 20));
    let t = Instant::now();
    for _ in 0..20 {
        std::hint::black_box(b.clone());
    }
    println!("clone of the desired ruleset: {}", ms(t.elapsed() / 20));
    println!("{:<20} {:>12} {:>14} {:>14}   what changed", "change", "compile", "apply netlink", "apply nft");
    for (name, c, a, b, what) in rows {
        println!("{:<20} {:>12} {:>14} {:>14}   {}", name, ms(median(c)), ms(median(a)), ms(median(b)), what);
    }
    // The same changes warm: both rulesets compiled beforehand, applied in
    // turn (what the apply itself costs once compile is not in the caches' way).
    let base = compile(&policies, &cluster);
    let mut with_pod = cluster.clone();
    let mut pod =
        with_pod.pods.iter().find(|p| p.node.as_deref() != Some(NODE) && !p.host_network).expect("pod").clone();
    pod.name = "warm-extra".into();
    pod.ips = vec!["10.203.0.1".parse().expect("ip")];
    with_pod.pods.push(pod);
    let plus_pod = compile(&policies, &with_pod);
    let mut edited = policies.clone();
    edited.policies[edit_idx].ingress[0].destination.ports = vec![PortMatch::Range(7999, 7999)];
    let plus_edit = compile(&edited, &cluster);
    enf_nl.update(&base).expect("base");
    for (name, other) in [("remote pod add/remove", &plus_pod), ("policy edit/undo", &plus_edit)] {
        let mut times = Vec::new();
        for _ in 0..10 {
            times.push(enf_nl.update(other).expect("warm").duration);
            times.push(enf_nl.update(&base).expect("warm").duration);
        }
        println!("warm {name:<22} apply netlink: {}", ms(median(times)));
    }
    // Read-back check: the fast path left the table exact.
    let check = enf_nl.sync(&compile(&policies, &cluster)).expect("read back");
    assert!(check.changes.is_empty() && !check.drift, "{:?}", check.changes);
}

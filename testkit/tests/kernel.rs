//! The enforcer on a real kernel: the bundled example's ruleset is loaded into
//! a lab node (network namespaces, real nftables) and every pod pair is
//! probed with real TCP and UDP; the kernel must agree with the model.
//!
//! Needs root, `ip` and `nft`. Skipped with a message elsewhere, except on CI
//! (CI=true), where a skip is a failure.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use netward::analysis::{Analysis, Matrix, View};
use netward::enforce::{self, Mode, NodeSpec};
use netward::manifest::{load_cluster, load_policies};
use netward::model::port::FlowPort;
use netward::model::Protocol;
use netward_test_support::{gate, Tier};
use netward_testkit::lab::{check_support, Lab, PodSpec, Probe};

const NODE: &str = "lab";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// Returns false (after saying why) when the lab cannot run here.
fn supported() -> bool {
    gate(Tier::Kernel, "kernel test", check_support())
}

struct Example {
    an: Analysis,
    pods: Vec<PodSpec>,
}

/// The bundled example with every pod moved onto one lab node.
fn example() -> Example {
    let (set, _) = load_policies(&[root().join("policies")]).into_result().expect("example policies load");
    let (mut cluster, _) =
        load_cluster(&[root().join("policies/cluster.yaml")]).into_result().expect("example cluster loads");
    for p in &mut cluster.pods {
        p.node = Some(NODE.into());
    }
    let an = Analysis::new(&set, &cluster, View::Enforced);
    let pods = an.endpoints.iter().map(PodSpec::of).collect();
    Example { an, pods }
}

fn ports() -> Vec<FlowPort> {
    vec![
        FlowPort { port: 8080, protocol: Protocol::Tcp },
        FlowPort { port: 5432, protocol: Protocol::Tcp },
        FlowPort { port: 53, protocol: Protocol::Udp },
    ]
}

fn plan(an: &Analysis, mode: Mode) -> String {
    let pods: Vec<PodSpec> = an.endpoints.iter().map(PodSpec::of).collect();
    let rs = enforce::compile(
        an,
        &NodeSpec { node: NODE.into(), mode, links: netward_testkit::lab::links(&pods), ..Default::default() },
    );
    enforce::nft::render(&rs)
}

/// Probes every ordered pair on every port, 16 at a time; returns
/// (from, to, port, kernel result, model verdict) for each.
fn probe_all(lab: &Lab, an: &Analysis) -> Vec<(String, String, FlowPort, Probe, bool)> {
    let ports = ports();
    let m = Matrix::compute(an, &ports);
    let mut jobs = Vec::new();
    for (pi, fp) in ports.iter().enumerate() {
        for (a, ea) in an.endpoints.iter().enumerate() {
            for (b, eb) in an.endpoints.iter().enumerate() {
                if a != b {
                    jobs.push((ea.id.clone(), eb.id.clone(), eb.ips[0], *fp, m.allowed(pi, a, b)));
                }
            }
        }
    }
    let jobs = Mutex::new(jobs);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| loop {
                let Some((from, to, ip, fp, model)) = jobs.lock().expect("lock").pop() else { break };
                let (got, _) = lab.probe(&from, ip, fp.protocol == Protocol::Udp, fp.port, Duration::from_millis(600));
                results.lock().expect("lock").push((from, to, fp, got, model));
            });
        }
    });
    results.into_inner().expect("lock")
}

#[test]
fn kernel_enforces_what_the_model_decides() {
    if !supported() {
        return;
    }
    let ex = example();
    let probe_bin = PathBuf::from(env!("CARGO_BIN_EXE_netward-probe"));
    let lab = Lab::up("enforce", &ex.pods, &[8080, 5432], &[53], &probe_bin).expect("lab comes up");

    // Without a ruleset everything connects: denials below come from netward.
    let web = ex.pods.iter().find(|p| p.id.starts_with("frontend/")).expect("web pod");
    let db = ex.pods.iter().find(|p| p.id.starts_with("database/")).expect("db pod");
    let (before, _) = lab.probe(&web.id, db.ips[0], false, 5432, Duration::from_millis(600));
    assert_eq!(before, Probe::Allowed, "the lab routes pod to pod before any policy");

    lab.load_nft(&plan(&ex.an, Mode::Enforce)).expect("the rendered ruleset loads");
    let results = probe_all(&lab, &ex.an);
    let mut wrong = Vec::new();
    for (from, to, fp, got, model) in &results {
        let kernel_allows = *got == Probe::Allowed;
        assert!(matches!(got, Probe::Allowed | Probe::Denied), "{from} -> {to} {fp}: probe said {got:?}");
        if kernel_allows != *model {
            wrong.push(format!(
                "{from} -> {to} {fp}: kernel {got:?}, model {}",
                if *model { "allowed" } else { "denied" }
            ));
        }
    }
    let allowed = results.iter().filter(|r| r.3 == Probe::Allowed).count();
    assert!(wrong.is_empty(), "{} of {} probes disagree:\n{}", wrong.len(), results.len(), wrong.join("\n"));
    assert!(allowed > 0 && allowed < results.len(), "a mix of allowed and denied flows: {allowed}/{}", results.len());
    eprintln!("{} probes, 0 disagreements ({allowed} allowed)", results.len());

    // Replies of allowed connections pass: the TCP probe reads nothing, but a
    // UDP probe only succeeds when the echo comes back through the ruleset.
    let dns = ex.pods.iter().find(|p| p.id.starts_with("kube-system/")).expect("dns pod");
    assert_eq!(lab.probe(&web.id, dns.ips[0], true, 53, Duration::from_millis(600)).0, Probe::Allowed);

    // Spoofing: web sending from postgres' address is dropped at the node,
    // though DNS accepts web's own address.
    lab.add_address(&web.id, db.ips[0]).expect("second address");
    let spoofed = lab.probe_from(&web.id, Some(db.ips[0]), dns.ips[0], true, 53, Duration::from_millis(600)).0;
    assert_eq!(spoofed, Probe::Denied, "a spoofed source is dropped");
    let own = lab.probe_from(&web.id, Some(web.ips[0]), dns.ips[0], true, 53, Duration::from_millis(600)).0;
    assert_eq!(own, Probe::Allowed);

    // Audit mode: what enforce mode denies now passes (and is logged).
    lab.load_nft(&plan(&ex.an, Mode::Audit)).expect("the audit ruleset loads");
    assert_eq!(lab.probe(&web.id, db.ips[0], false, 5432, Duration::from_millis(600)).0, Probe::Allowed);
    let listed = lab.nft(&["list", "table", "inet", "netward"]).expect("table lists");
    assert!(listed.contains("(audit)"), "audit rules log");
}

#[test]
fn a_packet_the_last_tier_passes_leaves_without_netwards_pass_bit() {
    if !supported() {
        return;
    }
    // Only the platform tier's policies: prod pods' ingress is passed by
    // `isolate-environments` and then allowed because every tier passed.
    let (mut set, mut cluster) = cluster_on_lab_node();
    set.policies.retain(|p| p.tier == "platform");
    cluster.pods.retain(|p| p.namespace == "frontend" || p.namespace == "backend");
    let an = Analysis::new(&set, &cluster, View::Enforced);
    let pods: Vec<PodSpec> = an.endpoints.iter().map(PodSpec::of).collect();
    let probe_bin = PathBuf::from(env!("CARGO_BIN_EXE_netward-probe"));
    let lab = Lab::up("passbit", &pods, &[8080], &[], &probe_bin).expect("lab comes up");
    lab.load_nft(&plan(&an, Mode::Enforce)).expect("the rendered ruleset loads");
    // After netward's chains, a table of the test's own counts packets that
    // still carry netward's pass bit: mark bits are shared with the rest of
    // the stack (kube-proxy, CNIs), so the bit must not leave netward.
    let pass_bit = format!("0x{:08x}", netward::enforce::ruleset::PASS_MARK);
    lab.load_nft(&format!(
        "table inet mark-check {{\n chain after {{\n type filter hook forward priority filter + 20;\n \
         meta mark & {pass_bit} != 0 counter\n }}\n chain every {{\n type filter hook forward priority filter + 20;\n \
         counter\n }}\n}}\n"
    ))
    .expect("the mark check loads");
    let web = pods.iter().find(|p| p.id.starts_with("frontend/")).expect("web");
    let api = pods.iter().find(|p| p.id.starts_with("backend/")).expect("api");
    assert_eq!(lab.probe(&web.id, api.ips[0], false, 8080, Duration::from_millis(600)).0, Probe::Allowed);
    let check = lab.nft(&["list", "table", "inet", "mark-check"]).expect("mark check lists");
    let counts: Vec<&str> = check.split("packets ").skip(1).filter_map(|t| t.split_whitespace().next()).collect();
    assert_eq!(counts.len(), 2, "{check}");
    assert_ne!(counts[1], "0", "packets went through the chains: {check}");
    assert_eq!(counts[0], "0", "packets left netward with its pass bit set:\n{check}");
}

#[test]
fn a_lab_removes_its_namespaces() {
    if !supported() {
        return;
    }
    let probe_bin = PathBuf::from(env!("CARGO_BIN_EXE_netward-probe"));
    let pods =
        vec![PodSpec { id: "t/a".into(), ips: vec!["10.77.0.1".parse().expect("ip")], iface: "nwcleanup0".into() }];
    let names = {
        let lab = Lab::up("cleanup", &pods, &[80], &[], &probe_bin).expect("lab comes up");
        lab.namespaces()
    };
    let list = std::process::Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
    let list = String::from_utf8_lossy(&list.stdout);
    for n in names {
        assert!(!list.lines().any(|l| l.split_whitespace().next() == Some(n.as_str())), "{n} left behind");
    }
}

fn cluster_on_lab_node() -> (netward::model::PolicySet, netward::model::Cluster) {
    let (set, _) = load_policies(&[root().join("policies")]).into_result().expect("example policies load");
    let (mut cluster, _) = load_cluster(&[root().join("policies/cluster.yaml")]).into_result().expect("cluster loads");
    for p in &mut cluster.pods {
        p.node = Some(NODE.into());
    }
    (set, cluster)
}

fn ruleset(set: &netward::model::PolicySet, cluster: &netward::model::Cluster) -> netward::enforce::Ruleset {
    let an = Analysis::new(set, cluster, View::Enforced);
    let pods: Vec<PodSpec> = an.endpoints.iter().map(PodSpec::of).collect();
    enforce::compile(
        &an,
        &NodeSpec {
            node: NODE.into(),
            mode: Mode::Enforce,
            links: netward_testkit::lab::links(&pods),
            ..Default::default()
        },
    )
}

#[test]
fn enforcer_over_nft_applies_only_the_difference_and_repairs_drift() {
    if !supported() {
        return;
    }
    applies_only_the_difference("sync-nft", |ns| Box::new(netward::enforce::NftCli::in_netns(ns)));
}

#[test]
fn enforcer_over_netlink_applies_only_the_difference_and_repairs_drift() {
    if !supported() {
        return;
    }
    applies_only_the_difference("sync-nl", |ns| {
        Box::new(netward::enforce::netlink::Netlink::in_netns(ns).expect("netlink socket"))
    });
}

fn applies_only_the_difference(name: &str, dataplane: impl Fn(&str) -> Box<dyn netward::enforce::Dataplane>) {
    use netward::enforce::{EnforceError, Enforcer};
    use netward::model::PortMatch;
    let ex = example();
    let probe_bin = PathBuf::from(env!("CARGO_BIN_EXE_netward-probe"));
    let lab = Lab::up(name, &ex.pods, &[8080, 5432], &[53], &probe_bin).expect("lab comes up");
    let ip_of = |prefix: &str| ex.pods.iter().find(|p| p.id.starts_with(prefix)).expect("pod").ips[0];
    let id_of = |prefix: &str| ex.pods.iter().find(|p| p.id.starts_with(prefix)).expect("pod").id.clone();
    let t = Duration::from_millis(600);
    let (api, db) = (id_of("backend/api-5f6c7-fghij"), ip_of("database/"));

    let (mut set, mut cluster) = cluster_on_lab_node();
    let mut enforcer = Enforcer::new(dataplane(lab.node_netns()));
    let first = enforcer.sync(&ruleset(&set, &cluster)).expect("first sync");
    assert!(first.changes.create_table && !first.drift);
    assert_eq!(lab.probe(&api, db, false, 5432, t).0, Probe::Allowed);

    // Nothing changed: nothing to do.
    let again = enforcer.sync(&ruleset(&set, &cluster)).expect("second sync");
    assert!(again.changes.is_empty(), "{:?}", again.changes);

    // The fast path (no read-back) adds a pod as element operations only.
    let mut extra = cluster.pods.iter().find(|p| p.name == "debug").expect("debug pod").clone();
    extra.name = "debug-2".into();
    extra.ips = vec!["10.244.2.41".parse().expect("ip")];
    cluster.pods.push(extra);
    let added = enforcer.update(&ruleset(&set, &cluster)).expect("pod added");
    assert!(added.changes.rewritten_chains.is_empty() && !added.changes.add_elements.is_empty(), "{:?}", added.changes);
    cluster.pods.retain(|p| p.name != "debug-2");
    let removed = enforcer.update(&ruleset(&set, &cluster)).expect("pod removed");
    assert!(!removed.changes.remove_elements.is_empty(), "{:?}", removed.changes);
    let verified = enforcer.sync(&ruleset(&set, &cluster)).expect("read-back after the fast path");
    assert!(
        verified.changes.is_empty() && !verified.drift,
        "the fast path left the table exact: {:?}",
        verified.changes
    );

    // A pod leaves: element operations (and its chains), no rule rewritten.
    cluster.pods.retain(|p| p.name != "debug");
    let gone = enforcer.sync(&ruleset(&set, &cluster)).expect("pod removal");
    assert!(gone.changes.rewritten_chains.is_empty() && gone.changes.new_chains.is_empty(), "{:?}", gone.changes);
    assert!(!gone.changes.remove_elements.is_empty(), "{:?}", gone.changes);

    // A policy edit rewrites that policy's chain only.
    let pg = set.policies.iter_mut().find(|p| p.id.name == "postgres").expect("postgres policy");
    pg.ingress[0].destination.ports = vec![PortMatch::Range(5433, 5433)];
    let edit = enforcer.sync(&ruleset(&set, &cluster)).expect("policy edit");
    assert_eq!(edit.changes.rewritten_chains.len(), 1, "{:?}", edit.changes);
    assert!(edit.changes.rewritten_chains[0].starts_with("pol-in-"), "{:?}", edit.changes);
    assert_eq!(lab.probe(&api, db, false, 5432, t).0, Probe::Denied, "the edited policy is enforced");

    // Someone flushes a chain by hand: the next sync sees the drift and repairs it.
    let chain = edit.changes.rewritten_chains[0].clone();
    lab.nft(&["flush", "chain", "inet", "netward", &chain]).expect("manual flush");
    let repaired = enforcer.sync(&ruleset(&set, &cluster)).expect("repair");
    assert!(repaired.drift, "drift is reported");
    assert_eq!(repaired.changes.rewritten_chains, vec![chain]);

    // A change the kernel rejects changes nothing.
    let before = enforcer.dataplane().read().expect("read");
    let mut bogus = ruleset(&set, &cluster);
    bogus.chains.insert("no-such-chain".into(), Default::default());
    let change = netward::enforce::diff::Changes {
        add_elements: vec![("local-ifaces".into(), netward::enforce::ruleset::Element::Iface("nwextra".into()))],
        rewritten_chains: vec!["no-such-chain".into()],
        ..Default::default()
    };
    bogus
        .sets
        .get_mut("local-ifaces")
        .expect("set")
        .elements
        .insert(netward::enforce::ruleset::Element::Iface("nwextra".into()));
    let err = enforcer.dataplane().apply(&change, &bogus, before.as_ref());
    assert!(
        matches!(err, Err(EnforceError::Rejected(ref m)) if m.contains("no-such-chain") || m.contains("No such file")),
        "{err:?}"
    );
    assert_eq!(enforcer.dataplane().read().expect("read"), before, "the failed transaction left no trace");
}

#[test]
fn netlink_programs_exactly_what_nft_loads_from_the_rendered_text() {
    use netward::enforce::{netlink::Netlink, Enforcer, NftCli};
    if !supported() {
        return;
    }
    let probe_bin = PathBuf::from(env!("CARGO_BIN_EXE_netward-probe"));
    let by_text = Lab::up("same-text", &[], &[], &[], &probe_bin).expect("lab");
    let by_netlink = Lab::up("same-nl", &[], &[], &[], &probe_bin).expect("lab");
    let (set, cluster) = cluster_on_lab_node();
    let rs = ruleset(&set, &cluster);
    NftCli::in_netns(by_text.node_netns()).apply_script(&netward::enforce::nft::render(&rs)).expect("nft -f");
    Enforcer::new(Netlink::in_netns(by_netlink.node_netns()).expect("socket")).sync(&rs).expect("netlink");
    let a = by_text.nft(&["list", "table", "inet", "netward"]).expect("list");
    let b = by_netlink.nft(&["list", "table", "inet", "netward"]).expect("list");
    assert!(a.lines().count() > 100, "a real table: {a}");
    assert_eq!(a, b, "nft lists both tables identically");
}

#[test]
fn sctp_rules_load_and_sctp_traffic_is_skipped_without_sctp_sockets() {
    use netward::enforce::{netlink::Netlink, Enforcer};
    if !supported() {
        return;
    }
    let (mut set, cluster) = cluster_on_lab_node();
    let pg = set.policies.iter_mut().find(|p| p.id.name == "postgres").expect("postgres policy");
    pg.ingress[0].protocol = Some(netward::model::Protocol::Sctp);
    let probe_bin = PathBuf::from(env!("CARGO_BIN_EXE_netward-probe"));
    let lab = Lab::up("sctp", &[], &[], &[], &probe_bin).expect("lab");
    Enforcer::new(Netlink::in_netns(lab.node_netns()).expect("socket"))
        .sync(&ruleset(&set, &cluster))
        .expect("SCTP rules load");
    let listed = lab.nft(&["list", "table", "inet", "netward"]).expect("list");
    assert!(listed.contains("sctp dport"), "the SCTP match is in the kernel:\n{listed}");
    if !std::path::Path::new("/proc/sys/net/sctp").exists() {
        eprintln!("SKIPPED SCTP traffic: this kernel has no SCTP sockets (rules were loaded and checked)");
    }
}

// Regression: a map whose key type changed (a node upgraded from the old
// dispatch layout) was deleted while the egress chain still used it, and
// the kernel refused the whole transaction with EBUSY, pass after pass.
#[test]
fn a_map_whose_key_changed_is_replaced_in_one_transaction() {
    if !supported() {
        return;
    }
    use netward::enforce::live::Live;
    use netward::enforce::Enforcer;
    let (set, cluster) = cluster_on_lab_node();
    let new = ruleset(&set, &cluster);
    let an = Analysis::new(&set, &cluster, View::Enforced);
    let pods: Vec<PodSpec> = an.endpoints.iter().map(PodSpec::of).collect();
    let old = netward_testkit::lab::with_old_dispatch(&new, &pods);
    assert_ne!(Live::of(&old), Live::of(&new));
    let probe_bin = PathBuf::from(env!("CARGO_BIN_EXE_netward-probe"));
    let lab = Lab::up("rekey", &pods, &[], &[], &probe_bin).expect("lab comes up");
    let ns = lab.node_netns().to_string();
    type Make = Box<dyn Fn() -> Box<dyn netward::enforce::Dataplane>>;
    let nft_ns = ns.clone();
    let dataplanes: Vec<(&str, Make)> = vec![
        ("nft", Box::new(move || Box::new(netward::enforce::NftCli::in_netns(&nft_ns)))),
        ("netlink", {
            let ns = ns.clone();
            Box::new(move || Box::new(netward::enforce::netlink::Netlink::in_netns(&ns).expect("netlink")))
        }),
    ];
    for (what, make) in dataplanes {
        for (from, to) in [(&old, &new), (&new, &old)] {
            let mut e = Enforcer::new(make());
            e.sync(from).unwrap_or_else(|err| panic!("{what}: first table: {err}"));
            // A fresh enforcer reads the table back, as after an upgrade.
            let mut e = Enforcer::new(make());
            e.sync(to).unwrap_or_else(|err| panic!("{what}: the re-keyed map in one transaction: {err}"));
            assert_eq!(e.dataplane().read().expect("read").as_ref(), Some(&Live::of(to)), "{what}");
        }
    }
}

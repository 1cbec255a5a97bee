//! The Kubernetes inventory: watch events turned into the smallest enforcer
//! change (pure, on API event sequences), the watch client against a
//! stand-in list/watch server (bookmarks, dropped connections, 410 Gone, a
//! dead server), and `reconcile --kube` / `snapshot` end to end. A real API
//! server is exercised only by the kind workflow.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1 as api;
use kube::runtime::watcher::Event;
use netward::analysis::{Analysis, View};
use netward::enforce::compile::{Mode, NodeSpec};
use netward::enforce::diff::{diff_rulesets, Changes};
use netward::enforce::ruleset::Element;
use netward::kubernetes::stand_in::{self, StandIn};
use netward::kubernetes::store::Store;
use netward::kubernetes::watch::{ApiInventory, ApiOptions};
use netward::model::{Cluster, PolicySet};
use netward::reconcile::Wake;
use serde_json::Value;

use super::reconcile::{git, repo, Netns};

/// GET on the loop's HTTP server: (status line, body), or empty before it listens.
fn get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else { return (String::new(), String::new()) };
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (head.lines().next().unwrap_or("").to_string(), body.to_string())
}

/// Kills the child when the test ends, passing or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn example_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("root").join("policies")
}

fn example_policies() -> PolicySet {
    let loaded = netward::manifest::load::load_policies(&[example_dir()]);
    assert!(loaded.diagnostics.iter().all(|d| d.severity != netward::diag::Severity::Error));
    loaded.value
}

fn api_pod(p: &netward::model::cluster::Pod) -> Value {
    stand_in::pod_from_model(p)
}

fn pod_ev(kind: &str, v: Value) -> Event<api::Pod> {
    let p: api::Pod = serde_json::from_value(v).expect("a pod as the API sends it");
    match kind {
        "ADDED" | "MODIFIED" => Event::Apply(p),
        "DELETED" => Event::Delete(p),
        _ => Event::InitApply(p),
    }
}

fn ns_ev(v: Value) -> Event<api::Namespace> {
    Event::Apply(serde_json::from_value(v).expect("a namespace as the API sends it"))
}

/// A store as an initial list of `cluster` leaves it.
fn listed(cluster: &Cluster) -> Store {
    let mut s = Store::default();
    s.namespace_event(Event::Init);
    for n in cluster.namespaces.values() {
        let labels: Vec<(&str, &str)> = n.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        s.namespace_event(Event::InitApply(serde_json::from_value(stand_in::namespace(&n.name, &labels)).expect("ns")));
    }
    s.namespace_event(Event::InitDone);
    s.pod_event(Event::Init);
    for p in &cluster.pods {
        s.pod_event(pod_ev("INIT", api_pod(p)));
    }
    s.pod_event(Event::InitDone);
    assert!(!s.synced(), "the nodes are not listed yet");
    s.node_event(Event::Init);
    s.node_event(Event::InitDone);
    assert!(s.synced());
    s
}

/// A store after the initial list of the example cluster.
fn listed_store() -> Store {
    listed(&netward::manifest::load::load_cluster(&[example_dir().join("cluster.yaml")]).value)
}

/// The node's ruleset, with each local pod behind a link of its own as a
/// routed CNI wires it (what `reconcile` learns from the node's routes).
fn ruleset(set: &PolicySet, cluster: &Cluster, node: &str) -> netward::enforce::Ruleset {
    let an = Analysis::new(set, cluster, View::Enforced);
    let links = cluster
        .pods
        .iter()
        .filter(|p| p.node.as_deref() == Some(node))
        .flat_map(|p| p.ips.iter().map(move |ip| (*ip, format!("veth-{}", p.name.len()))))
        .collect();
    netward::enforce::compile(&an, &NodeSpec { node: node.into(), mode: Mode::Enforce, links, ..Default::default() })
}

fn mentions(elements: &[(String, Element)], ip: &str) -> bool {
    let ip: std::net::IpAddr = ip.parse().expect("ip");
    elements.iter().any(|(_, e)| match e {
        Element::Net(n) => n.addr() == ip && n.prefix_len() == n.max_prefix_len(),
        Element::AddrProtoPort(a, _, _) | Element::IfaceAddr(_, a) => *a == ip,
        _ => false,
    })
}

fn only_elements(c: &Changes) -> bool {
    c.new_chains.is_empty()
        && c.rewritten_chains.is_empty()
        && c.deleted_chains.is_empty()
        && c.new_sets.is_empty()
        && c.deleted_sets.is_empty()
        && !c.create_table
}

/// The incremental store ends where a fresh list of the same objects does.
fn same_as_relisted(s: &Store, set: &PolicySet, node: &str) {
    let fresh = listed(&s.cluster());
    assert_eq!(ruleset(set, &s.cluster(), node), ruleset(set, &fresh.cluster(), node));
}

#[test]
fn a_remote_rollout_changes_only_set_elements() {
    let set = example_policies();
    let mut s = listed_store();
    let before = ruleset(&set, &s.cluster(), "node-b");
    // The frontend web pod (on node-a) is replaced by a new one: created
    // Pending without an IP, scheduled, Running with an IP, then the old one goes.
    let old = s.cluster().pods.iter().find(|p| p.namespace == "frontend").cloned().expect("a frontend pod");
    let old_ip = old.ips[0].to_string();
    let mut new = api_pod(&old);
    new["metadata"]["name"] = serde_json::json!("web-7d4b9-zzzzz");
    let mut pending = new.clone();
    pending["status"] = serde_json::json!({"phase": "Pending"});
    s.pod_event(pod_ev("ADDED", pending));
    let g = s.generation();
    new["status"]["podIP"] = serde_json::json!("10.244.1.99");
    new["status"]["podIPs"] = serde_json::json!([{"ip": "10.244.1.99"}]);
    assert!(s.pod_event(pod_ev("MODIFIED", new.clone())));
    // A status update that moves nothing the engine reads is not a change.
    let mut ready = new.clone();
    ready["status"]["conditions"][0]["status"] = serde_json::json!("True");
    ready["status"]["conditions"][0]["lastTransitionTime"] = serde_json::json!("2026-11-25T10:00:09Z");
    assert!(!s.pod_event(pod_ev("MODIFIED", ready)));
    assert_eq!(s.generation(), g + 1);
    assert!(s.pod_event(pod_ev("DELETED", api_pod(&old))));

    let after = ruleset(&set, &s.cluster(), "node-b");
    let c = diff_rulesets(&before, &after);
    assert!(only_elements(&c), "a remote pod moving changes no chain: {}", c.summary());
    assert!(mentions(&c.add_elements, "10.244.1.99") && mentions(&c.remove_elements, &old_ip), "{c:?}");
    assert!(!mentions(&c.add_elements, &old_ip) && !mentions(&c.remove_elements, "10.244.1.99"));
    same_as_relisted(&s, &set, "node-b");
}

#[test]
fn a_pod_scheduled_to_this_node_gets_its_dispatch_entries_and_chains() {
    let set = example_policies();
    let mut s = listed_store();
    let before = ruleset(&set, &s.cluster(), "node-b");
    let api_one = s.cluster().pods.iter().find(|p| p.namespace == "backend").cloned().expect("a backend pod");
    let mut new = api_pod(&api_one);
    new["metadata"]["name"] = serde_json::json!("api-5f6c7-new01");
    new["spec"]["nodeName"] = serde_json::json!("node-b");
    new["status"]["podIP"] = serde_json::json!("10.244.2.77");
    new["status"]["podIPs"] = serde_json::json!([{"ip": "10.244.2.77"}]);
    assert!(s.pod_event(pod_ev("ADDED", new)));
    let after = ruleset(&set, &s.cluster(), "node-b");
    let c = diff_rulesets(&before, &after);
    assert!(!c.new_chains.is_empty(), "the new local pod gets chains: {}", c.summary());
    assert!(c.rewritten_chains.is_empty() && c.deleted_chains.is_empty(), "{}", c.summary());
    let dispatch: Vec<_> = c.add_elements.iter().filter(|(name, _)| after.maps.contains_key(name)).collect();
    assert!(dispatch.iter().any(|(_, e)| mentions(&[(String::new(), e.clone())], "10.244.2.77")), "{c:?}");
    same_as_relisted(&s, &set, "node-b");
}

#[test]
fn a_namespace_relabel_moves_its_pods_between_selector_sets() {
    let set = example_policies();
    let mut s = listed_store();
    let before = ruleset(&set, &s.cluster(), "node-b");
    // frontend turns from env=prod to env=dev: the platform policies' namespace
    // selectors (`env == 'dev'` is denied into prod) now match its pods.
    assert!(s.namespace_event(ns_ev(stand_in::namespace("frontend", &[("env", "dev"), ("team", "web")]))));
    let after = ruleset(&set, &s.cluster(), "node-b");
    let c = diff_rulesets(&before, &after);
    assert!(!c.is_empty(), "the relabel matters to some policy");
    assert!(c.new_chains.is_empty() && c.deleted_chains.is_empty() && !c.create_table, "{}", c.summary());
    let frontend_ip = s.cluster().pods.iter().find(|p| p.namespace == "frontend").map(|p| p.ips[0].to_string());
    let frontend_ip = frontend_ip.expect("frontend pod");
    assert!(mentions(&c.remove_elements, &frontend_ip) || mentions(&c.add_elements, &frontend_ip), "{c:?}");
    // The same event again changes nothing.
    assert!(!s.namespace_event(ns_ev(stand_in::namespace("frontend", &[("env", "dev"), ("team", "web")]))));
    same_as_relisted(&s, &set, "node-b");
}

#[test]
fn a_reused_pod_ip_belongs_only_to_its_new_pod() {
    let set = example_policies();
    let mut s = listed_store();
    let cluster = s.cluster();
    let db = cluster.pods.iter().find(|p| p.namespace == "database").cloned().expect("a database pod");
    let ip = db.ips[0].to_string();
    // The database pod dies; a sandbox pod gets its address; both in one burst.
    assert!(s.pod_event(pod_ev("DELETED", api_pod(&db))));
    let mut newcomer = stand_in::pod("sandbox", "scratch-1", &[("app", "scratch")], "node-a", Some(&ip), &[]);
    newcomer["spec"]["serviceAccountName"] = serde_json::json!("default");
    assert!(s.pod_event(pod_ev("ADDED", newcomer)));
    let before = ruleset(&set, &cluster, "node-b");
    let after = ruleset(&set, &s.cluster(), "node-b");
    // Whatever set held the address for the database pod no longer does.
    for (name, old) in &before.sets {
        let holds = |set: &netward::enforce::ruleset::Set| {
            set.elements.iter().any(|e| mentions(&[(String::new(), e.clone())], &ip))
        };
        if holds(old) && after.sets.get(name).is_some_and(holds) {
            // Still there only if the newcomer is selected too: check the analysis agrees.
            let an = Analysis::new(&set, &s.cluster(), View::Enforced);
            assert!(an.endpoints.iter().any(|e| e.id == "sandbox/scratch-1"), "set {name} kept {ip}");
        }
    }
    let c = diff_rulesets(&before, &after);
    assert!(mentions(&c.remove_elements, &ip), "the database pod's memberships go: {c:?}");
    same_as_relisted(&s, &set, "node-b");
}

#[test]
fn a_drained_node_loses_its_pod_chains_and_dispatch_entries() {
    let set = example_policies();
    let mut s = listed_store();
    let before = ruleset(&set, &s.cluster(), "node-b");
    let locals: Vec<_> = s.cluster().pods.into_iter().filter(|p| p.node.as_deref() == Some("node-b")).collect();
    assert!(!locals.is_empty());
    // Evicted, then rescheduled on node-a with new addresses.
    for (i, p) in locals.iter().enumerate() {
        assert!(s.pod_event(pod_ev("DELETED", api_pod(p))));
        let mut moved = api_pod(p);
        moved["metadata"]["name"] = serde_json::json!(format!("{}-moved", p.name));
        moved["spec"]["nodeName"] = serde_json::json!("node-a");
        moved["status"]["podIP"] = serde_json::json!(format!("10.244.1.{}", 200 + i));
        moved["status"]["podIPs"] = serde_json::json!([{"ip": format!("10.244.1.{}", 200 + i)}]);
        assert!(s.pod_event(pod_ev("ADDED", moved)));
    }
    let after = ruleset(&set, &s.cluster(), "node-b");
    let c = diff_rulesets(&before, &after);
    assert!(!c.deleted_chains.is_empty() && c.new_chains.is_empty(), "{}", c.summary());
    assert!(after.maps.values().all(|m| m.elements.is_empty()), "no dispatch entry is left: {:?}", after.maps);
    for p in &locals {
        assert!(mentions(&c.remove_elements, &p.ips[0].to_string()));
    }
    same_as_relisted(&s, &set, "node-b");
}

// ---- the watch client against the stand-in API server ----

fn stand_in_with_example(tag: &str) -> (StandIn, PathBuf) {
    let api = StandIn::start().expect("stand-in API server");
    api.load(&netward::manifest::load::load_cluster(&[example_dir().join("cluster.yaml")]).value);
    let kc = std::env::temp_dir().join(format!("netward-kube-{tag}-{}.yaml", std::process::id()));
    api.write_kubeconfig(&kc).expect("kubeconfig");
    (api, kc)
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn labels_of(inv: &mut ApiInventory, ns: &str, name: &str) -> Option<std::collections::BTreeMap<String, String>> {
    inv.current().expect("inventory").pods.into_iter().find(|p| p.namespace == ns && p.name == name).map(|p| p.labels)
}

fn drain(rx: &Receiver<Wake>) -> usize {
    let mut n = 0;
    while rx.try_recv().is_ok() {
        n += 1;
    }
    n
}

#[test]
fn the_watch_follows_lists_bookmarks_dropped_connections_and_410_gone() {
    let (api, kc) = stand_in_with_example("watch");
    let (tx, rx) = std::sync::mpsc::channel();
    let opts = ApiOptions::new(Some(kc.clone()), None);
    let mut inv = ApiInventory::connect(&opts, Some(Wake::Inventory.on(&tx))).expect("connect");
    let c = inv.current().expect("the first list arrives");
    assert_eq!(c.pods.len(), 6);
    assert_eq!(c.namespaces["frontend"].labels["team"], "web");
    assert!(inv.health().is_ok());
    let reqs = api.requests();
    assert!(reqs.iter().any(|r| r.starts_with("GET /api/v1/pods?") && r.contains("limit=500")), "{reqs:?}");
    wait_for("the pod watch", 5, || api.requests().iter().any(|r| r.contains("/pods?") && r.contains("watch=true")));

    // A label change arrives as one wake.
    // The initial list is one wake; let it pass.
    std::thread::sleep(Duration::from_millis(300));
    drain(&rx);
    let web = c.pods.iter().find(|p| p.namespace == "frontend").cloned().expect("web");
    let mut v = api_pod(&web);
    v["metadata"]["labels"]["tier"] = serde_json::json!("canary");
    api.apply("pods", v.clone());
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(Wake::Inventory));
    assert_eq!(labels_of(&mut inv, "frontend", &web.name).expect("web")["tier"], "canary");

    // A status-only update wakes nobody.
    let g = inv.generation();
    v["status"]["conditions"][0]["lastTransitionTime"] = serde_json::json!("2026-11-25T11:00:00Z");
    api.apply("pods", v.clone());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(inv.generation(), g);
    assert_eq!(drain(&rx), 0);

    // A namespace change moves the resourceVersion on; a bookmark tells the
    // pod watch, and after a dropped connection it resumes from there, no relist.
    api.apply("namespaces", stand_in::namespace("sandbox", &[("env", "dev"), ("quarantine", "yes")]));
    api.bookmark("pods");
    let rv = api.resource_version();
    std::thread::sleep(Duration::from_millis(200));
    let lists_before = api.requests().iter().filter(|r| r.contains("/pods?") && !r.contains("watch=")).count();
    api.drop_watches();
    let resumed = format!("resourceVersion={rv}");
    wait_for("the pod watch to resume from the bookmark", 10, || {
        api.requests().iter().any(|r| r.contains("/pods?") && r.contains("watch=true") && r.contains(&resumed))
    });
    let lists_after = api.requests().iter().filter(|r| r.contains("/pods?") && !r.contains("watch=")).count();
    assert_eq!(lists_before, lists_after, "a resumed watch needs no relist");
    wait_for("the namespace label", 5, || {
        inv.current().expect("inventory").namespaces["sandbox"].labels.get("quarantine").is_some_and(|v| v == "yes")
    });

    // History compacted while the connection is down: the resumed watch gets
    // 410 Gone, the watcher relists, and what was deleted meanwhile is gone.
    api.set_down(true);
    wait_for("the watch to notice", 10, || inv.health().is_err());
    assert!(inv.health().unwrap_err().contains("watch broken"), "{:?}", inv.health());
    assert_eq!(inv.current().expect("the last inventory stays").pods.len(), 6);
    api.delete("pods", "frontend", &web.name);
    api.compact();
    api.set_down(false);
    wait_for("the relist after 410 Gone", 30, || inv.current().expect("inventory").pods.len() == 5);
    let lists_final = api.requests().iter().filter(|r| r.contains("/pods?") && !r.contains("watch=")).count();
    assert!(lists_final > lists_after, "410 Gone leads to a relist");
    wait_for("health", 10, || inv.health().is_ok());

    // Without Calico's CRDs, nothing is asked of them.
    assert!(!api.requests().iter().any(|r| r.contains("networksets")));

    let _ = std::fs::remove_file(kc);
}

#[test]
fn a_periodic_resync_lists_again_and_repairs_only_what_was_missed() {
    let (api, kc) = stand_in_with_example("resync");
    let opts = ApiOptions { resync: Duration::from_secs(2), ..ApiOptions::new(Some(kc.clone()), None) };
    let mut inv = ApiInventory::connect(&opts, None).expect("connect");
    assert_eq!(inv.current().expect("synced").pods.len(), 6);
    let lists = |api: &StandIn| api.requests().iter().filter(|r| r.contains("/pods?") && !r.contains("watch=")).count();
    let (before, g) = (lists(&api), inv.generation());
    wait_for("a resync", 10, || lists(&api) > before);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(inv.generation(), g, "a relist of the same objects is not a change");
    // A pod the watch never heard of (created behind its back, no event) is found by the next resync.
    api.apply_silently("pods", stand_in::pod("sandbox", "missed", &[("app", "x")], "node-a", Some("10.244.1.77"), &[]));
    wait_for("the missed pod", 10, || inv.current().expect("inventory").pods.len() == 7);
    assert!(inv.generation() > g);
    let _ = std::fs::remove_file(kc);
}

#[test]
fn a_burst_of_pod_events_is_coalesced_into_few_wakes() {
    let (api, kc) = stand_in_with_example("burst");
    let (tx, rx) = std::sync::mpsc::channel();
    let mut inv = ApiInventory::connect(&ApiOptions::new(Some(kc.clone()), None), Some(Wake::Inventory.on(&tx)))
        .expect("connect");
    inv.current().expect("synced");
    wait_for("the pod watch", 5, || api.requests().iter().any(|r| r.contains("/pods?") && r.contains("watch=true")));
    drain(&rx);
    for i in 0..500 {
        let ip = format!("10.250.{}.{}", i / 250, i % 250 + 1);
        api.apply("pods", stand_in::pod("frontend", &format!("web-{i}"), &[("app", "web")], "node-a", Some(&ip), &[]));
    }
    wait_for("all 500 pods", 10, || inv.current().expect("inventory").pods.len() == 506);
    std::thread::sleep(Duration::from_millis(300));
    let wakes = drain(&rx);
    assert!((1..=10).contains(&wakes), "500 events woke the loop {wakes} times");
    let _ = std::fs::remove_file(kc);
}

// ---- end to end: the binary, a real table in a test namespace ----

fn netward(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_netward")).args(args).current_dir(dir).output().expect("netward")
}

#[test]
fn snapshot_writes_what_cluster_reads() {
    let (api, kc) = stand_in_with_example("snapshot");
    let dir = std::env::temp_dir();
    let out = netward(&["snapshot", "--kubeconfig", kc.to_str().expect("utf-8")], &dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "5 namespaces, 6 pods");
    let snap = std::env::temp_dir().join(format!("netward-snap-{}.yaml", std::process::id()));
    std::fs::write(&snap, &out.stdout).expect("write");
    // The matrix over the snapshot is the matrix over the original file.
    let m = |cluster: &Path| {
        let out = netward(
            &[
                "matrix",
                "--cluster",
                cluster.to_str().expect("utf-8"),
                "--policies",
                example_dir().to_str().expect("utf-8"),
                "--port",
                "8080/TCP",
                "5432/TCP",
                "53/UDP",
                "--format",
                "csv",
            ],
            &dir,
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    };
    assert_eq!(m(&snap), m(&example_dir().join("cluster.yaml")));
    // A dead server is a clear error and exit 2.
    api.set_down(true);
    let out = netward(&["snapshot", "--kubeconfig", kc.to_str().expect("utf-8")], &dir);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("listing namespaces"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(kc);
    let _ = std::fs::remove_file(snap);
}

#[test]
fn reconcile_kube_enforces_the_api_inventory_and_follows_it() {
    let Some(ns) = Netns::new("kube") else { return };
    let Some(ns_files) = Netns::new("kubefiles") else { return };
    let dir = repo("kube");
    let (api, kc) = stand_in_with_example("reconcile");
    let kc_s = kc.to_str().expect("utf-8").to_string();
    let base = ["reconcile", "--path", "policies", "--node", "node-b", "--once"];
    // The same inventory from the API and from the snapshot file: the same table.
    let run = |ns: &Netns, inv: &[&str]| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend(["--netns", &ns.0, "--repo", dir.to_str().expect("utf-8")]);
        args.extend(inv);
        netward(&args, &dir)
    };
    let out = run(&ns, &["--kubeconfig", &kc_s]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&ns_files, &["--cluster", "policies/cluster.yaml"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(ns.table(), ns_files.table());
    assert!(ns.table().contains("chain pod-"));

    // The loop: a pod scheduled here gets chains within a second or two; the
    // rollout status lands on the Node object.
    let addr = format!("127.0.0.1:{}", 20000 + std::process::id() % 20000);
    let child = Command::new(env!("CARGO_BIN_EXE_netward"))
        .args(["reconcile", "--path", "policies", "--node", "node-b", "--interval", "60"])
        .args(["--netns", &ns.0, "--listen", &addr, "--kubeconfig", &kc_s, "--publish-status"])
        .arg("--repo")
        .arg(&dir)
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("netward reconcile");
    let child = Killed(child);
    wait_for("ready", 20, || get(&addr, "/readyz").0.contains("200"));
    let head = git(&dir, &["rev-parse", "HEAD"]);
    wait_for("the revision on the Node object", 30, || {
        api.patches().iter().any(|(path, body)| {
            path == "/api/v1/nodes/node-b" && body["metadata"]["annotations"]["netward.io/revision"] == head.as_str()
        })
    });
    let chains = |t: &str| t.matches("chain pod-").count();
    let before = chains(&ns.table());
    let start = Instant::now();
    api.apply(
        "pods",
        stand_in::pod("backend", "api-new", &[("app", "api")], "node-b", Some("10.244.2.88"), &[("http", 8080, "TCP")]),
    );
    wait_for("the new pod's chains", 10, || chains(&ns.table()) > before);
    let took = start.elapsed();
    assert!(ns.table().contains("10.244.2.88"));
    api.delete("pods", "backend", "api-new");
    wait_for("the deleted pod's chains to go", 10, || !ns.table().contains("10.244.2.88"));
    assert_eq!(chains(&ns.table()), before);

    // The API server goes away: readiness fails, the table stays as it was.
    let table = ns.table();
    api.set_down(true);
    wait_for("not ready", 20, || {
        let (code, body) = get(&addr, "/readyz");
        code.contains("503") && body.contains("watch broken")
    });
    assert_eq!(ns.table(), table, "the last enforced ruleset stays");
    api.set_down(false);
    wait_for("ready again", 30, || get(&addr, "/readyz").0.contains("200"));
    drop(child);
    assert!(took < Duration::from_secs(5), "pod to chains took {took:?}");
    let _ = std::fs::remove_file(kc);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn calico_network_sets_come_from_the_api_where_the_crds_exist() {
    let Some(ns) = Netns::new("kubesets") else { return };
    let dir = repo("kubesets");
    // A policy that allows the corporate ranges, which only the cluster knows.
    std::fs::write(
        dir.join("policies/platform/allow-corp.yaml"),
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: allow-corp}\n\
         spec:\n  order: 10\n  selector: app == 'api'\n  types: [Ingress]\n  ingress:\n  - action: Allow\n    source:\n      selector: role == 'corp'\n",
    )
    .expect("write");
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-qm", "allow corp"]);
    let (api, kc) = stand_in_with_example("sets");
    api.serve_calico_crds();
    api.apply("globalnetworksets", stand_in::network_set(None, "corp", &[("role", "corp")], &["192.0.2.0/24"]));
    api.apply(
        "networksets",
        stand_in::network_set(Some("backend"), "partners", &[("role", "partner")], &["198.51.100.7"]),
    );
    api.apply("globalnetworksets", stand_in::network_set(None, "broken", &[("role", "corp")], &["not-a-cidr"]));

    let (tx, rx) = std::sync::mpsc::channel();
    let mut inv = ApiInventory::connect(&ApiOptions::new(Some(kc.clone()), None), Some(Wake::Inventory.on(&tx)))
        .expect("connect");
    inv.current().expect("synced");
    let sets = inv.network_sets();
    let names: Vec<&str> = sets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["corp", "partners"], "the unreadable set is left out");
    let partners = sets.iter().find(|s| s.name == "partners").expect("partners");
    assert_eq!(partners.labels["projectcalico.org/namespace"], "backend");
    assert_eq!(partners.nets[0].to_string(), "198.51.100.7/32");

    // The reconciler programs the cluster's set into the node's table.
    let out = netward(
        &[
            "reconcile",
            "--once",
            "--path",
            "policies",
            "--node",
            "node-b",
            "--netns",
            &ns.0,
            "--repo",
            dir.to_str().expect("utf-8"),
            "--kubeconfig",
            kc.to_str().expect("utf-8"),
        ],
        &dir,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(ns.table().contains("192.0.2.0/24"), "{}", ns.table());

    // Edits and deletions follow.
    drain(&rx);
    api.apply("globalnetworksets", stand_in::network_set(None, "corp", &[("role", "corp")], &["192.0.2.0/25"]));
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(Wake::Inventory));
    wait_for("the edited set", 5, || inv.network_sets().iter().any(|s| s.nets[0].to_string() == "192.0.2.0/25"));
    api.delete("networksets", "backend", "partners");
    wait_for("the deleted set", 5, || inv.network_sets().len() == 1);
    let _ = std::fs::remove_file(kc);
    let _ = std::fs::remove_dir_all(dir);
}

//! Pods wired by the real CNI plugins (Debian's containernetworking-plugins:
//! `ptp`, as kindnet wires them, and `bridge` with br_netfilter, as bridge
//! and flannel setups do), exactly as a container runtime calls them, then
//! `netward reconcile --once` into their node. netward never names these
//! interfaces: the test would pass only if enforcement holds whatever the
//! CNI called them.
//!
//! Regression (#14): egress isolation was not enforced on such pods.

use netward_test_support::{gate, Tier};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const CNI_BIN: &str = "/usr/lib/cni";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn sh(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0]).args(&args[1..]).output().map_err(|e| format!("{}: {e}", args[0]))?;
    if !out.status.success() {
        return Err(format!("{args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Namespaces and CNI state made by one test, removed on drop (even after
/// a failed assertion).
struct World {
    tag: String,
    netns: Vec<String>,
    dir: PathBuf,
    attached: Vec<(String, String, String)>,
    servers: Vec<std::process::Child>,
}

impl World {
    fn new(tag: &str) -> Option<World> {
        let tag = format!("nwcni{}{tag}", std::process::id() % 100_000);
        let problem = if !Path::new(CNI_BIN).join("ptp").exists() {
            Some(format!("no CNI plugins in {CNI_BIN} (apt-get install containernetworking-plugins)"))
        } else if sh(&["ip", "netns", "add", &format!("{tag}probe")]).is_err() {
            Some("cannot create network namespaces (not root?)".into())
        } else {
            let _ = sh(&["ip", "netns", "del", &format!("{tag}probe")]);
            None
        };
        if !gate(Tier::Cni, "CNI test", problem.map_or(Ok(()), Err)) {
            return None;
        }
        let dir = std::env::temp_dir().join(&tag);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        Some(World { tag, netns: Vec::new(), dir, attached: Vec::new(), servers: Vec::new() })
    }

    fn netns(&mut self, name: &str) -> String {
        let ns = format!("{}{name}", self.tag);
        sh(&["ip", "netns", "add", &ns]).expect("ip netns add");
        sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]).expect("lo up");
        self.netns.push(ns.clone());
        ns
    }

    /// `CNI_COMMAND=ADD` of `netconf` for the pod namespace, run inside the
    /// node namespace as a runtime on that node would; the result's IPv4.
    fn add(&mut self, node: &str, pod_ns: &str, netconf: &str) -> String {
        let out = self.cni("ADD", node, pod_ns, netconf).expect("CNI ADD");
        self.attached.push((node.to_string(), pod_ns.to_string(), netconf.to_string()));
        let v: serde_json::Value = serde_json::from_str(&out).expect("CNI result JSON");
        let ip = v["ips"][0]["address"].as_str().expect("an address");
        ip.split('/').next().expect("address/prefix").to_string()
    }

    fn cni(&self, cmd: &str, node: &str, pod_ns: &str, netconf: &str) -> Result<String, String> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", node, &format!("{CNI_BIN}/{}", plugin(netconf))])
            .env("CNI_COMMAND", cmd)
            .env("CNI_CONTAINERID", pod_ns)
            .env("CNI_NETNS", format!("/run/netns/{pod_ns}"))
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", CNI_BIN)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        child.stdin.take().expect("stdin").write_all(netconf.as_bytes()).map_err(|e| e.to_string())?;
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn serve(&mut self, pod_ns: &str, port: u16) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", pod_ns, env!("CARGO_BIN_EXE_netward-probe"), "serve", "--tcp", &port.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("netward-probe serve");
        let mut line = String::new();
        let _ =
            std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().expect("stdout")), &mut line);
        assert_eq!(line.trim(), "ready");
        self.servers.push(child);
    }

    /// Whether a TCP connection from `pod_ns` to `ip:port` is made.
    fn connects(&self, pod_ns: &str, ip: &str, port: u16) -> bool {
        let probe = env!("CARGO_BIN_EXE_netward-probe");
        let port = port.to_string();
        let out = Command::new("ip")
            .args(["netns", "exec", pod_ns, probe, "connect", "tcp", ip, &port, "--timeout-ms", "700"])
            .output()
            .expect("netward-probe connect");
        out.status.code() == Some(0)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        for (node, pod, conf) in self.attached.iter().rev() {
            let _ = self.cni("DEL", node, pod, conf);
        }
        for ns in self.netns.iter().rev() {
            let _ = sh(&["ip", "netns", "del", ns]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn plugin(netconf: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(netconf).expect("netconf JSON");
    v["type"].as_str().expect("type").to_string()
}

fn pod_yaml(name: &str, ip: &str, app: &str) -> String {
    format!(
        "- apiVersion: v1\n  kind: Pod\n  metadata: {{name: {name}, namespace: shop, labels: {{app: {app}}}}}\n  spec: {{nodeName: n1, containers: [{{name: c, ports: [{{containerPort: 8080}}]}}]}}\n  status: {{phase: Running, podIP: {ip}}}\n"
    )
}

/// A repository holding one policy: pod `a` may not open any connection.
fn repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("policies")).expect("mkdir");
    std::fs::write(
        repo.join("policies/deny-egress.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a-no-egress, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: a}}\n  policyTypes: [Egress]\n",
    )
    .expect("write");
    let git = |args: &[&str]| {
        let ok = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["-c", "user.email=t@netward", "-c", "user.name=t", "-c", "init.defaultBranch=main"])
            .args(args)
            .output()
            .expect("git")
            .status
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "a may not connect out"]);
    repo
}

fn reconcile(w: &World, node: &str, repo: &Path, snapshot: &Path) -> String {
    let out = Command::new(root().join("target").join(profile()).join("netward"))
        .args(["reconcile", "--once", "--path", "policies", "--node", "n1", "--netns", node])
        .arg("--repo")
        .arg(repo)
        .arg("--cluster")
        .arg(snapshot)
        .arg("--status")
        .arg(w.dir.join("status.json"))
        .output()
        .expect("netward reconcile");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "reconcile: {err}");
    err
}

/// The directory cargo put this test's binaries in (debug or release).
fn profile() -> String {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_netward-probe"));
    exe.parent().and_then(|p| p.file_name()).map(|s| s.to_string_lossy().into_owned()).unwrap_or("debug".into())
}

/// Wires a, b (and c) with `netconf` on one node, isolates a's egress, and
/// checks the kernel: a reaches nobody, b and c reach each other and a.
fn egress_isolation_holds(tag: &str, netconf: impl Fn(&Path) -> String, prepare: impl Fn(&str)) {
    let Some(mut w) = World::new(tag) else { return };
    let netward = root().join("target").join(profile()).join("netward");
    if !netward.exists() {
        // `cargo test` builds every binary of the workspace first; a lone
        // `-p netward-testkit` run does not build netward's.
        let _ = Command::new(env!("CARGO")).args(["build", "-q", "-p", "netward", "--bin", "netward"]).status();
    }
    let node = w.netns("node");
    prepare(&node);
    let conf = netconf(&w.dir);
    let (pa, pb, pc) = (w.netns("a"), w.netns("b"), w.netns("c"));
    let ia = w.add(&node, &pa, &conf);
    let ib = w.add(&node, &pb, &conf);
    let ic = w.add(&node, &pc, &conf);
    for p in [&pa, &pb, &pc] {
        w.serve(p, 8080);
    }
    assert!(w.connects(&pa, &ib, 8080), "a reaches b before any policy (the CNI wired them)");
    let snapshot = w.dir.join("cluster.yaml");
    let pods = [pod_yaml("a", &ia, "a"), pod_yaml("b", &ib, "b"), pod_yaml("c", &ic, "c")].concat();
    std::fs::write(
        &snapshot,
        format!("apiVersion: v1\nkind: List\nitems:\n- {{apiVersion: v1, kind: Namespace, metadata: {{name: shop}}}}\n{pods}"),
    )
    .expect("snapshot");
    let repo = repo(&w.dir);
    let log = reconcile(&w, &node, &repo, &snapshot);
    assert!(log.contains("result=applied"), "{log}");
    assert!(!w.connects(&pa, &ib, 8080), "a's egress is isolated: a -> b must fail");
    assert!(!w.connects(&pa, &ic, 8080), "a -> c must fail");
    assert!(w.connects(&pb, &ic, 8080), "b -> c stays open");
    assert!(w.connects(&pb, &ia, 8080), "b -> a stays open (a's ingress is not isolated)");
    // The links netward learnt from the node's routes are the plugin's own.
    let links =
        sh(&["ip", "netns", "exec", &node, "nft", "list", "set", "inet", "netward", "local-pods-4"]).expect("nft");
    assert!(links.contains(&ia) && links.contains(&ib), "{links}");
}

#[test]
fn egress_isolation_holds_on_pods_wired_by_the_ptp_plugin() {
    egress_isolation_holds(
        "ptp",
        |dir| {
            format!(
                r#"{{"cniVersion":"1.0.0","name":"lab","type":"ptp","ipMasq":false,"ipam":{{"type":"host-local","ranges":[[{{"subnet":"10.250.7.0/24"}}]],"dataDir":"{}"}}}}"#,
                dir.join("ipam").display()
            )
        },
        |_| {},
    );
}

#[test]
fn egress_isolation_holds_on_pods_behind_a_bridge_with_br_netfilter() {
    egress_isolation_holds(
        "br",
        |dir| {
            format!(
                r#"{{"cniVersion":"1.0.0","name":"lab","type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":false,"ipam":{{"type":"host-local","ranges":[[{{"subnet":"10.250.8.0/24"}}]],"dataDir":"{}"}}}}"#,
                dir.join("ipam").display()
            )
        },
        // Bridged traffic reaches the inet hooks only with br_netfilter, as
        // on every node of a bridge CNI (the sysctl is the namespace's own).
        |node| {
            sh(&["ip", "netns", "exec", node, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"])
                .expect("sysctl");
        },
    );
}

/// `serve` with any of netward-probe's server flags.
fn serve_with(w: &mut World, pod_ns: &str, args: &[&str]) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", pod_ns, env!("CARGO_BIN_EXE_netward-probe"), "serve"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("netward-probe serve");
    let mut line = String::new();
    let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().expect("stdout")), &mut line);
    assert_eq!(line.trim(), "ready");
    w.servers.push(child);
}

fn hold(pod_ns: &str, proto: &str, ip: &str, port: u16, ms: u64) -> std::process::Child {
    Command::new("ip")
        .args(["netns", "exec", pod_ns, env!("CARGO_BIN_EXE_netward-probe"), "hold", proto, ip])
        .args([port.to_string(), "--ms".into(), ms.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("netward-probe hold")
}

/// (connected, ms from the start to the last echo).
fn held(child: std::process::Child) -> (bool, u64) {
    let out = String::from_utf8_lossy(&child.wait_with_output().expect("hold").stdout).into_owned();
    let field = |k: &str| out.split_whitespace().find_map(|f| f.strip_prefix(k)).unwrap_or_default().to_string();
    (field("connected=") == "true", field("last_echo_ms=").parse().unwrap_or(0))
}

/// A long-lived TCP connection and a UDP flow from a to b; after a second,
/// a commit that isolates a's egress is reconciled. Returns, for TCP and
/// UDP, when the last echo came (ms from the flows' start) and when the
/// reconcile finished.
fn flows_across_a_closing_commit(tag: &str, extra: &[&str]) -> Option<((u64, u64), u64)> {
    let mut w = World::new(tag)?;
    let node = w.netns("node");
    let conf = format!(
        r#"{{"cniVersion":"1.0.0","name":"lab","type":"ptp","ipMasq":false,"ipam":{{"type":"host-local","ranges":[[{{"subnet":"10.250.9.0/24"}}]],"dataDir":"{}"}}}}"#,
        w.dir.join("ipam").display()
    );
    let (pa, pb) = (w.netns("a"), w.netns("b"));
    let (ia, ib) = (w.add(&node, &pa, &conf), w.add(&node, &pb, &conf));
    serve_with(&mut w, &pb, &["--echo", "9000", "--udp", "9001"]);
    let snapshot = w.dir.join("cluster.yaml");
    let pods = [pod_yaml("a", &ia, "a"), pod_yaml("b", &ib, "b")].concat();
    std::fs::write(
        &snapshot,
        format!("apiVersion: v1\nkind: List\nitems:\n- {{apiVersion: v1, kind: Namespace, metadata: {{name: shop}}}}\n{pods}"),
    )
    .expect("snapshot");
    // The first commit polices nobody; the second isolates a's egress.
    let repo = repo(&w.dir);
    let policy = repo.join("policies/deny-egress.yaml");
    let deny = std::fs::read_to_string(&policy).expect("policy");
    std::fs::write(&policy, deny.replace("app: a}", "app: nobody}")).expect("write");
    let git = |args: &[&str]| {
        let ok = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["-c", "user.email=t@netward", "-c", "user.name=t"])
            .args(args)
            .status()
            .expect("git")
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&["commit", "-qam", "nobody isolated"]);
    let once = |extra: &[&str]| {
        let out = Command::new(root().join("target").join(profile()).join("netward"))
            .args(["reconcile", "--once", "--path", "policies", "--node", "n1", "--netns", &node])
            .arg("--repo")
            .arg(&repo)
            .arg("--cluster")
            .arg(&snapshot)
            .args(extra)
            .output()
            .expect("reconcile");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        err
    };
    once(extra);
    let start = std::time::Instant::now();
    let (tcp, udp) = (hold(&pa, "tcp", &ib, 9000, 4000), hold(&pa, "udp", &ib, 9001, 4000));
    std::thread::sleep(std::time::Duration::from_millis(1000));
    std::fs::write(&policy, deny).expect("write");
    git(&["commit", "-qam", "a isolated"]);
    let log = once(extra);
    let done = start.elapsed().as_millis() as u64;
    let ((tc, tl), (uc, ul)) = (held(tcp), held(udp));
    assert!(tc && uc, "both flows were up before the commit: {log}");
    assert!(tl >= 800 && ul >= 800, "the flows echoed until the commit (tcp {tl} ms, udp {ul} ms)");
    Some(((tl, ul), done))
}

// Regression (#14): an established connection that a new commit denies
// kept flowing (conntrack accepts it before any policy chain).
#[test]
fn flows_a_commit_closes_stop_within_a_second() {
    let Some(((tcp, udp), done)) = flows_across_a_closing_commit("cut", &[]) else { return };
    assert!(tcp < done + 1000, "the TCP connection stopped: last echo at {tcp} ms, commit in force at {done} ms");
    assert!(udp < done + 1000, "the UDP flow stopped: last echo at {udp} ms, commit in force at {done} ms");
}

#[test]
fn keep_established_leaves_open_flows_alone() {
    let Some(((tcp, udp), _)) = flows_across_a_closing_commit("keep", &["--keep-established"]) else { return };
    assert!(tcp > 3500 && udp > 3500, "both flows echoed to the end (tcp {tcp} ms, udp {udp} ms)");
}

/// Three pods wired by ptp on node n1 (whose Node object gives its pod
/// CIDR); the inventory knows a and b only. Returns whether b reaches c
/// and c reaches b, after `reconcile --once` with `extra`.
fn unknown_pod_reachability(tag: &str, extra: &[&str]) -> Option<(bool, bool, bool)> {
    let mut w = World::new(tag)?;
    let node = w.netns("node");
    let conf = format!(
        r#"{{"cniVersion":"1.0.0","name":"lab","type":"ptp","ipMasq":false,"ipam":{{"type":"host-local","ranges":[[{{"subnet":"10.250.10.0/24"}}]],"dataDir":"{}"}}}}"#,
        w.dir.join("ipam").display()
    );
    let (pa, pb, pc) = (w.netns("a"), w.netns("b"), w.netns("c"));
    let (ia, ib, ic) = (w.add(&node, &pa, &conf), w.add(&node, &pb, &conf), w.add(&node, &pc, &conf));
    for p in [&pa, &pb, &pc] {
        w.serve(p, 8080);
    }
    let snapshot = w.dir.join("cluster.yaml");
    let pods = [pod_yaml("a", &ia, "a"), pod_yaml("b", &ib, "b")].concat();
    std::fs::write(
        &snapshot,
        format!(
            "apiVersion: v1\nkind: List\nitems:\n- {{apiVersion: v1, kind: Namespace, metadata: {{name: shop}}}}\n- {{apiVersion: v1, kind: Node, metadata: {{name: n1}}, spec: {{podCIDRs: [10.250.10.0/24]}}}}\n{pods}"
        ),
    )
    .expect("snapshot");
    let repo = repo(&w.dir);
    let out = Command::new(root().join("target").join(profile()).join("netward"))
        .args(["reconcile", "--once", "--path", "policies", "--node", "n1", "--netns", &node])
        .arg("--repo")
        .arg(&repo)
        .arg("--cluster")
        .arg(&snapshot)
        .args(extra)
        .output()
        .expect("reconcile");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Some((w.connects(&pb, &ia, 8080), w.connects(&pb, &ic, 8080), w.connects(&pc, &ib, 8080)))
}

// #14: a pod the CNI wired before netward heard of it is not left
// unpoliced: its traffic is dropped until the inventory has it.
#[test]
fn a_pod_netward_has_not_heard_of_is_failed_closed() {
    let Some((known, to_unknown, from_unknown)) = unknown_pod_reachability("unk", &[]) else { return };
    assert!(known, "b -> a (both known, a not isolated for ingress) connects");
    assert!(!to_unknown, "b -> the unknown pod c is dropped");
    assert!(!from_unknown, "the unknown pod c -> b is dropped");
}

#[test]
fn unknown_pods_allow_keeps_the_documented_race() {
    let Some((known, to_unknown, from_unknown)) = unknown_pod_reachability("unka", &["--unknown-pods", "allow"]) else {
        return;
    };
    assert!(known && to_unknown && from_unknown, "{known} {to_unknown} {from_unknown}");
}

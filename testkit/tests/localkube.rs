//! netward against a real Kubernetes control plane: etcd, kube-apiserver,
//! kube-controller-manager and kube-scheduler built from source by
//! `localkube` (control-plane tier: needs Go and the module proxy the first
//! time, then the binaries cached under target/localkube). What the
//! stand-in API server claimed, checked against the real one: the inventory
//! `snapshot` lists, `reconcile --kube` into a node's table with the
//! DaemonSet's own ServiceAccount token, the RBAC that token has and lacks,
//! `--publish-status` on the Node, and a restarted API server.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use netward_test_support::{gate, Netns, TempDir, Tier};
use netward_testkit::localkube::{self, Plane};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("root").to_path_buf()
}

/// The `netward` binary, built beside this test by `cargo test --workspace`.
fn netward_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    exe.parent().and_then(Path::parent).expect("target dir").join("netward")
}

fn netward(args: &[&str], dir: &Path) -> Output {
    Command::new(netward_bin()).args(args).current_dir(dir).output().expect("run netward")
}

fn can_run() -> Result<(), String> {
    if !netward_bin().exists() {
        return Err(format!("{} is not built (cargo build -p netward)", netward_bin().display()));
    }
    let go = Command::new("go").arg("version").output().map_err(|e| format!("go: {e}"))?;
    if !go.status.success() {
        return Err("go version failed".into());
    }
    if !Command::new("ip").args(["netns", "list"]).output().is_ok_and(|o| o.status.success()) {
        return Err("ip netns: not root?".into());
    }
    Ok(())
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The example policies in a Git repository of their own.
fn repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    let copied = Command::new("cp").arg("-r").arg(root().join("policies")).arg(&repo).status().expect("cp");
    assert!(copied.success());
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "the example"]);
    repo
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `wait_for`, printing the reconciler's log when it times out.
fn wait_for_or(log: &Path, what: &str, secs: u64, ok: impl FnMut() -> bool) {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wait_for(what, secs, ok)));
    if let Err(e) = r {
        eprintln!("reconcile log:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        std::panic::resume_unwind(e);
    }
}

/// Stops the control plane when the test ends, however it ends.
struct Down(PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = localkube::down(&self.0);
    }
}

/// Kills the reconciler when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else { return String::new() };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn token_kubeconfig(plane: &Plane, dir: &Path) -> PathBuf {
    let token = plane.kubectl_out(&["create", "token", "netward", "-n", "netward-system"], None).expect("token");
    let path = dir.join("netward.kubeconfig");
    std::fs::write(&path, localkube::token_kubeconfig(plane, token.trim()).expect("kubeconfig")).expect("write");
    path
}

#[test]
fn netward_against_a_real_control_plane() {
    if !gate(Tier::ControlPlane, "localkube", can_run()) {
        return;
    }
    let tmp = TempDir::new("localkube");
    let dir = tmp.join("plane");
    let say = |m: &str| eprintln!("localkube: {m}");
    let plane = localkube::up(&dir, &say).expect("localkube up");
    let _down = Down(dir.clone());
    let v = localkube::Versions::pinned().expect("versions");
    let version = plane.kubectl_out(&["version", "-o", "json"], None).expect("version");
    assert!(version.contains(&format!("\"gitVersion\": \"{}\"", v.kubernetes)), "{version}");

    // The example cluster, created through the API (statuses written as a kubelet would).
    let example = netward::manifest::load::load_cluster(&[root().join("policies/cluster.yaml")]).value;
    plane.load(&example).expect("load the example");

    // The DaemonSet's own objects and RBAC, applied as a user would.
    let deploy = root().join("reconciler/deploy");
    plane.kubectl_out(&["apply", "-k", deploy.to_str().expect("utf-8")], None).expect("kubectl apply -k deploy");
    let sa = "system:serviceaccount:netward-system:netward";
    for (verb, resource, allowed) in [
        ("list", "pods", true),
        ("watch", "namespaces", true),
        ("get", "nodes", true),
        ("patch", "nodes", true),
        ("create", "pods", false),
        ("delete", "pods", false),
        ("get", "secrets", false),
        ("update", "nodes", false),
        ("delete", "nodes", false),
        ("list", "networkpolicies.networking.k8s.io", false),
        ("create", "namespaces", false),
    ] {
        let out =
            plane.kubectl().args(["auth", "can-i", verb, resource, "--as", sa]).output().expect("kubectl auth can-i");
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(said == "yes", allowed, "can-i {verb} {resource} as the reconciler: {said}");
    }
    let token = token_kubeconfig(&plane, &tmp);
    let token_s = token.to_str().expect("utf-8").to_string();
    // What the token cannot do, the reconciler cannot either.
    let denied = Command::new(plane.bin.join("kubectl"))
        .args(["--kubeconfig", &token_s, "get", "secrets", "-A"])
        .output()
        .expect("kubectl");
    assert!(!denied.status.success() && String::from_utf8_lossy(&denied.stderr).contains("Forbidden"));

    // snapshot, with the ServiceAccount's token: the same matrix as the file it came from.
    let out = netward(&["snapshot", "--kubeconfig", &token_s], &root());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let snap = tmp.join("snapshot.yaml");
    std::fs::write(&snap, &out.stdout).expect("write");
    let matrix = |cluster: &Path| {
        let c = cluster.to_str().expect("utf-8");
        let out =
            netward(&["matrix", "--policies", "policies", "--cluster", c, "--port", "8080/TCP", "5432/TCP"], &root());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(matrix(&snap), matrix(&root().join("policies/cluster.yaml")));

    // reconcile --kube with that token: the node's table equals the one the snapshot file gives.
    let repo = repo(&tmp);
    let repo_s = repo.to_str().expect("utf-8").to_string();
    let (ns_api, ns_file) = (Netns::new("api").expect("netns"), Netns::new("file").expect("netns"));
    let once = |ns: &Netns, inv: &[&str]| {
        let mut args = vec!["reconcile", "--once", "--path", "policies", "--node", "node-b", "--netns", &ns.0];
        args.extend(["--repo", &repo_s]);
        args.extend(inv);
        netward(&args, &repo)
    };
    let out = once(&ns_api, &["--kubeconfig", &token_s]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = once(&ns_file, &["--cluster", "policies/cluster.yaml"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(ns_api.table().contains("chain pod-"));
    assert_eq!(ns_api.table(), ns_file.table());

    // The loop, as the DaemonSet runs it: the revision lands on the Node; a
    // pod scheduled here gets chains and loses them when deleted; a
    // restarted API server is followed without a restart of netward.
    let addr = format!("127.0.0.1:{}", 21000 + std::process::id() % 20000);
    let child = Command::new(netward_bin())
        .args(["reconcile", "--path", "policies", "--node", "node-b", "--interval", "60", "--netns", &ns_api.0])
        .args(["--listen", &addr, "--kubeconfig", &token_s, "--publish-status", "--repo", &repo_s])
        .current_dir(&repo)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(tmp.join("reconcile.log")).expect("log"))
        .spawn()
        .expect("netward reconcile");
    let _child = Killed(child);
    wait_for("ready", 30, || get(&addr, "/readyz").contains(" 200 "));
    let head = git(&repo, &["rev-parse", "HEAD"]);
    let annotation = || {
        plane
            .kubectl_out(
                &["get", "node", "node-b", "-o", "jsonpath={.metadata.annotations.netward\\.io/revision}"],
                None,
            )
            .unwrap_or_default()
    };
    wait_for("the revision on the Node", 30, || annotation() == head);

    let chains = |t: &str| t.matches("chain pod-").count();
    let before = chains(&ns_api.table());
    let pod = "---\napiVersion: v1\nkind: Pod\nmetadata: {name: api-new, namespace: backend, labels: {app: api}}\nspec:\n  nodeName: node-b\n  serviceAccountName: api\n  containers: [{name: main, image: registry.k8s.io/pause:3.10, ports: [{name: http, containerPort: 8080}]}]\n";
    plane.kubectl_out(&["apply", "-f", "-"], Some(pod)).expect("create a pod");
    plane.set_pod_status("backend", "api-new", &["10.244.2.88".parse().expect("ip")], "Running").expect("status");
    wait_for("the new pod's chains", 15, || chains(&ns_api.table()) > before);
    assert!(ns_api.table().contains("10.244.2.88"));

    plane.restart("kube-apiserver").expect("restart the API server");
    // Without a kubelet a graceful delete never finishes (the pod stays,
    // terminating, with its address: Calico keeps such a pod as an endpoint
    // too); the kubelet's part is to remove it, which --force does here.
    plane
        .kubectl_out(&["delete", "pod", "api-new", "-n", "backend", "--force", "--grace-period=0"], None)
        .expect("delete");
    let log = tmp.join("reconcile.log");
    wait_for_or(&log, "the deleted pod's chains to go after the restart", 60, || {
        !ns_api.table().contains("10.244.2.88")
    });
    assert_eq!(chains(&ns_api.table()), before);
    wait_for("ready after the restart", 30, || get(&addr, "/readyz").contains(" 200 "));
    drop(_child);

    // A crashed run (every process killed, its files left) is cleaned up by the next up.
    for name in localkube::BINARIES.iter().filter(|b| **b != "kubectl") {
        if let Some(pid) = plane.pid(name) {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
    let again = localkube::up(&dir, &say).expect("up after a crash");
    assert!(again.ready());
    let pids: Vec<u32> = localkube::BINARIES.iter().filter_map(|b| again.pid(b)).collect();
    localkube::down(&dir).expect("down");
    assert!(!dir.exists(), "down removes what up wrote");
    for pid in pids {
        // A killed child of this test lingers as a zombie with no command line.
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(cmdline.is_empty(), "pid {pid} still runs after down");
    }
}

/// What the kind backend would create, and the example's Kubernetes
/// policies, pass the real API server's validation (server-side dry run);
/// and an inventory larger than one list page is read whole.
#[test]
fn the_real_api_server_accepts_what_netward_sends_it() {
    if !gate(Tier::ControlPlane, "localkube", can_run()) {
        return;
    }
    use netward::model::Protocol;
    let tmp = TempDir::new("localkube-dry");
    let dir = tmp.join("plane");
    let plane = localkube::up(&dir, &|m| eprintln!("localkube: {m}")).expect("localkube up");
    let _down = Down(dir.clone());
    let example = netward::manifest::load::load_cluster(&[root().join("policies/cluster.yaml")]).value;

    // `run --backend kind`'s world: namespaces and service accounts first (a
    // dry run creates nothing, and a pod needs both), then all of it server-side.
    let world = netward_testkit::kind::plan::world(&example, &[(Protocol::Tcp, 8080)]);
    let namespaces: String = world
        .split("---\n")
        .filter(|d| d.contains("kind: Namespace") || d.contains("kind: ServiceAccount"))
        .map(|d| format!("---\n{d}"))
        .collect();
    plane.kubectl_out(&["apply", "-f", "-"], Some(&namespaces)).expect("namespaces");
    let out = plane.kubectl_out(&["apply", "--dry-run=server", "-f", "-"], Some(&world));
    assert!(out.is_ok(), "the kind backend's world: {out:?}");

    // The example's Kubernetes policies as the cluster validates them (the
    // Calico objects need Calico's API server, which cannot be built here).
    let objects = netward_testkit::kind::plan::policy_objects(&[root().join("policies")]).expect("policies");
    let list: serde_json::Value = serde_json::from_str(&objects).expect("json");
    let k8s: Vec<&serde_json::Value> =
        list["items"].as_array().expect("items").iter().filter(|o| o["apiVersion"] == "networking.k8s.io/v1").collect();
    assert!(!k8s.is_empty());
    let text = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": k8s}).to_string();
    let out = plane.kubectl_out(&["apply", "--dry-run=server", "-f", "-"], Some(&text));
    assert!(out.is_ok(), "the example's NetworkPolicies: {out:?}");
    // And the API server refuses what netward refuses.
    let bad = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bad, namespace: backend}\nspec:\n  podSelector: {}\n  ingress:\n  - from: [{ipBlock: {cidr: 10.0.0.1}}]\n";
    assert!(plane.kubectl_out(&["apply", "--dry-run=server", "-f", "-"], Some(bad)).is_err());
    let mut diags = Vec::new();
    netward::manifest::load::load_policy_texts(std::iter::once((std::sync::Arc::from("bad.yaml"), bad)), &mut diags);
    assert!(diags.iter().any(|d| d.message.contains("not a CIDR")), "{diags:?}");

    // More pods than one list page (kube-rs asks for 500 at a time).
    let mut bulk = String::from("---\napiVersion: v1\nkind: Namespace\nmetadata: {name: bulk}\n");
    for i in 0..600 {
        bulk.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: bulk-{i}, namespace: bulk}}\nspec:\n  nodeName: node-a\n  containers: [{{name: main, image: registry.k8s.io/pause:3.10}}]\n"
        ));
    }
    plane.kubectl_out(&["create", "-f", "-"], Some(&bulk)).expect("600 pods");
    let out = netward(&["snapshot", "--kubeconfig", plane.kubeconfig.to_str().expect("utf-8")], &root());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let listed = (0..600).filter(|i| text.contains(&format!("name: bulk-{i}\n"))).count();
    assert_eq!(listed, 600, "every pod of both pages");
}

/// The network-policy-api CRDs of the pinned module versions (v0.3.0 for
/// ClusterNetworkPolicy, v0.1.7 for the v1alpha1 pair, experimental
/// channel), installed into the real API server, and netward's validation
/// held to theirs: every document is either accepted by both (server-side
/// dry run, and netward's loader without an error) or refused by both. The
/// corpus is the module's own crdtest data plus netward's cases. Then the
/// Nodes' labels and addresses (what `nodes` peers select) come back through
/// `netward snapshot` and decide a `nodes` peer as the snapshot file does.
#[test]
fn network_policy_api_validation_agrees_with_the_real_crds() {
    if !gate(Tier::ControlPlane, "localkube", can_run()) {
        return;
    }
    let cache = Command::new("go").args(["env", "GOMODCACHE"]).output().expect("go env");
    let cache = PathBuf::from(String::from_utf8_lossy(&cache.stdout).trim());
    let v3 = cache.join("sigs.k8s.io/network-policy-api@v0.3.0");
    let v1 = cache.join("sigs.k8s.io/network-policy-api@v0.1.7");
    let crds = [
        v3.join("config/crd/experimental/policy.networking.k8s.io_clusternetworkpolicies.yaml"),
        v1.join("config/crd/experimental/policy.networking.k8s.io_adminnetworkpolicies.yaml"),
        v1.join("config/crd/experimental/policy.networking.k8s.io_baselineadminnetworkpolicies.yaml"),
    ];
    let missing: Vec<String> = crds.iter().filter(|c| !c.exists()).map(|c| c.display().to_string()).collect();
    assert!(missing.is_empty(), "go mod download the network-policy-api modules (.ci/run does): {missing:?}");

    let tmp = TempDir::new("localkube-npapi");
    let dir = tmp.join("plane");
    let plane = localkube::up(&dir, &|m| eprintln!("localkube: {m}")).expect("localkube up");
    let _down = Down(dir.clone());
    for c in &crds {
        plane.kubectl_out(&["apply", "--server-side", "-f", c.to_str().expect("utf-8")], None).expect("CRD installed");
    }
    for name in ["clusternetworkpolicies", "adminnetworkpolicies", "baselineadminnetworkpolicies"] {
        plane
            .kubectl_out(
                &[
                    "wait",
                    "--for",
                    "condition=established",
                    "--timeout=60s",
                    &format!("crd/{name}.policy.networking.k8s.io"),
                ],
                None,
            )
            .expect("CRD established");
    }

    let mut corpus: Vec<(String, String)> = Vec::new();
    for kind in ["valid", "invalid"] {
        let d = v3.join("pkg/crdtest/testdata").join(kind);
        for e in std::fs::read_dir(&d).expect("crdtest data") {
            let p = e.expect("entry").path();
            corpus.push((
                format!("crdtest/{kind}/{}", p.file_name().expect("a file").to_string_lossy()),
                std::fs::read_to_string(&p).expect("crdtest data"),
            ));
        }
    }
    let cnp = |name: &str, body: &str| {
        format!("apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {{name: {name}}}\nspec:\n  tier: Admin\n  priority: 10\n  subject: {{namespaces: {{}}}}\n{body}")
    };
    let deny_from_all = "  ingress:\n  - action: Deny\n    from: [{namespaces: {}}]\n";
    let mine = [
        ("ok", cnp("ok", deny_from_all)),
        ("priority-1001", cnp("p", deny_from_all).replace("priority: 10", "priority: 1001")),
        ("tier-middle", cnp("p", deny_from_all).replace("tier: Admin", "tier: Middle")),
        ("action-allow", cnp("p", &deny_from_all.replace("Deny", "Allow"))),
        ("no-peers", cnp("p", "  ingress:\n  - action: Deny\n    from: []\n")),
        ("two-subjects", cnp("p", deny_from_all).replace("subject: {namespaces: {}}", "subject: {namespaces: {}, pods: {podSelector: {}}}")),
        ("empty-subject", cnp("p", deny_from_all).replace("subject: {namespaces: {}}", "subject: {}")),
        ("26-rules", cnp("p", &format!("  ingress:\n{}", "  - action: Deny\n    from: [{namespaces: {}}]\n".repeat(26)))),
        ("nodes-ingress", cnp("p", "  ingress:\n  - action: Deny\n    from: [{nodes: {}}]\n")),
        ("nodes-egress", cnp("p", "  egress:\n  - action: Deny\n    to: [{nodes: {matchLabels: {role: worker}}}]\n")),
        ("host-bits", cnp("p", "  egress:\n  - action: Deny\n    to: [{networks: [10.1.2.3/8]}]\n")),
        ("range-equal", cnp("p", "  ingress:\n  - action: Deny\n    from: [{namespaces: {}}]\n    protocols: [{tcp: {destinationPort: {range: {start: 90, end: 90}}}}]\n")),
        ("port-0", cnp("p", "  ingress:\n  - action: Deny\n    from: [{namespaces: {}}]\n    protocols: [{udp: {destinationPort: {number: 0}}}]\n")),
        ("long-rule-name", cnp("p", &format!("  ingress:\n  - name: {}\n    action: Deny\n    from: [{{namespaces: {{}}}}]\n", "x".repeat(101)))),
        ("domain-accept", cnp("p", "  egress:\n  - action: Accept\n    to: [{domainNames: ['*.example.com']}]\n")),
        ("domain-bad", cnp("p", "  egress:\n  - action: Accept\n    to: [{domainNames: ['foo*.example.com']}]\n")),
        ("unknown-field", cnp("p", "  ingress:\n  - action: Deny\n    from: [{namespaces: {}}]\n    ports: [{portNumber: {port: 80}}]\n")),
        ("banp-other-name", "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {name: other}\nspec:\n  subject: {namespaces: {}}\n".to_string()),
        ("banp-default", "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {name: default}\nspec:\n  subject: {namespaces: {}}\n  ingress:\n  - action: Deny\n    from: [{namespaces: {}}]\n".to_string()),
        ("banp-pass", "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {name: default}\nspec:\n  subject: {namespaces: {}}\n  ingress:\n  - action: Pass\n    from: [{namespaces: {}}]\n".to_string()),
        ("anp-ports", "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: a}\nspec:\n  priority: 3\n  subject: {pods: {namespaceSelector: {}, podSelector: {}}}\n  egress:\n  - action: Allow\n    to: [{networks: [10.1.2.3/8]}]\n    ports: [{portNumber: {port: 80}}, {portRange: {protocol: UDP, start: 1000, end: 2000}}]\n".to_string()),
        ("anp-pod-without-namespaces", "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: a}\nspec:\n  priority: 3\n  subject: {pods: {podSelector: {}}}\n".to_string()),
        ("anp-namedport-networks", "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: a}\nspec:\n  priority: 3\n  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: [{networks: [10.0.0.0/8]}]\n    ports: [{namedPort: web}]\n".to_string()),
    ];
    corpus.extend(mine.into_iter().map(|(n, t)| (format!("netward/{n}"), t)));

    let mut disagreements = Vec::new();
    let mut refused = 0;
    for (name, text) in &corpus {
        let server_ok = plane.kubectl_out(&["apply", "--dry-run=server", "-f", "-"], Some(text)).is_ok();
        let mut diags = Vec::new();
        netward::manifest::load::load_policy_texts(
            std::iter::once((std::sync::Arc::from(name.as_str()), text.as_str())),
            &mut diags,
        );
        let netward_ok = !diags.iter().any(|d| d.severity == netward::diag::Severity::Error);
        refused += usize::from(!server_ok);
        if server_ok != netward_ok {
            disagreements.push(format!(
                "{name}: API server {}, netward {} {diags:?}",
                if server_ok { "accepts" } else { "refuses" },
                if netward_ok { "accepts" } else { "refuses" }
            ));
        }
    }
    assert!(disagreements.is_empty(), "netward and the real CRDs disagree:\n{}", disagreements.join("\n"));
    eprintln!("{} documents: {refused} refused by both, the rest accepted by both", corpus.len());
    assert!(refused >= 15 && refused < corpus.len() - 5, "{refused} of {} refused: the corpus has both", corpus.len());
    // The one difference, on purpose (docs/semantics.md): the API accepts a
    // Deny rule to domainNames, which it supports for Accept only; netward
    // refuses it.
    let domain_deny = cnp("d", "  egress:\n  - action: Deny\n    to: [{domainNames: [example.com]}]\n");
    assert!(plane.kubectl_out(&["apply", "--dry-run=server", "-f", "-"], Some(&domain_deny)).is_ok());
    let mut diags = Vec::new();
    netward::manifest::load::load_policy_texts(
        std::iter::once((std::sync::Arc::from("d.yaml"), domain_deny.as_str())),
        &mut diags,
    );
    assert!(diags.iter().any(|d| d.message.contains("only supported for Accept")), "{diags:?}");

    // Nodes with labels and addresses, through the API and back.
    let cluster =
        netward::manifest::load::load_cluster(&[root().join("testkit/conformance/network-policy-api/cluster.yaml")])
            .value;
    plane.load(&cluster).expect("the conformance cluster");
    let out = netward(&["snapshot", "--kubeconfig", plane.kubeconfig.to_str().expect("utf-8")], &root());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let snap = tmp.join("snapshot.yaml");
    std::fs::write(&snap, &out.stdout).expect("write");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("address: \"172.18.0.3\"}"), "the Node's address came back: {text}");
    let policy = root()
        .join("testkit/conformance/network-policy-api/policies/admin_tier/experimental-egress-selector-rules.yaml");
    let explain = |cluster: &Path| {
        let o = netward(
            &[
                "explain",
                "--policies",
                policy.to_str().expect("utf-8 path"),
                "--cluster",
                cluster.to_str().expect("utf-8 path"),
                "--from",
                "network-policy-conformance-gryffindor/harry-potter-0",
                "--to",
                "172.18.0.3",
                "--port",
                "34345/TCP",
            ],
            &root(),
        );
        (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let from_file = explain(&root().join("testkit/conformance/network-policy-api/cluster.yaml"));
    let from_api = explain(&snap);
    // Only the `nodes` peer of rule 0 accepts 34345/TCP; without the Node's
    // address, rule 2's 0.0.0.0/0 would deny it.
    assert!(
        from_file.1.contains("allowed by ClusterNetworkPolicy node-and-cidr-as-peers-example rule 0"),
        "{from_file:?}"
    );
    assert_eq!(from_api, from_file, "the snapshot of the API decides as the file does");
}

//! What the kind backend asks of the world, as data: the commands that make
//! and unmake a cluster, the manifests of a test's pods, and the probe each
//! pod runs. Pure, so every line of it is checked here even though the
//! cluster itself only exists in the kind workflow.

use std::fmt::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use netward::model::{Cluster, Protocol};

use crate::lab::Probe;

/// The probe image, pinned by digest (v0.13's multi-arch index).
pub const NETSHOOT: &str =
    "nicolaka/netshoot:v0.13@sha256:a20c2531bf35436ed3766cd6cfe89d352b050ccc4d7005ce6400adf97503da1b";

/// Calico's release (its operator manifests pinned with it). 3.32 is the
/// first that enforces ClusterNetworkPolicy (tiers kube-admin and
/// kube-baseline; its operator-crds.yaml carries the network-policy-api CRD);
/// 3.30 was the first with the staged kinds and without tier-prefixed names.
pub const CALICO: &str = "v3.32.1";

/// The image `kind up` builds for a netward cluster.
pub const NETWARD_IMAGE: &str = "netward:testkit";

/// The ConfigMap (in kube-system) where `kind up` records the cluster's CNI for `run`.
pub const RECORD: &str = "netward-testkit";

/// Where the netward cluster's nodes find the policy repository (kind-configs/netward.yaml).
pub const NETWARD_REPO: &str = "/tmp/netward-kind-repo";

/// Who enforces policy in a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cni {
    /// Calico, with its API server: both Kubernetes and Calico v3 policies.
    Calico,
    /// kind's default: Kubernetes NetworkPolicy only.
    Kindnet,
    /// kindnet for networking, netward's DaemonSet enforcing.
    Netward,
}

impl Cni {
    /// The enforcer a kind config is for, by its file name (calico.yaml,
    /// kindnet.yaml, netward.yaml, or names that start so).
    pub fn of_config(config: &Path) -> Result<Cni, String> {
        let stem = config.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        for (prefix, cni) in [("calico", Cni::Calico), ("kindnet", Cni::Kindnet), ("netward", Cni::Netward)] {
            if stem.starts_with(prefix) {
                return Ok(cni);
            }
        }
        Err(format!(
            "{}: cannot tell the CNI from the file name; name it calico*.yaml, kindnet*.yaml or netward*.yaml",
            config.display()
        ))
    }

    pub fn name(self) -> &'static str {
        match self {
            Cni::Calico => "calico",
            Cni::Kindnet => "kindnet",
            Cni::Netward => "netward",
        }
    }
}

/// One command of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    /// What it is for, shown as progress.
    pub why: String,
    /// Fed to its standard input.
    pub stdin: Option<String>,
}

impl Cmd {
    fn new(why: &str, program: &str, args: &[&str]) -> Cmd {
        Cmd {
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            why: why.into(),
            stdin: None,
        }
    }
}

impl std::fmt::Display for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.program)?;
        for a in &self.args {
            if a.contains(' ') {
                write!(f, " '{a}'")?;
            } else {
                write!(f, " {a}")?;
            }
        }
        Ok(())
    }
}

/// `kind up`: create the cluster and install its CNI (or reuse it as it is),
/// then record the CNI for `run` and `verify`.
/// `root` is the repository (for netward's Dockerfile and overlay).
pub fn up(config: &Path, name: &str, cni: Cni, exists: bool, root: &Path) -> Vec<Cmd> {
    let ctx = format!("kind-{name}");
    let config = config.display().to_string();
    let mut plan = Vec::new();
    if !exists {
        plan.push(Cmd::new("create the cluster", "kind", &["create", "cluster", "--name", name, "--config", &config]));
    }
    let base = format!("https://raw.githubusercontent.com/projectcalico/calico/{CALICO}/manifests");
    // A cluster that exists is reused as it is (its CNI installed by the `up` that made it).
    let install = if exists { None } else { Some(cni) };
    match install {
        None => {}
        Some(Cni::Kindnet) => {}
        Some(Cni::Calico) => {
            // Since 3.32 the CRDs (Calico's, the operator's and the
            // network-policy-api's ClusterNetworkPolicy) ship apart from the operator.
            plan.push(Cmd::new(
                "install the CRDs (ClusterNetworkPolicy included)",
                "kubectl",
                &["--context", &ctx, "create", "-f", &format!("{base}/operator-crds.yaml")],
            ));
            plan.push(Cmd::new(
                "install the Tigera operator",
                "kubectl",
                &["--context", &ctx, "create", "-f", &format!("{base}/tigera-operator.yaml")],
            ));
            plan.push(Cmd::new(
                "wait for the operator's resource types",
                "kubectl",
                &["--context", &ctx, "wait", "--for=condition=established", "crd", "--all", "--timeout=180s"],
            ));
            let mut install =
                Cmd::new("install Calico and its API server", "kubectl", &["--context", &ctx, "apply", "-f", "-"]);
            install.stdin = Some(calico_installation());
            plan.push(install);
        }
        Some(Cni::Netward) => {
            let dockerfile = root.join("reconciler/deploy/Dockerfile").display().to_string();
            let overlay = root.join("kind-configs/netward").display().to_string();
            let root = root.display().to_string();
            plan.push(Cmd::new(
                "build netward's image",
                "docker",
                &["build", "-f", &dockerfile, "-t", NETWARD_IMAGE, &root],
            ));
            plan.push(Cmd::new(
                "load it on the nodes",
                "kind",
                &["load", "docker-image", NETWARD_IMAGE, "--name", name],
            ));
            plan.push(Cmd::new("deploy netward", "kubectl", &["--context", &ctx, "apply", "-k", &overlay]));
            plan.push(Cmd::new(
                "create the Secret the DaemonSet mounts",
                "kubectl",
                &[
                    "--context",
                    &ctx,
                    "-n",
                    "netward-system",
                    "create",
                    "secret",
                    "generic",
                    "netward-git",
                    "--from-literal=token=unused",
                    "--from-literal=webhook-secret=unused",
                ],
            ));
        }
    }
    let mut record = Cmd::new("record the CNI for run and verify", "kubectl", &["--context", &ctx, "apply", "-f", "-"]);
    record.stdin = Some(format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {RECORD}\n  namespace: kube-system\ndata:\n  cni: {}\n",
        cni.name()
    ));
    plan.push(record);
    plan
}

/// Calico's Installation and APIServer, as the release's custom-resources.yaml
/// has them but with the pool on kind's pod subnet (10.244.0.0/16, the
/// addresses the example's snapshot and its egress allow-list use).
pub fn calico_installation() -> String {
    "apiVersion: operator.tigera.io/v1\nkind: Installation\nmetadata:\n  name: default\nspec:\n  calicoNetwork:\n    ipPools:\n\
     \x20   - name: default-ipv4-ippool\n      blockSize: 26\n      cidr: 10.244.0.0/16\n      encapsulation: VXLANCrossSubnet\n\
     \x20     natOutgoing: Enabled\n      nodeSelector: all()\n---\napiVersion: operator.tigera.io/v1\nkind: APIServer\n\
     metadata:\n  name: default\nspec: {}\n"
        .to_string()
}

/// The policy objects among `paths` (files or directories, as a test file
/// names them), as one kubectl List: Tiers first (policies need their tier),
/// then network sets, then policies. Everything else there (cluster
/// snapshots, test files) is left out.
pub fn policy_objects(paths: &[PathBuf]) -> Result<String, String> {
    let mut files = Vec::new();
    for p in paths {
        collect_yaml(p, &mut files)?;
    }
    files.sort();
    let mut objects: Vec<(u8, serde_json::Value)> = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        let docs: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(&text).map_err(|e| format!("{}: {e}", f.display()))?;
        for doc in docs {
            let items =
                if doc["kind"] == "List" { doc["items"].as_array().cloned().unwrap_or_default() } else { vec![doc] };
            for o in items {
                if let Some(rank) = rank(&o) {
                    objects.push((rank, o));
                }
            }
        }
    }
    objects.sort_by_key(|(r, _)| *r);
    let items: Vec<serde_json::Value> = objects.into_iter().map(|(_, o)| o).collect();
    Ok(serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string())
}

/// Where an object goes in the apply order; None for what is not a policy object.
fn rank(o: &serde_json::Value) -> Option<u8> {
    match (o["apiVersion"].as_str()?, o["kind"].as_str()?) {
        ("projectcalico.org/v3", "Tier") => Some(0),
        ("projectcalico.org/v3", "NetworkSet" | "GlobalNetworkSet") => Some(1),
        ("networking.k8s.io/v1", "NetworkPolicy") => Some(2),
        (
            "projectcalico.org/v3",
            "NetworkPolicy"
            | "GlobalNetworkPolicy"
            | "StagedNetworkPolicy"
            | "StagedGlobalNetworkPolicy"
            | "StagedKubernetesNetworkPolicy",
        ) => Some(2),
        _ => None,
    }
}

fn collect_yaml(p: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    if p.is_dir() {
        for e in std::fs::read_dir(p).map_err(|e| format!("{}: {e}", p.display()))?.flatten() {
            collect_yaml(&e.path(), out)?;
        }
    } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml" || x == "json") {
        out.push(p.to_path_buf());
    }
    Ok(())
}

/// `kind down`.
pub fn down(name: &str) -> Vec<Cmd> {
    vec![Cmd::new("delete the cluster", "kind", &["delete", "cluster", "--name", name])]
}

/// The shell a probe pod runs: answer every declared TCP port with a line,
/// echo UDP datagrams back, as the lab's pods do.
pub fn serve_script(ports: &[(Protocol, u16)]) -> String {
    let mut s = String::from("set -e\n");
    for (proto, port) in ports {
        match proto {
            Protocol::Tcp => {
                let _ = writeln!(s, "socat TCP-LISTEN:{port},fork,reuseaddr SYSTEM:'echo ok' &");
            }
            Protocol::Udp => {
                let _ = writeln!(s, "socat UDP-RECVFROM:{port},fork SYSTEM:'echo ok' &");
            }
            _ => {}
        }
    }
    s.push_str("exec sleep infinity\n");
    s
}

fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// The manifests of a test's world: its namespaces (with their labels),
/// service accounts, and one netshoot pod per pod of the cluster, with its
/// labels, service account and container ports (named ones included), serving
/// `ports` and its own declared ports. Pods are not pinned to nodes: the cluster's nodes are its own.
/// Every pod is labelled `netward.io/testkit=true`, to be found and removed.
pub fn world(cluster: &Cluster, ports: &[(Protocol, u16)]) -> String {
    let mut o = String::new();
    for ns in cluster.namespaces.values().filter(|n| !is_system_namespace(&n.name)) {
        let _ = writeln!(o, "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {}\n  labels:", q(&ns.name));
        for (k, v) in &ns.labels {
            let _ = writeln!(o, "    {}: {}", q(k), q(v));
        }
    }
    let mut accounts: Vec<(&str, &str)> =
        cluster.pods.iter().map(|p| (p.namespace.as_str(), p.service_account.as_str())).collect();
    accounts.sort();
    accounts.dedup();
    for (ns, sa) in accounts.into_iter().filter(|(_, sa)| *sa != "default" && !sa.is_empty()) {
        let _ = writeln!(
            o,
            "---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  namespace: {}\n  name: {}",
            q(ns),
            q(sa)
        );
    }
    for p in cluster.pods.iter().filter(|p| !p.host_network) {
        // The ports the test asks about, and the pod's own declared ones.
        let mut served = ports.to_vec();
        for cp in &p.ports {
            if matches!(cp.protocol, Protocol::Tcp | Protocol::Udp) && !served.contains(&(cp.protocol, cp.port)) {
                served.push((cp.protocol, cp.port));
            }
        }
        let script = serve_script(&served);
        let _ = writeln!(
            o,
            "---\napiVersion: v1\nkind: Pod\nmetadata:\n  namespace: {}\n  name: {}",
            q(&p.namespace),
            q(&p.name)
        );
        let _ = writeln!(o, "  labels:\n    \"netward.io/testkit\": \"true\"");
        for (k, v) in &p.labels {
            let _ = writeln!(o, "    {}: {}", q(k), q(v));
        }
        // A pod without one gets `default` from the API server (and Calico
        // the labels of that account; the model has none for it).
        let _ = writeln!(o, "spec:");
        if !p.service_account.is_empty() {
            let _ = writeln!(o, "  serviceAccountName: {}", q(&p.service_account));
        }
        let _ = writeln!(o, "  terminationGracePeriodSeconds: 0");
        let _ = writeln!(o, "  containers:\n  - name: probe\n    image: {}", q(NETSHOOT));
        let _ = writeln!(o, "    command: [\"sh\", \"-c\", {}]", q(&script));
        let mut declared: Vec<(Option<&str>, Protocol, u16)> =
            p.ports.iter().map(|cp| (cp.name.as_deref(), cp.protocol, cp.port)).collect();
        for (proto, port) in ports {
            if !declared.iter().any(|(_, pr, n)| pr == proto && n == port) {
                declared.push((None, *proto, *port));
            }
        }
        if !declared.is_empty() {
            o.push_str("    ports:\n");
            for (name, proto, port) in declared {
                let _ = writeln!(o, "    - containerPort: {port}\n      protocol: {}", protocol(proto));
                if let Some(n) = name {
                    let _ = writeln!(o, "      name: {}", q(n));
                }
            }
        }
        o.push_str("    readinessProbe:\n      exec: {command: [\"true\"]}\n      periodSeconds: 2\n");
    }
    o
}

/// Namespaces every cluster has: used as they are, never created or deleted.
pub fn is_system_namespace(name: &str) -> bool {
    matches!(name, "default" | "kube-system" | "kube-public" | "kube-node-lease")
}

fn protocol(p: Protocol) -> &'static str {
    match p {
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
        _ => "TCP",
    }
}

/// The command a pod runs to probe `ip`: for TCP a connect (`nc -vz`, which
/// says "refused" when the pod answered with a reset), for
/// UDP a datagram that the far side's socat answers.
pub fn probe_argv(proto: Protocol, ip: IpAddr, port: u16, timeout: Duration) -> Vec<String> {
    let secs = timeout.as_secs().max(1).to_string();
    match proto {
        Protocol::Udp => {
            vec![
                "sh".into(),
                "-c".into(),
                format!("echo ping | socat -t {secs} -T {secs} - UDP:{}:{port}", bracketed(ip)),
            ]
        }
        _ => vec!["nc".into(), "-vz".into(), "-w".into(), secs, ip.to_string(), port.to_string()],
    }
}

fn bracketed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// What a probe's exit status and output mean. `exit` is None when the exec
/// itself failed (the pod is gone, the API refused).
pub fn classify(proto: Protocol, exit: Option<i32>, stdout: &str, stderr: &str) -> Probe {
    match (proto, exit) {
        (_, None) => Probe::Error,
        (Protocol::Udp, Some(_)) if stdout.contains("ok") => Probe::Allowed,
        (Protocol::Udp, Some(_)) if stderr.contains("refused") => Probe::Refused,
        (Protocol::Udp, Some(_)) => Probe::Denied,
        (_, Some(0)) => Probe::Allowed,
        (_, Some(_)) if stderr.contains("refused") => Probe::Refused,
        (_, Some(_)) => Probe::Denied,
    }
}

/// Where `kind up` for a netward cluster expects the policy repository.
pub fn netward_repo() -> PathBuf {
    PathBuf::from(NETWARD_REPO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("root").to_path_buf()
    }

    fn example() -> Cluster {
        let (mut c, _) = netward::manifest::load_cluster(&[root().join("policies/cluster.yaml")])
            .into_result()
            .expect("example cluster");
        c.fill_missing_namespaces();
        c
    }

    fn yaml_docs(text: &str) -> Vec<serde_json::Value> {
        text.split("\n---\n")
            .map(|d| d.trim_start_matches("---\n"))
            .filter(|d| !d.trim().is_empty())
            .map(|d| serde_saphyr::from_str(d).unwrap_or_else(|e| panic!("{e}\n{d}")))
            .collect()
    }

    #[test]
    fn each_kind_config_names_its_cni() {
        let cfg = |n: &str| root().join("kind-configs").join(n);
        assert_eq!(Cni::of_config(&cfg("calico.yaml")), Ok(Cni::Calico));
        assert_eq!(Cni::of_config(&cfg("kindnet.yaml")), Ok(Cni::Kindnet));
        assert_eq!(Cni::of_config(&cfg("netward.yaml")), Ok(Cni::Netward));
        assert!(Cni::of_config(Path::new("cluster.yaml")).unwrap_err().contains("calico*.yaml"));
    }

    #[test]
    fn the_kind_configs_are_what_the_backend_expects() {
        for (file, cni) in
            [("calico.yaml", Cni::Calico), ("kindnet.yaml", Cni::Kindnet), ("netward.yaml", Cni::Netward)]
        {
            let text = std::fs::read_to_string(root().join("kind-configs").join(file)).expect("config");
            assert!(text.starts_with("# "), "{file} is documented at the top");
            let v: serde_json::Value = serde_saphyr::from_str(&text).expect("yaml");
            assert_eq!(
                (v["kind"].as_str(), v["apiVersion"].as_str()),
                (Some("Cluster"), Some("kind.x-k8s.io/v1alpha4"))
            );
            let nodes = v["nodes"].as_array().expect("nodes");
            assert_eq!(nodes.iter().filter(|n| n["role"] == "worker").count(), 2, "{file}: two workers");
            let default_cni_off = v["networking"]["disableDefaultCNI"] == true;
            assert_eq!(default_cni_off, cni == Cni::Calico, "{file}");
            if cni == Cni::Calico {
                // Calico's default IP pool (custom-resources.yaml) is the pod subnet.
                assert_eq!(v["networking"]["podSubnet"], "10.244.0.0/16");
                let install: Vec<serde_json::Value> =
                    serde_saphyr::from_multiple(&calico_installation()).expect("yaml");
                assert_eq!(install[0]["spec"]["calicoNetwork"]["ipPools"][0]["cidr"], "10.244.0.0/16");
                assert_eq!(install[1]["kind"], "APIServer");
            }
            if cni == Cni::Netward {
                for n in nodes {
                    assert_eq!(n["extraMounts"][0]["hostPath"], NETWARD_REPO, "{file}: every node sees the repository");
                    assert_eq!(n["extraMounts"][0]["containerPath"], "/netward/repo");
                }
            }
        }
        let overlay: serde_json::Value = serde_saphyr::from_str(
            &std::fs::read_to_string(root().join("kind-configs/netward/kustomization.yaml")).expect("overlay"),
        )
        .expect("yaml");
        assert_eq!(overlay["resources"][0], "../../reconciler/deploy");
        let image = format!(
            "{}:{}",
            overlay["images"][0]["newName"].as_str().unwrap_or(""),
            overlay["images"][0]["newTag"].as_str().unwrap_or("")
        );
        assert_eq!(image, NETWARD_IMAGE, "the overlay deploys the image kind up loads");
    }

    #[test]
    fn up_and_down_plans() {
        let r = Path::new("/src");
        let show = |plan: Vec<Cmd>| plan.iter().map(|c| format!("{}: {c}", c.why)).collect::<Vec<_>>().join("\n");
        insta::assert_snapshot!(
            "up_calico",
            show(up(Path::new("kind-configs/calico.yaml"), "t", Cni::Calico, false, r))
        );
        insta::assert_snapshot!(
            "up_netward",
            show(up(Path::new("kind-configs/netward.yaml"), "t", Cni::Netward, false, r))
        );
        // An existing cluster is reused as it is: only the record is (re)applied.
        let reused = up(Path::new("kind-configs/kindnet.yaml"), "t", Cni::Kindnet, true, r);
        assert_eq!(reused.len(), 1);
        assert_eq!(reused[0].to_string(), "kubectl --context kind-t apply -f -");
        assert!(reused[0].stdin.as_deref().is_some_and(|s| s.contains("cni: kindnet") && s.contains(RECORD)));
        assert_eq!(show(down("t")), "delete the cluster: kind delete cluster --name t");
    }

    #[test]
    fn the_worlds_pods_are_netshoot_with_the_tests_labels_ports_and_accounts() {
        let c = example();
        let text = world(&c, &[(Protocol::Tcp, 8080), (Protocol::Udp, 53)]);
        insta::assert_snapshot!("world_example", text);
        let docs = yaml_docs(&text);
        let pods: Vec<&serde_json::Value> = docs.iter().filter(|d| d["kind"] == "Pod").collect();
        assert_eq!(pods.len(), c.pods.iter().filter(|p| !p.host_network).count());
        for (p, doc) in c.pods.iter().filter(|p| !p.host_network).zip(&pods) {
            assert_eq!(doc["metadata"]["namespace"], p.namespace.as_str());
            assert_eq!(doc["metadata"]["labels"]["netward.io/testkit"], "true");
            for (k, v) in &p.labels {
                assert_eq!(doc["metadata"]["labels"][k], v.as_str());
            }
            if p.service_account.is_empty() {
                assert!(doc["spec"]["serviceAccountName"].is_null());
            } else {
                assert_eq!(doc["spec"]["serviceAccountName"], p.service_account.as_str());
            }
            let container = &doc["spec"]["containers"][0];
            assert_eq!(container["image"], NETSHOOT);
            for cp in &p.ports {
                assert!(container["ports"].as_array().expect("ports").iter().any(|x| x["containerPort"] == cp.port));
            }
            let script = container["command"][2].as_str().expect("script");
            assert!(script.contains("TCP-LISTEN:8080") && script.contains("UDP-RECVFROM:53"), "{script}");
        }
        let namespaces: Vec<&str> =
            docs.iter().filter(|d| d["kind"] == "Namespace").filter_map(|d| d["metadata"]["name"].as_str()).collect();
        assert_eq!(namespaces.len(), c.namespaces.keys().filter(|n| !is_system_namespace(n)).count());
        assert!(!namespaces.contains(&"kube-system"), "system namespaces are used as they are");
        let accounts = docs.iter().filter(|d| d["kind"] == "ServiceAccount").count();
        assert!(accounts > 0, "the example's pods run as named service accounts");
        assert!(NETSHOOT.contains("@sha256:") && NETSHOOT.len() > 70, "pinned by digest");
    }

    #[test]
    fn only_policy_objects_are_applied_and_tiers_go_first() {
        let r = root().join("policies");
        let list: serde_json::Value =
            serde_json::from_str(&policy_objects(std::slice::from_ref(&r)).expect("objects")).expect("json");
        let items = list["items"].as_array().expect("items");
        let kinds: Vec<&str> = items.iter().filter_map(|o| o["kind"].as_str()).collect();
        assert!(!kinds.contains(&"Pod") && !kinds.contains(&"Namespace"), "the snapshot stays out: {kinds:?}");
        assert_eq!(kinds.first(), Some(&"Tier"), "{kinds:?}");
        let last_tier = kinds.iter().rposition(|k| *k == "Tier").expect("tier");
        let first_policy = kinds.iter().position(|k| k.contains("Policy")).expect("policy");
        assert!(last_tier < first_policy);
        // Every policy the engine loads from there is applied.
        let (set, _) = netward::manifest::load_policies(&[r]).into_result().expect("policies");
        assert_eq!(
            items.iter().filter(|o| o["kind"].as_str().is_some_and(|k| k.contains("Policy"))).count(),
            set.policies.len()
        );
    }

    #[test]
    fn probes_and_what_their_results_mean() {
        let ip: IpAddr = "10.0.0.7".parse().expect("ip");
        assert_eq!(
            probe_argv(Protocol::Tcp, ip, 80, Duration::from_millis(700)),
            ["nc", "-vz", "-w", "1", "10.0.0.7", "80"]
        );
        assert_eq!(
            probe_argv(Protocol::Udp, "fd00::7".parse().expect("ip"), 53, Duration::from_secs(2)),
            ["sh", "-c", "echo ping | socat -t 2 -T 2 - UDP:[fd00::7]:53"]
        );
        use Probe::*;
        for (proto, exit, out, err, want) in [
            (Protocol::Tcp, Some(0), "", "Connection to 10.0.0.7 80 port [tcp/http] succeeded!", Allowed),
            (Protocol::Tcp, Some(1), "", "nc: connect to 10.0.0.7 port 80 (tcp) failed: Connection refused", Refused),
            (
                Protocol::Tcp,
                Some(1),
                "",
                "nc: connect to 10.0.0.7 port 80 (tcp) timed out: Operation now in progress",
                Denied,
            ),
            (Protocol::Udp, Some(0), "ok\n", "", Allowed),
            (Protocol::Udp, Some(0), "", "", Denied),
            (Protocol::Udp, Some(1), "", "socat[9] E read(5, ...): Connection refused", Refused),
            (Protocol::Tcp, None, "", "pods \"x\" not found", Error),
        ] {
            assert_eq!(classify(proto, exit, out, err), want, "{proto:?} {exit:?} {err}");
        }
    }
}

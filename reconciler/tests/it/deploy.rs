//! The deployment under `reconciler/deploy/`: what the issue promises of it
//! (least privilege, one capability, read-only root, probes on the HTTP
//! endpoints, every node) is checked on the YAML, and the DaemonSet's own
//! arguments are run against the stand-in API server and a test namespace.
//! Applying it to a real cluster happens in the kind workflow only.

use std::path::PathBuf;
use std::process::Command;

use netward::kubernetes::stand_in::StandIn;
use serde_json::Value;

use super::reconcile::{repo, Netns};

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn yaml(name: &str) -> Value {
    let text = std::fs::read_to_string(deploy_dir().join(name)).expect("deploy file");
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn daemonset_container() -> Value {
    let ds = yaml("daemonset.yaml");
    assert_eq!(ds["kind"], "DaemonSet");
    ds["spec"]["template"]["spec"]["containers"][0].clone()
}

#[test]
fn the_kustomization_names_every_manifest_and_each_parses() {
    let k = yaml("kustomization.yaml");
    let listed: Vec<&str> = k["resources"].as_array().expect("resources").iter().filter_map(Value::as_str).collect();
    for f in &listed {
        let v = yaml(f);
        assert!(v["kind"].is_string() && v["metadata"]["name"].is_string(), "{f}");
    }
    // Every manifest is listed, except the Secret example users write themselves.
    for entry in std::fs::read_dir(deploy_dir()).expect("deploy dir") {
        let name = entry.expect("entry").file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml") && name != "kustomization.yaml" && name != "secret.example.yaml" {
            assert!(listed.contains(&name.as_str()), "{name} is not in the kustomization");
        }
    }
    assert_eq!(yaml("secret.example.yaml")["kind"], "Secret");
}

#[test]
fn the_cluster_role_grants_only_reads_and_the_node_patch() {
    let role = yaml("clusterrole.yaml");
    let mut grants = Vec::new();
    for rule in role["rules"].as_array().expect("rules") {
        for res in rule["resources"].as_array().expect("resources") {
            for verb in rule["verbs"].as_array().expect("verbs") {
                grants.push(format!("{}:{}", res.as_str().unwrap_or(""), verb.as_str().unwrap_or("")));
            }
        }
    }
    grants.sort();
    assert_eq!(
        grants,
        [
            "globalnetworksets:get",
            "globalnetworksets:list",
            "globalnetworksets:watch",
            "namespaces:get",
            "namespaces:list",
            "namespaces:watch",
            "networksets:get",
            "networksets:list",
            "networksets:watch",
            "nodes:get",
            "nodes:list",
            "nodes:patch",
            "nodes:watch",
            "pods:get",
            "pods:list",
            "pods:watch"
        ]
    );
}

#[test]
fn the_daemonset_runs_everywhere_with_net_admin_only_and_a_read_only_root() {
    let ds = yaml("daemonset.yaml");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["serviceAccountName"], "netward");
    assert!(pod["tolerations"]
        .as_array()
        .expect("tolerations")
        .iter()
        .any(|t| t["operator"] == "Exists" && t.get("key").is_none()));
    let c = daemonset_container();
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"]["add"], serde_json::json!(["NET_ADMIN"]));
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    let args: Vec<&str> = c["args"].as_array().expect("args").iter().filter_map(Value::as_str).collect();
    let listen = args.iter().find_map(|a| a.strip_prefix("--listen=")).expect("--listen");
    let port: u64 = listen.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], port);
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], port);
    // The Git credentials come from the Secret, mounted where the args read them.
    let token = args.iter().find_map(|a| a.strip_prefix("--git-token-file=")).expect("token");
    let mounts = c["volumeMounts"].as_array().expect("mounts");
    let git = mounts.iter().find(|m| token.starts_with(m["mountPath"].as_str().unwrap_or("-"))).expect("token mount");
    let vol = pod["volumes"].as_array().expect("volumes").iter().find(|v| v["name"] == git["name"]).expect("volume");
    assert_eq!(vol["secret"]["secretName"], yaml("secret.example.yaml")["metadata"]["name"]);
    // Everything written goes to a mounted volume, the root being read-only.
    for a in ["--cache=", "--status="] {
        let path = args.iter().find_map(|x| x.strip_prefix(a)).expect(a);
        assert!(mounts.iter().any(|m| path.starts_with(m["mountPath"].as_str().unwrap_or("-"))), "{path}");
    }
}

/// The DaemonSet's arguments, with `$(VAR)` from the ConfigMap and the
/// downward API, and mount paths moved under `root`.
fn daemonset_args(repo: &str, node: &str, root: &std::path::Path) -> Vec<String> {
    let config = yaml("configmap.yaml");
    let c = daemonset_container();
    let mut out = Vec::new();
    for a in c["args"].as_array().expect("args").iter().filter_map(Value::as_str) {
        let mut a = a.to_string();
        for (k, v) in config["data"].as_object().expect("data") {
            a = a.replace(&format!("$({k})"), v.as_str().unwrap_or(""));
        }
        a = a.replace("$(NODE_NAME)", node);
        a = a.replace("/var/lib/netward", &root.join("state").display().to_string());
        a = a.replace("/etc/netward/git", &root.join("git").display().to_string());
        if a.starts_with("--repo=") {
            a = format!("--repo={repo}");
        }
        if a.starts_with("--listen=") {
            continue;
        }
        out.push(a);
    }
    assert!(!out.iter().any(|a| a.contains("$(")), "every variable is defined: {out:?}");
    out
}

#[test]
fn the_daemonsets_own_arguments_reconcile_a_node() {
    let Some(ns) = Netns::new("deploy") else { return };
    let dir = repo("deploy");
    let api = StandIn::start().expect("stand-in");
    let kc = dir.join("kubeconfig");
    api.write_kubeconfig(&kc).expect("kubeconfig");
    std::fs::create_dir_all(dir.join("git")).expect("mkdir");
    std::fs::write(dir.join("git/token"), "t0ken\n").expect("token");
    std::fs::write(dir.join("git/webhook-secret"), "s3cret\n").expect("secret");
    let mut args = daemonset_args(dir.to_str().expect("utf-8"), "node-b", &dir);
    // In the pod, --kube finds the in-cluster config; here, the stand-in's kubeconfig.
    args.extend(["--once".into(), "--netns".into(), ns.0.clone()]);
    let out = Command::new(env!("CARGO_BIN_EXE_netward"))
        .args(&args)
        .env("KUBECONFIG", &kc)
        .current_dir(&dir)
        .output()
        .expect("netward");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{args:?}\n{err}");
    assert!(err.contains("\"result\":\"applied\""), "JSON logs, one line per pass: {err}");
    assert!(ns.table().contains("table inet netward"), "audit mode programs the table");
    assert!(dir.join("state/status.json").exists());
    let _ = std::fs::remove_dir_all(dir);
}

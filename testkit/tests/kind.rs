//! `run --backend kind` end to end against stand-ins, since kind cannot run
//! here: `kind`, `docker` and `kubectl` are scripts on PATH (kubectl records
//! what it is asked and what it is fed), the API server is netward's
//! stand-in, and a mirror makes every pod `kubectl apply` creates appear in
//! it, Ready, with an address of the "CNI". Probes go through kube's exec
//! client to the stand-in, whose pods answer as the policy model says, or,
//! to check that failures are caught, with one pair wrong. What this cannot
//! show is how a real CNI behaves: that is the kind workflow's job.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use netward::analysis::{Analysis, View};
use netward::kubernetes::stand_in::StandIn;
use netward::model::Protocol;
use serde_json::{json, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// Fake kind, docker and kubectl in `bin`; kubectl writes each call to `log`
/// and each `apply -f -` input to `applied/N.yaml`.
fn fake_tools(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::fs::create_dir_all(dir.join("applied")).expect("mkdir");
    let script = |name: &str, body: &str| {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}")).expect("write");
        Command::new("chmod").arg("+x").arg(&p).status().expect("chmod");
    };
    script("docker", "echo 28.2.2\n");
    script("kind", "exit 0\n");
    script(
        "kubectl",
        &format!(
            r#"d={dir}
echo "$*" >> "$d/log"
case "$*" in
  *"get configmap netward-testkit"*) printf calico ;;
  *"get apiservice"*) printf True ;;
  *"apply -f -"*) n=$(ls "$d/applied" | wc -l); cat > "$d/applied/$n.tmp"; mv "$d/applied/$n.tmp" "$d/applied/$n.yaml" ;;
  *"-f -"*) cat > /dev/null ;;
esac
exit 0
"#,
            dir = dir.display()
        ),
    );
    bin
}

/// Makes the pods kubectl applied exist in the stand-in, Running and Ready,
/// at 10.96.0.N; returns who has which address.
fn mirror(api: StandIn, dir: PathBuf, ips: Arc<Mutex<BTreeMap<IpAddr, String>>>) {
    std::thread::spawn(move || {
        let mut seen = 0;
        loop {
            let path = dir.join("applied").join(format!("{seen}.yaml"));
            let Ok(text) = std::fs::read_to_string(&path) else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            seen += 1;
            let docs: Vec<Value> = text
                .split("\n---\n")
                .map(|d| d.trim_start_matches("---\n"))
                .filter(|d| !d.trim().is_empty())
                .filter_map(|d| serde_saphyr::from_str(d).ok())
                .collect();
            for mut pod in docs.into_iter().filter(|d| d["kind"] == "Pod") {
                let id = format!(
                    "{}/{}",
                    pod["metadata"]["namespace"].as_str().unwrap_or(""),
                    pod["metadata"]["name"].as_str().unwrap_or("")
                );
                let mut m = ips.lock().expect("lock");
                let ip: IpAddr = format!("10.96.0.{}", m.len() + 10).parse().expect("ip");
                m.insert(ip, id);
                pod["status"] = json!({"phase": "Running", "podIP": ip.to_string(), "podIPs": [{"ip": ip.to_string()}],
                    "conditions": [{"type": "Ready", "status": "True"}]});
                api.apply("pods", pod);
            }
        }
    });
}

/// What a probe pod answers: as the model says, except for `wrong` pairs.
fn answer(
    an: &Analysis,
    ips: &BTreeMap<IpAddr, String>,
    from: &str,
    argv: &[String],
    wrong: &[(&str, &str)],
) -> (i32, String, String) {
    let (proto, ip, port) = if argv[0] == "nc" {
        (Protocol::Tcp, argv[argv.len() - 2].clone(), argv[argv.len() - 1].clone())
    } else {
        let target = argv[2].rsplit(" UDP:").next().unwrap_or("");
        let (ip, port) = target.rsplit_once(':').unwrap_or(("", ""));
        (Protocol::Udp, ip.to_string(), port.to_string())
    };
    let to = ip.parse().ok().and_then(|ip: IpAddr| ips.get(&ip).cloned()).unwrap_or_default();
    let port: u16 = port.parse().unwrap_or(0);
    let allowed = an.flow(from, &to, proto, port, None).map(|f| an.evaluate(&f).allowed).unwrap_or(false);
    let allowed = allowed != wrong.iter().any(|(a, b)| *a == from && *b == to);
    match (proto, allowed) {
        (Protocol::Udp, true) => (0, "ok\n".into(), String::new()),
        (Protocol::Udp, false) => (0, String::new(), String::new()),
        (_, true) => (0, String::new(), format!("Connection to {ip} {port} port succeeded!\n")),
        (_, false) => (1, String::new(), format!("nc: connect to {ip} port {port} (tcp) timed out\n")),
    }
}

fn kind_run(tag: &str, args: &[&str], wrong: &'static [(&'static str, &'static str)]) -> (i32, String, String, String) {
    let dir = netward_test_support::TempDir::new(&format!("kindrun-{tag}"));
    let bin = fake_tools(&dir);
    let api = StandIn::start().expect("stand-in");
    let kc = dir.join("kubeconfig");
    api.write_kubeconfig_as(&kc, "kind-t").expect("kubeconfig");
    let (set, _) = netward::manifest::load_policies(&[root().join("policies")]).into_result().expect("policies");
    let (cluster, _) =
        netward::manifest::load_cluster(&[root().join("policies/cluster.yaml")]).into_result().expect("cluster");
    let an = Arc::new(Analysis::new(&set, &cluster, View::Enforced));
    let ips: Arc<Mutex<BTreeMap<IpAddr, String>>> = Arc::default();
    let (an2, ips2) = (an.clone(), ips.clone());
    api.on_exec(move |pod, argv| answer(&an2, &ips2.lock().expect("lock"), pod, argv, wrong));
    mirror(api.clone(), dir.to_path_buf(), ips);
    let out = Command::new(env!("CARGO_BIN_EXE_netward-testkit"))
        .args(args)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("KUBECONFIG", &kc)
        .current_dir(root())
        .output()
        .expect("run");
    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    let applied: Vec<String> =
        (0..20).filter_map(|i| std::fs::read_to_string(dir.join(format!("applied/{i}.yaml"))).ok()).collect();
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        log,
        applied.join("\n=====\n") + &String::from_utf8_lossy(&out.stderr),
    )
}

const RUN: &[&str] = &[
    "run",
    "policies/tests/three-tier.yaml",
    "policies/tests/isolation.yaml",
    "--backend",
    "kind",
    "--kind-name",
    "t",
];

#[test]
fn verify_on_kind_probes_every_pair_at_the_cnis_addresses() {
    let args = [
        "verify",
        "--backend",
        "kind",
        "--kind-name",
        "t",
        "--policies",
        "policies",
        "--cluster",
        "policies/cluster.yaml",
    ];
    let (code, out, log, _) = kind_run("verify", &args, &[]);
    assert_eq!(code, 0, "{out}\n{log}");
    assert!(out.ends_with("30 probes, 0 disagreements\n"), "{out}");
    let (code, out, _, _) = kind_run("verify-wrong", &args, &[("sandbox/debug", "frontend/web-7d4b9-abcde")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("DISAGREE sandbox/debug -> frontend/web-7d4b9-abcde 8080/TCP"), "{out}");
}

#[test]
fn a_cluster_that_behaves_like_the_model_passes_every_check() {
    let (code, out, log, applied) = kind_run("pass", RUN, &[]);
    assert_eq!(code, 0, "{out}\n{log}\n{applied}");
    assert!(out.contains("PASS  three-tier (36 checks, kind"), "{out}");
    assert!(out.ends_with("39 passed, 0 failed\n"), "{out}");
    // What kubectl was asked, in order: the record read, the world applied,
    // the policies applied (a List, Tiers first, no snapshot objects), and
    // everything removed again, waited for.
    let calls: Vec<&str> = log.lines().collect();
    assert!(calls[0].contains("get configmap netward-testkit"), "{log}");
    assert!(calls.iter().any(|c| c.contains("delete pods -A -l netward.io/testkit=true --wait=true")), "{log}");
    assert!(
        calls.iter().any(|c| c.contains("delete namespace --ignore-not-found --wait=true") && c.contains("frontend")),
        "{log}"
    );
    let policies = applied.split("\n=====\n").find(|a| a.contains("\"kind\":\"List\"")).expect("the policies");
    let list: Value = serde_json::from_str(policies.lines().next().unwrap_or("")).expect("json");
    let kinds: Vec<&str> = list["items"].as_array().expect("items").iter().filter_map(|o| o["kind"].as_str()).collect();
    assert_eq!(kinds[0], "Tier");
    assert!(!kinds.contains(&"Pod"));
}

#[test]
fn a_cluster_that_disagrees_with_the_tests_is_reported_like_the_lab() {
    let (code, out, log, _) = kind_run("fail", RUN, &[("sandbox/debug", "frontend/web-7d4b9-abcde")]);
    assert_eq!(code, 1, "{out}\n{log}");
    assert!(out.contains("sandbox/debug -> frontend/web-7d4b9-abcde 8080/TCP: expected deny, got allowed"), "{out}");
    assert!(out.contains("!"), "the wrong cell is marked: {out}");
    assert!(log.contains("delete namespace"), "cleaned up after a failure too: {log}");
}

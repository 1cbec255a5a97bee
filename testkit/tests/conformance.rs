//! The network-policy-api conformance suite (v0.3.0), translated into test
//! files under `testkit/conformance/network-policy-api/`: every PokeServer
//! assertion of upstream's `conformance/tests/*.go` is one case (397), and
//! every one must hold on the model and in the lab.

use std::path::PathBuf;
use std::process::Command;

use netward_test_support::{gate, Tier};

/// Upstream's PokeServer calls in `conformance/tests/*.go` at v0.3.0.
const ASSERTIONS: usize = 397;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn test_files() -> Vec<String> {
    let dir = root().join("testkit/conformance/network-policy-api/tests");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("the translated suite")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| p.strip_prefix(root()).expect("inside the repository").display().to_string())
        .collect();
    files.sort();
    files
}

fn run(extra: &[&str]) -> (i32, String) {
    let mut args = vec!["run".to_string()];
    args.extend(test_files());
    args.extend(extra.iter().map(|s| s.to_string()));
    let out =
        Command::new(env!("CARGO_BIN_EXE_netward-testkit")).args(&args).current_dir(root()).output().expect("run");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn every_conformance_assertion_holds_on_the_model() {
    let (code, out) = run(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with(&format!("{ASSERTIONS} passed, 0 failed\n")), "{out}");
    assert_eq!(out.matches("PASS  ").count(), test_files().len(), "{out}");
}

#[test]
fn every_conformance_assertion_holds_in_the_lab() {
    if !gate(Tier::Kernel, "conformance in the lab", netward_testkit::lab::check_support()) {
        return;
    }
    let junit = std::env::temp_dir().join(format!("netward-conformance-{}.xml", std::process::id()));
    let (code, out) = run(&["--backend", "lab", "--junit", &junit.to_string_lossy()]);
    let xml = std::fs::read_to_string(&junit).unwrap_or_default();
    let _ = std::fs::remove_file(&junit);
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with(&format!("{ASSERTIONS} passed, 0 failed\n")), "{out}");
    // Only SCTP (no SCTP sockets here) and hostNetwork pods (the lab builds
    // none) are decided on the model; everything else crossed real nftables.
    let modelled = xml.matches("decided on the model only").count();
    let sctp = xml.matches("decided on the model only: no SCTP sockets").count();
    let host = xml.matches("decided on the model only: the lab builds no hostNetwork pods").count();
    assert_eq!(modelled, sctp + host, "{xml}");
    assert!(ASSERTIONS - modelled >= 280, "{} of {ASSERTIONS} probed for real", ASSERTIONS - modelled);
}

/// The same suite as network-policy-api v0.1.7 wrote it, in v1alpha1
/// AdminNetworkPolicy/BaselineAdminNetworkPolicy (from the Go module cache;
/// `.ci/run` downloads the module): `netward convert --to v1alpha2` rewrites
/// every file and its own diff, over the suite's cluster, finds no
/// connection opened or closed.
#[test]
fn converting_the_v1alpha1_suite_changes_no_connection() {
    let cache = Command::new("go").args(["env", "GOMODCACHE"]).output().ok().filter(|o| o.status.success());
    let base = cache
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .map(|c| c.join("sigs.k8s.io/network-policy-api@v0.1.7/conformance/base"));
    let check = match &base {
        Some(b) if b.is_dir() => Ok(()),
        _ => Err("sigs.k8s.io/network-policy-api@v0.1.7 is not in the Go module cache (go mod download it)"),
    };
    if !gate(Tier::ControlPlane, "v1alpha1 conformance conversion", check) {
        return;
    }
    let base = base.expect("checked");
    let mut files = Vec::new();
    for dir in ["admin_network_policy", "baseline_admin_network_policy", "api_integration"] {
        for e in std::fs::read_dir(base.join(dir)).expect("suite dir") {
            files.push(e.expect("entry").path());
        }
    }
    files.sort();
    assert!(files.len() >= 20, "{files:?}");
    let cluster = root().join("testkit/conformance/network-policy-api/cluster.yaml");
    let mut objects = 0;
    for f in &files {
        let out = Command::new(std::path::Path::new(env!("CARGO_BIN_EXE_netward-testkit")).with_file_name("netward"))
            .args(["convert", "--to", "v1alpha2"])
            .arg(f)
            .arg("--cluster")
            .arg(&cluster)
            .output()
            .expect("run netward");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {err}", f.display());
        assert!(
            err.contains("no connection opened or closed over 10 endpoints of the snapshot"),
            "{}: {err}",
            f.display()
        );
        let n: usize =
            err.split("converted ").nth(1).and_then(|s| s.split(' ').next()).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!(n >= 1, "{}: nothing converted: {err}", f.display());
        objects += n;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("v1alpha1"), "{}: {text}", f.display());
    }
    assert!(objects >= 22, "{objects} objects converted");
}

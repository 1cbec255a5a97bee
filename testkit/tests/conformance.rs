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

//! `netward-testkit` as users run it: test files on the model and in a lab,
//! JUnit output, verify, and a lab's whole life (up, probe, apply, down).

use netward_test_support::{gate, Tier};
use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn testkit(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_netward-testkit")).args(args).current_dir(root()).output().expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn lab_supported() -> bool {
    gate(Tier::Kernel, "lab CLI test", netward_testkit::lab::check_support())
}

#[test]
fn the_examples_tests_pass_on_the_model() {
    let (code, out, err) = testkit(&["run", "policies/tests/three-tier.yaml", "policies/tests/isolation.yaml"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("PASS  three-tier (36 checks, model"), "{out}");
    assert!(out.ends_with("39 passed, 0 failed\n"), "{out}");
}

#[test]
fn failures_show_the_table_with_wrong_cells_and_why() {
    let junit = std::env::temp_dir().join(format!("netward-junit-{}.xml", std::process::id()));
    let (code, out, _) = testkit(&["run", "testkit/tests/fixtures/wrong.yaml", "--junit", &junit.to_string_lossy()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL  wrong: 4 of 31 checks failed"), "{out}");
    assert!(out.contains("testkit/tests/fixtures/wrong.yaml:6:5: sandbox/debug -> database/postgres-0 5432/TCP: expected allow, got denied"), "{out}");
    assert!(out.contains("backend/api-5f6c7-klmno\tX\t-\t.!"), "the wrong cell is marked: {out}");
    assert!(out.contains("denied by GlobalNetworkPolicy isolate-environments rule 0 (tier platform) at policies/platform/namespace-isolation.yaml:13:5"), "{out}");
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(xml.contains("<testsuite name=\"wrong\" tests=\"31\" failures=\"4\" errors=\"0\""), "{xml}");
    assert_eq!(xml.matches("<failure ").count(), 4);
    let _ = std::fs::remove_file(junit);
}

#[test]
fn a_broken_test_file_is_an_error_with_its_place() {
    let (code, out, _) = testkit(&["run", "testkit/tests/fixtures/broken.yaml"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("testkit/tests/fixtures/broken.yaml:4:76: error: expect must be allow or deny, not \"maybe\""),
        "{out}"
    );
}

#[test]
fn the_examples_tests_pass_in_the_lab_and_verify_finds_no_disagreement() {
    if !lab_supported() {
        return;
    }
    let (code, out, err) = testkit(&["run", "policies/tests/three-tier.yaml", "--backend", "lab"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("PASS  three-tier (36 checks, lab"), "{out}");
    // Every pair over IPv4 and IPv6 (the lab's pods are dual-stack), wired
    // by ptp (the default) and by bridge.
    let (code, out, err) = testkit(&["verify", "--policies", "policies", "--cluster", "policies/cluster.yaml"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.trim_end().ends_with("60 probes, 0 disagreements"), "{out}");
    let (code, out, err) = testkit(&[
        "verify",
        "--backend",
        "lab",
        "--cni",
        "bridge",
        "--policies",
        "policies",
        "--cluster",
        "policies/cluster.yaml",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.trim_end().ends_with("60 probes, 0 disagreements"), "{out}");
    let (code, out, err) = testkit(&["run", "policies/tests/three-tier.yaml", "--backend", "lab", "--cni", "bridge"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("PASS  three-tier (36 checks, lab"), "{out}");
}

#[test]
fn a_lab_lives_from_up_to_down() {
    if !lab_supported() {
        return;
    }
    let name = format!("cli{}", std::process::id() % 10_000);
    let c = ["--cluster", "policies/cluster.yaml"];
    let (code, out, err) =
        testkit(&["lab", "up", c[0], c[1], "--policies", "policies", "--name", &name, "--cni", "bridge"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("lab {name} is up: 6 pods wired by bridge")), "{out}");
    let probe = |to: &str, port: &str| {
        testkit(&[
            "lab",
            "probe",
            c[0],
            c[1],
            "--name",
            &name,
            "--from",
            "frontend/web-7d4b9-abcde",
            "--to",
            to,
            "--port",
            port,
        ])
    };
    let (code, out, _) = probe("backend/api-5f6c7-fghij", "8080/tcp");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(": allowed in"), "{out}");
    let (code, out, _) = probe("database/postgres-0", "5432/tcp");
    assert_eq!(code, 1, "{out}");
    // An address no pod owns is answered by the lab's outside (egress allow-list permits 443 to the partner API).
    let (code, out, _) = probe("203.0.113.10", "443/tcp");
    assert!(code == 0 || out.contains("refused"), "{out}");
    // Policies change on the running lab: only the difference is applied.
    let (code, out, err) = testkit(&["lab", "apply", "--policies", "policies/platform", "--name", &name]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("node node-a:") && out.contains("deleted"), "{out}");
    let (code, out, _) = probe("database/postgres-0", "5432/tcp");
    assert_eq!(code, 0, "without the namespace default-deny, web reaches postgres: {out}");
    let (code, out, _) = testkit(&["lab", "down", "--name", &name]);
    assert_eq!(code, 0);
    assert!(out.contains("removed 10 namespaces"), "{out}");
    let list =
        String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().expect("ip").stdout).into_owned();
    assert!(!list.contains(&format!("nwlab-keep-{name}-")), "{list}");
    let state = netward_testkit::cluster_lab::lab_dir(&format!("nwlab-keep-{name}-"));
    assert!(!state.exists(), "lab down removes the CNI state in {}", state.display());
}

#[test]
fn inline_pods_run_on_the_model_and_in_the_lab() {
    let (code, out, err) = testkit(&["run", "testkit/tests/fixtures/inline.yaml"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("PASS  inline (2 checks, model"), "{out}");
    if !lab_supported() {
        return;
    }
    let (code, out, err) = testkit(&["run", "testkit/tests/fixtures/inline.yaml", "--backend", "lab"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("PASS  inline (2 checks, lab"), "{out}");
}

/// The kind backend says up front what is missing, before it touches anything.
#[test]
fn the_kind_backend_names_what_is_missing_before_it_starts() {
    let bin = std::env::temp_dir().join(format!("netward-nokind-{}", std::process::id()));
    std::fs::create_dir_all(&bin).expect("mkdir");
    // A Docker client with no engine behind it, as on this machine and many CI runners.
    let docker = bin.join("docker");
    std::fs::write(
        &docker,
        "#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2\nexit 1\n",
    )
    .expect("write");
    Command::new("chmod").arg("+x").arg(&docker).status().expect("chmod");
    for args in [
        &["kind", "up", "--config", "kind-configs/calico.yaml"][..],
        &["kind", "down"],
        &["run", "policies/tests/three-tier.yaml", "--backend", "kind"],
        &["verify", "--backend", "kind", "--policies", "policies", "--cluster", "policies/cluster.yaml"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_netward-testkit"))
            .args(args)
            .env("PATH", &bin)
            .current_dir(root())
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("kind: not found on PATH"), "{args:?}: {err}");
        assert!(err.contains("kubectl: not found on PATH"), "{err}");
        assert!(
            err.contains("docker: the client is here but no engine answers (Cannot connect to the Docker daemon"),
            "{err}"
        );
        assert!(out.stdout.is_empty(), "nothing ran: {}", String::from_utf8_lossy(&out.stdout));
    }
    let _ = std::fs::remove_dir_all(bin);
}

#[test]
fn the_probe_answers_help_and_version_and_refuses_a_port_that_is_not_one() {
    let probe = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_netward-probe")).args(args).output().expect("probe");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, _) = probe(&["--help"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("netward-probe serve") && out.contains("bench connect|udp|bulk"), "{out}");
    let (code, out, _) = probe(&["--version"]);
    assert_eq!((code, out.trim()), (Some(0), format!("netward-probe {}", env!("CARGO_PKG_VERSION")).as_str()));
    // Refused before anything is bound: the port list is read first.
    let (code, out, err) = probe(&["serve", "--tcp", "8080,99999"]);
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(!out.contains("ready") && err.contains("not a port: \"99999\""), "{out}{err}");
    let (code, _, err) = probe(&["serve", "--tpc", "80"]);
    assert_eq!(code, Some(3));
    assert!(err.contains("unknown option \"--tpc\""), "{err}");
}

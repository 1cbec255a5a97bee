//! `netward diff` on real Git repositories built by the tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use netward_test_support::TempDir;

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.email=test@netward", "-c", "user.name=netward test", "-c", "init.defaultBranch=main"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(ok.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&ok.stderr));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).expect("copy");
        }
    }
}

/// A repository whose first commit is the bundled example.
fn example_repo(tag: &str) -> TempDir {
    let dir = TempDir::new(&format!("diff-{tag}"));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("root").to_path_buf();
    copy_dir(&root.join("policies"), &dir.join("policies"));
    git(&dir, &["init", "-q"]);
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-qm", "the example"]);
    dir
}

fn diff(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_netward"))
        .arg("diff")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("netward diff");
    let base = String::from_utf8_lossy(
        &Command::new("git")
            .args(["-C", &dir.to_string_lossy(), "rev-parse", "--short=8", "main"])
            .output()
            .expect("git")
            .stdout,
    )
    .trim()
    .to_string();
    let clean = |s: &[u8]| String::from_utf8_lossy(s).replace(&base, "BASE");
    (out.status.code().unwrap_or(-1), clean(&out.stdout), clean(&out.stderr))
}

#[test]
fn removing_a_default_deny_opens_ingress_and_loses_dns() {
    let dir = example_repo("deny");
    std::fs::remove_file(dir.join("policies/frontend/default-deny.yaml")).expect("rm");
    let (code, out, err) =
        diff(&dir, &["--path", "policies", "--cluster", "policies/cluster.yaml", "--format", "json"]);
    assert_eq!(code, 1, "connectivity changed: {out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let closed = v["closed"].as_array().expect("closed");
    let dns = closed
        .iter()
        .find(|c| c["from"] == "frontend/web-7d4b9-abcde" && c["port"] == "53/UDP")
        .expect("web loses DNS");
    assert_eq!(dns["risk"], "DNS lost");
    assert!(dns["before"]["by"].as_str().unwrap_or("").contains("frontend/allow-dns"), "{dns}");
    let opened = v["opened"].as_array().expect("opened");
    assert!(
        opened.iter().any(|c| c["from"] == "kube-system/coredns-6d8c4-pqrst" && c["to"] == "frontend/web-7d4b9-abcde"),
        "{out}"
    );
    let removed: Vec<&str> = v["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .filter(|o| o["kind"] == "removed")
        .map(|o| o["id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        removed,
        vec!["KubernetesNetworkPolicy frontend/allow-dns", "KubernetesNetworkPolicy frontend/default-deny"]
    );
    let (code, md, _) = diff(&dir, &["--path", "policies", "--cluster", "policies/cluster.yaml", "--format", "md"]);
    assert_eq!(code, 1);
    insta::assert_snapshot!("diff_default_deny_removed_md", md);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_moved_and_reformatted_policy_is_yaml_only_and_exits_zero() {
    let dir = example_repo("move");
    std::fs::create_dir_all(dir.join("policies/web")).expect("mkdir");
    git(&dir, &["mv", "policies/frontend/web.yaml", "policies/web/web.yaml"]);
    let p = dir.join("policies/database/postgres.yaml");
    let text = std::fs::read_to_string(&p)
        .expect("read")
        .replace("# Postgres accepts only the API.", "# Postgres: the API only.");
    std::fs::write(&p, text.replace("ports:\n    - port: postgres", "ports:\n    - {port: postgres}")).expect("write");
    git(&dir, &["commit", "-qam", "move and reformat"]);
    let (code, out, err) =
        diff(&dir, &["--base", "HEAD~1", "--head", "HEAD", "--path", "policies", "--cluster", "policies/cluster.yaml"]);
    assert_eq!(code, 0, "no connection changed: {out}{err}");
    assert!(out.contains("0 newly allowed, 0 newly denied"), "{out}");
    assert!(out.contains("~ KubernetesNetworkPolicy frontend/web-to-api Moved (YAML only)"), "{out}");
    assert!(out.contains("~ KubernetesNetworkPolicy database/postgres Modified (YAML only)"), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_broken_revision_is_an_error_naming_revision_file_and_line() {
    let dir = example_repo("broken");
    std::fs::write(dir.join("policies/backend/api.yaml"), "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: api, namespace: backend}\nspec:\n  podSelecter: {}\n").expect("write");
    git(&dir, &["commit", "-qam", "typo"]);
    let (code, _, err) =
        diff(&dir, &["--base", "HEAD~1", "--head", "HEAD", "--path", "policies", "--cluster", "policies/cluster.yaml"]);
    assert_eq!(code, 2, "bad input is an error in diff: {err}");
    assert!(err.contains(":policies/backend/api.yaml:5:3: error: unknown field \"podSelecter\""), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn without_a_snapshot_the_repositorys_own_workloads_are_the_endpoints() {
    let dir = example_repo("workloads");
    std::fs::write(
        dir.join("policies/frontend/deploy.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: admin, namespace: frontend}\nspec:\n  template:\n    metadata: {labels: {app: admin}}\n    spec:\n      containers: [{name: c, ports: [{name: http, containerPort: 9000}]}]\n",
    )
    .expect("write");
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-qm", "admin"]);
    std::fs::remove_file(dir.join("policies/frontend/default-deny.yaml")).expect("rm");
    let (code, out, _) = diff(&dir, &["--path", "policies", "--format", "md"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("the repository's own Pods and workload templates (7 endpoints)"), "{out}");
    assert!(out.contains("`frontend/admin`"), "the Deployment's pod takes part: {out}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_broken_guard_is_reported_first() {
    let dir = example_repo("guards");
    std::fs::write(
        dir.join("guards.yaml"),
        "guards:\n  - {from: frontend/web-7d4b9-abcde, to: kube-system/coredns-6d8c4-pqrst, port: 53/UDP, expect: allow}\n  - {from: sandbox/debug, to: database/postgres-0, port: 5432/TCP, expect: deny}\n",
    )
    .expect("write");
    std::fs::remove_file(dir.join("policies/frontend/default-deny.yaml")).expect("rm");
    let (code, out, err) =
        diff(&dir, &["--path", "policies", "--cluster", "policies/cluster.yaml", "--guards", "guards.yaml"]);
    assert_eq!(code, 1, "{out}{err}");
    let first_lines: Vec<&str> = out.lines().take(2).collect();
    assert!(first_lines[1].starts_with("! guard broken (guards.yaml:2:5): frontend/web-7d4b9-abcde -> kube-system/coredns-6d8c4-pqrst 53/UDP must be allowed"), "{out}");
    assert_eq!(out.matches("guard broken").count(), 1, "the deny guard holds: {out}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn with_no_pods_at_all_representatives_of_the_selectors_stand_in() {
    let dir = example_repo("reps");
    std::fs::remove_file(dir.join("policies/cluster.yaml")).expect("rm");
    git(&dir, &["commit", "-qam", "no snapshot"]);
    std::fs::remove_file(dir.join("policies/backend/api.yaml")).expect("rm");
    let (code, out, err) = diff(&dir, &["--path", "policies"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("one representative endpoint per label combination"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("- backend/rep-app-api")
            && l.contains("-> database/rep-app-postgres")
            && l.contains("5432/TCP")),
        "without its policy, api (still default-denied) loses postgres, at the level of label classes: {out}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Applies an edit to a fresh copy of the example and returns the JSON report.
fn scenario(tag: &str, edit: impl Fn(&Path)) -> (i32, String) {
    let dir = example_repo(tag);
    edit(&dir);
    let (code, out, err) =
        diff(&dir, &["--path", "policies", "--cluster", "policies/cluster.yaml", "--format", "json"]);
    assert!(code == 0 || code == 1, "{err}");
    let _ = std::fs::remove_dir_all(dir);
    (code, out)
}

#[test]
fn snapshots_of_typical_changes() {
    // Added: a Calico policy in the platform tier that opens sandbox -> web (ordered before the isolation).
    let (code, added) = scenario("added", |d| {
        std::fs::write(
            d.join("policies/platform/sandbox-web.yaml"),
            "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: sandbox-to-web}\nspec:\n  tier: platform\n  order: 5\n  selector: app == 'web'\n  types: [Ingress]\n  ingress:\n  - action: Allow\n    protocol: TCP\n    source: {namespaceSelector: env == 'dev'}\n    destination: {ports: [8080]}\n",
        )
        .expect("write");
    });
    assert_eq!(code, 1);
    insta::assert_snapshot!("diff_added_calico_allow_json", added);
    // Tightened: the API no longer accepts the web frontend.
    let (code, tightened) = scenario("tightened", |d| {
        let p = d.join("policies/backend/api.yaml");
        let t =
            std::fs::read_to_string(&p).expect("read").replace("matchLabels: {app: web}", "matchLabels: {app: admin}");
        std::fs::write(p, t).expect("write");
    });
    assert_eq!(code, 1);
    insta::assert_snapshot!("diff_tightened_json", tightened);
    // Reordered: the isolation Deny now runs after a Pass-everything policy, so dev reaches prod's allows.
    let (code, reordered) = scenario("reordered", |d| {
        std::fs::write(
            d.join("policies/platform/pass-first.yaml"),
            "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: pass-first}\nspec:\n  tier: platform\n  order: 1\n  namespaceSelector: env == 'prod'\n  types: [Ingress]\n  ingress:\n  - action: Pass\n",
        )
        .expect("write");
    });
    // Dev -> prod stays denied by the teams' default-deny: only YAML changed.
    assert_eq!(code, 0, "{reordered}");
    insta::assert_snapshot!("diff_reordered_pass_json", reordered);
}

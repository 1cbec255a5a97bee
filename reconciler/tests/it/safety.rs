//! Regressions for #13: inputs that used to make netward enforce less than
//! the repository says, crash it, or report something untrue. Each test
//! reproduces what a new user did and asserts the refusal, the exit code and
//! that the last good ruleset stays in force.

use std::path::Path;
use std::process::Command;

use netward_test_support::TempDir;

use super::reconcile::{git, repo, Netns};

fn netward(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_netward")).args(args).current_dir(dir).output().expect("netward");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `reconcile --once` of `dir` into `ns` with the status in `dir/status.json`.
fn once(dir: &Path, ns: &Netns, extra: &[&str]) -> (i32, String) {
    let status = dir.join("status.json").display().to_string();
    let repo = dir.display().to_string();
    let mut args = vec!["reconcile", "--once", "--cluster", "policies/cluster.yaml", "--node", "node-b"];
    args.extend(["--netns", &ns.0, "--repo", &repo, "--status", &status]);
    if !extra.contains(&"--path") {
        args.extend(["--path", "policies"]);
    }
    args.extend(extra);
    let (code, _, err) = netward(dir, &args);
    (code, err)
}

fn status(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("status.json")).expect("status written")).expect("json")
}

#[test]
fn a_policy_path_that_does_not_exist_is_refused_and_the_last_good_table_stays() {
    let Some(ns) = Netns::new("path") else { return };
    let dir = repo("safety-path");
    let (code, err) = once(&dir, &ns, &[]);
    assert_eq!(code, 0, "{err}");
    let table = ns.table();
    assert!(table.contains("chain pod-"), "{table}");
    // Before: `--path polices` loaded zero policies, applied "deleted" and exited 0.
    let (code, err) = once(&dir, &ns, &["--path", "polices"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("policy path \"polices\" does not exist in commit"), "{err}");
    assert_eq!(ns.table(), table, "every pod stays isolated as before");
    let s = status(&dir);
    assert!(
        s["refused"].as_array().is_some_and(|r| r.is_empty()),
        "not remembered: the flag, not the commit, was wrong: {s}"
    );
    // With the flag fixed, the same commit applies again at once.
    let (code, err) = once(&dir, &ns, &[]);
    assert_eq!(code, 0, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_commit_that_deletes_every_policy_is_refused_unless_the_repository_says_so() {
    let Some(ns) = Netns::new("empty") else { return };
    let dir = repo("safety-empty");
    assert_eq!(once(&dir, &ns, &[]).0, 0);
    let table = ns.table();
    // Keep the snapshot and netward.yaml, delete every policy file.
    for d in ["backend", "database", "frontend", "platform", "staged"] {
        git(&dir, &["rm", "-rq", &format!("policies/{d}")]);
    }
    git(&dir, &["commit", "-qm", "oops"]);
    let oops = git(&dir, &["rev-parse", "HEAD"]);
    let (code, err) = once(&dir, &ns, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("has no policies") && err.contains("allowNoPolicies"), "{err}");
    assert_eq!(ns.table(), table);
    assert_eq!(status(&dir)["refused"][0]["commit"], oops.as_str());
    // Saying so explicitly deletes them.
    let settings = dir.join("policies/netward.yaml");
    let old = std::fs::read_to_string(&settings).unwrap_or_default();
    std::fs::write(&settings, format!("{old}\nallowNoPolicies: true\n")).expect("write");
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-qm", "really delete them"]);
    let (code, err) = once(&dir, &ns, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(!ns.table().contains("chain pol-"), "no policy chains are left");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_dry_run_never_claims_a_commit_is_applied_and_every_pass_says_how_it_ended() {
    let Some(ns) = Netns::new("dry") else { return };
    let dir = repo("safety-dry");
    let head = git(&dir, &["rev-parse", "HEAD"]);
    let (code, err) = once(&dir, &ns, &["--mode", "dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("result=dry-run"), "{err}");
    let s = status(&dir);
    assert!(s["applied"].is_null(), "nothing is enforced: {s}");
    assert_eq!(s["dry_run"], head.as_str());
    assert!(ns.table().is_empty(), "a dry-run programs nothing");
    // Enforce, then a second --once with nothing new still prints its outcome.
    assert_eq!(once(&dir, &ns, &[]).0, 0);
    let (code, err) = once(&dir, &ns, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("result=unchanged"), "a pass with nothing new prints its outcome too: {err:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_corrupt_status_file_is_an_error_and_is_not_overwritten() {
    let Some(ns) = Netns::new("corrupt") else { return };
    let dir = repo("safety-corrupt");
    let garbage = "{\"applied\": \"abc\",\n  \"refused\": [oops]\n}\n";
    std::fs::write(dir.join("status.json"), garbage).expect("write");
    let (code, err) = once(&dir, &ns, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("status.json:2:") && err.contains("not a netward status file"), "{err}");
    assert_eq!(std::fs::read_to_string(dir.join("status.json")).expect("read"), garbage, "left as it was");
    assert!(ns.table().is_empty(), "no pass ran");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_rollback_says_so_and_exits_non_zero() {
    let Some(ns) = Netns::new("rollback") else { return };
    let dir = repo("safety-rollback");
    assert_eq!(once(&dir, &ns, &[]).0, 0);
    let table = ns.table();
    let status_file = dir.join("status.json").display().to_string();
    let repo = dir.display().to_string();
    let rollback = |to: &str| {
        let args = ["rollback", "--to", to, "--status", &status_file, "--repo", &repo, "--path", "policies"];
        let node = ["--cluster", "policies/cluster.yaml", "--node", "node-b", "--netns", &ns.0];
        netward(&dir, &[&args[..], &node[..]].concat())
    };
    let (code, _, err) = rollback("deadbeef");
    assert_eq!(code, 2, "{err}");
    assert!(!err.contains("rolled back"), "{err}");
    assert!(err.contains("rollback to deadbeef error"), "{err}");
    assert_eq!(ns.table(), table);
    // A multi-byte character across byte 12 of --to used to panic.
    let (code, _, err) = rollback("aaaaaaaaaaa€");
    assert_eq!(code, 2, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A Calico policy with an application-layer match, and a pod it selects.
const HTTP_POLICY: &str = "apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: get-only, namespace: backend}
spec:
  selector: app == 'api'
  types: [Ingress]
  ingress:
  - action: Allow
    protocol: TCP
    http: {methods: [GET]}
    destination: {ports: [8080]}
";

#[test]
fn http_rules_are_loud_in_every_pass_and_in_the_table_and_l7_deny_fails_closed() {
    let Some(ns) = Netns::new("l7") else { return };
    let dir = repo("safety-l7");
    std::fs::write(dir.join("policies/backend/get-only.yaml"), HTTP_POLICY).expect("write");
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-qm", "an http rule"]);
    let (code, err) = once(&dir, &ns, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("get-only.yaml:8:5") && err.contains("http match not enforced"), "{err}");
    assert!(status(&dir)["warnings"][0].as_str().is_some_and(|w| w.contains("http match not enforced")));
    let table = ns.table();
    assert!(table.contains("(http match not enforced)"), "the rule's comment says so: {table}");
    // A pass with nothing new warns again.
    let (_, err) = once(&dir, &ns, &[]);
    assert!(err.contains("http match not enforced"), "{err}");
    // --l7 deny: the rule matches nothing, so no rule of the policy's chain accepts.
    let (code, err) = once(&dir, &ns, &["--l7", "deny"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("matches nothing (--l7 deny)"), "{err}");
    assert!(!ns.table().contains("(http match not enforced)"), "{}", ns.table());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn diff_with_a_path_in_neither_revision_is_an_error() {
    let dir = repo("safety-diff");
    let (code, out, err) = netward(&dir, &["diff", "--base", "HEAD", "--path", "polices"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("policy path \"polices\" exists in neither"), "{err}");
    // A path that exists on one side only is a real change: everything opens.
    std::fs::create_dir_all(dir.join("new")).expect("mkdir");
    std::fs::write(dir.join("new/p.yaml"), HTTP_POLICY).expect("write");
    let (code, out, err) =
        netward(&dir, &["diff", "--base", "HEAD", "--path", "new", "--cluster", "policies/cluster.yaml"]);
    assert_eq!(code, 1, "{out}{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hostile_selectors_are_errors_at_their_column_never_a_crash() {
    let dir = TempDir::new("safety-sel");
    let deep = format!("{}has(a){}", "(".repeat(10_000), ")".repeat(10_000));
    let policy = format!(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {{name: deep}}\nspec:\n  selector: \"{deep}\"\n"
    );
    std::fs::write(dir.join("p.yaml"), policy).expect("write");
    let (code, out, err) = netward(&dir, &["validate", "p.yaml"]);
    assert_eq!(code, 1, "exit 1, not a SIGABRT: {err}");
    assert!(out.contains("p.yaml:5:") && out.contains("at most 1024"), "{out}");
    let bangs = format!("{}has(a)", "!".repeat(100_000));
    let (code, _, err) = netward(&dir, &["select", &bangs, "--cluster", "p.yaml"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("at most 1024"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn more_than_256_workload_templates_get_distinct_addresses() {
    // The 256th made-up address overflowed a u8 (a panic in debug builds).
    let dir = repo("safety-templates");
    let mut text = String::new();
    for i in 0..300 {
        text.push_str(&format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: w{i}, namespace: backend}}\nspec:\n  template:\n    metadata: {{labels: {{app: w{i}}}}}\n    spec: {{containers: [{{name: c, ports: [{{containerPort: 80}}]}}]}}\n---\n"
        ));
    }
    std::fs::write(dir.join("policies/backend/workloads.yaml"), text).expect("write");
    let (code, out, err) = netward(&dir, &["diff", "--base", "HEAD", "--path", "policies", "--format", "json"]);
    assert!(code == 0 || code == 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let source = v["endpoints"].as_str().expect("the endpoint source");
    let n: usize = source
        .rsplit('(')
        .next()
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{source}"));
    assert!(n >= 300, "every template is an endpoint: {source}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn diff_compares_container_ports_without_a_name() {
    // Before: only named ports were compared, so opening 5433 to every
    // namespace was not listed.
    let dir = repo("safety-ports");
    let cluster = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: db}}\n- {apiVersion: v1, kind: Namespace, metadata: {name: web}}\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: pg-0, namespace: db, labels: {app: pg}}\n  spec: {nodeName: n1, containers: [{name: pg, ports: [{containerPort: 5433}]}]}\n  status: {phase: Running, podIP: 10.0.0.2}\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: web-0, namespace: web, labels: {app: web}}\n  spec: {nodeName: n1, containers: [{name: web}]}\n  status: {phase: Running, podIP: 10.0.0.3}\n";
    std::fs::write(dir.join("snap.yaml"), cluster).expect("write");
    let deny = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: pg, namespace: db}\nspec:\n  podSelector: {matchLabels: {app: pg}}\n  policyTypes: [Ingress]\n";
    std::fs::create_dir_all(dir.join("ports")).expect("mkdir");
    std::fs::write(dir.join("ports/pg.yaml"), deny).expect("write");
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-qm", "pg isolated"]);
    let open = format!("{deny}  ingress:\n  - from: [{{namespaceSelector: {{}}}}]\n    ports: [{{port: 5433}}]\n");
    std::fs::write(dir.join("ports/pg.yaml"), open).expect("write");
    let (code, out, err) = netward(&dir, &["diff", "--base", "HEAD", "--path", "ports", "--cluster", "snap.yaml"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("web/web-0") && out.contains("5433/TCP"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn validate_warns_about_a_directory_without_policy() {
    let dir = TempDir::new("safety-nopol");
    std::fs::write(dir.join("deploy.yaml"), "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n")
        .expect("write");
    let (code, out, err) = netward(&dir, &["validate", "."]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(".: warning: no policy objects in this directory"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn diff_marks_connections_an_http_match_decides() {
    let dir = repo("safety-diff-http");
    std::fs::create_dir_all(dir.join("l7")).expect("mkdir");
    let deny = HTTP_POLICY.replace(
        "  - action: Allow\n    protocol: TCP\n    http: {methods: [GET]}\n    destination: {ports: [8080]}\n",
        "",
    );
    std::fs::write(dir.join("l7/p.yaml"), &deny).expect("write");
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-qm", "api isolated"]);
    std::fs::write(dir.join("l7/p.yaml"), HTTP_POLICY).expect("write");
    for format in ["text", "md", "json"] {
        let (code, out, err) = netward(
            &dir,
            &["diff", "--base", "HEAD", "--path", "l7", "--cluster", "policies/cluster.yaml", "--format", format],
        );
        assert_eq!(code, 1, "{out}{err}");
        assert!(out.contains("8080/TCP") && out.contains("http match not evaluated"), "{format}: {out}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rules_the_node_cannot_enforce_are_named_with_what_they_fail_to_do() {
    let yaml = "apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: no-svc, namespace: backend}
spec:
  selector: all()
  types: [Egress]
  egress:
  - action: Deny
    destination: {services: {name: secrets}}
  - action: Allow
";
    let set = crate::support::policies(yaml);
    let w = netward::validate::not_enforced(&set, netward::enforce::L7::Allow);
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(w[0].starts_with("p.yaml:8:5:") && w[0].contains("what it would deny is NOT denied"), "{}", w[0]);
}

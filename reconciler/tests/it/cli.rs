//! The `netward` binary as users run it, on the bundled example; output is
//! snapshot-tested so the README's examples cannot silently drift.

use netward_test_support::{gate, TempDir, Tier};
use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// Runs netward from the workspace root; returns (exit code, stdout, stderr).
fn netward(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_netward")).args(args).current_dir(root()).output().expect("run netward");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("utf-8 stdout"),
        String::from_utf8(out.stderr).expect("utf-8 stderr"),
    )
}

const EXAMPLE: [&str; 4] = ["--policies", "policies", "--cluster", "policies/cluster.yaml"];

fn with_example(cmd: &str, rest: &[&str]) -> Vec<String> {
    let mut v = vec![cmd.to_string()];
    v.extend(EXAMPLE.iter().map(|s| s.to_string()));
    v.extend(rest.iter().map(|s| s.to_string()));
    v
}

fn run(args: Vec<String>) -> (i32, String, String) {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    netward(&refs)
}

#[test]
fn validate_the_example_is_clean() {
    let (code, out, err) = netward(&["validate", "policies", "--cluster", "policies/cluster.yaml"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "");
    insta::assert_snapshot!("validate_example_stderr", err);
}

#[test]
fn validate_reports_every_problem_with_its_place() {
    let (code, out, err) = netward(&[
        "validate",
        "reconciler/tests/fixtures/bad/policies.yaml",
        "--cluster",
        "reconciler/tests/fixtures/bad/cluster.yaml",
    ]);
    assert_eq!(code, 1);
    insta::assert_snapshot!("validate_bad", format!("{out}--- stderr\n{err}"));
}

#[test]
fn validate_missing_path_is_an_error() {
    let (code, out, _) = netward(&["validate", "no/such/dir"]);
    assert_eq!(code, 1);
    assert!(out.starts_with("no/such/dir: error: no such file or directory"), "{out}");
}

#[test]
fn matrix_json_contract() {
    let (code, out, err) =
        run(with_example("matrix", &["--port", "8080/TCP", "5432/TCP", "53/UDP", "--format", "json"]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(v["endpoints"].as_array().map(Vec::len), Some(6));
    assert_eq!(v["ports"][0]["port"], "8080/TCP");
    assert_eq!(
        v["ports"][0]["allowed"]["frontend/web-7d4b9-abcde"],
        serde_json::json!(["backend/api-5f6c7-fghij", "backend/api-5f6c7-klmno"])
    );
    insta::assert_snapshot!("matrix_json", out);
}

#[test]
fn matrix_table_and_other_formats() {
    let (code, table, _) = run(with_example("matrix", &["--port", "8080/TCP", "53/UDP"]));
    assert_eq!(code, 0);
    insta::assert_snapshot!("matrix_table", table);
    let (_, md, _) = run(with_example("matrix", &["--port", "5432/TCP", "--format", "md"]));
    insta::assert_snapshot!("matrix_md", md);
    let (_, csv, _) = run(with_example("matrix", &["--port", "5432/TCP", "--format", "csv"]));
    insta::assert_snapshot!("matrix_csv", csv);
    let (_, summary, _) =
        run(with_example("matrix", &["--port", "8080/TCP", "5432/TCP", "53/UDP", "--format", "summary"]));
    insta::assert_snapshot!("matrix_summary", summary);
}

#[test]
fn matrix_staged_view_shows_what_a_staged_policy_would_change() {
    let (_, enforced, _) = run(with_example("matrix", &["--port", "8080/TCP", "--format", "summary"]));
    let (_, staged, _) = run(with_example("matrix", &["--port", "8080/TCP", "--format", "summary", "--staged"]));
    // The staged policy opens web to dev namespaces, but the platform tier still
    // denies dev -> prod: the matrix must not change.
    assert_eq!(enforced, staged);
}

#[test]
fn explain_names_tier_policy_and_rule_with_file_and_line() {
    let (code, out, err) = run(with_example(
        "explain",
        &["--from", "frontend/web-7d4b9-abcde", "--to", "backend/api-5f6c7-fghij", "--port", "8080/TCP"],
    ));
    assert_eq!(code, 0, "{err}");
    insta::assert_snapshot!("explain_allowed", out);
    let (code, out, _) =
        run(with_example("explain", &["--from", "sandbox/debug", "--to", "database/postgres-0", "--port", "5432/TCP"]));
    assert_eq!(code, 1, "denied exits 1, as kubectl auth can-i says no");
    insta::assert_snapshot!("explain_denied", out);
    let (_, out, _) = run(with_example(
        "explain",
        &["--from", "backend/api-5f6c7-fghij", "--to", "198.51.100.1", "--port", "443/TCP", "--format", "json"],
    ));
    insta::assert_snapshot!("explain_external_json", out);
}

#[test]
fn explain_unknown_endpoint_is_a_usage_error() {
    let (code, _, err) =
        run(with_example("explain", &["--from", "nope/pod", "--to", "sandbox/debug", "--port", "80/TCP"]));
    assert_eq!(code, 2);
    assert!(err.contains("no endpoint \"nope/pod\""), "{err}");
}

#[test]
fn select_text_json_and_errors() {
    let (code, out, _) = netward(&["select", "pcns.env == 'prod' && has(app)", "--cluster", "policies/cluster.yaml"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("select_text", out);
    let (_, out, _) =
        netward(&["select", "app in {'api', 'debug'}", "--cluster", "policies/cluster.yaml", "--format", "json"]);
    insta::assert_snapshot!("select_json", out);
    let (code, out, err) = netward(&["select", "app == 'web' &&", "--cluster", "policies/cluster.yaml"]);
    assert_eq!(code, 1);
    assert_eq!(out, "");
    insta::assert_snapshot!("select_invalid", err);
}

#[test]
fn bad_policy_files_stop_matrix_with_positions() {
    let (code, out, err) = netward(&[
        "matrix",
        "--policies",
        "reconciler/tests/fixtures/bad/policies.yaml",
        "--cluster",
        "policies/cluster.yaml",
        "--port",
        "80/TCP",
    ]);
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert!(err.contains("reconciler/tests/fixtures/bad/policies.yaml:9:3: error: unknown field \"ingres\""), "{err}");
}

#[test]
fn generate_writes_a_world_that_validates() {
    let dir = TempDir::new("gen");
    let d = dir.to_string_lossy().to_string();
    let (code, _, err) = netward(&["generate", "--pods", "120", "--policies", "30", "--out", &d]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = netward(&["validate", &format!("{d}/policies.yaml")]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = netward(&[
        "matrix",
        "--policies",
        &format!("{d}/policies.yaml"),
        "--cluster",
        &format!("{d}/cluster.yaml"),
        "--port",
        "8080/TCP",
        "--format",
        "summary",
    ]);
    assert_eq!(code, 0);
    assert!(out.starts_with("120 endpoints"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn undecidable_rules_are_reported_and_marked() {
    let (code, out, err) = netward(&[
        "matrix",
        "--policies",
        "reconciler/tests/fixtures/l7",
        "--cluster",
        "policies/cluster.yaml",
        "--port",
        "8080/TCP",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("policies.yaml:9:5: warning: GlobalNetworkPolicy api-get-only: http matches"), "{err}");
    let row = out.lines().find(|l| l.starts_with("frontend/web")).expect("web row");
    assert_eq!(row.split('\t').nth(1), Some(".*"), "web -> api is allowed, with a caveat: {row}");
    let (_, summary, _) = netward(&[
        "matrix",
        "--policies",
        "reconciler/tests/fixtures/l7",
        "--cluster",
        "policies/cluster.yaml",
        "--port",
        "8080/TCP",
        "--format",
        "summary",
    ]);
    assert!(summary.contains("(10 may change with L7/DNS/Service/source-port rules)"), "{summary}");
}

#[test]
fn plan_renders_the_node_ruleset() {
    let (code, out, err) = run(with_example("plan", &["--node", "node-b"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("#!/usr/sbin/nft -f"), "{out}");
    insta::assert_snapshot!("plan_node_b_nft", out);
    let (_, summary, _) = run(with_example("plan", &["--node", "node-b", "--format", "summary"]));
    insta::assert_snapshot!("plan_node_b_summary", summary);
    let (code, _, err) = run(with_example("plan", &["--node", "nowhere"]));
    assert_eq!(code, 2);
    assert!(err.contains("no pod in the cluster runs on node \"nowhere\""), "{err}");
}

#[test]
fn the_readme_set_up_commands_work_and_ci_runs_the_same_test_command() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    let main_job = readme.lines().find(|l| l.starts_with("cargo run ")).expect("the main-job command");
    let (cargo, args) = main_job.split_once(" -- ").expect("cargo run ... -- ARGS");
    assert!(cargo.contains("--bin netward"), "the workspace has several binaries: {cargo}");
    let args: Vec<&str> = args.split_whitespace().collect();
    // reconcile in dry-run: it reads the kernel's table (root) and changes nothing.
    assert!(args.contains(&"reconcile") && args.contains(&"dry-run"), "{main_job}");
    let (code, _, err) = netward(&args);
    let check =
        if code != 0 && err.contains("Operation not permitted") { Err("reading nftables needs root") } else { Ok(()) };
    if gate(Tier::Kernel, "the README's main job", check) {
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("result=dry-run") && err.contains("would apply"), "{err}");
    }
    let test_cmd = readme.lines().find(|l| l.starts_with("cargo test ")).expect("the test command");
    let ci = std::fs::read_to_string(root().join(".ci/run")).expect(".ci/run");
    assert!(ci.lines().any(|l| l.contains(test_cmd)), ".ci/run must run `{test_cmd}`");
}

#[test]
fn caveated_verdicts_show_in_json_and_md() {
    let l7 = |format: &str| {
        netward(&[
            "matrix",
            "--policies",
            "reconciler/tests/fixtures/l7",
            "--cluster",
            "policies/cluster.yaml",
            "--port",
            "8080/TCP,53/UDP",
            "--format",
            format,
        ])
    };
    let (code, json, err) = l7("json");
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    let web = "frontend/web-7d4b9-abcde";
    let apis = serde_json::json!(["backend/api-5f6c7-fghij", "backend/api-5f6c7-klmno"]);
    assert_eq!(v["ports"][0]["caveated"][web], apis, "web -> api passes an http rule: {json}");
    assert!(v["ports"][0]["allowed"][web].as_array().is_some_and(|a| a.contains(&apis[0])), "{json}");
    assert_eq!(v["ports"][1]["caveated"], serde_json::json!({}), "the http rule is TCP only: {json}");
    let (code, md, err) = l7("md");
    assert_eq!(code, 0, "{err}");
    let row = md.lines().find(|l| l.starts_with("| frontend/web")).expect("web row");
    assert!(row.starts_with("| frontend/web-7d4b9-abcde | ✅* | ✅* |"), "{row}");
    let note = "\\* a rule this analysis cannot fully decide (L7, DNS, Service or source port) may change this verdict";
    assert_eq!(md.matches(note).count(), 1, "one note, under the 8080 table only: {md}");
    assert!(md.find(note) < md.find("### 53/UDP"), "{md}");
}

#[test]
fn a_closed_pipe_ends_the_matrix_quietly() {
    use std::io::Read;
    // Every format, on a world whose output is far bigger than a pipe buffer.
    let dir = TempDir::new("pipe");
    let d = dir.to_string_lossy().to_string();
    let (code, _, err) = netward(&["generate", "--pods", "400", "--policies", "40", "--out", &d]);
    assert_eq!(code, 0, "{err}");
    for format in ["table", "json", "csv", "md"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_netward"))
            .args(["matrix", "--policies", &format!("{d}/policies.yaml"), "--cluster", &format!("{d}/cluster.yaml")])
            .args(["--port", "80/TCP,8080/TCP,5432/TCP,53/UDP", "--format", format])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run netward");
        let mut head = [0u8; 100];
        child.stdout.take().expect("stdout").read_exact(&mut head).expect("some output");
        // The read end closes here, as `| head -c 100` would.
        let out = child.wait_with_output().expect("netward ends");
        assert_eq!(out.status.code(), Some(0), "{format}: {}", String::from_utf8_lossy(&out.stderr));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("Broken pipe") && !err.contains("panicked"), "{format}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn completions_and_man_pages_come_from_the_same_flags() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let (code, out, err) = netward(&["completion", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        for word in ["reconcile", "diff", "matrix", "fetch-timeout"] {
            assert!(out.contains(word), "{shell} completes {word}");
        }
    }
    let (code, _, err) = netward(&["completion", "tcsh"]);
    assert_eq!(code, 2, "an unknown shell is a usage error: {err}");
    let dir = TempDir::new("man");
    let (code, _, err) = netward(&["man", "--out", &dir.to_string_lossy()]);
    assert_eq!(code, 0, "{err}");
    let page = std::fs::read_to_string(dir.join("netward-reconcile.1")).expect("netward-reconcile.1");
    assert!(page.starts_with(".ie") || page.contains(".TH netward-reconcile 1"), "{page}");
    assert!(page.contains("fetch\\-timeout"), "the page lists the flags: {page}");
    assert!(dir.join("netward.1").exists());
}

#[test]
fn input_errors_show_the_line_and_a_caret_under_the_column() {
    let bad = "reconciler/tests/fixtures/bad/policies.yaml";
    let (code, _, err) =
        netward(&["matrix", "--policies", bad, "--cluster", "policies/cluster.yaml", "--port", "80/TCP"]);
    assert_eq!(code, 1, "{err}");
    let want =
        format!("{bad}:9:3: error: unknown field \"ingres\" in NetworkPolicy spec\n  |\n9 |   ingres: []\n  |   ^\n");
    assert!(err.contains(&want), "{err}");
    // validate writes one line per finding when its output is not a terminal.
    let (_, out, _) = netward(&["validate", bad]);
    assert!(!out.contains("  |"), "{out}");
}

/// Commit ids (8 hex digits, as in `base 3248793a` or `3248793a:file`) and
/// durations (`0.03 s`) differ from run to run; everything else must not.
fn normalized(text: &str) -> String {
    let words: Vec<String> = text
        .split(' ')
        .map(|w| {
            let hex =
                w.len() >= 8 && w.as_bytes()[..8].iter().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
            if hex && (w.len() == 8 || w.as_bytes()[8] == b':') {
                format!("REV{}", &w[8..])
            } else if w.parse::<f64>().is_ok() && w.contains('.') {
                "N".to_string()
            } else {
                w.to_string()
            }
        })
        .collect();
    words.join(" ")
}

/// The README's quick start, command by command, in a copy of the bundled
/// example: every line it shows is what the command prints (`...` stands
/// for lines left out), and `echo $?` the exit code.
#[test]
fn the_readme_quick_start_is_real_output() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    let section = readme.split("## Quick start").nth(1).expect("a quick start").split("\n## ").next().expect("it");
    let block = section.split("```console\n").nth(1).expect("a console block").split("\n```").next().expect("closed");
    let dir = TempDir::new("quickstart");
    let copied = Command::new("cp").arg("-r").arg(root().join("policies")).arg(&*dir).status().expect("cp");
    assert!(copied.success());
    let git = |args: &[&str]| {
        Command::new("git")
            .args(["-c", "user.email=t@netward", "-c", "user.name=t", "-c", "init.defaultBranch=main"])
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("git")
    };
    for args in [&["init", "-q"][..], &["add", "-A"], &["commit", "-qm", "the example"]] {
        assert!(git(args).status.success(), "git {args:?}");
    }
    // netward-testkit is built beside this test binary by the workspace's test build.
    let bins =
        std::env::current_exe().expect("exe").parent().and_then(|d| d.parent()).expect("target dir").to_path_buf();
    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
    for line in block.lines() {
        match line.strip_prefix("$ ") {
            Some(cmd) => steps.push((cmd.to_string(), Vec::new())),
            None => steps.last_mut().expect("output after a command").1.push(line.to_string()),
        }
    }
    let mut last_code = 0;
    let mut ran = 0;
    for (cmd, expected) in &steps {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let out = match words[0] {
            "echo" => {
                assert_eq!(expected, &[last_code.to_string()], "{cmd}");
                continue;
            }
            "git" => git(&words[1..]),
            "netward" => Command::new(env!("CARGO_BIN_EXE_netward"))
                .args(&words[1..])
                .current_dir(&dir)
                .output()
                .expect("netward"),
            "netward-testkit" => {
                let bin = bins.join("netward-testkit");
                if !bin.exists() {
                    eprintln!("SKIPPED `{cmd}`: netward-testkit is not built (run the workspace's tests)");
                    continue;
                }
                // The shell expands the glob in the README.
                let mut args: Vec<String> = Vec::new();
                for w in &words[1..] {
                    match w.strip_suffix("*.yaml") {
                        Some(d) => {
                            let mut files: Vec<String> = std::fs::read_dir(dir.join(d))
                                .expect("dir")
                                .map(|e| format!("{d}{}", e.expect("entry").file_name().to_string_lossy()))
                                .filter(|f| f.ends_with(".yaml"))
                                .collect();
                            files.sort();
                            args.extend(files);
                        }
                        None => args.push(w.to_string()),
                    }
                }
                Command::new(&bin).args(&args).current_dir(&dir).output().expect("netward-testkit")
            }
            other => panic!("the quick start runs {other}, which this test does not know"),
        };
        last_code = out.status.code().unwrap_or(-1);
        let got =
            normalized(&format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)));
        for want in expected.iter().filter(|l| l.as_str() != "...") {
            assert!(got.lines().any(|g| g == normalized(want)), "`{cmd}` does not print\n{want}\nit printed:\n{got}");
        }
        ran += 1;
    }
    assert!(ran >= 5, "the quick start runs validate, matrix, explain, the testkit and diff: {ran}");
}

#[test]
fn dash_o_is_short_for_format_as_in_kubectl() {
    for cmd in [
        vec!["matrix", "--policies", "policies", "--cluster", "policies/cluster.yaml", "--port", "53/UDP"],
        vec!["select", "app == 'api'", "--cluster", "policies/cluster.yaml"],
        vec!["plan", "--node", "node-b", "--policies", "policies", "--cluster", "policies/cluster.yaml"],
    ] {
        let format = if cmd[0] == "plan" { "summary" } else { "json" };
        let long: Vec<&str> = cmd.iter().copied().chain(["--format", format]).collect();
        let short: Vec<&str> = cmd.iter().copied().chain(["-o", format]).collect();
        let (a, b) = (netward(&long), netward(&short));
        assert_eq!(a.0, 0, "{}", a.2);
        assert_eq!(a, b, "{} -o {format}", cmd[0]);
    }
}

#[test]
fn the_version_names_the_commit_it_was_built_from() {
    let (code, out, _) = netward(&["--version"]);
    assert_eq!(code, 0);
    let head = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).current_dir(root()).output().expect("git");
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    let want = if head.is_empty() { "unknown".to_string() } else { head };
    assert_eq!(out.trim(), format!("netward {} (commit {want})", env!("CARGO_PKG_VERSION")));
}

#[test]
fn matrix_and_explain_choose_the_family_of_dual_stack_pairs() {
    let dir = TempDir::new("family");
    let pod = |name: &str, v4: &str, v6: &str| {
        format!("---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: a, labels: {{app: {name}}}}}\nspec: {{nodeName: n1}}\nstatus: {{phase: Running, podIP: {v4}, podIPs: [{{ip: {v4}}}, {{ip: '{v6}'}}]}}\n")
    };
    let cluster = dir.path().join("cluster.yaml");
    std::fs::write(&cluster, [pod("web", "10.0.0.1", "fd00::1"), pod("client", "10.0.0.2", "fd00::2")].concat())
        .expect("write");
    // The only rule is IPv6's: over IPv4 the web pod's tier ends in Deny.
    let policy = dir.path().join("p.yaml");
    std::fs::write(
        &policy,
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: v6-only}\nspec:\n  selector: app == 'web'\n  ingress:\n  - action: Allow\n    source: {nets: ['fd00::/64']}\n",
    )
    .expect("write");
    let (p, c) = (policy.to_str().expect("utf-8"), cluster.to_str().expect("utf-8"));
    let summary = |family: &[&str]| {
        let mut args = vec!["matrix", "--policies", p, "--cluster", c, "--port", "80/TCP", "-o", "summary"];
        args.extend_from_slice(family);
        let (code, out, err) = netward(&args);
        assert_eq!(code, 0, "{err}");
        out
    };
    let v4 = summary(&[]);
    assert!(v4.contains("80/TCP: 1 allowed, 1 denied of 2 pairs"), "{v4}");
    assert!(v4.contains("(1 dual-stack pairs that IPv4 and IPv6 decide differently; --family chooses)"), "{v4}");
    let v6 = summary(&["--family", "6"]);
    assert!(v6.contains("80/TCP: 2 allowed, 0 denied of 2 pairs"), "{v6}");
    let explain = |family: &str| {
        let args = [
            "explain",
            "--policies",
            p,
            "--cluster",
            c,
            "--from",
            "a/client",
            "--to",
            "a/web",
            "--port",
            "80/TCP",
            "--family",
            family,
        ];
        netward(&args).1
    };
    assert!(explain("4").contains("denied"), "{}", explain("4"));
    assert!(explain("6").contains("fd00::2"), "{}", explain("6"));
    let (code, _, err) = netward(&["matrix", "--policies", p, "--cluster", c, "--port", "80/TCP", "--family", "5"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn matrix_without_port_decides_every_port_the_world_mentions() {
    let (code, out, err) =
        netward(&["matrix", "--policies", "policies", "--cluster", "policies/cluster.yaml", "-o", "summary"]);
    assert_eq!(code, 0, "{err}");
    let ports: Vec<&str> = out.lines().skip(1).filter_map(|l| l.split(':').next()).collect();
    // The pods' declared ports (named ones resolved) and the rules' own (443 to the outside).
    assert_eq!(ports, ["53/TCP", "53/UDP", "443/TCP", "5432/TCP", "8080/TCP"], "{out}");
    let (_, explicit, _) = netward(&[
        "matrix",
        "--policies",
        "policies",
        "--cluster",
        "policies/cluster.yaml",
        "--port",
        "5432/TCP",
        "-o",
        "summary",
    ]);
    let line = |text: &str| text.lines().find(|l| l.starts_with("5432/TCP")).map(str::to_string);
    assert_eq!(line(&out), line(&explicit), "the same verdicts as when asked for");
}

/// `netward convert --to v1alpha2`: an AdminNetworkPolicy and a
/// BaselineAdminNetworkPolicy rewritten (comments above them and other
/// documents kept), proved by netward's own diff, and written in place.
#[test]
fn convert_rewrites_anp_and_banp_and_proves_no_connection_changed() {
    let dir = TempDir::new("convert");
    let file = dir.path().join("admin.yaml");
    let v1alpha1 = "# guardrails\napiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: guard}\nspec:\n  priority: 10\n  subject: {namespaces: {matchLabels: {team: a}}}\n  ingress:\n  - name: web\n    action: Allow\n    from: [{namespaces: {}}]\n    ports:\n    - portNumber: {protocol: TCP, port: 80}\n    - portRange: {protocol: UDP, start: 5000, end: 5000}\n    - namedPort: dns\n  - action: Deny\n    from: [{namespaces: {}}]\n---\n# the default\napiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {name: default}\nspec:\n  subject: {namespaces: {}}\n  egress:\n  - action: Deny\n    to: [{networks: [10.0.0.0/8]}]\n    ports: [{portRange: {start: 8000, end: 9000}}]\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: keep, namespace: a}\nspec: {podSelector: {}}   # untouched\n";
    std::fs::write(&file, v1alpha1).expect("write the v1alpha1 file");
    let path = file.to_string_lossy().to_string();
    let (code, out, err) = netward(&["convert", "--to", "v1alpha2", &path]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("converted 2 object(s) in 1 file(s); netward diff: no connection opened or closed over"),
        "{err}"
    );
    assert!(
        out.starts_with("# guardrails\napiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\n"),
        "{out}"
    );
    for want in [
        "spec:\n  tier: Admin\n  priority: 10\n",
        "    action: Accept\n",
        "    protocols:\n    - tcp:\n        destinationPort:\n          number: 80\n    - udp:\n        destinationPort:\n          number: 5000\n    - destinationNamedPort: dns\n",
        "# the default\napiVersion: policy.networking.k8s.io/v1alpha2\n",
        "  tier: Baseline\n  priority: 1000\n",
        "          range:\n            start: 8000\n            end: 9000\n",
        "spec: {podSelector: {}}   # untouched\n",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    // The converted text is valid v1alpha2, and --write puts it in place.
    let (code, _, err) = netward(&["convert", "--to", "v1alpha2", "--write", &path]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&file).expect("the written file"), out);
    let (code, out, err) = netward(&["validate", &path]);
    assert_eq!(code, 0, "{out}{err}");
    // A second conversion has nothing left to do.
    let (code, _, err) = netward(&["convert", "--to", "v1alpha2", &path]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("converted 0 object(s)"), "{err}");
}

/// The README's ClusterNetworkPolicy example is what `explain` prints.
#[test]
fn the_readme_cluster_network_policy_example_is_real_output() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    let section =
        readme.split("## ClusterNetworkPolicy").nth(1).expect("the section").split("\n## ").next().expect("it");
    let block = section.split("```console\n").nth(1).expect("a console block").split("\n```").next().expect("closed");
    let mut lines = block.lines();
    let cmd = lines.next().and_then(|l| l.strip_prefix("$ netward ")).expect("a netward command");
    let words: Vec<&str> = cmd.split_whitespace().collect();
    let (code, out, err) = netward(&words);
    assert_eq!(code, 1, "denied: {err}");
    let expected: Vec<&str> = lines.collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), expected, "{out}");
}

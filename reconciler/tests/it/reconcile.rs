//! `netward reconcile` on real Git repositories the test builds, programming
//! real nftables in a network namespace the test creates and removes.

use netward_test_support::{gate, TempDir, Tier};
use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) use netward_test_support::Netns;

pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.email=test@netward", "-c", "user.name=netward test", "-c", "init.defaultBranch=main"])
        .args(args)
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub(crate) fn repo(tag: &str) -> TempDir {
    let dir = TempDir::new(&format!("rec-{tag}"));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("root").to_path_buf();
    std::fs::create_dir_all(&dir).expect("mkdir");
    let copied = Command::new("cp").arg("-r").arg(root.join("policies")).arg(&dir).status().expect("cp");
    assert!(copied.success() && dir.join("policies").exists(), "copy the example policies");
    git(&dir, &["init", "-q"]);
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-qm", "the example"]);
    dir
}

/// One `reconcile --once`; returns (exit code, stderr).
fn once(dir: &Path, ns: &Netns, extra: &[&str]) -> (i32, String) {
    once_env(dir, ns, extra, &[])
}

/// `once` with extra environment variables.
fn once_env(dir: &Path, ns: &Netns, extra: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_netward"))
        .args(["reconcile", "--once", "--path", "policies", "--cluster", "policies/cluster.yaml", "--node", "node-b"])
        .args(["--netns", &ns.0])
        .args(if extra.contains(&"--repo") { vec![] } else { vec!["--repo".to_string(), dir.display().to_string()] })
        .arg("--status")
        .arg(dir.join("status.json"))
        .arg("--cache")
        .arg(dir.join("cache"))
        .args(extra)
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .expect("netward reconcile");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `reconcile` as a long-running loop serving HTTP on `addr`.
fn serve_loop(dir: &Path, ns: &Netns, addr: &str, interval: &str, extra: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_netward"))
        .args(["reconcile", "--path", "policies", "--cluster", "policies/cluster.yaml", "--node", "node-b"])
        .args(["--interval", interval, "--netns", &ns.0, "--listen", addr])
        .args(extra)
        .arg("--repo")
        .arg(dir)
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("netward reconcile")
}

fn status(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("status.json")).expect("status written")).expect("json")
}

#[test]
fn bad_commits_are_refused_whole_and_the_last_good_one_stays() {
    let Some(ns) = Netns::new("refuse") else { return };
    let dir = repo("refuse");
    let good = git(&dir, &["rev-parse", "HEAD"]);
    let (code, err) = once(&dir, &ns, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("result=applied") && err.contains("table created"), "{err}");
    let table = ns.table();
    assert!(table.contains("chain pod-"), "the node's pods are programmed");
    assert_eq!(status(&dir)["applied"], good);

    // A commit with a YAML error: refused, named with file:line:col and commit; the table stays.
    std::fs::write(dir.join("policies/backend/bad.yaml"), "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bad, namespace: backend}\nspec:\n  podSelecter: {}\n").expect("write");
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-qm", "typo"]);
    let bad = git(&dir, &["rev-parse", "HEAD"]);
    let (code, err) = once(&dir, &ns, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("{}:policies/backend/bad.yaml:5:3: error: unknown field", &bad[..8])), "{err}");
    assert_eq!(ns.table(), table, "the last good ruleset stays in force");
    let s = status(&dir);
    assert_eq!(s["applied"], good);
    assert_eq!(s["refused"][0]["commit"], bad);

    // Run again on the same ref: not retried, still exit 1, still the good table.
    let (code, _) = once(&dir, &ns, &[]);
    assert_eq!(code, 1);
    assert_eq!(ns.table(), table);

    // A commit that breaks a guard is refused like an invalid one.
    std::fs::remove_file(dir.join("policies/backend/bad.yaml")).expect("rm");
    std::fs::write(
        dir.join("policies/netward.yaml"),
        "guards:\n  - {from: frontend/web-7d4b9-abcde, to: kube-system/coredns-6d8c4-pqrst, port: 53/UDP, expect: allow}\n",
    )
    .expect("write");
    std::fs::remove_file(dir.join("policies/frontend/default-deny.yaml")).expect("rm");
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-qm", "drop the frontend default deny (and DNS with it)"]);
    let (code, err) = once(&dir, &ns, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("breaks guard") && err.contains("53/UDP must be allowed"), "{err}");
    assert_eq!(ns.table(), table);

    // The ref moves on to a good commit: applied.
    git(&dir, &["checkout", "-q", "HEAD~2", "--", "policies/frontend/default-deny.yaml"]);
    git(&dir, &["commit", "-qm", "restore"]);
    let (code, err) = once(&dir, &ns, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(status(&dir)["applied"], git(&dir, &["rev-parse", "HEAD"]));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn history_rewrites_tags_urls_dry_runs_and_hand_edits_all_converge() {
    let Some(ns) = Netns::new("converge") else { return };
    let dir = repo("converge");
    // Dry-run changes nothing.
    let (code, err) = once(&dir, &ns, &["--mode", "dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("result=dry-run") && err.contains("would apply: table created"), "{err}");
    assert_eq!(ns.table(), "", "dry-run left the kernel alone");
    std::fs::remove_file(dir.join("status.json")).expect("fresh status");
    // A tag, fetched through a file:// URL into a bare mirror.
    git(&dir, &["tag", "v1"]);
    let url = format!("file://{}", dir.display());
    let (code, err) = once(&dir, &ns, &["--repo", &url, "--ref", "v1"]);
    assert_eq!(code, 0, "{err}");
    let table = ns.table();
    assert!(table.contains("table inet netward"));
    // A hand flush of the whole table is repaired by the next pass.
    Command::new("ip")
        .args(["netns", "exec", &ns.0, "nft", "flush", "table", "inet", "netward"])
        .status()
        .expect("flush");
    let (code, err) = once(&dir, &ns, &["--repo", &url, "--ref", "v1"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("repaired drift") || err.contains("result=applied"), "{err}");
    assert_eq!(ns.table(), table, "converged back to the same ruleset");
    // A force-push that rewrites history: the new commit is applied.
    std::fs::remove_file(dir.join("policies/platform/namespace-isolation.yaml")).expect("rm");
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "--amend", "-m", "rewritten"]);
    git(&dir, &["tag", "-f", "v1"]);
    let (code, err) = once(&dir, &ns, &["--repo", &url, "--ref", "v1"]);
    assert_eq!(code, 0, "{err}");
    assert!(!ns.table().contains("isolate-environments"), "the rewritten tag's ruleset is in force");
    let _ = std::fs::remove_dir_all(dir);
}

fn get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (head.lines().next().unwrap_or("").to_string(), body.to_string())
}

#[test]
fn the_loop_serves_health_readiness_metrics_and_status() {
    let Some(ns) = Netns::new("http") else { return };
    let dir = repo("http");
    let port = 20000 + (std::process::id() % 20000) as u16;
    let addr = format!("127.0.0.1:{port}");
    let mut child = serve_loop(&dir, &ns, &addr, "1", &[]);
    let ready = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::net::TcpStream::connect(&addr).is_ok() && get(&addr, "/readyz").0.contains("200")
    });
    let health = get(&addr, "/healthz");
    let metrics = get(&addr, "/metrics").1;
    let status = get(&addr, "/status").1;
    let missing = get(&addr, "/nope").0;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ready, "ready once the first revision is enforced");
    assert!(health.0.contains("200"));
    let passes: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("netward_reconcile_duration_seconds_count "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(passes >= 1, "at least one pass is counted: {metrics}");
    assert!(metrics.contains("netward_applied_revision{commit=\""), "{metrics}");
    assert!(metrics.contains("netward_refused_commits_total 0"), "{metrics}");
    let v: serde_json::Value = serde_json::from_str(&status).expect("status JSON");
    assert_eq!(v["tracked_ref"], "HEAD", "the default ref");
    assert!(v["applied"].as_str().is_some_and(|c| c.len() == 40));
    assert!(missing.contains("404"));
}

#[test]
fn only_commits_signed_by_an_allowed_key_are_applied() {
    let Some(ns) = Netns::new("sign") else { return };
    let dir = repo("sign");
    let key = dir.join("key");
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "release@netward", "-f"])
        .arg(&key)
        .status();
    let check = if ok.is_ok_and(|s| s.success()) { Ok(()) } else { Err("no ssh-keygen") };
    if !gate(Tier::Tool, "signature test", check) {
        return;
    }
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
    std::fs::write(dir.join("allowed_signers"), format!("release@netward {public}")).expect("write");
    let signers = dir.join("allowed_signers").display().to_string();
    // The first commit is unsigned: refused.
    let (code, err) = once(&dir, &ns, &["--verify-signatures", &signers]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not signed by an allowed key"), "{err}");
    assert_eq!(ns.table(), "", "nothing is applied from an unsigned commit");
    // A signed commit: applied.
    let signing = format!("user.signingkey={}", key.display());
    git(&dir, &["-c", "gpg.format=ssh", "-c", &signing, "commit", "-q", "-S", "--allow-empty", "-m", "signed release"]);
    // Without ssh-keygen the signature cannot be checked: an error for this
    // pass (exit 2), not a verdict on the commit, which the next pass applies.
    let bin = dir.join("bin-without-ssh-keygen");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let nft = String::from_utf8(Command::new("sh").args(["-c", "command -v nft"]).output().expect("sh").stdout)
        .expect("utf-8");
    std::os::unix::fs::symlink(nft.trim(), bin.join("nft")).expect("symlink");
    let (code, err) =
        once_env(&dir, &ns, &["--verify-signatures", &signers], &[("PATH", bin.to_str().expect("utf-8"))]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot check the signature") && err.contains("ssh-keygen"), "{err}");
    let (code, err) = once(&dir, &ns, &["--verify-signatures", &signers]);
    assert_eq!(code, 0, "{err}");
    assert!(ns.table().contains("table inet netward"));
    let signed = git(&dir, &["rev-parse", "HEAD"]);
    // Signed, but by a key the allowed-signers file does not list: refused,
    // and the last verified commit stays in force.
    let stranger = dir.join("stranger");
    assert!(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&stranger).status().is_ok());
    std::fs::remove_file(dir.join("policies/platform/namespace-isolation.yaml")).expect("rm");
    let signing = format!("user.signingkey={}", stranger.display());
    git(&dir, &["-c", "gpg.format=ssh", "-c", &signing, "commit", "-q", "-S", "-am", "signed by a stranger"]);
    let (code, err) = once(&dir, &ns, &["--verify-signatures", &signers]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not signed by an allowed key") && err.contains("no key in"), "{err}");
    assert!(ns.table().contains("isolate-environments"), "the stranger's commit is not applied");
    assert_eq!(status(&dir)["applied"], signed.as_str());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_signed_webhook_triggers_a_fetch_at_once() {
    let Some(ns) = Netns::new("hook") else { return };
    let dir = repo("hook");
    std::fs::write(dir.join("secret"), "s3cret\n").expect("write");
    let port = 40000 + (std::process::id() % 20000) as u16;
    let addr = format!("127.0.0.1:{port}");
    let secret = dir.join("secret");
    let mut child = serve_loop(&dir, &ns, &addr, "600", &["--webhook-secret-file", secret.to_str().expect("utf-8")]);
    let applied = || -> Option<String> {
        let (head, body) = get(&addr, "/status");
        if !head.contains("200") {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["applied"].as_str().map(str::to_string)
    };
    let wait = |want: &str| {
        (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            std::net::TcpStream::connect(&addr).is_ok() && applied().as_deref() == Some(want)
        })
    };
    let first = git(&dir, &["rev-parse", "HEAD"]);
    let first_ok = wait(&first);
    std::fs::remove_file(dir.join("policies/platform/namespace-isolation.yaml")).expect("rm");
    git(&dir, &["commit", "-qam", "drop isolation"]);
    let second = git(&dir, &["rev-parse", "HEAD"]);
    let post = |sig: &str| {
        use std::io::{Read, Write};
        let body = br#"{"ref":"refs/heads/main"}"#;
        let mut s = std::net::TcpStream::connect(&addr).expect("connect");
        write!(
            s,
            "POST /hook HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: {sig}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .expect("write");
        s.write_all(body).expect("body");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        out
    };
    let bad = post("sha256=00");
    let good = post(&netward::http::sign(b"s3cret", br#"{"ref":"refs/heads/main"}"#));
    let second_ok = wait(&second);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(first_ok, "the first revision is enforced");
    assert!(bad.starts_with("HTTP/1.1 401"), "{bad}");
    assert!(good.starts_with("HTTP/1.1 202"), "{good}");
    assert!(second_ok, "the webhook made the loop fetch the new commit long before its 600 s interval");
}

#[test]
fn a_commit_to_a_watched_local_repository_lands_in_well_under_a_second() {
    let Some(ns) = Netns::new("watch") else { return };
    let dir = repo("watch");
    let port = 30000 + (std::process::id() % 10000) as u16;
    let addr = format!("127.0.0.1:{port}");
    let mut child = serve_loop(&dir, &ns, &addr, "600", &[]);
    let applied = || -> Option<String> {
        let (head, body) = get(&addr, "/status");
        let v: serde_json::Value = serde_json::from_str(&body).ok().filter(|_| head.contains("200"))?;
        v["applied"].as_str().map(str::to_string)
    };
    let first = git(&dir, &["rev-parse", "HEAD"]);
    let first_ok = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::net::TcpStream::connect(&addr).is_ok() && applied().as_deref() == Some(first.as_str())
    });
    std::fs::remove_file(dir.join("policies/platform/namespace-isolation.yaml")).expect("rm");
    git(&dir, &["commit", "-qam", "drop isolation"]);
    let second = git(&dir, &["rev-parse", "HEAD"]);
    let t = std::time::Instant::now();
    let landed = (0..60).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(25));
        applied().as_deref() == Some(second.as_str())
    });
    let took = t.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(first_ok);
    assert!(landed && took < std::time::Duration::from_secs(1), "landed {landed} after {took:?} (interval is 600 s)");
}

#[test]
fn rollback_returns_the_node_to_the_previous_revision() {
    let Some(ns) = Netns::new("rollback") else { return };
    let dir = repo("rollback");
    let (code, _) = once(&dir, &ns, &[]);
    assert_eq!(code, 0);
    let before = ns.table();
    let first = git(&dir, &["rev-parse", "HEAD"]);
    std::fs::remove_file(dir.join("policies/platform/namespace-isolation.yaml")).expect("rm");
    git(&dir, &["commit", "-qam", "drop isolation"]);
    let (code, _) = once(&dir, &ns, &[]);
    assert_eq!(code, 0);
    assert_ne!(ns.table(), before);
    let out = Command::new(env!("CARGO_BIN_EXE_netward"))
        .args(["rollback", "--path", "policies", "--cluster", "policies/cluster.yaml", "--node", "node-b"])
        .args(["--netns", &ns.0])
        .arg("--repo")
        .arg(&dir)
        .arg("--status")
        .arg(dir.join("status.json"))
        .current_dir(&dir)
        .output()
        .expect("netward rollback");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Objects re-created by the rollback list in creation order: compare the lines as a set.
    let lines = |t: &str| {
        let mut v: Vec<String> = t.lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(lines(&ns.table()), lines(&before), "the earlier ruleset is back");
    assert_eq!(status(&dir)["applied"], first);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn killing_the_reconciler_mid_apply_leaves_the_old_or_the_new_table_never_a_mix() {
    use netward::analysis::{Analysis, View};
    use netward::enforce::{self, live::Live, Dataplane, Enforcer, Mode, NftCli, NodeSpec};
    let Some(ns) = Netns::new("kill") else { return };
    let dir = TempDir::new("rec-kill");
    std::fs::create_dir_all(dir.join("policies")).expect("mkdir");
    let g = netward::synth::generate(&netward::synth::Shape { pods: 1500, policies: 300, seed: 3 });
    std::fs::write(dir.join("cluster.yaml"), &g.cluster).expect("write");
    std::fs::write(dir.join("policies/p.yaml"), &g.policies).expect("write");
    git(&dir, &["init", "-q"]);
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-qm", "old"]);
    // The new revision drops every other document: many chains and sets change.
    let docs: Vec<&str> = g.policies.split("\n---\n").collect();
    let kept: Vec<&str> =
        docs.iter().enumerate().filter(|(i, d)| i % 2 == 0 || d.contains("kind: Tier")).map(|(_, d)| *d).collect();
    std::fs::write(dir.join("policies/p.yaml"), kept.join("\n---\n")).expect("write");
    git(&dir, &["commit", "-qam", "new"]);
    let compile = |text: &str| {
        let mut d = Vec::new();
        let set =
            netward::manifest::load::load_policy_texts(std::iter::once((std::sync::Arc::from("p.yaml"), text)), &mut d);
        let mut c = netward::manifest::load::load_cluster_text(&std::sync::Arc::from("c.yaml"), &g.cluster, &mut d);
        c.fill_missing_namespaces();
        let an = Analysis::new(&set, &c, View::Enforced);
        enforce::compile(
            &an,
            &NodeSpec { node: "node0".into(), mode: Mode::Enforce, links: Default::default(), ..Default::default() },
        )
    };
    let (old, new) = (compile(&g.policies), compile(&kept.join("\n---\n")));
    let (old_live, new_live) = (Live::of(&old), Live::of(&new));
    assert_ne!(old_live, new_live);
    let reader = NftCli::in_netns(&ns.0);
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_netward"))
            .args(["reconcile", "--once", "--path", "policies", "--cluster", "cluster.yaml", "--node", "node0"])
            .args(["--netns", &ns.0])
            .arg("--repo")
            .arg(&dir)
            .current_dir(&dir)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("netward reconcile")
    };
    // How long a whole pass takes here, so the kills spread over all of it.
    Enforcer::new(NftCli::in_netns(&ns.0)).sync(&old).expect("old");
    let t = std::time::Instant::now();
    assert!(run().wait().expect("pass").success());
    let whole = t.elapsed().as_millis() as u64;
    assert_eq!(reader.read().expect("read").as_ref(), Some(&new_live), "an uninterrupted pass applies the new ruleset");
    let mut seen = std::collections::BTreeSet::new();
    // Kills spread over the measured pass; a pass can run slower than the
    // measured one on a busy machine, so while no kill has landed after the
    // apply, the delay keeps doubling (up to 32 passes' worth).
    for k in 0..=17u64 {
        if k > 12 && seen.contains("new") {
            break;
        }
        let delay_ms = if k <= 12 { whole * k / 12 } else { whole << (k - 12) };
        // Start each trial from the old table.
        Enforcer::new(NftCli::in_netns(&ns.0)).sync(&old).expect("reset to old");
        let mut child = run();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let live = reader.read().expect("read back").expect("the table exists");
        let which = if live == old_live {
            "old"
        } else if live == new_live {
            "new"
        } else {
            panic!("killed after {delay_ms} ms: the table is neither the old nor the new ruleset")
        };
        seen.insert(which);
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("kill outcomes over a {whole} ms pass: {seen:?}");
    assert!(seen.contains("old"), "some kills landed before the apply: {seen:?}");
    assert!(seen.contains("new"), "some kills landed after it: {seen:?}");
}

/// A Git smart-HTTP server on loopback: `git http-backend` (the CGI program
/// git ships) behind HTTP Basic auth, one request per connection. The
/// expected token is read from `token` on every request, so a test can
/// rotate it. Returns the port.
fn serve_git_over_http(root: PathBuf, token: std::sync::Arc<std::sync::Mutex<String>>) -> u16 {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let exec_path = git(&root, &["--exec-path"]);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().expect("clone"));
            let mut request = String::new();
            let _ = reader.read_line(&mut request);
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = line.trim_end().split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            let header = |k: &str| headers.iter().find(|(h, _)| h == k).map(|(_, v)| v.clone()).unwrap_or_default();
            let mut parts = request.split_whitespace();
            let (method, target) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
            let expected = format!("x-access-token:{}", token.lock().expect("token"));
            let got = header("authorization");
            let authorized = got
                .strip_prefix("Basic ")
                .is_some_and(|b| netward::git::auth::unbase64(b).as_deref() == Some(expected.as_bytes()));
            if !authorized {
                let _ = conn.write_all(
                    b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            }
            let mut body = Vec::new();
            if header("transfer-encoding").eq_ignore_ascii_case("chunked") {
                loop {
                    let mut size = String::new();
                    let _ = reader.read_line(&mut size);
                    let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                    let mut chunk = vec![0; n + 2];
                    if reader.read_exact(&mut chunk).is_err() || n == 0 {
                        break;
                    }
                    body.extend_from_slice(&chunk[..n]);
                }
            } else {
                let n: usize = header("content-length").parse().unwrap_or(0);
                body.resize(n, 0);
                let _ = reader.read_exact(&mut body);
            }
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            let mut cgi = Command::new(Path::new(&exec_path).join("git-http-backend"))
                .env("GIT_PROJECT_ROOT", &root)
                .env("GIT_HTTP_EXPORT_ALL", "1")
                .env("REQUEST_METHOD", &method)
                .env("PATH_INFO", path)
                .env("QUERY_STRING", query)
                .env("CONTENT_TYPE", header("content-type"))
                .env("CONTENT_LENGTH", body.len().to_string())
                .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
                .env("GIT_PROTOCOL", header("git-protocol"))
                .env("REMOTE_USER", "x-access-token")
                .env("REMOTE_ADDR", "127.0.0.1")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("git http-backend");
            let mut stdin = cgi.stdin.take().expect("stdin");
            let writer = std::thread::spawn(move || {
                let _ = stdin.write_all(&body);
            });
            let out = cgi.wait_with_output().expect("http-backend output");
            let _ = writer.join();
            // CGI output: headers (maybe a Status:), a blank line, the body.
            let split = out.stdout.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
            let split = split.or_else(|| out.stdout.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
            let (head, body) = match split {
                Some((i, sep)) => {
                    (String::from_utf8_lossy(&out.stdout[..i]).into_owned(), out.stdout[i + sep..].to_vec())
                }
                None => (String::new(), out.stdout),
            };
            let mut status = "200 OK".to_string();
            let mut response = String::new();
            for line in head.lines() {
                match line.split_once(':') {
                    Some((k, v)) if k.eq_ignore_ascii_case("status") => status = v.trim().to_string(),
                    Some(_) => response.push_str(&format!("{line}\r\n")),
                    None => {}
                }
            }
            let _ = conn.write_all(
                format!("HTTP/1.1 {status}\r\n{response}Content-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                    .as_bytes(),
            );
            let _ = conn.write_all(&body);
        }
    });
    port
}

#[test]
fn a_repository_behind_https_token_auth_is_followed_and_a_rotated_token_is_picked_up() {
    let Some(ns) = Netns::new("token") else { return };
    let dir = repo("token");
    let served = dir.join("served");
    std::fs::create_dir_all(&served).expect("mkdir");
    git(&served, &["clone", "-q", "--bare", dir.to_str().expect("utf-8"), "policies.git"]);
    let token = std::sync::Arc::new(std::sync::Mutex::new("first-token".to_string()));
    let port = serve_git_over_http(served.clone(), token.clone());
    let url = format!("http://127.0.0.1:{port}/policies.git");
    let token_file = dir.join("token");

    // No token: the fetch fails with git's message, nothing is enforced, and
    // it fails at once (prompts are off) instead of waiting for a password.
    let (code, err) = once(&dir, &ns, &["--repo", &url]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("result=error") && err.contains("asks for credentials and none are configured"), "{err}");
    assert_eq!(ns.table(), "");
    // A wrong token is refused by the server the same way.
    std::fs::write(&token_file, "wrong\n").expect("write");
    let (code, err) = once(&dir, &ns, &["--repo", &url, "--git-token-file", token_file.to_str().expect("utf-8")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("refused the credentials (token file") && ns.table().is_empty(), "{err}");
    assert!(!err.contains("wrong"), "the token itself is never printed: {err}");
    // The right one: the served commit is enforced.
    std::fs::write(&token_file, "first-token\n").expect("write");
    let (code, err) = once(&dir, &ns, &["--repo", &url, "--git-token-file", token_file.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{err}");
    assert!(ns.table().contains("isolate-environments"), "the served commit is in force");
    assert_eq!(status(&dir)["applied"], git(&dir, &["rev-parse", "HEAD"]));
    // Only the tracked commit came over, shallow: the mirror holds no parent.
    let shallow = std::fs::read_to_string(dir.join("cache/shallow")).expect("a shallow mirror");
    assert_eq!(shallow.trim(), git(&dir, &["rev-parse", "HEAD"]));
    // The token rotates and a new commit is pushed: the next pass uses the new file contents.
    *token.lock().expect("token") = "second-token".into();
    std::fs::write(&token_file, "second-token\n").expect("write");
    std::fs::remove_file(dir.join("policies/platform/namespace-isolation.yaml")).expect("rm");
    git(&dir, &["commit", "-qam", "drop the isolation"]);
    git(&dir, &["push", "-q", served.join("policies.git").to_str().expect("utf-8"), "main"]);
    let (code, err) = once(&dir, &ns, &["--repo", &url, "--git-token-file", token_file.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{err}");
    assert!(!ns.table().contains("isolate-environments"), "the pushed commit is in force");
    // The token from an environment variable instead of a file.
    let env = [("POLICY_REPO_TOKEN", "second-token")];
    let (code, err) = once_env(&dir, &ns, &["--repo", &url, "--git-token-env", "POLICY_REPO_TOKEN"], &env);
    assert_eq!(code, 0, "{err}");
    // A password in the URL is refused by this server (wrong user) and never logged.
    let with_password = format!("http://someone:pa55word-xyz@127.0.0.1:{port}/policies.git");
    let (code, err) = once(&dir, &ns, &["--repo", &with_password]);
    assert_eq!(code, 2, "{err}");
    assert!(!err.contains("pa55word-xyz") && err.contains("someone:***@"), "{err}");
    assert!(!std::fs::read_to_string(dir.join("status.json")).expect("status").contains("pa55word-xyz"));
    // The secret never lands on disk in the mirror.
    let config = std::fs::read_to_string(dir.join("cache/config")).expect("mirror config");
    assert!(!config.contains("second-token") && !config.to_lowercase().contains("authorization"), "{config}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A real OpenSSH server on a loopback port, for this test only: its own
/// host key, one authorized key, no passwords; killed when dropped.
struct Sshd {
    child: std::process::Child,
    port: u16,
    host_key: String,
}

impl Sshd {
    fn start(dir: &Path, authorized: &Path) -> Option<Sshd> {
        let sshd = Path::new("/usr/sbin/sshd");
        let check = if sshd.exists() { Ok(()) } else { Err("no sshd (apt-get install openssh-server)") };
        if !gate(Tier::Tool, "ssh test", check) {
            return None;
        }
        let host = dir.join("ssh_host_ed25519_key");
        keygen(&host);
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        // Without PAM, sshd refuses a locked account (password "!..."), as
        // root is on some distributions; with PAM, a key is enough.
        let shadow = std::fs::read_to_string("/etc/shadow").unwrap_or_default();
        let locked = shadow.lines().any(|l| l.starts_with("root:!"));
        let pam = if locked { "yes" } else { "no" };
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM {pam}\n\
                 PidFile none\n",
                host.display(),
                authorized.display()
            ),
        )
        .expect("write");
        // sshd insists on its privilege-separation directory.
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let log = std::fs::File::create(dir.join("sshd.log")).expect("log");
        let child = Command::new(sshd).arg("-D").arg("-e").arg("-f").arg(&config).stderr(log).spawn().expect("sshd");
        let up = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(25));
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "sshd listens on {port}");
        let public = std::fs::read_to_string(host.with_extension("pub")).expect("host key");
        let host_key = public.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        Some(Sshd { child, port, host_key })
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(path).status();
    assert!(ok.is_ok_and(|s| s.success()), "ssh-keygen {}", path.display());
}

#[test]
fn a_repository_over_ssh_is_fetched_with_the_given_key_and_known_hosts_only() {
    let Some(ns) = Netns::new("ssh") else { return };
    let dir = repo("ssh");
    let served = dir.join("served.git");
    git(&dir, &["clone", "-q", "--bare", dir.to_str().expect("utf-8"), served.to_str().expect("utf-8")]);
    let key = dir.join("deploy key");
    let stranger = dir.join("stranger");
    keygen(&key);
    keygen(&stranger);
    let authorized = dir.join("authorized_keys");
    std::fs::copy(key.with_extension("pub"), &authorized).expect("authorize the deploy key");
    let Some(sshd) = Sshd::start(&dir, &authorized) else { return };
    let url = format!("ssh://root@127.0.0.1:{}{}", sshd.port, served.display());
    let known = dir.join("known hosts");
    let fetch_with = |key: &Path, known_hosts: &str| {
        std::fs::write(&known, known_hosts).expect("write");
        let args = ["--repo", &url, "--ssh-key", key.to_str().expect("utf-8"), "--ssh-known-hosts"];
        once(&dir, &ns, &[&args[..], &[known.to_str().expect("utf-8")]].concat())
    };
    let listed = format!("[127.0.0.1]:{} {}\n", sshd.port, sshd.host_key);

    // A host not in known_hosts, or listed with another key, is refused
    // before any credential is offered; nothing is enforced.
    let (code, err) = fetch_with(&key, "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("[127.0.0.1]") && err.contains("is not a known host"), "{err}");
    let impostor = std::fs::read_to_string(stranger.with_extension("pub")).expect("key");
    let impostor: Vec<&str> = impostor.split_whitespace().take(2).collect();
    let (code, err) = fetch_with(&key, &format!("[127.0.0.1]:{} {}\n", sshd.port, impostor.join(" ")));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not match"), "{err}");
    // A key the server does not know is refused with its name.
    let (code, err) = fetch_with(&stranger, &listed);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("refused the ssh key") && err.contains("stranger"), "{err}");
    assert_eq!(ns.table(), "", "nothing is enforced from a refused fetch");

    // The right key and host: the commit is fetched and enforced.
    let (code, err) = fetch_with(&key, &listed);
    assert_eq!(code, 0, "{err}");
    assert!(ns.table().contains("isolate-environments"), "the commit fetched over ssh is in force");
    // A push is picked up by the next fetch, shallow.
    std::fs::remove_file(dir.join("policies/platform/namespace-isolation.yaml")).expect("rm");
    git(&dir, &["commit", "-qam", "drop the isolation"]);
    git(&dir, &["push", "-q", served.to_str().expect("utf-8"), "main"]);
    let (code, err) = fetch_with(&key, &listed);
    assert_eq!(code, 0, "{err}");
    assert!(!ns.table().contains("isolate-environments"), "the pushed commit is in force");
    assert_eq!(status(&dir)["applied"], git(&dir, &["rev-parse", "HEAD"]));
    let shallow = std::fs::read_to_string(dir.join("cache/shallow")).expect("a shallow mirror");
    assert!(shallow.contains(&git(&dir, &["rev-parse", "HEAD"])), "{shallow}");
    drop(sshd);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_git_server_that_never_answers_fails_the_pass_in_time_and_then_the_liveness_probe() {
    let Some(ns) = Netns::new("silent") else { return };
    let dir = repo("silent");
    // Bound but never accepting: connections complete and requests are
    // taken, and no answer ever comes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://127.0.0.1:{}/policies.git", silent.local_addr().expect("addr").port());
    let (code, err) = once(&dir, &ns, &["--repo", &url, "--fetch-timeout", "0"]);
    assert!(code == 2 && err.contains("--fetch-timeout 0: give seconds between"), "{err}");
    let t = std::time::Instant::now();
    let (code, err) = once(&dir, &ns, &["--repo", &url, "--fetch-timeout", "0.5"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no answer within 0.5 s"), "{err}");
    assert!(t.elapsed() < std::time::Duration::from_secs(5), "took {:?}", t.elapsed());
    assert_eq!(ns.table(), "");

    // The loop keeps running and keeps reporting; once the fetch has hung
    // for ten time limits, /healthz fails so the kubelet restarts the pod.
    // A port the kernel says is free (the other loop tests pick theirs from the pid).
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let addr = format!("127.0.0.1:{free}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_netward"))
        .args(["reconcile", "--path", "policies", "--cluster", "policies/cluster.yaml", "--node", "node-b"])
        .args(["--interval", "1", "--netns", &ns.0, "--listen", &addr])
        .args(["--repo", &url, "--fetch-timeout", "0.2", "--cache"])
        .arg(dir.join("loop-cache"))
        .current_dir(&dir)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("netward reconcile");
    let healthy = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::net::TcpStream::connect(&addr).is_ok() && get(&addr, "/healthz").0.contains("200")
    });
    let mut last = (String::new(), String::new());
    let stalled = (0..150).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        last = get(&addr, "/healthz");
        last.0.contains("503")
    });
    let (_, status) = get(&addr, "/status");
    let _ = child.kill();
    let _ = child.wait();
    drop(silent);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(healthy, "healthy while the fetch is young");
    assert!(stalled && last.1.contains("heard nothing from the server"), "{last:?}");
    assert!(status.contains("the fetch in progress has heard nothing"), "each pass reports the hung fetch: {status}");
}

/// A failed fetch that may succeed later (a server that refuses the
/// connection) is retried after 1 s, 2 s, 4 s...; one that cannot (a ref
/// the repository does not have) waits for the interval: a minute here.
#[test]
fn a_fetch_that_may_succeed_later_is_retried_soon_and_one_that_cannot_waits() {
    let Some(ns) = Netns::new("retry") else { return };
    let dir = repo("retry");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let passes = |url: &str, git_ref: &str| -> String {
        let mut child = Command::new(env!("CARGO_BIN_EXE_netward"))
            .args(["reconcile", "--path", "policies", "--cluster", "policies/cluster.yaml", "--node", "node-b"])
            .args(["--interval", "60", "--netns", &ns.0, "--repo", url, "--ref", git_ref])
            .arg("--cache")
            .arg(dir.join(format!("cache-{git_ref}")))
            .current_dir(&dir)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("netward reconcile");
        std::thread::sleep(std::time::Duration::from_millis(4500));
        let _ = child.kill();
        let out = child.wait_with_output().expect("output");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let soon = passes(&format!("http://127.0.0.1:{closed}/policies.git"), "main");
    let errors = soon.matches("result=error").count();
    assert!((3..=5).contains(&errors), "1 s, 2 s, 4 s apart in 4.5 s: {errors} passes\n{soon}");
    let never = passes(&format!("file://{}", dir.display()), "no-such-branch");
    assert_eq!(never.matches("result=error").count(), 1, "one pass, then the interval:\n{never}");
    assert!(never.contains("not found on"), "{never}");
}

#[test]
fn without_ref_reconcile_follows_head_whatever_the_branch_is_called() {
    // A repository whose only branch is `master` (#22): the default ref is
    // HEAD, the checkout's current branch, as Argo CD's HEAD; by URL it is the
    // remote's default branch.
    let Some(ns) = Netns::new("head") else { return };
    let dir = repo("head");
    git(&dir, &["branch", "-m", "main", "master"]);
    let (code, err) = once(&dir, &ns, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(ns.table().contains("chain pod-"), "{}", ns.table());
    let url = format!("file://{}", dir.display());
    let (code, err) = once(&dir, &ns, &["--repo", &url]);
    assert_eq!(code, 0, "{err}");
}

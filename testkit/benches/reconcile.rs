//! Benchmark: commit to enforced. A local Git repository holds the
//! 10,000-pod, 1,000-policy world, one file per object (1,002 files); the
//! reconciler watches it with inotify as `netward reconcile` does. Each round
//! commits a one-policy edit and times from the commit (git has returned)
//! until the table enforces it: the watcher's wake-up, reading the commit's
//! files from libgit2's object database, loading and validating 1,000
//! policies, compiling the node's ruleset, diffing and applying over netlink.
//!
//! Side by side, in the same run: reading that commit's files the way
//! netward did before libgit2 (`git ls-tree` then one `git show` per file).
//!
//! Run as root: `cargo bench -p netward-testkit --bench reconcile`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use netward::enforce::netlink::Netlink;
use netward::git::watch::watch_local;
use netward::reconcile::{Reconciler, RolloutMode, Source, Wake};
use netward::synth::{generate, Shape};
use netward_testkit::lab::{check_support, Lab};

use common::git;

fn main() {
    if let Err(e) = check_support() {
        eprintln!("reconcile benchmark needs root, ip and nft: {e}");
        std::process::exit(1);
    }
    let rounds = if std::env::args().any(|a| a == "--quick") { 3 } else { 20 };
    let g = generate(&Shape { pods: 10_000, policies: 1_000, seed: 7 });
    let dir = common::world_repo("reconcile", &g);
    let probe = PathBuf::from(env!("CARGO_BIN_EXE_netward-probe"));
    let lab = Lab::up("bench-rec", &[], &[], &[], &probe).expect("lab");
    let source = Source::new(dir.display().to_string(), "main", "policies", dir.join("cache"));
    let dp = Netlink::in_netns(lab.node_netns()).expect("netlink");
    let mut r = Reconciler::new(source, vec![dir.join("cluster.yaml")], "node0".into(), RolloutMode::Enforce, dp);
    assert!(r.pass().result.in_force(), "first pass");
    let (tx, wakes) = std::sync::mpsc::channel();
    watch_local(&dir, "main", Wake::Fetch.on(&tx));

    // The policy a round edits (a port moves, so each commit differs).
    let docs = common::policy_documents(&g);
    let pattern = "destination:\n      ports: [\"8000:9999\", 5432]";
    let edited = docs.iter().position(|d| d.contains(pattern)).expect("an editable policy");
    let file = dir.join(format!("policies/{edited:04}.yaml"));
    let (mut total, mut woken) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        std::fs::write(&file, docs[edited].replacen(pattern, &pattern.replace("5432", &(5433 + i).to_string()), 1))
            .expect("write");
        git(&dir, &["commit", "-qam", &format!("edit {i}")]);
        let t = Instant::now();
        let why = wakes.recv_timeout(Duration::from_secs(5)).expect("the watcher notices the commit");
        woken.push(t.elapsed());
        assert!(r.pass_for(why).result.in_force());
        total.push(t.elapsed());
        assert!(
            r.status.history.last().is_some_and(|p| p.result == netward::reconcile::PassResult::Applied),
            "{:?}",
            r.status.history.last()
        );
        // Wakes queued by the commit's own writes are one more (idle) pass in
        // the real loop; drained here so each round starts quiet.
        while wakes.try_recv().is_ok() {}
        assert!(matches!(why, Wake::Fetch));
    }
    println!(
        "commit to enforced, 10,000 pods / 1,000 policies in {} files, {} commits: {} (watcher wake-up alone: {})",
        docs.len(),
        rounds,
        summary(&mut total),
        summary(&mut woken)
    );

    // Reading the commit: libgit2 in-process vs the git program per file.
    let head = netward::git::resolve(&dir, "HEAD").expect("head");
    let (mut lib, mut cli) = (Vec::new(), Vec::new());
    for _ in 0..rounds.min(5) {
        let t = Instant::now();
        let n = netward::git::files(&dir, Some(&head), "policies").expect("files").len();
        lib.push(t.elapsed());
        let t = Instant::now();
        assert_eq!(read_with_git_program(&dir, &head, "policies"), n);
        cli.push(t.elapsed());
    }
    let (l, c) = (median(&mut lib), median(&mut cli));
    println!(
        "reading the commit's {} files: libgit2 {:.1} ms, git ls-tree + git show per file {:.0} ms ({:.0}x)",
        docs.len(),
        ms(l),
        ms(c),
        c.as_secs_f64() / l.as_secs_f64()
    );
    drop(r);
    drop(lab);
    let _ = std::fs::remove_dir_all(dir);
}

/// The files under `path` at `rev`, read as netward read them before
/// libgit2; returns how many.
fn read_with_git_program(dir: &Path, rev: &str, path: &str) -> usize {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("git").arg("-C").arg(dir).args(args).output().expect("git");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let list = run(&["ls-tree", "-r", "--name-only", rev, "--", path]);
    list.lines().map(|f| run(&["show", &format!("{rev}:{f}")])).filter(|t| !t.is_empty()).count()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn summary(times: &mut [Duration]) -> String {
    times.sort();
    let p99 = times[((times.len() as f64 * 0.99).ceil() as usize).min(times.len()) - 1];
    format!(
        "median {:.0} ms, p99 {:.0} ms (min {:.0}, max {:.0})",
        ms(times[times.len() / 2]),
        ms(p99),
        ms(times[0]),
        ms(times[times.len() - 1])
    )
}

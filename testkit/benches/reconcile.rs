//! Benchmark: commit to enforced. A local Git repository holding the
//! 10,000-pod, 1,000-policy world; each round commits a one-policy edit and
//! times one reconcile pass (read the commit, load and validate 1,000
//! policies, compile the node's ruleset, diff and apply over netlink, read
//! back). A webhook or a watched path adds only the wake-up (milliseconds).
//!
//! Run as root: `cargo bench -p netward-testkit --bench reconcile`.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use netward::enforce::netlink::Netlink;
use netward::reconcile::{Outcome, Reconciler, RolloutMode, Source};
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
    assert_eq!(r.pass(), Outcome::InForce, "first pass");
    let mut times: Vec<Duration> = Vec::new();
    let text = g.policies.clone();
    for i in 0..rounds {
        // One policy edited per commit (a port moves), alternating so each commit differs.
        let edited = text.replacen(
            "destination:\n      ports: [\"8000:9999\", 5432]",
            &format!("destination:\n      ports: [\"8000:9999\", {}]", 5433 + i),
            1,
        );
        std::fs::write(dir.join("policies/policies.yaml"), edited).expect("write");
        git(&dir, &["commit", "-qam", &format!("edit {i}")]);
        let t = std::time::Instant::now();
        assert_eq!(r.pass(), Outcome::InForce);
        times.push(t.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p99 = times[((times.len() as f64 * 0.99).ceil() as usize).min(times.len()) - 1];
    println!(
        "commit to enforced, 10,000 pods / 1,000 policies, {} commits: median {:.0} ms, p99 {:.0} ms (min {:.0}, max {:.0})",
        times.len(),
        ms(times[times.len() / 2]),
        ms(p99),
        ms(times[0]),
        ms(times[times.len() - 1])
    );
    let _ = std::fs::remove_dir_all(dir);
}

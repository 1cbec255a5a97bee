//! Benchmark: `netward diff` on the 1,000-pod, 200-policy synthetic world
//! with 10 policies changed (ports edited): loading both revisions, comparing
//! the matrices on every port, explaining each changed connection, and the
//! per-object YAML diffs. Git itself is not timed (see the README for the
//! whole command).
//!
//! Run: `cargo bench -p netward --bench diff`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use netward::change::{diff, Revision};
use netward::manifest::load::{load_cluster_text, load_policy_texts};
use netward::synth::{generate, Shape};

fn main() {
    let g = generate(&Shape { pods: 1_000, policies: 200, seed: 42 });
    // Ten policies changed: the first ten named allow- policies get another port.
    let docs: Vec<&str> = g.policies.split("\n---\n").collect();
    let mut changed = 0;
    let head_docs: Vec<String> = docs
        .iter()
        .map(|d| {
            if changed < 10 && d.contains("name: allow-") && d.contains("port: http") {
                changed += 1;
                d.replacen("port: http", "port: 9999", 1)
            } else {
                d.to_string()
            }
        })
        .collect();
    assert_eq!(changed, 10);
    let head_text = head_docs.join("\n---\n");
    let base_files = vec![(Arc::<str>::from("base:policies.yaml"), g.policies.clone())];
    let head_files = vec![(Arc::<str>::from("policies.yaml"), head_text)];
    let mut d = Vec::new();
    let mut cluster = load_cluster_text(&Arc::from("cluster.yaml"), &g.cluster, &mut d);
    cluster.fill_missing_namespaces();
    let rounds = if std::env::args().any(|a| a == "--quick") { 1 } else { 5 };
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..rounds {
        let t = Instant::now();
        let mut d = Vec::new();
        let bset = load_policy_texts(base_files.iter().map(|(n, t)| (n.clone(), t.as_str())), &mut d);
        let hset = load_policy_texts(head_files.iter().map(|(n, t)| (n.clone(), t.as_str())), &mut d);
        assert!(d.is_empty(), "{d:?}");
        let b = Revision { label: "base".into(), set: &bset, files: &base_files };
        let h = Revision { label: "head".into(), set: &hset, files: &head_files };
        let r = diff(&b, &h, &cluster, "synthetic");
        times.push(t.elapsed());
        last = Some((r.opened.len(), r.closed.len(), r.objects.len(), r.ports.len()));
    }
    times.sort();
    let med: Duration = times[times.len() / 2];
    let (o, c, objs, ports) = last.expect("ran");
    println!(
        "diff 1,000 pods / 200 policies, 10 policies changed: {:.1} ms median of {rounds} ({o} opened, {c} closed, {objs} objects changed, {ports} ports compared)",
        med.as_secs_f64() * 1000.0
    );
}

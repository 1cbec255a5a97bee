//! Benchmark: `matrix` on synthetic clusters of 1,000 pods / 200 policies and
//! 10,000 pods / 2,000 policies, measured side by side in one run.
//!
//! Run: `cargo bench -p netward --bench matrix` (add `-- --quick` for one round).
//! Reports, per size: load (parse + decode), analysis set-up, matrix over three
//! ports (class-level counts, what `--format summary` prints), and the total;
//! then the 10k/1k ratio, which the engine keeps under 20x.

use std::sync::Arc;
use std::time::{Duration, Instant};

use netward::analysis::{Analysis, Matrix, View};
use netward::manifest::load::{load_cluster_text, load_policy_texts};
use netward::model::port::FlowPort;
use netward::synth::{generate, Shape};

struct Sample {
    load: Duration,
    setup: Duration,
    matrix: Duration,
    classes: usize,
    allowed: u64,
}

fn once(cluster: &str, policies: &str, ports: &[FlowPort]) -> Sample {
    let t0 = Instant::now();
    let mut diags = Vec::new();
    let mut c = load_cluster_text(&Arc::from("cluster.yaml"), cluster, &mut diags);
    c.fill_missing_namespaces();
    let p = load_policy_texts(std::iter::once((Arc::from("policies.yaml"), policies)), &mut diags);
    assert!(diags.is_empty(), "generated input must load cleanly: {diags:?}");
    let t1 = Instant::now();
    let an = Analysis::new(&p, &c, View::Enforced);
    let t2 = Instant::now();
    let m = Matrix::compute(&an, ports);
    let allowed = (0..ports.len()).map(|i| m.counts(i).allowed).sum();
    let t3 = Instant::now();
    Sample {
        load: t1 - t0,
        setup: t2 - t1,
        matrix: t3 - t2,
        classes: m.class_counts().iter().map(|(_, n)| n).sum(),
        allowed,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 1 } else { 5 };
    let ports: Vec<FlowPort> =
        ["8080/TCP", "5432/TCP", "53/UDP"].iter().map(|p| FlowPort::parse(p).expect("port")).collect();
    let sizes = [(1_000, 200), (10_000, 2_000)];
    let worlds: Vec<_> = sizes.iter().map(|&(pods, policies)| generate(&Shape { pods, policies, seed: 42 })).collect();
    println!(
        "{:>22} {:>9} {:>9} {:>10} {:>10} {:>8}",
        "case", "load ms", "setup ms", "matrix ms", "total ms", "classes"
    );
    let mut totals = Vec::new();
    // Interleave the sizes round by round, so machine noise hits both alike.
    let mut samples: Vec<Vec<Sample>> = sizes.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (i, w) in worlds.iter().enumerate() {
            samples[i].push(once(&w.cluster, &w.policies, &ports));
        }
    }
    for (i, &(pods, policies)) in sizes.iter().enumerate() {
        let s = &samples[i];
        let load = median(s.iter().map(|x| x.load).collect());
        let setup = median(s.iter().map(|x| x.setup).collect());
        let matrix = median(s.iter().map(|x| x.matrix).collect());
        let total = median(s.iter().map(|x| x.load + x.setup + x.matrix).collect());
        totals.push(total);
        println!(
            "{:>22} {:>9.1} {:>9.1} {:>10.1} {:>10.1} {:>8}   ({} allowed pairs over 3 ports)",
            format!("{pods} pods/{policies} pol"),
            ms(load),
            ms(setup),
            ms(matrix),
            ms(total),
            s[0].classes,
            s[0].allowed
        );
    }
    println!("ratio 10k/1k (total): {:.1}x (target <= 20x)", totals[1].as_secs_f64() / totals[0].as_secs_f64());
}

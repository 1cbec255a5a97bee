//! Property: on random worlds (Kubernetes and Calico policies, tiers with
//! Pass and Deny, network sets, named ports, several nodes) the lab's kernel
//! agrees with the model on every probed pod pair.
//!
//! CI runs a bounded number of worlds; set NETWARD_LAB_CASES for more, and
//! NETWARD_LAB_SEED to replay one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use netward::analysis::{Analysis, View};
use netward::enforce::Mode;
use netward::manifest::load::{load_cluster_text, load_policy_texts};
use netward::synth::{generate, Shape};
use netward_testkit::cluster_lab::ClusterLab;
use netward_testkit::lab::check_support;
use netward_testkit::verify::verify;

#[test]
fn random_worlds_kernel_agrees_with_model() {
    match check_support() {
        Ok(()) => {}
        Err(e) if std::env::var_os("CI").is_some() => panic!("lab tests must run on CI, but: {e}"),
        Err(e) => {
            eprintln!("SKIPPED random-world lab test: {e}");
            return;
        }
    }
    let cases: u64 = std::env::var("NETWARD_LAB_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let first: u64 = std::env::var("NETWARD_LAB_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let probe = PathBuf::from(env!("CARGO_BIN_EXE_netward-probe"));
    for seed in first..first + cases {
        // 60-90 pods over 2-3 nodes, 12-30 policies of every kind synth makes.
        let shape = Shape { pods: 60 + (seed as usize * 7) % 31, policies: 12 + (seed as usize * 5) % 19, seed };
        let g = generate(&shape);
        let mut d = Vec::new();
        let mut cluster = load_cluster_text(&Arc::from("cluster.yaml"), &g.cluster, &mut d);
        cluster.fill_missing_namespaces();
        let set = load_policy_texts(std::iter::once((Arc::from("policies.yaml"), g.policies.as_str())), &mut d);
        assert!(d.is_empty(), "seed {seed}: {d:?}");
        // Keep the lab small: the first 14 workload pods.
        let mut kept = 0;
        cluster.pods.retain(|p| {
            kept += usize::from(!p.host_network);
            !p.host_network && kept <= 14
        });
        let an = Analysis::new(&set, &cluster, View::Enforced);
        let mut lab = ClusterLab::up(&format!("rw{seed}"), &cluster, &[], &probe, false, &|_| {}).expect("lab up");
        lab.enforce(&an, Mode::Enforce).expect("enforced");
        let checked = verify(&lab, &an, 24, Duration::from_millis(300), &|_, _| {});
        let wrong: Vec<String> = checked
            .iter()
            .filter(|c| c.disagrees())
            .map(|c| {
                format!(
                    "{} -> {} {}: kernel {:?}, model allows: {}",
                    c.from, c.to, c.port, c.outcome.result, c.model_allows
                )
            })
            .collect();
        assert!(!checked.is_empty());
        assert!(
            wrong.is_empty(),
            "seed {seed} ({shape:?}): {} probes, {} disagreements:\n{}",
            checked.len(),
            wrong.len(),
            wrong.join("\n")
        );
        eprintln!(
            "seed {seed}: {} probes, 0 disagreements ({} allowed)",
            checked.len(),
            checked.iter().filter(|c| c.model_allows).count()
        );
    }
}

//! The cluster lab on a real kernel: the bundled example on its two nodes,
//! verified pair by pair against the model; a lab killed midway leaves
//! nothing behind once the next lab comes up.

use std::path::PathBuf;
use std::time::Duration;

use netward::analysis::{Analysis, View};
use netward::enforce::Mode;
use netward::manifest::{load_cluster, load_policies};
use netward_testkit::cluster_lab::ClusterLab;
use netward_testkit::lab::check_support;
use netward_testkit::verify::verify;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn supported() -> bool {
    match check_support() {
        Ok(()) => true,
        Err(e) if std::env::var_os("CI").is_some() => panic!("lab tests must run on CI, but: {e}"),
        Err(e) => {
            eprintln!("SKIPPED lab test: {e}");
            false
        }
    }
}

#[test]
fn the_example_cluster_on_two_nodes_agrees_with_the_model() {
    if !supported() {
        return;
    }
    let (set, _) = load_policies(&[root().join("policies")]).into_result().expect("policies");
    let (cluster, _) = load_cluster(&[root().join("policies/cluster.yaml")]).into_result().expect("cluster");
    let an = Analysis::new(&set, &cluster, View::Enforced);
    let probe = PathBuf::from(env!("CARGO_BIN_EXE_netward-probe"));
    let mut lab = ClusterLab::up("verify", &cluster, &[], &probe, false, &|_| {}).expect("lab up");
    let reports = lab.enforce(&an, Mode::Enforce).expect("enforced");
    assert_eq!(reports.len(), 2, "node-a and node-b");
    let checked = verify(&lab, &an, 16, Duration::from_millis(500), &|_, _| {});
    let wrong: Vec<String> = checked
        .iter()
        .filter(|c| c.disagrees())
        .map(|c| format!("{} -> {} {}: kernel {:?}, model {}", c.from, c.to, c.port, c.outcome.result, c.model_allows))
        .collect();
    assert!(checked.len() > 20, "{} probes", checked.len());
    assert!(checked.iter().any(|c| c.model_allows) && checked.iter().any(|c| !c.model_allows));
    assert!(wrong.is_empty(), "{} probes, {} disagreements:\n{}", checked.len(), wrong.len(), wrong.join("\n"));
    eprintln!("{} probes, 0 disagreements", checked.len());
}

#[test]
fn a_killed_lab_is_cleaned_up_by_the_next_one() {
    if !supported() {
        return;
    }
    // A child process builds a lab and is killed before it can clean up.
    let me = std::env::current_exe().expect("test binary");
    let mut child = std::process::Command::new(me)
        .args(["--exact", "build_a_lab_and_hang", "--ignored", "--nocapture"])
        .env("NETWARD_LAB_HANG", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("child");
    let pid = child.id();
    let mut out = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    while !line.contains("lab is up") {
        line.clear();
        if std::io::BufRead::read_line(&mut out, &mut line).expect("read") == 0 {
            panic!("the child never brought its lab up");
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let list = || {
        String::from_utf8_lossy(&std::process::Command::new("ip").args(["netns", "list"]).output().expect("ip").stdout)
            .into_owned()
    };
    let prefix = format!("nwlab-{pid}-");
    assert!(list().contains(&prefix), "the killed run left its namespaces (as a crash would)");
    // The next lab cleans up after the dead one.
    netward_testkit::lab::clean_leftovers();
    assert!(!list().contains(&prefix), "leftovers of a dead lab are removed");
}

/// Helper for the test above, run in a child process; ignored on its own
/// because it never returns.
#[test]
#[ignore = "run only as the child of a_killed_lab_is_cleaned_up_by_the_next_one"]
fn build_a_lab_and_hang() {
    if std::env::var_os("NETWARD_LAB_HANG").is_none() {
        return;
    }
    let (cluster, _) = load_cluster(&[root().join("policies/cluster.yaml")]).into_result().expect("cluster");
    let probe = PathBuf::from(env!("CARGO_BIN_EXE_netward-probe"));
    let _lab = ClusterLab::up("hang", &cluster, &[], &probe, false, &|_| {}).expect("lab up");
    println!("lab is up");
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

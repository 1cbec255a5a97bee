//! What the reconcile benchmarks share: a Git repository holding a world.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.email=bench@netward", "-c", "user.name=bench", "-c", "init.defaultBranch=main"])
        .args(args)
        .output()
        .expect("git");
    assert!(ok.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&ok.stderr));
}

/// A fresh repository under the temp directory with the world's policies in
/// `policies/`, one file per object as policy repositories keep them
/// (`policies/0000.yaml`, ...), and its snapshot in `cluster.yaml`,
/// committed on main.
pub fn world_repo(tag: &str, world: &netward::synth::Generated) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netward-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("policies")).expect("mkdir");
    for (i, doc) in policy_documents(world).iter().enumerate() {
        std::fs::write(dir.join(format!("policies/{i:04}.yaml")), doc).expect("write");
    }
    std::fs::write(dir.join("cluster.yaml"), &world.cluster).expect("write");
    git(&dir, &["init", "-q"]);
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-qm", "world"]);
    dir
}

/// The world's policy objects, one YAML document each.
pub fn policy_documents(world: &netward::synth::Generated) -> Vec<String> {
    world.policies.split("---\n").filter(|d| !d.trim().is_empty()).map(str::to_string).collect()
}

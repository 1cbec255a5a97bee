//! Shared by netward's tests (a dev-dependency only; see CONTRIBUTING.md for
//! the tiers).
//!
//! - [`gate`]: whether a test that needs something of the machine (root and
//!   network namespaces, CNI plugins, sshd) can run. Where it cannot, the
//!   test prints `SKIPPED` and passes; on CI (`CI` set) it fails instead,
//!   because every tier must run there.
//! - [`TempDir`]: a directory removed when dropped, also when the test
//!   panics, so a failing test leaves nothing behind in /tmp.
//! - [`Netns`]: a network namespace of the test's own, removed when dropped,
//!   and the `inet netward` table netward programmed into it.

use std::ffi::OsStr;
use std::fmt::Display;
use std::ops::Deref;
use std::path::Path;

/// What a test needs of the machine beyond a Rust toolchain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// Root, `ip`, `nft` and network namespaces: the kernel and lab tests.
    Kernel,
    /// The CNI plugins (`containernetworking-plugins`), on top of `Kernel`.
    Cni,
    /// A program the test drives (sshd, ssh-keygen).
    Tool,
    /// A real Kubernetes control plane (localkube), built from source with Go.
    ControlPlane,
}

impl Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tier::Kernel => "kernel",
            Tier::Cni => "CNI",
            Tier::Tool => "tool",
            Tier::ControlPlane => "control plane",
        })
    }
}

/// Whether `what` (a test or a group of them, for the message) can run:
/// `check` is Ok, or the reason it cannot. Off CI a test that cannot run is
/// skipped with one line on stderr; on CI this panics with the reason.
pub fn gate<E: Display>(tier: Tier, what: &str, check: Result<(), E>) -> bool {
    match check {
        Ok(()) => true,
        Err(e) if on_ci() => panic!("{what} ({tier} tier) must run on CI, but: {e}"),
        Err(e) => {
            eprintln!("SKIPPED {what} ({tier} tier): {e}");
            false
        }
    }
}

/// Whether this is CI, where nothing may be skipped.
pub fn on_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// A fresh directory under the system's temporary directory, named
/// `netward-<tag>-…`, removed with everything in it when dropped.
#[derive(Debug)]
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        TempDir(tempfile::Builder::new().prefix(&format!("netward-{tag}-")).tempdir().expect("a temporary directory"))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<OsStr> for TempDir {
    fn as_ref(&self) -> &OsStr {
        self.0.path().as_os_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn a_temporary_directory_goes_away_when_its_test_panics() {
        let path = std::panic::catch_unwind(|| {
            let dir = TempDir::new("panics");
            std::fs::write(dir.join("file"), "x").expect("write");
            let path = dir.to_path_buf();
            assert!(path.join("file").exists());
            std::panic::panic_any(path);
        })
        .expect_err("it panicked")
        .downcast::<PathBuf>()
        .expect("the path");
        assert!(!path.exists(), "{} is gone", path.display());
    }

    #[test]
    fn a_test_that_can_run_runs_and_one_that_cannot_is_skipped_off_ci() {
        assert!(gate(Tier::Tool, "this", Ok::<(), String>(())));
        if !on_ci() {
            assert!(!gate(Tier::Tool, "that", Err("no such program")));
        }
    }
}

/// A network namespace of the test's own (`nwlab-<pid>-t-<tag>`: the lab
/// sweeps those of dead processes), deleted when dropped; nothing of the
/// machine's own namespace is touched.
#[derive(Debug)]
pub struct Netns(pub String);

impl Netns {
    /// A fresh namespace, or None (SKIPPED) where this cannot run; on CI
    /// that is a failure (kernel tier).
    pub fn new(tag: &str) -> Option<Netns> {
        let name = format!("nwlab-{}-t-{tag}", std::process::id());
        let made =
            std::process::Command::new("ip").args(["netns", "add", &name]).output().is_ok_and(|o| o.status.success());
        let check = if made { Ok(()) } else { Err("cannot create a network namespace (not root?)") };
        gate(Tier::Kernel, "a test in a network namespace", check).then_some(Netns(name))
    }

    /// `nft list table inet netward` inside the namespace ("" when there is none).
    pub fn table(&self) -> String {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &self.0, "nft", "list", "table", "inet", "netward"])
            .output()
            .expect("ip netns exec nft");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

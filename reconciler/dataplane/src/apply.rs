//! Keeping the kernel's table equal to the desired ruleset: read back, diff,
//! apply the difference in one transaction, read back again to confirm.
//!
//! The kernel sits behind `Dataplane`. `NftCli` drives the `nft` command
//! (one `nft -f` is one netlink transaction, so a rejected change changes
//! nothing); a netlink backend will implement the same trait.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netward_nftables::diff::{diff, diff_rulesets, render, Changes};
use netward_nftables::live::Live;
use netward_nftables::ruleset::{Ruleset, TABLE};

/// Why an apply failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnforceError {
    /// nftables cannot be used here (no `nft`, no permission); retrying will not help.
    #[error("nftables unavailable: {0}")]
    Unavailable(String),
    /// The kernel refused the change; nothing was changed. The message names
    /// the object. Retrying the same change will not help.
    #[error("the kernel rejected the change (nothing was changed): {0}")]
    Rejected(String),
    /// The transaction met trouble that can pass: the kernel answered
    /// EAGAIN or EINTR, or the socket failed mid-way (answers dropped). The
    /// next sync reads the table back and converges.
    #[error("the change did not go through this time: {0}")]
    Transient(String),
    /// After applying, the table read back differs from what was wanted
    /// (someone changed it meanwhile); a retry repairs it.
    #[error("the table read back differs from the one applied: {0}")]
    Mismatch(String),
}

impl EnforceError {
    /// Whether the same change may succeed when tried again.
    pub fn retryable(&self) -> bool {
        matches!(self, EnforceError::Mismatch(_) | EnforceError::Transient(_))
    }
}

/// The kernel side: read the table, apply a transaction.
pub trait Dataplane {
    /// The live table, or None when it does not exist.
    fn read(&self) -> Result<Option<Live>, EnforceError>;
    /// Applies a change as one transaction.
    fn apply(&self, changes: &Changes, desired: &Ruleset, live: Option<&Live>) -> Result<(), EnforceError>;
    /// The node's routes, to learn which link each local pod is behind
    /// (none where the dataplane is not a kernel).
    fn routes(&self) -> Result<netward_nftables::routes::Routes, EnforceError> {
        Ok(netward_nftables::routes::Routes::default())
    }
    /// The connections the kernel tracks (none where it cannot tell).
    fn flows(&self) -> Result<Vec<netward_netlink::conntrack::Flow>, EnforceError> {
        Ok(Vec::new())
    }
    /// Forgets the tracked connections with these original tuples, so their
    /// next packet meets the ruleset again; returns how many were forgotten.
    fn forget(&self, tuples: &[netward_netlink::conntrack::Tuple]) -> Result<usize, EnforceError> {
        let _ = tuples;
        Ok(0)
    }
}

impl<T: Dataplane + ?Sized> Dataplane for Box<T> {
    fn read(&self) -> Result<Option<Live>, EnforceError> {
        (**self).read()
    }

    fn apply(&self, changes: &Changes, desired: &Ruleset, live: Option<&Live>) -> Result<(), EnforceError> {
        (**self).apply(changes, desired, live)
    }

    fn routes(&self) -> Result<netward_nftables::routes::Routes, EnforceError> {
        (**self).routes()
    }

    fn flows(&self) -> Result<Vec<netward_netlink::conntrack::Flow>, EnforceError> {
        (**self).flows()
    }

    fn forget(&self, tuples: &[netward_netlink::conntrack::Tuple]) -> Result<usize, EnforceError> {
        (**self).forget(tuples)
    }
}

/// The `nft` command, optionally run inside a network namespace.
#[derive(Clone, Debug)]
pub struct NftCli {
    /// The command line before nft's own arguments: `["nft"]`, or
    /// `["ip", "netns", "exec", NS, "nft"]`.
    argv: Vec<String>,
}

impl NftCli {
    /// `nft` in this process's network namespace.
    pub fn new() -> Self {
        NftCli { argv: vec!["nft".into()] }
    }

    /// `nft` inside the named network namespace.
    pub fn in_netns(ns: &str) -> Self {
        NftCli { argv: ["ip", "netns", "exec", ns, "nft"].iter().map(|s| s.to_string()).collect() }
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.argv[0]);
        c.args(&self.argv[1..]);
        c
    }
}

impl Default for NftCli {
    fn default() -> Self {
        Self::new()
    }
}

impl Dataplane for NftCli {
    fn read(&self) -> Result<Option<Live>, EnforceError> {
        let out = self
            .command()
            .args(["-j", "list", "table", "inet", TABLE])
            .output()
            .map_err(|e| EnforceError::Unavailable(format!("cannot run nft: {e}")))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("No such file or directory") {
                return Ok(None);
            }
            return Err(EnforceError::Unavailable(err.trim().to_string()));
        }
        Live::from_nft_json(&String::from_utf8_lossy(&out.stdout)).map(Some).map_err(EnforceError::Unavailable)
    }

    fn apply(&self, changes: &Changes, desired: &Ruleset, live: Option<&Live>) -> Result<(), EnforceError> {
        let _ = live;
        self.apply_script(&render(changes, desired))
    }

    /// `ip -j route show` for both families, in the same namespace as nft.
    fn routes(&self) -> Result<netward_nftables::routes::Routes, EnforceError> {
        let mut argv = self.argv.clone();
        if let Some(last) = argv.last_mut() {
            *last = "ip".into();
        }
        let mut routes = netward_nftables::routes::Routes::default();
        for family in ["-4", "-6"] {
            let out = Command::new(&argv[0])
                .args(&argv[1..])
                .args([family, "-j", "route", "show"])
                .output()
                .map_err(|e| EnforceError::Unavailable(format!("cannot run ip: {e}")))?;
            if !out.status.success() {
                return Err(EnforceError::Unavailable(format!(
                    "ip route: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            let text = String::from_utf8_lossy(&out.stdout);
            // A family with no routes at all prints nothing.
            if !text.trim().is_empty() {
                routes.extend(netward_nftables::routes::Routes::parse(&text).map_err(EnforceError::Unavailable)?);
            }
        }
        Ok(routes)
    }
}

impl NftCli {
    /// Runs an `nft -f` script as one transaction.
    pub fn apply_script(&self, script: &str) -> Result<(), EnforceError> {
        let mut child = self
            .command()
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| EnforceError::Unavailable(format!("cannot run nft: {e}")))?;
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(script.as_bytes())
            .map_err(|e| EnforceError::Unavailable(format!("cannot write to nft: {e}")))?;
        let out =
            child.wait_with_output().map_err(|e| EnforceError::Unavailable(format!("nft did not finish: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            // nft names the failing command and object; keep its first lines.
            let err: Vec<String> = String::from_utf8_lossy(&out.stderr).lines().take(3).map(str::to_string).collect();
            Err(EnforceError::Rejected(err.join(" | ")))
        }
    }
}

/// What one sync did.
#[derive(Clone, Debug)]
pub struct Report {
    /// What was changed (empty when the table already matched).
    pub changes: Changes,
    /// The live table differed from what the previous sync left: someone
    /// edited or flushed it. The sync repaired it.
    pub drift: bool,
    /// Read-back, diff and apply together.
    pub duration: Duration,
}

/// Keeps one node's table in sync with desired rulesets.
pub struct Enforcer<D: Dataplane> {
    dataplane: D,
    /// The ruleset the last successful sync or update left in the kernel;
    /// None when unknown (never synced, or an apply failed).
    last: Option<Ruleset>,
}

impl<D: Dataplane> Enforcer<D> {
    /// An enforcer that knows nothing of the table yet: its first sync reads it back.
    pub fn new(dataplane: D) -> Self {
        Enforcer { dataplane, last: None }
    }

    /// The kernel edge it programs.
    pub fn dataplane(&self) -> &D {
        &self.dataplane
    }

    /// Applies what changed since the last sync without reading the table
    /// back: the fast path for pod churn and policy edits. Falls back to a
    /// full `sync` when the kernel's state is unknown. Call `sync` now and
    /// then to notice and repair edits made behind netward's back.
    pub fn update(&mut self, desired: &Ruleset) -> Result<Report, EnforceError> {
        let Some(last) = self.last.take() else { return self.sync(desired) };
        let start = Instant::now();
        let changes = diff_rulesets(&last, desired);
        if !changes.is_empty() {
            // On failure `last` stays None: what the kernel holds is unknown
            // until the next call reads it back.
            self.dataplane.apply(&changes, desired, None)?;
        }
        self.last = Some(desired.clone());
        Ok(Report { changes, drift: false, duration: start.elapsed() })
    }

    /// Makes the kernel's table equal to `desired`, changing only what
    /// differs, and reads it back to confirm. On error the previous table
    /// stays in force.
    pub fn sync(&mut self, desired: &Ruleset) -> Result<Report, EnforceError> {
        let start = Instant::now();
        let live = self.dataplane.read()?;
        let expected = self.last.take().map(|l| Live::of(&l));
        let drift = expected.is_some() && live != expected;
        let changes = diff(live.as_ref(), desired);
        if !changes.is_empty() {
            self.dataplane.apply(&changes, desired, live.as_ref())?;
        }
        let after = self.dataplane.read()?;
        if after.as_ref() != Some(&Live::of(desired)) {
            return Err(EnforceError::Mismatch("a concurrent change; the next sync repairs it".into()));
        }
        self.last = Some(desired.clone());
        Ok(Report { changes, drift, duration: start.elapsed() })
    }
}

//! The reconcile loop: follow a Git ref, refuse bad commits whole, and keep
//! the node's table equal to what the last good commit says.
//!
//! fetch -> load the tree at the commit -> validate -> check guards ->
//! compile this node's ruleset -> apply the difference -> read back ->
//! record. Level-triggered: every pass converges the table, so a restart,
//! a second run or a hand flush all end in the same state.

use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram};
use prometheus_client::registry::Registry;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::analysis::{Analysis, View};
use crate::diag::Severity;
use crate::enforce::{self, Dataplane, Enforcer, Mode, NodeSpec, L7};
use crate::git;
pub use crate::git::auth::GitAuth;
use crate::manifest::load::{load_cluster, load_policy_texts};

/// Where policies come from.
#[derive(Clone, Debug)]
pub struct Source {
    /// A local checkout or a Git URL (`file://`, `https://`, ...).
    pub repo: String,
    /// Branch, tag or commit.
    pub git_ref: String,
    /// Directory of policies inside the repository.
    pub path: String,
    /// Where a remote repository is mirrored.
    pub cache: PathBuf,
    /// Only commits signed by a key in this allowed-signers file (the format
    /// `git` and `ssh-keygen -Y` use) are applied.
    pub allowed_signers: Option<PathBuf>,
    pub auth: GitAuth,
    /// Remote fetches, each within a time limit.
    pub fetcher: std::sync::Arc<git::fetch::Fetcher>,
}

/// How long a fetch may stay silent before the pass gives up on it (Flux's default).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the loop's pass waits for its fetch before going on with the
/// commit in force (the fetch's end wakes the loop).
pub const FETCH_WAIT: Duration = Duration::from_secs(2);
/// A fetch still unanswered after this many timeouts makes `/healthz` fail:
/// only a restart frees a connection the server holds open in silence.
const STALLED_AFTER_TIMEOUTS: u32 = 10;

/// What the loop does with a good commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutMode {
    Enforce,
    /// Deny becomes Log + Allow.
    Audit,
    /// Change nothing; report what would be applied.
    DryRun,
}

/// How a pass ended. The log line, the status file, the metrics, the Node
/// annotation and the exit code are all derived from this one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PassResult {
    /// The node now enforces the commit; the table changed.
    Applied,
    /// The node enforces the commit; nothing needed to change.
    Unchanged,
    /// The commit was refused whole (invalid, unsigned, breaking a guard,
    /// deleting every policy); the last good one stays in force.
    Refused,
    /// Dry-run: what the commit would change was computed; nothing was programmed.
    DryRun,
    /// Something outside the commit failed (fetch, inventory, kernel); the
    /// last good commit stays in force and the pass is retried.
    Error,
}

impl PassResult {
    /// The status file's and the logs' word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            PassResult::Applied => "applied",
            PassResult::Unchanged => "unchanged",
            PassResult::Refused => "refused",
            PassResult::DryRun => "dry-run",
            PassResult::Error => "error",
        }
    }

    /// Whether the node enforces (or, in dry-run, would enforce) the commit.
    pub fn in_force(self) -> bool {
        matches!(self, PassResult::Applied | PassResult::Unchanged | PassResult::DryRun)
    }

    /// `--once` and `rollback`: 0 in force, 1 refused (the last good
    /// commit stays), 2 anything else failed.
    pub fn exit_code(self) -> u8 {
        match self {
            PassResult::Applied | PassResult::Unchanged | PassResult::DryRun => 0,
            PassResult::Refused => 1,
            PassResult::Error => 2,
        }
    }
}

impl std::fmt::Display for PassResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One pass's outcome, as recorded in the status.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pass {
    pub commit: String,
    pub at: u64,
    pub result: PassResult,
    /// For people: what changed, or why it was refused or failed.
    pub detail: String,
    pub duration_ms: u64,
    /// The pass found the table edited by hand and repaired it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drift: bool,
    /// A failed pass whose cause may pass by itself (the server, the
    /// network, the API, a busy kernel): the loop tries again soon, backing
    /// off, instead of at its next interval.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retryable: bool,
}

/// Why a commit was not applied: refused for good, or failed for now.
#[derive(Clone, Debug)]
enum Failure {
    /// The commit itself is wrong. `remember`: never retried until the ref
    /// moves (false where the cause may be outside the commit, such as a
    /// `--path` that names no directory of it).
    Refused { why: String, remember: bool },
    /// Something outside the commit failed. `retryable`: it may pass by
    /// itself, and the loop tries again soon (backing off); otherwise only a
    /// change of configuration or of the machine helps, and the loop waits
    /// for its interval.
    Error { why: String, retryable: bool },
}

impl Failure {
    fn refused(why: impl Into<String>) -> Self {
        Failure::Refused { why: why.into(), remember: true }
    }

    /// A failure that may pass by itself.
    fn soon(why: impl Into<String>) -> Self {
        Failure::Error { why: why.into(), retryable: true }
    }

    /// The kernel's answer, by kind: a ruleset it rejects is the commit's
    /// (refused, as an invalid commit is: the same change would be rejected
    /// again); a busy kernel or a concurrent edit is retried soon; no
    /// nftables at all waits for the interval.
    fn of_enforce(e: crate::enforce::EnforceError) -> Self {
        match e {
            crate::enforce::EnforceError::Rejected(_) => Failure::refused(e.to_string()),
            _ => Failure::Error { why: e.to_string(), retryable: e.retryable() },
        }
    }

    fn why(&self) -> &str {
        match self {
            Failure::Refused { why, .. } | Failure::Error { why, .. } => why,
        }
    }
}

/// What `/metrics` shows. The metrics are prometheus-client's, whose values
/// are shared atomics: the copy the HTTP server holds sees every later pass.
#[derive(Clone, Debug)]
pub struct Metrics {
    duration: Histogram,
    refused: Counter,
    drift_repairs: Counter,
    apply_errors: Counter,
    /// The guards of the commit in force, and whether each holds on the
    /// inventory of the last pass (the probes the model runs every pass).
    pub guards: Vec<(crate::guard::Guard, bool)>,
}

/// Upper bounds (seconds) of the pass-duration histogram.
const BOUNDS: [f64; 9] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

type Labels = Vec<(&'static str, String)>;

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            duration: Histogram::new(BOUNDS),
            refused: Counter::default(),
            drift_repairs: Counter::default(),
            apply_errors: Counter::default(),
            guards: Vec::new(),
        }
    }
}

impl Metrics {
    /// Counts one pass.
    fn record(&mut self, p: &Pass) {
        self.duration.observe(p.duration_ms as f64 / 1000.0);
        match p.result {
            PassResult::Refused => {
                self.refused.inc();
            }
            PassResult::Error => {
                self.apply_errors.inc();
            }
            _ => {}
        }
        if p.drift {
            self.drift_repairs.inc();
        }
    }

    /// The OpenMetrics text exposition (which Prometheus scrapes).
    pub fn render(&self, status: &Status) -> String {
        let mut reg = Registry::with_prefix("netward");
        reg.register("reconcile_duration_seconds", "Time of one reconcile pass", self.duration.clone());
        let revision =
            |commit: &str| -> Labels { vec![("commit", commit.to_string()), ("ref", status.tracked_ref.clone())] };
        let applied = Family::<Labels, Gauge>::default();
        if let Some(c) = &status.applied {
            applied.get_or_create(&revision(c)).set(1);
        }
        reg.register("applied_revision", "The commit this node enforces", applied);
        if let Some(c) = &status.dry_run {
            let dry = Family::<Labels, Gauge>::default();
            dry.get_or_create(&revision(c)).set(1);
            reg.register("dry_run_revision", "The commit a dry-run last evaluated (nothing of it is enforced)", dry);
        }
        let guards = Family::<Labels, Gauge>::default();
        for (g, holds) in &self.guards {
            let labels = vec![
                ("guard", without_revision(&g.at).to_string()),
                ("from", g.from.clone()),
                ("to", g.to.clone()),
                ("port", g.port.clone()),
                ("expect", if g.allow { "allow" } else { "deny" }.to_string()),
            ];
            guards.get_or_create(&labels).set(i64::from(*holds));
        }
        reg.register(
            "guard_holds",
            "Whether a guard of the commit in force holds (1) on the current inventory",
            guards,
        );
        reg.register("refused_commits", "Commits refused (invalid or breaking a guard)", self.refused.clone());
        reg.register(
            "drift_repairs",
            "Passes that found the table edited by hand and repaired it",
            self.drift_repairs.clone(),
        );
        reg.register("apply_errors", "Passes that failed to fetch or apply", self.apply_errors.clone());
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
        out
    }
}

/// `file:line:col` of a `REV:file:line:col` position, so a guard's series
/// keeps its name from commit to commit.
fn without_revision(at: &str) -> &str {
    match at.split_once(':') {
        Some((rev, rest)) if !rev.is_empty() && rev.bytes().all(|b| b.is_ascii_hexdigit()) => rest,
        _ => at,
    }
}

/// What `/status` and `--status FILE` show.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Status {
    pub tracked_ref: String,
    /// The commit in force on this node (never set by a dry-run).
    pub applied: Option<String>,
    /// Dry-run: the commit last evaluated (nothing of it is enforced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<String>,
    /// Commits refused, with why (file:line:col and commit); never retried.
    pub refused: Vec<Pass>,
    pub last_error: Option<String>,
    /// Why the inventory is not current (the API watch is broken), if it is not.
    #[serde(default, skip_serializing_if = "Option::is_none", skip_deserializing)]
    pub inventory_error: Option<String>,
    /// Set while a fetch has hung far past its time limit; `/healthz` fails.
    #[serde(default, skip_serializing_if = "Option::is_none", skip_deserializing)]
    pub stalled_fetch: Option<String>,
    /// Warnings about the commit in force that weaken what it says (an
    /// `http` match enforced as plain L4): logged every pass, shown here.
    #[serde(default, skip_serializing_if = "Vec::is_empty", skip_deserializing)]
    pub warnings: Vec<String>,
    /// The last passes, newest last.
    pub history: Vec<Pass>,
}

const HISTORY: usize = 20;

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Source {
    /// A local checkout (or URL without credentials) at `git_ref`, its
    /// policies under `path`, mirrored (if remote) into `cache`.
    pub fn new(repo: impl Into<String>, git_ref: &str, path: &str, cache: PathBuf) -> Self {
        Source {
            repo: repo.into(),
            git_ref: git_ref.into(),
            path: path.into(),
            cache,
            allowed_signers: None,
            auth: GitAuth::default(),
            fetcher: std::sync::Arc::new(git::fetch::Fetcher::new(FETCH_TIMEOUT)),
        }
    }

    fn is_local(&self) -> bool {
        !self.repo.contains("://") && Path::new(&self.repo).exists()
    }

    /// Fetches the ref and returns (the directory to read from, the
    /// commit); `keep` (the commit in force) stays readable.
    pub fn fetch(&self, keep: Option<&str>) -> Result<(PathBuf, String), git::fetch::FetchError> {
        if self.is_local() {
            let dir = PathBuf::from(&self.repo);
            let commit = git::resolve(&dir, &self.git_ref)?;
            return Ok((dir, commit));
        }
        let commit = self.fetcher.fetch(&self.remote(), keep)?;
        Ok((self.cache.clone(), commit))
    }

    /// [`Source::fetch`], waited for at most `wait` (None: until it ends or
    /// falls silent for the fetcher's time limit).
    pub fn attempt(&self, keep: Option<&str>, wait: Option<Duration>) -> git::fetch::Attempt {
        if self.is_local() {
            return git::fetch::Attempt::Done(self.fetch(keep).map(|(_, c)| c));
        }
        self.fetcher.attempt(&self.remote(), keep, wait)
    }

    fn remote(&self) -> git::fetch::Remote {
        let (url, git_ref, cache, auth) =
            (self.repo.clone(), self.git_ref.clone(), self.cache.clone(), self.auth.clone());
        git::fetch::Remote { url, git_ref, cache, auth }
    }

    /// Where commits are read from: the checkout, or the mirror.
    pub fn dir(&self) -> PathBuf {
        if self.is_local() {
            PathBuf::from(&self.repo)
        } else {
            self.cache.clone()
        }
    }
}

/// Where the loop learns which endpoints exist (and which are this node's):
/// snapshot files, or the Kubernetes API (`kubernetes::watch::ApiInventory`).
pub trait Inventory {
    /// The cluster as it is now. Called every pass, so it should be cheap
    /// when nothing changed.
    fn current(&mut self) -> Result<crate::model::Cluster, String>;

    /// Bumped whenever `current` would return something new; a pass after a
    /// bump programs the difference without reading the table back.
    fn generation(&self) -> u64 {
        0
    }

    /// Network sets the cluster itself holds (Calico's CRDs), beside the
    /// repository's own; a repository set of the same name wins.
    fn network_sets(&self) -> Vec<crate::model::NetworkSet> {
        Vec::new()
    }

    /// Whether the inventory is being kept current; `/readyz` fails while
    /// not (the last enforced ruleset stays in force meanwhile).
    fn health(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Why the loop wakes before its interval is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// The repository moved (a webhook, a local commit): fetch, then apply.
    Fetch,
    /// Only the inventory changed: apply the commit in force to it, no fetch.
    Inventory,
}

impl Wake {
    /// A callback for an edge (a Git watcher, the Kubernetes watch) that
    /// wakes the loop for this reason; false once the loop is gone.
    pub fn on(self, tx: &std::sync::mpsc::Sender<Wake>) -> std::sync::Arc<dyn Fn() -> bool + Send + Sync> {
        let tx = tx.clone();
        std::sync::Arc::new(move || tx.send(self).is_ok())
    }
}

/// The loop reads the Kubernetes API's inventory through the same port as
/// snapshot files.
impl Inventory for crate::kubernetes::watch::ApiInventory {
    fn current(&mut self) -> Result<crate::model::Cluster, String> {
        crate::kubernetes::watch::ApiInventory::current(self)
    }

    fn generation(&self) -> u64 {
        crate::kubernetes::watch::ApiInventory::generation(self)
    }

    fn network_sets(&self) -> Vec<crate::model::NetworkSet> {
        crate::kubernetes::watch::ApiInventory::network_sets(self)
    }

    fn health(&self) -> Result<(), String> {
        crate::kubernetes::watch::ApiInventory::health(self)
    }
}

/// Cluster snapshot files, re-read only when one of them changes.
pub struct SnapshotFiles {
    pub paths: Vec<PathBuf>,
    /// The cluster as last read, with the files' modification times.
    cached: Option<(Vec<Option<SystemTime>>, crate::model::Cluster)>,
}

impl SnapshotFiles {
    pub fn new(paths: Vec<PathBuf>) -> Self {
        SnapshotFiles { paths, cached: None }
    }
}

impl Inventory for SnapshotFiles {
    fn current(&mut self) -> Result<crate::model::Cluster, String> {
        let stamps: Vec<Option<SystemTime>> =
            self.paths.iter().map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok()).collect();
        if let Some((s, c)) = &self.cached {
            if *s == stamps {
                return Ok(c.clone());
            }
        }
        let (c, _) = load_cluster(&self.paths)
            .into_result()
            .map_err(|d| format!("inventory: {}", d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("; ")))?;
        self.cached = Some((stamps, c.clone()));
        Ok(c)
    }
}

/// The loop's state between passes.
pub struct Reconciler<D: Dataplane> {
    pub source: Source,
    pub inventory: Box<dyn Inventory + Send>,
    pub node: String,
    pub mode: RolloutMode,
    enforcer: Enforcer<D>,
    pub status: Status,
    pub metrics: Metrics,
    /// Called after a pass that put a new commit in force (or refused one):
    /// `--publish-status` writes it on the Node object.
    pub on_record: Option<PassHook>,
    /// The last fetch: (directory, commit); an inventory wake reuses it.
    fetched: Option<(PathBuf, String)>,
    /// The inventory generation the table was last programmed from.
    programmed_generation: Option<u64>,
    /// Why the pass in progress runs.
    woken_by: Wake,
    /// When the loop fetches (and reads the table back) next.
    next_fetch: Instant,
    /// The wait before retrying a failure that may pass by itself (zero
    /// after a pass that did not fail so).
    backoff: Duration,
    /// The last commit's policy files and what they load to.
    loaded: Option<(String, LoadedCommit)>,
    /// The commit whose signature was last verified, and the allowed
    /// signers it was verified against: a commit never changes, so it is
    /// verified again only when the signers file does (a key revoked).
    verified: Option<(String, Vec<u8>)>,
    /// The repository, opened at most once per pass and only when a commit
    /// must be read or verified (a fetch may have added objects since the
    /// last pass, so it is not kept across passes).
    repo: Option<(PathBuf, git2::Repository, String)>,
    /// How long a pass waits for its fetch (None: until it ends or falls
    /// silent for the fetcher's limit, as `--once` wants).
    pub fetch_wait: Option<Duration>,
    /// What an `http` (application-layer) match compiles to.
    pub l7: L7,
    /// Log every pass, even one with nothing new (`--once` always says how it ended).
    pub log_every_pass: bool,
    /// Leave established connections alone when a commit denies them
    /// (`--keep-established`); by default they are cut.
    pub keep_established: bool,
    /// This node's pod CIDRs given on the command line (`--pod-cidr`), in
    /// addition to its Node object's.
    pub pod_cidrs: Vec<ipnet::IpNet>,
    /// What becomes of traffic of a pod netward has not heard of yet.
    pub unknown_pods: enforce::UnknownPods,
    /// The links of this node's pods as last learned from its routes, and
    /// the pod addresses they were learned for.
    links: Option<(std::collections::BTreeSet<std::net::IpAddr>, std::collections::BTreeMap<std::net::IpAddr, String>)>,
}

/// A commit as loaded once: its policy set and `netward.yaml`.
struct Commit {
    set: crate::model::PolicySet,
    settings: crate::guard::RepoSettings,
}

type LoadedCommit = std::sync::Arc<Commit>;

/// Told of every pass the loop records.
pub type PassHook = Box<dyn FnMut(&Pass) + Send>;

impl<D: Dataplane> Reconciler<D> {
    /// A loop whose inventory is the given snapshot files.
    pub fn new(source: Source, clusters: Vec<PathBuf>, node: String, mode: RolloutMode, dataplane: D) -> Self {
        Self::with_inventory(source, Box::new(SnapshotFiles::new(clusters)), node, mode, dataplane)
    }

    pub fn with_inventory(
        source: Source,
        inventory: Box<dyn Inventory + Send>,
        node: String,
        mode: RolloutMode,
        dataplane: D,
    ) -> Self {
        let status = Status { tracked_ref: source.git_ref.clone(), ..Status::default() };
        Reconciler {
            source,
            inventory,
            node,
            mode,
            enforcer: Enforcer::new(dataplane),
            status,
            metrics: Metrics::default(),
            on_record: None,
            fetched: None,
            programmed_generation: None,
            woken_by: Wake::Fetch,
            next_fetch: Instant::now(),
            backoff: Duration::ZERO,
            verified: None,
            repo: None,
            loaded: None,
            fetch_wait: None,
            l7: L7::default(),
            log_every_pass: false,
            keep_established: false,
            pod_cidrs: Vec::new(),
            unknown_pods: enforce::UnknownPods::Deny,
            links: None,
        }
    }

    /// Derives everything a pass tells from its one typed outcome: metrics,
    /// the log line, the refused list, the history and the Node hook.
    /// `quiet` passes (nothing new to tell) are counted but not logged or kept.
    fn record(&mut self, p: &Pass, quiet: bool) {
        self.metrics.record(p);
        let commit = short(&p.commit).to_string();
        // What the commit in force says but the node cannot enforce as
        // written is said on every pass, so it is never out of sight.
        for w in &self.status.warnings {
            tracing::warn!(commit = %commit, warning = %w, "not enforced as written");
        }
        if quiet && !self.log_every_pass {
            return;
        }
        match p.result {
            PassResult::Refused | PassResult::Error => {
                tracing::warn!(commit = %commit, result = %p.result, duration_ms = p.duration_ms, detail = %p.detail, "reconcile")
            }
            _ => {
                tracing::info!(commit = %commit, result = %p.result, duration_ms = p.duration_ms, detail = %p.detail, "reconcile")
            }
        }
        if p.drift {
            tracing::warn!(commit = %commit, "the table had been changed by hand; repaired");
        }
        if quiet {
            return;
        }
        // The same error pass after pass (a server down for an hour) is one
        // entry, kept current, so the applied revisions stay in the history.
        if let Some(last) = self.status.history.last_mut() {
            if p.result == PassResult::Error && last.result == PassResult::Error && last.detail == p.detail {
                *last = p.clone();
                return;
            }
        }
        if let Some(hook) = self.on_record.as_mut() {
            hook(p);
        }
        self.status.history.push(p.clone());
        let n = self.status.history.len();
        if n > HISTORY {
            self.status.history.drain(..n - HISTORY);
        }
    }

    /// One pass of the loop: fetch, then apply.
    pub fn pass(&mut self) -> Pass {
        self.pass_for(Wake::Fetch)
    }

    /// One pass; after an inventory wake the last fetched commit is applied
    /// again to the new inventory, without going to the Git server.
    pub fn pass_for(&mut self, why: Wake) -> Pass {
        let start = Instant::now();
        self.repo = None;
        self.woken_by = why;
        self.status.inventory_error = self.inventory.health().err();
        let fetched = match (why, &self.fetched) {
            (Wake::Inventory, Some(f)) => Ok(f.clone()),
            _ => match self.source.attempt(self.status.applied.as_deref(), self.fetch_wait) {
                git::fetch::Attempt::Done(r) => r.map(|commit| (self.source.dir(), commit)),
                git::fetch::Attempt::Running => {
                    // The fetch goes on and wakes the loop when it ends;
                    // meanwhile the commit in force meets the inventory.
                    let dir = self.fetched.as_ref().map_or_else(|| self.source.dir(), |f| f.0.clone());
                    let kept = self.keep_in_force(&dir, start);
                    self.note_stalled_fetch();
                    let commit = self.status.applied.clone().unwrap_or_default();
                    return match kept {
                        Some(p) => p,
                        None => self.outcome(commit, PassResult::Error, "the fetch is still running".into(), start),
                    };
                }
            },
        };
        self.note_stalled_fetch();
        let (dir, commit) = match fetched {
            Ok(x) => {
                self.fetched = Some(x.clone());
                x
            }
            Err(e) => {
                let mut p = self.outcome(String::new(), PassResult::Error, e.message.clone(), start);
                p.retryable = e.retryable;
                self.record(&p, false);
                // The server's trouble is no reason to stop enforcing: the
                // commit in force meets the current inventory, and hand
                // edits are repaired, while the fetch fails.
                let dir = self.fetched.as_ref().map_or_else(|| self.source.dir(), |f| f.0.clone());
                self.keep_in_force(&dir, start);
                self.status.last_error = Some(e.message);
                return p;
            }
        };
        // A refused commit is not retried until the ref moves; the last good
        // revision keeps being enforced (and repaired) meanwhile.
        if let Some(r) = self.status.refused.iter().find(|p| p.commit == commit) {
            let detail = format!("refused before: {}", r.detail);
            self.keep_in_force(&dir, start);
            let p = self.outcome(commit, PassResult::Refused, detail, start);
            self.record(&p, true);
            return p;
        }
        match self.apply(&dir, &commit, start) {
            Ok(p) => p,
            Err(f) => {
                let (result, detail, remember, retryable) = match f {
                    Failure::Refused { why, remember } => (PassResult::Refused, why, remember, false),
                    Failure::Error { why, retryable } => {
                        self.status.last_error = Some(why.clone());
                        (PassResult::Error, why, false, retryable)
                    }
                };
                let mut p = self.outcome(commit, result, detail, start);
                p.retryable = retryable;
                if remember {
                    self.status.refused.push(p.clone());
                } else if result == PassResult::Refused {
                    // Not the commit's fault alone: keep enforcing the last
                    // good one, and try again next pass.
                    self.keep_in_force(&dir, start);
                    self.status.last_error = Some(p.detail.clone());
                }
                self.record(&p, false);
                p
            }
        }
    }

    fn outcome(&self, commit: String, result: PassResult, detail: String, start: Instant) -> Pass {
        Pass { commit, at: now(), result, detail, duration_ms: ms(start), drift: false, retryable: false }
    }

    /// Sets `stalled_fetch` while a fetch has heard nothing for many time limits.
    fn note_stalled_fetch(&mut self) {
        let fetcher = &self.source.fetcher;
        self.status.stalled_fetch =
            fetcher.waiting().filter(|w| *w > fetcher.timeout * STALLED_AFTER_TIMEOUTS).map(|w| {
                format!(
                    "a fetch of {} has heard nothing from the server for {} s; restart to recover",
                    git::auth::redact(&self.source.repo, None),
                    w.as_secs()
                )
            });
    }

    /// Applies the commit in force again (to the current inventory, with
    /// drift repair); a failure is reported in `last_error`. None when no
    /// commit is in force.
    fn keep_in_force(&mut self, dir: &Path, start: Instant) -> Option<Pass> {
        let good = self.status.applied.clone()?;
        match self.apply(dir, &good, start) {
            Ok(p) => Some(p),
            Err(f) => {
                let detail = format!("the commit in force, {}: {}", short(&good), f.why());
                self.status.last_error = Some(detail.clone());
                let mut p = self.outcome(good, PassResult::Error, detail, start);
                p.retryable = matches!(f, Failure::Error { retryable: true, .. });
                Some(p)
            }
        }
    }

    /// Reads and loads a commit's policy files (cached: a commit never changes).
    fn load(&mut self, dir: &Path, commit: &str) -> Result<LoadedCommit, Failure> {
        if let Some((c, l)) = &self.loaded {
            if c == commit {
                return Ok(l.clone());
            }
        }
        let (_, repo, prefix) = open_once(&mut self.repo, dir)?;
        let files = match git::files_in(repo, prefix, Some(commit), &self.source.path) {
            Ok(f) => f,
            Err(e @ git::FilesError::PathMissing { .. }) => {
                return Err(Failure::Refused { why: format!("{e}: check --path"), remember: false })
            }
            Err(git::FilesError::Git(e)) => return Err(Failure::soon(e)),
        };
        let mut diags = Vec::new();
        let set = load_policy_texts(files.iter().map(|(n, t)| (n.clone(), t.as_str())), &mut diags);
        let errors: Vec<String> =
            diags.iter().filter(|d| d.severity == Severity::Error).map(|d| d.to_string()).collect();
        if !errors.is_empty() {
            return Err(Failure::refused(format!("invalid commit: {}", errors.join("; "))));
        }
        let settings = self.repo_settings(&files)?;
        let l = std::sync::Arc::new(Commit { set, settings });
        self.loaded = Some((commit.to_string(), l.clone()));
        Ok(l)
    }

    /// `netward.yaml` beside the policies, if the commit has one.
    fn repo_settings(&self, files: &[(std::sync::Arc<str>, String)]) -> Result<crate::guard::RepoSettings, Failure> {
        let name = format!("{}/netward.yaml", self.source.path.trim_end_matches('/'));
        let name = name.trim_start_matches("./").trim_start_matches('/').to_string();
        match files.iter().find(|(n, _)| n.ends_with(&format!(":{name}"))) {
            Some((n, text)) => crate::guard::load_repo_settings(n, text)
                .map_err(|d| Failure::refused(format!("invalid netward.yaml: {d}"))),
            None => Ok(crate::guard::RepoSettings::default()),
        }
    }

    /// How many policies the commit in force has (0 when none is).
    fn policies_in_force(&mut self, dir: &Path) -> usize {
        let Some(good) = self.status.applied.clone() else { return 0 };
        let cached = self.loaded.clone();
        let n = self.load(dir, &good).map(|l| l.set.policies.len()).unwrap_or(0);
        // Counting must not evict the commit being applied from the cache.
        if let Some(c) = cached {
            self.loaded = Some(c);
        }
        n
    }

    /// The link of each local pod address, from the node's routes: read
    /// again only when the local addresses changed or one had no route yet
    /// (the CNI wires a pod after the API lists its address).
    fn links(&mut self, cluster: &crate::model::Cluster) -> std::collections::BTreeMap<std::net::IpAddr, String> {
        let local: std::collections::BTreeSet<std::net::IpAddr> = cluster
            .pods
            .iter()
            .filter(|p| p.node.as_deref() == Some(self.node.as_str()) && !p.host_network)
            .flat_map(|p| p.ips.iter().copied())
            .collect();
        if let Some((ips, links)) = &self.links {
            if *ips == local && links.len() == local.len() {
                return links.clone();
            }
        }
        match self.enforcer.dataplane().routes() {
            Ok(routes) => {
                let links = routes.links(local.iter().copied());
                self.links = Some((local, links.clone()));
                links
            }
            Err(e) => {
                // Dispatch does not need links; anti-spoofing waits for them.
                tracing::warn!(error = %e, "cannot read the node's routes; pod links unknown for now");
                self.links.as_ref().map(|(_, l)| l.clone()).unwrap_or_default()
            }
        }
    }

    /// Forgets the tracked connections the ruleset just applied denies, so
    /// they stop now rather than when they end; returns how many. A failure
    /// is logged, not fatal: the rules are in force either way.
    fn forget_closed_flows(&mut self, an: &Analysis) -> usize {
        let dp = self.enforcer.dataplane();
        let result = dp.flows().and_then(|flows| {
            let closed = enforce::closed::closed(an, &self.node, &flows);
            if closed.is_empty() {
                Ok(0)
            } else {
                dp.forget(&closed)
            }
        });
        match result {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cannot cut the flows the new rules deny; they end on their own");
                0
            }
        }
    }

    /// Loads, checks and applies one commit.
    fn apply(&mut self, dir: &Path, commit: &str, start: Instant) -> Result<Pass, Failure> {
        if let Some(signers) = &self.source.allowed_signers {
            use git::signature::Unverified;
            let key = (commit.to_string(), std::fs::read(signers).unwrap_or_default());
            if self.verified.as_ref() != Some(&key) {
                let (_, repo, _) = open_once(&mut self.repo, dir)?;
                let id = git::resolve_in(repo, commit).map_err(Failure::soon)?;
                match git::signature::verify(repo, id, signers) {
                    Ok(_) => self.verified = Some(key),
                    Err(Unverified::Refused(why)) => {
                        return Err(Failure::refused(format!("not signed by an allowed key: {why}")))
                    }
                    Err(Unverified::CannotCheck(why)) => {
                        // ssh-keygen missing or failing: the machine, not the weather.
                        return Err(Failure::Error {
                            why: format!("cannot check the signature: {why}"),
                            retryable: false,
                        });
                    }
                }
            }
        }
        // A commit's policies never change: an inventory pass reuses them.
        let loaded = self.load(dir, commit)?;
        let in_force = self.status.applied.as_deref() == Some(commit);
        // "Delete every policy" is almost always a mistake (a moved folder, a
        // bad merge): the repository must say it means it.
        if !in_force && loaded.set.policies.is_empty() && !loaded.settings.allow_no_policies {
            let before = self.policies_in_force(dir);
            if before > 0 {
                return Err(Failure::refused(format!(
                    "the commit has no policies under {:?} while the commit in force has {before}; set `allowNoPolicies: true` in netward.yaml to delete them all",
                    self.source.path
                )));
            }
        }
        let generation = self.inventory.generation();
        let cluster = self.inventory.current().map_err(Failure::soon)?;
        let cluster_sets = self.inventory.network_sets();
        let with_cluster_sets;
        let set = if cluster_sets.is_empty() && self.l7 == L7::Allow {
            &loaded.set
        } else {
            let mut s = enforce::with_l7(&loaded.set, self.l7);
            for ns in cluster_sets {
                if !s.network_sets.iter().any(|o| o.namespace == ns.namespace && o.name == ns.name) {
                    s.network_sets.push(ns);
                }
            }
            with_cluster_sets = s;
            &with_cluster_sets
        };
        let mut guard_warning = None;
        let list = &loaded.settings.guards;
        // One analysis for the guards and the ruleset.
        let an = Analysis::new(set, &cluster, View::Enforced);
        let outcomes = crate::guard::evaluate(list, &an);
        let problem = outcomes.iter().find_map(|o| match o {
            crate::guard::GuardOutcome::Holds => None,
            crate::guard::GuardOutcome::Unknown(e) => Some(e.clone()),
            crate::guard::GuardOutcome::Broken(b) => {
                let g = &b.guard;
                let must = if g.allow { "allowed" } else { "denied" };
                Some(format!("breaks guard {}: {} -> {} {} must be {must}", g.at, g.from, g.to, g.port))
            }
        });
        let guards_now: Vec<(crate::guard::Guard, bool)> = list
            .iter()
            .cloned()
            .zip(&outcomes)
            .map(|(g, o)| (g, matches!(o, crate::guard::GuardOutcome::Holds)))
            .collect();
        // For the commit in force the metric follows the inventory at
        // once, whatever happens to the rest of the pass.
        if in_force {
            self.metrics.guards = guards_now.clone();
        }
        if let Some(why) = problem {
            // Guards gate commits. The commit in force stays in force when
            // the cluster changes under it (refusing it would freeze the
            // table with stale pods); the breakage is reported.
            if !in_force {
                return Err(Failure::refused(why));
            }
            guard_warning = Some(why);
        }
        let mode = if self.mode == RolloutMode::Audit { Mode::Audit } else { Mode::Enforce };
        let links = self.links(&cluster);
        let spec = NodeSpec {
            node: self.node.clone(),
            mode,
            links,
            pod_cidrs: enforce::compile::pod_cidrs(&cluster, &self.node, &self.pod_cidrs),
            unknown_pods: self.unknown_pods,
        };
        let rs = enforce::compile(&an, &spec);
        let warnings = crate::validate::not_enforced(&loaded.set, self.l7);
        if self.mode == RolloutMode::DryRun {
            let live = self.enforcer.dataplane().read().map_err(Failure::of_enforce)?;
            let changes = enforce::diff::diff(live.as_ref(), &rs);
            let detail = format!("would apply: {}", changes.summary());
            // Nothing is enforced: `applied` keeps naming what really is.
            let new = self.status.dry_run.replace(commit.to_string()).as_deref() != Some(commit);
            self.status.warnings = warnings;
            self.metrics.guards = guards_now;
            let p = self.outcome(commit.into(), PassResult::DryRun, detail, start);
            self.record(&p, !new && changes.is_empty());
            return Ok(p);
        }
        // A new commit or inventory goes in by the fast path (only what
        // changed since the last pass, no read-back), so commit-to-enforced
        // stays short; a pass with nothing new reads the table back and
        // repairs hand edits.
        // Only an inventory wake takes the fast path for an inventory change:
        // the periodic pass always reads back, so drift is repaired even on a
        // cluster whose pods never stop changing.
        let new_inventory = self.programmed_generation != Some(generation) && self.woken_by == Wake::Inventory;
        let report = if !in_force || new_inventory { self.enforcer.update(&rs) } else { self.enforcer.sync(&rs) }
            .map_err(Failure::of_enforce)?;
        let cut = if report.changes.is_empty() || self.keep_established || mode == Mode::Audit {
            0
        } else {
            self.forget_closed_flows(&an)
        };
        self.programmed_generation = Some(generation);
        self.metrics.guards = guards_now;
        self.status.warnings = warnings;
        let result = if report.changes.is_empty() { PassResult::Unchanged } else { PassResult::Applied };
        let mut detail = report.changes.summary();
        if cut > 0 {
            detail.push_str(&format!("; cut {cut} established flows the new rules deny"));
        }
        if let Some(w) = &guard_warning {
            detail.push_str(&format!("; the cluster now {w}"));
        }
        self.status.last_error = guard_warning;
        self.status.applied = Some(commit.to_string());
        let mut p = self.outcome(commit.into(), result, detail, start);
        p.drift = report.drift;
        // Keep only what changed something, or a new commit.
        self.record(&p, result == PassResult::Unchanged && in_force);
        Ok(p)
    }

    /// Runs passes every `interval` until `stop` says so; `shared` (if any)
    /// gets a copy of the status and metrics after each pass, for the HTTP server.
    pub fn run(
        &mut self,
        interval: Duration,
        status_file: Option<&Path>,
        shared: Option<&std::sync::Mutex<(Status, Metrics)>>,
        trigger: Option<&std::sync::mpsc::Receiver<Wake>>,
        stop: &dyn Fn() -> bool,
    ) {
        let mut why = Wake::Fetch;
        loop {
            let pass = self.pass_for(why);
            let fetched_at = if why == Wake::Fetch { Some(Instant::now()) } else { None };
            if let Some(f) = status_file {
                let _ = write_status(f, &self.status);
            }
            if let Some(m) = shared {
                if let Ok(mut g) = m.lock() {
                    *g = (self.status.clone(), self.metrics.clone());
                }
            }
            if stop() {
                return;
            }
            if let Some(t) = fetched_at {
                self.next_fetch = t + interval;
            }
            // A failure that may pass by itself is retried soon, backing
            // off; any other waits for the interval (or a wake).
            if pass.result == PassResult::Error && pass.retryable {
                self.backoff = next_backoff(self.backoff, interval);
                self.next_fetch = self.next_fetch.min(Instant::now() + self.backoff);
            } else {
                self.backoff = Duration::ZERO;
            }
            // A webhook, a local commit or an inventory change cuts the wait
            // short; wakes that queued up during the pass are one more pass.
            // The interval's fetch (and table read-back) is kept however
            // often the inventory wakes the loop.
            let left = self.next_fetch.saturating_duration_since(Instant::now());
            why = match trigger {
                Some(rx) => match rx.recv_timeout(left) {
                    Ok(first) => {
                        let mut why = first;
                        while let Ok(w) = rx.try_recv() {
                            if w == Wake::Fetch {
                                why = Wake::Fetch;
                            }
                        }
                        if Instant::now() >= self.next_fetch {
                            Wake::Fetch
                        } else {
                            why
                        }
                    }
                    Err(_) => Wake::Fetch,
                },
                None => {
                    std::thread::sleep(left);
                    Wake::Fetch
                }
            };
        }
    }
}

/// The repository holding `dir`, opened on the first call of a pass.
fn open_once<'a>(
    slot: &'a mut Option<(PathBuf, git2::Repository, String)>,
    dir: &Path,
) -> Result<&'a (PathBuf, git2::Repository, String), Failure> {
    if slot.as_ref().is_some_and(|(d, _, _)| d != dir) {
        *slot = None;
    }
    if slot.is_none() {
        let (repo, prefix) = git::open(dir).map_err(Failure::soon)?;
        *slot = Some((dir.to_path_buf(), repo, prefix));
    }
    Ok(slot.as_ref().expect("opened above"))
}

/// The first retry of a failure that may pass by itself.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// 1 s, 2 s, 4 s ... never longer than the interval (a retry is never later
/// than the pass the interval brings anyway).
fn next_backoff(last: Duration, interval: Duration) -> Duration {
    (last * 2).clamp(FIRST_RETRY, interval.max(FIRST_RETRY))
}

fn ms(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

fn short(c: &str) -> &str {
    crate::text::short_id(c)
}

/// Writes the status as JSON, atomically (rename).
pub fn write_status(path: &Path, s: &Status) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&tmp, serde_json::to_string_pretty(s).expect("status serializes") + "\n")?;
    std::fs::rename(tmp, path)
}

/// The commit `rollback` returns to: the newest one the history shows in
/// force that is not the current one.
pub fn rollback_target(s: &Status) -> Option<String> {
    let current = s.applied.as_deref().unwrap_or("");
    s.history
        .iter()
        .rev()
        .filter(|p| matches!(p.result, PassResult::Applied | PassResult::Unchanged) && p.commit != current)
        .map(|p| p.commit.clone())
        .next()
}

/// Reads a status written by an earlier run (so refused commits stay
/// refused across restarts): None if there is none yet. A file that is not
/// a status is an error naming the place, never silently replaced: it holds
/// the refusals that keep bad commits out.
pub fn read_status(path: &Path) -> Result<Option<Status>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        format!(
            "{}:{}:{}: not a netward status file ({e}); fix it, or move it away to start afresh (refused commits would then be tried again)",
            path.display(),
            e.line(),
            e.column()
        )
    })
}

impl<D: Dataplane> Reconciler<D> {
    /// Carries refused commits and history over from an earlier run.
    pub fn resume(&mut self, s: Status) {
        self.status.applied = s.applied;
        self.status.refused = s.refused;
        self.status.history = s.history;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::enforce::diff::Changes;
    use crate::enforce::live::Live;
    use crate::enforce::{EnforceError, Ruleset};
    use crate::model::Cluster;
    use std::process::Command;
    use std::sync::{Arc, Mutex};

    /// The kernel is not the subject here (the integration tests program real
    /// tables); this keeps the table the enforcer would have programmed.
    struct InMemory(Mutex<Option<Live>>);

    impl Dataplane for InMemory {
        fn read(&self) -> Result<Option<Live>, EnforceError> {
            Ok(self.0.lock().expect("lock").clone())
        }
        fn apply(&self, _: &Changes, desired: &Ruleset, _: Option<&Live>) -> Result<(), EnforceError> {
            *self.0.lock().expect("lock") = Some(Live::of(desired));
            Ok(())
        }
    }

    struct Given(Arc<Mutex<Result<Cluster, String>>>);

    impl Inventory for Given {
        fn current(&mut self) -> Result<Cluster, String> {
            self.0.lock().expect("lock").clone()
        }
    }

    /// A loop following `repo` (a path or URL; mirrored under `dir`) whose
    /// inventory is `given`, programming node-b's table in memory.
    fn in_memory_loop(repo: String, dir: &Path, given: &Arc<Mutex<Result<Cluster, String>>>) -> Reconciler<InMemory> {
        let source = Source::new(repo, "main", "policies", dir.join("cache"));
        let inventory = Box::new(Given(given.clone()));
        Reconciler::with_inventory(source, inventory, "node-b".into(), RolloutMode::Enforce, InMemory(Mutex::new(None)))
    }

    fn table(r: &Reconciler<InMemory>) -> Live {
        r.enforcer.dataplane().read().expect("read").expect("table")
    }

    fn chains(r: &Reconciler<InMemory>) -> std::collections::BTreeMap<String, Vec<String>> {
        table(r).chains
    }

    /// A repository holding the example's policies (plus `extra` files),
    /// committed on main, and the example's cluster.
    fn example_repo(tag: &str, extra: &[(&str, &str)]) -> (PathBuf, Cluster) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("root").to_path_buf();
        let dir = std::env::temp_dir().join(format!("netward-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        assert!(Command::new("cp").arg("-r").arg(root.join("policies")).arg(&dir).status().expect("cp").success());
        for (name, text) in extra {
            std::fs::write(dir.join(name), text).expect("write");
        }
        let id = ["-c", "user.email=t@netward", "-c", "user.name=t", "-c", "init.defaultBranch=main"];
        for args in [&["init", "-q"][..], &["add", "-A"], &["commit", "-qm", "example"]] {
            let ok = Command::new("git").arg("-C").arg(&dir).args([&id[..], args].concat()).status().expect("git");
            assert!(ok.success());
        }
        let (cluster, _) = load_cluster(&[root.join("policies/cluster.yaml")]).into_result().expect("cluster");
        (dir, cluster)
    }

    #[test]
    fn the_inventory_is_a_trait_and_its_changes_and_failures_reach_the_node() {
        let (dir, cluster) = example_repo("inventory", &[]);
        let given = Arc::new(Mutex::new(Ok(cluster.clone())));
        let mut r = in_memory_loop(dir.display().to_string(), &dir, &given);
        assert!(r.pass().result.in_force());
        let with_pods = chains(&r);
        // node-b's pods leave: their chains go with them.
        let mut fewer = cluster.clone();
        fewer.pods.retain(|p| p.node.as_deref() != Some("node-b"));
        *given.lock().expect("lock") = Ok(fewer);
        assert!(r.pass().result.in_force());
        let without = chains(&r);
        assert!(without.len() < with_pods.len(), "{} -> {} chains", with_pods.len(), without.len());
        // The inventory fails: the pass fails, says why, and the table stays.
        *given.lock().expect("lock") = Err("inventory: the API server is unreachable".into());
        assert_eq!(r.pass().result, PassResult::Error);
        assert!(r.status.last_error.as_deref().is_some_and(|e| e.contains("unreachable")));
        assert_eq!(chains(&r), without);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn while_the_fetch_fails_the_commit_in_force_still_meets_the_inventory_and_errors_are_one_entry() {
        let (dir, cluster) = example_repo("fetch-fails", &[]);
        let given = Arc::new(Mutex::new(Ok(cluster.clone())));
        let mut r = in_memory_loop(dir.display().to_string(), &dir, &given);
        assert!(r.pass().result.in_force());
        let in_force = r.status.applied.clone();
        let with_pods = chains(&r);
        // The tracked branch disappears: every fetch fails...
        let moved = Command::new("git").arg("-C").arg(&dir).args(["branch", "-qm", "main", "elsewhere"]).status();
        assert!(moved.expect("git").success());
        // ...and node-b's pods leave meanwhile: the commit in force is applied to that.
        let mut fewer = cluster.clone();
        fewer.pods.retain(|p| p.node.as_deref() != Some("node-b"));
        *given.lock().expect("lock") = Ok(fewer);
        assert_eq!(r.pass().result, PassResult::Error);
        assert!(r.status.last_error.as_deref().is_some_and(|e| e.contains("main")), "{:?}", r.status.last_error);
        assert!(chains(&r).len() < with_pods.len(), "the inventory change is enforced while the fetch fails");
        assert_eq!(r.status.applied, in_force);
        // Failing pass after pass (nothing else happening) is one history
        // entry, kept current.
        assert_eq!(r.pass().result, PassResult::Error);
        let entries = r.status.history.len();
        for _ in 0..3 {
            assert_eq!(r.pass().result, PassResult::Error);
        }
        assert_eq!(r.status.history.len(), entries, "{:?}", r.status.history);
        assert_eq!(r.status.history.last().map(|p| p.result.as_str()), Some("error"));
        assert!(
            r.status.history.iter().any(|p| p.result == PassResult::Applied),
            "the applied revision stays in the history"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_hung_git_server_does_not_hold_up_the_inventory() {
        let (dir, cluster) = example_repo("hung", &[]);
        let given = Arc::new(Mutex::new(Ok(cluster.clone())));
        let mut r = in_memory_loop(format!("file://{}", dir.display()), &dir, &given);
        r.fetch_wait = Some(Duration::from_millis(200));
        assert!(r.pass().result.in_force());
        let with_pods = chains(&r);
        // The server now takes requests and never answers; node-b's pods leave.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        r.source.repo = format!("http://127.0.0.1:{}/policies.git", silent.local_addr().expect("addr").port());
        let mut fewer = cluster.clone();
        fewer.pods.retain(|p| p.node.as_deref() != Some("node-b"));
        *given.lock().expect("lock") = Ok(fewer);
        let t = Instant::now();
        assert!(r.pass().result.in_force(), "{:?}", r.status.last_error);
        assert!(t.elapsed() < Duration::from_secs(2), "the pass waited {:?} for the fetch", t.elapsed());
        assert!(chains(&r).len() < with_pods.len(), "the inventory change is enforced meanwhile");
        assert!(r.source.fetcher.waiting().is_some(), "the fetch goes on");
        drop(silent);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_cluster_change_that_breaks_a_guard_does_not_freeze_the_commit_in_force() {
        let guards = "guards:\n  - {from: frontend/web-7d4b9-abcde, to: kube-system/coredns-6d8c4-pqrst, port: 53/UDP, expect: allow}\n";
        let (dir, cluster) = example_repo("guard-inventory", &[("policies/netward.yaml", guards)]);
        let given = Arc::new(Mutex::new(Ok(cluster.clone())));
        let mut r = in_memory_loop(dir.display().to_string(), &dir, &given);
        assert!(r.pass().result.in_force());
        let before = table(&r);
        let guard_line = |r: &Reconciler<InMemory>| {
            let m = r.metrics.render(&r.status);
            m.lines().find(|l| l.starts_with("netward_guard_holds{")).map(str::to_string).unwrap_or_default()
        };
        let line = guard_line(&r);
        assert!(line.contains("from=\"frontend/web-7d4b9-abcde\"") && line.contains("port=\"53/UDP\""), "{line}");
        assert!(line.contains("expect=\"allow\"") && line.ends_with("} 1"), "the guard holds: {line}");
        assert!(line.contains("guard=\"policies/netward.yaml:2:"), "named without the revision: {line}");
        // The guard's DNS pod goes away and a new pod comes to node-b.
        let mut changed = cluster.clone();
        changed.pods.retain(|p| p.namespace != "kube-system");
        let mut newcomer = changed.pods.iter().find(|p| p.node.as_deref() == Some("node-b")).cloned().expect("pod");
        newcomer.name = "newcomer".into();
        newcomer.ips = vec!["10.244.2.99".parse().expect("ip")];
        changed.pods.push(newcomer);
        *given.lock().expect("lock") = Ok(changed);
        assert!(r.pass().result.in_force(), "{:?}", r.status.history.last());
        assert_ne!(table(&r), before, "the new inventory is programmed");
        assert!(r.status.refused.is_empty(), "the commit in force is not refused: {:?}", r.status.refused);
        let err = r.status.last_error.clone().unwrap_or_default();
        assert!(err.contains("coredns"), "the breakage is reported: {err}");
        assert!(guard_line(&r).ends_with("} 0"), "and shows in /metrics: {}", guard_line(&r));
        // A label value with a quote, a backslash and a newline stays one line.
        let mut m = Metrics::default();
        let mut g = r.metrics.guards[0].0.clone();
        g.from = "a\"b\\c\nd".into();
        m.guards = vec![(g, true)];
        let text = m.render(&r.status);
        let line = text.lines().find(|l| l.starts_with("netward_guard_holds{")).unwrap_or_default();
        assert!(line.contains(r#"from="a\"b\\c\nd""#) && line.ends_with("} 1"), "label values are escaped: {text}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn retries_back_off_from_a_second_to_the_interval() {
        let interval = Duration::from_secs(30);
        let mut b = Duration::ZERO;
        let waits: Vec<u64> = (0..7)
            .map(|_| {
                b = next_backoff(b, interval);
                b.as_secs()
            })
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(next_backoff(Duration::ZERO, Duration::from_millis(100)), FIRST_RETRY);
    }
}

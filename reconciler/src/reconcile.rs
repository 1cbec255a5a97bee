//! The reconcile loop: follow a Git ref, refuse bad commits whole, and keep
//! the node's table equal to what the last good commit says.
//!
//! fetch -> load the tree at the commit -> validate -> check guards ->
//! compile this node's ruleset -> apply the difference -> read back ->
//! record. Level-triggered: every pass converges the table, so a restart,
//! a second run or a hand flush all end in the same state.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::analysis::{Analysis, View};
use crate::change;
use crate::diag::Severity;
use crate::enforce::{self, Dataplane, Enforcer, Mode, NodeSpec};
use crate::git;
pub use crate::git::auth::GitAuth;
pub use crate::git::watch::watch_local;
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

/// One pass's outcome, as recorded in the status.
#[derive(Clone, Debug, Serialize)]
pub struct Pass {
    pub commit: String,
    pub at: u64,
    /// `applied`, `unchanged`, `refused`, `dry-run` or `error`.
    pub result: String,
    pub detail: String,
    pub duration_ms: u64,
}

/// Counters for `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// Pass durations: counts per upper bound (seconds), plus sum and count.
    pub buckets: Vec<(f64, u64)>,
    pub sum_seconds: f64,
    pub count: u64,
    pub refused_total: u64,
    pub drift_repairs_total: u64,
    pub apply_errors_total: u64,
    /// The guards of the commit in force, and whether each holds on the
    /// inventory of the last pass (the probes the model runs every pass).
    pub guards: Vec<(crate::change::Guard, bool)>,
}

const BOUNDS: [f64; 9] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

impl Metrics {
    fn observe(&mut self, seconds: f64) {
        if self.buckets.is_empty() {
            self.buckets = BOUNDS.iter().map(|b| (*b, 0)).collect();
        }
        for (b, n) in &mut self.buckets {
            if seconds <= *b {
                *n += 1;
            }
        }
        self.sum_seconds += seconds;
        self.count += 1;
    }

    /// The Prometheus text exposition.
    pub fn render(&self, status: &Status) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let _ = writeln!(o, "# HELP netward_reconcile_duration_seconds Time of one reconcile pass.");
        let _ = writeln!(o, "# TYPE netward_reconcile_duration_seconds histogram");
        let buckets =
            if self.buckets.is_empty() { BOUNDS.iter().map(|b| (*b, 0)).collect() } else { self.buckets.clone() };
        for (b, n) in buckets {
            let _ = writeln!(o, "netward_reconcile_duration_seconds_bucket{{le=\"{b}\"}} {n}");
        }
        let _ = writeln!(o, "netward_reconcile_duration_seconds_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(o, "netward_reconcile_duration_seconds_sum {}", self.sum_seconds);
        let _ = writeln!(o, "netward_reconcile_duration_seconds_count {}", self.count);
        let _ = writeln!(o, "# HELP netward_applied_revision The commit this node enforces.");
        let _ = writeln!(o, "# TYPE netward_applied_revision gauge");
        if let Some(c) = &status.applied {
            let _ = writeln!(o, "netward_applied_revision{{commit=\"{c}\",ref=\"{}\"}} 1", label(&status.tracked_ref));
        }
        let _ = writeln!(
            o,
            "# HELP netward_guard_holds Whether a guard of the commit in force holds (1) on the current inventory."
        );
        let _ = writeln!(o, "# TYPE netward_guard_holds gauge");
        for (g, holds) in &self.guards {
            let expect = if g.allow { "allow" } else { "deny" };
            let _ = writeln!(
                o,
                "netward_guard_holds{{guard=\"{}\",from=\"{}\",to=\"{}\",port=\"{}\",expect=\"{expect}\"}} {}",
                label(without_revision(&g.at)),
                label(&g.from),
                label(&g.to),
                label(&g.port),
                u8::from(*holds)
            );
        }
        for (name, help, v) in [
            ("netward_refused_commits_total", "Commits refused (invalid or breaking a guard).", self.refused_total),
            (
                "netward_drift_repairs_total",
                "Passes that found the table edited by hand and repaired it.",
                self.drift_repairs_total,
            ),
            ("netward_apply_errors_total", "Passes that failed to fetch or apply.", self.apply_errors_total),
        ] {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        o
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

/// A Prometheus label value: backslash, double quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// What `/status` and `--status FILE` show.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Status {
    pub tracked_ref: String,
    /// The commit in force on this node.
    pub applied: Option<String>,
    /// Commits refused, with why (file:line:col and commit); never retried.
    pub refused: Vec<Pass>,
    pub last_error: Option<String>,
    /// Why the inventory is not current (the API watch is broken), if it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventory_error: Option<String>,
    /// Set while a fetch has hung far past its time limit; `/healthz` fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stalled_fetch: Option<String>,
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
    pub fn fetch(&self, keep: Option<&str>) -> Result<(PathBuf, String), String> {
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
    pub iface_prefix: String,
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
    /// The last commit's policy files and what they load to.
    loaded: Option<(String, LoadedCommit)>,
    /// How long a pass waits for its fetch (None: until it ends or falls
    /// silent for the fetcher's limit, as `--once` wants).
    pub fetch_wait: Option<Duration>,
}

/// A commit's policy files (for guards) and its policy set.
type LoadedCommit = std::sync::Arc<(Vec<(std::sync::Arc<str>, String)>, crate::model::PolicySet)>;

/// Told of every pass the loop records.
pub type PassHook = Box<dyn FnMut(&Pass) + Send>;

/// How one pass ended, for `--once` exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The node enforces the tracked commit (or would, in dry-run).
    InForce,
    /// The tracked commit was refused; the last good one stays.
    Refused,
    /// Something else failed (fetch, kernel); the last good one stays.
    Failed,
}

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
            iface_prefix: "cali".into(),
            enforcer: Enforcer::new(dataplane),
            status,
            metrics: Metrics::default(),
            on_record: None,
            fetched: None,
            programmed_generation: None,
            woken_by: Wake::Fetch,
            next_fetch: Instant::now(),
            loaded: None,
            fetch_wait: None,
        }
    }

    fn record(&mut self, p: Pass) {
        self.metrics.observe(p.duration_ms as f64 / 1000.0);
        match p.result.as_str() {
            "refused" => self.metrics.refused_total += 1,
            "error" => self.metrics.apply_errors_total += 1,
            _ => {}
        }
        if p.detail.contains("repaired drift") {
            self.metrics.drift_repairs_total += 1;
        }
        let commit = short(&p.commit);
        match p.result.as_str() {
            "refused" | "error" => {
                tracing::warn!(commit = %commit, result = %p.result, duration_ms = p.duration_ms, detail = %p.detail, "reconcile")
            }
            _ => {
                tracing::info!(commit = %commit, result = %p.result, duration_ms = p.duration_ms, detail = %p.detail, "reconcile")
            }
        }
        if p.result == "refused" {
            self.status.refused.push(p.clone());
        }
        // The same error pass after pass (a server down for an hour) is one
        // entry, kept current, so the applied revisions stay in the history.
        if let Some(last) = self.status.history.last_mut() {
            if p.result == "error" && last.result == "error" && last.detail == p.detail {
                *last = p;
                return;
            }
        }
        if let Some(hook) = self.on_record.as_mut() {
            hook(&p);
        }
        self.status.history.push(p);
        let n = self.status.history.len();
        if n > HISTORY {
            self.status.history.drain(..n - HISTORY);
        }
    }

    /// One pass of the loop: fetch, then apply.
    pub fn pass(&mut self) -> Outcome {
        self.pass_for(Wake::Fetch)
    }

    /// One pass; after an inventory wake the last fetched commit is applied
    /// again to the new inventory, without going to the Git server.
    pub fn pass_for(&mut self, why: Wake) -> Outcome {
        let start = Instant::now();
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
                    self.keep_in_force(&dir, start);
                    self.note_stalled_fetch();
                    return if self.status.applied.is_some() { Outcome::InForce } else { Outcome::Failed };
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
                self.record(Pass {
                    commit: String::new(),
                    at: now(),
                    result: "error".into(),
                    detail: e.clone(),
                    duration_ms: ms(start),
                });
                // The server's trouble is no reason to stop enforcing: the
                // commit in force meets the current inventory, and hand
                // edits are repaired, while the fetch fails.
                let dir = self.fetched.as_ref().map_or_else(|| self.source.dir(), |f| f.0.clone());
                self.keep_in_force(&dir, start);
                self.status.last_error = Some(e);
                return Outcome::Failed;
            }
        };
        // A refused commit is not retried until the ref moves; the last good
        // revision keeps being enforced (and repaired) meanwhile.
        if self.status.refused.iter().any(|p| p.commit == commit) {
            self.keep_in_force(&dir, start);
            return Outcome::Refused;
        }
        match self.apply(&dir, &commit, start) {
            Ok(o) => o,
            Err((result, detail)) => {
                let refused = result == "refused";
                if !refused {
                    self.status.last_error = Some(detail.clone());
                }
                self.record(Pass { commit, at: now(), result: result.into(), detail, duration_ms: ms(start) });
                if refused {
                    Outcome::Refused
                } else {
                    Outcome::Failed
                }
            }
        }
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
    /// drift repair); a failure is reported in `last_error`.
    fn keep_in_force(&mut self, dir: &Path, start: Instant) {
        let Some(good) = self.status.applied.clone() else { return };
        if let Err((_, detail)) = self.apply(dir, &good, start) {
            self.status.last_error = Some(format!("the commit in force, {}: {detail}", short(&good)));
        }
    }

    /// Loads, checks and applies one commit.
    fn apply(&mut self, dir: &Path, commit: &str, start: Instant) -> Result<Outcome, (&'static str, String)> {
        if let Some(signers) = &self.source.allowed_signers {
            use git::signature::Unverified;
            let checked = git::open(dir).and_then(|(repo, _)| Ok((git::resolve_in(&repo, commit)?, repo)));
            let (id, repo) = checked.map_err(|e| ("error", e))?;
            match git::signature::verify(&repo, id, signers) {
                Ok(_) => {}
                Err(Unverified::Refused(why)) => {
                    return Err(("refused", format!("not signed by an allowed key: {why}")))
                }
                Err(Unverified::CannotCheck(why)) => {
                    return Err(("error", format!("cannot check the signature: {why}")))
                }
            }
        }
        // A commit's policies never change: an inventory pass reuses them.
        let loaded = match &self.loaded {
            Some((c, l)) if c == commit => l.clone(),
            _ => {
                let files = git::files(dir, Some(commit), &self.source.path).map_err(|e| ("error", e))?;
                let mut diags = Vec::new();
                let set = load_policy_texts(files.iter().map(|(n, t)| (n.clone(), t.as_str())), &mut diags);
                let errors: Vec<String> =
                    diags.iter().filter(|d| d.severity == Severity::Error).map(|d| d.to_string()).collect();
                if !errors.is_empty() {
                    return Err(("refused", format!("invalid commit: {}", errors.join("; "))));
                }
                let l = std::sync::Arc::new((files, set));
                self.loaded = Some((commit.to_string(), l.clone()));
                l
            }
        };
        let generation = self.inventory.generation();
        let cluster = self.inventory.current().map_err(|e| ("error", e))?;
        let files = &loaded.0;
        let cluster_sets = self.inventory.network_sets();
        let with_cluster_sets;
        let set = if cluster_sets.is_empty() {
            &loaded.1
        } else {
            let mut s = loaded.1.clone();
            for ns in cluster_sets {
                if !s.network_sets.iter().any(|o| o.namespace == ns.namespace && o.name == ns.name) {
                    s.network_sets.push(ns);
                }
            }
            with_cluster_sets = s;
            &with_cluster_sets
        };
        let mut guard_warning = None;
        let mut guards_now: Vec<(change::Guard, bool)> = Vec::new();
        // Guards: `netward.yaml` next to the policies, if the commit has one.
        let guards_name = format!("{}/netward.yaml", self.source.path.trim_end_matches('/'));
        let guards_name = guards_name.trim_start_matches("./").to_string();
        if let Some((name, text)) = files.iter().find(|(n, _)| n.ends_with(&format!(":{guards_name}"))) {
            let list = change::load_guards(name, text).map_err(|d| ("refused", format!("invalid guards: {d}")))?;
            let outcomes = change::evaluate_guards(&list, set, &cluster);
            let problem = outcomes.iter().find_map(|o| match o {
                change::GuardOutcome::Holds => None,
                change::GuardOutcome::Unknown(e) => Some(e.clone()),
                change::GuardOutcome::Broken(b) => {
                    let g = &b.guard;
                    let must = if g.allow { "allowed" } else { "denied" };
                    Some(format!("breaks guard {}: {} -> {} {} must be {must}", g.at, g.from, g.to, g.port))
                }
            });
            guards_now =
                list.into_iter().zip(&outcomes).map(|(g, o)| (g, matches!(o, change::GuardOutcome::Holds))).collect();
            // For the commit in force the metric follows the inventory at
            // once, whatever happens to the rest of the pass.
            if self.status.applied.as_deref() == Some(commit) {
                self.metrics.guards = guards_now.clone();
            }
            if let Some(why) = problem {
                // Guards gate commits. The commit in force stays in force when
                // the cluster changes under it (refusing it would freeze the
                // table with stale pods); the breakage is reported.
                if self.status.applied.as_deref() != Some(commit) {
                    return Err(("refused", why));
                }
                guard_warning = Some(why);
            }
        }
        let an = Analysis::new(set, &cluster, View::Enforced);
        let mode = if self.mode == RolloutMode::Audit { Mode::Audit } else { Mode::Enforce };
        let rs =
            enforce::compile(&an, &NodeSpec { node: self.node.clone(), iface_prefix: self.iface_prefix.clone(), mode });
        if self.mode == RolloutMode::DryRun {
            let live = self.enforcer.dataplane().read().map_err(|e| ("error", e.to_string()))?;
            let changes = enforce::diff::diff(live.as_ref(), &rs);
            let detail = format!("would apply: {}", changes.summary());
            self.status.applied = Some(commit.to_string());
            self.metrics.guards = guards_now;
            self.record(Pass {
                commit: commit.into(),
                at: now(),
                result: "dry-run".into(),
                detail,
                duration_ms: ms(start),
            });
            return Ok(Outcome::InForce);
        }
        // A new commit or inventory goes in by the fast path (only what
        // changed since the last pass, no read-back), so commit-to-enforced
        // stays short; a pass with nothing new reads the table back and
        // repairs hand edits.
        let new_commit = self.status.applied.as_deref() != Some(commit);
        // Only an inventory wake takes the fast path for an inventory change:
        // the periodic pass always reads back, so drift is repaired even on a
        // cluster whose pods never stop changing.
        let new_inventory = self.programmed_generation != Some(generation) && self.woken_by == Wake::Inventory;
        let report = if new_commit || new_inventory { self.enforcer.update(&rs) } else { self.enforcer.sync(&rs) }
            .map_err(|e| ("error", e.to_string()))?;
        self.programmed_generation = Some(generation);
        self.metrics.guards = guards_now;
        let result = if report.changes.is_empty() { "unchanged" } else { "applied" };
        let mut detail = format!("{}{}", report.changes.summary(), if report.drift { "; repaired drift" } else { "" });
        if let Some(w) = &guard_warning {
            detail.push_str(&format!("; the cluster now {w}"));
        }
        self.status.last_error = guard_warning;
        let was = self.status.applied.replace(commit.to_string());
        // Record only what changed something, or a new commit.
        if result == "applied" || was.as_deref() != Some(commit) {
            self.record(Pass {
                commit: commit.into(),
                at: now(),
                result: result.into(),
                detail,
                duration_ms: ms(start),
            });
        }
        Ok(Outcome::InForce)
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
            self.pass_for(why);
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

/// Reads a status written by an earlier run (so refused commits stay refused across restarts).
pub fn read_status(path: &Path) -> Option<Status> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let pass = |p: &serde_json::Value| Pass {
        commit: p["commit"].as_str().unwrap_or("").into(),
        at: p["at"].as_u64().unwrap_or(0),
        result: p["result"].as_str().unwrap_or("").into(),
        detail: p["detail"].as_str().unwrap_or("").into(),
        duration_ms: p["duration_ms"].as_u64().unwrap_or(0),
    };
    Some(Status {
        tracked_ref: v["tracked_ref"].as_str().unwrap_or("").into(),
        applied: v["applied"].as_str().map(str::to_string),
        refused: v["refused"].as_array().map(|a| a.iter().map(pass).collect()).unwrap_or_default(),
        last_error: v["last_error"].as_str().map(str::to_string),
        inventory_error: None,
        stalled_fetch: None,
        history: v["history"].as_array().map(|a| a.iter().map(pass).collect()).unwrap_or_default(),
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

/// The operators' HTTP endpoints: `/healthz`, `/readyz` (ready once a
/// revision is enforced), `/metrics` (Prometheus text) and `/status` (JSON).
/// A small blocking server on its own thread: one request at a time is
/// plenty for probes and scrapes.
pub fn serve(
    listener: std::net::TcpListener,
    shared: std::sync::Arc<std::sync::Mutex<(Status, Metrics)>>,
    hook: Option<(Vec<u8>, std::sync::mpsc::Sender<Wake>)>,
) {
    use std::io::{BufRead, BufReader, Read, Write};
    for stream in listener.incoming().flatten() {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            continue;
        }
        let mut length = 0usize;
        let mut signature = String::new();
        let mut h = String::new();
        while reader.read_line(&mut h).is_ok_and(|n| n > 2) {
            let lower = h.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if let Some(v) = lower.strip_prefix("x-hub-signature-256:") {
                signature = v.trim().to_string();
            }
            h.clear();
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        if line.starts_with("POST ") && path == "/hook" {
            let mut body = vec![0u8; length.min(1 << 20)];
            let ok = reader.read_exact(&mut body).is_ok();
            let (code, msg) = match &hook {
                Some((secret, tx)) if ok && signature_ok(secret, &body, &signature) => {
                    let _ = tx.send(Wake::Fetch);
                    ("202 Accepted", "fetching\n")
                }
                Some(_) => ("401 Unauthorized", "bad signature\n"),
                None => ("404 Not Found", "no webhook configured\n"),
            };
            let mut w = &stream;
            let _ = write!(w, "HTTP/1.1 {code}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}", msg.len());
            continue;
        }
        let (status, metrics) = match shared.lock() {
            Ok(g) => g.clone(),
            Err(_) => continue,
        };
        let (code, ctype, body) = match path.as_str() {
            "/healthz" => match &status.stalled_fetch {
                Some(why) => ("503 Service Unavailable", "text/plain", format!("{why}\n")),
                None => ("200 OK", "text/plain", "ok\n".to_string()),
            },
            "/readyz" => match (&status.applied, &status.inventory_error) {
                (None, _) => ("503 Service Unavailable", "text/plain", "no revision enforced yet\n".to_string()),
                (Some(_), Some(e)) => ("503 Service Unavailable", "text/plain", format!("{e}\n")),
                (Some(_), None) => ("200 OK", "text/plain", "ready\n".to_string()),
            },
            "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics.render(&status)),
            "/status" => {
                ("200 OK", "application/json", serde_json::to_string_pretty(&status).expect("status serializes") + "\n")
            }
            _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
        };
        let mut w = &stream;
        let _ = write!(
            w,
            "HTTP/1.1 {code}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}

/// Checks a GitHub-style `sha256=<hex>` HMAC of the body, in constant time.
pub fn signature_ok(secret: &[u8], body: &[u8], header: &str) -> bool {
    use hmac::{Hmac, Mac};
    let Some(hex) = header.strip_prefix("sha256=") else { return false };
    let Some(expected) = (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret) else { return false };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The `sha256=<hex>` header value for a body (for tests and tools that send hooks).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!("sha256={}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
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
        assert_eq!(r.pass(), Outcome::InForce);
        let with_pods = chains(&r);
        // node-b's pods leave: their chains go with them.
        let mut fewer = cluster.clone();
        fewer.pods.retain(|p| p.node.as_deref() != Some("node-b"));
        *given.lock().expect("lock") = Ok(fewer);
        assert_eq!(r.pass(), Outcome::InForce);
        let without = chains(&r);
        assert!(without.len() < with_pods.len(), "{} -> {} chains", with_pods.len(), without.len());
        // The inventory fails: the pass fails, says why, and the table stays.
        *given.lock().expect("lock") = Err("inventory: the API server is unreachable".into());
        assert_eq!(r.pass(), Outcome::Failed);
        assert!(r.status.last_error.as_deref().is_some_and(|e| e.contains("unreachable")));
        assert_eq!(chains(&r), without);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn while_the_fetch_fails_the_commit_in_force_still_meets_the_inventory_and_errors_are_one_entry() {
        let (dir, cluster) = example_repo("fetch-fails", &[]);
        let given = Arc::new(Mutex::new(Ok(cluster.clone())));
        let mut r = in_memory_loop(dir.display().to_string(), &dir, &given);
        assert_eq!(r.pass(), Outcome::InForce);
        let in_force = r.status.applied.clone();
        let with_pods = chains(&r);
        // The tracked branch disappears: every fetch fails...
        let moved = Command::new("git").arg("-C").arg(&dir).args(["branch", "-qm", "main", "elsewhere"]).status();
        assert!(moved.expect("git").success());
        // ...and node-b's pods leave meanwhile: the commit in force is applied to that.
        let mut fewer = cluster.clone();
        fewer.pods.retain(|p| p.node.as_deref() != Some("node-b"));
        *given.lock().expect("lock") = Ok(fewer);
        assert_eq!(r.pass(), Outcome::Failed);
        assert!(r.status.last_error.as_deref().is_some_and(|e| e.contains("main")), "{:?}", r.status.last_error);
        assert!(chains(&r).len() < with_pods.len(), "the inventory change is enforced while the fetch fails");
        assert_eq!(r.status.applied, in_force);
        // Failing pass after pass (nothing else happening) is one history
        // entry, kept current.
        assert_eq!(r.pass(), Outcome::Failed);
        let entries = r.status.history.len();
        for _ in 0..3 {
            assert_eq!(r.pass(), Outcome::Failed);
        }
        assert_eq!(r.status.history.len(), entries, "{:?}", r.status.history);
        assert_eq!(r.status.history.last().map(|p| p.result.as_str()), Some("error"));
        assert!(r.status.history.iter().any(|p| p.result == "applied"), "the applied revision stays in the history");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_hung_git_server_does_not_hold_up_the_inventory() {
        let (dir, cluster) = example_repo("hung", &[]);
        let given = Arc::new(Mutex::new(Ok(cluster.clone())));
        let mut r = in_memory_loop(format!("file://{}", dir.display()), &dir, &given);
        r.fetch_wait = Some(Duration::from_millis(200));
        assert_eq!(r.pass(), Outcome::InForce);
        let with_pods = chains(&r);
        // The server now takes requests and never answers; node-b's pods leave.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        r.source.repo = format!("http://127.0.0.1:{}/policies.git", silent.local_addr().expect("addr").port());
        let mut fewer = cluster.clone();
        fewer.pods.retain(|p| p.node.as_deref() != Some("node-b"));
        *given.lock().expect("lock") = Ok(fewer);
        let t = Instant::now();
        assert_eq!(r.pass(), Outcome::InForce, "{:?}", r.status.last_error);
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
        assert_eq!(r.pass(), Outcome::InForce);
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
        assert_eq!(r.pass(), Outcome::InForce, "{:?}", r.status.history.last());
        assert_ne!(table(&r), before, "the new inventory is programmed");
        assert!(r.status.refused.is_empty(), "the commit in force is not refused: {:?}", r.status.refused);
        let err = r.status.last_error.clone().unwrap_or_default();
        assert!(err.contains("coredns"), "the breakage is reported: {err}");
        assert!(guard_line(&r).ends_with("} 0"), "and shows in /metrics: {}", guard_line(&r));
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd", "label values are escaped");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn webhook_signatures_match_githubs_scheme() {
        // The example from GitHub's documentation on validating webhook deliveries.
        let s = sign(b"It's a Secret to Everybody", b"Hello, World!");
        assert_eq!(s, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
        assert!(signature_ok(b"It's a Secret to Everybody", b"Hello, World!", &s));
        assert!(!signature_ok(b"wrong", b"Hello, World!", &s));
        assert!(!signature_ok(b"It's a Secret to Everybody", b"Hello, World!", "sha1=abc"));
    }
}

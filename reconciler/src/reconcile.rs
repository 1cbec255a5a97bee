//! The reconcile loop: follow a Git ref, refuse bad commits whole, and keep
//! the node's table equal to what the last good commit says.
//!
//! fetch -> load the tree at the commit -> validate -> check guards ->
//! compile this node's ruleset -> apply the difference -> read back ->
//! record. Level-triggered: every pass converges the table, so a restart,
//! a second run or a hand flush all end in the same state.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::analysis::{Analysis, View};
use crate::change;
use crate::diag::Severity;
use crate::enforce::{self, Dataplane, Enforcer, Mode, NodeSpec};
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
}

/// How to authenticate to a remote repository. Secrets are read from their
/// files at every fetch (a rotated token is picked up without a restart) and
/// reach `git` through its environment: never its arguments (visible in
/// `ps`) and never the mirror's config on disk.
#[derive(Clone, Debug, Default)]
pub struct GitAuth {
    /// HTTPS: a file holding a token (or a password), sent as HTTP Basic
    /// `token_user:token`.
    pub token_file: Option<PathBuf>,
    /// HTTPS: the name of an environment variable holding the token instead.
    pub token_env: Option<String>,
    /// The user sent with the token (GitHub: `x-access-token`; GitLab: `oauth2`).
    pub token_user: String,
    /// SSH: the private key to use (and no other).
    pub ssh_key: Option<PathBuf>,
    /// SSH: check the server strictly against this known_hosts file.
    pub known_hosts: Option<PathBuf>,
}

impl GitAuth {
    /// The environment a fetch runs with. Prompts are always off: a daemon
    /// must fail with a message, not hang waiting for a password.
    pub fn env(&self) -> Result<Vec<(String, String)>, String> {
        let mut env = vec![("GIT_TERMINAL_PROMPT".to_string(), "0".to_string())];
        if let Some(token) = self.token()? {
            let basic = base64(format!("{}:{token}", self.token_user).as_bytes());
            env.push(("GIT_CONFIG_COUNT".into(), "1".into()));
            env.push(("GIT_CONFIG_KEY_0".into(), "http.extraHeader".into()));
            env.push(("GIT_CONFIG_VALUE_0".into(), format!("Authorization: Basic {basic}")));
        }
        let mut ssh = vec!["ssh".to_string(), "-o".into(), "BatchMode=yes".into()];
        if let Some(k) = &self.ssh_key {
            ssh.extend(["-i".into(), shell_quote(&k.display().to_string()), "-o".into(), "IdentitiesOnly=yes".into()]);
        }
        if let Some(k) = &self.known_hosts {
            // ssh splits an -o value like a config line: a path with spaces
            // needs double quotes there, and one with a double quote cannot
            // be said at all.
            let k = k.display().to_string();
            if k.contains('"') {
                return Err(format!("known_hosts path {k}: ssh cannot take a path with a double quote"));
            }
            ssh.extend(["-o".into(), shell_quote(&format!("UserKnownHostsFile=\"{k}\""))]);
            ssh.extend(["-o".into(), "StrictHostKeyChecking=yes".into()]);
        }
        env.push(("GIT_SSH_COMMAND".into(), ssh.join(" ")));
        Ok(env)
    }
}

impl GitAuth {
    /// The token, read now; `None` when none is configured.
    fn token(&self) -> Result<Option<String>, String> {
        let (token, from) = match (&self.token_file, &self.token_env) {
            (Some(f), _) => (
                std::fs::read_to_string(f).map_err(|e| format!("token file {}: {e}", f.display()))?,
                f.display().to_string(),
            ),
            (None, Some(var)) => {
                (std::env::var(var).map_err(|_| format!("token variable {var}: not set"))?, format!("variable {var}"))
            }
            (None, None) => return Ok(None),
        };
        let token = token.trim();
        if token.is_empty() {
            return Err(format!("token {from}: empty"));
        }
        Ok(Some(token.to_string()))
    }
}

/// `text` with every credential blanked: the password of a URL's userinfo
/// (`https://user:secret@host`) and the token itself, wherever git echoed it.
fn redact(text: &str, token: Option<&str>) -> String {
    let mut secrets: Vec<&str> = token.into_iter().collect();
    for (i, _) in text.match_indices("://") {
        let tail = &text[i + 3..];
        let end = tail.find(|c: char| c.is_whitespace() || "/'\"".contains(c)).unwrap_or(tail.len());
        if let Some((_, password)) = tail[..end].rsplit_once('@').and_then(|(userinfo, _)| userinfo.split_once(':')) {
            secrets.push(password);
        }
    }
    let mut out = text.to_string();
    for s in secrets.into_iter().filter(|s| !s.is_empty()) {
        out = out.replace(s, "***");
    }
    out
}

/// `s` as one word for the shell `git` runs GIT_SSH_COMMAND with.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

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
            let _ = writeln!(o, "netward_applied_revision{{commit=\"{c}\",ref=\"{}\"}} 1", status.tracked_ref);
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
    /// The last passes, newest last.
    pub history: Vec<Pass>,
}

const HISTORY: usize = 20;

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    git_env(dir, args, &[])
}

fn git_env(dir: &Path, args: &[&str], env: &[(String, String)]) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!("git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
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
        }
    }

    fn is_local(&self) -> bool {
        !self.repo.contains("://") && Path::new(&self.repo).exists()
    }

    /// Fetches the ref and returns (the directory to read from, the commit).
    pub fn fetch(&self) -> Result<(PathBuf, String), String> {
        if self.is_local() {
            let dir = PathBuf::from(&self.repo);
            let commit = git(&dir, &["rev-parse", "--verify", &format!("{}^{{commit}}", self.git_ref)])?;
            return Ok((dir, commit));
        }
        // A bare mirror of only the ref we track, shallow.
        if !self.cache.join("HEAD").exists() {
            std::fs::create_dir_all(&self.cache).map_err(|e| format!("{}: {e}", self.cache.display()))?;
            git(&self.cache, &["init", "--bare", "-q"])?;
        }
        let env = self.auth.env()?;
        let refspec = format!("{}:refs/netward/tracked", self.git_ref);
        git_env(&self.cache, &["fetch", "-q", "--depth", "1", "--force", &self.repo, &refspec], &env)
            .or_else(|_| git_env(&self.cache, &["fetch", "-q", "--force", &self.repo, &refspec], &env))
            .map_err(|e| redact(&e, self.auth.token().ok().flatten().as_deref()))?;
        let commit = git(&self.cache, &["rev-parse", "refs/netward/tracked^{commit}"])?;
        Ok((self.cache.clone(), commit))
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
            _ => self.source.fetch(),
        };
        let (dir, commit) = match fetched {
            Ok(x) => {
                self.fetched = Some(x.clone());
                x
            }
            Err(e) => {
                self.status.last_error = Some(e.clone());
                self.record(Pass {
                    commit: String::new(),
                    at: now(),
                    result: "error".into(),
                    detail: e,
                    duration_ms: ms(start),
                });
                return Outcome::Failed;
            }
        };
        // A refused commit is not retried until the ref moves; the last good
        // revision keeps being enforced (and repaired) meanwhile.
        if self.status.refused.iter().any(|p| p.commit == commit) {
            if let Some(good) = self.status.applied.clone() {
                let _ = self.apply(&dir, &good, start);
            }
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

    /// Loads, checks and applies one commit.
    fn apply(&mut self, dir: &Path, commit: &str, start: Instant) -> Result<Outcome, (&'static str, String)> {
        if let Some(signers) = &self.source.allowed_signers {
            let allowed = format!("gpg.ssh.allowedSignersFile={}", signers.display());
            if let Err(e) = git(dir, &["-c", &allowed, "verify-commit", commit]) {
                let why = e.lines().last().unwrap_or("no signature").to_string();
                return Err(("refused", format!("not signed by an allowed key: {why}")));
            }
        }
        // A commit's policies never change: an inventory pass reuses them.
        let loaded = match &self.loaded {
            Some((c, l)) if c == commit => l.clone(),
            _ => {
                let files = crate::revision::files(dir, Some(commit), &self.source.path).map_err(|e| ("error", e))?;
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
        // Guards: `netward.yaml` next to the policies, if the commit has one.
        let guards_name = format!("{}/netward.yaml", self.source.path.trim_end_matches('/'));
        let guards_name = guards_name.trim_start_matches("./").to_string();
        if let Some((name, text)) = files.iter().find(|(n, _)| n.ends_with(&format!(":{guards_name}"))) {
            let list = change::load_guards(name, text).map_err(|d| ("refused", format!("invalid guards: {d}")))?;
            let problem = match change::check_guards(&list, set, &cluster) {
                Err(e) => Some(e),
                Ok(broken) => broken.first().map(|b| {
                    let g = &b.guard;
                    format!(
                        "breaks guard {}: {} -> {} {} must be {}",
                        g.at,
                        g.from,
                        g.to,
                        g.port,
                        if g.allow { "allowed" } else { "denied" }
                    )
                }),
            };
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
    &c[..c.len().min(12)]
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
            "/healthz" => ("200 OK", "text/plain", "ok\n".to_string()),
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

/// Watches a local repository's refs and wakes the loop when one moves, so
/// a commit lands in well under a second without polling Git. Checks file
/// modification times (HEAD, the ref, packed refs) every 100 ms; costs no
/// process per check.
pub fn watch_local(repo: &Path, git_ref: &str, tx: std::sync::mpsc::Sender<Wake>) {
    let git_dir = repo.join(".git");
    let files = [
        git_dir.join("HEAD"),
        git_dir.join("refs/heads").join(git_ref),
        git_dir.join("refs/tags").join(git_ref),
        git_dir.join("packed-refs"),
    ];
    let stamp = move || -> Vec<Option<SystemTime>> {
        files.iter().map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok()).collect()
    };
    std::thread::spawn(move || {
        let mut last = stamp();
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = stamp();
            if now != last {
                last = now;
                if tx.send(Wake::Fetch).is_err() {
                    return;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::enforce::diff::Changes;
    use crate::enforce::live::Live;
    use crate::enforce::{EnforceError, Ruleset};
    use crate::model::Cluster;
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
            git(&dir, &[&id[..], args].concat()).expect("git");
        }
        let (cluster, _) = load_cluster(&[root.join("policies/cluster.yaml")]).into_result().expect("cluster");
        (dir, cluster)
    }

    #[test]
    fn the_inventory_is_a_trait_and_its_changes_and_failures_reach_the_node() {
        let (dir, cluster) = example_repo("inventory", &[]);
        let given = Arc::new(Mutex::new(Ok(cluster.clone())));
        let source = Source::new(dir.display().to_string(), "main", "policies", dir.join("cache"));
        let dp = InMemory(Mutex::new(None));
        let mut r = Reconciler::with_inventory(
            source,
            Box::new(Given(given.clone())),
            "node-b".into(),
            RolloutMode::Enforce,
            dp,
        );
        let chains = |r: &Reconciler<InMemory>| r.enforcer.dataplane().read().expect("read").expect("table").chains;
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
    fn a_cluster_change_that_breaks_a_guard_does_not_freeze_the_commit_in_force() {
        let guards = "guards:\n  - {from: frontend/web-7d4b9-abcde, to: kube-system/coredns-6d8c4-pqrst, port: 53/UDP, expect: allow}\n";
        let (dir, cluster) = example_repo("guard-inventory", &[("policies/netward.yaml", guards)]);
        let given = Arc::new(Mutex::new(Ok(cluster.clone())));
        let source = Source::new(dir.display().to_string(), "main", "policies", dir.join("cache"));
        let mut r = Reconciler::with_inventory(
            source,
            Box::new(Given(given.clone())),
            "node-b".into(),
            RolloutMode::Enforce,
            InMemory(Mutex::new(None)),
        );
        let table = |r: &Reconciler<InMemory>| r.enforcer.dataplane().read().expect("read").expect("table");
        assert_eq!(r.pass(), Outcome::InForce);
        let before = table(&r);
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
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn credentials_are_blanked_in_messages() {
        let msg = "git fetch -q https://bot:hunter2@git.example.org/p.git main: fatal: 'hunter2' \
                   ssh://git@host/x file:///tmp/a@b";
        let out = redact(msg, Some("tok3n"));
        assert!(!out.contains("hunter2"), "{out}");
        assert!(out.contains("https://bot:***@git.example.org/p.git"), "{out}");
        assert!(out.contains("ssh://git@host/x") && out.contains("file:///tmp/a@b"), "{out}");
        assert_eq!(redact("remote said tok3n twice: tok3n", Some("tok3n")), "remote said *** twice: ***");
        let auth = GitAuth { token_env: Some("NETWARD_TEST_TOKEN_UNSET".into()), ..GitAuth::default() };
        assert!(auth.env().unwrap_err().contains("NETWARD_TEST_TOKEN_UNSET"));
    }

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, coded) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64(plain.as_bytes()), coded);
        }
    }

    #[test]
    fn the_ssh_command_names_the_key_and_known_hosts_even_with_odd_paths() {
        // `ssh -G` prints the configuration a command line resolves to,
        // without connecting: the command git would run, checked by ssh itself.
        let dir = std::env::temp_dir().join(format!("netward it's {}", std::process::id()));
        let auth = GitAuth {
            ssh_key: Some(dir.join("id key")),
            known_hosts: Some(dir.join("known hosts")),
            ..GitAuth::default()
        };
        // ssh -G lists an identity file only if it exists.
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("id key"), "").expect("write");
        let env = auth.env().expect("env");
        let cmd = &env.iter().find(|(k, _)| k == "GIT_SSH_COMMAND").expect("ssh command").1;
        if Command::new("ssh").arg("-V").output().is_err() {
            assert!(std::env::var_os("CI").is_none(), "CI installs openssh-client");
            eprintln!("SKIPPED: no ssh client");
            return;
        }
        let out = Command::new("sh").arg("-c").arg(format!("{cmd} -G git.example.org")).output().expect("sh");
        assert!(out.status.success(), "ssh -G: {}", String::from_utf8_lossy(&out.stderr));
        let conf = String::from_utf8_lossy(&out.stdout).to_lowercase();
        let key = format!("identityfile {}", dir.join("id key").display()).to_lowercase();
        assert!(conf.lines().any(|l| l == key), "{conf}");
        assert!(conf.contains("batchmode yes") && conf.contains("identitiesonly yes"), "{conf}");
        assert!(conf.contains("stricthostkeychecking true"), "{conf}");
        let known = format!("userknownhostsfile {}", dir.join("known hosts").display()).to_lowercase();
        assert!(conf.lines().any(|l| l == known), "{conf}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_token_goes_in_the_environment_and_an_empty_one_is_an_error() {
        let f = std::env::temp_dir().join(format!("netward-token-{}", std::process::id()));
        std::fs::write(&f, "s3cret\n").expect("write");
        let auth = GitAuth { token_file: Some(f.clone()), token_user: "x-access-token".into(), ..GitAuth::default() };
        let env = auth.env().expect("env");
        let header = format!("Authorization: Basic {}", base64(b"x-access-token:s3cret"));
        assert!(env.contains(&("GIT_CONFIG_VALUE_0".into(), header)), "{env:?}");
        assert!(env.contains(&("GIT_TERMINAL_PROMPT".into(), "0".into())));
        std::fs::write(&f, "  \n").expect("write");
        assert!(auth.env().unwrap_err().contains("empty"));
        std::fs::remove_file(&f).expect("rm");
        assert!(auth.env().unwrap_err().contains("token file"));
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

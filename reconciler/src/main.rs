//! The `netward` command: flags, glue and exit codes. All logic lives in the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use netward::analysis::{Analysis, Matrix, View};
use netward::diag::{Diagnostic, Severity};
use netward::manifest::{load_cluster, load_policies};
use netward::model::port::FlowPort;
use netward::model::{Cluster, PolicySet};
use netward::reconcile::Wake;
use netward::report::{self, MatrixFormat};
use netward::selector::Selector;
use netward::{enforce, synth, text, validate};

#[derive(Parser)]
#[command(
    name = "netward",
    version,
    about = "Kubernetes and Calico network policy engine: validate, select, matrix, explain"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check policy files; print every error and warning as file:line:col.
    Validate {
        /// Policy files or directories (recursively *.yaml, *.yml, *.json).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Cluster snapshots, for the checks that need endpoints.
        #[arg(long)]
        cluster: Vec<PathBuf>,
    },
    /// List the endpoints a Calico selector matches.
    Select {
        /// A Calico selector, e.g. "app == 'web' && pcns.env == 'prod'".
        selector: String,
        /// Cluster snapshots; several merge.
        #[arg(long, required = true, num_args = 1..)]
        cluster: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = SelectFormat::Text)]
        format: SelectFormat,
    },
    /// The truth table: which endpoint may open a connection to which, per port.
    Matrix {
        /// Policy files or directories (recursively *.yaml, *.yml, *.json).
        #[arg(long, required = true, num_args = 1..)]
        policies: Vec<PathBuf>,
        /// Cluster snapshots (`kubectl get namespaces,pods -A -o yaml`); several merge.
        #[arg(long, required = true, num_args = 1..)]
        cluster: Vec<PathBuf>,
        /// PORT/PROTO, e.g. 80/TCP, 53/UDP.
        #[arg(long, required = true, num_args = 1..)]
        port: Vec<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Evaluate as if every staged policy were committed.
        #[arg(long)]
        staged: bool,
    },
    /// Decide one connection and say why: tiers, policies, the deciding rule.
    Explain {
        /// Policy files or directories (recursively *.yaml, *.yml, *.json).
        #[arg(long, required = true, num_args = 1..)]
        policies: Vec<PathBuf>,
        /// Cluster snapshots (`kubectl get namespaces,pods -A -o yaml`); several merge.
        #[arg(long, required = true, num_args = 1..)]
        cluster: Vec<PathBuf>,
        /// namespace/pod or an IP address.
        #[arg(long)]
        from: String,
        /// namespace/pod or an IP address.
        #[arg(long)]
        to: String,
        /// PORT/PROTO, e.g. 8080/TCP.
        #[arg(long)]
        port: String,
        /// The source port, when a rule matches on it (usually ephemeral and unknown).
        #[arg(long)]
        src_port: Option<u16>,
        #[arg(long)]
        staged: bool,
        #[arg(long, value_enum, default_value_t = ExplainFormat::Text)]
        format: ExplainFormat,
    },
    /// Follow a Git repository of policies and keep this node's nftables table in step.
    Reconcile {
        #[command(flatten)]
        target: NodeTarget,
        /// Branch, tag or commit to track.
        #[arg(long = "ref", default_value = "main")]
        git_ref: String,
        #[arg(long, value_enum, default_value_t = ReconcileMode::Enforce)]
        mode: ReconcileMode,
        /// One pass, then exit: 0 the node enforces the tracked commit, 1 it was refused, 2 other errors.
        #[arg(long)]
        once: bool,
        /// Seconds between passes.
        #[arg(long, default_value_t = 10)]
        interval: u64,
        /// Write the status (applied and refused commits, history) here as JSON; read at start.
        #[arg(long)]
        status: Option<PathBuf>,
        /// Serve /healthz, /readyz, /metrics and /status on this address (e.g. 127.0.0.1:9290).
        #[arg(long)]
        listen: Option<String>,
        /// Accept POST /hook signed with this secret (HMAC-SHA256, like GitHub) to fetch at once.
        #[arg(long)]
        webhook_secret_file: Option<PathBuf>,
        /// Apply only commits signed by a key in this allowed-signers file (git/ssh-keygen format).
        #[arg(long)]
        verify_signatures: Option<PathBuf>,
        /// Log lines as text or JSON (one event per pass, with commit, result, duration).
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// With --kube: write each applied or refused commit on this node's Node object
        /// (annotations netward.io/revision and netward.io/result).
        #[arg(long)]
        publish_status: bool,
    },
    /// Return this node to the revision it enforced before the current one (or --to COMMIT):
    /// one pass pinned to that commit. Keep it by pinning `reconcile --ref` to it.
    Rollback {
        #[command(flatten)]
        target: NodeTarget,
        /// The status file `reconcile --status` keeps (its history names the earlier revisions).
        #[arg(long)]
        status: PathBuf,
        /// The commit to return to (default: the one applied before the current one).
        #[arg(long)]
        to: Option<String>,
    },
    /// What a change to the policy repository does to connectivity (run in a Git checkout).
    /// Exit 0: connectivity unchanged; 1: changed; 2: error.
    Diff {
        /// The revision before (default: the merge base with the default branch).
        #[arg(long)]
        base: Option<String>,
        /// The revision after (default: the working tree).
        #[arg(long)]
        head: Option<String>,
        /// The directory of policies inside the repository.
        #[arg(long, default_value = ".")]
        path: String,
        /// Cluster snapshots for the endpoints (default: the repository's own Pods and workloads).
        #[arg(long, num_args = 1..)]
        cluster: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
        format: DiffFormat,
        /// The Git checkout (default: the current directory).
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Connections that must stay allowed or denied (`guards: [{from, to, port, expect}]`).
        #[arg(long)]
        guards: Option<PathBuf>,
    },
    /// The nftables ruleset netward would program on one node.
    Plan {
        /// The node whose local pods to compile for (the pods' spec.nodeName).
        #[arg(long)]
        node: String,
        /// Policy files or directories (recursively *.yaml, *.yml, *.json).
        #[arg(long, required = true, num_args = 1..)]
        policies: Vec<PathBuf>,
        /// Cluster snapshots; several merge.
        #[arg(long, required = true, num_args = 1..)]
        cluster: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = PlanFormat::Nft)]
        format: PlanFormat,
        /// audit: every Deny becomes Log + Allow.
        #[arg(long, value_enum, default_value_t = PlanMode::Enforce)]
        mode: PlanMode,
        /// What an `http` match becomes (as `reconcile --l7`).
        #[arg(long, value_enum, default_value_t = L7Arg::Allow)]
        l7: L7Arg,
        #[command(flatten)]
        pods: PodCidrArgs,
    },
    /// Print the cluster's pods and namespaces from the Kubernetes API as a snapshot
    /// (the YAML --cluster reads), for diff and matrix in CI.
    Snapshot {
        /// A kubeconfig file (default: in-cluster config, KUBECONFIG, ~/.kube/config).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// A kubeconfig context other than the current one.
        #[arg(long)]
        context: Option<String>,
    },
    /// Write a synthetic cluster and policy set (for benchmarks and tests).
    Generate {
        #[arg(long, default_value_t = 1000)]
        pods: usize,
        #[arg(long, default_value_t = 200)]
        policies: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Directory to write cluster.yaml and policies.yaml into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a shell completion script, as `kubectl completion` does:
    /// `source <(netward completion bash)`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (netward.1 and one per command) into a directory.
    Man {
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Logs go to stderr; stdout stays for command output.
fn init_logs(format: LogFormat) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // kube logs every failed request itself; netward reports a broken watch
    // once, when it breaks, and once when it recovers.
    let quiet = Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("kube_client", LevelFilter::OFF)
        .with_target("kube_runtime", LevelFilter::OFF);
    let b = tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false);
    let _ = match format {
        LogFormat::Text => b.with_ansi(false).finish().with(quiet).try_init(),
        LogFormat::Json => b.json().flatten_event(true).finish().with(quiet).try_init(),
    };
}

/// `--once` and `rollback`: 0 the node enforces the revision, 1 it was
/// refused (the last good one stays), 2 anything else failed.
fn exit_code(p: &netward::reconcile::Pass) -> ExitCode {
    ExitCode::from(p.result.exit_code())
}

/// What `reconcile` and `rollback` share: the repository, the inventory and
/// the node whose table they program.
#[derive(clap::Args)]
struct NodeTarget {
    /// A local checkout or a Git URL (file://, https://, ssh://).
    #[arg(long)]
    repo: String,
    /// Directory of policies inside the repository.
    #[arg(long, default_value = ".")]
    path: String,
    /// The inventory: cluster snapshots, re-read when they change.
    #[arg(long, num_args = 1.., required_unless_present_any = ["kube", "kubeconfig", "context"], conflicts_with_all = ["kube", "kubeconfig", "context"])]
    cluster: Vec<PathBuf>,
    #[command(flatten)]
    api: ApiArgs,
    /// This node's name (the pods' spec.nodeName).
    #[arg(long)]
    node: String,
    /// Program the table in this network namespace (`ip netns` name) instead of this one.
    #[arg(long)]
    netns: Option<String>,
    /// Where a remote repository is mirrored.
    #[arg(long, default_value = "/var/lib/netward/repo")]
    cache: PathBuf,
    #[command(flatten)]
    auth: GitAuthArgs,
    /// Seconds a fetch may take before the pass gives up on it (the last good commit stays in force).
    #[arg(long, default_value_t = 60.0)]
    fetch_timeout: f64,
    /// What an `http` (application-layer) match becomes: `allow` by its
    /// L3/L4 part (Calico's meaning without an L7 proxy; warned every pass),
    /// or `deny`: the rule matches nothing (fail closed).
    #[arg(long, value_enum, default_value_t = L7Arg::Allow)]
    l7: L7Arg,
    /// Leave established connections alone when a commit denies them (by
    /// default their conntrack entries are removed, so they stop at once).
    #[arg(long)]
    keep_established: bool,
    #[command(flatten)]
    pods: PodCidrArgs,
}

/// Which addresses are this node's pods, and what becomes of one netward
/// has not heard of yet.
#[derive(clap::Args)]
struct PodCidrArgs {
    /// This node's pod CIDR (repeatable), in addition to its Node object's
    /// spec.podCIDRs (from --kube or a Node in the --cluster snapshots).
    #[arg(long = "pod-cidr")]
    pod_cidrs: Vec<ipnet::IpNet>,
    /// Traffic from or to an address of this node's pod CIDRs that no known
    /// pod has: `deny` until netward has heard of the pod (fail closed), or
    /// `allow` (a new pod is unpoliced until its policies are programmed).
    #[arg(long, value_enum, default_value_t = UnknownPodsArg::Deny)]
    unknown_pods: UnknownPodsArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum UnknownPodsArg {
    Deny,
    Allow,
}

impl From<UnknownPodsArg> for enforce::UnknownPods {
    fn from(a: UnknownPodsArg) -> Self {
        match a {
            UnknownPodsArg::Deny => enforce::UnknownPods::Deny,
            UnknownPodsArg::Allow => enforce::UnknownPods::Allow,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum L7Arg {
    Allow,
    Deny,
}

impl From<L7Arg> for enforce::L7 {
    fn from(a: L7Arg) -> Self {
        match a {
            L7Arg::Allow => enforce::L7::Allow,
            L7Arg::Deny => enforce::L7::Deny,
        }
    }
}

/// Where the Kubernetes API is.
#[derive(clap::Args)]
struct ApiArgs {
    /// The inventory: pods and namespaces watched on the Kubernetes API server
    /// (in-cluster config, or --kubeconfig / KUBECONFIG / ~/.kube/config).
    #[arg(long)]
    kube: bool,
    /// A kubeconfig file (implies --kube).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// A kubeconfig context other than the current one (implies --kube).
    #[arg(long)]
    context: Option<String>,
    /// Seconds between full relists of the watched objects (repairs anything a watch missed).
    #[arg(long, default_value_t = 600)]
    kube_resync: u64,
}

impl ApiArgs {
    fn options(&self) -> Option<netward::kubernetes::watch::ApiOptions> {
        (self.kube || self.kubeconfig.is_some() || self.context.is_some()).then(|| {
            netward::kubernetes::watch::ApiOptions {
                kubeconfig: self.kubeconfig.clone(),
                context: self.context.clone(),
                resync: std::time::Duration::from_secs(self.kube_resync.max(1)),
            }
        })
    }
}

impl NodeTarget {
    /// A reconciler for this node, tracking `git_ref`, programming over netlink;
    /// `wake` hears of inventory changes (API inventory only); `publish`
    /// writes each applied or refused commit on this node's Node object.
    fn reconciler(
        self,
        git_ref: String,
        mode: netward::reconcile::RolloutMode,
        allowed_signers: Option<PathBuf>,
        wake: Option<std::sync::mpsc::Sender<netward::reconcile::Wake>>,
        publish: bool,
    ) -> Result<netward::reconcile::Reconciler<netward::enforce::netlink::Netlink>, Failure> {
        use netward::enforce::netlink::Netlink;
        let mut source = netward::reconcile::Source::new(self.repo, &git_ref, &self.path, self.cache);
        source.allowed_signers = allowed_signers;
        source.auth = self.auth.into();
        if !(0.1..=86_400.0).contains(&self.fetch_timeout) {
            return Err(Failure::Usage(format!(
                "--fetch-timeout {}: give seconds between 0.1 and 86400",
                self.fetch_timeout
            )));
        }
        let limit = std::time::Duration::from_secs_f64(self.fetch_timeout);
        source.fetcher = std::sync::Arc::new(match &wake {
            Some(tx) => netward::git::fetch::Fetcher::waking(limit, Wake::Fetch.on(tx)),
            None => netward::git::fetch::Fetcher::new(limit),
        });
        let dataplane = match &self.netns {
            Some(ns) => Netlink::in_netns(ns),
            None => Netlink::new(),
        }
        .map_err(|e| Failure::Io(e.to_string()))?;
        let mut on_record: Option<netward::reconcile::PassHook> = None;
        let inventory: Box<dyn netward::reconcile::Inventory + Send> = match self.api.options() {
            Some(o) => {
                let api = netward::kubernetes::watch::ApiInventory::connect(
                    &o,
                    wake.as_ref().map(|tx| Wake::Inventory.on(tx)),
                )
                .map_err(|e| Failure::Io(e.to_string()))?;
                if publish {
                    let (publisher, node) = (api.publisher(), self.node.clone());
                    let mut last: Option<(String, String)> = None;
                    // One patch per new commit or result, not per pod change.
                    on_record = Some(Box::new(move |p: &netward::reconcile::Pass| {
                        use netward::reconcile::PassResult;
                        let result = match p.result {
                            PassResult::Refused => "refused",
                            PassResult::Applied | PassResult::Unchanged => "applied",
                            PassResult::DryRun | PassResult::Error => return,
                        };
                        let now = Some((p.commit.clone(), result.to_string()));
                        if now != last {
                            publisher.publish(&node, &p.commit, result);
                            last = now;
                        }
                    }));
                }
                Box::new(api)
            }
            None if publish => return Err(Failure::Usage("--publish-status needs --kube".into())),
            None => Box::new(netward::reconcile::SnapshotFiles::new(self.cluster)),
        };
        let mut r = netward::reconcile::Reconciler::with_inventory(source, inventory, self.node, mode, dataplane);
        r.on_record = on_record;
        r.l7 = self.l7.into();
        r.keep_established = self.keep_established;
        r.pod_cidrs = self.pods.pod_cidrs;
        r.unknown_pods = self.pods.unknown_pods.into();
        Ok(r)
    }
}

/// Credentials for a remote repository (secrets are read from files at every fetch).
#[derive(clap::Args)]
struct GitAuthArgs {
    /// HTTPS: a file holding an access token (sent as HTTP Basic auth).
    #[arg(long)]
    git_token_file: Option<PathBuf>,
    /// HTTPS: the name of an environment variable holding the token instead.
    #[arg(long, conflicts_with = "git_token_file")]
    git_token_env: Option<String>,
    /// The user name sent with the token (with a password as the token: basic auth).
    #[arg(long, default_value = "x-access-token")]
    git_token_user: String,
    /// SSH: the private key to fetch with (and no other); without it, ssh-agent's keys.
    #[arg(long)]
    ssh_key: Option<PathBuf>,
    /// SSH: a known_hosts file; the server's key is then checked strictly against it.
    #[arg(long)]
    ssh_known_hosts: Option<PathBuf>,
}

impl From<GitAuthArgs> for netward::reconcile::GitAuth {
    fn from(a: GitAuthArgs) -> Self {
        netward::reconcile::GitAuth {
            token_file: a.git_token_file,
            token_env: a.git_token_env,
            token_user: a.git_token_user,
            ssh_key: a.ssh_key,
            known_hosts: a.ssh_known_hosts,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ReconcileMode {
    Enforce,
    Audit,
    DryRun,
}

#[derive(Clone, Copy, ValueEnum)]
enum DiffFormat {
    Text,
    Md,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum PlanFormat {
    /// `nft -f` text that replaces the table atomically.
    Nft,
    /// Counts of chains, rules, sets and elements.
    Summary,
}

#[derive(Clone, Copy, ValueEnum)]
enum PlanMode {
    Enforce,
    Audit,
}

#[derive(Clone, Copy, ValueEnum)]
enum SelectFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExplainFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
    Csv,
    Md,
    Summary,
}

/// Failures the user sees, each with its exit code.
enum Failure {
    /// Bad input: every diagnostic, exit 1.
    Input(Vec<Diagnostic>),
    /// Input given on the command line is wrong (a selector): exit 1.
    Invalid(String),
    /// A usage problem found after parsing flags (unknown endpoint, bad port): exit 2.
    Usage(String),
    Io(String),
    /// Diagnostics already printed; exit with this code.
    Exit(u8),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(Failure::Input(diags)) => {
            print_diags(&diags);
            ExitCode::from(1)
        }
        Err(Failure::Invalid(msg)) => {
            eprintln!("netward: {msg}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("netward: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Io(msg)) => {
            eprintln!("netward: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Exit(code)) => ExitCode::from(code),
    }
}

/// Diagnostics on stderr, each with the line it points at and a caret
/// under the column, read from the file on disk (as rustc shows them).
fn print_diags(diags: &[Diagnostic]) {
    let mut err = std::io::stderr().lock();
    let mut files = std::collections::HashMap::new();
    for d in diags {
        let _ = write!(err, "{d}\n{}", snippet(d, &mut files));
    }
}

/// Diagnostics whose files are not on disk (a Git revision's): the lines alone.
fn print_diags_plain(diags: &[Diagnostic]) {
    let mut err = std::io::stderr().lock();
    for d in diags {
        let _ = writeln!(err, "{d}");
    }
}

/// The source line a diagnostic points at, numbered, with a caret under its
/// column; empty when the place or the file is unknown. `files` caches
/// what was read.
fn snippet(d: &Diagnostic, files: &mut std::collections::HashMap<String, Option<String>>) -> String {
    let (line, col) = (d.pos.line as usize, d.pos.col as usize);
    if line == 0 {
        return String::new();
    }
    let text = files.entry(d.pos.file.to_string()).or_insert_with(|| std::fs::read_to_string(&*d.pos.file).ok());
    let Some(source) = text.as_deref().and_then(|t| t.lines().nth(line - 1)) else { return String::new() };
    let number = line.to_string();
    let pad = " ".repeat(number.len());
    // Cut very long lines (minified JSON) around the column.
    let source = text::cut(source, 200);
    let mut out = format!("{pad} |\n{number} | {source}\n");
    if col > 0 {
        // Tabs stay tabs, so the caret lines up under them.
        let lead: String = source.chars().take(col - 1).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
        out.push_str(&format!("{pad} | {lead}^\n"));
    }
    out
}

fn policies(paths: &[PathBuf]) -> Result<PolicySet, Failure> {
    let (set, _) = load_policies(paths).into_result().map_err(Failure::Input)?;
    // Verdicts that L3/L4 cannot decide are marked; say why once, up front.
    print_diags(&validate::undecidable(&set));
    Ok(set)
}

fn cluster(paths: &[PathBuf]) -> Result<Cluster, Failure> {
    let (c, _) = load_cluster(paths).into_result().map_err(Failure::Input)?;
    Ok(c)
}

fn ports(specs: &[String]) -> Result<Vec<FlowPort>, Failure> {
    specs.iter().flat_map(|s| s.split(',')).map(|s| FlowPort::parse(s.trim()).map_err(Failure::Usage)).collect()
}

fn out(text: &str) -> Result<ExitCode, Failure> {
    let mut o = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a message.
    let _ = o.write_all(text.as_bytes());
    Ok(ExitCode::SUCCESS)
}

fn run(cmd: Command) -> Result<ExitCode, Failure> {
    match cmd {
        Command::Validate { paths, cluster: cluster_paths } => {
            let loaded = load_policies(&paths);
            let mut diags = loaded.diagnostics;
            let cl = if cluster_paths.is_empty() {
                None
            } else {
                let lc = load_cluster(&cluster_paths);
                diags.extend(lc.diagnostics);
                Some(lc.value)
            };
            diags.extend(validate::warnings(&loaded.value, cl.as_ref()));
            netward::diag::sort(&mut diags);
            diags.dedup();
            let errors = diags.iter().filter(|d| d.severity == Severity::Error).count();
            let warnings = diags.len() - errors;
            // One line per finding for scripts and editors; with the source
            // line and a caret on a terminal.
            let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
            let mut files = std::collections::HashMap::new();
            let mut text = String::new();
            for d in &diags {
                text.push_str(&format!("{d}\n"));
                if terminal {
                    text.push_str(&snippet(d, &mut files));
                }
            }
            let _ = out(&text);
            eprintln!("{} policies checked: {errors} errors, {warnings} warnings", loaded.value.policies.len());
            Ok(if errors > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Command::Select { selector, cluster: cluster_paths, format } => {
            let sel = Selector::parse(&selector)
                .map_err(|e| Failure::Invalid(format!("{e}\n  {selector}\n  {}^", " ".repeat(e.col - 1))))?;
            let c = cluster(&cluster_paths)?;
            let ids: Vec<String> =
                c.endpoints().into_iter().filter(|e| !e.host_network && sel.matches(&e.labels)).map(|e| e.id).collect();
            match format {
                SelectFormat::Text => out(&ids.iter().map(|i| format!("{i}\n")).collect::<String>()),
                SelectFormat::Json => {
                    out(&(serde_json::to_string_pretty(&serde_json::json!({ "endpoints": ids })).expect("JSON") + "\n"))
                }
            }
        }
        Command::Matrix { policies: pp, cluster: cp, port, format, staged } => {
            let set = policies(&pp)?;
            let c = cluster(&cp)?;
            let ports = ports(&port)?;
            let an = Analysis::new(&set, &c, if staged { View::Staged } else { View::Enforced });
            let m = Matrix::compute(&an, &ports);
            let f = match format {
                Format::Table => MatrixFormat::Table,
                Format::Json => MatrixFormat::Json,
                Format::Csv => MatrixFormat::Csv,
                Format::Md => MatrixFormat::Md,
                Format::Summary => MatrixFormat::Summary,
            };
            // Streamed: the output grows with pods squared. A closed pipe
            // (`| head`) stops it at the first failed write, quietly, as `out`.
            let mut o = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            let _ = report::write_matrix(&mut o, &m, f).and_then(|()| o.flush());
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain { policies: pp, cluster: cp, from, to, port, src_port, staged, format } => {
            let set = policies(&pp)?;
            let c = cluster(&cp)?;
            let fp = FlowPort::parse(&port).map_err(Failure::Usage)?;
            let an = Analysis::new(&set, &c, if staged { View::Staged } else { View::Enforced });
            let flow = an.flow(&from, &to, fp.protocol, fp.port, src_port).map_err(Failure::Usage)?;
            let v = an.evaluate(&flow);
            let text = match format {
                ExplainFormat::Text => report::explain_text(&an, &flow, &v),
                ExplainFormat::Json => report::explain_json(&an, &flow, &v),
            };
            let _ = out(&text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Reconcile {
            target,
            git_ref,
            mode,
            once,
            interval,
            status,
            listen,
            webhook_secret_file,
            verify_signatures,
            log_format,
            publish_status,
        } => {
            use netward::reconcile::RolloutMode;
            init_logs(log_format);
            let mode = match mode {
                ReconcileMode::Enforce => RolloutMode::Enforce,
                ReconcileMode::Audit => RolloutMode::Audit,
                ReconcileMode::DryRun => RolloutMode::DryRun,
            };
            let (tx, rx) = std::sync::mpsc::channel();
            let prev =
                status.as_deref().map(netward::reconcile::read_status).transpose().map_err(Failure::Io)?.flatten();
            let mut r = target.reconciler(git_ref, mode, verify_signatures, Some(tx.clone()), publish_status)?;
            if let Some(prev) = prev {
                r.resume(prev);
            }
            if once {
                // One pass always says how it ended, even with nothing new.
                r.log_every_pass = true;
                let pass = r.pass();
                if let Some(f) = &status {
                    netward::reconcile::write_status(f, &r.status)
                        .map_err(|e| Failure::Io(format!("{}: {e}", f.display())))?;
                }
                return Ok(exit_code(&pass));
            }
            // The loop waits briefly for a fetch; a longer one goes on, and
            // its end wakes the loop (Git trouble never holds up the inventory).
            r.fetch_wait = Some(netward::reconcile::FETCH_WAIT);
            let shared = std::sync::Arc::new(std::sync::Mutex::new((r.status.clone(), r.metrics.clone())));
            // A local checkout is watched: a commit wakes the loop at once.
            // (`.git` is a file in a linked worktree.)
            if std::path::Path::new(&r.source.repo).join(".git").exists() {
                netward::git::watch::watch_local(
                    std::path::Path::new(&r.source.repo),
                    &r.source.git_ref,
                    Wake::Fetch.on(&tx),
                );
            }
            let hook = match &webhook_secret_file {
                Some(f) => {
                    let secret = std::fs::read(f).map_err(|e| Failure::Io(format!("{}: {e}", f.display())))?;
                    Some((secret.trim_ascii().to_vec(), tx))
                }
                None => None,
            };
            if let Some(addr) = listen {
                let l = std::net::TcpListener::bind(&addr).map_err(|e| Failure::Io(format!("--listen {addr}: {e}")))?;
                let s = shared.clone();
                let m = r.mode;
                std::thread::spawn(move || netward::http::serve(l, s, hook, m));
            }
            r.run(
                std::time::Duration::from_secs(interval.max(1)),
                status.as_deref(),
                Some(&shared),
                Some(&rx),
                &|| false,
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Rollback { target: node_target, status, to } => {
            use netward::reconcile::RolloutMode;
            init_logs(LogFormat::Text);
            let prev = netward::reconcile::read_status(&status)
                .map_err(Failure::Io)?
                .ok_or_else(|| Failure::Io(format!("{}: no status to roll back from", status.display())))?;
            let current = prev.applied.clone().unwrap_or_default();
            let target = match to {
                Some(t) => t,
                None => netward::reconcile::rollback_target(&prev)
                    .ok_or_else(|| Failure::Io("the history has no earlier applied revision".into()))?,
            };
            let mut r = node_target.reconciler(target.clone(), RolloutMode::Enforce, None, None, false)?;
            r.resume(prev);
            r.log_every_pass = true;
            // The commit we return to may once have been refused; a rollback is explicit.
            r.status.refused.retain(|p| p.commit != target);
            let pass = r.pass();
            netward::reconcile::write_status(&status, &r.status)
                .map_err(|e| Failure::Io(format!("{}: {e}", status.display())))?;
            if pass.result.in_force() {
                eprintln!("rolled back from {} to {}", text::short_id(&current), text::short_id(&pass.commit));
            } else {
                eprintln!(
                    "netward: rollback to {} {}: {}; {} stays in force",
                    text::short_id(&target),
                    pass.result,
                    pass.detail,
                    if current.is_empty() { "nothing" } else { text::short_id(&current) }
                );
            }
            Ok(exit_code(&pass))
        }
        Command::Diff { base, head, path, cluster: cp, format, repo, guards } => {
            // In diff, 1 means "connectivity changed": bad input is an error (2).
            let as_error = |f: Failure| match f {
                Failure::Input(d) => {
                    print_diags_plain(&d);
                    Failure::Exit(2)
                }
                other => other,
            };
            let base_rev = match base {
                Some(b) => netward::git::resolve(&repo, &b),
                None => netward::git::default_base(&repo),
            }
            .map_err(Failure::Io)?;
            let head_rev = head.map(|h| netward::git::resolve(&repo, &h)).transpose().map_err(Failure::Io)?;
            let (base_files, head_files) =
                netward::git::revision_files(&repo, &base_rev, head_rev.as_deref(), &path).map_err(Failure::Io)?;
            let load = |files: &[(std::sync::Arc<str>, String)]| {
                let mut d = Vec::new();
                let set = netward::manifest::load::load_policy_texts(
                    files.iter().map(|(n, t)| (n.clone(), t.as_str())),
                    &mut d,
                );
                if d.iter().any(|x| x.severity == Severity::Error) {
                    Err(Failure::Input(d))
                } else {
                    Ok(set)
                }
            };
            let (bset, hset) = (load(&base_files).map_err(as_error)?, load(&head_files).map_err(as_error)?);
            let (cl, source) = if cp.is_empty() {
                netward::change::endpoints_without_snapshot(&head_files, &[&bset, &hset])
            } else {
                let c = cluster(&cp).map_err(as_error)?;
                let n = c.endpoints().len();
                let names: Vec<String> = cp.iter().map(|p| p.display().to_string()).collect();
                (c, format!("cluster snapshot {} ({n} endpoints)", names.join(", ")))
            };
            let short = |r: &str| text::cut(r, 8).to_string();
            let b = netward::change::Revision {
                label: format!("base {}", short(&base_rev)),
                set: &bset,
                files: &base_files,
            };
            let h = netward::change::Revision {
                label: head_rev
                    .as_deref()
                    .map(|r| format!("head {}", short(r)))
                    .unwrap_or_else(|| "working tree".into()),
                set: &hset,
                files: &head_files,
            };
            let mut r = netward::change::diff(&b, &h, &cl, &source);
            if let Some(g) = guards {
                let name: std::sync::Arc<str> = std::sync::Arc::from(g.display().to_string());
                let text = std::fs::read_to_string(&g).map_err(|e| Failure::Io(format!("{}: {e}", g.display())))?;
                let list = netward::guard::load_guards(&name, &text).map_err(|d| as_error(Failure::Input(vec![d])))?;
                r.broken_guards = netward::guard::check_guards(&list, &hset, &cl).map_err(Failure::Io)?;
            }
            let text = match format {
                DiffFormat::Text => report::diff_text(&r),
                DiffFormat::Md => report::diff_md(&r),
                DiffFormat::Json => report::diff_json(&r),
            };
            let _ = out(&text);
            Ok(if r.changed() { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Command::Plan { node, policies: pp, cluster: cp, format, mode, l7, pods } => {
            let set = enforce::with_l7(&policies(&pp)?, l7.into());
            let c = cluster(&cp)?;
            if !c.pods.iter().any(|p| p.node.as_deref() == Some(node.as_str())) {
                return Err(Failure::Usage(format!("no pod in the cluster runs on node {node:?}")));
            }
            let an = Analysis::new(&set, &c, View::Enforced);
            // Pod links (for anti-spoofing) come from the node's routes when
            // reconcile runs there; the plan is the same ruleset without them.
            let pod_cidrs = enforce::compile::pod_cidrs(&c, &node, &pods.pod_cidrs);
            let spec = enforce::NodeSpec {
                node,
                mode: match mode {
                    PlanMode::Enforce => enforce::Mode::Enforce,
                    PlanMode::Audit => enforce::Mode::Audit,
                },
                links: Default::default(),
                pod_cidrs,
                unknown_pods: pods.unknown_pods.into(),
            };
            let rs = enforce::compile(&an, &spec);
            match format {
                PlanFormat::Nft => out(&enforce::nft::render(&rs)),
                PlanFormat::Summary => out(&format!(
                    "{} chains, {} rules, {} sets and maps, {} elements\n",
                    rs.chains.len(),
                    rs.rule_count(),
                    rs.sets.len() + rs.maps.len(),
                    rs.element_count()
                )),
            }
        }
        Command::Snapshot { kubeconfig, context } => {
            let opts = netward::kubernetes::watch::ApiOptions::new(kubeconfig, context);
            let cluster = netward::kubernetes::watch::list_once(&opts).map_err(|e| Failure::Io(e.to_string()))?;
            print!("{}", netward::kubernetes::snapshot::render(&cluster));
            eprintln!("{} namespaces, {} pods", cluster.namespaces.len(), cluster.pods.len());
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate { pods, policies, seed, out: dir } => {
            let g = synth::generate(&synth::Shape { pods, policies, seed });
            std::fs::create_dir_all(&dir).map_err(|e| Failure::Io(format!("{}: {e}", dir.display())))?;
            for (name, text) in [("cluster.yaml", &g.cluster), ("policies.yaml", &g.policies)] {
                let p = dir.join(name);
                std::fs::write(&p, text).map_err(|e| Failure::Io(format!("{}: {e}", p.display())))?;
            }
            eprintln!("wrote {} pods and {} policies to {}", pods, policies, dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Completion { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "netward", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out: dir } => {
            std::fs::create_dir_all(&dir).map_err(|e| Failure::Io(format!("{}: {e}", dir.display())))?;
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::generate_to(cmd, &dir).map_err(|e| Failure::Io(format!("{}: {e}", dir.display())))?;
            eprintln!("wrote the man pages to {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

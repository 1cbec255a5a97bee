//! The flags: every command and option as clap reads them, and the
//! settings they validate into (`NodeTarget` builds the reconciler).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::failure::Failure;
use netward::enforce;
use netward::reconcile::Wake;

#[derive(Parser)]
#[command(
    name = "netward",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("NETWARD_COMMIT"), ")"),
    about = "Kubernetes and Calico network policy engine: validate, select, matrix, explain"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
        #[arg(short = 'o', long, value_enum, default_value_t = SelectFormat::Text)]
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
        /// PORT/PROTO, e.g. 80/TCP, 53/UDP; by default every port the pods
        /// declare and the rules name.
        #[arg(long, num_args = 1..)]
        port: Vec<String>,
        #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Evaluate as if every staged policy were committed.
        #[arg(long)]
        staged: bool,
        /// The family that decides pairs of dual-stack pods (4, the default, or 6);
        /// a pair the two families decide differently is caveated either way.
        #[arg(long, value_parser = ["4", "6"])]
        family: Option<String>,
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
        #[arg(short = 'o', long, value_enum, default_value_t = ExplainFormat::Text)]
        format: ExplainFormat,
        /// The family for two pods given as namespace/pod that both have IPv4
        /// and IPv6 (4, the default: their first address's, or 6).
        #[arg(long, value_parser = ["4", "6"])]
        family: Option<String>,
    },
    /// Follow a Git repository of policies and keep this node's nftables table in step.
    Reconcile {
        #[command(flatten)]
        target: NodeTarget,
        /// Branch, tag or commit to track; by default HEAD: the remote's
        /// default branch, or a local checkout's current one (as Argo CD's HEAD).
        #[arg(long = "ref", default_value = "HEAD")]
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
        #[arg(short = 'o', long, value_enum, default_value_t = DiffFormat::Text)]
        format: DiffFormat,
        /// The Git checkout (default: the current directory).
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Connections that must stay allowed or denied (`guards: [{from, to, port, expect}]`).
        #[arg(long)]
        guards: Option<PathBuf>,
    },
    /// Rewrite v1alpha1 AdminNetworkPolicy/BaselineAdminNetworkPolicy as
    /// v1alpha2 ClusterNetworkPolicy, and prove with netward's own diff that
    /// no connection opens or closes.
    Convert {
        /// The API version to write (only v1alpha2).
        #[arg(long, value_parser = ["v1alpha2"])]
        to: String,
        /// Policy files or directories (recursively *.yaml, *.yml, *.json).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Cluster snapshots the proof runs over (default: one representative
        /// endpoint per label combination the policies name).
        #[arg(long, num_args = 1..)]
        cluster: Vec<PathBuf>,
        /// Rewrite the files in place (default: print the converted text).
        #[arg(long)]
        write: bool,
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
        #[arg(short = 'o', long, value_enum, default_value_t = PlanFormat::Nft)]
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
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// What `reconcile` and `rollback` share: the repository, the inventory and
/// the node whose table they program.
#[derive(clap::Args)]
pub(crate) struct NodeTarget {
    /// A local checkout or a Git URL (file://, https://, ssh://).
    #[arg(long)]
    pub(crate) repo: String,
    /// Directory of policies inside the repository.
    #[arg(long, default_value = ".")]
    pub(crate) path: String,
    /// The inventory: cluster snapshots, re-read when they change.
    #[arg(long, num_args = 1.., required_unless_present_any = ["kube", "kubeconfig", "context"], conflicts_with_all = ["kube", "kubeconfig", "context"])]
    pub(crate) cluster: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) api: ApiArgs,
    /// This node's name (the pods' spec.nodeName).
    #[arg(long)]
    pub(crate) node: String,
    /// Program the table in this network namespace (`ip netns` name) instead of this one.
    #[arg(long)]
    pub(crate) netns: Option<String>,
    /// Where a remote repository is mirrored.
    #[arg(long, default_value = "/var/lib/netward/repo")]
    pub(crate) cache: PathBuf,
    #[command(flatten)]
    pub(crate) auth: GitAuthArgs,
    /// Seconds a fetch may take before the pass gives up on it (the last good commit stays in force).
    #[arg(long, default_value_t = 60.0)]
    pub(crate) fetch_timeout: f64,
    /// What an `http` (application-layer) match becomes: `allow` by its
    /// L3/L4 part (Calico's meaning without an L7 proxy; warned every pass),
    /// or `deny`: the rule matches nothing (fail closed).
    #[arg(long, value_enum, default_value_t = L7Arg::Allow)]
    pub(crate) l7: L7Arg,
    /// Leave established connections alone when a commit denies them (by
    /// default their conntrack entries are removed, so they stop at once).
    #[arg(long)]
    pub(crate) keep_established: bool,
    #[command(flatten)]
    pub(crate) pods: PodCidrArgs,
}

/// Which addresses are this node's pods, and what becomes of one netward
/// has not heard of yet.
#[derive(clap::Args)]
pub(crate) struct PodCidrArgs {
    /// This node's pod CIDR (repeatable), in addition to its Node object's
    /// spec.podCIDRs (from --kube or a Node in the --cluster snapshots).
    #[arg(long = "pod-cidr")]
    pub(crate) pod_cidrs: Vec<ipnet::IpNet>,
    /// Traffic from or to an address of this node's pod CIDRs that no known
    /// pod has: `deny` until netward has heard of the pod (fail closed), or
    /// `allow` (a new pod is unpoliced until its policies are programmed).
    #[arg(long, value_enum, default_value_t = UnknownPodsArg::Deny)]
    pub(crate) unknown_pods: UnknownPodsArg,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum UnknownPodsArg {
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
pub(crate) enum L7Arg {
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
pub(crate) struct ApiArgs {
    /// The inventory: pods and namespaces watched on the Kubernetes API server
    /// (in-cluster config, or --kubeconfig / KUBECONFIG / ~/.kube/config).
    #[arg(long)]
    pub(crate) kube: bool,
    /// A kubeconfig file (implies --kube).
    #[arg(long)]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// A kubeconfig context other than the current one (implies --kube).
    #[arg(long)]
    pub(crate) context: Option<String>,
    /// Seconds between full relists of the watched objects (repairs anything a watch missed).
    #[arg(long, default_value_t = 600)]
    pub(crate) kube_resync: u64,
}

impl ApiArgs {
    pub(crate) fn options(&self) -> Option<netward::kubernetes::watch::ApiOptions> {
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
    pub(crate) fn reconciler(
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
pub(crate) struct GitAuthArgs {
    /// HTTPS: a file holding an access token (sent as HTTP Basic auth).
    #[arg(long)]
    pub(crate) git_token_file: Option<PathBuf>,
    /// HTTPS: the name of an environment variable holding the token instead.
    #[arg(long, conflicts_with = "git_token_file")]
    pub(crate) git_token_env: Option<String>,
    /// The user name sent with the token (with a password as the token: basic auth).
    #[arg(long, default_value = "x-access-token")]
    pub(crate) git_token_user: String,
    /// SSH: the private key to fetch with (and no other); without it, ssh-agent's keys.
    #[arg(long)]
    pub(crate) ssh_key: Option<PathBuf>,
    /// SSH: a known_hosts file; the server's key is then checked strictly against it.
    #[arg(long)]
    pub(crate) ssh_known_hosts: Option<PathBuf>,
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
pub(crate) enum ReconcileMode {
    Enforce,
    Audit,
    DryRun,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum DiffFormat {
    Text,
    Md,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum PlanFormat {
    /// `nft -f` text that replaces the table atomically.
    Nft,
    /// Counts of chains, rules, sets and elements.
    Summary,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum PlanMode {
    Enforce,
    Audit,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum SelectFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ExplainFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    Table,
    Json,
    Csv,
    Md,
    Summary,
}

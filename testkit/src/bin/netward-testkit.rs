//! `netward-testkit`: run connectivity test files against the model or a lab
//! of network namespaces, verify a lab against the model, and drive labs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use netward::analysis::{Analysis, View};
use netward::enforce::Mode;
use netward::manifest::{load_cluster, load_policies};
use netward::model::port::FlowPort;
use netward_testkit::cluster_lab::{dual_stack, kept_prefix, remove_namespaces, ClusterLab, Cni};
use netward_testkit::lab::Probe;
use netward_testkit::runner::{self, Backend};
use netward_testkit::spec;
use netward_testkit::verify::verify;

#[derive(Parser)]
#[command(
    name = "netward-testkit",
    version,
    about = "Connectivity tests for netward policies: model and network-namespace lab"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    Model,
    Lab,
    /// A kind cluster made by `netward-testkit kind up` (needs kind, kubectl, Docker).
    Kind,
}

/// The CNI plugin that wires a lab's pods (Debian's containernetworking-plugins).
#[derive(Clone, Copy, ValueEnum)]
enum CniArg {
    /// A veth per pod routed by its node, as kind's kindnet.
    Ptp,
    /// Every pod of a node on the cni0 bridge, br_netfilter on.
    Bridge,
}

impl From<CniArg> for Cni {
    fn from(c: CniArg) -> Cni {
        match c {
            CniArg::Ptp => Cni::Ptp,
            CniArg::Bridge => Cni::Bridge,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Check test files; exit 0 all pass, 1 a check failed, 2 a file could not run.
    Run {
        #[arg(required = true)]
        tests: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = BackendArg::Model)]
        backend: BackendArg,
        /// Write JUnit XML here.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// With --backend kind: the cluster `kind up` made.
        #[arg(long, default_value = "netward")]
        kind_name: String,
        /// With --backend lab: the CNI plugin that wires the pods.
        #[arg(long, value_enum, default_value_t = CniArg::Ptp)]
        cni: CniArg,
    },
    /// Probe every pod pair on every declared port in a lab and compare with the model.
    Verify {
        #[arg(long, required = true, num_args = 1..)]
        policies: Vec<PathBuf>,
        #[arg(long, required = true, num_args = 1..)]
        cluster: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = BackendArg::Lab)]
        backend: BackendArg,
        /// With --backend kind: the cluster `kind up` made.
        #[arg(long, default_value = "netward")]
        kind_name: String,
        /// With --backend lab: the CNI plugin that wires the pods.
        #[arg(long, value_enum, default_value_t = CniArg::Ptp)]
        cni: CniArg,
    },
    /// kind clusters for the kind backend: up, down.
    Kind {
        #[command(subcommand)]
        command: KindCommand,
    },
    /// Labs that outlive the command: up, probe, apply, down.
    Lab {
        #[command(subcommand)]
        command: LabCommand,
    },
    /// A throwaway Kubernetes control plane on loopback, built from source: up, down.
    Localkube {
        #[command(subcommand)]
        command: LocalkubeCommand,
    },
}

#[derive(Subcommand)]
enum LocalkubeCommand {
    /// Build (once) and start etcd, kube-apiserver, kube-controller-manager and
    /// kube-scheduler; write DIR/kubeconfig (cluster admin); wait until ready.
    Up {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Stop what `up` started in DIR and remove DIR.
    Down {
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum LabCommand {
    /// Build the cluster a snapshot describes and enforce the policies (if given).
    Up {
        #[arg(long, required = true, num_args = 1..)]
        cluster: Vec<PathBuf>,
        #[arg(long, num_args = 1..)]
        policies: Vec<PathBuf>,
        #[arg(long, default_value = "lab")]
        name: String,
        /// The CNI plugin that wires the pods.
        #[arg(long, value_enum, default_value_t = CniArg::Ptp)]
        cni: CniArg,
    },
    /// Enforce (changed) policies on a running lab: only the difference is applied.
    Apply {
        /// The snapshot the lab was built from (default: the one `lab up` used).
        #[arg(long, num_args = 1..)]
        cluster: Vec<PathBuf>,
        #[arg(long, required = true, num_args = 1..)]
        policies: Vec<PathBuf>,
        #[arg(long, default_value = "lab")]
        name: String,
    },
    /// One probe in a running lab.
    Probe {
        /// The snapshot the lab was built from (default: the one `lab up` used).
        #[arg(long, num_args = 1..)]
        cluster: Vec<PathBuf>,
        #[arg(long)]
        from: String,
        /// namespace/pod or an IP (an address no pod owns is served by the lab's outside).
        #[arg(long)]
        to: String,
        /// PORT/PROTO, e.g. 80/tcp.
        #[arg(long)]
        port: String,
        #[arg(long, default_value = "lab")]
        name: String,
    },
    /// Remove a lab and everything it created.
    Down {
        #[arg(long, default_value = "lab")]
        name: String,
    },
}

#[derive(Subcommand)]
enum KindCommand {
    /// Create the cluster (or reuse one of that name), install its CNI, wait until it is ready.
    Up {
        /// kind-configs/calico.yaml, kindnet.yaml or netward.yaml.
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value = "netward")]
        name: String,
    },
    /// Delete the cluster.
    Down {
        #[arg(long, default_value = "netward")]
        name: String,
    },
}

/// Where `lab up` notes which snapshot a lab was built from, so later
/// commands need not be told again.
fn state_file(name: &str) -> PathBuf {
    PathBuf::from("/run/netward-lab").join(format!("{name}.clusters"))
}

fn lab_cluster(name: &str, given: Vec<PathBuf>) -> Result<Vec<PathBuf>, String> {
    if !given.is_empty() {
        return Ok(given);
    }
    let text = std::fs::read_to_string(state_file(name))
        .map_err(|_| format!("no lab named {name:?} was brought up here (or pass --cluster)"))?;
    Ok(text.lines().map(PathBuf::from).collect())
}

fn probe_bin() -> PathBuf {
    let me = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("netward-testkit"));
    me.with_file_name("netward-probe")
}

/// The one progress line (indicatif draws nothing when stderr is not a terminal).
static PROGRESS: std::sync::Mutex<Option<indicatif::ProgressBar>> = std::sync::Mutex::new(None);

/// Shows `msg` on the progress line, and a bar when `count` (done, total) is known.
fn progress_of(msg: &str, count: Option<(usize, usize)>) {
    let mut slot = PROGRESS.lock().unwrap_or_else(|p| p.into_inner());
    let bar = slot.get_or_insert_with(|| {
        let b = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        b.enable_steady_tick(Duration::from_millis(120));
        b
    });
    let template = if count.is_some() { "{spinner} [{bar:30}] {pos}/{len} {msg}" } else { "{spinner} {msg}" };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("#>."));
    }
    if let Some((done, total)) = count {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    }
    bar.set_message(msg.to_string());
}

fn progress(msg: &str) {
    progress_of(msg, None);
}

fn progress_done() {
    if let Some(bar) = PROGRESS.lock().unwrap_or_else(|p| p.into_inner()).take() {
        bar.finish_and_clear();
    }
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("netward-testkit: {msg}");
    ExitCode::from(2)
}

fn analysis(policies: &[PathBuf], cluster: &[PathBuf]) -> Result<(Analysis, netward::model::Cluster), String> {
    let join = |d: Vec<netward::diag::Diagnostic>| d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("\n");
    let (set, _) = load_policies(policies).into_result().map_err(join)?;
    let (c, _) = load_cluster(cluster).into_result().map_err(join)?;
    Ok((Analysis::new(&set, &c, View::Enforced), c))
}

/// The analysis of a lab: on the cluster as the lab wires it (dual-stack).
fn lab_analysis(policies: &[PathBuf], cluster: &[PathBuf]) -> Result<(Analysis, netward::model::Cluster), String> {
    let join = |d: Vec<netward::diag::Diagnostic>| d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("\n");
    let (set, _) = load_policies(policies).into_result().map_err(join)?;
    let (c, _) = load_cluster(cluster).into_result().map_err(join)?;
    let c = dual_stack(&c);
    Ok((Analysis::new(&set, &c, View::Enforced), c))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { tests, backend, junit, kind_name, cni } => {
            let backend = match backend {
                BackendArg::Model => Backend::Model,
                BackendArg::Lab => Backend::Lab,
                BackendArg::Kind => Backend::Kind,
            };
            if backend == Backend::Kind {
                if let Err(e) = netward_testkit::kind::preflight() {
                    return fail(e);
                }
            }
            let target = runner::KindTarget { name: kind_name };
            let mut results = Vec::new();
            for path in &tests {
                match spec::load(path) {
                    Ok(t) => {
                        let r = runner::run_file_with(&t, backend, &probe_bin(), Some(&target), cni.into(), &|m| {
                            progress(m)
                        });
                        progress_done();
                        print!("{}", runner::text(&r, backend));
                        results.push(r);
                    }
                    Err(d) => {
                        println!("ERROR {}\n{d}", path.display());
                        results.push(runner::FileResult {
                            name: path.display().to_string(),
                            path: path.display().to_string(),
                            checks: Vec::new(),
                            error: Some(d.to_string()),
                            duration: Duration::ZERO,
                        });
                    }
                }
            }
            if let Some(j) = junit {
                if let Err(e) = std::fs::write(&j, runner::junit(&results)) {
                    return fail(format!("{}: {e}", j.display()));
                }
            }
            let passed: usize = results.iter().map(|r| r.checks.len() - r.failures()).sum();
            let failed: usize = results.iter().map(|r| r.failures()).sum();
            println!("{passed} passed, {failed} failed");
            if results.iter().any(|r| r.error.is_some()) {
                ExitCode::from(2)
            } else if failed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Verify { policies, cluster, backend, kind_name, cni } => {
            if matches!(backend, BackendArg::Model) {
                return fail("verify compares the model with a real dataplane: use --backend lab or kind");
            }
            if matches!(backend, BackendArg::Kind) {
                let (an, c) = match analysis(&policies, &cluster) {
                    Ok(x) => x,
                    Err(e) => return fail(e),
                };
                return verify_on_kind(&kind_name, &policies, &c, &an);
            }
            let (an, c) = match lab_analysis(&policies, &cluster) {
                Ok(x) => x,
                Err(e) => return fail(e),
            };
            let name = format!("v{}", std::process::id() % 100_000);
            let lab = ClusterLab::up_with(&name, &c, &[], &probe_bin(), false, cni.into(), &|m| {
                progress(&format!("lab: {m}"))
            });
            let mut lab = match lab {
                Ok(l) => l,
                Err(e) => return fail(e),
            };
            if let Err(e) = lab.enforce(&an, Mode::Enforce) {
                return fail(e);
            }
            let checked =
                verify(&lab, &an, 16, Duration::from_millis(700), &|d, n| progress_of("probes", Some((d, n))));
            progress_done();
            report_verify(&checked)
        }
        Command::Localkube { command } => {
            let done = match command {
                LocalkubeCommand::Up { dir } => netward_testkit::localkube::up(&dir, &|m| progress(&format!("localkube: {m}")))
                    .map(|p| {
                        format!(
                            "localkube is ready at {}\n  export KUBECONFIG={}\n  {}/kubectl get --raw /readyz\nnetward-testkit localkube down --dir {} stops it",
                            p.server,
                            p.kubeconfig.display(),
                            p.bin.display(),
                            dir.display()
                        )
                    }),
                LocalkubeCommand::Down { dir } => {
                    netward_testkit::localkube::down(&dir).map(|()| format!("localkube in {} is gone", dir.display()))
                }
            };
            progress_done();
            match done {
                Ok(msg) => {
                    println!("{msg}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Command::Kind { command } => {
            let root = repo_root();
            let done = match command {
                KindCommand::Up { config, name } => {
                    netward_testkit::kind::up(&config, &name, &root, &|m| progress(&format!("kind {name}: {m}"))).map(
                        |_| format!("kind cluster {name} is ready; netward-testkit kind down --name {name} deletes it"),
                    )
                }
                KindCommand::Down { name } => {
                    netward_testkit::kind::down(&name).map(|_| format!("kind cluster {name} deleted"))
                }
            };
            progress_done();
            match done {
                Ok(m) => {
                    println!("{m}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Command::Lab { command } => lab(command),
    }
}

/// The repository root (for netward's Dockerfile and kind overlay): the
/// current directory, or the one this binary was built in.
fn repo_root() -> PathBuf {
    let here = std::env::current_dir().unwrap_or_default();
    if here.join("reconciler/deploy/Dockerfile").exists() {
        return here;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or(here)
}

/// `verify --backend kind`: the test's pods on the cluster, the model
/// re-evaluated with the addresses the CNI gave them, every pair probed.
fn verify_on_kind(name: &str, policies: &[PathBuf], c: &netward::model::Cluster, an: &Analysis) -> ExitCode {
    use netward_testkit::kind::{preflight, recorded_cni, KindWorld};
    if let Err(e) = preflight() {
        return fail(e);
    }
    let cni = match recorded_cni(name) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let mut ports: Vec<(netward::model::Protocol, u16)> = Vec::new();
    for e in an.endpoints.iter().filter(|e| !e.host_network) {
        for (p, n) in &e.ports {
            if matches!(p, netward::model::Protocol::Tcp | netward::model::Protocol::Udp) && !ports.contains(&(*p, *n))
            {
                ports.push((*p, *n));
            }
        }
    }
    let (set, _) = match load_policies(policies).into_result() {
        Ok(x) => x,
        Err(d) => return fail(d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("\n")),
    };
    let calico = set.policies.iter().any(|p| !matches!(p.id.kind, netward::model::PolicyKind::KubernetesNetworkPolicy));
    let world = match KindWorld::deploy(name, cni, c, policies, calico, &ports, &|m| progress(&format!("kind: {m}"))) {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    // The model of the cluster as it really is: the pods at their real addresses.
    let mut real = c.clone();
    for p in &mut real.pods {
        if let Some(ip) = world.ips.get(&format!("{}/{}", p.namespace, p.name)) {
            p.ips = vec![*ip];
        }
    }
    let an = Analysis::new(&set, &real, View::Enforced);
    let denied = an.endpoints.iter().flat_map(|a| an.endpoints.iter().map(move |b| (a, b))).find_map(|(a, b)| {
        let (proto, port) = *b.ports.first()?;
        let flow = an.flow(&a.id, &b.id, proto, port, None).ok()?;
        let ip = *b.ips.first()?;
        (a.id != b.id && !an.evaluate(&flow).allowed).then(|| (a.id.clone(), ip, (proto, port)))
    });
    if let Some((from, ip, port)) = denied {
        progress("kind: waiting until the policies are enforced");
        if let Err(e) = world.wait_enforced(&from, ip, port, Duration::from_secs(120)) {
            world.clean_up(policies);
            return fail(e);
        }
    }
    let checked = verify(&world, &an, 16, Duration::from_secs(2), &|d, n| progress_of("probes", Some((d, n))));
    progress_done();
    world.clean_up(policies);
    report_verify(&checked)
}

fn report_verify(checked: &[netward_testkit::verify::Checked]) -> ExitCode {
    let wrong: Vec<_> = checked.iter().filter(|c| c.disagrees()).collect();
    for c in &wrong {
        // An IPv6 probe names its address; an IPv4 one reads as it always has.
        let to = if c.ip.is_ipv6() { format!("{} [{}]", c.to, c.ip) } else { c.to.clone() };
        println!(
            "DISAGREE {} -> {to} {}: kernel {:?} ({} attempts), model {}",
            c.from,
            c.port,
            c.outcome.result,
            c.outcome.attempts,
            if c.model_allows { "allows" } else { "denies" }
        );
    }
    println!("{} probes, {} disagreements", checked.len(), wrong.len());
    if wrong.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn lab(cmd: LabCommand) -> ExitCode {
    match cmd {
        LabCommand::Up { cluster, policies, name, cni } => {
            let (an, c) = match lab_analysis(&policies, &cluster) {
                Ok(x) => x,
                Err(e) => return fail(e),
            };
            let abs: Vec<String> =
                cluster.iter().map(|p| std::fs::canonicalize(p).unwrap_or(p.clone()).display().to_string()).collect();
            let _ = std::fs::create_dir_all("/run/netward-lab");
            if let Err(e) = std::fs::write(state_file(&name), abs.join("\n")) {
                return fail(format!("{}: {e}", state_file(&name).display()));
            }
            let lab = ClusterLab::up_with(&name, &c, &[], &probe_bin(), true, cni.into(), &|m| {
                progress(&format!("lab {name}: {m}"))
            });
            let mut lab = match lab {
                Ok(l) => l,
                Err(e) => return fail(e),
            };
            match lab.enforce(&an, Mode::Enforce) {
                Ok(reports) => {
                    progress_done();
                    for (node, r) in reports {
                        println!("node {node}: {}", r.changes.summary());
                    }
                    println!(
                        "lab {name} is up: {} pods wired by {}; netward-testkit lab down --name {name} removes it",
                        lab.pods().len(),
                        lab.cni()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        LabCommand::Apply { cluster, policies, name } => {
            let cluster = match lab_cluster(&name, cluster) {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            let (an, c) = match lab_analysis(&policies, &cluster) {
                Ok(x) => x,
                Err(e) => return fail(e),
            };
            let mut lab = match ClusterLab::attach(&name, &c, &probe_bin()) {
                Ok(l) => l,
                Err(e) => return fail(e),
            };
            match lab.enforce(&an, Mode::Enforce) {
                Ok(reports) => {
                    for (node, r) in reports {
                        println!(
                            "node {node}: {}{}",
                            r.changes.summary(),
                            if r.drift { " (repaired drift)" } else { "" }
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        LabCommand::Probe { cluster, from, to, port, name } => {
            let cluster = match lab_cluster(&name, cluster) {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            let c = match load_cluster(&cluster).into_result() {
                Ok((c, _)) => c,
                Err(d) => return fail(d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("\n")),
            };
            let fp = match FlowPort::parse(&port) {
                Ok(p) => p,
                Err(e) => return fail(e),
            };
            let lab = match ClusterLab::attach(&name, &c, &probe_bin()) {
                Ok(l) => l,
                Err(e) => return fail(e),
            };
            let ip = match to.parse() {
                Ok(ip) => ip,
                Err(_) => match lab.pods().iter().find(|p| p.id == to).and_then(|p| p.ips.first().copied()) {
                    Some(ip) => ip,
                    None => return fail(format!("no pod {to:?} in the lab")),
                },
            };
            let o = lab.probe(&from, ip, fp.protocol, fp.port, Duration::from_millis(1000));
            let word = match o.result {
                Probe::Allowed => "allowed",
                Probe::Denied => "denied (timeout)",
                Probe::Refused => "refused (reached, nothing listening)",
                Probe::Error => "error",
            };
            println!("{from} -> {to} {fp}: {word} in {:.3} s ({} attempts)", o.elapsed.as_secs_f64(), o.attempts);
            match o.result {
                Probe::Allowed | Probe::Refused => ExitCode::SUCCESS,
                Probe::Denied => ExitCode::from(1),
                Probe::Error => ExitCode::from(2),
            }
        }
        LabCommand::Down { name } => {
            let n = remove_namespaces(&kept_prefix(&name));
            let _ = std::fs::remove_file(state_file(&name));
            println!("lab {name}: removed {n} namespaces");
            ExitCode::SUCCESS
        }
    }
}

//! The kind backend: real Kubernetes clusters (kind, in Docker) with Calico,
//! kindnet or netward enforcing, the test's pods as netshoot pods, probed
//! through the Kubernetes exec API. `plan` is what it asks of the world (pure
//! and tested everywhere); this module does it, and runs only where kind and
//! a Docker engine do (the kind workflow).

pub mod plan;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1 as api;
use netward::kubernetes::watch::{client, runtime_thread, ApiOptions};
use netward::model::{Cluster, Protocol};

use crate::cluster_lab::ProbeOutcome;
use crate::lab::Probe;
pub use plan::Cni;

/// Says, before anything runs, what of kind, kubectl and a Docker engine is
/// missing here.
pub fn preflight() -> Result<(), String> {
    let mut missing = Vec::new();
    for program in ["kind", "kubectl", "docker"] {
        if !on_path(program) {
            missing.push(format!("{program}: not found on PATH"));
        }
    }
    if on_path("docker") {
        let engine = Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]).output();
        match engine {
            Ok(o) if o.status.success() => {}
            Ok(o) => missing.push(format!(
                "docker: the client is here but no engine answers ({})",
                String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or("docker info failed").trim()
            )),
            Err(e) => missing.push(format!("docker: {e}")),
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the kind backend needs kind, kubectl and a running Docker engine; on this machine:\n  {}\n\
             (the model and lab backends need none of them; the kind workflow in .github/workflows runs this backend)",
            missing.join("\n  ")
        ))
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

fn run(cmd: &plan::Cmd, stdin: Option<&str>) -> Result<String, String> {
    let stdin = stdin.or(cmd.stdin.as_deref());
    let mut c = Command::new(&cmd.program);
    c.args(&cmd.args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        c.stdin(Stdio::piped());
    }
    let mut child = c.spawn().map_err(|e| format!("{cmd}: {e}"))?;
    if let (Some(text), Some(mut i)) = (stdin, child.stdin.take()) {
        i.write_all(text.as_bytes()).map_err(|e| format!("{cmd}: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{} failed ({cmd}): {}", cmd.why, String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A progress bar on one line of stderr.
pub fn bar(what: &str, done: usize, total: usize) -> String {
    let width = 20;
    let filled = (done * width).checked_div(total).map_or(width, |f| f.min(width));
    format!("[{}{}] {what} {done}/{total}", "#".repeat(filled), ".".repeat(width - filled))
}

/// `kind up`: creates (or reuses) the cluster, installs its CNI and waits
/// until every node is Ready and the enforcer runs on each.
pub fn up(config: &Path, name: &str, root: &Path, progress: &dyn Fn(&str)) -> Result<(), String> {
    preflight()?;
    let cni = Cni::of_config(config)?;
    let list = plan::Cmd {
        program: "kind".into(),
        args: vec!["get".into(), "clusters".into()],
        why: "list clusters".into(),
        stdin: None,
    };
    let clusters = run(&list, None)?;
    let exists = clusters.lines().any(|l| l.trim() == name);
    if cni == Cni::Netward {
        init_netward_repo()?;
    }
    for cmd in plan::up(config, name, cni, exists, root) {
        progress(&cmd.why);
        run(&cmd, None)?;
    }
    let world = Kube::connect(name)?;
    world.wait_ready(cni, Duration::from_secs(600), progress)
}

/// The CNI `kind up` recorded on cluster `name` (a ConfigMap in kube-system).
pub fn recorded_cni(name: &str) -> Result<Cni, String> {
    preflight()?;
    let ctx = format!("kind-{name}");
    let out = run(
        &kubectl(
            &ctx,
            "read what kind up recorded",
            &["-n", "kube-system", "get", "configmap", plan::RECORD, "-o", "jsonpath={.data.cni}"],
        ),
        None,
    )
    .map_err(|e| format!("{e}\n(was the cluster made by `netward-testkit kind up --name {name}`?)"))?;
    match out.trim() {
        "calico" => Ok(Cni::Calico),
        "kindnet" => Ok(Cni::Kindnet),
        "netward" => Ok(Cni::Netward),
        other => Err(format!("cluster {name} records an unknown CNI {other:?}")),
    }
}

/// `kind down`.
pub fn down(name: &str) -> Result<(), String> {
    preflight()?;
    for cmd in plan::down(name) {
        run(&cmd, None)?;
    }
    Ok(())
}

/// The netward cluster's policy repository, shared with every node.
fn init_netward_repo() -> Result<PathBuf, String> {
    let dir = plan::netward_repo();
    if !dir.join(".git").exists() {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        git(&dir, &["init", "-q", "-b", "main"])?;
        git(&dir, &["commit", "-q", "--allow-empty", "-m", "netward testkit: no policies"])?;
    }
    Ok(dir)
}

fn git(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.email=testkit@netward", "-c", "user.name=netward testkit"])
        .args(args)
        .output()
        .map_err(|e| format!("git: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// The kube client for `kind-NAME`, on a runtime thread of its own.
struct Kube {
    client: kube::Client,
    runtime: tokio::runtime::Handle,
    /// The kind cluster's name (its kubectl context is `kind-NAME`).
    name: String,
}

impl Kube {
    fn connect(name: &str) -> Result<Kube, String> {
        Self::with_options(name, ApiOptions::new(None, Some(format!("kind-{name}"))))
    }

    fn with_options(name: &str, opts: ApiOptions) -> Result<Kube, String> {
        let runtime = runtime_thread().map_err(|e| e.to_string())?;
        let client = Self::block(&runtime, async move { client(&opts).await }).map_err(|e| e.to_string())?;
        Ok(Kube { client, runtime, name: name.into() })
    }

    /// Every node's `netward.io/revision` annotation (what `--publish-status` writes).
    fn node_revisions(&self) -> Vec<Option<String>> {
        let client = self.client.clone();
        Self::block(&self.runtime, async move {
            let nodes: kube::Api<api::Node> = kube::Api::all(client);
            let items = nodes.list(&Default::default()).await.map(|l| l.items).unwrap_or_default();
            items
                .into_iter()
                .map(|n| n.metadata.annotations.and_then(|a| a.get("netward.io/revision").cloned()))
                .collect()
        })
    }

    /// Runs a future on the runtime thread and waits for it here.
    fn block<T: Send + 'static>(
        runtime: &tokio::runtime::Handle,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv().expect("the kube runtime thread runs for the process's life")
    }

    /// Pods in `ns` with `selector` that are Ready, and how many there are.
    fn ready(&self, ns: Option<&str>, selector: &str) -> (usize, usize) {
        let client = self.client.clone();
        let (ns, selector) = (ns.map(str::to_string), selector.to_string());
        Self::block(&self.runtime, async move {
            let pods: kube::Api<api::Pod> = match ns {
                Some(ns) => kube::Api::namespaced(client, &ns),
                None => kube::Api::all(client),
            };
            let list = pods.list(&kube::api::ListParams::default().labels(&selector)).await;
            // A pod on its way out is neither here nor ready.
            let items: Vec<api::Pod> = list
                .map(|l| l.items)
                .unwrap_or_default()
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            let ready = items.iter().filter(|p| pod_ready(p)).count();
            (ready, items.len())
        })
    }

    fn nodes_ready(&self) -> (usize, usize) {
        let client = self.client.clone();
        Self::block(&self.runtime, async move {
            let nodes: kube::Api<api::Node> = kube::Api::all(client);
            let items = nodes.list(&Default::default()).await.map(|l| l.items).unwrap_or_default();
            let ready = items
                .iter()
                .filter(|n| {
                    n.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
                .count();
            (ready, items.len())
        })
    }

    /// Every node Ready, and the enforcer's pods Ready on every node.
    fn wait_ready(&self, cni: Cni, limit: Duration, progress: &dyn Fn(&str)) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            let (ready, nodes) = self.nodes_ready();
            let (enf_ready, enf) = match cni {
                Cni::Calico => self.ready(Some("calico-system"), "k8s-app=calico-node"),
                Cni::Netward => self.ready(Some("netward-system"), "app.kubernetes.io/name=netward"),
                Cni::Kindnet => self.ready(Some("kube-system"), "app=kindnet"),
            };
            // Calico's v3 objects are served by its API server, which must be up too.
            // Calico's v3 objects are served by its API server (in calico-system
            // since 3.30), which must be up and registered too.
            let (api_ready, api) = match cni {
                Cni::Calico => {
                    let (r, n) = self.ready(None, "k8s-app=calico-apiserver");
                    (usize::from(r > 0 && apiservice_available(&format!("kind-{}", self.name))), n.max(1))
                }
                _ => (1, 1),
            };
            progress(&format!(
                "{}  {}  {}",
                bar("nodes Ready", ready, nodes),
                bar(cni.name(), enf_ready, enf),
                bar("policy API", api_ready, api.min(1))
            ));
            if nodes > 0 && ready == nodes && enf >= nodes && enf_ready == enf && api_ready > 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the cluster was not ready after {} s: {ready}/{nodes} nodes, {enf_ready}/{enf} {} pods",
                    limit.as_secs(),
                    cni.name()
                ));
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }
}

/// Whether the Calico API server's APIService is Available.
fn apiservice_available(ctx: &str) -> bool {
    let get = kubectl(
        ctx,
        "ask for Calico's API service",
        &[
            "get",
            "apiservice",
            "v3.projectcalico.org",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Available\")].status}",
        ],
    );
    run(&get, None).is_ok_and(|s| s.trim() == "True")
}

fn pod_ready(p: &api::Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A test's world deployed on a kind cluster: its namespaces and netshoot
/// pods, its policies applied, and where each pod really is.
pub struct KindWorld {
    kube: Kube,
    ctx: String,
    cni: Cni,
    /// Pod id (`ns/name`) -> the address the CNI gave it.
    pub ips: BTreeMap<String, IpAddr>,
    namespaces: Vec<String>,
}

impl KindWorld {
    /// Deploys `cluster`'s pods serving `ports` on cluster `name` and applies
    /// the policy files; returns once every pod is Ready.
    pub fn deploy(
        name: &str,
        cni: Cni,
        cluster: &Cluster,
        policy_files: &[PathBuf],
        has_calico_policies: bool,
        ports: &[(Protocol, u16)],
        progress: &dyn Fn(&str),
    ) -> Result<KindWorld, String> {
        preflight()?;
        if cni == Cni::Kindnet && has_calico_policies {
            return Err("kindnet enforces only networking.k8s.io/v1 NetworkPolicies; this test has Calico policies \
                        (use kind-configs/calico.yaml or netward.yaml)"
                .into());
        }
        let namespaces: Vec<String> =
            cluster.namespaces.keys().filter(|n| !plan::is_system_namespace(n)).cloned().collect();
        let mut world = KindWorld {
            kube: Kube::connect(name)?,
            ctx: format!("kind-{name}"),
            cni,
            ips: BTreeMap::new(),
            namespaces,
        };
        // Whatever fails half-way is cleaned up, so the next test starts clean.
        match world.set_up(cluster, policy_files, ports, progress) {
            Ok(()) => Ok(world),
            Err(e) => {
                world.clean_up(policy_files);
                Err(e)
            }
        }
    }

    fn set_up(
        &mut self,
        cluster: &Cluster,
        policy_files: &[PathBuf],
        ports: &[(Protocol, u16)],
        progress: &dyn Fn(&str),
    ) -> Result<(), String> {
        let manifests = plan::world(cluster, ports);
        progress("creating the test's namespaces and pods");
        run(&kubectl(&self.ctx, "create the test's pods", &["apply", "-f", "-"]), Some(&manifests))?;
        let want = cluster.pods.iter().filter(|p| !p.host_network).count();
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let (ready, total) = self.kube.ready(None, "netward.io/testkit=true");
            progress(&bar("pods Ready", ready, want));
            if ready >= want && total >= want {
                break;
            }
            if Instant::now() > deadline {
                let why = run(
                    &kubectl(
                        &self.ctx,
                        "describe the test pods",
                        &["get", "pods", "-A", "-l", "netward.io/testkit=true", "--no-headers"],
                    ),
                    None,
                )
                .unwrap_or_default();
                return Err(format!("only {ready} of {want} test pods were Ready after 300 s:\n{why}"));
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        self.ips = self.kube.pod_ips()?;
        progress("applying the policies");
        match self.cni {
            Cni::Calico | Cni::Kindnet => {
                let objects = plan::policy_objects(policy_files)?;
                run(&kubectl(&self.ctx, "apply the policies", &["apply", "-f", "-"]), Some(&objects))?;
            }
            Cni::Netward => {
                let head = commit_policies(policy_files)?;
                // Enforced once every node's reconciler says it enforces this commit.
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    let revs = self.kube.node_revisions();
                    let done = revs.iter().filter(|r| r.as_deref() == Some(head.as_str())).count();
                    progress(&bar("nodes enforcing the test's commit", done, revs.len()));
                    if !revs.is_empty() && done == revs.len() {
                        break;
                    }
                    if Instant::now() > deadline {
                        return Err(format!("{done} of {} nodes enforce commit {head} after 120 s", revs.len()));
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        Ok(())
    }

    /// Probes until `from -> to` is denied (the policies are enforced), or
    /// gives up at `limit`.
    pub fn wait_enforced(&self, from: &str, to: IpAddr, port: (Protocol, u16), limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            let o = self.probe(from, to, port.0, port.1, Duration::from_secs(1));
            if o.result == Probe::Denied {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "policies not enforced after {} s: {from} -> {to} {}/{} still {:?} ({})",
                    limit.as_secs(),
                    port.1,
                    protocol_name(port.0),
                    o.result,
                    self.cni.name()
                ));
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// One probe from pod `from` through the exec API.
    pub fn probe(&self, from: &str, to: IpAddr, proto: Protocol, port: u16, timeout: Duration) -> ProbeOutcome {
        let start = Instant::now();
        let Some((ns, name)) = from.split_once('/') else {
            return ProbeOutcome { result: Probe::Error, elapsed: Duration::ZERO, attempts: 0 };
        };
        let argv = plan::probe_argv(proto, to, port, timeout);
        let (client, ns, name) = (self.kube.client.clone(), ns.to_string(), name.to_string());
        // A stalled exec must not hang the run: the probe's own timeout plus slack.
        let limit = timeout + Duration::from_secs(15);
        let (exit, stdout, stderr) = Kube::block(&self.kube.runtime, async move {
            tokio::time::timeout(limit, exec(client, &ns, &name, argv)).await.unwrap_or((
                None,
                String::new(),
                "the exec did not finish".into(),
            ))
        });
        ProbeOutcome { result: plan::classify(proto, exit, &stdout, &stderr), elapsed: start.elapsed(), attempts: 1 }
    }

    /// Removes the test's namespaces (and so its pods) and policies.
    pub fn clean_up(&self, policy_files: &[PathBuf]) {
        if matches!(self.cni, Cni::Calico | Cni::Kindnet) {
            if let Ok(objects) = plan::policy_objects(policy_files) {
                let _ = run(
                    &kubectl(&self.ctx, "delete the policies", &["delete", "--ignore-not-found", "-f", "-"]),
                    Some(&objects),
                );
            }
        } else {
            let _ = commit_policies(&[]);
        }
        // Pods in system namespaces go one by one; the test's own namespaces whole.
        let _ = run(
            &kubectl(
                &self.ctx,
                "delete the test's pods",
                &["delete", "pods", "-A", "-l", "netward.io/testkit=true", "--wait=true", "--timeout=180s"],
            ),
            None,
        );
        // Waited for: the next test re-creates the same namespaces.
        let mut args = vec!["delete", "namespace", "--ignore-not-found", "--wait=true", "--timeout=180s"];
        args.extend(self.namespaces.iter().map(String::as_str));
        if self.namespaces.is_empty() {
            return;
        }
        let _ = run(&kubectl(&self.ctx, "delete the test's namespaces", &args), None);
    }
}

impl Kube {
    fn pod_ips(&self) -> Result<BTreeMap<String, IpAddr>, String> {
        let client = self.client.clone();
        Self::block(&self.runtime, async move {
            let pods: kube::Api<api::Pod> = kube::Api::all(client);
            let list = pods
                .list(&kube::api::ListParams::default().labels("netward.io/testkit=true"))
                .await
                .map_err(|e| format!("listing the test pods: {e}"))?;
            let mut ips = BTreeMap::new();
            for p in list.items {
                let id =
                    format!("{}/{}", p.metadata.namespace.unwrap_or_default(), p.metadata.name.unwrap_or_default());
                if let Some(ip) = p.status.and_then(|s| s.pod_ip).and_then(|ip| ip.parse().ok()) {
                    ips.insert(id, ip);
                }
            }
            Ok(ips)
        })
    }
}

fn kubectl(ctx: &str, why: &str, args: &[&str]) -> plan::Cmd {
    let mut all = vec!["--context".to_string(), ctx.to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    plan::Cmd { program: "kubectl".into(), args: all, why: why.into(), stdin: None }
}

fn protocol_name(p: Protocol) -> &'static str {
    if p == Protocol::Udp {
        "UDP"
    } else {
        "TCP"
    }
}

/// The netward cluster's policies: the repository every node follows gets
/// exactly these files, as one commit.
fn commit_policies(files: &[PathBuf]) -> Result<String, String> {
    let dir = init_netward_repo()?;
    for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?.flatten() {
        if entry.file_name() != ".git" {
            let p = entry.path();
            let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        }
    }
    for (i, f) in files.iter().enumerate() {
        let target = dir.join(format!("{i}"));
        let status = Command::new("cp").arg("-r").arg(f).arg(&target).status().map_err(|e| format!("cp: {e}"))?;
        if !status.success() {
            return Err(format!("copying {} into {}", f.display(), dir.display()));
        }
    }
    git(&dir, &["add", "-A"])?;
    git(&dir, &["commit", "-q", "--allow-empty", "-m", "netward testkit: the test's policies"])?;
    let out = Command::new("git")
        .arg("-C")
        .arg(&dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .map_err(|e| format!("git: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Runs `argv` in the pod's first container: (exit code, stdout, stderr);
/// no exit code when the exec itself failed.
async fn exec(client: kube::Client, ns: &str, name: &str, argv: Vec<String>) -> (Option<i32>, String, String) {
    use tokio::io::AsyncReadExt;
    let pods: kube::Api<api::Pod> = kube::Api::namespaced(client, ns);
    let params = kube::api::AttachParams::default().stdin(false).stdout(true).stderr(true);
    let mut process = match pods.exec(name, argv, &params).await {
        Ok(p) => p,
        Err(e) => return (None, String::new(), e.to_string()),
    };
    // Both at once: a full stderr must not stall a stdout read.
    let (stdout, stderr) = (process.stdout(), process.stderr());
    let read = |s: Option<tokio::io::ReadHalf<tokio::io::SimplexStream>>| async move {
        let mut text = String::new();
        if let Some(mut s) = s {
            let _ = s.read_to_string(&mut text).await;
        }
        text
    };
    let (out, err) = tokio::join!(read(stdout), read(stderr));
    let status = match process.take_status() {
        Some(s) => s.await,
        None => None,
    };
    let _ = process.join().await;
    (exit_code(status.as_ref()), out, err)
}

/// The exit code in an exec's final Status: Success is 0; a failure carries
/// it as the `ExitCode` cause.
fn exit_code(status: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>) -> Option<i32> {
    let s = status?;
    if s.status.as_deref() == Some("Success") {
        return Some(0);
    }
    s.details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|c| c.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
        .and_then(|c| c.message.as_deref())
        .and_then(|m| m.parse().ok())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    #[test]
    fn the_progress_bar_fills_with_what_is_ready() {
        assert_eq!(super::bar("nodes Ready", 0, 3), "[....................] nodes Ready 0/3");
        assert_eq!(super::bar("nodes Ready", 2, 3), "[#############.......] nodes Ready 2/3");
        assert_eq!(super::bar("pods", 5, 5), "[####################] pods 5/5");
        assert_eq!(super::bar("none yet", 0, 0), "[####################] none yet 0/0");
    }

    use netward::kubernetes::stand_in::StandIn;

    use super::*;

    /// The probe path end to end but for the pod: kube's exec client over
    /// WebSocket to the stand-in API server, whose pod answers as netshoot's
    /// nc and socat do; exit codes come back in the final Status.
    #[test]
    fn probes_run_through_the_exec_api_and_their_exit_codes_come_back() {
        let api = StandIn::start().expect("stand-in");
        // (pod, argv) of every exec the stand-in ran.
        type Seen = Arc<Mutex<Vec<(String, Vec<String>)>>>;
        let seen: Seen = Arc::default();
        let log = seen.clone();
        api.on_exec(move |pod, argv| {
            log.lock().expect("lock").push((pod.to_string(), argv.to_vec()));
            match (argv[0].as_str(), argv.last().map(String::as_str)) {
                ("nc", Some("80")) => {
                    (0, String::new(), "Connection to 10.0.0.9 80 port [tcp/http] succeeded!\n".into())
                }
                ("nc", Some("81")) => {
                    (1, String::new(), "nc: connect to 10.0.0.9 port 81 (tcp) failed: Connection refused\n".into())
                }
                ("nc", _) => (
                    1,
                    String::new(),
                    "nc: connect to 10.0.0.9 port 82 (tcp) timed out: Operation now in progress\n".into(),
                ),
                _ => (0, "ok\n".into(), String::new()),
            }
        });
        let kc = std::env::temp_dir().join(format!("netward-exec-{}.yaml", std::process::id()));
        api.write_kubeconfig(&kc).expect("kubeconfig");
        let kube = Kube::with_options("t", ApiOptions::new(Some(kc.clone()), None)).expect("client");
        let world =
            KindWorld { kube, ctx: "kind-t".into(), cni: Cni::Calico, ips: BTreeMap::new(), namespaces: Vec::new() };
        let ip: IpAddr = "10.0.0.9".parse().expect("ip");
        let t = Duration::from_secs(1);
        assert_eq!(world.probe("frontend/web", ip, Protocol::Tcp, 80, t).result, Probe::Allowed);
        assert_eq!(world.probe("frontend/web", ip, Protocol::Tcp, 81, t).result, Probe::Refused);
        assert_eq!(world.probe("frontend/web", ip, Protocol::Tcp, 82, t).result, Probe::Denied);
        assert_eq!(world.probe("backend/api", ip, Protocol::Udp, 53, t).result, Probe::Allowed);
        assert_eq!(world.probe("no-namespace", ip, Protocol::Tcp, 80, t).result, Probe::Error);
        let seen = seen.lock().expect("lock");
        assert_eq!(seen[0], ("frontend/web".to_string(), plan::probe_argv(Protocol::Tcp, ip, 80, t)));
        assert_eq!(seen[3].0, "backend/api");
        assert_eq!(seen.len(), 4, "a malformed pod id never reaches the API");
        let _ = std::fs::remove_file(kc);
    }
}

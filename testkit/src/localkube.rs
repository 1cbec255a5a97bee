//! localkube: a throwaway Kubernetes control plane on loopback, built from
//! source — etcd, kube-apiserver (ServiceAccount tokens, RBAC, admission),
//! kube-controller-manager and kube-scheduler, and kubectl to drive them.
//!
//! The versions are pinned in one place, `testkit/localkube/go.mod` (a tools
//! module: `k8s.io/kubernetes` with its staging modules, and etcd's server).
//! One `go build` makes every binary, so shared packages compile once; the
//! output is cached under `target/localkube/`, keyed by those versions, and
//! each binary is checked to report exactly its pinned version. `up` writes
//! everything into one directory (certificates, kubeconfigs, etcd's data,
//! logs, the pids it started) and waits for `/readyz`; `down` stops those
//! processes and removes the directory. A run that crashed or was killed is
//! cleaned up by the next `up`, as the lab does.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};

/// The tools module that pins the versions.
pub fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("localkube")
}

/// The pinned versions, read from the tools module's `go.mod`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versions {
    /// `k8s.io/kubernetes`, e.g. `v1.34.4`.
    pub kubernetes: String,
    /// `go.etcd.io/etcd/server/v3`, e.g. `v3.6.16`.
    pub etcd: String,
}

impl Versions {
    /// The versions `go.mod` requires.
    pub fn pinned() -> Result<Versions, String> {
        let path = tools_dir().join("go.mod");
        let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let find = |module: &str| {
            text.lines()
                .map(str::trim)
                .map(|l| l.strip_prefix("require ").unwrap_or(l))
                .find_map(|l| l.strip_prefix(module).and_then(|r| r.strip_prefix(' ')))
                .map(|v| v.split_whitespace().next().unwrap_or_default().to_string())
                .ok_or_else(|| format!("{}: no requirement on {module}", path.display()))
        };
        Ok(Versions { kubernetes: find("k8s.io/kubernetes")?, etcd: find("go.etcd.io/etcd/server/v3")? })
    }
}

/// The binaries localkube runs, by the name it gives them.
pub const BINARIES: [&str; 5] = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"];

/// Where the binaries of these versions are cached.
pub fn bin_dir(v: &Versions) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("."));
        workspace.join("target")
    });
    target.join("localkube").join(format!("k8s-{}-etcd-{}", v.kubernetes, v.etcd))
}

/// What each binary prints for `--version`, as localkube checks it.
fn version_ok(bin: &Path, name: &str, v: &Versions) -> Result<(), String> {
    let out = Command::new(bin)
        .arg(if name == "kubectl" { "version" } else { "--version" })
        .args(if name == "kubectl" { &["--client"][..] } else { &[][..] })
        .output()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let want = if name == "etcd" { v.etcd.trim_start_matches('v').to_string() } else { v.kubernetes.clone() };
    if text.contains(&want) {
        Ok(())
    } else {
        Err(format!("{} reports {:?}, not {want}", bin.display(), text.lines().next().unwrap_or("").trim()))
    }
}

/// Builds the binaries once (one `go build`), or finds them built; each is
/// checked for its exact version.
pub fn build(say: &dyn Fn(&str)) -> Result<PathBuf, String> {
    let v = Versions::pinned()?;
    let dir = bin_dir(&v);
    // One build at a time (two tests, or a test and a user's `up`): the
    // others wait on the lock and then find the binaries built.
    let parent = dir.parent().unwrap_or(&dir).to_path_buf();
    fs::create_dir_all(&parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let lock_path = parent.join(".build.lock");
    let lock = fs::File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    lock.lock().map_err(|e| format!("{}: {e}", lock_path.display()))?;
    if BINARIES.iter().all(|b| version_ok(&dir.join(b), b, &v).is_ok()) {
        return Ok(dir);
    }
    say(&format!(
        "building Kubernetes {} and etcd {} from source (once; cached in {})",
        v.kubernetes,
        v.etcd,
        dir.display()
    ));
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let minor = v.kubernetes.trim_start_matches('v').split('.').nth(1).unwrap_or("0").to_string();
    // The component-base version the binaries report; a build from the
    // module proxy has no git tree to read it from.
    let ldflags = [
        format!("-X k8s.io/component-base/version.gitVersion={}", v.kubernetes),
        "-X k8s.io/component-base/version.gitMajor=1".to_string(),
        format!("-X k8s.io/component-base/version.gitMinor={minor}"),
        "-X k8s.io/component-base/version.gitTreeState=clean".to_string(),
        format!("-X k8s.io/client-go/pkg/version.gitVersion={}", v.kubernetes),
        "-s -w".to_string(),
    ]
    .join(" ");
    let status = Command::new("go")
        .current_dir(tools_dir())
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .args(["build", "-trimpath", "-ldflags", &ldflags, "-o"])
        .arg(&dir)
        .args([
            "k8s.io/kubernetes/cmd/kube-apiserver",
            "k8s.io/kubernetes/cmd/kube-controller-manager",
            "k8s.io/kubernetes/cmd/kube-scheduler",
            "k8s.io/kubernetes/cmd/kubectl",
            "go.etcd.io/etcd/server/v3",
        ])
        .status()
        .map_err(|e| format!("go build: {e} (localkube needs Go: https://go.dev/dl or Debian's golang)"))?;
    if !status.success() {
        return Err(format!("go build failed ({status}) in {}", tools_dir().display()));
    }
    // `go build` names etcd's main package after its module's last element.
    let server = dir.join("server");
    if server.exists() {
        fs::rename(&server, dir.join("etcd")).map_err(|e| format!("{}: {e}", server.display()))?;
    }
    for b in BINARIES {
        version_ok(&dir.join(b), b, &v)?;
    }
    Ok(dir)
}

/// A running control plane.
#[derive(Clone, Debug)]
pub struct Plane {
    /// The directory holding everything it wrote.
    pub dir: PathBuf,
    /// A cluster-admin kubeconfig (`DIR/kubeconfig`).
    pub kubeconfig: PathBuf,
    /// The API server's URL.
    pub server: String,
    /// Where the binaries are (kubectl among them).
    pub bin: PathBuf,
}

impl Plane {
    /// kubectl against this control plane, as the cluster admin.
    pub fn kubectl(&self) -> Command {
        let mut c = Command::new(self.bin.join("kubectl"));
        c.arg("--kubeconfig").arg(&self.kubeconfig);
        c
    }

    /// Runs kubectl with these arguments (and `stdin`); its stdout, or why it failed.
    pub fn kubectl_out(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        use std::io::Write;
        let mut child = self
            .kubectl()
            .args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("kubectl: {e}"))?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes()).map_err(|e| format!("kubectl stdin: {e}"))?;
        }
        let out = child.wait_with_output().map_err(|e| format!("kubectl: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!("kubectl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    /// Creates a snapshot's namespaces, nodes, service accounts and pods
    /// through the API, then writes each pod's addresses and phase into its
    /// status (there is no kubelet to do it).
    pub fn load(&self, cluster: &netward::model::Cluster) -> Result<(), String> {
        use std::fmt::Write as _;
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let mut o = String::new();
        for ns in cluster.namespaces.values() {
            let labels: Vec<String> = ns.labels.iter().map(|(k, v)| format!("{}: {}", q(k), q(v))).collect();
            let _ = writeln!(
                o,
                "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {}, labels: {{{}}}}}",
                q(&ns.name),
                labels.join(", ")
            );
        }
        let mut nodes: Vec<&str> = cluster.pods.iter().filter_map(|p| p.node.as_deref()).collect();
        nodes.extend(cluster.nodes.keys().map(String::as_str));
        nodes.sort();
        nodes.dedup();
        for n in &nodes {
            let node = cluster.nodes.get(*n);
            let cidrs: Vec<String> =
                node.map(|x| x.pod_cidrs.iter().map(|c| q(&c.to_string())).collect()).unwrap_or_default();
            let spec = if cidrs.is_empty() {
                String::new()
            } else {
                format!("\nspec: {{podCIDR: {}, podCIDRs: [{}]}}", cidrs[0], cidrs.join(", "))
            };
            let labels: Vec<String> =
                node.map(|x| x.labels.iter().map(|(k, v)| format!("{}: {}", q(k), q(v))).collect()).unwrap_or_default();
            // A Node's create keeps its status (the kubelet registers that way):
            // the addresses ClusterNetworkPolicy `nodes` peers stand for.
            let addrs: Vec<String> = node
                .map(|x| {
                    x.addresses
                        .iter()
                        .map(|a| format!("{{type: InternalIP, address: {}}}", q(&a.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            let status = if addrs.is_empty() {
                String::new()
            } else {
                format!("\nstatus: {{addresses: [{}]}}", addrs.join(", "))
            };
            let _ = writeln!(
                o,
                "---\napiVersion: v1\nkind: Node\nmetadata: {{name: {}, labels: {{{}}}}}{spec}{status}",
                q(n),
                labels.join(", ")
            );
        }
        let mut accounts: Vec<(&str, &str)> = cluster
            .pods
            .iter()
            .filter(|p| !p.service_account.is_empty() && p.service_account != "default")
            .map(|p| (p.namespace.as_str(), p.service_account.as_str()))
            .collect();
        accounts.sort();
        accounts.dedup();
        for (ns, sa) in accounts {
            let _ = writeln!(
                o,
                "---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {}, namespace: {}}}",
                q(sa),
                q(ns)
            );
        }
        self.kubectl_out(&["apply", "-f", "-"], Some(&o))?;
        // The ServiceAccount admission plugin refuses a pod whose account does
        // not exist yet: wait for each namespace's `default` (the controller makes it).
        for ns in cluster.namespaces.keys() {
            let deadline = Instant::now() + Duration::from_secs(60);
            while self.kubectl_out(&["get", "serviceaccount", "default", "-n", ns], None).is_err() {
                if Instant::now() > deadline {
                    return Err(format!("no default ServiceAccount in {ns} after 60 s"));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        o.clear();
        for p in &cluster.pods {
            let labels: Vec<String> = p.labels.iter().map(|(k, v)| format!("{}: {}", q(k), q(v))).collect();
            let ports: Vec<String> = p
                .ports
                .iter()
                .map(|cp| {
                    let name = cp.name.as_deref().map(|n| format!("name: {}, ", q(n))).unwrap_or_default();
                    format!("{{{name}containerPort: {}, protocol: {}}}", cp.port, cp.protocol)
                })
                .collect();
            let _ = writeln!(
                o,
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {}, namespace: {}, labels: {{{}}}}}\nspec:\n  nodeName: {}\n  hostNetwork: {}\n{}  containers: [{{name: main, image: registry.k8s.io/pause:3.10, ports: [{}]}}]",
                q(&p.name),
                q(&p.namespace),
                labels.join(", "),
                q(p.node.as_deref().unwrap_or("")),
                p.host_network,
                if p.service_account.is_empty() { String::new() } else { format!("  serviceAccountName: {}\n", q(&p.service_account)) },
                ports.join(", ")
            );
        }
        self.kubectl_out(&["apply", "-f", "-"], Some(&o))?;
        for p in &cluster.pods {
            self.set_pod_status(&p.namespace, &p.name, &p.ips, &p.phase)?;
        }
        Ok(())
    }

    /// Writes a pod's addresses and phase into its status, as a kubelet would.
    pub fn set_pod_status(&self, ns: &str, name: &str, ips: &[IpAddr], phase: &str) -> Result<(), String> {
        let list: Vec<serde_json::Value> = ips.iter().map(|ip| serde_json::json!({"ip": ip.to_string()})).collect();
        let mut status = serde_json::json!({"phase": phase, "podIPs": list});
        if let Some(first) = ips.first() {
            status["podIP"] = serde_json::json!(first.to_string());
        }
        let patch = serde_json::json!({ "status": status }).to_string();
        self.kubectl_out(&["patch", "pod", name, "-n", ns, "--subresource=status", "--type=merge", "-p", &patch], None)
            .map(|_| ())
    }

    /// The pid of one of the processes `up` started.
    pub fn pid(&self, name: &str) -> Option<u32> {
        pid_of(&self.dir, name)
    }

    /// Stops one process (SIGKILL, as a crash would) and starts it again as
    /// it was; for the API server, waits until it is ready again.
    pub fn restart(&self, name: &str) -> Result<(), String> {
        if let Some(pid) = self.pid(name) {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while alive(pid, name) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let text = fs::read_to_string(self.dir.join("args").join(name)).map_err(|e| format!("{name}: {e}"))?;
        let args: Vec<String> = text.lines().map(str::to_string).collect();
        let pids = fs::read_to_string(self.dir.join(PIDS)).unwrap_or_default();
        let kept: String =
            pids.lines().filter(|l| !l.starts_with(&format!("{name} "))).map(|l| format!("{l}\n")).collect();
        write(&self.dir.join(PIDS), &kept)?;
        let pid = start(&self.dir, &self.bin, name, &args)?;
        if name == "kube-apiserver" {
            wait_for(&self.dir, name, pid, Duration::from_secs(120), &|| self.ready())?;
        }
        Ok(())
    }

    /// Whether the API server answers `/readyz` with ok.
    pub fn ready(&self) -> bool {
        self.kubectl_out(&["get", "--raw", "/readyz"], None).is_ok_and(|o| o.starts_with("ok"))
    }
}

const PIDS: &str = "pids";
const MARK: &str = ".localkube";

/// `n` distinct free ports on loopback (each held until all are found).
fn free_ports<const N: usize>() -> Result<[u16; N], String> {
    let mut held = Vec::with_capacity(N);
    let mut out = [0; N];
    for slot in &mut out {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("no free port: {e}"))?;
        *slot = l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())?;
        held.push(l);
    }
    Ok(out)
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

struct Pki {
    ca: String,
    ca_key: KeyPair,
    ca_params: CertificateParams,
}

impl Pki {
    fn new() -> Result<Pki, String> {
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut p = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, "localkube-ca");
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let cert = p.self_signed(&key).map_err(|e| e.to_string())?;
        Ok(Pki { ca: cert.pem(), ca_key: key, ca_params: p })
    }

    /// A certificate and its key, signed by the CA: a client one names a
    /// user (CN) and groups (O); a server one its names and addresses.
    fn issue(&self, cn: &str, groups: &[&str], server_names: &[&str]) -> Result<(String, String), String> {
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut p = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        p.distinguished_name.push(DnType::CommonName, cn);
        for g in groups {
            p.distinguished_name.push(DnType::OrganizationName, *g);
        }
        for n in server_names {
            p.subject_alt_names.push(match n.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*n).try_into().map_err(|e| format!("{n}: {e}"))?),
            });
        }
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        p.extended_key_usages = if server_names.is_empty() {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        } else {
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth]
        };
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = p.signed_by(&key, &issuer).map_err(|e| e.to_string())?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A kubeconfig for one client certificate.
fn kubeconfig(server: &str, ca: &str, user: &str, cert: &str, key: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: localkube\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: localkube\n  context: {{cluster: localkube, user: {user}}}\ncurrent-context: localkube\n",
        b64(ca),
        b64(cert),
        b64(key)
    )
}

/// A kubeconfig that authenticates with a bearer token (a ServiceAccount's).
pub fn token_kubeconfig(plane: &Plane, token: &str) -> Result<String, String> {
    let ca = fs::read_to_string(plane.dir.join("pki/ca.crt")).map_err(|e| e.to_string())?;
    Ok(format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: localkube\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: token\n  user:\n    token: {token}\ncontexts:\n- name: localkube\n  context: {{cluster: localkube, user: token}}\ncurrent-context: localkube\n",
        plane.server,
        b64(&ca)
    ))
}

/// Starts one process in its own process group (it outlives `up`), its
/// output in `DIR/logs/NAME.log`, its pid recorded for `down`.
fn start(dir: &Path, bin: &Path, name: &str, args: &[String]) -> Result<u32, String> {
    let log = fs::File::create(dir.join("logs").join(format!("{name}.log"))).map_err(|e| e.to_string())?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let child = Command::new(bin.join(name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("{name}: {e}"))?;
    let pid = child.id();
    // The command line, so a test can restart the process as it was.
    fs::create_dir_all(dir.join("args")).map_err(|e| e.to_string())?;
    write(&dir.join("args").join(name), &args.join("\n"))?;
    let mut pids = fs::read_to_string(dir.join(PIDS)).unwrap_or_default();
    pids.push_str(&format!("{name} {pid}\n"));
    write(&dir.join(PIDS), &pids)?;
    Ok(pid)
}

/// Whether the process runs (exists and is not a zombie), whatever its
/// command line says yet: right after a spawn it may still be the parent's.
fn running(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
}

/// Whether `pid` is still the process localkube started as `name` (a pid
/// can be reused once it is gone).
fn alive(pid: u32, name: &str) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).split('\0').next().is_some_and(|a| a.ends_with(name)))
}

fn last_log_lines(dir: &Path, name: &str) -> String {
    let text = fs::read_to_string(dir.join("logs").join(format!("{name}.log"))).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n  ")
}

/// Waits until `ready` holds, or says which process died or what it last logged.
fn wait_for(dir: &Path, name: &str, pid: u32, limit: Duration, ready: &dyn Fn() -> bool) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ready() {
            return Ok(());
        }
        if !running(pid) {
            return Err(format!("{name} exited; its log ends:\n  {}", last_log_lines(dir, name)));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!("{name} not ready after {limit:?}; its log ends:\n  {}", last_log_lines(dir, name)))
}

fn http_ok(port: u16, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_secs(1))
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).is_err() {
        return false;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200")
}

/// Starts a control plane in `dir` (removing what a previous run left) and
/// waits until the API server is ready.
pub fn up(dir: &Path, say: &dyn Fn(&str)) -> Result<Plane, String> {
    down(dir)?;
    let bin = build(say)?;
    for sub in ["pki", "logs", "etcd"] {
        fs::create_dir_all(dir.join(sub)).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    write(&dir.join(MARK), "created by netward-testkit localkube up; removed by localkube down\n")?;
    let dir = dir.canonicalize().map_err(|e| e.to_string())?;
    let [etcd_port, peer_port, api_port, cm_port, sched_port] = free_ports::<5>()?;
    let server = format!("https://127.0.0.1:{api_port}");

    say("writing certificates");
    let pki = Pki::new()?;
    let p = |f: &str| dir.join("pki").join(f).to_string_lossy().to_string();
    write(&dir.join("pki/ca.crt"), &pki.ca)?;
    let names = ["127.0.0.1", "localhost", "10.96.0.1", "kubernetes", "kubernetes.default", "kubernetes.default.svc"];
    let (crt, key) = pki.issue("kube-apiserver", &[], &names)?;
    write(&dir.join("pki/apiserver.crt"), &crt)?;
    write(&dir.join("pki/apiserver.key"), &key)?;
    let sa = KeyPair::generate().map_err(|e| e.to_string())?;
    write(&dir.join("pki/sa.key"), &sa.serialize_pem())?;
    write(&dir.join("pki/sa.pub"), &sa.public_key_pem())?;
    for (file, cn, groups) in [
        ("kubeconfig", "localkube-admin", &["system:masters"][..]),
        ("controller-manager.kubeconfig", "system:kube-controller-manager", &[][..]),
        ("scheduler.kubeconfig", "system:kube-scheduler", &[][..]),
    ] {
        let (c, k) = pki.issue(cn, groups, &[])?;
        write(&dir.join(file), &kubeconfig(&server, &pki.ca, cn, &c, &k))?;
    }

    say("starting etcd");
    let etcd_url = format!("http://127.0.0.1:{etcd_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let etcd = start(
        &dir,
        &bin,
        "etcd",
        &[
            "--name=localkube".into(),
            format!("--data-dir={}", dir.join("etcd").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=localkube={peer_url}"),
            // A throwaway store: no fsync (etcd's own option for tests).
            "--unsafe-no-fsync".into(),
        ],
    )?;
    wait_for(&dir, "etcd", etcd, Duration::from_secs(30), &|| http_ok(etcd_port, "/health"))?;

    say("starting kube-apiserver");
    let api = start(
        &dir,
        &bin,
        "kube-apiserver",
        &[
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={api_port}"),
            format!("--cert-dir={}", p("")),
            format!("--tls-cert-file={}", p("apiserver.crt")),
            format!("--tls-private-key-file={}", p("apiserver.key")),
            format!("--client-ca-file={}", p("ca.crt")),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", p("sa.pub")),
            format!("--service-account-signing-key-file={}", p("sa.key")),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            "--authorization-mode=Node,RBAC".into(),
            "--enable-admission-plugins=NodeRestriction".into(),
            "--allow-privileged=true".into(),
        ],
    )?;
    let admin = dir.join("kubeconfig");
    let plane = Plane { dir: dir.clone(), kubeconfig: admin, server, bin: bin.clone() };
    wait_for(&dir, "kube-apiserver", api, Duration::from_secs(120), &|| plane.ready())?;

    say("starting kube-controller-manager and kube-scheduler");
    let cm_config = dir.join("controller-manager.kubeconfig").to_string_lossy().to_string();
    start(
        &dir,
        &bin,
        "kube-controller-manager",
        &[
            format!("--kubeconfig={cm_config}"),
            format!("--authentication-kubeconfig={cm_config}"),
            format!("--authorization-kubeconfig={cm_config}"),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={cm_port}"),
            format!("--cert-dir={}", p("")),
            format!("--service-account-private-key-file={}", p("sa.key")),
            format!("--root-ca-file={}", p("ca.crt")),
            "--use-service-account-credentials=true".into(),
            "--leader-elect=false".into(),
        ],
    )?;
    let sched_config = dir.join("scheduler.kubeconfig").to_string_lossy().to_string();
    start(
        &dir,
        &bin,
        "kube-scheduler",
        &[
            format!("--kubeconfig={sched_config}"),
            format!("--authentication-kubeconfig={sched_config}"),
            format!("--authorization-kubeconfig={sched_config}"),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={sched_port}"),
            format!("--cert-dir={}", p("")),
            "--leader-elect=false".into(),
        ],
    )?;
    // Ready means the controllers work too: the default ServiceAccount of
    // `default` is made by the service-account controller.
    let sa_made = || {
        plane
            .kubectl()
            .args(["get", "serviceaccount", "default", "-n", "default"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let cm_pid = pid_of(&dir, "kube-controller-manager").unwrap_or(0);
    wait_for(&dir, "kube-controller-manager", cm_pid, Duration::from_secs(60), &sa_made)?;
    say("ready");
    Ok(plane)
}

fn pid_of(dir: &Path, name: &str) -> Option<u32> {
    let pids = fs::read_to_string(dir.join(PIDS)).ok()?;
    pids.lines().filter_map(|l| l.split_once(' ')).find(|(n, _)| *n == name).and_then(|(_, p)| p.parse().ok())
}

/// Stops every process `up` started in `dir` (TERM, then KILL after 10 s)
/// and removes what it wrote. A directory `up` did not make is left alone.
pub fn down(dir: &Path) -> Result<(), String> {
    if !dir.join(MARK).exists() {
        if dir.exists() && fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false) {
            return Err(format!("{} exists and was not made by localkube up; not touching it", dir.display()));
        }
        return Ok(());
    }
    let pids: Vec<(String, u32)> = fs::read_to_string(dir.join(PIDS))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' ').and_then(|(n, p)| Some((n.to_string(), p.parse().ok()?))))
        .collect();
    // The reverse of the start order: the API server before etcd.
    for (name, pid) in pids.iter().rev() {
        if alive(*pid, name) {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|(n, p)| alive(*p, n)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for (name, pid) in &pids {
        if alive(*pid, name) {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
    fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

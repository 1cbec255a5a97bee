//! A stand-in for the Kubernetes API server's list/watch protocol, on
//! loopback, for tests and benchmarks where no cluster exists. It keeps
//! objects with resourceVersions as the API server does and answers:
//! `GET /api/v1/{pods,namespaces}` lists (paged with `limit`/`continue`),
//! `?watch=true&resourceVersion=R` streams (chunked JSON lines: ADDED,
//! MODIFIED, DELETED, BOOKMARK, and ERROR 410 Expired when R was compacted
//! away), `GET /version`, `PATCH /api/v1/nodes/NAME` (recorded), and the
//! pods' `exec` subresource over WebSocket, run by a handler the test gives. Faults are injected by
//! hand: `drop_watches` cuts every open watch mid-stream (network loss,
//! API server restart), `compact` makes every older resourceVersion too old.
//! What it cannot stand in for (authn/authz, admission, real etcd timings)
//! is exercised only by the kind workflow.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

struct Recorded {
    rv: u64,
    resource: String,
    kind: &'static str,
    object: Value,
}

type ExecHandler = Arc<dyn Fn(&str, &[String]) -> (i32, String, String) + Send + Sync>;

#[derive(Default)]
struct State {
    rv: u64,
    /// (resource, "ns/name") -> object.
    objects: BTreeMap<(String, String), Value>,
    events: Vec<Recorded>,
    /// Watches from below this resourceVersion get 410 Gone.
    compacted: u64,
    /// Bumped by `drop_watches`: open watches see it and cut the connection.
    epoch: u64,
    /// Down: every connection is closed unanswered, as by a dead API server.
    down: bool,
    /// Serves Calico's network set CRDs (crd.projectcalico.org/v1).
    calico_crds: bool,
    requests: Vec<String>,
    patches: Vec<(String, Value)>,
    /// Runs `exec` requests (tests give it what a pod would do).
    exec: Option<ExecHandler>,
    /// Paged lists in progress: id -> (resourceVersion, every object).
    snapshots: BTreeMap<u64, (u64, Arc<Vec<Value>>)>,
    next_snapshot: u64,
}

/// The stand-in server; it serves until the process ends.
#[derive(Clone)]
pub struct StandIn {
    /// Where it listens (loopback, a free port).
    pub addr: std::net::SocketAddr,
    state: Arc<(Mutex<State>, Condvar)>,
}

fn key(obj: &Value) -> String {
    let m = &obj["metadata"];
    format!("{}/{}", m["namespace"].as_str().unwrap_or(""), m["name"].as_str().unwrap_or(""))
}

impl StandIn {
    /// Listens on a free loopback port.
    pub fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let s =
            StandIn { addr: listener.local_addr()?, state: Arc::new((Mutex::new(State::default()), Condvar::new())) };
        let server = s.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let server = server.clone();
                std::thread::spawn(move || server.handle(conn));
            }
        });
        Ok(s)
    }

    /// A kubeconfig that points kube's client at this server (plain HTTP).
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        self.write_kubeconfig_as(path, "stand-in")
    }

    /// The same, its context named `context` (`kind-NAME`, as kind names them).
    pub fn write_kubeconfig_as(&self, path: &Path, context: &str) -> std::io::Result<()> {
        std::fs::write(
            path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: stand-in\n  cluster:\n    server: http://{}\n\
                 contexts:\n- name: {context}\n  context:\n    cluster: stand-in\n    user: stand-in\n\
                 current-context: {context}\nusers:\n- name: stand-in\n  user:\n    token: not-a-secret\n",
                self.addr
            ),
        )
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let (m, c) = &*self.state;
        let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
        let out = f(&mut g);
        c.notify_all();
        out
    }

    /// Creates or replaces an object of `resource` ("pods", "namespaces"),
    /// stamping a new resourceVersion, as a create/update would.
    pub fn apply(&self, resource: &str, mut object: Value) {
        self.with(|s| {
            s.rv += 1;
            object["metadata"]["resourceVersion"] = json!(s.rv.to_string());
            let k = (resource.to_string(), key(&object));
            let kind = if s.objects.contains_key(&k) { "MODIFIED" } else { "ADDED" };
            s.objects.insert(k, object.clone());
            s.events.push(Recorded { rv: s.rv, resource: resource.into(), kind, object });
        })
    }

    /// Stores an object without telling any watch (an event lost on the
    /// way): only a list shows it.
    pub fn apply_silently(&self, resource: &str, mut object: Value) {
        self.with(|s| {
            s.rv += 1;
            object["metadata"]["resourceVersion"] = json!(s.rv.to_string());
            s.objects.insert((resource.to_string(), key(&object)), object);
        })
    }

    /// Deletes `namespace/name` (namespace empty for cluster-scoped objects).
    pub fn delete(&self, resource: &str, namespace: &str, name: &str) {
        self.with(|s| {
            if let Some(mut object) = s.objects.remove(&(resource.to_string(), format!("{namespace}/{name}"))) {
                s.rv += 1;
                object["metadata"]["resourceVersion"] = json!(s.rv.to_string());
                s.events.push(Recorded { rv: s.rv, resource: resource.into(), kind: "DELETED", object });
            }
        })
    }

    /// Serves every namespace and pod of `cluster` (each stamped as created).
    pub fn load(&self, cluster: &netward_policy::model::Cluster) {
        for n in cluster.namespaces.values() {
            let labels: Vec<(&str, &str)> = n.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            self.apply("namespaces", namespace(&n.name, &labels));
        }
        for p in &cluster.pods {
            self.apply("pods", pod_from_model(p));
        }
    }

    /// Sends a BOOKMARK with the current resourceVersion to every watch of `resource`.
    pub fn bookmark(&self, resource: &str) {
        self.with(|s| {
            let object = json!({"kind": kind_of(resource), "apiVersion": api_version_of(resource),
                "metadata": {"resourceVersion": s.rv.to_string()}});
            s.events.push(Recorded { rv: s.rv, resource: resource.into(), kind: "BOOKMARK", object });
        })
    }

    /// Cuts every open watch connection without a final chunk.
    pub fn drop_watches(&self) {
        self.with(|s| s.epoch += 1)
    }

    /// Makes the server a Calico cluster's: it serves `networksets` and
    /// `globalnetworksets` under crd.projectcalico.org/v1 (before a client connects).
    pub fn serve_calico_crds(&self) {
        self.with(|s| s.calico_crds = true)
    }

    /// Takes the server down (every connection cut, new ones closed at once) or back up.
    pub fn set_down(&self, down: bool) {
        self.with(|s| {
            s.down = down;
            s.epoch += 1;
        })
    }

    /// Forgets history: a watch from any resourceVersion so far gets 410 Gone.
    pub fn compact(&self) {
        self.with(|s| {
            s.rv += 1;
            s.compacted = s.rv;
        })
    }

    /// The resourceVersion of the last change served.
    pub fn resource_version(&self) -> u64 {
        self.with(|s| s.rv)
    }

    /// Request lines so far ("GET /api/v1/pods?...").
    pub fn requests(&self) -> Vec<String> {
        self.with(|s| s.requests.clone())
    }

    /// PATCH requests so far: (path, JSON body).
    pub fn patches(&self) -> Vec<(String, Value)> {
        self.with(|s| s.patches.clone())
    }

    fn handle(&self, conn: TcpStream) {
        if self.with(|s| s.down) {
            return;
        }
        let mut reader = BufReader::new(match conn.try_clone() {
            Ok(c) => c,
            Err(_) => return,
        });
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let line = line.trim_end().to_string();
        let mut length = 0usize;
        let mut ws_key = None;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim_end().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if k.eq_ignore_ascii_case("sec-websocket-key") {
                    ws_key = Some(v.trim().to_string());
                }
            }
        }
        let mut body = vec![0; length];
        let _ = reader.read_exact(&mut body);
        self.with(|s| s.requests.push(line.clone()));
        let mut parts = line.split(' ');
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let decoded: Vec<(String, String)> =
            query.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (unescape(k), unescape(v))).collect();
        let q: BTreeMap<&str, &str> = decoded.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut conn = conn;
        match (method, path) {
            ("GET", "/apis/crd.projectcalico.org/v1") if self.with(|s| s.calico_crds) => {
                let resources: Vec<Value> =
                    [("networksets", "NetworkSet", true), ("globalnetworksets", "GlobalNetworkSet", false)]
                        .iter()
                        .map(|(n, k, namespaced)| {
                            json!({"name": n, "singularName": "", "namespaced": namespaced, "kind": k,
                        "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]})
                        })
                        .collect();
                let list = json!({"kind": "APIResourceList", "apiVersion": "v1",
                    "groupVersion": "crd.projectcalico.org/v1", "resources": resources});
                respond(&mut conn, "200 OK", &list);
            }
            ("GET", p)
                if resource_of(p).is_some_and(|r| {
                    r != "networksets" && r != "globalnetworksets" || self.with(|s| s.calico_crds)
                }) =>
            {
                let resource = resource_of(p).unwrap_or_default();
                if q.get("watch").is_some_and(|w| *w == "true" || *w == "1") {
                    self.watch(conn, &resource, &q);
                } else {
                    let out = self.list(&resource, &q);
                    respond(&mut conn, "200 OK", &out);
                }
            }
            ("GET", p) if p.ends_with("/exec") && ws_key.is_some() => {
                let command: Vec<String> = query
                    .split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .filter(|(k, _)| *k == "command")
                    .map(|(_, v)| unescape(v))
                    .collect();
                let pod = p.trim_start_matches("/api/v1/namespaces/").trim_end_matches("/exec").replace("/pods/", "/");
                self.exec(conn, ws_key.as_deref().unwrap_or(""), &pod, &command);
            }
            ("GET", "/version") => {
                let v = json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-netward-stand-in",
                    "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                    "buildDate": "2026-11-25T00:00:00Z", "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"});
                respond(&mut conn, "200 OK", &v);
            }
            ("PATCH", p) if p.starts_with("/api/v1/nodes/") => {
                let patch: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let name = p["/api/v1/nodes/".len()..].to_string();
                self.with(|s| s.patches.push((p.to_string(), patch.clone())));
                let node = json!({"kind": "Node", "apiVersion": "v1", "metadata": {"name": name,
                    "annotations": patch["metadata"]["annotations"].clone()}});
                respond(&mut conn, "200 OK", &node);
            }
            _ => {
                let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": format!("the server could not find the requested resource ({line})"),
                    "reason": "NotFound", "code": 404});
                respond(&mut conn, "404 Not Found", &status);
            }
        }
    }

    /// A list, paged as the API server pages: every page comes from the
    /// snapshot the first one was cut from (`continue` names it and the offset).
    fn list(&self, resource: &str, q: &BTreeMap<&str, &str>) -> Value {
        self.with(|s| {
            let limit = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(usize::MAX);
            let (token, start) = match q.get("continue").and_then(|c| c.split_once(':')) {
                Some((t, o)) => (t.parse().unwrap_or(0), o.parse().unwrap_or(0)),
                None => {
                    s.next_snapshot += 1;
                    let all: Vec<Value> =
                        s.objects.iter().filter(|((r, _), _)| r == resource).map(|(_, v)| v.clone()).collect();
                    let id = s.next_snapshot;
                    s.snapshots.insert(id, (s.rv, Arc::new(all)));
                    (id, 0usize)
                }
            };
            let (rv, all) = s.snapshots.get(&token).cloned().unwrap_or((s.rv, Arc::default()));
            let items: Vec<Value> = all.iter().skip(start).take(limit).cloned().collect();
            let mut meta = json!({"resourceVersion": rv.to_string()});
            if start + items.len() < all.len() {
                meta["continue"] = json!(format!("{token}:{}", start + items.len()));
            }
            json!({"kind": format!("{}List", kind_of(resource)), "apiVersion": api_version_of(resource),
                "metadata": meta, "items": items})
        })
    }

    /// The exec subresource over WebSocket (`v4.channel.k8s.io`): the pod's
    /// exec handler runs the command; its stdout and stderr go out on
    /// channels 1 and 2, the final Status (with the exit code as the
    /// `ExitCode` cause, as the kubelet reports it) on channel 3.
    fn exec(&self, mut conn: TcpStream, key: &str, pod: &str, command: &[String]) {
        use tungstenite::protocol::{Role, WebSocket};
        use tungstenite::Message;
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        let head = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n"
        );
        if conn.write_all(head.as_bytes()).is_err() {
            return;
        }
        let handler = self.with(|s| s.exec.clone());
        let (code, stdout, stderr) = match handler {
            Some(h) => h(pod, command),
            None => (126, String::new(), format!("no exec handler for {pod}")),
        };
        let mut ws = WebSocket::from_raw_socket(conn, Role::Server, None);
        let frame = |channel: u8, data: &[u8]| {
            let mut b = vec![channel];
            b.extend_from_slice(data);
            Message::Binary(b.into())
        };
        let status = if code == 0 {
            json!({"metadata": {}, "status": "Success"})
        } else {
            json!({"metadata": {}, "status": "Failure",
                "message": format!("command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
        };
        for m in [frame(1, stdout.as_bytes()), frame(2, stderr.as_bytes()), frame(3, status.to_string().as_bytes())] {
            if ws.send(m).is_err() {
                return;
            }
        }
        let _ = ws.close(None);
        let _ = ws.flush();
    }

    /// What `exec` in a pod does: (pod "ns/name", argv) -> (exit code, stdout, stderr).
    pub fn on_exec(&self, handler: impl Fn(&str, &[String]) -> (i32, String, String) + Send + Sync + 'static) {
        self.with(|s| s.exec = Some(Arc::new(handler)))
    }

    fn watch(&self, mut conn: TcpStream, resource: &str, q: &BTreeMap<&str, &str>) {
        let from: u64 = q.get("resourceVersion").and_then(|r| r.parse().ok()).unwrap_or(0);
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        if conn.write_all(head.as_bytes()).is_err() {
            return;
        }
        let (m, c) = &*self.state;
        let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
        if from < g.compacted {
            let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "message": format!("too old resource version: {from} ({})", g.compacted),
                "reason": "Expired", "code": 410}});
            drop(g);
            let _ = chunk(&mut conn, &gone).and_then(|_| conn.write_all(b"0\r\n\r\n"));
            return;
        }
        let epoch = g.epoch;
        // Index into the event log: everything after `from` goes out, then
        // whatever is recorded while the watch is open.
        let mut next = g.events.iter().position(|e| e.rv > from).unwrap_or(g.events.len());
        loop {
            if g.epoch != epoch {
                return; // Dropped: no final chunk, as when a connection dies.
            }
            let out: Vec<Value> = g.events[next.min(g.events.len())..]
                .iter()
                .filter(|e| e.resource == resource)
                .map(|e| json!({"type": e.kind, "object": e.object}))
                .collect();
            next = g.events.len();
            drop(g);
            for e in &out {
                if chunk(&mut conn, e).is_err() {
                    return;
                }
            }
            g = m.lock().unwrap_or_else(|p| p.into_inner());
            if next == g.events.len() && g.epoch == epoch {
                g = c.wait_timeout(g, Duration::from_millis(200)).map(|r| r.0).unwrap_or_else(|p| p.into_inner().0);
            }
        }
    }
}

/// The resource a list/watch path names, cluster-wide or in one namespace:
/// `/api/v1/pods`, `/apis/crd.projectcalico.org/v1/networksets`.
fn resource_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/api/v1/").or_else(|| path.strip_prefix("/apis/crd.projectcalico.org/v1/"))?;
    let r = rest.rsplit('/').next()?;
    ["pods", "namespaces", "nodes", "networksets", "globalnetworksets"].contains(&r).then(|| r.to_string())
}

fn kind_of(resource: &str) -> &'static str {
    match resource {
        "pods" => "Pod",
        "namespaces" => "Namespace",
        "nodes" => "Node",
        "networksets" => "NetworkSet",
        _ => "GlobalNetworkSet",
    }
}

fn api_version_of(resource: &str) -> &'static str {
    match resource {
        "pods" | "namespaces" | "nodes" => "v1",
        _ => "crd.projectcalico.org/v1",
    }
}

/// Percent-decoding of a query string part (`continue` tokens arrive escaped).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).and_then(|c| hex(*c)), b.get(i + 2).and_then(|c| hex(*c))) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn chunk(conn: &mut TcpStream, event: &Value) -> std::io::Result<()> {
    let line = format!("{event}\n");
    conn.write_all(format!("{:x}\r\n{line}\r\n", line.len()).as_bytes())?;
    conn.flush()
}

fn respond(conn: &mut TcpStream, status: &str, body: &Value) {
    let body = body.to_string();
    let _ = conn.write_all(
        format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
            .as_bytes(),
    );
}

/// A pod as the API server returns it (metadata, spec and status with the
/// fields a real one carries, most of which the engine ignores).
pub fn pod(
    namespace: &str,
    name: &str,
    labels: &[(&str, &str)],
    node: &str,
    ip: Option<&str>,
    ports: &[(&str, u16, &str)],
) -> Value {
    let labels: serde_json::Map<String, Value> = labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    let ports: Vec<Value> =
        ports.iter().map(|(n, p, proto)| json!({"name": n, "containerPort": p, "protocol": proto})).collect();
    let mut status = json!({
        "phase": if ip.is_some() { "Running" } else { "Pending" },
        "conditions": [{"type": "Ready", "status": if ip.is_some() { "True" } else { "False" },
                        "lastTransitionTime": "2026-11-25T10:00:00Z"}],
        "hostIP": "172.18.0.2", "hostIPs": [{"ip": "172.18.0.2"}],
        "qosClass": "BestEffort", "startTime": "2026-11-25T10:00:00Z"
    });
    if let Some(ip) = ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {
            "name": name, "namespace": namespace, "uid": format!("0000-{namespace}-{name}"),
            "creationTimestamp": "2026-11-25T10:00:00Z", "labels": labels,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "1", "controller": true}],
            "managedFields": [{"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                               "time": "2026-11-25T10:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {}}}]
        },
        "spec": {
            "nodeName": node, "serviceAccountName": "default", "serviceAccount": "default",
            "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
            "terminationGracePeriodSeconds": 30,
            "containers": [{"name": "app", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
                            "ports": ports, "resources": {}, "imagePullPolicy": "IfNotPresent",
                            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}],
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
        },
        "status": status
    })
}

/// The API object of one of the engine's pods (the inverse of `store::pod_from_api`).
pub fn pod_from_model(p: &netward_policy::model::cluster::Pod) -> Value {
    use netward_policy::model::port::Protocol;
    let labels: Vec<(&str, &str)> = p.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let ports: Vec<(&str, u16, &str)> = p
        .ports
        .iter()
        .map(|cp| {
            let proto = match cp.protocol {
                Protocol::Udp => "UDP",
                Protocol::Sctp => "SCTP",
                _ => "TCP",
            };
            (cp.name.as_deref().unwrap_or(""), cp.port, proto)
        })
        .collect();
    let ip = p.ips.first().map(|i| i.to_string());
    let mut v = pod(&p.namespace, &p.name, &labels, p.node.as_deref().unwrap_or(""), ip.as_deref(), &ports);
    v["spec"]["serviceAccountName"] = json!(p.service_account);
    v["spec"]["hostNetwork"] = json!(p.host_network);
    v["status"]["phase"] = json!(p.phase);
    v["status"]["podIPs"] = json!(p.ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect::<Vec<_>>());
    v
}

/// A Calico network set as the CRD stores it (`namespace` None: a GlobalNetworkSet).
pub fn network_set(namespace: Option<&str>, name: &str, labels: &[(&str, &str)], nets: &[&str]) -> Value {
    let l: serde_json::Map<String, Value> = labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    let mut meta = json!({"name": name, "uid": format!("0000-set-{name}"), "creationTimestamp": "2026-11-25T10:00:00Z",
        "generation": 1, "labels": l});
    if let Some(ns) = namespace {
        meta["namespace"] = json!(ns);
    }
    json!({"apiVersion": "crd.projectcalico.org/v1", "kind": if namespace.is_some() { "NetworkSet" } else { "GlobalNetworkSet" },
        "metadata": meta, "spec": {"nets": nets}})
}

/// A namespace as the API server returns it.
pub fn namespace(name: &str, labels: &[(&str, &str)]) -> Value {
    let mut l: serde_json::Map<String, Value> = labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    l.insert("kubernetes.io/metadata.name".into(), json!(name));
    json!({
        "kind": "Namespace", "apiVersion": "v1",
        "metadata": {"name": name, "uid": format!("0000-{name}"), "creationTimestamp": "2026-11-25T10:00:00Z", "labels": l},
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}
    })
}

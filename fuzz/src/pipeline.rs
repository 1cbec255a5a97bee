//! The whole path a commit takes through netward, on a fixed small cluster:
//! load the policy texts; if nothing is an error, the validation warnings,
//! the analysis in both views (matrix and single flows), then the node
//! ruleset in both modes, its nft text and its netlink batch.
//!
//! Any panic is a bug. Besides "does not panic", it asserts what must hold
//! whatever the policies say:
//! - the matrix and the one-flow evaluator agree on every endpoint pair
//!   (as reconciler/tests/it/model_vs_matrix.rs requires), and the matrix'
//!   class-level counts equal its pair-by-pair answers;
//! - without staged policies the enforced and staged views are the same;
//! - a flow written with a pod's address decides like one written with its id;
//! - compile and render are deterministic; a ruleset diffed against itself
//!   (as data, and as the kernel would read it back) is no change; every set
//!   element survives the key round trip the diff relies on.

use std::sync::{Arc, OnceLock};

use netward_nftables::{self as enforce, diff, live, nft, Mode, NodeSpec, Ruleset};
use netward_policy::analysis::{Analysis, Matrix, View};
use netward_policy::diag::{Diagnostic, Severity};
use netward_policy::manifest::load::{load_cluster_text, load_policy_texts};
use netward_policy::model::port::FlowPort;
use netward_policy::model::{Cluster, PolicySet, Protocol};
use netward_policy::validate;

/// The cluster snapshot every input is evaluated on.
pub const CLUSTER_YAML: &str = include_str!("cluster.yaml");

/// The fixed cluster, loaded once.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let mut diags = Vec::new();
        let mut c = load_cluster_text(&Arc::from("cluster.yaml"), CLUSTER_YAML, &mut diags);
        assert!(diags.is_empty(), "the fixed cluster does not load: {diags:#?}");
        c.fill_missing_namespaces();
        assert_eq!(c.endpoints().len(), 11, "the fixed cluster should have 11 endpoints");
        c
    })
}

/// Ports for which every pair is compared between the matrix and the evaluator.
const PAIR_PORTS: [FlowPort; 4] = [
    FlowPort { port: 8080, protocol: Protocol::Tcp },
    FlowPort { port: 53, protocol: Protocol::Udp },
    FlowPort { port: 5432, protocol: Protocol::Tcp },
    FlowPort { port: 3868, protocol: Protocol::Sctp },
];

/// Further ports the matrix is computed for (counts only).
const MORE_PORTS: [FlowPort; 4] = [
    FlowPort { port: 80, protocol: Protocol::Tcp },
    FlowPort { port: 80, protocol: Protocol::Udp },
    FlowPort { port: 53, protocol: Protocol::Tcp },
    FlowPort { port: 9100, protocol: Protocol::Tcp },
];

/// Addresses outside the cluster, or of pods given by address.
const OUTSIDE: [&str; 7] =
    ["8.8.8.8", "10.244.2.99", "203.0.113.9", "192.168.10.1", "2001:db8::1", "fd00:244:2::21", "fd00:244:1::99"];

/// Pods flows to and from `OUTSIDE` start or end at.
const PODS: [&str; 4] = ["frontend/web-a", "backend/api-v6", "sandbox/debug", "kube-system/exporter-b"];

/// How far an input got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Loading reported errors; nothing else ran.
    Rejected,
    /// The whole pipeline ran, on this many policies.
    Ran { policies: usize },
}

/// Loads policy texts (file name, contents).
pub fn load(files: &[(&str, &str)]) -> (PolicySet, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let set = load_policy_texts(files.iter().map(|(n, t)| (Arc::<str>::from(*n), *t)), &mut diags);
    for d in &diags {
        assert!(!d.message.is_empty(), "a diagnostic without a message at {}", d.pos);
    }
    (set, diags)
}

/// Runs the whole pipeline on policy texts (file name, contents).
pub fn run(files: &[(&str, &str)]) -> Outcome {
    let (set, diags) = load(files);
    run_loaded(&set, &diags)
}

/// Runs the pipeline after loading: nothing if loading reported errors.
pub fn run_loaded(set: &PolicySet, diags: &[Diagnostic]) -> Outcome {
    if diags.iter().any(|d| d.severity == Severity::Error) {
        return Outcome::Rejected;
    }
    let c = cluster();

    for d in validate::warnings(set, Some(c)).iter().chain(&validate::warnings(set, None)) {
        assert!(!d.message.is_empty(), "a warning without a message at {}", d.pos);
    }
    for d in validate::undecidable(set) {
        assert!(!d.message.is_empty(), "an undecidable-match warning without a message at {}", d.pos);
    }

    let enforced = Analysis::new(set, c, View::Enforced);
    let staged = Analysis::new(set, c, View::Staged);
    let a = check_analysis(&enforced, "enforced");
    let b = check_analysis(&staged, "staged");
    if !set.has_staged() {
        assert!(a == b, "without staged policies the enforced and staged views differ");
    }

    check_enforce(&enforced);

    // With http matches failing closed the node enforces a smaller set; the
    // analysis of that set is what its ruleset must mean.
    for l7 in [enforce::L7::Allow, enforce::L7::Deny] {
        for w in validate::not_enforced(set, l7) {
            assert!(!w.is_empty(), "an empty not-enforced warning");
        }
    }
    if set.policies.iter().any(|p| p.ingress.iter().chain(&p.egress).any(|r| r.http)) {
        let strict = enforce::with_l7(set, enforce::L7::Deny);
        let an = Analysis::new(&strict, c, View::Enforced);
        check_analysis(&an, "enforced, http denied");
        compile_checked(&an, &spec("node-a", Mode::Enforce), false);
    }
    Outcome::Ran { policies: set.policies.len() }
}

/// Matrix against evaluator on every pair for `PAIR_PORTS`, plus flows to
/// and from outside addresses. Returns the matrix' answers for comparison.
fn check_analysis(an: &Analysis, view: &str) -> Vec<bool> {
    let ports: Vec<FlowPort> = PAIR_PORTS.iter().chain(&MORE_PORTS).copied().collect();
    let m = Matrix::compute(an, &ports);
    let n = an.endpoints.len();
    assert_eq!(m.endpoints.len(), n);
    let mut answers = Vec::with_capacity(ports.len() * n * n);
    for (pi, fp) in ports.iter().enumerate() {
        let mut allowed = 0u64;
        for a in 0..n {
            for b in 0..n {
                if a == b {
                    continue;
                }
                let ok = m.allowed(pi, a, b);
                allowed += u64::from(ok);
                answers.push(ok);
                if pi >= PAIR_PORTS.len() {
                    continue;
                }
                let (ea, eb) = (&an.endpoints[a], &an.endpoints[b]);
                match an.flow(&ea.id, &eb.id, fp.protocol, fp.port, None) {
                    Err(_) => {
                        assert!(!ok, "{view}: matrix allows {} -> {} {fp}, which share no address family", ea.id, eb.id)
                    }
                    Ok(flow) => {
                        let v = an.evaluate(&flow);
                        assert_eq!(
                            ok, v.allowed,
                            "{view}: matrix and evaluator disagree on {} -> {} {fp}: {v:#?}",
                            ea.id, eb.id
                        );
                    }
                }
            }
        }
        assert_eq!(m.counts(pi).allowed, allowed, "{view}: class-level counts differ from the pairs for {fp}");
    }

    for (pod, ip) in PODS.iter().flat_map(|p| OUTSIDE.iter().map(move |ip| (*p, *ip))) {
        for (from, to) in [(pod, ip), (ip, pod)] {
            for (proto, port, src_port) in
                [(Protocol::Tcp, 8080, None), (Protocol::Udp, 53, Some(5353)), (Protocol::Icmp, 0, None)]
            {
                if let Ok(flow) = an.flow(from, to, proto, port, src_port) {
                    let v = an.evaluate(&flow);
                    assert_eq!(v.allowed, v.egress.allowed && v.ingress.allowed);
                    let _ = v.caveats().count();
                }
            }
        }
    }

    // A pod written as its (only, or first) address is the same peer as the pod.
    for (from, to, to_ip) in [
        ("frontend/web-a", "backend/api-a", "10.244.1.20"),
        ("sandbox/debug", "frontend/web-b", "10.244.2.11"),
        ("frontend/web-a", "backend/api-v6", "fd00:244:2::21"),
    ] {
        let fp = PAIR_PORTS[0];
        if let (Ok(by_id), Ok(by_ip)) =
            (an.flow(from, to, fp.protocol, fp.port, None), an.flow(from, to_ip, fp.protocol, fp.port, None))
        {
            assert_eq!(an.evaluate(&by_id), an.evaluate(&by_ip), "{view}: {from} -> {to} by id and by address differ");
        }
    }
    answers
}

/// Compiles node rulesets and checks render, diff and the netlink encoding.
fn check_enforce(an: &Analysis) {
    let enforce_a = compile_checked(an, &spec("node-a", Mode::Enforce), true);
    let audit_a = compile_checked(an, &spec("node-a", Mode::Audit), false);
    let enforce_b = compile_checked(an, &spec("node-b", Mode::Enforce), false);
    for (i, (old, new)) in
        [(&enforce_a, &audit_a), (&audit_a, &enforce_a), (&enforce_a, &enforce_b)].into_iter().enumerate()
    {
        let changes = diff::diff_rulesets(old, new);
        let _ = changes.summary();
        let _ = diff::render(&changes, new);
        if i == 0 {
            let _ = netward_dataplane::netlink::change_batch(&changes, new);
        }
        let from_live = diff::diff(Some(&live::Live::of(old)), new);
        let _ = diff::render(&from_live, new);
    }
}

/// The spec for a node of the fixed cluster: every local pod address has a
/// host link except `frontend/web-a`'s IPv6 one (a pod whose route is not
/// known yet).
fn spec(node: &str, mode: Mode) -> NodeSpec {
    static LINKS: OnceLock<Vec<(String, std::net::IpAddr, String)>> = OnceLock::new();
    let links = LINKS.get_or_init(|| {
        let mut out = Vec::new();
        for e in cluster().endpoints() {
            for ip in &e.ips {
                if e.host_network || e.node.is_none() || (e.id == "frontend/web-a" && ip.is_ipv6()) {
                    continue;
                }
                let link = format!("cali{}", enforce::pod_key(&e.namespace, &e.name));
                out.push((e.node.clone().unwrap_or_default(), *ip, link));
            }
        }
        out
    });
    let mut s = NodeSpec::default();
    s.node = node.into();
    s.mode = mode;
    for (n, ip, link) in links {
        if n == node {
            s.links.insert(*ip, link.clone());
        }
    }
    s
}

/// Compiles, renders and encodes one node's ruleset; `twice`: also checks
/// that compiling and rendering again give the same.
fn compile_checked(an: &Analysis, spec: &NodeSpec, twice: bool) -> Ruleset {
    let rs = enforce::compile(an, spec);
    let text = nft::render(&rs);
    if twice {
        assert!(rs == enforce::compile(an, spec), "compile is not deterministic for {spec:?}");
        assert_eq!(text, nft::render(&rs), "render is not deterministic for {spec:?}");
    }
    assert!(text.contains("table inet"), "rendered ruleset has no table");
    assert!(diff::diff_rulesets(&rs, &rs).is_empty(), "a ruleset differs from itself as data");
    let same = diff::diff(Some(&live::Live::of(&rs)), &rs);
    assert!(same.is_empty(), "a ruleset read back as live differs from itself: {same:#?}");
    for (name, s) in &rs.sets {
        for e in &s.elements {
            let key = live::element_key(e);
            assert_eq!(
                live::parse_key(s.kind, &key).as_ref(),
                Some(e),
                "set {name}: element key {key:?} does not round-trip"
            );
        }
    }
    for (name, m) in &rs.maps {
        for e in m.elements.keys() {
            let key = live::element_key(e);
            assert_eq!(
                live::parse_key(m.key, &key).as_ref(),
                Some(e),
                "map {name}: element key {key:?} does not round-trip"
            );
        }
    }
    let batch = netward_dataplane::netlink::full_batch(&rs);
    assert!(!batch.is_empty());
    rs
}

/// Optional bookkeeping for looking at a corpus, off unless asked for:
/// `NETWARD_FUZZ_STATS=1` prints how many inputs were rejected by the loader
/// and how many ran the whole pipeline (every 1,000 inputs, to stderr);
/// `NETWARD_FUZZ_DUMP=<dir>` writes each input that ran as pipeline input
/// (files joined by NUL), e.g. to seed the `pipeline` target's corpus.
pub fn note(outcome: Outcome, files: &[(&str, &str)]) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static ON: OnceLock<(bool, Option<std::path::PathBuf>)> = OnceLock::new();
    static RAN: AtomicU64 = AtomicU64::new(0);
    static REJECTED: AtomicU64 = AtomicU64::new(0);
    let (stats, dump) = ON.get_or_init(|| {
        (std::env::var_os("NETWARD_FUZZ_STATS").is_some(), std::env::var_os("NETWARD_FUZZ_DUMP").map(Into::into))
    });
    if !*stats && dump.is_none() {
        return;
    }
    let (ran, rejected) = match outcome {
        Outcome::Ran { .. } => (RAN.fetch_add(1, Ordering::Relaxed) + 1, REJECTED.load(Ordering::Relaxed)),
        Outcome::Rejected => (RAN.load(Ordering::Relaxed), REJECTED.fetch_add(1, Ordering::Relaxed) + 1),
    };
    if *stats && (ran + rejected) % 1000 == 0 {
        eprintln!("netward-fuzz stats: {ran} ran the pipeline, {rejected} rejected by the loader");
    }
    if let (Some(dir), Outcome::Ran { .. }) = (dump, outcome) {
        let joined: Vec<&str> = files.iter().map(|(_, t)| *t).collect();
        let joined = joined.join("\0");
        let name = format!("{:016x}", netward_nftables::names::fnv64(joined.as_bytes()));
        let _ = std::fs::write(dir.join(name), joined);
    }
}

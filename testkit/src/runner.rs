//! Running test files against a backend, and reporting: text with truth
//! tables and explanations for failures, and JUnit XML.

use std::fmt::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use netward::analysis::{Analysis, View};
use netward::diag::Pos;
use netward::enforce::Mode;
use netward::manifest::{load_cluster, load_policies};
use netward::model::port::FlowPort;
use netward::model::PolicyKind;
use netward::report;

use crate::cluster_lab::{dual_stack, ClusterLab, Cni};
use crate::lab::Probe;
use crate::spec::TestFile;
use crate::verify::probe_all;

/// Where expectations are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The policy engine alone.
    Model,
    /// Network namespaces enforced by netward's own nftables enforcer.
    Lab,
    /// A kind cluster (`netward-testkit kind up`), enforced by its CNI.
    Kind,
}

/// Which kind cluster `Backend::Kind` runs on.
#[derive(Clone, Debug)]
pub struct KindTarget {
    pub name: String,
}

/// One expectation checked.
#[derive(Clone, Debug)]
pub struct Check {
    pub from: String,
    pub to: String,
    pub port: FlowPort,
    pub expect_allow: bool,
    /// What the backend said: "allowed", "denied (timeout, 1.0 s)", ...
    pub got: String,
    pub passed: bool,
    /// The engine's explanation, for failed checks.
    pub explain: Option<String>,
    /// Where the expectation was written.
    pub pos: Pos,
    /// Which table it came from, if any.
    pub table: Option<usize>,
    /// Decided on the model because the backend cannot probe it, and why.
    pub model_only: Option<&'static str>,
}

/// A test file's result.
#[derive(Debug)]
pub struct FileResult {
    pub name: String,
    pub path: String,
    pub checks: Vec<Check>,
    /// The file could not be run at all (bad input, no lab).
    pub error: Option<String>,
    pub duration: Duration,
}

impl FileResult {
    pub fn failures(&self) -> usize {
        self.checks.iter().filter(|c| !c.passed).count()
    }
}

/// Runs one test file (a lab backend is wired by the ptp plugin).
pub fn run_file(
    t: &TestFile,
    backend: Backend,
    probe_bin: &Path,
    kind: Option<&KindTarget>,
    progress: &(dyn Fn(&str) + Sync),
) -> FileResult {
    run_file_with(t, backend, probe_bin, kind, Cni::Ptp, progress)
}

/// Runs one test file; `cni` is the plugin that wires a lab backend's pods.
pub fn run_file_with(
    t: &TestFile,
    backend: Backend,
    probe_bin: &Path,
    kind: Option<&KindTarget>,
    cni: Cni,
    progress: &(dyn Fn(&str) + Sync),
) -> FileResult {
    let start = Instant::now();
    let mut result = FileResult {
        name: t.name.clone(),
        path: t.path.display().to_string(),
        checks: Vec::new(),
        error: None,
        duration: Duration::ZERO,
    };
    let fail = |mut r: FileResult, e: String| {
        r.error = Some(e);
        r.duration = start.elapsed();
        r
    };
    let set = match load_policies(&t.policies).into_result() {
        Ok((s, _)) => s,
        Err(d) => return fail(result, d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("\n")),
    };
    let mut cluster = match load_cluster(&t.clusters).into_result() {
        Ok((c, _)) => c,
        Err(d) => return fail(result, d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("\n")),
    };
    cluster.merge(t.inline.clone());
    cluster.fill_missing_namespaces();
    if backend == Backend::Lab {
        // The lab's pods are dual-stack: the enforcer polices both families.
        // Checks probe the address the model decides on (`resolve`: the first, IPv4).
        cluster = dual_stack(&cluster);
    }
    let an = Analysis::new(&set, &cluster, View::Enforced);
    // Expand cases and tables into (from, to, port, expect, pos, table).
    let mut wanted = Vec::new();
    for c in &t.cases {
        wanted.push((c.from.clone(), c.to.clone(), c.port, c.allow, c.pos.clone(), None));
    }
    for (ti, tb) in t.tables.iter().enumerate() {
        for a in an.endpoints.iter().filter(|e| !e.host_network) {
            for b in an.endpoints.iter().filter(|e| !e.host_network && e.id != a.id) {
                let allow = tb.allowed.get(&a.id).is_some_and(|v| v.contains(&b.id));
                wanted.push((a.id.clone(), b.id.clone(), tb.port, allow, tb.pos.clone(), Some(ti)));
            }
        }
        for (from, tos) in &tb.allowed {
            for to in tos.iter().chain(std::iter::once(from)) {
                if an.endpoint(to).is_none() {
                    return fail(result, format!("{}: table names {to:?}, which is not a pod of the cluster", tb.pos));
                }
            }
        }
    }
    // The model's verdicts (and explanations) for every check.
    let mut model = Vec::new();
    for (from, to, port, ..) in &wanted {
        match an.flow(from, to, port.protocol, port.port, None) {
            Ok(flow) => {
                let v = an.evaluate(&flow);
                model.push((v.allowed, report::explain_text(&an, &flow, &v)));
            }
            Err(e) => return fail(result, format!("{}: {e}", t.path.display())),
        }
    }
    let mut model_only: Vec<Option<&'static str>> = vec![None; wanted.len()];
    let got: Vec<(bool, String)> = match backend {
        Backend::Model => {
            model.iter().map(|(a, _)| (*a, if *a { "allowed".to_string() } else { "denied".to_string() })).collect()
        }
        Backend::Lab => {
            let mut ports: Vec<(u16, netward::model::Protocol)> =
                wanted.iter().map(|w| (w.2.port, w.2.protocol)).collect();
            ports.sort();
            ports.dedup();
            let name = format!("t{}", std::process::id() % 100_000);
            let lab = ClusterLab::up_with(&name, &cluster, &ports, probe_bin, false, cni, &|s| {
                progress(&format!("lab: {s}"))
            });
            let mut lab = match lab {
                Ok(l) => l,
                Err(e) => return fail(result, e.to_string()),
            };
            if let Err(e) = lab.enforce(&an, Mode::Enforce) {
                return fail(result, e.to_string());
            }
            let mut jobs = Vec::new();
            let mut unprobed = Vec::new();
            for (i, (from, to, port, ..)) in wanted.iter().enumerate() {
                let ip = match an.resolve(to) {
                    Ok(p) => p.ip,
                    Err(e) => return fail(result, e),
                };
                if let Some(why) = lab_cannot_probe(&an, from, to, *port) {
                    unprobed.push((i, why));
                    continue;
                }
                // The job's `model` slot carries the index back.
                jobs.push((from.clone(), format!("{i}"), ip, *port, false));
            }
            let checked =
                probe_all(&lab, jobs, 16, Duration::from_millis(700), &|d, n| progress(&format!("probes {d}/{n}")));
            let mut got = words(checked, wanted.len());
            for (i, why) in unprobed {
                let verdict = if model[i].0 { "allowed" } else { "denied" };
                got[i] = (model[i].0, format!("{verdict} (model only: {why})"));
                model_only[i] = Some(why);
            }
            got
        }
        Backend::Kind => {
            let Some(target) = kind else {
                return fail(result, "--backend kind needs the cluster's name (--kind-name)".into());
            };
            let mut ports: Vec<(netward::model::Protocol, u16)> =
                wanted.iter().map(|w| (w.2.protocol, w.2.port)).collect();
            ports.sort();
            ports.dedup();
            let calico = set.policies.iter().any(|p| !matches!(p.id.kind, PolicyKind::KubernetesNetworkPolicy));
            let cni = match crate::kind::recorded_cni(&target.name) {
                Ok(c) => c,
                Err(e) => return fail(result, e),
            };
            let world =
                match crate::kind::KindWorld::deploy(&target.name, cni, &cluster, &t.policies, calico, &ports, &|s| {
                    progress(&format!("kind: {s}"))
                }) {
                    Ok(w) => w,
                    Err(e) => return fail(result, e),
                };
            // Policies take effect some time after they are applied: wait
            // until a pair the model denies is denied.
            if let Some(i) = model.iter().position(|(allowed, _)| !allowed) {
                let (from, to, port, ..) = &wanted[i];
                if let Some(ip) = world.ips.get(to) {
                    progress("kind: waiting until the policies are enforced");
                    if let Err(e) = world.wait_enforced(from, *ip, (port.protocol, port.port), Duration::from_secs(120))
                    {
                        world.clean_up(&t.policies);
                        return fail(result, e);
                    }
                }
            }
            let mut jobs = Vec::new();
            for (i, (from, to, port, ..)) in wanted.iter().enumerate() {
                let Some(ip) = world.ips.get(to) else {
                    world.clean_up(&t.policies);
                    return fail(result, format!("{to} has no address on the kind cluster"));
                };
                jobs.push((from.clone(), format!("{i}"), *ip, *port, false));
            }
            let checked =
                probe_all(&world, jobs, 16, Duration::from_secs(2), &|d, n| progress(&format!("probes {d}/{n}")));
            world.clean_up(&t.policies);
            words(checked, wanted.len())
        }
    };
    for (i, (from, to, port, expect, pos, table)) in wanted.into_iter().enumerate() {
        let passed = got[i].0 == expect && !got[i].1.starts_with("error");
        result.checks.push(Check {
            from,
            to,
            port,
            expect_allow: expect,
            got: got[i].1.clone(),
            passed,
            explain: (!passed).then(|| model[i].1.clone()),
            pos,
            table,
            model_only: model_only[i],
        });
    }
    result.duration = start.elapsed();
    result
}

/// Why the lab cannot probe a check, if it cannot: this kernel has no SCTP
/// sockets for `netward-probe`, and the lab builds no hostNetwork pods. Such
/// checks are decided on the model and reported as such, never as probed.
fn lab_cannot_probe(an: &Analysis, from: &str, to: &str, port: FlowPort) -> Option<&'static str> {
    if port.protocol == netward::model::Protocol::Sctp {
        return Some("no SCTP sockets in the lab");
    }
    let host = |id: &str| an.resolve(id).ok().and_then(|p| p.endpoint).is_some_and(|e| e.host_network);
    (host(from) || host(to)).then_some("the lab builds no hostNetwork pods")
}

/// Each probe's verdict (reached the pod?) and the words for it, in job order
/// (a job's `to` slot carries its index).
fn words(checked: Vec<crate::verify::Checked>, n: usize) -> Vec<(bool, String)> {
    let mut out = vec![(false, "error (not probed)".to_string()); n];
    for c in checked {
        let Ok(i) = c.to.parse::<usize>() else { continue };
        let o = c.outcome;
        let word = match o.result {
            Probe::Allowed => "allowed".to_string(),
            Probe::Refused => "allowed (refused: reached the pod, nothing listening)".to_string(),
            Probe::Denied => format!("denied (timeout after {:.1} s)", o.elapsed.as_secs_f64()),
            Probe::Error => "error (the probe could not run)".to_string(),
        };
        let word = if o.attempts > 1 { format!("{word}, {} attempts", o.attempts) } else { word };
        if let Some(slot) = out.get_mut(i) {
            *slot = (matches!(o.result, Probe::Allowed | Probe::Refused), word);
        }
    }
    out
}

/// The text report of one file.
pub fn text(r: &FileResult, backend: Backend) -> String {
    let mut out = String::new();
    let b = match backend {
        Backend::Model => "model",
        Backend::Lab => "lab",
        Backend::Kind => "kind",
    };
    if let Some(e) = &r.error {
        let _ = writeln!(out, "ERROR {} ({})\n{e}", r.name, r.path);
        return out;
    }
    let f = r.failures();
    // Checks the backend could not probe were decided on the model: say so.
    let modelled = r.checks.iter().filter(|c| c.model_only.is_some()).count();
    let b = if modelled > 0 { format!("{b}; {modelled} on the model only") } else { b.to_string() };
    if f == 0 {
        let _ = writeln!(out, "PASS  {} ({} checks, {b}, {:.2} s)", r.name, r.checks.len(), r.duration.as_secs_f64());
        return out;
    }
    let _ = writeln!(
        out,
        "FAIL  {}: {f} of {} checks failed ({b}, {:.2} s)",
        r.name,
        r.checks.len(),
        r.duration.as_secs_f64()
    );
    for c in r.checks.iter().filter(|c| !c.passed) {
        let _ = writeln!(
            out,
            "  {}: {} -> {} {}: expected {}, got {}",
            c.pos,
            c.from,
            c.to,
            c.port,
            if c.expect_allow { "allow" } else { "deny" },
            c.got
        );
    }
    // Truth tables of the failing tables, wrong cells marked with '!'.
    let tables: std::collections::BTreeSet<usize> =
        r.checks.iter().filter(|c| !c.passed).filter_map(|c| c.table).collect();
    for ti in tables {
        let cells: Vec<&Check> = r.checks.iter().filter(|c| c.table == Some(ti)).collect();
        let mut ids: Vec<&str> = cells.iter().flat_map(|c| [c.from.as_str(), c.to.as_str()]).collect();
        ids.sort();
        ids.dedup();
        let _ = writeln!(out, "\n  {} (got; '!' marks a cell that differs from the expectation)", cells[0].port);
        let _ = writeln!(out, "  -\t{}", ids.join("\t"));
        for a in &ids {
            let _ = write!(out, "  {a}");
            for b in &ids {
                let cell = match cells.iter().find(|c| c.from == *a && c.to == *b) {
                    None => "-".to_string(),
                    Some(c) => {
                        let got_allow = c.passed == c.expect_allow;
                        format!("{}{}", if got_allow { "." } else { "X" }, if c.passed { "" } else { "!" })
                    }
                };
                let _ = write!(out, "\t{cell}");
            }
            out.push('\n');
        }
    }
    for c in r.checks.iter().filter(|c| !c.passed) {
        if let Some(e) = &c.explain {
            let _ = writeln!(out, "\n  why the engine decides {} -> {} {}:", c.from, c.to, c.port);
            for line in e.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// JUnit XML for CI systems: a suite per file, a case per check.
pub fn junit(results: &[FileResult]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for r in results {
        let tests = r.checks.len().max(1);
        let failures = r.failures();
        let errors = usize::from(r.error.is_some());
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\">",
            xml(&r.name),
            r.duration.as_secs_f64()
        );
        if let Some(e) = &r.error {
            let _ = writeln!(
                out,
                "    <testcase name=\"load\" classname=\"{}\"><error message=\"{}\"/></testcase>",
                xml(&r.path),
                xml(e)
            );
        }
        for c in &r.checks {
            let name =
                format!("{} -> {} {} expect {}", c.from, c.to, c.port, if c.expect_allow { "allow" } else { "deny" });
            if let (true, Some(why)) = (c.passed, c.model_only) {
                let _ = writeln!(
                    out,
                    "    <testcase name=\"{}\" classname=\"{}\"><system-out>decided on the model only: {}</system-out></testcase>",
                    xml(&name),
                    xml(&r.path),
                    xml(why)
                );
            } else if c.passed {
                let _ = writeln!(out, "    <testcase name=\"{}\" classname=\"{}\"/>", xml(&name), xml(&r.path));
            } else {
                let _ = writeln!(
                    out,
                    "    <testcase name=\"{}\" classname=\"{}\"><failure message=\"{}: got {}\">{}</failure></testcase>",
                    xml(&name),
                    xml(&r.path),
                    xml(&c.pos.to_string()),
                    xml(&c.got),
                    xml(c.explain.as_deref().unwrap_or(""))
                );
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

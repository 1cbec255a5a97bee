//! Each command: validated settings in, output and an exit code out. The
//! logic lives in the library crates; this is the glue and the rendering of
//! what the user sees (diagnostics with their source lines, exit codes).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use netward::analysis::{Analysis, Matrix, View};
use netward::diag::{Diagnostic, Severity};
use netward::manifest::{load_cluster, load_policies};
use netward::model::port::FlowPort;
use netward::model::{Cluster, PolicySet};
use netward::reconcile::Wake;
use netward::report::{self, MatrixFormat};
use netward::selector::Selector;
use netward::{enforce, synth, text, validate};

use crate::cli::*;
use crate::failure::Failure;

/// Logs go to stderr; stdout stays for command output.
pub(crate) fn init_logs(format: LogFormat) {
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
pub(crate) fn exit_code(p: &netward::reconcile::Pass) -> ExitCode {
    ExitCode::from(p.result.exit_code())
}

/// Diagnostics on stderr, each with the line it points at and a caret
/// under the column, read from the file on disk (as rustc shows them).
pub(crate) fn print_diags(diags: &[Diagnostic]) {
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

pub(crate) fn run(cmd: Command) -> Result<ExitCode, Failure> {
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
        Command::Matrix { policies: pp, cluster: cp, port, format, staged, family } => {
            let set = policies(&pp)?;
            let c = cluster(&cp)?;
            let an = Analysis::new(&set, &c, if staged { View::Staged } else { View::Enforced });
            let ports = if port.is_empty() { an.mentioned_ports() } else { ports(&port)? };
            let m = Matrix::compute(&an, &ports).with_family_v6(family.as_deref() == Some("6"));
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
        Command::Explain { policies: pp, cluster: cp, from, to, port, src_port, staged, format, family } => {
            let set = policies(&pp)?;
            let c = cluster(&cp)?;
            let fp = FlowPort::parse(&port).map_err(Failure::Usage)?;
            let an = Analysis::new(&set, &c, if staged { View::Staged } else { View::Enforced });
            let v6 = family.map(|f| f == "6");
            let flow = an.flow_in(&from, &to, fp.protocol, fp.port, src_port, v6).map_err(Failure::Usage)?;
            let v = an.evaluate(&flow);
            let text = match format {
                ExplainFormat::Text => report::explain_text(&an, &flow, &v),
                ExplainFormat::Json => report::explain_json(&an, &flow, &v),
            };
            let _ = out(&text);
            // As `kubectl auth can-i`: a script can branch on the verdict.
            Ok(if v.allowed { ExitCode::SUCCESS } else { ExitCode::from(1) })
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
        Command::Convert { to: _, paths, cluster: cp, write } => convert(&paths, &cp, write),
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

/// `netward convert --to v1alpha2`: every file rewritten in memory, both
/// versions loaded, and the conversion refused unless netward's own diff
/// finds no connection opened or closed.
fn convert(paths: &[PathBuf], cp: &[PathBuf], write: bool) -> Result<ExitCode, Failure> {
    let mut diags = Vec::new();
    let files = netward::manifest::load::collect_files(paths, &mut diags);
    if !diags.is_empty() {
        return Err(Failure::Input(diags));
    }
    let mut before = Vec::new();
    let mut after = Vec::new();
    let mut changed = 0;
    for f in &files {
        let name: std::sync::Arc<str> = std::sync::Arc::from(f.display().to_string());
        let text = std::fs::read_to_string(f).map_err(|e| Failure::Io(format!("{}: {e}", f.display())))?;
        let c = netward::convert::to_v1alpha2(&name, &text).map_err(|d| Failure::Input(vec![d]))?;
        changed += c.changed;
        before.push((name.clone(), text));
        after.push((name, c.text));
    }
    let load = |files: &[(std::sync::Arc<str>, String)]| -> Result<PolicySet, Failure> {
        let mut d = Vec::new();
        let set =
            netward::manifest::load::load_policy_texts(files.iter().map(|(n, t)| (n.clone(), t.as_str())), &mut d);
        if d.iter().any(|x| x.severity == Severity::Error) {
            Err(Failure::Input(d))
        } else {
            Ok(set)
        }
    };
    let (bset, aset) = (load(&before)?, load(&after)?);
    let (cl, source) = if cp.is_empty() {
        let mut c = netward::change::representatives(&[&bset, &aset]);
        // A proof over no port proves nothing: representatives declare none,
        // so each serves 80/TCP besides the ports the rules name.
        for p in &mut c.pods {
            p.ports.push(netward::model::cluster::ContainerPort {
                name: None,
                port: 80,
                protocol: netward::model::Protocol::Tcp,
            });
        }
        let n = c.endpoints().len();
        (c, format!("{n} representative endpoints"))
    } else {
        let c = cluster(cp)?;
        let n = c.endpoints().len();
        (c, format!("{n} endpoints of the snapshot"))
    };
    let rev = |label: &str, set, files| netward::change::Revision { label: label.into(), set, files };
    let report = netward::change::diff(&rev("v1alpha1", &bset, &before), &rev("v1alpha2", &aset, &after), &cl, &source);
    let moved = report.opened.len() + report.closed.len();
    if moved > 0 {
        let mut text =
            format!("error: the conversion would change {moved} connection(s) over {source}; nothing written\n");
        for c in report.opened.iter().chain(&report.closed).take(10) {
            text.push_str(&format!("  {} -> {} {}: {} -> {}\n", c.from, c.to, c.port, c.before.by, c.after.by));
        }
        eprint!("{text}");
        return Err(Failure::Exit(1));
    }
    let proof = format!(
        "converted {changed} object(s) in {} file(s); netward diff: no connection opened or closed over {source} and {} port(s)",
        files.len(),
        report.ports.len()
    );
    if write {
        for ((name, new), (_, old)) in after.iter().zip(&before) {
            if new != old {
                std::fs::write(&**name, new).map_err(|e| Failure::Io(format!("{name}: {e}")))?;
            }
        }
        println!("{proof}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = String::new();
    for (name, new) in &after {
        if files.len() > 1 {
            text.push_str(&format!("# {name}\n"));
        }
        text.push_str(new);
    }
    eprintln!("{proof}");
    out(&text)
}

//! Benchmark: loading a cluster snapshot and answering `select`, from 10,000
//! to 150,000 pods (Kubernetes' supported maximum), as `kubectl get pods -A
//! -o yaml` writes it (one `kind: List`).
//!
//! Run: `cargo bench -p netward --bench load` (add `-- --quick` for one
//! round and no 150k). Each size runs in a child process of this bench (so
//! its peak memory, VmHWM, is its own): parse + decode, then the endpoints
//! and one selector over them, exactly what `netward select` does. Then the
//! ratios: linear loading keeps time per pod flat across sizes.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use netward::manifest::load::load_cluster_text;
use netward::selector::Selector;
use netward::synth::{generate, Shape};

/// The snapshot as one kubectl List: every generated document an item.
fn as_list(docs: &str) -> String {
    let mut out = String::from("apiVersion: v1\nkind: List\nitems:\n");
    for doc in docs.split("---\n").filter(|d| !d.trim().is_empty()) {
        for (i, line) in doc.lines().enumerate() {
            out.push_str(if i == 0 { "- " } else { "  " });
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The peak resident memory of this process, in MiB.
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// The child: load one snapshot and select, print `seconds matched mib`.
fn child(path: &Path) {
    let text = std::fs::read_to_string(path).expect("snapshot");
    let t0 = Instant::now();
    let mut diags = Vec::new();
    let mut c = load_cluster_text(&Arc::from(path.display().to_string()), &text, &mut diags);
    c.fill_missing_namespaces();
    assert!(diags.is_empty(), "{diags:?}");
    let sel = Selector::parse("tier == 'db' && version == 'v2'").expect("selector");
    let matched = c.endpoints().into_iter().filter(|e| !e.host_network && sel.matches(&e.labels)).count();
    let secs = t0.elapsed().as_secs_f64();
    drop(text);
    println!("{secs} {matched} {:.0} {}", peak_mib(), c.pods.len());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(Path::new(&args[i + 1]));
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let rounds = if quick { 1 } else { 3 };
    let sizes: &[usize] = if quick { &[10_000, 50_000] } else { &[10_000, 25_000, 50_000, 150_000] };
    let dir = std::env::temp_dir().join(format!("netward-bench-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let exe = std::env::current_exe().expect("bench exe");
    println!("pods      file     load+select (median of {rounds})   per 1k pods   peak memory   matched");
    let mut base: Option<f64> = None;
    for &n in sizes {
        let text = as_list(&generate(&Shape { pods: n, policies: 1, seed: 42 }).cluster);
        let path = dir.join(format!("cluster-{n}.yaml"));
        std::fs::write(&path, &text).expect("write");
        let mut times = Vec::new();
        let mut last = String::new();
        for _ in 0..rounds {
            let out = Command::new(&exe).arg("--child").arg(&path).output().expect("child");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            last = String::from_utf8_lossy(&out.stdout).trim().to_string();
            times.push(last.split(' ').next().and_then(|s| s.parse::<f64>().ok()).expect("seconds"));
        }
        times.sort_by(f64::total_cmp);
        let t = times[times.len() / 2];
        let fields: Vec<&str> = last.split(' ').collect();
        let per_k = t / (n as f64 / 1000.0);
        let ratio = base.map(|b| format!(" ({:.2}x the 10k rate)", per_k / b)).unwrap_or_default();
        base.get_or_insert(per_k);
        println!(
            "{n:>7}  {:>6.1} MB  {t:>8.2} s                    {:>6.1} ms{ratio}   {:>6} MiB   {}",
            text.len() as f64 / 1e6,
            per_k * 1000.0,
            fields[2],
            fields[1]
        );
        let _ = std::fs::remove_file(&path);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

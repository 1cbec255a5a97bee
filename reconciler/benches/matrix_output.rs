//! Benchmark: writing `netward matrix` output, every format, on synthetic
//! clusters of 2,000, 5,000 and 10,000 pods (a tenth as many policies, as in
//! `netward generate --pods 10000 --policies 1000`), seed 42, over seven ports.
//!
//! Run: `cargo bench -p netward --bench matrix_output` (add `-- --quick` to
//! leave out 10,000 pods). The matrix is computed once per size; then each
//! format is written, through a 64 KiB `BufWriter` as `netward matrix` does,
//! to a sink that only counts bytes (10,000 pods of CSV are tens of GB).
//! Reported per format: bytes, seconds, MB/s, the process's peak RSS while
//! writing (VmHWM, reset before each format where the kernel allows) and its
//! growth over the RSS before. Summary runs first: it writes a few lines, so
//! its figure is the baseline the others should match.

use std::io::{self, BufWriter, Write};
use std::sync::Arc;
use std::time::Instant;

use netward::analysis::{Analysis, Matrix, View};
use netward::manifest::load::{load_cluster_text, load_policy_texts};
use netward::model::port::FlowPort;
use netward::report::{write_matrix, MatrixFormat};
use netward::synth::{generate, Shape};

/// Counts what is written and keeps none of it.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A `VmHWM:` / `VmRSS:` line of /proc/self/status, in kB.
fn status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resets VmHWM to the current RSS (Linux: "5" to clear_refs). Returns whether it could.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn matrix_for(pods: usize, ports: &[FlowPort]) -> Matrix {
    let w = generate(&Shape { pods, policies: pods / 10, seed: 42 });
    let mut diags = Vec::new();
    let mut c = load_cluster_text(&Arc::from("cluster.yaml"), &w.cluster, &mut diags);
    c.fill_missing_namespaces();
    let p = load_policy_texts(std::iter::once((Arc::from("policies.yaml"), w.policies.as_str())), &mut diags);
    assert!(diags.is_empty(), "generated input must load cleanly: {diags:?}");
    let an = Analysis::new(&p, &c, View::Enforced);
    Matrix::compute(&an, ports)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let ports: Vec<FlowPort> = ["80/TCP", "443/TCP", "8080/TCP", "9090/TCP", "5432/TCP", "6379/TCP", "53/UDP"]
        .iter()
        .map(|p| FlowPort::parse(p).expect("port"))
        .collect();
    let sizes: &[usize] = if quick { &[2_000, 5_000] } else { &[2_000, 5_000, 10_000] };
    let formats = [
        ("summary", MatrixFormat::Summary),
        ("table", MatrixFormat::Table),
        ("json", MatrixFormat::Json),
        ("csv", MatrixFormat::Csv),
        ("md", MatrixFormat::Md),
    ];
    let resets = reset_peak();
    println!(
        "{:>6} {:>8} {:>16} {:>9} {:>9} {:>12} {:>10}",
        "pods", "format", "bytes", "seconds", "MB/s", "peak RSS MB", "growth MB"
    );
    for &pods in sizes {
        let t = Instant::now();
        let m = matrix_for(pods, &ports);
        let setup = t.elapsed();
        for (name, f) in formats {
            reset_peak();
            let before = status_kb("VmHWM:");
            let mut w = BufWriter::with_capacity(1 << 16, Counter(0));
            let t0 = Instant::now();
            write_matrix(&mut w, &m, f).and_then(|()| w.flush()).expect("counting never fails");
            let secs = t0.elapsed().as_secs_f64();
            let peak = status_kb("VmHWM:");
            let bytes = w.get_ref().0;
            println!(
                "{pods:>6} {name:>8} {bytes:>16} {secs:>9.2} {:>9.0} {:>12.1} {:>10.1}",
                mb(bytes) / secs,
                peak as f64 / 1024.0,
                peak.saturating_sub(before) as f64 / 1024.0
            );
        }
        println!("{pods:>6} (generate + load + analysis + matrix: {:.2} s)", setup.as_secs_f64());
    }
    if !resets {
        println!("(VmHWM could not be reset: each peak is the highest since the process started)");
    }
}

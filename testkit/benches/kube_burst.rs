//! Benchmark: a burst of pod events from the Kubernetes API, enforced. The
//! stand-in API server (loopback, list/watch protocol, real API JSON)
//! serves the 10,000-pod, 1,000-policy world; `reconcile`'s loop, watching
//! it through kube's client, programs a lab node over netlink. Each round
//! sends 1,000 pod events at once (500 pods start, 250 stop, 250 change
//! labels) and times the first event to the end of the pass that holds the
//! last one, counting netlink transactions. Then the memory of a whole
//! `netward reconcile --kube` process holding the 10,000-pod inventory.
//!
//! Run as root: `cargo bench -p netward-testkit --bench kube_burst`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netward::enforce::apply::{Dataplane, EnforceError};
use netward::enforce::diff::Changes;
use netward::enforce::live::Live;
use netward::enforce::netlink::Netlink;
use netward::enforce::Ruleset;
use netward::kubernetes::stand_in::{self, StandIn};
use netward::kubernetes::watch::{ApiInventory, ApiOptions};
use netward::reconcile::{Reconciler, RolloutMode, Source, Wake};
use netward::synth::{generate, Shape};
use netward_testkit::lab::{check_support, Lab};

/// Netlink, counting transactions.
struct Counted(Netlink, Arc<AtomicUsize>);

impl Dataplane for Counted {
    fn read(&self) -> Result<Option<Live>, EnforceError> {
        self.0.read()
    }
    fn apply(&self, c: &Changes, d: &Ruleset, l: Option<&Live>) -> Result<(), EnforceError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.apply(c, d, l)
    }
}

fn kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The memory of a process that only reconciles from the API inventory.
fn child(netns: &str, dir: &Path, kubeconfig: &Path) {
    let source = Source::new(dir.display().to_string(), "main", "policies", dir.join("cache"));
    let opts = ApiOptions::new(Some(kubeconfig.to_path_buf()), None);
    let me = std::process::id();
    let before = kib(me, "VmRSS:");
    let mut inv: Box<dyn netward::reconcile::Inventory + Send> = if std::env::var_os("FILES").is_some() {
        Box::new(netward::reconcile::SnapshotFiles::new(vec![dir.join("cluster.yaml")]))
    } else {
        Box::new(ApiInventory::connect(&opts, None).expect("connect"))
    };
    let pods = inv.current().expect("inventory").pods.len();
    let inventory = kib(me, "VmRSS:") - before;
    let dp = Netlink::in_netns(netns).expect("netlink");
    let mut r = Reconciler::with_inventory(source, inv, "node0".into(), RolloutMode::Enforce, dp);
    assert!(r.pass().result.in_force());
    println!(
        "inventory of {pods} pods: {:.1} MB; the whole reconciler after its first pass: RSS {:.1} MB (peak {:.1} MB)",
        inventory as f64 / 1024.0,
        kib(me, "VmRSS:") as f64 / 1024.0,
        kib(me, "VmHWM:") as f64 / 1024.0
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1], Path::new(&args[i + 2]), Path::new(&args[i + 3]));
        return;
    }
    if let Err(e) = check_support() {
        eprintln!("kube_burst benchmark needs root, ip and nft: {e}");
        std::process::exit(1);
    }
    let rounds = if std::env::args().any(|a| a == "--quick") { 3 } else { 10 };
    let rounds = std::env::var("ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(rounds);
    let g = generate(&Shape { pods: 10_000, policies: 1_000, seed: 7 });
    let dir = common::world_repo("kube", &g);
    let mut diags = Vec::new();
    let mut cluster = netward::manifest::load::load_cluster_text(&"cluster.yaml".into(), &g.cluster, &mut diags);
    cluster.fill_missing_namespaces();
    let api = StandIn::start().expect("stand-in");
    api.load(&cluster);
    let kc = dir.join("kubeconfig");
    api.write_kubeconfig(&kc).expect("kubeconfig");

    let probe = PathBuf::from(env!("CARGO_BIN_EXE_netward-probe"));
    let lab = Lab::up("bench-kube", &[], &[], &[], &probe).expect("lab");
    // A reconciler process of its own (this program again), holding the
    // 10,000-pod inventory, its compiled ruleset and the kube client.
    for files in [false, true] {
        let mut cmd = Command::new(std::env::current_exe().expect("self"));
        cmd.args(["--child", lab.node_netns()]).arg(&dir).arg(&kc);
        if files {
            cmd.env("FILES", "1");
        }
        let out = cmd.output().expect("child");
        print!("{}{}", if files { "[snapshot file] " } else { "[API] " }, String::from_utf8_lossy(&out.stdout));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let source = Source::new(dir.display().to_string(), "main", "policies", dir.join("cache"));
    let (tx, rx) = std::sync::mpsc::channel();
    let t = Instant::now();
    let inv = ApiInventory::connect(&ApiOptions::new(Some(kc.clone()), None), Some(Wake::Inventory.on(&tx)))
        .expect("connect");
    let batches = Arc::new(AtomicUsize::new(0));
    let dp = Counted(Netlink::in_netns(lab.node_netns()).expect("netlink"), batches.clone());
    let mut r = Reconciler::with_inventory(source, Box::new(inv), "node0".into(), RolloutMode::Enforce, dp);
    assert!(r.pass().result.in_force(), "first pass: {:?}", r.status.history.last());
    println!("initial list of 10,000 pods and first enforcement: {:.0} ms", t.elapsed().as_secs_f64() * 1000.0);

    let pods = cluster.pods.clone();
    let mut times = Vec::new();
    let mut counts = Vec::new();
    for round in 0..rounds {
        while rx.try_recv().is_ok() {}
        let target = r.inventory.generation() + 1000;
        let before = batches.load(Ordering::SeqCst);
        let api2 = api.clone();
        let pods = pods.clone();
        let start = Instant::now();
        let writer = std::thread::spawn(move || {
            // 500 new pods across the nodes, 250 existing ones stop, 250 relabeled.
            for i in 0..500 {
                let node = format!("node{}", i % 10);
                let ip = format!("10.{}.{}.{}", 200 + round, i / 250, i % 250 + 1);
                let name = format!("burst-{round}-{i}");
                api2.apply("pods", stand_in::pod("ns0", &name, &[("app", "app0")], &node, Some(&ip), &[]));
            }
            for p in pods.iter().skip(round * 500).take(250) {
                api2.delete("pods", &p.namespace, &p.name);
            }
            for p in pods.iter().skip(round * 500 + 250).take(250) {
                let mut v = stand_in::pod_from_model(p);
                v["metadata"]["labels"]["burst"] = serde_json::json!(round.to_string());
                api2.apply("pods", v);
            }
        });
        loop {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(_) => {}
                Err(_) => panic!("no wake within 10 s"),
            }
            while rx.try_recv().is_ok() {}
            let seen = r.inventory.generation();
            assert!(r.pass_for(Wake::Inventory).result.in_force());
            if seen >= target {
                break;
            }
        }
        times.push(start.elapsed());
        counts.push(batches.load(Ordering::SeqCst) - before);
        writer.join().expect("writer");
    }
    let mut sorted = times.clone();
    sorted.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "burst of 1,000 pod events on 10,000 pods / 1,000 policies, {} rounds: median {:.0} ms, max {:.0} ms; netlink transactions per burst {:?}",
        times.len(),
        ms(sorted[sorted.len() / 2]),
        ms(sorted[sorted.len() - 1]),
        counts
    );
    drop(r);

    let _ = std::fs::remove_dir_all(dir);
}

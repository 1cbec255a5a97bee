//! Benchmark: the reconciler's inventory of 10,000 to 150,000 pods (the
//! Kubernetes maximum), fed to the store as list+watch would (one realistic
//! API object at a time, each dropped after its event), then what one
//! reconcile pass holds besides: the `Cluster` copy and the `Analysis` over it.
//!
//! Run: `cargo bench -p netward-kube --bench inventory` (`-- --quick`: no
//! 150k). Each size runs in a child process, so its peak memory (VmHWM) is
//! its own.

use std::process::Command;
use std::time::Instant;

use k8s_openapi::api::core::v1 as api;
use kube::runtime::watcher::Event;
use netward_kube::store::Store;
use netward_policy::analysis::{Analysis, View};
use netward_policy::model::PolicySet;

/// Resident memory now and at peak (VmRSS, VmHWM), in MiB.
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A pod as the API server sends it: labels of a Deployment's pod, an owner,
/// a container with ports, resources, probes' worth of spec, and a status.
fn pod(i: usize) -> api::Pod {
    let ns = format!("ns{}", i % 3000);
    let app = format!("app{}", i % 20_000);
    let tier = ["web", "api", "db"][i % 3];
    serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": format!("{app}-7d4b9c8f5-{i:05x}"), "namespace": ns, "uid": format!("00000000-0000-0000-0000-{i:012}"),
            "resourceVersion": format!("{}", 100_000 + i),
            "labels": {"app": app, "tier": tier, "version": "v1", "pod-template-hash": "7d4b9c8f5"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-30T10:00:00Z"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-7d4b9c8f5"), "uid": "x", "controller": true}]
        },
        "spec": {
            "nodeName": format!("node{}", i % 1000), "serviceAccountName": "default",
            "containers": [{
                "name": "main", "image": "registry.example/app:1.2.3",
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}, {"name": "metrics", "containerPort": 9100}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                "env": [{"name": "MODE", "value": "production"}]
            }]
        },
        "status": {
            "phase": "Running",
            "podIP": format!("10.{}.{}.{}", 64 + i / 65536, (i / 256) % 256, i % 256),
            "podIPs": [{"ip": format!("10.{}.{}.{}", 64 + i / 65536, (i / 256) % 256, i % 256)}],
            "hostIP": format!("172.16.{}.{}", (i % 1000) / 256, (i % 1000) % 256)
        }
    }))
    .expect("a pod")
}

fn child(n: usize) {
    let (base, _) = memory();
    let t0 = Instant::now();
    let mut store = Store::default();
    store.pod_event(Event::Init);
    for i in 0..n {
        store.pod_event(Event::InitApply(pod(i)));
    }
    store.pod_event(Event::InitDone);
    let fed = t0.elapsed();
    let (store_rss, _) = memory();
    let t1 = Instant::now();
    let cluster = store.cluster();
    let an = Analysis::new(&PolicySet::default(), &cluster, View::Enforced);
    let built = t1.elapsed();
    let (_, peak) = memory();
    assert_eq!(store.pod_count(), n);
    assert_eq!(an.endpoints.len(), n);
    println!("{n} {:.2} {:.0} {:.2} {:.0}", fed.as_secs_f64(), store_rss - base, built.as_secs_f64(), peak);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(args[i + 1].parse().expect("size"));
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let sizes: &[usize] = if quick { &[10_000, 50_000] } else { &[10_000, 50_000, 150_000] };
    let exe = std::env::current_exe().expect("bench exe");
    println!("pods     events in   store (RSS)   per pod   Cluster+Analysis   peak of the pass");
    for &n in sizes {
        let out = Command::new(&exe).args(["--child", &n.to_string()]).output().expect("child");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        let f: Vec<&str> = text.split_whitespace().collect();
        let store_mib: f64 = f[2].parse().unwrap_or(0.0);
        println!(
            "{n:>7}  {:>7} s   {:>7} MiB   {:>5.0} B   {:>10} s       {:>6} MiB",
            f[1],
            f[2],
            store_mib * 1024.0 * 1024.0 / n as f64,
            f[3],
            f[4]
        );
    }
}

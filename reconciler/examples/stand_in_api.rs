//! Serves a cluster snapshot on the stand-in list/watch API server, so
//! `netward reconcile --kube` and `netward snapshot` can be tried without a
//! cluster: `cargo run --example stand_in_api -- policies/cluster.yaml kubeconfig.yaml`
//! then `netward snapshot --kubeconfig kubeconfig.yaml`. Runs until killed.

use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [snapshot, kubeconfig] = args.as_slice() else {
        eprintln!("usage: stand_in_api SNAPSHOT.yaml KUBECONFIG-TO-WRITE");
        std::process::exit(2);
    };
    let loaded = netward::manifest::load::load_cluster(&[PathBuf::from(snapshot)]);
    if let Some(d) = loaded.diagnostics.first() {
        eprintln!("{d}");
        std::process::exit(1);
    }
    let api = match netward::kubernetes::stand_in::StandIn::start() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("stand-in API server: {e}");
            std::process::exit(2);
        }
    };
    api.load(&loaded.value);
    if let Err(e) = api.write_kubeconfig(std::path::Path::new(kubeconfig)) {
        eprintln!("{kubeconfig}: {e}");
        std::process::exit(2);
    }
    eprintln!(
        "serving {} namespaces and {} pods on http://{}; kubeconfig in {kubeconfig}",
        loaded.value.namespaces.len(),
        loaded.value.pods.len(),
        api.addr
    );
    loop {
        std::thread::park();
    }
}

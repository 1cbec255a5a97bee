//! Loading arbitrary text as policies and as a cluster snapshot must never
//! panic: every problem is a diagnostic with a position.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use netward_policy::manifest::load::{load_cluster_text, load_policy_texts};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let name: Arc<str> = Arc::from("fuzz.yaml");
    let mut diags = Vec::new();
    let set = load_policy_texts(std::iter::once((name.clone(), text)), &mut diags);
    let cluster = load_cluster_text(&name, text, &mut diags);
    for d in &diags {
        assert!(!d.message.is_empty());
    }
    // Whatever loaded must also evaluate without panicking.
    let an = netward_policy::analysis::Analysis::new(&set, &cluster, netward_policy::analysis::View::Staged);
    let ports = [netward_policy::model::port::FlowPort { port: 80, protocol: netward_policy::model::Protocol::Tcp }];
    let _ = netward_policy::analysis::Matrix::compute(&an, &ports);
});

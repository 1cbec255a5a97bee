//! netward: the CLI, the node daemon (`reconcile`: the Git edge, the loop,
//! its HTTP endpoints) and one façade over the crates it is built from:
//!
//! - `netward-policy` (pure): `manifest`, `model`, `selector`, `analysis`,
//!   `validate`, `change`, `report`, `synth`, `diag`, `text`, `l7`;
//! - `netward-nftables` (pure) and `netward-dataplane` (the kernel), both
//!   under `enforce`;
//! - `netward-kube`, as `kubernetes`.
//!
//! Dependencies run one way: netward -> {kube, dataplane -> nftables} ->
//! policy, and dataplane -> netlink (the one crate with unsafe code).

pub use netward_kube as kubernetes;
pub use netward_policy::{
    analysis, change, convert, diag, guard, l7, manifest, model, report, selector, synth, text, validate,
};

pub mod enforce;
pub mod git;
pub mod http;
pub mod reconcile;

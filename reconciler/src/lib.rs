//! netward: one policy engine for Kubernetes NetworkPolicy and Calico v3
//! policies, used by the analysis CLI, the node enforcer, the GitOps
//! reconciler and the testkit.
//!
//! Data flows one way: `manifest` reads files into the `model` (policies,
//! tiers, network sets, endpoints); `analysis` answers "may A connect to B on
//! port P?" for one flow (`explain`) or for every pair (`matrix`); `validate`
//! looks for mistakes; `synth` makes synthetic clusters for benchmarks.

pub mod analysis;
pub mod change;
pub mod diag;
pub mod enforce;
pub mod git;
pub mod http;
pub mod kubernetes;
pub mod manifest;
pub mod model;
pub mod reconcile;
pub mod report;
pub mod selector;
pub mod synth;
pub mod text;
pub mod validate;

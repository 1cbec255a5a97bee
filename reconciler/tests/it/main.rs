//! netward's integration tests: one binary, a module per concern.

mod bad_input;
mod calico_exact;
mod cli;
mod cluster_network_policy;
mod deploy;
mod diff;
mod kube;
mod model_vs_matrix;
mod reconcile;
mod safety;
mod semantics;
mod support;

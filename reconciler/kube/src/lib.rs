#![warn(missing_docs)]
//! Kubernetes: the live inventory from the API server (`reconcile --kube`),
//! `netward snapshot`, and the rollout annotation on Node objects.
//!
//! `store` is the pure part (watch events in, the engine's `Cluster` out) and
//! is tested on recorded event sequences; `watch` is the I/O around it;
//! `snapshot` writes a cluster in the format `--cluster` reads;
//! `stand_in` is a list/watch API server for tests and benchmarks.

pub mod snapshot;
#[cfg(feature = "stand-in")]
pub mod stand_in;
pub mod store;
pub mod watch;

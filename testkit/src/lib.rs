//! netward's testkit: connectivity tests run against the policy model, a
//! network-namespace lab and (later) kind clusters.
//!
//! For now it holds the lab's building blocks: `lab` builds one node's worth
//! of Linux network namespaces wired like Calico wires pods, and
//! `netward-probe` (src/bin) serves and probes real TCP and UDP inside them.

pub mod cluster_lab;
pub mod kind;
pub mod lab;
pub mod localkube;
pub mod runner;
pub mod spec;
pub mod verify;

#![warn(missing_docs)]
//! netward-nftables: the exact nftables ruleset one node needs for its local
//! pods, as data (`ruleset`), compiled from the policy model (`compile`),
//! named (`names`), rendered as `nft -f` text (`nft`), read back from
//! `nft -j` (`live`) and compared (`diff`). `routes` reads which interface
//! each pod address is routed through.
//!
//! Pure: nothing here talks to the kernel (netward-dataplane does). The
//! layout follows Calico's and kube-network-policies' (the README says how):
//! one table `inet netward`; forward-hook base chains for egress then
//! ingress; O(1) dispatch through verdict maps keyed by the local pod's
//! address; anti-spoofing by interface and source address; one chain per
//! local pod and direction running the tiers with a Pass mark bit; one chain
//! per policy and direction; selectors as named sets.

pub mod compile;
pub mod diff;
pub mod live;
pub mod names;
pub mod nft;
pub mod routes;
pub mod ruleset;

pub use compile::{compile, with_l7, Mode, NodeSpec, UnknownPods, L7};
pub use names::pod_key;
pub use ruleset::Ruleset;

#[cfg(test)]
mod tests;

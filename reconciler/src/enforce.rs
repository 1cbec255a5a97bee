//! The node enforcer: the exact nftables ruleset one node needs for its
//! local pods, as data (`ruleset`), compiled from the policy model
//! (`compile`) and rendered as `nft -f` text (`nft`).
//!
//! Pure: nothing here talks to the kernel. The layout follows
//! ../shared/reference/anchors-nftables.md section 3: one table `inet
//! netward`; forward-hook base chains for egress then ingress; O(1) dispatch
//! through verdict maps keyed by the local pod's address (ingress) and by
//! interface + source address (egress, which doubles as anti-spoofing); one
//! chain per local pod and direction running the tiers with a Pass mark
//! bit; one chain per policy and direction; selectors as named sets.

pub mod apply;
pub mod closed;
pub mod compile;
pub mod diff;
pub mod live;
pub mod names;
pub mod netlink;
pub mod nft;
pub mod routes;
pub mod ruleset;

pub use apply::{Dataplane, EnforceError, Enforcer, NftCli, Report};
pub use compile::{compile, with_l7, Mode, NodeSpec, UnknownPods, L7};
pub use names::pod_key;
pub use ruleset::Ruleset;

#[cfg(test)]
mod tests;

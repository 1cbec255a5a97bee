#![warn(missing_docs)]
//! netward-dataplane: a node's ruleset programmed into the kernel. The
//! `Dataplane` trait is the edge; `Netlink` (one nf_tables transaction over
//! netlink, through netward-netlink) and `NftCli` (the `nft` command) are
//! its two implementations; `Enforcer` diffs what the kernel holds against
//! the wanted ruleset and applies the difference; `closed` picks the tracked
//! flows a new ruleset no longer allows, for conntrack to forget.

pub mod apply;
pub mod closed;
pub mod netlink;

pub use apply::{Dataplane, EnforceError, Enforcer, NftCli, Report};

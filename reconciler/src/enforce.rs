//! The node enforcer: the ruleset as data (`netward-nftables`, pure) and its
//! kernel edge (`netward-dataplane`), under one path.

pub use netward_dataplane::*;
pub use netward_nftables::*;

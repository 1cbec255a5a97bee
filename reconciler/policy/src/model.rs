//! netward's one policy model.
//!
//! Everything the engine reads ends up here: Calico policies as they are,
//! Kubernetes NetworkPolicies translated the way Calico translates them
//! (tier `default`, order 1000), tiers, network sets, and the cluster's
//! endpoints with the labels Calico gives them. Types only: `manifest::decode`
//! reads them from text.

pub mod cluster;
pub mod policy;
pub mod port;

pub use cluster::{Cluster, Endpoint, Namespace, Pod};
pub use policy::{
    Action, Direction, EntityRule, NetworkSet, Policy, PolicyId, PolicyKind, PolicySet, Rule, StagedAction, Tier,
};
pub use port::{PortMatch, Protocol};

//! Application-layer (`http`) matches on a node that has no L7 proxy: the
//! kernel sees only L3/L4, so each such rule is enforced one of two ways.

use crate::model::PolicySet;

/// What an `http` (application-layer) match becomes in the kernel, which
/// sees only L3/L4.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum L7 {
    /// Calico's meaning without an L7 proxy (Felix does the same): the rule
    /// matches by its L3/L4 part, and every pass warns that it does.
    #[default]
    Allow,
    /// Fail closed: the rule matches nothing.
    Deny,
}

/// The policy set as the node enforces it under `l7`: with [`L7::Deny`]
/// every rule with an `http` match is dropped, which is exactly "matches
/// nothing" (rules decide by first match, so a rule that never matches is
/// never first). Guards, the analysis and the ruleset then all agree.
pub fn with_l7(set: &PolicySet, l7: L7) -> PolicySet {
    let mut s = set.clone();
    if l7 == L7::Deny {
        for p in &mut s.policies {
            p.ingress.retain(|r| !r.http);
            p.egress.retain(|r| !r.http);
        }
    }
    s
}

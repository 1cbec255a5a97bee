//! netward's testkit: connectivity tests run against the policy model, a
//! network-namespace lab and kind clusters. The backends land with issues 4 and 8;
//! this crate exists now so that the workspace layout matches the plan.

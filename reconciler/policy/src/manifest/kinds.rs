//! Which objects of a policy repository netward reads, which it may skip,
//! and which it must refuse.
//!
//! Skipping an object that looks like policy would enforce less than the
//! repository says (a `GlobalNetworkpolicy` typo, a `v1beta1` apiVersion, a
//! kind netward does not implement): so anything in a policy API group, or
//! any kind named like policy, is either read or an error. Deployments,
//! ConfigMaps, IPPools and the like are not policy and are skipped.

use crate::model::policy::PolicyKind;

/// What the loader does with one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Class {
    /// A policy of this kind; `legacy_crd` for the `crd.projectcalico.org/v1`
    /// form (what `kubectl get ...crd.projectcalico.org` prints without
    /// Calico's API server), whose names may carry legacy tier prefixes.
    Policy {
        /// The policy's API kind.
        kind: PolicyKind,
        /// Written as `crd.projectcalico.org/v1`.
        legacy_crd: bool,
    },
    /// A Calico NetworkSet or GlobalNetworkSet.
    NetworkSet {
        /// A GlobalNetworkSet: cluster-wide, without a namespace.
        global: bool,
    },
    /// A Calico Tier.
    Tier,
    /// Not policy: skipped.
    Other,
    /// Looks like policy but netward cannot read it: an error saying why.
    Refused(String),
}

const K8S_GROUP: &str = "networking.k8s.io";
const CALICO_GROUP: &str = "projectcalico.org";
const CALICO_CRD_GROUP: &str = "crd.projectcalico.org";
const ADMIN_GROUP: &str = "policy.networking.k8s.io";

/// Calico kinds netward reads, as spelled in `projectcalico.org/v3`.
const CALICO_READ: [&str; 8] = [
    "NetworkPolicy",
    "GlobalNetworkPolicy",
    "StagedNetworkPolicy",
    "StagedGlobalNetworkPolicy",
    "StagedKubernetesNetworkPolicy",
    "NetworkSet",
    "GlobalNetworkSet",
    "Tier",
];

/// Calico kinds that configure the node or IPAM, not who may connect to whom.
const CALICO_NOT_POLICY: [&str; 17] = [
    "BGPConfiguration",
    "BGPFilter",
    "BGPPeer",
    "BlockAffinity",
    "CalicoNodeStatus",
    "ClusterInformation",
    "FelixConfiguration",
    "HostEndpoint",
    "IPAMBlock",
    "IPAMConfig",
    "IPAMConfiguration",
    "IPAMHandle",
    "IPPool",
    "IPReservation",
    "KubeControllersConfiguration",
    "LiveMigration",
    "Node",
];

/// `networking.k8s.io` kinds that are not NetworkPolicy.
const K8S_NOT_POLICY: [&str; 4] = ["Ingress", "IngressClass", "IPAddress", "ServiceCIDR"];

/// Kinds that carry policy which netward does not implement (yet): refused,
/// so a commit holding them is never enforced without them.
const NOT_IMPLEMENTED: [(&str, &str); 1] = [("Profile", CALICO_GROUP)];

/// network-policy-api kinds by the versions that serve them (v0.3.0 serves
/// ClusterNetworkPolicy as v1alpha2 and v1beta1, one schema; v0.1.x served
/// the v1alpha1 pair that v1alpha2 replaced).
const ADMIN_READ: [(&str, &[&str], PolicyKind); 3] = [
    ("ClusterNetworkPolicy", &["v1alpha2", "v1beta1"], PolicyKind::ClusterNetworkPolicy),
    ("AdminNetworkPolicy", &["v1alpha1"], PolicyKind::AdminNetworkPolicy),
    ("BaselineAdminNetworkPolicy", &["v1alpha1"], PolicyKind::BaselineAdminNetworkPolicy),
];

fn looks_like_policy(kind: &str) -> bool {
    ["NetworkPolicy", "NetworkSet", "Tier"].iter().any(|s| kind.ends_with(s))
}

/// Classifies an object by its `apiVersion` and `kind` (either may be missing).
pub fn classify(api_version: Option<&str>, kind: Option<&str>) -> Class {
    let (group, version) = match api_version {
        Some(av) => match av.rsplit_once('/') {
            Some((g, v)) => (Some(g), Some(v)),
            // The core group ("v1"): Pods, Namespaces, ConfigMaps.
            None => (None, Some(av)),
        },
        None => (None, None),
    };
    let policy_group = group.is_some_and(|g| [K8S_GROUP, CALICO_GROUP, CALICO_CRD_GROUP, ADMIN_GROUP].contains(&g));
    let Some(kind) = kind else {
        return if policy_group {
            Class::Refused(format!("an object of {} without a kind", api_version.unwrap_or_default()))
        } else {
            Class::Other
        };
    };
    let Some(av) = api_version else {
        return if looks_like_policy(kind) || known_kind(kind).is_some() {
            Class::Refused(format!("{kind} without an apiVersion{}", expected_version(kind)))
        } else {
            Class::Other
        };
    };
    if let Some((_, g)) = NOT_IMPLEMENTED.iter().find(|(k, _)| *k == kind) {
        if group.is_some_and(|x| x == *g || (*g == CALICO_GROUP && x == CALICO_CRD_GROUP)) {
            return Class::Refused(format!(
                "netward does not read {av} {kind}: its rules would not be enforced (remove it, or keep it out of the policy path)"
            ));
        }
    }
    match (group, version) {
        (Some(K8S_GROUP), Some(v)) => {
            if kind == "NetworkPolicy" {
                if v == "v1" {
                    return Class::Policy { kind: PolicyKind::KubernetesNetworkPolicy, legacy_crd: false };
                }
                return Class::Refused(format!("{av} is not served for NetworkPolicy: use networking.k8s.io/v1"));
            }
            if K8S_NOT_POLICY.contains(&kind) {
                return Class::Other;
            }
            unknown(av, kind, &["NetworkPolicy"])
        }
        (Some(g @ (CALICO_GROUP | CALICO_CRD_GROUP)), Some(v)) => {
            let legacy_crd = g == CALICO_CRD_GROUP;
            let served = if legacy_crd { "v1" } else { "v3" };
            if CALICO_NOT_POLICY.contains(&kind) {
                return Class::Other;
            }
            if !CALICO_READ.contains(&kind) {
                return unknown(av, kind, &CALICO_READ);
            }
            if v != served {
                return Class::Refused(format!("{av} is not served for {kind}: use {g}/{served}"));
            }
            match kind {
                "NetworkSet" => Class::NetworkSet { global: false },
                "GlobalNetworkSet" => Class::NetworkSet { global: true },
                "Tier" => Class::Tier,
                k => Class::Policy { kind: policy_kind(k).expect("CALICO_READ lists policy kinds"), legacy_crd },
            }
        }
        (Some(ADMIN_GROUP), Some(v)) => match ADMIN_READ.iter().find(|(k, _, _)| *k == kind) {
            Some((_, versions, pk)) if versions.contains(&v) => Class::Policy { kind: *pk, legacy_crd: false },
            Some((_, versions, _)) => Class::Refused(format!(
                "{av} is not served for {kind}: use {}",
                versions.iter().map(|v| format!("{ADMIN_GROUP}/{v}")).collect::<Vec<_>>().join(" or ")
            )),
            None => unknown(av, kind, &["AdminNetworkPolicy", "BaselineAdminNetworkPolicy", "ClusterNetworkPolicy"]),
        },
        _ if looks_like_policy(kind) => match known_kind(kind) {
            Some(k) => Class::Refused(format!("{av} {kind}: netward reads {k} only as {}", served_as(k))),
            None => Class::Refused(format!("netward does not read {av} {kind}: its rules would not be enforced")),
        },
        _ => Class::Other,
    }
}

fn policy_kind(kind: &str) -> Option<PolicyKind> {
    Some(match kind {
        "NetworkPolicy" => PolicyKind::NetworkPolicy,
        "GlobalNetworkPolicy" => PolicyKind::GlobalNetworkPolicy,
        "StagedNetworkPolicy" => PolicyKind::StagedNetworkPolicy,
        "StagedGlobalNetworkPolicy" => PolicyKind::StagedGlobalNetworkPolicy,
        "StagedKubernetesNetworkPolicy" => PolicyKind::StagedKubernetesNetworkPolicy,
        _ => return None,
    })
}

/// A kind netward reads, spelled exactly.
fn known_kind(kind: &str) -> Option<&'static str> {
    CALICO_READ.iter().copied().find(|k| *k == kind)
}

/// The apiVersions a kind netward reads is served as.
fn served_as(kind: &str) -> &'static str {
    if kind == "NetworkPolicy" {
        "networking.k8s.io/v1 or projectcalico.org/v3"
    } else {
        "projectcalico.org/v3"
    }
}

fn expected_version(kind: &str) -> String {
    known_kind(kind).map(|k| format!(" (use {})", served_as(k))).unwrap_or_default()
}

/// An unknown kind of a policy group: refused, naming the nearest known kind.
fn unknown(av: &str, kind: &str, known: &[&str]) -> Class {
    let near = nearest(kind, known).map(|k| format!("; did you mean {k}?")).unwrap_or_default();
    Class::Refused(format!("{av} has no kind {kind} that netward reads{near}"))
}

/// The known kind closest to `kind` (case-insensitive edit distance at most
/// a third of its length), if any is close.
pub fn nearest<'k>(kind: &str, known: &[&'k str]) -> Option<&'k str> {
    let k = kind.to_ascii_lowercase();
    known
        .iter()
        .map(|c| (edit_distance(&k, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(1))
        .min()
        .map(|(_, c)| c)
}

/// Levenshtein distance over bytes; both strings are short kind names.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A `crd.projectcalico.org/v1` policy name as Calico ≥ 3.30 names it: the
/// legacy `default.` (default tier) and `knp.default.` prefixes dropped.
pub fn normalize_legacy_name<'n>(name: &'n str, tier: &str) -> &'n str {
    if let Some(rest) = name.strip_prefix("knp.default.") {
        return rest;
    }
    match name.strip_prefix("default.") {
        Some(rest) if tier == "default" && !rest.is_empty() => rest,
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(av: Option<&str>, kind: Option<&str>) -> String {
        match classify(av, kind) {
            Class::Refused(why) => why,
            other => panic!("{av:?} {kind:?}: {other:?}"),
        }
    }

    #[test]
    fn policy_lookalikes_are_refused_with_the_nearest_kind() {
        let why = refused(Some("projectcalico.org/v3"), Some("GlobalNetworkpolicy"));
        assert!(why.contains("did you mean GlobalNetworkPolicy?"), "{why}");
        let why = refused(Some("networking.k8s.io/v1beta1"), Some("NetworkPolicy"));
        assert!(why.contains("use networking.k8s.io/v1"), "{why}");
        let why = refused(None, Some("NetworkPolicy"));
        assert!(why.contains("without an apiVersion"), "{why}");
        let why = refused(Some("policy.networking.k8s.io/v1alpha1"), Some("ClusterNetworkPolicy"));
        assert!(why.contains("use policy.networking.k8s.io/v1alpha2 or policy.networking.k8s.io/v1beta1"), "{why}");
        let why = refused(Some("policy.networking.k8s.io/v1alpha1"), Some("ClusterNetworkpolicy"));
        assert!(why.contains("did you mean ClusterNetworkPolicy?"), "{why}");
        let why = refused(Some("cilium.io/v2"), Some("CiliumNetworkPolicy"));
        assert!(why.contains("does not read"), "{why}");
        let why = refused(Some("projectcalico.org/v3"), None);
        assert!(why.contains("without a kind"), "{why}");
        assert!(refused(Some("projectcalico.org/v3"), Some("Profile")).contains("would not be enforced"));
    }

    #[test]
    fn what_is_not_policy_is_skipped() {
        for (av, k) in [
            ("apps/v1", "Deployment"),
            ("v1", "ConfigMap"),
            ("networking.k8s.io/v1", "Ingress"),
            ("projectcalico.org/v3", "IPPool"),
            ("crd.projectcalico.org/v1", "FelixConfiguration"),
        ] {
            assert_eq!(classify(Some(av), Some(k)), Class::Other, "{av} {k}");
        }
        assert_eq!(classify(None, None), Class::Other);
    }

    #[test]
    fn legacy_crd_forms_are_read() {
        assert_eq!(
            classify(Some("crd.projectcalico.org/v1"), Some("GlobalNetworkPolicy")),
            Class::Policy { kind: PolicyKind::GlobalNetworkPolicy, legacy_crd: true }
        );
        assert_eq!(classify(Some("crd.projectcalico.org/v1"), Some("Tier")), Class::Tier);
        assert!(refused(Some("crd.projectcalico.org/v3"), Some("NetworkPolicy")).contains("crd.projectcalico.org/v1"));
        assert_eq!(normalize_legacy_name("default.deny-all", "default"), "deny-all");
        assert_eq!(normalize_legacy_name("knp.default.web", "default"), "web");
        assert_eq!(normalize_legacy_name("default.x", "security"), "default.x");
        assert_eq!(normalize_legacy_name("plain", "default"), "plain");
    }
}

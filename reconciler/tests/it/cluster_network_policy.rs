//! ClusterNetworkPolicy (network-policy-api v1alpha2/v1beta1) and the
//! v1alpha1 AdminNetworkPolicy / BaselineAdminNetworkPolicy: the evaluation
//! order (A1-A5), Calico 3.32's mapping onto tiers (A6), the peers, and the
//! CRDs' validation. Expectations come from the API's own documentation
//! (apis/v1alpha2/clusternetworkpolicy_types.go at v0.3.0) and Calico's
//! libcalico-go/lib/backend/k8s/conversion/clusternetworkpolicy.go, not from
//! netward's output; `World::allows` holds explain and the matrix together.

use netward::analysis::{Analysis, View};
use netward::enforce::{Mode, NodeSpec};

use crate::support::{base, cluster, knp, policies, policy_errors, World};

/// A ClusterNetworkPolicy: `cnp("name", "Admin", 10, "subject/ingress/egress yaml")`.
fn cnp(name: &str, tier: &str, priority: i64, spec: &str) -> String {
    format!(
        "---\napiVersion: policy.networking.k8s.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata:\n  name: {name}\nspec:\n  tier: {tier}\n  priority: {priority}\n{spec}"
    )
}

/// Subject: every pod of namespace `a` (team t1).
const SUBJECT_A: &str = "  subject:\n    namespaces: {matchLabels: {team: t1}}\n";

fn ingress_from_b(action: &str) -> String {
    format!("{SUBJECT_A}  ingress:\n  - name: from-b\n    action: {action}\n    from:\n    - namespaces: {{matchLabels: {{team: t2}}}}\n")
}

fn one_error(yaml: &str, needle: &str) {
    let d = policy_errors(yaml);
    assert_eq!(d.len(), 1, "expected one error containing {needle:?}: {d:#?}");
    assert!(d[0].message.contains(needle), "{:?} does not contain {needle:?}", d[0].message);
    assert!(d[0].pos.line > 0, "errors are placed: {:?}", d[0]);
}

/// A1/A5: Admin -> NetworkPolicy -> Baseline -> default allow.
#[test]
fn a5_tiers_run_admin_then_network_policy_then_baseline() {
    let allow_b = knp(
        "a",
        "allow-b",
        "  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {team: t2}}\n",
    );
    let admin_deny = cnp("admin", "Admin", 10, &ingress_from_b("Deny"));
    let admin_pass = cnp("admin", "Admin", 10, &ingress_from_b("Pass"));
    let baseline_deny = cnp("baseline", "Baseline", 10, &ingress_from_b("Deny"));
    let baseline_accept = cnp("baseline", "Baseline", 10, &ingress_from_b("Accept"));

    // An Admin Deny wins over a NetworkPolicy's allow.
    assert!(!World::new(&base(), &[admin_deny.clone(), allow_b.clone()].concat()).allows("b/x", "a/x", "8080/TCP"));
    // Pass hands the connection to the NetworkPolicy tier, which allows.
    assert!(World::new(&base(), &[admin_pass.clone(), allow_b.clone()].concat()).allows("b/x", "a/x", "8080/TCP"));
    // A NetworkPolicy that selects the pod decides: Baseline is never consulted (A4).
    assert!(World::new(&base(), &[baseline_deny.clone(), allow_b.clone()].concat()).allows("b/x", "a/x", "8080/TCP"));
    let deny_all = knp("a", "deny-all", "  podSelector: {}\n  policyTypes: [Ingress]\n");
    assert!(!World::new(&base(), &[baseline_accept, deny_all].concat()).allows("b/x", "a/x", "8080/TCP"));
    // No NetworkPolicy selects the pod: Baseline decides.
    assert!(!World::new(&base(), &baseline_deny).allows("b/x", "a/x", "8080/TCP"));
    // Pass then nothing at all: the default allows.
    assert!(World::new(&base(), &admin_pass).allows("b/x", "a/x", "8080/TCP"));
    // A rule that does not match falls through (the tier ends in Pass, not Deny).
    assert!(World::new(&base(), &admin_deny).allows("a/w", "a/x", "8080/TCP"));
}

/// A6: priority is the order within the tier; equal priorities compare the
/// name (Felix's `name/namespace/kind` string); v1alpha1 ANPs share the tier.
#[test]
fn a6_priority_orders_the_admin_tier_and_anps_interleave() {
    let deny = cnp("z-deny", "Admin", 20, &ingress_from_b("Deny"));
    let accept = cnp("a-accept", "Admin", 30, &ingress_from_b("Accept"));
    assert!(!World::new(&base(), &[deny.clone(), accept.clone()].concat()).allows("b/x", "a/x", "8080/TCP"));
    let accept_first = cnp("a-accept", "Admin", 5, &ingress_from_b("Accept"));
    assert!(World::new(&base(), &[deny.clone(), accept_first].concat()).allows("b/x", "a/x", "8080/TCP"));
    // Same priority: "a-accept/..." sorts before "z-deny/...".
    let accept_same = cnp("a-accept", "Admin", 20, &ingress_from_b("Accept"));
    assert!(World::new(&base(), &[deny.clone(), accept_same].concat()).allows("b/x", "a/x", "8080/TCP"));
    // A v1alpha1 AdminNetworkPolicy at priority 15 runs before the CNP at 20.
    let anp = "---\napiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata:\n  name: old\nspec:\n  priority: 15\n  subject:\n    namespaces: {matchLabels: {team: t1}}\n  ingress:\n  - action: Allow\n    from:\n    - namespaces: {matchLabels: {team: t2}}\n";
    assert!(World::new(&base(), &[deny, anp.to_string()].concat()).allows("b/x", "a/x", "8080/TCP"));
}

/// CNPs with no ingress rules do not affect ingress traffic, and the subject
/// is only the pods selected.
#[test]
fn a_direction_without_rules_does_not_isolate() {
    let egress_only = cnp(
        "egress-only",
        "Baseline",
        1,
        &format!("{SUBJECT_A}  egress:\n  - action: Deny\n    to:\n    - pods: {{namespaceSelector: {{matchLabels: {{team: t2}}}}, podSelector: {{matchLabels: {{app: z}}}}}}\n"),
    );
    let w = World::new(&base(), &egress_only);
    assert!(w.allows("b/x", "a/x", "8080/TCP"), "ingress untouched");
    assert!(!w.allows("a/x", "b/z", "8080/TCP"), "egress to b/z denied");
    assert!(w.allows("a/x", "b/x", "8080/TCP"), "b/x is not that peer");
    assert!(w.allows("b/x", "b/z", "8080/TCP"), "b's pods are not the subject");
}

/// Peers: networks also match pod IPs; nodes match the Nodes' addresses;
/// domainNames are undecidable offline (caveated, match nothing).
#[test]
fn networks_match_pod_ips_nodes_match_node_addresses() {
    let node = "---\napiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n  labels: {role: worker}\nstatus:\n  addresses:\n  - {type: InternalIP, address: 172.18.0.2}\n  - {type: Hostname, address: n1}\n";
    let world = [base(), node.to_string()].concat();
    let p = cnp(
        "guard",
        "Admin",
        1,
        &format!("{SUBJECT_A}  egress:\n  - name: nodes\n    action: Deny\n    to:\n    - nodes: {{matchLabels: {{role: worker}}}}\n  - name: pods-by-cidr\n    action: Deny\n    to:\n    - networks: [10.0.2.0/31]\n    protocols:\n    - tcp: {{destinationPort: {{number: 8080}}}}\n"),
    );
    let w = World::new(&world, &p);
    assert!(!w.allows("a/x", "172.18.0.2", "10250/TCP"), "a node address");
    assert!(w.allows("a/x", "172.18.0.3", "10250/TCP"), "not a node of the cluster");
    assert!(!w.allows("a/x", "b/x", "8080/TCP"), "10.0.2.1 is in 10.0.2.0/31");
    assert!(w.allows("a/x", "b/x", "53/UDP"), "only 8080/TCP");
    assert!(w.allows("a/x", "b/z", "8080/TCP"), "10.0.2.2 is outside the /31");

    let dns = cnp(
        "dns",
        "Admin",
        1,
        &format!("{SUBJECT_A}  egress:\n  - action: Accept\n    to:\n    - domainNames: ['*.example.com']\n"),
    );
    let w = World::new(&base(), &dns);
    let flow =
        w.an.flow("a/x", "203.0.113.9", netward::model::Protocol::Tcp, 443, None).expect("a/x and an IP make a flow");
    let v = w.an.evaluate(&flow);
    assert!(v.allowed, "matches nothing, so the default allows");
    assert!(v.decision().by.contains("DNS domains not evaluated"), "{}", v.decision().by);
}

/// Hairpin: a pod connecting to its own IP is never subject to
/// ClusterNetworkPolicy (the API's hairpin semantics), while a
/// NetworkPolicy still is.
#[test]
fn a_pod_to_its_own_ip_is_not_subject_to_cnp() {
    let deny_all = cnp(
        "deny-all",
        "Admin",
        1,
        "  subject:\n    namespaces: {}\n  ingress:\n  - action: Deny\n    from:\n    - namespaces: {}\n",
    );
    let w = World::new(&base(), &deny_all);
    assert!(!w.allows("a/w", "a/x", "8080/TCP"));
    assert!(w.allows("a/x", "10.0.1.1", "8080/TCP"), "a/x to itself");
}

/// destinationNamedPort resolves on the destination pod, any protocol.
#[test]
fn named_ports_resolve_on_the_destination() {
    let p = cnp(
        "dns-only",
        "Baseline",
        1,
        &format!("{SUBJECT_A}  ingress:\n  - action: Accept\n    from: [{{namespaces: {{}}}}]\n    protocols: [{{destinationNamedPort: dns}}]\n  - action: Deny\n    from: [{{namespaces: {{}}}}]\n"),
    );
    let w = World::new(&base(), &p);
    assert!(w.allows("b/x", "a/x", "53/UDP"));
    assert!(!w.allows("b/x", "a/x", "53/TCP"), "dns is a UDP port");
    assert!(!w.allows("b/x", "a/x", "8080/TCP"));
}

/// The CRDs' schema and CEL rules, each refused with its place.
#[test]
fn validation_refuses_what_the_crds_refuse() {
    let rule = "  ingress:\n  - action: Deny\n    from: [{namespaces: {}}]\n";
    one_error(&cnp("p", "Admin", 1001, &format!("{SUBJECT_A}{rule}")), "out of range 0..1000");
    one_error(&cnp("p", "Middle", 1, &format!("{SUBJECT_A}{rule}")), "tier must be Admin or Baseline");
    one_error(
        &cnp("p", "Admin", 1, &format!("  subject:\n    namespaces: {{}}\n    pods: {{podSelector: {{}}}}\n{rule}")),
        "only one of namespaces, pods",
    );
    one_error(&cnp("p", "Admin", 1, &format!("  subject: {{}}\n{rule}")), "exactly one of namespaces, pods");
    let many: String = (0..26).map(|_| "  - action: Deny\n    from: [{namespaces: {}}]\n").collect();
    one_error(&cnp("p", "Admin", 1, &format!("{SUBJECT_A}  ingress:\n{many}")), "at most 25");
    one_error(
        &cnp("p", "Admin", 1, &format!("{SUBJECT_A}  ingress:\n  - action: Allow\n    from: [{{namespaces: {{}}}}]\n")),
        "Accept, Deny, Pass",
    );
    one_error(&cnp("p", "Admin", 1, &format!("{SUBJECT_A}  ingress:\n  - action: Deny\n    from: []\n")), "at least 1");
    one_error(
        &cnp(
            "p",
            "Admin",
            1,
            &format!("{SUBJECT_A}  egress:\n  - action: Deny\n    to: [{{networks: [10.1.2.3/8]}}]\n"),
        ),
        "host bits",
    );
    one_error(
        &cnp("p", "Admin", 1, &format!("{SUBJECT_A}  egress:\n  - action: Deny\n    to: [{{networks: [10.0.0.0/8]}}]\n    protocols: [{{destinationNamedPort: web}}]\n")),
        "cannot be set with namedPorts",
    );
    one_error(
        &cnp(
            "p",
            "Admin",
            1,
            &format!("{SUBJECT_A}  egress:\n  - action: Deny\n    to: [{{domainNames: [example.com]}}]\n"),
        ),
        "only supported for Accept",
    );
    one_error(
        &cnp(
            "p",
            "Admin",
            1,
            &format!("{SUBJECT_A}  egress:\n  - action: Accept\n    to: [{{domainNames: ['foo*.example.com']}}]\n"),
        ),
        "not a domain name",
    );
    one_error(
        &cnp("p", "Admin", 1, &format!("{SUBJECT_A}  ingress:\n  - action: Deny\n    from: [{{namespaces: {{}}}}]\n    protocols: [{{tcp: {{destinationPort: {{range: {{start: 90, end: 90}}}}}}}}]\n")),
        "Start port must be less than End port",
    );
    one_error(
        &cnp("p", "Admin", 1, &format!("{SUBJECT_A}  ingress:\n  - action: Deny\n    from: [{{nodes: {{}}}}]\n")),
        "unknown field \"nodes\"",
    );
    let banp = "---\napiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata:\n  name: other\nspec:\n  subject:\n    namespaces: {}\n";
    one_error(banp, "metadata.name=\"default\"");
    let banp_pass = "---\napiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata:\n  name: default\nspec:\n  subject:\n    namespaces: {}\n  ingress:\n  - action: Pass\n    from: [{namespaces: {}}]\n";
    one_error(banp_pass, "Allow, Deny");
    // v1alpha1 only asked isCIDR: host bits are masked, as Calico parses them.
    let anp = "---\napiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata:\n  name: cidr\nspec:\n  priority: 1\n  subject:\n    namespaces: {}\n  egress:\n  - action: Deny\n    to: [{networks: [10.1.2.3/8]}]\n";
    assert!(policy_errors(anp).is_empty(), "{:#?}", policy_errors(anp));
    one_error(
        "---\napiVersion: policy.networking.k8s.io/v1alpha1\nkind: ClusterNetworkPolicy\nmetadata:\n  name: p\nspec: {}\n",
        "use policy.networking.k8s.io/v1alpha2 or policy.networking.k8s.io/v1beta1",
    );
}

/// The node programs CNPs into the same tiered chains: a `kube-admin` tier
/// ahead of the default tier, the Nodes' addresses as a set, and the rule's
/// name in the rule's comment.
#[test]
fn the_enforcer_compiles_cnp_tiers_and_node_peers() {
    let node = "---\napiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n  labels: {role: worker}\nstatus:\n  addresses: [{type: InternalIP, address: 172.18.0.2}]\n";
    let c = cluster(&[base(), node.to_string()].concat());
    let p = cnp(
        "guard",
        "Admin",
        1,
        &format!("{SUBJECT_A}  egress:\n  - name: no-kubelet\n    action: Deny\n    to: [{{nodes: {{matchLabels: {{role: worker}}}}}}]\n    protocols: [{{tcp: {{destinationPort: {{number: 10250}}}}}}]\n"),
    );
    let knp_yaml = knp("a", "deny-all", "  podSelector: {}\n  policyTypes: [Ingress]\n");
    let an = Analysis::new(&policies(&[p, knp_yaml].concat()), &c, View::Enforced);
    let links = c.pods.iter().flat_map(|p| p.ips.iter().map(move |ip| (*ip, format!("veth-{}", p.name)))).collect();
    let rs = netward::enforce::compile(
        &an,
        &NodeSpec { node: "n1".into(), mode: Mode::Enforce, links, ..Default::default() },
    );
    let text = netward::enforce::nft::render(&rs);
    assert!(text.contains("172.18.0.2"), "the node's address is a set element:\n{text}");
    assert!(text.contains("ClusterNetworkPolicy guard rule 0 no-kubelet p.yaml:"), "rule name in a comment:\n{text}");
    let admin = text.find("tier kube-admin").expect("a kube-admin tier");
    let default = text.find("tier default").expect("a default tier");
    assert!(admin < default, "kube-admin runs before default");
}

/// `netward diff` headlines what a cluster administrator's change does: a
/// removed Admin Deny, a changed Baseline verdict.
#[test]
fn diff_headlines_admin_denies_removed_and_baseline_defaults_changed() {
    use std::sync::Arc;

    use netward::change::{diff, Revision};

    let c = cluster(&base());
    let rev =
        |label: &str, yaml: &str| (label.to_string(), policies(yaml), vec![(Arc::from("p.yaml"), yaml.to_string())]);
    let risks = |a: &(String, netward::model::PolicySet, Vec<(Arc<str>, String)>),
                 b: &(String, netward::model::PolicySet, Vec<(Arc<str>, String)>)| {
        let ra = Revision { label: a.0.clone(), set: &a.1, files: &a.2 };
        let rb = Revision { label: b.0.clone(), set: &b.1, files: &b.2 };
        let r = diff(&ra, &rb, &c, "snapshot");
        r.opened.iter().chain(&r.closed).map(|f| (f.from.clone(), f.to.clone(), f.risk.clone())).collect::<Vec<_>>()
    };
    let admin = rev("base", &cnp("admin", "Admin", 10, &ingress_from_b("Deny")));
    let none = rev("head", "");
    let changes = risks(&admin, &none);
    assert!(!changes.is_empty());
    assert!(changes.iter().all(|(_, _, r)| r.as_deref() == Some("an Admin Deny removed")), "{changes:?}");

    let baseline = rev("head", &cnp("baseline", "Baseline", 10, &ingress_from_b("Deny")));
    let changes = risks(&none, &baseline);
    assert!(changes.iter().any(|(f, t, _)| f == "b/x" && t == "a/x"), "{changes:?}");
    // DNS lost outranks it on port 53; every other closed connection says why.
    assert!(
        changes.iter().all(|(_, _, r)| matches!(r.as_deref(), Some("a Baseline default changed" | "DNS lost"))),
        "{changes:?}"
    );
    assert!(changes.iter().any(|(_, _, r)| r.as_deref() == Some("a Baseline default changed")));
}

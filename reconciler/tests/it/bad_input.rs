//! Malformed input: every case gives file:line:col and a one-line reason,
//! and never a panic.

use crate::support::policy_errors;

/// Asserts exactly one error, at `line:col`, whose message contains `needle`.
#[track_caller]
fn one_error(yaml: &str, line: u32, col: u32, needle: &str) {
    let d = policy_errors(yaml);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!((d[0].pos.line, d[0].pos.col), (line, col), "{}", d[0]);
    assert!(d[0].message.contains(needle), "{:?} does not contain {needle:?}", d[0].message);
    assert!(!d[0].message.contains('\n'), "one line: {:?}", d[0].message);
    assert!(d[0].to_string().starts_with(&format!("p.yaml:{line}:{col}: error: ")), "{}", d[0]);
}

const KNP: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\n  namespace: a\n";

#[test]
fn yaml_syntax() {
    one_error(&format!("{KNP}spec:\n  podSelector: {{}}\n   ingress: []\n"), 8, 4, "did not find expected key");
}

#[test]
fn wrong_type() {
    one_error(&format!("{KNP}spec:\n  podSelector: []\n"), 7, 16, "expected a mapping, found a list");
}

#[test]
fn unknown_field_in_spec() {
    one_error(&format!("{KNP}spec:\n  podSelecter: {{}}\n"), 7, 3, "unknown field \"podSelecter\"");
}

#[test]
fn unknown_field_in_a_peer() {
    one_error(&format!("{KNP}spec:\n  podSelector: {{}}\n  ingress:\n  - from:\n    - podSelector: {{}}\n      nameSpaceSelector: {{}}\n"), 11, 7, "unknown field \"nameSpaceSelector\"");
}

#[test]
fn bad_cidr() {
    one_error(
        &format!("{KNP}spec:\n  podSelector: {{}}\n  ingress:\n  - from:\n    - ipBlock: {{cidr: 10.0.0.300/8}}\n"),
        10,
        23,
        "invalid CIDR",
    );
}

#[test]
fn except_outside_cidr() {
    one_error(&format!("{KNP}spec:\n  podSelector: {{}}\n  ingress:\n  - from:\n    - ipBlock: {{cidr: 10.0.0.0/8, except: [11.0.0.0/16]}}\n"), 10, 44, "strict subset");
}

#[test]
fn port_out_of_range() {
    one_error(
        &format!("{KNP}spec:\n  podSelector: {{}}\n  ingress:\n  - ports:\n    - port: 70000\n"),
        10,
        13,
        "out of range",
    );
}

#[test]
fn end_port_without_numeric_port() {
    one_error(
        &format!("{KNP}spec:\n  podSelector: {{}}\n  ingress:\n  - ports:\n    - {{port: http, endPort: 90}}\n"),
        10,
        29,
        "endPort requires a numeric port",
    );
}

#[test]
fn peer_with_ip_block_and_selector() {
    one_error(&format!("{KNP}spec:\n  podSelector: {{}}\n  ingress:\n  - from:\n    - {{ipBlock: {{cidr: 10.0.0.0/8}}, podSelector: {{}}}}\n"), 10, 7, "both ipBlock and another peer");
}

#[test]
fn unknown_label_selector_operator() {
    one_error(
        &format!(
            "{KNP}spec:\n  podSelector:\n    matchExpressions:\n    - {{key: app, operator: Equals, values: [x]}}\n"
        ),
        9,
        28,
        "unknown operator",
    );
}

#[test]
fn duplicate_policy_types() {
    // Calico's validator refuses a type listed twice in `types`...
    one_error(
        "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: p, namespace: a}\nspec:\n  types: [Ingress, Ingress]\n",
        5,
        20,
        "listed twice",
    );
    // ...Kubernetes' API server stores `policyTypes: [Ingress, Ingress]` as
    // written, so a commit holding one (it exists in real clusters) loads.
    let mut d = Vec::new();
    let text = format!("{KNP}spec:\n  podSelector: {{}}\n  policyTypes: [Ingress, Ingress]\n");
    let set = netward::manifest::load::load_policy_texts(
        std::iter::once((std::sync::Arc::from("p.yaml"), text.as_str())),
        &mut d,
    );
    assert!(d.is_empty(), "{d:?}");
    assert!(set.policies[0].ingress_type && !set.policies[0].egress_type);
}

const GNP: &str = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: g\nspec:\n";

#[test]
fn invalid_calico_selector_points_at_the_character() {
    // `selector: "app = 'x'"`: the value starts at column 13; the error is at its 5th character.
    one_error(&format!("{GNP}  selector: \"app = 'x'\"\n"), 6, 18, "invalid selector");
    one_error(&format!("{GNP}  selector: app = 'x'\n"), 6, 17, "invalid selector");
}

#[test]
fn global_outside_a_rule_namespace_selector() {
    one_error(&format!("{GNP}  selector: global()\n"), 6, 13, "global()");
}

#[test]
fn unknown_action() {
    one_error(&format!("{GNP}  ingress:\n  - action: Accept\n"), 7, 13, "unknown action");
}

#[test]
fn numeric_ports_need_a_protocol() {
    one_error(
        &format!("{GNP}  ingress:\n  - action: Allow\n    destination: {{ports: [80]}}\n"),
        8,
        27,
        "numeric ports need protocol",
    );
}

#[test]
fn icmp_needs_icmp_protocol() {
    one_error(
        &format!("{GNP}  ingress:\n  - action: Allow\n    protocol: TCP\n    icmp: {{type: 8}}\n"),
        9,
        11,
        "require protocol ICMP",
    );
}

#[test]
fn http_only_on_ingress_allow() {
    one_error(
        &format!("{GNP}  ingress:\n  - action: Deny\n    http: {{methods: [GET]}}\n"),
        8,
        11,
        "http matches are allowed only",
    );
}

#[test]
fn undefined_tier() {
    one_error(&format!("{GNP}  tier: security\n"), 1, 1, "tier \"security\", which is not defined");
}

#[test]
fn duplicate_objects() {
    let doc = format!("{GNP}  selector: all()\n");
    one_error(&format!("{doc}---\n{doc}"), 8, 1, "duplicate GlobalNetworkPolicy g (first defined at p.yaml:1:1)");
}

#[test]
fn json_documents_get_positions_too() {
    let json = "{\"apiVersion\": \"networking.k8s.io/v1\", \"kind\": \"NetworkPolicy\",\n \"metadata\": {\"name\": \"p\", \"namespace\": \"a\"},\n \"spec\": {\"podSelector\": {}, \"ingress\": [{\"ports\": [{\"port\": 0}]}]}}\n";
    one_error(json, 3, 62, "out of range");
}

#[test]
fn many_errors_are_all_reported() {
    let bad = format!("{KNP}spec:\n  podSelector: []\n---\n{GNP}  selector: \"a ==\"\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: ignored}}\n");
    let d = policy_errors(&bad);
    assert_eq!(d.len(), 2, "{d:#?}");
}

// Regressions (#13): objects that look like policy but were skipped
// silently ("0 policies checked: 0 errors"), so a deny-all vanished.
#[test]
fn a_kind_typo_is_an_error_naming_the_nearest_kind() {
    one_error(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkpolicy\nmetadata: {name: deny-all}\nspec: {}\n",
        2,
        7,
        "did you mean GlobalNetworkPolicy?",
    );
}

#[test]
fn an_unserved_api_version_is_an_error() {
    one_error(&KNP.replace("networking.k8s.io/v1", "networking.k8s.io/v1beta1"), 2, 7, "use networking.k8s.io/v1");
}

#[test]
fn a_policy_without_api_version_is_an_error() {
    one_error(
        "kind: NetworkPolicy\nmetadata: {name: p, namespace: a}\nspec: {podSelector: {}}\n",
        1,
        7,
        "without an apiVersion",
    );
}

#[test]
fn policy_kinds_netward_does_not_enforce_are_errors() {
    let profile = "apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata: {name: a}\nspec: {}\n";
    one_error(profile, 2, 7, "would not be enforced");
    // An AdminNetworkPolicy is read, but only in the version that served it.
    let anp = "apiVersion: policy.networking.k8s.io/v1beta1\nkind: AdminNetworkPolicy\nmetadata: {name: a}\nspec: {}\n";
    one_error(anp, 2, 7, "use policy.networking.k8s.io/v1alpha1");
    let cilium = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: c}\nspec: {}\n";
    one_error(cilium, 2, 7, "does not read cilium.io/v2 CiliumNetworkPolicy");
    // What is not policy stays skipped.
    assert!(policy_errors("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/8}\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\n").is_empty());
}

#[test]
fn legacy_crd_objects_are_read_with_calico_3_30_names() {
    // What `kubectl get globalnetworkpolicies.crd.projectcalico.org -o yaml`
    // prints without Calico's API server.
    let yaml = "apiVersion: crd.projectcalico.org/v1\nkind: GlobalNetworkPolicy\nmetadata:\n  name: default.deny-all\n  resourceVersion: \"123\"\n  uid: 5e1b\n  annotations: {projectcalico.org/metadata: '{}'}\nspec:\n  tier: default\n  selector: all()\n  types: [Ingress]\n";
    assert!(policy_errors(yaml).is_empty(), "{:#?}", policy_errors(yaml));
    let set = crate::support::policies(yaml);
    assert_eq!(set.policies.len(), 1);
    assert_eq!(set.policies[0].id.name, "deny-all", "the legacy default. prefix is dropped");
}

//! One test per rule of ../shared/reference/semantics.md (IDs in the names).

use netward::analysis::View;

use crate::support::{base, calico, knp, namespace, World};

fn w(policies: &str) -> World {
    World::new(&base(), policies)
}

#[test]
fn k1_no_policy_allows_everything() {
    let w = w("");
    assert!(w.allows("a/x", "b/z", "80/TCP"));
    assert!(w.allows("b/z", "a/x", "53/UDP"));
}

#[test]
fn k1_isolation_is_per_direction() {
    // Ingress-only isolation of a/x leaves its egress open.
    let w = w(&knp("a", "deny-in", "  podSelector: {matchLabels: {app: x}}\n"));
    assert!(!w.allows("a/w", "a/x", "80/TCP"));
    assert!(w.allows("a/x", "a/w", "80/TCP"));
    assert!(w.allows("a/w", "b/z", "80/TCP"), "other pods are not isolated");
}

#[test]
fn k2_egress_rules_without_policy_types_also_isolate_ingress() {
    let w = w(&knp("a", "p", "  podSelector: {matchLabels: {app: x}}\n  egress:\n  - {}\n"));
    assert!(w.allows("a/x", "b/z", "80/TCP"), "egress allow-all rule");
    assert!(!w.allows("a/w", "a/x", "80/TCP"), "ingress isolated with no ingress rules");
}

#[test]
fn k2_explicit_policy_types_win_over_rule_lists() {
    let w = w(&knp(
        "a",
        "p",
        "  podSelector: {matchLabels: {app: x}}\n  policyTypes: [Ingress]\n  ingress:\n  - {}\n  egress: []\n",
    ));
    assert!(w.allows("a/x", "b/z", "80/TCP"), "egress not isolated: type not listed");
    assert!(w.allows("a/w", "a/x", "80/TCP"));
}

#[test]
fn k3_policies_are_a_union() {
    let p = [
        knp("a", "from-y", "  podSelector: {matchLabels: {app: x}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {app: w}}}]\n"),
        knp("a", "from-b", "  podSelector: {matchLabels: {app: x}}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {team: t2}}}]\n"),
    ]
    .concat();
    let w = w(&p);
    assert!(w.allows("a/w", "a/x", "80/TCP"));
    assert!(w.allows("b/z", "a/x", "80/TCP"));
}

#[test]
fn k4_both_ends_must_allow() {
    let p = [
        knp("a", "x-in", "  podSelector: {matchLabels: {app: x}}\n  ingress:\n  - {}\n"),
        knp("b", "deny-out", "  podSelector: {}\n  policyTypes: [Egress]\n"),
    ]
    .concat();
    let w = w(&p);
    assert!(!w.allows("b/z", "a/x", "80/TCP"), "source egress denies");
    assert!(w.allows("a/w", "a/x", "80/TCP"));
}

#[test]
fn k5_empty_ingress_list_allows_nothing_and_empty_rule_allows_all() {
    let none = w(&knp("a", "p", "  podSelector: {}\n  ingress: []\n"));
    assert!(!none.allows("a/w", "a/x", "80/TCP"));
    let all = w(&knp("a", "p", "  podSelector: {}\n  ingress:\n  - {}\n"));
    assert!(all.allows("b/z", "a/x", "9999/UDP"));
}

#[test]
fn k5_rule_without_ports_allows_every_port_and_protocol() {
    let w = w(&knp("a", "p", "  podSelector: {}\n  ingress:\n  - from: [{podSelector: {}}]\n"));
    assert!(w.allows("a/w", "a/x", "1/TCP"));
    assert!(w.allows("a/w", "a/x", "65535/SCTP"));
    assert!(!w.allows("b/z", "a/x", "80/TCP"), "podSelector alone is the policy's namespace");
}

#[test]
fn k6_pod_and_namespace_selector_in_one_peer_is_and_separate_peers_or() {
    let and = w(&knp("a", "p", "  podSelector: {matchLabels: {app: x}}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {team: t2}}\n      podSelector: {matchLabels: {app: z}}\n"));
    assert!(and.allows("b/z", "a/x", "80/TCP"));
    assert!(!and.allows("b/x", "a/x", "80/TCP"));
    assert!(!and.allows("a/w", "a/x", "80/TCP"));
    let or = w(&knp("a", "p", "  podSelector: {matchLabels: {app: x}}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {team: t2}}\n    - podSelector: {matchLabels: {app: w}}\n"));
    assert!(or.allows("b/x", "a/x", "80/TCP"));
    assert!(or.allows("a/w", "a/x", "80/TCP"));
}

#[test]
fn k6_empty_namespace_selector_means_all_namespaces() {
    let w =
        w(&knp("a", "p", "  podSelector: {matchLabels: {app: x}}\n  ingress:\n  - from: [{namespaceSelector: {}}]\n"));
    assert!(w.allows("b/z", "a/x", "80/TCP"));
    assert!(w.allows("a/w", "a/x", "80/TCP"));
}

#[test]
fn k6_namespace_by_name_label() {
    let w = w(&knp("a", "p", "  podSelector: {matchLabels: {app: x}}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: b}}}]\n"));
    assert!(w.allows("b/z", "a/x", "80/TCP"));
    assert!(!w.allows("a/w", "a/x", "80/TCP"));
}

#[test]
fn k6_ip_block_with_except_matches_pod_ips() {
    let w = w(&knp("a", "p", "  podSelector: {matchLabels: {app: x}}\n  ingress:\n  - from:\n    - ipBlock: {cidr: 10.0.0.0/16, except: [10.0.2.2/32]}\n"));
    assert!(w.allows("b/x", "a/x", "80/TCP"));
    assert!(!w.allows("b/z", "a/x", "80/TCP"), "excepted address");
    assert!(w.allows("10.0.9.9", "a/x", "80/TCP"), "an outside address in the block");
    assert!(!w.allows("192.0.2.1", "a/x", "80/TCP"));
}

#[test]
fn k7_not_in_matches_pods_without_the_key_and_does_not_exist() {
    let w = w(&knp("a", "p", "  podSelector: {matchLabels: {app: x}}\n  ingress:\n  - from:\n    - namespaceSelector: {}\n      podSelector:\n        matchExpressions:\n        - {key: app, operator: NotIn, values: [z]}\n        - {key: tier, operator: DoesNotExist}\n"));
    assert!(w.allows("b/x", "a/x", "80/TCP"));
    assert!(!w.allows("b/z", "a/x", "80/TCP"));
}

#[test]
fn k8_named_port_resolves_on_the_destination_and_needs_its_protocol() {
    let w = w(&knp(
        "a",
        "p",
        "  podSelector: {}\n  ingress:\n  - ports:\n    - port: http\n    - port: dns\n      protocol: TCP\n",
    ));
    assert!(w.allows("b/z", "a/x", "8080/TCP"));
    assert!(!w.allows("b/z", "a/x", "80/TCP"));
    assert!(!w.allows("b/z", "a/x", "53/TCP"), "dns is a UDP port; the entry says TCP");
    assert!(!w.allows("b/z", "a/x", "53/UDP"));
}

#[test]
fn k8_named_port_on_egress_resolves_on_the_peer() {
    let w = w(&knp(
        "b",
        "p",
        "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - ports: [{port: dns, protocol: UDP}]\n",
    ));
    assert!(w.allows("b/z", "a/x", "53/UDP"));
    assert!(!w.allows("b/z", "a/x", "54/UDP"));
    assert!(!w.allows("b/z", "192.0.2.1", "53/UDP"), "no pod at an outside address, no named port");
}

#[test]
fn k8_end_port_range_and_protocol_only_entries() {
    let w = w(&knp(
        "a",
        "p",
        "  podSelector: {}\n  ingress:\n  - ports:\n    - {port: 8000, endPort: 8100}\n    - {protocol: UDP}\n",
    ));
    assert!(w.allows("b/z", "a/x", "8000/TCP"));
    assert!(w.allows("b/z", "a/x", "8100/TCP"));
    assert!(!w.allows("b/z", "a/x", "8101/TCP"));
    assert!(w.allows("b/z", "a/x", "1234/UDP"));
}

#[test]
fn k8_sctp_is_never_tcp() {
    let w = w(&knp("a", "p", "  podSelector: {}\n  ingress:\n  - ports: [{port: 80, protocol: SCTP}]\n"));
    assert!(w.allows("b/z", "a/x", "80/SCTP"));
    assert!(!w.allows("b/z", "a/x", "80/TCP"));
}

#[test]
fn k11_k12_host_network_pods_and_their_node() {
    let cluster = [
        base(),
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: agent, namespace: b}\nspec: {nodeName: n1, hostNetwork: true}\nstatus: {phase: Running, podIP: 192.168.0.1}\n".to_string(),
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: far, namespace: b, labels: {app: x}}\nspec: {nodeName: n2}\nstatus: {phase: Running, podIP: 10.0.3.1}\n".to_string(),
    ]
    .concat();
    let p = knp("b", "deny", "  podSelector: {}\n  policyTypes: [Ingress, Egress]\n");
    let w = World::new(&cluster, &p);
    assert!(w.allows("b/agent", "b/x", "80/TCP"), "the node reaches its own pods");
    // C12: a pod to its own node passes the pod's egress policy first
    // (Felix's from-workload chain, then DefaultEndpointToHostAction).
    assert!(!w.allows("b/x", "b/agent", "80/TCP"), "b/x's egress default-deny holds towards its node");
    let open_egress = knp(
        "b",
        "deny",
        "  podSelector: {}
  policyTypes: [Ingress]
",
    );
    assert!(World::new(&cluster, &open_egress).allows("b/x", "b/agent", "80/TCP"), "without egress policy it passes");
    assert!(!w.allows("b/agent", "b/far", "80/TCP"), "another node's pod polices the host IP");
    let by_ip = World::new(
        &cluster,
        &knp("b", "p", "  podSelector: {}\n  ingress:\n  - from: [{ipBlock: {cidr: 192.168.0.0/24}}]\n"),
    );
    assert!(by_ip.allows("b/agent", "b/far", "80/TCP"), "host traffic matches ipBlock");
    let by_sel = World::new(&cluster, &knp("b", "p", "  podSelector: {}\n  ingress:\n  - from: [{podSelector: {}}]\n"));
    assert!(!by_sel.allows("b/agent", "b/far", "80/TCP"), "hostNetwork pods are not selected as peers");
}

#[test]
fn c1_endpoints_inherit_namespace_labels_as_pcns() {
    let w =
        w(&calico("GlobalNetworkPolicy", None, "p", "  selector: pcns.team == 't1'\n  ingress:\n  - action: Deny\n"));
    assert!(!w.allows("b/z", "a/x", "80/TCP"));
    assert!(w.allows("a/x", "b/z", "80/TCP"));
}

#[test]
fn c2_namespaced_policy_selects_only_its_namespace() {
    let w = w(&calico("NetworkPolicy", Some("a"), "p", "  selector: app == 'x'\n  ingress:\n  - action: Deny\n"));
    assert!(!w.allows("a/w", "a/x", "80/TCP"));
    assert!(w.allows("a/w", "b/x", "80/TCP"), "b/x has app x but lives in b");
}

#[test]
fn c2_global_policy_namespace_selector() {
    let w = w(&calico(
        "GlobalNetworkPolicy",
        None,
        "p",
        "  namespaceSelector: team == 't2'\n  selector: all()\n  ingress:\n  - action: Deny\n",
    ));
    assert!(!w.allows("a/x", "b/z", "80/TCP"));
    assert!(w.allows("b/z", "a/x", "80/TCP"));
}

#[test]
fn c3_rule_selector_scope_own_namespace_for_np_all_for_gnp() {
    let np = w(&calico(
        "NetworkPolicy",
        Some("a"),
        "p",
        "  selector: app == 'x'\n  ingress:\n  - action: Allow\n    source: {selector: \"app in {'w', 'z'}\"}\n",
    ));
    assert!(np.allows("a/w", "a/x", "80/TCP"));
    assert!(!np.allows("b/z", "a/x", "80/TCP"), "NetworkPolicy rule selectors stay in their namespace");
    let gnp = w(&calico(
        "GlobalNetworkPolicy",
        None,
        "p",
        "  selector: app == 'x'\n  ingress:\n  - action: Allow\n    source: {selector: \"app in {'w', 'z'}\"}\n",
    ));
    assert!(gnp.allows("b/z", "a/x", "80/TCP"));
}

#[test]
fn c3_namespace_selector_in_rules() {
    let w = w(&calico("NetworkPolicy", Some("a"), "p", "  selector: app == 'x'\n  ingress:\n  - action: Allow\n    source: {namespaceSelector: team == 't2', selector: app == 'z'}\n"));
    assert!(w.allows("b/z", "a/x", "80/TCP"));
    assert!(!w.allows("b/x", "a/x", "80/TCP"));
    assert!(!w.allows("a/w", "a/x", "80/TCP"));
}

#[test]
fn c3_not_selector_is_not_namespace_scoped_and_matches_outside_ips() {
    let w = w(&calico(
        "NetworkPolicy",
        Some("a"),
        "p",
        "  selector: app == 'x'\n  ingress:\n  - action: Allow\n    source: {notSelector: app == 'w'}\n",
    ));
    // Positive part is the policy namespace: a/w excluded by notSelector.
    assert!(!w.allows("a/w", "a/x", "80/TCP"));
    assert!(!w.allows("b/z", "a/x", "80/TCP"), "a namespaced rule with a notSelector only sees its namespace");
    let g = w_gnp_not();
    assert!(g.allows("192.0.2.7", "a/x", "80/TCP"), "notSelector alone matches addresses Calico does not know");
    assert!(!g.allows("a/w", "a/x", "80/TCP"));
}

fn w_gnp_not() -> World {
    w(&calico(
        "GlobalNetworkPolicy",
        None,
        "p",
        "  selector: app == 'x'\n  ingress:\n  - action: Allow\n    source: {notSelector: app == 'w'}\n",
    ))
}

#[test]
fn c4_network_sets_match_by_address_and_global_selector() {
    let sets = [
        calico("GlobalNetworkSet", None, "ext", "  nets: [198.51.100.0/24]\n")
            .replace("metadata:\n  name: ext\n", "metadata:\n  name: ext\n  labels: {kind: partner}\n"),
        calico("NetworkSet", Some("a"), "office", "  nets: [203.0.113.0/24]\n")
            .replace("  namespace: a\n", "  namespace: a\n  labels: {kind: partner}\n"),
    ]
    .concat();
    let np = [
        sets.clone(),
        calico(
            "NetworkPolicy",
            Some("a"),
            "p",
            "  selector: app == 'x'\n  ingress:\n  - action: Allow\n    source: {selector: kind == 'partner'}\n",
        ),
    ]
    .concat();
    let w1 = w(&np);
    assert!(w1.allows("203.0.113.9", "a/x", "80/TCP"), "own namespace's NetworkSet");
    assert!(!w1.allows("198.51.100.9", "a/x", "80/TCP"), "GlobalNetworkSets need global()");
    let g = [sets, calico("NetworkPolicy", Some("a"), "p", "  selector: app == 'x'\n  ingress:\n  - action: Allow\n    source: {namespaceSelector: global(), selector: kind == 'partner'}\n")].concat();
    let w2 = w(&g);
    assert!(w2.allows("198.51.100.9", "a/x", "80/TCP"));
    assert!(!w2.allows("203.0.113.9", "a/x", "80/TCP"), "global() excludes namespaced sets");
}

#[test]
fn c5_nets_not_nets_ports_not_ports_protocols() {
    let w = w(&calico("GlobalNetworkPolicy", None, "p", "  selector: app == 'x'\n  ingress:\n  - action: Allow\n    protocol: TCP\n    source: {nets: [10.0.0.0/16], notNets: [10.0.2.0/24]}\n    destination: {ports: [\"8000:8999\", 443], notPorts: [8080]}\n"));
    assert!(w.allows("a/w", "a/x", "8001/TCP"));
    assert!(w.allows("a/w", "a/x", "443/TCP"));
    assert!(!w.allows("a/w", "a/x", "8080/TCP"), "notPorts");
    assert!(!w.allows("a/w", "a/x", "8001/UDP"), "protocol");
    assert!(!w.allows("b/z", "a/x", "8001/TCP"), "notNets");
    let np = w_not_proto();
    assert!(!np.allows("a/w", "a/x", "53/UDP"));
    assert!(np.allows("a/w", "a/x", "53/TCP"));
}

fn w_not_proto() -> World {
    w(&calico(
        "GlobalNetworkPolicy",
        None,
        "p",
        "  selector: app == 'x'\n  ingress:\n  - action: Allow\n    notProtocol: UDP\n",
    ))
}

#[test]
fn c5_ip_version_and_named_ports_without_protocol() {
    let w = w(&calico("GlobalNetworkPolicy", None, "p", "  selector: app == 'x'\n  ingress:\n  - action: Allow\n    ipVersion: 6\n  - action: Allow\n    destination: {ports: [dns]}\n"));
    assert!(!w.allows("a/w", "a/x", "80/TCP"), "ipVersion 6 never matches IPv4");
    assert!(w.allows("a/w", "a/x", "53/UDP"), "a named port with no rule protocol matches its own protocol");
    assert!(!w.allows("a/w", "a/x", "53/TCP"));
}

#[test]
fn c6_log_continues_deny_stops_first_match_wins() {
    let w = w(&calico("GlobalNetworkPolicy", None, "p", "  selector: app == 'x'\n  ingress:\n  - action: Log\n  - action: Deny\n    source: {selector: app == 'w'}\n  - action: Allow\n"));
    assert!(!w.allows("a/w", "a/x", "80/TCP"));
    assert!(w.allows("b/z", "a/x", "80/TCP"));
}

#[test]
fn c6_c8_pass_skips_to_next_tier_and_end_of_tier_denies() {
    let p = [
        "---\napiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: security}\nspec: {order: 100}\n".to_string(),
        calico("GlobalNetworkPolicy", None, "sec", "  tier: security\n  selector: app == 'x'\n  ingress:\n  - action: Pass\n    source: {selector: app == 'w'}\n  - action: Allow\n    source: {selector: app == 'z'}\n"),
        knp("a", "deny", "  podSelector: {}\n"),
    ]
    .concat();
    let w = w(&p);
    assert!(!w.allows("a/w", "a/x", "80/TCP"), "passed to the default tier, which denies");
    assert!(w.allows("b/z", "a/x", "80/TCP"), "allowed in security: default tier never consulted");
    assert!(!w.allows("b/x", "a/x", "80/TCP"), "no rule in security matched: end of tier denies");
    assert!(!w.allows("b/z", "a/w", "80/TCP"), "security does not apply to a/w; default tier denies");
}

#[test]
fn c8_pass_in_the_last_tier_reaches_the_profile_and_pass_default_tiers() {
    let w = w(&calico("GlobalNetworkPolicy", None, "p", "  selector: app == 'x'\n  ingress:\n  - action: Pass\n"));
    assert!(w.allows("a/w", "a/x", "80/TCP"));
    let p = [
        "---\napiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: soft}\nspec: {order: 5, defaultAction: Pass}\n".to_string(),
        calico("GlobalNetworkPolicy", None, "s", "  tier: soft\n  selector: app == 'x'\n  ingress:\n  - action: Deny\n    source: {selector: app == 'z'}\n"),
    ]
    .concat();
    let soft = w_str(&p);
    assert!(!soft.allows("b/z", "a/x", "80/TCP"));
    assert!(soft.allows("a/w", "a/x", "80/TCP"), "tier defaultAction Pass");
}

fn w_str(p: &str) -> World {
    w(p)
}

#[test]
fn c7_order_then_name_and_nil_order_last() {
    let p = [
        calico(
            "GlobalNetworkPolicy",
            None,
            "b-allow",
            "  order: 10\n  selector: app == 'x'\n  ingress:\n  - action: Allow\n",
        ),
        calico(
            "GlobalNetworkPolicy",
            None,
            "a-deny",
            "  order: 10\n  selector: app == 'x'\n  ingress:\n  - action: Deny\n",
        ),
        calico(
            "GlobalNetworkPolicy",
            None,
            "early",
            "  order: 5\n  selector: app == 'x'\n  ingress:\n  - action: Allow\n    source: {selector: app == 'z'}\n",
        ),
        calico("GlobalNetworkPolicy", None, "nil", "  selector: app == 'x'\n  ingress:\n  - action: Allow\n"),
    ]
    .concat();
    let w = w(&p);
    assert!(w.allows("b/z", "a/x", "80/TCP"), "order 5 runs first");
    assert!(!w.allows("a/w", "a/x", "80/TCP"), "a-deny sorts before b-allow at equal order");
}

#[test]
fn c9_kubernetes_policies_sit_at_order_1000_in_the_default_tier() {
    let p = [
        knp("a", "allow-all", "  podSelector: {}\n  ingress:\n  - {}\n"),
        calico(
            "NetworkPolicy",
            Some("a"),
            "deny-y",
            "  order: 500\n  selector: all()\n  ingress:\n  - action: Deny\n    source: {selector: app == 'w'}\n",
        ),
        calico(
            "NetworkPolicy",
            Some("a"),
            "deny-z",
            "  order: 2000\n  selector: all()\n  ingress:\n  - action: Deny\n    source: {namespaceSelector: all()}\n",
        ),
    ]
    .concat();
    let w = w(&p);
    assert!(!w.allows("a/w", "a/x", "80/TCP"), "order 500 Deny runs before the k8s Allow");
    assert!(w.allows("b/z", "a/x", "80/TCP"), "order 2000 Deny comes after the k8s Allow");
}

#[test]
fn c10_calico_types_default_to_egress_only_for_egress_rules() {
    let w = w(&calico("NetworkPolicy", Some("a"), "p", "  selector: app == 'x'\n  egress:\n  - action: Deny\n"));
    assert!(!w.allows("a/x", "b/z", "80/TCP"));
    assert!(w.allows("a/w", "a/x", "80/TCP"), "ingress not affected (differs from K2)");
}

#[test]
fn c13_staged_policies_are_not_enforced_but_evaluate_with_staged_view() {
    let p = [
        knp("a", "open", "  podSelector: {}\n  ingress:\n  - {}\n"),
        "---\napiVersion: projectcalico.org/v3\nkind: StagedKubernetesNetworkPolicy\nmetadata: {name: open, namespace: a}\nspec:\n  podSelector: {}\n  ingress: []\n".to_string(),
        calico("StagedGlobalNetworkPolicy", None, "deny-z", "  selector: app == 'w'\n  ingress:\n  - action: Deny\n"),
    ]
    .concat();
    let enforced = World::new(&base(), &p);
    assert!(enforced.allows("b/z", "a/x", "80/TCP"));
    assert!(enforced.allows("a/x", "a/w", "80/TCP"));
    let staged = World::with_view(&base(), &p, View::Staged);
    assert!(!staged.allows("b/z", "a/x", "80/TCP"), "the staged version replaces the enforced one");
    assert!(!staged.allows("a/x", "a/w", "80/TCP"));
    let del = [
        knp("a", "deny", "  podSelector: {}\n"),
        "---\napiVersion: projectcalico.org/v3\nkind: StagedKubernetesNetworkPolicy\nmetadata: {name: deny, namespace: a}\nspec:\n  stagedAction: Delete\n".to_string(),
    ]
    .concat();
    assert!(!World::new(&base(), &del).allows("b/z", "a/x", "80/TCP"));
    assert!(World::with_view(&base(), &del, View::Staged).allows("b/z", "a/x", "80/TCP"), "staged Delete removes it");
}

#[test]
fn l7_http_rules_decide_l4_and_carry_a_caveat() {
    use netward::analysis::{Caveat, Flow};
    let w = w(&calico(
        "GlobalNetworkPolicy",
        None,
        "p",
        "  selector: app == 'x'\n  ingress:\n  - action: Allow\n    http: {methods: [GET]}\n",
    ));
    assert!(w.allows("a/w", "a/x", "80/TCP"));
    let flow = Flow {
        src: w.an.resolve("a/w").unwrap(),
        dst: w.an.resolve("a/x").unwrap(),
        protocol: netward::model::Protocol::Tcp,
        dst_port: 80,
        src_port: None,
    };
    let v = w.an.evaluate(&flow);
    assert!(v.caveats().any(|c| matches!(c, Caveat::Http(_))), "{v:?}");
    let fp = netward::model::port::FlowPort { port: 80, protocol: netward::model::Protocol::Tcp };
    let m = netward::analysis::Matrix::compute(&w.an, &[fp]);
    let (x, y) = (
        w.an.endpoints.iter().position(|e| e.id == "a/x").unwrap(),
        w.an.endpoints.iter().position(|e| e.id == "a/w").unwrap(),
    );
    assert!(m.caveated(0, y, x), "the matrix marks the cell an http rule decided");
    assert!(!m.caveated(0, x, y), "a/w is not selected by the http policy");
}

#[test]
fn pods_that_are_not_running_are_not_endpoints() {
    let c = [base(), "---\napiVersion: v1\nkind: Pod\nmetadata: {name: done, namespace: a}\nspec: {nodeName: n1}\nstatus: {phase: Succeeded, podIP: 10.0.1.9}\n".to_string()].concat();
    let w = World::new(&c, "");
    assert!(w.an.endpoint("a/done").is_none());
    assert!(w.an.endpoint("a/x").is_some());
}

#[test]
fn dual_stack_and_ipv6_only_pods() {
    let c = [
        namespace("a", ""),
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: d, namespace: a, labels: {app: d}}\nspec: {nodeName: n1}\nstatus: {phase: Running, podIP: 10.0.0.1, podIPs: [{ip: 10.0.0.1}, {ip: 'fd00::1'}]}\n".to_string(),
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: six, namespace: a, labels: {app: six}}\nspec: {nodeName: n1}\nstatus: {phase: Running, podIP: 'fd00::2'}\n".to_string(),
    ]
    .concat();
    let p = knp(
        "a",
        "p",
        "  podSelector: {matchLabels: {app: six}}\n  ingress:\n  - from: [{ipBlock: {cidr: 'fd00::/64'}}]\n",
    );
    let w = World::new(&c, &p);
    assert!(w.allows("a/d", "a/six", "80/TCP"), "decided over IPv6, the family both share");
    assert!(w.allows("a/six", "a/d", "80/TCP"), "a/d is not isolated");
}

#[test]
fn c3_blank_rule_selector_means_unset() {
    let w = w(&calico(
        "NetworkPolicy",
        Some("a"),
        "p",
        "  selector: app == 'x'\n  ingress:\n  - action: Allow\n    source: {selector: \"\"}\n",
    ));
    assert!(w.allows("b/z", "a/x", "80/TCP"), "no selector, no namespace restriction");
}

#[test]
fn snapshots_in_kubectl_json_shape_merge_across_files() {
    use std::sync::Arc;
    let json = r#"{"apiVersion": "v1", "kind": "List", "items": [
      {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "j", "labels": {"team": "json"}}},
      {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "j", "labels": {"app": "x"}},
       "spec": {"nodeName": "n1", "serviceAccountName": "default", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
       "status": {"phase": "Running", "podIP": "10.9.0.1", "podIPs": [{"ip": "10.9.0.1"}, {"ip": "fd00::9"}]}}]}"#;
    let mut diags = Vec::new();
    let mut c = netward::manifest::load::load_cluster_text(&Arc::from("a.json"), json, &mut diags);
    c.merge(crate::support::cluster(&base()));
    assert!(diags.is_empty(), "{diags:?}");
    let eps = c.endpoints();
    assert_eq!(eps.len(), 5);
    let p = eps.iter().find(|e| e.id == "j/p").expect("pod from the JSON file");
    assert_eq!(p.ips.len(), 2);
    assert_eq!(p.labels.get("pcns.team").map(String::as_str), Some("json"));
    assert_eq!(p.labels.get("pcns.kubernetes.io/metadata.name").map(String::as_str), Some("j"));
    assert_eq!(p.labels.get("projectcalico.org/serviceaccount").map(String::as_str), Some("default"));
}

#[test]
fn c2_c3_service_accounts_in_policies_and_rules() {
    let c = [
        base(),
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: robot, namespace: b, labels: {app: r}}\nspec: {nodeName: n1, serviceAccountName: deployer}\nstatus: {phase: Running, podIP: 10.0.2.9}\n".to_string(),
    ]
    .concat();
    let by_name = calico(
        "GlobalNetworkPolicy",
        None,
        "p",
        "  selector: app == 'x'\n  ingress:\n  - action: Allow\n    source: {serviceAccounts: {names: [deployer]}}\n",
    );
    let w1 = World::new(&c, &by_name);
    assert!(w1.allows("b/robot", "a/x", "80/TCP"));
    assert!(!w1.allows("b/z", "a/x", "80/TCP"));
    let by_sel = calico(
        "GlobalNetworkPolicy",
        None,
        "p",
        "  serviceAccountSelector: projectcalico.org/name == 'deployer'\n  egress:\n  - action: Deny\n",
    );
    let w2 = World::new(&c, &by_sel);
    assert!(!w2.allows("b/robot", "a/x", "80/TCP"), "the policy applies through the service account");
    assert!(w2.allows("b/z", "a/x", "80/TCP"));
}

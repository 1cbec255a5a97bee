//! Pure tests of the enforcer: what gets compiled, what a change costs.

use std::collections::BTreeMap;
use std::sync::Arc;

use netward_policy::analysis::{Analysis, View};
use netward_policy::manifest::load::{load_cluster_text, load_policy_texts};

use crate::compile::{compile, Mode, NodeSpec};
use crate::diff::diff;
use crate::live::{element_key, Live};
use crate::names::pod_key;
use crate::ruleset::{Element, Match, Ruleset, Verdict};

const CLUSTER: &str = "
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: ns, labels: {app: a}}
spec: {nodeName: n1, containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
status: {phase: Running, podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: ns, labels: {app: b}}
spec: {nodeName: n1}
status: {phase: Running, podIP: 10.0.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: far, namespace: ns, labels: {app: b}}
spec: {nodeName: n2}
status: {phase: Running, podIP: 10.0.9.9}
";

const POLICIES: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-from-b, namespace: ns}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: b}}}]
    ports: [{port: http}, {port: 9000, endPort: 9100}]
";

/// The links a ptp CNI gives the local pods (one `veth…` per pod).
fn links() -> BTreeMap<std::net::IpAddr, String> {
    [("10.0.0.1", "veth1a2b3c4d"), ("10.0.0.2", "veth5e6f7a8b")]
        .into_iter()
        .map(|(ip, l)| (ip.parse().expect("ip"), l.to_string()))
        .collect()
}

fn build(cluster: &str, policies: &str, mode: Mode) -> Ruleset {
    let mut d = Vec::new();
    let mut c = load_cluster_text(&Arc::from("c.yaml"), cluster, &mut d);
    c.fill_missing_namespaces();
    let p = load_policy_texts(std::iter::once((Arc::from("p.yaml"), policies)), &mut d);
    assert!(d.is_empty(), "{d:?}");
    let an = Analysis::new(&p, &c, View::Enforced);
    compile(&an, &NodeSpec { node: "n1".into(), mode, links: links(), ..Default::default() })
}

#[test]
fn only_isolated_local_pods_get_dispatch_entries() {
    let rs = build(CLUSTER, POLICIES, Mode::Enforce);
    let ingress = &rs.maps["ingress-dispatch-4"];
    assert_eq!(ingress.elements.len(), 1, "only a is isolated (for ingress)");
    assert!(rs.maps["egress-dispatch-4"].elements.is_empty(), "nobody is isolated for egress");
    let local: Vec<String> = rs.sets["local-pods-4"].elements.iter().map(element_key).collect();
    assert_eq!(
        local,
        vec!["veth1a2b3c4d|10.0.0.1", "veth5e6f7a8b|10.0.0.2"],
        "links as the routes say; far is elsewhere"
    );
    let chains: Vec<&String> = ingress.elements.values().collect();
    assert_eq!(chains, vec![&format!("pod-{}-in", pod_key("ns", "a"))]);
}

#[test]
fn selector_sets_hold_pods_of_every_node() {
    let rs = build(CLUSTER, POLICIES, Mode::Enforce);
    let set = rs
        .sets
        .iter()
        .find(|(n, s)| n.starts_with("sel-") && n.ends_with("-4") && !s.elements.is_empty())
        .expect("the app=b set");
    let members: Vec<String> = set.1.elements.iter().map(element_key).collect();
    assert_eq!(members, vec!["10.0.0.2", "10.0.9.9"]);
    let np: Vec<String> = rs.sets["np-http-4"].elements.iter().map(element_key).collect();
    assert_eq!(np, vec!["10.0.0.1|tcp|8080"]);
}

#[test]
fn ports_of_one_rule_become_alternatives() {
    let rs = build(CLUSTER, POLICIES, Mode::Enforce);
    let chain = rs.chains.iter().find(|(n, _)| n.starts_with("pol-in-")).expect("policy chain").1;
    // v4 and v6 x (named port, range): four rules, all accepting.
    assert_eq!(chain.rules.len(), 4);
    assert!(chain.rules.iter().all(|r| r.verdict == Verdict::Accept));
    assert!(chain.rules.iter().any(|r| r.matches.iter().any(|m| matches!(m, Match::NamedPort { .. }))));
    assert!(chain.rules.iter().any(|r| r.matches.iter().any(|m| matches!(m, Match::Port { .. }))));
}

#[test]
fn audit_mode_logs_and_accepts_instead_of_dropping() {
    let rs = build(CLUSTER, POLICIES, Mode::Audit);
    let all: Vec<&Verdict> = rs.chains.values().flat_map(|c| c.rules.iter().map(|r| &r.verdict)).collect();
    assert!(all.iter().any(|v| matches!(v, Verdict::LogAccept(p) if p.contains("(audit)"))));
    let pod_chains: Vec<_> = rs.chains.iter().filter(|(n, _)| n.starts_with("pod-")).collect();
    assert!(pod_chains
        .iter()
        .all(|(_, c)| !c.rules.iter().any(|r| r.verdict == Verdict::Drop && r.matches != vec![Match::CtInvalid])));
}

#[test]
fn a_pod_joining_elsewhere_is_element_operations_only() {
    let before = build(CLUSTER, POLICIES, Mode::Enforce);
    let more = format!("{CLUSTER}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: far2, namespace: ns, labels: {{app: b}}}}\nspec: {{nodeName: n3}}\nstatus: {{phase: Running, podIP: 10.0.9.10}}\n");
    let after = build(&more, POLICIES, Mode::Enforce);
    let c = diff(Some(&Live::of(&before)), &after);
    assert!(c.new_chains.is_empty() && c.rewritten_chains.is_empty() && c.deleted_chains.is_empty(), "{c:?}");
    assert_eq!(c.add_elements.len(), 1, "{c:?}");
    assert!(c.remove_elements.is_empty(), "adjacent addresses are not merged: {c:?}");
}

#[test]
fn a_policy_edit_rewrites_one_chain() {
    let before = build(CLUSTER, POLICIES, Mode::Enforce);
    let after = build(CLUSTER, &POLICIES.replace("endPort: 9100", "endPort: 9200"), Mode::Enforce);
    let c = diff(Some(&Live::of(&before)), &after);
    assert_eq!(c.rewritten_chains.len(), 1, "{c:?}");
    assert_eq!(c.new_sets.len(), 1, "the new port list is a new named set: {c:?}");
    assert_eq!(c.deleted_sets.len(), 1, "{c:?}");
}

#[test]
fn no_change_is_no_work_and_a_missing_table_is_created() {
    let rs = build(CLUSTER, POLICIES, Mode::Enforce);
    assert!(diff(Some(&Live::of(&rs)), &rs).is_empty());
    assert!(diff(None, &rs).create_table);
}

#[test]
fn pod_keys_are_short_and_stable() {
    let n = pod_key("a-very-long-namespace-name", "a-very-long-pod-name-0123456789");
    assert_eq!(n.len(), 11);
    assert_eq!(n, pod_key("a-very-long-namespace-name", "a-very-long-pod-name-0123456789"));
    assert_ne!(n, pod_key("other", "pod"));
}

// Regression (#14): egress was dispatched by `iifname . ip saddr` with
// interface names netward made up, which no CNI uses: a pod wired by ptp or
// a bridge kept its egress open. Dispatch is by address now; links only
// feed anti-spoofing, and a pod without a known link is still policed.
#[test]
fn egress_is_dispatched_by_address_whatever_the_interfaces_are_called() {
    let egress_policy = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: e, namespace: ns}\nspec:\n  podSelector: {matchLabels: {app: a}}\n  policyTypes: [Egress]\n";
    let mut d = Vec::new();
    let mut c = load_cluster_text(&Arc::from("c.yaml"), CLUSTER, &mut d);
    c.fill_missing_namespaces();
    let p = load_policy_texts(std::iter::once((Arc::from("p.yaml"), egress_policy)), &mut d);
    let an = Analysis::new(&p, &c, View::Enforced);
    for links in [links(), BTreeMap::new()] {
        let rs = compile(
            &an,
            &NodeSpec { node: "n1".into(), mode: Mode::Enforce, links: links.clone(), ..Default::default() },
        );
        let egress: Vec<(String, &String)> =
            rs.maps["egress-dispatch-4"].elements.iter().map(|(k, v)| (element_key(k), v)).collect();
        assert_eq!(egress, vec![("10.0.0.1".to_string(), &format!("pod-{}-eg", pod_key("ns", "a")))]);
        let text = crate::nft::render(&rs);
        assert!(text.contains("ip saddr vmap @egress-dispatch-4"), "{text}");
        assert_eq!(rs.sets["local-ifaces"].elements.len(), links.len(), "spoof checks only where the link is known");
    }
}

#[test]
fn rendered_text_and_element_keys_agree() {
    let rs = build(CLUSTER, POLICIES, Mode::Enforce);
    let text = crate::nft::render(&rs);
    for (name, s) in &rs.sets {
        assert!(text.contains(&format!("set {name} {{")), "{name}");
        for e in &s.elements {
            if let Element::Net(n) = e {
                assert!(text.contains(&n.addr().to_string()), "{n} in {name}");
            }
        }
    }
    assert!(text.starts_with("#!/usr/sbin/nft -f\n"));
    assert!(text.contains("add table inet netward\ndelete table inet netward\n"), "atomic replace prelude");
}

#[test]
fn except_is_subtracted_into_disjoint_cidrs() {
    use crate::compile::subtract;
    let n = |s: &str| s.parse::<ipnet::IpNet>().unwrap();
    let out = subtract(&[n("10.0.0.0/16")], &[n("10.0.2.2/32")]);
    assert_eq!(out.len(), 16, "{out:?}");
    assert!(out.iter().all(|x| !x.contains(&"10.0.2.2".parse::<std::net::IpAddr>().unwrap())));
    assert!(out.iter().any(|x| x.contains(&"10.0.2.3".parse::<std::net::IpAddr>().unwrap())));
    let total: u64 = out.iter().map(|x| 1u64 << (32 - x.prefix_len())).sum();
    assert_eq!(total, 65535);
    assert!(subtract(&[n("10.0.0.0/8")], &[n("0.0.0.0/0")]).is_empty());
    assert_eq!(subtract(&[n("10.0.0.0/8")], &[n("11.0.0.0/8")]), vec![n("10.0.0.0/8")]);
}

#[test]
fn staged_policies_compile_to_log_only_chains() {
    let staged = "
apiVersion: projectcalico.org/v3
kind: StagedNetworkPolicy
metadata: {name: lockdown, namespace: ns}
spec:
  selector: app == 'a'
  ingress:
  - action: Deny
";
    let rs = build(CLUSTER, &format!("{POLICIES}---\n{staged}"), Mode::Enforce);
    let (name, chain) = rs.chains.iter().find(|(n, _)| n.contains("Staged")).expect("a staged chain");
    assert!(
        chain.rules.iter().all(|r| matches!(&r.verdict, Verdict::Log(p) if p.contains("staged deny"))),
        "{chain:?}"
    );
    let pod = rs.chains.iter().find(|(n, _)| n.starts_with("pod-") && n.ends_with("-in")).expect("a's ingress chain").1;
    assert!(pod.rules.iter().any(|r| r.verdict == Verdict::Jump(name.clone())), "jumped to first");
    // Without the staged policy the enforced verdicts are unchanged.
    let plain = build(CLUSTER, POLICIES, Mode::Enforce);
    assert_eq!(plain.chains.len() + 1, rs.chains.len());
}

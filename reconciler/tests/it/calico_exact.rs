//! Exact Calico 3.32: one test per class where netward once differed from
//! Calico's own source (projectcalico/calico at 87c15906). Each expectation
//! is derived from the upstream code the test cites, not from netward's
//! output; `World::allows` holds explain and the matrix to the same answer,
//! and the compiled ruleset is checked where the class changes what a node
//! programs.

use netward::analysis::{Analysis, View};
use netward::enforce::{Mode, NodeSpec};
use netward::model::cluster::SA_LABEL;

use crate::support::{base, calico, cluster, knp, namespace, policies, policy_errors, World};

fn w(policies: &str) -> World {
    World::new(&base(), policies)
}

/// A scheduled, running pod: `(ns, name, ips, labels, spec extra)`.
fn pod_with(ns: &str, name: &str, ips: &[&str], labels: &str, spec: &str) -> String {
    let list: Vec<String> = ips.iter().map(|ip| format!("{{ip: '{ip}'}}")).collect();
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {{{labels}}}}}\nspec: {{nodeName: n1{spec}}}\nstatus: {{phase: Running, podIP: '{}', podIPs: [{}]}}\n",
        ips[0],
        list.join(", ")
    )
}

/// Namespace a with two dual-stack pods, a/x (10.0.1.1, fd00::1:1) and a/peer.
fn dual_stack_pair() -> String {
    [
        namespace("a", ""),
        pod_with("a", "x", &["10.0.1.1", "fd00::1:1"], "app: x", ""),
        pod_with("a", "peer", &["10.0.1.2", "fd00::1:2"], "app: peer", ""),
    ]
    .concat()
}

/// The nft text of node n1's ruleset.
fn node_text(cluster_yaml: &str, policy_yaml: &str) -> String {
    let c = cluster(cluster_yaml);
    let an = Analysis::new(&policies(policy_yaml), &c, View::Enforced);
    let links = c
        .pods
        .iter()
        .filter(|p| p.node.as_deref() == Some("n1"))
        .flat_map(|p| p.ips.iter().map(move |ip| (*ip, format!("veth-{}", p.name))))
        .collect();
    let rs = netward::enforce::compile(
        &an,
        &NodeSpec { node: "n1".into(), mode: Mode::Enforce, links, ..Default::default() },
    );
    netward::enforce::nft::render(&rs)
}

fn one_error(yaml: &str, needle: &str) -> netward::diag::Diagnostic {
    let d = policy_errors(yaml);
    assert_eq!(d.len(), 1, "expected one error containing {needle:?}: {d:#?}");
    assert!(d[0].message.contains(needle), "{:?} does not contain {needle:?}", d[0].message);
    d[0].clone()
}

// ---- Verdicts ----

/// C7, felix/calc/policy_sorter.go `PolKVLess`: equal orders compare the
/// string `name/namespace/kind`. '-' (0x2d) sorts before '/' (0x2f), so
/// `block-exception/` runs before `block/`, and the KubernetesNetworkPolicy
/// `api-allow` before the Calico NetworkPolicy `api` of the same order.
#[test]
fn c7_equal_order_tie_break_is_the_name_namespace_kind_string() {
    let gnps = [
        calico(
            "GlobalNetworkPolicy",
            None,
            "block",
            "  order: 10\n  selector: app == 'x'\n  ingress:\n  - action: Deny\n",
        ),
        calico(
            "GlobalNetworkPolicy",
            None,
            "block-exception",
            "  order: 10\n  selector: app == 'x'\n  ingress:\n  - action: Allow\n",
        ),
    ]
    .concat();
    let w1 = w(&gnps);
    assert!(w1.allows("b/z", "a/x", "80/TCP"), "block-exception/ sorts before block/ and allows");
    let order = |an: &Analysis| -> Vec<String> {
        an.tiers.iter().flat_map(|t| t.policies.iter().map(|&i| an.policies[i].id.name.clone())).collect()
    };
    assert_eq!(order(&w1.an), ["block-exception", "block"]);

    // A Calico NetworkPolicy at the Kubernetes order, beside a Kubernetes policy.
    let mixed = [
        calico(
            "NetworkPolicy",
            Some("a"),
            "api",
            "  order: 1000\n  selector: app == 'x'\n  ingress:\n  - action: Deny\n",
        ),
        knp("a", "api-allow", "  podSelector: {matchLabels: {app: x}}\n  ingress:\n  - {}\n"),
    ]
    .concat();
    let w2 = w(&mixed);
    assert_eq!(order(&w2.an), ["api-allow", "api"]);
    assert!(w2.allows("b/z", "a/x", "80/TCP"), "the Kubernetes policy's allow runs first");
    // The node programs them in that order too.
    let text = node_text(&base(), &mixed);
    let jumps: Vec<&str> = text.lines().filter(|l| l.contains("jump pol-")).collect();
    let at = |id: &str| jumps.iter().position(|l| l.ends_with(&format!("{id}\""))).expect(id);
    assert!(at("KubernetesNetworkPolicy a/api-allow") < at("NetworkPolicy a/api"), "{jumps:#?}");
}

/// C7, api/pkg/apis/projectcalico/v3/tier.go CEL rules and validator.go
/// `validateTier`: the built-in tiers keep their order and defaultAction;
/// tier names are DNS labels of at most 63 characters.
#[test]
fn c7_well_known_tiers_are_fixed() {
    let tier = |name: &str, spec: &str| {
        format!("apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata:\n  name: {name}\nspec:\n{spec}")
    };
    one_error(&tier("default", "  order: 5\n"), "tier default is built in");
    one_error(&tier("default", "  defaultAction: Deny\n"), "order 1000000");
    one_error(&tier("kube-admin", "  order: 1000\n  defaultAction: Deny\n"), "defaultAction Pass");
    one_error(&tier("kube-baseline", "  order: 1000\n  defaultAction: Pass\n"), "order 10000000");
    // Written exactly as Calico has them, they load.
    policies(&tier("kube-admin", "  order: 1000\n  defaultAction: Pass\n"));
    policies(&tier("default", "  order: 1000000\n  defaultAction: Deny\n"));
    policies(&tier("kube-baseline", "  order: 10000000\n  defaultAction: Pass\n"));
    // DNS labels: 63 characters load, 64 do not, nor dots or capitals.
    policies(&tier(&"t".repeat(63), "  order: 5\n"));
    one_error(&tier(&"t".repeat(64), "  order: 5\n"), "DNS label");
    one_error(&tier("a.b", "  order: 5\n"), "DNS label");
}

/// C11, felix/calc/event_sequencer.go `tierInfoToProtoTierInfo`: workload
/// endpoints get the normal tiers only; doNotTrack and preDNAT policies go
/// to host endpoints, whatever their selector matches. applyOnForward alone
/// changes nothing for pods.
#[test]
fn c11_do_not_track_and_pre_dnat_policies_never_reach_pods() {
    let raw = calico(
        "GlobalNetworkPolicy",
        None,
        "raw",
        "  selector: all()\n  applyOnForward: true\n  doNotTrack: true\n  ingress:\n  - action: Deny\n",
    );
    let pre = calico(
        "GlobalNetworkPolicy",
        None,
        "pre",
        "  selector: all()\n  applyOnForward: true\n  preDNAT: true\n  ingress:\n  - action: Deny\n",
    );
    let fwd = calico(
        "GlobalNetworkPolicy",
        None,
        "fwd",
        "  selector: all()\n  applyOnForward: true\n  ingress:\n  - action: Deny\n",
    );
    assert!(w(&raw).allows("b/z", "a/x", "80/TCP"), "doNotTrack never applies to a pod");
    assert!(w(&pre).allows("b/z", "a/x", "80/TCP"), "preDNAT never applies to a pod");
    assert!(!w(&fwd).allows("b/z", "a/x", "80/TCP"), "applyOnForward alone still polices pods");
    // The node programs nothing for them, and validate says why.
    assert!(!node_text(&base(), &raw).contains("GlobalNetworkPolicy raw"));
    let set = policies(&raw);
    let warnings = netward::validate::warnings(&set, Some(&cluster(&base())));
    assert!(warnings.iter().any(|d| d.message.contains("host endpoints only")), "{warnings:#?}");
}

/// C3, felix/calc/rule_scanner.go `combineMatchesIfPossible`: with a
/// positive selector on the side (a namespaced policy's implicit namespace
/// term counts), the notSelector is folded in as `(pos) && !(not)` and
/// evaluated per labelled item that owns or contains the address; without
/// one, it stays an "in no matching item" test.
#[test]
fn c3_not_selector_folds_into_the_positive_selector() {
    // a/w's address also lies in a network set that the notSelector matches.
    let set = "---\napiVersion: projectcalico.org/v3\nkind: NetworkSet\nmetadata: {name: blocked, namespace: a, labels: {role: blocked}}\nspec: {nets: [10.0.1.0/24]}\n";
    let namespaced = calico(
        "NetworkPolicy",
        Some("a"),
        "p",
        "  selector: app == 'x'\n  ingress:\n  - action: Allow\n    source: {notSelector: role == 'blocked'}\n",
    );
    let w1 = w(&[set, &namespaced].concat());
    assert!(w1.allows("a/w", "a/x", "80/TCP"), "a/w matches `ns == a && !role == blocked` itself");
    assert!(!w1.allows("b/z", "a/x", "80/TCP"), "other namespaces stay out (the positive part)");
    let rule = &w1.an.policies[0].ingress[0];
    assert!(rule.source.not_selector.is_none(), "folded: {:?}", rule.source);

    // A GlobalNetworkPolicy has no positive selector here: the address is
    // tested against every matching item, and the network set excludes it.
    let global = calico(
        "GlobalNetworkPolicy",
        None,
        "p",
        "  selector: app == 'x'\n  ingress:\n  - action: Allow\n    source: {notSelector: role == 'blocked'}\n",
    );
    let gset = "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: blocked, labels: {role: blocked}}\nspec: {nets: [10.0.1.0/24]}\n";
    let w2 = w(&[gset, &global].concat());
    assert!(!w2.allows("a/w", "a/x", "80/TCP"), "inside a matching network set: excluded");
    assert!(w2.allows("b/z", "a/x", "80/TCP"));
}

/// C5, felix/rules/policy.go `FilterRuleToIPVersion`: a rule is rendered
/// per family, and one whose set CIDR fields hold no CIDR of a family does
/// not exist in that family.
#[test]
fn c5_a_rule_exists_only_in_the_families_of_its_cidrs() {
    let c = dual_stack_pair();
    let p = calico(
        "GlobalNetworkPolicy",
        None,
        "p",
        "  selector: app == 'x'\n  ingress:\n  - action: Allow\n    source: {notNets: ['fd00:99::/64']}\n",
    );
    let w = World::new(&c, &p);
    assert!(!w.allows("10.0.1.2", "a/x", "80/TCP"), "IPv4: the rule does not exist, the tier ends in Deny");
    assert!(w.allows("fd00::1:2", "a/x", "80/TCP"), "IPv6: outside the notNets, allowed");
    // The node has no IPv4 rule for it.
    let text = node_text(&c, &p);
    let rules: Vec<&str> = text.lines().filter(|l| l.contains("GlobalNetworkPolicy p rule 0")).collect();
    assert!(!rules.is_empty() && rules.iter().all(|l| l.contains("nfproto ipv6")), "{rules:#?}");
}

/// cal-upd globalnetworkpolicyprocessor.go, networkpolicyprocessor.go,
/// rules.go: `all()` becomes `has(projectcalico.org/serviceaccount)` only
/// in a GlobalNetworkPolicy's own serviceAccountSelector (by string
/// replacement over the whole selector); a rule's serviceAccounts.selector
/// and a namespaced policy's serviceAccountSelector keep `all()`; a
/// Kubernetes peer namespaceSelector other than `{}` gets no
/// `has(projectcalico.org/namespace)`; only "" means "no namespaceSelector".
#[test]
fn c2_c3_selector_rewriting_is_textual_as_upstream() {
    // A service account name of 63 characters: Calico gives no serviceaccount label.
    let long = "s".repeat(63);
    let c = [base(), pod_with("a", "long", &["10.0.1.7"], "app: x", &format!(", serviceAccountName: {long}"))].concat();
    let gnp =
        calico("GlobalNetworkPolicy", None, "p", "  serviceAccountSelector: all()\n  ingress:\n  - action: Deny\n");
    let w1 = World::new(&c, &gnp);
    assert!(w1.allows("b/z", "a/long", "80/TCP"), "has(serviceaccount) does not match a pod without the label");
    assert!(!w1.allows("b/z", "a/x", "80/TCP"));
    assert_eq!(w1.an.policies[0].selector.to_string(), format!("has({SA_LABEL})"));

    let np = calico("NetworkPolicy", Some("a"), "p", "  serviceAccountSelector: all()\n  ingress:\n  - action: Deny\n");
    let w2 = World::new(&c, &np);
    assert!(!w2.allows("b/z", "a/long", "80/TCP"), "a namespaced policy keeps all()");

    let rule_sa = calico(
        "GlobalNetworkPolicy",
        None,
        "p",
        "  selector: app == 'x'\n  ingress:\n  - action: Allow\n    source: {serviceAccounts: {selector: all()}}\n",
    );
    let w3 = World::new(&c, &rule_sa);
    assert!(w3.allows("a/long", "a/x", "80/TCP"), "a rule's serviceAccounts.selector keeps all()");

    // The replacement is textual: it reaches the user's selector and string literals.
    let literal = calico(
        "GlobalNetworkPolicy",
        None,
        "p",
        "  selector: app == 'all()'\n  namespaceSelector: all()\n  ingress:\n  - action: Deny\n",
    );
    let text = policies(&literal).policies[0].selector.to_string();
    assert!(text.contains("app == \"has(projectcalico.org/namespace)\""), "{text}");

    // A Kubernetes namespaceSelector with labels gets no has(namespace) term.
    let k =
        knp("a", "p", "  podSelector: {}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {team: t2}}}]\n");
    let sel = policies(&k).policies[0].ingress[0].source.selector.as_ref().expect("selector").to_string();
    assert!(!sel.contains("has(projectcalico.org/namespace)"), "{sel}");
    let k_all = knp("a", "p", "  podSelector: {}\n  ingress:\n  - from: [{namespaceSelector: {}}]\n");
    let sel = policies(&k_all).policies[0].ingress[0].source.selector.as_ref().expect("selector").to_string();
    assert!(sel.contains("has(projectcalico.org/namespace)"), "{{}} becomes all(), then has(namespace): {sel}");

    // " " is a namespaceSelector (all(), so any namespaced endpoint), "" is none.
    let blank = |v: &str| {
        calico(
            "GlobalNetworkPolicy",
            None,
            "p",
            &format!(
                "  selector: app == 'x'\n  ingress:\n  - action: Allow\n    source: {{namespaceSelector: '{v}'}}\n"
            ),
        )
    };
    assert!(!w(&blank(" ")).allows("192.0.2.1", "a/x", "80/TCP"), "' ': only namespaced endpoints");
    assert!(w(&blank(" ")).allows("b/z", "a/x", "80/TCP"));
    assert!(w(&blank("")).allows("192.0.2.1", "a/x", "80/TCP"), "'': no selector at all");
}

/// C1, cal-conv workload_endpoint_default.go `podToDefaultWorkloadEndpoint`
/// and conversion.go `IsValidCalicoWorkloadEndpoint` / `IsFinished`.
#[test]
fn c1_endpoints_and_their_labels() {
    let sa62 = "s".repeat(62);
    let sa63 = "s".repeat(63);
    let c = [
        namespace("a", ""),
        pod_with("a", "short", &["10.0.1.1"], "app: x", &format!(", serviceAccountName: {sa62}")),
        pod_with("a", "long", &["10.0.1.2"], "app: x", &format!(", serviceAccountName: {sa63}")),
        pod_with(
            "a",
            "sidecar",
            &["10.0.1.3"],
            "app: s",
            ", initContainers: [{name: proxy, restartPolicy: Always, ports: [{name: admin, containerPort: 9901}]}]",
        ),
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: unscheduled, namespace: a}\nstatus: {phase: Pending, podIP: 10.0.1.4}\n".into(),
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: unknown, namespace: a}\nspec: {nodeName: n1}\nstatus: {phase: Unknown, podIP: 10.0.1.5}\n".into(),
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: failed, namespace: a}\nspec: {nodeName: n1}\nstatus: {phase: Failed, podIP: 10.0.1.6}\n".into(),
    ]
    .concat();
    let w = World::new(&c, "");
    let labels = |id: &str| w.an.endpoint(id).expect(id).labels.clone();
    assert_eq!(labels("a/short").get(SA_LABEL), Some(&sa62), "shorter than 63: labelled");
    assert_eq!(labels("a/long").get(SA_LABEL), None, "63 characters: no label");
    assert!(w.an.endpoint("a/unscheduled").is_none(), "no nodeName: not an endpoint");
    assert!(w.an.endpoint("a/unknown").is_some(), "phase Unknown with an IP: still an endpoint");
    assert!(w.an.endpoint("a/failed").is_none(), "finished: not an endpoint");
    // Named ports from init containers (native sidecars).
    let p = calico(
        "GlobalNetworkPolicy",
        None,
        "p",
        "  selector: app == 's'\n  ingress:\n  - action: Allow\n    protocol: TCP\n    destination: {ports: [admin]}\n",
    );
    let w2 = World::new(&c, &p);
    assert!(w2.allows("a/short", "a/sidecar", "9901/TCP"));
    assert!(!w2.allows("a/short", "a/sidecar", "9902/TCP"));
}

// ---- Validation: accept what the API server accepts, refuse what it refuses ----

/// cal-valid validator.go (`validateIPNetwork`, `scanNets`, `validateRule`,
/// protocol names, numorstring `SupportsPorts`), policy names, staged
/// Delete, tier names.
#[test]
fn validation_refuses_what_calico_refuses() {
    let gnp = |rule: &str| calico("GlobalNetworkPolicy", None, "p", &format!("  ingress:\n  - action: Allow\n{rule}"));
    one_error(&gnp("    source: {nets: [10.0.1.1/16]}\n"), "host bits");
    one_error(&gnp("    source: {notNets: [10.0.1.1/16]}\n"), "host bits");
    one_error(&gnp("    protocol: ICMP\n    destination: {ports: [http]}\n"), "has no ports");
    one_error(&gnp("    protocol: 1\n    destination: {ports: [80]}\n"), "ports");
    one_error(&gnp("    protocol: tcp\n"), "unknown protocol \"tcp\"");
    one_error(&gnp("    protocol: ICMP\n    ipVersion: 6\n"), "ICMP needs ipVersion 4");
    one_error(&gnp("    protocol: ICMPv6\n    ipVersion: 4\n"), "ICMPv6 needs ipVersion 6");
    one_error(&gnp("    ipVersion: 6\n    source: {nets: [10.0.0.0/8]}\n"), "contradicts");
    one_error(&gnp("    source: {nets: [10.0.0.0/8]}\n    destination: {nets: ['fd00::/64']}\n"), "mix IPv4 and IPv6");
    one_error(&calico("GlobalNetworkPolicy", None, "a.b.c", "  selector: all()\n"), "is not a DNS label");
    policies(&calico("GlobalNetworkPolicy", None, "default.b", "  selector: all()\n"));
    one_error(
        &calico("StagedGlobalNetworkPolicy", None, "p", "  stagedAction: Delete\n  selector: app == 'x'\n"),
        "requires every other spec field to be empty",
    );
    policies(&calico("StagedGlobalNetworkPolicy", None, "p", "  stagedAction: Delete\n"));
    // Network sets may carry host bits.
    policies(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: s}\nspec: {nets: [10.0.1.1/16]}\n",
    );
}

/// k8s-validation accepts `policyTypes` repeats; cal-api accepts
/// `stagedAction: Learn`.
#[test]
fn validation_accepts_what_the_api_servers_accept() {
    let set = policies(&knp("a", "p", "  podSelector: {}\n  policyTypes: [Ingress, Ingress]\n"));
    assert!(set.policies[0].ingress_type && !set.policies[0].egress_type);
    let learn = calico(
        "StagedNetworkPolicy",
        Some("a"),
        "p",
        "  stagedAction: Learn\n  selector: app == 'x'\n  ingress:\n  - action: Deny\n",
    );
    let w = World::with_view(&base(), &learn, View::Staged);
    assert!(!w.allows("b/z", "a/x", "80/TCP"), "a Learn policy previews its rules");
    assert!(World::new(&base(), &learn).allows("b/z", "a/x", "80/TCP"), "and enforces nothing");
}

/// Selector errors point at the character the user wrote, through double
/// quotes with escapes and through folded scalars.
#[test]
fn selector_error_columns_follow_the_scalar_source() {
    // Decoded: app == "x" &&& b — the bad third '&' is character 14 of the value.
    let quoted = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: g\nspec:\n  selector: \"app == \\\"x\\\" &&& b\"\n";
    let d = one_error(quoted, "invalid selector");
    let line = quoted.lines().nth(5).expect("line 6");
    assert_eq!((d.pos.line, d.pos.col), (6, line.find("&&&").expect("&&&") as u32 + 3), "{d}");

    let folded = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: g\nspec:\n  selector: >\n    app == 'x' &&\n    &&& b\n";
    let d = one_error(folded, "invalid selector");
    assert_eq!(d.pos.line, 8, "{d}");
}

/// Dual stack in the matrix: a rule can exist in one family only (C5), so
/// two dual-stack pods may connect over IPv6 and not over IPv4. The matrix
/// decides such pairs per family, shows the deciding family's verdict
/// (IPv4, or IPv6 with `--family 6`) and caveats the cell.
#[test]
fn dual_stack_pairs_are_decided_per_family_in_the_matrix() {
    use netward::analysis::Matrix;
    use netward::model::port::FlowPort;
    use netward::report::{write_matrix, MatrixFormat};
    let c = dual_stack_pair();
    let p = calico(
        "GlobalNetworkPolicy",
        None,
        "p",
        "  selector: app == 'x'\n  ingress:\n  - action: Allow\n    source: {nets: ['fd00::/16']}\n",
    );
    let w = World::new(&c, &p);
    let fp = FlowPort::parse("80/TCP").expect("port");
    let at = |id: &str| w.an.endpoints.iter().position(|e| e.id == id).expect(id);
    let (peer, x) = (at("a/peer"), at("a/x"));
    let m = Matrix::compute(&w.an, &[fp]);
    assert!(!m.allowed(0, peer, x), "IPv4 decides by default: no IPv4 rule");
    assert!(m.caveated(0, peer, x) && m.family_split(0, peer, x), "and the cell says IPv6 differs");
    assert!(!m.caveated(0, x, peer), "the other direction is decided the same in both families");
    let counts = m.counts(0);
    assert_eq!((counts.family_split, counts.caveated), (1, 1));
    let m6 = Matrix::compute(&w.an, &[fp]).with_family_v6(true);
    assert!(m6.allowed(0, peer, x), "--family 6: allowed");
    assert_eq!(m6.counts(0).allowed, m.counts(0).allowed + 1);
    let mut out = Vec::new();
    write_matrix(&mut out, &m, MatrixFormat::Summary).expect("write");
    let text = String::from_utf8(out).expect("utf8");
    assert!(text.contains("1 dual-stack pairs that IPv4 and IPv6 decide differently"), "{text}");
    // explain agrees with each family.
    let v4 = w.an.flow_in("a/peer", "a/x", fp.protocol, fp.port, None, Some(false)).expect("flow");
    let v6 = w.an.flow_in("a/peer", "a/x", fp.protocol, fp.port, None, Some(true)).expect("flow");
    assert!(!w.an.evaluate(&v4).allowed && w.an.evaluate(&v6).allowed);
}

/// rules.go and selectors.go put no length limit on what they compose: a
/// Kubernetes namespaceSelector of sixty names keeps its restriction.
#[test]
fn c3_a_long_kubernetes_namespace_selector_keeps_its_restriction() {
    let names: Vec<String> = (0..60).map(|i| format!("team-namespace-{i:02}")).collect();
    let p = knp(
        "a",
        "p",
        &format!(
            "  podSelector: {{}}\n  ingress:\n  - from: [{{namespaceSelector: {{matchExpressions: [{{key: kubernetes.io/metadata.name, operator: In, values: [{}]}}]}}}}]\n",
            names.join(", ")
        ),
    );
    assert!(!w(&p).allows("b/z", "a/x", "80/TCP"), "b is not one of the sixty");
}

/// Calico composes a blank field as `( )`, which it cannot parse (Felix
/// drops the policy, or, for a blank notSelector beside a positive
/// selector, stops in rule_scanner.go): refused, so no commit holding one
/// is enforced as less than it says. Alone, a blank selector is all().
#[test]
fn c2_c3_blank_selectors_that_calico_cannot_compose_are_refused() {
    one_error(
        &calico("NetworkPolicy", Some("a"), "p", "  selector: ' '\n  ingress:\n  - action: Deny\n"),
        "cannot parse",
    );
    one_error(
        &calico("NetworkPolicy", Some("a"), "p", "  ingress:\n  - action: Deny\n    source: {selector: ' '}\n"),
        "cannot parse",
    );
    one_error(
        &calico(
            "GlobalNetworkPolicy",
            None,
            "p",
            "  selector: ' '\n  namespaceSelector: team == 't1'\n  ingress:\n  - action: Deny\n",
        ),
        "cannot parse",
    );
    one_error(
        &calico(
            "GlobalNetworkPolicy",
            None,
            "p",
            "  ingress:\n  - action: Deny\n    source: {selector: app == 'x', notSelector: ' '}\n",
        ),
        "cannot parse",
    );
    // Alone, " " parses as all().
    let lone = calico("GlobalNetworkPolicy", None, "p", "  selector: ' '\n  ingress:\n  - action: Deny\n");
    assert!(!w(&lone).allows("b/z", "a/x", "80/TCP"));
}

/// rule_scanner.go `namedPortsToIPSets`: a named port is an (address, port)
/// of an endpoint that matches the side's selector itself; network sets have
/// no ports, so a selector that matches only through one never reaches it.
#[test]
fn c5_named_ports_belong_to_endpoints_that_match_the_selector() {
    let set = "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: db, labels: {role: db}}\nspec: {nets: [10.0.2.0/24]}\n";
    let p = calico(
        "GlobalNetworkPolicy",
        None,
        "p",
        "  selector: app == 'x'\n  types: [Egress]\n  egress:\n  - action: Allow\n    protocol: TCP\n    destination: {selector: role == 'db', ports: [http]}\n",
    );
    let world = w(&[set, &p].concat());
    // b/z owns `http` (8080) and lies in the set, but has no role label.
    assert!(!world.allows("a/x", "b/z", "8080/TCP"));
    let labelled = p.replace("role == 'db'", "app == 'z'");
    assert!(w(&[set, &labelled].concat()).allows("a/x", "b/z", "8080/TCP"));
    // The node's named-port set holds only the matching endpoints.
    let text = node_text(&base(), &[set, &p].concat());
    assert!(!text.contains("10.0.2.2 . tcp . 8080"), "{text}");
}

/// cal-conv conversion.go `IsFinished` and `getPodIPs`; workload_endpoint_default.go.
#[test]
fn c1_finished_pods_annotated_addresses_and_service_accounts() {
    let c = [
        namespace("a", ""),
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: done, namespace: a}\nspec: {nodeName: n1}\nstatus: {phase: Completed, podIP: 10.0.1.1}\n".to_string(),
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: ann, namespace: a, annotations: {cni.projectcalico.org/podIPs: '10.0.1.2/32,fd00::2/128'}}\nspec: {nodeName: n1}\nstatus: {phase: Running}\n".to_string(),
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: going, namespace: a, deletionTimestamp: '2026-12-01T00:00:00Z', annotations: {cni.projectcalico.org/podIP: ''}}\nspec: {nodeName: n1}\nstatus: {phase: Running, podIP: 10.0.1.3}\n".to_string(),
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: nosa, namespace: a}\nspec: {nodeName: n1}\nstatus: {phase: Running, podIP: 10.0.1.4}\n".to_string(),
    ]
    .concat();
    let w = World::new(&c, "");
    assert!(w.an.endpoint("a/done").is_none(), "phase Completed is finished");
    let ann = w.an.endpoint("a/ann").expect("addresses from the Calico CNI annotation");
    assert_eq!(ann.ips.len(), 2);
    assert!(w.an.endpoint("a/going").is_none(), "deleted, and the CNI took its address away");
    let nosa = &w.an.endpoint("a/nosa").expect("endpoint").labels;
    assert!(!nosa.contains_key(SA_LABEL) && !nosa.contains_key("pcsa.projectcalico.org/name"), "{nosa:?}");
}

/// validator.go's name regexes, the StagedAction enum (policy_common.go),
/// the CEL rules on notProtocol and notICMP, `global(` tested as text,
/// `ParseCIDR` for rule nets and ipBlock, and the list rules on types.
#[test]
fn validation_follows_the_api_to_the_letter() {
    let gnp = |name: &str| calico("GlobalNetworkPolicy", None, name, "  selector: all()\n");
    let np = |name: &str| calico("NetworkPolicy", Some("a"), name, "  selector: all()\n");
    one_error(&gnp("knp.default.thing"), "is not");
    one_error(&np("default.a.b"), "is not");
    one_error(&np("a-.b"), "is not");
    policies(&np("knp.default.a.b.c"));
    policies(&np("ossg.default.a.b"));
    policies(&gnp("tier1.a"));

    let staged = |kind: &str, spec: &str| calico(kind, Some("a"), "p", spec);
    policies(&staged("StagedNetworkPolicy", "  stagedAction: Ignore\n"));
    policies(&staged("StagedNetworkPolicy", "  stagedAction: Delete\n  selector: ''\n"));
    one_error(&staged("StagedNetworkPolicy", "  stagedAction: Delete\n  ingress: []\n"), "empty");
    let sknp = |spec: &str| {
        format!("apiVersion: projectcalico.org/v3\nkind: StagedKubernetesNetworkPolicy\nmetadata: {{name: p, namespace: a}}\nspec:\n{spec}")
    };
    policies(&sknp("  stagedAction: Learn\n  podSelector: {}\n"));
    one_error(&sknp("  stagedAction: Delete\n  podSelector: {matchLabels: {app: x}}\n"), "empty");
    one_error(&sknp("  podSelector: {}\n  policyTypes: [Ingress, Ingress]\n"), "listed twice");
    one_error(&knp("a", "p", "  podSelector: {}\n  policyTypes: [Ingress, Ingress, Egress]\n"), "at most two");
    one_error(&calico("GlobalNetworkPolicy", None, "p", "  types: []\n"), "at least one");

    let rule = |r: &str| calico("GlobalNetworkPolicy", None, "p", &format!("  ingress:\n  - action: Allow\n{r}"));
    one_error(&rule("    notProtocol: ICMP\n    ipVersion: 6\n"), "notProtocol ICMP needs ipVersion 4");
    policies(&rule("    notICMP: {type: 8}\n"));
    one_error(&calico("GlobalNetworkPolicy", None, "p", "  selector: app == 'global(x)'\n"), "global()");
    policies(&rule("    source: {notSelector: global()}\n"));
    policies(&rule("    source: {namespaceSelector: ' global()'}\n"));
    one_error(&rule("    source: {namespaceSelector: '(global())'}\n"), "global() must be used alone");
    one_error(&rule("    source: {nets: [10.0.0.1]}\n"), "not a CIDR");
    one_error(&knp("a", "p", "  podSelector: {}\n  ingress:\n  - from: [{ipBlock: {cidr: 10.0.0.1}}]\n"), "not a CIDR");
}

/// Composing prints every group parenthesised: a namespaceSelector nested
/// forty groups deep, which loads as a selector, loads here too.
#[test]
fn composition_keeps_deeply_nested_fields() {
    let mut sel = "has(a)".to_string();
    for _ in 0..40 {
        sel = format!("has(b) || has(c) && ({sel})");
    }
    let p = calico(
        "GlobalNetworkPolicy",
        None,
        "p",
        &format!("  namespaceSelector: \"{sel}\"\n  ingress:\n  - action: Deny\n"),
    );
    policies(&p);
}

/// notICMP without an ICMP protocol also holds for what is not ICMP at all:
/// the node's ruleset keeps TCP matching.
#[test]
fn not_icmp_without_a_protocol_still_matches_other_protocols() {
    let p = calico(
        "GlobalNetworkPolicy",
        None,
        "p",
        "  selector: app == 'x'\n  ingress:\n  - action: Allow\n    notICMP: {type: 8}\n",
    );
    assert!(w(&p).allows("b/z", "a/x", "80/TCP"));
    let text = node_text(&base(), &p);
    let rules: Vec<&str> = text.lines().filter(|l| l.contains("GlobalNetworkPolicy p rule 0")).collect();
    assert!(rules.iter().any(|l| l.contains("l4proto != icmp")), "{rules:#?}");
}

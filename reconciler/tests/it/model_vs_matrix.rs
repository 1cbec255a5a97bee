//! Property: the bit-parallel matrix and the one-flow evaluator agree on every
//! pair of random worlds (Kubernetes and Calico policies, tiers with Pass,
//! network sets, named ports, ipBlocks, host-networked and dual-stack pods).

use proptest::prelude::*;

use netward::analysis::{Analysis, Matrix, View};
use netward::model::port::FlowPort;
use netward::model::Protocol;

use crate::support::{cluster, policies};

const APPS: [&str; 3] = ["a", "b", "c"];
const ROLES: [&str; 2] = ["x", "yy"];

#[expect(clippy::too_many_arguments, reason = "one generated pod; the strategy tuple maps onto it")]
fn pod_doc(
    i: usize,
    ns: usize,
    app: usize,
    role: Option<usize>,
    host: bool,
    v6: bool,
    dual: bool,
    node: usize,
    ports: u8,
) -> String {
    let role = role.map(|r| format!(", role: {}", ROLES[r])).unwrap_or_default();
    let ip = if host {
        format!("192.168.0.{}", node + 1)
    } else if v6 && !dual {
        format!("'fd00::{}'", i + 1)
    } else {
        format!("10.0.{}.{}", ns, i + 1)
    };
    let ips =
        if dual && !host { format!("\n  podIPs: [{{ip: {ip}}}, {{ip: 'fd00::{}'}}]", i + 1) } else { String::new() };
    let mut cps = String::new();
    if ports & 1 != 0 {
        cps.push_str("    - {name: web, containerPort: 80}\n");
    }
    if ports & 2 != 0 {
        cps.push_str("    - {name: web, containerPort: 81, protocol: UDP}\n");
    }
    if ports & 4 != 0 {
        cps.push_str("    - {name: alt, containerPort: 81}\n");
    }
    let cps = if cps.is_empty() { String::new() } else { format!("    ports:\n{cps}") };
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p{i}\n  namespace: ns{ns}\n  labels: {{app: {}{role}}}\nspec:\n  nodeName: n{node}\n  hostNetwork: {host}\n  containers:\n  - name: c\n{cps}status:\n  phase: Running\n  podIP: {ip}{ips}\n",
        APPS[app]
    )
}

fn arb_pod(i: usize) -> impl Strategy<Value = String> {
    (
        0..3usize,
        0..3usize,
        proptest::option::of(0..2usize),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.15),
        0..2usize,
        0..8u8,
    )
        .prop_map(move |(ns, app, role, host, v6, dual, node, ports)| {
            pod_doc(i, ns, app, role, host, v6, dual, node, ports)
        })
}

fn arb_label_selector() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{}".to_string()),
        (0..3usize).prop_map(|a| format!("{{matchLabels: {{app: {}}}}}", APPS[a])),
        (0..2usize)
            .prop_map(|r| format!("{{matchExpressions: [{{key: role, operator: NotIn, values: [{}]}}]}}", ROLES[r])),
        Just("{matchExpressions: [{key: role, operator: Exists}]}".to_string()),
    ]
}

fn arb_ns_selector() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{}".to_string()),
        (0..3usize).prop_map(|n| format!("{{matchLabels: {{kubernetes.io/metadata.name: ns{n}}}}}")),
        Just("{matchLabels: {env: prod}}".to_string()),
    ]
}

fn arb_k8s_peer() -> impl Strategy<Value = String> {
    prop_oneof![
        arb_label_selector().prop_map(|s| format!("{{podSelector: {s}}}")),
        arb_ns_selector().prop_map(|s| format!("{{namespaceSelector: {s}}}")),
        (arb_label_selector(), arb_ns_selector())
            .prop_map(|(p, n)| format!("{{podSelector: {p}, namespaceSelector: {n}}}")),
        Just("{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.1.0/24]}}".to_string()),
        Just("{ipBlock: {cidr: 192.168.0.0/24}}".to_string()),
        Just("{ipBlock: {cidr: 'fd00::/64'}}".to_string()),
    ]
}

fn arb_k8s_port() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{port: 80}".to_string()),
        Just("{port: web}".to_string()),
        Just("{port: web, protocol: UDP}".to_string()),
        Just("{port: 80, endPort: 90}".to_string()),
        Just("{protocol: UDP}".to_string()),
    ]
}

fn arb_k8s_rule(peer_key: &'static str) -> impl Strategy<Value = String> {
    (proptest::collection::vec(arb_k8s_peer(), 0..3), proptest::collection::vec(arb_k8s_port(), 0..3)).prop_map(
        move |(peers, ports)| {
            let mut r = String::from("  - ");
            if !peers.is_empty() {
                r.push_str(&format!("{peer_key}: [{}]\n    ", peers.join(", ")));
            }
            if !ports.is_empty() {
                r.push_str(&format!("ports: [{}]\n", ports.join(", ")));
            } else if peers.is_empty() {
                r.push_str("{}\n");
            } else {
                r.push('\n');
            }
            r
        },
    )
}

fn arb_k8s_policy(i: usize) -> impl Strategy<Value = String> {
    (0..3usize, arb_label_selector(), proptest::collection::vec(arb_k8s_rule("from"), 0..3), proptest::collection::vec(arb_k8s_rule("to"), 0..3), 0..4usize).prop_map(
        move |(ns, sel, ing, eg, types)| {
            let types = ["", "  policyTypes: [Ingress]\n", "  policyTypes: [Egress]\n", "  policyTypes: [Ingress, Egress]\n"][types];
            let ing = if ing.is_empty() { String::new() } else { format!("  ingress:\n{}", ing.concat()) };
            let eg = if eg.is_empty() { String::new() } else { format!("  egress:\n{}", eg.concat()) };
            format!("---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: k{i}\n  namespace: ns{ns}\nspec:\n  podSelector: {sel}\n{types}{ing}{eg}")
        },
    )
}

fn arb_calico_selector() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("all()".to_string()),
        (0..3usize).prop_map(|a| format!("app == '{}'", APPS[a])),
        (0..2usize).prop_map(|r| format!("role != '{}'", ROLES[r])),
        Just("has(role) && app in {'a', 'b'}".to_string()),
        Just("!has(role) || app starts with 'c'".to_string()),
        Just("kind == 'ext'".to_string()),
        Just("pcns.env == 'prod'".to_string()),
    ]
}

fn arb_entity() -> impl Strategy<Value = String> {
    (
        proptest::option::of(arb_calico_selector()),
        proptest::option::of(arb_calico_selector()),
        proptest::option::of(prop_oneof![Just("all()"), Just("env == 'prod'"), Just("global()")]),
        proptest::option::of(prop_oneof![
            Just("[10.0.0.0/16]"),
            Just("[10.0.2.0/24, 192.168.0.0/16]"),
            Just("[203.0.113.0/24]")
        ]),
        proptest::option::of(prop_oneof![Just("[10.0.1.0/24]"), Just("[192.168.0.0/30]")]),
    )
        .prop_map(|(sel, not_sel, ns, nets, not_nets)| {
            let mut parts = Vec::new();
            if let Some(s) = sel {
                parts.push(format!("selector: \"{s}\""));
            }
            if let Some(s) = not_sel {
                parts.push(format!("notSelector: \"{s}\""));
            }
            if let Some(s) = ns {
                parts.push(format!("namespaceSelector: \"{s}\""));
            }
            if let Some(n) = nets {
                parts.push(format!("nets: {n}"));
            }
            if let Some(n) = not_nets {
                parts.push(format!("notNets: {n}"));
            }
            format!("{{{}}}", parts.join(", "))
        })
}

fn arb_calico_rule() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("Allow"), Just("Deny"), Just("Pass"), Just("Log")],
        prop_oneof![Just(""), Just("protocol: TCP, "), Just("protocol: UDP, "), Just("notProtocol: TCP, ")],
        arb_entity(),
        arb_entity(),
        prop_oneof![Just(""), Just("80"), Just("'80:85'"), Just("web"), Just("alt")],
        prop::bool::ANY,
    )
        .prop_map(|(action, proto, src, dst, port, not)| {
            let dst = if port.is_empty()
                || (!proto.contains("protocol: ") && !port.chars().all(|c| c.is_alphabetic()))
                || proto.starts_with("not") && !port.chars().all(|c| c.is_alphabetic())
            {
                dst
            } else {
                let key = if not { "notPorts" } else { "ports" };
                format!(
                    "{}{key}: [{port}]}}",
                    if dst == "{}" { "{".to_string() } else { format!("{}, ", &dst[..dst.len() - 1]) }
                )
            };
            format!("  - {{action: {action}, {proto}source: {src}, destination: {dst}}}\n")
        })
}

fn arb_calico_policy(i: usize) -> impl Strategy<Value = String> {
    (
        prop::bool::ANY,
        0..3usize,
        arb_calico_selector(),
        proptest::option::of(0..30i32),
        prop_oneof![Just("default"), Just("t1"), Just("t2")],
        proptest::collection::vec(arb_calico_rule(), 0..4),
        proptest::collection::vec(arb_calico_rule(), 0..4),
        0..4usize,
    )
        .prop_map(move |(global, ns, sel, order, tier, ing, eg, types)| {
            let (kind, nsline) = if global { ("GlobalNetworkPolicy", String::new()) } else { ("NetworkPolicy", format!("  namespace: ns{ns}\n")) };
            let order = order.map(|o| format!("  order: {o}\n")).unwrap_or_default();
            let types = ["", "  types: [Ingress]\n", "  types: [Egress]\n", "  types: [Ingress, Egress]\n"][types];
            let ing = if ing.is_empty() { String::new() } else { format!("  ingress:\n{}", ing.concat()) };
            let eg = if eg.is_empty() { String::new() } else { format!("  egress:\n{}", eg.concat()) };
            format!("---\napiVersion: projectcalico.org/v3\nkind: {kind}\nmetadata:\n  name: c{i}\n{nsline}spec:\n  tier: {tier}\n{order}  selector: \"{sel}\"\n{types}{ing}{eg}")
        })
}

const FIXED: &str = "---\napiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: t1}\nspec: {order: 10, defaultAction: Pass}\n---\napiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: t2}\nspec: {order: 20}\n---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: ext, labels: {kind: ext}}\nspec: {nets: [203.0.113.0/24, 10.0.2.0/28]}\n---\napiVersion: projectcalico.org/v3\nkind: NetworkSet\nmetadata: {name: local, namespace: ns1, labels: {kind: ext}}\nspec: {nets: [10.0.0.0/24]}\n";

fn arb_world() -> impl Strategy<Value = (String, String)> {
    let pods = (3..9usize).prop_flat_map(|n| (0..n).map(arb_pod).collect::<Vec<_>>());
    let k8s = (0..4usize).prop_flat_map(|n| (0..n).map(arb_k8s_policy).collect::<Vec<_>>());
    let cal = (0..4usize).prop_flat_map(|n| (0..n).map(arb_calico_policy).collect::<Vec<_>>());
    (pods, k8s, cal).prop_map(|(pods, k8s, cal)| {
        let ns = "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: ns0, labels: {env: prod}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: ns1, labels: {env: dev}}\n";
        (format!("{ns}{}", pods.concat()), format!("{FIXED}{}{}", k8s.concat(), cal.concat()))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn matrix_agrees_with_explain_on_every_pair((c, p) in arb_world()) {
        let cl = cluster(&c);
        let set = policies(&p);
        for view in [View::Enforced, View::Staged] {
            let an = Analysis::new(&set, &cl, view);
            let ports = [
                FlowPort { port: 80, protocol: Protocol::Tcp },
                FlowPort { port: 81, protocol: Protocol::Udp },
                FlowPort { port: 83, protocol: Protocol::Tcp },
            ];
            let m = Matrix::compute(&an, &ports);
            for (pi, fp) in ports.iter().enumerate() {
                let n = an.endpoints.len();
                let brute = (0..n).flat_map(|a| (0..n).map(move |b| (a, b))).filter(|&(a, b)| a != b && m.allowed(pi, a, b)).count();
                prop_assert_eq!(m.counts(pi).allowed, brute as u64, "class-level counts must equal pair counts");
                for (a, ea) in an.endpoints.iter().enumerate() {
                    for (b, eb) in an.endpoints.iter().enumerate() {
                        if a == b { continue; }
                        let Ok(flow) = an.flow(&ea.id, &eb.id, fp.protocol, fp.port, None) else {
                            prop_assert!(!m.allowed(pi, a, b));
                            continue;
                        };
                        let v = an.evaluate(&flow);
                        prop_assert_eq!(m.allowed(pi, a, b), v.allowed, "{} -> {} {}\n{:#?}\n--- cluster\n{}\n--- policies\n{}", ea.id, eb.id, fp, v, c, p);
                    }
                }
            }
        }
    }
}

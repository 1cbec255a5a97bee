//! Warnings about policies that load but probably do not mean what their
//! author thinks: selectors that match nothing, rules that can never fire,
//! wide-open ipBlocks, names used twice, matches netward cannot decide.

use std::collections::BTreeMap;

use crate::analysis::{Analysis, Peer};
use crate::diag::Diagnostic;
use crate::model::{Action, Cluster, Direction, EntityRule, Policy, PolicySet, PortMatch, Rule};

/// Warnings for a loaded policy set; `cluster` enables the checks that need
/// endpoints (selectors that match nothing, unknown named ports).
pub fn warnings(set: &PolicySet, cluster: Option<&Cluster>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut names: BTreeMap<(Option<&str>, &str), Vec<&Policy>> = BTreeMap::new();
    for p in &set.policies {
        if !p.id.kind.is_staged() {
            names.entry((p.id.namespace.as_deref(), p.id.name.as_str())).or_default().push(p);
        }
        if p.host_endpoints_only {
            out.push(Diagnostic::warning(
                p.origin.clone(),
                format!(
                    "{}: a doNotTrack or preDNAT policy affects host endpoints only; it never applies to pods, and netward polices pods only",
                    p.id
                ),
            ));
        }
        for dir in [Direction::Ingress, Direction::Egress] {
            let rules = p.rules(dir);
            if !p.applies_in(dir) && !rules.is_empty() {
                out.push(Diagnostic::warning(
                    rules[0].origin.clone(),
                    format!("{}: {dir} rules are ignored because the policy's types do not include {dir}", p.id),
                ));
            }
            rule_warnings(p, dir, rules, &mut out);
        }
    }
    for ((ns, name), ps) in names {
        if ps.len() > 1 {
            let kinds: Vec<&str> = ps.iter().map(|p| p.id.kind.name()).collect();
            let full = ns.map(|n| format!("{n}/{name}")).unwrap_or_else(|| name.to_string());
            for p in &ps[1..] {
                out.push(Diagnostic::warning(
                    p.origin.clone(),
                    format!("policy name {full} is used by more than one kind ({}); `kubectl get networkpolicy` shows only one", kinds.join(", ")),
                ));
            }
        }
    }
    if let Some(c) = cluster {
        cluster_warnings(set, c, &mut out);
    }
    out
}

fn rule_warnings(p: &Policy, dir: Direction, rules: &[Rule], out: &mut Vec<Diagnostic>) {
    for (j, r) in rules.iter().enumerate() {
        for e in [&r.source, &r.destination] {
            for net in &e.nets {
                if net.prefix_len() == 0 {
                    out.push(Diagnostic::warning(
                        r.origin.clone(),
                        format!("{}: {dir} rule matches every address ({net})", p.id),
                    ));
                }
            }
        }
        undecidable_warnings(p, r, out);
        // Shadowing: an earlier terminal rule at least as general decides first.
        if let Some(i) = rules[..j].iter().position(|e| is_terminal(e) && covers(e, r)) {
            // Rules expanded from one Kubernetes rule share an index; only report across rules.
            if rules[i].index != r.index {
                out.push(Diagnostic::warning(
                    r.origin.clone(),
                    format!(
                        "{}: {dir} rule {} is shadowed by rule {} at {} and never decides anything",
                        p.id, r.index, rules[i].index, rules[i].origin
                    ),
                ));
            }
        }
    }
}

/// Warnings for matches netward cannot decide at L3/L4; `matrix` and
/// `explain` print these too, since they qualify every verdict.
pub fn undecidable(set: &PolicySet) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for p in &set.policies {
        for r in p.ingress.iter().chain(&p.egress) {
            undecidable_warnings(p, r, &mut out);
        }
    }
    out
}

/// One line per rule that the node cannot enforce as written, for every
/// reconcile pass's log and `/status`: an `http` match (the kernel sees
/// L3/L4 only), and `services` or `domains` matches (no Service inventory,
/// no DNS policy: they match nothing). A Deny or Pass rule that matches
/// nothing denies less than it says, so it is named as such.
pub fn not_enforced(set: &PolicySet, l7: crate::l7::L7) -> Vec<String> {
    let http = match l7 {
        crate::l7::L7::Allow => {
            "http match not enforced: the rule allows by its L3/L4 part alone (--l7 deny makes it match nothing)"
        }
        crate::l7::L7::Deny => "http match not enforced: the rule matches nothing (--l7 deny)",
    };
    let mut out = Vec::new();
    for p in &set.policies {
        for r in p.ingress.iter().chain(&p.egress) {
            if r.http {
                out.push(format!("{}: {}: {http}", r.origin, p.id));
            }
            let unmatched = [&r.source, &r.destination].iter().any(|e| e.service.is_some() || !e.domains.is_empty());
            if unmatched {
                let effect = match r.action {
                    Action::Allow => "the rule matches nothing, so it allows nothing",
                    Action::Log => "the rule matches nothing, so it logs nothing",
                    Action::Deny | Action::Pass => "the rule matches nothing, so what it would deny is NOT denied",
                };
                out.push(format!("{}: {}: services/domains match not enforced: {effect}", r.origin, p.id));
            }
        }
    }
    out
}

fn undecidable_warnings(p: &Policy, r: &Rule, out: &mut Vec<Diagnostic>) {
    for e in [&r.source, &r.destination] {
        if e.service.is_some() {
            out.push(Diagnostic::warning(
                r.origin.clone(),
                format!(
                    "{}: services matches need a Service inventory; netward treats this rule as matching nothing",
                    p.id
                ),
            ));
        }
        if !e.domains.is_empty() {
            out.push(Diagnostic::warning(
                r.origin.clone(),
                format!("{}: DNS domains cannot be decided at L3/L4; netward treats this rule as matching nothing and marks affected verdicts", p.id),
            ));
        }
    }
    if r.http {
        out.push(Diagnostic::warning(
            r.origin.clone(),
            format!(
                "{}: http matches are application-layer; netward decides the L3/L4 part and marks affected verdicts",
                p.id
            ),
        ));
    }
}

fn is_terminal(r: &Rule) -> bool {
    r.action != Action::Log
}

/// Whether every packet `b` matches is also matched by `a` (syntactically:
/// `a` has no condition that `b` lacks).
fn covers(a: &Rule, b: &Rule) -> bool {
    fn opt<T: PartialEq>(x: &Option<T>, y: &Option<T>) -> bool {
        x.is_none() || x == y
    }
    opt(&a.ip_version, &b.ip_version)
        && opt(&a.protocol, &b.protocol)
        && opt(&a.not_protocol, &b.not_protocol)
        && a.icmp.is_none()
        && a.not_icmp.is_none()
        && !a.needs_l7()
        && entity_covers(&a.source, &b.source)
        && entity_covers(&a.destination, &b.destination)
}

fn entity_covers(a: &EntityRule, b: &EntityRule) -> bool {
    a.is_empty() || a == b
}

fn cluster_warnings(set: &PolicySet, cluster: &Cluster, out: &mut Vec<Diagnostic>) {
    for pod in cluster.pods.iter().filter(|p| !p.ips.is_empty() && p.node.as_deref().is_none_or(str::is_empty)) {
        out.push(Diagnostic::warning(
            pod.origin.clone(),
            format!(
                "pod {}/{} has an IP but no spec.nodeName: Calico makes a pod an endpoint only once it is scheduled, so no policy sees it",
                pod.namespace, pod.name
            ),
        ));
    }
    let an = Analysis::new(set, cluster, crate::analysis::View::Staged);
    let workloads: Vec<_> = an.endpoints.iter().filter(|e| !e.host_network).collect();
    let named: std::collections::BTreeSet<&str> =
        workloads.iter().flat_map(|e| e.named_ports.keys().map(String::as_str)).collect();
    for p in &set.policies {
        if !workloads.iter().any(|e| p.selector.eval(&e.labels)) {
            out.push(Diagnostic::warning(p.origin.clone(), format!("{}: selects no endpoint in the cluster", p.id)));
        }
        for r in p.ingress.iter().chain(&p.egress) {
            for e in [&r.source, &r.destination] {
                if let Some(s) = &e.selector {
                    let hits_endpoint = workloads.iter().any(|w| {
                        w.ips.first().is_some_and(|ip| an.selector_matches_ip(s, &Peer { ip: *ip, endpoint: Some(w) }))
                    });
                    let hits_set = an.network_sets.iter().any(|n| s.eval(&n.labels));
                    if !hits_endpoint && !hits_set {
                        out.push(Diagnostic::warning(
                            r.origin.clone(),
                            format!(
                                "{}: rule {} selector matches no endpoint or network set in the cluster",
                                p.id, r.index
                            ),
                        ));
                    }
                }
                for pm in e.ports.iter().chain(&e.not_ports) {
                    if let PortMatch::Named(n) = pm {
                        if !named.contains(n.as_str()) {
                            out.push(Diagnostic::warning(
                                r.origin.clone(),
                                format!("{}: named port {n:?} is not declared by any pod in the cluster", p.id),
                            ));
                        }
                    }
                }
            }
        }
    }
}

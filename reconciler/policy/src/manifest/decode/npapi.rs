//! The Kubernetes network-policy-api (`policy.networking.k8s.io`):
//! ClusterNetworkPolicy (v1alpha2 and v1beta1, one schema) and the older
//! v1alpha1 AdminNetworkPolicy and BaselineAdminNetworkPolicy, decoded
//! strictly against the experimental-channel CRDs (network-policy-api v0.3.0
//! for CNP, v0.1.7 for ANP/BANP) and translated the way Calico 3.32 does
//! (A5, A6; cal-conv clusternetworkpolicy.go):
//!
//! - Admin -> tier `kube-admin`, Baseline -> tier `kube-baseline` (both end
//!   in Pass), `priority` -> order, Accept/Allow -> Allow;
//! - one rule per (protocol, peer), protocols grouped as Calico groups them;
//! - types only for the directions that have rules, so a direction without
//!   rules does not isolate.
//!
//! Where Calico fails closed on a rule it cannot convert (a peer with no
//! field it knows), netward refuses the object: a commit holding it is never
//! enforced. `nodes` peers match the Nodes' addresses (Calico 3.32 cannot
//! convert them and fails closed); `domainNames` are undecidable offline.

use std::collections::BTreeMap;

use super::k8s::{cidr_of, decode_meta, label_selector, port_number};
use super::scope;
use crate::diag::{DResult, Diagnostic, Pos};
use crate::manifest::fields::{At, Fields, Src};
use crate::manifest::yaml::Node;
use crate::model::cluster::ORCH_LABEL;
use crate::model::policy::{Action, EntityRule, Policy, PolicyId, PolicyKind, Rule};
use crate::model::port::{check_port_name, PortMatch, Protocol};
use crate::selector::Expr;

/// The tier Calico puts Admin-tier policies in.
pub const ADMIN_TIER: &str = "kube-admin";
/// The tier Calico puts Baseline-tier policies in.
pub const BASELINE_TIER: &str = "kube-baseline";

/// The API generation a document is written in: its limits and its words.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    /// v1alpha2 / v1beta1 ClusterNetworkPolicy.
    Cnp,
    /// v1alpha1 AdminNetworkPolicy.
    Anp,
    /// v1alpha1 BaselineAdminNetworkPolicy.
    Banp,
}

impl Api {
    fn kind(self) -> &'static str {
        match self {
            Api::Cnp => "ClusterNetworkPolicy",
            Api::Anp => "AdminNetworkPolicy",
            Api::Banp => "BaselineAdminNetworkPolicy",
        }
    }

    /// `maxItems` of rules per direction, and of peers and ports per rule.
    fn max_items(self) -> usize {
        if self == Api::Cnp {
            25
        } else {
            100
        }
    }

    fn actions(self) -> &'static [&'static str] {
        match self {
            Api::Cnp => &["Accept", "Deny", "Pass"],
            Api::Anp => &["Allow", "Deny", "Pass"],
            Api::Banp => &["Allow", "Deny"],
        }
    }
}

/// Decodes one network-policy-api object of `kind` and translates it.
pub fn decode(src: Src<'_>, root: &Node, kind: PolicyKind) -> DResult<Policy> {
    let api = match kind {
        PolicyKind::ClusterNetworkPolicy => Api::Cnp,
        PolicyKind::AdminNetworkPolicy => Api::Anp,
        PolicyKind::BaselineAdminNetworkPolicy => Api::Banp,
        other => return Err(src.err(root, format!("{} is not a network-policy-api kind", other.name()))),
    };
    let mut f = src.fields(root, "ClusterNetworkPolicy")?;
    f.skip(&["apiVersion", "kind", "status"]);
    // Cluster-scoped: the API server clears a namespace written here.
    let meta = decode_meta(src, &mut f, api.kind())?;
    if api == Api::Banp && meta.name.value != "default" {
        return Err(Diagnostic::error(
            meta.name.pos.clone(),
            "Only one baseline admin network policy with metadata.name=\"default\" can be created in the cluster",
        ));
    }
    let spec = f.get("spec").ok_or_else(|| src.err(root, format!("{} without spec", api.kind())))?;
    f.finish()?;

    let mut s = src.fields(spec, "spec")?;
    let tier = match api {
        Api::Anp => ADMIN_TIER,
        Api::Banp => BASELINE_TIER,
        Api::Cnp => {
            let t = s.str("tier")?.ok_or_else(|| src.err(spec, "spec.tier is required: Admin or Baseline"))?;
            match t.value.as_str() {
                "Admin" => ADMIN_TIER,
                "Baseline" => BASELINE_TIER,
                other => {
                    return Err(Diagnostic::error(t.pos, format!("tier must be Admin or Baseline, not {other:?}")))
                }
            }
        }
    };
    let order = if api == Api::Banp {
        if let Some(n) = s.get("priority") {
            return Err(src.err(n, "unknown field \"priority\" in spec: a BaselineAdminNetworkPolicy has none"));
        }
        None
    } else {
        let p = s.int("priority")?.ok_or_else(|| src.err(spec, "spec.priority is required (0 to 1000)"))?;
        if !(0..=1000).contains(&p.value) {
            return Err(Diagnostic::error(p.pos, format!("priority {} is out of range 0..1000", p.value)));
        }
        Some(p.value as f64)
    };
    let subject_node = s.get("subject").ok_or_else(|| src.err(spec, "spec.subject is required"))?;
    let subject = subject(src, subject_node, api)?;
    let mut ingress = Vec::new();
    for (i, r) in limited(src, &mut s, "ingress", api.max_items(), 0)?.iter().enumerate() {
        ingress.extend(rule(src, r, i, api, true)?);
    }
    let mut egress = Vec::new();
    for (i, r) in limited(src, &mut s, "egress", api.max_items(), 0)?.iter().enumerate() {
        egress.extend(rule(src, r, i, api, false)?);
    }
    s.finish()?;

    Ok(Policy {
        id: PolicyId { kind, namespace: None, name: meta.name.value },
        tier: tier.into(),
        order,
        selector: subject,
        // clusterNetPolicyTypes: a direction without rules is not governed.
        ingress_type: !ingress.is_empty(),
        egress_type: !egress.is_empty(),
        ingress,
        egress,
        staged: None,
        host_endpoints_only: false,
        origin: src.pos(root),
    })
}

/// A list field with its `minItems`/`maxItems`; absent reads as empty.
fn limited<'a>(src: Src<'a>, f: &mut Fields<'a>, key: &str, max: usize, min: usize) -> DResult<&'a [Node]> {
    let present = f.present(key);
    let n = f.get(key);
    let items = match n {
        None => &[][..],
        Some(n) => src.seq(n, key)?,
    };
    if items.len() > max {
        return Err(src.err(&items[max], format!("{key}: at most {max} items")));
    }
    if present && items.len() < min {
        let at = n.map(|n| src.pos(n)).unwrap_or_else(|| f.pos());
        return Err(Diagnostic::error(at, format!("{key}: at least {min} item{}", if min == 1 { "" } else { "s" })));
    }
    Ok(items)
}

/// Exactly one of `keys` is set (`minProperties=1, maxProperties=1`).
fn one_of<'a>(src: Src<'a>, n: &'a Node, what: &'static str, keys: &[&str]) -> DResult<Fields<'a>> {
    let f = src.fields(n, what)?;
    let set: Vec<&str> = keys.iter().copied().filter(|k| f.present(k)).collect();
    match set.as_slice() {
        [_] => Ok(f),
        [] => {
            // An unknown field names itself; none at all says what may be.
            f.finish()?;
            Err(src.err(n, format!("{what}: exactly one of {} must be set", keys.join(", "))))
        }
        [_, second, ..] => {
            Err(src.err(n, format!("{what}: only one of {} may be set ({second} too)", keys.join(", "))))
        }
    }
}

/// The Calico text of a pod selector: always the orchestrator term
/// (k8sSelectorToCalico with SelectorPod).
fn pods_text(sel: Option<Expr>) -> String {
    Expr::and(vec![Expr::Eq(ORCH_LABEL.into(), "k8s".into()), sel.unwrap_or(Expr::All)]).to_string()
}

/// `subject`: which pods the policy applies to, scoped the way Calico's
/// GlobalNetworkPolicy processor composes `selector` and `namespaceSelector`.
fn subject(src: Src<'_>, n: &Node, api: Api) -> DResult<Expr> {
    let mut f = one_of(src, n, "subject", &["namespaces", "pods"])?;
    let (pods, namespaces) = if let Some(ns) = f.get("namespaces") {
        (pods_text(None), label_selector(src, ns)?.to_string())
    } else {
        let p = f.get("pods").expect("one_of checked");
        namespaced_pod(src, p, api)?
    };
    f.finish()?;
    let fields =
        scope::PolicySelectors { selector: &pods, namespace_selector: &namespaces, service_account_selector: "" };
    scope::policy_selector(&fields, None, &src.pos(n))
}

/// `pods: {namespaceSelector, podSelector}` as (pod text, namespace text).
fn namespaced_pod(src: Src<'_>, n: &Node, api: Api) -> DResult<(String, String)> {
    let mut f = src.fields(n, "pods")?;
    let ns = match f.get("namespaceSelector") {
        Some(x) => label_selector(src, x)?,
        // Optional in v1alpha2 (empty: all namespaces), required in v1alpha1.
        None if api == Api::Cnp && !f.present("namespaceSelector") => Expr::All,
        None => return Err(src.err(n, "pods: namespaceSelector is required")),
    };
    let pod = f.get("podSelector").ok_or_else(|| src.err(n, "pods: podSelector is required"))?;
    let pod = label_selector(src, pod)?;
    f.finish()?;
    Ok((pods_text(Some(pod)), ns.to_string()))
}

/// One rule's action.
fn action(src: Src<'_>, f: &mut Fields<'_>, n: &Node, api: Api) -> DResult<Action> {
    let a = f.str("action")?.ok_or_else(|| src.err(n, "rule without action"))?;
    if !api.actions().contains(&a.value.as_str()) {
        return Err(Diagnostic::error(
            a.pos,
            format!("action must be {}, not {:?}", api.actions().join(", "), a.value),
        ));
    }
    Ok(match a.value.as_str() {
        "Accept" | "Allow" => Action::Allow,
        "Deny" => Action::Deny,
        _ => Action::Pass,
    })
}

/// A peer, decoded: the rule side it stands for, and whether it can hold no
/// named port (networks, nodes, domainNames).
struct Peer {
    side: EntityRule,
    no_named_ports: bool,
    domains: bool,
    pos: Pos,
}

fn peer(src: Src<'_>, n: &Node, api: Api, ingress: bool) -> DResult<Peer> {
    let keys: &[&str] = match (ingress, api) {
        (true, _) => &["namespaces", "pods"],
        (false, Api::Banp) => &["namespaces", "pods", "nodes", "networks"],
        (false, _) => &["namespaces", "pods", "nodes", "networks", "domainNames"],
    };
    let what = if ingress { "from peer" } else { "to peer" };
    let mut f = one_of(src, n, what, keys)?;
    let mut out = Peer { side: EntityRule::default(), no_named_ports: false, domains: false, pos: src.pos(n) };
    let at = src.pos(n);
    if let Some(ns) = f.get("namespaces") {
        // Only pods are peers (host-networked pods have no labels here): the
        // orchestrator term keeps namespaced network sets out.
        let namespaces = label_selector(src, ns)?.to_string();
        let pods = pods_text(None);
        let fields = scope::EntitySelectors { namespace_selector: &namespaces, selector: &pods, ..Default::default() };
        out.side.selector = scope::entity_selectors(&fields, None, &at)?.0;
    } else if let Some(p) = f.get("pods") {
        let (pods, namespaces) = namespaced_pod(src, p, api)?;
        let fields = scope::EntitySelectors { namespace_selector: &namespaces, selector: &pods, ..Default::default() };
        out.side.selector = scope::entity_selectors(&fields, None, &at)?.0;
    } else if let Some(nodes) = f.get("nodes") {
        out.side.nodes = Some(label_selector(src, nodes)?);
        out.no_named_ports = true;
    } else if f.present("networks") {
        let items = limited(src, &mut f, "networks", 25, 1)?;
        let mut seen = Vec::new();
        for item in items {
            let c = src.str(item, "networks")?;
            if c.value.len() > 43 {
                return Err(Diagnostic::error(c.pos, "networks: a CIDR is at most 43 characters"));
            }
            // v1alpha2 requires the masked form (v0.2.1); v1alpha1 only isCIDR.
            let net = cidr_of(&c, api == Api::Cnp, true)
                .map_err(|d| Diagnostic::error(d.pos, format!("Invalid CIDR format provided: {}", d.message)))?;
            if seen.contains(&net) {
                return Err(Diagnostic::error(c.pos, format!("networks: {} listed twice (a set)", c.value)));
            }
            seen.push(net);
        }
        out.side.nets = seen;
        out.no_named_ports = true;
    } else {
        let items = limited(src, &mut f, "domainNames", 25, 1)?;
        for item in items {
            let d = src.str(item, "domainNames")?;
            check_domain_name(&d)?;
            if out.side.domains.contains(&d.value) {
                return Err(Diagnostic::error(d.pos, format!("domainNames: {} listed twice (a set)", d.value)));
            }
            out.side.domains.push(d.value);
        }
        out.no_named_ports = true;
        out.domains = true;
    }
    f.finish()?;
    Ok(out)
}

/// The CRD's DomainName pattern: labels of letters, digits, '-' and '_'
/// (not at either end), at least two, an optional `*.` prefix and final dot.
fn check_domain_name(d: &At<String>) -> DResult<()> {
    let s = d.value.strip_prefix("*.").unwrap_or(&d.value);
    let s = s.strip_suffix('.').unwrap_or(s);
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
    };
    let labels: Vec<&str> = s.split('.').collect();
    if labels.len() >= 2 && labels.iter().all(|l| label_ok(l)) {
        Ok(())
    } else {
        Err(Diagnostic::error(
            d.pos.clone(),
            format!("domainNames: {:?} is not a domain name (labels of letters, digits, '-' and '_', an optional leading '*.')", d.value),
        ))
    }
}

/// A rule's ports, grouped by protocol the way Calico's unpackCNPProtocols
/// groups them (named ports under no protocol): `[(None, [])]` when the
/// rule names none.
type Protocols = Vec<(Option<Protocol>, Vec<PortMatch>)>;

fn protocols<'a>(src: Src<'a>, f: &mut Fields<'a>, api: Api) -> DResult<(Protocols, bool)> {
    let key = if api == Api::Cnp { "protocols" } else { "ports" };
    let items = limited(src, f, key, api.max_items(), 1)?;
    if items.is_empty() {
        return Ok((vec![(None, Vec::new())], false));
    }
    let mut groups: BTreeMap<Option<Protocol>, Vec<PortMatch>> = BTreeMap::new();
    let mut named = false;
    for item in items {
        let (proto, pm) = if api == Api::Cnp { cnp_protocol(src, item)? } else { anp_port(src, item)? };
        named |= matches!(pm, PortMatch::Named(_));
        let ports = groups.entry(proto).or_default();
        if !ports.contains(&pm) {
            ports.push(pm);
        }
    }
    Ok((groups.into_iter().collect(), named))
}

fn protocol_of(key: &str) -> Option<Protocol> {
    match key {
        "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        "sctp" => Some(Protocol::Sctp),
        _ => None,
    }
}

/// v1alpha2 `protocols` entry: `{tcp|udp|sctp: {destinationPort: {number | range}}}`
/// or `{destinationNamedPort}`.
fn cnp_protocol(src: Src<'_>, n: &Node) -> DResult<(Option<Protocol>, PortMatch)> {
    let mut f = one_of(src, n, "protocol", &["tcp", "udp", "sctp", "destinationNamedPort"])?;
    if let Some(name) = f.str("destinationNamedPort")? {
        check_port_name(&name.value).map_err(|e| Diagnostic::error(name.pos.clone(), e))?;
        f.finish()?;
        return Ok((None, PortMatch::Named(name.value)));
    }
    let key = ["tcp", "udp", "sctp"].into_iter().find(|k| f.present(k)).expect("one_of checked");
    let body = f.get(key).ok_or_else(|| src.err(n, format!("{key}: destinationPort is required")))?;
    f.finish()?;
    let mut b = src.fields(body, "protocol match")?;
    let port = b.get("destinationPort").ok_or_else(|| src.err(body, format!("{key}: destinationPort is required")))?;
    b.finish()?;
    let mut p = one_of(src, port, "destinationPort", &["number", "range"])?;
    let pm = if let Some(num) = p.get("number") {
        let i = src.int(num, "number")?;
        let n = port_number(src, num, i.value)?;
        PortMatch::Range(n, n)
    } else {
        let r = p.get("range").expect("one_of checked");
        range(src, r, "start", "end", true)?
    };
    p.finish()?;
    Ok((protocol_of(key), pm))
}

/// `{start, end}`: both 1..65535; `strict` is v1alpha2's `start < end`.
fn range(src: Src<'_>, n: &Node, a: &str, b: &str, strict: bool) -> DResult<PortMatch> {
    let mut f = src.fields(n, "range")?;
    let start = f.int(a)?.ok_or_else(|| src.err(n, format!("range: {a} is required")))?;
    let end = f.int(b)?.ok_or_else(|| src.err(n, format!("range: {b} is required")))?;
    let s = port_number(src, n, start.value).map_err(|d| Diagnostic::error(start.pos.clone(), d.message))?;
    let e = port_number(src, n, end.value).map_err(|d| Diagnostic::error(end.pos.clone(), d.message))?;
    if (strict && s >= e) || s > e {
        return Err(Diagnostic::error(start.pos, "Start port must be less than End port"));
    }
    Ok(PortMatch::Range(s, e))
}

/// v1alpha1 `ports` entry: `portNumber {protocol, port}`, `portRange
/// {protocol, start, end}` or `namedPort`.
fn anp_port(src: Src<'_>, n: &Node) -> DResult<(Option<Protocol>, PortMatch)> {
    let mut f = one_of(src, n, "port", &["portNumber", "portRange", "namedPort"])?;
    let out = if let Some(name) = f.str("namedPort")? {
        check_port_name(&name.value).map_err(|e| Diagnostic::error(name.pos.clone(), e))?;
        (None, PortMatch::Named(name.value))
    } else if let Some(pn) = f.get("portNumber") {
        let mut p = src.fields(pn, "portNumber")?;
        let proto = anp_protocol(&mut p)?;
        let port = p.get("port").ok_or_else(|| src.err(pn, "portNumber: port is required"))?;
        let i = src.int(port, "port")?;
        let num = port_number(src, port, i.value)?;
        p.finish()?;
        (Some(proto), PortMatch::Range(num, num))
    } else {
        let pr = f.get("portRange").expect("one_of checked");
        let mut p = src.fields(pr, "portRange")?;
        let proto = anp_protocol(&mut p)?;
        let start = p.get("start");
        let end = p.get("end");
        p.finish()?;
        let (Some(_), Some(_)) = (start, end) else {
            return Err(src.err(pr, "portRange: start and end are required"));
        };
        (Some(proto), range(src, pr, "start", "end", false)?)
    };
    f.finish()?;
    Ok(out)
}

fn anp_protocol(f: &mut Fields<'_>) -> DResult<Protocol> {
    Ok(match f.str("protocol")? {
        None => Protocol::Tcp,
        Some(p) => match p.value.as_str() {
            "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            "SCTP" => Protocol::Sctp,
            other => return Err(Diagnostic::error(p.pos, format!("unknown protocol {other:?}: use TCP, UDP or SCTP"))),
        },
    })
}

/// One rule, expanded into one model rule per (protocol group, peer), all
/// with the rule's action, index and name.
fn rule(src: Src<'_>, n: &Node, index: usize, api: Api, ingress: bool) -> DResult<Vec<Rule>> {
    let mut f = src.fields(n, if ingress { "ingress rule" } else { "egress rule" })?;
    let name = match f.str("name")? {
        Some(s) if s.value.chars().count() > 100 => {
            return Err(Diagnostic::error(s.pos, "rule name: at most 100 characters"))
        }
        Some(s) if !s.value.is_empty() => Some(s.value),
        _ => None,
    };
    let action = action(src, &mut f, n, api)?;
    let peers_key = if ingress { "from" } else { "to" };
    if !f.present(peers_key) {
        return Err(src.err(n, format!("{peers_key} is required and must hold at least one peer")));
    }
    let peers = limited(src, &mut f, peers_key, api.max_items(), 1)?
        .iter()
        .map(|p| peer(src, p, api, ingress))
        .collect::<DResult<Vec<Peer>>>()?;
    let ports_key = if api == Api::Cnp { "protocols" } else { "ports" };
    let ports_at = f.pos();
    let (groups, named) = protocols(src, &mut f, api)?;
    f.finish()?;
    if named && peers.iter().any(|p| p.no_named_ports) {
        return Err(Diagnostic::error(
            ports_at,
            format!("networks/nodes/domainNames peer cannot be set with namedPorts since there are no namedPorts for networks/nodes/domainNames ({ports_key})"),
        ));
    }
    if action != Action::Allow && peers.iter().any(|p| p.domains) {
        return Err(Diagnostic::error(
            peers.iter().find(|p| p.domains).map(|p| p.pos.clone()).unwrap_or(ports_at),
            "domainNames is only supported for Accept rules (an allowlist in front of a lower-precedence Deny)",
        ));
    }
    let mut out = Vec::new();
    for (proto, ports) in &groups {
        for p in &peers {
            let mut r = Rule::towards_peer(action, ingress, &p.side, *proto, ports, index, p.pos.clone());
            r.name = name.clone();
            out.push(r);
        }
    }
    Ok(out)
}

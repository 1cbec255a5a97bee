//! Kubernetes `networking.k8s.io/v1` NetworkPolicy, decoded strictly and
//! translated into the Calico model the way Calico does it (C9): tier
//! `default`, order 1000, every rule an Allow, peers scoped by namespace.

use std::collections::BTreeMap;

use ipnet::IpNet;

use super::scope;
use crate::diag::{DResult, Diagnostic};
use crate::manifest::fields::{At, Fields, Src};
use crate::manifest::yaml::{Node, Value};
use crate::model::cluster::{NS_LABEL, ORCH_LABEL};
use crate::model::policy::{Action, EntityRule, Policy, PolicyId, PolicyKind, Rule, StagedAction};
use crate::model::port::{check_port_name, PortMatch, Protocol};
use crate::selector::{self, check_label_key, check_label_value, Expr, Requirement};

/// The order Calico gives every Kubernetes NetworkPolicy.
pub const K8S_POLICY_ORDER: f64 = 1000.0;

/// `metadata` of a policy object: name and namespace (other fields are read
/// and ignored; objects copied from a cluster carry many).
pub(crate) struct Meta {
    pub name: At<String>,
    pub namespace: Option<At<String>>,
}

pub(crate) fn decode_meta(src: Src<'_>, f: &mut Fields<'_>, kind: &str) -> DResult<Meta> {
    let meta = f.get("metadata").ok_or_else(|| Diagnostic::error(f.pos(), format!("{kind} without metadata")))?;
    let mut m = src.fields(meta, "metadata")?;
    let name = m.str("name")?.ok_or_else(|| src.err(meta, format!("{kind} without metadata.name")))?;
    check_object_name(&name)?;
    let namespace = m.str("namespace")?;
    if let Some(ns) = &namespace {
        check_object_name(ns)?;
    }
    Ok(Meta { name, namespace })
}

fn check_object_name(n: &At<String>) -> DResult<()> {
    let s = &n.value;
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(Diagnostic::error(n.pos.clone(), format!("invalid name {s:?}: use lowercase letters, digits, '-' and '.'")))
    }
}

/// Reads a policy's direction list (`policyTypes` or `types`): (ingress,
/// egress), or `default` when the list is empty. Unknown or repeated entries
/// are errors.
///
/// Kubernetes' API server accepts a type listed twice in `policyTypes`
/// (`repeats_ok`); Calico refuses it in `types` and in a staged Kubernetes
/// policy's `policyTypes` (a `listType=set`).
pub(crate) fn policy_types(
    types: &[At<String>],
    field: &str,
    default: (bool, bool),
    repeats_ok: bool,
) -> DResult<(bool, bool)> {
    if types.is_empty() {
        return Ok(default);
    }
    // Kubernetes' validation: at most two entries (so one repeat at most).
    if types.len() > 2 {
        return Err(Diagnostic::error(types[2].pos.clone(), format!("{field}: at most two entries (Ingress, Egress)")));
    }
    let (mut ingress, mut egress) = (false, false);
    for t in types {
        let slot = match t.value.as_str() {
            "Ingress" => &mut ingress,
            "Egress" => &mut egress,
            other => {
                return Err(Diagnostic::error(
                    t.pos.clone(),
                    format!("{field}: unknown type {other:?}: use Ingress or Egress"),
                ))
            }
        };
        if *slot && !repeats_ok {
            return Err(Diagnostic::error(t.pos.clone(), format!("{field}: {} listed twice", t.value)));
        }
        *slot = true;
    }
    Ok((ingress, egress))
}

/// A staged policy's `stagedAction` (policy_common.go: Set, Delete, Learn,
/// Ignore; absent is Set). Learn and Ignore mark policies that Calico's
/// recommendation engine works on; their rules preview as Set's do.
pub(crate) fn staged_action_field(s: &mut Fields<'_>) -> DResult<StagedAction> {
    Ok(match s.str("stagedAction")? {
        None => StagedAction::Set,
        Some(a) => match a.value.as_str() {
            "Set" | "Learn" | "Ignore" => StagedAction::Set,
            "Delete" => StagedAction::Delete,
            other => {
                return Err(Diagnostic::error(
                    a.pos,
                    format!("stagedAction must be Set, Delete, Learn or Ignore, not {other:?}"),
                ))
            }
        },
    })
}

/// A staged Delete carries nothing: every spec field but `allowed` holds its
/// zero value (validator.go compares the spec with an empty one, so `""`,
/// `false`, `null` and `{}` pass; a list, even an empty one, does not).
pub(crate) fn zero_spec_but(src: Src<'_>, spec: &Node, allowed: &[&str]) -> DResult<()> {
    let Value::Map(entries) = &spec.value else { return Ok(()) };
    for (k, v) in entries {
        let key = matches!(&k.value, Value::Str(s) if allowed.contains(&s.as_str()));
        let zero = match &v.value {
            Value::Null => true,
            Value::Str(s) => s.is_empty(),
            Value::Bool(b) => !b,
            Value::Int(i) => *i == 0,
            Value::Map(m) => m.is_empty(),
            _ => false,
        };
        if !key && !zero {
            return Err(src.err(k, "stagedAction Delete requires every other spec field to be empty"));
        }
    }
    Ok(())
}

/// Decodes a `metav1.LabelSelector` into a selector expression.
pub(crate) fn label_selector(src: Src<'_>, n: &Node) -> DResult<Expr> {
    let mut f = src.fields(n, "label selector")?;
    let mut match_labels = BTreeMap::new();
    if let Some(ml) = f.get("matchLabels") {
        let entries: &[(Node, Node)] = match &ml.value {
            Value::Map(m) => m,
            other => return Err(src.err(ml, format!("matchLabels: expected a mapping, found {}", other.type_name()))),
        };
        for (k, v) in entries {
            let key = src.str(k, "matchLabels key")?;
            check_label_key(&key.value).map_err(|e| Diagnostic::error(key.pos.clone(), e))?;
            let val = src.str(v, &format!("matchLabels.{}", key.value))?;
            check_label_value(&val.value).map_err(|e| Diagnostic::error(val.pos.clone(), e))?;
            match_labels.insert(key.value, val.value);
        }
    }
    let mut reqs = Vec::new();
    for e in f.seq("matchExpressions")?.unwrap_or(&[]) {
        let mut ef = src.fields(e, "matchExpressions entry")?;
        let key = ef.str("key")?.ok_or_else(|| src.err(e, "matchExpressions entry without key"))?;
        check_label_key(&key.value).map_err(|m| Diagnostic::error(key.pos.clone(), m))?;
        let op = ef.str("operator")?.ok_or_else(|| src.err(e, "matchExpressions entry without operator"))?;
        let values = ef.strings("values")?;
        for v in &values {
            check_label_value(&v.value).map_err(|m| Diagnostic::error(v.pos.clone(), m))?;
        }
        let vals: Vec<String> = values.into_iter().map(|v| v.value).collect();
        let r = match op.value.as_str() {
            "In" | "NotIn" if vals.is_empty() => {
                return Err(Diagnostic::error(op.pos, format!("operator {} needs a non-empty values list", op.value)))
            }
            "In" => Requirement::In(key.value, vals),
            "NotIn" => Requirement::NotIn(key.value, vals),
            "Exists" | "DoesNotExist" if !vals.is_empty() => {
                return Err(Diagnostic::error(op.pos, format!("operator {} takes no values", op.value)))
            }
            "Exists" => Requirement::Exists(key.value),
            "DoesNotExist" => Requirement::DoesNotExist(key.value),
            other => {
                return Err(Diagnostic::error(
                    op.pos,
                    format!("unknown operator {other:?}: use In, NotIn, Exists or DoesNotExist"),
                ))
            }
        };
        ef.finish()?;
        reqs.push(r);
    }
    f.finish()?;
    Ok(selector::from_label_selector(&match_labels, &reqs))
}

/// Parses a CIDR; host bits must be zero, as the API server requires for ipBlock.
/// A CIDR; `strict` refuses host bits. A bare address is refused where the
/// API parses with `ParseCIDR` (`must_be_cidr`: rule nets, ipBlock) and
/// read as a host route elsewhere (network sets).
pub(crate) fn cidr(a: &At<String>, strict: bool) -> DResult<IpNet> {
    cidr_of(a, strict, strict)
}

pub(crate) fn cidr_of(a: &At<String>, strict: bool, must_be_cidr: bool) -> DResult<IpNet> {
    if must_be_cidr && !a.value.contains('/') {
        return Err(Diagnostic::error(
            a.pos.clone(),
            format!(
                "{:?} is an address, not a CIDR (write {}/{})",
                a.value,
                a.value,
                if a.value.contains(':') { 128 } else { 32 }
            ),
        ));
    }
    let net: IpNet = a
        .value
        .parse()
        .or_else(|_| a.value.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| Diagnostic::error(a.pos.clone(), format!("invalid CIDR {:?}", a.value)))?;
    if strict && net.trunc() != net {
        return Err(Diagnostic::error(
            a.pos.clone(),
            format!("CIDR {:?} has host bits set (did you mean {}?)", a.value, net.trunc()),
        ));
    }
    Ok(net.trunc())
}

/// Decodes a networking.k8s.io/v1 NetworkPolicy (or a Calico
/// StagedKubernetesNetworkPolicy) and translates it.
pub fn decode(src: Src<'_>, root: &Node, staged: bool) -> DResult<Policy> {
    let kind_name = if staged { "StagedKubernetesNetworkPolicy" } else { "NetworkPolicy" };
    let mut f = src.fields(root, "NetworkPolicy")?;
    f.skip(&["apiVersion", "kind", "status"]);
    let meta = decode_meta(src, &mut f, kind_name)?;
    let namespace = meta.namespace.map(|n| n.value).unwrap_or_else(|| "default".into());
    let spec = f.get("spec").ok_or_else(|| src.err(root, format!("{kind_name} without spec")))?;
    f.finish()?;

    let mut s = src.fields(spec, "NetworkPolicy spec")?;
    let mut staged_action = None;
    if staged {
        let action = staged_action_field(&mut s)?;
        if action == StagedAction::Delete {
            // validateStagedKubernetesNetworkPolicy: every other field zero.
            zero_spec_but(src, spec, &["stagedAction"])?;
        }
        staged_action = Some(action);
    }
    let pod_sel = match s.get("podSelector") {
        Some(n) => label_selector(src, n)?,
        None => Expr::All,
    };
    let ingress_nodes = s.seq("ingress")?.unwrap_or(&[]);
    let egress_nodes = s.seq("egress")?.unwrap_or(&[]);
    let types = s.strings("policyTypes")?;
    // K2: Ingress always; Egress iff there are egress rules.
    let (ingress_type, egress_type) = policy_types(&types, "policyTypes", (true, !egress_nodes.is_empty()), !staged)?;

    let mut ingress = Vec::new();
    for (i, r) in ingress_nodes.iter().enumerate() {
        ingress.extend(rule(src, r, i, &namespace, true)?);
    }
    let mut egress = Vec::new();
    for (i, r) in egress_nodes.iter().enumerate() {
        egress.extend(rule(src, r, i, &namespace, false)?);
    }
    s.finish()?;

    let selector = Expr::and(vec![
        Expr::Eq(ORCH_LABEL.into(), "k8s".into()),
        pod_sel,
        Expr::Eq(NS_LABEL.into(), namespace.clone()),
    ]);
    Ok(Policy {
        id: PolicyId {
            kind: if staged { PolicyKind::StagedKubernetesNetworkPolicy } else { PolicyKind::KubernetesNetworkPolicy },
            namespace: Some(namespace),
            name: meta.name.value,
        },
        tier: "default".into(),
        order: Some(K8S_POLICY_ORDER),
        selector,
        ingress_type,
        egress_type,
        ingress,
        egress,
        staged: staged_action,
        host_endpoints_only: false,
        origin: src.pos(root),
    })
}

/// One k8s rule, expanded into one Allow per (peer, port entry); their union
/// is the k8s rule.
fn rule(src: Src<'_>, n: &Node, index: usize, ns: &str, ingress: bool) -> DResult<Vec<Rule>> {
    let what = if ingress { "ingress rule" } else { "egress rule" };
    let peers_key = if ingress { "from" } else { "to" };
    let mut f = src.fields(n, what)?;
    let peers: Vec<(EntityRule, crate::diag::Pos)> = match f.seq(peers_key)? {
        None => vec![(EntityRule::default(), src.pos(n))],
        Some([]) => vec![(EntityRule::default(), src.pos(n))],
        Some(items) => items.iter().map(|p| Ok((peer(src, p, ns)?, src.pos(p)))).collect::<DResult<_>>()?,
    };
    let ports: Vec<(Option<Protocol>, Vec<PortMatch>)> = match f.seq("ports")? {
        None | Some([]) => vec![(None, Vec::new())],
        Some(items) => items.iter().map(|p| port(src, p)).collect::<DResult<_>>()?,
    };
    f.finish()?;
    let mut out = Vec::new();
    for (peer, pos) in &peers {
        for (proto, pm) in &ports {
            let mut r = Rule::towards_peer(Action::Allow, ingress, peer, *proto, pm, index, pos.clone());
            r.ip_version = peer.nets.first().map(|n| if n.addr().is_ipv4() { 4 } else { 6 });
            out.push(r);
        }
    }
    Ok(out)
}

fn peer(src: Src<'_>, n: &Node, ns: &str) -> DResult<EntityRule> {
    let mut f = src.fields(n, "peer")?;
    let pod = f.get("podSelector").map(|x| label_selector(src, x)).transpose()?;
    let nsel = f.get("namespaceSelector").map(|x| label_selector(src, x)).transpose()?;
    let ip_block = f.get("ipBlock");
    let has_sel = f.present("podSelector") || f.present("namespaceSelector");
    f.finish()?;
    if let Some(b) = ip_block {
        if has_sel {
            return Err(src.err(n, "a peer may not specify both ipBlock and another peer"));
        }
        let mut bf = src.fields(b, "ipBlock")?;
        let c = bf.str("cidr")?.ok_or_else(|| src.err(b, "ipBlock without cidr"))?;
        let net = cidr_of(&c, false, true)?;
        let mut except = Vec::new();
        for e in bf.strings("except")? {
            let x = cidr_of(&e, false, true)?;
            if x.addr().is_ipv4() != net.addr().is_ipv4() || !net.contains(&x) || x.prefix_len() <= net.prefix_len() {
                return Err(Diagnostic::error(
                    e.pos,
                    format!("except {} must be a strict subset of cidr {}", e.value, c.value),
                ));
            }
            except.push(x);
        }
        bf.finish()?;
        return Ok(EntityRule { nets: vec![net], not_nets: except, ..EntityRule::default() });
    }
    // cal-conv k8sPeerToCalicoFields: the pod selector always carries the
    // orchestrator term, an empty namespaceSelector is all(); then the rule is
    // scoped like any Calico rule (rules.go), textually.
    if pod.is_none() && nsel.is_none() {
        return Err(src.err(n, "a peer must specify podSelector, namespaceSelector or ipBlock"));
    }
    let pods = Expr::and(vec![Expr::Eq(ORCH_LABEL.into(), "k8s".into()), pod.unwrap_or(Expr::All)]).to_string();
    let namespaces = nsel.map(|e| e.to_string()).unwrap_or_default();
    let fields = scope::EntitySelectors {
        namespace_selector: &namespaces,
        selector: &pods,
        ..scope::EntitySelectors::default()
    };
    let (selector, _) = scope::entity_selectors(&fields, Some(ns), &src.pos(n))?;
    Ok(EntityRule { selector, ..EntityRule::default() })
}

fn port(src: Src<'_>, n: &Node) -> DResult<(Option<Protocol>, Vec<PortMatch>)> {
    let mut f = src.fields(n, "port")?;
    let proto = match f.str("protocol")? {
        None => Protocol::Tcp,
        Some(p) => match p.value.as_str() {
            "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            "SCTP" => Protocol::Sctp,
            other => return Err(Diagnostic::error(p.pos, format!("unknown protocol {other:?}: use TCP, UDP or SCTP"))),
        },
    };
    let end = f.int("endPort")?;
    let pm = match f.get("port") {
        None => {
            if let Some(e) = end {
                return Err(Diagnostic::error(e.pos, "endPort requires a numeric port"));
            }
            Vec::new()
        }
        Some(p) => match &p.value {
            Value::Int(i) => {
                let first = port_number(src, p, *i)?;
                let last = match end {
                    None => first,
                    Some(e) => {
                        let last =
                            port_number(src, p, e.value).map_err(|d| Diagnostic::error(e.pos.clone(), d.message))?;
                        if last < first {
                            return Err(Diagnostic::error(
                                e.pos,
                                format!("endPort {last} is smaller than port {first}"),
                            ));
                        }
                        last
                    }
                };
                vec![PortMatch::Range(first, last)]
            }
            Value::Str(s) => {
                if let Some(e) = end {
                    return Err(Diagnostic::error(e.pos, "endPort requires a numeric port, not a named one"));
                }
                check_port_name(s).map_err(|e| src.err(p, e))?;
                vec![PortMatch::Named(s.clone())]
            }
            other => return Err(src.err(p, format!("port: expected a number or a name, found {}", other.type_name()))),
        },
    };
    f.finish()?;
    Ok((Some(proto), pm))
}

pub(crate) fn port_number(src: Src<'_>, n: &Node, i: i64) -> DResult<u16> {
    u16::try_from(i).ok().filter(|p| *p > 0).ok_or_else(|| src.err(n, format!("port {i} is out of range 1..65535")))
}

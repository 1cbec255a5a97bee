//! Calico `projectcalico.org/v3` objects: (Global)NetworkPolicy, their staged
//! forms, (Global)NetworkSet and Tier, decoded strictly and scoped the way
//! Calico's update processors scope them (C2, C3).

use std::collections::BTreeMap;

use ipnet::IpNet;

use super::k8s::{cidr, decode_meta, policy_types, port_number, staged_action_field, zero_spec_but};
use super::scope;
use crate::diag::{DResult, Diagnostic};
use crate::manifest::fields::{Fields, Src};
use crate::manifest::yaml::{Node, Value};
use crate::model::cluster::NS_LABEL;
use crate::model::policy::{
    Action, EntityRule, IcmpMatch, NetworkSet, Policy, PolicyId, PolicyKind, Rule, StagedAction, Tier,
};
use crate::model::port::{check_port_name, PortMatch, Protocol};
use crate::selector::{self, Expr};

/// Parses a selector string field, mapping parse errors to the file.
fn selector_at(src: Src<'_>, n: &Node, what: &str) -> DResult<Expr> {
    let text = src.str(n, what)?;
    selector::parse(&text.value)
        .map_err(|e| Diagnostic::error(src.char_pos(n, e.col - 1), format!("{what}: invalid selector: {}", e.message)))
}

/// A selector field's text as written ("" when absent), once it parsed
/// (and, where the CEL rules say so, has no `global(`); Calico composes the
/// text, not the parse (`scope`).
fn selector_field(src: Src<'_>, n: Option<&Node>, what: &str, global_ok: bool) -> DResult<String> {
    let Some(n) = n else { return Ok(String::new()) };
    selector_at(src, n, what)?;
    if !global_ok {
        no_global(src, n, what)?;
    }
    Ok(src.str(n, what)?.value)
}

/// The CEL rules on policy selectors and rule `selector`s test the text:
/// `!self.selector.contains('global(')`, string literals included.
fn no_global(src: Src<'_>, n: &Node, what: &str) -> DResult<()> {
    if src.str(n, what)?.value.contains("global(") {
        return Err(src.err(n, format!("{what}: global() may only be used alone in a rule's namespaceSelector")));
    }
    Ok(())
}

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

/// validator.go `globalNetworkPolicyNameRegex` (a label, or two joined by
/// one '.') and `networkPolicyNameRegex` (the same, or `knp.default.` /
/// `ossg.default.` and a DNS subdomain).
fn policy_name_ok(name: &str, global: bool) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() <= 2 && parts.iter().all(|p| dns_label(p)) {
        return true;
    }
    !global
        && ["knp.default.", "ossg.default."]
            .iter()
            .any(|prefix| name.strip_prefix(prefix).is_some_and(|rest| rest.split('.').all(dns_label)))
}

/// Decodes a Calico NetworkPolicy, GlobalNetworkPolicy or staged form.
pub fn decode_policy(src: Src<'_>, root: &Node, kind: PolicyKind) -> DResult<Policy> {
    let global = matches!(kind, PolicyKind::GlobalNetworkPolicy | PolicyKind::StagedGlobalNetworkPolicy);
    let mut f = src.fields(root, "policy")?;
    f.skip(&["apiVersion", "kind", "status"]);
    let meta = decode_meta(src, &mut f, kind.name())?;
    let namespace = if global {
        if let Some(ns) = &meta.namespace {
            return Err(Diagnostic::error(
                ns.pos.clone(),
                format!("{} is cluster-wide and has no namespace", kind.name()),
            ));
        }
        None
    } else {
        Some(meta.namespace.map(|n| n.value).unwrap_or_else(|| "default".into()))
    };
    let spec = f.get("spec").ok_or_else(|| src.err(root, format!("{} without spec", kind.name())))?;
    f.finish()?;
    let mut s = src.fields(spec, "policy spec")?;

    let staged = if kind.is_staged() { Some(staged_action_field(&mut s)?) } else { None };
    let tier = match s.str("tier")? {
        Some(t) if t.value.is_empty() => "default".to_string(),
        Some(t) => t.value,
        None => "default".to_string(),
    };
    if !policy_name_ok(&meta.name.value, global) {
        let form = if global {
            "a DNS label, or two joined by one '.'"
        } else {
            "a DNS label, two joined by one '.', or knp.default. / ossg.default. and a DNS subdomain"
        };
        return Err(Diagnostic::error(
            meta.name.pos.clone(),
            format!("{} name {:?} is not {form} (validator.go)", kind.name(), meta.name.value),
        ));
    }
    let order = match s.get("order") {
        None => None,
        Some(n) => Some(match &n.value {
            Value::Int(i) => *i as f64,
            Value::Float(x) => *x,
            other => return Err(src.err(n, format!("order: expected a number, found {}", other.type_name()))),
        }),
    };

    let sel_raw = selector_field(src, s.get("selector"), "selector", false)?;
    let ns_raw = if namespace.is_none() {
        selector_field(src, s.get("namespaceSelector"), "namespaceSelector", false)?
    } else {
        String::new()
    };
    let sa_raw = selector_field(src, s.get("serviceAccountSelector"), "serviceAccountSelector", false)?;
    let fields =
        scope::PolicySelectors { selector: &sel_raw, namespace_selector: &ns_raw, service_account_selector: &sa_raw };
    let selector = scope::policy_selector(&fields, namespace.as_deref(), &src.pos(spec))?;

    let ingress_nodes = s.seq("ingress")?.unwrap_or(&[]);
    let egress_nodes = s.seq("egress")?.unwrap_or(&[]);
    if let Some(t) = s.get("types").filter(|t| matches!(&t.value, Value::Seq(v) if v.is_empty())) {
        return Err(src.err(t, "types: at least one of Ingress, Egress (or leave it out)"));
    }
    let types = s.strings("types")?;
    // C10: Calico's own defaulting, unlike Kubernetes' K2.
    let default = (!ingress_nodes.is_empty() || egress_nodes.is_empty(), !egress_nodes.is_empty());
    let (ingress_type, egress_type) = policy_types(&types, "types", default, false)?;

    let do_not_track = s.bool("doNotTrack")?.unwrap_or(false);
    let pre_dnat = s.bool("preDNAT")?.unwrap_or(false);
    let apply_on_forward = s.bool("applyOnForward")?.unwrap_or(false);
    if !global && (do_not_track || pre_dnat || apply_on_forward) {
        return Err(src.err(spec, "doNotTrack, preDNAT and applyOnForward exist only on GlobalNetworkPolicy"));
    }
    if (do_not_track || pre_dnat) && !apply_on_forward {
        return Err(src.err(spec, "doNotTrack and preDNAT require applyOnForward: true"));
    }
    if do_not_track && pre_dnat {
        return Err(src.err(spec, "doNotTrack and preDNAT cannot both be set"));
    }
    if pre_dnat && (egress_type || !egress_nodes.is_empty()) {
        return Err(src.err(spec, "a preDNAT policy may not have egress rules or the Egress type"));
    }
    s.skip(&["performanceHints"]);

    let ns = namespace.as_deref();
    let ingress =
        ingress_nodes.iter().enumerate().map(|(i, r)| rule(src, r, i, ns, true)).collect::<DResult<Vec<_>>>()?;
    let egress =
        egress_nodes.iter().enumerate().map(|(i, r)| rule(src, r, i, ns, false)).collect::<DResult<Vec<_>>>()?;
    if staged == Some(StagedAction::Delete) {
        // validator.go: a staged Delete carries nothing but its action and tier.
        zero_spec_but(src, spec, &["stagedAction", "tier"])?;
    }
    s.finish()?;

    Ok(Policy {
        id: PolicyId { kind, namespace, name: meta.name.value },
        tier,
        order,
        selector,
        ingress_type,
        egress_type,
        ingress,
        egress,
        staged,
        host_endpoints_only: do_not_track || pre_dnat,
        origin: src.pos(root),
    })
}

fn decode_protocol(src: Src<'_>, n: &Node, what: &str) -> DResult<Protocol> {
    match &n.value {
        Value::Int(i) if (1..=255).contains(i) => Ok(Protocol::from_number(*i as u8)),
        // The v3 API spells names exactly so (validator.go); `tcp` is the
        // backend's spelling, refused here.
        Value::Str(s) => ["TCP", "UDP", "ICMP", "ICMPv6", "SCTP", "UDPLite"]
            .contains(&s.as_str())
            .then(|| Protocol::from_name(s))
            .flatten()
            .or_else(|| s.parse::<u8>().ok().filter(|n| *n > 0).map(Protocol::from_number))
            .ok_or_else(|| {
                src.err(
                    n,
                    format!("{what}: unknown protocol {s:?}: use TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or 1..255"),
                )
            }),
        other => Err(src.err(n, format!("{what}: expected a protocol name or 1..255, found {other}"))),
    }
}

fn icmp(src: Src<'_>, n: &Node, what: &str) -> DResult<IcmpMatch> {
    let mut f = src.fields(n, "icmp")?;
    let typ = f.int("type")?;
    let code = f.int("code")?;
    f.finish()?;
    let typ = typ
        .map(|t| {
            u8::try_from(t.value)
                .ok()
                .filter(|v| *v <= 254)
                .ok_or_else(|| Diagnostic::error(t.pos, format!("{what}.type must be 0..254")))
        })
        .transpose()?;
    let code_v = code
        .clone()
        .map(|c| u8::try_from(c.value).map_err(|_| Diagnostic::error(c.pos, format!("{what}.code must be 0..255"))))
        .transpose()?;
    if code_v.is_some() && typ.is_none() {
        return Err(src.err(n, format!("{what}: code requires type")));
    }
    Ok(IcmpMatch { typ, code: code_v })
}

fn rule(src: Src<'_>, n: &Node, index: usize, ns: Option<&str>, ingress: bool) -> DResult<Rule> {
    let mut f = src.fields(n, "rule")?;
    f.skip(&["metadata"]);
    let action_at = f.str("action")?.ok_or_else(|| src.err(n, "rule without action"))?;
    let action = match action_at.value.as_str() {
        "Allow" => Action::Allow,
        "Deny" => Action::Deny,
        "Log" => Action::Log,
        "Pass" => Action::Pass,
        other => {
            return Err(Diagnostic::error(
                action_at.pos,
                format!("unknown action {other:?}: use Allow, Deny, Log or Pass"),
            ))
        }
    };
    let protocol = f.get("protocol").map(|p| decode_protocol(src, p, "protocol")).transpose()?;
    let not_protocol = f.get("notProtocol").map(|p| decode_protocol(src, p, "notProtocol")).transpose()?;
    let ip_version = match f.int("ipVersion")? {
        None => None,
        Some(v) if v.value == 4 || v.value == 6 => Some(v.value as u8),
        Some(v) => return Err(Diagnostic::error(v.pos, "ipVersion must be 4 or 6")),
    };
    // validator.go validateRule: ICMP is IPv4's, ICMPv6 IPv6's, with or without icmp fields.
    // policy_common.go's CEL rules: for protocol and notProtocol alike.
    for (field, p) in [("protocol", protocol), ("notProtocol", not_protocol)] {
        match (p, ip_version) {
            (Some(Protocol::Icmp), Some(6)) => {
                return Err(src.err(n, format!("{field} ICMP needs ipVersion 4 (or none)")))
            }
            (Some(Protocol::IcmpV6), Some(4)) => {
                return Err(src.err(n, format!("{field} ICMPv6 needs ipVersion 6 (or none)")))
            }
            _ => {}
        }
    }
    let icmp_node = f.get("icmp");
    let not_icmp_node = f.get("notICMP");
    let icmp_m = icmp_node.map(|x| icmp(src, x, "icmp")).transpose()?;
    let not_icmp_m = not_icmp_node.map(|x| icmp(src, x, "notICMP")).transpose()?;
    // The CEL rule covers icmp only: notICMP is accepted with any protocol
    // or none (it then also matches what is not ICMP at all).
    if let Some(x) = icmp_node {
        match protocol {
            Some(Protocol::Icmp) if ip_version == Some(6) => return Err(src.err(x, "protocol ICMP needs ipVersion 4")),
            Some(Protocol::IcmpV6) if ip_version == Some(4) => {
                return Err(src.err(x, "protocol ICMPv6 needs ipVersion 6"))
            }
            Some(Protocol::Icmp | Protocol::IcmpV6) => {}
            _ => return Err(src.err(x, "icmp/notICMP require protocol ICMP or ICMPv6")),
        }
    }
    let source = match f.get("source") {
        Some(x) => entity(src, x, ns, protocol, "source")?,
        None => EntityRule::default(),
    };
    let destination = match f.get("destination") {
        Some(x) => entity(src, x, ns, protocol, "destination")?,
        None => EntityRule::default(),
    };
    if source.service.is_some() && !ingress {
        return Err(src.err(n, "source services may only be used in ingress rules"));
    }
    if destination.service.is_some() && ingress {
        return Err(src.err(n, "destination services may only be used in egress rules"));
    }
    let http = match f.get("http") {
        None => false,
        Some(h) => {
            let mut hf = src.fields(h, "http")?;
            let _methods = hf.strings("methods")?;
            for p in hf.seq("paths")?.unwrap_or(&[]) {
                let mut pf = src.fields(p, "http path")?;
                let exact = pf.str("exact")?;
                let prefix = pf.str("prefix")?;
                pf.finish()?;
                if exact.is_some() == prefix.is_some() {
                    return Err(src.err(p, "an http path needs exactly one of exact or prefix"));
                }
            }
            hf.finish()?;
            if action != Action::Allow || !ingress || !matches!(protocol, None | Some(Protocol::Tcp)) {
                return Err(
                    src.err(h, "http matches are allowed only on ingress Allow rules with protocol TCP or none")
                );
            }
            true
        }
    };
    let origin = src.pos(n);
    f.finish()?;
    // validator.go scanNets: one family across all four CIDR fields, and
    // the one ipVersion names.
    let fam: Vec<bool> = [&source, &destination]
        .iter()
        .flat_map(|side| side.nets.iter().chain(&side.not_nets))
        .map(|n| n.addr().is_ipv4())
        .collect();
    if fam.iter().any(|v| *v) && fam.iter().any(|v| !*v) {
        return Err(Diagnostic::error(
            origin.clone(),
            "a rule may not mix IPv4 and IPv6 CIDRs (nets and notNets, source and destination)",
        ));
    }
    if let (Some(v), Some(&is_v4)) = (ip_version, fam.first()) {
        if (v == 4) != is_v4 {
            return Err(Diagnostic::error(
                origin.clone(),
                format!("ipVersion {v} contradicts the rule's IPv{} CIDRs", if is_v4 { 4 } else { 6 }),
            ));
        }
    }
    Ok(Rule {
        action,
        ip_version,
        protocol,
        not_protocol,
        icmp: icmp_m,
        not_icmp: not_icmp_m,
        source,
        destination,
        http,
        index,
        name: None,
        origin,
    })
}

fn ports(src: Src<'_>, items: &[Node], proto: Option<Protocol>, what: &str) -> DResult<Vec<PortMatch>> {
    let mut out = Vec::new();
    for p in items {
        let pm = match &p.value {
            Value::Int(i) => {
                let n = port_number(src, p, *i)?;
                PortMatch::Range(n, n)
            }
            Value::Str(s) if s.contains(':') => {
                let (a, b) = s.split_once(':').expect("checked");
                let num =
                    |x: &str| x.parse::<i64>().map_err(|_| src.err(p, format!("{what}: invalid port range {s:?}")));
                let (a, b) = (port_number(src, p, num(a)?)?, port_number(src, p, num(b)?)?);
                if b < a {
                    return Err(src.err(p, format!("{what}: port range {s:?} ends before it starts")));
                }
                PortMatch::Range(a, b)
            }
            Value::Str(s) if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() => {
                let n = port_number(src, p, s.parse::<i64>().unwrap_or(0))?;
                PortMatch::Range(n, n)
            }
            Value::Str(s) => {
                check_port_name(s).map_err(|e| src.err(p, format!("{what}: {e}")))?;
                PortMatch::Named(s.clone())
            }
            other => {
                return Err(src.err(p, format!("{what}: expected a port, range or name, found {}", other.type_name())))
            }
        };
        if matches!(pm, PortMatch::Range(..)) && !proto.is_some_and(Protocol::has_ports) {
            return Err(src.err(p, format!("{what}: numeric ports need protocol TCP, UDP or SCTP")));
        }
        if proto.is_some_and(|pr| !pr.has_ports()) {
            return Err(
                src.err(p, format!("{what}: protocol {} has no ports (named ones included)", proto.expect("checked")))
            );
        }
        out.push(pm);
    }
    Ok(out)
}

/// A CIDR list; `strict` refuses host bits (rule nets must be masked
/// networks, validator.go `validateIPNetwork`; network sets may have them).
fn nets(f: &mut Fields<'_>, key: &str, strict: bool) -> DResult<Vec<IpNet>> {
    f.strings(key)?.iter().map(|a| cidr(a, strict)).collect()
}

/// Whether the text is the one token `global()` (spaces around it and
/// inside its parentheses allowed, as Calico's tokenizer reads it).
fn is_global_token(text: &str) -> bool {
    let t = text.trim_matches([' ', '\t']);
    t.strip_prefix("global(")
        .and_then(|r| r.strip_suffix(')'))
        .is_some_and(|inner| inner.chars().all(|c| c == ' ' || c == '\t'))
}

/// One EntityRule, scoped by namespace the way rules.go does (C3).
fn entity(src: Src<'_>, n: &Node, policy_ns: Option<&str>, proto: Option<Protocol>, side: &str) -> DResult<EntityRule> {
    let mut f = src.fields(n, "source/destination")?;
    let nets_v = nets(&mut f, "nets", true)?;
    let not_nets = nets(&mut f, "notNets", true)?;
    for net in &not_nets {
        if net.prefix_len() == 0 {
            return Err(src.err(n, format!("{side}.notNets may not contain {net} (it would match nothing)")));
        }
    }
    let sel_raw = selector_field(src, f.get("selector"), &format!("{side}.selector"), false)?;
    // No CEL rule covers notSelector: global() there is accepted (and true).
    let not_raw = selector_field(src, f.get("notSelector"), &format!("{side}.notSelector"), true)?;
    let ns_raw = selector_field(src, f.get("namespaceSelector"), &format!("{side}.namespaceSelector"), true)?;
    // validateEntityRule: a namespaceSelector with global( is the one token global().
    if ns_raw.contains("global(") && !is_global_token(&ns_raw) {
        let x = f.get("namespaceSelector").expect("read above");
        return Err(src.err(x, format!("{side}.namespaceSelector: global() must be used alone")));
    }
    let ports_v = ports(src, f.seq("ports")?.unwrap_or(&[]), proto, &format!("{side}.ports"))?;
    let not_ports = ports(src, f.seq("notPorts")?.unwrap_or(&[]), proto, &format!("{side}.notPorts"))?;
    let mut sa_names = Vec::new();
    let mut sa_raw = String::new();
    if let Some(sa) = f.get("serviceAccounts") {
        let mut sf = src.fields(sa, "serviceAccounts")?;
        sa_names = sf.strings("names")?.into_iter().map(|a| a.value).collect();
        sa_raw = selector_field(src, sf.get("selector"), &format!("{side}.serviceAccounts.selector"), true)?;
        sf.finish()?;
    }
    let service = match f.get("services") {
        None => None,
        Some(x) => {
            let mut sf = src.fields(x, "services")?;
            let name = sf.str("name")?.ok_or_else(|| src.err(x, "services without name"))?;
            let sns = sf.str("namespace")?.map(|a| a.value);
            sf.finish()?;
            let sns = match (sns, policy_ns) {
                (Some(s), _) => s,
                (None, Some(p)) => p.to_string(),
                (None, None) => return Err(src.err(x, "services.namespace is required in a GlobalNetworkPolicy")),
            };
            if !sel_raw.is_empty()
                || !not_raw.is_empty()
                || !ns_raw.is_empty()
                || !nets_v.is_empty()
                || !not_nets.is_empty()
                || !sa_raw.is_empty()
                || !sa_names.is_empty()
            {
                return Err(src.err(x, "services cannot be combined with selectors, nets or serviceAccounts"));
            }
            if side == "destination" && (!ports_v.is_empty() || !not_ports.is_empty()) {
                return Err(src.err(x, "destination ports are not allowed with services"));
            }
            Some((sns, name.value))
        }
    };
    let domains: Vec<String> = f.strings("domains")?.into_iter().map(|a| a.value).collect();
    f.finish()?;

    // C3: namespace scoping, and the notSelector folded into the positive selector.
    let fields = scope::EntitySelectors {
        namespace_selector: &ns_raw,
        selector: &sel_raw,
        not_selector: &not_raw,
        service_account_selector: &sa_raw,
        service_account_names: sa_names,
    };
    let (selector, not_sel) = scope::entity_selectors(&fields, policy_ns, &src.pos(n))?;
    Ok(EntityRule {
        nets: nets_v,
        not_nets,
        selector,
        not_selector: not_sel,
        ports: ports_v,
        not_ports,
        service,
        domains,
        nodes: None,
    })
}

/// Decodes a NetworkSet (namespaced) or GlobalNetworkSet.
pub fn decode_network_set(src: Src<'_>, root: &Node, global: bool) -> DResult<NetworkSet> {
    let kind = if global { "GlobalNetworkSet" } else { "NetworkSet" };
    let mut f = src.fields(root, "network set")?;
    f.skip(&["apiVersion", "kind", "status"]);
    let meta_node = f.get("metadata").ok_or_else(|| src.err(root, format!("{kind} without metadata")))?;
    let mut m = src.fields(meta_node, "metadata")?;
    let name = m.str("name")?.ok_or_else(|| src.err(meta_node, format!("{kind} without metadata.name")))?;
    let namespace = m.str("namespace")?;
    let own: BTreeMap<String, String> = m.string_map("labels")?;
    if own.contains_key(NS_LABEL) {
        return Err(src.err(meta_node, format!("{kind} may not set the label {NS_LABEL}")));
    }
    let mut nets_v = Vec::new();
    if let Some(spec) = f.get("spec") {
        let mut s = src.fields(spec, "network set spec")?;
        nets_v = nets(&mut s, "nets", false)?;
        s.skip(&["allowedEgressDomains"]);
        s.finish()?;
    }
    f.finish()?;
    let (namespace, labels) = if global {
        if let Some(ns) = namespace {
            return Err(Diagnostic::error(ns.pos, "GlobalNetworkSet is cluster-wide and has no namespace"));
        }
        (None, own)
    } else {
        let ns = namespace.map(|n| n.value).unwrap_or_else(|| "default".into());
        let mut l = own;
        l.insert(NS_LABEL.into(), ns.clone());
        (Some(ns), l)
    };
    Ok(NetworkSet { namespace, name: name.value, labels, nets: nets_v, origin: src.pos(root) })
}

/// Decodes a Tier.
pub fn decode_tier(src: Src<'_>, root: &Node) -> DResult<Tier> {
    let mut f = src.fields(root, "Tier")?;
    f.skip(&["apiVersion", "kind", "status"]);
    let meta = decode_meta(src, &mut f, "Tier")?;
    let name = &meta.name.value;
    // validator.go validateTier: a DNS label (so no '.'), at most 63 characters.
    let dns_label = name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    if !dns_label {
        return Err(Diagnostic::error(
            meta.name.pos,
            format!(
                "tier name {name:?} must be a DNS label: at most 63 lowercase letters, digits and '-' ({} here)",
                name.chars().count()
            ),
        ));
    }
    let mut order = None;
    let mut default_action = Action::Deny;
    let spec = f.get("spec");
    if let Some(spec) = spec {
        let mut s = src.fields(spec, "Tier spec")?;
        if let Some(n) = s.get("order") {
            order = Some(match &n.value {
                Value::Int(i) => *i as f64,
                Value::Float(x) => *x,
                other => return Err(src.err(n, format!("order: expected a number, found {}", other.type_name()))),
            });
        }
        if let Some(a) = s.str("defaultAction")? {
            default_action = match a.value.as_str() {
                "Deny" => Action::Deny,
                "Pass" => Action::Pass,
                other => {
                    return Err(Diagnostic::error(a.pos, format!("defaultAction must be Deny or Pass, not {other:?}")))
                }
            };
        }
        s.finish()?;
    }
    f.finish()?;
    // tier.go's CEL rules: the tiers Calico always has cannot be redefined.
    if let Some(fixed) = Tier::well_known().into_iter().find(|t| &t.name == name) {
        if order != fixed.order || default_action != fixed.default_action {
            let shown = |o: Option<f64>| o.map_or("none".to_string(), |o| o.to_string());
            return Err(src.err(
                spec.unwrap_or(root),
                format!(
                    "tier {name} is built in: it must have order {} and defaultAction {} (found order {}, defaultAction {})",
                    shown(fixed.order),
                    fixed.default_action,
                    shown(order),
                    default_action
                ),
            ));
        }
    }
    Ok(Tier { name: meta.name.value, order, default_action, origin: Some(src.pos(root)) })
}

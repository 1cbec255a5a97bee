//! Cluster snapshot objects (`v1` Namespace, Node and Pod, as `kubectl get
//! -o yaml` writes them) decoded into the model's endpoints.

use std::net::IpAddr;

use crate::diag::DResult;
use crate::manifest::fields::Src;
use crate::manifest::yaml::Node as YamlNode;
use crate::model::cluster::{ContainerPort, Namespace, Node, Pod, NAME_LABEL};
use crate::model::port::Protocol;

/// Decodes a `v1` Namespace object (unknown fields are tolerated: snapshots
/// come from `kubectl get -o yaml` and carry much more than we read).
pub fn decode_namespace(src: Src<'_>, root: &YamlNode) -> DResult<Namespace> {
    let mut f = src.fields(root, "Namespace")?;
    let meta = f.get("metadata").ok_or_else(|| src.err(root, "Namespace without metadata"))?;
    let mut m = src.fields(meta, "metadata")?;
    let name = m.str("name")?.ok_or_else(|| src.err(meta, "Namespace without metadata.name"))?;
    let mut labels = m.string_map("labels")?;
    labels.insert(NAME_LABEL.to_string(), name.value.clone());
    Ok(Namespace { name: name.value, labels, origin: src.pos(root) })
}

/// Decodes a `v1` Node object: its name, labels, pod CIDRs and addresses
/// (the rest of a Node, from `kubectl get nodes -o yaml`, is not read).
pub fn decode_node(src: Src<'_>, root: &YamlNode) -> DResult<Node> {
    let mut f = src.fields(root, "Node")?;
    let meta = f.get("metadata").ok_or_else(|| src.err(root, "Node without metadata"))?;
    let mut m = src.fields(meta, "metadata")?;
    let name = m.str("name")?.ok_or_else(|| src.err(meta, "Node without metadata.name"))?.value;
    let labels = m.string_map("labels")?;
    let mut addresses = Vec::new();
    if let Some(status) = f.get("status") {
        let mut st = src.fields(status, "status")?;
        for a in st.seq("addresses")?.unwrap_or(&[]) {
            let mut af = src.fields(a, "address")?;
            // Hostname entries hold names, not addresses.
            if let Some(ip) = af.str("address")?.and_then(|v| v.value.parse().ok()) {
                if !addresses.contains(&ip) {
                    addresses.push(ip);
                }
            }
        }
    }
    let mut pod_cidrs = Vec::new();
    if let Some(spec) = f.get("spec") {
        let mut s = src.fields(spec, "spec")?;
        let mut cidrs = s.strings("podCIDRs")?;
        if cidrs.is_empty() {
            cidrs.extend(s.str("podCIDR")?);
        }
        for c in cidrs {
            let net: ipnet::IpNet = c.value.parse().map_err(|_| {
                crate::diag::Diagnostic::error(c.pos.clone(), format!("podCIDRs: invalid CIDR {:?}", c.value))
            })?;
            pod_cidrs.push(net.trunc());
        }
    }
    Ok(Node { name, pod_cidrs, labels, addresses, origin: src.pos(root) })
}

/// Decodes a `v1` Pod object.
pub fn decode_pod(src: Src<'_>, root: &YamlNode) -> DResult<Pod> {
    let mut f = src.fields(root, "Pod")?;
    let meta = f.get("metadata").ok_or_else(|| src.err(root, "Pod without metadata"))?;
    let mut m = src.fields(meta, "metadata")?;
    let name = m.str("name")?.ok_or_else(|| src.err(meta, "Pod without metadata.name"))?.value;
    let namespace = m.str("namespace")?.map(|a| a.value).unwrap_or_else(|| "default".into());
    let labels = m.string_map("labels")?;
    let annotations = m.string_map("annotations")?;
    let deleting = m.get("deletionTimestamp").is_some();

    let mut node = None;
    let mut host_network = false;
    let mut service_account = String::new();
    let mut ports = Vec::new();
    if let Some(spec) = f.get("spec") {
        let mut s = src.fields(spec, "spec")?;
        node = s.str("nodeName")?.map(|a| a.value);
        host_network = s.bool("hostNetwork")?.unwrap_or(false);
        // Calico reads serviceAccountName only (the API server copies the
        // deprecated serviceAccount into it).
        if let Some(sa) = s.str("serviceAccountName")? {
            service_account = sa.value;
        }
        s.skip(&["serviceAccount"]);
        // Calico takes named ports from init containers too (native sidecars, C1).
        let containers = s.seq("containers")?.unwrap_or(&[]);
        let init = s.seq("initContainers")?.unwrap_or(&[]);
        for c in containers.iter().chain(init) {
            let mut cf = src.fields(c, "container")?;
            for p in cf.seq("ports")?.unwrap_or(&[]) {
                let mut pf = src.fields(p, "containerPort")?;
                let num = pf.int("containerPort")?.ok_or_else(|| src.err(p, "container port without containerPort"))?;
                let port = u16::try_from(num.value)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| src.err(p, format!("containerPort {} is out of range 1..65535", num.value)))?;
                let protocol = match pf.str("protocol")? {
                    None => Protocol::Tcp,
                    Some(p) => match Protocol::from_name(&p.value) {
                        Some(pr @ (Protocol::Tcp | Protocol::Udp | Protocol::Sctp)) => pr,
                        _ => {
                            return Err(crate::diag::Diagnostic::error(
                                p.pos,
                                format!("unknown container port protocol {:?}", p.value),
                            ))
                        }
                    },
                };
                ports.push(ContainerPort { name: pf.str("name")?.map(|a| a.value), port, protocol });
            }
        }
    }

    let mut phase = "Running".to_string();
    let mut ips = Vec::new();
    if let Some(status) = f.get("status") {
        let mut s = src.fields(status, "status")?;
        if let Some(p) = s.str("phase")? {
            phase = p.value;
        }
        for item in s.seq("podIPs")?.unwrap_or(&[]) {
            let mut pf = src.fields(item, "podIP")?;
            if let Some(ip) = pf.str("ip")? {
                let addr: IpAddr = ip.value.parse().map_err(|_| {
                    crate::diag::Diagnostic::error(ip.pos.clone(), format!("invalid pod IP {:?}", ip.value))
                })?;
                if !ips.contains(&addr) {
                    ips.push(addr);
                }
            }
        }
        if let Some(ip) = s.str("podIP")? {
            let addr: IpAddr = ip.value.parse().map_err(|_| {
                crate::diag::Diagnostic::error(ip.pos.clone(), format!("invalid pod IP {:?}", ip.value))
            })?;
            if !ips.contains(&addr) {
                ips.insert(0, addr);
            }
        }
    }
    if ips.is_empty() {
        ips = crate::model::cluster::annotated_pod_ips(&annotations);
    }
    if crate::model::cluster::network_removed(&annotations, deleting) {
        ips.clear();
    }
    Ok(Pod { namespace, name, labels, ips, node, host_network, service_account, ports, phase, origin: src.pos(root) })
}

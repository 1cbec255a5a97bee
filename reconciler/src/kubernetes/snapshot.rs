//! A cluster written as the snapshot `--cluster` reads: `v1` Namespace and
//! Pod documents carrying only what the engine uses, so a snapshot of a big
//! cluster stays small and diffs well in Git.

use std::fmt::Write;

use crate::model::cluster::NAME_LABEL;
use crate::model::port::Protocol;
use crate::model::Cluster;

/// YAML, namespaces first, everything sorted; strings are JSON-quoted
/// (valid YAML), so no label value can change type on the way back.
pub fn render(cluster: &Cluster) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut o = String::new();
    let mut docs = 0;
    let mut sep = |o: &mut String| {
        if docs > 0 {
            o.push_str("---\n");
        }
        docs += 1;
    };
    for ns in cluster.namespaces.values() {
        sep(&mut o);
        let _ = writeln!(o, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {}", q(&ns.name));
        let labels: Vec<_> = ns.labels.iter().filter(|(k, _)| *k != NAME_LABEL).collect();
        if !labels.is_empty() {
            o.push_str("  labels:\n");
            for (k, v) in labels {
                let _ = writeln!(o, "    {}: {}", q(k), q(v));
            }
        }
    }
    let mut pods: Vec<_> = cluster.pods.iter().collect();
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    for p in pods {
        sep(&mut o);
        let _ = writeln!(
            o,
            "apiVersion: v1\nkind: Pod\nmetadata:\n  namespace: {}\n  name: {}",
            q(&p.namespace),
            q(&p.name)
        );
        if !p.labels.is_empty() {
            o.push_str("  labels:\n");
            for (k, v) in &p.labels {
                let _ = writeln!(o, "    {}: {}", q(k), q(v));
            }
        }
        o.push_str("spec:\n");
        if let Some(n) = &p.node {
            let _ = writeln!(o, "  nodeName: {}", q(n));
        }
        if p.host_network {
            o.push_str("  hostNetwork: true\n");
        }
        let _ = writeln!(o, "  serviceAccountName: {}", q(&p.service_account));
        // One container carries every port: the engine does not tell containers apart.
        o.push_str("  containers:\n  - name: \"main\"\n");
        if !p.ports.is_empty() {
            o.push_str("    ports:\n");
            for cp in &p.ports {
                let _ = write!(o, "    - containerPort: {}\n      protocol: {}\n", cp.port, protocol(cp.protocol));
                if let Some(n) = &cp.name {
                    let _ = writeln!(o, "      name: {}", q(n));
                }
            }
        }
        let _ = writeln!(o, "status:\n  phase: {}", q(&p.phase));
        if !p.ips.is_empty() {
            let _ = writeln!(o, "  podIP: {}\n  podIPs:", q(&p.ips[0].to_string()));
            for ip in &p.ips {
                let _ = writeln!(o, "  - ip: {}", q(&ip.to_string()));
            }
        }
    }
    o
}

fn protocol(p: Protocol) -> &'static str {
    match p {
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
        _ => "TCP",
    }
}

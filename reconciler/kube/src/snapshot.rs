//! A cluster written as the snapshot `--cluster` reads: `v1` Namespace and
//! Pod documents carrying only what the engine uses, so a snapshot of a big
//! cluster stays small and diffs well in Git.

use std::fmt::Write;

use netward_policy::model::cluster::NAME_LABEL;
use netward_policy::model::port::Protocol;
use netward_policy::model::Cluster;

/// A scalar as YAML: plain when it can only read back as this string,
/// JSON-quoted otherwise (numbers, addresses, `yes`, `null`, odd characters).
fn q(s: &str) -> String {
    let plain = s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        );
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

/// YAML, namespaces first, everything sorted; anything that could change
/// type on the way back (a label `"yes"`, `"8080"`) is quoted.
pub fn render(cluster: &Cluster) -> String {
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
    for n in cluster.nodes.values() {
        sep(&mut o);
        let _ = writeln!(o, "apiVersion: v1\nkind: Node\nmetadata:\n  name: {}", q(&n.name));
        if !n.labels.is_empty() {
            o.push_str("  labels:\n");
            for (k, v) in &n.labels {
                let _ = writeln!(o, "    {}: {}", q(k), q(v));
            }
        }
        if !n.pod_cidrs.is_empty() {
            let cidrs: Vec<String> = n.pod_cidrs.iter().map(|c| q(&c.to_string())).collect();
            let _ = writeln!(o, "spec:\n  podCIDRs: [{}]", cidrs.join(", "));
        }
        // ClusterNetworkPolicy `nodes` peers stand for these addresses.
        if !n.addresses.is_empty() {
            o.push_str("status:\n  addresses:\n");
            for a in &n.addresses {
                let _ = writeln!(o, "    - {{type: InternalIP, address: {}}}", q(&a.to_string()));
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
        o.push_str("  containers:\n  - name: main\n");
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use netward_policy::manifest::load::load_cluster_text;

    #[test]
    fn awkward_label_values_read_back_as_the_same_strings() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: ns1, labels: {a: \"yes\", b: \"8080\", c: \"null\"}}\n---\n\
                    apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: ns1, labels: {x: \"true\", \"y\": \"a b: c\", z: \"0x1F\", w: \"-\"}}\n\
                    spec: {nodeName: node-1, containers: [{name: c, ports: [{containerPort: 53, protocol: UDP, name: \"no\"}]}]}\n\
                    status: {phase: Running, podIP: 10.0.0.1, podIPs: [{ip: 10.0.0.1}, {ip: \"fd00::1\"}]}\n";
        let mut diags = Vec::new();
        let mut original = load_cluster_text(&Arc::from("in.yaml"), text, &mut diags);
        original.fill_missing_namespaces();
        assert!(diags.is_empty(), "{diags:?}");
        let rendered = super::render(&original);
        let mut back = load_cluster_text(&Arc::from("out.yaml"), &rendered, &mut diags);
        back.fill_missing_namespaces();
        assert!(diags.is_empty(), "{diags:?}\n{rendered}");
        assert_eq!(back.namespaces["ns1"].labels, original.namespaces["ns1"].labels);
        let (a, b) = (&original.pods[0], &back.pods[0]);
        assert_eq!((&a.labels, &a.ips, &a.ports, &a.node, &a.phase), (&b.labels, &b.ips, &b.ports, &b.node, &b.phase));
    }
}

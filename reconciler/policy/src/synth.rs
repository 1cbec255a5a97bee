//! Synthetic clusters and policy sets that look like real ones: namespaces
//! per team and environment, deployments with several replicas, named
//! ports, hostNetwork node agents, default-deny plus allow policies,
//! Calico tiers with Pass and Deny, network sets and ipBlocks.
//!
//! Deterministic for a seed, so benchmarks and tests are repeatable.

use std::fmt::Write;

/// The `n`th made-up address (from 0) in `10.<block>.0.0/16`, for
/// endpoints netward invents (workload templates, representatives); None
/// once the block's 65,534 host addresses are used up, so addresses never
/// wrap around or collide.
pub fn synthetic_ip(block: u8, n: usize) -> Option<std::net::IpAddr> {
    let host = u16::try_from(n.checked_add(1)?).ok().filter(|h| *h < u16::MAX)?;
    let [hi, lo] = host.to_be_bytes();
    Some(std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, block, hi, lo)))
}

/// How big a world to make.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// How many pods, host-networked node agents included.
    pub pods: usize,
    /// How many policy objects to write, staged ones included.
    pub policies: usize,
    /// The random seed: the same shape and seed give the same texts.
    pub seed: u64,
}

/// The generated YAML texts.
pub struct Generated {
    /// Namespaces and pods, as multi-document YAML.
    pub cluster: String,
    /// Tiers, network sets and policies, as multi-document YAML.
    pub policies: String,
}

/// splitmix64: small, fast, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TIERS: [&str; 5] = ["web", "api", "db", "cache", "worker"];
const TEAMS: [&str; 6] = ["payments", "search", "identity", "ads", "infra", "growth"];

struct App {
    ns: usize,
    name: String,
    tier: &'static str,
}

fn ports_of(tier: &str) -> &'static [(&'static str, u16, &'static str)] {
    match tier {
        "web" => &[("http", 8080, "TCP")],
        "api" => &[("http", 8080, "TCP"), ("grpc", 9090, "TCP")],
        "db" => &[("postgres", 5432, "TCP")],
        "cache" => &[("redis", 6379, "TCP")],
        _ => &[("metrics", 9100, "TCP"), ("dns", 5353, "UDP")],
    }
}

/// Makes a cluster snapshot and a policy set of the given shape.
pub fn generate(shape: &Shape) -> Generated {
    let mut rng = Rng(shape.seed);
    let namespaces = (shape.pods / 50).max(2);
    let nodes = (shape.pods / 30).max(2);
    let mut cluster = String::new();
    for ns in 0..namespaces {
        let team = TEAMS[ns % TEAMS.len()];
        let env = if ns % 3 == 0 { "staging" } else { "prod" };
        let _ = write!(
            cluster,
            "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns{ns}\n  labels:\n    team: {team}\n    env: {env}\n"
        );
    }
    // Deployments of 2..8 replicas until the pod budget (minus node agents) is spent.
    let agents = nodes.min(shape.pods / 20);
    let mut apps = Vec::new();
    let mut pods = 0usize;
    let mut ip = 0u32;
    while pods + agents < shape.pods {
        let ns = apps.len() % namespaces;
        let tier = TIERS[rng.below(TIERS.len())];
        let app = App { ns, name: format!("{tier}{}", apps.len()), tier };
        let replicas = (2 + rng.below(7)).min(shape.pods - agents - pods);
        let hash = format!("{:x}", rng.next() & 0xffffff);
        for r in 0..replicas {
            ip += 1;
            let node = rng.below(nodes);
            let version = if rng.below(4) == 0 { "v2" } else { "v1" };
            let _ = write!(
                cluster,
                "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {}-{hash}-{r}\n  namespace: ns{}\n  labels:\n    app: {}\n    tier: {}\n    version: {version}\n    pod-template-hash: \"{hash}\"\nspec:\n  nodeName: node{node}\n  serviceAccountName: {}\n  containers:\n  - name: main\n    ports:\n",
                app.name, app.ns, app.name, app.tier, app.name
            );
            for (pname, port, proto) in ports_of(tier) {
                let _ = write!(cluster, "    - name: {pname}\n      containerPort: {port}\n      protocol: {proto}\n");
            }
            let _ = write!(
                cluster,
                "status:\n  phase: Running\n  podIP: 10.{}.{}.{}\n",
                64 + (ip >> 16) % 64,
                (ip >> 8) & 255,
                ip & 255
            );
        }
        pods += replicas;
        apps.push(app);
    }
    for n in 0..agents {
        let _ = write!(
            cluster,
            "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: node-exporter-{n}\n  namespace: monitoring\n  labels:\n    app: node-exporter\nspec:\n  nodeName: node{n}\n  hostNetwork: true\n  containers:\n  - name: exporter\n    ports:\n    - name: metrics\n      containerPort: 9100\nstatus:\n  phase: Running\n  podIP: 192.168.{}.{}\n",
            n / 250,
            1 + n % 250
        );
    }

    let mut pol = String::new();
    let _ = write!(
        pol,
        "---\napiVersion: projectcalico.org/v3\nkind: Tier\nmetadata:\n  name: security\nspec:\n  order: 100\n---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata:\n  name: partners\n  labels:\n    external: partners\nspec:\n  nets: [\"198.51.100.0/24\", \"203.0.113.0/25\"]\n"
    );
    let mut count = 0;
    let mut i = 0;
    while count < shape.policies {
        let kind = i % 10;
        i += 1;
        let ns = (i / 10) % namespaces;
        let app = &apps[rng.below(apps.len())];
        let peer = &apps[rng.below(apps.len())];
        match kind {
            // Default deny per namespace.
            0 if i / 10 < namespaces => {
                let _ = write!(pol, "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: default-deny\n  namespace: ns{ns}\nspec:\n  podSelector: {{}}\n  policyTypes: [Ingress, Egress]\n");
            }
            // Allow DNS egress for the namespace.
            1 if i / 10 < namespaces => {
                let _ = write!(pol, "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: allow-dns\n  namespace: ns{ns}\nspec:\n  podSelector: {{}}\n  policyTypes: [Egress]\n  egress:\n  - to:\n    - namespaceSelector:\n        matchLabels:\n          kubernetes.io/metadata.name: kube-system\n    ports:\n    - port: 53\n      protocol: UDP\n");
            }
            // k8s allow from a peer app (same or other namespace) on a named port.
            0..=4 => {
                let (pname, _, proto) = ports_of(app.tier)[0];
                let _ = write!(pol, "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: allow-{}-{count}\n  namespace: ns{}\nspec:\n  podSelector:\n    matchLabels:\n      app: {}\n  ingress:\n  - from:\n    - podSelector:\n        matchLabels:\n          tier: {}\n      namespaceSelector:\n        matchLabels:\n          team: {}\n    - podSelector:\n        matchExpressions:\n        - {{key: version, operator: In, values: [v1, v2]}}\n    ports:\n    - port: {pname}\n      protocol: {proto}\n", app.name, app.ns, app.name, peer.tier, TEAMS[peer.ns % TEAMS.len()]);
                // Matching egress from the peer's namespace.
                let _ = write!(pol, "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: egress-{}-{count}\n  namespace: ns{}\nspec:\n  podSelector:\n    matchLabels:\n      tier: {}\n  policyTypes: [Egress]\n  egress:\n  - to:\n    - namespaceSelector: {{}}\n      podSelector:\n        matchLabels:\n          app: {}\n    ports:\n    - port: {pname}\n      protocol: {proto}\n  - to:\n    - ipBlock:\n        cidr: 10.64.0.0/10\n        except: [10.64.{}.0/24]\n", peer.name, peer.ns, peer.tier, app.name, rng.below(8));
                count += 1;
            }
            // Calico namespaced policy with ordered Deny/Allow and port ranges.
            5 | 6 => {
                let _ = write!(pol, "---\napiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata:\n  name: calico-{}-{count}\n  namespace: ns{}\nspec:\n  order: {}\n  selector: app == '{}' || tier == '{}'\n  types: [Ingress]\n  ingress:\n  - action: Deny\n    source:\n      selector: version == 'v2' && tier in {{'worker', 'cache'}}\n  - action: Allow\n    protocol: TCP\n    source:\n      namespaceSelector: env == 'prod'\n      selector: has(tier)\n    destination:\n      ports: [\"8000:9999\", 5432]\n", app.name, app.ns, 100 + rng.below(900), app.name, app.tier);
            }
            // Security tier: quarantine and a Pass for everything else.
            7 => {
                let _ = write!(pol, "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: security-{count}\nspec:\n  tier: security\n  order: {}\n  namespaceSelector: team == '{}'\n  selector: tier == '{}'\n  types: [Ingress, Egress]\n  ingress:\n  - action: Deny\n    source:\n      selector: quarantine == 'true'\n  - action: Pass\n  egress:\n  - action: Deny\n    destination:\n      selector: external == 'partners'\n  - action: Allow\n    protocol: UDP\n    destination:\n      ports: [53]\n  - action: Pass\n", rng.below(1000), TEAMS[rng.below(TEAMS.len())], app.tier);
            }
            // Global egress allow-list to cluster CIDRs for one tier.
            8 => {
                let _ = write!(pol, "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: egress-allowlist-{count}\nspec:\n  order: {}\n  selector: tier == '{}' && app != '{}'\n  types: [Egress]\n  egress:\n  - action: Allow\n    destination:\n      nets: [10.64.0.0/10]\n      notNets: [10.{}.0.0/16]\n  - action: Allow\n    destination:\n      selector: external == 'partners'\n", 2000 + rng.below(1000), app.tier, peer.name, 64 + rng.below(8));
            }
            // A staged policy: evaluated only with --staged.
            _ => {
                let _ = write!(pol, "---\napiVersion: projectcalico.org/v3\nkind: StagedNetworkPolicy\nmetadata:\n  name: staged-{count}\n  namespace: ns{}\nspec:\n  selector: app == '{}'\n  ingress:\n  - action: Allow\n    source:\n      selector: tier == '{}'\n", app.ns, app.name, peer.tier);
            }
        }
        count += 1;
    }
    Generated { cluster, policies: pol }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::manifest::load::{load_cluster_text, load_policy_texts};

    #[test]
    fn generated_worlds_load_cleanly_with_the_requested_size() {
        let g = generate(&Shape { pods: 300, policies: 60, seed: 7 });
        let mut diags = Vec::new();
        let c = load_cluster_text(&Arc::from("cluster.yaml"), &g.cluster, &mut diags);
        let p = load_policy_texts(std::iter::once((Arc::from("policies.yaml"), g.policies.as_str())), &mut diags);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(c.pods.len(), 300);
        assert!(p.policies.len() >= 60, "{}", p.policies.len());
        let again = generate(&Shape { pods: 300, policies: 60, seed: 7 });
        assert_eq!(again.cluster, g.cluster, "same seed, same world");
    }
}

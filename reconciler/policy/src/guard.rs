//! Guards: connections a repository says must stay allowed (or denied),
//! read once per commit from `netward.yaml` (or a `--guards` file) and
//! checked in the analysis the caller already has: `netward diff` refuses
//! a change that breaks one, the reconcile loop refuses such a commit and
//! reports (in `/metrics`) a guard the cluster breaks under the commit in
//! force.

use std::sync::Arc;

use serde::Serialize;

use crate::analysis::{Analysis, Decision, View};
use crate::model::port::FlowPort;
use crate::model::{Cluster, PolicySet};

/// A connection that must stay allowed (or denied), from a guards file.
#[derive(Clone, Debug, Serialize)]
pub struct Guard {
    /// The client, as `namespace/pod` or an IP.
    pub from: String,
    /// The server, as `namespace/pod` or an IP.
    pub to: String,
    /// `PORT[/PROTOCOL]`, as `FlowPort::parse` reads it.
    pub port: String,
    /// Whether the connection must stay allowed (`expect: allow`) or denied.
    pub allow: bool,
    /// Where the guard is written (`file:line:col`).
    pub at: String,
}

/// A guard the head revision breaks.
#[derive(Clone, Debug, Serialize)]
pub struct BrokenGuard {
    /// The guard that no longer holds.
    pub guard: Guard,
    /// The head's verdict, which contradicts it.
    pub after: Decision,
}

/// What a repository says about itself in `netward.yaml` beside its policies.
#[derive(Clone, Debug, Default)]
pub struct RepoSettings {
    /// Connections that must stay allowed or denied.
    pub guards: Vec<Guard>,
    /// `allowNoPolicies: true`: a commit may delete every policy (otherwise
    /// such a commit is refused while the commit in force has policies).
    pub allow_no_policies: bool,
}

/// Reads a guards file: `guards: [{from, to, port, expect: allow|deny}]`.
pub fn load_guards(file: &Arc<str>, text: &str) -> Result<Vec<Guard>, crate::diag::Diagnostic> {
    load_repo_settings(file, text).map(|s| s.guards)
}

/// Reads `netward.yaml`: `guards` and `allowNoPolicies`.
pub fn load_repo_settings(file: &Arc<str>, text: &str) -> Result<RepoSettings, crate::diag::Diagnostic> {
    use crate::diag::Diagnostic;
    use crate::manifest::fields::Src;
    let docs = crate::manifest::yaml::parse_documents(file, text)?;
    let Some(doc) = docs.first() else { return Ok(RepoSettings::default()) };
    let src = Src { file, text };
    let mut f = src.fields(&doc.root, "netward.yaml")?;
    let mut out = Vec::new();
    for g in f.seq("guards")?.unwrap_or(&[]) {
        let mut gf = src.fields(g, "guard")?;
        let mut need = |k: &str| -> Result<crate::manifest::fields::At<String>, Diagnostic> {
            gf.str(k)?.ok_or_else(|| src.err(g, format!("a guard needs `{k}`")))
        };
        let (from, to, port, expect) = (need("from")?, need("to")?, need("port")?, need("expect")?);
        FlowPort::parse(&port.value).map_err(|e| Diagnostic::error(port.pos.clone(), e))?;
        let allow = match expect.value.as_str() {
            "allow" => true,
            "deny" => false,
            o => return Err(Diagnostic::error(expect.pos, format!("expect must be allow or deny, not {o:?}"))),
        };
        gf.finish()?;
        out.push(Guard { from: from.value, to: to.value, port: port.value, allow, at: src.pos(g).to_string() });
    }
    let allow_no_policies = f.bool("allowNoPolicies")?.unwrap_or(false);
    f.finish()?;
    Ok(RepoSettings { guards: out, allow_no_policies })
}

/// The guards the head revision breaks.
pub fn check_guards(guards: &[Guard], head: &PolicySet, cluster: &Cluster) -> Result<Vec<BrokenGuard>, String> {
    let mut out = Vec::new();
    for o in evaluate(guards, &Analysis::new(head, cluster, View::Enforced)) {
        match o {
            GuardOutcome::Holds => {}
            GuardOutcome::Broken(b) => out.push(b),
            GuardOutcome::Unknown(e) => return Err(e),
        }
    }
    Ok(out)
}

/// What became of one guard.
#[derive(Clone, Debug)]
pub enum GuardOutcome {
    /// The head decides the connection as the guard expects.
    Holds,
    /// The head decides it the other way.
    Broken(BrokenGuard),
    /// It cannot be evaluated: an endpoint it names is not in the cluster.
    Unknown(String),
}

/// Each guard's outcome in an analysis the caller already has (the
/// reconcile loop's, which also compiles the ruleset), in order.
pub fn evaluate(guards: &[Guard], an: &Analysis) -> Vec<GuardOutcome> {
    let outcome = |g: &Guard| -> Result<GuardOutcome, String> {
        let fp = FlowPort::parse(&g.port)?;
        let flow = an.flow(&g.from, &g.to, fp.protocol, fp.port, None).map_err(|e| format!("{}: {e}", g.at))?;
        let v = an.evaluate(&flow);
        Ok(if v.allowed == g.allow {
            GuardOutcome::Holds
        } else {
            GuardOutcome::Broken(BrokenGuard { guard: g.clone(), after: v.decision() })
        })
    };
    guards.iter().map(|g| outcome(g).unwrap_or_else(GuardOutcome::Unknown)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_hold_break_or_cannot_be_evaluated_in_one_analysis() {
        let cluster = "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: shop, labels: {app: a}}\nspec: {nodeName: node1}\nstatus: {phase: Running, podIP: 10.0.0.1}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: shop, labels: {app: b}}\nspec: {nodeName: node1}\nstatus: {phase: Running, podIP: 10.0.0.2}\n";
        let deny = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: d, namespace: shop}\nspec: {podSelector: {matchLabels: {app: b}}, policyTypes: [Ingress]}\n";
        let settings = "guards:\n- {from: shop/a, to: shop/b, port: 80/TCP, expect: allow}\n- {from: shop/b, to: shop/a, port: 80/TCP, expect: allow}\n- {from: shop/a, to: shop/gone, port: 80/TCP, expect: deny}\n";
        let mut d = Vec::new();
        let set = crate::manifest::load::load_policy_texts(std::iter::once((Arc::from("p.yaml"), deny)), &mut d);
        let mut c = crate::manifest::load::load_cluster_text(&Arc::from("c.yaml"), cluster, &mut d);
        c.fill_missing_namespaces();
        assert!(d.is_empty(), "{d:?}");
        let guards = load_guards(&Arc::from("netward.yaml"), settings).expect("guards");
        assert_eq!(guards[0].at, "netward.yaml:2:3");
        let an = Analysis::new(&set, &c, View::Enforced);
        let outcomes = evaluate(&guards, &an);
        assert!(matches!(&outcomes[0], GuardOutcome::Broken(b) if !b.after.allowed), "{:?}", outcomes[0]);
        assert!(matches!(outcomes[1], GuardOutcome::Holds), "{:?}", outcomes[1]);
        assert!(matches!(&outcomes[2], GuardOutcome::Unknown(e) if e.contains("shop/gone")), "{:?}", outcomes[2]);
        let broken = check_guards(&guards[..2], &set, &c).expect("evaluated");
        assert_eq!(broken.len(), 1);
    }
}

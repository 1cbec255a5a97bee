//! Rendering analysis results for people and machines. Pure: strings out.

use std::fmt::Write;

use serde_json::{json, Map, Value};

use crate::analysis::{Analysis, DirVerdict, Flow, Matrix, Reason, Verdict};
use crate::model::Action;

/// Output formats of `netward matrix`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatrixFormat {
    Table,
    Json,
    Csv,
    Md,
    Summary,
}

pub fn matrix(m: &Matrix, format: MatrixFormat) -> String {
    match format {
        MatrixFormat::Table => matrix_table(m),
        MatrixFormat::Json => matrix_json(m),
        MatrixFormat::Csv => matrix_csv(m),
        MatrixFormat::Md => matrix_md(m),
        MatrixFormat::Summary => matrix_summary(m),
    }
}

/// The e2e suite's truth table: `.` allowed, `X` denied, `-` a pod and itself,
/// `*` a verdict that an L7/DNS/Service/source-port rule may change.
fn matrix_table(m: &Matrix) -> String {
    let mut out = String::new();
    let n = m.endpoints.len();
    for (pi, port) in m.ports.iter().enumerate() {
        let _ = writeln!(out, "{port}");
        let _ = writeln!(out, "-\t{}", m.endpoints.join("\t"));
        for a in 0..n {
            let _ = write!(out, "{}", m.endpoints[a]);
            for b in 0..n {
                let cell = if a == b {
                    "-".to_string()
                } else {
                    let c = if m.allowed(pi, a, b) { "." } else { "X" };
                    if m.caveated(pi, a, b) {
                        format!("{c}*")
                    } else {
                        c.to_string()
                    }
                };
                let _ = write!(out, "\t{cell}");
            }
            out.push('\n');
        }
        let c = m.counts(pi);
        let _ = writeln!(out, "{} allowed, {} denied of {} pairs\n", c.allowed, c.denied, c.pairs);
    }
    out
}

fn matrix_json(m: &Matrix) -> String {
    let n = m.endpoints.len();
    let ports: Vec<Value> = m
        .ports
        .iter()
        .enumerate()
        .map(|(pi, port)| {
            let mut allowed = Map::new();
            for a in 0..n {
                let dsts: Vec<Value> = (0..n)
                    .filter(|&b| b != a && m.allowed(pi, a, b))
                    .map(|b| Value::from(m.endpoints[b].clone()))
                    .collect();
                allowed.insert(m.endpoints[a].clone(), Value::Array(dsts));
            }
            json!({"port": port.to_string(), "allowed": allowed})
        })
        .collect();
    let v = json!({"endpoints": m.endpoints, "ports": ports});
    serde_json::to_string_pretty(&v).expect("JSON values always serialize") + "\n"
}

fn matrix_csv(m: &Matrix) -> String {
    let mut out = String::from("from,to,port,allowed,caveat\n");
    let n = m.endpoints.len();
    for (pi, port) in m.ports.iter().enumerate() {
        for a in 0..n {
            for b in (0..n).filter(|&b| b != a) {
                let _ = writeln!(
                    out,
                    "{},{},{},{},{}",
                    m.endpoints[a],
                    m.endpoints[b],
                    port,
                    m.allowed(pi, a, b),
                    m.caveated(pi, a, b)
                );
            }
        }
    }
    out
}

fn matrix_md(m: &Matrix) -> String {
    let mut out = String::new();
    let n = m.endpoints.len();
    for (pi, port) in m.ports.iter().enumerate() {
        let _ = writeln!(out, "### {port}\n");
        let _ = writeln!(out, "| from \\ to | {} |", m.endpoints.join(" | "));
        let _ = writeln!(out, "|---|{}", "---|".repeat(n));
        for a in 0..n {
            let cells: Vec<&str> = (0..n)
                .map(|b| {
                    if a == b {
                        "-"
                    } else if m.allowed(pi, a, b) {
                        "✅"
                    } else {
                        "❌"
                    }
                })
                .collect();
            let _ = writeln!(out, "| {} | {} |", m.endpoints[a], cells.join(" | "));
        }
        let c = m.counts(pi);
        let _ = writeln!(out, "\n{} allowed, {} denied of {} pairs\n", c.allowed, c.denied, c.pairs);
    }
    out
}

fn matrix_summary(m: &Matrix) -> String {
    let mut out = String::new();
    let classes: Vec<String> =
        m.class_counts().iter().map(|(v6, n)| format!("{n} {}", if *v6 { "IPv6" } else { "IPv4" })).collect();
    let _ = writeln!(out, "{} endpoints, {} classes", m.endpoints.len(), classes.join(" + "));
    for (pi, port) in m.ports.iter().enumerate() {
        let c = m.counts(pi);
        let _ = write!(out, "{port}: {} allowed, {} denied of {} pairs", c.allowed, c.denied, c.pairs);
        if c.caveated > 0 {
            let _ = write!(out, " ({} may change with L7/DNS/Service/source-port rules)", c.caveated);
        }
        out.push('\n');
    }
    out
}

/// One line saying why a direction was decided.
pub fn reason_text(r: &Reason) -> String {
    match r {
        Reason::NotPoliced(why) => format!("not policed: {why}"),
        Reason::SameNode => "allowed: traffic between a pod and its own node is always allowed".into(),
        Reason::Rule { policy, tier, rule, action, origin } => {
            format!("{} by {policy} rule {rule} (tier {tier}) at {origin}", verb(*action))
        }
        Reason::TierDefault { tier, action } => {
            format!("{} by the end of tier {tier}: policies applied and none matched", verb(*action))
        }
        Reason::Profile => "allowed: no policy decided; the namespace profile allows".into(),
    }
}

fn verb(a: Action) -> &'static str {
    match a {
        Action::Allow => "allowed",
        Action::Deny => "denied",
        Action::Pass => "passed",
        Action::Log => "logged",
    }
}

fn direction_text(out: &mut String, title: &str, d: &DirVerdict) {
    let _ = writeln!(out, "{title}: {}", if d.allowed { "ALLOW" } else { "DENY" });
    for t in &d.tiers {
        let _ = writeln!(out, "  tier {}:", t.tier);
        for p in &t.policies {
            if p.matched.is_empty() {
                let _ = writeln!(out, "    {} ({}): no rule matched", p.policy, p.origin);
            } else {
                for (i, a, pos) in &p.matched {
                    let _ = writeln!(out, "    {} ({}): rule {i} matched: {a} ({pos})", p.policy, p.origin);
                }
            }
        }
    }
    let _ = writeln!(out, "  => {}", reason_text(&d.reason));
    for c in &d.caveats {
        let _ = writeln!(out, "  caveat: {c}");
    }
}

fn peer_text(an: &Analysis, p: &crate::analysis::Peer<'_>) -> String {
    let _ = an;
    match p.endpoint {
        Some(e) => format!("{} ({})", e.id, p.ip),
        None => p.ip.to_string(),
    }
}

/// `netward explain` as text.
pub fn explain_text(an: &Analysis, flow: &Flow<'_>, v: &Verdict) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} -> {} {}/{}: {}",
        peer_text(an, &flow.src),
        peer_text(an, &flow.dst),
        flow.dst_port,
        flow.protocol,
        if v.allowed { "ALLOWED" } else { "DENIED" }
    );
    direction_text(&mut out, "egress of source", &v.egress);
    direction_text(&mut out, "ingress of destination", &v.ingress);
    out
}

fn dir_json(d: &DirVerdict) -> Value {
    let reason = match &d.reason {
        Reason::NotPoliced(why) => json!({"kind": "not-policed", "why": why}),
        Reason::SameNode => json!({"kind": "same-node"}),
        Reason::Rule { policy, tier, rule, action, origin } => json!({
            "kind": "rule", "policy": policy.to_string(), "tier": tier, "rule": rule,
            "action": action.to_string(), "at": origin.to_string()
        }),
        Reason::TierDefault { tier, action } => {
            json!({"kind": "tier-default", "tier": tier, "action": action.to_string()})
        }
        Reason::Profile => json!({"kind": "profile"}),
    };
    let tiers: Vec<Value> = d
        .tiers
        .iter()
        .map(|t| {
            let ps: Vec<Value> = t
                .policies
                .iter()
                .map(|p| {
                    let m: Vec<Value> = p
                        .matched
                        .iter()
                        .map(|(i, a, pos)| json!({"rule": i, "action": a.to_string(), "at": pos.to_string()}))
                        .collect();
                    json!({"policy": p.policy.to_string(), "at": p.origin.to_string(), "matched": m})
                })
                .collect();
            json!({"tier": t.tier, "policies": ps})
        })
        .collect();
    let caveats: Vec<String> = d.caveats.iter().map(|c| c.to_string()).collect();
    json!({"allowed": d.allowed, "reason": reason, "tiers": tiers, "caveats": caveats})
}

/// `netward explain` as JSON.
pub fn explain_json(an: &Analysis, flow: &Flow<'_>, v: &Verdict) -> String {
    let val = json!({
        "from": peer_text(an, &flow.src),
        "to": peer_text(an, &flow.dst),
        "port": format!("{}/{}", flow.dst_port, flow.protocol),
        "allowed": v.allowed,
        "egress": dir_json(&v.egress),
        "ingress": dir_json(&v.ingress),
    });
    serde_json::to_string_pretty(&val).expect("JSON values always serialize") + "\n"
}

fn verdict_word(d: &crate::change::Decision) -> &'static str {
    if d.allowed {
        "allowed"
    } else {
        "denied"
    }
}

/// How urgent a change's risk is: lost DNS first, then widened access.
fn risk_rank(c: &crate::change::FlowChange) -> u8 {
    match c.risk.as_deref() {
        Some("DNS lost") => 0,
        Some(_) => 1,
        None => 2,
    }
}

/// Opened and closed changes together, riskiest first (stable otherwise).
fn by_risk(r: &crate::change::DiffReport) -> Vec<(&'static str, &crate::change::FlowChange)> {
    let mut all: Vec<(&'static str, &crate::change::FlowChange)> =
        r.opened.iter().map(|c| ("+", c)).chain(r.closed.iter().map(|c| ("-", c))).collect();
    all.sort_by_key(|(_, c)| risk_rank(c));
    all
}

/// Flow changes grouped by (source workload, destination workload, port).
fn grouped(list: &[crate::change::FlowChange]) -> Vec<(&crate::change::FlowChange, usize)> {
    let mut out: Vec<(&crate::change::FlowChange, usize)> = Vec::new();
    for c in list {
        match out
            .iter_mut()
            .find(|(g, _)| g.from_workload == c.from_workload && g.to_workload == c.to_workload && g.port == c.port)
        {
            Some((_, n)) => *n += 1,
            None => out.push((c, 1)),
        }
    }
    out
}

/// `netward diff` as Markdown for a pull-request comment.
pub fn diff_md(r: &crate::change::DiffReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### netward: connectivity change {} → {}\n", r.base, r.head);
    let _ = writeln!(out, "Endpoints: {}. Ports compared: {}.\n", r.endpoints, r.ports.join(", "));
    for b in &r.broken_guards {
        let g = &b.guard;
        let _ = writeln!(
            out,
            "🚨 **Guard broken** ({}): `{}` → `{}` {} must be {}, is {} — {}\n",
            g.at,
            g.from,
            g.to,
            g.port,
            if g.allow { "allowed" } else { "denied" },
            verdict_word(&b.after),
            b.after.by
        );
    }
    if r.opened.is_empty() && r.closed.is_empty() {
        let _ = writeln!(out, "**No connection changes.**\n");
    } else {
        let _ = writeln!(out, "**{} connections newly allowed, {} newly denied.**\n", r.opened.len(), r.closed.len());
        // A PR comment holds at most 65,536 characters: long lists are cut,
        // with a count of what was left out (the JSON has everything).
        const ROWS: usize = 40;
        let _ = writeln!(out, "| | from | to | port | pods | before | after | risk |");
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
        let groups: Vec<(&str, &crate::change::FlowChange, usize)> =
            [("➕ opened", &r.opened), ("➖ closed", &r.closed)]
                .into_iter()
                .flat_map(|(sign, list)| grouped(list).into_iter().map(move |(c, n)| (sign, c, n)))
                .collect();
        for &(sign, c, n) in groups.iter().take(ROWS) {
            {
                let _ = writeln!(
                    out,
                    "| {sign} | `{}` | `{}` | {} | {n} | {} — {} | {} — {} | {} |",
                    c.from_workload,
                    c.to_workload,
                    c.port,
                    verdict_word(&c.before),
                    c.before.by,
                    verdict_word(&c.after),
                    c.after.by,
                    c.risk.as_deref().map(|r| format!("⚠️ {r}")).unwrap_or_default()
                );
            }
        }
        if groups.len() > ROWS {
            let _ = writeln!(out, "\n…and {} more groups (`--format json` lists them all).", groups.len() - ROWS);
        }
        let _ = writeln!(out, "\n```mermaid\ngraph LR");
        for &(sign, c, _) in groups.iter().take(ROWS) {
            let sign = if sign.contains("opened") { "+" } else { "-" };
            let _ = writeln!(out, "  {:?} -- \"{} {sign}\" --> {:?}", c.from_workload, c.port, c.to_workload);
        }
        let _ = writeln!(out, "```\n");
        let total = r.opened.len() + r.closed.len();
        let _ = writeln!(out, "<details><summary>All {total} changed connections, pod by pod</summary>\n");
        let all = by_risk(r);
        for (sign, c) in all.iter().take(2 * ROWS) {
            let _ = writeln!(
                out,
                "- {sign} `{}` → `{}` {}: {} ({}) → {} ({})",
                c.from,
                c.to,
                c.port,
                verdict_word(&c.before),
                c.before.by,
                verdict_word(&c.after),
                c.after.by
            );
        }
        if all.len() > 2 * ROWS {
            let _ = writeln!(out, "- …and {} more", all.len() - 2 * ROWS);
        }
        let _ = writeln!(out, "\n</details>\n");
    }
    if !r.objects.is_empty() {
        let _ = writeln!(out, "#### Policy objects changed\n");
        for o in &r.objects {
            let what = match o.kind {
                crate::change::ChangeKind::Moved => format!(
                    "moved from `{}` to `{}`",
                    o.before_file.as_deref().unwrap_or("?"),
                    o.after_file.as_deref().unwrap_or("?")
                ),
                ref k => format!("{k:?}").to_lowercase(),
            };
            let note = if o.refactor { " — YAML only, no connection changed" } else { "" };
            let _ = writeln!(out, "- **{}**: {what}{note}", o.id);
            if o.kind != crate::change::ChangeKind::Moved {
                let _ =
                    writeln!(out, "  <details><summary>YAML diff</summary>\n\n```diff\n{}```\n  </details>", o.diff);
            }
        }
    }
    out
}

/// `netward diff` as plain text.
pub fn diff_text(r: &crate::change::DiffReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} -> {}: {} newly allowed, {} newly denied ({})",
        r.base,
        r.head,
        r.opened.len(),
        r.closed.len(),
        r.endpoints
    );
    for b in &r.broken_guards {
        let g = &b.guard;
        let must = if g.allow { "allowed" } else { "denied" };
        let _ = writeln!(
            out,
            "! guard broken ({}): {} -> {} {} must be {must}: {}",
            g.at, g.from, g.to, g.port, b.after.by
        );
    }
    for (sign, c) in by_risk(r) {
        {
            let risk = c.risk.as_deref().map(|r| format!("  [{r}]")).unwrap_or_default();
            let _ = writeln!(out, "{sign} {} -> {} {}{risk}", c.from, c.to, c.port);
            let _ = writeln!(out, "    before: {} ({})", verdict_word(&c.before), c.before.by);
            let _ = writeln!(out, "    after:  {} ({})", verdict_word(&c.after), c.after.by);
        }
    }
    for o in &r.objects {
        let _ = writeln!(out, "~ {} {:?}{}", o.id, o.kind, if o.refactor { " (YAML only)" } else { "" });
    }
    out
}

/// `netward diff` as JSON.
pub fn diff_json(r: &crate::change::DiffReport) -> String {
    serde_json::to_string_pretty(r).expect("the report serializes") + "\n"
}

//! Rendering analysis results for people and machines. Pure: strings out, or
//! (`netward matrix`, whose output grows with pods squared) streamed to a writer.

use std::fmt::Write;
use std::io;

use serde_json::{json, Value};

use crate::analysis::matrix::Counts;
use crate::analysis::{Analysis, DirVerdict, Flow, Matrix, Reason, Verdict};

/// Output formats of `netward matrix`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatrixFormat {
    /// One grid per port, tab-separated, for a terminal.
    Table,
    /// One JSON object: the endpoints, and per port the allowed and caveated pairs.
    Json,
    /// One `from,to,port,allowed,caveat` row per pair and port.
    Csv,
    /// One Markdown table per port.
    Md,
    /// Only the counts per port: pairs allowed, denied and caveated.
    Summary,
}

/// Renders the whole matrix in memory. Fine for small clusters and tests;
/// `netward matrix` streams with [`write_matrix`] instead.
pub fn matrix(m: &Matrix, format: MatrixFormat) -> String {
    let mut out = Vec::new();
    write_matrix(&mut out, m, format).expect("writing to memory cannot fail");
    String::from_utf8(out).expect("every matrix format is UTF-8")
}

/// Writes the matrix in `format` to `w` as it goes: memory stays bounded by
/// the `Matrix` (and one line of names), not by the number of pairs printed.
/// Stops at the first write error (a closed pipe) and returns it.
pub fn write_matrix<W: io::Write + ?Sized>(w: &mut W, m: &Matrix, format: MatrixFormat) -> io::Result<()> {
    match format {
        MatrixFormat::Table => matrix_table(w, m),
        MatrixFormat::Json => matrix_json(w, m),
        MatrixFormat::Csv => matrix_csv(w, m),
        MatrixFormat::Md => matrix_md(w, m),
        MatrixFormat::Summary => matrix_summary(w, m),
    }
}

/// `items` with `sep` between them, as `join` would give, without building it.
fn write_joined<W: io::Write + ?Sized>(w: &mut W, items: &[String], sep: &[u8]) -> io::Result<()> {
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            w.write_all(sep)?;
        }
        w.write_all(s.as_bytes())?;
    }
    Ok(())
}

fn write_counts<W: io::Write + ?Sized>(w: &mut W, c: &Counts) -> io::Result<()> {
    writeln!(w, "{} allowed, {} denied of {} pairs\n", c.allowed, c.denied, c.pairs)
}

/// `Matrix::caveated` for one port, answered without a look-up on a port
/// with no caveated pair (most): `counts` knows that from the classes.
fn caveat_test<'m>(m: &'m Matrix, port: usize, c: &Counts) -> impl Fn(usize, usize) -> bool + 'm {
    let any = c.caveated > 0;
    move |a, b| any && m.caveated(port, a, b)
}

/// The e2e suite's truth table: `.` allowed, `X` denied, `-` a pod and itself,
/// `*` a verdict that an L7/DNS/Service/source-port rule may change.
fn matrix_table<W: io::Write + ?Sized>(w: &mut W, m: &Matrix) -> io::Result<()> {
    let n = m.endpoints.len();
    for (pi, port) in m.ports.iter().enumerate() {
        let counts = m.counts(pi);
        let caveated = caveat_test(m, pi, &counts);
        writeln!(w, "{port}")?;
        w.write_all(b"-\t")?;
        write_joined(w, &m.endpoints, b"\t")?;
        w.write_all(b"\n")?;
        for a in 0..n {
            w.write_all(m.endpoints[a].as_bytes())?;
            for b in 0..n {
                let cell: &[u8] = if a == b {
                    b"\t-"
                } else {
                    match (m.allowed(pi, a, b), caveated(a, b)) {
                        (true, false) => b"\t.",
                        (true, true) => b"\t.*",
                        (false, false) => b"\tX",
                        (false, true) => b"\tX*",
                    }
                };
                w.write_all(cell)?;
            }
            w.write_all(b"\n")?;
        }
        write_counts(w, &counts)?;
        write_family_note(w, &counts)?;
    }
    Ok(())
}

/// Under a port's table: how many `*` cells are dual-stack pairs whose two
/// families disagree (the cell shows the deciding family's verdict).
fn write_family_note<W: io::Write + ?Sized>(w: &mut W, c: &Counts) -> io::Result<()> {
    if c.family_split > 0 {
        writeln!(
            w,
            "{} of the * are dual-stack pairs that IPv4 and IPv6 decide differently; --family 4|6 chooses which is shown\n",
            c.family_split
        )?;
    }
    Ok(())
}

/// What `serde_json::to_string_pretty` gives for
/// `{"endpoints": [..], "ports": [{"port", "allowed", "caveated"}, ..]}`,
/// written piece by piece: names are escaped once, by serde_json.
fn matrix_json<W: io::Write + ?Sized>(w: &mut W, m: &Matrix) -> io::Result<()> {
    let names: Vec<String> = m.endpoints.iter().map(json_string).collect();
    w.write_all(b"{\n  \"endpoints\": ")?;
    json_list(w, names.iter(), "  ")?;
    w.write_all(b",\n  \"ports\": ")?;
    if m.ports.is_empty() {
        w.write_all(b"[]")?;
    } else {
        w.write_all(b"[\n")?;
        for (pi, port) in m.ports.iter().enumerate() {
            if pi > 0 {
                w.write_all(b",\n")?;
            }
            write!(w, "    {{\n      \"port\": {},\n      \"allowed\": ", json_string(port.to_string()))?;
            json_pairs(w, &names, true, |a, b| m.allowed(pi, a, b))?;
            w.write_all(b",\n      \"caveated\": ")?;
            if m.counts(pi).caveated == 0 {
                // Counted over classes: no pass over every pair.
                w.write_all(b"{}")?;
            } else {
                json_pairs(w, &names, false, |a, b| m.caveated(pi, a, b))?;
            }
            if m.counts(pi).family_split > 0 {
                // Only dual-stack worlds have the key: the verdict above is
                // the deciding family's, these pairs the other decides otherwise.
                w.write_all(b",\n      \"family_split\": ")?;
                json_pairs(w, &names, false, |a, b| m.family_split(pi, a, b))?;
            }
            w.write_all(b"\n    }")?;
        }
        w.write_all(b"\n  ]")?;
    }
    w.write_all(b"\n}\n")
}

fn json_string(s: impl AsRef<str>) -> String {
    serde_json::to_string(s.as_ref()).expect("a string always serializes")
}

/// A pretty JSON array of already-escaped strings, its closing bracket at `indent`.
fn json_list<'a, W: io::Write + ?Sized>(
    w: &mut W,
    items: impl Iterator<Item = &'a String>,
    indent: &str,
) -> io::Result<()> {
    let mut any = false;
    for s in items {
        w.write_all(if any { b",\n" } else { b"[\n" })?;
        any = true;
        w.write_all(indent.as_bytes())?;
        w.write_all(b"  ")?;
        w.write_all(s.as_bytes())?;
    }
    if any {
        w.write_all(b"\n")?;
        w.write_all(indent.as_bytes())?;
        w.write_all(b"]")
    } else {
        w.write_all(b"[]")
    }
}

/// `{"<src>": ["<dst>", ..], ..}` inside a port object: every source when
/// `keep_empty`, otherwise only sources with at least one destination.
fn json_pairs<W: io::Write + ?Sized>(
    w: &mut W,
    names: &[String],
    keep_empty: bool,
    pair: impl Fn(usize, usize) -> bool,
) -> io::Result<()> {
    let n = names.len();
    let pair = &pair;
    let dsts = |a: usize| (0..n).filter(move |&b| b != a && pair(a, b));
    let mut any = false;
    for a in 0..n {
        if !keep_empty && dsts(a).next().is_none() {
            continue;
        }
        w.write_all(if any { b",\n" } else { b"{\n" })?;
        any = true;
        w.write_all(b"        ")?;
        w.write_all(names[a].as_bytes())?;
        w.write_all(b": ")?;
        json_list(w, dsts(a).map(|b| &names[b]), "        ")?;
    }
    w.write_all(if any { b"\n      }" } else { b"{}" })
}

fn matrix_csv<W: io::Write + ?Sized>(w: &mut W, m: &Matrix) -> io::Result<()> {
    w.write_all(b"from,to,port,allowed,caveat\n")?;
    let n = m.endpoints.len();
    for (pi, port) in m.ports.iter().enumerate() {
        let caveated = caveat_test(m, pi, &m.counts(pi));
        let port = format!(",{port},");
        for a in 0..n {
            for b in (0..n).filter(|&b| b != a) {
                w.write_all(m.endpoints[a].as_bytes())?;
                w.write_all(b",")?;
                w.write_all(m.endpoints[b].as_bytes())?;
                w.write_all(port.as_bytes())?;
                w.write_all(match (m.allowed(pi, a, b), caveated(a, b)) {
                    (true, false) => b"true,false\n",
                    (true, true) => b"true,true\n",
                    (false, false) => b"false,false\n",
                    (false, true) => b"false,true\n",
                })?;
            }
        }
    }
    Ok(())
}

/// The note under a port's md table when some cell is marked `✅*` or `❌*`.
const MD_CAVEAT: &str =
    "\\* a rule this analysis cannot fully decide (L7, DNS, Service or source port) may change this verdict";

fn matrix_md<W: io::Write + ?Sized>(w: &mut W, m: &Matrix) -> io::Result<()> {
    let n = m.endpoints.len();
    for (pi, port) in m.ports.iter().enumerate() {
        let counts = m.counts(pi);
        let caveated = caveat_test(m, pi, &counts);
        writeln!(w, "### {port}\n")?;
        w.write_all(b"| from \\ to | ")?;
        write_joined(w, &m.endpoints, b" | ")?;
        w.write_all(b" |\n|---|")?;
        for _ in 0..n {
            w.write_all(b"---|")?;
        }
        w.write_all(b"\n")?;
        let mut caveats = false;
        for a in 0..n {
            w.write_all(b"| ")?;
            w.write_all(m.endpoints[a].as_bytes())?;
            for b in 0..n {
                let cell: &str = if a == b {
                    " | -"
                } else {
                    let c = caveated(a, b);
                    caveats |= c;
                    match (m.allowed(pi, a, b), c) {
                        (true, false) => " | ✅",
                        (true, true) => " | ✅*",
                        (false, false) => " | ❌",
                        (false, true) => " | ❌*",
                    }
                };
                w.write_all(cell.as_bytes())?;
            }
            w.write_all(b" |\n")?;
        }
        if caveats {
            writeln!(w, "\n{MD_CAVEAT}")?;
        }
        w.write_all(b"\n")?;
        write_counts(w, &counts)?;
        write_family_note(w, &counts)?;
    }
    Ok(())
}

fn matrix_summary<W: io::Write + ?Sized>(w: &mut W, m: &Matrix) -> io::Result<()> {
    let classes: Vec<String> =
        m.class_counts().iter().map(|(v6, n)| format!("{n} {}", if *v6 { "IPv6" } else { "IPv4" })).collect();
    writeln!(w, "{} endpoints, {} classes", m.endpoints.len(), classes.join(" + "))?;
    for (pi, port) in m.ports.iter().enumerate() {
        let c = m.counts(pi);
        write!(w, "{port}: {} allowed, {} denied of {} pairs", c.allowed, c.denied, c.pairs)?;
        if c.caveated > c.family_split {
            write!(w, " ({} may change with L7/DNS/Service/source-port rules)", c.caveated - c.family_split)?;
        }
        if c.family_split > 0 {
            write!(
                w,
                " ({} dual-stack pairs that IPv4 and IPv6 decide differently; --family chooses)",
                c.family_split
            )?;
        }
        w.write_all(b"\n")?;
    }
    Ok(())
}

/// One line saying why a direction was decided.
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
    let _ = writeln!(out, "  => {}", d.reason);
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
        Reason::Rule { policy, tier, rule, name, priority, action, origin } => {
            let mut v = json!({
                "kind": "rule", "policy": policy.to_string(), "tier": tier, "rule": rule,
                "action": action.to_string(), "at": origin.to_string()
            });
            if let Some(n) = name {
                v["name"] = json!(n);
            }
            if let Some(p) = priority {
                v["priority"] = json!(p);
            }
            v
        }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::analysis::View;
    use crate::manifest::load::{load_cluster_text, load_policy_texts};
    use crate::model::port::FlowPort;

    fn matrix_of(cluster: &str, policies: &str, ports: &[&str]) -> Matrix {
        let mut d = Vec::new();
        let mut c = load_cluster_text(&Arc::from("cluster.yaml"), cluster, &mut d);
        c.fill_missing_namespaces();
        let p = load_policy_texts(std::iter::once((Arc::from("policies.yaml"), policies)), &mut d);
        assert!(d.is_empty(), "{d:?}");
        let ports: Vec<FlowPort> = ports.iter().map(|p| FlowPort::parse(p).expect("port")).collect();
        Matrix::compute(&Analysis::new(&p, &c, View::Enforced), &ports)
    }

    /// The example cluster with an `http:` rule: web -> api on 8080 is caveated.
    fn l7(ports: &[&str]) -> Matrix {
        matrix_of(
            include_str!("../../../policies/cluster.yaml"),
            include_str!("../../tests/fixtures/l7/policies.yaml"),
            ports,
        )
    }

    /// The JSON as the in-memory version built it, plus `caveated`.
    fn json_reference(m: &Matrix) -> String {
        let n = m.endpoints.len();
        let pairs = |pi: usize, keep_empty: bool, f: &dyn Fn(usize, usize, usize) -> bool| {
            let mut map = serde_json::Map::new();
            for a in 0..n {
                let dsts: Vec<Value> =
                    (0..n).filter(|&b| b != a && f(pi, a, b)).map(|b| Value::from(m.endpoints[b].clone())).collect();
                if keep_empty || !dsts.is_empty() {
                    map.insert(m.endpoints[a].clone(), Value::Array(dsts));
                }
            }
            map
        };
        let ports: Vec<Value> = (0..m.ports.len())
            .map(|pi| {
                json!({
                    "port": m.ports[pi].to_string(),
                    "allowed": pairs(pi, true, &|p, a, b| m.allowed(p, a, b)),
                    "caveated": pairs(pi, false, &|p, a, b| m.caveated(p, a, b)),
                })
            })
            .collect();
        serde_json::to_string_pretty(&json!({"endpoints": m.endpoints, "ports": ports})).expect("serializes") + "\n"
    }

    #[test]
    fn streamed_json_is_what_to_string_pretty_gives() {
        let g = crate::synth::generate(&crate::synth::Shape { pods: 120, policies: 30, seed: 3 });
        let worlds = [
            l7(&["8080/TCP", "5432/TCP", "53/UDP"]),
            l7(&[]),
            matrix_of(&g.cluster, &g.policies, &["8080/TCP", "9100/TCP", "53/UDP"]),
            matrix_of("", "", &["80/TCP"]),
        ];
        for m in &worlds {
            let n = m.endpoints.len();
            for pi in 0..m.ports.len() {
                // The formats skip `caveated` on a port whose count is 0.
                let pairs = (0..n).flat_map(|a| (0..n).map(move |b| (a, b))).filter(|&(a, b)| a != b);
                assert_eq!(m.counts(pi).caveated, pairs.filter(|&(a, b)| m.caveated(pi, a, b)).count() as u64);
            }
            let out = matrix(m, MatrixFormat::Json);
            assert_eq!(out, json_reference(m));
            let _: Value = serde_json::from_str(&out).expect("valid JSON");
        }
        let v: Value = serde_json::from_str(&matrix(&worlds[0], MatrixFormat::Json)).expect("JSON");
        assert_eq!(
            v["ports"][0]["caveated"]["frontend/web-7d4b9-abcde"],
            json!(["backend/api-5f6c7-fghij", "backend/api-5f6c7-klmno"])
        );
        assert_eq!(v["ports"][2]["caveated"], json!({}), "the http rule is TCP only");
    }

    #[test]
    fn md_marks_caveated_cells_and_explains_them_once_per_port() {
        // Only api is isolated (by the http rule, which is TCP only).
        let md = matrix(&l7(&["8080/TCP", "53/UDP"]), MatrixFormat::Md);
        let (tcp, udp) = md.split_once("### 53/UDP").expect("two ports");
        let web = tcp.lines().find(|l| l.starts_with("| frontend/web")).expect("web row");
        assert_eq!(web, "| frontend/web-7d4b9-abcde | ✅* | ✅* | ✅ | - | ✅ | ✅ |");
        assert_eq!(tcp.matches(MD_CAVEAT).count(), 1);
        assert!(tcp.contains(&format!(" |\n\n{MD_CAVEAT}\n\n")), "{tcp}");
        assert!(!udp.contains('*'), "{udp}");
    }

    /// Fails every write after `budget` bytes, counting the calls that come after.
    struct ClosedPipe {
        budget: usize,
        calls_after: usize,
    }

    impl io::Write for ClosedPipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.budget == 0 {
                self.calls_after += 1;
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            let n = buf.len().min(self.budget);
            self.budget -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_stops_the_output_at_the_first_failed_write() {
        let m = l7(&["8080/TCP", "5432/TCP", "53/UDP"]);
        for f in [MatrixFormat::Table, MatrixFormat::Json, MatrixFormat::Csv, MatrixFormat::Md, MatrixFormat::Summary] {
            let mut w = ClosedPipe { budget: 100, calls_after: 0 };
            let e = write_matrix(&mut w, &m, f).expect_err("the pipe closed");
            assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
            assert_eq!(w.calls_after, 1, "{f:?} went on writing");
        }
    }
}

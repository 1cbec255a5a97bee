//! Which tracked connections a new ruleset closes. conntrack accepts the
//! packets of a known flow before any policy chain sees them, so without
//! this a connection a commit denies would go on for as long as it lasts.
//! Pure: flows and the analysis in, the tuples to forget out.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use netward_netlink::conntrack::{Flow, Tuple};

use netward_policy::analysis::Analysis;
use netward_policy::model::Protocol;

/// The original tuples of the flows this node would now deny: the source
/// is a local pod whose egress denies it, or the destination (after DNAT:
/// the reply's source) is a local pod whose ingress denies it. Flows of
/// other protocols than TCP, UDP and SCTP, and flows between addresses no
/// policy governs, are left alone.
pub fn closed(an: &Analysis, node: &str, flows: &[Flow]) -> Vec<Tuple> {
    let local: BTreeSet<IpAddr> = an
        .endpoints
        .iter()
        .filter(|e| !e.host_network && e.node.as_deref() == Some(node))
        .flat_map(|e| e.ips.iter().copied())
        .collect();
    let mut decided: HashMap<(IpAddr, IpAddr, u8, u16), bool> = HashMap::new();
    let mut out = Vec::new();
    for f in flows {
        let (src, dst, proto, port) = (f.orig.src, f.reply.src, f.orig.proto, f.reply.sport);
        let (src_local, dst_local) = (local.contains(&src), local.contains(&dst));
        if !(src_local || dst_local) || !matches!(proto, 6 | 17 | 132) {
            continue;
        }
        let denied = *decided.entry((src, dst, proto, port)).or_insert_with(|| {
            let Ok(flow) = an.flow(&src.to_string(), &dst.to_string(), Protocol::from_number(proto), port, None) else {
                return false;
            };
            let v = an.evaluate(&flow);
            (src_local && !v.egress.allowed) || (dst_local && !v.ingress.allowed)
        });
        if denied {
            out.push(f.orig);
        }
    }
    out.sort();
    out.dedup();
    out
}

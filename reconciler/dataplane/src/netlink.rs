//! The ruleset as nf_tables netlink messages (through `netward-netlink`, the
//! one crate with FFI): full replacements and minimal changes, each one
//! atomic transaction. Reads go through `nft -j` (see `apply::NftCli`).
//!
//! Encodings follow what `nft --debug=netlink` emits for the same text, so a
//! table programmed here lists exactly like one loaded from `nft -f`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;

use netward_netlink::{self as nl, Batch, Conn, Elem, Expr, SetSpec};

use crate::apply::{Dataplane, EnforceError, NftCli};
use netward_nftables::diff::Changes;
use netward_nftables::live::Live;
use netward_nftables::nft;
use netward_nftables::ruleset::{
    BaseChain, Element, Family, Hook, Match, Rule, Ruleset, Set, SetKind, Side, Verdict, VerdictMap, PASS_MARK, TABLE,
};

// nf_tables.h constants used below.
const META_MARK: u32 = 3;
const META_IIFNAME: u32 = 6;
const META_NFPROTO: u32 = 15;
const META_L4PROTO: u32 = 16;
const CT_STATE: u32 = 0;
const NETWORK_HEADER: u32 = 1;
const TRANSPORT_HEADER: u32 = 2;
const CMP_EQ: u32 = 0;
const CMP_NEQ: u32 = 1;
const NF_INET_LOCAL_IN: u32 = 1;
const NF_INET_FORWARD: u32 = 2;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
// nft datatype ids (key types).
const TYPE_IPADDR: u32 = 7;
const TYPE_IP6ADDR: u32 = 8;
const TYPE_INET_PROTOCOL: u32 = 12;
const TYPE_INET_SERVICE: u32 = 13;
const TYPE_IFNAME: u32 = 41;
// 32-bit data registers for concatenations.
const REG32_01: u32 = 9;
const REG32_02: u32 = 10;
const REG32_04: u32 = 12;
const REG32_05: u32 = 13;
const IFNAMSIZ: usize = 16;

fn addr_type(f: Family) -> u32 {
    match f {
        Family::V4 => TYPE_IPADDR,
        Family::V6 => TYPE_IP6ADDR,
    }
}

fn addr_len(f: Family) -> u32 {
    match f {
        Family::V4 => 4,
        Family::V6 => 16,
    }
}

/// nft's set userdata: the key byte order (1 host, 2 big endian, 0 mixed).
fn byteorder_udata(order: u32) -> Vec<u8> {
    let mut u = vec![0u8, 4];
    u.extend_from_slice(&order.to_ne_bytes());
    u
}

fn set_spec(kind: SetKind, map: bool) -> SetSpec {
    let (key_type, key_len, interval, order) = match kind {
        SetKind::Addr(f) => (addr_type(f), addr_len(f), !map, 2),
        SetKind::Hosts(f) => (addr_type(f), addr_len(f), false, 2),
        SetKind::AddrProtoPort(f) => {
            ((addr_type(f) << 12) | (TYPE_INET_PROTOCOL << 6) | TYPE_INET_SERVICE, addr_len(f) + 8, false, 0)
        }
        SetKind::IfaceAddr(f) => ((TYPE_IFNAME << 6) | addr_type(f), IFNAMSIZ as u32 + addr_len(f), false, 0),
        SetKind::Iface => (TYPE_IFNAME, IFNAMSIZ as u32, false, 1),
        SetKind::Service => (TYPE_INET_SERVICE, 2, true, 2),
    };
    let mut flags = if interval { nl::SET_INTERVAL } else { 0 };
    if map {
        flags |= nl::SET_MAP;
    }
    SetSpec { flags, key_type, key_len, data_type: map.then_some(nl::DATA_VERDICT), userdata: byteorder_udata(order) }
}

fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn ifname_bytes(name: &str) -> Vec<u8> {
    let mut b = name.as_bytes().to_vec();
    b.resize(IFNAMSIZ, 0);
    b
}

/// The bytes one address plus one, or None past the last address.
fn next_addr(ip: &IpAddr) -> Option<Vec<u8>> {
    let mut b = ip_bytes(ip);
    for byte in b.iter_mut().rev() {
        if *byte == 0xff {
            *byte = 0;
        } else {
            *byte += 1;
            return Some(b);
        }
    }
    None
}

/// An interval as (start key, exclusive end key or None at the top).
fn interval(e: &Element) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    match e {
        Element::Net(n) => Some((ip_bytes(&n.network()), next_addr(&n.broadcast()))),
        Element::PortRange(a, b) => {
            Some((a.to_be_bytes().to_vec(), b.checked_add(1).map(|x| x.to_be_bytes().to_vec())))
        }
        _ => None,
    }
}

/// The plain key bytes of a non-interval element.
fn key_bytes(e: &Element) -> Vec<u8> {
    match e {
        Element::Net(n) => ip_bytes(&n.addr()),
        Element::AddrProtoPort(ip, p, port) => {
            let mut k = ip_bytes(ip);
            k.extend_from_slice(&[*p, 0, 0, 0]);
            let pb = port.to_be_bytes();
            k.extend_from_slice(&[pb[0], pb[1], 0, 0]);
            k
        }
        Element::IfaceAddr(i, ip) => {
            let mut k = ifname_bytes(i);
            k.extend(ip_bytes(ip));
            k
        }
        Element::Iface(i) => ifname_bytes(i),
        Element::PortRange(a, _) => a.to_be_bytes().to_vec(),
    }
}

fn is_interval(kind: SetKind) -> bool {
    matches!(kind, SetKind::Addr(_) | SetKind::Service)
}

/// Element messages for a set: intervals become start and end-marker pairs,
/// led (when adding a whole set) by the zero sentinel nft also sends.
fn set_elems<'a>(kind: SetKind, elems: impl Iterator<Item = &'a Element>, sentinel: bool) -> Vec<Elem> {
    if !is_interval(kind) {
        return elems.map(|e| Elem { key: key_bytes(e), flags: 0, verdict: None }).collect();
    }
    let mut out = Vec::new();
    let mut first = true;
    for e in elems {
        let Some((start, end)) = interval(e) else { continue };
        if first && sentinel && start.iter().any(|b| *b != 0) {
            out.push(Elem { key: vec![0; start.len()], flags: nl::ELEM_INTERVAL_END, verdict: None });
        }
        first = false;
        out.push(Elem { key: start, flags: 0, verdict: None });
        if let Some(end) = end {
            out.push(Elem { key: end, flags: nl::ELEM_INTERVAL_END, verdict: None });
        }
    }
    out
}

fn map_elems<'a>(elems: impl Iterator<Item = (&'a Element, &'a String)>) -> Vec<Elem> {
    elems.map(|(k, c)| Elem { key: key_bytes(k), flags: 0, verdict: Some((nl::NFT_GOTO, c.clone())) }).collect()
}

fn nfproto(f: Family) -> u8 {
    match f {
        Family::V4 => NFPROTO_IPV4,
        Family::V6 => NFPROTO_IPV6,
    }
}

fn addr_offset(f: Family, side: Side) -> u32 {
    match (f, side) {
        (Family::V4, Side::Saddr) => 12,
        (Family::V4, Side::Daddr) => 16,
        (Family::V6, Side::Saddr) => 8,
        (Family::V6, Side::Daddr) => 24,
    }
}

fn port_offset(side: Side) -> u32 {
    match side {
        Side::Saddr => 0,
        Side::Daddr => 2,
    }
}

fn load_addr(f: Family, side: Side, dreg: u32) -> Expr {
    Expr::Payload { base: NETWORK_HEADER, offset: addr_offset(f, side), len: addr_len(f), dreg }
}

fn mark_bits(out: &mut Vec<Expr>, mask: u32, xor: u32) {
    out.push(Expr::Meta { key: META_MARK, dreg: nl::REG_1 });
    out.push(Expr::Bitwise {
        sreg: nl::REG_1,
        dreg: nl::REG_1,
        mask: mask.to_ne_bytes().to_vec(),
        xor: xor.to_ne_bytes().to_vec(),
    });
}

/// Kernel answers that a second try can overcome: EINTR (4) and EAGAIN (11).
/// Not EBUSY: nf_tables answers it for an object still in use, every time.
const TRANSIENT_ERRNOS: [i32; 2] = [4, 11];

/// A rule as the expressions nft would generate for its text.
pub fn rule_exprs(r: &Rule) -> Vec<Expr> {
    let mut out = Vec::new();
    let mut fam_checked: Option<Family> = None;
    let mut need_fam = |out: &mut Vec<Expr>, f: Family| {
        if fam_checked != Some(f) {
            out.push(Expr::Meta { key: META_NFPROTO, dreg: nl::REG_1 });
            out.push(Expr::Cmp { sreg: nl::REG_1, op: CMP_EQ, data: vec![nfproto(f)] });
            fam_checked = Some(f);
        }
    };
    let cmp = |neg: bool| if neg { CMP_NEQ } else { CMP_EQ };
    for m in &r.matches {
        match m {
            Match::CtInvalid | Match::CtEstablished => {
                let mask: u32 = if *m == Match::CtInvalid { 0x1 } else { 0x6 };
                out.push(Expr::Ct { key: CT_STATE, dreg: nl::REG_1 });
                out.push(Expr::Bitwise {
                    sreg: nl::REG_1,
                    dreg: nl::REG_1,
                    mask: mask.to_ne_bytes().to_vec(),
                    xor: vec![0; 4],
                });
                out.push(Expr::Cmp { sreg: nl::REG_1, op: CMP_NEQ, data: vec![0; 4] });
            }
            Match::NfProto(f) => need_fam(&mut out, *f),
            Match::L4Proto { proto, negated } => {
                out.push(Expr::Meta { key: META_L4PROTO, dreg: nl::REG_1 });
                out.push(Expr::Cmp { sreg: nl::REG_1, op: cmp(*negated), data: vec![*proto] });
            }
            Match::Addr { family, side, set, negated } => {
                need_fam(&mut out, *family);
                out.push(load_addr(*family, *side, nl::REG_1));
                out.push(Expr::Lookup { sreg: nl::REG_1, dreg: None, set: set.clone(), invert: *negated });
            }
            Match::Port { side, set, negated } => {
                out.push(Expr::Payload { base: TRANSPORT_HEADER, offset: port_offset(*side), len: 2, dreg: nl::REG_1 });
                out.push(Expr::Lookup { sreg: nl::REG_1, dreg: None, set: set.clone(), invert: *negated });
            }
            Match::NamedPort { family, side, set, negated } => {
                need_fam(&mut out, *family);
                let (rp, rport) = match family {
                    Family::V4 => (REG32_01, REG32_02),
                    Family::V6 => (REG32_04, REG32_05),
                };
                out.push(load_addr(*family, *side, nl::REG_1));
                out.push(Expr::Meta { key: META_L4PROTO, dreg: rp });
                out.push(Expr::Payload { base: TRANSPORT_HEADER, offset: port_offset(*side), len: 2, dreg: rport });
                out.push(Expr::Lookup { sreg: nl::REG_1, dreg: None, set: set.clone(), invert: *negated });
            }
            Match::Icmp { v6, typ, code, negated } => {
                need_fam(&mut out, if *v6 { Family::V6 } else { Family::V4 });
                out.push(Expr::Meta { key: META_L4PROTO, dreg: nl::REG_1 });
                out.push(Expr::Cmp { sreg: nl::REG_1, op: CMP_EQ, data: vec![if *v6 { 58 } else { 1 }] });
                match code {
                    Some(c) if !negated => {
                        out.push(Expr::Payload { base: TRANSPORT_HEADER, offset: 0, len: 2, dreg: nl::REG_1 });
                        out.push(Expr::Cmp { sreg: nl::REG_1, op: CMP_EQ, data: vec![*typ, *c] });
                    }
                    _ => {
                        out.push(Expr::Payload { base: TRANSPORT_HEADER, offset: 0, len: 1, dreg: nl::REG_1 });
                        out.push(Expr::Cmp { sreg: nl::REG_1, op: cmp(*negated), data: vec![*typ] });
                    }
                }
            }
            Match::NotPassed => {
                mark_bits(&mut out, PASS_MARK, 0);
                out.push(Expr::Cmp { sreg: nl::REG_1, op: CMP_EQ, data: vec![0; 4] });
            }
            Match::IfaceAddr { family, set, negated } => {
                need_fam(&mut out, *family);
                out.push(Expr::Meta { key: META_IIFNAME, dreg: nl::REG_1 });
                out.push(load_addr(*family, Side::Saddr, nl::REG_2));
                out.push(Expr::Lookup { sreg: nl::REG_1, dreg: None, set: set.clone(), invert: *negated });
            }
            Match::Iface { set } => {
                out.push(Expr::Meta { key: META_IIFNAME, dreg: nl::REG_1 });
                out.push(Expr::Lookup { sreg: nl::REG_1, dreg: None, set: set.clone(), invert: false });
            }
        }
    }
    let verdict = |code: i32| Expr::Verdict { code, chain: None };
    match &r.verdict {
        Verdict::Accept => out.push(verdict(nl::NF_ACCEPT)),
        Verdict::Drop => out.push(verdict(nl::NF_DROP)),
        Verdict::Jump(c) => out.push(Expr::Verdict { code: nl::NFT_JUMP, chain: Some(c.clone()) }),
        Verdict::Pass => {
            mark_bits(&mut out, !PASS_MARK, PASS_MARK);
            out.push(Expr::MetaSet { key: META_MARK, sreg: nl::REG_1 });
            out.push(verdict(nl::NFT_RETURN));
        }
        Verdict::ClearPass => {
            mark_bits(&mut out, !PASS_MARK, 0);
            out.push(Expr::MetaSet { key: META_MARK, sreg: nl::REG_1 });
        }
        Verdict::Log(p) => out.push(Expr::Log { prefix: p.clone() }),
        Verdict::LogAccept(p) => {
            out.push(Expr::Log { prefix: p.clone() });
            out.push(verdict(nl::NF_ACCEPT));
        }
        Verdict::Dispatch { family, side, map, by_iface } => {
            need_fam(&mut out, *family);
            if *by_iface {
                out.push(Expr::Meta { key: META_IIFNAME, dreg: nl::REG_1 });
                out.push(load_addr(*family, *side, nl::REG_2));
            } else {
                out.push(load_addr(*family, *side, nl::REG_1));
            }
            out.push(Expr::Lookup { sreg: nl::REG_1, dreg: Some(nl::REG_VERDICT), set: map.clone(), invert: false });
        }
    }
    out
}

fn base(b: BaseChain) -> (u32, i32) {
    let hook = match b.hook {
        Hook::Forward => NF_INET_FORWARD,
        Hook::Input => NF_INET_LOCAL_IN,
    };
    (hook, b.priority)
}

fn add_set(batch: &mut Batch, name: &str, s: &Set, id: u32) {
    batch.add_set(TABLE, name, &set_spec(s.kind, false), id);
}

fn add_map(batch: &mut Batch, name: &str, m: &VerdictMap, id: u32) {
    batch.add_set(TABLE, name, &set_spec(m.key, true), id);
}

fn add_rules(batch: &mut Batch, chain: &str, rules: &[Rule]) {
    for r in rules {
        batch.add_rule(TABLE, chain, &rule_exprs(r), &nft::comment(r));
    }
}

/// One transaction that replaces the table with `rs`.
pub fn full_batch(rs: &Ruleset) -> Batch {
    let mut b = Batch::new();
    b.add_table(TABLE);
    b.delete_table(TABLE);
    b.add_table(TABLE);
    let mut id = 1;
    for (n, s) in &rs.sets {
        add_set(&mut b, n, s, id);
        id += 1;
    }
    for (n, m) in &rs.maps {
        add_map(&mut b, n, m, id);
        id += 1;
    }
    for (n, c) in &rs.chains {
        b.add_chain(TABLE, n, c.base.map(base));
    }
    for (n, c) in &rs.chains {
        add_rules(&mut b, n, &c.rules);
    }
    for (n, s) in &rs.sets {
        b.elements(TABLE, n, true, &set_elems(s.kind, s.elements.iter(), true));
    }
    for (n, m) in &rs.maps {
        b.elements(TABLE, n, true, &map_elems(m.elements.iter()));
    }
    b
}

/// One transaction for a change (same order as `diff::render`).
pub fn change_batch(c: &Changes, rs: &Ruleset) -> Batch {
    if c.create_table {
        return full_batch(rs);
    }
    let mut b = Batch::new();
    let recreated = |new: &Vec<String>, del: &Vec<String>| -> Vec<String> {
        new.iter().filter(|n| del.contains(n)).cloned().collect()
    };
    let (rs_sets, rs_maps) = (recreated(&c.new_sets, &c.deleted_sets), recreated(&c.new_maps, &c.deleted_maps));
    // No rule may use a set when it is deleted (EBUSY): flush the chains
    // being rewritten or deleted first, as `diff::render` does.
    for n in c.rewritten_chains.iter().chain(&c.deleted_chains) {
        b.flush_chain(TABLE, n);
    }
    for n in rs_sets.iter().chain(&rs_maps) {
        b.delete_set(TABLE, n);
    }
    let mut id = 1;
    for n in &c.new_sets {
        add_set(&mut b, n, &rs.sets[n], id);
        id += 1;
    }
    for n in &c.new_maps {
        add_map(&mut b, n, &rs.maps[n], id);
        id += 1;
    }
    for n in &c.new_chains {
        b.add_chain(TABLE, n, rs.chains[n].base.map(base));
    }
    for n in c.new_chains.iter().chain(&c.rewritten_chains) {
        add_rules(&mut b, n, &rs.chains[n].rules);
    }
    for n in &c.new_sets {
        let s = &rs.sets[n];
        b.elements(TABLE, n, true, &set_elems(s.kind, s.elements.iter(), true));
    }
    for n in &c.new_maps {
        b.elements(TABLE, n, true, &map_elems(rs.maps[n].elements.iter()));
    }
    // Element deltas, grouped by set; removals first, as in `diff::render`.
    for (add, list) in [(false, &c.remove_elements), (true, &c.add_elements)] {
        let mut by_set: std::collections::BTreeMap<&str, Vec<&Element>> = Default::default();
        for (set, e) in list.iter() {
            by_set.entry(set).or_default().push(e);
        }
        for (set, elems) in by_set {
            let msgs = if let Some(s) = rs.sets.get(set) {
                set_elems(s.kind, elems.into_iter(), false)
            } else if let Some(m) = rs.maps.get(set) {
                if add {
                    map_elems(elems.into_iter().filter_map(|e| m.elements.get_key_value(e)))
                } else {
                    elems.into_iter().map(|e| Elem { key: key_bytes(e), flags: 0, verdict: None }).collect()
                }
            } else {
                continue;
            };
            b.elements(TABLE, set, add, &msgs);
        }
    }
    for n in &c.deleted_chains {
        b.delete_chain(TABLE, n);
    }
    for n in c
        .deleted_sets
        .iter()
        .filter(|n| !rs_sets.contains(n))
        .chain(c.deleted_maps.iter().filter(|n| !rs_maps.contains(n)))
    {
        b.delete_set(TABLE, n);
    }
    b
}

/// Writes through netlink, reads back through `nft -j`.
pub struct Netlink {
    conn: Mutex<Conn>,
    reader: NftCli,
}

impl Netlink {
    /// In this process' network namespace.
    pub fn new() -> Result<Self, EnforceError> {
        let conn = Conn::open().map_err(|e| EnforceError::Unavailable(format!("netlink: {e}")))?;
        Ok(Netlink { conn: Mutex::new(conn), reader: NftCli::new() })
    }

    /// In the named network namespace (`ip netns` name).
    pub fn in_netns(name: &str) -> Result<Self, EnforceError> {
        let path = PathBuf::from("/run/netns").join(name);
        let conn =
            Conn::open_in_netns(&path).map_err(|e| EnforceError::Unavailable(format!("netlink in {name}: {e}")))?;
        Ok(Netlink { conn: Mutex::new(conn), reader: NftCli::in_netns(name) })
    }

    fn commit(&self, batch: Batch) -> Result<(), EnforceError> {
        let mut conn =
            self.conn.lock().map_err(|_| EnforceError::Unavailable("netlink socket lock poisoned".into()))?;
        batch.commit(&mut conn).map_err(|e| match e {
            nl::CommitError::Io(e) => EnforceError::Transient(format!("netlink: {e}")),
            nl::CommitError::Refused(errs) => {
                let transient = errs.iter().all(|e| TRANSIENT_ERRNOS.contains(&e.errno));
                let text = nl::CommitError::Refused(errs).to_string();
                if transient {
                    EnforceError::Transient(text)
                } else {
                    EnforceError::Rejected(text)
                }
            }
            // A ruleset netward compiled that the kernel cannot hold: not
            // retryable, and nothing was sent, so the table stays as it was.
            nl::CommitError::Build(e) => EnforceError::Rejected(format!("netlink message not built: {e}")),
        })
    }
}

impl Dataplane for Netlink {
    fn read(&self) -> Result<Option<Live>, EnforceError> {
        self.reader.read()
    }

    fn apply(&self, changes: &Changes, desired: &Ruleset, live: Option<&Live>) -> Result<(), EnforceError> {
        let _ = live;
        self.commit(change_batch(changes, desired))
    }

    fn routes(&self) -> Result<netward_nftables::routes::Routes, EnforceError> {
        self.reader.routes()
    }

    fn flows(&self) -> Result<Vec<nl::conntrack::Flow>, EnforceError> {
        let mut conn =
            self.conn.lock().map_err(|_| EnforceError::Unavailable("netlink socket lock poisoned".into()))?;
        conn.conntrack_flows().map_err(|e| EnforceError::Unavailable(format!("conntrack: {e}")))
    }

    fn forget(&self, tuples: &[nl::conntrack::Tuple]) -> Result<usize, EnforceError> {
        let mut conn =
            self.conn.lock().map_err(|_| EnforceError::Unavailable("netlink socket lock poisoned".into()))?;
        conn.conntrack_delete(tuples).map_err(|e| EnforceError::Unavailable(format!("conntrack: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_encode_as_start_and_exclusive_end_after_a_zero_sentinel() {
        let e = [Element::Net("10.0.0.0/8".parse().unwrap()), Element::Net("192.168.1.1/32".parse().unwrap())];
        let elems = set_elems(SetKind::Addr(Family::V4), e.iter(), true);
        let got: Vec<(Vec<u8>, u32)> = elems.into_iter().map(|x| (x.key, x.flags)).collect();
        assert_eq!(
            got,
            vec![
                (vec![0, 0, 0, 0], nl::ELEM_INTERVAL_END),
                (vec![10, 0, 0, 0], 0),
                (vec![11, 0, 0, 0], nl::ELEM_INTERVAL_END),
                (vec![192, 168, 1, 1], 0),
                (vec![192, 168, 1, 2], nl::ELEM_INTERVAL_END),
            ]
        );
        // A range up to the last port has no end marker.
        let top = set_elems(SetKind::Service, [Element::PortRange(0, 65535)].iter(), true);
        assert_eq!(top.len(), 1);
    }

    #[test]
    fn concatenated_keys_pad_each_part_to_four_bytes() {
        let k = key_bytes(&Element::AddrProtoPort("10.1.1.1".parse().unwrap(), 6, 8080));
        assert_eq!(k, vec![10, 1, 1, 1, 6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        let i = key_bytes(&Element::IfaceAddr("nw0".into(), "10.0.0.1".parse().unwrap()));
        assert_eq!(i.len(), 20);
        assert_eq!(&i[..3], b"nw0");
    }

    #[test]
    fn key_types_match_nft_datatypes() {
        assert_eq!(set_spec(SetKind::AddrProtoPort(Family::V4), false).key_type, 0x730d);
        assert_eq!(set_spec(SetKind::Iface, false).key_type, 41);
        let map = set_spec(SetKind::Addr(Family::V4), true);
        assert_eq!((map.flags, map.data_type), (nl::SET_MAP, Some(nl::DATA_VERDICT)));
    }

    #[test]
    fn element_keys_parse_back() {
        use netward_nftables::live::{element_key, parse_key};
        for (kind, e) in [
            (SetKind::Addr(Family::V4), Element::Net("10.0.0.0/8".parse().unwrap())),
            (SetKind::Service, Element::PortRange(80, 90)),
            (SetKind::AddrProtoPort(Family::V4), Element::AddrProtoPort("10.0.0.1".parse().unwrap(), 17, 53)),
            (SetKind::IfaceAddr(Family::V6), Element::IfaceAddr("nwx".into(), "fd00::1".parse().unwrap())),
        ] {
            assert_eq!(parse_key(kind, &element_key(&e)), Some(e));
        }
    }

    #[test]
    fn rules_check_the_family_before_reading_addresses() {
        let r = Rule {
            matches: vec![Match::Addr { family: Family::V6, side: Side::Saddr, set: "s".into(), negated: true }],
            verdict: Verdict::Accept,
            note: String::new(),
        };
        let e = rule_exprs(&r);
        assert_eq!(e[0], Expr::Meta { key: META_NFPROTO, dreg: nl::REG_1 });
        assert_eq!(e[1], Expr::Cmp { sreg: nl::REG_1, op: CMP_EQ, data: vec![NFPROTO_IPV6] });
        assert_eq!(e[2], Expr::Payload { base: NETWORK_HEADER, offset: 8, len: 16, dreg: nl::REG_1 });
        assert!(matches!(&e[3], Expr::Lookup { invert: true, .. }));
    }
}

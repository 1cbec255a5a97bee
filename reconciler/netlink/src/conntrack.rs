//! Connection tracking over ctnetlink: list the kernel's tracked flows and
//! delete some of them, so a flow a new ruleset closes stops at once
//! instead of riding on its conntrack entry forever.
//!
//! Messages are plain bytes (nlmsghdr, nfgenmsg, attributes) sent through
//! libmnl's safe socket API: nothing here is `unsafe`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nftnl_sys::libc;

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;

/// One direction of a tracked connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tuple {
    /// The source address of this direction's packets.
    pub src: IpAddr,
    /// Their destination address.
    pub dst: IpAddr,
    /// IP protocol number (6 TCP, 17 UDP, 132 SCTP, 1 ICMP, ...).
    pub proto: u8,
    /// Ports; 0 for protocols without them.
    pub sport: u16,
    /// Destination port; 0 for protocols without ports.
    pub dport: u16,
}

/// A tracked connection: as its first packet went (`orig`), and as replies
/// come back (`reply`: after DNAT, its source is the real destination).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Flow {
    /// The connection as its first packet went: the tuple a delete request names.
    pub orig: Tuple,
    /// The connection as replies come back.
    pub reply: Tuple,
}

fn family(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        libc::AF_INET as u8
    } else {
        libc::AF_INET6 as u8
    }
}

/// An nlmsghdr and nfgenmsg for `msg`, to which attributes are appended.
fn message(msg: u16, flags: u16, family: u8, seq: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(128);
    m.extend_from_slice(&0u32.to_ne_bytes()); // length, set by `finish`
    m.extend_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | msg).to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    // nfgenmsg: family, version 0, resource id 0 (big endian).
    m.extend_from_slice(&[family, 0, 0, 0]);
    m
}

fn finish(mut m: Vec<u8>) -> Vec<u8> {
    let len = m.len() as u32;
    m[..4].copy_from_slice(&len.to_ne_bytes());
    m
}

fn attr(out: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len() + (4 - len % 4) % 4, 0);
}

fn nested(out: &mut Vec<u8>, ty: u16, build: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    build(&mut inner);
    attr(out, ty | NLA_F_NESTED, &inner);
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

/// The request that dumps every tracked flow of both families.
pub fn dump_request(seq: u32) -> Vec<u8> {
    finish(message(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, libc::AF_UNSPEC as u8, seq))
}

/// The request that deletes the flow whose original tuple is `t`.
pub fn delete_request(t: &Tuple, seq: u32) -> Vec<u8> {
    let mut m = message(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, family(t.src), seq);
    nested(&mut m, CTA_TUPLE_ORIG, |o| {
        nested(o, CTA_TUPLE_IP, |i| {
            let (s, d) = if t.src.is_ipv4() { (CTA_IP_V4_SRC, CTA_IP_V4_DST) } else { (CTA_IP_V6_SRC, CTA_IP_V6_DST) };
            attr(i, s, &ip_bytes(t.src));
            attr(i, d, &ip_bytes(t.dst));
        });
        nested(o, CTA_TUPLE_PROTO, |p| {
            attr(p, CTA_PROTO_NUM, &[t.proto]);
            if t.sport != 0 || t.dport != 0 {
                attr(p, CTA_PROTO_SRC_PORT, &t.sport.to_be_bytes());
                attr(p, CTA_PROTO_DST_PORT, &t.dport.to_be_bytes());
            }
        });
    });
    finish(m)
}

/// Attributes of a buffer: (type without flags, payload). Stops at the
/// first malformed one; never reads past the buffer.
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((ty, &b[4..len]));
        let aligned = (len + 3) & !3;
        b = &b[aligned.min(b.len())..];
    }
    out
}

fn find_in<'a>(list: &[(u16, &'a [u8])], ty: u16) -> Option<&'a [u8]> {
    list.iter().find(|(t, _)| *t == ty).map(|(_, p)| *p)
}

fn ip_of(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        16 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(b);
            Some(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => None,
    }
}

fn port_of(b: Option<&[u8]>) -> u16 {
    match b {
        Some([h, l, ..]) => u16::from_be_bytes([*h, *l]),
        _ => 0,
    }
}

fn tuple(payload: &[u8]) -> Option<Tuple> {
    let top = attrs(payload);
    let ip = attrs(find_in(&top, CTA_TUPLE_IP)?);
    let proto = attrs(find_in(&top, CTA_TUPLE_PROTO)?);
    let (src, dst) = match (find_in(&ip, CTA_IP_V4_SRC), find_in(&ip, CTA_IP_V4_DST)) {
        (Some(s), Some(d)) => (ip_of(s)?, ip_of(d)?),
        _ => (ip_of(find_in(&ip, CTA_IP_V6_SRC)?)?, ip_of(find_in(&ip, CTA_IP_V6_DST)?)?),
    };
    let num = *find_in(&proto, CTA_PROTO_NUM)?.first()?;
    Some(Tuple {
        src,
        dst,
        proto: num,
        sport: port_of(find_in(&proto, CTA_PROTO_SRC_PORT)),
        dport: port_of(find_in(&proto, CTA_PROTO_DST_PORT)),
    })
}

/// What one datagram of a dump answer holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The flows in the datagram (entries missing either tuple are left out).
    pub flows: Vec<Flow>,
    /// The dump's end (NLMSG_DONE) was in it.
    pub done: bool,
    /// Errors the kernel answered with (negative errno as positive).
    pub errors: Vec<i32>,
}

/// Parses the messages of one datagram: flows, the end of a dump, errors.
/// Pure byte parsing, bounds-checked.
pub fn parse(mut buf: &[u8]) -> Parsed {
    let mut out = Parsed::default();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let ty = u16::from_ne_bytes([buf[4], buf[5]]);
        if len < 16 || len > buf.len() {
            break;
        }
        let body = &buf[16..len];
        match ty {
            NLMSG_DONE => out.done = true,
            NLMSG_ERROR if body.len() >= 4 => {
                let err = i32::from_ne_bytes([body[0], body[1], body[2], body[3]]);
                if err != 0 {
                    out.errors.push(-err);
                }
            }
            t if t >> 8 == NFNL_SUBSYS_CTNETLINK && body.len() >= 4 => {
                let a = attrs(&body[4..]);
                let orig = find_in(&a, CTA_TUPLE_ORIG).and_then(tuple);
                let reply = find_in(&a, CTA_TUPLE_REPLY).and_then(tuple);
                if let (Some(orig), Some(reply)) = (orig, reply) {
                    out.flows.push(Flow { orig, reply });
                }
            }
            _ => {}
        }
        let aligned = (len + 3) & !3;
        buf = &buf[aligned.min(buf.len())..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delete_request_parses_back_as_its_tuple() {
        let t = Tuple {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            proto: 6,
            sport: 40000,
            dport: 8080,
        };
        let m = delete_request(&t, 7);
        assert_eq!(u32::from_ne_bytes([m[0], m[1], m[2], m[3]]) as usize, m.len());
        let a = attrs(&m[20..]);
        assert_eq!(tuple(find_in(&a, CTA_TUPLE_ORIG).unwrap()), Some(t));
        let t6 =
            Tuple { src: "fd00::1".parse().unwrap(), dst: "fd00::2".parse().unwrap(), proto: 17, sport: 5, dport: 53 };
        let m = delete_request(&t6, 8);
        assert_eq!(tuple(find_in(&attrs(&m[20..]), CTA_TUPLE_ORIG).unwrap()), Some(t6));
    }

    #[test]
    fn truncated_and_garbage_input_is_never_read_past() {
        let t =
            Tuple { src: "10.0.0.1".parse().unwrap(), dst: "10.0.0.2".parse().unwrap(), proto: 6, sport: 1, dport: 2 };
        let m = delete_request(&t, 1);
        for cut in 0..m.len() {
            let _ = parse(&m[..cut]);
        }
        assert_eq!(parse(&[0xff; 64]), Parsed::default());
    }
}

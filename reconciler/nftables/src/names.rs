//! How nft objects are named, and the hash behind the names: chains, sets
//! and maps are named from what they hold, so the same policy gets the same
//! name on every node and in every run.

use netward_policy::model::Direction;

/// A stable short key of a pod (11 hex digits of a hash of
/// `namespace.name`): its chains are named `pod-<key>-in` / `-out`.
pub fn pod_key(namespace: &str, pod: &str) -> String {
    let h = fnv64(format!("{namespace}.{pod}").as_bytes());
    netward_policy::text::cut(&format!("{h:016x}"), 11).to_string()
}

/// FNV-1a, 64 bits: names and content hashes that are stable across runs.
pub fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A readable, bounded nft object name: the parts joined, cut, plus a hash.
pub fn object_name(kind: &str, parts: &[&str]) -> String {
    let full = parts.join("-");
    let h = fnv64(full.as_bytes()) as u32;
    let mut readable: String =
        full.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    readable.truncate(40);
    format!("{kind}-{readable}-{h:08x}")
}

/// The direction part of object names: `in` or `eg`.
pub fn dir_suffix(d: Direction) -> &'static str {
    match d {
        Direction::Ingress => "in",
        Direction::Egress => "eg",
    }
}

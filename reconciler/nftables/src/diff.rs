//! The smallest change that turns the live table into the desired one.
//!
//! Order inside the one transaction follows Calico's (anchors §3.1 rule 8):
//! new sets, maps and chains first; changed chains flushed and refilled;
//! elements added; elements removed; unused chains, then sets, deleted last.

use std::collections::BTreeSet;
use std::fmt::Write;

use std::collections::HashMap;

use crate::live::{element_key, parse_key, Live};
use crate::nft;
use crate::ruleset::{Chain, Element, Ruleset, TABLE};

/// What an apply will change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// The table is missing: everything is created at once.
    pub create_table: bool,
    /// Sets to create: missing, or recreated under another type.
    pub new_sets: Vec<String>,
    /// Verdict maps to create: missing, or recreated under another type.
    pub new_maps: Vec<String>,
    /// Chains to create and fill.
    pub new_chains: Vec<String>,
    /// Existing chains whose rules differ: flushed and refilled.
    pub rewritten_chains: Vec<String>,
    /// (set or map, element) to add / remove. A map element's target chain
    /// comes from the desired ruleset.
    pub add_elements: Vec<(String, Element)>,
    /// The same, to remove.
    pub remove_elements: Vec<(String, Element)>,
    /// Chains the desired ruleset no longer has.
    pub deleted_chains: Vec<String>,
    /// Sets it no longer has, or that are recreated under another type.
    pub deleted_sets: Vec<String>,
    /// Verdict maps it no longer has, or that are recreated under another type.
    pub deleted_maps: Vec<String>,
}

impl Changes {
    /// Whether nothing changes: the live table already matches.
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }

    /// A one-line account for logs.
    pub fn summary(&self) -> String {
        if self.create_table {
            return "table created".to_string();
        }
        format!(
            "{} chains created, {} rewritten, {} deleted; {} elements added, {} removed; {} sets/maps created, {} deleted",
            self.new_chains.len(),
            self.rewritten_chains.len(),
            self.deleted_chains.len(),
            self.add_elements.len(),
            self.remove_elements.len(),
            self.new_sets.len() + self.new_maps.len(),
            self.deleted_sets.len() + self.deleted_maps.len()
        )
    }
}

/// Compares the live table (None: absent) with the desired ruleset.
pub fn diff(live: Option<&Live>, desired: &Ruleset) -> Changes {
    let want = Live::of(desired);
    let Some(have) = live else {
        return Changes { create_table: true, ..Changes::default() };
    };
    let mut c = Changes::default();
    for (name, (ty, elems)) in &want.sets {
        match have.sets.get(name) {
            Some((hty, helems)) if hty == ty => {
                let kind = desired.sets[name].kind;
                if elems != helems {
                    let by_key: HashMap<String, &Element> =
                        desired.sets[name].elements.iter().map(|e| (element_key(e), e)).collect();
                    c.add_elements.extend(elems.difference(helems).map(|k| (name.clone(), by_key[k].clone())));
                }
                c.remove_elements
                    .extend(helems.difference(elems).filter_map(|k| Some((name.clone(), parse_key(kind, k)?))));
            }
            Some(_) => {
                // Same name, other type: cannot change in place.
                c.deleted_sets.push(name.clone());
                c.new_sets.push(name.clone());
            }
            None => c.new_sets.push(name.clone()),
        }
    }
    for (name, (ty, elems)) in &want.maps {
        match have.maps.get(name) {
            Some((hty, helems)) if hty == ty => {
                let kind = desired.maps[name].key;
                let el = |k: &String| parse_key(kind, k).map(|e| (name.clone(), e));
                for (k, target) in elems {
                    match helems.get(k) {
                        Some(t) if t == target => {}
                        Some(_) => {
                            c.remove_elements.extend(el(k));
                            c.add_elements.extend(el(k));
                        }
                        None => c.add_elements.extend(el(k)),
                    }
                }
                c.remove_elements.extend(helems.keys().filter(|k| !elems.contains_key(*k)).filter_map(el));
            }
            Some(_) => {
                c.deleted_maps.push(name.clone());
                c.new_maps.push(name.clone());
            }
            None => c.new_maps.push(name.clone()),
        }
    }
    for (name, hashes) in &want.chains {
        match have.chains.get(name) {
            Some(h) if h == hashes => {}
            Some(_) => c.rewritten_chains.push(name.clone()),
            None => c.new_chains.push(name.clone()),
        }
    }
    c.deleted_chains = have.chains.keys().filter(|n| !want.chains.contains_key(*n)).cloned().collect();
    c.deleted_sets.extend(have.sets.keys().filter(|n| !want.sets.contains_key(*n)).cloned());
    c.deleted_maps.extend(have.maps.keys().filter(|n| !want.maps.contains_key(*n)).cloned());
    rewrite_users_of_recreated(&mut c, desired);
    c
}

/// The sets and maps the change deletes and creates again under another
/// type (their key changed: an upgrade that changed a map's layout).
pub fn recreated(c: &Changes) -> BTreeSet<&String> {
    let sets = c.new_sets.iter().filter(|n| c.deleted_sets.contains(n));
    sets.chain(c.new_maps.iter().filter(|n| c.deleted_maps.contains(n))).collect()
}

/// The kernel refuses to delete a set a rule still uses (EBUSY): every
/// chain that uses a recreated set is rewritten, and the renderers flush
/// the chains they rewrite or delete before deleting such sets.
fn rewrite_users_of_recreated(c: &mut Changes, desired: &Ruleset) {
    let again = recreated(c);
    if again.is_empty() {
        return;
    }
    let users: Vec<String> = desired
        .chains
        .iter()
        .filter(|(n, _)| !c.new_chains.contains(n) && !c.rewritten_chains.contains(n))
        .filter(|(_, ch)| ch.rules.iter().any(|r| r.sets().any(|s| again.iter().any(|a| a.as_str() == s))))
        .map(|(n, _)| n.clone())
        .collect();
    c.rewritten_chains.extend(users);
}

/// The change from one desired ruleset to the next, without the kernel: the
/// fast path when the last applied ruleset is known. Chains compare as data,
/// sets as sorted element sets, so cost stays linear and small.
pub fn diff_rulesets(old: &Ruleset, new: &Ruleset) -> Changes {
    let mut c = Changes::default();
    for (name, s) in &new.sets {
        match old.sets.get(name) {
            Some(o) if o.kind == s.kind => {
                if s.elements != o.elements {
                    c.add_elements.extend(s.elements.difference(&o.elements).map(|e| (name.clone(), e.clone())));
                    c.remove_elements.extend(o.elements.difference(&s.elements).map(|e| (name.clone(), e.clone())));
                }
            }
            Some(_) => {
                c.deleted_sets.push(name.clone());
                c.new_sets.push(name.clone());
            }
            None => c.new_sets.push(name.clone()),
        }
    }
    for (name, m) in &new.maps {
        match old.maps.get(name) {
            Some(o) if o.key == m.key => {
                for (k, target) in &m.elements {
                    match o.elements.get(k) {
                        Some(t) if t == target => {}
                        Some(_) => {
                            c.remove_elements.push((name.clone(), k.clone()));
                            c.add_elements.push((name.clone(), k.clone()));
                        }
                        None => c.add_elements.push((name.clone(), k.clone())),
                    }
                }
                c.remove_elements.extend(
                    o.elements.keys().filter(|k| !m.elements.contains_key(*k)).map(|k| (name.clone(), k.clone())),
                );
            }
            Some(_) => {
                c.deleted_maps.push(name.clone());
                c.new_maps.push(name.clone());
            }
            None => c.new_maps.push(name.clone()),
        }
    }
    for (name, chain) in &new.chains {
        match old.chains.get(name) {
            Some(o) if o == chain => {}
            Some(_) => c.rewritten_chains.push(name.clone()),
            None => c.new_chains.push(name.clone()),
        }
    }
    c.deleted_chains = old.chains.keys().filter(|n| !new.chains.contains_key(*n)).cloned().collect();
    c.deleted_sets.extend(old.sets.keys().filter(|n| !new.sets.contains_key(*n)).cloned());
    c.deleted_maps.extend(old.maps.keys().filter(|n| !new.maps.contains_key(*n)).cloned());
    rewrite_users_of_recreated(&mut c, new);
    c
}

/// The `nft -f` script of a change: one transaction. Removed elements are
/// named by key (nft accepts the key alone for maps).
pub fn render(changes: &Changes, desired: &Ruleset) -> String {
    if changes.create_table {
        return nft::render(desired);
    }
    let mut out = String::new();
    let t = format!("inet {TABLE}");
    let recreated_sets: BTreeSet<&String> =
        changes.new_sets.iter().filter(|n| changes.deleted_sets.contains(n)).collect();
    let recreated_maps: BTreeSet<&String> =
        changes.new_maps.iter().filter(|n| changes.deleted_maps.contains(n)).collect();
    // Sets and maps whose type changed are deleted first, once no rule uses
    // them: the chains being rewritten or deleted are flushed before.
    for n in changes.rewritten_chains.iter().chain(&changes.deleted_chains) {
        let _ = writeln!(out, "flush chain {t} {n}");
    }
    for n in &recreated_sets {
        let _ = writeln!(out, "delete set {t} {n}");
    }
    for n in &recreated_maps {
        let _ = writeln!(out, "delete map {t} {n}");
    }
    for n in &changes.new_sets {
        let _ = writeln!(out, "add set {t} {n} {{ {} }}", nft::set_decl(&desired.sets[n]));
    }
    for n in &changes.new_maps {
        let _ = writeln!(out, "add map {t} {n} {{ {} }}", nft::map_decl(&desired.maps[n]));
    }
    for n in &changes.new_chains {
        let _ = writeln!(out, "add chain {t} {n}{}", chain_decl(&desired.chains[n]));
    }
    for n in changes.new_chains.iter().chain(&changes.rewritten_chains) {
        for r in &desired.chains[n].rules {
            let _ = writeln!(out, "add rule {t} {n} {}", nft::rule_line(r));
        }
    }
    // New sets/maps get their elements here, with the rest.
    for n in &changes.new_sets {
        for e in &desired.sets[n].elements {
            let _ = writeln!(out, "add element {t} {n} {{ {} }}", nft::element(e));
        }
    }
    for n in &changes.new_maps {
        for (k, c) in &desired.maps[n].elements {
            let _ = writeln!(out, "add element {t} {n} {{ {} : goto {c} }}", nft::element(k));
        }
    }
    // Removals before additions: an interval that grows replaces one it overlaps.
    for (set, e) in &changes.remove_elements {
        let _ = writeln!(out, "delete element {t} {set} {{ {} }}", nft::element(e));
    }
    for (set, e) in &changes.add_elements {
        match desired.maps.get(set).and_then(|m| m.elements.get(e)) {
            Some(chain) => {
                let _ = writeln!(out, "add element {t} {set} {{ {} : goto {chain} }}", nft::element(e));
            }
            None => {
                let _ = writeln!(out, "add element {t} {set} {{ {} }}", nft::element(e));
            }
        }
    }
    for n in &changes.deleted_chains {
        let _ = writeln!(out, "delete chain {t} {n}");
    }
    for n in changes.deleted_sets.iter().filter(|n| !recreated_sets.contains(n)) {
        let _ = writeln!(out, "delete set {t} {n}");
    }
    for n in changes.deleted_maps.iter().filter(|n| !recreated_maps.contains(n)) {
        let _ = writeln!(out, "delete map {t} {n}");
    }
    out
}

fn chain_decl(c: &Chain) -> String {
    match c.base {
        None => String::new(),
        Some(b) => format!(" {{ {} }}", nft::base_decl(b)),
    }
}
